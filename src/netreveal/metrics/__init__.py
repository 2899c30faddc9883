"""Evaluating explanations: deletion/insertion faithfulness, localization against ground truth."""

from netreveal.metrics.localization import (
    box_masks,
    default_tolerance,
    energy_in_mask,
    pointing_game,
)
from netreveal.metrics.perturbation import PerturbationScores, deletion_insertion

__all__ = [
    "PerturbationScores",
    "box_masks",
    "default_tolerance",
    "deletion_insertion",
    "energy_in_mask",
    "pointing_game",
]
