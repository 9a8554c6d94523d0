"""`keelrun top`: a live view of a running keelrun, through its control socket only.

textual is imported only when the view starts (`app.py`); `data.py` and
`conn.py` are plain Python.
"""

from __future__ import annotations

import os


def top_command(app_root: str | None, sock: str | None) -> int:
    from keelrun.control.client import Client
    from keelrun.errors import InputError

    # textual draws on stderr: a redirected stderr would leave a blank screen.
    if not (os.isatty(0) and os.isatty(1) and os.isatty(2)):
        raise InputError("keelrun top", "needs a terminal (stdin, stdout and stderr)")
    client = Client(app_root, sock)
    info = client.call("ping", {})  # nothing running: one line and exit 1, before any screen
    from keelrun.top.app import TopApp

    TopApp(client, info).run()
    return 0
