"""The import layering, drawn from the code with ``ast``: cli -> services -> core, plugins beside the CLI.

Every import counts, including those inside functions (where an upward import hides because it is slow or would be
circular), ``if TYPE_CHECKING:`` blocks and ``importlib.import_module("...")`` calls with a literal name.
docs/ARCHITECTURE.md describes the floors; a new module inherits the floor of its package, and a new top-level module
must be given one here.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("himbench", "e2ehim", "baselines")
PLUGINS = ("e2ehim", "baselines")

# The floor of each module, by its longest listed prefix (a package covers its submodules).
FLOORS: dict[str, str] = {
    # core: file formats, pure functions, registries and protocols. Imports nothing above itself.
    "himbench": "core",  # the package itself (its __version__); matches only exactly, see floor_of
    "himbench.io": "core",
    "himbench.geometry": "core",
    "himbench.metrics": "core",
    "himbench.build_config": "core",
    "himbench.shards": "core",
    "himbench.layouts": "core",
    "himbench.video_layout": "core",  # the V-HIM folder layout (issue 23)
    "himbench.video_shards": "core",  # the clip Parquet format (issue 23)
    "himbench.video_export": "core",  # a video build written in the V-HIM layout (issue 23)
    "himbench.data": "core",
    "himbench.registry": "core",
    "himbench.checkpoints": "core",
    "himbench.methods": "core",
    "himbench.device": "core",
    "himbench.guidance": "core",
    "himbench.mask_tracking": "core",  # first-frame masks carried through a clip (issue 23)
    "himbench.temporal_smoothing": "core",  # temporal smoothing of per-frame mattes (issue 23)
    "himbench.plotting": "core",
    # services: the workflows, each built on the core.
    "himbench.engines": "services",
    "himbench.synthesis": "services",
    "himbench.evaluation": "services",
    "himbench.predictions": "services",
    "himbench.video_predictions": "services",  # video prediction folders (issue 23)
    "himbench.prediction_manifest": "services",
    "himbench.bench": "services",
    "himbench.leaderboard": "services",
    "himbench.training": "services",
    "himbench.hub": "services",
    "himbench.authors_checkpoints": "services",
    # the shell: parses options, calls services, maps errors to exit codes.
    "himbench.cli": "cli",
    # plugins: found through the registry's entry points, never imported by himbench.
    "e2ehim": "plugins",
    "baselines": "plugins",
}
# Which floors a floor may import. A plugin also may not import another plugin (checked below).
MAY_IMPORT: dict[str, frozenset[str]] = {
    "core": frozenset({"core"}),
    "services": frozenset({"core", "services"}),
    "plugins": frozenset({"core", "services", "plugins"}),
    "cli": frozenset({"core", "services", "cli"}),
}

# Upward imports that main still has, as exact (importer, imported) edges. Each is to be fixed, not extended: the
# lead empties this set at merge (test_known_violations_are_still_there fails on an entry that is gone).
KNOWN_VIOLATIONS: set[tuple[str, str]] = set()  # none left: an entry here must name why, and leave when fixed


@dataclass(frozen=True)
class Import:
    importer: str
    imported: str
    path: Path
    line: int


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _literal_prefix(node: ast.expr) -> str | None:
    """The module named by ``import_module("a.b")`` or ``import_module(f"a.b.{x}")`` (its literal package)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr) and node.values and isinstance(node.values[0], ast.Constant):
        return str(node.values[0].value).rstrip(".") or None
    return None


