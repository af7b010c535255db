"""Plug-in layers (plugins.md): exact parameter counts from the spec, independent functional references written
here from the papers/spec, identity inits, TorchScript, meta device, gradients, string names, necks and fvcore.

The references (references/plugin_layers.py) use only torch.nn.functional and the formulas of the spec; they read
a layer's weights by name but never call its forward.
"""
import functools
import math

import pytest
import timm
import torch
import torch.nn.functional as F
from timm.layers import SEModule
from torch import nn
from torchvision.models.detection import RetinaNet

from timm_tricks import fuse_for_inference
from timm_tricks.detection import retinanet_backbone
from timm_tricks.layers import (
    ASFF,
    NAM,
    AconC,
    AddCoords,
    BasicRFB,
    BasicRFB_a,
    CbamV1,
    CoordAttV1,
    CoordConv2d,
    DyReLU,
    DyReLUA,
    DyReLUB,
    DyReLUC,
    MetaAconC,
    NonLocalV1,
    RDropLoss,
    SpatialPyramidPooling,
    SpatialTransformer,
    add_nam_sparsity_grad,
    convert_cbam_v1_state_dict,
    get_attn,
    get_channel_act,
)
from timm_tricks.necks import AsffNeck, RfbNeck
from timm_tricks.profile._fvcore import FlopCountAnalysis, silence
from timm_tricks.profile.handles import flop_handles

from helpers import randomize_weights
from references.plugin_layers import (
    asff_reference,
    authors_cbam_reference,
    authors_cbam_state_dict,
    bn_eval,
    dyrelu_reference,
    nam_reference,
    rfb_reference,
    spp_reference,
)


def n_params(module):
    return sum(p.numel() for p in module.parameters())


# ------------------------------------------------------------------------------------------ parameter counts

# plugins.md §2-3, "measured" column; CoordConv from its formula (Cin + 2) Cout k^2 + Cout (+ Cout k^2 with r)
SPEC_COUNTS = [
    ('NAM(256)', lambda dd: NAM(256, **dd), 2 * 256),
    ('DyReLU-B(256)', lambda dd: DyReLUB(256, **dd), 83_008),
    ('DyReLU-C(256)', lambda dd: DyReLUC(256, **dd), 83_267),
    ('DyReLU(256, K2=False)', lambda dd: DyReLU(256, k2=False, **dd), 49_728),
    ('DyReLU-B(64)', lambda dd: DyReLUB(64, **dd), 5_392),
    ('AconC(256)', lambda dd: AconC(256, **dd), 3 * 256),
    ('MetaAconC(256)', lambda dd: MetaAconC(256, **dd), 9_520),
    ('CbamV1(64)', lambda dd: CbamV1(64, **dd), 680),
    ('CbamV1(256)', lambda dd: CbamV1(256, **dd), 8_564),
    ('CbamV1(2048)', lambda dd: CbamV1(2048, **dd), 526_564),
    ('CoordAttV1(256)', lambda dd: CoordAttV1(256, **dd), 6_680),
    ('NonLocalV1(256)', lambda dd: NonLocalV1(256, **dd), 132_224),
    ('BasicRFB_a(512, 512)', lambda dd: BasicRFB_a(512, 512, **dd), 1_502_016),
    ('BasicRFB(1024, 1024, visual=2)', lambda dd: BasicRFB(1024, 1024, visual=2, **dd), 5_095_296),
    ('BasicRFB(512, 256, stride=2)', lambda dd: BasicRFB(512, 256, stride=2, **dd), 1_045_440),
    ('BasicRFB(256, 256)', lambda dd: BasicRFB(256, 256, **dd), 319_968),
    # YOLOv3 dims [512, 256, 256] of the paper's levels 0/1/2 = our levels 2/1/0 (finest first)
    *[(f'ASFF paper level {2 - lvl}, compress {c}',
       functools.partial(lambda dd, lvl, c: ASFF([256, 256, 512], lvl, (256, 512, 1024)[lvl], c, **dd), lvl=lvl, c=c),
       count)
      for c, counts in ((16, (734_451, 1_915_123, 7_106_803)), (8, (728_187, 1_908_859, 7_094_395)))
      for lvl, count in enumerate(counts)],
    ('CoordConv2d(16, 8, 3)', lambda dd: CoordConv2d(16, 8, 3, **dd), 18 * 8 * 9 + 8),
    ('CoordConv2d(16, 8, 3, with_r)', lambda dd: CoordConv2d(16, 8, 3, with_r=True, **dd), 19 * 8 * 9 + 8),
    ('SPP', lambda dd: SpatialPyramidPooling(), 0),
]


