"""Which of timm's registered models are ours, and name lookup with close-match suggestions."""
import difflib
import fnmatch
from typing import Dict, List

import timm
from timm.models import get_arch_pretrained_cfgs, get_pretrained_cfg, is_model, model_entrypoint, split_model_name_tag
from torch import nn

from .errors import UnknownModelError

_OUR_MODULE_PREFIX = 'timm_tricks.models.'

# timm models shown in our listings and reports as the reference member of one of our families.
# They stay timm's: we never re-register them. Maps name -> family.
REFERENCE_MODELS: Dict[str, str] = {
    'ghostnet_050': 'ghost_resnet', 'ghostnet_100': 'ghost_resnet', 'ghostnet_130': 'ghost_resnet',
}


def is_ours(name: str) -> bool:
    """True if `name` (an architecture, optionally `arch.tag`) was registered by timm_tricks."""
    arch = split_model_name_tag(name)[0]
    return is_model(arch) and model_entrypoint(arch).__module__.startswith(_OUR_MODULE_PREFIX)


def model_family(name: str) -> str:
    """Family of one of our models (its module, e.g. 'pyconv_resnet'), or of a reference timm model."""
    arch = split_model_name_tag(name)[0]
    if arch in REFERENCE_MODELS:
        return REFERENCE_MODELS[arch]
    if not is_ours(arch):
        raise UnknownModelError(unknown_model_message(arch))
    return model_entrypoint(arch).__module__.rsplit('.', 1)[-1]


def list_models(pattern: str = '*', pretrained: bool = False, include_reference: bool = False) -> List[str]:
    """Our registered models matching the wildcard `pattern`.

    With `pretrained=True`, returns the `arch.tag` names that have weights. `include_reference=True` adds the
    timm models we show as reference members of a family (e.g. GhostNet), which stay registered by timm.
    """
    names = [n for n in timm.list_models(pretrained=pretrained) if is_ours(n)]
    if include_reference:
        names += [
            n for n in timm.list_models(list(REFERENCE_MODELS), pretrained=pretrained)
            if split_model_name_tag(n)[0] in REFERENCE_MODELS
        ]
    return sorted(n for n in names if fnmatch.fnmatchcase(n, pattern))


def pretrained_tags(arch: str) -> List[str]:
    """Tags of `arch` that have weights (a Hub id, url or file)."""
    cfgs = get_arch_pretrained_cfgs(arch)  # keyed `arch.tag`
    return [split_model_name_tag(name)[1] for name, cfg in cfgs.items() if cfg.hf_hub_id or cfg.url or cfg.file]


def unknown_model_message(name: str) -> str:
    candidates = sorted(set(timm.list_models()))  # ours included, since they are registered
    close = difflib.get_close_matches(name, candidates, n=5, cutoff=0.6)
    hint = f" Did you mean: {', '.join(close)}?" if close else ''
    return f"Unknown model '{name}'.{hint} `timm-tricks list` shows ours."


def resolve_model_name(name: str) -> str:
    """Return `name` if timm knows it (with a valid tag, if given); else raise with close matches."""
    arch, tag = split_model_name_tag(name)
    if not is_model(arch):
        raise UnknownModelError(unknown_model_message(name))
    if tag:
        try:
            get_pretrained_cfg(name, allow_unregistered=False)
        except RuntimeError:
            tags = ', '.join(pretrained_tags(arch)) or 'none'
            raise UnknownModelError(f"Model '{arch}' has no tag '{tag}'. Tags with weights: {tags}.") from None
    return name


def model_name(model: nn.Module) -> str:
    """A built model's display name: its architecture from the pretrained cfg, else its class name."""
    cfg = getattr(model, 'pretrained_cfg', None) or {}
    return cfg.get('architecture') or type(model).__name__
