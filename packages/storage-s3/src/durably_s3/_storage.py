"""``S3Storage``: durably's Storage protocol on Amazon S3 or an S3-compatible server."""

from __future__ import annotations

import builtins
import concurrent.futures
import contextlib
import dataclasses
import os
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ChecksumError,
    ClientError,
    ConnectionError,
    HTTPClientError,
    IncompleteReadError,
    NoCredentialsError,
    PartialCredentialsError,
    ProfileNotFound,
    SSLError,
)

from durably.storage import (
    WRITER_METADATA,
    Creation,
    KeyNotFound,
    StorageError,
    StoragePermanentError,
    TransientStorageError,
    format_storage_url,
    parse_storage_url,
    retry_transient,
    validate_key,
)

T = TypeVar("T")

#: Objects at least this large are uploaded in parts (in parallel, each part retried on its own).
MULTIPART_THRESHOLD = 16 * 1024 * 1024
#: Size of one part of a multipart upload (S3 allows 5 MiB to 5 GiB, and at most 10,000 parts).
PART_SIZE = 8 * 1024 * 1024
_MAX_PARTS = 10_000
_PART_CONCURRENCY = 4
#: How often one operation is tried before a transient error is raised (retry_transient's backoff).
ATTEMPTS = 8
#: delete_objects takes at most this many keys per request.
_DELETE_BATCH = 1000

_OPTIONS = ("region", "endpoint_url", "profile", "create_bucket", "addressing_style")
_BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]")

_TRANSIENT_CODES = frozenset(
    {
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottled",
        "RequestThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "BandwidthLimitExceeded",
        "RequestTimeout",
        "RequestTimeoutException",
        "InternalError",
        "ServiceUnavailable",
        "OperationAborted",
        # S3 answers 409 to a conditional write that races another one; a retry gets a clear answer.
        "ConditionalRequestConflict",
    }
)
_DENIED_CODES = frozenset(
    {
        "AccessDenied",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "InvalidToken",
        "TokenRefreshRequired",
        "AllAccessDisabled",
    }
)
_WRONG_REGION_CODES = frozenset(
    {"PermanentRedirect", "AuthorizationHeaderMalformed", "IllegalLocationConstraintException"}
)
_CREDENTIALS_HINT = (
    "durably-s3 takes credentials from boto3's usual chain: AWS_ACCESS_KEY_ID and "
    "AWS_SECRET_ACCESS_KEY (plus AWS_SESSION_TOKEN), AWS_PROFILE or profile= in the storage URL, "
    "~/.aws/credentials and ~/.aws/config, or an instance or task role"
)


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _http_status(exc: ClientError) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)


def _is_transient(exc: BaseException) -> bool:
    """Throttling, 5xx answers, resets, timeouts and corrupted transfers: worth trying again."""
    if isinstance(exc, TransientStorageError):
        return True
    if isinstance(exc, ClientError):
        status = _http_status(exc)
        return status >= 500 or status == 429 or _error_code(exc) in _TRANSIENT_CODES
    if isinstance(exc, SSLError):
        return False  # a certificate problem does not go away by itself
    return isinstance(exc, (ConnectionError, HTTPClientError, IncompleteReadError, ChecksumError))


def _list_page(s3: Any, request: dict[str, Any]) -> dict[str, Any]:
    return dict(s3.list_objects_v2(**request))


def _is_precondition_failed(exc: ClientError) -> bool:
    """The answer to ``If-None-Match: *`` when the object exists (412 PreconditionFailed)."""
    return _http_status(exc) == 412 or _error_code(exc) in ("PreconditionFailed", "ConditionalRequestFailed")


def _is_missing(exc: ClientError) -> bool:
    return _error_code(exc) in ("NoSuchKey", "404", "NotFound") or (
        _http_status(exc) == 404 and _error_code(exc) != "NoSuchBucket"
    )


