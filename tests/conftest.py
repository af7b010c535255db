"""Shared pytest fixtures and settings."""
import os

import torch

from hub_server import hub_server, hub  # noqa: F401

# Under pytest-xdist each worker gets one core: two workers with two intra-op threads each would oversubscribe
# the 2-core CI machine and spin.
if os.environ.get('PYTEST_XDIST_WORKER'):
    torch.set_num_threads(1)
