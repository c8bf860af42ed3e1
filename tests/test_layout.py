"""The code's layout holds: serving by role (core, http, bulk, the client, the CLI), no import
circle between files or packages, and a scoring core that needs neither HTTP nor torch."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).parents[1]
PACKAGES = ("serving", "training", "evaluation")
#: Sub-packages of serving counted as packages of their own (the roles of the split).
SERVING_ROLES = ("core", "http", "bulk", "feedback")


def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


def import_edges(found: dict[str, Path], *, import_time: bool) -> set[tuple[str, str]]:
    """(importer, imported) for the imports between our modules: every one, or with
    `import_time` only the module-level ones (an import inside a function or under
    `if TYPE_CHECKING:` does not run when the module is imported)."""
    edges = set()
    for name, path in found.items():
        tree = ast.parse(path.read_text("utf-8"))
        for node in tree.body if import_time else ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                subs = [f"{node.module}.{a.name}" for a in node.names]
                targets = [t for t in subs if t in found] or [node.module]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            edges |= {(name, t) for t in targets if t in found and t != name}
    return edges


def package_of(module: str) -> str:
    parts = module.split(".")
    if parts[0] == "serving" and len(parts) > 1 and parts[1] in SERVING_ROLES:
        return ".".join(parts[:2])
    return parts[0]


def cycle(edges: set[tuple[str, str]]) -> list[str]:
    """One cycle of the graph (as a path), or [] when it has none."""
    graph: dict[str, set[str]] = {}
    for a, b in edges:
        graph.setdefault(a, set()).add(b)
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        state[node] = 2
        path.pop()
        return []

    for start in sorted(graph):
        if start not in state and (found := visit(start)):
            return found
    return []


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert cycle({("a", "b"), ("b", "c"), ("c", "a")}) == ["a", "b", "c", "a"]
    assert cycle({("a", "b"), ("b", "c"), ("a", "c")}) == []
    edges = import_edges(modules(), import_time=True)
    assert ("serving.core.scorer", "serving.core.artifact") in edges
    assert ("serving.http.app", "serving.core.scorer") in edges
    lazy = ("training.export", "evaluation.behaviour")  # imported inside the export gate
    assert lazy in import_edges(modules(), import_time=False) and lazy not in edges


def test_no_import_circle_between_files() -> None:
    """Not even through an import inside a function or for type checking only."""
    assert cycle(import_edges(modules(), import_time=False)) == []


def test_no_import_circle_between_packages() -> None:
    """serving.core at the bottom; training and evaluation never import each other at import
    time; the CLI (serving's top level) composes them all."""
    edges = {
        (package_of(a), package_of(b))
        for a, b in import_edges(modules(), import_time=True)
        if package_of(a) != package_of(b)
    }
    assert cycle(edges) == []
    assert not {e for e in edges if e[0] == "serving.core"}


def test_the_scoring_core_needs_no_http_and_no_torch() -> None:
    banned = ("fastapi", "starlette", "uvicorn", "torch", "transformers", "ray", "sqlalchemy")
    for path in (ROOT / "serving" / "core").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            names = (
                [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else []
            )
            assert not [n for n in names if n.split(".")[0] in banned], path


def test_serving_top_level_stays_small() -> None:
    top = [p.name for p in (ROOT / "serving").glob("*.py")]
    assert len(top) <= 12, sorted(top)