@pytest.mark.parametrize('build,count', [c[1:] for c in SPEC_COUNTS], ids=[c[0] for c in SPEC_COUNTS])
def test_parameter_count(build, count):
    assert n_params(build(dict(device='meta'))) == count


@pytest.mark.parametrize('name,attn,count', [
    ('resnet50', NAM, 25_587_240), ('resnet18', NAM, 11_693_352), ('resnet50', 'cbam_v1', 28_089_624)])
def test_timm_resnet_takes_our_classes(name, attn, count):
    model = timm.create_model(name, block_args=dict(attn_layer=get_attn(attn)), device='meta')
    assert n_params(model) == count
    assert isinstance(model.layer4[-1].se, get_attn(attn))


@pytest.mark.parametrize('attn', ['nam', 'dyrelu_c', SpatialTransformer])
def test_timm_resnet_with_plugin_scripts_and_fx_features(attn):
    torch.manual_seed(0)
    kwargs = dict(block_args=dict(attn_layer=get_attn(attn)))
    model = timm.create_model('resnet18', num_classes=0, **kwargs).eval()
    x = torch.randn(1, 3, 33, 47)
    torch.testing.assert_close(torch.jit.script(model)(x), model(x))
    feats = timm.create_model('resnet18', features_only=True, feature_cls='fx', **kwargs)(x)
    assert [f.shape[1] for f in feats] == [64, 64, 128, 256, 512]


# ------------------------------------------------------------------------------------------ NAM

def test_nam_matches_reference_and_gamma_gradient():
    nam = randomize_weights(NAM(6))
    x = torch.randn(2, 6, 5, 3)
    gamma = nam.bn.weight.detach().clone().requires_grad_()
    ref = nam_reference(x, gamma, nam.bn.bias.detach(), nam.bn.running_mean, nam.bn.running_var)
    out = nam(x)
    torch.testing.assert_close(out, ref)
    out.square().sum().backward()
    ref.square().sum().backward()
    torch.testing.assert_close(nam.bn.weight.grad, gamma.grad)  # no gradient through w
    grad = nam.bn.weight.grad.clone()
    add_nam_sparsity_grad(nn.Sequential(nam), strength=1e-2)
    torch.testing.assert_close(nam.bn.weight.grad, grad + 1e-2 * torch.sign(nam.bn.weight.detach()))


# ------------------------------------------------------------------------------------------ DyReLU

DYRELU_CASES = {  # the layer and the reference's settings
    'B': (DyReLUB(8), {}),
    'C': (DyReLUC(8), dict(spatial=True)),
    'A': (DyReLUA(8), dict(shared=True)),
    'K2=False': (DyReLU(8, k2=False), dict(k2=False)),
    'no bias': (DyReLU(8, use_bias=False), dict(use_bias=False)),
    'K2=False, no bias': (DyReLU(8, k2=False, use_bias=False), dict(k2=False, use_bias=False)),
    'lambda, inits': (DyReLU(8, lambda_a=.5, init_a=(1., .25), init_b=(.1, 0.)),
                      dict(lambda_a=.5, init_a=(1., .25), init_b=(.1, 0.))),
}


@pytest.mark.parametrize('case', DYRELU_CASES)
def test_dyrelu_matches_reference(case):
    layer, settings = DYRELU_CASES[case]
    layer = randomize_weights(layer, scale=1.0)
    x = torch.randn(2, 8, 5, 3)
    torch.testing.assert_close(layer(x), dyrelu_reference(x, layer.state_dict(), **settings))


def test_dyrelu_starts_near_relu():
    """Zeroed hyper-function output (y = 0.5): a = (1, 0), b = (0, 0), i.e. exactly ReLU."""
    layer = DyReLUB(8).eval()
    nn.init.zeros_(layer.fc[2].weight)
    nn.init.zeros_(layer.fc[2].bias)
    x = torch.randn(2, 8, 4, 4)
    torch.testing.assert_close(layer(x), F.relu(x))


# ------------------------------------------------------------------------------------------ ACON

