"""What concept models read from a frozen backbone: feature maps of images, and the examples of a
dataset as tensors (:class:`FeatureSource`), computed once and kept or computed per batch.

Where and how a layer is read is :mod:`netreveal.concepts.layer_reading`. Also here: batching a
map-style dataset of ``(image, label)`` pairs, and the image box of a feature cell.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import torch
from torch import nn
from tqdm.auto import tqdm

from netreveal.concepts.layer_reading import LayerSpec, layer_spec, read_layers, to_feature_map
from netreveal.errors import NetrevealError
from netreveal.model.hooks import model_device


class FeatureExtractor:
    """``extractor(images) -> (B, D, h, w)`` feature maps of a frozen backbone at one layer.

    Not an ``nn.Module`` on purpose: heads trained on the features never own (or save) the backbone.
    """

    def __init__(
        self,
        model: nn.Module,
        layer: str | nn.Module | LayerSpec | None = None,
        *,
        example: torch.Tensor | None = None,
        image_size: int | tuple[int, int] = 224,
        layout: str = "auto",
        prefix_tokens: int | None = None,
    ):
        self.model = model
        if example is None:
            hw = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
            example = torch.zeros(1, 3, *hw, device=model_device(model))
        self.example = example[:1]
        self.spec = layer_spec(
            model, layer, self.example, layout=layout, prefix_tokens=prefix_tokens
        )

    @property
    def device(self) -> torch.device:
        return model_device(self.model)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        images = images.to(self.device)
        (raw,), _ = read_layers(self.model, images, [self.spec])
        return to_feature_map(raw, self.spec, tuple(images.shape[-2:])).detach()

    def with_logits(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Feature maps and the backbone's logits from one full forward pass."""
        images = images.to(self.device)
        (raw,), logits = read_layers(self.model, images, [self.spec], stop=False)
        return to_feature_map(raw, self.spec, tuple(images.shape[-2:])).detach(), logits


Compute = Callable[[torch.Tensor], tuple[torch.Tensor, ...]]


class FeatureSource:
    """The examples of a dataset as the tensors a frozen backbone computes from their images.

    ``compute(images (B, 3, H, W)) -> (t_1, ..., t_n)``, each batch-first (feature maps; pooled
    activations and logits...). Every request gives those tensors and then the labels
    ``(t_1, ..., t_n, labels)`` of the examples asked for. With ``cache`` everything is computed
    once up front (the backbone is frozen and the data fixed) and kept in :attr:`cached`;
    otherwise each request runs the backbone on its images.
    """

    def __init__(
        self,
        compute: Compute,
        data,
        *,
        batch_size: int = 64,
        cache: bool = True,
        progress: bool = False,
        desc: str = "features",
    ):
        self.compute, self.data, self.batch_size = compute, data, batch_size
        self.cached: tuple[torch.Tensor, ...] | None = None
        if cache:
            parts = [
                (*compute(images), labels)
                for images, labels in tqdm(
                    batches(data, batch_size), desc=desc, disable=not progress, unit="batch"
                )
            ]
            if not parts:
                raise NetrevealError("the dataset is empty")
            self.cached = tuple(torch.cat(column) for column in zip(*parts))

    def __len__(self) -> int:
        return len(self.data)

    def get(self, idx: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The tensors and labels of the examples ``idx`` (in that order)."""
        if self.cached is not None:
            return tuple(t[idx] for t in self.cached)
        ((images, labels),) = batches(self.data, len(idx), idx)
        return (*self.compute(images), labels)

    def in_order(self) -> Iterator[tuple]:
        """``(start, t_1, ..., t_n, labels)`` over the whole dataset in order, a batch at a time."""
        for start in range(0, len(self), self.batch_size):
            yield (start, *self.get(torch.arange(start, min(start + self.batch_size, len(self)))))


def collate(items: Sequence) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack ``(image, label)`` pairs into images (B, 3, H, W) and labels (B,)."""
    images, labels = [], []
    for item in items:
        if not (isinstance(item, (tuple, list)) and len(item) >= 2):
            raise NetrevealError("datasets must yield (image, label) pairs")
        image = item[0]
        if not isinstance(image, torch.Tensor):
            raise NetrevealError(
                f"dataset images must be (3, H, W) tensors in [0, 1], got {type(image).__name__}"
            )
        images.append(image)
        labels.append(int(item[1]))
    return torch.stack(images), torch.tensor(labels, dtype=torch.long)


def batches(
    data, batch_size: int, indices: Sequence[int] | torch.Tensor | None = None
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield ``(images, labels)`` batches of a map-style dataset, in ``indices`` order (default: all)."""
    if batch_size < 1:
        raise NetrevealError("batch_size must be >= 1")
    order = list(range(len(data)) if indices is None else [int(i) for i in indices])
    for start in range(0, len(order), batch_size):
        yield collate([data[i] for i in order[start : start + batch_size]])


def cell_boxes(
    cells: torch.Tensor, grid: tuple[int, int], image_hw: tuple[int, int]
) -> torch.Tensor:
    """Image boxes (..., 4) as ``(x0, y0, x1, y1)`` pixels, exclusive ends, of feature cells
    ``(..., 2)`` given as ``(row, col)`` on an ``(h, w)`` grid.

    A cell maps to the image patch it sits on when the grid is laid over the image (the cell's
    stride region: the patch of a ViT, the output stride block of a CNN); its centre is the centre
    of the cell's receptive field, which is where the evidence is densest.
    """
    h, w = grid
    H, W = image_hw
    rows, cols = cells[..., 0].long(), cells[..., 1].long()
    y0 = torch.div(rows * H, h, rounding_mode="floor")
    y1 = torch.div((rows + 1) * H + h - 1, h, rounding_mode="floor")
    x0 = torch.div(cols * W, w, rounding_mode="floor")
    x1 = torch.div((cols + 1) * W + w - 1, w, rounding_mode="floor")
    return torch.stack([x0, y0, x1, y1], dim=-1)


def argmax_cells(maps: torch.Tensor) -> torch.Tensor:
    """(row, col) of the maximum of each map (..., h, w) -> (..., 2)."""
    w = maps.shape[-1]
    flat = maps.flatten(-2).argmax(dim=-1)
    return torch.stack([torch.div(flat, w, rounding_mode="floor"), flat % w], dim=-1)
