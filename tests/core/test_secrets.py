"""Secrets never land in storage: wait_for_event refuses arguments whose names look secret."""

from __future__ import annotations

from typing import Any

import pytest

from durably import workflow
from durably.events import EventListener


class Webhook(EventListener):
    """A listener that says where its secrets come from."""

    secret_hint = "set WEBHOOK_TOKEN in the environment of every process"

    async def poll_for_event(self, *args: Any, **kwargs: Any) -> Any:
        return kwargs


@pytest.mark.parametrize(
    "name", ["password", "api_token", "client_secret", "sasl_username", "sasl.password", "api_key", "ssl.key"]
)
def test_a_secret_looking_argument_is_refused_pointing_at_the_listeners_secret_loading(name: str) -> None:
    with pytest.raises(ValueError, match=rf"'{name}'.*stored with the workflow.*WEBHOOK_TOKEN"):
        workflow.wait_for_event(Webhook, **{name: "hunter2"})


@pytest.mark.parametrize("name", ["key", "topic", "group_id", "keyword", "timeout"])
def test_an_ordinary_argument_is_accepted(name: str) -> None:
    assert workflow.wait_for_event(Webhook, **{name: "value"}) is not None


def test_a_listener_without_a_hint_is_told_the_general_ways(tmp_path: Any) -> None:
    class Plain(EventListener):
        async def poll_for_event(self, *args: Any, **kwargs: Any) -> Any:
            return None

    with pytest.raises(ValueError, match="__init__ in a subclass, or read it from the environment"):
        workflow.wait_for_event(Plain, password="hunter2")


class KeyedQueue(Webhook):
    """A listener whose ``event_key`` names a queue: it declares the name public."""

    public_arguments = ("event_key",)


def test_a_name_the_listener_declares_public_is_accepted() -> None:
    assert workflow.wait_for_event(KeyedQueue, event_key="orders") is not None


def test_a_public_name_of_one_listener_is_still_refused_by_another() -> None:
    with pytest.raises(ValueError, match="'event_key'"):
        workflow.wait_for_event(Webhook, event_key="orders")
