"""The plugin manager: built-in plugins, entry-point discovery and the registries built from hooks."""

from __future__ import annotations

import importlib
import os
import threading
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from types import ModuleType
from typing import TYPE_CHECKING, Any

import pluggy

from durably import hookspecs

if TYPE_CHECKING:
    from durably.events import EventListener
    from durably.executors import Executor
    from durably.storage import Storage

ENTRY_POINT_GROUP = "durably"
LOAD_PLUGINS_ENV = "DURABLY_LOAD_PLUGINS"
DEFAULT_PLUGINS = (
    "durably.storage._plugin",
    "durably.executors._plugin",
    "durably.events._plugin",
)

#: Schemes served by the packages of this repo, so an unknown scheme says what to install.
KNOWN_SCHEME_PACKAGES = {"s3": "durably-s3", "gs": "durably-gcs", "gcs": "durably-gcs"}


@dataclass
class PluginInfo:
    """One loaded (or failed) plugin, as ``durably plugins`` shows it."""

    name: str
    module: str
    distribution: str | None = None
    version: str | None = None
    builtin: bool = False
    error: str | None = None
    hooks: list[str] = field(default_factory=list)


class PluginRegistry:
    """A pluggy PluginManager plus what was loaded, from where, and what failed."""

    def __init__(self) -> None:
        self.manager = pluggy.PluginManager("durably")
        self.manager.add_hookspecs(hookspecs)
        self.plugins: list[PluginInfo] = []
        for module_name in DEFAULT_PLUGINS:
            module = importlib.import_module(module_name)
            self.manager.register(module, name=module_name)
            self.plugins.append(PluginInfo(module_name, module_name, "durably", _version("durably"), True))
        self._load_entry_points()
        for info in self.plugins:
            plugin = self.manager.get_plugin(info.name)
            if plugin is not None:
                info.hooks = sorted(hook.name for hook in self.manager.get_hookcallers(plugin) or [])

    def _load_entry_points(self) -> None:
        allowed = os.environ.get(LOAD_PLUGINS_ENV)
        allowed_names = None if allowed is None else {n.strip() for n in allowed.split(",") if n.strip()}
        for entry_point in entry_points(group=ENTRY_POINT_GROUP):
            dist = entry_point.dist.name if entry_point.dist is not None else None
            if (
                allowed_names is not None
                and dist not in allowed_names
                and entry_point.name not in allowed_names
            ):
                continue
            info = PluginInfo(entry_point.name, entry_point.value, dist, _version(dist))
            self.plugins.append(info)
            try:
                plugin = entry_point.load()
                if self.manager.is_registered(plugin):
                    continue
                self.manager.register(plugin, name=entry_point.name)
            except Exception as exc:  # one broken plugin must not stop the others
                info.error = f"{type(exc).__name__}: {exc}"
                warnings.warn(
                    f"durably plugin {entry_point.name!r} ({entry_point.value}, from {dist}) failed to load "
                    f"and was skipped: {info.error}",
                    RuntimeWarning,
                    stacklevel=2,
                )

    def _merged(self, results: list[Mapping[str, Any]]) -> dict[str, Any]:
        merged: dict[str, Any] = {}
        # pluggy calls the most recently registered first; built-ins were registered first,
        # so a third-party plugin may override a built-in name.
        for result in reversed(results):
            merged.update(result or {})
        return merged

    def storage_backends(self) -> dict[str, Callable[[str], Storage]]:
        return self._merged(self.manager.hook.durably_storage_backends())

    def executors(self) -> dict[str, Callable[[], Executor]]:
        return self._merged(self.manager.hook.durably_executors())

    def event_listeners(self) -> dict[str, type[EventListener]]:
        return self._merged(self.manager.hook.durably_event_listeners())

    def provides(self, info: PluginInfo) -> dict[str, list[str]]:
        """What a loaded plugin contributes, by kind."""
        plugin = self.manager.get_plugin(info.name)
        provided: dict[str, list[str]] = {}
        if plugin is None:
            return provided
        for kind, hook_name in (
            ("storage", "durably_storage_backends"),
            ("executors", "durably_executors"),
            ("event listeners", "durably_event_listeners"),
        ):
            impl = getattr(plugin, hook_name, None)
            if impl is not None:
                provided[kind] = sorted(impl() or {})
        return provided


def _version(distribution: str | None) -> str | None:
    if distribution is None:
        return None
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(distribution)
    except PackageNotFoundError:
        return None


_registry: PluginRegistry | None = None
_registry_lock = threading.Lock()


def get_registry() -> PluginRegistry:
    """The process-wide plugin registry, built on first use."""
    global _registry
    if _registry is None:
        with _registry_lock:
            if _registry is None:
                _registry = PluginRegistry()
    return _registry


def reset_registry() -> None:
    """Forget the registry so the next use discovers plugins again (tests, after a pip install)."""
    global _registry
    with _registry_lock:
        _registry = None


def register_plugin(plugin: ModuleType | object, name: str | None = None) -> None:
    """Register a plugin object in this process (in addition to the ones found by entry point)."""
    get_registry().manager.register(plugin, name=name)


def hook() -> Any:
    """The pluggy hook relay of the process-wide registry."""
    return get_registry().manager.hook


def propagation_context(workflow_id: str | None) -> dict[str, str]:
    """The entries every plugin wants carried with work handed to another process (see the hook)."""
    carrier: dict[str, str] = {}
    for entries in hook().durably_propagation_context(workflow_id=workflow_id):
        if entries:
            carrier.update(entries)
    return carrier
