import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
torch.set_num_threads(1)  # tiny tensors: one thread is faster and steadier on a busy 2-core machine


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
