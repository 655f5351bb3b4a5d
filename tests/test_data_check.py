"""`walt-bench data check`: counts per split and class, clip shape, unreadable files by path, exit codes."""

from __future__ import annotations

import json

import pytest

from walt_bench.cli import main
from walt_bench.data.fakes import make_image_tree, make_kinetics_tree, make_ucf101_tree
from walt_bench.data.synthetic import synthesize


def write_spec(path, **data):
    base = {"num_frames": 5, "height": 16, "width": 16, "num_workers": 0}
    lines = ["data:"] + [f"  {k}: {json.dumps(v)}" for k, v in {**base, **data}.items()]
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def test_check_reports_every_unreadable_file_by_path_and_exits_1(tmp_path, capsys):
    tree = make_ucf101_tree(tmp_path / "ucf")
    spec = write_spec(tmp_path / "s.yaml", dataset="ucf101", root=str(tree["root"]), num_classes=3)
    assert main(["data", "check", "--spec", spec]) == 1
    out = capsys.readouterr().out
    assert f"UNREADABLE (train): {tree['broken'][0]}" in out
    assert "train: 6 items, 5 readable, 1 unreadable" in out and "test: 3 items, 3 readable" in out
    assert "clip shape (T, C, H, W) 5x3x16x16" in out and "FAILED: 1 unreadable" in out


def test_check_of_clean_synth_data_exits_0_with_counts_per_class_and_json(tmp_path, capsys):
    root = synthesize(tmp_path / "synth", videos=3, frames=20, size=16)
    spec = write_spec(tmp_path / "s.yaml", dataset="ucf101", root=str(root), num_classes=10)
    report_path = tmp_path / "report.json"
    assert main(["data", "check", "--spec", spec, "data.fold=2", "--json", str(report_path)]) == 0
    out = capsys.readouterr().out
    assert "RedDiscEast" in out and out.rstrip().endswith("OK")
    report = json.loads(report_path.read_text())
    assert len(report["spec_hash"]) == 12 and report["command"] == "walt-bench data check"
    assert report["splits"]["train"]["per_class"]["RedDiscEast"] == 2
    assert report["splits"]["test"]["readable"] == 10 and report["unreadable"] == 0


def test_check_counts_missing_kinetics_clips_without_failing(tmp_path, capsys):
    tree = make_kinetics_tree(tmp_path / "k600")
    spec = write_spec(
        tmp_path / "s.yaml",
        dataset="kinetics600",
        root=str(tree["root"]),
        annotations=str(tree["csv"]),
        num_classes=3,
    )
    with pytest.warns(RuntimeWarning, match="missing"):
        assert main(["data", "check", "--spec", spec]) == 0
    out = capsys.readouterr().out
    assert "train: 6 items, 6 readable, 0 unreadable, 2 missing" in out
    assert f"missing (train): {tree['missing'][0]}" in out
    assert "note: split 'test' not checked" in out


def test_check_lists_a_non_image_file_in_an_image_tree(tmp_path, capsys):
    tree = make_image_tree(tmp_path / "imagenet")
    spec = write_spec(
        tmp_path / "s.yaml", dataset="imagenet", root=str(tree["root"]), num_classes=2, num_frames=1
    )
    assert main(["data", "check", "--spec", spec]) == 1
    assert f"UNREADABLE (train): {tree['broken'][0]}" in capsys.readouterr().out


def test_check_of_a_bad_root_exits_2_with_a_clear_message(tmp_path, capsys):
    spec = write_spec(tmp_path / "s.yaml", dataset="ucf101", root=str(tmp_path / "absent"), num_classes=3)
    assert main(["data", "check", "--spec", spec]) == 2
    assert "is not a UCF-101 root" in capsys.readouterr().err


def test_check_also_reads_the_joint_training_image_root(tmp_path, capsys):
    root = synthesize(tmp_path / "synth", videos=3, frames=20, size=16)
    images = make_image_tree(tmp_path / "imagenet", splits=("train",))  # an ImageNet root: train/ is used
    spec = write_spec(
        tmp_path / "s.yaml", dataset="ucf101", root=str(root), num_classes=10, image_root=str(images["root"])
    )
    assert main(["data", "check", "--spec", spec]) == 1
    out = capsys.readouterr().out
    assert "images: 7 items, 6 readable, 1 unreadable" in out
    assert f"UNREADABLE (images): {images['broken'][0]}" in out
