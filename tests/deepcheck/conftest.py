"""deepcheck tests: skip the folder without torch; one torch thread per xdist worker (2 cores, 2 workers)."""

import pytest

torch = pytest.importorskip("torch")
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _one_thread():
    """Each test runs with one torch thread (small problems: extra threads only oversubscribe the shared
    cores); a count a test changed is restored afterwards."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
