"""How the clients (oms, the demo, oms-load, benchmarks) find their API key and open a channel.

The key: ``--api-key``, else ``OMS_API_KEY``, else the admin key file a local oms-server wrote
on first start (``OMS_ADMIN_KEY_FILE``, default ``var/admin.key``). It travels as gRPC metadata
``authorization: Bearer <key>``; ``--tls-ca`` trusts a private CA, and a client certificate
(``--tls-cert/--tls-key``) authenticates by mTLS instead of, or besides, a key.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import grpc

DEFAULT_KEY_FILE = "var/admin.key"
Options = Sequence[tuple[str, Any]]


def key_file() -> str:
    return os.environ.get("OMS_ADMIN_KEY_FILE", DEFAULT_KEY_FILE)


def resolve_api_key(api_key: str | None = None) -> str:
    """The key to send: the explicit one, else OMS_API_KEY, else the key file's; "" if none."""
    if api_key:
        return api_key
    if os.environ.get("OMS_API_KEY"):
        return os.environ["OMS_API_KEY"]
    try:
        return Path(key_file()).read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return ""


def auth_metadata(api_key: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {api_key}"),) if api_key else ()


class _SyncDetails(grpc.ClientCallDetails):
    def __init__(self, method: str, timeout: Any, metadata: Any, credentials: Any,
                 wait_for_ready: Any, compression: Any = None) -> None:
        self.method, self.timeout, self.metadata = method, timeout, metadata
        self.credentials, self.wait_for_ready, self.compression = (credentials, wait_for_ready,
                                                                    compression)


class _KeyInterceptor(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor,
                      grpc.StreamUnaryClientInterceptor, grpc.StreamStreamClientInterceptor):
    """Adds the bearer metadata to every call of a synchronous channel."""

    def __init__(self, metadata: tuple[tuple[str, str], ...]) -> None:
        self.metadata = metadata

    def _go(self, continuation: Any, details: Any, request: Any) -> Any:
        metadata = list(details.metadata or ()) + list(self.metadata)
        return continuation(_SyncDetails(details.method, details.timeout, metadata,
                                         details.credentials, details.wait_for_ready,
                                         getattr(details, "compression", None)), request)

    intercept_unary_unary = intercept_unary_stream = _go
    intercept_stream_unary = intercept_stream_stream = _go


def channel(target: str, *, api_key: str = "", tls_ca: str = "", tls_cert: str = "",
            tls_key: str = "", options: Options = ()) -> grpc.Channel:
    """A synchronous channel to oms-server that sends ``api_key`` on every call; TLS when any
    of the tls_* files is given."""
    from oms.server.auth.tls import channel_credentials  # noqa: PLC0415

    if tls_ca or tls_cert:
        ch = grpc.secure_channel(target, channel_credentials(tls_ca, tls_cert, tls_key),
                                 options=list(options))
    else:
        ch = grpc.insecure_channel(target, options=list(options))
    md = auth_metadata(api_key)
    return grpc.intercept_channel(ch, _KeyInterceptor(md)) if md else ch


def aio_channel(target: str, *, tls_ca: str = "", tls_cert: str = "", tls_key: str = "",
                options: Options = ()) -> grpc.aio.Channel:
    """An asyncio channel (TLS when any tls_* file is given). Pass ``auth_metadata(key)`` as
    each call's metadata: no interceptor on the load generator's hot path."""
    from oms.server.auth.tls import channel_credentials  # noqa: PLC0415

    if tls_ca or tls_cert:
        return grpc.aio.secure_channel(target, channel_credentials(tls_ca, tls_cert, tls_key),
                                       options=list(options))
    return grpc.aio.insecure_channel(target, options=list(options))
