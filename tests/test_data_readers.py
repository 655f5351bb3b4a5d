"""UCF-101, Kinetics-600 and ImageNet readers on fake trees in their published layouts."""

from __future__ import annotations

import pytest
import torch

from walt_bench.data.base import ItemKey
from walt_bench.data.config import DataConfig
from walt_bench.data.fakes import level_to_frame, make_image_tree, make_kinetics_tree, make_ucf101_tree
from walt_bench.data.imagenet import ImageNet
from walt_bench.data.kinetics import Kinetics600
from walt_bench.data.loader import build_dataset
from walt_bench.data.ucf101 import UCF101
from walt_bench.data.video_io import UnreadableFileError
from walt_bench.errors import DataError


@pytest.fixture(scope="module")
def ucf(tmp_path_factory):
    return make_ucf101_tree(tmp_path_factory.mktemp("ucf"))


@pytest.fixture(scope="module")
def kinetics(tmp_path_factory):
    return make_kinetics_tree(tmp_path_factory.mktemp("k600"))


@pytest.fixture(scope="module")
def imagenet(tmp_path_factory):
    return make_image_tree(tmp_path_factory.mktemp("imagenet"))


def _frames_of(video: torch.Tensor) -> list[int]:
    """Source frame index of each clip frame of a fake video (away from the labelled corner)."""
    levels = (video[:, :, 6:, 6:].mean(dim=(1, 2, 3)) + 1) * 127.5
    return [level_to_frame(float(v)) for v in levels]


# -- UCF-101 ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("split", "fold", "size"), [("train", 1, 6), ("test", 1, 3), ("train+test", 2, 9)])
def test_ucf_split_sizes(ucf, split, fold, size):
    assert len(UCF101(ucf["root"], split, fold=fold)) == size


def test_ucf_labels_are_zero_based_from_class_index_in_both_list_kinds(ucf):
    for split in ("train", "test"):
        dataset = UCF101(ucf["root"], split, fold=1)
        assert dataset.classes == ucf["classes"]
        for path, label in dataset.samples:  # HandStandPushups files land in HandstandPushups (label 1)
            assert f"/{ucf['classes'][label]}/" in path
        assert sorted(set(dataset.labels)) == [0, 1, 2]


def test_ucf_test_split_of_fold_two_holds_group_two(ucf):
    assert all("_g02_" in path for path, _ in UCF101(ucf["root"], "test", fold=2).samples)


def test_ucf_item_shape_range_and_stride(ucf):
    dataset = UCF101(
        ucf["root"], "test", num_frames=5, frame_stride=3, height=16, width=24, clip_sampling="start"
    )
    item = dataset[0]
    assert item["video"].shape == (5, 3, 16, 24) and item["video"].dtype == torch.float32
    assert item["video"].min() >= -1 and item["video"].max() <= 1
    assert item["is_image"] is False and item["index"] == 0
    assert _frames_of(item["video"]) == [0, 3, 6, 9, 12]


def test_ucf_random_clip_start_is_a_function_of_seed_epoch_and_index(ucf):
    dataset = UCF101(ucf["root"], "test", num_frames=4, height=8, width=8)
    first = _frames_of(dataset[ItemKey(1, seed=3, epoch=0)]["video"])
    assert _frames_of(dataset[ItemKey(1, seed=3, epoch=0)]["video"]) == first
    starts = {_frames_of(dataset[ItemKey(1, seed=3, epoch=e)]["video"])[0] for e in range(8)}
    assert len(starts) > 1 and all(0 <= s <= 24 - 4 for s in starts)
    assert _frames_of(dataset[ItemKey(1, seed=3, epoch=0)]["video"]) == [first[0] + i for i in range(4)]


def test_ucf_truncated_video_is_skipped_and_counted_in_training(ucf):
    # one broken video of six: allow it (the default 0.1 would stop; see test_reliability_data.py)
    dataset = UCF101(ucf["root"], "train", num_frames=4, height=8, width=8, max_unreadable_fraction=0.5)
    broken = [i for i, (path, _) in enumerate(dataset.samples) if path in ucf["broken"]][0]
    with pytest.warns(RuntimeWarning, match="skipping unreadable file .*g0"):
        item = dataset[broken]
    assert dataset.num_skipped == 1 and item["index"] == (broken + 1) % len(dataset)


def test_ucf_truncated_video_raises_with_its_path_when_not_skipping(ucf):
    dataset = UCF101(ucf["root"], "train", num_frames=4, height=8, width=8, skip_unreadable=False)
    broken = [i for i, (path, _) in enumerate(dataset.samples) if path in ucf["broken"]][0]
    with pytest.raises(UnreadableFileError, match=ucf["broken"][0]):
        dataset[broken]


