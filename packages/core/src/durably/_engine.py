"""The scheduler: decides what runs, follows continuations, notices failures and cancellation.

The engine is demand-driven. It asks for the output step; a step that is stored is used as
it is (its consumers load it themselves), a step that returned a continuation forwards to
that sub-graph's output, and any other step is submitted once each input has a handle. Handles
of steps still running are passed on at once, so a chain costs no engine round trip per
step; a consumer that received an input that turned out to be a continuation returns
"unresolved" unrun and is submitted again when the continuation's output has a handle. Once a
function has returned a continuation in this run, consumers of its running steps wait in the
engine for that step's outcome instead, so recursive workflows do not launch them for nothing.
Everything is iterative: graphs 100,000 steps deep are fine.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from durably._graph import Graph, StepSpec
from durably._lease import LeaseLost
from durably._plugins import propagation_context
from durably._protocol import DONE as OUTCOME_DONE
from durably._protocol import UNRESOLVED_INPUT, Continuation, StepFailure, StepTask
from durably._snapshots import CodeSnapshot, InheritedEnv
from durably._store import StoredOutput, WorkflowStore, loadable_error
from durably._wait import RemainingStep
from durably.executors import Executor
from durably.storage import StorageError

NEW, EXPANDING, SUBMITTED, DONE, FORWARD, CATCHING, WAITING = range(7)
#: How many in-flight steps one wait watches; beyond that the watched window rotates.
WAIT_WINDOW = 64
CANCEL_CHECK_SECONDS = 0.5
#: How long a wait on part of the in-flight steps lasts before the window moves on to others.
ROTATE_SECONDS = 0.02
TAIL_SAVE_EVERY = 256
#: ``_Node.consumers_left`` of an output whose consumers have all finished: no handle is needed.
RELEASED = -1


class _Node:
    spec: StepSpec

    __slots__ = ("consumers_left", "dynamic", "forward", "frame_owner", "spec", "state", "value")

    def __init__(self, spec: Any, dynamic: bool, frame_owner: str | None) -> None:
        self.spec = spec
        self.dynamic = dynamic
        self.frame_owner = frame_owner
        self.state = NEW
        self.value: Any = None
        self.forward: str | None = None
        #: Consumers that have not finished yet; RELEASED once they all have and the output's
        #: handle may go, even if the step's own outcome is still on its way to the engine.
        self.consumers_left = 0


class UncaughtStepFailure(Exception):
    """Raised inside the engine when a step fails and no enclosing ``catch_exceptions`` step catches it.

    Not to be confused with :class:`StepFailure`, what a worker raises when a step fails.
    """

    def __init__(self, step_id: str, error: BaseException) -> None:
        super().__init__(step_id, error)
        self.step_id = step_id
        self.error = error


class Cancelled(Exception):
    """Raised inside the engine when the workflow was cancelled."""


class WorkflowEngine:
    """Drives one workflow run to its output value."""

    def __init__(
        self,
        store: WorkflowStore,
        storage_url: str,
        executor: Executor,
        graph: Graph,
        cancel_event: threading.Event | None = None,
        lease: Any = None,
        snapshot: CodeSnapshot | None = None,
        inherited_env: InheritedEnv | None = None,
    ) -> None:
        self.store = store
        #: The workflow's code snapshot: every step task runs under its runtime_env.
        self.snapshot = snapshot
        #: The runtime_env of the Ray job that asked for this run, which steps inherit as a
        #: task inherits its job's (``StepTask.inherited_env``); None with a snapshot.
        self.inherited_env = inherited_env
        self.storage_url = storage_url
        self.executor = executor
        self.cancel_event = cancel_event or threading.Event()
        self.lease = lease
        self.nodes: dict[str, _Node] = {}
        self.inflight: dict[Any, str] = {}
        # In-flight outcome handles in the order they are next watched (finished ones are
        # dropped lazily), so a round costs the window, not a rebuilt list of every step.
        self.watch: deque[Any] = deque()
        self.catchers: dict[str, str] = {}
        self.blocked_by: dict[str, str] = {}
        self.parked: dict[str, list[str]] = {}
        # Functions (by func_key) that returned a continuation in this run: their running steps
        # likely will again, so their consumers are held back until the outcome is known.
        self.continuing: set[str] = set()
        self.running: set[str] = set()
        #: ``workflow.wait`` steps waiting for their inputs, with their deadlines (monotonic;
        #: None: no timeout; inf: the timeout has not started, see ``clocks``).
        self.waits: dict[str, float | None] = {}
        #: Wait steps whose timeout starts when their clock says it does (``_start_wait``), with
        #: the clock (None until it is started, after the wait's inputs were submitted).
        self.clocks: dict[str, Callable[[], bool] | None] = {}
        #: The steps whose uncaught failure ends this run (the one that failed, and the consumer
        #: whose outcome reported it).
        self.failed_steps: set[str] = set()
        #: Finished dynamic steps are forgotten once nothing can ask for them again, so a loop of
        #: 100,000 iterations holds a few nodes, not 100,000. Not once a ``workflow.wait`` step
        #: is known: the steps it leaves running name their finished inputs again, by id.
        self.may_forget = True
        #: Steps the output's forwarding chain has moved past, forgotten at the next round.
        self.passed: list[str] = []
        #: Not the workflow's first driver: an earlier one (perhaps paused, not dead) may still
        #: record steps this one has not seen, so each step looks for its record before it runs.
        self.took_over = lease is None or lease.number != 0
        self.finished_values, self.finished_continuations = store.finished_steps()
        self._register(graph, dynamic=False, frame_owner=None)
        self.output = graph.output
        # The last known step on the output's forwarding chain: a loop of 100,000 iterations
        # resumes from a stored shortcut to it instead of walking every link.
        self.tail = graph.output
        self._tail_moves = 0
        self._tail_saved_at = time.monotonic()
        self._start_from_stored_tail()

    def _start_from_stored_tail(self) -> None:
        shortcut = self.store.load_tail()
        if shortcut is None:
            return
        parent, tail = shortcut
        if parent not in self.finished_continuations:
            return
        self._register(self.store.load_continuation(parent), dynamic=True, frame_owner=parent)
        if tail in self.nodes:
            self.tail = tail

    def _advance_tail(self, parent: str, new_tail: str) -> None:
        if parent != self.output:
            self.passed.append(parent)
        self.tail = new_tail
        self._tail_moves += 1
        if self._tail_moves >= TAIL_SAVE_EVERY or time.monotonic() - self._tail_saved_at > 1.0:
            self.store.save_tail(parent, new_tail)
            self._tail_moves = 0
            self._tail_saved_at = time.monotonic()

    # -- graph bookkeeping --------------------------------------------------------------------
    def _register(self, graph: Graph, dynamic: bool, frame_owner: str | None) -> None:
        for spec in graph.steps:
            if spec.step_id not in self.nodes:
                self.nodes[spec.step_id] = _Node(spec, dynamic, frame_owner)
                if spec.wait is not None:
                    self.may_forget = False
            for dependency in spec.dependencies:
                upstream = self.nodes[dependency]
                upstream.consumers_left = max(upstream.consumers_left, 0) + 1

    def _target(self, step_id: str) -> _Node:
        node = self.nodes[step_id]
        while node.state == FORWARD:
            node = self.nodes[node.forward]  # type: ignore[index]
        return node

    def _handle(self, step_id: str) -> Any:
        """What a consumer receives for this step's output, or None if it has none yet."""
        node = self._target(step_id)
        if node.state in (DONE, SUBMITTED):
            return node.value
        return None

    def _forward(self, node: _Node, graph: Graph) -> None:
        step_id = node.spec.step_id
        self._register(graph, dynamic=True, frame_owner=step_id)
        node.value = None
        if node.spec.options.catch_exceptions:
            node.state = CATCHING
            node.forward = graph.output
            self.catchers[graph.output] = step_id
        else:
            node.state = FORWARD
            node.forward = graph.output
            if step_id == self.tail:
                self._advance_tail(step_id, graph.output)
            owner = self.catchers.pop(step_id, None)
            if owner is not None:
                self.catchers[graph.output] = owner

    # -- demand -------------------------------------------------------------------------------
    def _blocker(self, step_id: str) -> str | None:
        """The step whose outcome this output waits on: a catching step, or a running step
        that will likely return a continuation (no usable handle until that one resolves)."""
        node = self._target(step_id)
        if node.state in (CATCHING, WAITING):
            return str(node.spec.step_id)
        if node.state == EXPANDING:
            return self.blocked_by.get(node.spec.step_id)
        if node.spec.func_key in self.continuing and node.spec.step_id in self.running:
            return str(node.spec.step_id)
        return None

    def demand(self, step_id: str) -> None:
        """Make sure the step's output will be produced: submit whatever it needs."""
        stack = [step_id]
        while stack:
            current = stack[-1]
            node = self.nodes[current]
            state = node.state
            if state in (DONE, SUBMITTED):
                stack.pop()
            elif state == CATCHING:
                stack.pop()
                target = node.forward
                assert target is not None
                if self._handle(target) is None and self._blocker(target) is None:
                    stack.append(target)
            elif state == FORWARD:
                target = node.forward
                assert target is not None
                if self._handle(target) is not None or self._blocker(target) is not None:
                    stack.pop()
                else:
                    stack.append(target)
            elif state == NEW and current in self.finished_values:
                stack.pop()
                self._mark_done(node, StoredOutput(current))
            elif state == NEW and current in self.finished_continuations:
                self._forward(node, self.store.load_continuation(current))
            elif state == NEW and node.spec.wait is not None:
                stack.pop()
                self._start_wait(node)
                stack.extend(reversed(node.spec.dependencies))
            elif state == WAITING:
                stack.pop()
            else:
                node.state = EXPANDING
                self._expand(stack, node)

    def _expand(self, stack: list[str], node: _Node) -> None:
        """Submit ``node`` if every input has a handle; otherwise push what it needs, or park it."""
        inputs: list[Any] = []
        missing: list[str] = []
        blocked: str | None = None
        for dependency in node.spec.dependencies:
            handle = self._handle(dependency)
            blocker = self._blocker(dependency)
            if blocker is not None:
                blocked = blocker
            elif handle is None:
                missing.append(dependency)
            inputs.append(handle)
        if missing:
            stack.extend(reversed(missing))
            return
        stack.pop()
        step_id = node.spec.step_id
        if blocked is not None:
            self.blocked_by[step_id] = blocked
            self.parked.setdefault(blocked, []).append(step_id)
            return
        self.blocked_by.pop(step_id, None)
        self._submit(node, inputs)

    def _mark_done(self, node: _Node, value: Any) -> None:
        node.state = DONE
        node.value = value
        owner = self.catchers.pop(node.spec.step_id, None)
        if owner is not None:
            self._resolve_catcher(owner, value=self._load(node), error=None)

    def _load(self, node: _Node) -> Any:
        if isinstance(node.value, StoredOutput):
            return self.store.load_step_output(node.value.step_id)
        return self.executor.result(node.value)

    def _submit(self, node: _Node, inputs: list[Any]) -> None:
        if self.lease is not None and self.lease.lost:
            # A driver that was paused past its lease submits nothing more (one clock read):
            # the driver that took over may already have checkpointed this step.
            raise LeaseLost()
        workflow_id = self.store.workflow_id
        # Event steps wait on the cluster's shared events actor: they run listener code only.
        runtime_env = self.snapshot.ray_env() if self.snapshot is not None and not node.spec.event else None
        task = StepTask(
            self.storage_url,
            workflow_id,
            node.spec,
            node.dynamic,
            propagation_context(workflow_id),
            runtime_env,
            self.took_over,
            inherited_env=self.inherited_env.ray_env()
            if self.inherited_env and not node.spec.event
            else None,
        )
        submit = self.executor.submit_event if node.spec.event else self.executor.submit
        value, info = submit(task, inputs)
        node.state = SUBMITTED
        node.value = value
        self.inflight[info] = node.spec.step_id
        self.watch.append(info)
        self.running.add(node.spec.step_id)

    # -- workflow.wait ------------------------------------------------------------------------
    def _start_wait(self, node: _Node) -> None:
        """Watch a wait step's inputs; its timeout counts from when the wait step "runs".

        Ray 1.x ran a wait step as a zero-CPU task submitted after its inputs and counted its
        timeout from when that task started on a worker, so cold workers starting for the
        inputs did not eat into it. An executor with ``wait_clock`` does the same: the
        engine starts the clock once the inputs are submitted and the timeout when it ticks.
        """
        assert node.spec.wait is not None
        node.state = WAITING
        timeout = node.spec.wait.timeout
        step_id = node.spec.step_id
        if timeout is not None and getattr(self.executor, "wait_clock", None) is not None:
            self.waits[step_id] = math.inf
            self.clocks[step_id] = None
        else:
            self.waits[step_id] = None if timeout is None else time.monotonic() + timeout

    def _tick_clocks(self) -> None:
        """Start the clocks of new wait steps (their inputs are submitted by now), and the
        timeouts of those whose clock ticked."""
        for step_id, started in list(self.clocks.items()):
            if started is None:
                self.clocks[step_id] = self.executor.wait_clock()  # type: ignore[attr-defined]  # optional
            elif started():
                del self.clocks[step_id]
                wait = self.nodes[step_id].spec.wait
                assert wait is not None and wait.timeout is not None  # only timed waits have a clock
                self.waits[step_id] = time.monotonic() + wait.timeout

    def _check_waits(self) -> None:
        """Resolve the wait steps whose inputs are ready enough, or whose timeout passed."""
        if self.clocks:
            self._tick_clocks()
        for step_id, deadline in list(self.waits.items()):
            node = self.nodes[step_id]
            assert node.spec.wait is not None
            inputs = node.spec.dependencies
            ready = [dependency for dependency in inputs if self._target(dependency).state == DONE]
            enough = len(ready) >= node.spec.wait.num_returns
            if enough or (deadline is not None and time.monotonic() >= deadline):
                del self.waits[step_id]
                self.clocks.pop(step_id, None)
                self._finish_wait(node, set(ready))

    def _finish_wait(self, node: _Node, ready: set[str]) -> None:
        """Checkpoint (ready values in input order, futures of the others) once, then wake consumers."""
        inputs = node.spec.dependencies
        values = [self._load(self._target(dependency)) for dependency in inputs if dependency in ready]
        remaining = [
            RemainingStep(self._specs_up_to(dependency)) for dependency in inputs if dependency not in ready
        ]
        # False: an earlier driver recorded this wait's outcome first; consumers load that one.
        self.store.save_step_output(node.spec.step_id, (values, remaining), {"name": node.spec.name})
        self._mark_done(node, StoredOutput(node.spec.step_id))
        self._wake(node.spec.step_id)

    def _specs_up_to(self, step_id: str) -> list[StepSpec]:
        """The spec of ``step_id`` last, those of every step it depends on before it (dependencies first)."""
        order: list[StepSpec] = []
        placed: set[str] = set()
        stack: list[tuple[str, bool]] = [(step_id, False)]
        while stack:
            current, expanded = stack.pop()
            if current in placed:
                continue
            spec = self.nodes[current].spec
            if expanded:
                placed.add(current)
                order.append(replace(spec, object_refs=[]))  # live refs are stored as object_hashes
                continue
            stack.append((current, True))
            stack.extend((dependency, False) for dependency in reversed(spec.dependencies))
        return order

    # -- events -------------------------------------------------------------------------------
    def _on_finished(self, info: Any) -> None:
        step_id = self.inflight.pop(info)
        self.running.discard(step_id)
        node = self.nodes[step_id]
        try:
            outcome = self.executor.result(info)
        except LeaseLost:
            raise  # a step of this process dropped its checkpoint: another driver owns the workflow
        except BaseException as error:
            self._on_failure(step_id, self.executor.error_of(error))
            self._wake(step_id)  # caught: consumers submitted now fail by themselves, as before
            return
        if outcome is OUTCOME_DONE:
            self._release_inputs(node)
            self._mark_done(node, node.value)
            if node.consumers_left == RELEASED:
                self._release(node)  # its consumers finished before its outcome came in
        elif isinstance(outcome, Continuation):
            self._release_inputs(node)  # it ran: its sub-graph got the input values it needs
            self.continuing.add(node.spec.func_key)
            self._forward(node, outcome.graph)
            self.demand(step_id)
        elif outcome is UNRESOLVED_INPUT:
            node.state = NEW
            node.value = None
            self.demand(step_id)
        else:  # pragma: no cover - the runner only sends the outcomes above
            raise AssertionError(f"unknown step outcome {outcome!r}")
        self._wake(step_id)

    def _wake(self, blocker: str) -> None:
        """Demand again the consumers that waited for ``blocker``'s outcome."""
        for waiting in self.parked.pop(blocker, []):
            self.blocked_by.pop(waiting, None)
            self.nodes[waiting].state = NEW
            self.demand(waiting)

    def _release_inputs(self, node: _Node) -> None:
        """Let go of the outputs nobody will consume again, so memory stays bounded."""
        for dependency in node.spec.dependencies:
            upstream = self.nodes[dependency]
            upstream.consumers_left -= 1
            if upstream.consumers_left <= 0:
                upstream.consumers_left = RELEASED
                self._release(upstream)

    def _release(self, node: _Node) -> None:
        """Drop the handle of an output whose consumers all finished, and forget the step if
        nothing can ask for it again; a forwarding step passes this on to the output it forwards to."""
        while node.spec.step_id not in (self.output, self.tail):
            step_id = node.spec.step_id
            if node.state == DONE:
                if node.spec.options.checkpoint:
                    node.value = StoredOutput(step_id)
                    self._forget(node)
                return
            if node.state != FORWARD:
                return  # still running: released when its outcome comes in (RELEASED)
            target = self.nodes.get(node.forward)  # type: ignore[arg-type]
            self._forget(node)
            if target is None:
                return
            target.consumers_left = RELEASED  # a sub-graph's output: consumed only through ``node``
            node = target

    def _forget(self, node: _Node) -> None:
        """Remove a finished step of a sub-graph, unless something may still look it up.

        Nothing asks for a step again once its consumers finished: every step of a sub-graph
        is an ancestor of its output, so a forwarding step's sub-graph is done by then. The
        exception is a ``catch_exceptions`` step that a failure resolved early, whose other
        branches still run: their failures find it through their frame owners. A step the
        output's chain moved past (``passed``) is only on the way to the tail, and that chain
        stops at a catching step.
        """
        step_id = node.spec.step_id
        if (
            self.may_forget
            and node.dynamic
            and not node.spec.options.catch_exceptions
            and step_id not in self.catchers
            and step_id not in self.parked
            and step_id not in self.blocked_by
            and step_id not in (self.output, self.tail)
        ):
            del self.nodes[step_id]

    def _forget_passed(self) -> None:
        """Forget the steps the output's forwarding chain moved past: only the tail is asked for."""
        for step_id in self.passed:
            node = self.nodes.get(step_id)
            if node is not None and node.state == FORWARD and node.consumers_left <= 0:
                self._forget(node)
        self.passed.clear()

    def _on_failure(self, step_id: str, error: BaseException) -> None:
        if isinstance(error, StorageError):
            raise error  # the checkpoint could not be written (after retries): not the step's fault
        if isinstance(error, StepFailure):
            failed_step, cause = error.step_id, error.error
        else:
            failed_step, cause = step_id, error
        owner = self._catching_owner(step_id)
        if owner is None:
            self.failed_steps.update((step_id, failed_step))
            raise UncaughtStepFailure(failed_step, cause)
        self._resolve_catcher(owner, value=None, error=cause)

    def _catching_owner(self, step_id: str) -> str | None:
        """The nearest enclosing step with catch_exceptions that is still waiting, if any."""
        owner = self.nodes[step_id].frame_owner
        while owner is not None and owner in self.nodes:  # steps before a stored tail catch nothing
            node = self.nodes[owner]
            if node.state == CATCHING:
                return owner
            if node.state == DONE and node.spec.options.catch_exceptions:
                return owner  # already resolved by an earlier failure in the same sub-graph
            owner = node.frame_owner
        return None

    def _resolve_catcher(self, owner: str, value: Any, error: BaseException | None) -> None:
        node = self.nodes[owner]
        if node.state == DONE:
            return
        for target, catcher in list(self.catchers.items()):
            if catcher == owner:
                del self.catchers[target]
        if error is not None:
            error = loadable_error(self.store.workflow_id, owner, error)
        result = (value, None) if error is None else (None, error)
        self.store.save_step_output(owner, result, {"name": node.spec.name, "caught": error is not None})
        self._mark_done(node, StoredOutput(owner))
        self._wake(owner)

    # -- the loop -----------------------------------------------------------------------------
    def run(self) -> tuple[str, Any]:
        """Drive to the end; returns (id of the step holding the output, the output value)."""
        self.demand(self.tail)
        next_cancel_check = time.monotonic() + CANCEL_CHECK_SECONDS
        try:
            while True:
                if self.waits:
                    self._check_waits()
                target = self._target(self.tail)
                if target.state == DONE:
                    return target.spec.step_id, self._value_of(target)
                if not self.inflight:
                    if all(deadline is None for deadline in self.waits.values()):
                        raise AssertionError(
                            f"workflow engine stalled: output step {self.tail!r} cannot be produced"
                        )
                    time.sleep(CANCEL_CHECK_SECONDS)  # only a wait step's timeout can move it on
                    continue
                if self.passed:
                    self._forget_passed()
                window = self._next_window()
                watching_all = len(window) == len(self.inflight)
                timeout = CANCEL_CHECK_SECONDS if watching_all else ROTATE_SECONDS
                ready = self.executor.wait(window, timeout=timeout)
                finished = set(ready)
                # Those still running are watched again after the rest of the in-flight steps.
                self.watch.extend(info for info in window if info not in finished)
                for info in ready:
                    self._on_finished(info)
                if time.monotonic() >= next_cancel_check:
                    next_cancel_check = time.monotonic() + CANCEL_CHECK_SECONDS
                    self._check_interrupts()
        except Cancelled:
            self.executor.cancel(list(self.inflight))
            raise
        except UncaughtStepFailure:
            self._drain()
            raise
        except BaseException:
            self._cancel_event_waits()
            raise

    def _cancel_event_waits(self) -> None:
        """Stop the waits for events: they may never end, and nothing will consume them now."""
        self.executor.cancel(
            [info for info, step_id in self.inflight.items() if self.nodes[step_id].spec.event]
        )

    def _drain(self) -> None:
        """After a step failed, let the steps already running on other branches finish.

        They checkpoint their results, so a resume does not run them again, and the failure is
        reported only once no step of this run is still running (a resume started right after
        the error would otherwise race them). Steps that consumed the failed output fail by
        themselves; nothing new is submitted. A cancellation still stops the wait.
        """
        self._cancel_event_waits()
        # Consumers of the failed output (in submission order, so a chain is one pass) cannot
        # run: they are not waited for, and a 5,000-step tail of a chain costs nothing.
        doomed = set(self.failed_steps)
        pending: list[Any] = []
        for info, step_id in self.inflight.items():
            node = self.nodes[step_id]
            if any(dependency in doomed for dependency in node.spec.dependencies):
                doomed.add(step_id)
            elif not node.spec.event:
                pending.append(info)
        next_check = time.monotonic() + CANCEL_CHECK_SECONDS
        while pending:
            window = pending[:WAIT_WINDOW]
            ready = set(self.executor.wait(window, timeout=CANCEL_CHECK_SECONDS))
            pending = [info for info in window if info not in ready] + pending[WAIT_WINDOW:]
            if time.monotonic() >= next_check:
                next_check = time.monotonic() + CANCEL_CHECK_SECONDS
                if self.cancel_event.is_set() or self.store.cancel_requested():
                    self.executor.cancel(pending)
                    return
                if self.lease is not None and self.lease.lost:
                    return  # the driver that took over owns these steps now

    def _next_window(self) -> list[Any]:
        """Up to WAIT_WINDOW in-flight outcome handles, taken off the front of the watch queue."""
        window: list[Any] = []
        while self.watch and len(window) < WAIT_WINDOW:
            info = self.watch.popleft()
            if info in self.inflight:
                window.append(info)
        return window

    def _check_interrupts(self) -> None:
        if self.cancel_event.is_set() or self.store.cancel_requested():
            raise Cancelled()
        if self.lease is not None and self.lease.lost:
            raise LeaseLost()

    def _value_of(self, node: _Node) -> Any:
        value = self._load(node)
        if not isinstance(node.value, StoredOutput) and not node.spec.options.checkpoint:
            step_id = node.spec.step_id
            if not self.store.save_step_output(step_id, value, {"name": node.spec.name}):
                value = self.store.load_step_output(step_id)  # another driver recorded it first
        return value
