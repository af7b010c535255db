"""SPConv-ResNet family: exact counts, the authors' checkpoint layout, input sizes, scripting, re-parameterisation.

The reference (references/spconv_resnet.py) is written from /work/shared/specs/spconv.md only: plain functional ops
on a state dict in the authors' key layout (`code/resnet_sp.py` names), never our classes.
"""
import math

import pytest
import timm
import torch
from timm.layers import set_scriptable
from timm.utils import reparameterize_model
from torch import nn

import timm_tricks
from timm_tricks.errors import CheckpointMismatchError, NoPretrainedWeightsError
from timm_tricks.layers import SPConv2d, SPConv2dFused

from helpers import fx_final_output, randomize_bn
from references.spconv_resnet import (
    BASIC,
    BOTTLENECK,
    authors_shapes,
    authors_state_dict,
    ref_resnet,
    ref_spconv,
    to_apex_half,
)
from spec_figures import SPEC_FIGURES

NAMES = [
    'spconv_resnet18', 'spconv_resnet34', 'spconv_resnet50', 'spconv_resnet101', 'spconv_resnet152',
    'spconv_resnet50_a4', 'spconv_resnet50_a8',
]


def _assert_close_rel(a, b, tol=1e-4):
    scale = b.abs().max().clamp_min(1.)
    assert (a - b).abs().max() <= tol * scale, ((a - b).abs().max(), scale)


@pytest.fixture(scope='module')
def r18():
    """spconv_resnet18 (eval) holding the reference state dict (authors' names == ours)."""
    sd = authors_state_dict(BASIC, (2, 2, 2, 2), 0.5, seed=3)
    model = timm.create_model('spconv_resnet18').eval()
    model.load_state_dict(sd)
    return model, sd


# ------------------------------------------------------------------------------------------ counts and names

@pytest.mark.parametrize('name', NAMES)
def test_exact_parameter_count(name):
    model = timm.create_model(name, device='meta')
    assert sum(p.numel() for p in model.parameters()) == SPEC_FIGURES[name].params


def test_registered_names_and_tags():
    assert timm_tricks.list_models('spconv*') == sorted(NAMES)
    assert timm_tricks.list_models('spconv*', pretrained=True) == [
        'spconv_resnet50.in1k', 'spconv_resnet50_a4.in1k', 'spconv_resnet50_a8.in1k']
    for tag in ('spconv_resnet50.in1k', 'spconv_resnet50_a4.in1k', 'spconv_resnet50_a8.in1k'):
        cfg = timm.models.get_pretrained_cfg(tag)
        assert cfg.hf_hub_id == 'timm-tricks/' + tag
        assert cfg.license == 'unknown' and cfg.paper_ids == 'arXiv:2006.12085'
        entry = timm_tricks.weights.manifest_entry(tag)
        assert 'not cleared' in entry.hosting.lower()
    with pytest.raises(NoPretrainedWeightsError):
        timm.create_model('spconv_resnet18', pretrained=True, device='meta')


def test_authors_key_layout_and_shapes():
    """Our state dict has exactly the authors' keys and shapes (spec §4: 528 keys, layer1 check values)."""
    for name, ratio, shapes in (
            ('spconv_resnet50', 0.5, [(64, 16, 3, 3), (64, 32, 1, 1), (64, 32, 1, 1)]),
            ('spconv_resnet50_a4', 0.25, [(64, 8, 3, 3), (64, 16, 1, 1), (64, 48, 1, 1)]),
            ('spconv_resnet50_a8', 0.125, [(64, 4, 3, 3), (64, 8, 1, 1), (64, 56, 1, 1)])):
        ours = timm.create_model(name, device='meta').state_dict()
        assert len(ours) == 528
        assert {k: tuple(v.shape) for k, v in ours.items()} == authors_shapes(BOTTLENECK, (3, 4, 6, 3), ratio)
        p = 'layer1.0.conv2.'
        assert [tuple(ours[p + k].shape) for k in ('gwc.weight', 'pwc.weight', 'conv1x1.weight')] == shapes
    basic = timm.create_model('spconv_resnet18', device='meta')
    assert {k: tuple(v.shape) for k, v in basic.state_dict().items()} == authors_shapes(BASIC, (2, 2, 2, 2), 0.5)
    # the only conv bias in the network is the redundant 1x1's
    biased = [n for n, m in basic.named_modules() if isinstance(m, nn.Conv2d) and m.bias is not None]
    assert len(biased) == 16 and all(n.endswith('.conv1x1') for n in biased)


