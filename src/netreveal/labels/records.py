"""The one shape labels take between the store, the simulated crowd and the label pipeline
(declared with the store's records, :class:`netreveal.store.records.LabelRecord`)."""

from __future__ import annotations

from netreveal.store.records import LabelRecord

__all__ = ["LabelRecord"]
