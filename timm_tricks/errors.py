"""Exceptions with messages a user can act on."""


class TricksError(Exception):
    """Base class of the errors timm_tricks raises on bad input."""


class UnknownModelError(TricksError, KeyError):
    """A model name that is neither ours nor timm's; the message suggests close matches."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ''


class CheckpointMismatchError(TricksError, RuntimeError):
    """A checkpoint whose keys or shapes do not fit the model; the message names them."""


class NoPretrainedWeightsError(TricksError, RuntimeError):
    """`pretrained=True` for an architecture that has no released weights."""


class ExportError(TricksError, RuntimeError):
    """A model, op or output path that cannot be exported (ONNX); the message names the model and the cause."""
