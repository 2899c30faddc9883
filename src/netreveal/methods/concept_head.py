"""Methods that explain through a trained concept model (an InfoDisent head, an XNN) named by an option."""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from netreveal.methods.base import Method
from netreveal.methods.options import MethodOptions
from netreveal.model.adapter import ModelAdapter


class ConceptHeadMethod(Method):
    """``kind`` is the concept model's kind; ``file_option`` the option naming its file (None: the
    model's shipped one). ``check`` loads it, so a missing or wrong file fails before any work."""

    kind: ClassVar[str] = ""
    file_option: ClassVar[str] = ""

    def check(self, adapter: ModelAdapter, example: torch.Tensor, options: MethodOptions) -> None:
        self.concept_model(adapter, options)

    def concept_model(self, adapter: ModelAdapter, options: MethodOptions) -> tuple[Any, str]:
        """The concept model for ``adapter`` and where it came from."""
        from netreveal.concepts.selection import concept_model

        return concept_model(self.kind, adapter.name, getattr(options, self.file_option))
