"""GCSStorage: the durably Storage protocol on a Google Cloud Storage bucket (``gs://bucket/prefix``)."""

from __future__ import annotations

import builtins
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

from durably.storage import (
    RETRY_DEADLINE_ENV,
    RETRY_DEADLINE_SECONDS,
    WRITER_METADATA,
    Creation,
    KeyNotFound,
    StoragePermanentError,
    TransientStorageError,
    format_storage_url,
    join_key,
    parse_storage_url,
    retry_deadline_seconds,
    validate_key,
)

if TYPE_CHECKING:
    from google.api_core.retry import Retry
    from google.cloud.storage import Blob, Bucket, Client

T = TypeVar("T")

#: google-cloud-storage sends objects larger than this (its multipart limit) as a resumable session.
RESUMABLE_THRESHOLD = 8 * 1024 * 1024
#: Bytes per request of a resumable upload; a failed chunk is retried alone, not the whole object.
#: GCS requires a multiple of 256 KiB.
RESUMABLE_CHUNK_SIZE = 8 * 1024 * 1024
#: Objects per listing request (the most GCS returns in one page).
LIST_PAGE_SIZE = 1000
#: Concurrent DELETE requests in delete_prefix; below requests' default pool of 10 connections.
DELETE_CONCURRENCY = 8
#: Backoff of google's retry policy: first delay and cap. The total time spent retrying one
#: request is core's retry deadline (``retry_deadline_seconds``: 60 s, ``DURABLY_STORAGE_RETRY_SECONDS``),
#: so a lasting fault fails a GCS request when it fails any other storage operation of durably.
RETRY_INITIAL_DELAY = 0.1
RETRY_MAX_DELAY = 5.0

_OPTIONS = ("project", "create_bucket", "location", "emulator")


@dataclass(frozen=True)
class GCSLocation:
    """What a ``gs://`` URL names: a bucket, a key prefix inside it, and client options."""

    bucket: str
    prefix: str
    project: str | None = None
    create_bucket: bool = False
    location: str | None = None
    #: Base URL of a GCS emulator (fake-gcs-server); like STORAGE_EMULATOR_HOST, but carried in the URL.
    emulator: str | None = None

    @classmethod
    def parse(cls, url: str) -> GCSLocation:
        parsed = parse_storage_url(
            url, schemes=("gs", "gcs"), options=_OPTIONS, example="gs://BUCKET/optional/prefix"
        )
        return cls(
            bucket=parsed.bucket,
            prefix=parsed.prefix,
            project=parsed.option("project"),
            create_bucket=parsed.flag("create_bucket"),
            location=parsed.option("location"),
            emulator=parsed.endpoint("emulator"),
        )

    @property
    def url(self) -> str:
        """The canonical URL: ``gs://`` scheme, no stray slashes, options sorted."""
        options = {
            "create_bucket": "true" if self.create_bucket else None,
            "emulator": self.emulator,
            "location": self.location,
            "project": self.project,
        }
        return format_storage_url("gs", self.bucket, self.prefix, options)


def _retry_policy(deadline: float) -> Retry:
    """google's own retry predicate (429, 408, 5xx, resets, timeouts) with a shorter, capped backoff,
    giving up after ``deadline`` seconds in all."""
    from google.cloud.storage.retry import DEFAULT_RETRY

    policy: Retry = DEFAULT_RETRY.with_delay(
        initial=RETRY_INITIAL_DELAY, maximum=RETRY_MAX_DELAY, multiplier=2.0
    ).with_timeout(deadline)
    return policy