def test_ratio_keyword():
    n_a4 = SPEC_FIGURES['spconv_resnet50_a4'].params
    model = timm.create_model('spconv_resnet50', device='meta', spconv_ratio=0.25)
    assert sum(p.numel() for p in model.parameters()) == n_a4
    assert model.layer1[0].conv2.rep_chs == 16
    a8_as_half = timm.create_model('spconv_resnet50_a8', spconv_ratio=0.5, device='meta')
    assert sum(p.numel() for p in a8_as_half.parameters()) == SPEC_FIGURES['spconv_resnet50'].params
    with pytest.raises(TypeError, match="'ratio'"):  # one keyword per setting: no alias
        timm.create_model('spconv_resnet50', ratio=0.25, device='meta')
    with pytest.raises(ValueError, match='divisible'):  # int(64 * 0.3) = 19 channels cannot feed 2 groups
        timm.create_model('spconv_resnet18', spconv_ratio=0.3, device='meta')
    with pytest.raises(ValueError):
        timm.create_model('spconv_resnet18', spconv_ratio=1.0, device='meta')


# ---------------------------------------------------------------------------------------------------- layer

def test_layer_hand_computed():
    """Only the redundant path's bias is non-zero: out_red = b / sqrt(1 + eps), out_rep = 0, softmax of (0, c)."""
    layer = SPConv2d(4, 6, ratio=0.5).eval()
    for p in layer.parameters():
        nn.init.zeros_(p)
    for bn in (layer.bn1, layer.bn2):
        nn.init.ones_(bn.weight)
    layer.conv1x1.bias.data.fill_(2.)
    out = layer(torch.randn(3, 4, 5, 7))
    c = 2. / math.sqrt(1 + 1e-5)
    expected = c * math.exp(c) / (1 + math.exp(c))
    assert out.shape == (3, 6, 5, 7)
    torch.testing.assert_close(out, torch.full_like(out, expected))


@pytest.mark.parametrize('stride', [1, 2])
@pytest.mark.parametrize('ratio', [0.5, 0.25])
def test_layer_matches_reference_on_even_sizes(stride, ratio):
    torch.manual_seed(0)
    layer = randomize_bn(SPConv2d(32, 24, stride=stride, ratio=ratio)).eval()
    sd = {k: v for k, v in layer.state_dict().items()}
    for h, w in ((8, 8), (16, 10)):
        x = torch.randn(2, 32, h, w)
        with torch.no_grad():
            torch.testing.assert_close(layer(x), ref_spconv(x, sd, '', stride, ratio), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('hw', [(7, 7), (9, 6), (1, 1), (5, 2)])
def test_layer_odd_sizes_pool_real_elements(hw):
    """Stride 2 at any size: both paths give ceil(H / 2), partial windows average their real elements only."""
    torch.manual_seed(0)
    layer = randomize_bn(SPConv2d(16, 8, stride=2)).eval()
    x = torch.randn(1, 16, *hw)
    with torch.no_grad():
        out = layer(x)
        ref = ref_spconv(x, layer.state_dict(), '', 2, 0.5, ceil=True)
    assert out.shape[2:] == (math.ceil(hw[0] / 2), math.ceil(hw[1] / 2))
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)


