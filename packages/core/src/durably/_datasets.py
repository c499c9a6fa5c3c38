"""Ray Data Datasets inside checkpoints: stored as their blocks' Arrow tables, rebuilt on load.

A Dataset holds ObjectRefs to blocks that die with the cluster that computed them (Ray issue
20082: a Dataset passed between ``ray.workflow`` steps was lost on resume). So a Dataset in a
step's output is materialised when it is checkpointed: each block, as an Arrow table, is stored
like any ObjectRef value (``_objects``: once per workflow, by content hash, large buffers out of
band) and the checkpoint keeps the list of hashes. Loading rebuilds the Dataset with
``ray.data.from_arrow_refs`` over lazy restores, so a block is read from storage only when the
consumer's pipeline reaches it. Costs are in packages/core/docs/ray-libraries.md.
"""

from __future__ import annotations

import sys
from typing import Any

DATASET_ID = "dataset"


def is_dataset(value: Any) -> bool:
    """Whether ``value`` is a Ray Data Dataset (never imports Ray Data: a Dataset implies it is loaded)."""
    data = sys.modules.get("ray.data")
    return data is not None and isinstance(value, data.Dataset)


def materialize(value: Any) -> Any:
    """``value``, executed once if it is a lazy Dataset: the checkpoint and the consumers share its blocks."""
    if not is_dataset(value):
        return value
    from ray.data.dataset import MaterializedDataset

    return value if isinstance(value, MaterializedDataset) else value.materialize()


def arrow_block_refs(dataset: Any) -> list[Any]:
    """ObjectRefs of the Dataset's blocks as Arrow tables, in the Dataset's order (executes it if lazy)."""
    refs: list[Any] = dataset.to_arrow_refs()
    return refs


def rebuild(blocks: list[Any]) -> Any:
    """A Dataset over stored blocks: ObjectRefs of Arrow tables (lazy), or the tables themselves."""
    import ray.data

    if blocks and all(_is_object_ref(block) for block in blocks):
        return ray.data.from_arrow_refs(blocks)
    return ray.data.from_arrow(blocks) if blocks else ray.data.from_items([])


def _is_object_ref(value: Any) -> bool:
    import ray

    return isinstance(value, ray.ObjectRef)
