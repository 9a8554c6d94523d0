"""Procfile parsing: honcho 2.0's results for valid files, one-line errors for the rest."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from honcho.environ import parse_procfile as honcho_parse
from hypothesis import given
from hypothesis import strategies as st

from keelrun.errors import InputError, InputErrors
from keelrun.procfile import ProcfileEntry, load_procfile, parse_procfile


def pairs(text: str) -> list[tuple[str, str]]:
    return [(e.name, e.command) for e in parse_procfile(text, "Procfile")]


def honcho_pairs(text: str) -> list[tuple[str, str]]:
    return list(honcho_parse(text).processes.items())


VALID = {
    "simple": "web: python app.py\nworker: python worker.py\n",
    "no final newline": "web: python app.py",
    "comments and blanks": "# comment\n\nweb: a\n   # indented comment\n\t\nworker: b\n",
    "crlf": "web: a --flag\r\nworker: b\r\n",
    "lone cr": "web: a\rworker: b\r",
    "tabs": "web:\tpython\tapp.py\t\n",
    "no blank after colon": "web:python app.py\n",
    "many blanks after colon": "web:      python app.py\n",
    "colons in command": "web: gunicorn -b 0.0.0.0:$PORT app:main\n",
    "url in command": "web: curl http://x:8000/a:b\n",
    "dash and underscore": "web-1: a\nslow_worker: b\n-x_: c\n_: d\n9: e\n",
    "trailing blanks kept": "web: python app.py   \nworker: b\t\n",
    "hash in command": "web: echo '#not a comment' # shell comment\n",
    "unicode command": "web: echo héllo ☃\n",
    "only one type": "release: ./migrate\n",
    "shell syntax": "web: cd src && exec ./run $PORT 2>&1 | tee log\n",
    "form feed separates lines": "web: a\x0cworker: b\n",
    "quotes": "web: sh -c 'echo \"$PORT\"'\n",
}


@pytest.mark.parametrize("text", list(VALID.values()), ids=list(VALID))
def test_valid_files_match_honcho(text: str) -> None:
    assert pairs(text) == honcho_pairs(text)


def test_entries_carry_their_line() -> None:
    text = "# c\n\nweb: a\r\nworker: b\n"
    assert parse_procfile(text, "P") == [
        ProcfileEntry("web", "a", 3),
        ProcfileEntry("worker", "b", 4),
    ]


def test_bom_is_ignored() -> None:
    text = "web: a\nworker: b\n"
    assert pairs("\ufeff" + text) == honcho_pairs(text)


# Names as honcho's grammar defines them; commands of any text without a line
# break that is not blank once leading blanks are gone.
names = st.from_regex(r"[A-Za-z0-9_-]{1,12}", fullmatch=True)
commands = st.text(min_size=1, max_size=30).filter(
    lambda c: len(c.splitlines()) == 1 and c.splitlines()[0] == c and c.strip() != ""
)
blank = st.text(alphabet=" \t", max_size=4)
comment = st.builds(lambda b, t: f"{b}#{t}", blank, st.text(alphabet="abc #:", max_size=10))
separator = st.text(alphabet=" \t", max_size=3)


@st.composite
def procfiles(draw: st.DrawFn) -> str:
    types = draw(st.lists(names, min_size=1, max_size=6, unique=True))
    lines: list[str] = []
    for name in types:
        lines.extend(draw(st.lists(st.one_of(blank, comment), max_size=2)))
        lines.append(f"{name}:{draw(separator)}{draw(commands)}")
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    end = draw(st.sampled_from(["", newline]))
    return newline.join(lines) + end


@given(procfiles())
def test_generated_procfiles_match_honcho(text: str) -> None:
    assert pairs(text) == honcho_pairs(text)


ERRORS = [
    ("web: a\nweb: b\n", 'Procfile:2: duplicate process type "web" (first defined on line 1)'),
    (
        "# c\nweb: a\nworker: b\nweb: c\n",
        'Procfile:4: duplicate process type "web" (first defined on line 2)',
    ),
    (" web: a\n", "Procfile:1: a process type must start at the beginning of the line"),
    ("\tweb: a\n", "Procfile:1: a process type must start at the beginning of the line"),
    (
        "web.x: a\n",
        "Procfile:1: invalid process type name \"web.x\" (letters, digits, '_' and '-' only)",
    ),
    ("web : a\n", 'Procfile:1: blank between the process type "web" and ":"; remove it ("web:")'),
    ("w-1\t: a\n", 'Procfile:1: blank between the process type "w-1" and ":"; remove it ("w-1:")'),
    (
        "we b: a\n",
        "Procfile:1: invalid process type name \"we b\" (letters, digits, '_' and '-' only)",
    ),
    ("garbage here\n", 'Procfile:1: expected `name: command`, got "garbage here"'),
    ("web:\n", 'Procfile:1: empty command for process type "web"'),
    ("web:   \t\n", 'Procfile:1: empty command for process type "web"'),
    (": a\n", 'Procfile:1: missing process type name before ":"'),
    ("", "Procfile: no process type defined (expected lines `name: command`)"),
    ("# only\n\n", "Procfile: no process type defined (expected lines `name: command`)"),
    (
        "x" * 60 + "\n",
        'Procfile:1: expected `name: command`, got "' + "x" * 37 + '..."',
    ),
]


@pytest.mark.parametrize(("text", "message"), ERRORS)
def test_each_error_is_one_exact_line(text: str, message: str) -> None:
    with pytest.raises(InputErrors) as e:
        parse_procfile(text, "Procfile")
    assert e.value.lines() == [message]


def test_every_error_is_reported() -> None:
    text = "web: a\nbad line\nweb: b\n\nw.x: c\nok: d\nempty:\n"
    with pytest.raises(InputErrors) as e:
        parse_procfile(text, "Procfile")
    assert [err.where for err in e.value.errors] == [
        "Procfile:2",
        "Procfile:3",
        "Procfile:5",
        "Procfile:7",
    ]


def test_load_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError) as e:
        load_procfile(tmp_path / "Procfile", "Procfile")
    assert str(e.value) == "Procfile: no such file"


def test_load_directory(tmp_path: Path) -> None:
    with pytest.raises(InputError) as e:
        load_procfile(tmp_path, "Procfile")
    assert str(e.value) == "Procfile: is a directory, not a file"


def test_load_invalid_utf8(tmp_path: Path) -> None:
    path = tmp_path / "Procfile"
    path.write_bytes(b"web: a\nworker: caf\xe9\n")
    with pytest.raises(InputError) as e:
        load_procfile(path, "Procfile")
    assert str(e.value) == "Procfile:2: not valid UTF-8"


def test_load_unreadable(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        path = tmp_path / "Procfile"
        path.write_text("web: a\n")
        path.chmod(0)
        with pytest.raises(InputError) as e:
            load_procfile(path, "Procfile")
        assert str(e.value) == "Procfile: cannot read: Permission denied"
        return
    # Root reads any file, so the check runs as nobody (uid 65534) on a file of
    # root's that nobody may not read.
    system_python = shutil.which("python3", path="/usr/bin:/bin")
    if shutil.which("setpriv") is None or system_python is None:
        pytest.skip("needs setpriv and a system python3 to run as a second user")
    shared = Path(tempfile.mkdtemp(prefix="keelrun-unreadable-"))
    try:
        shared.chmod(0o755)
        (shared / "Procfile").write_text("web: a\n")
        (shared / "Procfile").chmod(0o600)
        code = (
            "import sys; sys.path.insert(0, sys.argv[1])\n"
            "from keelrun.procfile import load_procfile\n"
            "from keelrun.errors import InputError\n"
            "try: load_procfile(sys.argv[2], 'Procfile')\n"
            "except InputError as e: print(e)\n"
        )
        repo = str(Path(__file__).resolve().parent.parent)
        out = subprocess.run(
            [
                "setpriv",
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                system_python,
                "-S",
                "-c",
                code,
                repo,
                str(shared / "Procfile"),
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
        if "No module named" in out.stderr or "Permission denied: '" in out.stderr:
            pytest.skip(f"the repository is not readable by uid 65534: {out.stderr.strip()}")
        assert out.stdout.strip() == "Procfile: cannot read: Permission denied", out
    finally:
        shutil.rmtree(shared)


def test_load_reads_file(tmp_path: Path) -> None:
    path = tmp_path / "Procfile"
    path.write_bytes(b"\xef\xbb\xbfweb: caf\xc3\xa9\r\n")
    assert load_procfile(path) == [ProcfileEntry("web", "café", 1)]


CONTINUED = (
    'ends in "\\" and continues on {}, but a Procfile entry is one line: '
    "join them into one (or move the command into a script)"
)


@pytest.mark.parametrize(
    ("text", "messages"),
    [
        (
            "web: gunicorn app \\\n  --workers 4 \\\n  --bind 0.0.0.0:$PORT\nworker: w\n",
            ['Procfile:1: the command of "web" ' + CONTINUED.format("lines 2-3")],
        ),
        (
            "# c\nworker: celery \\\n    -A app worker\n\nweb: a\nweb: b\n",
            [
                'Procfile:2: the command of "worker" ' + CONTINUED.format("line 3"),
                'Procfile:6: duplicate process type "web" (first defined on line 5)',
            ],
        ),
        (
            "web : a \\\n  b\n",
            [
                'Procfile:1: blank between the process type "web" and ":"; remove it ("web:")',
                "Procfile:1: this line " + CONTINUED.format("line 2"),
            ],
        ),
        # The continuation ends at a line without "\\"; what follows is read again.
        (
            "web: a \\\n  b\n  c\n",
            [
                'Procfile:1: the command of "web" ' + CONTINUED.format("line 2"),
                'Procfile:3: expected `name: command`, got "c"',
            ],
        ),
    ],
    ids=["three lines", "with other errors", "bad first line", "ends without backslash"],
)
def test_line_continuation_is_one_error_at_its_first_line(text: str, messages: list[str]) -> None:
    with pytest.raises(InputErrors) as e:
        parse_procfile(text, "Procfile")
    assert e.value.lines() == messages


@pytest.mark.parametrize(
    "text",
    [
        "web: echo a \\\nworker: b\n",
        "web: echo a \\\n\nworker: b\n",
        "web: echo a \\\n# c\nworker: b\n",
        "web: echo a \\",
        "web: echo a \\  \n",
    ],
)
def test_a_trailing_backslash_before_an_entry_is_honchos_pair(text: str) -> None:
    assert pairs(text) == honcho_pairs(text)
