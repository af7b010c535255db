"""`build_model_with_cfg` plus a clear error when `pretrained=True` has no weights to load, and the shared cfg."""
from typing import Any, Callable, Dict, Optional, Type

from torch import nn

from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.models import build_model_with_cfg
from timm.models._builder import resolve_pretrained_cfg

from ..errors import NoPretrainedWeightsError

_WEIGHT_SOURCES = ('state_dict', 'file', 'hf_hub_id', 'url')


def imagenet_cfg(**kwargs) -> Dict[str, Any]:
    """Pretrained cfg of a 224 px ImageNet-1k classifier with a `conv1` stem and `fc` head; kwargs add / override."""
    return {
        'num_classes': 1000, 'input_size': (3, 224, 224), 'pool_size': (7, 7),
        'crop_pct': 0.875, 'interpolation': 'bilinear', 'mean': IMAGENET_DEFAULT_MEAN, 'std': IMAGENET_DEFAULT_STD,
        'first_conv': 'conv1', 'classifier': 'fc',
        **kwargs,
    }


def build_tricks_model(
        model_cls: Type[nn.Module],
        variant: str,
        pretrained: bool,
        pretrained_filter_fn: Optional[Callable[[Dict[str, Any], nn.Module], Dict[str, Any]]] = None,
        **kwargs,
) -> nn.Module:
    """timm's builder; for an architecture without weights, `pretrained=True` raises instead of a log line."""
    if pretrained:
        cfg = resolve_pretrained_cfg(
            variant, pretrained_cfg=kwargs.get('pretrained_cfg'),
            pretrained_cfg_overlay=kwargs.get('pretrained_cfg_overlay'))
        if not any(getattr(cfg, key, None) for key in _WEIGHT_SOURCES):
            raise NoPretrainedWeightsError(
                f"'{variant}' has no released weights (tag '{cfg.tag}'). Create it with pretrained=False, or "
                "load your own with pretrained=True, pretrained_cfg_overlay=dict(file='path/to/checkpoint').")
    return build_model_with_cfg(model_cls, variant, pretrained, pretrained_filter_fn=pretrained_filter_fn, **kwargs)
