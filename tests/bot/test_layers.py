"""The dependency rule: bot reaches labeler only through bot/predictor.py, and labeler never
imports bot (it must work in a notebook without Flask or GitHub)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_only_the_predictor_imports_labeler():
    offenders = {p.name: sorted(n for n in _imports(p) if n == "labeler" or n.startswith("labeler."))
                 for p in sorted((ROOT / "bot").glob("*.py")) if p.name != "predictor.py"}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_labeler_never_imports_bot():
    offenders = {str(p.relative_to(ROOT)): sorted(n for n in _imports(p) if n == "bot" or n.startswith("bot."))
                 for p in sorted((ROOT / "labeler").rglob("*.py"))}
    assert {k: v for k, v in offenders.items() if v} == {}
