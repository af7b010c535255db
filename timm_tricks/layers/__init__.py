"""Reusable building blocks, one concept per file."""
from .pyconv import PyConv2d, create_pyconv
from .deform_conv import ModulatedDeformConv2d
from .ghost import GhostModule, ghost_chs
from .blurpool import BlurPool2d, binomial_filter
from .fold import fold_conv_norm, fold_norm, norm_scale_shift
from .spconv import SPConv2d, SPConv2dFused
from .csp_dense import CrossStagePartial, partial_split
from .octconv import OctaveConv2d, OctaveConvNormAct, octave_split
from .nam import NAM, add_nam_sparsity_grad
from .dyrelu import DyReLU, DyReLUA, DyReLUB, DyReLUC
from .acon import AconC, MetaAconC
from .coordconv import AddCoords, CoordConv2d
from .stn import SpatialTransformer
from .spp import SpatialPyramidPooling
from .rfb import BasicRFB, BasicRFB_a, RfbConv
from .asff import ASFF
from .authors_attn import CbamV1, CoordAttV1, NonLocalV1, convert_cbam_v1_state_dict
from .rdrop import RDropLoss
from .create_plugin import create_attn, create_channel_act, get_attn, get_channel_act
