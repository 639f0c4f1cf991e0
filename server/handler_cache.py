"""The wrapped handlers of a server interceptor, built once per method instead of per call."""
from __future__ import annotations

from collections.abc import Callable

import grpc


class HandlerCache(dict[str, tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]]):
    """Method name -> (the handler it wrapped, the wrapped one). An interceptor that wraps a
    method's handler the same way on every call (its closures hold no per-call state) builds
    the wrapper once here; a different handler under the same name (a re-registered service)
    is wrapped again. Bounded by the registered methods: callers store no None handler, which
    is what an unknown method gives."""

    def wrap(self, method: str, handler: grpc.RpcMethodHandler,
             build: Callable[[], grpc.RpcMethodHandler]) -> grpc.RpcMethodHandler:
        hit = self.get(method)
        if hit is not None and hit[0] is handler:
            return hit[1]
        wrapped = build()
        self[method] = (handler, wrapped)
        return wrapped


__all__ = ["HandlerCache"]
