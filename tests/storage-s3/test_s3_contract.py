"""S3Storage passes the whole StorageContract against a real SeaweedFS S3 server."""

from __future__ import annotations

import pytest

from durably.testing import StorageContract
from durably_s3 import S3Storage


class TestS3Storage(StorageContract):
    @pytest.fixture
    def storage(self, s3_url: str) -> S3Storage:
        return S3Storage(s3_url)
