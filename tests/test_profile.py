"""timm_tricks.profile: fvcore counts against hand-computed MACs, torch's FlopCounterMode and the spec tables;
parameter counts; latency on CPU (and CUDA where there is one)."""
import importlib.util
import itertools
import logging
import math
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import timm
import torch
import torch.nn.functional as F
import torchvision
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import timm_tricks
from timm_tricks.errors import UnknownModelError
from timm_tricks.layers import PyConv2d
from timm_tricks.profile import (
    PEAK_MEMORY_CPU,
    PEAK_MEMORY_CUDA,
    PEAK_MEMORY_NOT_MEASURED,
    DeviceUnavailableError,
    InvalidSetupError,
    MissingDependencyError,
    ProfileSetup,
    count_flops,
    count_params,
    measure_latency,
)

from model_matrix import REPRESENTATIVE_MODELS
from spec_figures import (
    DEFORM_SAMPLING_TOTALS,
    OCTRESNET_LAYERS,
    SPEC_FIGURES,
    TIMM_FVCORE_GMACS,
    oct_upsample_difference,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA device')
needs_onnx = pytest.mark.skipif(
    importlib.util.find_spec('onnxruntime') is None or importlib.util.find_spec('onnx') is None,
    reason='the onnxruntime runtime needs the onnx extra (pip install "timm-tricks[onnx]")')
OUR_MODELS = timm_tricks.list_models()
pytestmark = pytest.mark.usefixtures('one_cpu_thread')  # nothing here is timed


class DeformConv(nn.Module):
    """A DCNv2 layer written against torchvision's public wrapper: an offset/mask conv, then deform_conv2d."""

    def __init__(self, in_chs: int, out_chs: int, stride: int = 1):
        super().__init__()
        self.stride = stride
        self.weight = nn.Parameter(torch.randn(out_chs, in_chs, 3, 3) * 0.1)
        self.conv_offset = nn.Conv2d(in_chs, 27, 3, stride=stride, padding=1)

    def forward(self, x):
        offset_and_mask = self.conv_offset(x)
        return torchvision.ops.deform_conv2d(
            x, offset_and_mask[:, :18], self.weight, stride=self.stride, padding=1,
            mask=offset_and_mask[:, 18:].sigmoid())


def deform_conv2d_flops(input_shape, weight_shape, *args, out_shape, **kwargs) -> int:
    """FlopCounterMode formula (2 FLOPs per MAC) for torchvision::deform_conv2d, as for the conv it replaces."""
    return 2 * math.prod(out_shape) * math.prod(weight_shape[1:])


def flop_counter_mode_flops(model: nn.Module, input_size) -> int:
    """Independent count: torch's dispatch-level counter, with the deformable conv formula registered for it."""
    counter = FlopCounterMode(display=False, custom_mapping={torch.ops.torchvision.deform_conv2d: deform_conv2d_flops})
    with torch.no_grad(), counter:
        model.eval()(torch.randn(1, *input_size))
    return counter.get_total_flops()


def build_without_init(name: str) -> nn.Module:
    """The model on the CPU with every parameter and buffer zeroed, with a 1000-class head (the spec's protocol, also
    for detection-only defaults). Building on the meta device and materialising with `to_empty` skips weight init
    (timm resnet152: 0.14 s instead of 0.68 s); the values change no count, and zeros avoid NaN / denormal garbage in
    the forward that fvcore traces."""
    with torch.device('meta'):
        model = timm.create_model(name, num_classes=1000)
    model = model.to_empty(device='cpu')
    with torch.no_grad():
        for tensor in itertools.chain(model.parameters(), model.buffers()):
            tensor.zero_()
    return model


# --- hand-computed MACs of small layers ----------------------------------------------------------------------------

def test_grouped_conv_macs():
    conv = nn.Conv2d(8, 16, 3, padding=1, groups=4)  # bias is not counted
    flops = count_flops(conv, (8, 10, 10))
    assert flops.total == flops.conv_linear == 16 * 10 * 10 * (8 // 4) * 3 * 3
    assert flops.unsupported_ops == {}


def test_pyramid_of_convs_macs():
    # levels (out channels, kernel, groups) on 16 input channels, stride 2: 9x9 -> 5x5
    pyconv = PyConv2d(16, [4, 4, 8], kernel_sizes=[3, 5, 7], groups=[1, 4, 8], stride=2)
    expected = sum(out * 5 * 5 * (16 // g) * k * k for out, k, g in [(4, 3, 1), (4, 5, 4), (8, 7, 8)])
    flops = count_flops(pyconv, (16, 9, 9))
    assert flops.total == flops.by_operator['conv'] == expected == 44_000
    assert flops.unsupported_ops == {}


def test_deformable_conv_counts_as_the_conv_it_replaces():
    flops = count_flops(DeformConv(64, 64), (64, 56, 56))
    assert flops.by_operator['deform_conv2d'] == 64 * 64 * 9 * 56 * 56 == 115_605_504  # dcnv2.md §7
    assert flops.by_operator['conv'] == 27 * 56 * 56 * 64 * 9  # the offset/mask predictor
    assert flops.conv_linear == flops.total
    assert flops.unsupported_ops == {}


def test_deformable_conv_sampling_cost():
    flops = count_flops(DeformConv(8, 16, stride=2), (8, 12, 12), include_deform_sampling=True)
    assert flops.by_operator['deform_conv2d'] == 16 * 6 * 6 * 8 * 9
    assert flops.by_operator['deform_sampling'] == 8 * 9 * 6 * 6 * 5  # N·Cin·kh·kw·Hout·Wout·(4 bilinear + 1 mask)


def test_deformable_conv_matches_flop_counter_mode():
    layer = DeformConv(64, 64)
    assert count_flops(layer, (64, 8, 8)).conv_linear * 2 == flop_counter_mode_flops(layer, (64, 8, 8))


class ZeroCostOps(nn.Module):
    """One conv, then the element-wise, pooling, padding and concatenation ops fvcore leaves unsupported."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 1, bias=False)

    def forward(self, x):
        x = F.relu(self.conv(x))
        x = F.max_pool2d(x, 2) + F.avg_pool2d(x, 2)
        x = x * torch.sigmoid(x.mean((2, 3), keepdim=True)) - F.hardswish(x)
        x = torch.cat([F.silu(x), F.leaky_relu(x), F.pad(x, (1, 1, 1, 1), mode='reflect')[..., 1:-1, 1:-1]], dim=1)
        return torch.softmax(x.sum((2, 3)), dim=1)


def test_zero_cost_ops_are_declared_and_nothing_is_logged_or_warned(caplog):
    with warnings.catch_warnings(record=True) as caught, caplog.at_level(logging.DEBUG):
        warnings.simplefilter('always')
        flops = count_flops(ZeroCostOps(), (3, 8, 8))
    assert flops.total == 4 * 8 * 8 * 3
    assert flops.unsupported_ops == {}
    assert caught == [] and caplog.records == []


class UncountedOp(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 1, bias=False)
        self.unused = nn.AvgPool2d(2)

    def forward(self, x):
        return self.conv(x).cumsum(1)


def test_unsupported_ops_and_dead_modules_are_reported_not_logged(caplog):
    with warnings.catch_warnings(record=True) as caught, caplog.at_level(logging.DEBUG):
        warnings.simplefilter('always')
        flops = count_flops(UncountedOp(), (3, 8, 8))
    assert flops.unsupported_ops == {'aten::cumsum': 1}
    assert flops.uncalled_modules == ('unused',)
    assert caught == [] and caplog.records == []


def test_batch_norm_counted_in_eval_mode_and_train_mode_kept():
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4)).train()
    flops = count_flops(model, (3, 6, 6))
    assert flops.total == 4 * 6 * 6 * 3 * 9 + 2 * 4 * 6 * 6  # eval BatchNorm: 2 per element (train would be 5)
    assert model.training


def test_per_module_table_is_fvcores():
    flops = count_flops(nn.Sequential(nn.Conv2d(3, 4, 1), nn.Flatten(), nn.Linear(4 * 4 * 4, 2)), (3, 4, 4))
    header, rule, *lines = flops.table.splitlines()
    assert header.split('|')[1:4] == [' module   ', ' #parameters or shape   ', ' #flops   ']
    assert [line.split('|')[1].strip() for line in lines[:2]] == ['model', '0']


def test_model_name_is_resolved_with_suggestions():
    with pytest.raises(UnknownModelError, match='Did you mean: .*resnet50'):
        count_flops('resnet5O')


def test_importing_fvcore_through_us_warns_nothing():
    # pytest has imported fvcore already, so check the import in a fresh interpreter that turns warnings into errors
    subprocess.run([sys.executable, '-W', 'error', '-c', 'import timm_tricks.profile'], check=True, cwd=REPO_ROOT)


# --- agreement with torch.utils.flop_counter.FlopCounterMode -------------------------------------------------------

# every family's representatives, plus a timm ResNet; 64x64 keeps them fast
FCM_MODELS = ['resnet18', *REPRESENTATIVE_MODELS]


@pytest.mark.parametrize('name', FCM_MODELS)
def test_conv_linear_matches_flop_counter_mode(name):
    model = build_without_init(name)
    fcm_macs = flop_counter_mode_flops(model, (3, 64, 64)) / 2
    assert count_flops(model, (3, 64, 64)).conv_linear == fcm_macs


@pytest.mark.parametrize('name', ['resnet18', 'pyconv_resnet18'])
def test_total_matches_flop_counter_mode(name):
    # the fvcore total adds BatchNorm and adaptive pooling (~0.3 % on ResNets), which FlopCounterMode leaves out
    model = build_without_init(name)
    fcm_macs = flop_counter_mode_flops(model, (3, 64, 64)) / 2
    assert count_flops(model, (3, 64, 64)).total == pytest.approx(fcm_macs, rel=1e-2)


# --- every registered model against the spec tables ----------------------------------------------------------------

@pytest.mark.parametrize('name', TIMM_FVCORE_GMACS)
def test_timm_models_count_as_the_spec_says(name):
    """The counter itself against the spec's figures for timm's own models (4 significant digits there)."""
    assert round(count_flops(build_without_init(name), (3, 224, 224)).total / 1e9, 4) == TIMM_FVCORE_GMACS[name]



@pytest.mark.parametrize('name', OUR_MODELS)
def test_counts_match_spec(name):
    assert name in SPEC_FIGURES, f'{name} has no figures in tests/spec_figures.py'
    spec = SPEC_FIGURES[name]
    model = build_without_init(name)
    assert sum(p.numel() for p in model.parameters()) == spec.params
    flops = count_flops(
        model, (3, 224, 224), include_deform_sampling=name in DEFORM_SAMPLING_TOTALS, table_depth=None)
    assert flops.unsupported_ops == {}
    assert flops.uncalled_modules == ()
    conv_equivalent_total = flops.total - flops.by_operator.get('deform_sampling', 0)
    # exact: the one documented convention that differs (OctResNet's upsampling) is computed, not tolerated
    convention = oct_upsample_difference(OCTRESNET_LAYERS[name]) if name in OCTRESNET_LAYERS else 0
    if spec.fvcore_total is not None:
        assert conv_equivalent_total == spec.fvcore_total + convention
    if spec.conv_linear is not None:
        assert flops.conv_linear == spec.conv_linear
    if name in DEFORM_SAMPLING_TOTALS:
        assert flops.total == DEFORM_SAMPLING_TOTALS[name]


# --- parameters and activations ------------------------------------------------------------------------------------

class PartlyUsed(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)  # 8*3*9 + 8 = 224
        self.head = nn.Linear(8, 5)  # 45, frozen below
        self.aux = nn.Linear(8, 3)  # 27, never called
        self.head.requires_grad_(False)

    def forward(self, x):
        return self.head(self.conv(x).mean((2, 3)))


def test_param_counts():
    model = PartlyUsed()
    counts = count_params(model, (3, 6, 6))
    assert (counts.total, counts.trainable, counts.used_in_forward) == (296, 251, 269)
    assert counts.activations == 8 * 6 * 6 + 5  # outputs of the conv and the linear layer
    # nothing left behind: no gradients written, frozen stays frozen
    assert all(p.grad is None for p in model.parameters())
    assert not any(p.requires_grad for p in model.head.parameters())


def test_param_counts_of_a_features_only_model():
    model = timm.create_model('resnet18', features_only=True, out_indices=(1, 2))
    counts = count_params(model, (3, 32, 32))
    assert counts.used_in_forward == counts.total == sum(p.numel() for p in model.parameters())


def test_deformable_conv_activations():
    assert count_params(DeformConv(8, 16), (8, 5, 5)).activations == 27 * 5 * 5 + 16 * 5 * 5


# --- latency -------------------------------------------------------------------------------------------------------

def tiny_model() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(8, 10))


def tiny_setup(**settings) -> ProfileSetup:
    return ProfileSetup(**{'input_size': (3, 16, 16), 'warmup': 1, 'iters': 2, **settings})


def test_cpu_latency_is_sane():
    result = measure_latency(tiny_model(), tiny_setup(iters=5), batch_size=4)
    assert result.p90_ms >= result.median_ms > 0
    assert result.batch_size == result.requested_batch_size == 4
    assert result.images_per_sec == pytest.approx(4 * 1000 / result.median_ms)
    assert (result.setup.device.type, result.setup.precision, result.setup.layout) == ('cpu', 'fp32', 'nchw')
    assert result.setup.runtime == 'eager' and result.threads == torch.get_num_threads()
    assert result.peak_memory_kind == PEAK_MEMORY_CPU


def test_cpu_latency_with_bf16_autocast_channels_last_and_threads():
    model = tiny_model()
    result = measure_latency(model, tiny_setup(amp='bf16', channels_last=True, threads=2), 2)
    assert (result.setup.precision, result.setup.layout, result.threads) == ('amp_bf16', 'nhwc', 2)
    assert model[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert torch.get_num_threads() == 1  # the setup's threads are restored after the measurement


@pytest.mark.parametrize('settings, message', [
    ({'amp': 'fp8'}, "amp must be None, 'bf16' or 'fp16'"),
    ({'runtime': 'tensorrt'}, "Unknown runtime 'tensorrt'"),
    ({'iters': 0}, 'iters >= 1'),
    ({'input_size': (224, 224)}, 'three positive ints'),
    ({'runtime': 'onnxruntime', 'amp': 'bf16'}, 'no amp'),
    ({'runtime': 'onnxruntime', 'channels_last': True}, 'no channels_last'),
])
def test_invalid_setup(settings, message):
    with pytest.raises(InvalidSetupError, match=message):
        ProfileSetup(**settings)


def test_setup_is_frozen():
    with pytest.raises(AttributeError):
        tiny_setup().runtime = 'fused'


def test_missing_onnxruntime_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, 'onnxruntime', None)  # `import onnxruntime` fails, as where it is not installed
    with pytest.raises(MissingDependencyError, match=r'needs onnxruntime .*: pip install "timm-tricks\[onnx\]"'):
        ProfileSetup(runtime='onnxruntime')


def conv_net(width: int) -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.ReLU(), nn.Conv2d(width, width, 3, padding=1))


def test_cpu_peak_memory_is_the_models_own():
    """Weights plus what the forward allocates, independent of what ran before in the process: the small model
    reports the same before and after the big one (a process RSS figure would only grow), the big one more."""
    setup = tiny_setup()
    small_before = measure_latency(conv_net(4), setup, 2).peak_memory_bytes
    big = measure_latency(conv_net(64), setup, 2).peak_memory_bytes
    small_after = measure_latency(conv_net(4), setup, 2).peak_memory_bytes
    assert small_before == small_after < big
    # at least the weights, and the second conv's input and output (2 x 64 x 16 x 16 fp32 each), alive together
    weights = (64 * 3 * 9 + 64) * 4 + (64 * 64 * 9 + 64) * 4
    assert big >= weights + 2 * (2 * 64 * 16 * 16 * 4)


class TwoBranches(nn.Module):
    """A 3x3 and a 1x1 conv added, merged into one 3x3 conv by `reparameterize()` (the protocol of
    `timm.utils.reparameterize_model`)."""

    def __init__(self):
        super().__init__()
        self.conv3 = nn.Conv2d(3, 8, 3, padding=1)
        self.conv1 = nn.Conv2d(3, 8, 1)

    def forward(self, x):
        return self.conv3(x) + self.conv1(x) if self.conv1 is not None else self.conv3(x)

    def reparameterize(self):
        with torch.no_grad():
            self.conv3.weight[:, :, 1:2, 1:2] += self.conv1.weight
            self.conv3.bias += self.conv1.bias
        self.conv1 = None


def test_fused_runtime_times_a_reparameterized_copy():
    model = nn.Sequential(TwoBranches())  # timm reparameterizes children, not the root
    eager = measure_latency(model, tiny_setup(), 2)
    fused = measure_latency(model, tiny_setup(runtime='fused'), 2)
    assert model[0].conv1 is not None  # the caller's model is left as it was
    assert fused.setup.runtime == 'fused' and fused.median_ms > 0
    # what was measured is the reparameterized model: it has no 1x1 weights (8*3 + 8 fp32 values)
    reparameterized = timm.utils.reparameterize_model(model)
    assert fused.peak_memory_bytes == measure_latency(reparameterized, tiny_setup(), 2).peak_memory_bytes
    assert eager.peak_memory_bytes - fused.peak_memory_bytes >= (8 * 3 + 8) * 4


def test_compiled_runtime():
    result = measure_latency(tiny_model(), tiny_setup(runtime='compiled'), 2)
    assert result.setup.runtime == 'compiled' and result.median_ms > 0
    assert result.peak_memory_kind == PEAK_MEMORY_CPU and result.peak_memory_bytes > 0


@needs_onnx
def test_onnxruntime_runtime():
    result = measure_latency(tiny_model(), tiny_setup(runtime='onnxruntime', threads=1), 2)
    assert (result.setup.runtime, result.threads, result.batch_size) == ('onnxruntime', 1, 2)
    assert result.p90_ms >= result.median_ms > 0
    assert (result.peak_memory_bytes, result.peak_memory_kind) == (None, PEAK_MEMORY_NOT_MEASURED)


@pytest.mark.skipif(torch.cuda.is_available(), reason='checks the error raised where CUDA is missing')
def test_cuda_without_cuda_is_a_clear_error():
    with pytest.raises(DeviceUnavailableError, match=r'CUDA was requested .*\(--device cpu\)'):
        ProfileSetup(device='cuda')


@needs_cuda
def test_cuda_latency():
    setup = ProfileSetup(input_size=(3, 32, 32), device='cuda', warmup=2, iters=5, amp='fp16', channels_last=True)
    result = measure_latency(tiny_model(), setup, batch_size=8)
    assert result.p90_ms >= result.median_ms > 0
    assert result.setup.device.type == 'cuda' and result.device_name == torch.cuda.get_device_name()
    assert result.peak_memory_kind == PEAK_MEMORY_CUDA and result.peak_memory_bytes > 0


@needs_cuda
def test_cuda_peak_memory_is_the_models_own():
    setup = ProfileSetup(input_size=(3, 32, 32), device='cuda', warmup=1, iters=2)
    small_before = measure_latency(conv_net(4), setup, 2).peak_memory_bytes
    big = measure_latency(conv_net(64), setup, 2).peak_memory_bytes
    small_after = measure_latency(conv_net(4), setup, 2).peak_memory_bytes
    assert small_before == small_after < big


@needs_cuda
def test_cuda_latency_of_a_compiled_model():
    setup = ProfileSetup(input_size=(3, 32, 32), device='cuda', runtime='compiled', warmup=2, iters=3)
    assert measure_latency(tiny_model(), setup, 4).median_ms > 0


class FitsUpToBatch(nn.Module):
    """Raises CUDA's out-of-memory error for batches larger than `max_batch`."""

    def __init__(self, max_batch: int):
        super().__init__()
        self.max_batch = max_batch
        self.conv = nn.Conv2d(3, 4, 1)

    def forward(self, x):
        if x.shape[0] > self.max_batch:
            raise torch.OutOfMemoryError('CUDA out of memory. Tried to allocate 1 TiB')
        return self.conv(x)


@needs_cuda
def test_cuda_out_of_memory_reduces_the_batch():
    setup = ProfileSetup(input_size=(3, 8, 8), device='cuda', warmup=1, iters=2)
    result = measure_latency(FitsUpToBatch(20), setup, 64)
    assert (result.requested_batch_size, result.batch_size) == (64, 16)  # timm's decay: 64, 48, 32, 24, 16
