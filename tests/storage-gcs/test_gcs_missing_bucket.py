"""A missing bucket is a permanent error naming the bucket and the fix; it is never created silently."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest
from servers.fake_gcs import FakeGCS

from durably.storage import StoragePermanentError
from durably_gcs import GCSStorage

OPERATIONS: dict[str, Callable[[GCSStorage], object]] = {
    "put": lambda storage: storage.put("wf/a", b"1"),
    "put_if_absent": lambda storage: storage.put_if_absent("wf/a", b"1"),
    "get": lambda storage: storage.get("wf/a"),
    "exists": lambda storage: storage.exists("wf/a"),
    "list": lambda storage: storage.list("wf"),
    "delete_prefix": lambda storage: storage.delete_prefix("wf"),
}


@pytest.mark.parametrize("operation", list(OPERATIONS))
def test_operation_on_a_missing_bucket_names_the_bucket_and_the_fix(
    operation: str, fake_gcs: FakeGCS
) -> None:
    name = f"durably-missing-{uuid.uuid4().hex[:8]}"
    storage = GCSStorage(f"gs://{name}/workflows")
    with pytest.raises(StoragePermanentError) as caught:
        OPERATIONS[operation](storage)
    message = str(caught.value)
    assert f"GCS bucket {name!r} does not exist" in message
    assert f"gcloud storage buckets create gs://{name}" in message
    assert "create_bucket=true" in message
    assert not fake_gcs.bucket_exists(name)


def test_create_bucket_option_creates_a_missing_bucket(fake_gcs: FakeGCS) -> None:
    name = f"durably-created-{uuid.uuid4().hex[:8]}"
    storage = GCSStorage(f"gs://{name}/workflows?create_bucket=true")
    storage.put("wf/a", b"1")
    assert fake_gcs.bucket_exists(name)
    assert storage.get("wf/a") == b"1"


def test_create_bucket_option_keeps_an_existing_bucket_and_its_objects(bucket: str) -> None:
    GCSStorage(f"gs://{bucket}/workflows").put("wf/a", b"kept")
    assert GCSStorage(f"gs://{bucket}/workflows?create_bucket=true").get("wf/a") == b"kept"
