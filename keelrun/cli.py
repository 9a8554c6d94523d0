"""The command line: option parsing only; every command's work lives in its own module.

Imports are lazy: `keelrun start` must have spawned its first process within
300 ms, so nothing is imported here that a command does not need.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, NoReturn

import click

from keelrun import __version__
from keelrun.errors import KeelrunError

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def _input_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """Options that select and read the app's inputs (Procfile, .env, config)."""
    for opt in reversed(
        [
            click.option("-f", "--procfile", metavar="PATH", help="Procfile to use."),
            click.option(
                "-d", "--app-root", metavar="DIR", help="App root (default: current directory)."
            ),
            click.option(
                "-e",
                "--env",
                "env_files",
                metavar="FILE",
                multiple=True,
                help="Env file (repeatable or comma-separated); replaces the default .env.",
            ),
            click.option(
                "--env-override/--no-env-override",
                default=None,
                help="Let .env files win over the real environment (as honcho does).",
            ),
        ]
    ):
        f = opt(f)
    return f


def _formation_options(f: Callable[..., Any]) -> Callable[..., Any]:
    for opt in reversed(
        [
            click.option(
                "-m",
                "-c",
                "--formation",
                "--concurrency",
                "formation",
                metavar="SPEC",
                help="Instances per type, e.g. web=2,worker=0,all=1.",
            ),
            click.option("-p", "--port", metavar="N", help="Base port (default: $PORT or 5000)."),
        ]
    ):
        f = opt(f)
    return f


def _socket_option(f: Callable[..., Any]) -> Callable[..., Any]:
    f = click.option(
        "--socket", metavar="PATH", help="Control socket (default: <app-root>/.keelrun.sock)."
    )(f)
    return click.option("-d", "--app-root", metavar="DIR", help="App root of the instance.")(f)


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
@_input_options
@_formation_options
@click.option("-t", "--timeout", metavar="SECONDS", help="Grace before SIGKILL (default 5).")
@click.option("--restart", metavar="POLICY", help="on-failure (default), always or never.")
@click.option("--max-restarts", metavar="N", help="Failed starts in a row before giving up.")
@click.option("--log-format", metavar="FORMAT", help="text (default) or json.")
@click.option("--color/--no-color", default=None, help="Colour the prefixes (default: on a tty).")
@click.option("--no-timestamp", is_flag=True, default=None, help="Leave out the time.")
@click.option("--no-prefix", is_flag=True, default=None, help="Leave out time and name.")
@click.option("--socket", metavar="PATH", help="Control socket path.")
@click.option("--release", "run_release", is_flag=True, help="Run the release type first.")
def start(types: tuple[str, ...], run_release: bool, **kw: Any) -> None:
    """Start the formation (every type, or the TYPEs named) and supervise it."""
    from keelrun.supervisor.main import start_command

    sys.exit(start_command(_overrides(only_types=types, **kw), run_release=run_release))


@cli.command(context_settings=CONTEXT)
@_input_options
@click.option("-p", "--port", metavar="N", help="Base port.")
def release(**kw: Any) -> None:
    """Run the Procfile's release type alone, to completion."""
    from keelrun.supervisor.main import release_command

    sys.exit(release_command(_overrides(**kw)))


@cli.command(context_settings=CONTEXT)
@_input_options
@_formation_options
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
@_input_options
@click.option("-p", "--port", metavar="N", help="Base port ($PORT of the command).")
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
@_input_options
@_formation_options
@click.option("-t", "--timeout", metavar="SECONDS", help="Grace before SIGKILL.")
@click.option("--restart", metavar="POLICY", help="on-failure (default), always or never.")
@click.option("--max-restarts", metavar="N", help="Failed starts in a row before giving up.")
@click.option("--app", "app_name", metavar="NAME", help="App name (default: app root's name).")
@click.option("--image", metavar="IMAGE", help="Container image (kubernetes).")
@click.option("--include-env", is_flag=True, help="Write .env values into the output.")
def export(
    fmt: str, directory: str, app_name: str | None, image: str | None, include_env: bool, **kw: Any
) -> None:
    """Export the formation as systemd units, a supervisord config or Kubernetes manifests."""
    from keelrun.export import export_command

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
@_socket_option
def scale(changes: tuple[str, ...], app_root: str | None, socket: str | None) -> None:
    """Scale process types of the running instance: web=2 worker=+1 clock=0."""
    from keelrun.control.client import scale_command

    sys.exit(scale_command(app_root, socket, list(changes)))