def test_acon_c_matches_reference_and_swish():
    act = randomize_weights(AconC(6))  # beta away from its init of 1 too
    x = torch.randn(2, 6, 3, 4)
    p1, p2, beta = act.p1.detach(), act.p2.detach(), act.beta.detach()
    torch.testing.assert_close(act(x), (p1 * x - p2 * x) * torch.sigmoid(beta * (p1 * x - p2 * x)) + p2 * x)
    with torch.no_grad():  # p1 = 1, p2 = 0, beta = 1 is Swish (the paper's special case)
        act.p1.fill_(1.)
        act.p2.zero_()
        act.beta.fill_(1.)
    torch.testing.assert_close(act(x), x * torch.sigmoid(x))


def test_meta_acon_matches_reference():
    act = randomize_weights(MetaAconC(32, r=4))
    sd = act.state_dict()
    assert sd['fc1.weight'].shape[0] == max(4, 32 // 4)
    x = torch.randn(2, 32, 3, 5)
    g = x.mean((2, 3), keepdim=True)
    beta = torch.sigmoid(bn_eval(F.conv2d(bn_eval(F.conv2d(g, sd['fc1.weight'], sd['fc1.bias']), 'bn1.', sd),
                                          sd['fc2.weight'], sd['fc2.bias']), 'bn2.', sd))
    p1, p2 = sd['p1'], sd['p2']
    torch.testing.assert_close(act(x), (p1 * x - p2 * x) * torch.sigmoid(beta * (p1 * x - p2 * x)) + p2 * x)


# ------------------------------------------------------------------------------------------ CoordConv

@pytest.mark.parametrize('h,w', [(5, 7), (4, 1), (1, 6), (1, 1), (2, 2)])
def test_add_coords_per_axis(h, w):
    x = torch.randn(2, 3, h, w)
    out = AddCoords(with_r=True)(x)
    assert out.shape == (2, 6, h, w)
    torch.testing.assert_close(out[:, :3], x)
    for i in range(h):
        for j in range(w):
            xx = 2 * j / (w - 1) - 1 if w > 1 else 0.  # x varies along the width, each axis by its own size
            yy = 2 * i / (h - 1) - 1 if h > 1 else 0.
            expected = torch.tensor([xx, yy, math.sqrt(xx * xx + yy * yy)]).expand(2, 3)
            torch.testing.assert_close(out[:, 3:, i, j], expected)


def test_coord_conv_is_conv_of_concatenation():
    conv = CoordConv2d(3, 4, 3, stride=2, padding=1)
    x = torch.randn(2, 3, 5, 8)
    xx = torch.linspace(-1, 1, 8).expand(2, 1, 5, 8)
    yy = torch.linspace(-1, 1, 5)[:, None].expand(2, 1, 5, 8)
    ref = F.conv2d(torch.cat([x, xx, yy], 1), conv.conv.weight, conv.conv.bias, stride=2, padding=1)
    torch.testing.assert_close(conv(x), ref)


# ------------------------------------------------------------------------------------------ CBAM v1

def test_cbam_v1_loads_authors_layout_and_matches_reference():
    sd = authors_cbam_state_dict(32)
    cbam = CbamV1(32).eval()
    cbam.load_state_dict(convert_cbam_v1_state_dict(sd), strict=True)
    assert cbam.spatial.conv.bn.momentum == 0.01
    x = torch.randn(2, 32, 9, 6)
    torch.testing.assert_close(cbam(x), authors_cbam_reference(x, sd))
    # prefixes are kept: the model filter renames `cbam.` itself
    converted = convert_cbam_v1_state_dict(authors_cbam_state_dict(32, prefix='layer1.0.cbam.'))
    assert 'layer1.0.cbam.channel.fc1.weight' in converted and 'layer1.0.cbam.spatial.conv.bn.running_var' in converted


def test_coord_att_v1_hidden_width_is_the_authors():
    assert CoordAttV1(320, device='meta').conv1.out_channels == 10  # max(8, 320 // 32); timm's rounding gives 8
    assert CoordAttV1(64, device='meta').conv1.out_channels == 8


# ------------------------------------------------------------------------------------------ RFB

# plugins.md §3 written out: per path (kernel, stride?, dilation, relu); 'v' = visual; 's' marks the strided conv
RFB_PATHS = {
    BasicRFB: [[(1, 's', 1, True), (3, 1, 'v', False)],
               [(1, 1, 1, True), (3, 's', 1, True), (3, 1, 'v+1', False)],
               [(1, 1, 1, True), (3, 1, 1, True), (3, 's', 1, True), (3, 1, '2v+1', False)]],
    BasicRFB_a: [[(1, 's', 1, True), (3, 1, 1, False)],
                 [(1, 1, 1, True), ((3, 1), 's', 1, True), (3, 1, 3, False)],
                 [(1, 1, 1, True), ((1, 3), 's', 1, True), (3, 1, 3, False)],
                 [(1, 1, 1, True), ((1, 3), 1, 1, True), ((3, 1), 's', 1, True), (3, 1, 5, False)]],
}


@pytest.mark.parametrize('cls,kwargs', [
    (BasicRFB, dict(stride=1, visual=1)), (BasicRFB, dict(stride=2, visual=2)), (BasicRFB_a, dict(stride=1)),
    (BasicRFB_a, dict(stride=2))])
def test_rfb_matches_reference(cls, kwargs):
    block = randomize_weights(cls(32, 24, scale=0.3, **kwargs), scale=0.2)
    x = torch.randn(2, 32, 11, 9)
    ref = rfb_reference(x, block.state_dict(), RFB_PATHS[cls], kwargs['stride'], kwargs.get('visual', 1), 0.3)
    torch.testing.assert_close(block(x), ref)


# ------------------------------------------------------------------------------------------ SPP

@pytest.mark.parametrize('levels,h,w', [((6, 3, 2, 1), 13, 13), ((4, 2, 1), 13, 30), ((4, 2, 1), 5, 8)])
def test_spp_matches_reference(levels, h, w):
    spp = SpatialPyramidPooling(levels)
    x = torch.randn(2, 3, h, w)
    out = spp(x)
    assert out.shape == (2, spp.out_features(3))
    torch.testing.assert_close(out, spp_reference(x, levels))
    torch.testing.assert_close(torch.jit.script(spp)(x), out)


def test_spp_bins_are_not_adaptive_pooling_and_bad_sizes_raise():
    # a = 14, n = 4: windows of 4 at stride 3 cover rows 0-12 (adaptive pooling's last bin is rows 10-13)
    x = torch.randn(1, 2, 14, 14)
    x[:, :, 13] = 100.
    assert SpatialPyramidPooling((4,))(x).amax() < 100. <= F.adaptive_max_pool2d(x, 4).amax()
    for size, level in ((3, 4), (10, 6)):  # a < n; a % n > a // n (the paper's windows give 9 bins, not 6)
        with pytest.raises(ValueError, match=f'size-{size} axis into {level} bins'):
            SpatialPyramidPooling((level, 1))(torch.randn(1, 2, size, 30))
    with pytest.raises(ValueError, match='positive integers'):
        SpatialPyramidPooling((4, 0))


# ------------------------------------------------------------------------------------------ STN

@pytest.mark.parametrize('h,w', [(7, 5), (1, 1), (1, 6)])
def test_stn_identity_at_init(h, w):
    x = torch.randn(2, 5, h, w)
    torch.testing.assert_close(SpatialTransformer(5)(x), x, atol=1e-5, rtol=0)


def test_stn_identity_survives_model_init():
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), SpatialTransformer(8))
    x = torch.randn(2, 8, 6, 9)
    for m in model.modules():  # a model init that re-draws every Linear breaks the identity ...
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.trunc_normal_(m.weight, std=.5)
    assert not torch.allclose(model[1](x), x, atol=1e-3)
    for m in reversed(list(model.modules())):  # ... reset_parameters(), children before parents, restores it
        if hasattr(m, 'reset_parameters'):
            m.reset_parameters()
    torch.testing.assert_close(model[1](x), x, atol=1e-5, rtol=0)
    resnet = timm.create_model('resnet18', block_args=dict(attn_layer=SpatialTransformer), num_classes=0).eval()
    torch.testing.assert_close(resnet.layer3[0].se(x.repeat(1, 32, 1, 1)), x.repeat(1, 32, 1, 1), atol=1e-5, rtol=0)


