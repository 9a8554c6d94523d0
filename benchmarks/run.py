"""Run keelrun, honcho and foreman side by side on the same workloads and print ratios.

    python benchmarks/run.py                 # everything, medians of 3 (a few minutes)
    python benchmarks/run.py --quick         # a fast smoke run
    python benchmarks/run.py --only throughput,start --supervisors keelrun,honcho
    python benchmarks/run.py --json results.json

A supervisor that fails a workload gets a "failed (reason)" row; the run goes on.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import lifecycle, throughput
from benchmarks.harness import (
    Supervisor,
    SupervisorFailed,
    become_subreaper,
    supervisors,
)
from benchmarks.report import Figure, machine, print_table, program_version, to_json

GROUPS = ("throughput", "start", "stubborn", "idle", "kill")
ALL_SUPERVISORS = ("honcho", "foreman", "keelrun")
T = TypeVar("T")


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def sample(name: str, repeat: int, once: Callable[[], T]) -> tuple[list[T], str | None]:
    """`repeat` results of `once`, or the reason it failed."""
    results: list[T] = []
    try:
        for _ in range(repeat):
            results.append(once())
    except SupervisorFailed as exc:
        return results, str(exc)
    except Exception as exc:  # a benchmark bug must not hide the other rows
        log(traceback.format_exc())
        return results, f"{type(exc).__name__}: {exc}"
    log(f"  {name}: done")
    return results, None


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


# --- workload groups ---------------------------------------------------------------------


def run_throughput(args: argparse.Namespace, sups: list[Supervisor]) -> list[Figure]:
    figures = []
    pipe_size = args.pipe_size or None
    for mode, key in (("parse", "flood-parse"), ("drain", "flood-drain")):
        consumer = throughput.CONSUMERS[mode]
        subjects: list[tuple[str, Callable[[int], throughput.FloodStats]]] = [
            ("raw", lambda n, c=consumer: throughput.flood_raw(c, n, pipe_size))
        ]
        for sup in sups:
            subjects.append(
                (
                    sup.name,
                    lambda n, c=consumer, s=sup: throughput.flood_supervised(
                        s, c, n, False, pipe_size
                    ),
                )
            )
            if mode == "drain" and sup.json_capable:
                subjects.append(
                    (
                        f"{sup.name}-json",
                        lambda n, c=consumer, s=sup: throughput.flood_supervised(
                            s, c, n, True, pipe_size
                        ),
                    )
                )
        for name, once in subjects:
            log(f"{key}: {name}")
            fig = Figure(key, name)
            try:
                result = throughput.measure(once, args.repeat, args.seconds, args.lines)
            except SupervisorFailed as exc:
                fig.error = str(exc)
            except Exception as exc:
                log(traceback.format_exc())
                fig.error = f"{type(exc).__name__}: {exc}"
            else:
                stats = result.samples
                fig.samples = [s.rate or 0.0 for s in stats]
                fig.value = _median(fig.samples)
                fig.details = {"lost": max(s.lost for s in stats)}
                if mode == "parse":
                    fig.details["mangled"] = max(s.mangled for s in stats)
                    if any(s.disorder for s in stats):
                        fig.details["out-of-order"] = max(s.disorder for s in stats)
                fig.details["N"] = result.lines_per_producer
                notes = sorted({n for s in stats for n in s.notes})
                if notes:
                    fig.details["note"] = "; ".join(notes)
            figures.append(fig)
    return figures


def run_start(args: argparse.Namespace, sups: list[Supervisor]) -> list[Figure]:
    figures = []
    subjects: list[tuple[str, Callable[[], lifecycle.StartStop]]] = [
        ("self", lambda: lifecycle.start_stop_self(args.count))
    ]
    subjects += [(s.name, lambda s=s: lifecycle.start_stop(s, args.count)) for s in sups]
    for name, once in subjects:
        log(f"start/stop: {name}")
        results, error = sample(name, args.repeat, once)
        start = Figure("start", name, error=error)
        stop = Figure("stop", name, error=error)
        if not error:
            start.samples = [r.start for r in results]
            start.value = _median(start.samples)
            stopped = [r.stop for r in results if r.stop is not None]
            stop.samples = stopped
            stop.value = _median(stopped) if len(stopped) == len(results) else None
            stop.details["left"] = max(r.left for r in results)
            if len(stopped) < len(results):
                stop.details["note"] = f"did not stop within {lifecycle.STOP_TIMEOUT:g} s"
        figures += [start, stop]
    return figures


def run_stubborn(args: argparse.Namespace, sups: list[Supervisor]) -> list[Figure]:
    figures = []
    for sup in sups:
        log(f"stubborn: {sup.name}")
        once = functools.partial(lifecycle.stubborn, sup, 2.0)
        results, error = sample(sup.name, 1, once)
        if not error and results[0].exit_after is not None:  # a hang is not worth repeating
            more, error = sample(sup.name, args.repeat - 1, once)
            results += more
        fig = Figure("stubborn", sup.name, error=error)
        if not error:
            exits = [r.exit_after for r in results if r.exit_after is not None]
            fig.samples = exits
            fig.value = _median(exits) if len(exits) == len(results) else None
            fig.details["child dead"] = "yes" if all(r.child_dead for r in results) else "no"
            if len(exits) < len(results):
                fig.details["note"] = f"no exit within {lifecycle.STOP_TIMEOUT:g} s of SIGTERM"
            if sup.fixed_grace is not None:
                fig.details["grace"] = f"fixed {sup.fixed_grace:g} s (no option)"
        figures.append(fig)
    return figures


def run_idle(args: argparse.Namespace, sups: list[Supervisor]) -> list[Figure]:
    figures = []
    for sup in sups:
        log(f"idle: {sup.name} ({args.idle_seconds:g} s each)")
        results, error = sample(
            sup.name,
            args.repeat,
            lambda s=sup: lifecycle.idle(s, 20, args.idle_seconds, args.settle),
        )
        cpu = Figure("idle-cpu", sup.name, error=error)
        pss = Figure("pss", sup.name, error=error)
        if not error:
            cpu.samples = [r.cpu_ms_per_10s for r in results]
            cpu.value = _median(cpu.samples)
            cpu.details["window"] = f"{args.idle_seconds:g} s"
            pss.samples = [r.pss_mb for r in results]
            pss.value = _median(pss.samples)
            pss.details["helper processes"] = max(r.helpers for r in results)
        figures += [cpu, pss]
    return figures


def run_kill(args: argparse.Namespace, sups: list[Supervisor]) -> list[Figure]:
    figures = []
    for sup in sups:
        log(f"kill: {sup.name}")
        results, error = sample(sup.name, args.repeat, lambda s=sup: lifecycle.sigkill_survivors(s))
        fig = Figure("survivors", sup.name, error=error)
        if not error:
            fig.samples = [float(r.survivors) for r in results]
            fig.value = _median(fig.samples)
            fig.details["of"] = f"{max(r.before for r in results)} processes before the kill"
        figures.append(fig)
    return figures


RUNNERS: dict[str, Callable[[argparse.Namespace, list[Supervisor]], list[Figure]]] = {
    "throughput": run_throughput,
    "start": run_start,
    "stubborn": run_stubborn,
    "idle": run_idle,
    "kill": run_kill,
}


# --- command line ------------------------------------------------------------------------


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", default=",".join(GROUPS), help=f"groups: {','.join(GROUPS)}")
    parser.add_argument("--supervisors", default=",".join(ALL_SUPERVISORS))
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure (median)")
    parser.add_argument("--quick", action="store_true", help="1 run, short floods and idle")
    parser.add_argument(
        "--lines", type=int, default=None, help="lines per producer (default: sized per subject)"
    )
    parser.add_argument("--seconds", type=float, default=3.0, help="target length of a flood run")
    parser.add_argument("--idle-seconds", type=float, default=10.0)
    parser.add_argument("--settle", type=float, default=1.0, help="wait before idle window")
    parser.add_argument("--count", type=int, default=50, help="processes to start and stop")
    parser.add_argument(
        "--pipe-size",
        type=int,
        default=1 << 20,
        help="size of the pipe the consumer reads (raw and supervisor alike); 0: kernel default",
    )
    parser.add_argument("--json", metavar="PATH", help="also write results as JSON ('-': stdout)")
    args = parser.parse_args(argv)
    if args.quick:
        args.repeat, args.seconds, args.idle_seconds, args.settle = 1, 0.5, 1.0, 0.3
    groups = [g for g in args.only.split(",") if g]
    unknown = set(groups) - set(GROUPS)
    names = [n for n in args.supervisors.split(",") if n]
    unknown |= set(names) - set(ALL_SUPERVISORS)
    if unknown:
        parser.error(f"unknown: {', '.join(sorted(unknown))}")
    args.groups, args.names = groups, names
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    become_subreaper()
    available, skipped = [], {}
    for sup in supervisors(args.names):
        if sup.program is None:
            skipped[sup.name] = sup.missing_reason
            log(f"{sup.name}: skipped, {sup.missing_reason}")
        else:
            available.append(sup)
    header: dict[str, Any] = dict(machine())
    for sup in available:
        prog = sup.program or []
        header[sup.name] = f"{program_version([*prog, '--version'])} ({' '.join(prog)})"
    for name, reason in skipped.items():
        header[name] = f"skipped: {reason}"
    if "throughput" in args.groups:
        header["producer alone"] = f"{throughput.producer_speed() / 1e6:.0f} M lines/s to /dev/null"
        header["consumer pipe"] = f"{args.pipe_size} bytes" if args.pipe_size else "kernel default"
    header["runs per figure"] = f"median of {args.repeat}"
    began = time.monotonic()
    figures: list[Figure] = []
    for group in args.groups:
        figures += RUNNERS[group](args, available)
    header["wall time"] = f"{time.monotonic() - began:.0f} s"
    if args.json != "-":
        print_table(figures, header)
    if args.json:
        text = to_json(figures, header)
        if args.json == "-":
            print(text)
        else:
            Path(args.json).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
