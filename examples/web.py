"""Web process: serves HTTP on $PORT (factor VII) and stops cleanly on SIGTERM (factor IX).

It listens on every interface (HOST=0.0.0.0), so that `docker run -p 5000:5000`
and a Kubernetes probe reach it; set HOST=127.0.0.1 to keep it to this machine.
"""

import contextlib
import json
import os
import signal
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

NAME = os.environ.get("PS", "web")
GREETING = os.environ.get("GREETING", "Hello from keelrun-demo")


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/health":
            body = b"ok\n"
            content_type = "text/plain"
        else:
            body = json.dumps({"message": GREETING, "process": NAME}).encode() + b"\n"
            content_type = "application/json"
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        # Logs are an event stream on stdout (factor XI), not a file.
        print(f"{self.address_string()} {format % args}")


def main() -> None:
    host = os.environ.get("HOST", "0.0.0.0")
    port = int(os.environ.get("PORT", "5000"))
    server = ThreadingHTTPServer((host, port), Handler)
    # shutdown() waits for serve_forever(), so it must run off the main thread.
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    print(f"listening on http://{host}:{port}")
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    server.server_close()
    print("stopped")


if __name__ == "__main__":
    main()
