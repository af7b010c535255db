"""Plug-ins in every ResNet-like family (issue 15), and the registered plug-in models (models/plugin_resnet.py).

Every family x {attention, DropBlock, channel-aware activation}: builds, trains one step with finite, non-zero
gradients on the plug-in, `features_only` at output_stride 8, TorchScript equals eager, meta device. Where a family
cannot take a plug-in, the documented ValueError. Placement (attention `se` right after the branch's last norm),
zero / identity inits surviving weight init, merging of user `block_args` / `stage_args` with the family's own, the
exact parameter counts of plugins.md, and the authors' CBAM-ResNet-50 checkpoint layout against a functional
reference written here (plain ResNet-50 + CBAM from the spec's equations). Small inputs, one block per stage where
the family takes `layers=`, to keep CPU time low.
"""
import math
from functools import partial

import pytest
import timm
import torch
import torch.nn.functional as F
from timm.layers import DropBlock2d, SEModule, set_scriptable
from torch import nn

import timm_tricks
from timm_tricks.layers import (
    NAM,
    AconC,
    BlurPool2d,
    CbamV1,
    DyReLUB,
    MetaAconC,
    NonLocalV1,
    SpatialTransformer,
    SPConv2d,
)
from timm_tricks.models.plugin_resnet import checkpoint_filter_fn

from helpers import randomize_weights
from references import plugin_layers as layer_spec
from spec_figures import SPEC_FIGURES

# the smallest architecture of each ResNet-like family; one block per stage where the family takes `layers`
FAMILIES = {
    'pyconv_resnet': ('pyconv_resnet18', dict(layers=(1, 1, 1, 1))),
    'spconv_resnet': ('spconv_resnet18', dict(layers=(1, 1, 1, 1))),
    'blurpool_resnet': ('blurpool_resnet18', dict(layers=(1, 1, 1, 1))),
    'dcn_resnet': ('dcnv2_resnet50', {}),
    'ghost_resnet': ('ghost_resnet50', dict(layers=(1, 1, 1, 1))),
    'oct_resnet': ('oct_resnet26', {}),
}
# families whose activations live inside their conv units: no place for a channel-aware activation
NO_MID_ACT = {'ghost_resnet', 'oct_resnet'}

# plug-in -> (model kwargs, the class it builds)
PLUGINS = {
    'cbam_v1': (dict(block_args=dict(attn_layer='cbam_v1')), CbamV1),
    'nam': (dict(block_args=dict(attn_layer='nam')), NAM),
    'se': (dict(block_args=dict(attn_layer='se')), SEModule),
    'drop_block': (dict(drop_block_rate=0.1), DropBlock2d),
    'meta_acon': (dict(block_args=dict(mid_act_layer='meta_acon')), MetaAconC),
    'dyrelu_b': (dict(block_args=dict(mid_act_layer='dyrelu_b')), DyReLUB),
}
MID_ACT = {'meta_acon', 'dyrelu_b'}

H, W = 65, 47  # odd sizes


def _create(family, plugin_kwargs=None, **kwargs):
    name, small = FAMILIES[family]
    torch.manual_seed(0)
    return timm.create_model(name, **small, **(plugin_kwargs or {}), **kwargs)


def _blocks(model):
    return [block for stage in (model.layer1, model.layer2, model.layer3, model.layer4) for block in stage]


def _supported(family, plugin):
    return not (plugin in MID_ACT and family in NO_MID_ACT)


CASES = [(f, p) for f in FAMILIES for p in PLUGINS]


