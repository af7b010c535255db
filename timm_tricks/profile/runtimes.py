"""The runtimes a latency is measured in (see `setup.RUNTIMES`): each turns an eval-mode model into a callable that
runs one forward of a fixed random batch."""
import tempfile
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from ..models import fuse_for_inference
from .setup import ProfileSetup, import_onnxruntime

Forward = Callable[[], Any]


def prepare_model(model: nn.Module, setup: ProfileSetup) -> nn.Module:
    """What the batches go through: the model itself (eager, onnxruntime: exported per batch size by `make_forward`),
    its inference form (fused: `fuse_for_inference`, a copy; the caller's model is left as it is) or
    `torch.compile(model)`. `model` is in eval mode, on the setup's device and in its memory format."""
    if setup.runtime == 'fused':
        # in the setup's layout, like the other runtimes: the ratio to eager is the folding's alone
        return fuse_for_inference(model, channels_last=setup.channels_last)
    if setup.runtime == 'compiled':
        return torch.compile(model)
    return model


def make_forward(prepared: nn.Module, setup: ProfileSetup, batch_size: int) -> Forward:
    """One forward of a fixed random batch of `batch_size` through `prepared` (see `prepare_model`), on the setup's
    device and in its memory format; for onnxruntime, through a CPU session of the model exported at that batch."""
    if setup.runtime == 'onnxruntime':
        return _onnxruntime_forward(prepared, setup, batch_size)
    x = torch.randn(batch_size, *setup.input_size, device=setup.device).contiguous(memory_format=memory_format(setup))
    return lambda: prepared(x)


def memory_format(setup: ProfileSetup) -> torch.memory_format:
    return torch.channels_last if setup.channels_last else torch.contiguous_format


def _onnxruntime_forward(model: nn.Module, setup: ProfileSetup, batch_size: int) -> Forward:
    onnxruntime = import_onnxruntime()
    from ..export import export_onnx  # imports onnx: only when this runtime is asked for

    options = onnxruntime.SessionOptions()
    # the same number of threads as torch would use, for a fair ratio to the torch runtimes
    options.intra_op_num_threads = setup.threads or torch.get_num_threads()
    with tempfile.TemporaryDirectory(prefix='timm_tricks_profile_') as tmp:
        path = Path(tmp) / 'model.onnx'
        export_onnx(model, path, input_size=setup.input_size, batch_size=batch_size)
        session = onnxruntime.InferenceSession(str(path), options, providers=['CPUExecutionProvider'])
    feed = {session.get_inputs()[0].name: torch.randn(batch_size, *setup.input_size).numpy()}
    return lambda: session.run(None, feed)
