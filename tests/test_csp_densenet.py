"""CSP-DenseNet family: the cross-stage-partial layer, exact sizes, the paper's CSPPeleeNet targets, input sizes,
scripting/FX/compile, features, output_stride, clients and a short training run.

No code, cfg or weights exist from the authors (spec csp_densenet.md §0), so the references here are the spec's
numbers (tests/spec_figures.py, the paper's 2.83 M / 0.888 BFLOPs) and plain functional forwards of the spec's
topology (§3) on `torch.nn.functional` (references/csp_densenet.py), never our classes.
"""
import math

import pytest
import timm
import torch
import torch.nn.functional as F
from timm.layers import get_notrace_functions, get_notrace_modules, set_scriptable
from timm.models._manipulate import group_parameters
from torch import nn
from torchvision.models.feature_extraction import create_feature_extractor

import timm_tricks
from timm_tricks import CheckpointMismatchError, NoPretrainedWeightsError
from timm_tricks.layers import CrossStagePartial, partial_split

from helpers import randomize_bn
from references.csp_densenet import cbr, reference_cspdensenet, reference_csppeleenet
from spec_figures import SPEC_FIGURES

NAMES = ['cspdensenet121', 'cspdensenet169', 'cspdensenet201', 'csppeleenet']
DENSENET_NAMES = NAMES[:3]
# small models with every code path of the real ones (for the expensive checks; the lead's contract tests run
# TorchScript / FX / compile / backward on the full cspdensenet121 and csppeleenet)
TINY_DENSE = dict(block_config=(2, 3, 2, 2))
TINY_PELEE = dict(block_config=(1, 2, 2, 1))

# csp_densenet.md §4: plain baselines (torchvision DenseNet-BC) and the paper's CSPPeleeNet targets
PLAIN_DENSENET_PARAMS = {'densenet121': 7_978_856, 'densenet169': 14_149_480, 'densenet201': 20_013_928}
PAPER_CSPPELEENET_PARAMS = 2.83e6
PAPER_CSPPELEENET_MACS = 0.888e9 / 2  # Darknet BFLOPs = 2 x MAC


def _create(name, **kwargs):
    torch.manual_seed(0)
    return timm.create_model(name, **kwargs)


def _num_params(model):
    return sum(p.numel() for p in model.parameters())


def _conv_linear_macs(model, size=224):
    """Conv + linear MACs from a forward on the meta device (hooks; independent of fvcore)."""
    total = [0]

    def hook(m, inp, out):
        if isinstance(m, nn.Conv2d):
            k = m.kernel_size[0] * m.kernel_size[1] * m.in_channels // m.groups
            total[0] += out.numel() * k
        else:
            total[0] += out.numel() * m.in_features

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    model(torch.empty(1, 3, size, size, device='meta'))
    for h in handles:
        h.remove()
    return total[0]


# ---------------------------------------------------------------------------------------------------------------
# the cross-stage-partial layer

def test_partial_split():
    assert partial_split(64, 0.5) == (32, 32)
    assert partial_split(256, 0.25) == (64, 192)
    assert partial_split(10, 0.75) == (8, 2)  # round(7.5) = 8 (banker's rounding of Python)
    for bad in (0., 1., -0.5, 1.5):
        with pytest.raises(ValueError, match='part_ratio'):
            partial_split(64, bad)
    with pytest.raises(ValueError, match='at least one channel'):
        partial_split(3, 0.1)


def test_cross_stage_partial_routes_channels():
    """First round(γC) channels go through the block; the rest pass untouched to the front of the output."""
    torch.manual_seed(0)
    x = torch.randn(2, 8, 5, 7)
    seen = {}

    class Spy(nn.Module):
        def forward(self, t):
            seen['in'] = t.clone()
            return t * 2

    layer = CrossStagePartial(8, nn.Sequential(Spy()), transition_b=nn.Conv2d(2, 3, 1), part_ratio=0.25)
    y = layer(x)
    assert (layer.dense_chs, layer.skip_chs) == (2, 6)
    assert torch.equal(seen['in'], x[:, :2])
    assert y.shape == (2, 6 + 3, 5, 7)
    assert torch.equal(y[:, :6], x[:, 2:])
    assert torch.allclose(y[:, 6:], layer.transition_b(x[:, :2] * 2))
    # fusion first only: no partial transition
    y = CrossStagePartial(8, nn.Sequential(Spy()), None, part_ratio=0.5)(x)
    assert torch.equal(y, torch.cat([x[:, 4:], x[:, :4] * 2], 1))


