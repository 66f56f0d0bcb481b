"""docs/ARCHITECTURE.md cannot go stale: every path it names exists, every ``path.py:name`` is defined there, and
every top-level module of himbench is on the map."""

from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "ARCHITECTURE.md"

# A backticked span that names a repository path: `a/b.py`, `a/b/`, `pyproject.toml`, optionally `a/b.py:Name.attr`.
_PATH = re.compile(r"^(?P<path>[\w.-]+(?:/[\w.-]+)*/?)(?::(?P<name>[A-Za-z_][\w.]*))?$")
_SPAN = re.compile(r"`([^`\n]+)`")
_ROOT_FILE_SUFFIXES = (".py", ".md", ".toml")  # a span without "/" (`pyproject.toml`, not `build_config.json`)

# Names the map gives for the end state of work merged alongside it (issue 22: h-i22shard, h-i22metrics, h-i22model,
# h-i22cli). Each must not exist yet; the lead empties this set at merge (test_pending_names_are_still_pending fails
# on an entry that has arrived, test_every_named_path_exists on one that has not).
PENDING: set[str] = set()  # names of work merged alongside the map, not yet in the code (none now)
# Modules the map leaves out because they are moving away in that same work (the lead empties this at merge too).
MOVING_AWAY: set[str] = set()


def named_paths(text: str) -> list[tuple[int, str, str, str | None]]:
    """``(line, span, path, name)`` for every backticked span of ``text`` that names a repository path."""
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        for span in _SPAN.findall(line):
            match = _PATH.match(span)
            if not match:
                continue
            path = match["path"]
            if "/" in path or path.endswith(_ROOT_FILE_SUFFIXES):
                found.append((number, span, path, match["name"]))
    return found


def defined_names(path: Path) -> set[str]:
    """Top-level names of a module (functions, classes, assignments, imports) and ``Class.member`` names."""
    names: set[str] = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
            if isinstance(node, ast.ClassDef):
                for member in node.body:
                    if isinstance(member, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                        names.add(f"{node.name}.{member.name}")
                    elif isinstance(member, ast.AnnAssign) and isinstance(member.target, ast.Name):
                        names.add(f"{node.name}.{member.target.id}")
        elif isinstance(node, ast.Assign):
            names |= {target.id for target in node.targets if isinstance(target, ast.Name)}
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names |= {(alias.asname or alias.name).split(".")[0] for alias in node.names}
    return names


def problem(root: Path, path: str, name: str | None) -> str | None:
    """Why ``path`` (``:name``) does not resolve under ``root``; None when it does."""
    target = root / path
    if not (target.is_dir() if path.endswith("/") else target.exists()):
        return "no such file or folder"
    if name is not None:
        if target.suffix != ".py":
            return "a name given in a file that is not Python"
        if name not in defined_names(target):
            return f"{path} defines no {name}"
    return None


TEXT = DOC.read_text(encoding="utf-8")
NAMED = named_paths(TEXT)


def test_the_map_names_many_paths():
    assert len(NAMED) > 60  # the parser still finds the doc's paths
    spans = {span for _, span, _, _ in NAMED}
    assert {"himbench/layouts.py:LAYOUTS", "himbench/cli/", "pyproject.toml", "tests/test_layers.py"} <= spans


def test_every_named_path_exists():
    stale = [f"docs/ARCHITECTURE.md:{line}: `{span}`: {why}" for line, span, path, name in NAMED
             if span not in PENDING and (why := problem(REPO, path, name))]
    assert not stale, "\n".join(stale)


def test_pending_names_are_still_pending():
    arrived = sorted(span for span in PENDING if _resolves(span))
    assert not arrived, f"now in the code: remove from PENDING in tests/test_architecture_doc.py: {arrived}"
    unused = sorted(PENDING - {span for _, span, _, _ in NAMED})
    assert not unused, f"PENDING entries the map does not name: {unused}"


def _resolves(span: str) -> bool:
    match = _PATH.match(span)
    assert match, span
    return problem(REPO, match["path"], match["name"]) is None


def test_every_top_level_module_is_on_the_map():
    named = {path.rstrip("/") for _, _, path, _ in NAMED}
    modules = sorted(
        str(p.relative_to(REPO)) for p in (REPO / "himbench").iterdir()
        if (p.suffix == ".py" and p.stem not in ("__init__", "__main__")) or (p / "__init__.py").is_file()
    )
    missing = [m for m in modules if m not in named and m not in MOVING_AWAY]
    assert not missing, f"say in docs/ARCHITECTURE.md what these own: {missing}"
    gone = sorted(m for m in MOVING_AWAY if not (REPO / m).exists())
    assert not gone, f"moved away: remove from MOVING_AWAY in tests/test_architecture_doc.py: {gone}"


def test_stale_paths_and_names_are_caught(tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "mod.py").write_text("X = 1\nclass A:\n    def f(self): ...\ndef g(): ...\n")
    text = ("See `pkg/mod.py:A.f`, `pkg/mod.py:g`, `pkg/`, `pkg/gone.py`, `pkg/mod.py:h`;\n"
            "not paths: `a b/c`, `data/*.parquet`, `build_config.json`.")
    results = {span: problem(tmp_path, path, name) for _, span, path, name in named_paths(text)}
    assert results == {
        "pkg/mod.py:A.f": None,
        "pkg/mod.py:g": None,
        "pkg/": None,
        "pkg/gone.py": "no such file or folder",
        "pkg/mod.py:h": "pkg/mod.py defines no h",
    }
