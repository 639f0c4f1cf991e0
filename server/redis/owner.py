"""One owner per embedded Redis data directory, and a redis-server that dies with its owner.

- ``DataDirLock``: an exclusive ``flock`` on ``redis.lock`` in the data directory, held by the
  process that runs the directory's redis-server for as long as it lives. The kernel drops it
  when that process dies, however it dies (kill -9 included), so a stale lock cannot exist.
  Processes that only connect to the socket (``oms-wave``, ``oms-notify``) never take it.
- ``deathbound``: how to start a child that Linux sends SIGTERM (Redis flushes its AOF and
  exits) when the thread that started it dies: through ``setpriv --pdeathsig`` where it
  exists, else with ``die_with_parent``, a ``preexec_fn``.
- ``stop_survivor``: a redis-server left behind on the directory (by an owner of an older
  version, or one that died before its child got the signal) is stopped before a new one starts,
  so two never write one AOF.
"""
from __future__ import annotations

import ctypes
import fcntl
import logging
import os
import shutil
import signal
import time
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

LOCK_FILE = "redis.lock"
PID_FILE = "redis.pid"
_PR_SET_PDEATHSIG = 1


class DataDirBusy(Exception):
    """Another live process owns the data directory."""


class DataDirLock:
    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / LOCK_FILE
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        if self._fd is not None:
            return
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = os.read(fd, 32).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise DataDirBusy(f"data directory {self.path.parent} is in use by another "
                              f"oms-server (pid {owner}); stop it or use another --data-dir") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)  # closing the only descriptor drops the flock


def deathbound(argv: list[str]) -> tuple[list[str], Callable[[], None] | None]:
    """``(argv, preexec_fn)`` for ``subprocess.Popen`` of a child that gets SIGTERM when the
    thread that started it dies.

    ``setpriv --pdeathsig TERM`` (util-linux) sets the signal and execs the child under the
    same pid, so no Python runs between fork and exec and the fork can be a vfork. A
    ``preexec_fn`` forces a full fork, whose child runs grpcio's fork handlers; with gRPC
    threads busy in the parent these abort the child before it execs (grpc/grpc#43055; 6 of
    300 such spawns here), which is how a test restarting a cluster node under intake failed.
    setpriv sets the signal once it runs: a starter that dies in that instant leaves the child
    running, and ``stop_survivor`` stops it at the next start (as for an owner killed before
    its child got the signal)."""
    setpriv = shutil.which("setpriv")
    if setpriv:
        return [setpriv, "--pdeathsig", "TERM", "--", *argv], None
    return argv, die_with_parent()


def die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` setting the parent-death signal, or None where prctl is missing.

    Linux sends it when the *thread* that forked the child exits, so start children from a
    thread that lives as long as their owner (the main thread, or the supervisor's)."""
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl  # resolved before the fork
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl: no signal would come
            os._exit(1)

    return preexec


def set_parent_death_signal(sig: int = signal.SIGTERM) -> None:
    """Ask for ``sig`` when this process's parent dies (from a child just started, e.g. a
    spawned server worker); exit at once if the parent is already gone. Linux only."""
    parent = os.getppid()
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:
        os._exit(1)


def write_pid(data_dir: Path, pid: int) -> None:
    (data_dir / PID_FILE).write_text(f"{pid}\n")


def remove_pid(data_dir: Path, pid: int) -> None:
    path = data_dir / PID_FILE
    try:
        if path.read_text().strip() == str(pid):
            path.unlink()
    except (OSError, ValueError):
        pass


def _alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    except OSError:  # no /proc: ask the kernel
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    state = next((ln.split()[1] for ln in status.splitlines() if ln.startswith("State:")), "")
    return state != "Z"  # a zombie holds no files and serves nothing


def _is_redis_on(pid: int, data_dir: Path) -> bool:
    """Is ``pid`` a redis-server working in ``data_dir`` (Redis chdirs to its --dir)?"""
    try:
        comm = Path(f"/proc/{pid}/comm").read_text().strip()
        cwd = Path(os.readlink(f"/proc/{pid}/cwd"))
    except OSError:
        return False
    return comm.startswith("redis-server") and cwd == data_dir


def stop_survivor(data_dir: Path, timeout_s: float = 10.0) -> int | None:
    """Stop the redis-server a previous owner left on ``data_dir`` (found by its pid file);
    returns its pid, or None when there was none. Call with the lock held."""
    try:
        pid = int((data_dir / PID_FILE).read_text().strip())
    except (OSError, ValueError):
        return None
    if pid <= 0 or pid == os.getpid() or not _is_redis_on(pid, data_dir):
        return None
    log.warning("stopping redis-server pid %d left running on %s by a previous owner", pid, data_dir)
    for sig, wait_s in ((signal.SIGTERM, timeout_s), (signal.SIGKILL, 5.0)):
        try:
            os.kill(pid, sig)  # SIGTERM: Redis flushes its AOF, then exits
        except ProcessLookupError:
            return pid
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            if not _alive(pid):
                return pid
            time.sleep(0.02)
    return pid