# ---------------------------------------------------------------------------------------------------------------
# sizes: exact parameters, MACs, the paper's CSPPeleeNet targets, DenseNet comparison

@pytest.mark.parametrize('name', NAMES)
def test_param_count_and_conv_macs_match_spec(name):
    model = _create(name, device='meta').eval()
    assert _num_params(model) == SPEC_FIGURES[name].params
    assert _conv_linear_macs(model) == SPEC_FIGURES[name].conv_linear


def test_csppeleenet_reproduces_paper_targets():
    """2.83 M parameters and 0.888 BFLOPs (= 444 M MACs) within 1%: the parameters counted, the MACs the spec's
    fvcore total (which test_profile.py's test_counts_match_spec holds the model to, exactly)."""
    assert abs(_num_params(_create('csppeleenet', device='meta')) / PAPER_CSPPELEENET_PARAMS - 1) < 0.01
    assert abs(SPEC_FIGURES['csppeleenet'].fvcore_total / PAPER_CSPPELEENET_MACS - 1) < 0.01


def test_only_pool_first_reproduces_csppeleenet_flops():
    """The spec's reconstruction choice: pooling after the final transition costs +26% (the 560.8 M variant)."""
    after = _create('csppeleenet', pool_first=False, device='meta').eval()
    first = _create('csppeleenet', device='meta').eval()
    assert _num_params(after) == _num_params(first)
    ratio = _conv_linear_macs(after) / PAPER_CSPPELEENET_MACS
    assert ratio > 1.2


@pytest.mark.parametrize('name', DENSENET_NAMES)
def test_densenet_comparison_documented(name):
    """docs/csp_densenet.md: CSP adds ~1.5-6% parameters and saves 6-8% conv MACs vs plain DenseNet-BC."""
    plain_name = name.replace('csp', '')
    plain = timm.create_model(plain_name, device='meta').eval()
    assert _num_params(plain) == PLAIN_DENSENET_PARAMS[plain_name]
    csp = _create(name, device='meta').eval()
    assert 1.0 < _num_params(csp) / _num_params(plain) < 1.07
    assert 0.90 < _conv_linear_macs(csp) / _conv_linear_macs(plain) < 0.95


def test_densenet_stage_widths():
    """Spec §3 table (121): dense/skip split, dense out, transition_b out, fused, stage out."""
    model = _create('cspdensenet121', device='meta')
    rows = [(32, 32, 224, 112, 144, 128), (64, 64, 448, 224, 288, 256), (128, 128, 896, 448, 576, 512),
            (256, 256, 768, 384, 640, 1024)]
    for i, (dense, skip, dense_out, tb, fused, out) in enumerate(rows, start=1):
        stage, trans = getattr(model, f'layer{i}'), getattr(model, f'transition{i}')
        assert (stage.dense_chs, stage.skip_chs) == (dense, skip)
        assert stage.transition_b.conv.in_channels == dense_out and stage.transition_b.conv.out_channels == tb
        assert trans.conv.in_channels == fused and trans.conv.out_channels == out
        assert (trans.pool is not None) == (i < 4)


def test_pelee_bottleneck_rule():
    """inter = int(16·bw/4)·4, or int(c_in/8)·4 when that exceeds c_in/2 (stage 1: 16 -> 8 for the first layer)."""
    model = _create('csppeleenet', device='meta')
    blocks = model.layer1.blocks
    assert [b.branch1a.conv.out_channels for b in blocks] == [8, 16, 16]  # c_in 16 / 48 / 80
    assert [b.branch1a.conv.in_channels for b in blocks] == [16, 48, 80]
    assert [b.branch2c.conv.out_channels for b in blocks] == [16, 16, 16]
    assert {b.branch1a.conv.out_channels for b in model.layer2.blocks} == {32}  # bw 2, c_in >= 64
    assert {b.branch1a.conv.out_channels for b in model.layer4.blocks} == {64}  # bw 4, c_in >= 256
    assert [getattr(model, f'transition{i}').conv.out_channels for i in range(1, 5)] == [128, 256, 512, 704]


