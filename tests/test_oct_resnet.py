"""OctResNet (octconv.md): exact sizes, the reference's checkpoint layout and outputs, every input size, the layer.

The reference (references/oct_resnet.py) is written from the spec (octconv.md §2, §4, §5) as plain functions over
a state dict in the authors' key layout; it shares no code with timm_tricks. AUTHORS selects the authors' ops
(floor-mode pooling, x2 upsample), EXTENDED the ceil-mode extension the spec prescribes for odd sizes.
"""
import math

import pytest
import timm
import torch
import torch.nn.functional as F
from timm.layers import set_scriptable

import timm_tricks
from timm_tricks.layers.octconv import (
    OctaveConv2d,
    OctaveDropPath,
    add_upsampled,
    merge_octave,
    octave_pool,
    upsample_to,
)
from timm_tricks.models._resnet import PluggableResNet
from timm_tricks.models.oct_resnet import oct_resnet_args

from helpers import assert_close_scaled, fx_final_output, randomize_bn
from references.oct_resnet import (
    DEPTHS,
    EXTENDED,
    ceil_pool,
    reference_forward,
    reference_shapes,
    reference_state_dict,
    upsample_index,
    upsample_x2,
)
from spec_figures import SPEC_FIGURES

NAMES = ['oct_resnet26', 'oct_resnet50', 'oct_resnet101', 'oct_resnet152', 'oct_resnet200']
CL = torch.channels_last

# these inputs are tiny: one thread is as fast on an idle machine, and far faster on a loaded one
pytestmark = pytest.mark.usefixtures('one_cpu_thread')


@pytest.fixture(scope='module')
def r26_reference(tmp_path_factory):
    sd = reference_state_dict(DEPTHS['oct_resnet26'])
    path = tmp_path_factory.mktemp('oct') / 'oct_resnet26_cosine.pth'
    torch.save(sd, path)
    return sd, path


@pytest.fixture(scope='module')
def r26_loaded(r26_reference):
    _, path = r26_reference
    return timm.create_model(
        'oct_resnet26', pretrained=True, pretrained_cfg_overlay=dict(file=str(path))).eval()


# --------------------------------------------------------------------------------------- sizes and layout


@pytest.mark.parametrize('name', NAMES)
def test_parameter_count_equals_spec(name):
    model = timm.create_model(name, device='meta')
    assert sum(p.numel() for p in model.parameters()) == SPEC_FIGURES[name].params


@pytest.mark.parametrize('alpha', [0.125, 0.25, 0.75])
def test_parameter_count_is_resnets_for_any_alpha(alpha):
    model = timm.create_model('oct_resnet50', oct_alpha=alpha, device='meta')
    assert sum(p.numel() for p in model.parameters()) == SPEC_FIGURES['oct_resnet50'].params
    # the low split follows int(alpha * C)
    w = model.state_dict()['layer2.1.conv2.conv.conv_l2l.weight']
    assert tuple(w.shape[:2]) == (int(alpha * 128), int(alpha * 128))


def test_state_dict_layout_is_the_authors():
    """Same keys and shapes as the reference (654 keys for R-50, octconv.md §4)."""
    model = timm.create_model('oct_resnet50', device='meta')
    got = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    want = reference_shapes(DEPTHS['oct_resnet50'])
    assert len(want) == 654
    assert got == want
    # a few shapes quoted by the spec
    assert got['layer1.0.conv1.conv.conv_h2l.weight'] == (32, 64, 1, 1)
    assert got['layer1.0.downsample.0.conv.conv_h2h.weight'] == (128, 64, 1, 1)
    assert got['layer2.3.conv2.conv.conv_l2h.weight'] == (64, 64, 3, 3)
    assert got['layer4.0.conv1.conv.conv_l2h.weight'] == (512, 512, 1, 1)
    assert got['layer4.1.conv1.conv.conv_h2h.weight'] == (512, 2048, 1, 1)
    assert got['layer4.0.downsample.0.conv.conv_l2h.weight'] == (2048, 512, 1, 1)


def test_oct_alpha_out_of_range_raises():
    for alpha in (0., 1., -0.5):
        with pytest.raises(ValueError, match='oct_alpha'):
            timm.create_model('oct_resnet26', oct_alpha=alpha, device='meta')


# ------------------------------------------------------------------------------------- authors' checkpoint


