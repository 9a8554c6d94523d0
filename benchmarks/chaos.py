"""Chaos and soak run: hostile children and a busy client against one `keelrun start`.

    python benchmarks/chaos.py                 # 60 s
    python benchmarks/chaos.py --seconds 10    # CI smoke
    python benchmarks/chaos.py --minutes 10    # soak

The formation (benchmarks/chaos_child.py) floods output, writes lines in
pieces and lines over 1 MiB, crashes, exits cleanly, ignores SIGTERM, leaves
double-forked orphans and setsid daemons. Meanwhile a client scales, restarts,
stops, signals and lists them over the control socket (raw requests, and now
and then the `keelrun scale` command). At the end keelrun gets SIGTERM.

Invariants (exit status 1 if any fails): every line a child finished writing
is delivered intact, once, in order; no zombie child of keelrun lingers; no
process outlives keelrun; every control request is answered; keelrun exits 0;
its fds stay bounded and its peak RSS does not grow from the first half of the
run to the second.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
CHILD = HERE / "chaos_child.py"
MARK_VAR = "CHAOS_MARK"
MAX_LINE = 1024 * 1024

# type -> (initial count, most the client scales it to)
TYPES: dict[str, tuple[int, int]] = {
    "flood": (2, 3),
    "steady": (3, 5),
    "partial": (2, 3),
    "huge": (1, 2),
    "stubborn": (1, 2),
    "orphans": (1, 2),
    "daemon": (1, 2),
}
CONFIG = """\
timeout = 3
restart = "always"
max_restarts = 1000000

[processes.stubborn]
grace = 0.5
"""
SAMPLE_EVERY = 0.2
STUCK_ZOMBIE = 2.0  # a zombie child of keelrun seen for this long was not reaped
RSS_SLACK = 16 * 1024  # KiB the second half's peak RSS may exceed the first half's by


# ---------------------------------------------------------------- consumer


@dataclass
class RunLines:
    last: int = 0  # highest sequence number delivered
    good: int = 0  # lines delivered intact
    bad_tail: bool = False  # a broken line was seen after `last`


@dataclass
class Consumer:
    """Parses keelrun's text output and checks every counted line."""

    runs: dict[str, RunLines] = field(default_factory=dict)
    current: dict[str, str] = field(default_factory=dict)  # instance name -> its latest run
    pending: dict[str, list[Any]] = field(default_factory=dict)  # huge line being assembled
    lines: int = 0
    corrupt: int = 0
    out_of_order: int = 0
    bad_pieces: int = 0
    events: int = 0
    extra: int = 0  # orphan and daemon lines
    samples: list[str] = field(default_factory=list)  # a few broken lines, for the report
    tracebacks: int = 0

    def feed(self, raw: bytes) -> None:
        self.lines += 1
        text_at = raw.find(b" | ")
        if text_at < 0:
            self._broken("?", raw)
            return
        name = raw[:text_at].strip().decode(errors="replace")
        text = raw[text_at + 3 :].rstrip(b"\n")
        if name == "keelrun":
            self.events += 1
            if b"Traceback" in text:
                self.tracebacks += 1
            return
        held = self.pending.get(name)
        if held is not None:
            self._piece(name, held, text)
        elif text.startswith(b"C "):
            parts = text.split(b" ", 4)
            if len(parts) == 5 and _crc_ok(parts[3], parts[4]):
                self._counted(name, parts[1].decode(), int(parts[2]))
            else:
                self._broken(name, text)
        elif text.startswith(b"H "):
            parts = text.split(b" ", 5)
            try:
                total = int(parts[3])
            except (IndexError, ValueError):
                self._broken(name, text)
                return
            held = [parts[1].decode(), int(parts[2]), total, parts[4], [text]]
            if len(text) >= total or len(text) != MAX_LINE:
                self.pending.pop(name, None)
                self._huge_done(name, held)
            else:
                self.pending[name] = held
        elif re.fullmatch(rb"[OD] \d+ (orphan done|daemon up)", text):
            self.extra += 1
        else:
            self._broken(name, text)

    def _piece(self, name: str, held: list[Any], text: bytes) -> None:
        pieces: list[bytes] = held[4]
        pieces.append(text)
        got = sum(map(len, pieces))
        if got >= held[2] or len(text) != MAX_LINE:
            del self.pending[name]
            self._huge_done(name, held)

    def _huge_done(self, name: str, held: list[Any]) -> None:
        run, seq, total, crc, pieces = held
        line = b"".join(pieces)
        if any(len(p) != MAX_LINE for p in pieces[:-1]) or not pieces[-1]:
            self.bad_pieces += 1
        body = line.split(b" ", 5)[5] if line.count(b" ", 0, 200) >= 5 else b""
        if len(line) == total and _crc_ok(crc, body):
            self._counted(name, run, seq)
        else:
            self._broken(name, line[:200])

    def _counted(self, name: str, run: str, seq: int) -> None:
        self.current[name] = run
        state = self.runs.get(run)
        if state is None:
            state = self.runs[run] = RunLines()
        if state.bad_tail:
            self.corrupt += 1  # a broken line that was not the last of its run
            state.bad_tail = False
        if seq != state.last + 1:
            self.out_of_order += 1
        state.last = max(state.last, seq)
        state.good += 1

    def _broken(self, name: str, text: bytes) -> None:
        # Allowed only as the very last line of a run killed mid-write; judged at the end.
        run = self.current.get(name)
        if run is None or self.runs[run].bad_tail:
            self.corrupt += 1
        else:
            self.runs[run].bad_tail = True
        if len(self.samples) < 5:
            self.samples.append(f"{name}: {text[:120]!r}")


