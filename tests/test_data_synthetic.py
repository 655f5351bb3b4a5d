"""The embedded synthetic dataset: layout, determinism, class identity, and the `data synth` command."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from walt_bench.data.synthetic import class_spec, render_video, synthesize
from walt_bench.data.ucf101 import UCF101, read_class_index
from walt_bench.errors import UserError


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory):
    return synthesize(tmp_path_factory.mktemp("synth"), videos=3, seed=7, frames=24, size=32)


def _digest(root):
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_synth_writes_ucf101_layout(synth_root):
    classes = read_class_index(synth_root / "ucfTrainTestlist" / "classInd.txt")
    assert len(classes) == 10
    for name in classes:
        assert sorted(p.name for p in (synth_root / "UCF-101" / name).iterdir()) == [
            f"v_{name}_g0{g}_c01.avi" for g in (1, 2, 3)
        ]
    for fold in (1, 2, 3):
        for kind in ("train", "test"):
            assert (synth_root / "ucfTrainTestlist" / f"{kind}list0{fold}.txt").is_file()
    first = (synth_root / "ucfTrainTestlist" / "trainlist01.txt").read_bytes().splitlines()[0]
    assert first == f"{classes[0]}/v_{classes[0]}_g02_c01.avi 1".encode()


def test_synth_is_deterministic_by_seed(synth_root, tmp_path):
    again = synthesize(tmp_path / "again", videos=3, seed=7, frames=24, size=32)
    assert _digest(again) == _digest(synth_root)
    other = render_video(0, 1, seed=8, frames=24, size=32)
    assert not np.array_equal(other, render_video(0, 1, seed=7, frames=24, size=32))


def test_ucf_reader_reads_synth_output_unchanged(synth_root):
    cfg = dict(num_frames=17, frame_stride=1, height=32, width=32)
    train, test = UCF101(synth_root, "train", **cfg), UCF101(synth_root, "test", **cfg)
    assert (len(train), len(test)) == (20, 10)
    item = train[0]
    assert item["video"].shape == (17, 3, 32, 32) and item["label"] == 0 and train.num_skipped == 0
    assert sorted(set(test.labels)) == list(range(10))


def test_folds_test_disjoint_groups(synth_root):
    tests = [
        set((synth_root / "ucfTrainTestlist" / f"testlist0{f}.txt").read_text().split()) for f in (1, 2, 3)
    ]
    assert tests[0].isdisjoint(tests[1]) and tests[1].isdisjoint(tests[2])
    assert sum(map(len, tests)) == 30  # every video is tested in exactly one fold


def test_classes_differ_in_appearance_and_motion():
    specs = [class_spec(c) for c in range(100)]
    assert len({(s["shape"], s["colour"]) for s in specs}) == 100
    assert len({s["name"] for s in specs}) == 100
    assert len({(s["direction_deg"], s["speed"]) for s in specs[:10]}) >= 8


def _centroid_x(frame):
    mask = np.abs(frame.astype(int) - frame[0, 0].astype(int)).sum(-1) > 60  # differs from the corner
    return np.nonzero(mask)[1].mean()


def test_objects_move_in_their_class_direction():
    assert (class_spec(0)["direction_deg"], class_spec(4)["direction_deg"]) == (0.0, 180.0)  # east, west
    for c, sign in ((0, 1), (4, -1)):
        steps = []
        for v in range(1, 6):
            video = render_video(c, v, seed=0, frames=3, size=64)
            steps.append(_centroid_x(video[2]) - _centroid_x(video[0]))
        assert sign * np.median(steps) > 0.5  # (a bounce off a border may flip one of them)


def test_synth_rejects_too_few_videos(tmp_path):
    with pytest.raises(UserError, match="at least 3"):
        synthesize(tmp_path, videos=2)


def test_data_synth_command(tmp_path, capsys):
    from walt_bench.cli import main

    assert (
        main(
            [
                "data",
                "synth",
                "--out",
                str(tmp_path / "s"),
                "--videos",
                "3",
                "--seed",
                "1",
                "--size",
                "16",
                "--frames",
                "20",
            ]
        )
        == 0
    )
    assert "10 classes x 3 videos" in capsys.readouterr().out
    assert len(UCF101(tmp_path / "s", "train+test", height=16, width=16)) == 30
