"""Glob patterns of `watch` (keelrun/watch/globs.py): unit tests and properties."""

from __future__ import annotations

import fnmatch

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keelrun.watch.globs import compile_patterns, matches, pattern_error

# A regex that Python warns about (a nested set) is one the translation got wrong.
pytestmark = pytest.mark.filterwarnings("error::FutureWarning")


@pytest.mark.parametrize(
    ("pattern", "path", "expected"),
    [
        ("**/*.py", "app.py", True),  # `**/` also matches the root itself
        ("**/*.py", "pkg/mod.py", True),
        ("**/*.py", "a/b/c/mod.py", True),
        ("**/*.py", "app.pyc", False),
        ("**/*.py", "app.py/x", False),
        ("*.py", "app.py", True),
        ("*.py", "pkg/app.py", False),  # `*` never crosses a `/`
        ("templates/**", "templates/index.html", True),
        ("templates/**", "templates/a/b/c.html", True),
        ("templates/**", "templates", False),  # below the directory, not itself
        ("templates/**", "other/templates/x", False),
        ("templates/", "templates/x.html", True),  # trailing `/` reads as `/**`
        ("./app.py", "app.py", True),
        ("src/**/test_*.py", "src/test_a.py", True),
        ("src/**/test_*.py", "src/x/y/test_a.py", True),
        ("src/**/test_*.py", "tests/test_a.py", False),
        ("**/**/x", "x", True),  # repeated `**` is one
        ("a/**/**/b", "a/b", True),
        ("**", "anything/at/all", True),
        ("?.py", "a.py", True),
        ("?.py", "ab.py", False),
        ("[ab].py", "b.py", True),
        ("[!ab].py", "b.py", False),
        ("[!ab].py", "c.py", True),
        ("[a-c]x", "bx", True),
        ("[abc", "[abc", True),  # no closing bracket: literal
        ("a+b(c).py", "a+b(c).py", True),  # regex characters are literal
        # As in the shell, no wildcard supplies a leading dot.
        ("**/*.py", ".#app.py", False),
        ("**/*.py", "pkg/.#app.py", False),
        ("templates/**", "templates/.DS_Store", False),
        ("**/.env*", ".env.local", True),
        ("**/.*", "pkg/.flake8", True),
        ("name\nx", "name\nx", True),  # a newline in a name is just a character
    ],
)
def test_matches(pattern: str, path: str, expected: bool) -> None:
    assert matches(pattern, path) is expected


def test_compiled_set_matches_when_any_pattern_does() -> None:
    rx = compile_patterns(["**/*.py", "templates/**"])
    assert rx is not None
    assert rx.fullmatch("a/b.py") and rx.fullmatch("templates/x.html")
    assert not rx.fullmatch("static/x.css")
    assert compile_patterns([]) is None


@pytest.mark.parametrize(
    ("pattern", "fragment"),
    [
        ("", "non-empty"),
        ("   ", "non-empty"),
        ("/abs/*.py", "relative to the app root"),
        ("../up/*.py", '".."'),
        ("a/../b", '".."'),
        ("a/./b", '"."'),
        (".", '"."'),
    ],
)
def test_pattern_errors_say_why(pattern: str, fragment: str) -> None:
    error = pattern_error(pattern)
    assert error is not None and fragment in error


def test_good_patterns_have_no_error() -> None:
    for p in ("**/*.py", "templates/**", "app.py", "./x", "a/b/"):
        assert pattern_error(p) is None


# -- properties ------------------------------------------------------------------

NAME = st.text(alphabet="ab.c_-[]!*?x", min_size=1, max_size=6).filter(
    lambda s: s not in (".", "..")
)
PLAIN = st.text(alphabet="abcxyz_", min_size=1, max_size=5)
GLOB = st.text(alphabet="ab.*?x[]!", min_size=1, max_size=6).filter(
    lambda s: "**" not in s and pattern_error(s) is None
)


@settings(max_examples=400, deadline=None)
@given(GLOB, NAME)
def test_one_component_agrees_with_fnmatch(pattern: str, name: str) -> None:
    """Within one name, a pattern means what fnmatch says, except that no wildcard
    may supply a leading dot (fnmatch lets `*` match `.x`)."""
    expected = fnmatch.fnmatchcase(name, pattern)
    if name.startswith(".") and not pattern.startswith("."):
        expected = False
    assert matches(pattern, name) is expected


@settings(max_examples=300, deadline=None)
@given(GLOB, st.lists(PLAIN, max_size=4), NAME)
def test_leading_globstar_matches_at_any_depth(pattern: str, dirs: list[str], name: str) -> None:
    path = "/".join([*dirs, name])
    assert matches("**/" + pattern, path) is matches(pattern, name)


@settings(max_examples=300, deadline=None)
@given(st.lists(PLAIN, min_size=1, max_size=3), st.lists(PLAIN, min_size=1, max_size=3))
def test_trailing_globstar_matches_everything_below(prefix: list[str], rest: list[str]) -> None:
    base = "/".join(prefix)
    assert matches(base + "/**", base + "/" + "/".join(rest))
    assert not matches(base + "/**", base)
    assert not matches(base + "/**", "other_" + base + "/" + "/".join(rest))


@settings(max_examples=300, deadline=None)
@given(st.lists(PLAIN, max_size=3), st.lists(PLAIN, max_size=3), PLAIN)
def test_middle_globstar_spans_zero_or_more_directories(
    before: list[str], middle: list[str], last: str
) -> None:
    pattern = "/".join([*before, "**", last])
    assert matches(pattern, "/".join([*before, *middle, last]))
    assert not matches(pattern, "/".join([*before, *middle, last + "_x"]))
