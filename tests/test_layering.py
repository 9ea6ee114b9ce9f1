"""The layering of vcodec, written once (``LAYERS``) and checked against every import in the package.

The import graph is built from the source with ``ast``: every ``import`` and
``from ... import`` statement, at module level, inside functions and under
``if TYPE_CHECKING:`` (a type-only import still says what a package knows
about).  A module belongs to its package under ``vcodec`` (``vcodec.io.readers.raw``
-> ``io``), except that the base-layer plug-ins are packages of their own
beneath the protocol (``baselayer.learned``, ``baselayer.features``); a
top-level module is its own package (``errors``, ``annotate``).

Checked: (a) no import cycle between packages; (b) a package imports only
packages on rows below its own (same row = independent); (c) the base-layer
plug-ins never import ``vcodec.codec``.  Left out: the alias packages
``vcodec.models`` / ``vcodec.features`` and their machinery ``vcodec._moved``
(shims for one release; nothing in vcodec may import them), and the root
facade ``vcodec/__init__.py``, whose heavy names are lazy (checked apart: at
import time it reaches nothing above ``io``, so ``from vcodec import
__version__`` anywhere cannot close a cycle).
"""

from __future__ import annotations

import ast
import functools
from collections import deque
from dataclasses import dataclass
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "vcodec"

#: bottom row first.  A package may import packages on lower rows only.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("errors",),
    ("registry", "_atomic", "_frame_ranges", "hashing", "_compressai", "_torchvision"),
    ("io", "bitstream"),
    ("enhancement", "detection", "annotate"),
    ("baselayer",),  # the protocol (vcodec/baselayer/__init__.py, protocol.py)
    ("baselayer.learned", "baselayer.features"),  # the two plug-ins: siblings, neither imports the other
    ("codec",),
    ("cluster",),
    ("eval",),
    ("serve",),
    ("cli",),
    ("__main__",),
)
#: packages split out of their parent: the plug-ins sit beneath the protocol they implement
SUBPACKAGES = ("baselayer.learned", "baselayer.features")
#: one-release aliases of moved packages (vcodec/_moved.py), not part of the layering
SHIMS = ("models", "features", "_moved")
ROOT = ""  # the root facade vcodec/__init__.py

#: imports that break a rule today, each with who owns the fix.  Listing one here is a
#: decision, not a way out: test_known_violations_still_exist fails once it is fixed, so
#: the entry has to go.
KNOWN_VIOLATIONS: dict[tuple[str, str], str] = {
}


@dataclass(frozen=True)
class Import:
    """One import statement's target, where it stands, and the packages on both ends."""

    file: str  # relative to the repository root
    line: int
    target: str  # the imported module, dotted
    src: str  # package of the importing module
    dst: str  # package of the imported module
    type_only: bool  # under ``if TYPE_CHECKING:``

    def __str__(self) -> str:
        how = " (TYPE_CHECKING)" if self.type_only else ""
        return f"{self.file}:{self.line} imports {self.target}{how}"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def package_of(module: str) -> str:
    """``vcodec.io.readers.raw`` -> ``io``; ``vcodec.baselayer.learned.x`` -> ``baselayer.learned``."""
    rest = module.split(".")[1:]
    for sub in SUBPACKAGES:
        if rest[: sub.count(".") + 1] == sub.split("."):
            return sub
    return rest[0] if rest else ROOT


def _is_module(dotted: str) -> bool:
    p = SRC.parent.joinpath(*dotted.split("."))
    return p.with_suffix(".py").is_file() or (p / "__init__.py").is_file()


def _type_checking_lines(tree: ast.Module) -> set[int]:
    """Line numbers of statements inside ``if TYPE_CHECKING:`` blocks."""
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If):
            test = node.test
            if isinstance(test, ast.Attribute):  # typing.TYPE_CHECKING
                name = test.attr
            else:
                name = test.id if isinstance(test, ast.Name) else ""
            if name == "TYPE_CHECKING":
                for stmt in node.body:
                    for sub in ast.walk(stmt):
                        if hasattr(sub, "lineno"):
                            lines.add(sub.lineno)
    return lines


def parse_imports(text: str, module: str, is_package: bool, file: str) -> list[Import]:
    """Every vcodec module the source ``text`` of ``module`` imports, wherever the statement stands."""
    tree = ast.parse(text, filename=file)
    type_only = _type_checking_lines(tree)
    found: list[Import] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                here = module.split(".") if is_package else module.split(".")[:-1]
                here = here[: len(here) - (node.level - 1)]
                base = ".".join(here + ([node.module] if node.module else []))
            # "from vcodec.baselayer import learned" imports a module; "from vcodec import __version__" a name
            targets = [f"{base}.{a.name}" if _is_module(f"{base}.{a.name}") else base for a in node.names]
        else:
            continue
        for target in dict.fromkeys(targets):
            if target == "vcodec" or target.startswith("vcodec."):
                found.append(Import(file, node.lineno, target, package_of(module), package_of(target),
                                    node.lineno in type_only))
    return found


def imports_of(path: Path) -> list[Import]:
    return parse_imports(path.read_text(encoding="utf-8"), module_name(path), path.name == "__init__.py",
                         str(path.relative_to(SRC.parent)))


@functools.lru_cache(maxsize=1)
def _read_all() -> tuple[Import, ...]:
    out: list[Import] = []
    for path in sorted(SRC.rglob("*.py")):
        if package_of(module_name(path)) not in SHIMS:
            out.extend(imports_of(path))
    return tuple(out)


def all_imports() -> list[Import]:
    """Every import in vcodec but the shims' (read once per test session)."""
    return list(_read_all())


RANK = {pkg: row for row, names in enumerate(LAYERS) for pkg in names}