def imports_of(path: Path, root: Path, known: set[str], packages: tuple[str, ...] = PACKAGES) -> list[Import]:
    """Every import of a first-party module in ``path``, anywhere in the file, resolved to the module it loads
    (``from a import b`` loads ``a.b`` when that is a module, else ``a``; relative imports are resolved)."""
    importer = module_name(path, root)
    is_package = path.name == "__init__.py"
    found: list[tuple[str, int]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = importer.split(".") if is_package else importer.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                source = ".".join([*base, node.module] if node.module else base)
            else:
                source = node.module or ""
            for alias in node.names:
                submodule = f"{source}.{alias.name}"
                found.append((submodule if submodule in known else source, node.lineno))
        elif isinstance(node, ast.Call) and node.args:
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            if name in ("import_module", "__import__") and (target := _literal_prefix(node.args[0])):
                found.append((target, node.lineno))
    return [
        Import(importer, imported, path, line)
        for imported, line in found
        if imported.split(".")[0] in packages and imported != importer
    ]


def import_graph(root: Path = REPO, packages: tuple[str, ...] = PACKAGES) -> list[Import]:
    files = sorted(p for package in packages for p in (root / package).rglob("*.py"))
    known = {module_name(p, root) for p in files}
    return [edge for path in files for edge in imports_of(path, root, known, packages)]


def floor_of(module: str, floors: dict[str, str] = FLOORS) -> str | None:
    parts = module.split(".")
    for end in range(len(parts), 0, -1):
        prefix = ".".join(parts[:end])
        # A top-level package's own entry covers only itself: a new module directly under himbench/ needs a floor.
        if prefix in floors and (end == len(parts) or end > 1 or prefix in PLUGINS):
            return floors[prefix]
    return None


def violations(edges: list[Import], floors: dict[str, str] = FLOORS) -> list[tuple[Import, str]]:
    """The edges that import upward (or sideways between plugins), each with the reason."""
    bad = []
    for edge in edges:
        here, there = floor_of(edge.importer, floors), floor_of(edge.imported, floors)
        if here is None or there is None:
            continue  # reported by test_every_module_has_a_floor
        if there not in MAY_IMPORT[here]:
            bad.append((edge, f"{here} may not import {there}"))
        elif here == there == "plugins" and edge.importer.split(".")[0] != edge.imported.split(".")[0]:
            bad.append((edge, "a plugin may not import another plugin"))
    return bad


def _describe(edge: Import, why: str) -> str:
    return f"{edge.path.relative_to(REPO)}:{edge.line}: {edge.importer} imports {edge.imported} ({why})"


GRAPH = import_graph()


# ------------------------------------------------------------------------------------------------------- the rule
def test_every_module_has_a_floor():
    modules = sorted({edge.importer for edge in GRAPH} | {
        module_name(p, REPO) for package in PACKAGES for p in (REPO / package).rglob("*.py")})
    assert len(modules) > 50
    missing = [m for m in modules if floor_of(m) is None]
    assert not missing, f"give these modules a floor in FLOORS (and docs/ARCHITECTURE.md): {missing}"


def test_no_import_goes_up_a_floor():
    new = [(edge, why) for edge, why in violations(GRAPH) if (edge.importer, edge.imported) not in KNOWN_VIOLATIONS]
    assert not new, "imports against the floors (cli -> services -> core; plugins -> services, core):\n" + "\n".join(
        _describe(edge, why) for edge, why in new)


def test_known_violations_are_still_there():
    # An entry that is fixed must leave KNOWN_VIOLATIONS, so the set never excuses a new import of the same name.
    present = {(edge.importer, edge.imported) for edge, _ in violations(GRAPH)}
    gone = sorted(KNOWN_VIOLATIONS - present)
    assert not gone, f"fixed: remove from KNOWN_VIOLATIONS in tests/test_layers.py: {gone}"


def test_the_core_imports_no_plugin_and_no_cli():
    # Stated on its own (it is also implied by the floors): plugins are loaded only through the registry.
    core = [e for e in GRAPH if floor_of(e.importer) == "core"]
    assert core, "no core module imports anything: the graph is empty?"
    assert not [_describe(e, "core") for e in core if floor_of(e.imported) in ("plugins", "cli")]


# ---------------------------------------------------------------------------------------- the graph drawing itself
@pytest.fixture
def toy_tree(tmp_path) -> Path:
    files = {
        "himbench/__init__.py": "",
        "himbench/io/__init__.py": "from .atomic import write\n",
        "himbench/io/atomic.py": "import os\n",
        "himbench/shards.py": (
            "from himbench.io import atomic\n"
            "def f():\n"
            "    from himbench.synthesis.config import BuildConfig  # hidden in a function\n"
        ),
        "himbench/synthesis/__init__.py": "from . import config\n",
        "himbench/synthesis/config.py": "from ..io import atomic\n",
        "himbench/cli/__init__.py": "import importlib\nimportlib.import_module(f'himbench.cli.{name}')\n",
        "himbench/cli/run.py": "import e2ehim.model\n",
        "e2ehim/__init__.py": "from baselines import x\nfrom himbench import synthesis\n",
        "baselines/__init__.py": "",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    return tmp_path


def test_graph_finds_imports_inside_functions_and_relative_and_dynamic_ones(toy_tree):
    edges = {(e.importer, e.imported, e.line) for e in import_graph(toy_tree)}
    assert ("himbench.shards", "himbench.synthesis.config", 3) in edges  # inside a function
    assert ("himbench.shards", "himbench.io.atomic", 1) in edges  # `from package import submodule`
    assert ("himbench.io", "himbench.io.atomic", 1) in edges  # relative, from a package's __init__
    assert ("himbench.synthesis.config", "himbench.io.atomic", 1) in edges  # `..` from a module
    assert ("himbench.synthesis", "himbench.synthesis.config", 1) in edges
    assert ("himbench.cli", "himbench.cli", 2) not in edges  # import_module of its own package: no edge
    assert ("e2ehim", "himbench.synthesis", 2) in edges
    assert not [e for e in edges if e[1] in ("os", "importlib")]  # third-party and stdlib imports are not drawn


def test_violations_name_each_offending_edge(toy_tree):
    found = {(e.importer, e.imported, why) for e, why in violations(import_graph(toy_tree))}
    assert found == {
        ("himbench.shards", "himbench.synthesis.config", "core may not import services"),
        ("himbench.cli.run", "e2ehim.model", "cli may not import plugins"),
        ("e2ehim", "baselines", "a plugin may not import another plugin"),
    }


def test_a_new_top_level_module_needs_a_floor():
    assert floor_of("himbench") == "core" and floor_of("himbench.metrics.table") == "core"
    assert floor_of("himbench.cli.errors") == "cli" and floor_of("e2ehim.model") == "plugins"
    assert floor_of("himbench.somewhere_new") is None
