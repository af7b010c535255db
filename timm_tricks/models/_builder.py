"""`build_model_with_cfg` plus the authors' downloads as the fallback of our Hub repos, a clear error when
`pretrained=True` has no weights to load, and the shared cfg."""
import logging
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Type

import timm
import torch
from huggingface_hub.errors import LocalEntryNotFoundError, RemoteEntryNotFoundError, RepositoryNotFoundError
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.models import PretrainedCfg, build_model_with_cfg, resolve_pretrained_cfg
from torch import nn

from ..errors import NoPretrainedWeightsError
from ..weights import load_manifest, origin
from ._checkpoint import check_state_dict
from ._resnet import merge_block_args

_logger = logging.getLogger(__name__)

_WEIGHT_SOURCES = ('state_dict', 'file', 'hf_hub_id', 'url')


def imagenet_cfg(**kwargs) -> Dict[str, Any]:
    """Pretrained cfg of a 224 px ImageNet-1k classifier with a `conv1` stem and `fc` head; kwargs add / override."""
    return {
        'num_classes': 1000, 'input_size': (3, 224, 224), 'pool_size': (7, 7),
        'crop_pct': 0.875, 'interpolation': 'bilinear', 'mean': IMAGENET_DEFAULT_MEAN, 'std': IMAGENET_DEFAULT_STD,
        'first_conv': 'conv1', 'classifier': 'fc',
        **kwargs,
    }


def merge_model_args(model_args: Dict[str, Any], kwargs: Dict[str, Any]) -> Dict[str, Any]:
    """A family's `model_args` updated by the user's kwargs; `block_args` merge key by key and `stage_args`
    stage by stage (the user's win; `first_block` dicts key by key too), so a user's plug-in adds to the family's
    own layers instead of replacing them."""
    merged = dict(model_args, **kwargs)
    if model_args.get('block_args') and kwargs.get('block_args'):
        merged['block_args'] = merge_block_args(model_args['block_args'], kwargs['block_args'])
    if model_args.get('stage_args') and kwargs.get('stage_args'):
        family, user = list(model_args['stage_args']), list(kwargs['stage_args'])
        if len(family) != len(user):
            raise ValueError(f'stage_args needs one dict per stage ({len(family)}), got {len(user)}')
        merged['stage_args'] = [merge_block_args(f, u) for f, u in zip(family, user)]
    return merged


def build_tricks_model(model_cls: Type[nn.Module], variant: str, pretrained: bool,
                       pretrained_filter_fn: Optional[Callable[[Dict[str, Any], nn.Module], Dict[str, Any]]] = None,
                       **kwargs) -> nn.Module:
    """timm's builder, with two additions for `pretrained=True`.

    * An architecture without weights raises instead of a log line.
    * A tag of the weights manifest whose Hub repo does not exist (yet) loads the authors' original from the cfg's
      `url` instead, converted once and cached (`timm_tricks.weights.origin`); offline, a cached conversion stands
      in for the Hub. `hf-hub:` names and explicit `file` / `state_dict` overlays are timm's, untouched.
    """
    if pretrained:
        cfg = resolve_pretrained_cfg(
            variant, pretrained_cfg=kwargs.get('pretrained_cfg'),
            pretrained_cfg_overlay=kwargs.get('pretrained_cfg_overlay'))
        if not any(getattr(cfg, key, None) for key in _WEIGHT_SOURCES):
            why = ''.join(f' {note}' for note in cfg.notes or ())  # the cfg says why, where it knows
            raise NoPretrainedWeightsError(
                f"'{variant}' has no released weights (tag '{cfg.tag}').{why} Create it with pretrained=False, or "
                "load your own with pretrained=True, pretrained_cfg_overlay=dict(file='path/to/checkpoint').")
        if _falls_back_to_origin(cfg):
            try:
                return build_model_with_cfg(
                    model_cls, variant, pretrained, pretrained_filter_fn=pretrained_filter_fn, **kwargs)
            except (RepositoryNotFoundError, RemoteEntryNotFoundError, LocalEntryNotFoundError) as error:
                weights = _origin_weights(cfg, error, pretrained_filter_fn)
                if weights is None:
                    raise
            kwargs['pretrained_cfg_overlay'] = dict(kwargs.get('pretrained_cfg_overlay') or {}, file=str(weights))
    return build_model_with_cfg(model_cls, variant, pretrained, pretrained_filter_fn=pretrained_filter_fn, **kwargs)


def _falls_back_to_origin(cfg: PretrainedCfg) -> bool:
    """A manifest tag that timm would load from its Hub repo, with an original download to fall back to."""
    return bool(cfg.hf_hub_id and cfg.url and cfg.source != 'hf-hub' and not cfg.file and not cfg.state_dict
                and f'{cfg.architecture}.{cfg.tag}' in load_manifest())


def _origin_weights(cfg: PretrainedCfg, hub_error: Exception, filter_fn: Optional[Callable]) -> Optional[Path]:
    """The converted authors' weights standing in for the Hub's, or None where the Hub's error must stand."""
    name = f'{cfg.architecture}.{cfg.tag}'
    cached = origin.cached_conversion(name)
    if not origin.hub_says_missing(hub_error):  # offline or unreachable: never download, use what is cached
        if cached is not None:
            _logger.info(f"{name}: the Hub cannot be reached ({type(hub_error).__name__}); using the authors' "
                         f'original from {origin.cached_origin_url(name)}, converted, cached at {cached}')
        return cached
    if cached is None:
        cached = origin.fetch_converted(name, cfg.url, lambda checkpoint: _convert(name, checkpoint, filter_fn))
        how = 'downloaded'
    else:
        how = 'converted earlier'
    _logger.info(f"{name}: no Hub repo {cfg.hf_hub_id}; using the authors' original from "
                 f'{origin.cached_origin_url(name)} ({how}), converted, cached at {cached}')
    return cached


def _convert(name: str, checkpoint: Any, filter_fn: Optional[Callable]) -> Dict[str, torch.Tensor]:
    """The authors' checkpoint in our key layout: the family's filter against the tag's model as registered (the
    cached file does not depend on the caller's num_classes, in_chans or features_only), checked key by key and
    shape by shape, classifier included, so a checkpoint that would not load strictly is never cached."""
    with torch.device('meta'):  # shapes and names are all the filter and the check need: nothing is allocated
        model = timm.create_model(name)
    if filter_fn is not None:
        with torch.device('cpu'):  # tensors the filter creates are real even when the caller builds on meta (CLI)
            checkpoint = filter_fn(checkpoint, model)
    check_state_dict(checkpoint, model, exempt_adapted=False)
    return checkpoint
