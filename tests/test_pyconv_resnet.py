"""PyConvResNet: exact sizes, the authors' checkpoint layout and outputs, PyConv2d itself.

The reference here is written from pyconv.md alone: a state dict generated in the authors' key layout
(`conv2.conv2_k`, `downsample.1/.2`, no stem pool) and a functional forward that reads every kernel size,
group count and channel split from that state dict's shapes, not from our module tables.
"""
import math

import pytest
import torch
import torch.nn.functional as F

import timm
import timm_tricks
from timm_tricks.layers import PyConv2d, create_pyconv
from spec_figures import SPEC_FIGURES

PYCONV_MODELS = timm_tricks.list_models('pyconv*')

# pyconv.md §2: per stage, (kernels, groups, groups in HG, share of the output per level)
SPEC_PYRAMID = {
    1: ((3, 5, 7, 9), (1, 4, 8, 16), (32, 32, 32, 32), (4, 4, 4, 4)),
    2: ((3, 5, 7), (1, 4, 8), (32, 64, 64), (4, 4, 2)),
    3: ((3, 5), (1, 4), (32, 64), (2, 2)),
    4: ((3,), (1,), (32,), (1,)),
}
SPEC_DEPTHS = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3)}


def test_all_variants_registered():
    expected = {f'pyconv_resnet{d}' for d in SPEC_DEPTHS} | {f'pyconvhg_resnet{d}' for d in (50, 101, 152)}
    assert set(PYCONV_MODELS) == expected


@pytest.mark.parametrize('name', PYCONV_MODELS)
def test_exact_parameter_count(name):
    with torch.device('meta'):
        model = timm.create_model(name)
    assert sum(p.numel() for p in model.parameters()) == SPEC_FIGURES[name].params


def test_pretrained_tags_match_the_issue():
    tags = set(timm_tricks.list_models('pyconv*', pretrained=True))
    assert tags == {
        'pyconv_resnet50.in1k', 'pyconv_resnet50.aug_in1k', 'pyconv_resnet101.in1k', 'pyconv_resnet101.aug_in1k',
        'pyconv_resnet152.in1k', 'pyconvhg_resnet50.in1k', 'pyconvhg_resnet101.in1k', 'pyconvhg_resnet152.in1k'}
    cfg = timm.models.get_pretrained_cfg('pyconv_resnet50.aug_in1k')
    assert cfg.hf_hub_id == 'timm-tricks/pyconv_resnet50.aug_in1k' and cfg.test_input_size == (3, 320, 320)
    assert cfg.license == 'mit' and cfg.paper_ids == 'arXiv:2006.11538' and 'iduta/pyconv' in cfg.origin_url
    assert cfg.crop_pct == 0.875 and cfg.interpolation == 'bilinear'
    assert timm.models.get_pretrained_cfg('pyconv_resnet18').tag == 'untrained'
    with pytest.raises(timm_tricks.NoPretrainedWeightsError, match='no released weights'):
        timm.create_model('pyconv_resnet18', pretrained=True)


# ------------------------------------------------------------------------------ the authors' layout, independently

def _bn(sd, prefix, chs, g):
    sd[prefix + '.weight'] = torch.rand(chs, generator=g) + 0.5
    sd[prefix + '.bias'] = torch.randn(chs, generator=g) * 0.1
    sd[prefix + '.running_mean'] = torch.randn(chs, generator=g) * 0.1
    sd[prefix + '.running_var'] = torch.rand(chs, generator=g) + 0.5
    sd[prefix + '.num_batches_tracked'] = torch.tensor(1000)


def _conv(sd, key, out_chs, in_chs, k, g):
    fan_in = in_chs * k * k
    sd[key] = torch.randn(out_chs, in_chs, k, k, generator=g) * math.sqrt(2. / fan_in)


