"""Helpers shared by the tests: non-trivial BatchNorm statistics and thread pinning."""
import contextlib
from typing import Iterator, Optional

import torch
from torch import nn


def randomize_bn(model: nn.Module, generator: Optional[torch.Generator] = None) -> nn.Module:
    """Non-trivial BatchNorm statistics and affine parameters, so that eval outputs exercise every path (and a
    folded norm is not the identity)."""
    g = generator if generator is not None else torch.Generator().manual_seed(1)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_mean.normal_(0., 0.1, generator=g)
                m.running_var.uniform_(0.5, 1.5, generator=g)
                if m.weight is not None:
                    m.weight.uniform_(0.5, 1.5, generator=g)
                    m.bias.normal_(0., 0.1, generator=g)
    return model


@contextlib.contextmanager
def single_thread() -> Iterator[None]:
    """One intra-op thread for the block (timings and bit-exact comparisons), restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
