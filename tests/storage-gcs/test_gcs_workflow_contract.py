"""Workflows, failures, crashes, deletion and virtual actors run end to end on GCS (fake-gcs-server)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from durably.testing.workflows import StorageWorkflowContract


class TestGCSStorageWorkflows(StorageWorkflowContract):
    # The emulator's address travels in the URL (emulator=), so child processes reach it too.
    @pytest.fixture
    def storage_url(self, gcs_storage_url_factory: Callable[[], str]) -> str:
        return gcs_storage_url_factory()
