"""Video data: decoding (PyAV, frame folders), annotation formats, sampling, transforms, datasets, synthetic set."""

from vidconv_edge.data.dataset import VideoClipDataset, build_datasets, load_test_clip
from vidconv_edge.data.decode import VideoReadError, read_frames, video_info
from vidconv_edge.data.synth import write_synthetic_dataset
from vidconv_edge.data.transforms import normalize

__all__ = [
    "VideoClipDataset",
    "VideoReadError",
    "build_datasets",
    "load_test_clip",
    "normalize",
    "read_frames",
    "video_info",
    "write_synthetic_dataset",
]
