"""Turns a storage URL or an executor name into an object, through the plugin registries."""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from durably._errors import UnknownStorageSchemeError
from durably._plugins import KNOWN_SCHEME_PACKAGES, get_registry

if TYPE_CHECKING:
    from durably.executors import Executor
    from durably.storage import Storage

_storage_cache: dict[str, Storage] = {}
_storage_lock = threading.Lock()


def storage_scheme(url: str) -> str:
    """The scheme of a storage URL; a bare path (relative or absolute) means ``file``."""
    if "://" not in url:
        return "file"
    return urlparse(url).scheme.lower()


def normalize_storage_url(url: str | os.PathLike[str]) -> str:
    """A canonical URL for a storage location; bare paths become absolute ``file://`` URLs."""
    text = os.fspath(url)
    if not text:
        raise ValueError("storage must be a non-empty path or URL, e.g. './data' or 's3://bucket/prefix'")
    if "://" not in text:
        from pathlib import Path

        return Path(text).expanduser().resolve().as_uri()
    return text


def open_storage(url: str | os.PathLike[str]) -> Storage:
    """Build (once per process) the Storage for ``url`` with the backend its scheme names."""
    normalized = normalize_storage_url(url)
    cached = _storage_cache.get(normalized)
    if cached is not None:
        return cached
    with _storage_lock:
        cached = _storage_cache.get(normalized)
        if cached is None:
            cached = _build_storage(normalized)
            _storage_cache[normalized] = cached
    return cached


def _build_storage(url: str) -> Storage:
    scheme = storage_scheme(url)
    backends = get_registry().storage_backends()
    factory = backends.get(scheme)
    if factory is None:
        package = KNOWN_SCHEME_PACKAGES.get(scheme)
        hint = (
            f"install it with `pip install {package}`"
            if package
            else "install a durably plugin that provides it"
        )
        known = ", ".join(sorted(backends)) or "none"
        raise UnknownStorageSchemeError(url, scheme, hint, known)
    return factory(url)


def forget_storage(url: str | None = None) -> None:
    """Drop cached Storage objects (all of them, or the one for ``url``)."""
    with _storage_lock:
        if url is None:
            _storage_cache.clear()
        else:
            _storage_cache.pop(normalize_storage_url(url), None)


def open_executor(name: str) -> Executor:
    """Build the executor registered under ``name`` (``ray`` or ``local`` built in)."""
    executors = get_registry().executors()
    factory = executors.get(name)
    if factory is None:
        known = ", ".join(sorted(executors)) or "none"
        raise ValueError(f"unknown durably executor {name!r}; executors available: {known}")
    return factory()
