"""FSDP2 shards each W.A.L.T layer and each tokenizer stage as its own unit (not only the root), and trains
exactly as DDP does: two CPU processes under torchrun (gloo)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from walt_bench.spec import load_spec

HERE = Path(__file__).parent


def test_units_are_each_walt_layer_and_each_tokenizer_block():
    from sharding_fsdp_script import SPEC

    from walt_bench.diffusion.train import build_model
    from walt_bench.tokenizer.layers import DepthToSpaceUpsample, Downsample, ResBlock
    from walt_bench.tokenizer.model import CausalAutoencoder

    spec = load_spec(Path("experiments/base/default.yaml"), SPEC)
    model = build_model(spec)
    assert (
        model.fsdp_units() == list(model.denoiser.layers)
        and len(model.fsdp_units()) == model.denoiser.size.depth == 2
    )
    tok = CausalAutoencoder(spec.tokenizer)
    units = tok.fsdp_units()
    kinds = (ResBlock, Downsample, DepthToSpaceUpsample)
    assert units and all(isinstance(u, kinds) for u in units)
    assert len(units) == sum(isinstance(m, kinds) for m in tok.modules())  # every stage, encoder and decoder
    shared = {id(p) for u in units for p in u.parameters()}
    assert len(shared) == sum(len(list(u.parameters())) for u in units)  # no parameter in two units


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    out = tmp_path_factory.mktemp("fsdp")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join([str(HERE.parent), str(HERE)])}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--standalone"]
    proc = subprocess.run(
        [*cmd, str(HERE / "sharding_fsdp_script.py"), str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return [torch.load(out / f"rank{r}.pt", weights_only=False) for r in (0, 1)]


@pytest.mark.parametrize("name", ["walt", "tokenizer"])
def test_fsdp2_shards_parameters_per_unit(ranks, name):
    for result in ranks:
        units = result[name]["units"]
        assert result[name]["root"] and units
        for unit in units:
            assert unit["fsdp"], "each unit is its own FSDP module"
            assert unit["dtensor_shard0"], "its parameters are DTensors sharded on dim 0 across both ranks"
            assert unit["local"] < unit["full"]  # each rank holds a part
    assert sum(u["local"] for r in ranks for u in r[name]["units"]) >= sum(
        u["full"] for u in ranks[0][name]["units"]
    )


@pytest.mark.parametrize("name", ["walt", "tokenizer"])
def test_fsdp2_loss_matches_ddp(ranks, name):
    r = ranks[0][name]
    assert len(r["ddp_losses"]) == 4 and r["ddp_losses"][0] != r["ddp_losses"][-1]  # it trains
    torch.testing.assert_close(
        torch.tensor(r["fsdp_losses"]), torch.tensor(r["ddp_losses"]), rtol=1e-5, atol=1e-7
    )
    assert r["max_param_diff"] < 1e-5
    assert ranks[1][name]["fsdp_losses"] == r["fsdp_losses"]
