"""Turning the profiling tools' `model_or_name` argument into a model, and building example inputs for it."""
import itertools
from contextlib import contextmanager
from typing import Iterator, Tuple, Union

import timm
import torch
from torch import nn

from .._registry import model_name, resolve_model_name

ModelOrName = Union[nn.Module, str]
InputSize = Tuple[int, int, int]


def load_model(model_or_name: ModelOrName) -> Tuple[nn.Module, str]:
    """The model and its display name; a name goes through `resolve_model_name` (errors suggest close matches)
    and is built without pretrained weights (they change no count and no timing)."""
    if isinstance(model_or_name, str):
        name = resolve_model_name(model_or_name)
        return timm.create_model(name, pretrained=False), name
    return model_or_name, model_name(model_or_name)


def example_input(model: nn.Module, input_size: InputSize, batch_size: int = 1) -> torch.Tensor:
    """A random batch on the device, and in the floating dtype, of the model's first parameter or buffer."""
    first = next(itertools.chain(model.parameters(), model.buffers()), None)
    device = first.device if first is not None else torch.device('cpu')
    dtype = first.dtype if first is not None and first.is_floating_point() else torch.float32
    return torch.randn(batch_size, *input_size, device=device, dtype=dtype)


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """`model.eval()` for the duration, then the caller's train/eval mode back."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)
