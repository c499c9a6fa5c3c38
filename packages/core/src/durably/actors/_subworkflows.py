"""The workflows a virtual actor call runs: the step futures a method returned, run durably."""

from __future__ import annotations

import hashlib
from typing import Any

from durably import _codec, _config, _launch
from durably._errors import WorkflowError
from durably._resolve import open_storage
from durably._step import StepFunction, Workflow
from durably._store import WorkflowStore
from durably.actors._class import find_method
from durably.actors._store import ActorStore
from durably.actors._target import Target


def gather_arguments(*args: Any, **kwargs: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """The step that computes the arguments of a tail call whose arguments are step futures."""
    return args, kwargs


def calls_actor(function: Any, actor_id: str) -> bool:
    """Whether a step function calls a method of ``actor_id``.

    Such a step (``_steps.ActorMethodStep``) carries its ``Target`` and method name; asking for
    them, rather than for the class, keeps this module below the one that makes such steps.
    """
    target = getattr(function, "target", None)
    return isinstance(target, Target) and target.actor_id == actor_id


def subworkflow_id(actor_id: str, seq: int, call_id: str, index: int) -> str:
    """The id of a sub-workflow a call runs: the same for a retry of the same call on the same state."""
    digest = hashlib.blake2b(call_id.encode(), digest_size=5).hexdigest()
    return f"{actor_id[:150]}.{seq}.{digest}.{index}"


def finish_returned_steps(
    actor_id: str, instance: Any, result: Any, seq: int, call_id: str
) -> tuple[Any, list[str]]:
    """Turn a returned step future into its value: run it as a durable workflow, or apply a tail call.

    ``self.other.step(...)`` as the returned future is applied here, on the same in-flight state;
    its arguments (which may be step futures) are computed by a sub-workflow first.
    """
    ran: list[str] = []
    snapshot: dict[str, Any] | None = None
    if isinstance(result, Workflow):  # its steps run the actor's code snapshot, if it has one
        snapshot = ActorStore(open_storage(_config.current().storage_url), actor_id).load_runtime_env()
    while isinstance(result, Workflow):
        workflow_id = subworkflow_id(actor_id, seq, call_id, len(ran))
        function = result.function
        if calls_actor(function, actor_id):
            args, kwargs = _codec.loads_with(
                result.encoded_args, lambda pid, deps=result.dependencies: deps[pid[1]]
            )
            if result.dependencies:
                ran.append(workflow_id)
                args, kwargs = _launch.run(
                    Workflow(StepFunction(gather_arguments, function.step_options), args, kwargs),
                    workflow_id=workflow_id,
                    snapshot=snapshot,
                )
            method = args[1]
            result = find_method(type(instance), actor_id, method)(instance, *args[3:], **kwargs)
            continue
        refuse_calls_to_self(actor_id, result)
        ran.append(workflow_id)
        result = _launch.run(result, workflow_id=workflow_id, snapshot=snapshot)
    return result, ran


def refuse_calls_to_self(actor_id: str, root: Workflow[Any]) -> None:
    """A sub-workflow that waits on its own actor would wait for the call that waits for it."""
    stack, seen = [root], set()
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        function = node.function
        if calls_actor(function, actor_id):
            method = getattr(function, "method", "?")
            raise WorkflowError(
                f"a method of virtual actor {actor_id!r} returned a workflow with a step that calls "
                f"{actor_id!r} itself ({method!r}); it would wait for the call waiting for it. "
                f"Return self.{method}.step(...) as the method's result instead."
            )
        stack.extend(node.dependencies)


def delete_workflows(store: ActorStore, workflow_ids: list[str]) -> None:
    """Delete the sub-workflows of a call once its commit made them unnecessary."""
    for workflow_id in workflow_ids:
        WorkflowStore(store.storage, workflow_id).delete()
