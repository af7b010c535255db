"""Independent reference figures for our models, copied by hand from the spec tables in /work/shared/specs/.

Tests compare what the code measures against these numbers; nothing here is computed by timm_tricks.
Protocol of every figure (specs/README.md): 1×3×224×224, eval mode, batch 1, torch 2.14.1 CPU, fvcore
0.1.5.post20221221. `fvcore_total` = `FlopCountAnalysis(...).total()` in MACs (includes BatchNorm, adaptive average
pooling and nearest upsampling); `conv_linear` = its conv and linear part only; `params` = exact
`sum(p.numel() for p in model.parameters())` with the default `num_classes=1000`. `None` = the spec gives no figure.
"""
from typing import Dict, NamedTuple, Optional


class SpecFigures(NamedTuple):
    params: int
    fvcore_total: Optional[int]
    conv_linear: Optional[int]


SPEC_FIGURES: Dict[str, SpecFigures] = {
    # pyconv.md, §3 "Variants" (params (exact) | fvcore total @224 | conv+lin @224)
    'pyconv_resnet18': SpecFigures(5_911_976, 868_130_304, 863_137_792),
    'pyconv_resnet34': SpecFigures(11_091_048, 1_742_296_576, 1_734_795_264),
    'pyconv_resnet50': SpecFigures(24_847_720, 3_843_974_144, 3_820_441_600),
    'pyconv_resnet101': SpecFigures(42_307_944, 7_266_178_048, 7_232_409_600),
    'pyconv_resnet152': SpecFigures(56_640_872, 10_652_255_232, 10_605_842_432),
    'pyconvhg_resnet50': SpecFigures(25_234_728, 4_565_254_144, 4_533_944_320),
    'pyconvhg_resnet101': SpecFigures(44_627_240, 8_366_186_496, 8_321_228_800),
    'pyconvhg_resnet152': SpecFigures(60_657_960, 12_214_484_992, 12_152_668_160),

    # spconv.md, §3 "Variants"
    'spconv_resnet18': SpecFigures(4_690_216, 757_140_992, 743_116_800),
    'spconv_resnet34': SpecFigures(8_363_688, 1_435_119_104, 1_411_059_712),
    'spconv_resnet50': SpecFigures(18_345_448, 2_938_046_464, 2_907_439_104),
    'spconv_resnet101': SpecFigures(30_953_192, 5_410_017_280, 5_364_056_064),
    'spconv_resnet152': SpecFigures(41_340_392, 7_885_600_768, 7_820_673_024),
    'spconv_resnet50_a4': SpecFigures(16_930_792, 2_706_835_456, 2_676_228_096),
    'spconv_resnet50_a8': SpecFigures(16_223_464, 2_591_229_952, 2_560_622_592),

    # octconv.md, §3 "Variants (α = 0.5)"
    'oct_resnet26': SpecFigures(15_995_176, 1_492_538_624, 1_480_032_256),
    'oct_resnet50': SpecFigures(25_557_032, 2_386_273_536, 2_367_143_936),
    'oct_resnet101': SpecFigures(44_549_160, 4_019_326_720, 3_991_240_704),
    'oct_resnet152': SpecFigures(60_192_808, 5_654_487_296, 5_615_337_472),
    'oct_resnet200': SpecFigures(64_673_832, 7_199_908_096, 7_143_899_136),

    # ghost.md, §3 "Topology we implement" table (our BN design, not the released BN-free code of §2)
    'ghost_resnet50': SpecFigures(13_953_512, 2_173_351_680, 2_151_023_360),
    'ghost_resnet50_s4': SpecFigures(8_151_752, 1_204_271_232, 1_181_942_912),

    # csp_densenet.md, §4 "Variants – measured on the reconstruction" (default choices of §2: pool first)
    'cspdensenet121': SpecFigures(8_102_664, 2_623_660_800, 2_594_922_496),
    'cspdensenet169': SpecFigures(15_070_024, 3_170_777_024, 3_136_158_720),
    'cspdensenet201': SpecFigures(21_283_784, 4_082_097_472, 4_037_174_272),
    'csppeleenet': SpecFigures(2_853_896, 444_134_400, 438_113_280),

    # blurpool.md, §3 "Variants" (filter size 4)
    'blurpool_resnet18': SpecFigures(11_689_512, 2_347_770_368, 2_341_724_160),
    'blurpool_resnet34': SpecFigures(21_797_672, 4_199_967_232, 4_191_412_224),
    'blurpool_resnet50': SpecFigures(25_557_032, 5_164_656_640, 5_141_274_624),
    'blurpool_resnet101': SpecFigures(44_549_160, 8_887_113_728, 8_853_495_808),
    'blurpool_resnet152': SpecFigures(60_192_808, 12_611_979_264, 12_565_716_992),
    'blurpool_resnext50_32x4d': SpecFigures(25_028_904, 4_405_995_520, 4_374_986_752),
    'blurpool_resnext101_32x8d': SpecFigures(88_791_336, 17_021_044_736, 16_954_310_656),
    'blurpool_wide_resnet50_2': SpecFigures(68_883_240, 15_605_278_720, 15_574_269_952),
    'blurpool_wide_resnet101_2': SpecFigures(126_886_696, 26_973_956_096, 26_929_299_456),
    # blurpool.md, §3 "Filter-size variants" table (fvcore total / conv+lin). Its parameter counts are those of the
    # lpf4 model above: the spec says the blur adds only buffers, so parameters equal torchvision's for every filter.
    'blurpool_resnet18_lpf2': SpecFigures(11_689_512, 2_342_200_832, 2_336_154_624),
    'blurpool_resnet18_lpf3': SpecFigures(11_689_512, 2_344_521_472, 2_338_475_264),
    'blurpool_resnet18_lpf5': SpecFigures(11_689_512, 2_351_947_520, 2_345_901_312),
    'blurpool_resnet34_lpf2': SpecFigures(21_797_672, 4_194_397_696, 4_185_842_688),
    'blurpool_resnet34_lpf3': SpecFigures(21_797_672, 4_196_718_336, 4_188_163_328),
    'blurpool_resnet34_lpf5': SpecFigures(21_797_672, 4_204_144_384, 4_195_589_376),
    'blurpool_resnet50_lpf2': SpecFigures(25_557_032, 5_155_926_016, 5_132_544_000),
    'blurpool_resnet50_lpf3': SpecFigures(25_557_032, 5_159_563_776, 5_136_181_760),
    'blurpool_resnet50_lpf5': SpecFigures(25_557_032, 5_171_204_608, 5_147_822_592),
    'blurpool_resnet101_lpf2': SpecFigures(44_549_160, 8_878_383_104, 8_844_765_184),
    'blurpool_resnet101_lpf3': SpecFigures(44_549_160, 8_882_020_864, 8_848_402_944),
    'blurpool_resnet101_lpf5': SpecFigures(44_549_160, 8_893_661_696, 8_860_043_776),

    # dcnv2.md, §3 "Variants" (deform_groups=1): fvcore total *with the conv-equivalent deform_conv2d handle*;
    # conv_linear is the spec's "conv+lin+deform" column (the deformable conv counted as the conv it replaces).
    'dcnv2_resnet50': SpecFigures(26_428_295, 4_300_500_480, 4_278_172_160),
    'dcnv2_resnet50_dg4': SpecFigures(29_042_084, 4_867_464_192, 4_845_135_872),
    'dcnv2_resnet101': SpecFigures(46_478_418, 8_230_234_624, 8_197_670_400),

    # plugins.md, §2-§3: parameters only (exact); the spec gives no FLOPs for these models.
    'cbam_resnet50': SpecFigures(28_089_624, None, None),
    'nam_resnet50': SpecFigures(25_587_240, None, None),
    'acon_resnet50': SpecFigures(25_594_920, None, None),
    'acon_resnet101': SpecFigures(44_626_216, None, None),
    'metaacon_resnet50': SpecFigures(25_773_368, None, None),
    'metaacon_resnet101': SpecFigures(44_953_448, None, None),
}

