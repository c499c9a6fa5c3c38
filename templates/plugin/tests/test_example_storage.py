"""ExampleStorage passes durably's contract kits: the Storage protocol, and workflows end to end on it."""

from __future__ import annotations

from pathlib import Path

import pytest
from durably_example_storage import ExampleStorage

from durably.storage import Storage
from durably.testing import StorageContract, StorageWorkflowContract


class TestExampleStorage(StorageContract):
    """The Storage protocol, method by method (put, put_if_absent races, listing, delete_prefix...)."""

    @pytest.fixture
    def storage(self, tmp_path: Path) -> Storage:
        return ExampleStorage(f"example://{tmp_path / 'store'}")


class TestExampleStorageWorkflows(StorageWorkflowContract):
    """Workflows, resume after a failure and a SIGKILL, delete and virtual actors on example://.

    durably builds the storage from the URL through the plugin's entry point, in this process
    and in the child processes the kit starts: the distribution must be installed.
    """

    @pytest.fixture
    def storage_url(self, tmp_path: Path) -> str:
        return f"example://{tmp_path / 'workflows'}"


def test_url_is_canonical(tmp_path: Path) -> None:
    storage = ExampleStorage(f"example://{tmp_path}/a/../store")
    assert storage.url == f"example://{tmp_path / 'store'}"


def test_a_relative_path_is_refused() -> None:
    with pytest.raises(ValueError, match="absolute"):
        ExampleStorage("example://relative/folder")


def test_an_unknown_option_is_refused_naming_it(tmp_path: Path) -> None:
    # durably.storage.parse_storage_url's rule, the same for every backend: no option goes unnoticed
    with pytest.raises(ValueError, match="unknown option 'colour'"):
        ExampleStorage(f"example://{tmp_path}?colour=blue")
