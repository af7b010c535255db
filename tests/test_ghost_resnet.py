"""Ghost family: the GhostModule layer, Ghost-ResNet-50 (s = 2 / s = 4) and timm's GhostNet as reference members.

Figures compared against: tests/spec_figures.py (spec ghost.md §3), the paper (13.0 M / 2.2 GMACs / 75.0 and
6.5 M / 1.2 GMACs / 74.1; GhostNet 0.5x/1.0x/1.3x 66.2/73.9/75.7), timm's own `GhostModule`, and a plain
functional re-implementation of the spec's topology (references/ghost_resnet.py).
"""
import math

import pytest
import timm
import torch
import torch.nn.functional as F
from timm.layers import set_scriptable
from timm.models import get_notrace_functions, get_notrace_modules
from timm.models.ghostnet import GhostModule as TimmGhostModule
from torch import nn

import timm_tricks
from timm_tricks import CheckpointMismatchError, NoPretrainedWeightsError
from timm_tricks.layers import GhostModule, ghost_chs
from timm_tricks.models.ghost_resnet import GhostResNetBottleneck
from timm_tricks.weights import load_manifest, reported_top1

from helpers import randomize_bn
from references.ghost_resnet import STAGES, reference_forward, reference_state_dict
from spec_figures import SPEC_FIGURES

OURS = ('ghost_resnet50', 'ghost_resnet50_s4')
RATIO = {'ghost_resnet50': 2, 'ghost_resnet50_s4': 4}
PAPER = {  # Han et al. 2020, Table 6: (params, MACs ("FLOPs"), top-1)
    'ghost_resnet50': (13.0e6, 2.2e9, 75.0),
    'ghost_resnet50_s4': (6.5e6, 1.2e9, 74.1),
}


# ------------------------------------------------------------------------------------------------ the layer