# dcnv2.md, §3 "+ sampling cost" column: fvcore total when each deformable conv also pays
# N·Cin·kh·kw·Hout·Wout·5 MACs for bilinear sampling (4) and modulation (1).
DEFORM_SAMPLING_TOTALS: Dict[str, int] = {
    'dcnv2_resnet50': 4_335_498_240,
    'dcnv2_resnet50_dg4': 4_902_461_952,
    'dcnv2_resnet101': 8_303_617_024,
}

# flops_latency.md, §3 table: timm models at 224, bs 1, eval – fvcore total (GMACs, 4 significant digits).
TIMM_FVCORE_GMACS: Dict[str, float] = {
    'resnet50': 4.1115,
    'resnet18': 1.8191,
    'ghostnet_100': 0.1483,
    'densenet121': 2.8655,
    'cspresnet50': 3.4764,
}


# OCTRESNET_LAYERS: blocks per stage of each OctResNet, for `oct_upsample_difference`.
OCTRESNET_LAYERS: Dict[str, tuple] = {
    'oct_resnet26': (2, 2, 2, 2), 'oct_resnet50': (3, 4, 6, 3), 'oct_resnet101': (3, 4, 23, 3),
    'oct_resnet152': (3, 8, 36, 3), 'oct_resnet200': (3, 24, 36, 3),
}


def oct_upsample_difference(layers, size: int = 224, alpha: float = 0.5) -> int:
    """Our fvcore total minus the spec's (the reference's) for an OctResNet: a documented counting convention.

    The reference upsamples every stride-1 low->high path with `upsample_nearest2d`, which fvcore counts (one MAC per
    output element: high channels x H x W); ours adds the low map by broadcasting (not counted) and upsamples only
    where a stage hands over concat(high, upsampled low) to the next (low channels x H x W, stages 1-3). Worked out
    from the topology (octconv.md): stage widths 64/128/256/512 (x4 out), resolutions size/4 ... size/32.
    """
    reference = ours = 0
    res = [size // 4, size // 8, size // 16, size // 32]
    for stage, (depth, planes) in enumerate(zip(layers, (64, 128, 256, 512))):
        out, in_res, out_res = planes * 4, res[max(stage - 1, 0)], res[stage]
        planes_high, out_high = planes - int(alpha * planes), out - int(alpha * out)
        if stage < 3:
            for block in range(depth):
                first = block == 0
                # conv1 (1x1, at the block's input resolution) has a low input except in layer1's first block
                if not (stage == 0 and first):
                    reference += planes_high * (in_res if first else out_res) ** 2
                # conv2 (3x3): a stride-2 conv adds its low->high path without upsampling
                if not (first and stage > 0):
                    reference += planes_high * out_res ** 2
                reference += out_high * out_res ** 2  # conv3
            ours += int(alpha * out) * out_res ** 2  # the stage's output merge
        else:
            reference += planes * in_res ** 2  # layer4.0.conv1: the last low->high path, all channels high
    return ours - reference