# ---------------------------------------------------------------------------------------------------------------
# independent functional forwards of the spec's topology (§3, references/csp_densenet.py), fed with our state dict

def test_csppeleenet_matches_reference_forward():
    model = randomize_bn(_create('csppeleenet').double()).eval()
    x = torch.randn(2, 3, 64, 96, dtype=torch.float64)
    with torch.no_grad():
        out = model(x)
        ref = reference_csppeleenet(x, model.state_dict())
    assert torch.allclose(out, ref, rtol=1e-9, atol=1e-10)


def test_cspdensenet121_matches_reference_forward():
    model = randomize_bn(_create('cspdensenet121').double()).eval()
    x = torch.randn(1, 3, 64, 64, dtype=torch.float64)
    with torch.no_grad():
        out = model(x)
        ref = reference_cspdensenet(x, model.state_dict(), (6, 12, 24, 16))
    assert torch.allclose(out, ref, rtol=1e-9, atol=1e-10)


# ---------------------------------------------------------------------------------------------------------------
# input sizes

@pytest.mark.parametrize('name', ['csppeleenet', 'cspdensenet121'])
def test_every_input_size(name):
    model = _create(name).eval()
    for hw in [(32, 32), (33, 33), (35, 47), (97, 131), (50, 34)]:
        with torch.no_grad():
            final, feats = model.forward_intermediates(torch.randn(1, 3, *hw))
            out = model.forward_head(final)
        assert out.shape == (1, 1000) and torch.isfinite(out).all()
        for f, r in zip(feats, model.feature_info, strict=True):
            assert tuple(f.shape[2:]) == (math.ceil(hw[0] / r['reduction']), math.ceil(hw[1] / r['reduction']))


def test_csppeleenet_odd_stem_sizes():
    """The official stem fails where stem1's output is odd (`Expected size 56 but got size 57`); ours runs."""
    model = _create('csppeleenet').eval()
    sd = model.state_dict()
    for hw in [(225, 225), (98, 66)]:
        with torch.no_grad():
            assert model(torch.randn(1, 3, *hw)).shape == (1, 1000)
            with pytest.raises(RuntimeError, match='size'):
                reference_csppeleenet(torch.randn(1, 3, *hw), sd)


def test_pelee_stem_unchanged_at_even_sizes():
    """ceil_mode max-pool == the original floor pool wherever the original runs (even stem sizes)."""
    model = randomize_bn(_create('csppeleenet')).eval()
    sd = model.state_dict()
    torch.manual_seed(3)
    for hw in ((64, 64), (96, 130), (34, 50)):
        s = torch.randn(2, 32, *hw)
        ref = torch.cat([F.max_pool2d(s, 2, 2), cbr(cbr(s, sd, 'stem_down.stem2a'), sd, 'stem_down.stem2b', 2, 1)],
                        1)
        ref = cbr(ref, sd, 'stem_down.stem3')
        with torch.no_grad():
            assert torch.equal(model.stem_down(s), ref)


def test_transition_pool_unchanged_at_even_sizes():
    """ceil_mode average pool == floor pool at even sizes; at odd sizes the last row is averaged alone."""
    t = _create('cspdensenet121').transition1
    x = torch.randn(1, 3, 6, 5)
    y = t.pool(x)
    assert torch.equal(y[..., :2], F.avg_pool2d(x, 2, 2))
    assert torch.allclose(y[..., 2], x[..., 4].unflatten(-1, (3, 2)).mean(-1))


# ---------------------------------------------------------------------------------------------------------------
# registration, pretrained, checkpoints, kwargs

def test_registered_untrained_only():
    assert timm_tricks.list_models('csp*') == sorted(NAMES)
    assert not timm_tricks.list_models('csp*', pretrained=True)
    for name in NAMES:
        assert timm.models.get_pretrained_cfg(name).tag == 'untrained'
        # none of our names is one of timm's own
        assert timm.models.model_entrypoint(name).__module__ == 'timm_tricks.models.csp_densenet'


@pytest.mark.parametrize('name', ['csppeleenet', 'cspdensenet121'])
def test_pretrained_true_says_no_weights(name):
    with pytest.raises(NoPretrainedWeightsError, match='no released weights'):
        timm.create_model(name, pretrained=True)


