"""ONNX export of any model (ours or timm's) and a numerical check of the file in onnxruntime.

    from timm_tricks.export import export_onnx, check_onnx
    path = export_onnx(model, 'model.onnx', input_size=(3, 224, 224), dynamic_batch=True)
    check_onnx(model, path, [(1, 3, 224, 224), (2, 3, 224, 224)])  # max abs / relative difference per input

We use torch's TorchScript-based exporter (`torch.onnx.export(..., dynamo=False)`): it records
`torchvision::deform_conv2d` (the DCN layers call torchvision's op while `torch.jit` traces), which we translate to
ONNX `DeformConv` (opset 19+, offsets in torchvision's (dy, dx) order, mask as the fifth input); onnxruntime runs it
on CPU. Needs the `onnx` extra: `pip install "timm-tricks[onnx]"`.
"""
import os
import warnings
from pathlib import Path
from typing import List, NamedTuple, Sequence, Tuple, Union

import torch
from torch import nn

from ._registry import model_name
from .errors import ExportError
from .layers import ModulatedDeformConv2d

__all__ = ['export_onnx', 'check_onnx', 'OnnxCheck', 'DEFORM_CONV_MIN_OPSET']

DEFORM_CONV_MIN_OPSET = 19  # ONNX DeformConv was added in opset 19
INPUT_NAME = 'input'


def _deform_conv2d_symbolic(
        g, input, weight, offset, mask, bias, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w, groups, offset_groups,
        use_mask):
    """`torchvision::deform_conv2d` -> ONNX DeformConv(X, W, offset, B, mask); the layouts are the same."""
    inputs = [input, weight, offset, bias] + ([mask] if use_mask else [])
    return g.op(
        'DeformConv', *inputs, strides_i=[stride_h, stride_w], pads_i=[pad_h, pad_w, pad_h, pad_w],
        dilations_i=[dil_h, dil_w], group_i=groups, offset_group_i=offset_groups)


def _register_deform_conv2d_symbolic() -> None:
    from torch.onnx import register_custom_op_symbolic, symbolic_helper
    symbolic = symbolic_helper.parse_args('v', 'v', 'v', 'v', 'v', 'i', 'i', 'i', 'i', 'i', 'i', 'i', 'i', 'b')(
        _deform_conv2d_symbolic)
    register_custom_op_symbolic('torchvision::deform_conv2d', symbolic, DEFORM_CONV_MIN_OPSET)


def _check_writable(path: Path) -> None:
    """Create the folder and open the file for appending (an existing file is kept as it is), so a bad path fails
    before the (slow) export, with a clear error."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, 'ab'):
            pass
    except OSError as e:
        where = f'{e.filename}: ' if e.filename else ''
        raise ExportError(f'cannot write the ONNX file {path}: {where}{e.strerror or e}') from e


def export_onnx(model: nn.Module, path: Union[str, os.PathLike], input_size: Tuple[int, int, int] = (3, 224, 224),
                batch_size: int = 1, opset: int = DEFORM_CONV_MIN_OPSET, dynamic_batch: bool = False) -> Path:
    """Export `model` (put in eval mode) to `path` for input (batch_size, *input_size); returns the path.

    The graph's input is named `input`; with `dynamic_batch` its first dimension (and the outputs') is free.
    Raises `ExportError` naming the model (and the module / op where known) when it cannot be exported.
    """
    name = model_name(model)
    if len(input_size) != 3 or batch_size < 1:
        raise ExportError(f'input_size must be (C, H, W) and batch_size >= 1, got {input_size!r}, {batch_size}')
    if opset < DEFORM_CONV_MIN_OPSET:
        for module_name, module in model.named_modules():
            if isinstance(module, ModulatedDeformConv2d):
                raise ExportError(
                    f'{name}: {module_name} is a deformable conv (torchvision::deform_conv2d), which ONNX has as '
                    f'DeformConv only from opset {DEFORM_CONV_MIN_OPSET}; export with opset >= '
                    f'{DEFORM_CONV_MIN_OPSET} (got {opset})')
    path = Path(path)
    existed = path.exists()
    _check_writable(path)
    _register_deform_conv2d_symbolic()
    model.eval()
    x = torch.randn(batch_size, *input_size)
    dynamic_axes = {INPUT_NAME: {0: 'batch'}} if dynamic_batch else None
    try:
        with warnings.catch_warnings(), torch.no_grad():
            # the TorchScript-based exporter is deprecated in favour of the dynamo one, which has no DeformConv
            warnings.filterwarnings('ignore', category=DeprecationWarning)
            warnings.filterwarnings('ignore', category=torch.jit.TracerWarning)
            # strided slices (OctResNet's stage entry) are not constant-folded: harmless, and nothing to act on
            warnings.filterwarnings('ignore', message='Constant folding - Only steps=1')
            torch.onnx.export(
                model, (x,), str(path), opset_version=opset, input_names=[INPUT_NAME], dynamic_axes=dynamic_axes,
                dynamo=False)
    except Exception as e:  # the exporter raises many types (UnsupportedOperatorError, RuntimeError, ...)
        if not existed:
            path.unlink(missing_ok=True)
        raise ExportError(f'{name} could not be exported to ONNX opset {opset}: {e}') from e
    return path


class OnnxCheck(NamedTuple):
    input_shape: Tuple[int, ...]
    max_abs_diff: float
    max_rel_diff: float  # max |onnxruntime - torch| / max |torch|, over all outputs

    def __str__(self) -> str:
        shape = 'x'.join(map(str, self.input_shape))
        return (f'onnxruntime vs torch at {shape}: max abs diff {self.max_abs_diff:.3g}, '
                f'max relative diff {self.max_rel_diff:.3g}')


def check_onnx(model: nn.Module, path: Union[str, os.PathLike], input_sizes: Sequence[Sequence[int]], seed: int = 0,
               num_threads: int = 0) -> List[OnnxCheck]:
    """Run the ONNX file in onnxruntime (CPU) and the model in torch (eval, fp32) on the same random inputs, one per
    full input shape (N, C, H, W) in `input_sizes`; returns the differences per shape (the caller judges them).
    `num_threads=0` lets onnxruntime choose."""
    try:
        import onnxruntime
    except ImportError as e:
        raise ExportError('check_onnx needs onnxruntime: pip install "timm-tricks[onnx]"') from e
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = num_threads
    try:
        session = onnxruntime.InferenceSession(str(path), options, providers=['CPUExecutionProvider'])
    except Exception as e:  # onnxruntime's own exception types (Fail, InvalidGraph, NoSuchFile, ...)
        raise ExportError(f'onnxruntime cannot load {path}: {e}') from e
    generator = torch.Generator().manual_seed(seed)
    model.eval()
    checks = []
    for shape in input_sizes:
        x = torch.randn(*shape, generator=generator)
        with torch.no_grad():
            expected = model(x)
        expected = [expected] if isinstance(expected, torch.Tensor) else list(expected)
        try:
            actual = session.run(None, {INPUT_NAME: x.numpy()})
        except Exception as e:
            raise ExportError(f'onnxruntime failed on {path} with input {tuple(shape)}: {e}') from e
        max_abs = max((torch.from_numpy(a) - e).abs().max().item() for a, e in zip(actual, expected))
        scale = max(e.abs().max().item() for e in expected)
        checks.append(OnnxCheck(tuple(shape), max_abs, max_abs / scale if scale > 0 else max_abs))
    return checks
