"""benchmarks/cpu.py: the per-process CPU split the benchmark report prints."""
from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from benchmarks.cpu import CpuSampler, cost_per_order, session_cpu, session_pids

pytestmark = pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="needs Linux /proc")


def _burner(cpu_s: float, *, own_session: bool) -> subprocess.Popen[str]:
    """A child that burns ``cpu_s`` of CPU, says "done", then sleeps (its CPU stays readable)."""
    code = f"import time\nend = time.process_time() + {cpu_s}\nwhile time.process_time() < end: pass\n" \
           "import sys; sys.stdout.write('done\\n'); sys.stdout.flush(); time.sleep(30)"
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                            start_new_session=own_session)


def _done(p: subprocess.Popen[str]) -> bool:
    return p.stdout is not None and p.stdout.readline() == "done\n"


def test_session_cpu_counts_a_child_session_and_nothing_else() -> None:
    # A child in its own session that burns 0.3 s of CPU: its session shows it, ours does not.
    p = _burner(0.3, own_session=True)
    try:
        assert _done(p)
        got = session_cpu(p.pid)
        assert got["redis"] == 0.0
        assert 0.25 <= got["server"] <= 5.0
        assert session_cpu(os.getsid(0))["server"] > 0  # this test process
    finally:
        p.kill()
        p.wait()


def test_session_cpu_reads_the_given_pids_of_its_session_only() -> None:
    p = _burner(0.2, own_session=True)
    try:
        assert _done(p)
        assert session_pids(p.pid) == [p.pid]
        assert session_cpu(p.pid, pids=[p.pid])["server"] >= 0.15
        # a pid of another session (here ours: a pid reused since the scan) is not counted
        assert session_cpu(p.pid, pids=[os.getpid()])["server"] == 0.0
        assert session_cpu(p.pid, pids=[])["server"] == 0.0
    finally:
        p.kill()
        p.wait()
    assert session_cpu(p.pid, pids=[p.pid])["server"] == 0.0  # exited


def test_sampler_interpolates_between_samples() -> None:
    s = CpuSampler(sid=0)
    s.times = [100.0, 101.0, 102.0]
    s.samples = [{"redis": 0.0, "server": 1.0}, {"redis": 0.5, "server": 2.0}, {"redis": 0.5, "server": 4.0}]
    assert s.at(100.5) == {"redis": 0.25, "server": 1.5}
    assert s.between(100.5, 102.0) == {"redis": 0.25, "server": 2.5}
    assert s.at(99.0) is None and s.at(102.5) is None and s.between(99.0, 101.0) is None


def _wait_for_sample_after(s: CpuSampler, t: float) -> None:
    while not s.times or s.times[-1] <= t:
        time.sleep(0.005)


def test_sampler_sees_cpu_used_in_its_session() -> None:
    # The burn runs in a child of this session, not in this process: a busy thread here would
    # starve the sampler's thread of the GIL, stretch the gap between its samples and so spread
    # the burn's CPU over a wider span than [t0, t1] when it interpolates.
    # rescans: the child starts after the sampler did, and is found at a rescan of /proc
    s = CpuSampler(os.getsid(0), interval=0.02, rescan_s=0.1).start()
    p = None
    try:
        _wait_for_sample_after(s, 0.0)
        t0 = time.time()
        p = _burner(0.3, own_session=False)
        assert _done(p)
        # a sample taken after the burn ended, then one after t1, so both ends are bracketed
        time.sleep(0.15)  # a rescan
        _wait_for_sample_after(s, time.time())
        t1 = time.time()
        _wait_for_sample_after(s, t1)
        used = s.between(t0, t1)
    finally:
        s.stop()
        if p is not None:
            p.kill()
            p.wait()
    assert used is not None and used["server"] >= 0.25


def test_cost_per_order() -> None:
    c = cost_per_order({"server": 2.0, "redis": 1.0}, 0.5, orders=10_000, window_s=2.0, cores=2)
    assert c == {"server_us": 200.0, "redis_us": 100.0, "client_us": 50.0, "total_us": 350.0,
                 "cores_busy": 1.75, "ceiling_per_s": round(2 / 350e-6)}
    assert cost_per_order(None, 0.5, 10, 1.0, 2) is None
    assert cost_per_order({"server": 1.0, "redis": 0.0}, 0.0, 0, 1.0, 2) is None
