"""The click command line: every command, its options, help texts and usage errors.

keelrun/cli.py is the entry point: it reads a plain `keelrun start` without
click (keelrun/config/startargv.py) and hands everything else to
``run_command_line`` here. Imports are lazy: nothing is imported here that a
command does not need, beyond the option declarations
(keelrun/config/options.py) that the click options are made from.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

from keelrun import __version__
from keelrun.cli import fail

if TYPE_CHECKING:
    from keelrun.config.options import Option

F = TypeVar("F", bound=Callable[..., Any])
CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def _options(command: str) -> Callable[[F], F]:
    """The click options of ``command``, made from the declarations in keelrun/config/options.py."""
    from keelrun.config.options import OPTIONS

    def decorate(f: F) -> F:
        for opt in reversed(OPTIONS):
            if command in opt.commands:
                f = _click_option(opt)(f)
        # --version on every command, as --help is (README "Commands").
        return click.version_option(__version__, "--version", prog_name="keelrun")(f)

    return decorate


def _click_option(opt: Option) -> Callable[[F], F]:
    # default None (or () when repeatable): "not given", so that the loader
    # falls through to KEELRUN_ variables and the config file.
    kw: dict[str, Any] = {"help": opt.help, "default": None}
    if opt.kind == "flag":
        kw["is_flag"] = True
    elif opt.kind in ("value", "multiple"):
        kw["metavar"] = opt.metavar
        if opt.kind == "multiple":
            kw.update(multiple=True, default=())
    # a "switch" is spelled "--x/--no-x": click reads both flags from it
    return click.option(*opt.flags, opt.name, **kw)


def _overrides(**kw: Any) -> Any:
    from keelrun.config import Overrides

    return Overrides.from_cli(**kw)


@click.group(context_settings=CONTEXT)
@click.version_option(__version__, "--version", prog_name="keelrun")
def cli() -> None:
    """Run a twelve-factor app's process types from a Procfile.

    Shell completion: eval "$(_KEELRUN_COMPLETE=bash_source keelrun)" (zsh_source, fish_source).
    """


@cli.command(context_settings=CONTEXT)
@click.argument("types", nargs=-1, metavar="[TYPE]...")
@_options("start")
def start(types: tuple[str, ...], **kw: Any) -> None:
    """Start the formation (every type, or the TYPEs named) and supervise it."""
    from keelrun.start import start_command

    overrides = _overrides(only_types=types, **kw)
    sys.exit(start_command(overrides, run_release=bool(overrides.run_release)))


@cli.command(context_settings=CONTEXT)
@_options("release")
def release(**kw: Any) -> None:
    """Run the Procfile's release type alone, to completion."""
    from keelrun.start import release_command

    sys.exit(release_command(_overrides(**kw)))


@cli.command(context_settings=CONTEXT)
@_options("check")
def check(**kw: Any) -> None:
    """Validate Procfile, .env files and config; print the formation."""
    from keelrun.check import check_command

    sys.exit(check_command(_overrides(**kw)))


# Everything from the first argument on is the command's: `keelrun run ls -e` passes -e to ls.
@cli.command(
    context_settings={
        **CONTEXT,
        "ignore_unknown_options": True,
        "allow_interspersed_args": False,
    }
)
@_options("run")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def run(command: tuple[str, ...], **kw: Any) -> None:
    """Run one COMMAND in the app's environment (interactive, signals forwarded)."""
    from keelrun.oneoff import run_command

    sys.exit(run_command(_overrides(**kw), list(command)))


@cli.command(context_settings=CONTEXT)
@click.argument(
    "fmt", metavar="FORMAT", type=click.Choice(["systemd", "supervisord", "kubernetes"])
)
@click.argument("directory", metavar="DIR")
@_options("export")
@click.option("--app", "app_name", metavar="NAME", help="App name (default: app root's name).")
@click.option("--image", metavar="IMAGE", help="Container image (kubernetes).")
@click.option("--include-env", is_flag=True, help="Write .env values into the output.")
def export(
    fmt: str, directory: str, app_name: str | None, image: str | None, include_env: bool, **kw: Any
) -> None:
    """Export the formation as systemd units, a supervisord config or Kubernetes manifests."""
    from keelrun.errors import InputError
    from keelrun.export import export_command

    if not directory.strip():  # `keelrun export systemd "$OUT"` with OUT unset
        raise InputError("DIR", "empty path: name the directory to write to")

    sys.exit(
        export_command(
            _overrides(**kw),
            fmt,
            directory,
            app_name=app_name,
            image=image,
            include_env=include_env,
        )
    )


# ---- client commands: talk to a running `keelrun start` over its socket ----


