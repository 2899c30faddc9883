"""Checking the command line's answer to bad input, and running it in a subprocess."""

import os
import sys

import torch

from netreveal.cli import main


def same_threads_env() -> dict[str, str]:
    """The environment for a ``netreveal`` subprocess whose results must equal this process's: the
    package importable and the same number of torch threads (another count sums convolutions in
    another order, and the last float bits differ)."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "OMP_NUM_THREADS": str(torch.get_num_threads())}


def fails_with_one_line(capsys, argv: list[str], message: str) -> None:
    """``netreveal argv`` exits with 2 and prints exactly one ``netreveal: error:`` line containing ``message``
    (besides ``netreveal: warning:`` lines, e.g. that a model runs with random weights)."""
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2
    lines = [line for line in err.strip().splitlines() if not line.startswith("netreveal: warning: ")]
    assert len(lines) == 1 and lines[0].startswith("netreveal: error: "), err
    assert message in lines[0], lines[0]
