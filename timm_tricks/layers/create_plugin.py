"""String names for the plug-in layers: our own tables, consulted before timm's (whose tables stay untouched).

`get_attn(name_or_cls)` resolves attention modules, called as `attn(channels, device=, dtype=)` after the last norm of
a residual branch: our names first, then `timm.layers.get_attn` ('se', 'eca', 'cbam', ...). `get_channel_act(name)`
resolves channel-aware activations, called as `act(channels, device=, dtype=)` (timm's `act_layer` never receives a
channel count, so these need their own slot, e.g. the activation after a bottleneck's spatial conv). Classes,
`functools.partial`s and None pass through both unchanged.
"""
from typing import Any, Callable, Dict, Optional, Union

from timm.layers import get_attn as timm_get_attn
from torch import nn

from .acon import AconC, MetaAconC
from .authors_attn import CbamV1, CoordAttV1, NonLocalV1
from .dyrelu import DyReLUA, DyReLUB, DyReLUC
from .nam import NAM

__all__ = ['ATTN_LAYERS', 'CHANNEL_ACT_LAYERS', 'create_attn', 'create_channel_act', 'get_attn', 'get_channel_act']

LayerSpec = Union[str, Callable[..., nn.Module], None]

ATTN_LAYERS: Dict[str, Callable[..., nn.Module]] = {
    'nam': NAM,
    'cbam_v1': CbamV1,
    'coordatt': CoordAttV1,
    'nl_v1': NonLocalV1,
    'dyrelu_b': DyReLUB,
    'dyrelu_c': DyReLUC,
}

CHANNEL_ACT_LAYERS: Dict[str, Callable[..., nn.Module]] = {
    'acon': AconC,
    'meta_acon': MetaAconC,
    'dyrelu_a': DyReLUA,
    'dyrelu_b': DyReLUB,
    'dyrelu_c': DyReLUC,
}


def get_attn(attn_layer: LayerSpec) -> Optional[Callable[..., nn.Module]]:
    """Attention class for a name of ours or timm's; classes and partials pass through."""
    if not isinstance(attn_layer, str):
        return timm_get_attn(attn_layer)
    name = attn_layer.lower()
    if name in ATTN_LAYERS:
        return ATTN_LAYERS[name]
    try:
        return timm_get_attn(name)
    except AssertionError:  # timm's way of saying "unknown name"
        raise ValueError(
            f'Unknown attention layer {attn_layer!r}: ours are {sorted(ATTN_LAYERS)}, or one of timm.layers.get_attn'
        ) from None


def get_channel_act(act_layer: LayerSpec) -> Optional[Callable[..., nn.Module]]:
    """Channel-aware activation class for a name; classes and partials pass through."""
    if not isinstance(act_layer, str):
        return act_layer
    name = act_layer.lower()
    if name not in CHANNEL_ACT_LAYERS:
        raise ValueError(f'Unknown channel-aware activation {act_layer!r}: choose from {sorted(CHANNEL_ACT_LAYERS)}')
    return CHANNEL_ACT_LAYERS[name]


def create_attn(attn_layer: LayerSpec, channels: int, **kwargs: Any) -> Optional[nn.Module]:
    attn_cls = get_attn(attn_layer)
    return attn_cls(channels, **kwargs) if attn_cls is not None else None


def create_channel_act(act_layer: LayerSpec, channels: int, **kwargs: Any) -> Optional[nn.Module]:
    act_cls = get_channel_act(act_layer)
    return act_cls(channels, **kwargs) if act_cls is not None else None
