"""TLS and mTLS on the real server with certificates generated here (``cryptography``, no
network): a TLS round trip with a key, plaintext refused on a TLS port, and mTLS, where the
client certificate's CN is the principal (--mtls-principal) and no key is needed."""
from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from oms.clients.client import ClientError, OmsClient
from tests.conftest import ADMIN_KEY, ServerThread, server_config

pytestmark = pytest.mark.timeout(120)

DEADLINE = 20.0  # bounds every call; a failed handshake answers well before it
UNAVAILABLE = grpc.StatusCode.UNAVAILABLE


# ---- certificates --------------------------------------------------------------------------
@dataclass(frozen=True)
class Issued:
    cert: str  # PEM file paths
    key: str


class CA:
    def __init__(self, directory: Path, name: str) -> None:
        self.dir = directory
        self.key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        self.name = subject
        self.cert = (self._builder(subject, self.key.public_key())
                     .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
                     .add_extension(x509.KeyUsage(False, False, False, False, False, True, True,
                                                  False, False), True)
                     .sign(self.key, hashes.SHA256()))
        self.path = str(directory / f"{name}.pem")
        Path(self.path).write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))

    def _builder(self, subject: x509.Name, public_key: object) -> x509.CertificateBuilder:
        now = datetime.datetime.now(datetime.timezone.utc)
        return (x509.CertificateBuilder().subject_name(subject).issuer_name(
            getattr(self, "name", subject)).public_key(public_key)  # type: ignore[arg-type]
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1)))

    def issue(self, cn: str, *, server: bool = False) -> Issued:
        key = ec.generate_private_key(ec.SECP256R1())
        b = self._builder(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]),
                          key.public_key())
        b = b.add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
        if server:
            b = b.add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                False)
            b = b.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
        else:
            b = b.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), False)
        cert = b.sign(self.key, hashes.SHA256())
        stem = self.dir / f"{self.cert.subject.rfc4514_string()}-{cn}".replace("=", "_")
        cert_path, key_path = Path(f"{stem}.crt"), Path(f"{stem}.key")
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                               serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
        key_path.chmod(0o600)
        return Issued(str(cert_path), str(key_path))


@dataclass(frozen=True)
class Pki:
    ca: CA
    server: Issued
    reporter: Issued  # mapped: reporting
    ops: Issued  # mapped: admin
    stranger: Issued  # a CN no principal names
    foreign: Issued  # CN "reporter", signed by another CA


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    d = tmp_path_factory.mktemp("pki")
    ca, other = CA(d, "oms-test-ca"), CA(d, "other-ca")
    return Pki(ca, ca.issue("oms-server", server=True), ca.issue("reporter"), ca.issue("ops"),
               ca.issue("stranger"), other.issue("reporter"))


def _serve(redis_url: str, **kw: object) -> Iterator[ServerThread]:
    st = ServerThread(server_config(redis_url, **kw)).start()
    try:
        yield st
    finally:
        st.stop()


@pytest.fixture(scope="module")
def tls_server(redis_url: str, pki: Pki) -> Iterator[ServerThread]:
    yield from _serve(redis_url, tls_cert=pki.server.cert, tls_key=pki.server.key)


@pytest.fixture(scope="module")
def mtls_server(redis_url: str, pki: Pki) -> Iterator[ServerThread]:
    yield from _serve(redis_url, tls_cert=pki.server.cert, tls_key=pki.server.key,
                      tls_client_ca=pki.ca.path, mtls_principal="reporter=reporting,ops=admin")


def code_of(fn: object) -> grpc.StatusCode:
    try:
        fn()  # type: ignore[operator]
    except ClientError as e:
        return e.code
    return grpc.StatusCode.OK


# ---- TLS -------------------------------------------------------------------------------------
@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_tls_round_trip_with_a_key(tls_server: ServerThread, pki: Pki, host: str) -> None:
    with OmsClient(f"{host}:{tls_server.port}", timeout=DEADLINE, api_key=ADMIN_KEY,
                   tls_ca=pki.ca.path) as c:
        c.upsert_warehouse("TLS-1", "over TLS", postal_code="50309")
        assert "TLS-1" in {w.id for w in c.list_warehouses()}