def test_ucf_bad_root_says_what_layout_is_expected(tmp_path):
    with pytest.raises(DataError, match="not a UCF-101 root.*ucfTrainTestlist/classInd.txt.*data synth"):
        UCF101(tmp_path / "nowhere")


def test_ucf_unknown_split_is_a_data_error(ucf):
    with pytest.raises(DataError, match="train, test, train\\+test"):
        UCF101(ucf["root"], "validation")


# -- Kinetics-600 -------------------------------------------------------------------------------------------


def test_kinetics_missing_clips_are_counted_not_fatal(kinetics):
    with pytest.warns(RuntimeWarning, match="2 of 8 annotated clips are missing"):
        dataset = Kinetics600(kinetics["root"], kinetics["csv"], "train", num_frames=4, height=16, width=16)
    assert len(dataset) == kinetics["train"] and dataset.num_missing == 2
    assert sorted(p for p, _ in dataset.missing) == sorted(kinetics["missing"])


def test_kinetics_label_index_is_sorted_unique_csv_labels(kinetics):
    dataset = Kinetics600(kinetics["root"], kinetics["csv"], "val", num_frames=4, height=16, width=16)
    assert dataset.classes == ["abseiling", "air drumming", "zumba"]
    for path, label in dataset.samples:
        assert f"/{dataset.classes[label]}/" in path
    item = dataset[0]
    assert item["video"].shape == (4, 3, 16, 16) and item["label"] == dataset.samples[0][1]


def test_kinetics_relative_annotation_path_is_found_under_root(kinetics):
    dataset = Kinetics600(kinetics["root"], "annotations.csv", "val")
    assert len(dataset) == kinetics["val"]


def test_kinetics_without_annotations_is_a_data_error(kinetics):
    with pytest.raises(DataError, match="data.annotations"):
        Kinetics600(kinetics["root"], None)


# -- ImageNet -----------------------------------------------------------------------------------------------


def test_imagenet_items_are_one_frame_videos_with_adm_crop(imagenet):
    dataset = ImageNet(imagenet["root"], "val", height=32, width=32)
    assert len(dataset) == imagenet["counts"]["val"] and dataset.classes == imagenet["classes"]
    item = dataset[4]  # class 1, image 1: grey 30 + 40 + 5
    assert item["video"].shape == (1, 3, 32, 32) and item["is_image"] is True and item["label"] == 1
    assert float((item["video"].mean() + 1) * 127.5) == pytest.approx(75, abs=2)


def test_imagenet_non_image_file_is_skipped_and_counted(imagenet):
    dataset = ImageNet(imagenet["root"], "train", height=16, width=16, max_unreadable_fraction=0.5)
    assert len(dataset) == imagenet["counts"]["train"] + 1  # notes.txt is not a sample; the fake .JPEG is
    broken = [i for i, (p, _) in enumerate(dataset.samples) if p in imagenet["broken"]][0]
    with pytest.warns(RuntimeWarning, match="zz_not_an_image.JPEG"):
        item = dataset[broken]
    assert dataset.num_skipped == 1 and item["index"] != broken


def test_image_stack_holds_independent_images_of_one_class(imagenet):
    dataset = ImageNet(imagenet["root"], "val", num_frames=5, height=8, width=8)
    item = dataset[ItemKey(3, seed=1, epoch=0)]
    assert item["video"].shape == (5, 3, 8, 8) and item["label"] == 1
    levels = [float((f.mean() + 1) * 127.5) for f in item["video"]]  # class 1 of val: greys 70, 75, 80
    assert all(68 <= lv <= 82 for lv in levels) and max(levels) - min(levels) > 3


def test_flat_val_folder_is_explained(tmp_path):
    from PIL import Image

    make_image_tree(tmp_path, splits=("train",), broken=False)
    (tmp_path / "val").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "val" / "ILSVRC2012_val_00000001.JPEG")
    with pytest.raises(DataError, match="no class folders.*one folder per class"):
        ImageNet(tmp_path, "val")


# -- build_dataset ------------------------------------------------------------------------------------------


def test_build_dataset_picks_reader_and_split_from_config(ucf, imagenet):
    cfg = DataConfig(root=str(ucf["root"]), num_classes=3, num_frames=4, height=8, width=8, split="test")
    assert isinstance(build_dataset(cfg), UCF101) and len(build_dataset(cfg)) == 3
    assert len(build_dataset(cfg, "train")) == 6
    img = DataConfig(
        dataset="imagenet", root=str(imagenet["root"]), num_classes=2, num_frames=1, height=8, width=8
    )
    assert isinstance(build_dataset(img, "val"), ImageNet)


def test_build_dataset_rejects_a_class_count_mismatch(ucf):
    cfg = DataConfig(root=str(ucf["root"]), num_classes=101)
    with pytest.raises(DataError, match="data.num_classes=101 .* 3 classes; set data.num_classes=3"):
        build_dataset(cfg)