@pytest.mark.parametrize('family,plugin', CASES)
def test_plugin_builds_trains_and_extracts_features(family, plugin):
    plugin_kwargs, cls = PLUGINS[plugin]
    if not _supported(family, plugin):
        with pytest.raises(ValueError, match=f'{family}: mid_act_layer is not supported'):
            _create(family, plugin_kwargs, device='meta')
        return

    # zero_init_last=False: a zeroed last norm would feed the attention zeros, and give its parameters zero grads
    model = _create(family, plugin_kwargs, num_classes=5, zero_init_last=False).train()
    plugins = [m for m in model.modules() if isinstance(m, cls)]
    assert plugins
    x = torch.randn(2, 3, H, W)
    loss = F.cross_entropy(model(x), torch.tensor([1, 3]))
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    for m in plugins:  # every plug-in instance learns (as a whole: a conv bias before a train-mode BN gets none)
        assert not list(m.parameters()) or sum(p.grad.abs().sum() for p in m.parameters()) > 0

    if plugin == 'drop_block':  # timm's drop_blocks: stages 3 and 4, block size 5 then 3
        for stage, size in ((model.layer1, None), (model.layer2, None), (model.layer3, 5), (model.layer4, 3)):
            for block in stage:
                if size is None:
                    assert isinstance(block.drop_block, nn.Identity)
                else:
                    assert (block.drop_block.block_size, block.drop_block.drop_prob) == (size, 0.1)

    features = _create(family, plugin_kwargs, features_only=True, output_stride=8).eval()
    assert features.feature_info.reduction() == [2, 4, 8, 8, 8]
    with torch.no_grad():
        feats = features(torch.randn(1, 3, H, W))
    assert [f.shape[1] for f in feats] == features.feature_info.channels()
    # the family's own rounding at odd sizes (BlurPool floors); the last two stages are dilated, not strided
    assert tuple(feats[0].shape[2:]) == (math.ceil(H / 2), math.ceil(W / 2))
    assert feats[2].shape[2:] == feats[3].shape[2:] == feats[4].shape[2:]
    assert all(abs(s - size / 8) <= 1 for s, size in zip(feats[2].shape[2:], (H, W)))

    meta = _create(family, plugin_kwargs, device='meta').eval()
    assert all(p.device.type == 'meta' for p in meta.parameters())
    assert meta(torch.empty(1, 3, H, W, device='meta')).shape == (1, 1000)


# every plug-in of each kind at once where the family takes it: one script per combination
SCRIPT_COMBOS = {
    'cbam_v1+drop_block+dyrelu_b': dict(block_args=dict(attn_layer='cbam_v1', mid_act_layer='dyrelu_b'),
                                        drop_block_rate=0.1),
    'nam+meta_acon': dict(block_args=dict(attn_layer='nam', mid_act_layer='meta_acon')),
}


@pytest.mark.parametrize('combo', SCRIPT_COMBOS)
@pytest.mark.parametrize('family', FAMILIES)
def test_torchscript_equals_eager(family, combo):
    kwargs = SCRIPT_COMBOS[combo]
    if family in NO_MID_ACT:
        kwargs = dict(kwargs, block_args={k: v for k, v in kwargs['block_args'].items() if k != 'mid_act_layer'})
    model = randomize_weights(_create(family, kwargs, num_classes=7))
    x = torch.randn(1, 3, H, W)
    with set_scriptable(True):
        scripted = torch.jit.script(model)
    with torch.no_grad():
        torch.testing.assert_close(scripted(x), model(x))


def _names_in_call_order(block, x_model, model):
    """Names of `block`'s modules in the order their forward returns, for one forward of `model`."""
    order = []
    hooks = [m.register_forward_hook(lambda *_, n=n: order.append(n)) for n, m in block.named_modules() if n]
    with torch.no_grad():
        model(x_model)
    for h in hooks:
        h.remove()
    return order


@pytest.mark.parametrize('family', FAMILIES)
def test_attention_sits_after_the_last_norm_at_se(family):
    model = _create(family, PLUGINS['cbam_v1'][0]).eval()
    block = model.layer2[0]  # strided, with a projection shortcut
    assert isinstance(block.se, CbamV1)
    order = _names_in_call_order(block, torch.randn(1, 3, H, W), model)
    in_branch = [n for n in order if not n.startswith(('se.', 'se_l', 'downsample'))]
    # the leaves with parameters (convs, norms), in call order, and the attention
    leaves = [n for n in in_branch if n == 'se' or not list(block.get_submodule(n).children())
              and list(block.get_submodule(n).parameters())]
    at = leaves.index('se')
    assert isinstance(block.get_submodule(leaves[at - 1]), nn.BatchNorm2d)
    # nothing with parameters of the residual branch runs after the attention: only drop-path, the add, the act
    assert leaves[at + 1:] == []


@pytest.mark.parametrize('family', FAMILIES)
def test_zero_and_identity_inits_survive_weight_init(family):
    model = _create(family, dict(block_args=dict(attn_layer='nl_v1')))
    non_local = [m for m in model.modules() if isinstance(m, NonLocalV1)]
    assert len(non_local) >= len(_blocks(model))
    for m in non_local:  # the output BN starts at zero: the block starts as the identity
        assert m.norm.weight.abs().sum() == 0 and m.norm.bias.abs().sum() == 0

    model = _create(family, dict(block_args=dict(attn_layer=SpatialTransformer))).eval()
    transformers = [m for m in model.modules() if isinstance(m, SpatialTransformer)]
    assert len(transformers) >= len(_blocks(model))
    for m in transformers:
        x = torch.randn(1, m.localization[0].in_channels, 5, 7)
        torch.testing.assert_close(m(x), x, atol=1e-5, rtol=0)


