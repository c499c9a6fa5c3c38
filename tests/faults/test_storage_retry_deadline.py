"""Nested retries have a total deadline: a lasting storage fault fails in bounded time, naming the key.

Time is a fake clock that the faulty storage's slow writes and the retry's backoff advance, so
the tests count attempts and read the error, never the wall clock.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from durably_faults import faulty_storage
from durably_faults.faulty_storage import FaultyStorage, faulty_url

from durably.storage import RETRY_DEADLINE_ENV, TransientStorageError, retry_transient

pytestmark = pytest.mark.faults_smoke


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(faulty_storage.time, "sleep", fake.sleep)
    return fake


class Counted:
    """Counts the attempts of one write to a storage."""

    def __init__(self, storage: FaultyStorage, key: str) -> None:
        self.storage, self.key, self.attempts = storage, key, 0

    def put(self) -> None:
        self.attempts += 1
        self.storage.put(self.key, b"value")


def test_a_write_whose_every_attempt_fails_slowly_stops_at_the_deadline_naming_the_key_and_cause(
    tmp_path: Path, clock: FakeClock
) -> None:
    # Each attempt first stalls 25 s on a slow write (a client retrying one request on its own),
    # then is refused: 8 attempts would block for more than 3 minutes.
    slow = FaultyStorage(faulty_url(str(tmp_path / "slow"), seed=1, slow=1.0, slow_seconds=25))
    refusing = FaultyStorage(faulty_url(str(tmp_path / "refusing"), seed=1, before=1.0))
    attempts = 0

    def write() -> None:
        nonlocal attempts
        attempts += 1
        slow.put("workflows/w/steps/s", b"value")
        refusing.put("workflows/w/steps/s", b"value")

    with pytest.raises(TransientStorageError) as raised:
        retry_transient(
            write, deadline=60, what="write of 'workflows/w/steps/s'", clock=clock.time, sleep=clock.sleep
        )
    assert attempts == 3  # the third ended past 60 s: no fourth
    assert "write of 'workflows/w/steps/s' still failed after 3 attempt(s)" in str(raised.value)
    assert "refused before writing" in str(raised.value)
    assert isinstance(raised.value.__cause__, TransientStorageError)


def test_one_attempt_longer_than_the_deadline_is_not_followed_by_another(
    tmp_path: Path, clock: FakeClock
) -> None:
    storage = FaultyStorage(faulty_url(str(tmp_path / "s"), seed=1, before=1.0))
    write = Counted(storage, "k")

    def stalls_120_s_then_fails() -> None:
        clock.sleep(120)  # a client retrying one request on its own for longer than the deadline
        write.put()

    with pytest.raises(TransientStorageError, match=r"after 1 attempt\(s\).*deadline of 60 s"):
        retry_transient(
            stalls_120_s_then_fails, deadline=60, what="write of 'k'", clock=clock.time, sleep=clock.sleep
        )
    assert write.attempts == 1


def test_a_write_that_fails_briefly_is_still_retried_to_success_within_the_deadline(
    tmp_path: Path, clock: FakeClock
) -> None:
    storage = FaultyStorage(faulty_url(str(tmp_path / "s"), seed=1))
    failures = iter([True, True])

    def flaky_put() -> None:
        if next(failures, False):
            raise TransientStorageError("injected")
        storage.put("k", b"value")

    retry_transient(flaky_put, deadline=60, clock=clock.time, sleep=clock.sleep)
    assert storage.get("k") == b"value"


def test_the_deadline_is_read_from_the_environment(
    tmp_path: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(RETRY_DEADLINE_ENV, "5")
    storage = FaultyStorage(faulty_url(str(tmp_path / "s"), seed=1, before=1.0, slow=0.0))
    write = Counted(storage, "k")

    def stalls_10_s_then_fails() -> None:
        clock.sleep(10)
        write.put()

    with pytest.raises(TransientStorageError, match="deadline of 5 s"):
        retry_transient(stalls_10_s_then_fails, clock=clock.time, sleep=clock.sleep)
    assert write.attempts == 1


def test_a_deadline_that_is_not_a_positive_number_is_refused_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(RETRY_DEADLINE_ENV, "soon")
    with pytest.raises(ValueError, match=f"{RETRY_DEADLINE_ENV}='soon'"):
        retry_transient(lambda: None)
