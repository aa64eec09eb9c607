"""vidconv-edge: efficient video recognition from training to an FPGA."""

__version__ = "0.1.0"

from vidconv_edge.errors import UserError  # noqa: E402

__all__ = ["UserError", "__version__"]
