"""Why a build stops. Subclasses of UserError: the CLI prints the one message and exits non-zero."""

from vidconv_edge.errors import UserError


class NotInHardware(UserError):
    """A node of the model would stay outside the dataflow partition."""


class VerificationFailed(UserError):
    """The HW-layer graph does not reproduce the QONNX model bit for bit."""
