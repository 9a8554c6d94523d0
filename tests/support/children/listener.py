"""Listens on 127.0.0.1:$PORT after a delay (a server that binds late).

usage: listener.py DELAY_SECONDS
"""

import os
import signal
import socket
import sys
import threading

signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
os.write(1, b"booting\n")
threading.Event().wait(float(sys.argv[1]))  # the late bind is the scenario under test
sock = socket.socket()
sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
sock.bind(("127.0.0.1", int(os.environ["PORT"])))
sock.listen(16)
os.write(1, f"listening on {os.environ['PORT']}\n".encode())
while True:
    conn, _ = sock.accept()
    conn.close()
