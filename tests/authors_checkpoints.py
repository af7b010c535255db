"""The authors' checkpoints of each family with released weights, built by the family's reference
(references/<family>.py, written from its spec, independent of our model classes), with the outputs that
reference's forward computes from the authors' tensors. Shared by the publishing and origin-download tests.
"""
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Callable, Dict, List, Tuple

import torch

from references import blurpool_resnet as blurpool_spec
from references import dcn_resnet as dcn_spec
from references import oct_resnet as oct_spec
from references import pyconv_resnet as pyconv_spec
from references import spconv_resnet as spconv_spec

PYCONV = 'pyconv_resnet50.in1k'


@dataclass
class AuthorsCheckpoint:
    path: Path
    reference: Callable[[torch.Tensor], List[torch.Tensor]]  # the authors' outputs from the authors' tensors
    input_size: Tuple[int, int]  # small (CPU time), odd where the reference allows
    create_kwargs: Dict  # how to compare: logits, or c2-c5 of a feature backbone
    state_dict: Dict[str, torch.Tensor]  # the checkpoint's tensors, in the authors' key layout

    @cached_property
    def example(self) -> Tuple[torch.Tensor, List[torch.Tensor]]:
        """An input and the reference's outputs for it (computed once: several loads are compared with them)."""
        x = torch.randn(1, 3, *self.input_size, generator=torch.Generator().manual_seed(0))
        with torch.inference_mode():
            return x, self.reference(x)


def _pyconv_checkpoint(path: Path) -> AuthorsCheckpoint:
    sd = pyconv_spec.authors_state_dict(50)
    torch.save(sd, path)  # the release is a bare state dict
    return AuthorsCheckpoint(path, lambda x: [pyconv_spec.reference_forward(sd, x)], (33, 40), {}, sd)


def _spconv_checkpoint(path: Path) -> AuthorsCheckpoint:
    layers, ratio = (3, 4, 6, 3), 1 / 8
    stored = spconv_spec.to_apex_half(spconv_spec.authors_state_dict(spconv_spec.BOTTLENECK, layers, ratio, seed=11))
    # the released layout: apex fp16 convs, `module.1.` keys, a training-checkpoint wrapper
    torch.save({'state_dict': {'module.1.' + k: v for k, v in stored.items()}, 'epoch': 90}, path)
    sd = {k: v.float() if v.is_floating_point() else v for k, v in stored.items()}
    return AuthorsCheckpoint(
        path, lambda x: [spconv_spec.ref_resnet(x, sd, spconv_spec.BOTTLENECK, layers, ratio)], (32, 32), {}, sd)


def _blurpool_checkpoint(path: Path) -> AuthorsCheckpoint:
    sd = blurpool_spec.authors_state_dict('resnet18', 4, seed=3)
    torch.save({'state_dict': sd}, path)
    # 45 x 39: layer4's blur still has a map wide enough to reflect-pad, as the authors' code needs
    return AuthorsCheckpoint(path, lambda x: [blurpool_spec.reference_forward(sd, x)], (45, 39), {}, sd)


def _oct_checkpoint(path: Path) -> AuthorsCheckpoint:
    depths = oct_spec.DEPTHS['oct_resnet50']
    sd = oct_spec.reference_state_dict(depths)
    torch.save(sd, path)  # a bare state dict in the authors' layout
    # 64 x 64: the authors' floor pooling needs even maps down to layer4
    return AuthorsCheckpoint(path, lambda x: [oct_spec.reference_forward(sd, x, depths)[0]], (64, 64), {}, sd)


def _dcn_checkpoint(path: Path) -> AuthorsCheckpoint:
    sd = dcn_spec.mmdet_r50_dcn_state_dict(1, torch.Generator().manual_seed(1))
    dcn_spec.save_mmdet_checkpoint(path, sd)  # the whole detector; the backbone is `backbone.`-prefixed
    return AuthorsCheckpoint(
        path, lambda x: dcn_spec.mmdet_r50_dcn_forward(sd, x), (33, 40),
        dict(features_only=True, out_indices=(1, 2, 3, 4)), sd)


# the smallest tag of every family with released weights whose reference builds the authors' layout
FAMILY_CHECKPOINTS = {
    PYCONV: _pyconv_checkpoint,
    'blurpool_resnet18.lpf4_ft_in1k': _blurpool_checkpoint,
    'spconv_resnet50_a8.in1k': _spconv_checkpoint,
    'dcnv2_resnet50.coco_frcnn': _dcn_checkpoint,
    'oct_resnet50.in1k': _oct_checkpoint,
}


def assert_authors_outputs(model: torch.nn.Module, original: AuthorsCheckpoint) -> None:
    x, expected = original.example
    with torch.inference_mode():
        out = model.eval()(x)
    out = out if isinstance(out, list) else [out]
    assert len(out) == len(expected)
    for got, want in zip(out, expected):
        assert got.shape == want.shape
        scale = want.abs().max()
        assert scale > 1e-2  # a non-trivial output, so agreement means something
        assert (got - want).abs().max() <= 1e-4 * scale.clamp_min(1.)
