"""Reliability, item 6: corrupt, truncated, zero-length and wrong-format files are skipped, counted and named in
every reader; `tokenizer encode` never substitutes a neighbour; too many unreadable files stop reading with a
clear error; `data synth` refuses to write into a non-empty dataset root unless told to."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from walt_bench.cli import main
from walt_bench.data.config import DataConfig
from walt_bench.data.fakes import make_image_tree, make_kinetics_tree, make_ucf101_tree, truncate
from walt_bench.data.loader import build_dataset, build_loader
from walt_bench.errors import DataError, UserError


def _damage(path: Path, kind: str, donor: Path) -> None:
    if kind == "zero-length":
        path.write_bytes(b"")
    elif kind == "truncated":
        truncate(path, 0.3)
    elif kind == "garbage":
        path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    elif kind == "wrong-format":  # a file of another kind under the expected name
        shutil.copyfile(donor, path)


KINDS = ("zero-length", "truncated", "garbage", "wrong-format")


def _trees(tmp_path):
    ucf = make_ucf101_tree(tmp_path / "ucf", broken=False)
    k600 = make_kinetics_tree(tmp_path / "k600", missing=0)
    images = make_image_tree(tmp_path / "img", broken=False)
    png = tmp_path / "img" / "train" / images["classes"][0] / f"{images['classes'][0]}_0.JPEG"
    return {
        "ucf101": (DataConfig(root=str(ucf["root"]), num_classes=3), png),
        "kinetics600": (
            DataConfig(
                dataset="kinetics600",
                root=str(k600["root"]),
                annotations=str(k600["csv"]),
                split="train",
                num_classes=3,
            ),
            png,
        ),
        "imagenet": (
            DataConfig(dataset="imagenet", root=str(images["root"]), num_frames=1, num_classes=2),
            None,
        ),
    }


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("dataset", ["ucf101", "kinetics600", "imagenet"])
def test_every_reader_skips_counts_and_names_an_unreadable_file(tmp_path, dataset, kind):
    cfg, donor = _trees(tmp_path)[dataset]
    cfg = cfg.model_copy(
        update=dict(
            num_frames=cfg.num_frames if dataset == "imagenet" else 5,
            height=8,
            width=8,
            num_workers=0,
            max_unreadable_fraction=0.5,
        )
    )
    ds = build_dataset(cfg)
    victim = Path(ds.samples[1][0])
    if donor is None:  # images: the wrong format is a video under a .JPEG name
        donor = Path(next((tmp_path / "ucf" / "UCF-101").rglob("*.avi")))
    _damage(victim, kind, donor)
    loader = build_loader(cfg, 2, seed=0, dataset=ds)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        batches = [b for _, b in zip(range(loader.steps_per_epoch), loader)]
    assert ds.num_skipped >= 1  # counted
    assert any(str(victim) in str(w.message) for w in caught)  # named
    assert 1 not in torch.cat([b["index"] for b in batches]).tolist()  # never trained on


@pytest.mark.parametrize("kind", KINDS)
def test_data_check_lists_every_kind_of_unreadable_file(tmp_path, kind, capsys):
    ucf = make_ucf101_tree(tmp_path / "ucf", broken=False)
    victim = next((ucf["root"] / "UCF-101").rglob("*g02*.avi"))
    png = tmp_path / "x.png"
    from PIL import Image

    Image.new("RGB", (8, 8)).save(png)
    _damage(victim, kind, png)
    spec = tmp_path / "spec.yaml"
    spec.write_text("{}\n")
    code = main(
        [
            "data",
            "check",
            "--spec",
            str(spec),
            "--scale",
            "smoke",
            f"data.root={ucf['root']}",
            "data.num_classes=3",
            "data.num_frames=5",
            "data.height=8",
            "data.width=8",
        ]
    )
    out = capsys.readouterr().out
    assert code == 1 and f"UNREADABLE (train): {victim}" in out


def test_too_many_unreadable_files_stop_the_epoch_with_a_clear_error(tmp_path):
    ucf = make_ucf101_tree(tmp_path / "ucf", broken=False)
    for video in sorted((ucf["root"] / "UCF-101").rglob("*g02*.avi")):  # 3 of the 6 train videos
        video.write_bytes(b"")
    cfg = DataConfig(
        root=str(ucf["root"]),
        num_classes=3,
        num_frames=5,
        height=8,
        width=8,
        num_workers=2,
        max_unreadable_fraction=0.2,
    )
    loader = build_loader(cfg, 2, seed=0)
    with pytest.raises(DataError) as info, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _, _batch in zip(range(3 * loader.steps_per_epoch), loader):
            pass
    msg = str(info.value)
    assert "were unreadable, more than data.max_unreadable_fraction=0.2" in msg and "g02" in msg
    assert "Traceback" not in msg and "worker" not in msg  # the worker's traceback is not the message


def test_the_same_files_pass_under_a_higher_limit(tmp_path):
    ucf = make_ucf101_tree(tmp_path / "ucf", broken=False)
    (next((ucf["root"] / "UCF-101").rglob("*g02*.avi"))).write_bytes(b"")  # 1 of 6
    cfg = DataConfig(
        root=str(ucf["root"]),
        num_classes=3,
        num_frames=5,
        height=8,
        width=8,
        num_workers=0,
        max_unreadable_fraction=0.2,
    )
    loader = build_loader(cfg, 2, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert len([b for _, b in zip(range(2 * loader.steps_per_epoch), loader)]) == 6


# -- encode -------------------------------------------------------------------------------------------------
class _MeanTokenizer(torch.nn.Module):
    """A stand-in tokenizer: latents are the clip's per-channel means (one latent frame, 1x1)."""

    def encode(self, video):
        return video.mean(dim=(1, 3, 4))[:, None, :, None, None]