def test_tls_still_needs_a_key(tls_server: ServerThread, pki: Pki) -> None:
    with OmsClient(f"127.0.0.1:{tls_server.port}", timeout=DEADLINE, api_key="",
                   tls_ca=pki.ca.path) as c:
        assert code_of(c.get_stats) == grpc.StatusCode.UNAUTHENTICATED


def test_plaintext_is_refused_on_a_tls_port(tls_server: ServerThread) -> None:
    with OmsClient(f"127.0.0.1:{tls_server.port}", timeout=DEADLINE, api_key=ADMIN_KEY) as c:
        assert code_of(c.get_stats) == UNAVAILABLE


def test_a_client_that_does_not_trust_the_ca_fails(tls_server: ServerThread, pki: Pki,
                                                   tmp_path: Path) -> None:
    other = CA(tmp_path, "untrusted")
    with OmsClient(f"127.0.0.1:{tls_server.port}", timeout=DEADLINE, api_key=ADMIN_KEY,
                   tls_ca=other.path) as c:
        assert code_of(c.get_stats) == UNAVAILABLE


# ---- mTLS ------------------------------------------------------------------------------------
def mtls_client(server: ServerThread, pki: Pki, who: Issued | None, api_key: str = ""
                ) -> OmsClient:
    return OmsClient(f"127.0.0.1:{server.port}", timeout=DEADLINE, api_key=api_key,
                     tls_ca=pki.ca.path, tls_cert=who.cert if who else "",
                     tls_key=who.key if who else "")


def test_mtls_principal_without_a_key(mtls_server: ServerThread, pki: Pki) -> None:
    with mtls_client(mtls_server, pki, pki.reporter) as c:
        assert c.get_stats() is not None
        with pytest.raises(ClientError) as e:
            c.set_stock("DSM", "SKU-A", 5)
    assert e.value.code == grpc.StatusCode.PERMISSION_DENIED
    assert "'inventory:write'" in e.value.message and "mtls:reporter" in e.value.message


def test_mtls_needs_a_client_certificate(mtls_server: ServerThread, pki: Pki) -> None:
    with mtls_client(mtls_server, pki, None, api_key=ADMIN_KEY) as c:
        assert code_of(c.get_stats) == UNAVAILABLE  # the handshake fails: a key is not enough


def test_mtls_refuses_a_certificate_of_another_ca(mtls_server: ServerThread, pki: Pki) -> None:
    with mtls_client(mtls_server, pki, pki.foreign, api_key=ADMIN_KEY) as c:
        assert code_of(c.get_stats) == UNAVAILABLE


def test_mtls_unmapped_cn_without_a_key(mtls_server: ServerThread, pki: Pki) -> None:
    with mtls_client(mtls_server, pki, pki.stranger) as c:
        with pytest.raises(ClientError) as e:
            c.get_stats()
    assert e.value.code == grpc.StatusCode.UNAUTHENTICATED
    assert "stranger" in e.value.message


def test_mtls_with_a_key_the_key_decides(mtls_server: ServerThread, pki: Pki) -> None:
    with mtls_client(mtls_server, pki, pki.stranger, api_key=ADMIN_KEY) as c:
        assert c.get_stats() is not None
    with mtls_client(mtls_server, pki, pki.ops, api_key="oms_0000000000000000_" + "x" * 43) as c:
        # a bad key is refused even though the certificate alone would be admin
        assert code_of(c.get_stats) == grpc.StatusCode.UNAUTHENTICATED


def test_mtls_actor_is_recorded(mtls_server: ServerThread, pki: Pki) -> None:
    with mtls_client(mtls_server, pki, pki.ops) as c:
        made = c.create_api_key("made by the mesh", ["reporting"])
        try:
            assert made.api_key.created_by == "mtls:ops"
            listed = {k.key_id: k.created_by for k in c.list_api_keys()}
            assert listed[made.key_id] == "mtls:ops"
        finally:
            c.revoke_api_key(made.key_id)