# ------------------------------------------------------------------------------------------ every layer

LAYERS = {  # name -> (factory(device, dtype), input shape)
    'nam': (lambda **dd: NAM(8, **dd), (2, 8, 5, 3)),
    'dyrelu_a': (lambda **dd: DyReLUA(8, **dd), (2, 8, 5, 3)),
    'dyrelu_b': (lambda **dd: DyReLUB(8, **dd), (2, 8, 5, 3)),
    'dyrelu_c': (lambda **dd: DyReLUC(8, **dd), (2, 8, 1, 3)),
    'acon': (lambda **dd: AconC(8, **dd), (2, 8, 5, 3)),
    'meta_acon': (lambda **dd: MetaAconC(8, **dd), (2, 8, 1, 1)),
    'coord_conv': (lambda **dd: CoordConv2d(8, 4, 3, padding=1, with_r=True, **dd), (2, 8, 1, 3)),
    'stn': (lambda **dd: SpatialTransformer(8, **dd), (2, 8, 5, 3)),
    'spp': (lambda **dd: SpatialPyramidPooling((2, 1)), (2, 8, 5, 3)),
    'rfb': (lambda **dd: BasicRFB(16, 8, stride=2, **dd), (2, 16, 5, 3)),
    'rfb_a': (lambda **dd: BasicRFB_a(16, 16, **dd), (2, 16, 1, 1)),
    'cbam_v1': (lambda **dd: CbamV1(16, **dd), (2, 16, 5, 3)),
    'coordatt': (lambda **dd: CoordAttV1(16, **dd), (2, 16, 5, 3)),
    'nl_v1': (lambda **dd: NonLocalV1(8, **dd), (2, 8, 5, 3)),
}


