"""``StorageFaultContract``: the faults every networked Storage backend must survive, as a test kit.

A backend retries what may pass (an error before a request was acted on, a lost answer, a slow
one) below its Storage methods, so the faults are injected below them too: on the wire, by a
:class:`FaultInjector` such as :class:`durably.testing.HttpFaultInjector` (a real HTTP proxy
between the backend's client and its service). The kit then checks what a caller sees: every
operation succeeds, every write lands once, and a ``put_if_absent`` whose answer was lost still
says truly whether it created the key.
"""

from __future__ import annotations

import enum
from typing import Literal, Protocol

import pytest

from durably.storage import Storage
from durably.testing.storage import race_to_create

#: The Storage operations a fault can be aimed at.
Operation = Literal["put", "put_if_absent", "get", "exists", "list", "delete_prefix"]


class Fault(enum.Enum):
    """What happens to a request instead of (or on top of) its normal course."""

    #: Answered ``503 Service Unavailable`` before the service sees the request.
    SERVICE_UNAVAILABLE = "503"
    #: Answered ``429 Too Many Requests`` (throttling) before the service sees the request.
    TOO_MANY_REQUESTS = "429"
    #: The connection is reset before the service sees the request.
    RESET = "reset"
    #: The service acts on the request, then the connection is reset: the answer is lost.
    DROP_RESPONSE = "drop-response"
    #: The service acts on the request, and its answer arrives late (within the client's timeouts).
    SLOW_RESPONSE = "slow-response"


#: Faults that happen before the service sees the request: retrying is always safe.
BEFORE_THE_SERVICE_ACTS = (Fault.SERVICE_UNAVAILABLE, Fault.TOO_MANY_REQUESTS, Fault.RESET)


class FaultInjector(Protocol):
    """Injects faults into the requests a backend sends for each operation, and records them."""

    def inject(self, fault: Fault, operation: Operation, *, times: int = 1) -> None:
        """Apply ``fault`` to the next ``times`` requests that ``operation`` sends."""

    def outcomes(self, operation: Operation) -> list[str]:
        """What became of each request ``operation`` sent, in order: ``"forwarded"`` or a Fault's value."""

    def forget(self) -> None:
        """Drop the record of requests and every fault not applied yet."""


