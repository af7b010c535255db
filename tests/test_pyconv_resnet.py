"""PyConvResNet: exact sizes, the authors' checkpoint layout and outputs, PyConv2d itself.

The reference (references/pyconv_resnet.py) is written from pyconv.md alone: a state dict generated in the
authors' key layout and a functional forward that reads every kernel size, group count and channel split from that
state dict's shapes, not from our module tables.
"""
import pytest
import timm
import torch
import torch.nn.functional as F

import timm_tricks
from timm_tricks.layers import PyConv2d, create_pyconv

from references.pyconv_resnet import SPEC_DEPTHS, authors_state_dict, reference_forward
from spec_figures import SPEC_FIGURES

PYCONV_MODELS = timm_tricks.list_models('pyconv*')


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
