"""The timm model contract (timm_contract.md §4-§6) for every timm_tricks model.

Cheap checks (meta device) run on every registered model; checks that need real compute run on the
representatives of each family (tests/model_matrix.py) at small input sizes.
"""
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import timm
import torch
from timm.layers import freeze_batch_norm_2d, set_scriptable
from torch import nn

import timm_tricks
from timm_tricks.layers.create_plugin import ATTN_LAYERS, CHANNEL_ACT_LAYERS
from timm_tricks.weights import manifest_entry

from helpers import fx_final_output, randomize_bn
from model_matrix import ALL_MODELS, REPRESENTATIVE_MODELS

torch.backends.cudnn.deterministic = True


def _family(name):
    return timm_tricks.model_family(name)


def _create(name, **kwargs):
    torch.manual_seed(0)
    return timm.create_model(name, **kwargs)


@pytest.fixture(scope='module')
def eval_models():
    """One eval-mode CPU model per representative, built once per module."""
    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = randomize_bn(_create(name)).eval()
        return cache[name]
    return get


# ---------------------------------------------------------------------------------------------- every model

# timm's GhostNets: the timm models whose names are nearest ours
TIMM_GHOSTNETS = (
    'ghostnet_050', 'ghostnet_100', 'ghostnet_130', 'ghostnetv2_100', 'ghostnetv2_130', 'ghostnetv2_160',
    'ghostnetv3_050', 'ghostnetv3_100', 'ghostnetv3_130', 'ghostnetv3_160', 'repghostnet_050', 'repghostnet_058',
    'repghostnet_080', 'repghostnet_100', 'repghostnet_111', 'repghostnet_130', 'repghostnet_150', 'repghostnet_200',
)


def test_models_are_registered_and_ours():
    assert len(ALL_MODELS) >= 8
    for name in ALL_MODELS:
        assert timm_tricks.is_ours(name)
        assert _family(name) in timm.list_modules()


