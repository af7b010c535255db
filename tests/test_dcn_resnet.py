"""DCNv2-ResNet family: the deformable layer, exact sizes, the checkpoint layouts, detectors (FLOPs: test_profile).

Reference figures come from /work/shared/specs/dcnv2.md (via tests/spec_figures.py where listed there); the
mmdetection layout is checked against an independent functional forward written from the spec, on
`torchvision.ops.deform_conv2d`'s public wrapper and `torch.nn.functional` (references/dcn_resnet.py).
"""
import math
import warnings

import pytest
import timm
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

import timm_tricks
from timm_tricks.detection import faster_rcnn_backbone, retinanet_backbone
from timm_tricks.errors import CheckpointMismatchError
from timm_tricks.layers import ModulatedDeformConv2d
from timm_tricks.models.dcn_resnet import checkpoint_filter_fn

from helpers import assert_close_scaled, randomize_bn
from references.dcn_resnet import mmdet_r50_dcn_forward, mmdet_r50_dcn_state_dict, save_mmdet_checkpoint
from spec_figures import SPEC_FIGURES

# dcnv2.md §2 / §3: deformable layers per depth, plain ResNet-50 size (also torchvision's `num_params`)
R50_DCN_LAYERS, R101_DCN_LAYERS, PLAIN_R50_PARAMS = 13, 30, 25_557_032


def _dcn_layers(model):
    return {n: m for n, m in model.named_modules() if isinstance(m, ModulatedDeformConv2d)}


@pytest.fixture(scope='module')
def plain_r50():
    """A plain timm ResNet-50 (torchvision layout) with random weights and non-trivial BN statistics, eval."""
    torch.manual_seed(0)
    model = timm.create_model('resnet50')
    randomize_bn(model)
    return model.eval()


# ---------------------------------------------------------------------------------------------------------------
# the layer


@pytest.mark.parametrize('cfg', [
    dict(stride=1, dilation=1, groups=1, deform_groups=1, size=(9, 11)),
    dict(stride=2, dilation=1, groups=1, deform_groups=2, size=(9, 12)),
    dict(stride=1, dilation=2, groups=2, deform_groups=4, size=(8, 7)),
    dict(stride=2, dilation=3, groups=1, deform_groups=1, size=(13, 10)),
])
def test_zero_init_is_half_a_conv(cfg):
    """At init (zero offset / mask predictor) the layer is exactly 0.5 x the plain conv (mask = sigmoid(0))."""
    torch.manual_seed(0)
    layer = ModulatedDeformConv2d(
        8, 12, 3, stride=cfg['stride'], dilation=cfg['dilation'], groups=cfg['groups'],
        deform_groups=cfg['deform_groups'])
    assert torch.count_nonzero(layer.conv_offset.weight) == 0 and torch.count_nonzero(layer.conv_offset.bias) == 0
    assert layer.conv_offset.out_channels == 27 * cfg['deform_groups']
    x = torch.randn(2, 8, *cfg['size'])
    expected = 0.5 * F.conv2d(
        x, layer.weight, stride=cfg['stride'], padding=cfg['dilation'], dilation=cfg['dilation'], groups=cfg['groups'])
    out = layer(x)
    assert out.shape == expected.shape
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)


def _set_offset_bias(layer, dy=0., dx=0., mask_logits=None):
    k = layer.kernel_size[0] * layer.kernel_size[1]
    bias = torch.zeros(3 * layer.deform_groups * k)
    bias[0:2 * layer.deform_groups * k:2] = dy  # even offset channels: dy
    bias[1:2 * layer.deform_groups * k:2] = dx  # odd: dx
    if mask_logits is not None:
        bias[2 * layer.deform_groups * k:] = mask_logits
    with torch.no_grad():
        layer.conv_offset.bias.copy_(bias)