def test_encode_leaves_unreadable_clips_out_instead_of_copying_neighbours(tmp_path, monkeypatch):
    from walt_bench.spec import load_spec
    from walt_bench.tokenizer import encode

    ucf = make_ucf101_tree(tmp_path / "ucf", broken=True)  # one truncated train video
    zero = next((ucf["root"] / "UCF-101").rglob("*YoYo*g02*.avi"))
    zero.write_bytes(b"")
    fake_ckpt = tmp_path / "tok.pt"
    fake_ckpt.write_bytes(b"stand-in")
    monkeypatch.setattr(encode, "resolve_checkpoint", lambda spec, ckpt=None: fake_ckpt)
    monkeypatch.setattr(encode, "load_tokenizer", lambda spec, path: _MeanTokenizer())
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text("{}\n")
    spec = load_spec(
        spec_file,
        [
            f"data.root={ucf['root']}",
            "data.num_classes=3",
            "data.num_frames=5",
            "data.height=8",
            "data.width=8",
            "data.clip_sampling=start",
            "data.max_unreadable_fraction=0.5",
            f"run.out_dir={tmp_path / 'runs'}",
        ],
        scale="smoke",
    )
    m = encode.encode_dataset(spec, batch_size=4, progress=False)
    ds = build_dataset(spec.data)
    readable = [i for i, (p, _) in enumerate(ds.samples) if p not in (*ucf["broken"], str(zero))]
    assert m["count"] == len(readable) == 4 and m["num_skipped"] == 2
    assert sorted(u["path"] for u in m["unreadable"]) == sorted([*ucf["broken"], str(zero)])
    index = np.load(Path(m["path"]) / "index.npy")
    assert sorted(index.tolist()) == readable  # each readable clip once, no neighbour copies
    z = torch.stack([_MeanTokenizer().encode(ds.read(i)["video"][None])[0] for i in readable])
    assert m["stats"]["mean"] == pytest.approx(z.double().mean(dim=(0, 1, 3, 4)).tolist(), abs=1e-6)


