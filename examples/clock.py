"""Clock process: a scheduler that ticks every CLOCK_INTERVAL seconds; stops on SIGINT."""

import os
import time


def main() -> None:
    interval = float(os.environ.get("CLOCK_INTERVAL", "5"))
    tick = 0
    try:
        while True:
            tick += 1
            print(f"tick {tick}: would enqueue the periodic jobs now")
            time.sleep(interval)
    except KeyboardInterrupt:
        print("clock stopped")


if __name__ == "__main__":
    main()