@pytest.mark.parametrize('dy, dx', [(1., 0.), (0., 1.), (-1., 1.)])
def test_integer_offsets_shift_the_input(dy, dx):
    """Offset (dy, dx) on every tap samples the zero-padded input shifted by (dy, dx): mmcv's channel layout."""
    torch.manual_seed(0)
    layer = ModulatedDeformConv2d(4, 6, 3, stride=2)
    _set_offset_bias(layer, dy=dy, dx=dx, mask_logits=40.)  # mask ~1
    x = torch.randn(1, 4, 11, 9)
    xp = F.pad(x, (1, 1, 1, 1))
    shifted = torch.zeros_like(xp)
    h, w = xp.shape[-2:]
    ys, xs = int(dy), int(dx)
    shifted[..., max(0, -ys):h - max(0, ys), max(0, -xs):w - max(0, xs)] = \
        xp[..., max(0, ys):h + min(0, ys), max(0, xs):w + min(0, xs)]
    expected = F.conv2d(shifted, layer.weight, stride=2)
    torch.testing.assert_close(layer(x), expected, rtol=1e-5, atol=1e-5)


def test_mask_channel_order():
    """Mask channel i*kw + j modulates tap (i, j): switching off channel 0 removes the top-left tap."""
    torch.manual_seed(0)
    layer = ModulatedDeformConv2d(4, 6, 3)
    logits = torch.full((9,), 40.)
    logits[0] = -40.
    _set_offset_bias(layer, mask_logits=logits)
    weight = layer.weight.detach().clone()
    weight[:, :, 0, 0] = 0
    x = torch.randn(2, 4, 7, 10)
    torch.testing.assert_close(layer(x), F.conv2d(x, weight, padding=1), rtol=1e-5, atol=1e-5)


def test_layer_matches_torchvision_wrapper_and_mmcv_split():
    """Random offsets and masks: equal to torchvision's public wrapper fed with mmcv's chunk(3)/cat split."""
    torch.manual_seed(0)
    layer = ModulatedDeformConv2d(8, 8, 3, stride=2, deform_groups=2, bias=True)
    nn.init.normal_(layer.conv_offset.weight, std=0.1)
    nn.init.normal_(layer.conv_offset.bias, std=1.)
    x = torch.randn(2, 8, 15, 13)
    o1, o2, m = torch.chunk(F.conv2d(x, layer.conv_offset.weight, layer.conv_offset.bias, stride=2, padding=1), 3, 1)
    expected = torchvision.ops.deform_conv2d(
        x, torch.cat((o1, o2), 1), layer.weight, layer.bias, stride=2, padding=1, mask=m.sigmoid())
    torch.testing.assert_close(layer(x), expected, rtol=1e-5, atol=1e-5)


def test_layer_bad_arguments():
    with pytest.raises(ValueError, match='deform_groups=3 must .* divide in_channels=8'):
        ModulatedDeformConv2d(8, 8, 3, deform_groups=3)
    with pytest.raises(ValueError, match='groups=3'):
        ModulatedDeformConv2d(8, 8, 3, groups=3)


def test_layer_script_fx_compile_export():
    """The op is called directly, so the layer scripts, traces with plain torch.fx, compiles and exports."""
    torch.manual_seed(0)
    layer = ModulatedDeformConv2d(4, 4, 3, stride=2, deform_groups=2).eval()
    nn.init.normal_(layer.conv_offset.weight, std=0.1)
    x = torch.randn(1, 4, 9, 7)
    expected = layer(x)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        scripted = torch.jit.script(layer)
    torch.testing.assert_close(scripted(x), expected)
    traced = torch.fx.symbolic_trace(layer)
    torch.testing.assert_close(traced(x), expected)
    assert any(n.op == 'call_function' and 'deform_conv2d' in str(n.target) for n in traced.graph.nodes)
    compiled = torch.compile(layer, fullgraph=True, dynamic=True, backend='eager')
    torch.testing.assert_close(compiled(x), expected)
    exported = torch.export.export(layer, (x,), strict=True)
    torch.testing.assert_close(exported.module()(x), expected)


