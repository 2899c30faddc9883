"""InfoDisent: the decision split into ranked components of an interpretable head, each beside its
prototypes (``--head``; the demo model's head ships with the package)."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import torch

from netreveal.methods.concept_head import ConceptHeadMethod
from netreveal.methods.options import MethodOptions, option
from netreveal.methods.registry import register_method
from netreveal.model.adapter import ModelAdapter

if TYPE_CHECKING:
    from netreveal.concepts.infodisent.explain import InfoDisentExplanation

SHOWN_COMPONENTS = 5  # components per image in an InfoDisent explanation


@dataclasses.dataclass
class InfoDisentOptions(MethodOptions):
    head: str | None = option(None, "InfoDisent head file from 'netreveal train-head infodisent' (demo: shipped)")


@register_method
class InfoDisentMethod(ConceptHeadMethod):
    name = "infodisent"
    title = "InfoDisent"
    Options = InfoDisentOptions
    kind = "infodisent"
    file_option = "head"

    def run(
        self, adapter: ModelAdapter, images: torch.Tensor, targets: torch.Tensor, options: InfoDisentOptions
    ) -> InfoDisentExplanation:
        """Explain ``targets`` with the InfoDisent head; when the head's classes are not the model's
        (a head trained on another label set) its own predicted class is explained."""
        from netreveal.concepts.infodisent import explain_infodisent
        from netreveal.concepts.selection import check_reads_layers

        head, origin = self.concept_model(adapter, options)
        check_reads_layers(adapter.model, [head.layer], "InfoDisent head", origin)
        head = head.to(adapter.device)
        same = list(head.class_names) == list(adapter.class_names)
        result = explain_infodisent(head, adapter.model, images, targets if same else None, top=SHOWN_COMPONENTS,
                                    batch_size=options.batch_size, progress=options.progress)
        result.extras.update({"head": origin, "explains": "given targets" if same else "the head's prediction"})
        return result
