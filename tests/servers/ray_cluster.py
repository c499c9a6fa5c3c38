"""A real Ray cluster for tests: a head started with `ray start --head --block`, plus extra nodes.

Each node runs in its own process group and is stopped by that group's id, never by name,
so a test run never touches a Ray instance it did not start.
"""

from __future__ import annotations

import os
import secrets
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

from servers._process import ServerProcess, free_port


def _ray_command() -> str:
    candidate = Path(sys.executable).with_name("ray")
    return str(candidate) if candidate.exists() else (shutil.which("ray") or "ray")


#: Ray replaces 127.0.0.1 by the machine's network address; another loopback address it keeps,
#: so every node, driver and worker talks over loopback only.
LOOPBACK_IP = "127.0.0.2"


def _agent_ports() -> dict[str, int]:
    """Fixed ports for a node's agents, by the name of the file Ray's raylet reads each from."""
    return {
        "metrics_export_port": free_port(),
        "metrics_agent_port": free_port(),  # the dashboard agent's gRPC port
        "dashboard_agent_listen_port": free_port(),
        "runtime_env_agent_port": free_port(),
    }


def _agent_flags(ports: dict[str, int]) -> list[str]:
    return [
        f"--metrics-export-port={ports['metrics_export_port']}",
        f"--dashboard-agent-grpc-port={ports['metrics_agent_port']}",
        f"--dashboard-agent-listen-port={ports['dashboard_agent_listen_port']}",
        f"--runtime-env-agent-port={ports['runtime_env_agent_port']}",
    ]


