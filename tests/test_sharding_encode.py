"""`walt-bench tokenizer encode` at scale: shards written by whichever process, merged with exact statistics,
resumed from the finished shards; two torchrun processes write the cache of one process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from walt_bench.spec import load_spec

HERE = Path(__file__).parent


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    """A 9-video synthetic dataset and a 4-channel tokenizer trained for one step; shards of 2 clips."""
    from walt_bench.cli import main
    from walt_bench.data.synthetic import synthesize

    root = tmp_path_factory.mktemp("enc")
    synthesize(root / "data", videos=3, num_classes=3, frames=9, size=16)
    over = [
        f"data.root={root / 'data'}",
        "data.num_classes=3",
        "data.num_frames=5",
        "data.height=16",
        "data.width=16",
        "data.num_workers=0",
        "data.clip_sampling=start",
        "tokenizer.f_s=2",
        "tokenizer.f_t=2",
        "tokenizer.channels=4",
        "tokenizer.channel_multipliers=[1,2]",
        "tokenizer.num_res_blocks=1",
        "tokenizer.num_groups=2",
        "tokenizer.adversarial_weight=0",
        "tokenizer.perceptual_weight=0",
        "tokenizer.cache_shard_size=2",
        "tokenizer.eval_clips=1",
        "tokenizer.train.steps=1",
        "tokenizer.train.batch_size=2",
        "tokenizer.train.warmup_steps=0",
        "tokenizer.train.ckpt_every=1",
        "tracking.enabled=false",
        f"run.out_dir={root / 'runs'}",
        "run.device=cpu",
        "run.name=enc",
    ]
    spec_file = root / "spec.yaml"
    spec_file.write_text("run:\n  name: enc\n")
    assert main(["tokenizer", "train", "--spec", str(spec_file), "--no-progress", *over]) == 0
    return spec_file, over


def encode(tokenizer, out, **kw):
    from walt_bench.tokenizer.encode import encode_dataset

    spec_file, over = tokenizer
    return encode_dataset(load_spec(spec_file, over), out=str(out), batch_size=1, progress=False, **kw)


def cache_arrays(path: Path) -> dict[str, np.ndarray]:
    from walt_bench.data.latents import LatentCache

    cache = LatentCache(path)
    latents = np.stack([np.asarray(cache[i]["latent"]) for i in range(len(cache))])
    return {"latent": latents, "label": cache.labels, "is_image": cache.is_image, "index": cache.indices}


def test_shards_of_the_split_and_stats_of_every_latent_element(tmp_path, tokenizer):
    m = encode(tokenizer, tmp_path / "c")
    arrays = cache_arrays(tmp_path / "c")
    n = m["count"]
    assert n >= 5 and [s["count"] for s in m["shards"]] == [2] * (n // 2) + [1] * (n % 2)
    assert np.array_equal(arrays["index"], np.arange(n))
    per_channel = (
        arrays["latent"].astype(np.float64).transpose(2, 0, 1, 3, 4).reshape(arrays["latent"].shape[2], -1)
    )
    np.testing.assert_allclose(m["stats"]["mean"], per_channel.mean(1), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(m["stats"]["std"], per_channel.std(1), rtol=1e-9, atol=1e-12)
    assert not (tmp_path / "c.tmp").exists() and not list((tmp_path / "c").glob("*.meta.npz"))


def test_a_stopped_encode_resumes_from_its_finished_shards(tmp_path, tokenizer, monkeypatch):
    from walt_bench.data import latents

    whole = encode(tokenizer, tmp_path / "whole")
    real, written, stop = latents.write_latent_shard, [], [True]

    def crash_on_shard_1(folder, k, rows, batches, **kw):
        if k == 1 and stop[0]:
            raise RuntimeError("stopped while writing shard 1")
        written.append(k)
        return real(folder, k, rows, batches, **kw)

    monkeypatch.setattr(latents, "write_latent_shard", crash_on_shard_1)
    with pytest.raises(RuntimeError, match="stopped"):
        encode(tokenizer, tmp_path / "c")
    assert written == [0] and not (tmp_path / "c").exists()  # no half cache
    stop[0], written[:] = False, []
    resumed = encode(tokenizer, tmp_path / "c")
    assert written == list(range(1, len(whole["shards"])))  # shard 0 was not encoded again
    a, b = cache_arrays(tmp_path / "whole"), cache_arrays(tmp_path / "c")
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert resumed["stats"] == whole["stats"]


def test_two_processes_write_the_cache_of_one_process(tmp_path, tokenizer):
    spec_file, over = tokenizer
    one = encode(tokenizer, tmp_path / "one")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join([str(HERE.parent), str(HERE)])}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--standalone"]
    cmd += [str(HERE / "sharding_encode_script.py"), str(spec_file), str(tmp_path / "two"), *over]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    two = json.loads((tmp_path / "two" / "manifest.json").read_text())
    assert two["world_size"] == 2 and two["identity"] == one["identity"]
    assert two["stats"] == one["stats"]  # float64 sums merged in shard order: exactly equal
    a, b = cache_arrays(tmp_path / "one"), cache_arrays(tmp_path / "two")
    assert all(np.array_equal(a[k], b[k]) for k in a)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0]["count"] == ranks[1]["count"] == one["count"]