def test_layer_no_dead_modules_and_no_reference_attributes():
    s1, s2 = SPConv2d(16, 16), SPConv2d(16, 16, stride=2)
    assert not any(isinstance(m, nn.AvgPool2d) for m in s1.modules())
    assert sum(isinstance(m, nn.AvgPool2d) for m in s2.modules()) == 1
    assert s1.gwc.groups == 2 and SPConv2d(64, 64, ratio=0.125).gwc.groups == 2
    dilated = SPConv2d(16, 16, dilation=2)
    assert dilated.gwc.dilation == (2, 2) and dilated.gwc.padding == (2, 2)
    assert dilated(torch.randn(1, 16, 9, 11)).shape == (1, 16, 9, 11)


def test_layer_script_fx_compile_odd_size():
    torch.manual_seed(0)
    layer = randomize_bn(SPConv2d(16, 8, stride=2)).eval()
    x = torch.randn(1, 16, 9, 7)
    with torch.no_grad():
        ref = layer(x)
        torch.testing.assert_close(torch.jit.script(layer)(x), ref)
        torch.testing.assert_close(torch.fx.symbolic_trace(layer)(x), ref)
        torch.testing.assert_close(torch.compile(layer, fullgraph=True, backend='eager')(x), ref)


# ------------------------------------------------------------------------------------ the authors' checkpoints

@pytest.mark.parametrize('name, ratio, layers, layout', [
    # the released R-50 alpha 1/2 layout: {'state_dict': {'module.1.*': fp16 convs}, 'epoch', 'best_prec1'}
    ('spconv_resnet50', 0.5, (3, 4, 6, 3), 'wrapped'),
    # {'1.*': ...} "used directly" (issue #9), alpha 1/4, on a shallower build to keep the test fast
    ('spconv_resnet50_a4', 0.25, (2, 1, 1, 1), 'bare'),
])
def test_authors_checkpoint_loads_and_reproduces(name, ratio, layers, layout, tmp_path):
    sd = authors_state_dict(BOTTLENECK, layers, ratio, seed=11)
    if layout == 'wrapped':
        sd = {k: v.float() if v.is_floating_point() else v for k, v in to_apex_half(sd).items()}  # as stored
        ckpt = {'state_dict': {'module.1.' + k: v for k, v in to_apex_half(sd).items()},
                'epoch': 90, 'best_prec1': 76.26, 'arch': 'resnet50'}
        assert ckpt['state_dict']['module.1.layer1.0.conv2.gwc.weight'].dtype == torch.float16
    else:
        ckpt = {'1.' + k: v for k, v in sd.items()}
    path = tmp_path / 'spconv.pkl'
    torch.save(ckpt, path)

    model = timm.create_model(
        name, pretrained=True, layers=layers, pretrained_cfg_overlay=dict(file=str(path))).eval()
    assert all(v.dtype == torch.float32 for v in model.state_dict().values() if v.is_floating_point())
    x = torch.randn(2, 3, 32, 64)  # ceil(H / 4) a multiple of 8: where the reference runs
    with torch.no_grad():
        out = model(x)
        ref = ref_resnet(x, sd, BOTTLENECK, layers, ratio)
    assert out.abs().max() > 1e-2  # a non-trivial output
    _assert_close_rel(out, ref)

    if layout == 'wrapped':
        # wrong variant: the alpha 1/2 file into the alpha 1/8 model names the SPConv shapes
        with pytest.raises(CheckpointMismatchError, match=r'layer1\.0\.conv2\.gwc\.weight: checkpoint \(64, 16'):
            timm.create_model('spconv_resnet50_a8', pretrained=True, device='meta',
                              pretrained_cfg_overlay=dict(file=str(path)))
        # a plain ResNet-50 checkpoint names the keys SPConv needs
        with pytest.raises(CheckpointMismatchError, match=r'missing keys: .*conv2\.gwc\.weight'):
            timm.create_model('spconv_resnet50', pretrained=True, device='meta', pretrained_cfg_overlay=dict(
                state_dict=timm.create_model('resnet50', device='meta').state_dict()))


