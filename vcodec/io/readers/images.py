"""Image-sequence folders: numbered pictures (MOTChallenge ``img1/``), read with OpenCV.

The folder itself or its parent holding ``img1/``; the rate comes from
``seqinfo.ini`` when there is one.
"""

from __future__ import annotations

import configparser
import re
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from vcodec.errors import InputError
from vcodec.io.frame import Frame, InputFacts, VideoInfo, require_even
from vcodec.io.readers.base import ReadOptions, VideoReader, resolve_fps

__all__ = ["ImageFolderReader", "IMAGE_EXTENSIONS"]

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"})


def _natural_key(name: str) -> list[object]:
    # "2.jpg" before "10.jpg" even without zero padding
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


def _image_folder(path: Path) -> tuple[Path, Path] | None:
    """(images folder, sequence folder) if ``path`` is an image sequence, else None."""
    if (path / "img1").is_dir():
        return path / "img1", path
    if any(p.suffix.lower() in IMAGE_EXTENSIONS for p in path.iterdir() if p.is_file()):
        return path, path.parent if (path.parent / "seqinfo.ini").is_file() else path
    return None


class ImageFolderReader(VideoReader):
    """A folder of numbered pictures (MOTChallenge ``img1/``), read with OpenCV."""

    def __init__(
        self, source: str, folder: Path, options: ReadOptions | None = None, **legacy: Any
    ) -> None:
        super().__init__(source, options, **legacy)
        found = _image_folder(folder)
        if found is None:
            raise InputError(
                f"{source}: folder holds no images ({', '.join(sorted(IMAGE_EXTENSIONS))}) "
                f"and no img1/ subfolder"
            )
        images, seq = found
        self.files = sorted(
            (p for p in images.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS),
            key=lambda p: _natural_key(p.name),
        )
        if not self.files:
            raise InputError(f"{source}: {images} holds no images")
        seq_fps: Fraction | None = None
        ini = seq / "seqinfo.ini"
        if ini.is_file():
            cp = configparser.ConfigParser()
            try:
                cp.read(ini, encoding="utf-8")
                for section in cp.sections():
                    if cp.has_option(section, "frameRate"):
                        seq_fps = Fraction(cp.get(section, "frameRate")).limit_denominator(1001000)
            except (configparser.Error, ValueError) as exc:
                raise InputError(
                    f"{ini}: cannot read frameRate ({exc}); fix the file or pass --fps"
                ) from None
        rate = resolve_fps(self.options.fps, seq_fps if seq_fps is not None and seq_fps > 0 else None,
                           "seqinfo", missing="no seqinfo.ini frameRate")
        facts = InputFacts(format="images", images=str(images), fps_source=rate.source, fps_note=rate.note)
        first = self._load(self.files[0])
        h, w = first.shape[:2]
        require_even(w, h, str(self.files[0]), f"crop the images to {w - w % 2}x{h - h % 2}")
        self._check_stated_size(w, h)
        self._depth = self.options.bit_depth or 8
        self.info = VideoInfo(w, h, rate.fps, self._depth, None, self._pick_matrix(w, h), source, facts)
        self._pos = 0
        self._finish_info(len(self.files))

    def _load(self, path: Path) -> np.ndarray:
        import cv2

        # imdecode from bytes: cv2.imread cannot report why it failed and
        # mishandles non-ASCII paths on some platforms
        try:
            buf = np.frombuffer(path.read_bytes(), np.uint8)
        except OSError as exc:
            raise InputError(f"{path}: cannot read image ({exc.strerror})") from None
        bgr = cv2.imdecode(buf, cv2.IMREAD_COLOR)
        if bgr is None:
            raise InputError(f"{path}: OpenCV cannot decode this image; replace or remove it")
        return bgr

    def _skip(self, n: int) -> None:
        self._pos += n

    def _read(self, index: int) -> Frame | None:
        if self._pos >= len(self.files):
            return None
        path = self.files[self._pos]
        self._pos += 1
        bgr = self._load(path)
        if bgr.shape[1] != self.info.width or bgr.shape[0] != self.info.height:
            raise InputError(
                f"{path}: image is {bgr.shape[1]}x{bgr.shape[0]} but the sequence is "
                f"{self.info.width}x{self.info.height}; all images must have one size"
            )
        rgb = np.ascontiguousarray(bgr[..., ::-1])
        return Frame.from_rgb(rgb, self._depth, self.info.matrix, index)
