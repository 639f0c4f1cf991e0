"""Starting a redis-server while gRPC threads are busy in the same process (a test restarting a
node under intake, a server restarting its Redis): the child must reach exec. grpcio's fork
handlers abort a child forked with a ``preexec_fn`` under such load (grpc/grpc#43055), so
embedded Redis is started through ``owner.deathbound``, which needs no Python in the child."""
from __future__ import annotations

import subprocess
import threading
import time
from concurrent import futures

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from oms.server.redis import owner


def test_children_started_under_busy_grpc_threads_all_exec() -> None:
    server = grpc.server(futures.ThreadPoolExecutor(4))
    health_pb2_grpc.add_HealthServicer_to_server(health.HealthServicer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    stop = threading.Event()

    def busy() -> None:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
            stub = health_pb2_grpc.HealthStub(ch)
            while not stop.is_set():
                stub.Check(health_pb2.HealthCheckRequest(), timeout=10)

    threads = [threading.Thread(target=busy) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        failed = []
        for i in range(300):  # the old preexec_fn start lost about 2 % of these children
            argv, preexec = owner.deathbound(["true"])
            p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.PIPE, preexec_fn=preexec)
            _, err = p.communicate(timeout=30)
            if p.returncode != 0:
                failed.append((i, p.returncode, err.decode(errors="replace")[-200:]))
        assert not failed, failed[:3]
    finally:
        stop.set()
        for t in threads:
            t.join(10)
        server.stop(None)


def test_a_deathbound_child_gets_sigterm_when_its_starting_thread_ends() -> None:
    got: list[subprocess.Popen[bytes]] = []

    def start() -> None:
        argv, preexec = owner.deathbound(["sleep", "60"])
        got.append(subprocess.Popen(argv, stdin=subprocess.DEVNULL, preexec_fn=preexec))
        time.sleep(0.5)  # setpriv sets the signal once it runs, after Popen has returned

    t = threading.Thread(target=start)
    t.start()
    t.join()
    proc = got[0]
    deadline = time.monotonic() + 20
    while proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.returncode == -15  # SIGTERM, sent when the thread that started it ended