def test_encode_stops_when_too_much_is_unreadable_and_writes_nothing(tmp_path, monkeypatch):
    from walt_bench.spec import load_spec
    from walt_bench.tokenizer import encode

    ucf = make_ucf101_tree(tmp_path / "ucf", broken=True)
    fake_ckpt = tmp_path / "tok.pt"
    fake_ckpt.write_bytes(b"stand-in")
    monkeypatch.setattr(encode, "resolve_checkpoint", lambda spec, ckpt=None: fake_ckpt)
    monkeypatch.setattr(encode, "load_tokenizer", lambda spec, path: _MeanTokenizer())
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text("{}\n")
    spec = load_spec(
        spec_file,
        [
            f"data.root={ucf['root']}",
            "data.num_classes=3",
            "data.num_frames=5",
            "data.height=8",
            "data.width=8",
            "data.max_unreadable_fraction=0.1",
            f"run.out_dir={tmp_path / 'runs'}",
        ],
        scale="smoke",
    )
    with pytest.raises(DataError, match=r"1 of the 6 clips of train are unreadable"):
        encode.encode_dataset(spec, batch_size=4, progress=False)
    # no cache and no half cache: only the work folder DIR.tmp (finished shards, kept so that an encode of the
    # repaired dataset resumes) is left, and readers never take it for a cache
    assert [p.name.endswith(".tmp") for p in (tmp_path / "runs").glob("latents-*")] in ([], [True])


# -- data synth ---------------------------------------------------------------------------------------------
def test_synth_refuses_an_existing_ucf101_root_unless_told(tmp_path, capsys):
    ucf = make_ucf101_tree(tmp_path / "ucf", broken=False)
    lists = {p.name: p.read_bytes() for p in (ucf["root"] / "ucfTrainTestlist").iterdir()}
    args = [
        "data",
        "synth",
        "--out",
        str(ucf["root"]),
        "--videos",
        "3",
        "--classes",
        "2",
        "--frames",
        "4",
        "--size",
        "8",
    ]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "is not empty: it holds a UCF-101 root" in err and "--overwrite" in err
    assert {
        p.name: p.read_bytes() for p in (ucf["root"] / "ucfTrainTestlist").iterdir()
    } == lists  # untouched
    assert main([*args, "--overwrite"]) == 0


def test_synth_into_a_file_or_again_into_its_own_output(tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("x")
    args = ["--videos", "3", "--classes", "2", "--frames", "4", "--size", "8"]
    assert main(["data", "synth", "--out", str(afile), *args]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err
    out = tmp_path / "syn"
    assert main(["data", "synth", "--out", str(out), *args]) == 0
    assert main(["data", "synth", "--out", str(out), *args]) == 0  # the same dataset again: fine
    assert main(["data", "synth", "--out", str(out), *args, "--seed", "1"]) == 2  # another one: refused
    assert "a synthetic dataset written with other arguments" in capsys.readouterr().err


def test_synth_errors_are_user_errors():
    from walt_bench.data.synthetic import synthesize

    with pytest.raises(UserError, match="is a file"):
        synthesize(Path(__file__))


def test_the_trainer_logs_and_records_the_loaders_skip_count(tmp_path):
    from engine_tiny import TinyNet, configs, make_loader, regression_loss, tiny_train

    from walt_bench.engine.loop import Part
    from walt_bench.engine.rundir import read_metrics

    class CountingLoader:  # what build_loader returns: an iterable with num_skipped
        num_skipped = 0

        def __init__(self, start):
            self.inner = make_loader()(start)

        def __iter__(self):
            for batch in self.inner:
                CountingLoader.num_skipped += 1  # one unreadable file skipped per batch
                yield batch

    train_cfg, run_cfg, tracking_cfg, spec_dict = configs(tmp_path, steps=3)
    result = tiny_train(
        [Part("net", TinyNet(), regression_loss)],
        CountingLoader,
        train_cfg=train_cfg,
        run_cfg=run_cfg,
        tracking_cfg=tracking_cfg,
        spec_dict=spec_dict,
        spec_hash="5c1b" * 3,
        progress=False,
    )
    assert [r["data/skipped"] for r in read_metrics(result.run_dir / "metrics.jsonl")] == [1.0, 2.0, 3.0]
    assert result.summary["unreadable_files_skipped"] == 3
