"""`timm-tricks export NAME OUT.onnx`: the model as ONNX, checked in onnxruntime against torch."""
import argparse
from pathlib import Path

import timm

from .._registry import resolve_model_name
from ..errors import ExportError
from ..export import DEFORM_CONV_MIN_OPSET, check_onnx, export_onnx
from ..models import fuse_for_inference
from ._args import input_size, positive_int

# onnxruntime vs torch, max |difference| / max |torch output|: float32 kernels summing in another order stay far below
CHECK_TOLERANCE = 1e-4


def add_command(subparsers) -> None:
    export = subparsers.add_parser(
        'export', help='export a model to ONNX and check it in onnxruntime',
        description='Exports the model (eval mode, batch 1) to ONNX with torch\'s TorchScript-based exporter '
                    '(deformable convs become ONNX DeformConv, opset 19+), then runs the file in onnxruntime on '
                    'random inputs and prints the difference to torch\'s output (pip install "timm-tricks[onnx]").')
    export.add_argument('name', help='model name, ours or timm\'s (arch or arch.tag)')
    export.add_argument('out', metavar='OUT.onnx', help='the ONNX file to write (folders are created)')
    export.add_argument('--opset', type=positive_int, default=DEFORM_CONV_MIN_OPSET,
                        help=f'ONNX opset (default {DEFORM_CONV_MIN_OPSET}, the first with DeformConv)')
    export.add_argument('--dynamic-batch', action='store_true', help='a free batch dimension (checked at 1 and 2)')
    export.add_argument('--input-size', type=input_size, metavar='C,H,W',
                        help="input size (default the model's pretrained cfg input_size)")
    export.add_argument('--fused', action='store_true',
                        help='export timm_tricks.fuse_for_inference(model): every BN folded into its conv')
    weights = export.add_mutually_exclusive_group()
    weights.add_argument('--pretrained', action='store_true', help='load the pretrained weights of NAME')
    weights.add_argument('--checkpoint', metavar='STATE_DICT_FILE',
                         help='load this state dict (.safetensors or .pth, read with weights_only=True)')
    export.set_defaults(handler=_export)


def _create_model(args: argparse.Namespace):
    if args.checkpoint is None:
        return timm.create_model(args.name, pretrained=args.pretrained)
    if not Path(args.checkpoint).is_file():
        raise ExportError(f'checkpoint {args.checkpoint} is not a file')
    try:  # timm's loader: weights_only / safetensors, the family's checkpoint filter, strict load_state_dict
        return timm.create_model(args.name, pretrained=True, pretrained_cfg_overlay=dict(file=args.checkpoint))
    except RuntimeError as e:
        raise ExportError(f'{args.checkpoint} does not load into {args.name}: {e}') from e


def _export(args: argparse.Namespace) -> int:
    resolve_model_name(args.name)
    model = _create_model(args).eval()
    if args.fused:
        model = fuse_for_inference(model)
    input_size = args.input_size or tuple(model.pretrained_cfg['input_size'])
    path = export_onnx(
        model, args.out, input_size=input_size, opset=args.opset, dynamic_batch=args.dynamic_batch)
    size_mb = path.stat().st_size / 2 ** 20
    print(f'wrote {path} ({size_mb:.1f} MiB, opset {args.opset}, input 1x{"x".join(map(str, input_size))}'
          f'{", dynamic batch" if args.dynamic_batch else ""}{", fused" if args.fused else ""})')
    batch_sizes = (1, 2) if args.dynamic_batch else (1,)
    checks = check_onnx(model, path, [(b, *input_size) for b in batch_sizes])
    ok = all(c.max_rel_diff <= CHECK_TOLERANCE for c in checks)
    for check in checks:
        print(f'  {check}')
    print(f'check {"passed" if ok else "FAILED"} (tolerance {CHECK_TOLERANCE:g} relative)')
    return 0 if ok else 1
