"""Inference latency and throughput of one model at one batch size, the way timm's benchmark.py measures them."""
import gc
import platform
import resource
import sys
import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Iterator, List, Optional, Tuple, Union

import numpy as np
import torch
from timm.utils import decay_batch_step
from torch import nn

from ._models import InputSize, ModelOrName, eval_mode, load_model
from .errors import DeviceUnavailableError, ProfileOutOfMemoryError

AmpDtype = Union[None, str, torch.dtype]

PEAK_MEMORY_CUDA = 'cuda_max_allocated'  # torch.cuda.max_memory_allocated over the timed iterations
PEAK_MEMORY_PROCESS_RSS = 'process_peak_rss'  # getrusage ru_maxrss: the peak of the whole process since it started

_AMP_DTYPES = {'bf16': torch.bfloat16, 'bfloat16': torch.bfloat16, 'fp16': torch.float16, 'float16': torch.float16}
_PRECISION_NAMES = {None: 'fp32', torch.bfloat16: 'amp_bf16', torch.float16: 'amp_fp16'}


@dataclass(frozen=True)
class LatencyResult:
    """Per-batch forward time over `num_iters` timed iterations after `num_warmup` untimed ones."""
    model: str
    device: str  # 'cpu' or 'cuda:<index>'
    device_name: str  # CPU model or GPU name
    batch_size: int  # what was measured: on CUDA out-of-memory the batch is reduced from `requested_batch_size`
    requested_batch_size: int
    input_size: InputSize
    precision: str  # 'fp32', 'amp_bf16' or 'amp_fp16' (autocast; weights stay fp32)
    channels_last: bool
    compiled: bool
    num_warmup: int
    num_iters: int
    median_ms: float
    p90_ms: float
    peak_memory_bytes: int
    peak_memory_kind: str  # PEAK_MEMORY_CUDA, or PEAK_MEMORY_PROCESS_RSS on CPU: process lifetime, not this model

    @property
    def images_per_sec(self) -> float:
        """Throughput at the median batch time (timm's `infer_samples_per_sec` divides by the mean instead)."""
        return self.batch_size * 1000.0 / self.median_ms

    @property
    def layout(self) -> str:
        return 'nhwc' if self.channels_last else 'nchw'


def measure_latency(
        model_or_name: ModelOrName,
        batch_size: int = 1,
        input_size: InputSize = (3, 224, 224),
        device: Union[str, torch.device] = 'cpu',
        amp_dtype: AmpDtype = None,
        channels_last: bool = False,
        compile: bool = False,
        num_warmup: int = 10,
        num_iters: int = 40,
) -> LatencyResult:
    """Time the forward pass of a batch of `batch_size` random images of `input_size` (C, H, W).

    Runs under `torch.inference_mode()` and in eval mode, with `torch.autocast(amp_dtype)` if given ('bf16' / 'fp16'),
    after `torch.compile` if `compile`. On CUDA: `cudnn.benchmark` on, each iteration timed with CUDA events and
    synchronised, peak memory = max allocated during the timed iterations, and on out-of-memory the batch is reduced
    (timm's `decay_batch_step`) until it fits. A model passed in is moved to `device` / channels_last in place.
    """
    device = resolve_device(device)
    amp = resolve_amp_dtype(amp_dtype)
    model, name = load_model(model_or_name)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    model.to(device=device, memory_format=memory_format)
    batch = batch_size
    with eval_mode(model), _cuda_settings(device):
        runner = torch.compile(model) if compile else model
        while True:
            try:
                times_ms, peak_bytes = _time_forward(
                    runner, device, batch, input_size, amp, memory_format, num_warmup, num_iters)
                break
            except RuntimeError as error:  # torch.OutOfMemoryError is one
                if device.type != 'cuda' or not _is_out_of_memory(error):
                    raise
                smaller = decay_batch_step(batch)
                if smaller == 0:
                    raise ProfileOutOfMemoryError(
                        f'{name} does not fit on {_device_name(device)} at {input_size} even at batch size 1.'
                    ) from error
            # outside the `except`, so the failed attempt's tensors (held by the traceback) can be freed
            gc.collect()
            torch.cuda.empty_cache()
            batch = smaller
    median_ms, p90_ms = np.percentile(times_ms, [50, 90]).tolist()
    return LatencyResult(
        model=name,
        device=str(device),
        device_name=_device_name(device),
        batch_size=batch,
        requested_batch_size=batch_size,
        input_size=tuple(input_size),
        precision=_PRECISION_NAMES[amp],
        channels_last=channels_last,
        compiled=compile,
        num_warmup=num_warmup,
        num_iters=num_iters,
        median_ms=median_ms,
        p90_ms=p90_ms,
        peak_memory_bytes=peak_bytes,
        peak_memory_kind=PEAK_MEMORY_CUDA if device.type == 'cuda' else PEAK_MEMORY_PROCESS_RSS,
    )