def test_filter_accepts_both_prefix_orders():
    from timm_tricks.models.spconv_resnet import checkpoint_filter_fn
    model = timm.create_model('spconv_resnet18', device='meta')
    sd = authors_state_dict(BASIC, (2, 2, 2, 2), 0.5)
    for prefix in ('1.', 'module.1.', '1.module.', ''):
        out = checkpoint_filter_fn({'state_dict': {prefix + k: v for k, v in to_apex_half(sd).items()}}, model)
        assert set(out) == set(sd) and all(v.dtype != torch.float16 for v in out.values())


def test_basic_block_matches_reference(r18):
    """The BasicBlock variant (78c734f: both convs are SPConvs), where the reference runs."""
    model, sd = r18
    x = torch.randn(2, 3, 64, 32)
    with torch.no_grad():
        _assert_close_rel(model(x), ref_resnet(x, sd, BASIC, (2, 2, 2, 2), 0.5))


# ------------------------------------------------------------------------------------------ every input size

def test_odd_and_non_square_sizes(r18):
    """Sizes the reference rejects (225, 97x131, 33x47) run, and equal the reference with ceil pooling."""
    model, sd = r18
    with torch.no_grad():
        for h, w in ((225, 225), (97, 131), (33, 47)):
            x = torch.randn(1, 3, h, w)
            out = model(x)
            assert out.shape == (1, 1000) and torch.isfinite(out).all()
            if h < 200:  # the same ceil-pool cases as 225 (odd inputs to every strided SPConv), at a lower cost
                _assert_close_rel(out, ref_resnet(x, sd, BASIC, (2, 2, 2, 2), 0.5, ceil=True))
        feats = model.forward_intermediates(torch.randn(1, 3, 97, 131), intermediates_only=True)
    assert [tuple(f.shape[2:]) for f in feats] == [(math.ceil(97 / r), math.ceil(131 / r)) for r in (2, 4, 8, 16, 32)]


@pytest.mark.parametrize('output_stride', [8, 16])
def test_output_stride_dilates_spconv(output_stride, r18):
    model = timm.create_model('spconv_resnet18', output_stride=output_stride).eval()
    model.load_state_dict(r18[0].state_dict())
    last = model.layer4[0].conv1
    assert last.stride == 1 and isinstance(last.pool, nn.Identity)
    assert model.layer4[1].conv2.gwc.dilation == ((2, 2) if output_stride == 16 else (4, 4))
    with torch.no_grad():
        feats = model.forward_features(torch.randn(1, 3, 65, 47))
    assert feats.shape[2:] == (math.ceil(65 / output_stride), math.ceil(47 / output_stride))


# -------------------------------------------------------------------------------------- re-parameterisation

def _fused_spconvs(model):
    return [m for m in model.modules() if isinstance(m, SPConv2dFused)]


@pytest.mark.parametrize('merge', ['auto', 'none', 'pointwise', 'kxk'])
@pytest.mark.parametrize('ratio', [0.5, 0.25])
@pytest.mark.parametrize('stride, dilation', [(1, 1), (2, 1), (1, 2)])
def test_layer_fuse_keeps_outputs(merge, ratio, stride, dilation):
    torch.manual_seed(0)
    layer = randomize_bn(SPConv2d(32, 16, stride=stride, dilation=dilation, ratio=ratio)).eval()
    outer = randomize_bn(nn.BatchNorm2d(16)).eval()
    outer.weight.data[:3] = torch.tensor([0., -0.7, 1e-3])  # zero and negative scales of the absorbed norm
    fused_alone, fused_outer = layer.fuse(merge=merge), layer.fuse(outer, merge=merge)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fused_outer.modules())
    for hw in ((8, 8), (7, 11)):
        x = torch.randn(2, 32, *hw)
        with torch.no_grad():
            torch.testing.assert_close(fused_alone(x), layer(x), rtol=1e-4, atol=1e-5)
            torch.testing.assert_close(fused_outer(x), outer(layer(x)), rtol=1e-4, atol=1e-5)


