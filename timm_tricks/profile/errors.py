"""Errors of the profiling tools, all `TricksError`s so the CLI prints them as `error: ...`."""
from ..errors import TricksError


class DeviceUnavailableError(TricksError, RuntimeError):
    """A device was requested (e.g. `cuda`) that this torch build or machine does not have."""


class ProfileOutOfMemoryError(TricksError, RuntimeError):
    """The model does not fit on the device even at batch size 1."""


class MissingDependencyError(TricksError, ImportError):
    """An optional package (e.g. matplotlib for the zoo plots) is not installed."""
