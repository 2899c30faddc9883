"""The SAG summary an evaluation prints: how often a sufficient patch set was found, and at what cost.

The summary is built from per-image values (:func:`sag_image_values`), so the values of several
shards of an image set combine into the table of the whole set (:func:`sag_rows`)."""

from __future__ import annotations

from collections.abc import Sequence

SAG_HEADER = ["images", "with a sufficient root", "roots / image", "root size (patches)", "forward passes / image",
              "s / image"]


def sag_image_values(graphs: Sequence) -> dict[str, list]:
    """Per image: the size of each sufficient root found, and the forward passes spent."""
    return {"root_sizes": [[len(root) for root in g.roots] for g in graphs],
            "passes": [int(g.forward_passes + g.saliency_forward_passes) for g in graphs]}


def sag_rows(values: Sequence[dict[str, list]], seconds: float) -> tuple[list[str], list[list]]:
    """SAG summary of the images of every part of ``values`` (see :func:`sag_image_values`): share
    of images with at least one sufficient root, mean roots per image, mean root size (over all
    roots found), forward passes and seconds per image."""
    roots = [sizes for part in values for sizes in part["root_sizes"]]
    passes = [p for part in values for p in part["passes"]]
    n = len(roots)
    sizes = [size for image in roots for size in image]
    row = [n, sum(1 for image in roots if image) / max(n, 1), len(sizes) / max(n, 1),
           sum(sizes) / len(sizes) if sizes else "–", sum(passes) / max(n, 1), seconds / max(n, 1)]
    return SAG_HEADER, [row]


def sag_statistics(graphs: Sequence, seconds: float) -> tuple[list[str], list[list]]:
    """The SAG summary of ``graphs`` (one set of images)."""
    return sag_rows([sag_image_values(graphs)], seconds)
