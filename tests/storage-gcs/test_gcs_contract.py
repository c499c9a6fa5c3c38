"""durably-gcs passes the StorageContract that every durably storage backend passes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from durably.storage import Storage
from durably.testing.storage import StorageContract
from durably_gcs import GCSStorage


class TestGCSStorageContract(StorageContract):
    @pytest.fixture
    def storage(self, bucket: str) -> Iterator[Storage]:
        yield GCSStorage(f"gs://{bucket}/contract")
