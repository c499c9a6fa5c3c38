"""Old home of the actor step function, kept so workflows stored by earlier versions still unpickle.

Their graphs name ``durably._actor_calls._actor_method_step``, ``ActorMethodStep`` and ``Target``
by reference; new records name ``durably.actors._steps`` and ``durably.actors._target``.
"""

from __future__ import annotations

from durably.actors._steps import ActorMethodStep, _actor_method_step
from durably.actors._target import Target

__all__ = ["ActorMethodStep", "Target", "_actor_method_step"]
