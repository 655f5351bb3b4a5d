"""build_loader: batch format, determinism, sharding, resume, epochs, joint batches and skipping."""

from __future__ import annotations

import itertools
import warnings

import pytest
import torch
from PIL import Image

from walt_bench.data.config import DataConfig
from walt_bench.data.fakes import make_ucf101_tree
from walt_bench.data.loader import build_dataset, build_loader
from walt_bench.data.synthetic import synthesize
from walt_bench.errors import DataError


@pytest.fixture(scope="module")
def synth_cfg(tmp_path_factory):
    root = synthesize(tmp_path_factory.mktemp("synth"), videos=3, seed=0, frames=20, size=16)
    # train+test: 30 videos
    return DataConfig(
        root=str(root), split="train+test", num_classes=10, num_frames=5, height=8, width=8, num_workers=0
    )


def take(loader, n):
    return list(itertools.islice(iter(loader), n))


def test_batches_have_the_contract_layout(synth_cfg):
    batch = take(build_loader(synth_cfg, 4, seed=0), 1)[0]
    assert batch["video"].shape == (4, 5, 3, 8, 8) and batch["video"].dtype == torch.float32
    assert batch["video"].min() >= -1 and batch["video"].max() <= 1
    assert batch["label"].dtype == torch.long and batch["label"].shape == (4,)
    assert batch["is_image"].dtype == torch.bool and not batch["is_image"].any()


def test_same_seed_same_batches_other_seed_other_order(synth_cfg):
    a, b = take(build_loader(synth_cfg, 4, seed=1), 3), take(build_loader(synth_cfg, 4, seed=1), 3)
    for x, y in zip(a, b):
        assert torch.equal(x["index"], y["index"]) and torch.equal(x["video"], y["video"])
    c = take(build_loader(synth_cfg, 4, seed=2), 3)
    assert not all(torch.equal(x["index"], z["index"]) for x, z in zip(a, c))


def test_worker_processes_do_not_change_the_batches(synth_cfg):
    single = take(build_loader(synth_cfg, 4, seed=3), 2)
    multi = take(build_loader(synth_cfg.model_copy(update={"num_workers": 2}), 4, seed=3), 2)
    for x, y in zip(single, multi):
        assert torch.equal(x["index"], y["index"]) and torch.equal(x["video"], y["video"])


def test_ranks_get_disjoint_shards_that_cover_the_epoch(synth_cfg):
    loaders = [build_loader(synth_cfg, 3, seed=0, rank=r, world_size=2) for r in range(2)]
    steps = loaders[0].steps_per_epoch
    assert steps == 30 // (3 * 2)
    seen = [torch.cat([b["index"] for b in take(ld, steps)]).tolist() for ld in loaders]
    assert set(seen[0]).isdisjoint(seen[1])
    assert len(set(seen[0]) | set(seen[1])) == len(seen[0]) + len(seen[1]) == 30


def test_resume_from_start_step_gives_the_same_following_batches(synth_cfg):
    fresh = take(build_loader(synth_cfg, 4, seed=5), 10)  # 7 steps per epoch: crosses an epoch boundary
    resumed = take(build_loader(synth_cfg, 4, seed=5, start_step=6), 4)
    for x, y in zip(fresh[6:], resumed):
        assert torch.equal(x["index"], y["index"]) and torch.equal(x["video"], y["video"])


def test_loader_is_infinite_and_reshuffles_each_epoch(synth_cfg):
    loader = build_loader(synth_cfg, 5, seed=0)
    assert loader.steps_per_epoch == 6
    batches = take(loader, 18)
    epochs = [torch.cat([b["index"] for b in batches[i : i + 6]]).tolist() for i in (0, 6, 12)]
    assert all(sorted(e) == list(range(30)) for e in epochs)
    assert epochs[0] != epochs[1] != epochs[2]


def test_drop_last_false_pads_the_last_step(synth_cfg):
    loader = build_loader(synth_cfg, 4, seed=0, drop_last=False)
    assert loader.steps_per_epoch == 8
    indices = torch.cat([b["index"] for b in take(loader, 8)]).tolist()
    assert len(indices) == 32 and set(indices) == set(range(30))


def test_too_few_items_for_one_global_batch_is_a_data_error(synth_cfg):
    with pytest.raises(DataError, match="fewer than one global batch"):
        build_loader(synth_cfg, 16, seed=0, world_size=2)


def test_joint_batches_mix_videos_and_image_stacks(synth_cfg, tmp_path):
    classes = build_dataset(synth_cfg).classes
    for name, grey in ((classes[2], 60), ("n09999999", 200)):
        (tmp_path / name).mkdir()
        for i in range(3):
            Image.new("RGB", (12, 10), (grey + i, grey + i, grey + i)).save(tmp_path / name / f"{i}.JPEG")
    cfg = synth_cfg.model_copy(update={"image_root": str(tmp_path), "image_ratio": 0.5})
    batches = take(build_loader(cfg, 4, seed=0), 4)
    for batch in batches:
        assert batch["video"].shape == (4, 5, 3, 8, 8)
        assert batch["is_image"].tolist() == [False, False, True, True]
    images = [(b["video"][k], b["label"][k]) for b in batches for k in (2, 3)]
    labels = {int(label) for _, label in images}
    assert labels <= {2, 10} and len(labels) == 2  # matched class name -> its label; unknown -> null class
    for video, label in images:
        greys = (video.mean(dim=(1, 2, 3)) + 1) * 127.5  # each frame one image of the stack's class
        expected = 60 if label == 2 else 200
        assert ((greys - expected) > -3).all() and ((greys - expected) < 6).all()


@pytest.fixture()
def broken_tree(tmp_path):
    return make_ucf101_tree(tmp_path)


def _one_epoch(tree, num_workers):
    cfg = DataConfig(
        root=str(tree["root"]),
        num_classes=3,
        num_frames=4,
        height=8,
        width=8,
        num_workers=num_workers,
        max_unreadable_fraction=0.5,  # the fake tree has one broken video of six
    )
    loader = build_loader(cfg, 2, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        batches = take(loader, loader.steps_per_epoch)  # one epoch requests every train video once
    return loader, batches


def test_training_skips_an_unreadable_video_and_counts_it(broken_tree):
    loader, batches = _one_epoch(broken_tree, num_workers=0)
    assert all(b["video"].shape == (2, 4, 3, 8, 8) for b in batches)
    assert loader.dataset.num_skipped == 1
    broken = [i for i, (p, _) in enumerate(loader.dataset.samples) if p in broken_tree["broken"]][0]
    assert broken not in torch.cat([b["index"] for b in batches]).tolist()


def test_skips_in_worker_processes_reach_the_parent_counter(broken_tree):
    loader, batches = _one_epoch(broken_tree, num_workers=2)
    assert len(batches) == 3
    assert loader.dataset.num_skipped >= 1  # workers may prefetch into the next epoch and skip it again
