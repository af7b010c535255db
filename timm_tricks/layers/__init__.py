"""Reusable building blocks, one concept per file."""
from .pyconv import PyConv2d, create_pyconv
from .deform_conv import ModulatedDeformConv2d
from .ghost import GhostModule, ghost_chs
from .blurpool import BlurPool2d, binomial_filter
from .spconv import SPConv2d, SPConv2dFused, fold_conv_norm, norm_scale_shift
from .csp_dense import CrossStagePartial, partial_split
from .octconv import OctaveConv2d, OctaveConvNormAct, octave_split