def resolve_device(device: Union[str, torch.device]) -> torch.device:
    """`cpu` or an available `cuda[:index]`; anything else raises `DeviceUnavailableError` with the reason."""
    try:
        device = torch.device(device)
    except RuntimeError:
        raise DeviceUnavailableError(f"Unknown device '{device}'; use 'cpu' or 'cuda[:index]'.") from None
    if device.type == 'cpu':
        return device
    if device.type != 'cuda':
        raise DeviceUnavailableError(f"Latency is measured on 'cpu' or 'cuda' only, not on '{device.type}'.")
    if not torch.cuda.is_available():
        raise DeviceUnavailableError(
            f"CUDA was requested but torch {torch.__version__} finds no usable CUDA device here "
            f"(torch.cuda.is_available() is False). Use device 'cpu' (--device cpu), or a machine with a GPU."
        )
    index = torch.cuda.current_device() if device.index is None else device.index
    if index >= torch.cuda.device_count():
        raise DeviceUnavailableError(f'cuda:{index} requested, but only {torch.cuda.device_count()} GPU(s) found.')
    return torch.device('cuda', index)


def resolve_amp_dtype(amp_dtype: AmpDtype) -> Optional[torch.dtype]:
    if amp_dtype is None or (isinstance(amp_dtype, torch.dtype) and amp_dtype in _PRECISION_NAMES):
        return amp_dtype
    if amp_dtype in _AMP_DTYPES:
        return _AMP_DTYPES[amp_dtype]
    raise ValueError(f"amp_dtype must be None, 'bf16' or 'fp16', not {amp_dtype!r}.")


def precision_name(amp_dtype: AmpDtype) -> str:
    """'fp32', 'amp_bf16' or 'amp_fp16'."""
    return _PRECISION_NAMES[resolve_amp_dtype(amp_dtype)]


def _time_forward(
        runner: nn.Module,
        device: torch.device,
        batch_size: int,
        input_size: InputSize,
        amp: Optional[torch.dtype],
        memory_format: torch.memory_format,
        num_warmup: int,
        num_iters: int,
) -> Tuple[List[float], int]:
    """Per-iteration times in ms, and the peak memory in bytes."""
    cuda = device.type == 'cuda'
    x = torch.randn(batch_size, *input_size, device=device).contiguous(memory_format=memory_format)
    autocast = torch.autocast(device.type, dtype=amp) if amp is not None else nullcontext()
    times_ms = []
    with torch.inference_mode(), autocast:
        for _ in range(num_warmup):
            runner(x)
        if cuda:
            torch.cuda.synchronize(device)
            torch.cuda.reset_peak_memory_stats(device)
        for _ in range(num_iters):
            if cuda:
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                runner(x)
                end.record()
                end.synchronize()
                times_ms.append(start.elapsed_time(end))
            else:
                start_s = time.perf_counter()
                runner(x)
                times_ms.append((time.perf_counter() - start_s) * 1000.0)
    peak_bytes = torch.cuda.max_memory_allocated(device) if cuda else _process_peak_rss_bytes()
    return times_ms, peak_bytes


def _process_peak_rss_bytes() -> int:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == 'darwin' else peak * 1024  # macOS reports bytes, Linux KiB


def _is_out_of_memory(error: Exception) -> bool:
    # cuDNN / cuBLAS allocation failures arrive as plain RuntimeErrors mentioning it
    return isinstance(error, torch.OutOfMemoryError) or 'out of memory' in str(error).lower()


@contextmanager
def _cuda_settings(device: torch.device) -> Iterator[None]:
    """On CUDA: `device` as the current device (CUDA events record on its stream) and cuDNN autotuning on (as
    timm's benchmark); the caller's settings back after."""
    if device.type != 'cuda':
        yield
        return
    previous = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = True
    try:
        with torch.cuda.device(device):
            yield
    finally:
        torch.backends.cudnn.benchmark = previous


def _device_name(device: torch.device) -> str:
    if device.type == 'cuda':
        return torch.cuda.get_device_name(device)
    return _cpu_model_name()


def _cpu_model_name() -> str:
    try:
        with open('/proc/cpuinfo', encoding='utf-8') as cpuinfo:
            for line in cpuinfo:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
