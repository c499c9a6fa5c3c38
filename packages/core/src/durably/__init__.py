"""durably: durable workflows for Ray."""

from durably.events import EventListener
from durably.hookspecs import hookimpl
from durably.storage import KeyNotFound, Storage

__all__ = ["EventListener", "KeyNotFound", "Storage", "hookimpl"]
