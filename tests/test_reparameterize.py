"""The inference path (issue: fused model): every BatchNorm folded into the conv before it, outputs unchanged.

`model.reparameterize()` folds everything; timm's `reparameterize_model` everything but the stem's norm (it visits a
model's children only). Compared in float32 against the unfused model's own output, with the issue's bound of 1e-5
relative.
"""
import copy
import re

import pytest
import timm
import torch
from timm.layers import set_scriptable
from timm.utils import reparameterize_model
from torch import nn

import timm_tricks

from helpers import randomize_bn

FOLDABLE_FAMILIES = ('pyconv*', 'spconv*', 'oct_*', 'blurpool_resnet18', 'dcnv2_resnet50', 'ghost_resnet50_s4')
# every PyConv, SPConv and Oct variant, one model of each other family
FUSE_MODELS = sorted({n for pattern in FOLDABLE_FAMILIES for n in timm_tricks.list_models(pattern)})
SIZE = (1, 3, 64, 48)


def _rel_err(got: torch.Tensor, want: torch.Tensor) -> float:
    return float((got - want).abs().max() / want.abs().max())


def _norms(model: nn.Module):
    return [n for n, m in model.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def _trained_like(model: nn.Module) -> nn.Module:
    """Random BN statistics with gains below 1, as trained residual nets have: random gains above 1 grow the
    activations block by block (logits ~1e4 in a 34-layer net), where float32 rounding alone reaches 1e-5."""
    randomize_bn(model)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.weight.data.mul_(0.5)
    return model.eval()


@pytest.mark.parametrize('name', FUSE_MODELS)
def test_fused_equals_unfused(name):
    model = _trained_like(timm.create_model(name, num_classes=10))
    x = torch.randn(*SIZE, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        want = model(x)
        fused = copy.deepcopy(model).reparameterize()
        assert _norms(fused) == []
        assert _rel_err(fused(x), want) <= 1e-5
        assert fused.reparameterize()(x).equal(fused(x))  # idempotent
        via_timm = reparameterize_model(model)
        assert _norms(via_timm) == ['bn1'] and _rel_err(via_timm(x), want) <= 1e-5


def test_fused_model_keeps_the_contract():
    """features_only taps, forward_intermediates, TorchScript and torch.compile on a fused model."""
    model = randomize_bn(timm.create_model('oct_resnet26')).eval()
    x = torch.randn(2, 3, 65, 47)
    with torch.no_grad():
        want_final, want_feats = model.forward_intermediates(x)
        fused = copy.deepcopy(model).reparameterize()
        final, feats = fused.forward_intermediates(x)
        assert _rel_err(final, want_final) <= 1e-5
        assert all(_rel_err(f, w) <= 1e-5 for f, w in zip(feats, want_feats, strict=True))
        with set_scriptable(True):
            scripted = torch.jit.script(fused)
        assert _rel_err(scripted(x), model(x)) <= 1e-5
        compiled = torch.compile(fused, fullgraph=True, backend='eager')
        assert _rel_err(compiled(x), model(x)) <= 1e-5

    backbone = randomize_bn(timm.create_model('pyconv_resnet18', features_only=True, out_indices=(1, 2, 3, 4))).eval()
    with torch.no_grad():
        want = backbone(x)
        got = reparameterize_model(backbone)(x)
    assert all(_rel_err(g, w) <= 1e-5 for g, w in zip(got, want, strict=True))


def _follows_no_conv(name: str) -> bool:
    """DenseNet's norms that follow a concatenation or a stage, not a conv: each layer's pre-activation `norm1`, the
    pre-activation transitions' norms and the final norm."""
    return name.endswith('.norm1') or name.endswith('transition_b.norm') or re.fullmatch(r'transition\d\.norm', name) \
        is not None or name == 'final_norm.norm'


@pytest.mark.parametrize('name,style', [('csppeleenet', 'post-activation'), ('cspdensenet121', 'pre-activation')])
def test_csp_folds_every_norm_that_follows_a_conv(name, style):
    model = randomize_bn(timm.create_model(name)).eval()
    stays = [n for n in _norms(model) if style == 'pre-activation' and _follows_no_conv(n)]
    assert len(stays) < len(_norms(model))
    x = torch.randn(*SIZE)
    with torch.no_grad():
        want = model(x)
        for fused in (copy.deepcopy(model).reparameterize(), reparameterize_model(model)):
            assert _norms(fused) == stays
            assert _rel_err(fused(x), want) <= 1e-5


def test_unfoldable_norm_is_named():
    model = timm.create_model('spconv_resnet18', norm_layer='groupnorm').eval()
    with pytest.raises(TypeError, match='GroupNorm'):
        model.reparameterize()


def test_fuse_for_inference_is_a_channels_last_copy():
    model = _trained_like(timm.create_model('blurpool_resnet18', num_classes=10))
    x = torch.randn(*SIZE)  # NCHW input: the first conv switches the layout
    with torch.no_grad():
        want = model(x)
        fused = timm_tricks.fuse_for_inference(model)
        assert _norms(fused) == [] and len(_norms(model)) > 0  # a copy; the original keeps its norms
        assert fused.conv1.weight.is_contiguous(memory_format=torch.channels_last)
        assert _rel_err(fused(x), want) <= 1e-5
        plain = timm_tricks.fuse_for_inference(model, channels_last=False)
        assert plain.conv1.weight.is_contiguous() and _rel_err(plain(x), want) <= 1e-5
        # a part of a model too: a block's reparameterize() works in place and returns None
        block = model.layer2[0]
        y = torch.randn(1, block.conv1.in_channels, 9, 7)
        fused_block = timm_tricks.fuse_for_inference(block)
        assert _norms(fused_block) == [] and _rel_err(fused_block(y), block(y)) <= 1e-5
