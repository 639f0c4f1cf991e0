"""Server reflection that also resolves method symbols (``oms.v1.OrderService.PlaceOrder``).

grpcurl's ``describe Service.Method`` asks the reflection service for the file containing the
method's full name. The upb descriptor pool behind ``descriptor_pool.Default()`` resolves
services, messages, fields and enums but not methods, so the stock servicer answered NOT_FOUND
("Symbol not found") for every method, even ``grpc.health.v1.Health.Check``. The pool below
falls back to the service named by the symbol's prefix when it has a method of that name.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import grpc
from google.protobuf import descriptor, descriptor_pool
from grpc_reflection.v1alpha import reflection


class MethodAwarePool:
    """A descriptor pool (delegating everything to ``pool``) whose FindFileContainingSymbol
    also finds ``<service>.<method>``."""

    def __init__(self, pool: descriptor_pool.DescriptorPool) -> None:
        self._pool = pool

    def __getattr__(self, name: str) -> Any:
        return getattr(self._pool, name)

    def FindFileContainingSymbol(self, symbol: str) -> descriptor.FileDescriptor:  # noqa: N802
        try:
            return self._pool.FindFileContainingSymbol(symbol)
        except KeyError:
            service_name, _, method = symbol.rpartition(".")
            if service_name and method:
                try:
                    service = self._pool.FindServiceByName(service_name)
                except KeyError:
                    pass
                else:
                    if method in service.methods_by_name:
                        return service.file
            raise


def enable_reflection(service_names: Iterable[str], server: grpc.aio.Server) -> None:
    """Add the reflection service (listing ``service_names``) to ``server``."""
    reflection.enable_server_reflection(
        tuple(service_names), server, pool=MethodAwarePool(descriptor_pool.Default()))
