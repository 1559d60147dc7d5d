"""Segment a video file: decode in batches, segment each batch in one forward, write an overlay.

OpenCV (``cv2.VideoCapture`` / ``cv2.VideoWriter``, FFmpeg backend) decodes and encodes. The
pieces:

* :class:`VideoReader`: opens a file with one-line errors naming it (missing, empty, not a
  video, no decodable frame) and yields its frames as lists of ``batch_size`` (H, W, 3) BGR
  arrays, remembering how many it decoded and how many the container declares;
* :func:`open_video_writer`: a writer at the input's fps and size, FourCC by extension;
* :func:`segment_video`: the per-frame loop (batched forward with
  :func:`~mmseg_hrplus.apis.inference.segment_batch`, overlay, optional label PNGs, progress).

A file whose frames stop decoding before the count its container declares (truncated or
corrupted mid-way) keeps everything decoded up to there; :func:`segment_video` reports it in
:attr:`VideoResult.error` instead of raising, so the frames written are not lost.
"""
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, List, Optional, Tuple, Union

import cv2
import numpy as np
import torch

from .inference import IMAGE_EXTENSIONS, check_image_size, segment_batch
from .overlay import check_opacity, class_palette, overlay_labels
from .progress import RateProgress

#: File extensions read as videos (lower case).
VIDEO_EXTENSIONS = ('.avi', '.mp4', '.mov', '.mkv', '.m4v', '.webm', '.mpg', '.mpeg')
#: FourCC of the overlaid video by its extension; other inputs (.webm, .mpg) are written as .mp4.
WRITER_FOURCC = {'.avi': 'MJPG', '.mp4': 'mp4v', '.m4v': 'mp4v', '.mov': 'mp4v', '.mkv': 'MJPG'}
#: Frame rate written when the container does not state one.
DEFAULT_FPS = 25.0
#: The supported input formats, as error messages list them.
SUPPORTED_FORMATS = (f'images {" ".join(IMAGE_EXTENSIONS)}; '
                     f'videos {" ".join(VIDEO_EXTENSIONS)}')


def check_batch_size(batch_size: int) -> None:
    """Raise ``ValueError`` naming ``batch_size`` unless it is at least 1."""
    if batch_size < 1:
        raise ValueError(f'batch_size={batch_size} must be at least 1')


class UnreadableVideoError(ValueError):
    """A video file OpenCV cannot open or decode; the message names the file, why, and the
    supported formats."""


def is_video(path: Union[str, Path]) -> bool:
    """Whether ``path`` has one of :data:`VIDEO_EXTENSIONS` (case-insensitive)."""
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


def overlay_video_path(video: Union[str, Path], out_stem: Union[str, Path]) -> Path:
    """Where the overlay of ``video`` goes: ``out_stem`` + the input's extension if
    :data:`WRITER_FOURCC` can write it, else ``.mp4``."""
    suffix = Path(video).suffix.lower()
    return Path(str(out_stem) + (suffix if suffix in WRITER_FOURCC else '.mp4'))


class VideoReader:
    """Frames of a video file, in batches, with the container's fps, size and frame count.

    Args:
        path: the video file.

    Raises:
        FileNotFoundError: ``path`` is not a file.
        UnreadableVideoError: the file is empty, OpenCV cannot open it, or not even its first
            frame decodes. The message names the file and :data:`SUPPORTED_FORMATS`.

    Attributes:
        fps: frames per second the container states (:data:`DEFAULT_FPS` if it states none).
        width, height: frame size in pixels.
        declared_frames: frame count the container states (0 if unknown).
        frames_read: frames decoded so far.
    """

    def __init__(self, path: Union[str, Path]):
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f'video not found: {self.path}')
        size = self.path.stat().st_size
        if size == 0:
            raise UnreadableVideoError(f'cannot read video {self.path}: the file is empty '
                                       f'(0 bytes); supported formats: {SUPPORTED_FORMATS}')
        self._capture = cv2.VideoCapture(str(self.path))
        first = self._read() if self._capture.isOpened() else None
        if first is None:
            self.close()
            raise UnreadableVideoError(
                f'cannot read video {self.path} ({size} bytes): no decodable video frame '
                f'(corrupted, truncated, or not a video at all); supported formats: '
                f'{SUPPORTED_FORMATS}')
        self._pending: Optional[np.ndarray] = first
        self.height, self.width = first.shape[:2]
        fps = self._capture.get(cv2.CAP_PROP_FPS)
        self.fps = float(fps) if fps and fps > 0 and np.isfinite(fps) else DEFAULT_FPS
        declared = self._capture.get(cv2.CAP_PROP_FRAME_COUNT)
        self.declared_frames = int(declared) if declared and declared > 0 else 0
        self.frames_read = 0

    def _read(self) -> Optional[np.ndarray]:
        ok, frame = self._capture.read()
        return frame if ok and frame is not None else None

    def batches(self, batch_size: int) -> Iterator[List[np.ndarray]]:
        """Yield the frames as lists of ``batch_size`` (H, W, 3) uint8 BGR arrays (the last
        list may be shorter) until a frame does not decode; :attr:`frames_read` counts them."""
        check_batch_size(batch_size)
        while True:
            batch: List[np.ndarray] = []
            while len(batch) < batch_size:
                frame = self._pending if self._pending is not None else self._read()
                self._pending = None
                if frame is None:
                    break
                batch.append(frame)
            self.frames_read += len(batch)
            if batch:
                yield batch
            if len(batch) < batch_size:
                return

    @property
    def stopped_early(self) -> bool:
        """Whether fewer frames decoded than the container declares (after :meth:`batches`
        ran out): the file is truncated or a frame is corrupted."""
        return self.frames_read < self.declared_frames

    def close(self) -> None:
        self._capture.release()

    def __enter__(self) -> 'VideoReader':
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_video_writer(path: Union[str, Path], fps: float, size: Tuple[int, int]) -> cv2.VideoWriter:
    """A ``cv2.VideoWriter`` for (H, W, 3) BGR frames of ``size = (width, height)`` at ``fps``,
    with the FourCC :data:`WRITER_FOURCC` gives ``path``'s extension; its folder is created.

    Raises:
        ValueError: an extension not in :data:`WRITER_FOURCC`.
        OSError: OpenCV cannot open the writer (no encoder for the FourCC, unwritable path).
    """
    path = Path(path)
    fourcc = WRITER_FOURCC.get(path.suffix.lower())
    if fourcc is None:
        raise ValueError(f'cannot write video {path}: extension {path.suffix!r} is not one of '
                         f'{sorted(WRITER_FOURCC)}')
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, tuple(size))
    if not writer.isOpened():
        raise OSError(f'cannot write video {path}: OpenCV could not open a {fourcc} writer '
                      f'({size[0]}x{size[1]} at {fps} fps)')
    return writer


