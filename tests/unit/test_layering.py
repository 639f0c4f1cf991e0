"""Layering (issue 12): only server/redis/ knows Redis, key names and record fields; engine/
stays pure. A source scan: cheap, and it names the offending line."""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUTSIDE = [p for d in ("server", "engine", "clients") for p in sorted((ROOT / d).rglob("*.py"))
           if "redis" not in p.relative_to(ROOT).parts[:2] or d != "server"]
FORBIDDEN = [
    (re.compile(r"^\s*(import redis|from redis\b)"), "imports redis"),
    (re.compile(r"[\"']oms:"), "names a Redis key"),
    (re.compile(r"from oms\.server\.redis import .*\bkeys\b|\bkeys\.[a-z_]+\("), "uses redis/keys.py"),
    (re.compile(r"\bstore\.(r|raw)\b|\.r\.ping\("), "reaches into the store's client"),
    (re.compile(r"\bextra=|\.register_script\("), "writes raw record fields / scripts"),
]
ENGINE_FORBIDDEN = re.compile(r"^\s*(import|from)\s+(grpc|redis|oms\.v1|oms\.server)\b|_pb2\b")


def _offences(paths: list[Path], rules: list[tuple[re.Pattern[str], str]]) -> list[str]:
    out = []
    for p in paths:
        for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
            for rx, why in rules:
                if rx.search(line):
                    out.append(f"{p.relative_to(ROOT)}:{n}: {why}: {line.strip()}")
    return out


def test_nothing_outside_server_redis_knows_redis() -> None:
    assert OUTSIDE
    assert _offences(OUTSIDE, FORBIDDEN) == []


def test_engine_is_pure() -> None:
    engine = sorted((ROOT / "engine").rglob("*.py"))
    assert engine
    assert _offences(engine, [(ENGINE_FORBIDDEN, "engine imports an outer layer")]) == []
