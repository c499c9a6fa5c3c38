"""What ``workflow.init()`` chose (storage, executor, limits, engine host), readable by every layer.

Only the API layer writes it (``workflow.init``); everything below reads it through
:func:`current`. A first read before any ``init`` runs the API's ``init`` with its defaults,
which the API registers here with :func:`set_initializer` (so this module imports nothing).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Config:
    """The settings of this process, as the last ``workflow.init()`` chose them."""

    #: The normalised storage URL every workflow of this process is stored under.
    storage_url: str
    #: The executor name (``ray``, ``local`` or a plugin's).
    executor: str
    #: Whether the executor has a cluster-wide host (``Executor.has_cluster_host``): engines,
    #: virtual actors and event waits then live in detached Ray actors, not in this process.
    has_cluster_host: bool
    max_running_workflows: int | None
    max_pending_workflows: int | None
    #: Where workflow engines run (``_hosts.EngineHost`` or ``_hosts.RayEngineHost``).
    host: Any
    #: Seconds a finished workflow is kept unless its run says otherwise (None: forever).
    retention: float | None = None
    #: The arguments ``workflow.init`` was called with, to redo it on a new Ray connection.
    settings: dict[str, Any] = field(default_factory=dict)
    #: Which Ray connection ``host`` belongs to (``connection()`` when it was made).
    connection: Any = None
    #: The runtime_env each new workflow's code snapshot is captured from (checked; None: none).
    runtime_env: dict[str, Any] | None = None
    #: Whether the executor runs steps under a workflow's runtime_env (``supports_runtime_env``).
    supports_runtime_env: bool = False


_config: Config | None = None
_lock = threading.Lock()
_initializer: Callable[..., None] | None = None
_connection_probe: Callable[[], Any] | None = None


def set_initializer(initializer: Callable[..., None]) -> None:
    """Register ``workflow.init``, run with its defaults when something reads an unset configuration."""
    global _initializer
    _initializer = initializer


def install(config: Config) -> None:
    """Make ``config`` the configuration of this process (called by ``workflow.init``)."""
    global _config
    with _lock:
        _config = config


def is_set() -> bool:
    return _config is not None


def installed() -> Config | None:
    """The configuration as installed, without initialising or re-initialising it (for ``init``)."""
    return _config


def set_connection_probe(probe: Callable[[], Any]) -> None:
    """Register what names this process's Ray connection (compared to ``Config.connection``)."""
    global _connection_probe
    _connection_probe = probe


def current() -> Config:
    """The current configuration, initialising with the defaults on first use.

    After ``ray.shutdown()`` (and maybe a new ``ray.init()``), the engine host of a cluster
    executor belongs to a connection that is gone: ``workflow.init`` runs again with the same
    settings, so the next call reaches the engine actor of the cluster now connected.
    """
    config, probe = _config, _connection_probe
    if config is None:
        initialize()
    elif config.has_cluster_host and probe is not None and probe() != config.connection:
        initialize(**config.settings)
    assert _config is not None
    return _config


def initialize(**settings: Any) -> None:
    """Run ``workflow.init(**settings)`` (in a worker that must follow its caller's settings, say)."""
    if _initializer is None:  # pragma: no cover - durably/__init__ imports the API, which registers it
        raise RuntimeError("durably.workflow is not imported; import durably before using it")
    _initializer(**settings)
