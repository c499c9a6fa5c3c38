"""Turns a storage URL, codec names or an executor name into objects, through the plugin registries."""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from durably._errors import UnknownStorageSchemeError
from durably._plugins import KNOWN_SCHEME_PACKAGES, get_registry
from durably.codecs import ENCRYPTION_KEY_ENV, LEGACY_ENV, SIGNING_KEY_ENV, Codec, CodecStorage

if TYPE_CHECKING:
    from durably.executors import Executor
    from durably.storage import Storage

#: Codec names, comma-separated; unset means "sign" and/or "encrypt" when their keys are set.
CODECS_ENV = "DURABLY_CODECS"
#: What the codecs of a process are built from: a change rebuilds the cached storages.
_CODEC_SETTINGS = (
    CODECS_ENV,
    SIGNING_KEY_ENV,
    f"{SIGNING_KEY_ENV}_FILE",
    ENCRYPTION_KEY_ENV,
    f"{ENCRYPTION_KEY_ENV}_FILE",
    LEGACY_ENV,
)

_storage_cache: dict[tuple[str, tuple[str | None, ...]], Storage] = {}
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
    """Build (once per process) the Storage for ``url``, its values passing through the configured codecs."""
    normalized = normalize_storage_url(url)
    cache_key = (normalized, tuple(os.environ.get(name) for name in _CODEC_SETTINGS))
    cached = _storage_cache.get(cache_key)
    if cached is not None:
        return cached
    with _storage_lock:
        cached = _storage_cache.get(cache_key)
        if cached is None:
            cached = _build_storage(normalized)
            codecs = build_codecs(configured_codec_names())
            if codecs:  # with no codec, values go to the backend as they are: no wrapper, no copy
                cached = CodecStorage(cached, codecs)
            _storage_cache[cache_key] = cached
    return cached


def open_raw_storage(url: str | os.PathLike[str]) -> Storage:
    """The backend for ``url`` without codecs: records as stored (``durably codecs rewrite`` uses it)."""
    return _build_storage(normalize_storage_url(url))


def configured_codec_names() -> list[str]:
    """The codecs this process applies: ``DURABLY_CODECS``, else those whose keys are set."""
    names = os.environ.get(CODECS_ENV)
    if names is not None:
        return [name.strip() for name in names.split(",") if name.strip()]
    found = []
    if os.environ.get(SIGNING_KEY_ENV) or os.environ.get(f"{SIGNING_KEY_ENV}_FILE"):
        found.append("sign")
    if os.environ.get(ENCRYPTION_KEY_ENV) or os.environ.get(f"{ENCRYPTION_KEY_ENV}_FILE"):
        found.append("encrypt")
    return found


def build_codecs(names: list[str]) -> list[Codec]:
    """Build the codecs registered under ``names`` (in the order they apply when writing)."""
    factories = get_registry().codecs()
    codecs = []
    for name in names:
        factory = factories.get(name)
        if factory is None:
            known = ", ".join(sorted(factories)) or "none"
            raise ValueError(
                f"unknown durably codec {name!r} (from {CODECS_ENV} or init(codecs=...)); "
                f"codecs available: {known}"
            )
        codecs.append(factory())
    return codecs


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
            normalized = normalize_storage_url(url)
            for cache_key in [key for key in _storage_cache if key[0] == normalized]:
                del _storage_cache[cache_key]


def open_executor(name: str) -> Executor:
    """Build the executor registered under ``name`` (``ray`` or ``local`` built in)."""
    executors = get_registry().executors()
    factory = executors.get(name)
    if factory is None:
        known = ", ".join(sorted(executors)) or "none"
        raise ValueError(f"unknown durably executor {name!r}; executors available: {known}")
    return factory()
