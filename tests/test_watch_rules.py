"""What a changed path means (keelrun/watch/rules.py): pure, with a fake is_dir."""

from __future__ import annotations

from pathlib import Path

from keelrun.watch.rules import Changes, WatchRules


def rules_for(root: Path, **patterns: list[str]) -> WatchRules:
    return WatchRules.build(
        str(root),
        patterns,
        reload_files=[str(root / "Procfile"), str(root / ".env"), str(root / "pyproject.toml")],
        never=[str(root / ".keelrun.sock")],
    )


def never_dir(path: str) -> bool:
    return False


def test_types_whose_patterns_match(tmp_path: Path) -> None:
    r = rules_for(tmp_path, web=["**/*.py", "templates/**"], worker=["worker/**/*.py"])
    root = r.root
    got = r.classify(
        [f"{root}/app.py", f"{root}/templates/x.html", f"{root}/static/a.css"], never_dir
    )
    assert got.types == {"web": ("app.py", "templates/x.html")}
    assert got.reload == ()
    got = r.classify([f"{root}/worker/jobs/a.py"], never_dir)
    assert set(got.types) == {"web", "worker"}


def test_reload_files_are_not_type_changes(tmp_path: Path) -> None:
    r = rules_for(tmp_path, web=["**"])
    got = r.classify([f"{r.root}/Procfile", f"{r.root}/.env"], never_dir)
    assert got.reload == (".env", "Procfile") and got.types == {}


def test_reload_file_outside_the_root_is_named_by_its_full_path(tmp_path: Path) -> None:
    shared = tmp_path / "shared.env"
    r = WatchRules.build(str(tmp_path / "app"), {"web": ["**"]}, [str(shared)])
    assert r.watched_parents() == [str(tmp_path.resolve())]
    got = r.classify([str(shared.resolve()), str(tmp_path.resolve() / "other.env")], never_dir)
    assert got.reload == (str(shared.resolve()),) and not got.types


def test_ignored_directories_and_the_socket(tmp_path: Path) -> None:
    (tmp_path / ".flake8").write_text("")
    r = rules_for(tmp_path, web=["**", "**/.*", ".*/**", "**/__pycache__/**", "node_modules/**"])
    root = r.root
    ignored = [
        ".git/HEAD",
        ".venv/lib/x.py",
        "venv/lib/x.py",
        "node_modules/a/index.js",
        "pkg/__pycache__/m.cpython-311.pyc",
        ".idea/workspace.xml",
        "deep/down/.cache/x",
        ".keelrun.sock",
        "__pycache__",  # the directory itself appearing
        ".gone",  # a dot-entry that no longer exists: cannot tell a dot-directory from a file
    ]
    assert not r.classify([f"{root}/{p}" for p in ignored], never_dir)
    # A dot-file that exists is watched; a dot-directory is not.
    assert r.classify([f"{root}/.flake8"], never_dir).types == {"web": (".flake8",)}
    assert not r.classify([f"{root}/.flake8"], lambda p: True)


def test_paths_outside_the_root_mean_nothing(tmp_path: Path) -> None:
    r = rules_for(tmp_path / "app", web=["**"])
    assert not r.classify([str(tmp_path / "elsewhere.py"), r.root + "x/y.py"], never_dir)


def test_examples_are_bounded_and_merge_without_repeats() -> None:
    a = Changes({"web": ("a.py", "b.py")}, ())
    b = Changes({"web": ("b.py", "c.py", "d.py"), "worker": ("w.py",)}, ("Procfile",))
    m = a.merged(b)
    assert m.types == {"web": ("a.py", "b.py", "c.py"), "worker": ("w.py",)}
    assert m.reload == ("Procfile",)
    assert m.examples() == ("Procfile", "a.py", "b.py")
    assert Changes.from_wire(m.to_wire()) == m
    assert not Changes() and m


def test_many_changes_keep_three_examples_per_type(tmp_path: Path) -> None:
    r = rules_for(tmp_path, web=["**/*.py"])
    got = r.classify([f"{r.root}/m{i:03d}.py" for i in range(500)], never_dir)
    assert got.types == {"web": ("m000.py", "m001.py", "m002.py")}
