"""Inference latency, throughput and peak memory of one model at one batch size, the way timm's benchmark.py
measures latency, in one of the runtimes of `setup.RUNTIMES`."""
import gc
import os
import platform
import sys
import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Iterator, List, Optional

import numpy as np
import torch
from timm.utils import decay_batch_step
from torch import nn

from ._models import ModelOrName, eval_mode, load_model
from .errors import ProfileOutOfMemoryError
from .runtimes import Forward, make_forward, memory_format, prepare_model
from .setup import ProfileSetup

# How `peak_memory_bytes` was measured. Both count the model's parameters and buffers plus the peak of what one
# forward allocates on top of what was allocated before it (activations and workspaces; not the input batch), so a
# model's figure does not depend on what ran before it in the process.
PEAK_MEMORY_CUDA = 'cuda_max_allocated'  # torch.cuda.max_memory_allocated after reset_peak_memory_stats
PEAK_MEMORY_CPU = 'cpu_profiler_allocated'  # running sum of torch.profiler's allocation events (profile_memory)
PEAK_MEMORY_NOT_MEASURED = 'not_measured'  # onnxruntime allocates outside torch


@dataclass(frozen=True)
class LatencyResult:
    """Per-batch forward time over `setup.iters` timed iterations after `setup.warmup` untimed ones."""
    model: str
    setup: ProfileSetup
    device_name: str  # CPU model or GPU name
    threads: int  # intra-op threads the forward ran with
    batch_size: int  # what was measured: on CUDA out-of-memory the batch is reduced from `requested_batch_size`
    requested_batch_size: int
    median_ms: float
    p90_ms: float
    peak_memory_bytes: Optional[int]  # None where not measured (onnxruntime)
    peak_memory_kind: str  # PEAK_MEMORY_CUDA, PEAK_MEMORY_CPU or PEAK_MEMORY_NOT_MEASURED

    @property
    def images_per_sec(self) -> float:
        """Throughput at the median batch time (timm's `infer_samples_per_sec` divides by the mean instead)."""
        return self.batch_size * 1000.0 / self.median_ms


def measure_latency(model_or_name: ModelOrName, setup: ProfileSetup = ProfileSetup(), batch_size: int = 1
                    ) -> LatencyResult:
    """Time the forward pass of a batch of `batch_size` random images of `setup.input_size` in `setup.runtime`.

    Runs under `torch.inference_mode()` and in eval mode, under `torch.autocast` if `setup.amp`. After timing, one
    more forward measures the peak memory (see PEAK_MEMORY_*). On CUDA: `cudnn.benchmark` on, each iteration timed
    with CUDA events and synchronised, and on out-of-memory the batch is reduced (timm's `decay_batch_step`) until it
    fits. A model passed in is moved to `setup.device` and its memory format in place (the fused runtime times a
    copy).
    """
    model, name = load_model(model_or_name)
    device = setup.device
    model.to(device=device, memory_format=memory_format(setup))
    batch = batch_size
    with eval_mode(model), _cuda_settings(device), _torch_threads(setup.threads):
        prepared = prepare_model(model, setup)
        while True:
            try:
                forward = make_forward(prepared, setup, batch)
                times_ms = _time_forward(forward, setup)
                peak_bytes, peak_kind = _peak_memory(forward, prepared, setup)
                break
            except RuntimeError as error:  # torch.OutOfMemoryError is one
                if device.type != 'cuda' or not _is_out_of_memory(error):
                    raise
                smaller = decay_batch_step(batch)
                if smaller == 0:
                    raise ProfileOutOfMemoryError(
                        f'{name} does not fit on {_device_name(device)} at {setup.input_size} even at batch size 1.'
                    ) from error
            # outside the `except`, so the failed attempt's tensors (held by the traceback and by the last
            # forward's batch) can be freed
            forward = None
            gc.collect()
            torch.cuda.empty_cache()
            batch = smaller
        threads = torch.get_num_threads()  # the setup's, or torch's own if it names none
    median_ms, p90_ms = np.percentile(times_ms, [50, 90]).tolist()
    return LatencyResult(
        model=name,
        setup=setup,
        device_name=_device_name(device),
        threads=threads,
        batch_size=batch,
        requested_batch_size=batch_size,
        median_ms=median_ms,
        p90_ms=p90_ms,
        peak_memory_bytes=peak_bytes,
        peak_memory_kind=peak_kind,
    )


