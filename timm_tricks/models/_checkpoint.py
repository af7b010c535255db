"""Turning the authors' released checkpoints into our state dicts, with errors that name what does not fit.

Each family's `checkpoint_filter_fn(state_dict, model)` is `filter_checkpoint(...)` with the family's own
prefixes and renames. timm calls the filter before it adapts the first conv to `in_chans` and before it drops
the classifier when `num_classes` differs, so those two are allowed to differ in shape (or be absent) here.
"""
from typing import Callable, Dict, Iterable, List, Optional

import torch
from timm.models import clean_state_dict
from torch import nn

from ..errors import CheckpointMismatchError

StateDict = Dict[str, torch.Tensor]

_MAX_LISTED = 8


def unwrap_state_dict(checkpoint) -> StateDict:
    """The state dict inside a training checkpoint (`{'state_dict': ...}` / `{'model': ...}`) or the dict itself."""
    if not isinstance(checkpoint, dict):
        raise CheckpointMismatchError(f'expected a state dict, got a {type(checkpoint).__name__}')
    for key in ('state_dict', 'model'):
        if key in checkpoint and isinstance(checkpoint[key], dict):
            return checkpoint[key]
    return checkpoint


def strip_prefixes(state_dict: StateDict, prefixes: Iterable[str]) -> StateDict:
    """Remove each prefix, in order, from every key that starts with it."""
    for prefix in prefixes:
        state_dict = {k[len(prefix):] if k.startswith(prefix) else k: v for k, v in state_dict.items()}
    return state_dict


def _listing(keys: List[str]) -> str:
    shown = ', '.join(keys[:_MAX_LISTED])
    more = f' (+{len(keys) - _MAX_LISTED} more)' if len(keys) > _MAX_LISTED else ''
    return shown + more


def check_state_dict(state_dict: StateDict, model: nn.Module, exempt_adapted: bool = True) -> None:
    """Raise CheckpointMismatchError naming missing / unexpected keys and shape differences.

    With `exempt_adapted`, the model's first conv and classifier are exempt: timm adapts or drops them after the
    filter (in_chans, num_classes); without it every key counts (a conversion cached for the registered model).
    """
    cfg = getattr(model, 'pretrained_cfg', None) or {}
    adapted = (cfg.get('first_conv'), cfg.get('classifier')) if exempt_adapted else ()
    exempt = tuple(p + '.' for p in adapted if isinstance(p, str))
    expected = model.state_dict()
    missing = [k for k in expected if k not in state_dict and not k.startswith(exempt)]
    unexpected = [k for k in state_dict if k not in expected and not k.startswith(exempt)]
    shapes = [  # in the model's order, so the first one listed is the first layer that differs
        f'{k}: checkpoint {tuple(state_dict[k].shape)} vs model {tuple(v.shape)}'
        for k, v in expected.items()
        if k in state_dict and not k.startswith(exempt) and tuple(state_dict[k].shape) != tuple(v.shape)
    ]
    if missing or unexpected or shapes:
        problems = []
        if missing:
            problems.append(f'{len(missing)} missing keys: {_listing(missing)}')
        if unexpected:
            problems.append(f'{len(unexpected)} unexpected keys: {_listing(unexpected)}')
        if shapes:
            problems.append(f'{len(shapes)} shape mismatches: {_listing(shapes)}')
        name = cfg.get('architecture', type(model).__name__)
        raise CheckpointMismatchError(
            f'checkpoint does not fit {name}: ' + '; '.join(problems)
            + '. Is it the checkpoint of another architecture or variant?')


def flat_state_dict(checkpoint) -> StateDict:
    """The state dict of a checkpoint, unwrapped and without the training wrappers' prefixes (DDP `module.`,
    torch.compile `_orig_mod.`: timm's `clean_state_dict`); what family filters inspect before `filter_checkpoint`."""
    return clean_state_dict(unwrap_state_dict(checkpoint))


def filter_checkpoint(checkpoint, model: nn.Module, prefixes: Iterable[str] = (),
                      rename: Optional[Callable[[str], Optional[str]]] = None) -> StateDict:
    """Unwrap, strip the training wrappers' prefixes (DDP `module.`, torch.compile `_orig_mod.`: timm's
    `clean_state_dict`) and then the family's `prefixes`, rename (None drops a key), cast floats to float32, fill
    missing BN counters, check."""
    state_dict = strip_prefixes(flat_state_dict(checkpoint), prefixes)
    if rename is not None:
        renamed = ((rename(k), v) for k, v in state_dict.items())
        state_dict = {k: v for k, v in renamed if k is not None}
    state_dict = {k: v.float() if v.is_floating_point() else v for k, v in state_dict.items()}
    # checkpoints saved by some frameworks leave out BN's `num_batches_tracked`; it does not affect eval outputs
    for k, v in model.state_dict().items():
        if k.endswith('num_batches_tracked') and k not in state_dict:
            state_dict[k] = torch.zeros_like(v, device='cpu')
    check_state_dict(state_dict, model)
    return state_dict
