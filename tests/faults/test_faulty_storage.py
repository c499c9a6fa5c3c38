"""The faulty storage the suite injects storage faults with: each fault does what its name says."""

from __future__ import annotations

from pathlib import Path

import pytest
from durably_faults import ledger
from durably_faults.faulty_storage import FaultyStorage, faulty_url, write_log_path

from durably.storage import TransientStorageError

pytestmark = pytest.mark.faults_smoke


def test_a_fault_before_the_write_raises_and_writes_nothing(tmp_path: Path) -> None:
    storage = FaultyStorage(faulty_url(str(tmp_path / "s"), seed=1, before=1.0))
    with pytest.raises(TransientStorageError, match="refused before writing"):
        storage.put("a/b", b"x")
    assert not storage.exists("a/b")


def test_a_fault_after_the_write_raises_but_the_write_landed(tmp_path: Path) -> None:
    storage = FaultyStorage(faulty_url(str(tmp_path / "s"), seed=1, after=1.0))
    with pytest.raises(TransientStorageError, match="answer lost"):
        storage.put_if_absent("a/b", b"x")
    assert storage.get("a/b") == b"x"
    logged = [(line["event"], line.get("kind")) for line in ledger.read(write_log_path(str(tmp_path / "s")))]
    assert logged == [("fault", "after"), ("write", None)]


def test_without_faults_writes_pass_through_and_are_logged(tmp_path: Path) -> None:
    storage = FaultyStorage(faulty_url(str(tmp_path / "s"), seed=1))
    storage.put("k", b"1")
    assert storage.put_if_absent("k", b"2") is False
    assert storage.get("k") == b"1"
    created = [line["created"] for line in ledger.read(write_log_path(str(tmp_path / "s")))]
    assert created == [True, False]


def test_an_unknown_option_is_named(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"unknown option.*'bfore'"):
        FaultyStorage(f"faulty+file://{tmp_path}?bfore=0.1")
