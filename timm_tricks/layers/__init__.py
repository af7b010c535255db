"""Reusable building blocks, one concept per file."""
from .acon import AconC, MetaAconC
from .asff import ASFF
from .authors_attn import CbamV1, CoordAttV1, NonLocalV1, convert_cbam_v1_state_dict
from .blurpool import BlurPool2d, binomial_filter
from .coordconv import AddCoords, CoordConv2d
from .create_plugin import create_attn, create_channel_act, get_attn, get_channel_act
from .csp_dense import CrossStagePartial, partial_split
from .deform_conv import ModulatedDeformConv2d
from .dyrelu import DyReLU, DyReLUA, DyReLUB, DyReLUC
from .fold import fold_conv_norm, fold_norm, norm_scale_shift
from .ghost import GhostModule, ghost_chs
from .nam import NAM, add_nam_sparsity_grad
from .octconv import OctaveConv2d, OctaveConvNormAct, octave_split
from .pyconv import PyConv2d, create_pyconv
from .rdrop import RDropLoss
from .rfb import BasicRFB, BasicRFB_a, RfbConv
from .spconv import SPConv2d, SPConv2dFused
from .spp import SpatialPyramidPooling
from .stn import SpatialTransformer
