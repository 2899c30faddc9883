"""The concept models shipped with the demo: an InfoDisent head and an XNN on the demo CNN.

Both were trained by ``scripts/train_demo_heads.py`` on parts-world images and are loaded here;
nothing is trained at run time. Each records in ``info["source"]`` where its training images come
from (the parts-world settings, split and index range), so its prototypes / top-activating images
can be rendered again (:class:`netreveal.concepts.training_images.TrainingImages`), and in
``info["backbone"]`` the SHA-256 of the demo weights it was trained on: loading fails with a clear
message if the shipped demo model has changed since.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

from netreveal.concepts.infodisent import InfoDisentHead, load_head
from netreveal.concepts.xnn import XNN, load_xnn
from netreveal.errors import NetrevealError
from netreveal.model.demo import ASSETS, DEMO_WEIGHTS

DEMO_INFODISENT = ASSETS / "demo_infodisent.pt"
DEMO_XNN = ASSETS / "demo_xnn.pt"


@lru_cache(maxsize=4)
def _sha256(path: str, mtime_ns: int) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def demo_weights_sha256() -> str:
    """SHA-256 of the shipped demo model's weights file."""
    if not DEMO_WEIGHTS.is_file():
        raise NetrevealError(f"demo model weights missing: {DEMO_WEIGHTS}")
    return _sha256(str(DEMO_WEIGHTS), DEMO_WEIGHTS.stat().st_mtime_ns)


def _check(info: dict, path: Path) -> None:
    recorded = (info.get("backbone") or {}).get("sha256")
    if recorded != demo_weights_sha256():
        raise NetrevealError(
            f"{path.name} was trained on another demo model; run scripts/train_demo_heads.py"
        )


def _load_demo(path: Path, load, what: str):
    if not path.is_file():
        raise NetrevealError(f"demo {what} missing: {path}")
    model = load(path)
    _check(model.info, path)
    return model


def load_demo_infodisent() -> InfoDisentHead:
    """The shipped InfoDisent head for the demo model (eval mode, with its prototypes)."""
    return _load_demo(DEMO_INFODISENT, load_head, "InfoDisent head")


def load_demo_xnn() -> XNN:
    """The shipped XNN for the demo model (eval mode, with its top-activating images)."""
    return _load_demo(DEMO_XNN, load_xnn, "XNN")
