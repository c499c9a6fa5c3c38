"""What durably needs to know about a virtual actor's class: its state, its methods, its pickle."""

from __future__ import annotations

import hashlib
import pickle
import threading
import weakref
from collections.abc import Callable
from typing import Any

from durably import _codec


def get_state(instance: Any) -> Any:
    """The actor's state: its own ``__getstate__`` if the class defines one, else ``__dict__``."""
    getstate = getattr(type(instance), "__getstate__", None)
    if getstate is not None and getstate is not getattr(object, "__getstate__", None):
        return instance.__getstate__()
    return dict(instance.__dict__)


def restore(cls: type, state: Any) -> Any:
    """An instance of ``cls`` holding ``state``, built without running ``__init__``."""
    instance: Any = object.__new__(cls)
    if getattr(cls, "__setstate__", None) is not None:
        instance.__setstate__(state)
    else:
        instance.__dict__.update(state)
    return instance


_methods_cache: weakref.WeakKeyDictionary[type, dict[str, tuple[Callable[..., Any], bool]]] = (
    weakref.WeakKeyDictionary()
)


def actor_methods(cls: type) -> dict[str, tuple[Callable[..., Any], bool]]:
    """Name -> (function, readonly) of every method callable on an actor of ``cls``."""
    cached = _methods_cache.get(cls)
    if cached is not None:
        return cached
    methods = {}
    for klass in reversed(cls.__mro__[:-1]):
        for name, value in vars(klass).items():
            if name.startswith("__"):
                continue
            # A method wrapped by ``virtual_actor`` (a ``MethodDescriptor``) names its function this way.
            func = getattr(value, "__durably_method__", value)
            if callable(func) and not isinstance(func, type) and hasattr(func, "__code__"):
                methods[name] = (func, bool(getattr(func, "__durably_readonly__", False)))
    _methods_cache[cls] = methods
    return methods


def find_method(cls: type, actor_id: str, method: str) -> Callable[..., Any]:
    methods = actor_methods(cls)
    if method not in methods:
        raise AttributeError(
            f"virtual actor class {cls.__name__!r} (actor {actor_id!r}) has no method {method!r}"
        )
    return methods[method][0]


_classes: dict[str, type] = {}
_classes_lock = threading.Lock()


def load_class(payload: bytes) -> type:
    digest = hashlib.sha256(payload).hexdigest()
    cls = _classes.get(digest)
    if cls is None:
        cls = _codec.loads(payload)
        with _classes_lock:
            _classes[digest] = cls  # type: ignore[assignment]
    return cls  # type: ignore[return-value]


def pickle_class(cls: type) -> bytes:
    try:
        return _codec.dumps(cls)
    except (pickle.PicklingError, TypeError, AttributeError) as exc:
        raise TypeError(f"virtual actor class {cls.__name__!r} cannot be pickled: {exc}") from exc