def test_layer_autocast_and_channels_last():
    """channels_last input gives the same result; CPU autocast (bf16 input, bf16 offsets) runs the op in float32
    and returns the input's dtype, as torchvision's CUDA autocast kernel does, and backpropagates."""
    torch.manual_seed(0)
    layer = ModulatedDeformConv2d(8, 8, 3)
    nn.init.normal_(layer.conv_offset.weight, std=0.1)
    x = torch.randn(2, 8, 10, 10)
    expected = layer(x)
    torch.testing.assert_close(layer(x.to(memory_format=torch.channels_last)), expected)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = layer(x.bfloat16())
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), expected, rtol=0.05, atol=0.05)
    out.float().sum().backward()
    assert layer.weight.grad is not None and layer.conv_offset.weight.grad.abs().sum() > 0


# ---------------------------------------------------------------------------------------------------------------
# architecture


@pytest.mark.parametrize('name, kwargs, params, n_dcn', [
    ('dcnv2_resnet50', {}, SPEC_FIGURES['dcnv2_resnet50'].params, R50_DCN_LAYERS),
    ('dcnv2_resnet50', dict(deform_groups=4), SPEC_FIGURES['dcnv2_resnet50_dg4'].params, R50_DCN_LAYERS),
    ('dcnv2_resnet101', {}, SPEC_FIGURES['dcnv2_resnet101'].params, R101_DCN_LAYERS),
    ('dcnv2_resnet50', dict(dcn_stages=()), PLAIN_R50_PARAMS, 0),
])
def test_exact_parameter_counts(name, kwargs, params, n_dcn):
    model = timm.create_model(name, device='meta', **kwargs)
    assert sum(p.numel() for p in model.parameters()) == params
    layers = _dcn_layers(model)
    assert len(layers) == n_dcn
    assert all(n.startswith(('layer2.', 'layer3.', 'layer4.')) and n.endswith('.conv2') for n in layers)


def test_dcn_stages_and_dilation():
    model = timm.create_model('dcnv2_resnet50', dcn_stages=(4,), output_stride=8, device='meta')
    layers = _dcn_layers(model)
    assert sorted(layers) == ['layer4.0.conv2', 'layer4.1.conv2', 'layer4.2.conv2']
    # timm / torchvision dilation: the first block of a dilated stage keeps the previous stage's dilation
    for name, d in [('layer4.0.conv2', 2), ('layer4.1.conv2', 4), ('layer4.2.conv2', 4)]:
        layer = layers[name]
        assert layer.stride == (1, 1) and layer.dilation == (d, d) and layer.padding == (d, d)
        assert layer.conv_offset.dilation == (d, d) and layer.conv_offset.padding == (d, d)
        assert layer.conv_offset.stride == (1, 1)
    assert isinstance(model.layer3[0].conv2, nn.Conv2d) and model.layer3[1].conv2.dilation == (2, 2)
    with pytest.raises(ValueError, match='dcn_stages'):
        timm.create_model('dcnv2_resnet50', dcn_stages=(5,), device='meta')
    with pytest.raises(ValueError, match='deform_groups=3'):
        timm.create_model('dcnv2_resnet50', deform_groups=3, device='meta')
    with pytest.raises(TypeError):
        timm.create_model('dcnv2_resnet50', deformable_groups=4, device='meta')  # mmcv's old name is not accepted


def test_init_zeroes_offset_predictor():
    """The skeleton's He init of every nn.Conv2d must not reach conv_offset (paper: offsets 0, mask 0.5)."""
    model = timm.create_model('dcnv2_resnet50', dcn_stages=(4,))
    for layer in _dcn_layers(model).values():
        assert torch.count_nonzero(layer.conv_offset.weight) == 0
        assert torch.count_nonzero(layer.conv_offset.bias) == 0
        assert layer.weight.std() > 0


