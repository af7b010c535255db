"""`ProfileSetup`: how latencies are measured (device, precision, layout, runtime, iterations, threads, input size),
built once – by the CLI or by a caller – and passed down to every measurement."""
from dataclasses import dataclass
from typing import Optional, Union

import torch

from ._models import InputSize
from .errors import DeviceUnavailableError, InvalidSetupError, MissingDependencyError

# eager: the model as built. fused: `timm_tricks.fuse_for_inference` of a copy (every foldable norm folded, the stem's
# too), in the setup's layout (`channels_last` or not, as every runtime). compiled: `torch.compile(model)`.
# onnxruntime: the model exported to ONNX (opset 19) and run by an onnxruntime CPU session.
RUNTIMES = ('eager', 'fused', 'compiled', 'onnxruntime')
AMP_DTYPES = {'bf16': torch.bfloat16, 'fp16': torch.float16}
ONNX_EXTRA_HINT = 'pip install "timm-tricks[onnx]"'


@dataclass(frozen=True, kw_only=True)
class ProfileSetup:
    """One way of measuring latency, checked on construction (an unknown device or a missing optional package fails
    here, before any model is built).

    `amp` ('bf16' / 'fp16') runs the forward under `torch.autocast` (weights stay fp32); `threads` is the number of
    intra-op threads of torch (set for the measurement, then restored) and of onnxruntime, None for torch's current
    number. `warmup` untimed iterations precede `iters` timed ones."""
    input_size: InputSize = (3, 224, 224)
    device: Union[str, torch.device] = 'cpu'
    amp: Optional[str] = None
    channels_last: bool = False
    runtime: str = 'eager'
    warmup: int = 10
    iters: int = 40
    threads: Optional[int] = None

    def __post_init__(self):
        # frozen: normalise through object.__setattr__, as dataclasses document for __post_init__
        object.__setattr__(self, 'device', resolve_device(self.device))
        object.__setattr__(self, 'input_size', tuple(self.input_size))
        if len(self.input_size) != 3 or not all(isinstance(s, int) and s > 0 for s in self.input_size):
            raise InvalidSetupError(f'input_size must be three positive ints (C, H, W), not {self.input_size}.')
        if self.amp is not None and self.amp not in AMP_DTYPES:
            raise InvalidSetupError(f"amp must be None, 'bf16' or 'fp16', not {self.amp!r}.")
        if self.runtime not in RUNTIMES:
            raise InvalidSetupError(f"Unknown runtime {self.runtime!r}; use one of {', '.join(RUNTIMES)}.")
        if self.warmup < 0 or self.iters < 1:
            raise InvalidSetupError(f'warmup must be >= 0 and iters >= 1, not {self.warmup} and {self.iters}.')
        if self.threads is not None and self.threads < 1:
            raise InvalidSetupError(f'threads must be None or >= 1, not {self.threads}.')
        if self.runtime == 'onnxruntime':
            if self.device.type != 'cpu' or self.amp is not None or self.channels_last:
                raise InvalidSetupError(
                    'The onnxruntime runtime runs the fp32 model on the CPU (its own layout): it takes no device '
                    f'other than cpu, no amp and no channels_last (got {self.device}, amp={self.amp}, '
                    f'channels_last={self.channels_last}).')
            import_onnxruntime()

    @property
    def amp_dtype(self) -> Optional[torch.dtype]:
        return None if self.amp is None else AMP_DTYPES[self.amp]

    @property
    def precision(self) -> str:
        """'fp32', 'amp_bf16' or 'amp_fp16'."""
        return 'fp32' if self.amp is None else f'amp_{self.amp}'

    @property
    def layout(self) -> str:
        return 'nhwc' if self.channels_last else 'nchw'


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


def import_onnxruntime():
    """The onnxruntime module, or `MissingDependencyError` naming the extra that installs it."""
    try:
        import onnxruntime
    except ImportError:
        raise MissingDependencyError(
            f'The onnxruntime runtime needs onnxruntime (and onnx for the export): {ONNX_EXTRA_HINT}.') from None
    return onnxruntime
