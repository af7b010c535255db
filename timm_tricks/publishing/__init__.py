"""Publishing our Hub repos `timm-tricks/<arch.tag>`: convert the authors' checkpoint, describe it (model card),
upload it. Above the model layer: free to import the registry and `profile` (fvcore MAC counts for the cards).

Downloading the authors' files is `timm_tricks.weights.origin` (shared with `pretrained=True`).
"""
from .convert import (
    AT_PUBLISH,
    PUBLISHING_ORG,
    Conversion,
    HostingRestrictedError,
    PublishError,
    UploadPlan,
    convert_checkpoint,
    feature_levels,
    format_size,
    model_card,
    our_entry,
    plan_upload,
    upload,
    write_card_files,
)

__all__ = [
    'AT_PUBLISH', 'PUBLISHING_ORG', 'Conversion', 'HostingRestrictedError', 'PublishError', 'UploadPlan',
    'convert_checkpoint', 'feature_levels', 'format_size', 'model_card', 'our_entry', 'plan_upload', 'upload',
    'write_card_files',
]
