"""N server processes on one port (SO_REUSEPORT), as ``oms-server --workers`` and the benchmark
echo server run them."""
from __future__ import annotations

import multiprocessing
import signal
import socket
from collections.abc import Callable, Sequence


def fixed_listen(listen: str) -> str:
    """``host:0`` made concrete: every worker must bind the same port."""
    host, _, port = listen.rpartition(":")
    if port != "0":
        return listen
    with socket.socket() as s:
        s.bind((host, 0))
        return f"{host}:{s.getsockname()[1]}"


def run_workers(target: Callable[..., None], args: Sequence[tuple[object, ...]]) -> None:
    """One process per ``args`` entry running ``target(*entry)``, until all exit; SIGTERM and
    SIGINT are passed on. Processes are spawned, not forked: gRPC must not exist before a fork."""
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=target, args=a, daemon=False) for a in args]
    for p in procs:
        p.start()

    def forward(sig: int, _frame: object) -> None:
        for p in procs:
            if p.is_alive():
                p.terminate()

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    for p in procs:
        p.join()
