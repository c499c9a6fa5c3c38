"""Workflows, failures, crashes, deletion and virtual actors run end to end on S3 (SeaweedFS)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from durably.testing.workflows import StorageWorkflowContract


class TestS3StorageWorkflows(StorageWorkflowContract):
    # Child processes inherit the server's credentials from the environment (the s3_credentials
    # fixture exports them); the endpoint travels in the URL.
    @pytest.fixture
    def storage_url(self, s3_storage_url_factory: Callable[[], str]) -> str:
        return s3_storage_url_factory()