class StorageFaultContract:
    """Transient errors, lost answers and slow answers, as tests a backend's test module inherits.

    Subclass it under a name pytest collects and define three fixtures:

    * ``storage``: a fresh, empty Storage of your backend for each test, reached directly;
    * ``faults``: a :class:`FaultInjector` between your backend's client and its service;
    * ``faulty_storage``: a Storage of the same data as ``storage``, whose requests go through
      ``faults``.

    For an HTTP service, :class:`durably.testing.HttpFaultInjector` is a ready injector; map each
    operation to the request that carries it::

        class TestMyStorageFaults(StorageFaultContract):
            @pytest.fixture
            def faults(self, my_server):
                with HttpFaultProxy(my_server.url) as proxy:
                    yield HttpFaultInjector(proxy, {"put": HttpRoute("PUT"), ...})

    Before each test the kit calls ``faulty_storage.exists`` once and forgets its requests,
    so that a client built or a bucket checked on first use is not counted.
    """

    #: How many keys the list and delete_prefix tests write (fewer than one listing page).
    keys_written: int = 20

    @pytest.fixture
    def through_faults(self, faulty_storage: Storage, faults: FaultInjector) -> Storage:
        """``faulty_storage``, used once so that only the test's own requests are recorded."""
        faulty_storage.exists("faults/warm-up")
        faults.forget()
        return faulty_storage

    # ----------------------------------------------------------------- errors before the service acts

    @pytest.mark.parametrize("fault", BEFORE_THE_SERVICE_ACTS)
    def test_put_is_retried_through_errors_before_the_service_acts(
        self, fault: Fault, storage: Storage, through_faults: Storage, faults: FaultInjector
    ) -> None:
        faults.inject(fault, "put", times=2)
        through_faults.put("faults/a", b"value")
        assert faults.outcomes("put") == [fault.value, fault.value, "forwarded"]
        assert storage.get("faults/a") == b"value"

    @pytest.mark.parametrize("fault", BEFORE_THE_SERVICE_ACTS)
    def test_get_is_retried_through_errors_before_the_service_acts(
        self, fault: Fault, storage: Storage, through_faults: Storage, faults: FaultInjector
    ) -> None:
        storage.put("faults/a", b"value")
        faults.inject(fault, "get", times=2)
        assert through_faults.get("faults/a") == b"value"
        assert faults.outcomes("get") == [fault.value, fault.value, "forwarded"]

    @pytest.mark.parametrize("fault", BEFORE_THE_SERVICE_ACTS)
    def test_exists_is_retried_through_errors_before_the_service_acts(
        self, fault: Fault, storage: Storage, through_faults: Storage, faults: FaultInjector
    ) -> None:
        storage.put("faults/a", b"value")
        faults.inject(fault, "exists", times=2)
        assert through_faults.exists("faults/a") is True
        assert faults.outcomes("exists") == [fault.value, fault.value, "forwarded"]

    def test_list_is_retried_through_a_connection_reset(
        self, storage: Storage, through_faults: Storage, faults: FaultInjector
    ) -> None:
        keys = [f"faults/{i:03d}" for i in range(self.keys_written)]
        for key in keys:
            storage.put(key, b"1")
        faults.inject(Fault.RESET, "list")
        assert list(through_faults.list("faults")) == keys
        assert faults.outcomes("list") == ["reset", "forwarded"]

    def test_delete_prefix_is_retried_through_unavailable_answers(
        self, storage: Storage, through_faults: Storage, faults: FaultInjector
    ) -> None:
        for i in range(self.keys_written):
            storage.put(f"faults/{i}", b"1")
        faults.inject(Fault.SERVICE_UNAVAILABLE, "delete_prefix", times=2)
        assert through_faults.delete_prefix("faults") == self.keys_written
        assert list(storage.list("faults")) == []
        assert faults.outcomes("delete_prefix").count("503") == 2

    def test_put_if_absent_retried_through_an_unavailable_answer_creates_the_key(
        self, storage: Storage, through_faults: Storage, faults: FaultInjector
    ) -> None:
        faults.inject(Fault.SERVICE_UNAVAILABLE, "put_if_absent")
        assert through_faults.put_if_absent("faults/lease", b"mine") is True
        assert faults.outcomes("put_if_absent") == ["503", "forwarded"]
        assert storage.get("faults/lease") == b"mine"

    def test_put_if_absent_retried_onto_another_writers_key_reports_false(
        self, storage: Storage, through_faults: Storage, faults: FaultInjector
    ) -> None:
        storage.put("faults/lease", b"theirs")
        faults.inject(Fault.SERVICE_UNAVAILABLE, "put_if_absent")
        assert through_faults.put_if_absent("faults/lease", b"mine") is False
        assert storage.get("faults/lease") == b"theirs"

    # ----------------------------------------------------------------- lost answers

    def test_put_whose_answer_was_lost_is_retried_and_lands_once(
        self, storage: Storage, through_faults: Storage, faults: FaultInjector
    ) -> None:
        faults.inject(Fault.DROP_RESPONSE, "put")
        through_faults.put("faults/a", b"value")
        assert faults.outcomes("put") == ["drop-response", "forwarded"]
        assert storage.get("faults/a") == b"value"

    def test_put_if_absent_whose_answer_was_lost_reports_that_it_created_the_key(
        self, storage: Storage, through_faults: Storage, faults: FaultInjector
    ) -> None:
        # the retry is refused, because the first attempt created the key: that is not losing
        faults.inject(Fault.DROP_RESPONSE, "put_if_absent")
        assert through_faults.put_if_absent("faults/lease", b"mine") is True
        assert faults.outcomes("put_if_absent") == ["drop-response", "forwarded"]
        assert storage.get("faults/lease") == b"mine"

    def test_put_if_absent_whose_answer_was_lost_still_loses_to_an_equal_value_written_before(
        self, storage: Storage, through_faults: Storage, faults: FaultInjector
    ) -> None:
        # the same bytes, from another writer: the data alone cannot tell who wrote them
        assert storage.put_if_absent("faults/lease", b"same value") is True
        faults.inject(Fault.DROP_RESPONSE, "put_if_absent")
        assert through_faults.put_if_absent("faults/lease", b"same value") is False
        assert faults.outcomes("put_if_absent") == ["drop-response", "forwarded"]

    def test_put_if_absent_with_lost_answers_lets_exactly_one_of_four_racing_writers_win(
        self, storage: Storage, through_faults: Storage, faults: FaultInjector
    ) -> None:
        # every first attempt is acted on and its answer lost: the winner's and the losers'
        faults.inject(Fault.DROP_RESPONSE, "put_if_absent", times=4)
        results = race_to_create(through_faults, "faults/race", contenders=4)
        assert results.count(True) == 1
        assert storage.get("faults/race") == f"contender-{results.index(True)}".encode()

    # ----------------------------------------------------------------- slow answers

    def test_a_slow_answer_to_get_is_waited_for_not_retried(
        self, storage: Storage, through_faults: Storage, faults: FaultInjector
    ) -> None:
        storage.put("faults/a", b"value")
        faults.inject(Fault.SLOW_RESPONSE, "get")
        assert through_faults.get("faults/a") == b"value"
        assert faults.outcomes("get") == ["slow-response"]

    def test_a_slow_answer_to_put_if_absent_is_waited_for_not_retried(
        self, storage: Storage, through_faults: Storage, faults: FaultInjector
    ) -> None:
        faults.inject(Fault.SLOW_RESPONSE, "put_if_absent")
        assert through_faults.put_if_absent("faults/lease", b"mine") is True
        assert faults.outcomes("put_if_absent") == ["slow-response"]
        assert storage.get("faults/lease") == b"mine"
