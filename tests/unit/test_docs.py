"""docs/ARCHITECTURE.md stays true: every module or folder it names exists."""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _named_paths(text: str) -> set[str]:
    return {m for m in re.findall(r"`([A-Za-z0-9_./-]+\.py|[A-Za-z0-9_.-]+/(?:[A-Za-z0-9_.-]+/)*)`", text)}


def test_every_module_architecture_names_exists() -> None:
    text = (ROOT / "docs" / "ARCHITECTURE.md").read_text()
    names = _named_paths(text)
    assert len(names) > 40  # the module map is there
    tree = {p.relative_to(ROOT).as_posix() for p in ROOT.rglob("*")
            if ".venv" not in p.parts and "__pycache__" not in p.parts}
    basenames = {Path(p).name for p in tree}
    missing = []
    for n in sorted(names):
        if n.startswith(("../", "oms/v1/")) or "*" in n:
            continue
        rel = n.rstrip("/")
        if "/" in rel:
            # a path: exists from the root, or inside one of the top-level folders
            if not any(c in tree for c in (rel, f"server/{rel}", f"engine/{rel}", f"clients/{rel}",
                                            f"engine/reallocation/{rel}", f"clients/load/{rel}")):
                missing.append(n)
        elif rel not in basenames:
            missing.append(n)
    assert not missing, f"docs/ARCHITECTURE.md names modules that do not exist: {missing}"


def test_the_module_map_lists_every_model_class() -> None:
    import inspect

    from oms.engine import models

    row = next(line for line in (ROOT / "docs" / "ARCHITECTURE.md").read_text().splitlines()
               if line.startswith("| `engine/models.py`"))
    classes = {n for n, c in inspect.getmembers(models, inspect.isclass)
               if c.__module__ == models.__name__}
    assert {c for c in classes if f"`{c}`" not in row} == set()


def test_the_readme_scope_table_is_the_code_table() -> None:
    from oms.server.auth.scopes import readme_rows

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    missing = [row for row in readme_rows() if row not in readme]
    assert not missing, "README.md's Security scope table is out of step:\n" + "\n".join(missing)
