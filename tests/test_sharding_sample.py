"""`walt-bench sample` at scale: per-sample seeds, clips streamed to shards, resume from finished shards, the
evaluators reading the shards, and two torchrun processes giving the clips of one process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from test_diffusion_commands import SMOKE, write_cache

from walt_bench.diffusion.export import load_samples
from walt_bench.spec import load_spec

HERE = Path(__file__).parent


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A 2-step diffusion checkpoint of the tiny smoke model (class-conditional, 3 classes)."""
    from walt_bench.cli import main

    tmp = tmp_path_factory.mktemp("trained")
    over = SMOKE + ["train.steps=2", "train.ckpt_every=2", f"tokenizer.cache_dir={tmp / 'cache'}"]
    over += [f"run.out_dir={tmp / 'runs'}"]
    spec_file = tmp / "spec.yaml"
    spec_file.write_text(f"base: {Path('experiments/base/default.yaml').resolve()}\n")
    spec = load_spec(spec_file, over)
    write_cache(tmp / "cache", spec)
    assert main(["train", "--spec", str(spec_file), "--no-progress", *over]) == 0
    ckpt = sorted((tmp / "runs").glob("*/checkpoints/step_*.pt"))[-1]
    return spec_file, over, spec, ckpt


@pytest.fixture()
def sample(trained, monkeypatch):
    """``sample(out, num, batch_size, **kw)``: run_sample with a seeded stand-in tokenizer."""
    from walt_bench.diffusion import sample as sample_mod
    from walt_bench.tokenizer.model import CausalAutoencoder

    _, _, spec, ckpt = trained

    def untrained_tokenizer(s, provenance, device):
        torch.manual_seed(0)
        return CausalAutoencoder(s.tokenizer).eval(), "stand-in.pt"

    monkeypatch.setattr(sample_mod, "trained_tokenizer", untrained_tokenizer)

    def run(out, num=5, batch_size=2, **kw):
        return sample_mod.run_sample(
            spec, ckpt, num, out, seed=5, batch_size=batch_size, progress=False, **kw
        )

    return run


def test_clips_stream_to_one_shard_per_batch_and_the_record_comes_last(tmp_path, sample):
    record = sample(tmp_path / "s", num=5, batch_size=2, max_files=3)
    shards = sorted(p.name for p in (tmp_path / "s" / "shards").glob("shard_*.npz"))
    assert shards == ["shard_00000.npz", "shard_00001.npz", "shard_00002.npz"]
    with np.load(tmp_path / "s" / "shards" / "shard_00002.npz") as last:
        assert (int(last["start"]), int(last["stop"])) == (4, 5) and last["videos"].shape[0] == 1
    videos, labels = load_samples(tmp_path / "s")
    assert videos.shape == (5, 17, 32, 32, 3) and labels.shape == (5,)
    assert record["num"] == 5 and record["shape"] == [5, 17, 32, 32, 3] and record["shards"] == 3
    assert sorted(p.name for p in (tmp_path / "s" / "videos").glob("*.mp4")) == [
        "sample_00000.mp4",
        "sample_00001.mp4",
        "sample_00002.mp4",
    ]
    assert (tmp_path / "s" / "grid.gif").is_file()
    assert json.loads((tmp_path / "s" / "samples.json").read_text())["identity"] == record["identity"]


def test_each_clip_depends_on_its_own_seed_not_on_its_batch(tmp_path, sample):
    sample(tmp_path / "b2", num=5, batch_size=2)
    sample(tmp_path / "b3", num=5, batch_size=3)
    v2, l2 = load_samples(tmp_path / "b2")
    v3, l3 = load_samples(tmp_path / "b3")
    assert np.array_equal(l2, l3)  # labels from (seed, i)
    # same noise per clip; batched float kernels may round a pixel by one level
    diff = np.abs(v2.astype(int) - v3.astype(int))
    assert diff.max() <= 2 and (diff == 0).mean() > 0.99
    assert np.abs(v2[0].astype(int) - v2[1].astype(int)).mean() > 1  # and clips differ from each other


