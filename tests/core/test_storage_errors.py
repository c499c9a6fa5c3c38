"""A checkpoint write failing transiently is retried; one failing for good leaves the workflow resumable."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from durably_test_helpers import count_runs, record_run

from durably import workflow
from durably._errors import WorkflowError
from durably._inspect import workflow_store
from durably._resolve import _storage_cache, forget_storage, normalize_storage_url, open_storage
from durably.storage import FileStorage, TransientStorageError


class FailingStepWrites(FileStorage):
    """A file storage whose next ``failures`` writes of step outputs fail before writing."""

    failures = 0

    def put_if_absent(self, key: str, data: bytes) -> bool:
        if "/steps/" in key and self.failures:
            self.failures -= 1
            raise TransientStorageError(f"injected: {key} refused")
        return super().put_if_absent(key, data)


@workflow.step(max_retries=0)
def counted(counter_dir: str) -> int:
    record_run(counter_dir, "counted")
    return 7


@pytest.fixture
def flaky(tmp_path: Path) -> Iterator[FailingStepWrites]:
    url = normalize_storage_url(str(tmp_path / "storage"))
    storage = FailingStepWrites(url)
    workflow.init(storage=url, executor="local")
    open_storage(url)
    # This process's stores use it (the local executor runs steps here), whatever the cache key holds.
    for cache_key in [key for key in _storage_cache if key[0] == url]:
        _storage_cache[cache_key] = storage
    yield storage
    forget_storage(url)


def test_a_transient_error_writing_a_checkpoint_is_retried_without_running_the_step_again(
    flaky: FailingStepWrites, counter_dir: Path
) -> None:
    flaky.failures = 3
    assert counted.step(str(counter_dir)).run("flaky") == 7
    assert count_runs(counter_dir, "counted") == 1


def test_a_lasting_storage_error_leaves_the_workflow_resumable_without_blaming_the_step(
    flaky: FailingStepWrites, counter_dir: Path
) -> None:
    flaky.failures = 1_000
    with pytest.raises(WorkflowError, match="resumable"):
        counted.step(str(counter_dir)).run("broken")
    assert workflow.get_status("broken") == workflow.WorkflowStatus.RESUMABLE
    assert "failed_step" not in (workflow_store("broken").load_status_meta() or {})
    flaky.failures = 0
    assert workflow.resume("broken") == 7