@cli.command(context_settings=CONTEXT)
@click.argument("changes", nargs=-1, required=True, metavar="TYPE=N|+N|-N...")
@_options("scale")
def scale(changes: tuple[str, ...], app_root: str | None, socket: str | None) -> None:
    """Scale process types of the running instance: web=2 worker=+1 clock=0."""
    from keelrun.control.client import scale_command

    sys.exit(scale_command(app_root, socket, list(changes)))


@cli.command(context_settings=CONTEXT)
@click.option("--json", "as_json", is_flag=True, help="One JSON array, for scripts.")
@_options("ps")
def ps(as_json: bool, app_root: str | None, socket: str | None) -> None:
    """List the instances of the running formation."""
    from keelrun.control.client import ps_command

    sys.exit(ps_command(app_root, socket, as_json))


@cli.command(context_settings=CONTEXT)
@click.argument("names", nargs=-1, metavar="[NAME]...")
@_options("stop")
def stop(names: tuple[str, ...], app_root: str | None, socket: str | None) -> None:
    """Stop the named instances or types (they stay stopped); no NAME: stop keelrun."""
    from keelrun.control.client import stop_command

    sys.exit(stop_command(app_root, socket, list(names)))


@cli.command(context_settings=CONTEXT)
@click.argument("names", nargs=-1, metavar="[NAME]...")
@_options("restart")
def restart(names: tuple[str, ...], app_root: str | None, socket: str | None) -> None:
    """Stop gracefully and start again the named instances (no NAME: all)."""
    from keelrun.control.client import restart_command

    sys.exit(restart_command(app_root, socket, list(names)))


@cli.command("signal", context_settings=CONTEXT)
@click.argument("sig", metavar="SIG")
@click.argument("names", nargs=-1, required=True, metavar="NAME...")
@_options("signal")
def signal_(sig: str, names: tuple[str, ...], app_root: str | None, socket: str | None) -> None:
    """Send signal SIG (TERM, SIGTERM or a number) to the named process groups."""
    from keelrun.control.client import signal_command

    sys.exit(signal_command(app_root, socket, sig, list(names)))


@cli.command(context_settings=CONTEXT)
@click.argument("names", nargs=-1, metavar="[NAME]...")
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines.")
@click.option("-n", "--lines", "count", metavar="N", default="100", help="Lines of history.")
@_options("logs")
def logs(names: tuple[str, ...], **kw: Any) -> None:
    """Print the last lines of the named instances (default all), then follow with -f."""
    from keelrun.control.client import logs_command

    sys.exit(logs_command(names=list(names), **kw))


@cli.command(context_settings=CONTEXT)
@_options("reload")
def reload(app_root: str | None, socket: str | None) -> None:
    """Re-read Procfile, .env and config; restart only what changed."""
    from keelrun.control.client import reload_command

    sys.exit(reload_command(app_root, socket))


@cli.command(context_settings=CONTEXT)
@click.argument("name", metavar="NAME")
@_options("attach")
def attach(name: str, app_root: str | None, socket: str | None) -> None:
    """Join this terminal to a tty instance (web.1, or a type of one instance); Ctrl-] detaches."""
    from keelrun.control.attach_client import attach_command

    sys.exit(attach_command(app_root, socket, name))


# ---- keelrun top: a live view over the same socket (keelrun/top/) ----


@cli.command(context_settings=CONTEXT)
@_options("top")
def top(app_root: str | None, socket: str | None) -> None:
    """A live view: instances, their state and resources, the selected one's lines."""
    from keelrun.top import top_command

    sys.exit(top_command(app_root, socket))


def _usage_message(e: click.ClickException, argv: list[str]) -> str:
    """click's message as one line, after the subcommand it is about (``check: No such ...``)."""
    from keelrun.errors import one_line

    text = " ".join(part.strip() for part in e.format_message().splitlines() if part.strip())
    ctx = getattr(e, "ctx", None)
    if ctx is not None:
        command = ctx.info_name if ctx.parent is not None else None
    else:  # some parser errors carry no context: the subcommand is the first word
        command = next((a for a in argv if not a.startswith("-")), None)
        command = command if command in cli.commands else None
    return one_line(f"{command}: {text}" if command else text)


def run_command_line(args: list[str]) -> None:
    """Run the command line ``args``; click's own errors become one line and status 2."""
    try:
        cli.main(args=args, prog_name="keelrun", standalone_mode=False)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except click.exceptions.Abort:
        fail("aborted", 130)
    except click.ClickException as e:
        if type(e).__name__ == "NoArgsIsHelpError":  # bare `keelrun`: the help, as click does
            sys.stderr.write(e.format_message() + "\n")
            sys.exit(2)
        status = 2 if isinstance(e, click.UsageError) else e.exit_code
        fail(_usage_message(e, args), status)