@pytest.mark.parametrize('name', LAYERS)
def test_script_meta_and_gradients(name):
    factory, shape = LAYERS[name]
    torch.manual_seed(0)
    layer = factory()
    x = torch.randn(shape, requires_grad=True)
    out = layer(x)  # training mode
    out.square().sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in layer.parameters())
    layer.eval()
    torch.testing.assert_close(torch.jit.script(layer)(x), layer(x))
    meta = factory(device='meta', dtype=torch.float32)
    assert meta(torch.empty(shape, device='meta')).shape == out.shape


def test_asff_any_sizes_script_and_meta():
    feats = [torch.randn(2, 8, 17, 13), torch.randn(2, 16, 9, 7), torch.randn(2, 32, 5, 4)]
    for level in range(3):
        asff = ASFF([8, 16, 32], level, out_channels=12)
        out = asff(feats)
        assert out.shape == (2, 12, *feats[level].shape[2:])
        out.mean().backward()
        assert all(p.grad is not None for p in asff.parameters())
        asff.eval()
        torch.testing.assert_close(torch.jit.script(asff)(feats), asff(feats))
    # strides 8 and 32 only: two max-pool-free factors of 2 become one pool + one strided conv
    asff = ASFF([8, 32], 1, reductions=[8, 32], device='meta')
    assert isinstance(asff.resize[0][0], nn.MaxPool2d)
    assert asff([f.to('meta') for f in feats[::2]]).shape == (2, 32, 5, 4)
    with pytest.raises(ValueError, match='powers of 2'):
        ASFF([8, 16], 0, reductions=[8, 24])


@pytest.mark.parametrize('reductions', [(8, 16, 32), (4, 16, 32), (8, 16, 16), (8, 8, 8)])
@pytest.mark.parametrize('level', [0, 1, 2])
def test_asff_matches_the_reference(reductions, level):
    """Every level against the functional reference with random weights; (4, 16, 32): a max-pool on the finest
    path; (8, 16, 16) / (8, 8, 8): the repeated strides of a dilated backbone (output_stride 16 / 8)."""
    sizes = {4: (33, 26), 8: (17, 13), 16: (9, 7), 32: (5, 4)}
    torch.manual_seed(1)
    feats = [torch.randn(2, c, *sizes[r]) for c, r in zip((8, 16, 32), reductions)]
    asff = randomize_weights(ASFF([8, 16, 32], level, out_channels=12, reductions=reductions), scale=0.3)
    with torch.no_grad():
        got = asff(feats)
        want = asff_reference(feats, asff.state_dict(), level, reductions)
    assert got.shape == (2, 12, *feats[level].shape[2:])
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_asff_says_when_a_dilated_backbone_needs_its_reductions():
    backbone = timm.create_model('resnet18', features_only=True, out_indices=(2, 3, 4), output_stride=16)
    feats = backbone(torch.randn(1, 3, 64, 64))
    assert backbone.feature_info.reduction() == [8, 16, 16]
    with pytest.raises(ValueError, match='pass reductions=feature_info.reduction'):
        AsffNeck(backbone.feature_info.channels())(feats)
    neck = AsffNeck(backbone.feature_info.channels(), reductions=backbone.feature_info.reduction())
    assert [f.shape for f in neck(feats)] == [f.shape for f in feats]


