"""Worker process: handles a job every JOB_INTERVAL seconds; on SIGTERM it finishes the job."""

import os
import signal
import time

stopping = False


def stop(signum: int, frame: object) -> None:
    global stopping
    stopping = True


def main() -> None:
    signal.signal(signal.SIGTERM, stop)
    interval = float(os.environ.get("JOB_INTERVAL", "1.0"))
    name = os.environ.get("PS", "worker")
    job = 0
    while not stopping:
        job += 1
        print(f"{name} handled job {job}")
        time.sleep(interval)
    print(f"{name} finished its last job; exiting")


if __name__ == "__main__":
    main()
