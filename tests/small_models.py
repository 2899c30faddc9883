"""Small randomly initialised models of each family, wrapped as the package wraps loaded models,
with the concept heads XNN and InfoDisent need; shared by the model-family tests and benchmark."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torch.utils.data import Dataset

from netreveal.model.adapter import ModelAdapter, NormalizedModel

CLASSES = 5
MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)
# Small settings for every registered method (unknown names are ignored by each method).
SMALL = {
    "ig_steps": 4,
    "mask_size": 4,
    "igos_iterations": 1,
    "igos_steps": 2,
    "grid": 2,
    "sag_saliency_iterations": 1,
    "sag_saliency_steps": 2,
    "layers": "auto:2",
    "occlusion_window": 8,
    "occlusion_stride": 8,
    "samples": 16,
    "segments": 8,
    "rise_masks": 16,
    "smooth_samples": 2,
    "progress": False,
}


def torchvision_vit() -> nn.Module:
    from torchvision.models.vision_transformer import VisionTransformer

    net = VisionTransformer(image_size=32, patch_size=8, num_layers=2, num_heads=2, hidden_dim=32, mlp_dim=64,
                            num_classes=CLASSES)
    nn.init.normal_(net.heads.head.weight, std=0.2)  # torchvision starts the head at zero: no gradient at all
    return net


def timm_vit(**kwargs) -> nn.Module:
    import timm

    return timm.create_model("vit_tiny_patch16_224", img_size=32, patch_size=8, depth=2, num_classes=CLASSES,
                             pretrained=False, **kwargs)


def timm_swin() -> nn.Module:
    import timm

    return timm.create_model("swin_tiny_patch4_window7_224", img_size=32, window_size=2, depths=(1, 1),
                             num_heads=(1, 2), embed_dim=16, num_classes=CLASSES, pretrained=False)


def resnet18() -> nn.Module:
    import torchvision

    return torchvision.models.resnet18(weights=None, num_classes=CLASSES)


def demo_cnn() -> nn.Module:
    from netreveal.model.demo import DemoCNN

    return DemoCNN(num_classes=CLASSES)


# family -> (builder, input size)
FAMILIES = {
    "demo-cnn": (demo_cnn, 32),
    "resnet18": (resnet18, 64),
    "vit-torchvision": (torchvision_vit, 32),
    "vit-timm": (timm_vit, 32),
    "swin-timm": (timm_swin, 32),
}


def adapter(family: str, seed: int = 0) -> ModelAdapter:
    """A random model of ``family`` as a :class:`ModelAdapter` in eval mode."""
    build, size = FAMILIES[family]
    torch.manual_seed(seed)
    net = build()
    model = NormalizedModel(net, MEAN, STD).eval()
    return ModelAdapter(model=model, name=f"small-{family}", input_size=size,
                        class_names=[f"class_{i}" for i in range(CLASSES)], mean=MEAN, std=STD)


class TensorData(Dataset):
    """(image, label) pairs from tensors."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor):
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        return self.images[i], int(self.labels[i])


def concept_heads(adapter: ModelAdapter, folder: Path, n: int = 12) -> dict[str, str]:
    """An XNN and an InfoDisent head trained for one short epoch on random images labelled by the
    model's own predictions, saved in ``folder``: ``{"xnn": path, "head": path}`` (method options)."""
    from netreveal.concepts.infodisent import save_head, train_infodisent
    from netreveal.concepts.xnn import save_xnn, train_xnn

    generator = torch.Generator().manual_seed(1)
    images = torch.rand(n, 3, adapter.input_size, adapter.input_size, generator=generator)
    with torch.no_grad():
        labels = adapter.model(images).argmax(1)
    data = TensorData(images, labels)
    xnn = train_xnn(adapter.model, data, data, num_features=3, epochs=1, batch_size=n, top_images=0)
    head = train_infodisent(adapter.model, data, data, epochs=1, batch_size=n, prototypes=0,
                            num_classes=CLASSES, class_names=list(adapter.class_names))
    folder.mkdir(parents=True, exist_ok=True)
    return {"xnn": str(save_xnn(xnn, folder / "xnn.pt")), "head": str(save_head(head, folder / "head.pt"))}
