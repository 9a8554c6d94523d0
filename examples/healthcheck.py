"""The container's health check (Dockerfile HEALTHCHECK; python:slim has no curl).

Healthy when keelrun answers on its control socket, no instance has failed,
and every running web instance answers GET /health on its port. Exit 0 or 1,
with one line saying why.
"""

import json
import subprocess
import sys
import urllib.request
from pathlib import Path

APP_ROOT = Path(__file__).resolve().parent
TIMEOUT = 2.0


def check() -> str | None:
    """None when healthy, else what is wrong."""
    ps = [sys.executable, "-m", "keelrun", "ps", "--json", "-d", str(APP_ROOT)]
    try:
        r = subprocess.run(ps, capture_output=True, text=True, timeout=3 * TIMEOUT)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"keelrun ps: {e}"
    if r.returncode != 0:
        return r.stderr.strip() or f"keelrun ps exited {r.returncode}"
    instances = json.loads(r.stdout)
    failed = [i["name"] for i in instances if i["state"] == "failed"]
    if failed:
        return f"failed: {', '.join(failed)}"
    for i in instances:
        if i["type"] == "web" and i["state"] in ("running", "ready") and i["port"]:
            url = f"http://127.0.0.1:{i['port']}/health"
            try:
                with urllib.request.urlopen(url, timeout=TIMEOUT) as answer:
                    answer.read()
            except OSError as e:  # URLError, HTTPError and timeouts are OSErrors
                return f"{i['name']}: {url}: {e}"
    return None


def main() -> int:
    problem = check()
    print(problem or "healthy")
    return 1 if problem else 0


if __name__ == "__main__":
    sys.exit(main())
