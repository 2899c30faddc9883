"""Part alignment of maps: top regions and best IoU on hand-built masks."""

import torch

from netreveal.metrics.alignment import best_part_iou, top_region


def test_top_region_size_and_place():
    m = torch.zeros(1, 10, 10)
    m[0, 2:4, 2:4] = 1.0
    region = top_region(m, 0.04)
    assert region.sum() == 4 and region[0, 2:4, 2:4].all()


def test_best_part_iou_hand_computed():
    parts = torch.zeros(2, 10, 10, dtype=torch.bool)
    parts[0, 0:2, 0:2] = True  # 4 px
    parts[1, 5:9, 5:9] = True  # 16 px
    maps = torch.zeros(2, 10, 10)
    maps[0, 5:9, 5:9] = 1.0  # exactly part 1 -> IoU 1 (top 16%)
    maps[1, 0:2, 0:4] = 1.0  # 8 px covering part 0 (4 px)
    best, which = best_part_iou(maps, parts, fraction=0.16)
    assert which[0] == 1 and torch.isclose(best[0], torch.tensor(1.0))
    # map 1: top 16 px = its 8 bright px + 8 zero px; part 0 lies inside the bright ones -> IoU 4/16
    assert which[1] == 0 and torch.isclose(best[1], torch.tensor(4 / 16))


def test_no_parts():
    best, which = best_part_iou(torch.rand(3, 8, 8), torch.zeros(0, 8, 8, dtype=torch.bool))
    assert (best == 0).all() and (which == -1).all()