def test_own_checkpoint_loads_and_wrong_one_names_keys(tmp_path):
    model = randomize_bn(_create('csppeleenet')).eval()
    path = tmp_path / 'csppeleenet.pth'
    torch.save({'state_dict': {f'module.{k}': v.half() if v.is_floating_point() else v
                               for k, v in model.state_dict().items()}}, path)
    loaded = timm.create_model('csppeleenet', pretrained=True, pretrained_cfg_overlay=dict(file=str(path))).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(loaded(x), model.half().float()(x), rtol=1e-5, atol=1e-5)
    # another variant (γ = 0.25) does not fit: the error names the shapes
    other = _create('csppeleenet', part_ratio=0.25)
    torch.save(other.state_dict(), path)
    with pytest.raises(CheckpointMismatchError, match=r'layer1\.blocks\.0\.branch1a\.conv\.weight'):
        timm.create_model('csppeleenet', pretrained=True, pretrained_cfg_overlay=dict(file=str(path)))


def test_kwargs():
    with pytest.raises(TypeError):
        timm.create_model('csppeleenet', not_a_kwarg=1)
    for bad in (dict(fusion='middle'), dict(style='resnet'), dict(block_config=(1, 2, 3)), dict(part_ratio=1.0)):
        with pytest.raises(ValueError):
            timm.create_model('csppeleenet', device='meta', **bad)
    model = timm.create_model('cspdensenet121', act_layer='silu', device='meta', block_config=(1, 1, 1, 1))
    assert not any(isinstance(m, nn.ReLU) for m in model.modules())
    assert any(isinstance(m, nn.SiLU) for m in model.modules())

    class MyNorm(nn.BatchNorm2d):
        pass
    for name in ('cspdensenet121', 'csppeleenet'):
        model = timm.create_model(name, norm_layer=MyNorm, device='meta')
        norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._NormBase)]
        assert norms and all(type(m) is MyNorm for m in norms)
    timm.create_model('csppeleenet', zero_init_last=False, drop_rate=0.2, device='meta')


def test_drop_path_decays_over_dense_layers():
    model = timm.create_model('csppeleenet', drop_path_rate=0.2, device='meta')
    rates = [m.drop_path.drop_prob for s in (model.layer1, model.layer2, model.layer3, model.layer4)
             for m in s.blocks if hasattr(m.drop_path, 'drop_prob')]
    assert len(rates) == 3 + 4 + 8 + 6 - 1  # the first layer has rate 0: no DropPath module
    assert rates[-1] == pytest.approx(0.2) and rates[0] == pytest.approx(0.2 / 20)


@pytest.mark.parametrize('fusion,fused', [
    ('first_last', [128, 256, 512]),  # skip + transition_b (= dense out for PeleeNet)
    ('first', [128, 256, 512]),
    ('last', [128, 256, 512]),
])
def test_fusion_strategies_pelee(fusion, fused):
    model = _create('csppeleenet', fusion=fusion).eval()
    assert [model.feature_info[i]['num_chs'] for i in (1, 2, 3)] == fused
    if fusion == 'first':
        assert model.layer1.transition_b is None
    if fusion == 'last':
        assert model.transition1.conv is None and model.transition1.pool is not None
        assert isinstance(model.transition4, nn.Identity)
    feats = model.forward_intermediates(torch.randn(1, 3, 64, 64), intermediates_only=True)
    assert [f.shape[1] for f in feats] == [i['num_chs'] for i in model.feature_info]


@pytest.mark.parametrize('fusion,fused', [('first', [256, 512, 1024]), ('last', [128, 256, 512])])
def test_fusion_strategies_densenet(fusion, fused):
    """'first': the tap is cat(skip, dense out); 'last': cat(skip, transition_b) is already the stage width."""
    model = _create('cspdensenet121', fusion=fusion, device='meta')
    assert [model.feature_info[i]['num_chs'] for i in (1, 2, 3)] == fused
    assert model.feature_info[4]['num_chs'] == 1024
    assert _num_params(model) < SPEC_FIGURES['cspdensenet121'].params  # one 1x1 transition fewer per stage
    out = model(torch.empty(1, 3, 64, 64, device='meta'))
    assert out.shape == (1, 1000)