def test_a_stopped_generation_resumes_from_its_finished_shards(tmp_path, sample, monkeypatch):
    from walt_bench.diffusion import sample as sample_mod

    whole = sample(tmp_path / "s", num=5, batch_size=2)
    videos, labels = load_samples(tmp_path / "s")
    # a generation stopped after shards 0 and 2: no record, shard 1 missing
    (tmp_path / "s" / "samples.json").unlink()
    (tmp_path / "s" / "shards" / "shard_00001.npz").unlink()
    made = []
    real = sample_mod.generate_batch
    monkeypatch.setattr(sample_mod, "generate_batch", lambda *a, **kw: made.append(a[3]) or real(*a, **kw))
    again = sample(tmp_path / "s", num=5, batch_size=4)  # the interrupted run's shard size wins
    assert made == [2]  # only shard 1 (clips 2, 3) was generated again
    assert again["identity"] == whole["identity"] and again["generated_now"] == 2
    v2, l2 = load_samples(tmp_path / "s")
    assert np.array_equal(v2, videos) and np.array_equal(l2, labels)
    made.clear()
    assert sample(tmp_path / "s", num=5)["reused"] and made == []  # complete: nothing to do
    sample(tmp_path / "s", num=5, batch_size=5, overwrite=True)
    assert made == [5] and len(list((tmp_path / "s" / "shards").glob("shard_*.npz"))) == 1


def test_shards_of_another_generation_are_not_mixed_in(tmp_path, sample):
    sample(tmp_path / "s", num=5, batch_size=2)
    (tmp_path / "s" / "samples.json").unlink()
    record = sample(tmp_path / "s", num=4, batch_size=2)  # another identity (count) in the same folder
    assert record["num"] == 4 and len(list((tmp_path / "s" / "shards").glob("shard_*.npz"))) == 2


def test_evaluators_read_the_shards_in_blocks_of_any_size(tmp_path, sample):
    from walt_bench.evaluation.evaluate import sample_batches
    from walt_bench.evaluation.samples import open_samples, to_pixels

    sample(tmp_path / "s", num=5, batch_size=2)
    videos, _ = load_samples(tmp_path / "s")
    rows = open_samples(tmp_path / "s")
    assert len(rows) == 5 and rows.shape == (5, 17, 32, 32, 3) and rows.dtype == np.uint8
    blocks = list(rows.iter_blocks(3, limit=4))
    assert [len(b) for b in blocks] == [3, 1]
    assert np.array_equal(np.concatenate(blocks), videos[:4])
    pixels = torch.cat(list(sample_batches(tmp_path / "s", 3, 5)))
    torch.testing.assert_close(pixels, to_pixels(videos))


def test_a_missing_shard_is_an_error_not_a_shorter_sample(tmp_path):
    from walt_bench.data.shards import ShardedRows, plan_shards, write_shard
    from walt_bench.errors import DataError

    plan = plan_shards(5, 2)
    for k in (0, 2):
        write_shard(tmp_path, k, plan[k], videos=np.zeros((len(plan[k]), 1, 2, 2, 3), np.uint8))
    with pytest.raises(DataError, match="row 2 was expected next"):
        ShardedRows(tmp_path, "videos")


def test_two_processes_sample_the_clips_of_one_process(tmp_path, trained, sample):
    spec_file, over, _, ckpt = trained
    one = sample(tmp_path / "one", num=5, batch_size=2)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join([str(HERE.parent), str(HERE)])}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--standalone"]
    cmd += [str(HERE / "sharding_sample_script.py"), str(spec_file), str(ckpt), str(tmp_path / "two"), *over]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    two = json.loads((tmp_path / "two" / "samples.json").read_text())
    assert two["identity"] == one["identity"] and two["world_size"] == 2
    v1, l1 = load_samples(tmp_path / "one")
    v2, l2 = load_samples(tmp_path / "two")
    assert np.array_equal(v1, v2) and np.array_equal(l1, l2)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0]["identity"] == ranks[1]["identity"] == one["identity"]  # every rank returns the record


def test_per_sample_generators_draw_the_eta_noise_of_each_sample_alone():
    from walt_bench.diffusion.config import DiffusionConfig
    from walt_bench.diffusion.sampler import ddim_timesteps, randn, sample_ddim
    from walt_bench.diffusion.schedule import NoiseSchedule

    sched = NoiseSchedule.from_config(DiffusionConfig())
    ts = ddim_timesteps(4, 1000)

    def run(indices):
        gens = [torch.Generator().manual_seed(100 + i) for i in indices]
        x = randn((len(indices), 2, 3, 4, 4), generator=gens)
        return sample_ddim(lambda z, t: 0.5 * z, x, ts, schedule=sched, eta=1.0, generator=gens, disable=True)

    both, alone = run([0, 1, 2]), run([2])
    torch.testing.assert_close(both[2:], alone)  # sample 2 does not depend on samples 0 and 1
    assert not torch.allclose(both[0], both[1])
