"""From people's labels to explanations: cleaning, embedding, aggregation, agreement."""

from netreveal.labels.records import LabelRecord

__all__ = ["LabelRecord"]
