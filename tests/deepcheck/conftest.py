"""deepcheck tests: skip the folder without torch; one torch thread per xdist worker (2 cores, 2 workers)."""

import pytest

torch = pytest.importorskip("torch")
torch.set_num_threads(1)