@cli.command(context_settings=CONTEXT)
@click.option("--json", "as_json", is_flag=True, help="One JSON array, for scripts.")
@_socket_option
def ps(as_json: bool, app_root: str | None, socket: str | None) -> None:
    """List the instances of the running formation."""
    from keelrun.control.client import ps_command

    sys.exit(ps_command(app_root, socket, as_json))


@cli.command(context_settings=CONTEXT)
@click.argument("names", nargs=-1, metavar="[NAME]...")
@_socket_option
def stop(names: tuple[str, ...], app_root: str | None, socket: str | None) -> None:
    """Stop the named instances or types (they stay stopped); no NAME: stop keelrun."""
    from keelrun.control.client import stop_command

    sys.exit(stop_command(app_root, socket, list(names)))


@cli.command(context_settings=CONTEXT)
@click.argument("names", nargs=-1, metavar="[NAME]...")
@_socket_option
def restart(names: tuple[str, ...], app_root: str | None, socket: str | None) -> None:
    """Stop gracefully and start again the named instances (no NAME: all)."""
    from keelrun.control.client import restart_command

    sys.exit(restart_command(app_root, socket, list(names)))


@cli.command("signal", context_settings=CONTEXT)
@click.argument("sig", metavar="SIG")
@click.argument("names", nargs=-1, required=True, metavar="NAME...")
@_socket_option
def signal_(sig: str, names: tuple[str, ...], app_root: str | None, socket: str | None) -> None:
    """Send signal SIG (TERM, SIGTERM or a number) to the named process groups."""
    from keelrun.control.client import signal_command

    sys.exit(signal_command(app_root, socket, sig, list(names)))


@cli.command(context_settings=CONTEXT)
@click.argument("names", nargs=-1, metavar="[NAME]...")
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines.")
@click.option("-n", "--lines", "count", metavar="N", default="100", help="Lines of history.")
@click.option("--log-format", metavar="FORMAT", help="text (default) or json.")
@click.option("--color/--no-color", default=None, help="Colour the prefixes.")
@click.option("--no-timestamp", is_flag=True, help="Leave out the time.")
@click.option("--no-prefix", is_flag=True, help="Leave out time and name.")
@_socket_option
def logs(names: tuple[str, ...], **kw: Any) -> None:
    """Print the last lines of the named instances (default all), then follow with -f."""
    from keelrun.control.client import logs_command

    sys.exit(logs_command(names=list(names), **kw))


@cli.command(context_settings=CONTEXT)
@_socket_option
def reload(app_root: str | None, socket: str | None) -> None:
    """Re-read Procfile, .env and config; restart only what changed."""
    from keelrun.control.client import reload_command

    sys.exit(reload_command(app_root, socket))


# ---- keelrun top: a live view over the same socket (keelrun/top/) ----


@cli.command(context_settings=CONTEXT)
@_socket_option
def top(app_root: str | None, socket: str | None) -> None:
    """A live view: instances, their state and resources, the selected one's lines."""
    from keelrun.top import top_command

    sys.exit(top_command(app_root, socket))


def _fail(message: str, status: int) -> NoReturn:
    sys.stderr.write(f"keelrun: {message}\n")
    sys.stderr.flush()
    sys.exit(status)


def main(argv: list[str] | None = None) -> None:
    """Entry point: every error is one line on stderr and a definite status."""
    try:
        cli.main(args=argv, prog_name="keelrun", standalone_mode=False)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except click.exceptions.Abort:
        _fail("aborted", 130)
    except click.ClickException as e:
        ctx = getattr(e, "ctx", None)
        where = ctx.command_path if ctx is not None else "keelrun"
        _fail(f"{where}: {e.format_message()}", 2)
    except KeelrunError as e:
        lines = e.lines() if hasattr(e, "lines") else [str(e)]
        for line in lines[:-1]:
            sys.stderr.write(f"keelrun: {line}\n")
        _fail(lines[-1], e.exit_status)
    except BrokenPipeError:
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
