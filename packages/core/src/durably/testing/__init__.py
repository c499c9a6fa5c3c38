"""Conformance kits that plugins run in their own test suites, as fsspec's ``tests/abstract`` does.

A backend's test module subclasses a kit and provides the fixture it asks for; the kit's
tests then run against that backend, unchanged. Needs pytest (``pip install durably[testing]``).

* :class:`StorageContract` — the Storage protocol: put/get, atomic replace, ``put_if_absent``
  races, listing, ``delete_prefix``, large values, unicode and invalid keys, and rebuilding a
  backend from its URL in another object and another process. Fixture: ``storage``.

End-to-end checks of workflows, crashes and virtual actors running on a storage (a second kit,
for the same ``storage`` fixture) are to be added next to it in this package.
"""

from durably.testing.storage import StorageContract

__all__ = ["StorageContract"]
