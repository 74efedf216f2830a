"""Real Redis topologies for tests, started from the `redis-server` binary on free ports:
a Redis Cluster (primaries plus one replica each, made with `redis-cli --cluster create`) and
a Sentinel set (one primary, one replica, three sentinels). Tests can kill a node to force a
failover; `close()` stops every process this object started."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from tests.support.ports import EPHEMERAL_START, free_port, is_free
from tests.support.redis_server import RedisNode, ping, redis_binary

CLUSTER_NODE_TIMEOUT_MS = 1000  # how long a dead primary goes unnoticed: failover in ~2 s
# The suite's shared cluster is never killed on purpose: a node the loaded machine kept from
# answering gossip for 1 s must not be failed over under the tests (Redis's default).
CALM_NODE_TIMEOUT_MS = 15000
SENTINEL_DOWN_AFTER_MS = 1000
# Redis 7 waits 5 s before a diskless full sync (to batch replicas): a replica killed or
# promoted before its first sync has no data to serve, and a cluster replica that never synced
# refuses to take over at all ("disconnected from master for too long").
REPLICATION_OPTIONS = ["--repl-diskless-sync-delay", "0"]


CLUSTER_BUS_OFFSET = 10_000  # Redis listens for its cluster bus on port + 10000


def cluster_ports(count: int) -> list[int]:
    """Free ports whose cluster-bus port is free too, both below the ephemeral range
    (tests/support/ports.py says why)."""
    chosen: list[int] = []
    while len(chosen) < count:
        port = free_port(below=EPHEMERAL_START - CLUSTER_BUS_OFFSET)
        taken = {*chosen, *(p + CLUSTER_BUS_OFFSET for p in chosen)}
        if port in taken or port + CLUSTER_BUS_OFFSET in taken:
            continue
        if is_free(port + CLUSTER_BUS_OFFSET):
            chosen.append(port)
    return chosen


def _cli(port: int, *args: str, timeout: float = 10) -> str:
    done = subprocess.run(  # noqa: S603 - our own binary and arguments
        [redis_binary("redis-cli"), "-p", str(port), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return done.stdout


def _role(port: int) -> str:
    """`master` or `slave` (INFO's words), or "" when the node does not answer."""
    for line in _cli(port, "info", "replication").splitlines():
        if line.startswith("role:"):
            return line.split(":", 1)[1].strip()
    return ""


def _link_up(port: int) -> bool:
    """A replica finished its sync and is connected to its primary."""
    return "master_link_status:up" in _cli(port, "info", "replication")


def _is_synced_replica(port: int) -> bool:
    return _role(port) == "slave" and _link_up(port)


def _replication(port: int) -> tuple[int, list[int]]:
    """A primary's replication offset and each of its replicas' acknowledged offsets."""
    offset, replicas = 0, []
    for line in _cli(port, "info", "replication").splitlines():
        if line.startswith("master_repl_offset:"):
            offset = int(line.split(":", 1)[1])
        elif line.startswith("slave") and "offset=" in line:
            fields = dict(item.split("=", 1) for item in line.split(":", 1)[1].split(","))
            replicas.append(int(fields["offset"]))
    return offset, replicas


def wait_replicated(primary: int, timeout: float = 10) -> None:
    """Every replica of `primary` acknowledged all it had written when this was called:
    replication is asynchronous, so only then does a crash lose none of those writes."""
    written, _ = _replication(primary)

    def caught_up() -> bool:
        _, acknowledged = _replication(primary)
        return bool(acknowledged) and min(acknowledged) >= written

    _wait(caught_up, f"the replicas of {primary} to catch up", timeout)


def _wait(condition: object, what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(condition) and condition():
            return
        time.sleep(0.05)
    raise RuntimeError(f"timed out waiting for {what}")


class RedisClusterTopology:
    """`primaries` primaries with `replicas` replica(s) each, slots spread by redis-cli."""

    def __init__(
        self,
        primaries: int = 3,
        replicas: int = 1,
        *,
        node_timeout_ms: int = CLUSTER_NODE_TIMEOUT_MS,
    ) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="agent-service-cluster-"))
        self.replicas = replicas
        self.primary_count = primaries
        ports = cluster_ports(primaries * (1 + replicas))
        options = [
            "--cluster-enabled",
            "yes",
            "--cluster-node-timeout",
            str(node_timeout_ms),
            "--cluster-config-file",
            "nodes.conf",
            *REPLICATION_OPTIONS,
        ]
        self.nodes = [RedisNode(port, self.dir, options) for port in ports]
        self._created = False
        self._serving: set[int] = set()

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{node.port}" for node in self.nodes[:3])

    def start(self) -> None:
        for node in self.nodes:
            node.start()
        if not self._created:
            done = subprocess.run(  # noqa: S603
                [
                    redis_binary("redis-cli"),
                    "--cluster",
                    "create",
                    *(f"127.0.0.1:{node.port}" for node in self.nodes),
                    "--cluster-replicas",
                    str(self.replicas),
                    "--cluster-yes",
                ],
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            if done.returncode != 0:
                raise RuntimeError(f"redis-cli --cluster create failed: {done.stdout}{done.stderr}")
            self._created = True
        self.wait_healthy()
        _wait(self._replicas_in_sync, "every replica to finish its first sync")
        self._serving = set(self.primaries())  # what wait_promoted compares with

    def _replicas_in_sync(self) -> bool:
        replicas = [node for node in self.nodes if node.process and _role(node.port) == "slave"]
        return len(replicas) >= len(self.nodes) - len(self.primaries()) and all(
            _link_up(node.port) for node in replicas
        )

    def wait_promoted(self, killed: int, timeout: float = 20) -> int:
        """After `killed` (a primary) died: wait until its replica serves its slots and every
        running node sees all slots served again; returns the new primary's port."""

        def taken_over() -> bool:
            serving = set(self.primaries())
            return killed not in serving and len(serving) == self.primary_count

        _wait(taken_over, f"a replica to take over from {killed}", timeout)
        self.wait_healthy(timeout)
        promoted = (set(self.primaries()) - self._serving).pop()
        self._serving = set(self.primaries())
        return promoted

    def wait_replicated(self) -> None:
        for port in self.primaries():
            wait_replicated(port)

    def primary_holding(self, pattern: str) -> int:
        """The port of the primary holding a key matching `pattern` (SCAN MATCH)."""
        for port in self.primaries():
            if _cli(port, "--scan", "--pattern", pattern).strip():
                return port
        raise RuntimeError(f"no primary holds a key matching {pattern!r}")

    def restart_as_replica(self, port: int) -> None:
        """Start a killed node again: its nodes.conf makes it rejoin, and the cluster turns
        the old primary into a replica of the node that took over."""
        self.node(port).start()
        self.wait_healthy()
        _wait(lambda: _is_synced_replica(port), f"{port} to rejoin as replica")

    def wait_healthy(self, timeout: float = 30) -> None:
        """Every running node says the cluster is ok and sees every slot served."""

        def healthy() -> bool:
            for node in self.nodes:
                if node.process is None:
                    continue
                info = _cli(node.port, "cluster", "info")
                if "cluster_state:ok" not in info or "cluster_slots_ok:16384" not in info:
                    return False
            return True

        _wait(healthy, "the cluster to be healthy", timeout)

    def primaries(self) -> list[int]:
        """Ports of the nodes serving slots now."""
        for node in self.nodes:
            if node.process is None:
                continue
            lines = _cli(node.port, "cluster", "nodes").splitlines()
            ports = []
            for line in lines:
                fields = line.split()
                if "master" in fields[2] and "fail" not in fields[2] and len(fields) > 8:
                    ports.append(int(fields[1].split("@")[0].rsplit(":", 1)[1]))
            return sorted(ports)
        return []

    def node(self, port: int) -> RedisNode:
        return next(node for node in self.nodes if node.port == port)

    def flush(self) -> None:
        for port in self.primaries():
            _cli(port, "flushall")

    def close(self) -> None:
        for node in self.nodes:
            node.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class RedisSentinelTopology:
    """One primary, one replica and three sentinels watching them as `primary_name`."""

    def __init__(self, primary_name: str = "agents") -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="agent-service-sentinel-"))
        self.primary_name = primary_name
        data_ports = cluster_ports(2)
        self.data = [
            RedisNode(data_ports[0], self.dir, [*REPLICATION_OPTIONS]),
            RedisNode(
                data_ports[1],
                self.dir,
                [*REPLICATION_OPTIONS, "--replicaof", "127.0.0.1", str(data_ports[0])],
            ),
        ]
        self.sentinels: list[RedisNode] = []
        for port in cluster_ports(3):
            config = self.dir / f"sentinel-{port}.conf"
            config.write_text(
                f"port {port}\nbind 127.0.0.1\n"
                f"sentinel monitor {primary_name} 127.0.0.1 {data_ports[0]} 2\n"
                f"sentinel down-after-milliseconds {primary_name} {SENTINEL_DOWN_AFTER_MS}\n"
                f"sentinel failover-timeout {primary_name} 10000\n"
                f"sentinel parallel-syncs {primary_name} 1\n"
            )
            node = RedisNode(port, self.dir, ["--sentinel"])
            node.extra = [str(config), "--sentinel"]
            self.sentinels.append(node)

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{node.port}" for node in self.sentinels)
        return f"redis+sentinel://{hosts}/{self.primary_name}"

    def start(self) -> None:
        for node in self.data:
            node.start()
        for sentinel in self.sentinels:
            self._start_sentinel(sentinel)
        _wait(lambda: self.primary_port() is not None, "the sentinels to name a primary")
        _wait(self._replica_in_sync, "the replica to sync")

    def _start_sentinel(self, node: RedisNode) -> None:
        node.process = subprocess.Popen(  # noqa: S603
            [redis_binary("redis-server"), *node.extra],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait(lambda: ping(node.port), f"sentinel on {node.port}")

    def _replica_in_sync(self) -> bool:
        primary = self.primary_port()
        replicas = [node.port for node in self.data if node.process and node.port != primary]
        return primary is not None and all(_link_up(port) for port in replicas)

    def wait_promoted(self, killed: int, timeout: float = 20) -> int:
        """After the primary `killed` died: wait until the sentinels name another node and
        that node says it is a primary; returns its port."""

        def promoted() -> bool:
            port = self.primary_port()
            return port is not None and port != killed and _role(port) == "master"

        _wait(promoted, f"the sentinels to promote a replica of {killed}", timeout)
        return self.primary_port() or 0  # promoted() just saw a port

    def wait_replicated(self) -> None:
        wait_replicated(self.primary_port() or 0)  # no port: _cli answers "", the wait fails

    def restart_as_replica(self, port: int, timeout: float = 30) -> None:
        """Start a killed data node again: the sentinels reconfigure it as a replica of the
        primary they promoted, on their 10 s INFO cycle (so ~11 s, more on a busy machine)."""
        self.node(port).start()
        _wait(lambda: _is_synced_replica(port), f"{port} to rejoin as replica", timeout)

    def primary_port(self) -> int | None:
        for sentinel in self.sentinels:
            if sentinel.process is None:
                continue
            reply = _cli(
                sentinel.port, "sentinel", "get-master-addr-by-name", self.primary_name
            ).split()
            if len(reply) == 2 and reply[1].isdigit():
                return int(reply[1])
        return None

    def node(self, port: int) -> RedisNode:
        return next(node for node in self.data if node.port == port)

    def close(self) -> None:
        for node in [*self.sentinels, *self.data]:
            node.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
