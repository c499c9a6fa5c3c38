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
) -> tuple[str, Any]:
    if not isinstance(node, Workflow):
        raise TypeError(f"run() takes a step future (the result of f.step(...)), got {type(node).__name__}")
    workflow_id = generate_workflow_id() if workflow_id is None else validate_workflow_id(workflow_id)
    keep = optional_duration(retention, "retention")
    graph = flatten(node)
    store = workflow_store(workflow_id)
    created = store.create(
        graph, check_metadata(metadata), _config.current().retention if keep is None else keep
    )
    return workflow_id, graph if created else None


def run(
    node: Workflow[Any],
    workflow_id: str | None = None,
    metadata: dict[str, Any] | None = None,
    retention: Duration | None = None,
) -> Any:
    """Run the workflow ending at ``node`` and return its output (the stored one if it finished before).

    ``retention`` (see ``init``) is how long this workflow is kept once it finished.
    """
    cfg = _config.current()
    workflow_id, graph = prepare(node, workflow_id, metadata, retention)
    return cfg.host.run(cfg.storage_url, workflow_id, graph)


def run_async(
    node: Workflow[Any],
    workflow_id: str | None = None,
    metadata: dict[str, Any] | None = None,
    retention: Duration | None = None,
) -> Any:
    """Start the workflow and return a ray.ObjectRef of its output (a Future with the local executor)."""
    cfg = _config.current()
    workflow_id, graph = prepare(node, workflow_id, metadata, retention)
    return cfg.host.run_async(cfg.storage_url, workflow_id, graph)