def _crc_ok(crc: bytes, payload: bytes) -> bool:
    try:
        return int(crc, 16) == zlib.crc32(payload)
    except ValueError:
        return False


# ---------------------------------------------------------------- sampling


@dataclass
class Sample:
    t: float
    rss_kib: int
    fds: int


class Sampler:
    """keelrun's RSS and fds, and zombies among its children, every SAMPLE_EVERY."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.samples: list[Sample] = []
        self.zombie_first: dict[int, float] = {}
        self.zombies_seen = 0  # sightings of distinct zombies (usually reaped at once)
        self.stuck: set[int] = set()
        self.done = threading.Event()

    def run(self) -> None:
        start = time.monotonic()
        while not self.done.wait(SAMPLE_EVERY):
            now = time.monotonic()
            try:
                with open(f"/proc/{self.pid}/status") as f:
                    m = re.search(r"^VmRSS:\s+(\d+)", f.read(), re.M)
                fds = len(os.listdir(f"/proc/{self.pid}/fd"))
            except OSError:
                return
            self.samples.append(Sample(now - start, int(m.group(1)) if m else 0, fds))
            zombies = set(_zombie_children(self.pid))
            for pid in zombies:
                if pid not in self.zombie_first:
                    self.zombie_first[pid] = now
                    self.zombies_seen += 1
                elif now - self.zombie_first[pid] >= STUCK_ZOMBIE:
                    self.stuck.add(pid)
            for pid in list(self.zombie_first):
                if pid not in zombies:
                    del self.zombie_first[pid]


def _zombie_children(parent: int) -> list[int]:
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                data = f.read()
        except OSError:
            continue
        fields = data[data.rfind(b")") + 2 :].split(b" ", 2)
        if fields[0] == b"Z" and int(fields[1]) == parent:
            found.append(int(name))
    return found


def marked_pids(marker: str) -> list[int]:
    needle = f"{MARK_VAR}={marker}".encode()
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as f:
                if needle not in f.read().split(b"\0"):
                    continue
            with open(f"/proc/{name}/stat", "rb") as f:
                data = f.read()
        except OSError:
            continue
        if data[data.rfind(b")") + 2 : data.rfind(b")") + 3] != b"Z":
            found.append(int(name))
    return found


# ------------------------------------------------------------------ client


class Client:
    """Random control requests over the socket; counts what was sent and answered."""

    def __init__(self, app: Path, env: dict[str, str], rng: random.Random) -> None:
        self.sock_path = str(app / ".keelrun.sock")
        self.app = app
        self.env = env
        self.rng = rng
        self.sent = 0
        self.answered = 0
        self.errors: dict[str, int] = {}
        self.by_cmd: dict[str, int] = {}
        self.names: list[str] = []
        self.done = threading.Event()
        self.failures: list[str] = []

    def request(self, cmd: str, args: dict[str, Any]) -> dict[str, Any] | None:
        self.sent += 1
        self.by_cmd[cmd] = self.by_cmd.get(cmd, 0) + 1
        first: dict[str, Any] | None = None
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(15)
                s.connect(self.sock_path)
                s.sendall(json.dumps({"v": 1, "cmd": cmd, "args": args}).encode() + b"\n")
                buf = b""
                while True:
                    data = s.recv(1 << 16)
                    if not data:
                        break
                    buf += data
                    if first is None and b"\n" in buf:
                        first = json.loads(buf.split(b"\n", 1)[0])
                        if cmd != "logs":
                            break
        except (OSError, ValueError) as e:
            self._fail(f"{cmd}: {e}")
            return None
        if first is None or "ok" not in first:
            self._fail(f"{cmd}: no reply")
            return None
        self.answered += 1
        if not first["ok"]:
            key = re.sub(r'"[^"]*"', '"…"', str(first.get("error")))[:60]
            self.errors[key] = self.errors.get(key, 0) + 1
        return first

    def cli(self, *args: str) -> None:
        self.sent += 1
        self.by_cmd["cli " + args[0]] = self.by_cmd.get("cli " + args[0], 0) + 1
        try:
            done = subprocess.run(
                [sys.executable, "-m", "keelrun", *args],
                cwd=self.app,
                env=self.env,
                capture_output=True,
                text=True,
                timeout=30,
            )
        except subprocess.TimeoutExpired:
            self._fail(f"keelrun {' '.join(args)}: timed out")
            return
        if done.returncode in (0, 2) and "Traceback" not in done.stderr:
            self.answered += 1
        else:
            self._fail(f"keelrun {' '.join(args)}: exit {done.returncode} {done.stderr[-200:]}")

    def _fail(self, what: str) -> None:
        if len(self.failures) < 10:
            self.failures.append(what)

    def pick_name(self) -> str:
        if self.names and self.rng.random() < 0.6:
            return self.rng.choice(self.names)
        return self.rng.choice(list(TYPES))

    def run(self) -> None:
        rng = self.rng
        while not self.done.wait(rng.uniform(0.01, 0.12)):
            roll = rng.random()
            t = rng.choice(list(TYPES))
            if roll < 0.22:
                self.request("scale", {"changes": [f"{t}={rng.randint(0, TYPES[t][1])}"]})
            elif roll < 0.30:
                step = rng.choice(("+1", "-1"))
                reply = self.request("ps", {})
                count = sum(1 for r in (reply or {}).get("result", []) if r["type"] == t)
                if 0 <= count + int(step) <= TYPES[t][1]:
                    self.request("scale", {"changes": [f"{t}={step}"]})
            elif roll < 0.44:
                self.request("restart", {"names": [self.pick_name()]})
            elif roll < 0.45:
                self.request("restart", {"names": []})
            elif roll < 0.58:
                sig = rng.choice(("USR1", "USR2", "TERM", "SIGUSR1", "10"))
                self.request("signal", {"signal": sig, "names": [self.pick_name()]})
            elif roll < 0.63:
                self.request("stop", {"names": [self.pick_name()]})
            elif roll < 0.80:
                reply = self.request("ps", {})
                if reply and reply.get("ok"):
                    self.names = [r["name"] for r in reply["result"]]
            elif roll < 0.87:
                self.request("logs", {"names": [self.pick_name()], "lines": rng.randint(0, 50)})
            elif roll < 0.93:
                self.request("ping", {})
            elif roll < 0.95:
                self.request("reload", {})
            elif roll < 0.97:
                self.request("bogus", {"x": rng.random()})  # an error reply, counted too
            else:
                self.cli("scale", f"{t}={rng.randint(0, TYPES[t][1])}")


# ------------------------------------------------------------------ the run


def write_app(root: Path) -> None:
    lines = [f"{t}: exec {sys.executable} {CHILD} {t}" for t in TYPES]
    (root / "Procfile").write_text("\n".join(lines) + "\n")
    (root / "keelrun.toml").write_text(CONFIG)


def read_records(rec: Path) -> dict[str, tuple[int, int, int]]:
    records = {}
    for path in rec.iterdir():
        fields = path.read_bytes().split()
        if len(fields) == 3:
            records[path.name] = (int(fields[0]), int(fields[1]), int(fields[2]))
        else:  # created but not yet written when killed
            records[path.name] = (0, 0, 0)
    return records


def chaos(seconds: float, seed: int, keep: bool) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="keelrun-chaos-"))
    app, rec = tmp / "app", tmp / "rec"
    app.mkdir()
    rec.mkdir()
    write_app(app)
    marker = uuid.uuid4().hex
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("KEELRUN_") and k not in ("PORT", "PS", "DYNO", "NO_COLOR")
    }
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    client_env = dict(env)
    env.update({MARK_VAR: marker, "CHAOS_REC": str(rec)})
    formation = ",".join(f"{t}={n}" for t, (n, _) in TYPES.items())

    proc = subprocess.Popen(
        [sys.executable, "-m", "keelrun", "start", "--no-timestamp", "--no-color", "-m", formation],
        cwd=app,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    consumer = Consumer()
    stderr: list[bytes] = []

    def consume() -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            consumer.feed(raw)

    threads = [
        threading.Thread(target=consume, daemon=True),
        threading.Thread(target=lambda: stderr.append(proc.stderr.read()), daemon=True),  # type: ignore[union-attr]
    ]
    for t in threads:
        t.start()
    sampler = Sampler(proc.pid)
    client = Client(app, client_env, random.Random(seed))
    workers = [threading.Thread(target=sampler.run), threading.Thread(target=client.run)]
    began = time.monotonic()
    # The client starts once the socket answers.
    while time.monotonic() - began < 10 and not os.path.exists(app / ".keelrun.sock"):
        time.sleep(0.02)
    for w in workers:
        w.start()
    _progress(seconds, began, sampler, consumer, client)
    client.done.set()
    workers[1].join(60)

    # Stop keelrun as an orchestrator would.
    stop_began = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    try:
        status: int | None = proc.wait(30)
    except subprocess.TimeoutExpired:
        status = None
    stop_s = time.monotonic() - stop_began
    survivors = marked_pids(marker)
    sampler.done.set()
    workers[0].join(10)
    if status is None:
        proc.kill()
        proc.wait(10)
    for pid in marked_pids(marker):
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    for t in threads:
        t.join(30)

    result = account(consumer, read_records(rec))
    samples = sampler.samples
    half = (samples[-1].t / 2) if samples else 0.0
    first = [s for s in samples if s.t <= half] or samples[:1]
    second = [s for s in samples if s.t > half] or samples[-1:]
    max_instances = sum(m for _, m in TYPES.values())
    result.update(
        seconds=round(time.monotonic() - began, 1),
        seed=seed,
        zombies_seen=sampler.zombies_seen,
        zombies_stuck=len(sampler.stuck),
        survivors=len(survivors),
        rss_peak_kib=[max(s.rss_kib for s in first), max(s.rss_kib for s in second)],
        fds_peak=[max(s.fds for s in first), max(s.fds for s in second)],
        fd_bound=2 * max_instances + 64 + 32,
        requests_sent=client.sent,
        requests_answered=client.answered,
        requests_by_cmd=client.by_cmd,
        error_replies=client.errors,
        request_failures=client.failures,
        exit_status=status,
        stop_seconds=round(stop_s, 2),
        output_lines=consumer.lines,
        keelrun_events=consumer.events,
        orphan_daemon_lines=consumer.extra,
        tracebacks=consumer.tracebacks + sum(b"Traceback" in e for e in stderr),
        stderr_tail=b"".join(stderr)[-500:].decode(errors="replace"),
        minute_peaks=_minute_peaks(samples),
        tmp=str(tmp) if keep else None,
    )
    result["failures"] = invariants(result)
    if not keep:
        shutil.rmtree(tmp, ignore_errors=True)
    return result


def account(consumer: Consumer, records: dict[str, tuple[int, int, int]]) -> dict[str, Any]:
    written = delivered = inflight_delivered = 0
    mismatched: list[str] = []
    corrupt = consumer.corrupt
    unrecorded = [r for r in consumer.runs if r not in records]
    finished = killed = 0
    for run, (committed, inflight, done) in records.items():
        seen = consumer.runs.get(run, RunLines())
        written += committed
        delivered += min(seen.good, committed)
        if done:
            finished += 1
            if seen.good != committed or seen.last != committed:
                mismatched.append(f"{run}: wrote {committed}, delivered {seen.good}")
            if seen.bad_tail:
                corrupt += 1
        else:
            killed += 1
            inflight_delivered += max(0, seen.good - committed)
            if not committed <= seen.good == seen.last <= inflight:
                mismatched.append(f"{run} (killed): wrote {committed}-{inflight}, got {seen.good}")
    return {
        "incarnations": len(records),
        "finished_incarnations": finished,
        "killed_incarnations": killed,
        "lines_written": written,
        "lines_delivered_intact": delivered,
        "inflight_lines_of_killed": inflight_delivered,
        "lines_corrupt": corrupt,
        "lines_out_of_order": consumer.out_of_order,
        "bad_pieces": consumer.bad_pieces,
        "count_mismatches": mismatched[:10],
        "count_mismatch_total": len(mismatched),
        "unrecorded_runs": unrecorded[:10],
        "broken_line_samples": consumer.samples,
    }


def invariants(r: dict[str, Any]) -> list[str]:
    checks = [
        (r["lines_written"] == r["lines_delivered_intact"], "lines written != delivered"),
        (r["count_mismatch_total"] == 0, "per-process line counts differ"),
        (r["lines_corrupt"] == 0, "corrupt or mixed lines"),
        (r["lines_out_of_order"] == 0, "lines lost, repeated or out of order"),
        (r["bad_pieces"] == 0, "a long line was not cut in 1 MiB pieces"),
        (not r["unrecorded_runs"], "lines from a process that never started its record"),
        (r["zombies_stuck"] == 0, f"zombies not reaped within {STUCK_ZOMBIE:g}s"),
        (r["survivors"] == 0, "processes survived the stop"),
        (r["requests_sent"] == r["requests_answered"], "control requests left unanswered"),
        (r["exit_status"] == 0, "keelrun's exit status after SIGTERM is not 0"),
        (r["tracebacks"] == 0, "a traceback reached keelrun's output"),
        (r["fds_peak"][1] <= r["fd_bound"], "keelrun's fd count exceeds its bound"),
        (
            r["rss_peak_kib"][1] <= r["rss_peak_kib"][0] * 1.25 + RSS_SLACK,
            "keelrun's peak RSS grew from the first half to the second",
        ),
    ]
    return [why for ok, why in checks if not ok]


def _minute_peaks(samples: list[Sample]) -> list[tuple[int, int, int]]:
    """(minute, peak RSS KiB, peak fds) per minute of the run."""
    peaks: dict[int, tuple[int, int]] = {}
    for s in samples:
        m = int(s.t // 60)
        rss, fds = peaks.get(m, (0, 0))
        peaks[m] = (max(rss, s.rss_kib), max(fds, s.fds))
    return [(m, rss, fds) for m, (rss, fds) in sorted(peaks.items())]


def _progress(
    seconds: float, began: float, sampler: Sampler, consumer: Consumer, client: Client
) -> None:
    """Wait out the run; on long runs, a line a minute shows it is alive."""
    end = began + seconds
    next_note = began + 60
    while (now := time.monotonic()) < end:
        time.sleep(min(1.0, end - now))
        if seconds >= 120 and time.monotonic() >= next_note:
            next_note += 60
            last = sampler.samples[-1] if sampler.samples else Sample(0, 0, 0)
            print(
                f"[{(time.monotonic() - began) / 60:.0f} min] rss {last.rss_kib} KiB, "
                f"fds {last.fds}, lines {consumer.lines}, requests {client.sent}",
                file=sys.stderr,
                flush=True,
            )


def report(r: dict[str, Any]) -> str:
    mib = 1024
    rows = [
        ("run", f"{r['seconds']} s, seed {r['seed']}"),
        ("incarnations", f"{r['incarnations']} ({r['killed_incarnations']} killed mid-run)"),
        ("lines written", f"{r['lines_written']}"),
        ("lines delivered intact", f"{r['lines_delivered_intact']}"),
        ("  + in-flight lines of killed", f"{r['inflight_lines_of_killed']}"),
        ("corrupt / out of order", f"{r['lines_corrupt']} / {r['lines_out_of_order']}"),
        ("orphan+daemon lines", f"{r['orphan_daemon_lines']}"),
        ("zombies seen / stuck", f"{r['zombies_seen']} / {r['zombies_stuck']}"),
        ("survivors after stop", f"{r['survivors']}"),
        (
            "peak RSS 1st / 2nd half",
            f"{r['rss_peak_kib'][0] / mib:.1f} / {r['rss_peak_kib'][1] / mib:.1f} MiB",
        ),
        ("peak fds 1st / 2nd half", f"{r['fds_peak'][0]} / {r['fds_peak'][1]}"),
        ("requests answered / sent", f"{r['requests_answered']} / {r['requests_sent']}"),
        ("keelrun exit status", f"{r['exit_status']} (stop took {r['stop_seconds']} s)"),
    ]
    width = max(len(k) for k, _ in rows)
    out = [f"{k.ljust(width)}  {v}" for k, v in rows]
    if len(r["minute_peaks"]) > 1:
        out.append(
            "per minute (peak RSS MiB, peak fds): "
            + ", ".join(f"{m}:{rss / mib:.1f}/{fds}" for m, rss, fds in r["minute_peaks"])
        )
    for key in ("count_mismatches", "broken_line_samples", "request_failures", "unrecorded_runs"):
        if r[key]:
            out.append(f"{key}: {r[key]}")
    if r["failures"]:
        out.append("FAILED: " + "; ".join(r["failures"]))
        if r["stderr_tail"]:
            out.append("keelrun stderr: " + r["stderr_tail"])
    else:
        out.append("OK: every invariant holds")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--minutes", type=float, help="soak: run this many minutes instead")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    parser.add_argument("--keep", action="store_true", help="keep the temporary app folder")
    args = parser.parse_args(argv)
    seconds = args.minutes * 60 if args.minutes else args.seconds
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    result = chaos(seconds, seed, args.keep)
    print(report(result), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 1 if result["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
