"""Conformance kits that plugins run in their own test suites, as fsspec's ``tests/abstract`` does.

A backend's test module subclasses a kit and provides the fixture it asks for; the kit's
tests then run against that backend, unchanged. Needs pytest (``pip install durably[testing]``).

* :class:`StorageContract` — the Storage protocol: put/get, atomic replace, ``put_if_absent``
  races, listing, ``delete_prefix``, large values, unicode and invalid keys, and rebuilding a
  backend from its URL in another object and another process. Fixture: ``storage``.

* :class:`StorageFaultContract` — a networked backend survives transient errors (503, 429,
  resets), lost answers (a write applied, its answer dropped: it lands once, and a
  ``put_if_absent`` still tells truly whether it created the key) and slow answers. Fixtures:
  ``storage``, ``faulty_storage`` and ``faults``, a :class:`FaultInjector`;
  :class:`HttpFaultInjector` (an :class:`HttpFaultProxy` plus an :class:`HttpRoute` per
  operation) is one for HTTP services.

* :class:`EventListenerContract` — event listener plugins: delivery, redelivery before the
  checkpoint, none after it, idempotent ``event_checkpointed``, picklable events. Fixtures:
  ``listener_factory``, ``event_args``, ``emit`` (and optionally ``payload_of``).

* :class:`CodecContract` — codec plugins: round trips (empty, large), any changed byte,
  truncation and a record moved to another key refused, a planted pickle refused before it is
  unpickled, another key refused by name, rotation. Method: ``codec_with_keys(key_ids)``.

* :class:`StorageWorkflowContract` — workflows end to end on a storage: output, status and
  metadata stored, resume after a failure and after a SIGKILL, delete, virtual actors across
  processes. Fixture: ``storage_url``.
"""

from durably.testing.codecs import CodecContract
from durably.testing.events import EventListenerContract
from durably.testing.faults import Fault, FaultInjector, Operation, StorageFaultContract
from durably.testing.http_faults import HttpFaultInjector, HttpFaultProxy, HttpRoute, SeenRequest
from durably.testing.storage import StorageContract
from durably.testing.workflows import StorageWorkflowContract

__all__ = [
    "CodecContract",
    "EventListenerContract",
    "Fault",
    "FaultInjector",
    "HttpFaultInjector",
    "HttpFaultProxy",
    "HttpRoute",
    "Operation",
    "SeenRequest",
    "StorageContract",
    "StorageFaultContract",
    "StorageWorkflowContract",
]
