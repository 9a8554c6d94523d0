"""Release phase: "migrates" the database (a stand-in; idempotent, as migrations must be)."""

import os
import time

MIGRATIONS = ("0001_initial", "0002_add_jobs", "0003_add_index")


def main() -> None:
    database = os.environ.get("DATABASE_URL", "sqlite:///demo.sqlite3")
    print(f"release: migrating {database.split('://')[0]} database")
    for name in MIGRATIONS:
        time.sleep(0.1)
        print(f"release: applied {name}")
    print("release: done")


if __name__ == "__main__":
    main()