def _pyramid(sd, prefix, in_chs, out_chs, stage, hg, g):
    kernels, groups, hg_groups, shares = SPEC_PYRAMID[stage]
    groups = hg_groups if hg else groups
    if len(kernels) == 1:
        _conv(sd, prefix + '.weight', out_chs, in_chs // groups[0], kernels[0], g)
        return
    for i, (k, grp, share) in enumerate(zip(kernels, groups, shares)):
        _conv(sd, f'{prefix}.conv2_{i + 1}.weight', out_chs // share, in_chs // grp, k, g)


def authors_state_dict(depth, hg=False, seed=0):
    """A random state dict in the authors' layout (pyconv.md §4), with non-trivial BN statistics."""
    g = torch.Generator().manual_seed(seed)
    sd = {}
    _conv(sd, 'conv1.weight', 64, 3, 7, g)
    _bn(sd, 'bn1', 64, g)
    basic = depth < 50
    planes_mult, expansion = (2, 2) if hg else (1, 1 if basic else 4)
    in_chs = 64
    for stage, n in enumerate(SPEC_DEPTHS[depth], start=1):
        planes = 64 * 2 ** (stage - 1) * planes_mult
        out_chs = planes * expansion
        for b in range(n):
            p = f'layer{stage}.{b}.'
            if basic:
                _pyramid(sd, p + 'conv1', in_chs, planes, stage, hg, g)
                _bn(sd, p + 'bn1', planes, g)
                _conv(sd, p + 'conv2.weight', planes, planes, 1, g)
                _bn(sd, p + 'bn2', planes, g)
            else:
                _conv(sd, p + 'conv1.weight', planes, in_chs, 1, g)
                _bn(sd, p + 'bn1', planes, g)
                _pyramid(sd, p + 'conv2', planes, planes, stage, hg, g)
                _bn(sd, p + 'bn2', planes, g)
                _conv(sd, p + 'conv3.weight', out_chs, planes, 1, g)
                _bn(sd, p + 'bn3', out_chs, g)
            if b == 0 and in_chs != out_chs:
                _conv(sd, p + 'downsample.1.weight', out_chs, in_chs, 1, g)
                _bn(sd, p + 'downsample.2', out_chs, g)
            in_chs = out_chs
    sd['fc.weight'] = torch.randn(1000, in_chs, generator=g) * 0.01
    sd['fc.bias'] = torch.randn(1000, generator=g) * 0.01
    return sd


def _ref_bn(x, sd, prefix):
    return F.batch_norm(x, sd[prefix + '.running_mean'], sd[prefix + '.running_var'],
                        sd[prefix + '.weight'], sd[prefix + '.bias'], training=False, eps=1e-5)


def _ref_conv(x, w, stride=1):
    """A conv whose groups and padding follow from its weight: groups = C_in / w.shape[1], pad = k // 2."""
    return F.conv2d(x, w, stride=stride, padding=w.shape[-1] // 2, groups=x.shape[1] // w.shape[1])


def _ref_pyconv(x, sd, prefix, stride):
    if prefix + '.weight' in sd:
        return _ref_conv(x, sd[prefix + '.weight'], stride)
    levels = sorted(k for k in sd if k.startswith(prefix + '.conv2_'))
    return torch.cat([_ref_conv(x, sd[k], stride) for k in levels], dim=1)


def reference_forward(sd, x):
    """The authors' forward (pyconv.md §2): no stem pool, every stage strided, pool + 1x1 shortcut."""
    x = F.relu(_ref_bn(F.conv2d(x, sd['conv1.weight'], stride=2, padding=3), sd, 'bn1'))
    stage = 1
    while f'layer{stage}.0.bn1.weight' in sd:
        b = 0
        while f'layer{stage}.{b}.bn1.weight' in sd:
            p = f'layer{stage}.{b}.'
            stride = 2 if b == 0 else 1
            shortcut = F.max_pool2d(x, 3, 2, 1) if b == 0 else x
            if p + 'downsample.1.weight' in sd:
                shortcut = _ref_bn(F.conv2d(shortcut, sd[p + 'downsample.1.weight']), sd, p + 'downsample.2')
            if p + 'conv3.weight' in sd:
                out = F.relu(_ref_bn(F.conv2d(x, sd[p + 'conv1.weight']), sd, p + 'bn1'))
                out = F.relu(_ref_bn(_ref_pyconv(out, sd, p + 'conv2', stride), sd, p + 'bn2'))
                out = _ref_bn(F.conv2d(out, sd[p + 'conv3.weight']), sd, p + 'bn3')
            else:
                out = F.relu(_ref_bn(_ref_pyconv(x, sd, p + 'conv1', stride), sd, p + 'bn1'))
                out = _ref_bn(F.conv2d(out, sd[p + 'conv2.weight']), sd, p + 'bn2')
            x = F.relu(out + shortcut)
            b += 1
        stage += 1
    return F.linear(x.mean((2, 3)), sd['fc.weight'], sd['fc.bias'])


@pytest.fixture(scope='module')
def authors_r50():
    return authors_state_dict(50)


@pytest.mark.parametrize('wrap', ['bare', 'training_checkpoint'])
def test_authors_checkpoint_reproduces_outputs(authors_r50, wrap, tmp_path):
    sd = authors_r50
    if wrap == 'training_checkpoint':  # main.py's checkpoint: module.-prefixed state_dict plus metadata
        saved = dict(epoch=90, arch='pyconvresnet50', best_acc1=77.88,
                     state_dict={'module.' + k: v for k, v in sd.items()})
    else:
        saved = sd
    path = tmp_path / 'pyconvresnet50.pth'
    torch.save(saved, path)
    model = timm.create_model('pyconv_resnet50', pretrained=True, pretrained_cfg_overlay=dict(file=str(path)))
    model.eval()
    assert all(torch.equal(model.state_dict()[k], v) for k, v in sd.items())
    with torch.no_grad():
        for size in [(64, 64), (65, 47)]:
            x = torch.randn(1, 3, *size)
            torch.testing.assert_close(model(x), reference_forward(sd, x), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize('depth, hg', [(18, False), (50, True)])
def test_authors_layout_other_blocks(depth, hg):
    """The basic block (PyConv first, then 1x1) and the HG bottleneck follow the same reference."""
    name = f'pyconv{"hg" if hg else ""}_resnet{depth}'
    sd = authors_state_dict(depth, hg, seed=depth)
    model = timm.create_model(name, pretrained=True, pretrained_cfg_overlay=dict(state_dict=sd)).eval()
    x = torch.randn(2, 3, 33, 40)
    with torch.no_grad():
        torch.testing.assert_close(model(x), reference_forward(sd, x), rtol=1e-4, atol=1e-4)


def test_authors_checkpoint_with_features_only(authors_r50, tmp_path):
    path = tmp_path / 'pyconvresnet50.pth'
    torch.save(authors_r50, path)
    model = timm.create_model(
        'pyconv_resnet50', pretrained=True, features_only=True, out_indices=(1, 2, 3, 4),
        pretrained_cfg_overlay=dict(file=str(path))).eval()
    with torch.no_grad():
        feats = model(torch.randn(1, 3, 64, 64))
    assert [f.shape[1] for f in feats] == [256, 512, 1024, 2048]
    assert [f.shape[-1] for f in feats] == [16, 8, 4, 2]


def test_wrong_checkpoint_names_what_differs(tmp_path):
    path = tmp_path / 'hg.pth'
    torch.save(authors_state_dict(50, hg=True), path)
    with pytest.raises(timm_tricks.CheckpointMismatchError) as err:
        timm.create_model('pyconv_resnet50', pretrained=True, pretrained_cfg_overlay=dict(file=str(path)))
    msg = str(err.value)
    assert 'pyconv_resnet50' in msg and 'shape mismatches' in msg
    assert 'layer1.0.conv1.weight: checkpoint (128, 64, 1, 1) vs model (64, 64, 1, 1)' in msg


def test_incomplete_checkpoint_names_missing_and_unexpected_keys(authors_r50):
    sd = dict(authors_r50)
    del sd['layer2.0.downsample.1.weight']
    sd['layer2.0.conv2.pyconv_levels.0.weight'] = sd.pop('layer2.0.conv2.conv2_1.weight')
    with pytest.raises(timm_tricks.CheckpointMismatchError) as err:
        timm.create_model('pyconv_resnet50', pretrained=True, pretrained_cfg_overlay=dict(state_dict=sd))
    msg = str(err.value)
    assert '2 missing keys' in msg and 'layer2.0.downsample.1.weight' in msg and 'layer2.0.conv2.conv2_1.weight' in msg
    assert '1 unexpected keys: layer2.0.conv2.pyconv_levels.0.weight' in msg


def test_fp16_checkpoint_is_cast_to_float32(authors_r50):
    sd = {k: v.half() if v.is_floating_point() else v for k, v in authors_r50.items()}
    model = timm.create_model('pyconv_resnet50', pretrained=True, pretrained_cfg_overlay=dict(state_dict=sd))
    assert all(p.dtype == torch.float32 for p in model.parameters())
    torch.testing.assert_close(model.conv1.weight, authors_r50['conv1.weight'].half().float())


# ---------------------------------------------------------------------------------------------- PyConv2d

def test_pyconv2d_levels_are_independent_grouped_convs():
    torch.manual_seed(0)
    layer = create_pyconv(64, 64, (3, 5, 7, 9), (1, 4, 8, 16), (.25, .25, .25, .25), stride=2)
    assert isinstance(layer, PyConv2d) and list(dict(layer.named_children())) == [
        'conv2_1', 'conv2_2', 'conv2_3', 'conv2_4']
    x = torch.randn(1, 64, 15, 16)
    out = layer(x)
    assert out.shape == (1, 64, 8, 8)
    for i, (k, g) in enumerate(zip((3, 5, 7, 9), (1, 4, 8, 16))):
        w = getattr(layer, f'conv2_{i + 1}').weight
        assert w.shape == (16, 64 // g, k, k)
        torch.testing.assert_close(out[:, 16 * i:16 * (i + 1)], F.conv2d(x, w, stride=2, padding=k // 2, groups=g))


def test_pyconv2d_dilation_keeps_size():
    layer = create_pyconv(32, 32, (3, 5), (1, 4), (.5, .5), dilation=2)
    assert layer(torch.randn(1, 32, 9, 11)).shape == (1, 32, 9, 11)
    assert [c.padding for c in layer] == [(2, 2), (4, 4)]


def test_single_level_is_a_plain_conv_and_widths_must_add_up():
    assert type(create_pyconv(8, 8, (3,), (1,), (1.,))) is torch.nn.Conv2d
    with pytest.raises(ValueError, match='add up'):
        create_pyconv(10, 10, (3, 5, 7), (1, 1, 1), (.25, .25, .25))
