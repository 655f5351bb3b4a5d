"""Decoding, resizing and writing of clips, shared by every reader.

Readers turn a file into pixels in one layout, ``(T, 3, H, W)`` float in [-1, 1]:

- videos are decoded with decord (``read_video_frames``) -> uint8 ``(T, H, W, 3)``; when decord opens a
  file but fails to decode it (decord 0.6.0 mis-sizes some geometries, e.g. 48x32), PyAV decodes it instead;
- images are decoded with PIL (``read_image``) and resized with ADM's ``center_crop_arr`` rule
  (``adm_center_crop``), the ImageNet 256x256 protocol that W.A.L.T's Table 2 follows;
- video frames are resized so the short side covers the target (bilinear, antialias) and
  centre-cropped (``resize_center_crop``);
- ``write_video`` writes uint8 frames with PyAV (mpeg4 + XVID tag by default, like UCF-101's files).

decord, PyAV and PIL are imported inside the functions, so importing this module stays cheap.
Every decode failure becomes :class:`UnreadableFileError`, which names the file.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from walt_bench.errors import DataError


class UnreadableFileError(DataError):
    """A media file exists (or should) but cannot be decoded."""

    def __init__(self, path: str | Path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(
            f"cannot read {self.path}: {reason}. Expected a decodable video/image file; re-download or delete "
            "it (training skips it when data.skip_unreadable=true; `walt-bench data check` lists every such file)."
        )


# ---------------------------------------------------------------------------------------------------------
# Clip geometry
# ---------------------------------------------------------------------------------------------------------


def clip_span(num_frames: int, stride: int) -> int:
    """Number of source frames a clip of ``num_frames`` at ``stride`` covers."""
    return (num_frames - 1) * stride + 1


def clip_start(length: int, num_frames: int, stride: int, mode: str, rng: np.random.Generator | None) -> int:
    """First source frame of a clip: ``random`` (uniform over valid starts), ``center`` or ``start``."""
    last = max(0, length - clip_span(num_frames, stride))
    if mode == "start" or last == 0:
        return 0
    if mode == "center":
        return last // 2
    if rng is None:
        raise ValueError("clip_sampling='random' needs a generator")
    return int(rng.integers(0, last + 1))


def clip_indices(length: int, num_frames: int, stride: int, start: int) -> list[int]:
    """Frame indices ``start, start+stride, ...``; a video shorter than the span repeats its last frame."""
    return [min(start + i * stride, length - 1) for i in range(num_frames)]


# ---------------------------------------------------------------------------------------------------------
# Decoding
# ---------------------------------------------------------------------------------------------------------


def _open_video(path: str | Path):
    import decord

    if not Path(path).is_file():
        raise UnreadableFileError(path, "file not found")
    try:
        return decord.VideoReader(str(path), ctx=decord.cpu(0), num_threads=1)
    except Exception as exc:  # decord raises RuntimeError/DECORDError with C++ messages
        raise UnreadableFileError(path, f"decord could not open it ({_first_line(exc)})") from exc


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


def _read_with_pyav(path: str | Path, indices: list[int]) -> np.ndarray:
    """Decode frames ``indices`` by walking the stream with PyAV (the fallback when decord fails)."""
    import av

    wanted = set(indices)
    found: dict[int, np.ndarray] = {}
    with av.open(str(path)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i in wanted:
                found[i] = frame.to_ndarray(format="rgb24")
            if i >= max(indices):
                break
    missing = sorted(wanted - set(found))
    if missing:
        raise ValueError(f"the stream ended before frame {missing[0]}")
    return np.stack([found[i] for i in indices])


def video_length(path: str | Path) -> int:
    """Number of frames decord reports for ``path``."""
    return len(_open_video(path))


def read_video_frames(
    path: str | Path,
    num_frames: int,
    stride: int = 1,
    mode: str = "start",
    rng: np.random.Generator | None = None,
) -> torch.Tensor:
    """Decode one clip -> uint8 ``(T, H, W, 3)``; see :func:`clip_start` for ``mode``."""
    reader = _open_video(path)
    length = len(reader)
    if length < 1:
        raise UnreadableFileError(path, "the video has no frames")
    indices = clip_indices(length, num_frames, stride, clip_start(length, num_frames, stride, mode, rng))
    try:
        frames = reader.get_batch(indices).asnumpy()
    except Exception as exc:  # decord 0.6.0 mis-sizes some frame geometries (e.g. 48x32); PyAV reads them
        try:
            frames = _read_with_pyav(path, indices)
        except Exception as exc2:
            reason = f"decoding frames {indices[0]}..{indices[-1]} failed (decord: {_first_line(exc)}; PyAV: {exc2})"
            raise UnreadableFileError(path, reason) from exc
    if frames.shape[0] != num_frames or frames.ndim != 4 or frames.shape[-1] != 3:
        raise UnreadableFileError(
            path, f"decoded an array of shape {frames.shape}, expected ({num_frames}, H, W, 3)"
        )
    return torch.from_numpy(np.ascontiguousarray(frames))


def read_image(path: str | Path):
    """Decode an image with PIL -> RGB ``PIL.Image`` (fully loaded, so truncated files fail here)."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            image.load()
            return image.convert("RGB")
    except FileNotFoundError as exc:
        raise UnreadableFileError(path, "file not found") from exc
    except Exception as exc:  # UnidentifiedImageError, OSError on truncated data, ...
        raise UnreadableFileError(path, f"PIL could not decode it ({exc})") from exc


