"""Model families; importing a family module registers its models with timm."""
from . import pyconv_resnet