@dataclass
class VideoResult:
    """What :func:`segment_video` wrote.

    Attributes:
        video: the input file.
        overlay: the overlaid video written (same fps and size as the input).
        labels_dir: folder of ``frame_000000.png``... label PNGs, or None.
        frames: frames segmented and written.
        declared_frames: frame count the input's container states (0 if unknown).
        fps: frame rate of the input and the overlay.
        size: ``(width, height)`` of the frames.
        error: None, or a one-line report that decoding stopped before ``declared_frames``.
    """
    video: Path
    overlay: Path
    labels_dir: Optional[Path]
    frames: int
    declared_frames: int
    fps: float
    size: Tuple[int, int]
    error: Optional[str] = None


def segment_video(model: torch.nn.Module, video: Union[str, Path], overlay: Union[str, Path],
                  labels_dir: Optional[Union[str, Path]] = None, batch_size: int = 4,
                  opacity: float = 0.5, progress: bool = True) -> VideoResult:
    """Segment every frame of ``video``, ``batch_size`` frames per forward pass.

    Args:
        model: a segmentor from ``mmseg.apis.init_model`` (at most 256 classes).
        video: the input video file.
        overlay: the overlaid video to write (see :func:`open_video_writer` for extensions).
        labels_dir: if given, each frame's predicted train ids are written there as a
            single-channel uint8 PNG of the frame's size, ``frame_000000.png`` onwards.
        batch_size: frames per forward pass (see
            :func:`~mmseg_hrplus.apis.inference.segment_batch`: the labels are those of one
            frame at a time up to float rounding at near-ties).
        opacity: weight of the class colours in the overlay, in [0, 1].
        progress: print a :class:`~mmseg_hrplus.apis.progress.RateProgress` line (frames
            per second) on stderr.

    Returns:
        A :class:`VideoResult`; its ``error`` is set when frames stopped decoding before the
        declared count (the frames before are written).

    Raises:
        FileNotFoundError, UnreadableVideoError: see :class:`VideoReader`.
        ValueError: frames smaller than 32 pixels a side, ``batch_size`` < 1, or ``opacity``
            outside [0, 1].
        OSError: the overlay cannot be written.
    """
    check_batch_size(batch_size)  # both before the writer creates a file
    check_opacity(opacity)
    _, palette = class_palette(model)
    with VideoReader(video) as reader:
        check_image_size(reader.height, reader.width, f'video {reader.path}')
        size = (reader.width, reader.height)
        labels_dir = Path(labels_dir) if labels_dir is not None else None
        if labels_dir is not None:
            labels_dir.mkdir(parents=True, exist_ok=True)
        writer = open_video_writer(overlay, reader.fps, size)
        bar = RateProgress(reader.declared_frames, label=reader.path.name) if progress else None
        try:
            for frames in reader.batches(batch_size):
                first = reader.frames_read - len(frames)
                for index, (frame, result) in enumerate(
                        zip(frames, segment_batch(model, frames)), start=first):
                    labels = result.pred_sem_seg.data[0].cpu().numpy().astype(np.uint8)
                    writer.write(overlay_labels(frame, labels, palette, opacity))
                    if labels_dir is not None:
                        cv2.imwrite(str(labels_dir / f'frame_{index:06d}.png'), labels)
                if bar is not None:
                    bar.update(len(frames))
        finally:
            writer.release()
            if bar is not None:
                bar.close()
        error = None
        if reader.stopped_early:
            error = (f'video {reader.path}: decoding stopped after {reader.frames_read} of the '
                     f'{reader.declared_frames} frames the file declares (truncated or '
                     f'corrupted data); kept the {reader.frames_read} frames decoded in '
                     f'{overlay}' + (f' and {labels_dir}' if labels_dir is not None else ''))
        return VideoResult(video=reader.path, overlay=Path(overlay), labels_dir=labels_dir,
                           frames=reader.frames_read, declared_frames=reader.declared_frames,
                           fps=reader.fps, size=size, error=error)


__all__ = [
    'SUPPORTED_FORMATS', 'VIDEO_EXTENSIONS', 'WRITER_FOURCC', 'UnreadableVideoError',
    'VideoReader', 'VideoResult', 'check_batch_size', 'is_video', 'open_video_writer',
    'overlay_video_path', 'segment_video'
]
