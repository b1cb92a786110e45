import sys
from pathlib import Path

import pytest
import torch

# tests/build_checks/cuda_emulated.py builds and loads the emulated CUDA backend that the op tests run.
sys.path.insert(0, str(Path(__file__).resolve().parent / "build_checks"))


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        # The marker, not the keyword: a test or parameter merely named "cuda" is not a GPU test.
        if item.get_closest_marker("cuda") is not None:
            item.add_marker(skip)
