"""Every name callers import from engine/routing.py and engine/batching.py still comes from
there, as the very object the module it moved to defines (their size: test_engine_layout)."""
from __future__ import annotations

from oms.engine import (
    batch_exact,
    batch_search,
    batch_wave,
    batching,
    route_dp,
    route_heuristics,
    routing,
)

MODULES = (routing, route_dp, route_heuristics, batching, batch_wave, batch_search, batch_exact)


def test_all_names_exist() -> None:
    for m in MODULES:
        for name in getattr(m, "__all__", ()):
            assert getattr(m, name, None) is not None, (m.__name__, name)


def test_old_modules_reexport_the_same_objects() -> None:
    assert routing.RR_TABLES is route_dp.RR_TABLES
    assert routing.exact_length_of is route_dp.exact_length_of
    for m in (batch_wave, batch_search, batch_exact):
        for name in m.__all__:
            assert getattr(batching, name) is getattr(m, name), name
