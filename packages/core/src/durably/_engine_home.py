"""The engine home: a Ray job that lasts as long as the cluster, in which the engine actors are made.

Ray ties an actor, and every task it submits, to the job of the driver that created it, and
once that job's driver exits Ray kills each idle worker of the job at once (Ray 2.60: "Worker
exited because it was idle for a long time (timeout: -1ms)"). Engine actors made by the first
driver of a cluster would then start every step of every later workflow on a new Python worker.

So the engines are made by the **engine factory**, a (non-detached) actor of a small driver of
our own (``main(<gcs address>)`` in a new Python), spawned by the detached **home** actor
(``HOME_ACTOR_NAME``), which any driver creates on first need. That driver lives as long as
the home's worker (it exits when its parent is gone), so its job, and the engines' steps'
workers, stay alive after every user driver has left.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from typing import Any

#: The namespace of every actor durably keeps in a cluster (the engines' too).
HOME_NAMESPACE = "durably"
#: The detached actor that keeps the home driver running.
HOME_ACTOR_NAME = "durably-home"
#: The actor of the home driver's job that creates engine actors.
FACTORY_ACTOR_NAME = "durably-home-factory"
#: How long a driver waits for the factory (the home's first start includes two cold workers).
FACTORY_TIMEOUT = 60.0
#: Variables of the home's worker that must not reach the home driver: a job's runtime_env
#: (the home inherits the environment of the driver that created it, not so the home's job).
_NOT_INHERITED = ("RAY_JOB_CONFIG_JSON_ENV_VAR", "RAY_RUNTIME_ENV_HOOK")

_log = logging.getLogger(__name__)


class EngineFactory:
    """Creates actors in the home driver's job (the actors, and their tasks, belong to that job)."""

    def __init__(self) -> None:
        self._classes: dict[type, Any] = {}

    def ping(self) -> bool:
        return True

    def create(self, body: type, options: Mapping[str, Any], args: tuple[Any, ...]) -> Any:
        """``ray.remote(body).options(**options).remote(*args)``, made here; returns its handle."""
        import ray

        remote_class = self._classes.get(body)
        if remote_class is None:
            remote_class = self._classes[body] = ray.remote(body)
        return remote_class.options(**options).remote(*args)


class EngineHome:
    """The detached actor whose worker runs the home driver as a child process (one per cluster)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._child = self._spawn()

    def _spawn(self) -> subprocess.Popen[bytes]:
        import ray

        address = ray.get_runtime_context().gcs_address
        # Inherited: auth (RAY_AUTH_MODE, RAY_AUTH_TOKEN_PATH), storage credentials, the node's
        # settings. Not the creating driver's job's runtime_env, nor its working_dir (cwd).
        env = {key: value for key, value in os.environ.items() if key not in _NOT_INHERITED}
        # Not ``-m``: the package imports this module first, and runpy would warn about it on the
        # console of the driver that created the home.
        return subprocess.Popen(
            [sys.executable, "-c", f"import sys; from {__name__} import main; main(sys.argv[1])", address],
            env=env,
            cwd=tempfile.gettempdir(),
            stdin=subprocess.DEVNULL,
        )

    def factory(self, timeout: float) -> Any:
        """The factory actor's handle, once the home driver has made it (restarted if it exited)."""
        import ray

        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                if self._child.poll() is not None:
                    _log.warning(
                        "the durably home driver exited (code %s); starting it again", self._child.returncode
                    )
                    self._child = self._spawn()
            try:
                factory = ray.get_actor(FACTORY_ACTOR_NAME, namespace=HOME_NAMESPACE)
                ray.get(factory.ping.remote(), timeout=max(1.0, deadline - time.monotonic()))
                return factory
            except (ValueError, ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError):
                pass  # not made yet, or the one of an exited home driver
            if time.monotonic() > deadline:
                raise TimeoutError(f"the durably home driver made no engine factory within {timeout} s")
            time.sleep(0.1)


def engine_factory(timeout: float = FACTORY_TIMEOUT) -> Any:
    """The cluster's engine factory (creating the home on first need); raises if not had in time."""
    import ray

    # Ray's type stubs do not list actor options such as max_concurrency: the home answers
    # several drivers at once, each call waiting at most ``timeout``.
    home_class = ray.remote(num_cpus=0, max_concurrency=8)(EngineHome)  # type: ignore[call-overload]
    home = home_class.options(
        name=HOME_ACTOR_NAME,
        namespace=HOME_NAMESPACE,
        lifetime="detached",
        get_if_exists=True,
        max_restarts=-1,
    ).remote()
    return ray.get(home.factory.remote(timeout), timeout=2 * timeout)


def _die_with_parent() -> None:
    """Have Linux kill this process when its parent (the home's worker) dies."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # 1: PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # not Linux: the poll of the parent below does it


def main(address: str) -> None:
    """The home driver: make the factory, then live until the home's worker is gone."""
    parent = os.getppid()
    _die_with_parent()
    import ray

    # Quiet: its output lands in the home worker's log, which Ray shows the home's creator.
    ray.init(address=address, namespace=HOME_NAMESPACE, log_to_driver=False, logging_level=logging.WARNING)
    # Non-detached: it dies with this job; the handle kept here keeps it alive until then.
    factory: Any = ray.remote(num_cpus=0)(EngineFactory).options(name=FACTORY_ACTOR_NAME).remote()
    ray.get(factory.ping.remote())
    while os.getppid() == parent:
        time.sleep(1.0)
