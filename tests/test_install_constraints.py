"""constraints-cpu.txt is constraints.txt for a CPU-only machine: the same pins, torch and torchvision
from PyTorch's CPU index, and none of the packages only a GPU uses."""

from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
GPU_ONLY = ("nvidia-", "cuda-", "triton")


def pins(name: str) -> dict[str, str]:
    lines = (ROOT / name).read_text().splitlines()
    reqs = [Requirement(line) for line in lines if line.strip() and not line.startswith("#")]
    return {r.name.lower(): str(r.specifier) for r in reqs}


def test_cpu_constraints_pin_the_tested_versions_without_gpu_packages():
    gpu, cpu = pins("constraints.txt"), pins("constraints-cpu.txt")
    assert not [name for name in cpu if name.startswith(GPU_ONLY)]
    expected = {name: spec for name, spec in gpu.items() if not name.startswith(GPU_ONLY)}
    for name in ("torch", "torchvision"):
        expected[name] = expected[name] + "+cpu"
    assert cpu == expected
    assert "--extra-index-url https://download.pytorch.org/whl/cpu -c constraints-cpu.txt" in (
        ROOT / "README.md").read_text()
