"""Model families and their registry. Importing this package registers every model."""

from vidconv_edge.models import sevnet, vidconv  # noqa: F401  (registration side effect)
from vidconv_edge.models.base import InputSpec, VideoClassifier
from vidconv_edge.models.registry import create_model, get_entry, list_models, register_model

__all__ = ["InputSpec", "VideoClassifier", "create_model", "get_entry", "list_models", "register_model"]
