"""The local engine: every item in this process, in order, with one state."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from netreveal.engines.base import Item, Outcome, State


class LocalEngine:
    """Runs items one after another in the calling process (the default engine)."""

    name = "local"
    workers = 1

    def map(self, setup: Callable[[], State], work: Callable[[State, Item], Outcome], items: Sequence[Item],
            on_result: Callable[[int, Outcome], None]) -> None:
        """See :class:`netreveal.engines.base.Engine`; ``setup`` runs once, and only if there is work."""
        if not items:
            return
        state = setup()
        for index, item in enumerate(items):
            on_result(index, work(state, item))


__all__ = ["LocalEngine"]
