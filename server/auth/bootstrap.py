"""Start-up of the auth layer: the pepper, the first admin key, the Authenticator.

Without ``--admin-key`` and with no key stored, the first start creates an admin key and
writes it to ``--admin-key-file`` (mode 0600); the CLI, the demo and the load generator read
that file, so a laptop user needs no set-up. If the file is there but the store is empty (a new
Redis), the file's key is stored again rather than replaced: the file keeps working.
"""
from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path
from typing import Protocol

from oms.server.auth import api_keys
from oms.server.auth.api_keys import ApiKeyRecord
from oms.server.auth.authenticator import Authenticator, static_admin_key
from oms.server.auth.principal import Principal
from oms.server.auth.scopes import ADMIN, SCOPES
from oms.server.config import Config, ConfigError

log = logging.getLogger(__name__)


class BootstrapStore(Protocol):
    async def count_api_keys(self) -> int: ...
    async def create_api_key(self, rec: ApiKeyRecord) -> None: ...
    async def get_api_key(self, key_id: str) -> ApiKeyRecord | None: ...


def write_secret_file(path: str | os.PathLike[str], text: str) -> None:
    """Create ``path`` with mode 0600 (never readable by others, even for a moment)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def load_pepper(config: Config) -> bytes:
    """OMS_AUTH_PEPPER, else the pepper file (created with a random pepper on first start)."""
    if config.auth_pepper:
        return config.auth_pepper.encode()
    p = Path(config.auth_pepper_file)
    if not p.exists():
        try:
            write_secret_file(p, secrets.token_hex(32) + "\n")
        except OSError as e:
            raise ConfigError(f"--auth-pepper-file: cannot create {p}: {e.strerror}") from None
        log.info("created the auth pepper file %s", p)
    return p.read_text(encoding="ascii").strip().encode()


def parse_mtls_principals(spec: str) -> dict[str, Principal]:
    """``CN=scope+scope,CN=scope`` -> {CN: Principal(actor "mtls:<CN>")}."""
    out: dict[str, Principal] = {}
    for entry in filter(None, (e.strip() for e in spec.split(","))):
        cn, _, scopes = entry.partition("=")
        wanted = [s for s in scopes.replace("|", "+").split("+") if s]
        bad = [s for s in wanted if s not in SCOPES]
        if bad:
            raise ConfigError(f"--mtls-principal: unknown scope {bad[0][:40]!r} for CN={cn[:64]}")
        out[cn.strip()] = Principal(actor=f"mtls:{cn.strip()}", scopes=frozenset(wanted))
    return out


def read_key_file(path: str | os.PathLike[str]) -> str | None:
    """The key in a key file, or None when there is none readable."""
    try:
        text = Path(path).read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return text or None


async def ensure_admin_key(store: BootstrapStore, config: Config, pepper: bytes) -> str | None:
    """The bootstrap of the module docstring; returns the path written or re-stored, if any."""
    if config.auth == "off" or config.admin_key or await store.count_api_keys():
        return None
    path = config.admin_key_file
    parsed = api_keys.parse_key(read_key_file(path) or "")
    if parsed is None:
        parsed = api_keys.ParsedKey(api_keys.new_key_id(), api_keys.new_secret())
        write_secret_file(path, api_keys.format_key(parsed.key_id, parsed.secret) + "\n")
        log.warning("created an admin API key in %s (mode 0600); keep it secret", path)
    elif await store.get_api_key(parsed.key_id) is None:
        log.warning("no API key stored: storing the admin key of %s again", path)
    else:
        return None
    import time  # noqa: PLC0415

    await store.create_api_key(ApiKeyRecord(
        key_id=parsed.key_id, secret_hash=api_keys.hash_secret(pepper, parsed.secret),
        name="local admin (bootstrap)", scopes=(ADMIN,), created_at=time.time_ns() // 1_000_000,
        created_by="bootstrap"))
    return path


def build_authenticator(config: Config, store: object, pepper: bytes) -> Authenticator | None:
    """The server's Authenticator; None with ``--auth off``."""
    if config.auth == "off":
        return None
    static = [static_admin_key(config.admin_key)] if config.admin_key else []
    return Authenticator(store, pepper, static_keys=static,  # type: ignore[arg-type]
                         mtls_principals=parse_mtls_principals(config.mtls_principal),
                         cache_s=config.key_cache_s)