@dataclass(frozen=True)
class _Location:
    """What an ``s3://`` URL names; never holds credentials."""

    bucket: str
    prefix: str
    region: str | None = None
    endpoint_url: str | None = None
    profile: str | None = None
    create_bucket: bool = False
    addressing_style: str | None = None

    @classmethod
    def parse(cls, url: str) -> _Location:
        parsed = parse_storage_url(
            url,
            schemes=("s3",),
            options=_OPTIONS,
            example="s3://bucket/prefix",
            credentials_hint=_CREDENTIALS_HINT,
        )
        if not _BUCKET_NAME.fullmatch(parsed.bucket):
            raise ValueError(
                f"{parsed.bucket!r} is not an S3 bucket name (3 to 63 lowercase letters, digits, "
                "'.', '-' or '_'): use s3://bucket/prefix"
            )
        style = parsed.choice("addressing_style", ("auto", "path", "virtual"))
        return cls(
            bucket=parsed.bucket,
            prefix=parsed.prefix,
            region=parsed.option("region"),
            endpoint_url=parsed.endpoint("endpoint_url"),
            profile=parsed.option("profile"),
            create_bucket=parsed.flag("create_bucket"),
            addressing_style=None if style == "auto" else style,
        )

    @property
    def url(self) -> str:
        """The canonical URL: the same location always gives the same text."""
        options = {
            "addressing_style": self.addressing_style,
            "create_bucket": "true" if self.create_bucket else None,
            "endpoint_url": self.endpoint_url,
            "profile": self.profile,
            "region": self.region,
        }
        return format_storage_url("s3", self.bucket, self.prefix, options)


