"""Virtual actors: durable, addressable objects whose state survives crashes, restarts and clusters.

One job per module: ``_api`` (the public decorator and handles), ``_steps`` (methods as
steps), ``_dispatch`` (where a call runs: ``_local_queue`` in this process, or ``_ray_host``, a
Ray actor per virtual actor, for an executor with a cluster host), ``_commit`` (the optimistic
transaction on the call log), ``_subworkflows`` (the workflows a call runs), ``_class`` (state
and methods of an actor class), ``_target`` (where a call goes) and ``_store`` (the key layout).
"""

from __future__ import annotations

from durably.actors._api import (
    ActorHandle,
    ActorMethod,
    VirtualActorClass,
    delete_actor,
    delete_actor_if_exists,
    get_actor,
    list_actors,
    virtual_actor,
)

__all__ = [
    "ActorHandle",
    "ActorMethod",
    "VirtualActorClass",
    "delete_actor",
    "delete_actor_if_exists",
    "get_actor",
    "list_actors",
    "virtual_actor",
]
