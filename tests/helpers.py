"""Helpers shared by the tests: non-trivial BatchNorm statistics, random weights, thread pinning, a comparison
relative to the output's scale and the FX trace timm's tests use."""
import contextlib
from typing import Callable, Iterator, Optional

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


def assert_close_scaled(actual: torch.Tensor, expected: torch.Tensor, rtol: float = 1e-4,
                        atol_rel: Optional[float] = None) -> None:
    """assert_close with the absolute tolerance relative to the output's scale (`atol_rel`, default `rtol`, times
    max |expected|): kernels that sum in another order differ by rounding that scales with the activations."""
    atol = (rtol if atol_rel is None else atol_rel) * expected.abs().max().item()
    torch.testing.assert_close(actual, expected, rtol=rtol, atol=atol)


def fx_final_output(model: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """The model traced as timm's FX tests do (torchvision's feature extractor on the final node, timm's no-trace
    lists), as a function of the input."""
    from timm.models import get_notrace_functions, get_notrace_modules
    from torchvision.models.feature_extraction import create_feature_extractor, get_graph_node_names
    tracer_kwargs = dict(leaf_modules=get_notrace_modules(), autowrap_functions=get_notrace_functions())
    last = get_graph_node_names(model, tracer_kwargs=tracer_kwargs)[1][-1]
    fx = create_feature_extractor(model, return_nodes=[last], tracer_kwargs=tracer_kwargs)
    return lambda x: next(iter(fx(x).values()))
