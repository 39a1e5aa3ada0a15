"""The boundaries of the house, checked on the source: engine/ imports nothing from
console/ and no Textual; engine/sim imports nothing from the rest of engine/."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the package
                package = path.relative_to(ROOT).with_suffix("").parts[:-1]
                base = package[: len(package) - (node.level - 1)] if node.level > 1 else package
                name = ".".join(base + ((node.module,) if node.module else ()))
            else:
                name = node.module or ""
            found.append((node.lineno, name))
    return found


def _offences(folder: str, forbidden) -> list[str]:
    out = []
    for path in sorted((ROOT / folder).rglob("*.py")):
        for line, name in _imports(path):
            if forbidden(path, name):
                out.append(f"{path.relative_to(ROOT)}:{line} imports {name}")
    return out


def test_engine_imports_neither_console_nor_textual():
    bad = _offences("engine", lambda p, n: n.split(".")[0] in {"console", "textual"})
    assert bad == [], "engine/ must stay headless:\n" + "\n".join(bad)


def test_sim_imports_nothing_from_the_rest_of_engine():
    def forbidden(path: Path, name: str) -> bool:
        return name == "engine" or (name.startswith("engine.") and not name.startswith("engine.sim"))

    bad = _offences("engine/sim", forbidden)
    assert bad == [], "engine/sim is a separate system:\n" + "\n".join(bad)


def test_the_checks_see_the_source_they_guard():
    # a scan that finds no files would pass vacuously
    assert len(list((ROOT / "engine" / "sim").rglob("*.py"))) >= 3
    assert any(n.startswith("engine.") for _, n in _imports(ROOT / "engine" / "core" / "engine.py"))
