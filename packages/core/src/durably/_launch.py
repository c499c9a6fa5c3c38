"""Starting a workflow run: store its graph (once), then hand it to the configured engine host.

The API's ``run``/``run_async``, ``Workflow.run``, Ray DAGs and the sub-workflows of virtual
actors all start workflows here.
"""

from __future__ import annotations

import json
from typing import Any

from durably import _config
from durably._durations import Duration, optional_duration
from durably._graph import flatten
from durably._ids import generate_workflow_id, validate_workflow_id
from durably._inspect import workflow_store
from durably._plugins import propagation_context
from durably._snapshots import capture, check_runtime_env
from durably._step import Workflow


def check_metadata(metadata: dict[str, Any] | None) -> dict[str, Any]:
    if metadata is None:
        return {}
    if not isinstance(metadata, dict):
        raise ValueError(f"workflow metadata must be a dict, got {type(metadata).__name__}")
    try:
        json.dumps(metadata)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"workflow metadata must be JSON-serialisable: {exc}") from None
    return metadata


# -- running ----------------------------------------------------------------------------------
def prepare(
    node: Workflow[Any],
    workflow_id: str | None,
    metadata: dict[str, Any] | None,
    retention: Duration | None = None,
    runtime_env: dict[str, Any] | None = None,
    snapshot: dict[str, Any] | None = None,
) -> tuple[str, Any]:
    """Store the workflow unless it exists; ``snapshot``: a code snapshot already recorded
    (a virtual actor's, for the sub-workflows of its calls) instead of capturing ``runtime_env``."""
    if not isinstance(node, Workflow):
        raise TypeError(f"run() takes a step future (the result of f.step(...)), got {type(node).__name__}")
    workflow_id = generate_workflow_id() if workflow_id is None else validate_workflow_id(workflow_id)
    keep = optional_duration(retention, "retention")
    cfg = _config.current()
    code = check_runtime_env(runtime_env) if runtime_env is not None else cfg.runtime_env
    if code is not None and not cfg.supports_runtime_env:
        raise ValueError(
            f"runtime_env needs the ray executor (steps run where Ray can give them the snapshot); "
            f"this process uses {cfg.executor!r}: call workflow.init(executor='ray')"
        )
    graph = flatten(node)
    store = workflow_store(workflow_id)
    if (code is not None or snapshot is not None) and not store.exists():
        # Recorded before the graph, so a workflow that exists always has its snapshot; a second
        # run of the same id keeps the first one's (the code it started with).
        store.save_runtime_env(snapshot if snapshot is not None else capture(store.storage, code or {}))
    created = store.create(
        graph, check_metadata(metadata), _config.current().retention if keep is None else keep
    )
    return workflow_id, graph if created else None


def run(
    node: Workflow[Any],
    workflow_id: str | None = None,
    metadata: dict[str, Any] | None = None,
    retention: Duration | None = None,
    runtime_env: dict[str, Any] | None = None,
    snapshot: dict[str, Any] | None = None,
) -> Any:
    """Run the workflow ending at ``node`` and return its output (the stored one if it finished before).

    ``retention`` (see ``init``) is how long this workflow is kept once it finished.
    ``runtime_env`` (see ``init``) is this workflow's code snapshot, captured now if the workflow
    is new; every step runs under it, on resume too (docs/code-snapshots.md).
    """
    cfg = _config.current()
    workflow_id, graph = prepare(node, workflow_id, metadata, retention, runtime_env, snapshot)
    return cfg.host.run(cfg.storage_url, workflow_id, graph, propagation_context(None))


def run_async(
    node: Workflow[Any],
    workflow_id: str | None = None,
    metadata: dict[str, Any] | None = None,
    retention: Duration | None = None,
    runtime_env: dict[str, Any] | None = None,
) -> Any:
    """Start the workflow and return a ray.ObjectRef of its output (a Future with the local executor)."""
    cfg = _config.current()
    workflow_id, graph = prepare(node, workflow_id, metadata, retention, runtime_env)
    return cfg.host.run_async(cfg.storage_url, workflow_id, graph, propagation_context(None))
