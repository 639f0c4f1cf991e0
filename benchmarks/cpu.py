"""CPU seconds of a server's processes, read from /proc, so that a benchmark can say what one
order costs in each process (the server's workers, its embedded Redis, the load generator) and
what that allows on this machine's cores: on a machine where every process shares the same
few cores, throughput is bounded by ``cores / CPU per order`` whatever the concurrency.

Linux only: everything here reads /proc. Elsewhere the sampler records nothing and the
benchmark reports no CPU split.
"""
from __future__ import annotations

import bisect
import os
import threading
import time
from collections.abc import Mapping
from pathlib import Path

_CLK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def session_cpu(sid: int, labels: Mapping[int, str] | None = None,
                pids: list[int] | None = None) -> dict[str, float]:
    """CPU seconds (user + system) of every live process in session ``sid``, split into the
    embedded ``redis`` (processes named redis-server) and the rest (``server``); a redis-server
    whose pid is in ``labels`` is counted under its label instead (one entry per node of an
    embedded cluster). ``pids``: read only these (``session_pids``), not all of /proc.

    A server started with ``start_new_session=True`` leads a session that holds its workers and
    the Redis it starts; CPU of a process that already exited is not counted."""
    labels = labels or {}
    out = {"redis": 0.0, "server": 0.0, **{lb: 0.0 for lb in labels.values()}}
    for pid in session_pids(sid) if pids is None else pids:
        f = _stat(pid)
        if f is None or int(f[4]) != sid:  # exited, or the pid was reused
            continue
        ticks = int(f[12]) + int(f[13])  # utime, stime
        if f[0].startswith("redis-server"):
            out[labels.get(pid, "redis")] += ticks / _CLK
        else:
            out["server"] += ticks / _CLK
    return out


def session_pids(sid: int) -> list[int]:
    """The live processes of session ``sid`` (a scan of all of /proc)."""
    return [int(d) for d in os.listdir("/proc") if d.isdigit()
            and (f := _stat(int(d))) is not None and int(f[4]) == sid]


def _stat(pid: int) -> list[str] | None:
    """/proc/PID/stat as [name, state, ppid, pgrp, session, ...] (proc(5) fields 2 on), or None
    once the process has exited."""
    try:
        stat = Path("/proc", str(pid), "stat").read_text()
    except OSError:
        return None
    # the name may hold spaces and parentheses: fields start after the LAST ')'
    return [stat[stat.index("(") + 1:stat.rindex(")")], *stat[stat.rindex(")") + 2:].split()]


class CpuSampler:
    """Samples ``session_cpu(sid)`` every ``interval`` seconds in a thread, so that the CPU used
    between two wall-clock instants (the load generator's measured window) can be read after
    the fact, linearly interpolated between samples."""

    def __init__(self, sid: int, interval: float = 0.1, rescan_s: float = 1.0) -> None:
        self.sid = sid
        self.interval = interval
        # Between scans of /proc for the session's processes, only those are read: a scan of
        # every process costs ~3 ms, 10 times a second (1.5 % of a 2-core machine), on the cores
        # the measured server runs on. A process started meanwhile is found at the next scan,
        # with all its CPU so far.
        self.rescan_s = rescan_s
        self.times: list[float] = []
        self.samples: list[dict[str, float]] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._t = threading.Thread(target=self._run, daemon=True, name=f"cpu-sampler-{sid}")
        # pid -> label for session_cpu; may be filled after start (a label's CPU before then
        # is under "redis", so read windows that start after it was set)
        self.labels: dict[int, str] = {}

    def start(self) -> "CpuSampler":
        if Path("/proc/self/stat").exists():
            self._t.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._t.is_alive():
            self._t.join(2)

    def _run(self) -> None:
        pids: list[int] = []
        scanned = float("-inf")
        while not self._stop.is_set():
            if time.monotonic() - scanned >= self.rescan_s:
                pids, scanned = session_pids(self.sid), time.monotonic()
            t, s = time.time(), session_cpu(self.sid, dict(self.labels), pids)
            with self._lock:
                self.times.append(t)
                self.samples.append(s)
            self._stop.wait(self.interval)

    def at(self, t: float) -> dict[str, float] | None:
        """CPU seconds so far at wall-clock ``t``; None outside the sampled span."""
        with self._lock:
            times, samples = list(self.times), list(self.samples)
        i = bisect.bisect_left(times, t)  # first sample at or after t
        if i == len(times) or (i == 0 and times[0] > t):
            return None
        if times[i] == t:
            return dict(samples[i])
        t0, t1 = times[i - 1], times[i]
        w = (t - t0) / (t1 - t0)
        return {k: samples[i - 1].get(k, 0.0) + w * (samples[i][k] - samples[i - 1].get(k, 0.0))
                for k in samples[i]}

    def between(self, t0: float, t1: float) -> dict[str, float] | None:
        a, b = self.at(t0), self.at(t1)
        if a is None or b is None:
            return None
        return {k: max(0.0, b[k] - a.get(k, 0.0)) for k in b}


def cost_per_order(server_cpu: dict[str, float] | None, client_cpu_s: float, orders: int,
                   window_s: float, cores: int) -> dict[str, float] | None:
    """Microseconds of CPU per order in each process over a measured window, their total, the
    cores busy on average, and ``ceiling_per_s``: the rate this machine's cores would allow if
    they were all busy at that cost (``cores / total``), the figure to hold a target against."""
    if server_cpu is None or orders <= 0 or window_s <= 0:
        return None
    us = {k: v / orders * 1e6 for k, v in server_cpu.items()}
    us["client"] = client_cpu_s / orders * 1e6
    total = sum(us.values())
    out = {f"{k}_us": round(v, 1) for k, v in us.items()}
    out["total_us"] = round(total, 1)
    out["cores_busy"] = round((sum(server_cpu.values()) + client_cpu_s) / window_s, 2)
    out["ceiling_per_s"] = round(cores / total * 1e6, 0) if total > 0 else 0.0
    return out
