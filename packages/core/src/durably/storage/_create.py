"""Telling "I created it" from "someone else did" when a ``put_if_absent`` lost its answer.

A create-only write (S3 ``If-None-Match: *``, GCS ``ifGenerationMatch=0``) whose request
reached the service but whose answer was lost (a reset, a timeout) is retried, and the retry is
refused because the object now exists, exactly as a loser's would be. The data alone cannot
settle it (two writers may store the same bytes), so each call writes a token of its own with the
object, in the service's metadata, and reads it back when refused after an attempt that may have
been applied.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from durably.storage._base import KeyNotFound, TransientStorageError, retry_transient

if TYPE_CHECKING:
    from durably.storage._base import Storage

T = TypeVar("T")

#: The metadata name under which backends store a creation's token (``x-amz-meta-durably-writer``...).
WRITER_METADATA = "durably-writer"


class Creation:
    """One ``put_if_absent`` call: its token, and whether one of its attempts may have been applied.

    Run each attempt through :meth:`attempt`; when the service refuses because the object
    exists, :meth:`created_it` says whether this call made it::

        creation = Creation()
        try:
            retry(lambda: creation.attempt(lambda: upload(data, metadata=creation.metadata), is_transient))
            return True
        except AlreadyExists:
            return creation.created_it(read_token_of_the_object)

    A backend whose client library retries on its own, out of sight, builds it with
    ``maybe_applied=True``: then every refusal may hide a lost answer.
    """

    def __init__(self, *, maybe_applied: bool = False) -> None:
        #: A random token that no other call uses: what the object carries when this call made it.
        self.token = secrets.token_hex(16)
        #: Whether an attempt failed in a way that may have reached the service.
        self.maybe_applied = maybe_applied

    @property
    def metadata(self) -> dict[str, str]:
        """The metadata to store with the object: ``{WRITER_METADATA: token}``."""
        return {WRITER_METADATA: self.token}

    def attempt(self, create: Callable[[], T], is_transient: Callable[[BaseException], bool]) -> T:
        """Run one attempt; a transient failure marks the call as possibly applied, then propagates."""
        try:
            return create()
        except BaseException as exc:
            if is_transient(exc):
                self.maybe_applied = True
            raise

    def created_it(self, read_token: Callable[[], str | None]) -> bool:
        """After a refusal: True when an earlier attempt of this call created the object.

        ``read_token`` reads the token stored with the object now (None when it has none, or is
        gone); it is called only when an attempt may have been applied.
        """
        return self.maybe_applied and read_token() == self.token


def create_once(
    storage: Storage,
    key: str,
    data: bytes,
    *,
    is_transient: Callable[[BaseException], bool] = lambda exc: isinstance(exc, TransientStorageError),
) -> bool:
    """``put_if_absent``, retried on transient errors; True when this call created ``key``.

    The retry after a lost answer is refused because the lost attempt created the key; the stored
    bytes are then read back, and when they are ``data`` the key is this call's. Records that two
    callers could write alike and that must be told apart carry something unique (a token, an
    owner, an incarnation id).
    """
    creation = Creation()

    def stored_is_ours() -> str | None:
        try:
            return creation.token if storage.get(key) == data else None
        except KeyNotFound:
            return None

    def attempt() -> bool:
        if creation.attempt(lambda: storage.put_if_absent(key, data), is_transient):
            return True
        return creation.created_it(stored_is_ours)

    return retry_transient(attempt, is_transient=is_transient, what=f"create of {key!r}")
