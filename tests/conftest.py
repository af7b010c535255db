"""Shared pytest fixtures and settings."""
import os

import pytest
import torch

from helpers import single_thread
from hub_server import hub, hub_server  # noqa: F401

# Under pytest-xdist each worker gets one core: two workers with two intra-op threads each would oversubscribe
# the 2-core CI machine and spin.
if os.environ.get('PYTEST_XDIST_WORKER'):
    torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def tricks_cache(monkeypatch, tmp_path):
    """The authors' weights converted by `pretrained=True` go to a fresh folder per test, never the user's cache."""
    path = tmp_path / 'tricks-cache'
    monkeypatch.setenv('TIMM_TRICKS_CACHE', str(path))
    return path


@pytest.fixture(scope='module')
def one_cpu_thread():
    """One intra-op thread for a whole module, for modules that opt in with
    `pytestmark = pytest.mark.usefixtures('one_cpu_thread')`. Their inputs are tiny: one thread is as fast on an
    idle machine, and far faster on a loaded 2-core one, where torch's spinning OpenMP threads made each forward
    10-20x slower (cspdensenet121's trace: 18.7 s with 2 threads, 1.6 s with 1)."""
    with single_thread():
        yield