def test_refusals_name_what_cannot_be_done():
    with pytest.raises(ValueError, match='oct_resnet: aa_layer is not supported'):
        _create('oct_resnet', dict(aa_layer='avg'), device='meta')
    with pytest.raises(ValueError, match='stride_in_1x1 and aa_layer'):
        timm.create_model('acon_resnet50', aa_layer='avg', device='meta')


def test_user_block_args_merge_with_the_family_s_own():
    spconv = _create('spconv_resnet', PLUGINS['cbam_v1'][0], device='meta')
    assert all(isinstance(b.conv1, SPConv2d) and isinstance(b.se, CbamV1) for b in _blocks(spconv))
    blurpool = _create('blurpool_resnet', PLUGINS['nam'][0], device='meta')
    assert isinstance(blurpool.layer2[0].aa, BlurPool2d) and isinstance(blurpool.layer2[0].se, NAM)
    ghost = timm.create_model('ghost_resnet50_s4', block_args=dict(attn_layer='se'), device='meta')
    assert ghost.layer1[0].conv1.ratio == 4 and isinstance(ghost.layer1[0].se, SEModule)


def _pyramids(model):
    return [tuple(c.kernel_size[0] for c in b.conv1.modules() if isinstance(c, nn.Conv2d)) for b in _blocks(model)]


def test_stage_args_override_per_stage():
    # pyconv's own stage_args (a pyramid per stage) merge with the user's, stage by stage
    stage_args = [dict(attn_layer='nam'), {}, {}, dict(attn_layer='cbam_v1')]
    model = timm.create_model(
        'pyconv_resnet18', block_args=dict(attn_layer='se'), stage_args=stage_args, layers=(1, 1, 1, 2), device='meta')
    assert isinstance(model.layer1[0].se, NAM)
    assert isinstance(model.layer2[0].se, SEModule) and isinstance(model.layer3[0].se, SEModule)
    assert isinstance(model.layer4[0].se, CbamV1) and isinstance(model.layer4[1].se, CbamV1)
    plain = timm.create_model('pyconv_resnet18', layers=(1, 1, 1, 2), device='meta')
    assert _pyramids(model) == _pyramids(plain) and len(set(_pyramids(model)[:4])) == 4
    # OctResNet: its alphas (stage_args) survive; attention per frequency
    oct_model = _create('oct_resnet', dict(stage_args=[{}, {}, {}, dict(attn_layer='nam')]), device='meta')
    assert oct_model.layer3[0].se is None and isinstance(oct_model.layer4[0].se, NAM)
    assert oct_model.layer1[1].conv3.conv.out_l > 0 and oct_model.layer4[1].se_l is None
    with pytest.raises(ValueError, match='one dict per stage'):
        _create('oct_resnet', dict(stage_args=[{}]), device='meta')


def test_first_block_overrides_a_stage_s_plugin():
    stage_args = [{}, {}, {}, dict(first_block=dict(attn_layer=None))]
    model = timm.create_model(
        'spconv_resnet18', block_args=dict(attn_layer='nam'), stage_args=stage_args, layers=(1, 1, 1, 2), device='meta')
    assert isinstance(model.layer3[0].se, NAM) and isinstance(model.layer4[1].se, NAM)
    assert model.layer4[0].se is None


def test_first_block_args_merge_and_the_caller_s_dicts_stay_unchanged():
    stage_args = [dict(first_block=dict(attn_layer='se')), {}, {}, {}]
    # OctResNet's own first_block (alpha_in: the single-frequency stem) survives the user's
    models = [_create('oct_resnet', dict(stage_args=stage_args), device='meta') for _ in range(2)]
    assert stage_args == [dict(first_block=dict(attn_layer='se')), {}, {}, {}]
    for model in models:
        assert model.layer1[0].conv1.conv.in_l == 0 and isinstance(model.layer1[0].se, SEModule)
        assert model.layer1[1].se is None
    # a first_block in block_args reaches the first block of every stage
    block_args = dict(first_block=dict(attn_layer='nam'))
    model = timm.create_model('spconv_resnet18', block_args=block_args, layers=(2, 2, 2, 2), device='meta')
    assert all(isinstance(stage[0].se, NAM) and stage[1].se is None
               for stage in (model.layer1, model.layer2, model.layer3, model.layer4))
    assert block_args == dict(first_block=dict(attn_layer='nam'))