def _time_forward(forward: Forward, setup: ProfileSetup) -> List[float]:
    """Per-iteration times in ms."""
    cuda = setup.device.type == 'cuda'
    times_ms = []
    with torch.inference_mode(), _autocast(setup):
        for _ in range(setup.warmup):
            forward()
        if cuda:
            torch.cuda.synchronize(setup.device)
        for _ in range(setup.iters):
            if cuda:
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                forward()
                end.record()
                end.synchronize()
                times_ms.append(start.elapsed_time(end))
            else:
                start_s = time.perf_counter()
                forward()
                times_ms.append((time.perf_counter() - start_s) * 1000.0)
    return times_ms


def _peak_memory(forward: Forward, prepared: nn.Module, setup: ProfileSetup):
    """(bytes, kind): the model's parameters and buffers plus the peak that one forward allocates above what was
    allocated before it, or (None, PEAK_MEMORY_NOT_MEASURED) for onnxruntime."""
    if setup.runtime == 'onnxruntime':
        return None, PEAK_MEMORY_NOT_MEASURED
    with torch.inference_mode(), _autocast(setup):
        if setup.device.type == 'cuda':
            torch.cuda.synchronize(setup.device)
            before = torch.cuda.memory_allocated(setup.device)
            torch.cuda.reset_peak_memory_stats(setup.device)
            forward()
            torch.cuda.synchronize(setup.device)
            forward_peak, kind = torch.cuda.max_memory_allocated(setup.device) - before, PEAK_MEMORY_CUDA
        else:
            forward_peak, kind = _cpu_forward_peak(forward), PEAK_MEMORY_CPU
    return _weight_bytes(prepared) + forward_peak, kind


def _cpu_forward_peak(forward: Forward) -> int:
    """Peak of the bytes allocated and not yet freed during one forward, from the allocation (+) and free (-) events
    torch's profiler records for every CPU allocation of torch's allocator, intermediate buffers inside kernels
    included."""
    profiler = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], profile_memory=True)
    with _quiet_stderr():
        profiler.start()
    try:
        forward()
    finally:
        with _quiet_stderr():
            profiler.stop()
    events = [e for e in profiler.profiler.kineto_results.events() if e.name() == '[memory]']
    allocated = peak = 0
    for event in sorted(events, key=lambda e: e.start_ns()):
        allocated += event.nbytes()
        peak = max(peak, allocated)
    return peak


def _weight_bytes(model: nn.Module) -> int:
    storages = {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes()
                for t in (*model.parameters(), *model.buffers())}  # shared weights counted once
    return sum(storages.values())


@contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Kineto writes a line to file descriptor 2 whenever the profiler starts or stops, bypassing Python: keep
    those lines off the user's terminal."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, 'w') as devnull:
            os.dup2(devnull.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _autocast(setup: ProfileSetup):
    return torch.autocast(setup.device.type, dtype=setup.amp_dtype) if setup.amp is not None else nullcontext()


def _is_out_of_memory(error: Exception) -> bool:
    # cuDNN / cuBLAS allocation failures arrive as plain RuntimeErrors mentioning it
    return isinstance(error, torch.OutOfMemoryError) or 'out of memory' in str(error).lower()


@contextmanager
def _torch_threads(threads: Optional[int]) -> Iterator[None]:
    """`threads` intra-op threads for the duration (None: leave torch's setting alone)."""
    previous = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


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