class GCSStorage:
    """Keys are objects named ``prefix/key`` in one bucket.

    Object writes in GCS are atomic, so readers see the old value or the new one, never a part;
    ``put_if_absent`` is an upload with ``ifGenerationMatch=0``. Every HTTP request (each chunk of
    a resumable upload included) is retried by google's retry policy on 429, 408, 5xx and broken
    connections, with capped exponential backoff, until core's retry deadline (read when the
    process's client is built). The client is built lazily, once per process,
    from the URL and the environment (Application Default Credentials; anonymous credentials against
    an emulator named by the URL's ``emulator=`` option or by ``STORAGE_EMULATOR_HOST``);
    pickling a GCSStorage sends only its URL.
    """

    def __init__(self, url: str) -> None:
        self.location = GCSLocation.parse(url)
        self.url = self.location.url
        self._lock = threading.Lock()
        self._client: Client | None = None
        self._client_pid = 0
        self._bucket_confirmed = False
        self._retry: Retry | None = None
        self._deadline = RETRY_DEADLINE_SECONDS

    def __repr__(self) -> str:
        return f"GCSStorage({self.url!r})"

    def __reduce__(self) -> tuple[type[GCSStorage], tuple[str]]:
        return (GCSStorage, (self.url,))

    # -- the client -------------------------------------------------------------------------

    def _bucket(self) -> Bucket:
        """The bucket handle of this process's client, building the client on first use."""
        client = self._client
        if client is None or self._client_pid != os.getpid():
            with self._lock:
                if self._client is None or self._client_pid != os.getpid():
                    self._deadline = retry_deadline_seconds()
                    self._retry = _retry_policy(self._deadline)
                    self._client = self._new_client()
                    self._client_pid = os.getpid()
                    self._bucket_confirmed = False
                    if self.location.create_bucket:
                        self._ensure_bucket(self._client)
                client = self._client
        return client.bucket(self.location.bucket)

    def _new_client(self) -> Client:
        from google.auth.exceptions import DefaultCredentialsError
        from google.cloud import storage

        kwargs: dict[str, Any] = {"project": self.location.project}
        if self.location.emulator or os.environ.get("STORAGE_EMULATOR_HOST"):
            # An emulator takes no credentials; do not look for ADC (none on a CI machine).
            from google.auth.credentials import AnonymousCredentials

            kwargs["credentials"] = AnonymousCredentials()  # type: ignore[no-untyped-call]
            kwargs["project"] = self.location.project or "durably-emulator"
        if self.location.emulator:
            kwargs["client_options"] = {"api_endpoint": self.location.emulator}
        try:
            return storage.Client(**kwargs)
        except DefaultCredentialsError as exc:
            raise StoragePermanentError(
                f"no Google credentials for {self.url}: {exc}. durably-gcs uses Application Default "
                "Credentials: run `gcloud auth application-default login`, set "
                "GOOGLE_APPLICATION_CREDENTIALS to a service account key file, or run on GCP with an "
                "attached service account (set STORAGE_EMULATOR_HOST to use a local emulator)."
            ) from exc

    def _ensure_bucket(self, client: Client) -> None:
        """Create the bucket if it is missing (only when the URL says ``create_bucket=true``)."""
        from google.api_core.exceptions import Conflict

        bucket = client.bucket(self.location.bucket)
        if self._translate(lambda: bucket.exists(retry=self._retry), "check bucket"):
            return
        try:
            self._translate(
                lambda: client.create_bucket(bucket, location=self.location.location, retry=self._retry),
                "create bucket",
            )
        except StoragePermanentError as exc:
            if not isinstance(exc.__cause__, Conflict):  # someone else created it meanwhile
                raise

    def _object_name(self, key: str) -> str:
        return join_key(self.location.prefix, validate_key(key))

    def _blob(self, key: str) -> Blob:
        return self._bucket().blob(self._object_name(key))

    # -- errors ------------------------------------------------------------------------------

    def _translate(self, operation: Callable[[], T], what: str, key: str | None = None) -> T:
        """Run one client call; turn what google raises into durably's transient or permanent errors.

        NotFound and PreconditionFailed pass through: each caller knows what they mean for it.
        """
        from google.api_core import exceptions as api_exceptions
        from google.auth.exceptions import GoogleAuthError

        where = f"gs://{self.location.bucket}/{self._object_name(key)}" if key else self.url
        try:
            return operation()
        except (api_exceptions.NotFound, api_exceptions.PreconditionFailed):
            raise
        except api_exceptions.RetryError as exc:
            raise TransientStorageError(
                f"GCS {what} of {where} still failed after retrying for {self._deadline:g} s, the retry "
                f"deadline ({RETRY_DEADLINE_ENV}); last cause: {exc.cause}"
            ) from exc
        except (api_exceptions.Forbidden, api_exceptions.Unauthorized) as exc:
            raise StoragePermanentError(
                f"GCS denied {what} of {where}: {exc.message}. The credentials in use (Application "
                "Default Credentials) need read, write, list and delete on the bucket's objects, e.g. "
                "roles/storage.objectAdmin."
            ) from exc
        except Exception as exc:
            if _is_transient(exc):
                raise TransientStorageError(f"GCS {what} of {where} failed: {exc}") from exc
            if isinstance(exc, (api_exceptions.GoogleAPICallError, GoogleAuthError)):
                raise StoragePermanentError(f"GCS {what} of {where} failed: {exc}") from exc
            raise

    def _bucket_missing(self) -> StoragePermanentError:
        bucket = self.location.bucket
        return StoragePermanentError(
            f"GCS bucket {bucket!r} does not exist (storage {self.url}). durably does not create buckets "
            f"on its own: create it with `gcloud storage buckets create gs://{bucket}`, or add "
            "`create_bucket=true` to the storage URL (with `location=...` if you care where) to let "
            "durably create it."
        )

    def _raise_if_bucket_missing(self) -> None:
        """After a 404: raise the missing-bucket error if that is what it meant (checked once per client)."""
        if self._bucket_confirmed:
            return
        from google.api_core.exceptions import Forbidden

        bucket = self._bucket()
        try:
            exists = self._translate(lambda: bucket.exists(retry=self._retry), "check bucket")
        except StoragePermanentError as exc:
            if isinstance(exc.__cause__, Forbidden):  # may read objects but not bucket metadata
                return
            raise
        if not exists:
            raise self._bucket_missing()
        self._bucket_confirmed = True

    def _not_found_on_write(self, exc: Exception, what: str, key: str) -> NoReturn:
        # A write only 404s when the bucket is gone.
        self._raise_if_bucket_missing()
        raise StoragePermanentError(f"GCS {what} of {self._object_name(key)} failed: {exc}") from exc

    # -- the Storage protocol ----------------------------------------------------------------

    def _upload(self, blob: Blob, data: bytes, if_generation_match: int | None) -> None:
        if len(data) > RESUMABLE_THRESHOLD:
            blob.chunk_size = RESUMABLE_CHUNK_SIZE
        blob.upload_from_string(
            data,
            content_type="application/octet-stream",
            if_generation_match=if_generation_match,
            retry=self._retry,
        )

    def put(self, key: str, data: bytes) -> None:
        from google.api_core.exceptions import NotFound

        blob = self._blob(key)
        try:
            self._translate(lambda: self._upload(blob, bytes(data), None), "write", key)
        except NotFound as exc:
            self._not_found_on_write(exc, "write", key)

    def put_if_absent(self, key: str, data: bytes) -> bool:
        """Create ``key`` unless it exists, with ``ifGenerationMatch=0``.

        A retried request whose first attempt did create the object (the answer was lost) gets
        412 like any loser would; the creation token in the object's metadata tells the two apart
        (:class:`durably.storage.Creation`). google's retries happen out of sight, so every 412
        may hide a lost answer.
        """
        from google.api_core.exceptions import NotFound, PreconditionFailed

        data = bytes(data)
        if len(data) > RESUMABLE_THRESHOLD and self.exists(key):
            return False  # spare uploading a large value that cannot win
        creation = Creation(maybe_applied=True)
        blob = self._blob(key)
        blob.metadata = creation.metadata
        try:
            self._translate(lambda: self._upload(blob, data, 0), "create", key)
            return True
        except PreconditionFailed:
            return creation.created_it(lambda: self._writer_of(blob.name, key))
        except NotFound as exc:
            self._not_found_on_write(exc, "create", key)

    def _writer_of(self, name: str, key: str) -> str | None:
        """The creation token stored with the object ``name``; None when it has none or is gone."""
        current = self._translate(
            lambda: self._bucket().get_blob(name, retry=self._retry), "read metadata", key
        )
        return None if current is None else (current.metadata or {}).get(WRITER_METADATA)

    def get(self, key: str) -> bytes:
        from google.api_core.exceptions import NotFound

        blob = self._blob(key)
        try:
            return bytes(self._translate(lambda: blob.download_as_bytes(retry=self._retry), "read", key))
        except NotFound:
            self._raise_if_bucket_missing()
            raise KeyNotFound(key) from None

    def exists(self, key: str) -> bool:
        blob = self._blob(key)
        if self._translate(lambda: blob.exists(retry=self._retry), "check", key):
            return True
        self._raise_if_bucket_missing()
        return False

    def _list_names(self, prefix: str) -> Iterator[builtins.list[str]]:
        """Object names under ``prefix/`` (relative to the storage root), a page at a time, sorted.

        GCS lists in lexicographic order of UTF-8 bytes, which is the order of Python strings.
        The first page is fetched before returning, so a missing bucket or denied access raises here.
        """
        from google.api_core.exceptions import NotFound

        root = self.location.prefix
        full = join_key(root, prefix)
        blobs = self._bucket().client.list_blobs(
            self.location.bucket,
            prefix=f"{full}/" if full else None,
            page_size=LIST_PAGE_SIZE,
            fields="items(name),nextPageToken",
            retry=self._retry,
        )
        pages = iter(blobs.pages)

        def next_page() -> builtins.list[str] | None:
            try:
                page = self._translate(lambda: next(pages, None), "list", prefix or None)
            except NotFound:
                self._raise_if_bucket_missing()
                raise
            return None if page is None else [blob.name for blob in page]

        first = next_page()
        strip = len(root) + 1 if root else 0

        def relative(names: builtins.list[str]) -> builtins.list[str]:
            # Skip names that are not valid keys: "folder/" placeholders made by other tools.
            keys = [name[strip:] for name in names]
            return [key for key in keys if _is_valid_key(key)]

        def pages_of_keys() -> Iterator[builtins.list[str]]:
            page = first
            while page is not None:
                yield relative(page)
                page = next_page()

        return pages_of_keys()

    def list(self, prefix: str) -> Iterator[str]:
        if prefix:
            validate_key(prefix)
        return (key for page in self._list_names(prefix) for key in page)

    def delete_prefix(self, prefix: str) -> int:
        """Delete ``prefix`` and everything under ``prefix/``, a listing page at a time.

        Each page's objects are deleted with concurrent single-object requests (each retried on
        its own). After a page is gone the listing starts again from the beginning, which stays
        right whatever a server's page tokens mean once the objects they point at are deleted.
        """
        validate_key(prefix)
        deleted = self._delete_keys([prefix])
        with ThreadPoolExecutor(DELETE_CONCURRENCY, thread_name_prefix="durably-gcs-delete") as pool:
            while True:
                page = next(self._list_names(prefix), [])
                removed = self._delete_keys(page, pool)
                deleted += removed
                if not page or removed == 0:
                    return deleted

    def _delete_keys(self, keys: Iterable[str], pool: ThreadPoolExecutor | None = None) -> int:
        """Delete keys; return how many existed (a concurrent or earlier deletion is not counted)."""
        if pool is None:
            return sum(self._delete_one(key) for key in keys)
        return sum(pool.map(self._delete_one, keys))

    def _delete_one(self, key: str) -> int:
        from google.api_core.exceptions import NotFound

        blob = self._blob(key)
        try:
            self._translate(lambda: blob.delete(retry=self._retry), "delete", key)
        except NotFound:
            return 0
        return 1


def _is_transient(exc: BaseException) -> bool:
    """Whether a failure that outlived google's retries is still of a kind that may pass (same rule)."""
    import requests
    from google.api_core.exceptions import GoogleAPICallError
    from google.auth.exceptions import TransportError

    if isinstance(exc, GoogleAPICallError):
        return exc.code in (408, 429) or (exc.code or 0) >= 500
    return isinstance(
        exc, (ConnectionError, TimeoutError, TransportError, requests.ConnectionError, requests.Timeout)
    )


def _is_valid_key(key: str) -> bool:
    try:
        validate_key(key)
    except ValueError:
        return False
    return True
