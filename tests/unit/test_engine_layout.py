"""Shape of engine/ (issue 12 items 4 and 11): pure domain logic in modules a newcomer can
hold. Output formatting (PDF labels, barcodes) lives in server/, and no hand-written engine
module grows past the house limit."""
from __future__ import annotations

import ast
from pathlib import Path

import oms.engine

ENGINE = Path(oms.engine.__file__).resolve().parent
MAX_LINES = 600


def _engine_modules() -> list[Path]:
    return sorted(p for p in ENGINE.rglob("*.py") if "__pycache__" not in p.parts)


def _imported_roots(path: Path) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            roots.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def test_engine_draws_nothing() -> None:
    drawing = {"matplotlib", "PIL", "reportlab"}
    bad = {str(p.relative_to(ENGINE)): sorted(_imported_roots(p) & drawing)
           for p in _engine_modules() if _imported_roots(p) & drawing}
    assert bad == {}


def test_engine_modules_stay_small() -> None:
    big = {str(p.relative_to(ENGINE)): n for p in _engine_modules()
           if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert big == {}


def test_reallocation_package_keeps_its_public_names() -> None:
    from oms.engine import reallocation

    for name in reallocation.__all__:
        assert getattr(reallocation, name) is not None, name


def test_packing_keeps_its_public_names() -> None:
    from oms.engine import boxes, pack_geometry, packing

    for name in packing.__all__:
        assert getattr(packing, name) is not None, name
    # one class per name, whichever module it is imported from
    assert packing.Box is boxes.Box and packing.fits is pack_geometry.fits
