"""Errors of the profiling tools, all `TricksError`s so the CLI prints them as `error: ...`."""
from ..errors import TricksError


class DeviceUnavailableError(TricksError, RuntimeError):
    """A device was requested (e.g. `cuda`) that this torch build or machine does not have."""


class InvalidSetupError(TricksError, ValueError):
    """A `ProfileSetup` value out of range, or settings that do not go together (e.g. AMP with onnxruntime)."""


class ProfileOutOfMemoryError(TricksError, RuntimeError):
    """The model does not fit on the device even at batch size 1."""


class MissingDependencyError(TricksError, ImportError):
    """An optional package (e.g. onnxruntime for the `onnxruntime` runtime) is not installed."""


class ReportNotWritableError(TricksError, OSError):
    """The report's output directory cannot be created or written to."""
