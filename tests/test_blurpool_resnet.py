"""BlurPool-ResNet: the BlurPool2d layer, exact sizes, the authors' checkpoint layout and outputs, shift-invariance.

Everything here is checked against the spec (blurpool.md) through independent code (references/blurpool_resnet.py):
a per-pixel loop blur with explicit reflect indexing, and a functional forward of the authors' models that reads
the authors' key layout and uses the blur filters stored in that state dict; nothing is taken from timm_tricks'
classes.
"""
import itertools
import math
import re

import pytest
import timm
import torch
import torch.nn.functional as F
import torchvision
from timm.models._builder import _resolve_pretrained_source
from timm.models._manipulate import reinit_non_persistent_buffers

import timm_tricks
from timm_tricks.layers import BlurPool2d
from timm_tricks.weights import manifest_entry

from helpers import assert_close_scaled
from references.blurpool_resnet import authors_state_dict, naive_blur, reference_forward, spec_filter
from spec_figures import SPEC_FIGURES

BLUR_MODELS = timm_tricks.list_models('blurpool*')

# blurpool.md §3: our name -> torchvision equivalent (same parameters)
TORCHVISION = {
    'blurpool_resnet18': 'resnet18', 'blurpool_resnet34': 'resnet34', 'blurpool_resnet50': 'resnet50',
    'blurpool_resnet101': 'resnet101', 'blurpool_resnet152': 'resnet152',
    'blurpool_resnext50_32x4d': 'resnext50_32x4d', 'blurpool_resnext101_32x8d': 'resnext101_32x8d',
    'blurpool_wide_resnet50_2': 'wide_resnet50_2', 'blurpool_wide_resnet101_2': 'wide_resnet101_2',
    **{f'blurpool_resnet{d}_lpf{k}': f'resnet{d}' for d in (18, 34, 50, 101) for k in (2, 3, 5)},
}
# blurpool.md §4: released files (sha8 of each)
S3 = 'https://antialiased-cnns.s3.us-east-2.amazonaws.com/weights_v0.1/'
FINETUNED = {
    'resnet18': '8cc58f59', 'resnet34': 'db622952', 'resnet50': 'cad66808', 'resnet101': '9280acb0',
    'resnet152': '7f67d9ae', 'resnext50_32x4d': '9106e549', 'resnext101_32x8d': '8f13a25d',
    'wide_resnet50_2': '02a183f7', 'wide_resnet101_2': 'da4eae04',
}
SCRATCH = {
    'resnet18': ('6e2ee76f', '449351b9', '8c77af40', 'c1eed0a1'),
    'resnet34': ('4707aed9', '16aa6c48', '55747267', '85283561'),
    'resnet50': ('f0f7589d', 'a4e868d2', '994b528f', '9953c9ad'),
    'resnet101': ('3d00941d', '928f1444', 'f8a116ff', '1f3745af'),
}
TIMM_ANTIALIASED = ('resnetblur18', 'resnetblur50', 'resnetblur50d', 'resnetblur101d', 'resnetaa34d', 'resnetaa50',
                    'resnetaa50d', 'resnetaa101d', 'seresnetaa50d', 'seresnextaa101d_32x8d', 'seresnextaa201d_32x8d')


# ---------------------------------------------------------------------------------------- BlurPool2d, the layer

@pytest.mark.parametrize('k', range(1, 8))
def test_filter_is_normalised_binomial(k):
    layer = BlurPool2d(3, filter_size=k)
    assert layer.filt.shape == (3, 1, k, k) and layer.filt.dtype == torch.float32
    for c in range(3):
        torch.testing.assert_close(layer.filt[c, 0], spec_filter(k), rtol=0, atol=0)
    assert 'filt' not in layer.state_dict()  # non-persistent: checkpoints never carry it


@pytest.mark.parametrize('k', range(1, 8))
def test_output_size_is_ceil_half_for_every_size(k):
    layer = BlurPool2d(2, filter_size=k)
    for h, w in itertools.product(range(1, 10), (1, 2, 5, 8, 13)):
        out = layer(torch.randn(1, 2, h, w))
        assert out.shape == (1, 2, math.ceil(h / 2), math.ceil(w / 2)), (k, h, w)


@pytest.mark.parametrize('k', [2, 3, 4, 5, 6, 7])
@pytest.mark.parametrize('size', [(9, 9), (8, 11), (13, 6)])
def test_matches_per_pixel_reflect_reference(k, size):
    torch.manual_seed(k)
    x = torch.randn(1, 2, *size)
    torch.testing.assert_close(BlurPool2d(2, filter_size=k)(x), naive_blur(x, k, 'reflect'), rtol=1e-5, atol=1e-6)


