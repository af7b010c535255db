"""Model families; importing a family module registers its models with timm."""
from ._contract import fuse_for_inference
from . import pyconv_resnet
from . import ghost_resnet
from . import blurpool_resnet
from . import spconv_resnet
from . import csp_densenet
from . import dcn_resnet
from . import oct_resnet
from . import plugin_resnet