def test_tags_and_cfgs():
    assert not set(timm_tricks.list_models('dcnv2*')) & set(
        n for n in timm.list_models() if not timm_tricks.is_ours(n))
    assert timm.models.get_pretrained_cfg('dcnv2_resnet50').tag == 'tv_in1k'
    for arch, repo in [('dcnv2_resnet50', 'timm/resnet50.tv_in1k'), ('dcnv2_resnet101', 'timm/resnet101.tv_in1k')]:
        cfg = timm.models.get_pretrained_cfg(f'{arch}.tv_in1k')
        assert cfg.hf_hub_id == repo and cfg.num_classes == 1000 and cfg.license == 'bsd-3-clause'
        assert cfg.url.startswith('https://download.pytorch.org/models/')
        assert any('76.13' in n or '77.374' in n for n in cfg.notes)
    for name in ('dcnv2_resnet50.coco_frcnn', 'dcnv2_resnet50_dg4.coco_frcnn', 'dcnv2_resnet50.coco_mrcnn'):
        cfg = timm.models.get_pretrained_cfg(name)
        assert cfg.num_classes == 0 and cfg.hf_hub_id == f'timm-tricks/{name}'
        assert cfg.url.startswith('https://download.openmmlab.com/mmdetection/v2.0/') and cfg.license == 'unknown'
    # the dg=4 detector is its own architecture (an architecture change is a name, not a tag)
    assert 'coco_frcnn_dg4' not in timm_tricks.list_models('dcnv2*', pretrained=True)
    model = timm.create_model('dcnv2_resnet50_dg4.coco_frcnn', device='meta')
    assert model.num_classes == 0
    assert {m.deform_groups for m in _dcn_layers(model).values()} == {4}
    assert {m.deform_groups for m in _dcn_layers(timm.create_model('dcnv2_resnet50', device='meta')).values()} == {1}
    assert sum(p.numel() for p in timm.create_model('dcnv2_resnet50.coco_frcnn', device='meta').parameters()) == \
        SPEC_FIGURES['dcnv2_resnet50'].params - 2048 * 1000 - 1000


@pytest.mark.parametrize('output_stride, sizes', [(32, [(32, 32), (33, 47)]), (16, [(47, 33)]), (8, [(35, 32)])])
def test_input_sizes(output_stride, sizes):
    """Every H, W >= 32, odd and non-square, also with dilated deformable convs."""
    torch.manual_seed(0)
    model = timm.create_model('dcnv2_resnet50', features_only=True, output_stride=output_stride).eval()
    for size in sizes:
        with torch.inference_mode():
            feats = model(torch.randn(1, 3, *size))
        for f, chs, red in zip(feats, model.feature_info.channels(), model.feature_info.reduction(), strict=True):
            assert red <= output_stride and f.shape[1] == chs
            h, w = size
            for _ in range(int(math.log2(red))):  # every strided layer gives ceil(n / 2)
                h, w = (h + 1) // 2, (w + 1) // 2
            assert tuple(f.shape[-2:]) == (h, w)


# ---------------------------------------------------------------------------------------------------------------
# pretrained hooks: plain ResNet (tv_in1k), mmdetection detectors, our own checkpoints


def test_tv_in1k_from_hub_computes_plain_resnet(hub, plain_r50):
    """`.tv_in1k` loads timm's plain ResNet repo and computes the same function; every parameter trains."""
    hub.publish_model('timm/resnet50.tv_in1k', plain_r50)
    model = timm.create_model('dcnv2_resnet50.tv_in1k', pretrained=True).eval()
    assert ('HEAD', '/timm/resnet50.tv_in1k/resolve/main/model.safetensors', 302) in hub.requests
    plain = plain_r50.state_dict()
    for name, layer in _dcn_layers(model).items():
        assert torch.equal(layer.weight, 2 * plain[f'{name}.weight'])  # doubled, exactly (a power of two)
        assert torch.count_nonzero(layer.conv_offset.weight) == 0 and torch.count_nonzero(layer.conv_offset.bias) == 0
    x = torch.randn(2, 3, 64, 80)
    with torch.inference_mode():
        expected, out = plain_r50(x), model(x)
    assert_close_scaled(out, expected)
    # the mmdetection way (plain weights, mask 0.5) would not be function preserving: show the test can fail
    halved = {k: v for k, v in model.state_dict().items()}
    for name in _dcn_layers(model):
        halved[f'{name}.weight'] = plain[f'{name}.weight']
    model.load_state_dict(halved)
    with torch.inference_mode():
        assert (model(x) - expected).abs().max() > 0.1 * expected.abs().max()


