"""The built-in file:// and memory:// backends pass the StorageWorkflowContract kit."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from durably.testing.workflows import StorageWorkflowContract


class TestFileStorageWorkflows(StorageWorkflowContract):
    @pytest.fixture
    def storage_url(self, tmp_path: Path) -> str:
        return (tmp_path / "storage").as_uri()


class TestMemoryStorageWorkflows(StorageWorkflowContract):
    # memory:// lives in this process (or, connected to Ray, in a Ray actor that a child process
    # not connected to Ray cannot see), so the crash and new-driver checks run in this process.
    survives_process_exit = False

    @pytest.fixture
    def storage_url(self) -> str:
        return f"memory://workflow-contract-{uuid.uuid4().hex}"
