"""Flattens a graph of lazy step futures into a table of steps, without recursion."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from durably._options import StepOptions
from durably._step import Workflow
from durably._wait import RemainingStep, WaitFunction, WaitOptions


@dataclass
class StepSpec:
    """One step of a flattened graph: what to call, with what, after which steps."""

    step_id: str
    name: str
    func_key: str
    encoded_args: bytes
    dependencies: list[str]
    options: StepOptions
    named: bool = False
    #: A ``wait_for_event``/``sleep`` step: ``func_key`` is the listener class, run by ``submit_event``.
    event: bool = False
    #: Ray ObjectRefs among the arguments, while the graph is being built (never stored) ...
    object_refs: list[Any] = field(default_factory=list)
    #: ... and the content hashes their values were stored under (``("objref-arg", i)`` ids).
    object_hashes: list[str] = field(default_factory=list)
    #: A ``workflow.wait`` step (1.x): the engine resolves it from its inputs, no worker runs it.
    wait: WaitOptions | None = None


@dataclass
class Graph:
    """Steps in an order where every step comes after its dependencies; ``output`` is the last one's id."""

    steps: list[StepSpec]
    output: str
    functions: dict[str, bytes] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.steps)


def _topological_order(root: Workflow[Any]) -> list[Workflow[Any]]:
    """Post-order over dependencies with an explicit stack: 100,000-deep chains are fine."""
    order: list[Workflow[Any]] = []
    placed: set[int] = set()
    stack: list[tuple[Workflow[Any], bool]] = [(root, False)]
    while stack:
        node, expanded = stack.pop()
        if id(node) in placed:
            continue
        if expanded:
            placed.add(id(node))
            order.append(node)
            continue
        stack.append((node, True))
        for dependency in reversed(node.dependencies):
            if id(dependency) not in placed:
                stack.append((dependency, False))
    return order


def _unique_ids(nodes: list[Workflow[Any]], parent_step_id: str | None) -> list[str]:
    """Readable ids for a top-level graph (``add``, ``add_1``); fixed-length ones under a parent.

    Ids under a parent step are derived from the parent's id and the position, so a step that
    returns the same continuation again after a crash names its steps the same way.
    """
    ids: list[str] = []
    seen: dict[str, int] = {}
    for position, node in enumerate(nodes):
        if isinstance(node, RemainingStep):
            ids.append(node.step_id)  # the step workflow.wait watched keeps its id
            continue
        name = node.function.default_name
        if parent_step_id is None:
            count = seen.get(name, 0)
            seen[name] = count + 1
            ids.append(name if count == 0 else f"{name}_{count}")
        else:
            digest = hashlib.blake2b(f"{parent_step_id}/{position}".encode(), digest_size=6).hexdigest()
            ids.append(f"{name}.{digest}")
    return ids


def flatten(root: Workflow[Any], parent_step_id: str | None = None) -> Graph:
    """The step table of the graph ending at ``root``; functions de-duplicated by content."""
    if not isinstance(root, Workflow):
        raise TypeError(f"expected a step future (the result of f.step(...)), got {type(root).__name__}")
    nodes = _topological_order(root)
    if parent_step_id is None and any(isinstance(node, RemainingStep) for node in nodes):
        raise TypeError(
            "a step future that workflow.wait left running can only be passed to steps of the "
            "workflow that ran the wait, not to a new workflow"
        )
    ids = _unique_ids(nodes, parent_step_id)
    id_of = {id(node): step_id for node, step_id in zip(nodes, ids, strict=True)}
    functions: dict[str, bytes] = {}
    steps: list[StepSpec] = []
    listed: set[str] = set()
    for node, step_id in zip(nodes, ids, strict=True):
        if isinstance(node, RemainingStep):
            # Its function is stored already: the graph that first held the step stored it.
            steps.extend(spec for spec in node.specs if spec.step_id not in listed)
            listed.update(spec.step_id for spec in node.specs)
            continue
        listed.add(step_id)
        pickled = node.function.pickled()
        functions.setdefault(pickled.key, pickled.data)
        steps.append(
            StepSpec(
                step_id=step_id,
                name=node.function.default_name,
                func_key=pickled.key,
                encoded_args=node.encoded_args,
                dependencies=[id_of[id(dependency)] for dependency in node.dependencies],
                options=node.step_options,
                named=node.step_options.name is not None,
                object_refs=list(node.object_refs),
                event=node.function.is_event_step,
                wait=node.function.wait_options if isinstance(node.function, WaitFunction) else None,
            )
        )
    return Graph(steps=steps, output=ids[-1], functions=functions)