class S3Storage:
    """Keys are objects below ``s3://bucket/prefix/``; see the package README for the URL options.

    * ``put`` is one PutObject (objects of 16 MiB and more: a multipart upload), which S3
      publishes atomically: a reader sees the old object or the new one.
    * ``put_if_absent`` sends ``If-None-Match: *`` (on CompleteMultipartUpload for large objects),
      so of several racing writers exactly one creates the object.
    * Throttling, 5xx answers, resets and timeouts are retried with capped, jittered backoff
      (:func:`durably.storage.retry_transient`); what is still failing then raises
      :class:`~durably.storage.TransientStorageError`, and errors retrying cannot fix raise
      :class:`~durably.storage.StoragePermanentError` at once.
    * The boto3 client is built lazily, once per process, from the URL; pickling the storage
      sends only the URL. Credentials come from boto3's chain and are never part of the URL.
    """

    def __init__(self, url: str) -> None:
        self._location = _Location.parse(url)
        self.bucket = self._location.bucket
        self.prefix = self._location.prefix
        self.url = self._location.url
        self._root = f"{self.prefix}/" if self.prefix else ""
        self._lock = threading.Lock()
        self._client: Any = None
        self._client_pid: int | None = None

    def __repr__(self) -> str:
        return f"S3Storage({self.url!r})"

    def __reduce__(self) -> tuple[type[S3Storage], tuple[str]]:
        return (S3Storage, (self.url,))

    # ------------------------------------------------------------------ the protocol

    def put(self, key: str, data: bytes) -> None:
        """Store ``data`` at ``key``, atomically replacing any previous object."""
        name = self._object_name(key)
        if len(data) >= MULTIPART_THRESHOLD:
            self._put_in_parts(name, data, creation=None)
            return
        self._call(lambda s3: s3.put_object(Bucket=self.bucket, Key=name, Body=data), "write", name)

    def put_if_absent(self, key: str, data: bytes) -> bool:
        """Create ``key`` unless it exists (``If-None-Match: *``); True when this call created it."""
        name = self._object_name(key)
        creation = Creation()
        if len(data) >= MULTIPART_THRESHOLD:
            return self._put_in_parts(name, data, creation=creation)

        def create(s3: Any) -> bool:
            s3.put_object(
                Bucket=self.bucket, Key=name, Body=data, IfNoneMatch="*", Metadata=creation.metadata
            )
            return True

        return self._write_once(create, name, creation)

    def get(self, key: str) -> bytes:
        """The object at ``key``; raises :class:`~durably.storage.KeyNotFound` when there is none."""
        name = self._object_name(key)

        def read(s3: Any) -> bytes | None:
            try:
                response = s3.get_object(Bucket=self.bucket, Key=name)
            except ClientError as exc:
                if _is_missing(exc):
                    return None
                raise
            return bytes(response["Body"].read())

        value = self._call(read, "read", name)
        if value is None:
            raise KeyNotFound(key)
        return value

    def exists(self, key: str) -> bool:
        """Whether an object is stored at ``key`` (one HeadObject)."""
        return self._object_exists(self._object_name(key))

    def list(self, prefix: str) -> Iterator[str]:
        """Every key under ``prefix/`` (all keys for ``""``), sorted.

        The whole listing is read before the first key is returned, so that the order is the
        sorted one even on S3-compatible servers that list folder by folder.
        """
        start = f"{self._object_name(prefix)}/" if prefix else self._root
        keys = [name[len(self._root) :] for name in self._object_names(start)]
        keys.sort()  # S3 already lists in this (UTF-8 byte) order, so this costs one pass
        return iter(keys)

    def delete_prefix(self, prefix: str) -> int:
        """Delete ``prefix`` and every key under ``prefix/``, 1,000 per request; return how many."""
        name = self._object_name(prefix)
        deleted = 0
        if self._object_exists(name):
            self._call(lambda s3: s3.delete_object(Bucket=self.bucket, Key=name), "delete", name)
            deleted += 1
        batch: builtins.list[str] = []
        for object_name in self._object_names(f"{name}/"):
            batch.append(object_name)
            if len(batch) == _DELETE_BATCH:
                deleted += self._delete_batch(batch)
                batch = []
        if batch:
            deleted += self._delete_batch(batch)
        return deleted

    # ------------------------------------------------------------------ helpers

    def _object_name(self, key: str) -> str:
        return self._root + validate_key(key)

    def _object_exists(self, name: str) -> bool:
        def head(s3: Any) -> bool:
            try:
                s3.head_object(Bucket=self.bucket, Key=name)
            except ClientError as exc:
                if _is_missing(exc):
                    return False
                raise
            return True

        return self._call(head, "look up", name)

    def _object_names(self, start: str) -> Iterator[str]:
        """Object names beginning with ``start``, page by page.

        A loop over continuation tokens rather than boto3's paginator, so that each page is
        retried on its own when a request fails.
        """
        token: str | None = None
        while True:
            request: dict[str, Any] = {"Bucket": self.bucket, "Prefix": start}
            if token is not None:
                request["ContinuationToken"] = token
            page: dict[str, Any] = self._call(partial(_list_page, request=request), "list", start)
            for item in page.get("Contents", ()):
                if not item["Key"].endswith("/"):  # "folder" markers that consoles create
                    yield item["Key"]
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or token is None:
                return

    def _delete_batch(self, names: builtins.list[str]) -> int:
        def delete(s3: Any) -> int:
            response = s3.delete_objects(
                Bucket=self.bucket, Delete={"Objects": [{"Key": name} for name in names], "Quiet": True}
            )
            failures = response.get("Errors") or []
            if failures:
                first = failures[0]
                detail = f"{len(failures)} of {len(names)} deletions failed, e.g. {first.get('Key')!r}: "
                detail += f"{first.get('Code')} {first.get('Message', '')}".strip()
                if all(failure.get("Code") in _TRANSIENT_CODES for failure in failures):
                    raise TransientStorageError(f"S3 could not delete in s3://{self.bucket}: {detail}")
                raise StoragePermanentError(f"S3 could not delete in s3://{self.bucket}: {detail}")
            return len(names)

        return self._call(delete, "delete", names[0])

    def _put_in_parts(self, name: str, data: bytes, *, creation: Creation | None) -> bool:
        """A multipart upload; S3 publishes the object only when it is completed, all at once.

        With a ``creation``, the upload is a create-only one (``If-None-Match: *`` on its
        completion) whose object carries the creation's token.
        """
        metadata = {} if creation is None else {"Metadata": creation.metadata}
        upload_id: str = self._call(
            lambda s3: s3.create_multipart_upload(Bucket=self.bucket, Key=name, **metadata)["UploadId"],
            "start an upload to",
            name,
        )
        try:
            parts = self._upload_parts(name, upload_id, data)
            condition = {} if creation is None else {"IfNoneMatch": "*"}

            def complete(s3: Any) -> bool:
                s3.complete_multipart_upload(
                    Bucket=self.bucket,
                    Key=name,
                    UploadId=upload_id,
                    MultipartUpload={"Parts": parts},
                    **condition,
                )
                return True

            created = self._write_once(complete, name, creation)
        except BaseException:
            self._abort_upload(name, upload_id)
            raise
        if not created:  # S3 keeps the parts of an upload whose completion was refused
            self._abort_upload(name, upload_id)
        return created

    def _upload_parts(self, name: str, upload_id: str, data: bytes) -> builtins.list[dict[str, Any]]:
        part_size = max(PART_SIZE, -(-len(data) // _MAX_PARTS))
        offsets = range(0, len(data), part_size)

        def upload(number: int, offset: int) -> dict[str, Any]:
            body = data[offset : offset + part_size]
            response = self._call(
                lambda s3: s3.upload_part(
                    Bucket=self.bucket, Key=name, UploadId=upload_id, PartNumber=number, Body=body
                ),
                f"upload part {number} of",
                name,
            )
            return {"PartNumber": number, "ETag": response["ETag"]}

        with concurrent.futures.ThreadPoolExecutor(min(_PART_CONCURRENCY, len(offsets))) as pool:
            futures = [pool.submit(upload, number, offset) for number, offset in enumerate(offsets, 1)]
            return [future.result() for future in futures]

    def _abort_upload(self, name: str, upload_id: str) -> None:
        # best effort: a bucket lifecycle rule may clean up what is left
        with contextlib.suppress(ClientError, BotoCoreError):
            self._s3().abort_multipart_upload(Bucket=self.bucket, Key=name, UploadId=upload_id)

    def _write_once(self, attempt: Callable[[Any], bool], name: str, creation: Creation | None) -> bool:
        """Run a write (create-only when given a ``creation``), retrying transient failures.

        A failed attempt may have been applied with only its answer lost; then the retry is
        refused: 412 for a create-only write, NoSuchUpload for a completed multipart upload. A
        plain write refused so did land; a create-only one did if the object carries the
        creation's token (:class:`durably.storage.Creation`).
        """
        tracker = creation or Creation()  # a plain write tracks its lost answers too

        def tracked(s3: Any) -> bool:
            try:
                return tracker.attempt(lambda: attempt(s3), _is_transient)
            except ClientError as exc:
                if tracker.maybe_applied and _error_code(exc) == "NoSuchUpload":
                    return creation is None or creation.created_it(lambda: self._writer_of(s3, name))
                if creation is not None and _is_precondition_failed(exc):
                    return creation.created_it(lambda: self._writer_of(s3, name))
                raise

        return self._call(tracked, "write", name)

    def _writer_of(self, s3: Any, name: str) -> str | None:
        """The creation token stored with the object ``name``; None when it has none or is gone."""
        try:
            response = s3.head_object(Bucket=self.bucket, Key=name)
        except ClientError as exc:
            if _is_missing(exc):
                return None
            raise
        token = response.get("Metadata", {}).get(WRITER_METADATA)
        return None if token is None else str(token)

    def _call(self, operation: Callable[[Any], T], action: str, name: str) -> T:
        """Run ``operation(client)`` with retries; turn botocore's errors into durably's."""
        s3 = self._s3()  # outside the retries: it raises durably's errors after retrying on its own
        try:
            return retry_transient(lambda: operation(s3), is_transient=_is_transient, attempts=ATTEMPTS)
        except (ClientError, BotoCoreError) as exc:
            raise self._storage_error(exc, action, name) from exc

    # ------------------------------------------------------------------ the client

    def _s3(self) -> Any:
        """This process's boto3 client, built (and the bucket checked) on first use."""
        pid = os.getpid()
        client = self._client
        if client is not None and self._client_pid == pid:
            return client
        with self._lock:
            if self._client is None or self._client_pid != pid:
                client = self._new_client()
                self._check_bucket(client)
                self._client, self._client_pid = client, pid
            return self._client

    def _new_client(self) -> Any:
        location = self._location
        try:
            session = boto3.session.Session(profile_name=location.profile, region_name=location.region)
        except ProfileNotFound:
            raise StoragePermanentError(
                f"the AWS profile {location.profile!r} named by the storage URL {self.url} is not configured "
                "in ~/.aws/config or ~/.aws/credentials (or the files AWS_CONFIG_FILE and "
                "AWS_SHARED_CREDENTIALS_FILE name)"
            ) from None
        config = Config(
            retries={"mode": "standard", "total_max_attempts": 1},  # durably retries, see _call
            connect_timeout=10,
            read_timeout=120,
            max_pool_connections=32,
            s3={"addressing_style": location.addressing_style or "auto"},
        )
        return session.client("s3", endpoint_url=location.endpoint_url, config=config)

    def _check_bucket(self, client: Any) -> None:
        """Fail early and clearly on a missing bucket or refused credentials; create it if asked."""

        def check() -> None:
            client.head_bucket(Bucket=self.bucket)

        try:
            retry_transient(check, is_transient=_is_transient, attempts=ATTEMPTS)
        except ClientError as exc:
            if _http_status(exc) == 404 or _error_code(exc) == "NoSuchBucket":
                if self._location.create_bucket:
                    self._create_bucket(client)
                    return
                raise self._missing_bucket_error() from exc
            raise self._storage_error(exc, "open the bucket", "") from exc
        except BotoCoreError as exc:
            raise self._storage_error(exc, "open the bucket", "") from exc

    def _create_bucket(self, client: Any) -> None:
        request: dict[str, Any] = {"Bucket": self.bucket}
        region = client.meta.region_name
        if region and region not in ("us-east-1", "aws-global"):
            request["CreateBucketConfiguration"] = {"LocationConstraint": region}
        try:
            retry_transient(lambda: client.create_bucket(**request), is_transient=_is_transient)
        except ClientError as exc:
            if _error_code(exc) != "BucketAlreadyOwnedByYou":  # another process was quicker
                raise self._storage_error(exc, "create the bucket", "") from exc
        except BotoCoreError as exc:
            raise self._storage_error(exc, "create the bucket", "") from exc

    # ------------------------------------------------------------------ errors

    def _where(self, name: str) -> str:
        where = f"s3://{self.bucket}/{name}" if name else f"s3://{self.bucket}"
        if self._location.endpoint_url:
            where += f" at {self._location.endpoint_url}"
        return where

    def _missing_bucket_error(self) -> StoragePermanentError:
        fixed = dataclasses.replace(self._location, create_bucket=True).url
        return StoragePermanentError(
            f"the S3 bucket {self.bucket!r} does not exist ({self._where('')}). Create it "
            f"(for example `aws s3 mb s3://{self.bucket}`), or let durably create it by adding "
            f"create_bucket=true to the storage URL: {fixed}"
        )

    def _storage_error(self, exc: BaseException, action: str, name: str) -> StorageError:
        where = self._where(name)
        if isinstance(exc, ClientError):
            code, status = _error_code(exc), _http_status(exc)
            message = str(exc.response.get("Error", {}).get("Message", "")).strip()
            detail = f"{code or 'error'} (HTTP {status})" + (f": {message}" if message else "")
            if code == "NoSuchBucket":
                return self._missing_bucket_error()
            if status == 403 or code in _DENIED_CODES:
                profile = f" (profile {self._location.profile!r})" if self._location.profile else ""
                return StoragePermanentError(
                    f"S3 refused to {action} {where}: {detail}. Check that the AWS credentials{profile} "
                    f"are valid and may use this bucket; {_CREDENTIALS_HINT}"
                )
            if status == 301 or code in _WRONG_REGION_CODES:
                return StoragePermanentError(
                    f"S3 could not {action} {where}: {detail}. The bucket is probably in another region: "
                    "add region=<the bucket's region> to the storage URL"
                )
            if _is_transient(exc):
                return TransientStorageError(f"S3 could not {action} {where}, {ATTEMPTS} tries: {detail}")
            return StoragePermanentError(f"S3 could not {action} {where}: {detail}")
        if isinstance(exc, (NoCredentialsError, PartialCredentialsError)):
            return StoragePermanentError(f"no AWS credentials to {action} {where}: {_CREDENTIALS_HINT}")
        if _is_transient(exc):
            return TransientStorageError(f"could not reach S3 to {action} {where}, {ATTEMPTS} tries: {exc}")
        return StoragePermanentError(f"S3 could not {action} {where}: {exc}")
