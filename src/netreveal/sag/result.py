"""The result type of a Structured Attention Graph: roots, the shown subset and the graph."""

from __future__ import annotations

import dataclasses

import torch

from netreveal.results import register


@register
@dataclasses.dataclass
class SagNode:
    """A patch set in the graph. ``confidence`` = its probability / the full-image probability."""

    patches: list[int]
    prob: float
    confidence: float
    level: int
    root: bool = False


@register
@dataclasses.dataclass
class SagEdge:
    """Parent node -> child node obtained by removing patch ``removed`` (indices into ``nodes``)."""

    parent: int
    child: int
    removed: int


@register
@dataclasses.dataclass
class SagResult:
    """Structured Attention Graph of one image for one target class.

    Patches are numbered ``row * grid + col``. ``roots`` are all the minimal sufficient patch
    sets found (each sorted, in discovery order) with their target probabilities ``root_probs``;
    ``shown`` indexes the roots the graph is drawn from (chosen by ``params["select"]``, at most
    ``params["max_shown"]``). ``nodes[i]`` / ``edges`` form the graph (roots first, children
    remove one patch); ``graph_truncated`` says ``params["max_nodes"]`` cut it short.
    ``saliency`` (grid, grid) ranked the patches. ``forward_passes`` counts the images the search
    and graph scored (each distinct patch set once; ``requested_sets`` counts the sets asked for,
    repeats included, i.e. the passes of the reference code's one-image-per-set scoring);
    ``saliency_forward_passes`` those spent
    computing the default saliency map (0 if given). ``params`` holds every setting used,
    ``params["variant"]`` the preset they started from.
    """

    target: int
    full_prob: float
    baseline_prob: float
    grid: int
    image_size: list[int]
    roots: list[list[int]]
    root_probs: list[float]
    shown: list[int]
    nodes: list[SagNode]
    edges: list[SagEdge]
    saliency: torch.Tensor
    forward_passes: int
    saliency_forward_passes: int
    depth: int
    stop_reason: str
    params: dict
    provenance: dict
    graph_truncated: bool = False
    requested_sets: int = 0

    @property
    def root_confidence(self) -> list[float]:
        """Each root's probability relative to the full image's."""
        return [p / self.full_prob if self.full_prob > 0 else 0.0 for p in self.root_probs]

    @property
    def shown_roots(self) -> list[list[int]]:
        """The roots the graph is drawn from."""
        return [self.roots[i] for i in self.shown]


@register
@dataclasses.dataclass
class SagBatch:
    """Structured Attention Graphs of a batch of images, one :class:`SagResult` per image.

    SAG gives several minimal explanations per image, not one map: ``maps`` is None.
    """

    graphs: list[SagResult]
    params: dict
    provenance: dict

    maps = None

    @property
    def targets(self) -> torch.Tensor:
        return torch.tensor([g.target for g in self.graphs], dtype=torch.long)

    @property
    def target_probs(self) -> torch.Tensor:
        return torch.tensor([g.full_prob for g in self.graphs])

    def __len__(self) -> int:
        return len(self.graphs)

    def __getitem__(self, index: int) -> SagResult:
        return self.graphs[index]
