"""The command line of `keelrun start`, read without click, from the same declarations.

click and the building of every command's options cost ~20 ms, on the path
from exec to the first process spawned. `keelrun start`'s own options
(keelrun/config/options.py) take few forms, so ``parse_start`` reads them as
click reads them, and gives up (None) on anything else: help, a misspelled or
unknown option, a missing value, a value given to a flag. The caller then
hands the whole command line to click, so every message, help text and exit
status stays click's. tests/test_startargv.py generates command lines from
the declarations and checks that this gives exactly click's Overrides, or None.

click's rules, for the forms read here: options and TYPE arguments may be
interleaved; ``--`` ends the options; a long option takes its value as
``--opt=value`` or as the next argument, a short one as ``-ovalue`` or the
next argument, whatever that looks like (``-f -x`` names the Procfile
``-x``); a lone ``-`` is an argument; a repeated option keeps its last value,
a repeatable one all of them in order; ``--x/--no-x`` sets true or false.
"""

from __future__ import annotations

from typing import Any

from keelrun.config.options import OPTIONS, Option, Overrides

COMMAND = "start"


def _spellings() -> tuple[dict[str, tuple[Option, bool]], dict[str, Option]]:
    """Each spelling of a start option: long ones with the value a flag gives, short ones."""
    longs: dict[str, tuple[Option, bool]] = {}
    shorts: dict[str, Option] = {}
    for opt in OPTIONS:
        if COMMAND not in opt.commands:
            continue
        for spelling in opt.flags:
            if opt.kind == "switch":
                on, off = spelling.split("/")
                longs[on], longs[off] = (opt, True), (opt, False)
            elif spelling.startswith("--"):
                longs[spelling] = (opt, True)
            else:
                shorts[spelling] = opt
    return longs, shorts


def parse_start(args: list[str]) -> Overrides | None:
    """``args`` (what follows ``start``) as click reads them; None if click must read them."""
    longs, shorts = _spellings()
    given: dict[str, Any] = {}
    types: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if arg == "--":
            types += args[i:]
            break
        if arg[:1] != "-" or arg == "-":
            types.append(arg)
            continue
        value: str | None = None
        if arg.startswith("--"):
            spelling, eq, attached = arg.partition("=")
            if spelling not in longs:
                return None
            opt, flag_value = longs[spelling]
            if eq:
                value = attached
        else:
            opt_or_none = shorts.get(arg[:2])
            if opt_or_none is None:
                return None
            opt, flag_value = opt_or_none, True
            if len(arg) > 2:
                value = arg[2:]
        if opt.kind in ("flag", "switch"):
            if value is not None:
                return None  # click: "does not take a value"; or a cluster of short flags
            given[opt.name] = flag_value
            continue
        if value is None:
            if i == len(args):
                return None  # click: "requires an argument"
            value = args[i]
            i += 1
        if opt.kind == "multiple":
            given.setdefault(opt.name, []).append(value)
        else:
            given[opt.name] = value
    return Overrides(only_types=types, **given)
