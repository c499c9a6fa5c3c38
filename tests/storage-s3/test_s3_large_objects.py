"""Large objects go up as multipart uploads: parts on the server, whole on the way back, nothing left over."""

from __future__ import annotations

import random

from servers.seaweedfs import TEST_BUCKET, SeaweedFS

import durably_s3._storage
from durably_s3 import S3Storage

LARGE = 20 * 1024 * 1024  # three parts of 8 MiB
SMALL = durably_s3._storage.MULTIPART_THRESHOLD - 1


def _head(seaweedfs: SeaweedFS, storage: S3Storage, key: str, **extra: int) -> dict[str, object]:
    return dict(seaweedfs.client().head_object(Bucket=TEST_BUCKET, Key=f"{storage.prefix}/{key}", **extra))


def test_large_object_is_stored_in_parts(seaweedfs: SeaweedFS, storage: S3Storage) -> None:
    storage.put("wf/big", random.Random(1).randbytes(LARGE))
    assert _head(seaweedfs, storage, "wf/big", PartNumber=1)["PartsCount"] == 3
    assert str(_head(seaweedfs, storage, "wf/big")["ETag"]).strip('"').endswith("-3")


def test_object_below_the_threshold_is_stored_in_one_request(
    seaweedfs: SeaweedFS, storage: S3Storage
) -> None:
    storage.put("wf/small", random.Random(2).randbytes(SMALL))
    assert "-" not in str(_head(seaweedfs, storage, "wf/small")["ETag"])


def test_large_put_if_absent_is_stored_in_parts(seaweedfs: SeaweedFS, storage: S3Storage) -> None:
    assert storage.put_if_absent("wf/big", random.Random(3).randbytes(LARGE)) is True
    assert _head(seaweedfs, storage, "wf/big", PartNumber=1)["PartsCount"] == 3


def test_refused_large_put_if_absent_leaves_no_unfinished_upload(
    seaweedfs: SeaweedFS, storage: S3Storage
) -> None:
    storage.put("wf/big", b"already here")
    assert storage.put_if_absent("wf/big", random.Random(4).randbytes(LARGE)) is False
    uploads = seaweedfs.client().list_multipart_uploads(Bucket=TEST_BUCKET, Prefix=f"{storage.prefix}/")
    assert uploads.get("Uploads", []) == []


def test_large_object_replaces_a_small_one_whole(storage: S3Storage) -> None:
    storage.put("wf/value", b"small")
    large = random.Random(5).randbytes(LARGE)
    storage.put("wf/value", large)
    assert storage.get("wf/value") == large
