"""Parameter counts (total, trainable, used by a forward pass) and fvcore activation counts."""
from dataclasses import dataclass
from typing import Iterator, List

import torch
from torch import nn

from ._fvcore import ActivationCountAnalysis, silence
from ._models import InputSize, ModelOrName, eval_mode, example_input, load_model
from .handles import activation_handles


@dataclass(frozen=True)
class ParamCount:
    total: int
    trainable: int  # requires_grad
    used_in_forward: int  # take part in an eval-mode forward pass (training-only parts such as aux heads do not)
    activations: int  # fvcore: output elements of conv / linear / matmul ops, one image of `input_size`
    input_size: InputSize


def count_params(model_or_name: ModelOrName, input_size: InputSize = (3, 224, 224)) -> ParamCount:
    """Count the parameters of a model and the activations of one image of `input_size` (C, H, W).

    "Used in forward" runs one eval-mode forward and a backward of the output sum, and counts the parameters that
    autograd reaches (gradient present, even if zero), frozen ones included; nothing is written to `.grad`.
    """
    model, _ = load_model(model_or_name)
    params = list(model.parameters())  # shared parameters appear once
    with eval_mode(model):
        used = _used_in_forward(model, params, input_size)
        with torch.no_grad():
            analysis = silence(ActivationCountAnalysis(model, example_input(model, input_size)))
            activations = analysis.set_op_handle(**activation_handles()).total()
    return ParamCount(
        total=sum(p.numel() for p in params),
        trainable=sum(p.numel() for p in params if p.requires_grad),
        used_in_forward=used,
        activations=activations,
        input_size=tuple(input_size),
    )


def _used_in_forward(model: nn.Module, params: List[nn.Parameter], input_size: InputSize) -> int:
    requires_grad = [p.requires_grad for p in params]
    try:
        for p in params:
            p.requires_grad_(True)
        with torch.enable_grad():
            outputs = [t for t in _tensors(model(example_input(model, input_size))) if t.requires_grad]
            if not outputs:
                return 0
            grads = torch.autograd.grad(sum(t.sum() for t in outputs), params, allow_unused=True)
    finally:
        for p, flag in zip(params, requires_grad):
            p.requires_grad_(flag)
    return sum(p.numel() for p, grad in zip(params, grads) if grad is not None)


def _tensors(output) -> Iterator[torch.Tensor]:
    """The tensors in a model output: a tensor, or lists / tuples / dicts of them (features_only models)."""
    if isinstance(output, torch.Tensor):
        yield output
    elif isinstance(output, (list, tuple)):
        for item in output:
            yield from _tensors(item)
    elif isinstance(output, dict):
        for item in output.values():
            yield from _tensors(item)
