"""Every OmsError subclass defined anywhere in oms.* has its own gRPC code in server/errors.py:
a new error class that nobody mapped must fail here, not ship as a silent FAILED_PRECONDITION."""
from __future__ import annotations

import importlib
import pkgutil

import grpc
import pytest

from oms.engine.errors import OmsError
from oms.server import errors as server_errors


def _import_all(package: str) -> None:
    pkg = importlib.import_module(package)
    for mod in pkgutil.walk_packages(pkg.__path__, package + "."):
        importlib.import_module(mod.name)


def _subclasses(cls: type) -> set[type]:
    out: set[type] = set()
    for sub in cls.__subclasses__():
        out |= {sub} | _subclasses(sub)
    return out


def _oms_error_classes() -> list[type[OmsError]]:
    for package in ("oms.engine", "oms.server"):
        _import_all(package)
    found = {OmsError} | _subclasses(OmsError)
    return sorted((c for c in found if c.__module__.startswith("oms.")),
                  key=lambda c: f"{c.__module__}.{c.__qualname__}")


def test_walk_finds_the_known_classes() -> None:
    names = {c.__qualname__ for c in _oms_error_classes()}
    assert {"OmsError", "ValidationError", "StaleError", "CarrierError",
            "PaymentDeclined", "StoreUnavailable"} <= names


@pytest.mark.parametrize("cls", _oms_error_classes(),
                         ids=lambda c: f"{c.__module__}.{c.__qualname__}")
def test_every_subclass_has_an_explicit_code(cls: type[OmsError]) -> None:
    assert cls in server_errors.explicit_codes(), (
        f"{cls.__module__}.{cls.__qualname__} has no entry in server/errors.py")


def test_retryable_errors_map_to_a_retryable_code() -> None:
    for cls, code in server_errors.explicit_codes().items():
        if cls.retryable:
            # RESOURCE_EXHAUSTED with google.rpc.RetryInfo: a rate limit says when to retry
            assert code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.ABORTED,
                            grpc.StatusCode.RESOURCE_EXHAUSTED), cls


def test_stale_error_is_aborted() -> None:
    from oms.server.redis.store import StaleError

    assert server_errors.code_for(StaleError("order changed")) == grpc.StatusCode.ABORTED


def test_unmapped_subclass_is_internal_not_precondition(caplog: pytest.LogCaptureFixture) -> None:
    class Unmapped(OmsError):
        pass

    assert server_errors.code_for(Unmapped("new kind of error")) == grpc.StatusCode.INTERNAL
    assert "Unmapped" in caplog.text
