"""Small video files for the video inference tests, written and read with OpenCV."""
from pathlib import Path
from typing import List, Tuple

import cv2
import numpy as np
import pytest

from mmseg_hrplus.apis.video import WRITER_FOURCC


def moving_frames(count: int, height: int, width: int) -> List[np.ndarray]:
    """``count`` (height, width, 3) uint8 BGR frames: smooth colour gradients that shift from
    frame to frame (compress well, differ per frame)."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    frames = []
    for i in range(count):
        blue = 127.5 + 127.5 * np.sin((xx + 6 * i) / 9.0)
        green = 127.5 + 127.5 * np.cos((yy - 4 * i) / 7.0)
        red = 255.0 * (xx + yy + 10 * i) / (width + height + 10 * count)
        frames.append(np.stack([blue, green, red], axis=2).round().astype(np.uint8))
    return frames


def write_video(path: Path, frames: List[np.ndarray], fps: float = 10.0) -> Path:
    """Write ``frames`` with the FourCC our writer uses for ``path``'s extension (MJPG .avi,
    mp4v .mp4); skips the test if this OpenCV build cannot open that writer."""
    fourcc = WRITER_FOURCC[path.suffix.lower()]
    height, width = frames[0].shape[:2]
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (width, height))
    if not writer.isOpened():
        pytest.skip(f'this OpenCV cannot write {fourcc} into {path.suffix}')
    for frame in frames:
        writer.write(frame)
    writer.release()
    return path


def decode_all(path: Path) -> List[np.ndarray]:
    """Every frame plain ``cv2.VideoCapture.read`` decodes from ``path``, until the first
    failure."""
    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    return frames


def properties(path: Path) -> Tuple[int, float, Tuple[int, int]]:
    """``(declared frame count, fps, (width, height))`` as the container states them."""
    capture = cv2.VideoCapture(str(path))
    assert capture.isOpened(), path
    result = (int(capture.get(cv2.CAP_PROP_FRAME_COUNT)), capture.get(cv2.CAP_PROP_FPS),
              (int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)),
               int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))))
    capture.release()
    return result


def truncated_copy(source: Path, target: Path, fraction: float = 0.75) -> Path:
    """``target`` holding the first ``fraction`` of ``source``'s bytes (a cut-off download)."""
    data = source.read_bytes()
    target.write_bytes(data[:int(len(data) * fraction)])
    return target