def test_reparameterize_model_keeps_outputs(r18):
    model, _ = r18
    x = torch.randn(2, 3, 65, 47)
    with torch.no_grad():
        ref = model(x)
        fused = timm.create_model('spconv_resnet18').eval()
        fused.load_state_dict(model.state_dict())
        assert fused.reparameterize() is fused
        assert not any(isinstance(m, nn.BatchNorm2d) for m in fused.modules())
        assert len(_fused_spconvs(fused)) == 16
        _assert_close_rel(fused(x), ref, 1e-5)
        fused.reparameterize()  # idempotent
        _assert_close_rel(fused(x), ref, 1e-5)
        # timm's own entry point (a copy) folds everything below the stem
        via_timm = reparameterize_model(model)
        assert len(_fused_spconvs(via_timm)) == 16 and isinstance(via_timm.bn1, nn.BatchNorm2d)
        _assert_close_rel(via_timm(x), ref, 1e-5)
        assert not _fused_spconvs(model)  # the original is untouched

        with set_scriptable(True):
            scripted = torch.jit.script(fused)
        _assert_close_rel(scripted(x), ref, 1e-5)
        _assert_close_rel(torch.compile(fused, fullgraph=True, backend='eager')(x), ref, 1e-5)
        _assert_close_rel(fx_final_output(fused)(x), ref, 1e-5)


def test_reparameterize_bottleneck_keeps_outputs():
    torch.manual_seed(0)
    # strided and non-strided bottlenecks, alpha 1/2 (pointwise merge as a 2-group 1x1) and 1/4 (dense 1x1)
    x = torch.randn(1, 3, 67, 45)
    for name in ('spconv_resnet50', 'spconv_resnet50_a4'):
        model = randomize_bn(timm.create_model(name, layers=(2, 1, 1, 1), zero_init_last=False)).eval()
        with torch.no_grad():
            ref = model(x)
            model.reparameterize()
            assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
            fused = _fused_spconvs(model)
            assert len(fused) == 5 and all(m.merge == 'none' for m in fused)
            _assert_close_rel(model(x), ref, 1e-5)


def test_fuse_frozen_batch_norm():
    """Detection users freeze BN first (timm's freeze_batch_norm_2d): that folds too."""
    from timm.layers import freeze_batch_norm_2d
    torch.manual_seed(0)
    layer = randomize_bn(SPConv2d(16, 8, stride=2)).eval()
    frozen = freeze_batch_norm_2d(layer)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in frozen.modules())
    x = torch.randn(2, 16, 9, 10)
    with torch.no_grad():
        torch.testing.assert_close(frozen.fuse()(x), layer(x), rtol=1e-4, atol=1e-5)


def test_reparameterize_rejects_unfoldable_norm():
    model = timm.create_model('spconv_resnet18', norm_layer='groupnorm', device='meta')
    with pytest.raises(TypeError, match='GroupNorm'):
        model.reparameterize()


# ----------------------------------------------------------------------------------------- scripting and FX

def test_script_fx_odd_size(r18):
    """The reference fails FX (int(c * ratio) on a Proxy) and TorchScript (nn.Softmax built in forward).

    torch.compile(fullgraph) of the un-fused nets is in test_contract.py; of the fused net, above."""
    model, _ = r18
    x = torch.randn(1, 3, 33, 47)
    with torch.no_grad():
        ref = model(x)
        with set_scriptable(True):
            torch.testing.assert_close(torch.jit.script(model)(x), ref, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(fx_final_output(model)(x), ref, rtol=1e-4, atol=1e-5)


def test_features_only_and_backward_small():
    model = timm.create_model('spconv_resnet18', features_only=True, output_stride=16)
    feats = model(torch.randn(2, 3, 33, 47))
    assert [f.shape[1] for f in feats] == [64, 64, 128, 256, 512]
    sum(f.mean() for f in feats).backward()
    assert all(p.grad is not None for p in model.parameters())
