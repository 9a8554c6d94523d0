"""`keelrun attach` until the CLI has it: attach_client.attach_command, errors as the CLI
prints them (one line, exit status). usage: attach_cli.py SOCKET NAME"""

import os
import sys

from keelrun.control.attach_client import attach_command
from keelrun.errors import KeelrunError

sys.stderr.write(f"client pid {os.getpid()}\n")
sys.stderr.flush()
try:
    sys.exit(attach_command(None, sys.argv[1], sys.argv[2]))
except KeelrunError as e:
    sys.stderr.write(f"keelrun: {e}\n")
    sys.exit(e.exit_status)
except BrokenPipeError:
    sys.exit(1)
