"""Streaming sliding-window inference: the early-net runs once per frame into a ring of the last
L maps; the later-net runs on their collage. See :func:`run_stream` and :class:`StreamEngine`."""

from vidconv_edge.stream.backends import BACKENDS, Backend, open_backend
from vidconv_edge.stream.engine import Prediction, StreamEngine
from vidconv_edge.stream.multi import run_streams
from vidconv_edge.stream.run import print_summary, run_stream
from vidconv_edge.stream.sources import Frame, FrameReader, Source, open_source

__all__ = [
    "BACKENDS",
    "Backend",
    "Frame",
    "FrameReader",
    "Prediction",
    "Source",
    "StreamEngine",
    "open_backend",
    "open_source",
    "print_summary",
    "run_stream",
    "run_streams",
]
