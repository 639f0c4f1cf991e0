"""TLS for the server (``--tls-cert/--tls-key``, mTLS with ``--tls-client-ca``) and for the
clients (``--tls-ca`` to trust a private CA, an optional client certificate for mTLS)."""
from __future__ import annotations

from pathlib import Path

import grpc


def _read(path: str) -> bytes:
    return Path(path).read_bytes()


def server_credentials(cert: str, key: str, client_ca: str = "") -> grpc.ServerCredentials:
    """TLS credentials; with ``client_ca`` every client must present a certificate it signed."""
    return grpc.ssl_server_credentials(
        [(_read(key), _read(cert))], root_certificates=_read(client_ca) if client_ca else None,
        require_client_auth=bool(client_ca))


def channel_credentials(ca: str = "", cert: str = "", key: str = "") -> grpc.ChannelCredentials:
    """Client TLS: trust ``ca`` (else the system roots); present ``cert``/``key`` for mTLS."""
    return grpc.ssl_channel_credentials(
        root_certificates=_read(ca) if ca else None,
        private_key=_read(key) if key else None,
        certificate_chain=_read(cert) if cert else None)
