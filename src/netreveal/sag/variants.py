"""Named SAG variants: every setting of a run, preset per variant and overridable one by one.

- ``"reference"`` (default): the current release of the paper's reference code (beam search).
- ``"reference-2020"``: the reference code's 2020 release (all 4-patch subsets of the 20 most
  salient patches, absolute probability thresholds).
- ``"netreveal"``: netreveal's own search (hard patches, wider beam that keeps the saliency
  map's own path, best-first pruning, merged graph).

See docs/methods/sag.md for what each setting does and where the variants differ.
"""

from __future__ import annotations

from typing import Any

from netreveal.errors import NetrevealError
from netreveal.sag.patches import INSERTIONS

VARIANTS = ("reference", "reference-2020", "netreveal")
SEARCHES = ("beam", "combinations", "netreveal")
PRUNES = ("raster", "best")
SELECTIONS = ("largest", "disparity", "probable")
GRAPHS = ("tree", "dag")
SCALES = ("relative", "absolute")
SAG_BASELINES = ("black", "blur")

# The reference's I-GOS call (7x7 deletion mask, 20 path steps, noise 0.2, L1 1, TV 20, Armijo line
# search from a step of 200 shrinking by 0.2); the current release runs 2 iterations, 2020's 15.
REFERENCE_SALIENCY = {
    "method": "igos", "variant": "reference", "iterations": 2, "ig_steps": 20, "noise": 0.2, "l1": 1.0, "l2": 20.0,
    "optimizer": "line_search", "alpha0": 200.0, "c": 1e-4, "decay": 0.2, "min_step": 1e-5,
    "warm_start": False, "l1_decay": True,
}
NETREVEAL_SALIENCY = {"method": "igos++", "variant": "netreveal", "iterations": 5, "ig_steps": 10}

_COMMON_REFERENCE = {
    "baseline": "black", "insertion": "soft", "threshold": 0.9, "prune": "raster",
    "max_shown": 3, "max_overlap": 1, "graph": "tree", "expand_above": 0.4, "expand_first": 3,
    "max_nodes": 500, "beam_width": 3, "successors": 15, "max_roots": 10, "top_patches": 20,
}


def variant_settings(variant: str, grid: int) -> dict[str, Any]:
    """Every setting of ``variant`` on a ``grid x grid`` grid (``baseline`` None: the caller's)."""
    cells = grid * grid
    if variant == "reference":
        return {**_COMMON_REFERENCE, "search": "beam", "threshold_scale": "relative",
                "max_patches": cells, "select": "largest", "expand_scale": "relative",
                "saliency": dict(REFERENCE_SALIENCY)}
    if variant == "reference-2020":
        return {**_COMMON_REFERENCE, "search": "combinations", "threshold_scale": "absolute",
                "max_patches": 4, "select": "disparity", "expand_scale": "absolute",
                "saliency": {**REFERENCE_SALIENCY, "iterations": 15}}
    if variant == "netreveal":
        return {"baseline": None, "insertion": "hard", "search": "netreveal", "threshold": 0.9,
                "threshold_scale": "relative", "beam_width": 5, "successors": 15, "max_roots": 10,
                "max_patches": (cells + 1) // 2, "top_patches": cells, "prune": "best",
                "select": "probable", "max_shown": 3, "max_overlap": 1, "graph": "dag",
                "expand_above": 0.4, "expand_scale": "relative", "expand_first": None,
                "max_nodes": 60, "saliency": dict(NETREVEAL_SALIENCY)}
    raise NetrevealError(f"unknown SAG variant {variant!r}; choose one of {', '.join(VARIANTS)}")


_CHOICES = {
    "baseline": SAG_BASELINES, "insertion": INSERTIONS, "search": SEARCHES, "prune": PRUNES,
    "select": SELECTIONS, "graph": GRAPHS, "threshold_scale": SCALES, "expand_scale": SCALES,
}


def resolve_settings(variant: str, grid: int, overrides: dict[str, Any],
                     fallback_baseline: str = "black") -> dict[str, Any]:
    """``variant``'s settings with every non-None override applied, checked."""
    settings = variant_settings(variant, grid)
    unknown = set(overrides) - set(settings)
    if unknown:
        raise NetrevealError(f"unknown SAG setting {min(unknown)!r}")
    settings.update({k: v for k, v in overrides.items() if v is not None})
    if settings["expand_first"] == 0:
        settings["expand_first"] = None  # 0 asks for every patch
    if settings["baseline"] is None:
        settings["baseline"] = fallback_baseline
    for name, choices in _CHOICES.items():
        if settings[name] not in choices:
            raise NetrevealError(
                f"unknown SAG {name} {settings[name]!r}; choose one of {', '.join(choices)}"
            )
    if not 0 < settings["threshold"] <= 1:
        raise NetrevealError(f"threshold must be in (0, 1], got {settings['threshold']}")
    counts = ("beam_width", "successors", "max_roots", "max_shown", "max_nodes", "max_patches",
              "top_patches")
    if any(settings[k] < 1 for k in counts):
        raise NetrevealError(f"{', '.join(counts)} must be >= 1")
    if settings["expand_first"] is not None and settings["expand_first"] < 1:
        raise NetrevealError("expand_first must be >= 0 (0: every patch)")
    settings["max_patches"] = min(int(settings["max_patches"]), grid * grid)
    return settings