@pytest.mark.parametrize('keyword', ['act_layer', 'norm_layer', 'aa_layer', 'drop_path_rate', 'drop_block'])
def test_model_layer_keywords_in_block_args_are_refused(keyword):
    with pytest.raises(ValueError, match=f'{keyword} cannot be set in block_args / stage_args'):
        timm.create_model('blurpool_resnet18', block_args={keyword: None}, device='meta')
    with pytest.raises(ValueError, match=f'{keyword} cannot be set in block_args / stage_args'):
        timm.create_model('pyconv_resnet18', stage_args=[{}, {}, dict(first_block={keyword: None}), {}], device='meta')


def test_zero_init_last_holds_with_a_timm_norm():
    # timm's GroupNorm inherits torch's reset_parameters: it must not undo the zeroed last norm of each branch
    model = timm.create_model('spconv_resnet18', norm_layer=partial(timm.layers.GroupNorm, 8), layers=(1, 1, 1, 1))
    assert all(block.bn2.weight.abs().sum() == 0 for block in _blocks(model))
    assert all(block.bn1.weight.abs().sum() > 0 for block in _blocks(model))


# ------------------------------------------------------------------------------------- the registered models

PLUGIN_MODELS = ['cbam_resnet50', 'nam_resnet50', 'acon_resnet50', 'acon_resnet101', 'metaacon_resnet50',
                 'metaacon_resnet101']


@pytest.mark.parametrize('name', PLUGIN_MODELS)
def test_registered_plugin_models_have_the_spec_s_parameters(name):
    model = timm.create_model(name, device='meta')
    assert sum(p.numel() for p in model.parameters()) == SPEC_FIGURES[name].params
    assert timm_tricks.model_family(name) == 'plugin_resnet'


def test_acon_resnets_are_the_authors_layout():
    model = timm.create_model('metaacon_resnet50', device='meta')
    block = model.layer2[0]
    assert block.conv1.stride == (2, 2) and block.conv2.stride == (1, 1)
    assert all(conv.bias is not None for conv in model.modules() if isinstance(conv, nn.Conv2d))
    assert isinstance(block.act2, MetaAconC)
    assert isinstance(block.act1, nn.ReLU) and isinstance(block.act3, nn.ReLU)  # ACON only after conv2
    assert isinstance(timm.create_model('acon_resnet50', device='meta').layer1[0].act2, AconC)


# the authors' CBAM-ResNet-50 (Jongchan/attention-module MODELS/model_resnet.py): torchvision's ResNet-50 with the
# CBAM at `cbam` after bn3 of every bottleneck
DEPTHS, STRIDES = (3, 4, 6, 3), (1, 2, 2, 2)


