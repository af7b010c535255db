"""timm_tricks: CNN tricks that timm lacks, registered as first-class timm backbones.

`import timm_tricks` registers every model of the package with timm (importing twice is harmless); then
`timm.create_model('pyconv_resnet50', pretrained=True, features_only=True)` works as for timm's own models.
"""
from . import models  # noqa: F401  (registers the models)
from ._registry import REFERENCE_MODELS, is_ours, list_models, model_family, resolve_model_name
from ._version import __version__
from .errors import CheckpointMismatchError, NoPretrainedWeightsError, TricksError, UnknownModelError
from .models import fuse_for_inference