@pytest.mark.parametrize('out_chs', range(2, 14))
@pytest.mark.parametrize('ratio', [2, 3, 4, 5])
def test_ghost_channel_split(out_chs, ratio):
    init, new, cheap_in, cheap_out = ghost_chs(out_chs, ratio)
    assert init == -(-out_chs // ratio) and init + new == out_chs
    assert cheap_in <= init and cheap_out == cheap_in * (ratio - 1) and cheap_out >= new
    waste = cheap_out - new
    assert waste <= ratio - 2  # never more than the reference's over-production; none at ratio 2
    if out_chs % ratio == 0:
        assert waste == 0 and cheap_in == init


@pytest.mark.parametrize('in_chs,out_chs,ratio,kernel,stride', [
    (8, 16, 2, 1, 1),
    (7, 13, 2, 3, 2),   # odd widths
    (5, 11, 3, 3, 1),   # odd width, ratio 3: the reference over-produces one ghost map
    (6, 10, 4, 1, 2),   # ratio 4: depth-wise multiplier 3, and 2 wasted maps in the reference
    (4, 9, 5, 3, 1),
])
@pytest.mark.parametrize('act', [True, False])
def test_ghost_module_equals_timm_ghostnet_module(in_chs, out_chs, ratio, kernel, stride, act):
    """Same outputs as timm's GhostNet v1 module (an independent implementation) with the same weights,
    at odd sizes; ours only leaves out the ghost maps the reference computes and then drops."""
    ours = randomize_bn(GhostModule(in_chs, out_chs, kernel, stride=stride, ratio=ratio,
                                    act_layer=nn.ReLU if act else None)).eval()
    ref = randomize_bn(TimmGhostModule(in_chs, out_chs, kernel, ratio=ratio, stride=stride,
                                       act_layer=nn.ReLU if act else nn.Identity),
                       generator=torch.Generator().manual_seed(2)).eval()
    # our cheap conv holds a prefix of the reference's ghost filters
    ours_state = ours.state_dict()
    ours.load_state_dict({k: v[:ours_state[k].shape[0]] if v.ndim else v for k, v in ref.state_dict().items()})
    x = torch.randn(2, in_chs, 19, 12)
    with torch.no_grad():
        out = ours(x)
        torch.testing.assert_close(out, ref(x), rtol=0, atol=1e-6)
    assert out.shape == (2, out_chs, math.ceil(19 / stride), math.ceil(12 / stride))
    n_params = sum(p.numel() for p in ours.parameters())
    init, new, cheap_in, cheap_out = ghost_chs(out_chs, ratio)
    assert n_params == init * in_chs * kernel ** 2 + 2 * init + cheap_out * 9 + 2 * cheap_out


def test_ghost_module_hand_computed():
    """1 -> 2 channels, ratio 2: output = (a*x, cheap 3x3 of a*x), identity norms, no activation."""
    m = GhostModule(1, 2, 1, ratio=2, dw_size=3, act_layer=None).eval()
    with torch.no_grad():
        m.primary_conv[0].weight.fill_(2.)
        m.cheap_operation[0].weight.copy_(torch.arange(9.).view(1, 1, 3, 3))
        for bn in (m.primary_conv[1], m.cheap_operation[1]):
            bn.running_var.fill_(1. - bn.eps)
        x = torch.zeros(1, 1, 3, 3)
        x[0, 0, 1, 1] = 1.
        out = m(x)
    torch.testing.assert_close(out[0, 0], 2 * x[0, 0])
    # a centred impulse through a 3x3 cross-correlation gives the kernel flipped
    torch.testing.assert_close(out[0, 1], 2 * torch.arange(9.).flip(0).view(3, 3))


def test_ghost_module_dilation_keeps_cheap_op_local():
    m = GhostModule(8, 8, 3, dilation=2)
    assert m.primary_conv[0].dilation == (2, 2) and m.primary_conv[0].padding == (2, 2)
    assert m.cheap_operation[0].dilation == (1, 1) and m.cheap_operation[0].padding == (1, 1)
    assert m(torch.randn(1, 8, 9, 7)).shape == (1, 8, 9, 7)


def test_ghost_module_no_wasted_parameters_at_odd_width():
    """Ratio 2, odd width: every weight of both convs and norms gets a non-zero gradient."""
    m = randomize_bn(GhostModule(5, 13, 3, ratio=2, act_layer=None)).train()
    m(torch.randn(2, 5, 11, 9)).square().sum().backward()
    for name, p in m.named_parameters():
        per_channel = p.grad.abs().flatten(1).sum(1) if p.ndim > 1 else p.grad.abs()
        assert (per_channel > 0).all(), name


def test_ghost_module_bad_arguments():
    with pytest.raises(ValueError, match='ratio'):
        GhostModule(4, 8, ratio=1)
    with pytest.raises(ValueError, match='dw_size'):
        GhostModule(4, 8, dw_size=2)
    with pytest.raises(ValueError, match='out_chs'):
        GhostModule(4, 1)


def test_ghost_module_script_fx_compile():
    from torchvision.models.feature_extraction import create_feature_extractor
    m = randomize_bn(GhostModule(6, 11, 3, stride=2, ratio=3)).eval()
    x = torch.randn(1, 6, 15, 10)
    with torch.no_grad():
        ref = m(x)
        with set_scriptable(True):
            torch.testing.assert_close(torch.jit.script(m)(x), ref)
        fx = create_feature_extractor(m, return_nodes=['cat'], tracer_kwargs=dict(
            leaf_modules=get_notrace_modules(), autowrap_functions=get_notrace_functions()))
        torch.testing.assert_close(fx(x)['cat'], ref)
        torch.testing.assert_close(torch.compile(m, fullgraph=True, dynamic=True, backend='eager')(x), ref)


# -------------------------------------------------------------------------------- parameters and MACs


def _expected_params(ratio, dw=3, num_classes=1000):
    """Parameter count of the spec's topology (ghost.md §3), from first principles."""
    def ghost(cin, cout, k):
        init = math.ceil(cout / ratio)
        cheap = init * (ratio - 1)  # ResNet-50 widths are multiples of 4: nothing is over-produced
        return cin * init * k * k + 2 * init + cheap * dw * dw + 2 * cheap

    total = 3 * 64 * 7 * 7 + 2 * 64 + 2048 * num_classes + num_classes
    cin = 64
    for planes, blocks, _ in STAGES:
        for b in range(blocks):
            total += ghost(cin, planes, 1) + ghost(planes, planes, 3) + ghost(planes, 4 * planes, 1)
            if b == 0:
                total += ghost(cin, 4 * planes, 1)
            cin = 4 * planes
    return total


def _ghost_output_channels():
    """Sum of the output widths of all Ghost modules (52 of them)."""
    total = 0
    for planes, blocks, _ in STAGES:
        total += blocks * (planes + planes + 4 * planes) + 4 * planes
    return total


@pytest.mark.parametrize('name', OURS)
def test_parameter_count(name):
    model = timm.create_model(name, device='meta')
    n = sum(p.numel() for p in model.parameters())
    assert n == SPEC_FIGURES[name].params == _expected_params(RATIO[name])
    # the released (BN-free) code's *used* parameters: a conv bias instead of each Ghost module's BN pair,
    # i.e. one parameter less per output channel (spec ghost.md §2: 13,927,016 / 8,125,256)
    released_used = {'ghost_resnet50': 13_927_016, 'ghost_resnet50_s4': 8_125_256}[name]
    assert _ghost_output_channels() == 26_496
    assert n - _ghost_output_channels() == released_used
    # honest reporting: more than the paper's figure (docs/ghost_resnet.md explains the difference)
    assert n > PAPER[name][0]
    assert sum(1 for m in model.modules() if isinstance(m, GhostModule)) == 52


def test_every_parameter_is_used_in_forward():
    """Parameters reported = parameters used: each gets a non-zero gradient (no zero-init, random BN)."""
    model = randomize_bn(timm.create_model('ghost_resnet50_s4', zero_init_last=False, num_classes=10)).train()
    model(torch.randn(2, 3, 32, 32)).logsumexp(1).sum().backward()
    dead = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert dead == []


def _analytic_conv_linear_macs(ratio, size=224, dw=3):
    """Conv + linear MACs of the spec's topology at `size`, from first principles (k//2 padding: ceil(n/stride))."""
    def out(n, stride):
        return math.ceil(n / stride)

    def ghost(cin, cout, k, stride, n):
        init = math.ceil(cout / ratio)
        m = out(n, stride) ** 2
        return m * init * cin * k * k + m * init * (ratio - 1) * dw * dw

    n = out(size, 2)
    total = n * n * 64 * 3 * 49
    n = out(n, 2)
    cin = 64
    for planes, blocks, stride in STAGES:
        for b in range(blocks):
            s = stride if b == 0 else 1
            total += ghost(cin, planes, 1, 1, n) + ghost(planes, planes, 3, s, n)
            total += ghost(planes, 4 * planes, 1, 1, out(n, s))
            if b == 0:
                total += ghost(cin, 4 * planes, 1, s, n)
            n, cin = out(n, s), 4 * planes
    return total + 2048 * 1000


@pytest.mark.parametrize('name', OURS)
def test_spec_macs_agree_with_the_paper_and_the_analytic_count(name):
    """The spec's fvcore figures (which test_profile.py's test_counts_match_spec holds the model to, exactly) are the
    paper's within 3 %, and its conv+linear count is the topology's, counted by hand above."""
    spec, paper_macs = SPEC_FIGURES[name], PAPER[name][1]
    assert abs(spec.fvcore_total / paper_macs - 1) < 0.03
    assert abs(spec.conv_linear / paper_macs - 1) < 0.03
    assert spec.conv_linear == _analytic_conv_linear_macs(RATIO[name])


# --------------------------------------------------------------------------------------- model behaviour


@pytest.fixture(scope='module')
def s4_model():
    torch.manual_seed(0)
    return randomize_bn(timm.create_model('ghost_resnet50_s4')).eval()


@pytest.mark.parametrize('size', [(32, 32), (33, 47), (97, 131), (225, 225)])
def test_every_input_size(size, s4_model):
    """The released code runs at 224 only (225: shape error; 97x131, 32x32: pool too large); ours at any size."""
    x = torch.randn(1, 3, *size)
    with torch.no_grad():
        final, feats = s4_model.forward_intermediates(x)
        out = s4_model.forward_head(final)
    assert out.shape == (1, 1000) and torch.isfinite(out).all()
    for f, info in zip(feats, s4_model.feature_info, strict=True):
        assert tuple(f.shape[1:]) == (info['num_chs'], *(math.ceil(n / info['reduction']) for n in size))


@pytest.mark.parametrize('output_stride,reductions', [(16, [2, 4, 8, 16, 16]), (8, [2, 4, 8, 8, 8])])
def test_output_stride(output_stride, reductions, s4_model):
    model = timm.create_model('ghost_resnet50_s4', output_stride=output_stride).eval()
    model.load_state_dict(s4_model.state_dict())  # same weights as the stride-32 model
    assert [i['reduction'] for i in model.feature_info] == reductions
    dilated = {n: m.dilation[0] for n, m in model.named_modules()
               if isinstance(m, nn.Conv2d) and m.dilation[0] > 1}
    assert dilated and all('.conv2.primary_conv.0' in n for n in dilated)  # cheap ops and 1x1s stay undilated
    dilated_stages = ('layer4',) if output_stride == 16 else ('layer3', 'layer4')
    assert all(m.stride == (1, 1) for n, m in model.named_modules()
               if isinstance(m, nn.Conv2d) and n.startswith(dilated_stages))
    x = torch.randn(1, 3, 45, 38)
    with torch.no_grad():
        feats = model.forward_intermediates(x, intermediates_only=True)
        ref = s4_model.forward_intermediates(x, intermediates_only=True)
    for f, r in zip(feats, reductions, strict=True):
        assert tuple(f.shape[2:]) == (math.ceil(45 / r), math.ceil(38 / r))
    torch.testing.assert_close(feats[2], ref[2])  # undilated stages are untouched


def test_zero_init_last_makes_blocks_identity():
    block = GhostResNetBottleneck(256, 64, ratio=4)
    block.zero_init_last()
    x = torch.randn(1, 256, 9, 7)
    with torch.no_grad():
        torch.testing.assert_close(block.eval()(x), F.relu(x))


def test_features_and_smp_client(s4_model):
    import segmentation_models_pytorch as smp
    feat = timm.create_model('ghost_resnet50_s4', features_only=True, out_indices=(1, 3, 4), output_stride=16)
    assert feat.feature_info.channels() == [256, 1024, 2048] and feat.feature_info.reduction() == [4, 16, 16]
    seg = smp.DeepLabV3('tu-ghost_resnet50_s4', encoder_weights=None, classes=3, encoder_output_stride=8).eval()
    with torch.no_grad():
        assert seg(torch.randn(1, 3, 64, 64)).shape == (1, 3, 64, 64)


# ------------------------------------------------------------------------------------- weights / checkpoints


@pytest.mark.parametrize('name', OURS)
def test_pretrained_true_says_no_weights_exist(name):
    assert timm.list_models(name, pretrained=True) == []
    assert timm.models.get_pretrained_cfg(name).tag == 'untrained'
    with pytest.raises(NoPretrainedWeightsError, match='#159'):
        timm.create_model(name, pretrained=True)
    assert not [k for k in load_manifest() if k.startswith(name + '.')]


def test_checkpoint_layout_loads_and_matches_reference(tmp_path):
    """A training checkpoint in the spec's key layout (`state_dict` wrapper, DDP `module.` prefix) loads through
    `pretrained_cfg_overlay=dict(file=...)` and gives the functional reference's outputs."""
    sd = reference_state_dict(ratio=4)
    path = tmp_path / 'ghost_resnet50_s4.pth'
    torch.save({'epoch': 120, 'state_dict': {'module.' + k: v for k, v in sd.items()}}, path)
    model = timm.create_model('ghost_resnet50_s4', pretrained=True, pretrained_cfg_overlay=dict(file=str(path)))
    model.eval()
    for size in ((64, 64), (33, 47)):
        x = torch.randn(2, 3, *size)
        with torch.no_grad():
            ref = reference_forward(sd, x, ratio=4)
            torch.testing.assert_close(model(x), ref, rtol=1e-4, atol=1e-4 * ref.abs().max().item())

    features = timm.create_model('ghost_resnet50_s4', pretrained=True, features_only=True,
                                 pretrained_cfg_overlay=dict(file=str(path)))
    torch.testing.assert_close(features.layer1[0].conv1.primary_conv[0].weight,
                               sd['layer1.0.conv1.primary_conv.0.weight'])


def test_wrong_checkpoints_name_what_does_not_fit(tmp_path):
    wrong = tmp_path / 's2.pth'
    torch.save(reference_state_dict(ratio=2), wrong)  # the s = 2 model's checkpoint into the s = 4 model
    with pytest.raises(CheckpointMismatchError, match=r'shape mismatches: layer1\.0\.conv1\.primary_conv\.0\.weight'):
        timm.create_model('ghost_resnet50_s4', pretrained=True, pretrained_cfg_overlay=dict(file=str(wrong)))

    # the BN-free layout of the authors' ghost_resnet.py (spec ghost.md §4): conv biases, dead weight1/bn1 keys
    released = {'conv1.weight': torch.zeros(64, 3, 7, 7), 'layer1.0.conv1.conv1.weight': torch.zeros(32, 64, 1, 1),
                'layer1.0.conv1.conv1.bias': torch.zeros(32), 'layer1.0.conv1.weight1': torch.zeros(32, 64, 1, 1)}
    path = tmp_path / 'released_layout.pth'
    torch.save(released, path)
    with pytest.raises(CheckpointMismatchError, match="BN-free .*ghost_resnet.py.*layer1.0.conv1.conv1"):
        timm.create_model('ghost_resnet50', pretrained=True, pretrained_cfg_overlay=dict(file=str(path)))


# -------------------------------------------------------------------------- registry: timm's GhostNets intact


def test_ghostnet_reference_members():
    listed = timm_tricks.list_models(include_reference=True)
    assert {'ghostnet_050', 'ghostnet_100', 'ghostnet_130'} <= set(listed)
    assert not {'ghostnet_050', 'ghostnet_100', 'ghostnet_130'} & set(timm_tricks.list_models())
    assert 'ghostnet_100.in1k' in timm_tricks.list_models('ghost*', pretrained=True, include_reference=True)
    for name in ('ghostnet_050', 'ghostnet_100', 'ghostnet_130'):
        assert timm_tricks.model_family(name) == 'ghost_resnet' and not timm_tricks.is_ours(name)
        assert timm.models.model_entrypoint(name).__module__ == 'timm.models.ghostnet'
    # the paper's figures for the architectures; timm's results for timm's weights of the 1.0x model
    assert reported_top1('ghostnet_050') == 66.2 and reported_top1('ghostnet_130') == 75.7
    assert reported_top1('ghostnet_100.in1k') == 73.958 and reported_top1('ghostnet_100') == 73.958
    assert reported_top1('ghostnet_050.untrained') is None
    assert not [k for k in load_manifest() if k.startswith('ghostnet')]  # not our checkpoints
    # our own models report nothing: no weights
    assert all(reported_top1(n) is None for n in OURS)
    # timm's GhostNet is built by timm, untouched
    assert type(timm.create_model('ghostnet_050', device='meta')).__module__ == 'timm.models.ghostnet'
