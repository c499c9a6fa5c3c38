"""``EventListenerContract``: the tests every event listener plugin must pass, by subclassing it."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

import cloudpickle
import pytest

from durably.events import EventListener

#: ``(args, kwargs)`` given to ``poll_for_event``.
EventArgs = tuple[tuple[Any, ...], dict[str, Any]]


class EventListenerContract:
    """What durably relies on from an :class:`~durably.events.EventListener`, as inheritable tests.

    durably polls a listener for an event, stores the event, and only then calls
    ``event_checkpointed``; after a crash it polls again with a *new* listener (before the checkpoint)
    or calls ``event_checkpointed`` again with the stored event on a new listener (after it). So a
    listener must deliver an event again until it is checkpointed, never after, accept the same
    checkpoint twice, and return picklable events.

    Subclass it in a test module under a name pytest collects (``TestMyListener``) and define three
    fixtures; give every test its own queue, topic or subscription, so that tests do not see each
    other's events::

        from durably.testing.events import EventListenerContract

        class TestMyListener(EventListenerContract):
            @pytest.fixture
            def listener_factory(self):
                return MyListener                        # called with no arguments for each new listener

            @pytest.fixture
            def event_args(self, queue_name):
                return (queue_name,), {"timeout": 60}    # (args, kwargs) for poll_for_event

            @pytest.fixture
            def emit(self, queue_name):
                def emit(payload: str):                  # make the outside system produce one event
                    send(queue_name, payload.encode())
                    return payload.encode()              # what payload_of(event) must then equal
                return emit

            @pytest.fixture
            def payload_of(self):
                return lambda event: event.body          # default: the event itself

    Every wait is bounded by :attr:`poll_timeout` seconds (override the attribute), so a listener that
    never delivers fails the test instead of hanging it. The class name does not start with ``Test``,
    so pytest never collects the contract on its own.
    """

    #: Seconds one ``poll_for_event`` (or ``event_checkpointed``) may take before the test fails.
    poll_timeout: float = 120.0

    @pytest.fixture
    def payload_of(self) -> Callable[[Any], Any]:
        """Extracts from an event what ``emit`` returned; override when the event wraps its payload."""
        return lambda event: event

    # -- helpers -----------------------------------------------------------------------------
    def _run(self, coroutine: Any) -> Any:
        async def bounded() -> Any:
            return await asyncio.wait_for(coroutine, self.poll_timeout)

        return asyncio.run(bounded())

    def poll(self, listener: EventListener, event_args: EventArgs) -> Any:
        """One ``poll_for_event`` call, as durably makes it, with a bounded wait."""
        args, kwargs = event_args
        return self._run(listener.poll_for_event(*args, **kwargs))

    def checkpointed(self, listener: EventListener, event: Any) -> None:
        self._run(listener.event_checkpointed(event))

    @staticmethod
    def new_payload(label: str) -> str:
        """A payload no other test (or earlier run) has emitted."""
        return f"{label}-{uuid.uuid4().hex}"

    # -- the contract ------------------------------------------------------------------------
    def test_delivers_an_emitted_event(
        self,
        listener_factory: Callable[[], EventListener],
        event_args: EventArgs,
        emit: Callable[[str], Any],
        payload_of: Callable[[Any], Any],
    ) -> None:
        expected = emit(self.new_payload("delivered"))
        event = self.poll(listener_factory(), event_args)
        assert payload_of(event) == expected

    def test_event_survives_a_pickle_round_trip(
        self,
        listener_factory: Callable[[], EventListener],
        event_args: EventArgs,
        emit: Callable[[str], Any],
        payload_of: Callable[[Any], Any],
    ) -> None:
        expected = emit(self.new_payload("pickled"))
        event = self.poll(listener_factory(), event_args)
        restored = cloudpickle.loads(cloudpickle.dumps(event))
        assert restored == event
        assert payload_of(restored) == expected

    def test_event_not_checkpointed_is_delivered_again_to_a_new_listener(
        self,
        listener_factory: Callable[[], EventListener],
        event_args: EventArgs,
        emit: Callable[[str], Any],
        payload_of: Callable[[Any], Any],
    ) -> None:
        expected = emit(self.new_payload("redelivered"))
        first = self.poll(listener_factory(), event_args)  # then "crash": no event_checkpointed
        again = self.poll(listener_factory(), event_args)
        assert payload_of(first) == expected
        assert payload_of(again) == expected

    def test_checkpointed_event_is_not_delivered_again(
        self,
        listener_factory: Callable[[], EventListener],
        event_args: EventArgs,
        emit: Callable[[str], Any],
        payload_of: Callable[[Any], Any],
    ) -> None:
        old = emit(self.new_payload("old"))
        listener = listener_factory()
        event = self.poll(listener, event_args)
        assert payload_of(event) == old
        self.checkpointed(listener, event)
        new = emit(self.new_payload("new"))
        assert payload_of(self.poll(listener_factory(), event_args)) == new

    def test_stored_event_can_be_checkpointed_by_a_new_listener(
        self,
        listener_factory: Callable[[], EventListener],
        event_args: EventArgs,
        emit: Callable[[str], Any],
        payload_of: Callable[[Any], Any],
    ) -> None:
        """After a crash durably calls event_checkpointed with the stored event on a fresh listener."""
        old = emit(self.new_payload("old"))
        stored = cloudpickle.dumps(self.poll(listener_factory(), event_args))
        self.checkpointed(listener_factory(), cloudpickle.loads(stored))
        new = emit(self.new_payload("new"))
        event = self.poll(listener_factory(), event_args)
        assert payload_of(event) != old
        assert payload_of(event) == new

    def test_checkpointing_twice_does_not_skip_the_next_event(
        self,
        listener_factory: Callable[[], EventListener],
        event_args: EventArgs,
        emit: Callable[[str], Any],
        payload_of: Callable[[Any], Any],
    ) -> None:
        payloads = {emit(self.new_payload("one")), emit(self.new_payload("two"))}
        listener = listener_factory()
        first = self.poll(listener, event_args)
        self.checkpointed(listener, first)
        self.checkpointed(listener, first)
        self.checkpointed(listener_factory(), first)
        second = self.poll(listener_factory(), event_args)
        assert {payload_of(first), payload_of(second)} == payloads

    def test_checkpointing_an_old_event_again_does_not_bring_back_later_ones(
        self,
        listener_factory: Callable[[], EventListener],
        event_args: EventArgs,
        emit: Callable[[str], Any],
        payload_of: Callable[[Any], Any],
    ) -> None:
        """A resumed workflow re-checkpoints its old event after newer events were checkpointed."""
        emit(self.new_payload("first"))
        first = self.poll(listener_factory(), event_args)
        self.checkpointed(listener_factory(), first)
        emit(self.new_payload("second"))
        second = self.poll(listener_factory(), event_args)
        self.checkpointed(listener_factory(), second)
        self.checkpointed(listener_factory(), first)
        third = emit(self.new_payload("third"))
        assert payload_of(self.poll(listener_factory(), event_args)) == third
