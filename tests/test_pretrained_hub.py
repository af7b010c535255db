"""Pretrained loading through the real huggingface_hub code path, against the local Hub server (hub.md).

Every family with released weights: its smallest tagged model is published to `timm-tricks/<arch>.<tag>` the way
timm's `save_for_hf` writes it, and `timm.create_model('<arch>.<tag>', pretrained=True)` must return those exact
weights. The full set of scenarios (hf-hub:, features_only, cache, offline, faults) runs on pyconv_resnet50.in1k.
"""
import time

import pytest
import timm
import torch
from huggingface_hub.errors import LocalEntryNotFoundError, RepositoryNotFoundError

import timm_tricks

from spec_figures import SPEC_FIGURES

FLAGSHIP = 'pyconv_resnet50.in1k'


def _smallest_tag_per_family():
    best = {}
    for tag in timm_tricks.list_models(pretrained=True):
        arch = tag.split('.')[0]
        family = timm_tricks.model_family(arch)
        size = SPEC_FIGURES[arch].params if arch in SPEC_FIGURES else float('inf')
        if family not in best or size < best[family][0]:
            best[family] = (size, tag)
    return sorted(tag for _, tag in best.values())


def _source_model(name, seed=0):
    """A model (arch or arch.tag: the tag's head) with random weights and non-trivial BN statistics."""
    torch.manual_seed(seed)
    model = timm.create_model(name)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if t.is_floating_point():
                t.copy_(torch.randn_like(t) * 0.05 + (1. if name.endswith(('running_var', 'bn1.weight')) else 0.))
                if name.endswith('running_var'):
                    t.abs_()
    return model.eval()


def _assert_same_weights(model, source):
    expected = source.state_dict()
    got = model.state_dict()
    assert set(got) <= set(expected)
    assert all(torch.equal(got[k], expected[k]) for k in got)


@pytest.fixture(scope='module')
def flagship_source():
    return _source_model(FLAGSHIP)


@pytest.mark.parametrize('tag', _smallest_tag_per_family())
def test_family_tag_loads_from_hub(hub, tag):
    cfg = timm.models.get_pretrained_cfg(tag)
    source = _source_model(tag)
    hub.publish_model(cfg.hf_hub_id, source)
    model = timm.create_model(tag, pretrained=True)
    _assert_same_weights(model, source)
    assert [(r.method, r.status) for r in hub.requests] == [('HEAD', 302), ('GET', 200)]
    assert all(cfg.hf_hub_id in r.path or '__cdn__' in r.path for r in hub.requests)


def test_registered_tag_hf_hub_and_features(hub, flagship_source):
    hub.publish_model('timm-tricks/pyconv_resnet50.in1k', flagship_source)
    x = torch.randn(1, 3, 64, 64)

    model = timm.create_model(FLAGSHIP, pretrained=True).eval()
    _assert_same_weights(model, flagship_source)
    with torch.no_grad():
        torch.testing.assert_close(model(x), flagship_source(x))

    hub.clear_log()
    again = timm.create_model(FLAGSHIP, pretrained=True)  # served from the cache: metadata check only
    _assert_same_weights(again, flagship_source)
    assert [r.method for r in hub.requests] == ['HEAD']

    via_hub = timm.create_model('hf-hub:timm-tricks/pyconv_resnet50.in1k', pretrained=True).eval()
    _assert_same_weights(via_hub, flagship_source)
    assert via_hub.pretrained_cfg['architecture'] == 'pyconv_resnet50'

    feats = timm.create_model(
        'hf-hub:timm-tricks/pyconv_resnet50.in1k', pretrained=True, features_only=True, out_indices=(1, 2, 3, 4))
    assert feats.feature_info.channels() == [256, 512, 1024, 2048]
    with torch.no_grad():
        expected = flagship_source.forward_intermediates(x, indices=[1, 2, 3, 4], intermediates_only=True)
        for got, want in zip(feats.eval()(x), expected, strict=True):
            torch.testing.assert_close(got, want)

    hub.offline()
    hub.clear_log()
    offline = timm.create_model(FLAGSHIP, pretrained=True)
    _assert_same_weights(offline, flagship_source)
    assert hub.requests == []


def test_offline_with_cold_cache_says_so(hub):
    hub.offline()
    with pytest.raises(LocalEntryNotFoundError):
        timm.create_model(FLAGSHIP, pretrained=True)
    assert hub.requests == []


def test_repo_that_does_not_exist(hub):
    # without an original download to fall back to (test_weights_origin.py has those), the Hub's error stands
    with pytest.raises(RepositoryNotFoundError):
        timm.create_model('pyconvhg_resnet152.in1k', pretrained=True, pretrained_cfg_overlay=dict(
            hf_hub_id='timm-tricks/no-such-repo', url=None))


def test_truncated_weights_fail_loudly(hub, flagship_source):
    hub.publish_model('timm-tricks/pyconv_resnet50.in1k', flagship_source)
    data = hub.read('timm-tricks/pyconv_resnet50.in1k', 'model.safetensors')
    hub.replace_file('timm-tricks/pyconv_resnet50.in1k', 'model.safetensors', data[:len(data) // 2])
    with pytest.raises(Exception, match='(?i)deserializ|incomplete|truncat'):
        timm.create_model(FLAGSHIP, pretrained=True)


def test_weights_of_another_architecture_name_the_mismatch(hub):
    hub.publish_model('timm-tricks/pyconv_resnet50.in1k', _source_model('pyconvhg_resnet50'))
    with pytest.raises(timm_tricks.CheckpointMismatchError, match='shape mismatches: layer1.0.conv1.weight'):
        timm.create_model(FLAGSHIP, pretrained=True)


def test_server_down_fails_fast(hub):
    hub.server_down()
    start = time.monotonic()
    with pytest.raises(Exception) as err:
        timm.create_model(FLAGSHIP, pretrained=True)
    assert time.monotonic() - start < 30
    assert 'connection' in (str(err.value) + str(err.value.__cause__)).lower()
