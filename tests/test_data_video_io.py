"""Decoding, clip geometry, resizing and ADM's centre crop (walt_bench.data.video_io)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from walt_bench.data.fakes import fake_frames, level_to_frame, truncate
from walt_bench.data.video_io import (
    UnreadableFileError,
    adm_center_crop,
    clip_indices,
    clip_start,
    read_image,
    read_video_frames,
    resize_center_crop,
    write_video,
)
from walt_bench.errors import DataError


def test_clip_indices_follow_stride_and_repeat_last_frame_of_short_videos():
    assert clip_indices(40, 4, 3, 5) == [5, 8, 11, 14]
    assert clip_indices(6, 4, 2, 0) == [0, 2, 4, 5]


def test_clip_start_modes_stay_inside_the_video():
    rng = np.random.default_rng(0)
    starts = {clip_start(30, 5, 2, "random", rng) for _ in range(200)}
    assert min(starts) == 0 and max(starts) == 30 - 9
    assert clip_start(30, 5, 2, "center", None) == 21 // 2
    assert clip_start(30, 5, 2, "start", None) == 0


def test_written_avi_reads_back_with_the_requested_frames(tmp_path):
    path = tmp_path / "v.avi"
    write_video(path, fake_frames(24, 30, 40))
    clip = read_video_frames(path, num_frames=5, stride=3, mode="center")
    assert clip.shape == (5, 30, 40, 3) and clip.dtype == torch.uint8
    start = (24 - 13) // 2
    got = [level_to_frame(float(f[10:, 10:].float().mean())) for f in clip]
    assert got == [start + 3 * i for i in range(5)]


def test_geometry_decord_mis_sizes_still_reads_through_the_pyav_fallback(tmp_path):
    path = tmp_path / "v.mp4"
    write_video(path, fake_frames(8, 32, 48), codec="h264", codec_tag=None)
    clip = read_video_frames(path, num_frames=3, stride=2, mode="start")
    assert clip.shape == (3, 32, 48, 3)
    assert [level_to_frame(float(f[8:, 8:].float().mean())) for f in clip] == [0, 2, 4]


def test_avi_carries_the_xvid_fourcc(tmp_path):
    import av

    path = tmp_path / "v.avi"
    write_video(path, fake_frames(4, 16, 16))
    with av.open(str(path)) as container:
        assert container.streams.video[0].codec_context.codec_tag == "XVID"


def test_truncated_and_garbage_videos_raise_unreadable_with_the_path(tmp_path):
    good = tmp_path / "good.avi"
    write_video(good, fake_frames(24, 32, 32))
    truncate(good)
    garbage = tmp_path / "garbage.avi"
    garbage.write_bytes(b"no video here" * 50)
    for path in (good, garbage, tmp_path / "absent.avi"):
        with pytest.raises(UnreadableFileError) as err:
            read_video_frames(path, 4)
        assert str(path) in str(err.value) and isinstance(err.value, DataError)


def test_resize_center_crop_covers_target_and_maps_to_signed_unit_range():
    frames = torch.zeros(2, 30, 40, 3, dtype=torch.uint8)
    frames[..., :20, :] = 255  # left half white, right half black
    out = resize_center_crop(frames, 16, 16)
    assert out.shape == (2, 3, 16, 16)
    assert out.min() >= -1 and out.max() <= 1
    # 30x40 -> 16x21 (short side), crop columns 2..17: white on the left edge, black on the right edge
    assert out[0, :, :, 0].mean() == pytest.approx(1.0) and out[0, :, :, -1].mean() == pytest.approx(-1.0)


def test_resize_center_crop_of_flat_frames_keeps_their_value():
    frames = torch.full((1, 24, 36, 3), 191, dtype=torch.uint8)
    out = resize_center_crop(frames, 8, 8)
    assert torch.allclose(out, torch.full_like(out, 191 / 127.5 - 1), atol=1e-5)


def _adm_reference(image: Image.Image, size: int) -> np.ndarray:
    """ADM's center_crop_arr, written out step by step for the test."""
    while min(*image.size) >= 2 * size:
        image = image.resize(tuple(x // 2 for x in image.size), resample=Image.BOX)
    scale = size / min(*image.size)
    image = image.resize(tuple(round(x * scale) for x in image.size), resample=Image.BICUBIC)
    arr = np.array(image)
    y, x = (arr.shape[0] - size) // 2, (arr.shape[1] - size) // 2
    return arr[y : y + size, x : x + size]


def test_adm_center_crop_matches_adm_on_a_known_image():
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 256, (300, 530, 3), dtype=np.uint8))
    out = adm_center_crop(image, 64)
    assert out.shape == (64, 64, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, _adm_reference(image, 64))


def test_adm_center_crop_keeps_the_centre_of_a_striped_image():
    arr = np.zeros((100, 300, 3), np.uint8)
    arr[:, 100:200] = 200  # the middle third is bright
    out = adm_center_crop(Image.fromarray(arr), 32)
    assert out[:, 8:24].mean() > 190  # the centre crop sees only the bright band


def test_read_image_rejects_a_text_file_with_an_image_name(tmp_path):
    path = tmp_path / "fake.JPEG"
    path.write_text("not an image")
    with pytest.raises(UnreadableFileError, match="fake.JPEG"):
        read_image(path)