# ------------------------------------------------------------------------------------------ names

def test_string_names_resolve_ours_then_timm():
    assert get_attn('nam') is NAM and get_attn('CBAM_V1') is CbamV1 and get_attn('dyrelu_c') is DyReLUC
    assert get_attn('se') is SEModule  # timm's table
    partial = functools.partial(NAM, eps=1e-3)
    assert get_attn(partial) is partial and get_attn(NAM) is NAM and get_attn(None) is None
    assert get_channel_act('meta_acon') is MetaAconC and get_channel_act('dyrelu_a') is DyReLUA
    assert get_channel_act(AconC) is AconC
    with pytest.raises(ValueError, match="'nam'"):
        get_attn('namm')
    with pytest.raises(ValueError, match='acon'):
        get_channel_act('relu')
    with pytest.raises(AssertionError):  # timm's own table is untouched
        timm.layers.get_attn('nam')
    act = get_channel_act('dyrelu_b')(16, device='meta', dtype=torch.float32)
    assert act.fc[0].weight.device.type == 'meta'


# ------------------------------------------------------------------------------------------ R-Drop

def test_r_drop_loss_matches_formula():
    torch.manual_seed(0)
    l1, l2, y = torch.randn(4, 5), torch.randn(4, 5), torch.tensor([0, 3, 1, 4])
    p, q = F.softmax(l1, -1), F.softmax(l2, -1)
    kl_pq = (p * (p.log() - q.log())).sum(-1).mean()
    kl_qp = (q * (q.log() - p.log())).sum(-1).mean()
    ref = (F.cross_entropy(l1, y) + F.cross_entropy(l2, y)) / 2 + 0.6 * (kl_pq + kl_qp) / 2
    torch.testing.assert_close(RDropLoss(alpha=0.6)(l1, l2, y), ref)
    assert RDropLoss(alpha=5.)(l1, l1, y) == F.cross_entropy(l1, y)


# ------------------------------------------------------------------------------------------ necks

def test_necks_on_features_only_and_retinanet():
    torch.manual_seed(0)
    body = timm.create_model('resnet18', features_only=True, out_indices=(2, 3, 4))
    channels = body.feature_info.channels()
    feats = body(torch.randn(1, 3, 65, 65))
    for neck in (RfbNeck(channels, out_channels=64, rfb_s_first=True), AsffNeck(channels, out_channels=(32, 48, 64))):
        neck.eval()
        out = neck(feats)
        assert [o.shape[1] for o in out] == neck.out_channels
        assert [o.shape[2:] for o in out] == [f.shape[2:] for f in feats]
        torch.testing.assert_close(torch.jit.script(neck)(feats), out)
        # timm's reparameterize walk (fuse_for_inference) calls `fuse()` on every child that has one
        torch.testing.assert_close(fuse_for_inference(neck)(feats), out)

    backbone = retinanet_backbone('resnet18', neck=functools.partial(AsffNeck, out_channels=64))
    model = RetinaNet(backbone, num_classes=3, min_size=64, max_size=64)
    targets = [{'boxes': torch.tensor([[4., 6., 40., 50.]]), 'labels': torch.tensor([1])}]
    losses = model([torch.rand(3, 64, 64)], targets)
    sum(losses.values()).backward()
    assert all(torch.isfinite(v) for v in losses.values())
    assert all(p.grad is not None for p in backbone.neck.parameters())
    assert backbone.fpn.inner_blocks[0][0].in_channels == 64
    backbone.eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        want = backbone(x)
        got = fuse_for_inference(backbone)(x)
    assert all(torch.allclose(got[k], want[k], rtol=1e-5, atol=1e-5) for k in want)


# ------------------------------------------------------------------------------------------ fvcore

@pytest.mark.parametrize('name', LAYERS)
def test_fvcore_counts_every_op(name):
    factory, shape = LAYERS[name]
    layer = factory().eval()
    analysis = silence(FlopCountAnalysis(layer, torch.randn(1, *shape[1:])))
    analysis.set_op_handle(**flop_handles())
    analysis.total()
    assert analysis.unsupported_ops() == {}
    if name == 'stn':  # affine_grid: 6 MACs per output position
        assert analysis.by_operator()['affine_grid'] == 6 * shape[2] * shape[3]