def test_tv_in1k_conversion_trains_every_parameter(plain_r50, tmp_path):
    """After conversion, offsets and mask logits get non-zero gradients (no saturated sigmoid)."""
    torch.save(plain_r50.state_dict(), tmp_path / 'resnet50.pth')
    model = timm.create_model(
        'dcnv2_resnet50.tv_in1k', pretrained=True, num_classes=5,
        pretrained_cfg_overlay=dict(file=str(tmp_path / 'resnet50.pth')))
    model.train()
    model(torch.randn(2, 3, 64, 64)).square().sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    for name, layer in _dcn_layers(model).items():
        g = layer.conv_offset.bias.grad
        assert g[:18].abs().sum() > 0, f'{name}: no offset gradient'
        assert g[18:].abs().sum() > 0, f'{name}: no mask gradient'
        assert layer.conv_offset.weight.grad.abs().sum() > 0


def test_tv_in1k_output_stride_8_matches_dilated_resnet(plain_r50, tmp_path):
    """Dilated deformable convs: the converted OS-8 model equals timm's dilated ResNet-50 with the same weights."""
    torch.save(plain_r50.state_dict(), tmp_path / 'resnet50.pth')
    model = timm.create_model(
        'dcnv2_resnet50.tv_in1k', pretrained=True, output_stride=8, features_only=True, out_indices=(4,),
        pretrained_cfg_overlay=dict(file=str(tmp_path / 'resnet50.pth'))).eval()
    ref = timm.create_model('resnet50', output_stride=8, features_only=True, out_indices=(4,)).eval()
    ref.load_state_dict({k: v for k, v in plain_r50.state_dict().items() if not k.startswith('fc.')})
    x = torch.randn(1, 3, 33, 40)
    with torch.inference_mode():
        assert_close_scaled(model(x)[0], ref(x)[0])


def test_own_checkpoint_loads_unchanged(tmp_path):
    """Our checkpoints (bare, or a DDP training checkpoint) carry conv_offset keys and are not converted again."""
    torch.manual_seed(0)
    src = timm.create_model('dcnv2_resnet50')
    for layer in _dcn_layers(src).values():
        nn.init.normal_(layer.conv_offset.weight, std=0.01)
    sd = src.state_dict()
    torch.save({'state_dict': {f'module.{k}': v for k, v in sd.items()}, 'epoch': 3}, tmp_path / 'ours.pth')
    model = timm.create_model(
        'dcnv2_resnet50', pretrained=True, pretrained_cfg_overlay=dict(file=str(tmp_path / 'ours.pth')))
    for k, v in model.state_dict().items():
        assert torch.equal(v, sd[k]), k


# mmdetection's R-50-DCNv2 detectors, against the independent reference (references/dcn_resnet.py)

@pytest.mark.parametrize('name, deform_groups, v1_names', [
    ('dcnv2_resnet50.coco_frcnn', 1, False),
    ('dcnv2_resnet50_dg4.coco_frcnn', 4, True),
])
def test_mmdet_checkpoint_matches_reference(tmp_path, name, deform_groups, v1_names):
    """An mmdetection DCNv2 detector checkpoint loads as the backbone and gives the reference's c2-c5 features."""
    gen = torch.Generator().manual_seed(deform_groups)
    sd = mmdet_r50_dcn_state_dict(deform_groups, gen)
    path = tmp_path / 'faster_rcnn_r50_fpn_mdconv_c3-c5_1x_coco.pth'
    save_mmdet_checkpoint(path, sd, v1_names=v1_names)
    model = timm.create_model(
        name, pretrained=True, features_only=True, out_indices=(1, 2, 3, 4),
        pretrained_cfg_overlay=dict(file=str(path))).eval()
    x = torch.randn(2, 3, 65, 47, generator=gen)
    with torch.inference_mode():
        expected = mmdet_r50_dcn_forward(sd, x)
        feats = model(x)
    assert len(feats) == 4
    for f, e in zip(feats, expected, strict=True):
        assert f.shape == e.shape
        assert_close_scaled(f, e)
    # the deformation is real: offsets are far from zero, so a plain conv would not match
    assert max(sd[f'layer3.{b}.conv2.conv_offset.bias'].abs().max() for b in range(6)) > 1.