# ---------------------------------------------------------------------------------------------------------
# Resizing
# ---------------------------------------------------------------------------------------------------------


def to_signed_unit(frames_uint8: torch.Tensor) -> torch.Tensor:
    """uint8 ``(T, H, W, 3)`` -> float ``(T, 3, H, W)`` in [-1, 1]."""
    return frames_uint8.permute(0, 3, 1, 2).float().div(127.5).sub(1.0)


def resize_center_crop(frames_uint8: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Resize so the frame covers ``(height, width)`` (short side for square targets; bilinear with
    antialias), centre-crop, and scale to [-1, 1]: uint8 ``(T, H, W, 3)`` -> float ``(T, 3, height, width)``."""
    x = frames_uint8.permute(0, 3, 1, 2).float()  # (T, 3, H, W) in [0, 255]
    h, w = x.shape[-2:]
    scale = max(height / h, width / w)
    new_h, new_w = max(height, round(h * scale)), max(width, round(w * scale))
    if (new_h, new_w) != (h, w):
        x = F.interpolate(x, size=(new_h, new_w), mode="bilinear", align_corners=False, antialias=True)
    top, left = (new_h - height) // 2, (new_w - width) // 2
    x = x[:, :, top : top + height, left : left + width]
    return x.clamp(0.0, 255.0).div(127.5).sub(1.0)


def adm_center_crop(image, height: int, width: int | None = None) -> np.ndarray:
    """ADM's ``center_crop_arr`` (Dhariwal & Nichol 2021, guided-diffusion ``image_datasets.py``):
    halve the image with a BOX filter while its short side is >= 2x the target, BICUBIC-resize so the
    short side equals the target, centre-crop. Returns uint8 ``(height, width, 3)``.

    For a square target this is ADM's rule exactly; for ``height != width`` the resize makes the image cover
    both sides (the short-side rule generalised) before the crop.
    """
    from PIL import Image

    width = height if width is None else width
    target = max(height, width)
    while min(*image.size) >= 2 * target:
        image = image.resize(tuple(x // 2 for x in image.size), resample=Image.BOX)
    scale = max(height / image.size[1], width / image.size[0])
    new_size = (max(width, round(image.size[0] * scale)), max(height, round(image.size[1] * scale)))
    image = image.resize(new_size, resample=Image.BICUBIC)
    arr = np.asarray(image.convert("RGB"))
    top, left = (arr.shape[0] - height) // 2, (arr.shape[1] - width) // 2
    return arr[top : top + height, left : left + width]


def load_image_frame(path: str | Path, height: int, width: int) -> torch.Tensor:
    """One image file -> float ``(1, 3, height, width)`` in [-1, 1] (ADM preprocessing)."""
    arr = adm_center_crop(read_image(path), height, width)
    return to_signed_unit(torch.from_numpy(np.ascontiguousarray(arr))[None])


# ---------------------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------------------


def write_video(
    path: str | Path,
    frames: np.ndarray,
    fps: float = 25.0,
    codec: str = "mpeg4",
    codec_tag: str | None = "XVID",
    qscale: int | None = 2,
) -> None:
    """Write uint8 ``(T, H, W, 3)`` frames with PyAV (single-threaded, so the bytes are reproducible).

    The defaults mimic UCF-101's files (MPEG-4 Part 2 in AVI with the XVID fourcc); PyAV has no libxvid
    encoder, so the mpeg4 encoder writes the stream and ``codec_tag`` sets the fourcc. ``qscale`` is the
    mpeg4 quantiser (2 = near-lossless); ignored for other codecs. H and W must be even (yuv420p).
    """
    import av

    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"write_video expects uint8 (T, H, W, 3), got {frames.dtype} {frames.shape}")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=Fraction(fps).limit_denominator(1001))
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.thread_count = 1
        if codec_tag:
            stream.codec_context.codec_tag = codec_tag
        if codec == "mpeg4" and qscale is not None:
            stream.options = {"qscale": str(qscale)}
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
