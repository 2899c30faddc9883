"""What an explanation method is: a class with its own options dataclass, a fail-fast check, a run
that returns an :class:`Explanation`, its heatmaps, and the extra tables it adds to an evaluation.

    @register_method
    class MyCAM(Method):
        name, title = "mycam", "My CAM"
        Options = MyOptions            # a MethodOptions subclass: its fields become CLI flags

        def check(self, adapter, example, options): ...    # optional: fail before any work
        def run(self, adapter, images, targets, options): ...  # -> an Explanation

Reports render results by their type (:mod:`netreveal.report.sections`); methods build no HTML.
This module imports no torch, so the CLI can list methods and flags without loading models.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

from netreveal.methods.options import MethodOptions

if TYPE_CHECKING:
    import torch

    from netreveal.csvtable import Table
    from netreveal.data.inputs import Inputs
    from netreveal.model.adapter import ModelAdapter


@runtime_checkable
class Explanation(Protocol):
    """What every method returns, whatever else it holds.

    ``maps`` (B, H, W) in [0, 1] at the input size, one per image (None for a method without one
    map per image, such as SAG); ``targets`` (B,) the explained class of each image;
    ``target_probs`` (B,) its softmax probability; ``params`` the settings that produced it;
    ``provenance`` versions, seed and time. Results are saved with :mod:`netreveal.results`.
    """

    @property
    def maps(self) -> torch.Tensor | None: ...

    @property
    def targets(self) -> torch.Tensor: ...

    @property
    def target_probs(self) -> torch.Tensor: ...

    @property
    def params(self) -> dict: ...

    @property
    def provenance(self) -> dict: ...


@dataclasses.dataclass
class Evaluation:
    """What a method's extra evaluation may use: the model, the images with their ground truth,
    and the deletion/insertion settings of the evaluation it is part of."""

    adapter: ModelAdapter
    inputs: Inputs
    steps: int = 50
    baseline: str = "blur"
    batch_size: int = 64  # model inputs per forward pass when scoring
    progress: bool = False
    convention: str = "netreveal"  # how deletion/insertion is scored (netreveal.metrics.perturbation_conventions)


class Method:
    """One explanation method. Subclasses set ``name``, ``title``, ``Options`` and implement
    :meth:`run`; the rest has defaults. Instances hold no state: options travel with each call.

    - ``heatmaps(result)``: one map per image (B, H, W) in [0, 1] for scoring; set the attribute
      to None when the result has none (the pipeline then skips deletion/insertion for it).
    - ``ranking_maps(result)``: the maps deletion/insertion ranks (default: the heatmaps); a method
      whose heatmaps are upsampled from a coarse grid returns the grid, so whole cells go in turn.
    - ``smoothable``: the result's ``raw`` is an attribution SmoothGrad may average over noisy
      copies; :meth:`map_from_raw` turns such an average into maps.
    - A field of ``Options`` marked ``sweep`` (I-GOS's mask size) can take several values in
      ``evaluate``; :meth:`variant` names each run.
    - :meth:`evaluation_values` / :meth:`evaluation_tables`: tables the method adds to ``evaluate``
      (SAG, INV), from per-image values that combine across shards (:meth:`extra_evaluations`).
    - :meth:`batch_invariants`: what the batch size must not change (checked for every method by
      ``tests/test_method_contract.py``).
    """

    name: ClassVar[str] = ""
    title: ClassVar[str] = ""
    Options: ClassVar[type[MethodOptions]] = MethodOptions
    smoothable: ClassVar[bool] = False

    def options(self, values: Mapping[str, Any] | None = None, **overrides: Any) -> MethodOptions:
        """This method's options from a mapping of setting names (unknown names are ignored), then
        ``overrides`` (which must be settings of this method)."""
        return self.Options.from_values(values, **overrides)

    def configure(self, values: Mapping[str, Any] | None = None, **overrides: Any) -> MethodRun:
        """This method with its options (see :meth:`options`), ready for the pipeline."""
        return MethodRun(self, self.options(values, **overrides))

    def check(self, adapter: ModelAdapter, example: torch.Tensor, options: MethodOptions) -> None:
        """Raise :class:`~netreveal.errors.NetrevealError` before any work when the method cannot
        run (unknown layer, missing concept file...). ``example`` is one input image (1, 3, H, W)."""

    def run(self, adapter: ModelAdapter, images: torch.Tensor, targets: torch.Tensor,
            options: MethodOptions) -> Explanation:
        """Explain ``images`` (B, 3, H, W) in [0, 1] for class ``targets`` (B,)."""
        raise NotImplementedError

    def heatmaps(self, result: Explanation) -> torch.Tensor:
        """One map per image (B, H, W) in [0, 1] for deletion/insertion and the pointing game."""
        return result.maps

    def ranking_maps(self, result: Explanation) -> torch.Tensor:
        """The maps (B, h, w) deletion/insertion ranks, higher = first: the heatmaps by default."""
        return self.heatmaps(result)

    def batch_invariants(self, result: Explanation) -> dict[str, Any]:
        """What must not change with ``options.batch_size`` (the method contract checks it): by
        default the maps, targets and target probabilities."""
        return {"maps": result.maps, "targets": result.targets, "target_probs": result.target_probs}

    def map_from_raw(self, raw: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """Maps (B, H, W) in [0, 1] from a raw attribution like ``result.raw`` (smoothable methods)."""
        raise NotImplementedError(f"{self.name} has no raw attribution to smooth")

    def evaluation_values(self, evaluation: Evaluation, result: Explanation, options: MethodOptions) -> Any:
        """Plain per-image values (numbers, lists, dicts: JSON-safe) of the images of ``result`` that
        this method's extra tables are built from, or None when it adds none (default). An image set
        explained shard by shard keeps each shard's values and combines them in
        :meth:`evaluation_tables`, so a table never needs every result in memory at once."""
        return None

    def evaluation_tables(self, values: Sequence[Any], seconds: float, options: MethodOptions) -> list[Table]:
        """The tables this method adds to ``netreveal evaluate``, from the :meth:`evaluation_values`
        of every shard (in image order) and the seconds all of them took (default: none)."""
        return []

    def extra_evaluations(self, evaluation: Evaluation, result: Explanation, seconds: float,
                          options: MethodOptions) -> list[Table]:
        """Tables this method adds to ``netreveal evaluate`` beside the common one, for one set of images."""
        values = self.evaluation_values(evaluation, result, options)
        return [] if values is None else self.evaluation_tables([values], seconds, options)

    def variant(self, options: MethodOptions, field: str, value: Any,
                image_size: tuple[int, int]) -> tuple[str, MethodOptions]:
        """The row label and options of one run with sweep ``field`` set to ``value``."""
        return f"{self.name} {field}={value}", dataclasses.replace(options, **{field: value})

    def __repr__(self) -> str:
        return f"<method {self.name}>"


@dataclasses.dataclass(frozen=True)
class MethodRun:
    """A method with its options; ``label`` names it in tables (default: the method's name)."""

    method: Method
    options: MethodOptions
    label: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.options, self.method.Options):
            raise TypeError(f"{self.method.name} takes {self.method.Options.__name__}, "
                            f"not {type(self.options).__name__}")
        if not self.label:
            object.__setattr__(self, "label", self.method.name)

    @property
    def name(self) -> str:
        return self.method.name

    def check(self, adapter: ModelAdapter, example: torch.Tensor) -> None:
        self.method.check(adapter, example, self.options)

    def run(self, adapter: ModelAdapter, images: torch.Tensor, targets: torch.Tensor) -> Explanation:
        return self.method.run(adapter, images, targets, self.options)


def as_runs(methods: Sequence[Method | MethodRun]) -> list[MethodRun]:
    """Runs from methods (default options) or runs."""
    return [m if isinstance(m, MethodRun) else m.configure() for m in methods]