def test_wrong_checkpoints_name_the_problem(tmp_path):
    gen = torch.Generator().manual_seed(0)
    sd = mmdet_r50_dcn_state_dict(4, gen)
    # a dg=4 detector into the dg=1 model: the error says which deform_groups to use
    save_mmdet_checkpoint(tmp_path / 'dg4.pth', sd)
    with pytest.raises(CheckpointMismatchError, match=r'layer2\.0\.conv2\.conv_offset\.weight.*deform_groups=4'):
        timm.create_model(
            'dcnv2_resnet50.coco_frcnn', pretrained=True, pretrained_cfg_overlay=dict(file=str(tmp_path / 'dg4.pth')))
    # a checkpoint with some deformable layers' predictors missing is neither plain nor complete
    partial = {k: v for k, v in sd.items() if not k.startswith('layer4.2.conv2.conv_offset')}
    save_mmdet_checkpoint(tmp_path / 'partial.pth', partial)
    with pytest.raises(CheckpointMismatchError, match=r'2 missing keys: layer4\.2\.conv2\.conv_offset\.weight'):
        timm.create_model(
            'dcnv2_resnet50_dg4.coco_frcnn', pretrained=True,
            pretrained_cfg_overlay=dict(file=str(tmp_path / 'partial.pth')))
    # another architecture (a plain ResNet-18): the shape mismatches are named
    model = timm.create_model('dcnv2_resnet50', num_classes=0)
    r18 = timm.create_model('resnet18', num_classes=0).state_dict()
    with pytest.raises(CheckpointMismatchError, match=r'layer1\.0\.conv1\.weight: checkpoint \(64, 64, 3, 3\)'):
        checkpoint_filter_fn(r18, model)


# ---------------------------------------------------------------------------------------------------------------
# detection clients (clients.md §3): training steps


def _targets(n):
    return [dict(boxes=torch.tensor([[10., 20., 70., 90.], [40., 30., 120., 90.]]), labels=torch.tensor([1, 2]))
            for _ in range(n)]


# small images and few proposals / sampled RoIs: the point is the backbone's gradient path, not the heads
DETECTOR_KW = dict(min_size=128, max_size=128)
RCNN_KW = dict(rpn_pre_nms_top_n_train=300, rpn_post_nms_top_n_train=100, rpn_batch_size_per_image=64,
               box_batch_size_per_image=32)


def _train_step(detector, body, n_images):
    detector.train()
    images = [torch.rand(3, 128, 128), torch.rand(3, 96, 128)][:n_images]
    losses = detector(images, _targets(n_images))
    loss = sum(losses.values())
    assert torch.isfinite(loss)
    loss.backward()
    missing = [n for n, p in body.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing, f'no gradient: {missing[:5]}'
    offsets = [p for n, p in body.named_parameters() if 'conv_offset' in n]
    assert len(offsets) == 2 * R50_DCN_LAYERS


def test_faster_rcnn_train_step():
    from torchvision.models.detection import FasterRCNN
    torch.manual_seed(0)
    backbone = faster_rcnn_backbone('dcnv2_resnet50')
    detector = FasterRCNN(backbone, num_classes=3, **DETECTOR_KW, **RCNN_KW)
    _train_step(detector, backbone.body, n_images=2)
    detector.eval()
    with torch.inference_mode():
        out = detector([torch.rand(3, 100, 120)])
    assert set(out[0]) == {'boxes', 'labels', 'scores'}


def test_retinanet_train_step_frozen_bn():
    from torchvision.models.detection import RetinaNet
    torch.manual_seed(0)
    backbone = retinanet_backbone('dcnv2_resnet50')
    backbone.body = timm.layers.freeze_batch_norm_2d(backbone.body)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in backbone.body.modules())
    detector = RetinaNet(backbone, num_classes=3, **DETECTOR_KW)
    _train_step(detector, backbone.body, n_images=1)
