"""Model families; importing a family module registers its models with timm."""
from . import (
    blurpool_resnet,
    csp_densenet,
    dcn_resnet,
    ghost_resnet,
    oct_resnet,
    plugin_resnet,
    pyconv_resnet,
    spconv_resnet,
)
from ._contract import fuse_for_inference