def test_group_matcher_orders_every_parameter():
    model = _create('csppeleenet', device='meta')
    fine = group_parameters(model, model.group_matcher())
    coarse = group_parameters(model, model.group_matcher(coarse=True))
    assert len(fine) == 1 + (3 + 4 + 8 + 6) + 1  # stem, dense layers (+ their stage's transitions), head
    assert len(coarse) == 1 + 4 + 1
    names = [n for g in fine.values() for n in g]
    assert sorted(names) == sorted(n for n, _ in model.named_parameters())
    assert fine[0][0].startswith('stem') and fine[max(fine)] == ['fc.weight', 'fc.bias']
    assert 'transition1.conv.weight' in fine[3] and 'layer1.transition_b.conv.weight' in fine[3]


# ---------------------------------------------------------------------------------------------------------------
# TorchScript, FX, compile, grad checkpointing, features, output_stride

SCRIPTED = [('csppeleenet', TINY_PELEE), ('csppeleenet', dict(TINY_PELEE, fusion='last')),
            ('cspdensenet121', TINY_DENSE), ('cspdensenet121', dict(TINY_DENSE, fusion='first', pool_first=False))]


@pytest.mark.parametrize('name,kwargs', SCRIPTED)
def test_torchscript_fx_compile_match_eager(name, kwargs):
    model = randomize_bn(_create(name, **kwargs)).eval()
    x = torch.randn(2, 3, 64, 48)
    with torch.no_grad():
        ref = model(x)
        with set_scriptable(True):
            scripted = torch.jit.script(_create(name, **kwargs).eval())
        scripted.load_state_dict(model.state_dict())
        assert torch.allclose(scripted(x), ref, rtol=1e-5, atol=1e-6)
        fx = create_feature_extractor(model, return_nodes={'fc': 'out'}, tracer_kwargs=dict(
            leaf_modules=list(get_notrace_modules()), autowrap_functions=list(get_notrace_functions())))
        assert torch.allclose(fx(x)['out'], ref, rtol=1e-5, atol=1e-6)
        compiled = torch.compile(model, fullgraph=True, backend='eager')
        assert torch.allclose(compiled(x), ref, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize('name,kwargs', [('csppeleenet', TINY_PELEE), ('cspdensenet121', TINY_DENSE)])
def test_grad_checkpointing_and_intermediates(name, kwargs):
    model = randomize_bn(_create(name, **kwargs)).eval()
    x = torch.randn(1, 3, 64, 64)
    ref = model.forward_features(x)
    final, feats = model.forward_intermediates(x)
    assert torch.equal(final, ref)
    assert [f.shape[1] for f in feats] == [i['num_chs'] for i in model.feature_info]
    model.set_grad_checkpointing(True)
    assert model.layer3.grad_checkpointing
    x.requires_grad_(True)
    final_ckpt, _ = model.forward_intermediates(x)
    assert torch.allclose(final_ckpt, ref, rtol=1e-5, atol=1e-6)
    model.train()
    model(x).sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    # last-n and stop_early
    last2 = model.eval().forward_intermediates(x, indices=2, stop_early=True, intermediates_only=True)
    assert [f.shape[1] for f in last2] == [i['num_chs'] for i in model.feature_info[3:]]


@pytest.mark.parametrize('idx', [0, 2, 3])
def test_prune_intermediate_layers(idx):
    model = _create('csppeleenet', **TINY_PELEE).eval()
    x = torch.randn(1, 3, 64, 64)
    full = model.forward_intermediates(x, intermediates_only=True)
    kept = model.prune_intermediate_layers([idx])
    assert kept == [idx]
    assert isinstance(model.final_norm, nn.Identity) and isinstance(model.layer4, nn.Identity)
    assert sum(p.numel() for n, p in model.named_parameters() if n.startswith(f'layer{idx + 1}')) == 0
    out = model.forward_intermediates(x, indices=[idx], intermediates_only=True)
    assert torch.equal(out[0], full[idx])
    assert model(x).shape[1] == model.feature_info[idx]['num_chs'] == model.num_features


@pytest.mark.parametrize('name,kwargs', [('csppeleenet', TINY_PELEE), ('cspdensenet121', TINY_DENSE)])
@pytest.mark.parametrize('output_stride', [8, 16])
def test_output_stride_dilates_late_stages(name, kwargs, output_stride):
    x = torch.randn(1, 3, 64, 96)
    base = randomize_bn(_create(name, features_only=True, **kwargs)).eval()
    model = _create(name, features_only=True, output_stride=output_stride, **kwargs).eval()
    model.load_state_dict(base.state_dict())  # same parameters: dilation only changes strides and padding
    assert model.feature_info.reduction() == [min(r, output_stride) for r in (2, 4, 8, 16, 32)]
    with torch.no_grad():
        feats, base_feats = model(x), base(x)
    for f, r, c in zip(feats, model.feature_info.reduction(), model.feature_info.channels(), strict=True):
        assert f.shape[1:] == (c, math.ceil(64 / r), math.ceil(96 / r))
    # stages up to the stride limit are untouched
    n_same = 3 if output_stride == 16 else 2
    for a, b in zip(feats[:n_same + 1], base_feats[:n_same + 1]):
        assert torch.equal(a, b)
    dilated = [m for m in model.modules() if isinstance(m, nn.Conv2d) and m.dilation != (1, 1)]
    assert dilated and all(m.padding == m.dilation for m in dilated)
    with pytest.raises(ValueError, match='output_stride'):
        timm.create_model(name, output_stride=4, device='meta', **kwargs)


@pytest.mark.parametrize('name,kwargs', [('csppeleenet', {}), ('cspdensenet121', TINY_DENSE)])
def test_features_only_list_and_getter_agree(name, kwargs):
    x = torch.randn(1, 3, 64, 64)
    listed = randomize_bn(_create(name, features_only=True, **kwargs)).eval()
    getter = _create(name, features_only=True, feature_cls='getter', **kwargs).eval()
    getter.model.load_state_dict(listed.state_dict())
    with torch.no_grad():
        a, b = listed(x), getter(x)
    assert listed.feature_info.reduction() == [2, 4, 8, 16, 32]
    assert [f.shape[1] for f in a] == listed.feature_info.channels()
    for fa, fb in zip(a, b, strict=True):
        assert torch.equal(fa, fb)
    part = _create(name, features_only=True, out_indices=(1, 3), device='meta', **kwargs)
    assert part.feature_info.channels() == [listed.feature_info.channels()[i] for i in (1, 3)]


# ---------------------------------------------------------------------------------------------------------------
# clients and training

def test_smp_deeplabv3_os8_and_unet_on_densenet():
    """smp DeepLabV3 (OS 8) on the DenseNet style (tests/test_clients.py covers csppeleenet)."""
    smp = pytest.importorskip('segmentation_models_pytorch')
    torch.manual_seed(0)
    x = torch.randn(2, 3, 64, 64)
    for model in (smp.DeepLabV3('tu-cspdensenet121', encoder_weights=None, classes=2, encoder_output_stride=8),
                  smp.Unet('tu-cspdensenet121', encoder_weights=None, classes=2)):
        model.train()
        out = model(x)
        assert out.shape == (2, 2, 64, 64)
        out.mean().backward()
        assert all(p.grad is not None for p in model.encoder.parameters())


def test_torchvision_faster_rcnn_on_densenet():
    from torchvision.models.detection import FasterRCNN

    from timm_tricks.detection import faster_rcnn_backbone
    torch.manual_seed(0)
    backbone = faster_rcnn_backbone('cspdensenet121', block_config=(2, 2, 2, 2))
    model = FasterRCNN(backbone, num_classes=3, min_size=96, max_size=96).train()
    losses = model([torch.rand(3, 96, 96)], [dict(boxes=torch.tensor([[10., 20., 60., 90.]]),
                                                  labels=torch.tensor([1]))])
    sum(losses.values()).backward()
    assert all(p.grad is not None for p in backbone.body.parameters())
    model.eval()
    with torch.no_grad():
        assert {'boxes', 'labels', 'scores'} <= set(model([torch.rand(3, 96, 80)])[0])


def test_csppeleenet_trains_loss_falls():
    """A few optimisation steps on a tiny synthetic task (memorise 8 random 32x32 images in 4 classes)."""
    torch.manual_seed(0)
    model = timm.create_model('csppeleenet', num_classes=4).train()
    x = torch.randn(8, 3, 32, 32)
    y = torch.arange(8) % 4
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(8):
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(math.isfinite(v) for v in losses)
    assert losses[-1] < 0.5 * losses[0], losses
