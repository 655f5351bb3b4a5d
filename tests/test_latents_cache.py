"""Latent cache: write -> read back equal, per-channel stats, manifest, clear errors."""

from __future__ import annotations

import json

import pytest
import torch

from walt_bench.data.latents import LatentCache, write_latent_cache
from walt_bench.errors import DataError


def make_batches(n_batches=4, b=2, shape=(3, 4, 2, 2)):
    g = torch.Generator().manual_seed(0)
    batches = []
    for i in range(n_batches):
        z = torch.randn(b, *shape, generator=g) * torch.tensor([1.0, 2.0, 3.0, 4.0]).view(1, 1, 4, 1, 1) + 5
        idx = torch.arange(i * b, (i + 1) * b)
        batches.append({"latent": z, "label": idx % 3, "is_image": idx % 2 == 0, "index": idx})
    return batches


def test_cache_round_trip_returns_what_was_written(tmp_path):
    batches = make_batches()
    manifest = write_latent_cache(tmp_path / "c", batches, shard_size=3, metadata={"spec_hash": "abc"})
    cache = LatentCache(tmp_path / "c")
    assert len(cache) == manifest["count"] == 8
    assert [s["count"] for s in manifest["shards"]] == [3, 3, 2]
    flat = torch.cat([b["latent"] for b in batches])
    for i in range(8):
        item = cache[i]
        assert torch.equal(item["latent"], flat[i])
        assert item["label"] == i % 3 and item["is_image"] == (i % 2 == 0) and item["index"] == i
    assert cache.latent_shape == (3, 4, 2, 2)


def test_cache_stats_are_per_channel_mean_and_std_over_the_whole_dataset(tmp_path):
    batches = make_batches()
    write_latent_cache(tmp_path / "c", batches, shard_size=3)
    cache = LatentCache(tmp_path / "c")
    flat = torch.cat([b["latent"] for b in batches]).double()  # (N, t, c, h, w)
    per_channel = flat.transpose(0, 2).reshape(4, -1)
    torch.testing.assert_close(cache.mean.double(), per_channel.mean(1), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(cache.std.double(), per_channel.std(1, unbiased=False), rtol=1e-6, atol=1e-6)
    normalized = torch.stack([cache.normalize(cache[i]["latent"]) for i in range(8)])
    torch.testing.assert_close(
        normalized.transpose(0, 2).reshape(4, -1).mean(1), torch.zeros(4), atol=1e-5, rtol=0
    )


def test_manifest_records_metadata_shapes_and_count(tmp_path):
    write_latent_cache(
        tmp_path / "c", make_batches(), metadata={"spec_hash": "abc", "tokenizer_sha256": "f00"}
    )
    manifest = json.loads((tmp_path / "c" / "manifest.json").read_text())
    assert manifest["spec_hash"] == "abc" and manifest["tokenizer_sha256"] == "f00"
    assert manifest["latent_shape"] == [3, 4, 2, 2] and manifest["count"] == 8


def test_existing_cache_is_not_overwritten_silently(tmp_path):
    write_latent_cache(tmp_path / "c", make_batches())
    with pytest.raises(DataError, match="already exists"):
        write_latent_cache(tmp_path / "c", make_batches())
    write_latent_cache(tmp_path / "c", make_batches(n_batches=1), overwrite=True)
    assert len(LatentCache(tmp_path / "c")) == 2


def test_missing_cache_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="tokenizer encode"):
        LatentCache(tmp_path / "nowhere")