@pytest.mark.parametrize('size', [(64, 64), (64, 96)])
def test_authors_checkpoint_reproduces_reference_outputs(r26_reference, r26_loaded, size):
    """A bare state dict in the authors' layout loads and gives the reference's outputs where the reference runs."""
    sd, _ = r26_reference
    x = torch.randn(2, 3, *size, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        want, stages = reference_forward(sd, x, DEPTHS['oct_resnet26'])
        assert_close_scaled(r26_loaded(x), want)
        feats = r26_loaded.forward_intermediates(x, intermediates_only=True)
    # stage taps: concat(high, nearest-upsampled low); layer4 is the high map alone
    for feat, (x_h, x_l) in zip(feats[1:], stages, strict=True):
        assert_close_scaled(feat[:, :x_h.shape[1]], x_h)
        if x_l is not None:
            assert_close_scaled(feat[:, x_h.shape[1]:], upsample_x2(x_l, x_h.shape[-2:]))
        else:
            assert feat.shape[1] == x_h.shape[1]


def test_wrapped_checkpoint_and_channels_last_give_the_same(r26_reference, r26_loaded, tmp_path):
    """Training wrappers (`state_dict`, `module.`) are unwrapped; channels_last runs the native pool/upsample."""
    sd, _ = r26_reference
    path = tmp_path / 'wrapped.pth'
    torch.save({'state_dict': {f'module.{k}': v.half() if v.is_floating_point() else v for k, v in sd.items()},
                'epoch': 120}, path)
    wrapped = timm.create_model('oct_resnet26', pretrained=True, pretrained_cfg_overlay=dict(file=str(path))).eval()
    assert all(v.dtype != torch.float16 for v in wrapped.state_dict().values())
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        want = r26_loaded(x)
        assert_close_scaled(wrapped(x), want, rtol=2e-2)  # half-precision storage
        cl = timm.create_model('oct_resnet26').eval()
        cl.load_state_dict(r26_loaded.state_dict())
        cl = cl.to(memory_format=CL)
        assert_close_scaled(cl(x.contiguous(memory_format=CL)), want)


def test_checkpoint_of_another_variant_names_the_mismatch(r26_reference):
    _, path = r26_reference
    mismatch = (r'shape mismatches: layer1\.0\.conv1\.conv\.conv_h2h\.weight: '
                r'checkpoint \(32, 64, 1, 1\) vs model \(48, 64, 1, 1\)')
    with pytest.raises(timm_tricks.CheckpointMismatchError, match=mismatch):
        timm.create_model('oct_resnet26', oct_alpha=0.25, pretrained=True,
                          pretrained_cfg_overlay=dict(file=str(path)))
    with pytest.raises(timm_tricks.CheckpointMismatchError, match=r'missing keys: .*layer1\.2\.'):
        timm.create_model('oct_resnet50', pretrained=True, pretrained_cfg_overlay=dict(file=str(path)))


# ----------------------------------------------------------------------------------------- input sizes


@pytest.mark.parametrize('size', [(32, 32), (33, 47), (97, 131)])
def test_every_size_matches_the_extended_reference(r26_reference, r26_loaded, size):
    """Sizes where the reference fails (§5) run, and equal the ceil-mode extension of the reference."""
    sd, _ = r26_reference
    x = torch.randn(1, 3, *size)
    with torch.no_grad():
        want, _ = reference_forward(sd, x, DEPTHS['oct_resnet26'], ops=EXTENDED)
        assert_close_scaled(r26_loaded(x), want)
        feats = r26_loaded.forward_intermediates(x, intermediates_only=True)
    assert [tuple(f.shape[-2:]) for f in feats] == [
        (math.ceil(size[0] / r), math.ceil(size[1] / r)) for r in (2, 4, 8, 16, 32)]


def test_reference_fails_where_ours_runs(r26_reference):
    """The authors' ops break at 32x32 (they pool the discarded 1x1 low map of layer4) and at odd sizes."""
    sd, _ = r26_reference
    for size in [(32, 32), (97, 131)]:
        with pytest.raises(RuntimeError):
            reference_forward(sd, torch.randn(1, 3, *size), DEPTHS['oct_resnet26'])


# ------------------------------------------------------------------------------------------------ layer


@pytest.mark.parametrize('fmt', [torch.contiguous_format, CL])
@pytest.mark.parametrize('size', [(4, 6), (5, 7), (1, 1), (6, 3)])
def test_octave_pool_is_ceil_mode_average(fmt, size):
    x = torch.randn(2, 3, *size).contiguous(memory_format=fmt)
    x = x * 100  # large values: a different summation order would show
    assert torch.equal(octave_pool(x), F.avg_pool2d(x, 2, 2, ceil_mode=True))  # the fast path is bit-identical
    assert octave_pool(x).shape[-2:] == (math.ceil(size[0] / 2), math.ceil(size[1] / 2))


def test_octave_pool_by_hand():
    x = torch.arange(9.).view(1, 1, 3, 3)
    # windows {0,1,3,4} {2,5} {6,7} {8}: a window overhanging the border averages what it covers
    assert octave_pool(x).flatten().tolist() == [2., 3.5, 6.5, 8.]
    x = torch.arange(16.).view(1, 1, 4, 4)
    assert octave_pool(x).flatten().tolist() == [2.5, 4.5, 10.5, 12.5]


@pytest.mark.parametrize('fmt', [torch.contiguous_format, CL])
@pytest.mark.parametrize('size', [(4, 6), (5, 7), (1, 1), (7, 2)])
def test_upsampling_copies_pixel_i_div_2(fmt, size):
    low = torch.randn(2, 3, math.ceil(size[0] / 2), math.ceil(size[1] / 2)).contiguous(memory_format=fmt)
    high = torch.randn(2, 3, *size).contiguous(memory_format=fmt)
    want = upsample_index(low, size)
    assert torch.equal(upsample_to(low, list(size)), want)
    assert torch.equal(add_upsampled(high, low), high + want)
    assert torch.equal(merge_octave(high, low), torch.cat([high, want], 1))
    assert merge_octave(high, None) is high


def _layer_reference(layer, x_h, x_l, stride, k, dilation):
    """Four explicit paths (ceil pool, index upsample) from the layer's own weights."""
    def conv(c, x):
        return F.conv2d(x, c.weight, padding=dilation * (k // 2), dilation=dilation)
    if stride == 2:
        x_h = ceil_pool(x_h)
    y_h = conv(layer.conv_h2h, x_h)
    if layer.conv_l2h is not None:
        l2h = conv(layer.conv_l2h, x_l)
        y_h = y_h + (upsample_index(l2h, y_h.shape[-2:]) if stride == 1 else l2h)
    y_l = None
    if layer.conv_h2l is not None:
        y_l = conv(layer.conv_h2l, ceil_pool(x_h))
        if layer.conv_l2l is not None:
            y_l = y_l + conv(layer.conv_l2l, ceil_pool(x_l) if stride == 2 else x_l)
    return y_h, y_l


@pytest.mark.parametrize('alphas', [(0.5, 0.5), (0., 0.5), (0.5, 0.), (0., 0.), (0.25, 0.75)])
@pytest.mark.parametrize('stride,k,dilation', [(1, 3, 1), (2, 3, 1), (1, 1, 1), (2, 1, 1), (1, 3, 2)])
@pytest.mark.parametrize('size', [(8, 12), (7, 9)])
def test_octave_conv_paths(alphas, stride, k, dilation, size):
    torch.manual_seed(0)
    a_in, a_out = alphas
    layer = OctaveConv2d(16, 24, k, a_in, a_out, stride=stride, dilation=dilation)
    assert sum(p.numel() for p in layer.parameters()) == 16 * 24 * k * k  # the kernels partition a plain conv's
    x_h = torch.randn(2, layer.in_h, *size)
    x_l = torch.randn(2, layer.in_l, math.ceil(size[0] / 2), math.ceil(size[1] / 2)) if layer.in_l else None
    y_h, y_l = layer(x_h, x_l)
    r_h, r_l = _layer_reference(layer, x_h, x_l, stride, k, dilation)
    torch.testing.assert_close(y_h, r_h)
    assert y_h.shape[1] == layer.out_h == 24 - int(a_out * 24)
    if a_out:
        torch.testing.assert_close(y_l, r_l)
        assert y_l.shape[-2:] == ((y_h.shape[-2] + 1) // 2, (y_h.shape[-1] + 1) // 2)
    else:
        assert y_l is None


def test_last_layer_does_not_pool_the_low_input():
    """alpha_out = 0 at stride 2 (layer4's shortcut): a 1x1 low map is used as it is (the reference pools it to 0x0)."""
    layer = OctaveConv2d(8, 8, 1, 0.5, 0., stride=2)
    y_h, y_l = layer(torch.randn(1, 4, 2, 2), torch.randn(1, 4, 1, 1))
    assert y_h.shape == (1, 8, 1, 1) and y_l is None


def test_drop_path_drops_both_frequencies_together():
    torch.manual_seed(0)
    drop = OctaveDropPath(0.5).train()
    x_h, x_l = torch.ones(64, 2, 4, 4), torch.ones(64, 3, 2, 2)
    y_h, y_l = drop(x_h, x_l)
    kept_h, kept_l = y_h.flatten(1).amax(1) > 0, y_l.flatten(1).amax(1) > 0
    assert torch.equal(kept_h, kept_l) and 0 < kept_h.sum() < 64
    assert torch.equal(y_h[kept_h], torch.full_like(y_h[kept_h], 2.))
    assert drop.eval()(x_h, x_l)[0] is x_h


def test_zero_init_last_targets_both_frequencies():
    model = timm.create_model('oct_resnet26', device='meta')
    names = [k for k in model.state_dict() if '.conv3.bn_' in k and k.endswith('.weight')]
    assert len(names) == 2 * 6 + 2  # layers 1-3 have bn_h and bn_l, layer4 bn_h only
    model = timm.create_model('oct_resnet26')
    sd = model.state_dict()
    assert all(torch.count_nonzero(sd[k]) == 0 for k in names)
    model = timm.create_model('oct_resnet26', zero_init_last=False)
    assert all(torch.all(model.state_dict()[k] == 1) for k in names)


# ---------------------------------------------------------------------------- script / FX / compile (tiny)


def _tiny(**kwargs):
    torch.manual_seed(0)
    model = PluggableResNet(
        **oct_resnet_args((1, 1, 1, 1)), stem_width=16, stage_widths=(8, 16, 16, 16), **kwargs)
    return randomize_bn(model).eval()


@pytest.mark.parametrize('size', [(33, 47), (64, 64)])
def test_script_fx_compile_match_eager(size):
    model = _tiny()
    x = torch.randn(2, 3, *size)
    with torch.no_grad():
        want = model(x)
        with set_scriptable(True):
            scripted = torch.jit.script(model)
        torch.testing.assert_close(scripted(x), want)
        torch.testing.assert_close(fx_final_output(model)(x), want)
        compiled = torch.compile(model, fullgraph=True, dynamic=True, backend='eager')
        torch.testing.assert_close(compiled(x), want)


# ------------------------------------------------------------------------------------------------ features


def test_features_only_levels_and_channels():
    with torch.device('meta'):
        model = timm.create_model('oct_resnet50', features_only=True)
    assert model.feature_info.channels() == [64, 256, 512, 1024, 2048]
    assert model.feature_info.reduction() == [2, 4, 8, 16, 32]
    with torch.device('meta'):
        quarter = timm.create_model('oct_resnet50', features_only=True, oct_alpha=0.25, out_indices=(1, 2, 3, 4))
    feats = quarter(torch.empty(1, 3, 96, 64, device='meta'))
    assert [f.shape[1] for f in feats] == [256, 512, 1024, 2048] == quarter.feature_info.channels()


def test_features_only_equals_forward_intermediates(r26_loaded, r26_reference):
    _, path = r26_reference
    feats = timm.create_model(
        'oct_resnet26', pretrained=True, features_only=True, out_indices=(1, 3),
        pretrained_cfg_overlay=dict(file=str(path))).eval()
    x = torch.randn(1, 3, 65, 31)
    with torch.no_grad():
        got = feats(x)
        want = r26_loaded.forward_intermediates(x, indices=[1, 3], intermediates_only=True)
    assert len(got) == 2
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w)


def test_hook_based_features_equal_forward_intermediates():
    """Stages map a tensor to a tensor, so module hooks tap the same features as forward_intermediates."""
    model = _tiny()
    x = torch.randn(1, 3, 65, 31)
    with torch.no_grad():
        want = model.forward_intermediates(x, intermediates_only=True)
    feats = timm.models.FeatureListNet(model, out_indices=(0, 1, 2, 3, 4))
    with torch.no_grad():
        got = feats(x)
    assert len(got) == len(want) == 5
    for g, w in zip(got, want, strict=True):
        assert torch.equal(g, w)


@pytest.mark.parametrize('os_,dilations', [(16, (1, 1, 1, 2)), (8, (1, 2, 2, 4))])
def test_output_stride_dilates_every_3x3_path(os_, dilations):
    """layer3 / layer4 at stride 1; their first block's 3x3 keeps the previous dilation, the others dilate."""
    model = timm.create_model('oct_resnet26', output_stride=os_, device='meta')
    # (layer3.0, layer3.1, layer4.0, layer4.1) conv2 dilations
    for (stage, block), d in zip([(3, 0), (3, 1), (4, 0), (4, 1)], dilations):
        conv = model.get_submodule(f'layer{stage}.{block}.conv2.conv')
        paths = [c for c in (conv.conv_h2h, conv.conv_h2l, conv.conv_l2h, conv.conv_l2l) if c is not None]
        assert len(paths) == (4 if stage == 3 else 1)
        assert all(c.dilation == (d, d) and c.padding == (d, d) and c.stride == (1, 1) for c in paths)
    model = _tiny(output_stride=os_)
    with torch.no_grad():
        feats = model.forward_intermediates(torch.randn(1, 3, 67, 45), intermediates_only=True)
    reductions = [2, 4, 8, 16, 16] if os_ == 16 else [2, 4, 8, 8, 8]
    assert [tuple(f.shape[-2:]) for f in feats] == [(math.ceil(67 / r), math.ceil(45 / r)) for r in reductions]


def test_one_keyword_for_alpha():
    with torch.device('meta'):
        model = timm.create_model('oct_resnet26', oct_alpha=0.25)
    assert model.layer1[0].conv2.conv.in_l == int(0.25 * 64)
    with pytest.raises(TypeError, match="'alpha'"):  # no alias under the paper's name
        timm.create_model('oct_resnet26', alpha=0.25, device='meta')
