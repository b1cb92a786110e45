import pytest
import torch


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        # The marker, not the keyword: a test or parameter merely named "cuda" is not a GPU test.
        if item.get_closest_marker("cuda") is not None:
            item.add_marker(skip)
