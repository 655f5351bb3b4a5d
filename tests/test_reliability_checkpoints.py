"""Reliability, items 2 and 10: checkpoints carry a checksum of their content; a truncated, zero-length,
bit-flipped or otherwise damaged checkpoint is detected and named, `--resume auto` falls back to the previous
good one with a message, and a checkpoint that holds code is refused without running it."""

from __future__ import annotations

import pytest
import torch
from engine_tiny import TinyNet, configs, make_loader, regression_loss, tiny_train

from walt_bench.engine import checkpoint as ckpt_io
from walt_bench.engine.checkpoint import CorruptCheckpointError, load_checkpoint
from walt_bench.engine.loop import Part
from walt_bench.errors import CheckpointError

IDENTITY = "ab12ab12ab12"


def run(out, steps=6, resume="auto", **kw):
    train_cfg, run_cfg, tracking_cfg, spec_dict = configs(out, steps=steps, ckpt_every=3, **kw)
    torch.manual_seed(0)
    return tiny_train(
        [Part("net", TinyNet(dropout=0.3), regression_loss)],
        make_loader(),
        train_cfg=train_cfg,
        run_cfg=run_cfg,
        tracking_cfg=tracking_cfg,
        spec_dict=spec_dict,
        spec_hash=IDENTITY,
        resume=resume,
        progress=False,
    )


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    result = run(tmp_path_factory.mktemp("full"))
    return [p.detach().clone() for p in result.modules["net"].parameters()]


def _flip_inside_weight(path):
    """Flip one bit in the middle of the stored bytes of parts.net.model['fc1.weight']."""
    raw = bytearray(path.read_bytes())
    weight = torch.load(path, weights_only=True)["parts"]["net"]["model"]["fc1.weight"]
    at = raw.find(weight.numpy().tobytes())
    assert at > 0
    raw[at + 13] ^= 0x40
    path.write_bytes(bytes(raw))


def _damage_pickle_key(path):
    raw = bytearray(path.read_bytes())
    at = raw.find(b"scheduler")
    assert at > 0
    raw[at + 3] ^= 0x20  # 'scheduler' -> 'schEduler'
    path.write_bytes(bytes(raw))


DAMAGE = {
    "bit-flip in a weight": _flip_inside_weight,
    "damaged pickle key": _damage_pickle_key,
    "truncated": lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]),
    "zero-length": lambda p: p.write_bytes(b""),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_damaged_checkpoint_is_named_and_never_loaded(tmp_path, damage):
    result = run(tmp_path, steps=3)
    path = result.run_dir / "checkpoints" / "step_00000003.pt"
    DAMAGE[damage](path)
    with pytest.raises(CorruptCheckpointError, match=str(path)):
        load_checkpoint(path)


def test_flipped_weight_fails_the_checksum_by_name(tmp_path):
    path = run(tmp_path, steps=3).run_dir / "checkpoints" / "step_00000003.pt"
    _flip_inside_weight(path)
    with pytest.raises(CorruptCheckpointError, match=r"step_00000003\.pt fails its checksum"):
        load_checkpoint(path)


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_resume_auto_falls_back_to_the_previous_good_checkpoint(tmp_path, uninterrupted, damage, capsys):
    train_cfg, run_cfg, tracking_cfg, spec_dict = configs(tmp_path, steps=6, ckpt_every=3)
    torch.manual_seed(0)
    stopped = tiny_train(
        [Part("net", TinyNet(dropout=0.3), regression_loss)],
        make_loader(),
        train_cfg=train_cfg,
        run_cfg=run_cfg,
        tracking_cfg=tracking_cfg,
        spec_dict=spec_dict,
        spec_hash=IDENTITY,
        stop_at_step=5,  # checkpoints at 3 and 5
        progress=False,
    )
    ckpts = stopped.run_dir / "checkpoints"
    DAMAGE[damage](ckpts / "step_00000005.pt")
    with pytest.warns(RuntimeWarning, match=r"step_00000005\.pt .*trying the previous checkpoint"):
        resumed = run(tmp_path, steps=6)
    assert resumed.summary["resumed_from"].endswith("step_00000003.pt")
    assert "step_00000005.pt" in capsys.readouterr().err
    assert [p.name for p in (ckpts / "corrupt").iterdir()][0].startswith("step_00000005.pt.")  # kept, aside
    for a, b in zip(resumed.modules["net"].parameters(), uninterrupted):
        assert torch.equal(a, b)  # steps 4..6 were trained again, exactly


def test_an_explicitly_named_damaged_checkpoint_is_an_error_not_a_fallback(tmp_path):
    result = run(tmp_path, steps=6)
    path = result.run_dir / "checkpoints" / "step_00000006.pt"
    _flip_inside_weight(path)
    with pytest.raises(CheckpointError, match=r"step_00000006\.pt fails its checksum"):
        run(tmp_path, steps=6, resume=str(path))


def test_checkpoint_that_holds_code_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    evil = tmp_path / "step_00000001.pt"
    torch.save({"format": ckpt_io.FORMAT, "payload": Payload()}, evil)
    with pytest.raises(CorruptCheckpointError, match="unpickling them can run code") as info:
        load_checkpoint(evil)
    assert not marker.exists()
    assert "weights_only` set to `False" not in str(info.value)  # never advise the unsafe load


def test_checksum_covers_every_tensor_byte_and_key():
    obj = {"format": ckpt_io.FORMAT, "w": torch.arange(6.0), "opt": {0: {"step": torch.tensor(3.0)}}}
    digest = ckpt_io.content_digest(obj)
    assert ckpt_io.content_digest({**obj, "w": torch.arange(6.0).flip(0).flip(0)}) == digest
    changed = torch.arange(6.0)
    changed[4] = -250.97
    assert ckpt_io.content_digest({**obj, "w": changed}) != digest
    assert ckpt_io.content_digest({**obj, "opt": {1: {"step": torch.tensor(3.0)}}}) != digest