def test_import_adds_our_names_and_changes_no_timm_model():
    """Fresh interpreter: timm's names and tags before and after `import timm_tricks` (which warns nothing) and a
    reload of it; timm's GhostNets, whose names are nearest ours, keep their modules and Hub repos."""
    code = '''
import importlib, json, warnings
import timm
before = timm.list_models()
tags = timm.list_models(pretrained=True)
ghost_modules = timm.list_models(module="ghostnet") + timm.list_models(module="repghost")
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    import timm_tricks
    importlib.reload(timm_tricks)
after = timm.list_models()
print(json.dumps(dict(
    before=before, tags=tags, after=after, tags_after=timm.list_models(pretrained=True),
    ghost_modules=ghost_modules,
    ghost_modules_after=timm.list_models(module="ghostnet") + timm.list_models(module="repghost"),
    ours=timm_tricks.list_models(), ours_module=timm.list_models(module="ghost_resnet"),
    warnings=[str(w.message) for w in caught if "Overwriting" in str(w.message)],
    entry_modules={n: timm.models.model_entrypoint(n).__module__ for n in %r},
    hub_ids={t: timm.models.get_pretrained_cfg(t).hf_hub_id for t in ("ghostnet_100.in1k", "ghostnetv2_100.in1k")},
)))
''' % (TIMM_GHOSTNETS,)
    out = subprocess.run([sys.executable, '-W', 'ignore', '-c', code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[1])
    r = json.loads(out.stdout.strip().splitlines()[-1])
    assert set(r['before']) <= set(r['after']) and set(r['tags']) <= set(r['tags_after'])
    assert set(r['ours']).isdisjoint(r['before'])
    assert set(r['after']) - set(r['before']) == set(r['ours'])
    assert {'ghost_resnet50', 'ghost_resnet50_s4'} <= set(r['ours'])
    assert sorted(r['ours_module']) == ['ghost_resnet50', 'ghost_resnet50_s4']
    assert r['ghost_modules_after'] == r['ghost_modules'] and set(TIMM_GHOSTNETS) <= set(r['ghost_modules'])
    assert r['warnings'] == []
    assert all(m in ('timm.models.ghostnet', 'timm.models.repghost') for m in r['entry_modules'].values())
    assert r['hub_ids'] == {'ghostnet_100.in1k': 'timm/ghostnet_100.in1k',
                            'ghostnetv2_100.in1k': 'timm/ghostnetv2_100.in1k'}
    assert 'ghostnet_100.in1k' in r['tags_after']


@pytest.mark.parametrize('name', ALL_MODELS)
def test_default_cfg_on_meta(name):
    cfg = timm.models.get_pretrained_cfg(name)
    assert cfg is not None, f'{name} has no default_cfgs entry'
    assert cfg.interpolation == 'bilinear'
    if cfg.hf_hub_id:  # our repo, or timm's own where a tag converts timm's weights on load (dcnv2 tv_in1k)
        assert cfg.hf_hub_id in (f'timm-tricks/{name}.{cfg.tag}', manifest_entry(f'{name}.{cfg.tag}').hf_hub_id)
        assert cfg.hf_hub_id.split('/')[0] in ('timm-tricks', 'timm')
    for tag in timm.list_models(name, pretrained=True):
        if tag.split('.')[0] == name:
            tag_cfg = timm.models.get_pretrained_cfg(tag)
            assert tag_cfg.license and tag_cfg.origin_url and tag_cfg.paper_ids, tag

    # eval, as timm's test: batch 1 in train mode fails where a BN sees one value per channel (Meta-ACON's)
    model = timm.create_model(name, device='meta', dtype=torch.float32).eval()
    assert model.num_classes == cfg.num_classes and model.num_features > 0 and model.head_hidden_size > 0
    assert model.in_chans == cfg.input_size[0]
    state = model.state_dict()
    assert f'{cfg.first_conv}.weight' in state
    # a detection backbone's default tag (dcnv2_resnet50_dg4.coco_frcnn) has no classifier weights, as timm's
    assert (f'{cfg.classifier}.weight' in state) == bool(cfg.num_classes)
    assert model.get_classifier() is model.get_submodule(model.get_classifier(name_only=True))

    x = torch.empty((1, *cfg.input_size), device='meta')
    feats = model.forward_features(x)
    assert feats.shape[1] == model.num_features and tuple(feats.shape[2:]) == cfg.pool_size
    assert model.forward_head(feats, pre_logits=True).shape == (1, model.head_hidden_size)
    assert model(x).shape == (1, cfg.num_classes or model.head_hidden_size)

    model.reset_classifier(0)
    assert model(x).shape == (1, model.head_hidden_size)
    model.reset_classifier(0, '')
    out = model(x)
    assert out.ndim == 4 and tuple(out.shape[2:]) == cfg.pool_size

    model = model.to('meta', torch.float64).train(False)
    model.reset_classifier(7)
    fc = model.get_classifier()
    assert fc.weight.dtype == torch.float64 and fc.weight.device.type == 'meta' and not fc.training

    pooled = timm.create_model(name, device='meta', num_classes=0, global_pool='').eval()(x)
    assert pooled.ndim == 4


@pytest.mark.parametrize('name', ALL_MODELS)
def test_feature_info_on_meta(name):
    with torch.device('meta'):  # as smp probes
        model = timm.create_model(name, features_only=True).eval()  # eval: see test_default_cfg_on_meta
    assert model.feature_info.reduction() == [2, 4, 8, 16, 32]
    h, w = 96, 80
    feats = model(torch.empty(1, 3, h, w, device='meta'))
    assert [f.shape[1] for f in feats] == model.feature_info.channels()
    for f, r in zip(feats, model.feature_info.reduction(), strict=True):
        assert tuple(f.shape[2:]) == (math.ceil(h / r), math.ceil(w / r))

    # every family dilates (none is stuck at 32); an impossible stride is refused
    for os_, expected in ((16, [2, 4, 8, 16, 16]), (8, [2, 4, 8, 8, 8])):
        m = timm.create_model(name, features_only=True, output_stride=os_, device='meta').eval()
        assert m.feature_info.reduction() == expected
        feats = m(torch.empty(1, 3, h, w, device='meta'))
        assert [tuple(f.shape[2:]) for f in feats] == [(math.ceil(h / r), math.ceil(w / r)) for r in expected]
    with pytest.raises(ValueError, match='output_stride'):
        timm.create_model(name, output_stride=4, device='meta')


class MarkedBatchNorm2d(nn.BatchNorm2d):
    """A norm layer we can recognise, to check that `norm_layer` reaches every norm."""


@pytest.mark.parametrize('name', ALL_MODELS)
def test_layer_kwargs_reach_every_layer(name):
    model = timm.create_model(name, device='meta', norm_layer=MarkedBatchNorm2d, act_layer='silu')
    # plug-ins (attention, channel-aware activations) keep their own norms and activations, as in timm's ResNet,
    # whose blocks never pass norm_layer / act_layer to `attn_layer`: NAM's attention weights are its BN's gammas
    plugins = tuple(set(ATTN_LAYERS.values()) | set(CHANNEL_ACT_LAYERS.values()))
    inside = tuple(f'{n}.' for n, m in model.named_modules() if isinstance(m, plugins))
    kinds = {type(m) for n, m in model.named_modules() if not n.startswith(inside)}
    assert MarkedBatchNorm2d in kinds and nn.SiLU in kinds
    assert nn.BatchNorm2d not in kinds and nn.ReLU not in kinds
    with pytest.raises(TypeError):
        timm.create_model(name, device='meta', not_a_kwarg=1)


# ------------------------------------------------------------------------------------- representatives (CPU)

SIZES = [(32, 32), (33, 47), (65, 31)]


@pytest.mark.parametrize('name', REPRESENTATIVE_MODELS)
def test_forward_every_size(name, eval_models):
    model = eval_models(name)
    with torch.no_grad():
        for h, w in SIZES:
            out = model(torch.randn(1, 3, h, w))
            assert out.shape == (1, model.num_classes) and torch.isfinite(out).all(), (h, w)


@pytest.mark.parametrize('name', REPRESENTATIVE_MODELS)
def test_intermediates_checkpointing_and_pruning(name, eval_models):
    model = eval_models(name)
    x = torch.randn(2, 3, 64, 48)
    with torch.no_grad():
        ref = model.forward_features(x)
        final, inter = model.forward_intermediates(x)
        torch.testing.assert_close(final, ref, rtol=1e-5, atol=1e-6)
        assert [t.shape[1] for t in inter] == [i['num_chs'] for i in model.feature_info]
        assert [t.shape[2] for t in inter] == [math.ceil(64 / i['reduction']) for i in model.feature_info]
        last_two = model.forward_intermediates(x, indices=2, intermediates_only=True)
        torch.testing.assert_close(last_two[-1], inter[-1])
        picked = model.forward_intermediates(x, indices=[0, -2], intermediates_only=True, stop_early=True)
        torch.testing.assert_close(picked[1], inter[-2])

        model.set_grad_checkpointing(True)
        try:
            torch.testing.assert_close(model.forward_features(x), ref, rtol=1e-4, atol=1e-5)
            torch.testing.assert_close(model.forward_intermediates(x)[0], ref, rtol=1e-4, atol=1e-5)
        finally:
            model.set_grad_checkpointing(False)

    pruned = randomize_bn(_create(name)).eval()
    pruned.load_state_dict(model.state_dict())
    kept = pruned.prune_intermediate_layers(indices=[1, 2])
    assert kept == [1, 2]
    with torch.no_grad():
        feats = pruned.forward_intermediates(x, indices=kept, intermediates_only=True)
        torch.testing.assert_close(feats[1], inter[2], rtol=1e-5, atol=1e-6)
        assert pruned(x).shape[1] == model.feature_info[2]['num_chs']  # head pruned: pooled features


@pytest.mark.parametrize('name', REPRESENTATIVE_MODELS)
def test_backward_reaches_every_parameter(name):
    model = _create(name, num_classes=42, drop_rate=0.1, drop_path_rate=0.1).train()
    model(torch.randn(2, 3, 64, 64)).sum().backward()
    no_grad = [n for n, p in model.named_parameters() if p.grad is None]
    assert no_grad == []
    assert all(p.grad.shape == p.shape for p in model.parameters())


@pytest.mark.parametrize('how', ['torchscript', 'fx'])
@pytest.mark.parametrize('name', REPRESENTATIVE_MODELS)
def test_scripted_and_traced_equal_eager(name, how, eval_models):
    model = eval_models(name)
    if how == 'torchscript':
        with set_scriptable(True):
            converted = torch.jit.script(model)
    else:
        converted = fx_final_output(model)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(converted(x), model(x), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize('name', REPRESENTATIVE_MODELS)
def test_torch_compile(name, eval_models):
    model = eval_models(name)
    torch._dynamo.reset()  # models sharing a forward would otherwise pile up recompiles in one process
    compiled = torch.compile(model, fullgraph=True, dynamic=True, backend='eager')
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), model(x), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize('name', REPRESENTATIVE_MODELS)
def test_features_only_forward(name, eval_models):
    model = _create(name, features_only=True, out_indices=(1, 2, 3, 4)).eval()
    # the classifier is all the full model has more: every other key must match (strict)
    model.load_state_dict({k: v for k, v in eval_models(name).state_dict().items() if k in model.state_dict()})
    x = torch.randn(1, 3, 96, 95)
    with torch.no_grad():
        feats = model(x)
    assert [f.shape[1] for f in feats] == model.feature_info.channels()
    assert [tuple(f.shape[2:]) for f in feats] == [
        (math.ceil(96 / r), math.ceil(95 / r)) for r in model.feature_info.reduction()]
    # detection users freeze BN: same function in eval, no BatchNorm2d left
    frozen = freeze_batch_norm_2d(model)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in frozen.modules())
    with torch.no_grad():
        for got, want in zip(frozen(x), feats, strict=True):  # float32 rounding scales with the activations' magnitude
            torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5 * want.abs().max().item())


