"""The console's session table on a hand-driven clock: idle and absolute expiry, the bound on
sessions, the sign-in form's CSRF token, and scope checks (admin implies every scope)."""
from __future__ import annotations

import pytest

from oms.server.web.cli import parse_args
from oms.server.web.console.session import SessionStore, safe_next


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make(idle: float = 10.0, absolute: float = 100.0, capacity: int = 100) -> tuple[SessionStore,
                                                                                      Clock]:
    clock = Clock()
    return SessionStore(idle, absolute, capacity=capacity, clock=clock), clock


def test_idle_expiry_and_touch() -> None:
    store, clock = make()
    s = store.create("k", "a", "n", frozenset({"reporting"}), ())
    clock.now += 9
    assert store.get(s.id) is s  # touched: the idle clock restarts
    clock.now += 9
    assert store.get(s.id) is s
    clock.now += 10.5
    assert store.get(s.id) is None and len(store) == 0


def test_absolute_expiry_despite_activity() -> None:
    store, clock = make()
    s = store.create("k", "a", "n", frozenset(), ())
    for _ in range(10):
        clock.now += 9
        assert store.get(s.id) is s
    clock.now += 9  # 99 s: still inside 100
    assert store.get(s.id) is s
    clock.now += 2
    assert store.get(s.id) is None


def test_alive_does_not_touch() -> None:
    store, clock = make()
    s = store.create("k", "a", "n", frozenset(), ())
    clock.now += 6
    assert store.alive(s)
    clock.now += 6
    assert not store.alive(s)


def test_bounded_evicts_least_recently_used() -> None:
    store, clock = make(capacity=3)
    a, b, c = (store.create(k, k, k, frozenset(), ()) for k in "abc")
    clock.now += 1
    assert store.get(a.id) is a  # a is now the most recently used
    d = store.create("d", "d", "d", frozenset(), ())
    assert len(store) == 3
    assert store.get(b.id) is None
    assert all(store.get(x.id) is x for x in (a, c, d))


def test_ids_and_tokens_are_distinct_and_unguessable() -> None:
    store, _ = make()
    sessions = [store.create("k", "a", "n", frozenset(), ()) for _ in range(50)]
    assert len({s.id for s in sessions}) == 50 and len({s.csrf for s in sessions}) == 50
    assert all(len(s.id) >= 40 and "k" != s.id for s in sessions)
    assert store.get("") is None and store.get("x" * 1000) is None
    assert "'k'" not in repr(sessions[0]) and sessions[0].id not in repr(sessions[0])


def test_login_token_is_bound_to_its_nonce_and_process() -> None:
    store, _ = make()
    other, _ = make()
    t = store.login_token("nonce-1")
    assert store.login_token_ok("nonce-1", t)
    assert not store.login_token_ok("nonce-2", t)
    assert not other.login_token_ok("nonce-1", t)
    assert not store.login_token_ok("", t) and not store.login_token_ok("nonce-1", "")


def test_admin_implies_every_scope() -> None:
    store, _ = make()
    admin = store.create("k", "a", "n", frozenset({"admin"}), ())
    reader = store.create("k", "a", "n", frozenset({"orders:read"}), ())
    assert admin.has("orders:write") and admin.has("reporting")
    assert reader.has("orders:read") and not reader.has("orders:write")


def test_safe_next_refuses_other_hosts() -> None:
    assert safe_next("/orders?status=ON_HOLD")
    for bad in ("//evil.example", "https://evil.example", "/\\evil.example", "orders", "",
                "/a\nb"):
        assert not safe_next(bad), bad


def test_cli_session_and_tls_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMS_API_KEY", "oms_x_y")
    assert parse_args([]).session_idle_s == 1800
    assert parse_args(["--session-idle-s", "5"]).session_idle_s == 5
    monkeypatch.setenv("OMS_WEB_SESSION_IDLE_S", "60")
    monkeypatch.setenv("OMS_WEB_TLS_CERT", "c.pem")
    monkeypatch.setenv("OMS_WEB_TLS_KEY", "k.pem")
    cfg = parse_args([])
    assert (cfg.session_idle_s, cfg.tls_cert, cfg.tls_key) == (60, "c.pem", "k.pem")
    for bad in (["--session-idle-s", "0"], ["--session-idle-s", "50000"],
                ["--tls-key", ""]):
        with pytest.raises(SystemExit):
            parse_args(bad)
