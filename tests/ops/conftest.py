import pytest
import torch


@pytest.fixture
def poisoned_allocations():
    """Deterministic mode, with every new allocation filled with NaN (torch does this in that mode), so an
    output element a kernel forgets to write shows up as NaN."""
    previous = torch.are_deterministic_algorithms_enabled()
    fill = torch.utils.deterministic.fill_uninitialized_memory
    torch.use_deterministic_algorithms(True)
    torch.utils.deterministic.fill_uninitialized_memory = True
    yield
    torch.use_deterministic_algorithms(previous)
    torch.utils.deterministic.fill_uninitialized_memory = fill
