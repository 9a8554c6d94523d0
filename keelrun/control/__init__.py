"""The control socket: `keelrun scale/ps/stop/restart/signal/logs/reload`.

The protocol is documented in the README, "Control socket protocol".
"""
