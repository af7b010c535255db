"""Helpers shared by the tests: non-trivial BatchNorm statistics, random weights and thread pinning."""
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


def randomize_weights(module: nn.Module, scale: float = 0.5) -> nn.Module:
    """Random weights and BN statistics, so that eval-mode references test more than the default init. Every
    floating-point tensor of the state dict is drawn (from the global generator, seeded 0); returns the module in
    eval mode."""
    torch.manual_seed(0)
    with torch.no_grad():
        for name, tensor in module.state_dict().items():
            if tensor.is_floating_point():
                if name.endswith('running_var'):
                    tensor.uniform_(0.5, 2.0)
                else:
                    tensor.normal_(0, scale)
    return module.eval()


@contextlib.contextmanager
def single_thread() -> Iterator[None]:
    """One intra-op thread for the block (timings and bit-exact comparisons), restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