def _raylet_of(temp_dir: Path, metrics_agent_port: int) -> tuple[str, Path] | None:
    """(node id, session dir) of the raylet whose session is under ``temp_dir`` and whose agent
    listens on ``metrics_agent_port`` (one node's, as every node shares the head's temp dir), from /proc."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            arguments = Path("/proc", entry, "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if not arguments or not arguments[0].endswith(b"raylet"):
            continue
        options = dict(
            argument.decode(errors="replace")[2:].split("=", 1)
            for argument in arguments
            if argument.startswith(b"--") and b"=" in argument
        )
        session = options.get("session_dir", "")
        if options.get("metrics-agent-port") != str(metrics_agent_port):
            continue
        if session.startswith(f"{temp_dir}/") and "node_id" in options:
            return options["node_id"], Path(session)
    return None


def _announce_agent_ports(temp_dir: Path, ports: dict[str, int], stop: threading.Event) -> None:
    """Write the agents' port files for the raylet, as the agents themselves will.

    Ray's raylet waits 15 s (fixed) for each agent to write its port to a file, and crashes
    the node if one is late; on a loaded 2-core machine a Python agent often needs longer to
    start. The ports are fixed here, so the files can be written before the agents start.
    """
    while not stop.is_set():
        found = _raylet_of(temp_dir, ports["metrics_agent_port"])
        if found is not None:
            node_id, session = found
            for name, port in ports.items():
                target = session / f"{name}_{node_id}"
                if name != "metrics_export_port" and not target.exists():
                    partial = session / f".{name}_{node_id}.tmp"
                    partial.write_text(str(port))
                    partial.replace(target)  # the raylet never reads a half-written file
            return
        stop.wait(0.1)


#: Runs a command with SIGINT ignored, which its children inherit: every test cluster runs as a
#: cluster started from a script's background job, under nohup or by a service does, so tests
#: see what users there see (Ray's cancel reaching a step's code through SIGINT, for one),
#: whatever the shell that started the tests did with SIGINT.
_SIGINT_IGNORED = ["/bin/sh", "-c", 'trap "" INT; exec "$@"', "sh"]


class RayCluster:
    """One head node (and optional worker nodes) on a loopback address, with token authentication."""

    def __init__(
        self,
        num_cpus: int = 2,
        resources: str = '{"durably_test": 4}',
        env: dict[str, str] | None = None,
        dashboard: bool = False,
    ) -> None:
        """``env`` is added to every node's environment, so every worker and actor of the cluster has it.

        ``dashboard`` starts the head's dashboard, which serves the Ray Jobs API at
        ``dashboard_url`` (off by default: it costs a process and seconds at start).
        """
        self.node_env = dict(env or {})
        # Ray keeps idle workers only while the node's live workers number at most this (by
        # default its CPU count, which on a 2-CPU test node the engine, the engine home and its
        # factory already exceed) and kills the others after a second: steps would start on new
        # workers, unlike on a node of a real cluster's size.
        self.node_env.setdefault("RAY_num_workers_soft_limit", "16")
        if dashboard:
            # `ray start` gives the dashboard 60 s to come up, which a loaded machine can miss.
            self.node_env.setdefault("RAY_DASHBOARD_STARTUP_TIMEOUT_S", "600")
        self.port = free_port()
        self.address = f"{LOOPBACK_IP}:{self.port}"
        self.dashboard_port = free_port() if dashboard else None
        self.dashboard_url = f"http://{LOOPBACK_IP}:{self.dashboard_port}" if dashboard else None
        dashboard_options = (
            [
                "--include-dashboard=true",
                f"--dashboard-host={LOOPBACK_IP}",
                f"--dashboard-port={self.dashboard_port}",
            ]
            if dashboard
            else ["--include-dashboard=false"]
        )
        # A short temp dir: Ray's unix socket paths must stay under 107 characters.
        self.temp_dir = Path(tempfile.mkdtemp(prefix="dray-", dir="/tmp"))
        self.token_path = Path(os.environ.get("RAY_AUTH_TOKEN_PATH") or self.temp_dir / "auth_token")
        if not self.token_path.exists():
            self.token_path.write_text(secrets.token_hex(32))
        self.nodes: list[ServerProcess] = []
        self._announcers_stop = threading.Event()
        self._start_node(
            "ray-head",
            [
                "--head",
                f"--port={self.port}",
                f"--node-ip-address={LOOPBACK_IP}",
                f"--num-cpus={num_cpus}",
                f"--resources={resources}",
                *dashboard_options,
                f"--temp-dir={self.temp_dir}",
                "--disable-usage-stats",
            ],
        )

    def _start_node(self, name: str, arguments: list[str]) -> ServerProcess:
        ports = _agent_ports()
        arguments = [*arguments, *_agent_flags(ports)]
        log = self.temp_dir / f"{name}-{len(self.nodes)}.log"
        node = ServerProcess(
            name,
            [*_SIGINT_IGNORED, _ray_command(), "start", "--block", *arguments],
            log,
            env={"RAY_USAGE_STATS_ENABLED": "0", "RAY_ADDRESS": "", **self.auth_env(), **self.node_env},
        )
        self.nodes.append(node)
        if sys.platform == "linux":
            threading.Thread(
                target=_announce_agent_ports,
                args=(self.temp_dir, ports, self._announcers_stop),
                name=f"ray-ports-{name}",
                daemon=True,
            ).start()
        return node

    def wait_ready(self, timeout: float = 120.0) -> None:
        import ray

        deadline = time.monotonic() + timeout
        while True:
            self.nodes[0].wait_for_port(self.port, timeout=timeout)
            try:
                ray.init(address=self.address, ignore_reinit_error=True, log_to_driver=False)
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

    def add_node(self, num_cpus: int = 1, resources: str = "{}") -> ServerProcess:
        """Start one more node that joins the head (a second `ray start --address`)."""
        return self._start_node(
            "ray-worker",
            [
                f"--address={self.address}",
                f"--node-ip-address={LOOPBACK_IP}",
                f"--num-cpus={num_cpus}",
                f"--resources={resources}",
                "--disable-usage-stats",
            ],
        )

    def join_node(
        self, num_cpus: int = 1, resources: str = "{}", attempts: int = 3, timeout: float = 300.0
    ) -> ServerProcess:
        """``add_node``, then wait until the cluster counts it alive; a node whose `ray start` gave
        up (its raylet timed out at startup on a loaded machine) is replaced, up to ``attempts``."""
        import ray

        def alive() -> int:
            return sum(1 for node in ray.nodes() if node["Alive"])

        before = alive()
        for attempt in range(1, attempts + 1):
            node = self.add_node(num_cpus=num_cpus, resources=resources)
            try:
                node.wait_until(lambda: alive() > before, timeout=timeout, what="alive in the cluster")
                return node
            except RuntimeError:
                node.stop()
                if attempt == attempts:
                    raise
        raise AssertionError("unreachable")

    def stop(self) -> None:
        """Kill every node's process group at once and remove the cluster's temp dir.

        A test cluster holds nothing worth a graceful shutdown, and it would not be one: after
        SIGTERM, `ray start --block` (with its gcs_server and autoscaler monitor) keeps running
        until ServerProcess.stop's 20 s grace period ends in SIGKILL anyway, which cost every
        test session that used Ray 20 s at its end.
        """
        self._announcers_stop.set()
        for node in reversed(self.nodes):
            node.kill()
        shutil.rmtree(self.temp_dir, ignore_errors=True)

    @staticmethod
    def configure_client_auth(folder: Path) -> None:
        """Give this process (and its children) a token; Ray reads it once, at import, so call this first."""
        token_path = folder / "ray_auth_token"
        if not token_path.exists():
            token_path.write_text(secrets.token_hex(32))
        os.environ["RAY_AUTH_MODE"] = "token"
        os.environ["RAY_AUTH_TOKEN_PATH"] = str(token_path)

    def auth_env(self) -> dict[str, str]:
        """What every process that talks to this cluster needs in its environment."""
        return {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(self.token_path)}

    def env(self) -> dict[str, str]:
        """Environment for child processes that should join this cluster."""
        return {**os.environ, **self.auth_env(), "RAY_ADDRESS": self.address}