def test_even_filter_pads_asymmetrically():
    """k=4: 1 sample before, 2 after (blurpool.md §2); a symmetric padding would shift the sampling grid."""
    layer = BlurPool2d(1, filter_size=4)
    assert layer.padding == [1, 2, 1, 2]
    assert BlurPool2d(1, filter_size=2).padding == [0, 1, 0, 1]
    # an impulse at (0, 0): the output at (0, 0) sees x[0] with taps f[1] (row and column): (3/8)^2
    x = torch.zeros(1, 1, 8, 8)
    x[0, 0, 0, 0] = 1.
    assert layer(x)[0, 0, 0, 0].item() == pytest.approx(9 / 64)


@pytest.mark.parametrize('k, size', [(4, (2, 2)), (4, (2, 5)), (5, (2, 2)), (5, (1, 7)), (6, (3, 3)), (7, (3, 8))])
def test_tiny_maps_fall_back_to_replicate(k, size):
    """Where reflection is impossible (pad >= size) the layer replicates the edge instead of raising."""
    x = torch.randn(1, 2, *size)
    with pytest.raises(RuntimeError):  # what the authors' layer (reflection only) does here
        F.pad(x, [(k - 1) // 2, k // 2] * 2, mode='reflect')
    torch.testing.assert_close(BlurPool2d(2, filter_size=k)(x), naive_blur(x, k, 'replicate'), rtol=1e-5, atol=1e-6)


def test_reflection_is_kept_wherever_it_is_possible():
    """3x3 with k=4 (pad 2 < 3) must reflect, and reflect and replicate differ there."""
    torch.manual_seed(0)
    x = torch.randn(1, 2, 3, 3)
    reflect, replicate = naive_blur(x, 4, 'reflect'), naive_blur(x, 4, 'replicate')
    assert not torch.allclose(reflect, replicate)
    torch.testing.assert_close(BlurPool2d(2, filter_size=4)(x), reflect, rtol=1e-5, atol=1e-6)


def test_relation_to_timm_blurpool():
    """Odd k: identical to timm's BlurPool2d; k=4: timm pads symmetrically and gives 29 instead of 28 at 56."""
    torch.manual_seed(0)
    x = torch.randn(1, 8, 56, 56)
    for k in (3, 5):
        torch.testing.assert_close(BlurPool2d(8, filter_size=k)(x), timm.layers.BlurPool2d(8, filt_size=k)(x))
    assert BlurPool2d(8, filter_size=4)(x).shape[-1] == 28
    assert timm.layers.BlurPool2d(8, filt_size=4)(x).shape[-1] == 29


def test_invalid_filter_size_is_a_clear_error():
    for k in (0, 8):
        with pytest.raises(ValueError, match='filter_size'):
            BlurPool2d(4, filter_size=k)
    with pytest.raises(ValueError, match='filter_size'):
        timm.create_model('blurpool_resnet18', filter_size=8)


def test_layer_scripts_and_compiles_on_both_branches():
    layer = BlurPool2d(3, filter_size=4)
    scripted = torch.jit.script(layer)
    compiled = torch.compile(layer, fullgraph=True, dynamic=True, backend='eager')
    for size in [(2, 2), (7, 9), (16, 16), (2, 9)]:
        x = torch.randn(2, 3, *size)
        expected = layer(x)
        torch.testing.assert_close(scripted(x), expected)
        torch.testing.assert_close(compiled(x), expected)


def test_meta_construction_then_reinit_restores_filters():
    """transformers' TimmWrapper path: build on meta, to_empty, load weights, reinit non-persistent buffers."""
    torch.manual_seed(0)
    reference = timm.create_model('blurpool_resnet18').eval()
    with torch.device('meta'):
        model = timm.create_model('blurpool_resnet18')
    model.to_empty(device='cpu')
    model.load_state_dict(reference.state_dict())
    blurs = [m for m in model.modules() if isinstance(m, BlurPool2d)]
    assert len(blurs) == 7
    for m in blurs:
        m.filt.fill_(float('nan'))
    assert len(reinit_non_persistent_buffers(model)) == 7
    model.eval()
    x = torch.randn(1, 3, 64, 64)
    torch.testing.assert_close(model(x), reference(x))


# ------------------------------------------------------------------------------------------ registry and sizes

def test_all_variants_registered_without_touching_timm_names():
    assert set(BLUR_MODELS) == set(TORCHVISION)
    for name in BLUR_MODELS:
        assert timm.models.model_entrypoint(name).__module__ == 'timm_tricks.models.blurpool_resnet'
    for name in TIMM_ANTIALIASED:  # timm's anti-aliased ResNets stay timm's, with their tags
        assert timm.models.model_entrypoint(name).__module__.startswith('timm.models.')
    assert timm.models.get_pretrained_cfg('resnetblur50.bt_in1k') is not None
    assert not set(BLUR_MODELS) & set(TIMM_ANTIALIASED)


@pytest.mark.parametrize('name', BLUR_MODELS)
def test_exact_parameter_count_equals_torchvision(name):
    with torch.device('meta'):
        model = timm.create_model(name)
        tv = getattr(torchvision.models, TORCHVISION[name])()
    count = sum(p.numel() for p in model.parameters())
    assert count == SPEC_FIGURES[name].params
    assert count == sum(p.numel() for p in tv.parameters())


@pytest.mark.parametrize('name, k', [('blurpool_resnet50', 4), ('blurpool_resnet18_lpf2', 2)])
def test_blur_placement(name, k):
    """blurpool.md §2: stem MaxPool(2, 1) + blur, blur before conv3/conv2 and in the shortcut, no strided conv
    except the stem's 7x7."""
    with torch.device('meta'):
        model = timm.create_model(name)
    blurs = {n: (m.channels, m.filter_size, m.stride) for n, m in model.named_modules() if isinstance(m, BlurPool2d)}
    width = (128, 256, 512)  # bottleneck width = basic block planes
    in_chs = (256, 512, 1024) if name == 'blurpool_resnet50' else (64, 128, 256)
    expected = {'maxpool.1': (64, k, 2)}
    for stage, w, c in zip((2, 3, 4), width, in_chs):
        expected[f'layer{stage}.0.aa'] = (w, k, 2)
        expected[f'layer{stage}.0.downsample.0'] = (c, k, 2)
    assert blurs == expected
    pool = model.maxpool[0]
    assert isinstance(pool, torch.nn.MaxPool2d) and (pool.kernel_size, pool.stride, pool.padding) == (2, 1, 0)
    strided = [n for n, m in model.named_modules() if isinstance(m, torch.nn.Conv2d) and m.stride != (1, 1)]
    assert strided == ['conv1']


def test_pretrained_tags_and_sources():
    expected = {f'blurpool_{a}.lpf4_ft_in1k' for a in FINETUNED}
    expected |= {f'blurpool_{a}.lpf4_in1k' for a in SCRATCH}
    expected |= {f'blurpool_{a}_lpf{k}.lpf{k}_in1k' for a in SCRATCH for k in (2, 3, 5)}
    assert set(timm_tricks.list_models('blurpool*', pretrained=True)) == expected
    for tag in expected:
        arch, t = tag.split('.')
        tv = TORCHVISION[arch]
        k = int(re.search(r'lpf(\d)', t)[1])
        sha = FINETUNED[tv] if '_ft_' in t else SCRATCH[tv][k - 2]
        fname = f'{tv}_lpf4_finetune-{sha}.pth' if '_ft_' in t else f'{tv}_lpf{k}-{sha}.pth'
        cfg = timm.models.get_pretrained_cfg(tag).to_dict()
        assert cfg['url'] == S3 + fname == manifest_entry(tag).download_url
        assert cfg['hf_hub_id'] == f'timm-tricks/{tag}'
        assert cfg['license'] == 'cc-by-nc-sa-4.0' and cfg['interpolation'] == 'bilinear'
        assert cfg['paper_ids'] == 'arXiv:1904.11486' and cfg['pool_size'] == (7, 7)
        # timm prefers hf_hub_id over url; the url is the fallback when the Hub id is overlaid away
        assert _resolve_pretrained_source(cfg) == ('hf-hub', cfg['hf_hub_id'])
        assert _resolve_pretrained_source(dict(cfg, hf_hub_id=None)) == ('url', S3 + fname)
    for arch in ('blurpool_resnet50', 'blurpool_resnet152', 'blurpool_wide_resnet50_2'):
        assert timm.models.get_pretrained_cfg(arch).tag == 'lpf4_ft_in1k'  # as the authors' pretrained=True
    assert timm.models.get_pretrained_cfg('blurpool_resnet50_lpf3').tag == 'lpf3_in1k'


# --------------------------------------------------------------------------------------------- the authors' checkpoints

def _save_authors(tmp_path, sd, name='authors.pth'):
    path = tmp_path / name
    torch.save({'state_dict': sd}, path)
    return path


def _load(name, path, **kwargs):
    return timm.create_model(name, pretrained=True, pretrained_cfg_overlay=dict(file=str(path)), **kwargs).eval()


@pytest.mark.parametrize('name, tv_arch, k', [
    ('blurpool_resnet18_lpf2', 'resnet18', 2),
    ('blurpool_resnet18_lpf3', 'resnet18', 3),
    ('blurpool_resnet18', 'resnet18', 4),
    ('blurpool_resnet18_lpf5', 'resnet18', 5),
    ('blurpool_resnet50', 'resnet50', 4),
])
def test_authors_checkpoint_reproduces_authors_outputs(tmp_path, name, tv_arch, k):
    sd = authors_state_dict(tv_arch, k)
    model = _load(name, _save_authors(tmp_path, sd))
    torch.manual_seed(1)
    x = torch.randn(2, 3, 67, 45)  # odd, non-square; the reference runs here for every k
    with torch.no_grad():
        assert_close_scaled(model(x), reference_forward(sd, x), atol_rel=1e-5)
        if tv_arch == 'resnet18':
            # 32x32: the authors' k=4/5 models fail (reflect pad 2 on layer4's 2x2 map); ours replicate there
            x = torch.randn(1, 3, 32, 32)
            if k >= 4:
                with pytest.raises(RuntimeError, match='[Pp]adding size'):
                    reference_forward(sd, x)
                assert_close_scaled(model(x), reference_forward(sd, x, fallback=True), atol_rel=1e-5)
            else:
                assert_close_scaled(model(x), reference_forward(sd, x), atol_rel=1e-5)


def test_authors_file_through_the_url_source(tmp_path):
    """The cfg's `url` path (torch.hub download of the authors' `{'state_dict'}` file) goes through the filter too."""
    sd = authors_state_dict('resnet18', 4, seed=3)
    path = _save_authors(tmp_path, sd, f'resnet18_lpf4_finetune-{FINETUNED["resnet18"]}.pth')
    model = timm.create_model(
        'blurpool_resnet18', pretrained=True, cache_dir=str(tmp_path / 'cache'),
        pretrained_cfg_overlay=dict(hf_hub_id=None, url=path.as_uri())).eval()
    x = torch.randn(1, 3, 48, 48)
    with torch.no_grad():
        assert_close_scaled(model(x), reference_forward(sd, x), atol_rel=1e-5)


def test_our_layout_and_training_wrappers_load(tmp_path):
    torch.manual_seed(0)
    source = timm.create_model('blurpool_resnet18')
    ours = source.state_dict()
    assert not any(k.endswith('filt') for k in ours) and 'layer2.0.conv2.weight' in ours
    for i, wrapped in enumerate([ours, {'state_dict': ours}, {'model': {'module.' + k: v for k, v in ours.items()}}]):
        path = tmp_path / f'ours{i}.pth'
        torch.save(wrapped, path)
        loaded = _load('blurpool_resnet18', path).state_dict()
        assert all(torch.equal(loaded[k], v) for k, v in ours.items())


def test_wrong_checkpoints_name_what_does_not_fit(tmp_path):
    # another depth: unexpected blocks
    with pytest.raises(timm_tricks.CheckpointMismatchError, match=r'unexpected keys: .*layer1\.2\.'):
        _load('blurpool_resnet18', _save_authors(tmp_path, authors_state_dict('resnet34', 4), 'r34.pth'))
    # another filter size: same parameter shapes, caught through the stored filters
    with pytest.raises(timm_tricks.CheckpointMismatchError, match=r'filt.*filter_size=4.*lpf3'):
        _load('blurpool_resnet18', _save_authors(tmp_path, authors_state_dict('resnet18', 3), 'lpf3.pth'))
    # a plain torchvision ResNet (strided 1x1 shortcut as downsample.0/.1): named keys and shapes
    path = tmp_path / 'tv.pth'
    torch.save(torchvision.models.resnet18().state_dict(), path)
    with pytest.raises(timm_tricks.CheckpointMismatchError, match=r'layer2\.0\.downsample\.1\.weight'):
        _load('blurpool_resnet18', path)


# ---------------------------------------------------------------------------------------- output stride, sizes

@pytest.mark.parametrize('output_stride, blurs', [(16, 5), (8, 3)])
def test_output_stride_keeps_keys_and_pretrained_weights(tmp_path, output_stride, blurs):
    """A de-strided stage loses its blurs (Identity) but keeps every key, so the authors' weights still load; the
    stages before it compute exactly what the stride-32 model computes."""
    sd = authors_state_dict('resnet18', 4, seed=2)
    path = _save_authors(tmp_path, sd)
    dense = _load('blurpool_resnet18', path, features_only=True)
    dilated = _load('blurpool_resnet18', path, features_only=True, output_stride=output_stride)
    assert sum(isinstance(m, BlurPool2d) for m in dilated.modules()) == blurs
    assert dilated.feature_info.reduction() == [min(r, output_stride) for r in (2, 4, 8, 16, 32)]
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        f_dense, f_dilated = dense(x), dilated(x)
    kept = 3 if output_stride == 16 else 2  # levels before the first de-strided stage
    for a, b in zip(f_dense[:kept + 1], f_dilated[:kept + 1]):
        torch.testing.assert_close(a, b)
    assert f_dilated[-1].shape[-2:] == (64 // output_stride,) * 2
    last = dilated.layer4 if output_stride == 16 else dilated.layer3
    assert last[1].conv1.dilation == (2, 2)


def _spec_output_size(n):
    """blurpool.md §2: 7x7/2 conv (pad 3), 2x2 max-pool with stride 1, then four blurs of ceil(n / 2)."""
    n = (n - 1) // 2 + 1 - 1
    for _ in range(4):
        n = math.ceil(n / 2)
    return n


@pytest.mark.parametrize('name', ['blurpool_resnet18_lpf5', 'blurpool_resnet50'])
def test_every_input_size_from_32(name):
    torch.manual_seed(0)
    model = timm.create_model(name).eval()
    with torch.no_grad():
        for size in [(32, 32), (33, 47), (47, 36)]:
            out = model.forward_features(torch.randn(1, 3, *size))
            assert out.shape[-2:] == tuple(map(_spec_output_size, size)) and torch.isfinite(out).all()


def test_model_scripts_on_both_padding_branches():
    torch.manual_seed(0)
    model = timm.create_model('blurpool_resnet18').eval()
    with timm.layers.set_scriptable(True):
        scripted = torch.jit.script(model)
    with torch.no_grad():
        for size in (32, 48):  # 32: replicate in layer4 (2x2 maps); 48: reflect everywhere
            x = torch.randn(1, 3, size, size)
            torch.testing.assert_close(scripted(x), model(x))


# ------------------------------------------------------------------------------------ shift-invariance (paper)

def _plain_resnet50_with(blur_model):
    """timm's resnet50 with the blur model's weights: only the shortcut's indices differ (no blur at .0)."""
    plain = timm.create_model('resnet50')
    sd = {}
    for k, v in blur_model.state_dict().items():
        m = re.match(r'^(layer[234]\.0\.downsample)\.(\d)\.(.*)$', k)
        sd[f'{m[1]}.{int(m[2]) - 1}.{m[3]}' if m else k] = v
    plain.load_state_dict(sd)  # strict: every conv/bn/fc tensor shared
    return plain.eval()


def test_consistency_under_circular_shifts_beats_plain_resnet50():
    """The paper's consistency: how often the predicted class agrees between two shifted copies of an image.

    Same weights (timm's default init), 8 random low-frequency images (bicubic-upsampled noise: image-like
    spectra), 64 px, circular shifts of a few pixels, all pairs of 4 shifts. The plain ResNet-50 subsamples
    without low-pass filtering and must be less consistent than the anti-aliased one; so must the same
    architecture with filter size 1 (subsampling at the same places, no blur): the gain comes from the low-pass.
    """
    torch.manual_seed(0)
    blur = timm.create_model('blurpool_resnet50').eval()
    plain = _plain_resnet50_with(blur)
    unfiltered = timm.create_model('blurpool_resnet50', filter_size=1).eval()
    unfiltered.load_state_dict(blur.state_dict())
    x = F.interpolate(torch.randn(8, 3, 16, 16), size=(64, 64), mode='bicubic', align_corners=False)
    shifts = [(0, 0), (1, 2), (3, 1), (2, 5)]

    def consistency(model):
        with torch.inference_mode():
            preds = [model(torch.roll(x, s, dims=(2, 3))).argmax(-1) for s in shifts]
        pairs = list(itertools.combinations(preds, 2))
        return sum((a == b).float().mean().item() for a, b in pairs) / len(pairs)

    c_blur, c_plain, c_unfiltered = consistency(blur), consistency(plain), consistency(unfiltered)
    assert c_plain < 1.  # the metric is not saturated on these inputs
    assert c_blur > c_plain and c_blur > c_unfiltered, (c_blur, c_plain, c_unfiltered)
