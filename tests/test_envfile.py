""".env files: python-dotenv's grammar, errors with file and line, precedence."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from dotenv import dotenv_values

from keelrun.envfile import Binding, EnvFile, merge, parse_env_text, read_env_file
from keelrun.errors import InputError, InputErrors


def values(text: str, environ: dict[str, str] | None = None, override: bool = False):
    f = EnvFile(Path(".env"), ".env", parse_env_text(text, ".env"))
    return merge([f], environ or {}, override).env


VALID = [
    "A=1\nB=two words\n",
    "export A=1\n",
    "A='single $X'\nB=\"double\\nline\"\n",
    'A="multi\nline"\nB=2\n',
    "# comment\n\nA=1 # trailing comment\n",
    "A=1\r\nB=2\r\n",
    "A=\nB=''\n",
    "A=x\nB=${A}-y\nC=${MISSING:-dflt}\nD=${MISSING}\n",
    "A = spaced\n",
]


@pytest.mark.parametrize("text", VALID)
def test_values_match_dotenv(text: str) -> None:
    # Keys unknown to os.environ, so dotenv's own expansion sees the same scope.
    assert values(text) == dotenv_values(stream=io.StringIO(text))


def test_key_without_value_sets_nothing() -> None:
    assert parse_env_text("A\nB=1\n", ".env") == (Binding("A", None, 1), Binding("B", "1", 2))
    assert values("A\nB=1\n") == {"B": "1"}


@pytest.mark.parametrize(
    ("text", "messages"),
    [
        ("A=1\nfoo bar\n", [".env:2: cannot parse this line (expected KEY=value)"]),
        ("A=1\n\n\n\nfoo bar\n", [".env:5: cannot parse this line (expected KEY=value)"]),
        (
            'A=1\nSECRET="hunter2\nB=2\n',
            [".env:2: cannot parse the value of SECRET (unterminated or misplaced quote)"],
        ),
        (
            "x y\nOK=1\n\r\nz w\n",
            [
                ".env:1: cannot parse this line (expected KEY=value)",
                ".env:4: cannot parse this line (expected KEY=value)",
            ],
        ),
    ],
)
def test_unparseable_lines_are_errors(text: str, messages: list[str]) -> None:
    with pytest.raises(InputErrors) as e:
        parse_env_text(text, ".env")
    assert e.value.lines() == messages
    assert "hunter2" not in " ".join(e.value.lines())


def test_real_environment_wins_by_default() -> None:
    assert values("A=file\nB=file\n", {"A": "real"}) == {"A": "real", "B": "file"}


def test_override_lets_files_win() -> None:
    assert values("A=file\n", {"A": "real"}, override=True) == {"A": "file"}


def test_expansion_follows_precedence() -> None:
    text = "A=file\nB=${A}\n"
    assert values(text, {"A": "real"})["B"] == "real"
    assert values(text, {"A": "real"}, override=True)["B"] == "file"
    assert values("P=${PATH_X}:/opt\n", {"PATH_X": "/bin"})["P"] == "/bin:/opt"


def test_later_file_wins_and_sees_earlier_values() -> None:
    first = EnvFile(Path("a"), "a", parse_env_text("A=1\nB=1\n", "a"))
    second = EnvFile(Path("b"), "b", parse_env_text("B=2\nC=${A}${B}\n", "b"))
    merged = merge([first, second], {"R": "r"})
    assert merged.env == {"A": "1", "B": "2", "C": "12", "R": "r"}
    assert merged.sources == {"A": "a:1", "B": "b:1", "C": "b:2", "R": "environment"}


def test_read_env_file(tmp_path: Path) -> None:
    path = tmp_path / "x.env"
    path.write_text("\ufeffA=1\n")
    assert read_env_file(path, "x.env").bindings == (Binding("A", "1", 1),)
    with pytest.raises(InputError) as e:
        read_env_file(tmp_path / "missing.env", "missing.env")
    assert str(e.value) == "missing.env: no such file"
