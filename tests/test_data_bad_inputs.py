"""Bad dataset input through the CLI: exit 2 with a message naming the file and what was expected."""

from __future__ import annotations

import pytest
import torch

from walt_bench.cli import main
from walt_bench.evaluation.classifier import SyntheticVideoClassifier, save_classifier


@pytest.fixture
def classifier_file(tmp_path):
    torch.manual_seed(0)
    return save_classifier(SyntheticVideoClassifier(num_classes=2, width=8), tmp_path / "clf.pt", {})


def write_spec(tmp_path, data: dict, classifier=None) -> str:
    lines = ["tracking:", "  enabled: false", "run:", f"  out_dir: {tmp_path / 'runs'}", "data:"]
    lines += [f"  {k}: {v}" for k, v in {"num_workers": 0, **data}.items()]
    lines += [
        "eval:",
        "  protocol: synthetic_fvd",
        "  reference_samples: 2",
        f"  cache_dir: {tmp_path / 'c'}",
    ]
    if classifier:
        lines.append(f"  classifier_weights: {classifier}")
    path = tmp_path / "spec.yaml"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def ucf_tree(root, listed: list[str], present: list[str]):
    """UCF-101 layout with two classes; only the ``present`` videos exist (as empty files)."""
    (root / "ucfTrainTestlist").mkdir(parents=True)
    (root / "ucfTrainTestlist" / "classInd.txt").write_text("1 Alpha\n2 Beta\n")
    (root / "ucfTrainTestlist" / "trainlist01.txt").write_text(
        "".join(f"{rel} {1 + rel.startswith('Beta')}\n" for rel in listed)
    )
    for rel in present:
        (root / "UCF-101" / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / "UCF-101" / rel).write_bytes(b"")


def test_missing_dataset_root_in_data_check(tmp_path, capsys):
    spec = write_spec(tmp_path, {"dataset": "ucf101", "root": tmp_path / "absent", "num_classes": 2})
    assert main(["data", "check", "--spec", spec]) == 2
    assert "is not a UCF-101 root" in capsys.readouterr().err


def test_missing_dataset_root_in_eval_stats(tmp_path, classifier_file, capsys):
    spec = write_spec(
        tmp_path, {"dataset": "ucf101", "root": tmp_path / "absent", "num_classes": 2}, classifier_file
    )
    assert main(["eval", "stats", "--spec", spec, "--out", str(tmp_path / "s.npz")]) == 2
    assert "is not a UCF-101 root" in capsys.readouterr().err


def test_ucf_split_list_naming_a_missing_video_stops_reference_statistics(tmp_path, classifier_file, capsys):
    listed = ["Alpha/v_Alpha_g01_c01.avi", "Beta/v_Beta_g01_c01.avi"]
    ucf_tree(tmp_path / "ucf", listed, present=listed[:1])
    spec = write_spec(
        tmp_path, {"dataset": "ucf101", "root": tmp_path / "ucf", "num_classes": 2}, classifier_file
    )
    with pytest.warns(RuntimeWarning, match="1 listed videos are missing"):
        code = main(["eval", "stats", "--spec", spec, "--out", str(tmp_path / "s.npz")])
    err = capsys.readouterr().err
    assert code == 2 and "v_Beta_g01_c01.avi" in err and "missing on disk" in err


def kinetics_spec(tmp_path, csv_text: bytes | str) -> str:
    (tmp_path / "k600" / "train").mkdir(parents=True)
    csv = tmp_path / "k600" / "annotations.csv"
    csv.write_bytes(csv_text if isinstance(csv_text, bytes) else csv_text.encode())
    return write_spec(
        tmp_path,
        {"dataset": "kinetics600", "root": tmp_path / "k600", "annotations": csv, "num_classes": 0},
    )


def test_kinetics_csv_with_wrong_columns(tmp_path, capsys):
    spec = kinetics_spec(tmp_path, "label,id,start,end,split\nabseiling,abc,0,10,train\n")
    assert main(["data", "check", "--spec", spec, "--splits", "train"]) == 2
    assert "lacks column(s) ['youtube_id', 'time_start', 'time_end']" in capsys.readouterr().err


def test_kinetics_csv_with_a_short_row(tmp_path, capsys):
    spec = kinetics_spec(tmp_path, "label,youtube_id,time_start,time_end,split\nabseiling,abc,0\n")
    assert main(["data", "check", "--spec", spec, "--splits", "train"]) == 2
    assert (
        "annotations.csv:2: the row has no value for column(s) ['time_end', 'split']"
        in capsys.readouterr().err
    )


def test_kinetics_csv_that_is_not_text(tmp_path, capsys):
    spec = kinetics_spec(tmp_path, b"\xff\xfe\x00binary\x00\xc3\x28")
    assert main(["data", "check", "--spec", spec, "--splits", "train"]) == 2
    assert "is not a UTF-8 CSV" in capsys.readouterr().err