def between_packages(imports: list[Import]) -> list[Import]:
    """Imports from one package of the layering to another (the facade and known violations left out)."""
    return [
        i for i in imports
        if i.src != i.dst and ROOT not in (i.src, i.dst) and (i.file, i.target) not in KNOWN_VIOLATIONS
    ]


def find_cycles(imports: list[Import]) -> list[str]:
    """Each import cycle between packages, once, as the packages and the import behind each hop."""
    graph: dict[str, dict[str, Import]] = {}
    for i in imports:
        graph.setdefault(i.src, {}).setdefault(i.dst, i)
    cycles: list[str] = []
    seen: set[frozenset[str]] = set()
    for a in sorted(graph):
        for b in sorted(graph[a]):
            # the shortest way back from b to a closes a cycle through a -> b
            prev: dict[str, str] = {}
            queue, reached = deque([b]), {b}
            while queue and a not in reached:
                n = queue.popleft()
                for m in sorted(graph.get(n, {})):
                    if m not in reached:
                        reached.add(m)
                        prev[m] = n
                        queue.append(m)
            if a not in reached:
                continue
            back = [a]
            while back[-1] != b:
                back.append(prev[back[-1]])
            path = [a, *reversed(back)]
            if frozenset(path) in seen:
                continue
            seen.add(frozenset(path))
            hops = "\n    ".join(str(graph[x][y]) for x, y in zip(path, path[1:], strict=False))
            cycles.append(" -> ".join(path) + ":\n    " + hops)
    return cycles


def find_upward(imports: list[Import]) -> list[str]:
    """Each import of a package on the importer's row or above, named with both rows."""
    return [
        f"{i}: {i.src} (row {RANK[i.src]}) may not import {i.dst} (row {RANK[i.dst]})"
        for i in imports
        if i.src in RANK and i.dst in RANK and RANK[i.dst] >= RANK[i.src]
    ]


# ---------------------------------------------------------------------------


def test_every_package_has_a_row() -> None:
    found = {package_of(module_name(p)) for p in SRC.rglob("*.py")} - set(SHIMS) - {ROOT}
    missing = sorted(found - set(RANK))
    stale = sorted(set(RANK) - found)
    assert not missing, f"packages with no row in LAYERS (tests/test_layering.py): {missing}; add them"
    assert not stale, f"LAYERS names packages that no longer exist: {stale}; remove them"
    assert len(RANK) == sum(len(row) for row in LAYERS), "a package stands on two rows of LAYERS"


def test_nothing_imports_the_alias_shims() -> None:
    bad = [str(i) for i in all_imports() if i.dst in SHIMS]
    assert not bad, "the one-release aliases are for users; vcodec imports the new paths:\n" + "\n".join(bad)


def test_no_import_cycle_between_packages() -> None:
    cycles = find_cycles(between_packages(all_imports()))
    assert not cycles, "import cycles between packages:\n" + "\n".join(cycles)


def test_no_package_imports_a_package_above_it() -> None:
    bad = find_upward(between_packages(all_imports()))
    assert not bad, "imports against the layering (LAYERS in tests/test_layering.py):\n" + "\n".join(bad)


def test_base_layer_plugins_never_import_the_codec() -> None:
    bad = [str(i) for i in all_imports() if i.src.startswith("baselayer") and i.dst == "codec"]
    assert not bad, "the base-layer protocol and its plug-ins sit beneath vcodec.codec:\n" + "\n".join(bad)


def test_root_facade_loads_nothing_above_io_at_import_time() -> None:
    runtime = [i for i in imports_of(SRC / "__init__.py") if not i.type_only]
    assert runtime, "no imports found in vcodec/__init__.py: the test is not reading the facade"
    bad = [str(i) for i in runtime if RANK.get(i.dst, len(LAYERS)) > RANK["io"]]
    assert not bad, "vcodec/__init__.py must stay light (names above io are lazy: _LAZY):\n" + "\n".join(bad)


def test_known_violations_still_exist() -> None:
    imports = all_imports()
    fixed = [f"{file} no longer imports {target}" for file, target in sorted(KNOWN_VIOLATIONS)
             if not any(i.file == file and i.target == target for i in imports)]
    assert not fixed, "; ".join(fixed) + ": remove them from KNOWN_VIOLATIONS in tests/test_layering.py"


def test_the_checks_catch_and_name_an_offending_import() -> None:
    """A module in io that imports the codec (type-only), cli (in a function) and baselayer.learned
    (relatively), while the codec imports io: each is found and named."""
    probe = (
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from vcodec.codec import Encoder\n"
        "def f():\n"
        "    import vcodec.cli.main\n"
        "    from ..baselayer import learned\n"
        "from vcodec import __version__\n"
    )
    found = parse_imports(probe, "vcodec.io.probe", False, "vcodec/io/probe.py")
    assert {(i.line, i.dst, i.type_only) for i in found} == {
        (3, "codec", True), (5, "cli", False), (6, "baselayer.learned", False), (7, ROOT, False),
    }
    edges = between_packages(found)
    upward = find_upward(edges)
    assert len(upward) == 3 and any(
        "vcodec/io/probe.py:5 imports vcodec.cli.main: io (row 2) may not import cli" in u for u in upward
    )
    back = parse_imports("from vcodec.io import probe\n", "vcodec.codec.x", False, "vcodec/codec/x.py")
    (cycle,) = [c for c in find_cycles(edges + back) if c.startswith("codec")]
    assert cycle.startswith("codec -> io -> codec:")
    assert "vcodec/codec/x.py:1 imports vcodec.io" in cycle
    assert "vcodec/io/probe.py:3 imports vcodec.codec" in cycle
