"""Restart process types when their files change (README "The development loop").

`globs` and `rules` are pure; `watcher` runs watchfiles in one helper thread
and is imported only when a watch is configured.
"""
