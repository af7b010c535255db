"""Shared pytest fixtures and settings."""
import os

import pytest
import torch

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
