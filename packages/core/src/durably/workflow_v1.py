"""Ray 1.x's ``ray.workflow`` for code written against it: ``from durably import workflow_v1 as workflow``.

Everything is ``durably.workflow``'s, except what 1.x returned differently from 2.x: ``resume``
returns a handle to ``ray.get`` (a ``ray.ObjectRef``; a Future with the local executor), as
1.x's did, where 2.x's (and ``durably.workflow``'s) returns the value.
"""

from __future__ import annotations

from durably.workflow import *  # noqa: F403
from durably.workflow import __all__ as _workflow_names
from durably.workflow import resume_async

__all__ = list(_workflow_names)

#: 1.x's resume: a handle to ``ray.get``, not the value.
resume = resume_async