def authors_cbam_resnet50_state_dict(seed=0):
    """Random tensors in the authors' key layout (no `module.` prefix yet), scaled to keep activations moderate."""
    g = torch.Generator().manual_seed(seed)
    sd = {}

    def conv(key, cout, cin, k):
        sd[key] = torch.randn(cout, cin, k, k, generator=g) * math.sqrt(2 / (cin * k * k))

    def bn(prefix, c, gain=1.):
        sd[prefix + 'weight'] = (torch.rand(c, generator=g) * .5 + .5) * gain
        sd[prefix + 'bias'] = torch.randn(c, generator=g) * .1
        sd[prefix + 'running_mean'] = torch.randn(c, generator=g) * .1
        sd[prefix + 'running_var'] = torch.rand(c, generator=g) + .5
        sd[prefix + 'num_batches_tracked'] = torch.tensor(100)

    conv('conv1.weight', 64, 3, 7)
    bn('bn1.', 64)
    in_chs = 64
    for stage, depth in enumerate(DEPTHS, 1):
        planes = 64 * 2 ** (stage - 1)
        for i in range(depth):
            p = f'layer{stage}.{i}.'
            conv(p + 'conv1.weight', planes, in_chs, 1)
            bn(p + 'bn1.', planes)
            conv(p + 'conv2.weight', planes, planes, 3)
            bn(p + 'bn2.', planes)
            conv(p + 'conv3.weight', planes * 4, planes, 1)
            bn(p + 'bn3.', planes * 4, gain=.3)
            c, hidden = planes * 4, planes * 4 // 16
            sd[p + 'cbam.ChannelGate.mlp.1.weight'] = torch.randn(hidden, c, generator=g) / math.sqrt(c)
            sd[p + 'cbam.ChannelGate.mlp.1.bias'] = torch.randn(hidden, generator=g) * .1
            sd[p + 'cbam.ChannelGate.mlp.3.weight'] = torch.randn(c, hidden, generator=g) / math.sqrt(hidden)
            sd[p + 'cbam.ChannelGate.mlp.3.bias'] = torch.randn(c, generator=g) * .1
            sd[p + 'cbam.SpatialGate.spatial.conv.weight'] = torch.randn(1, 2, 7, 7, generator=g) * .2
            bn(p + 'cbam.SpatialGate.spatial.bn.', 1)
            if i == 0:
                conv(p + 'downsample.0.weight', planes * 4, in_chs, 1)
                bn(p + 'downsample.1.', planes * 4)
            in_chs = planes * 4
    sd['fc.weight'] = torch.randn(1000, 2048, generator=g) * .02
    sd['fc.bias'] = torch.randn(1000, generator=g) * .1
    return sd


def cbam_resnet50_reference(sd, x):
    """ResNet-50 (stride on the 3x3) + CBAM after bn3, before the add (plugins.md §2), from the authors' tensors."""
    def bn(t, prefix):
        return layer_spec.bn_eval(t, prefix, sd)

    x = F.max_pool2d(F.relu(bn(F.conv2d(x, sd['conv1.weight'], stride=2, padding=3), 'bn1.')), 3, 2, 1)
    for stage, (depth, stage_stride) in enumerate(zip(DEPTHS, STRIDES), 1):
        for i in range(depth):
            p, stride = f'layer{stage}.{i}.', stage_stride if i == 0 else 1
            y = F.relu(bn(F.conv2d(x, sd[p + 'conv1.weight']), p + 'bn1.'))
            y = F.relu(bn(F.conv2d(y, sd[p + 'conv2.weight'], stride=stride, padding=1), p + 'bn2.'))
            y = bn(F.conv2d(y, sd[p + 'conv3.weight']), p + 'bn3.')
            cbam = {k[len(p + 'cbam.'):]: v for k, v in sd.items() if k.startswith(p + 'cbam.')}
            y = layer_spec.authors_cbam_reference(y, cbam)
            if i == 0:
                x = bn(F.conv2d(x, sd[p + 'downsample.0.weight'], stride=stride), p + 'downsample.1.')
            x = F.relu(y + x)
    return F.linear(x.mean((2, 3)), sd['fc.weight'], sd['fc.bias'])


def test_cbam_resnet50_loads_the_authors_checkpoint_layout(tmp_path):
    sd = authors_cbam_resnet50_state_dict()
    path = tmp_path / 'RESNET50_CBAM_new_name_wrap.pth'
    # the authors' save_checkpoint of a DataParallel model
    torch.save({'epoch': 100, 'arch': 'resnet', 'state_dict': {'module.' + k: v for k, v in sd.items()},
                'best_prec1': 77.622, 'optimizer': {'state': {}, 'param_groups': [{'lr': 1e-4, 'params': [0]}]}}, path)
    model = timm.create_model('cbam_resnet50', pretrained=True, pretrained_cfg_overlay=dict(file=str(path))).eval()
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        got, want = model(x), cbam_resnet50_reference(sd, x)
    scale = want.abs().max()
    assert scale > 1e-2 and (got - want).abs().max() <= 1e-4 * scale.clamp_min(1.)
    # the raw checkpoint (the origin download's path, no timm unwrapping) converts the same
    raw = checkpoint_filter_fn(torch.load(path, weights_only=True), model)
    mine = model.state_dict()
    assert raw.keys() == mine.keys() and all(torch.equal(raw[k], mine[k]) for k in raw)
    # the spatial gate's [max, mean] input channels are swapped into timm's [mean, max]
    authors_spatial = sd['layer1.0.cbam.SpatialGate.spatial.conv.weight']
    torch.testing.assert_close(model.layer1[0].se.spatial.conv.conv.weight, authors_spatial.flip(1))