@pytest.mark.parametrize('name', REPRESENTATIVE_MODELS)
@pytest.mark.parametrize('in_chans', [1, 4])
def test_pretrained_first_conv_adapts_to_in_chans(name, in_chans, eval_models):
    """Loading RGB weights into a 1- or 4-channel model goes through timm's `adapt_input_conv`."""
    source = eval_models(name)
    state = source.state_dict()
    first_conv = source.pretrained_cfg['first_conv'] + '.weight'
    model = timm.create_model(
        name, pretrained=True, in_chans=in_chans, num_classes=5,
        pretrained_cfg_overlay=dict(state_dict=state, hf_hub_id=None))
    assert model.in_chans == in_chans
    w = model.state_dict()[first_conv]
    rgb = state[first_conv]
    if in_chans == 1:
        torch.testing.assert_close(w[:, 0], rgb.sum(dim=1))
    else:
        torch.testing.assert_close(w[:, :3], rgb * 3 / 4)
        torch.testing.assert_close(w[:, 3], rgb[:, 0] * 3 / 4)
    other = [k for k in state if k != first_conv and not k.startswith(source.pretrained_cfg['classifier'] + '.')]
    assert all(torch.equal(model.state_dict()[k], state[k]) for k in other)
    assert model.eval()(torch.randn(1, in_chans, 32, 32)).shape == (1, 5)
