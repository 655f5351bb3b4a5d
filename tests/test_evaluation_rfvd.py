"""rFVD lives in evaluation/ (walt_bench.evaluation.rfvd); the tokenizer stage streams its pairs into it."""

from __future__ import annotations

import pytest
import torch

from walt_bench.evaluation.classifier import SyntheticVideoClassifier, save_classifier
from walt_bench.evaluation.evaluate import fd_between, quantize
from walt_bench.evaluation.rfvd import rfvd_settings, start_rfvd
from walt_bench.spec import load_spec


@pytest.fixture
def spec(tmp_path):
    torch.manual_seed(0)
    clf = save_classifier(SyntheticVideoClassifier(num_classes=4, width=8).eval(), tmp_path / "clf.pt", {})
    path = tmp_path / "spec.yaml"
    path.write_text("tracking:\n  enabled: false\n")
    overrides = ["data.num_frames=5", "data.height=16", "data.width=16", "eval.protocol=synthetic_fvd"]
    return load_spec(path, [*overrides, f"eval.classifier_weights={clf}"])


def test_streamed_rfvd_equals_the_frechet_distance_of_the_two_streams(spec):
    rfvd, note = start_rfvd(spec, torch.device("cpu"))
    assert note is None
    real = torch.rand(12, 5, 3, 16, 16) * 2 - 1
    recon = (real + 0.2 * torch.randn_like(real)).clamp(-1, 1)  # off the uint8 grid, like decoder output
    for a, b in zip(real.split(5), recon.split(5)):
        rfvd.update(a, b)
    result = rfvd.result()
    settings, _, _ = rfvd_settings(spec)
    expected = fd_between(
        quantize(real).split(4), quantize(recon).split(4), rfvd.extractor, settings, 12, progress=False
    )
    assert result["metric"] == "rFVD-synthetic" and result["value"] == pytest.approx(expected, rel=1e-6)
    assert result["N"] == {"generated": 12, "reference": 12}


def test_tokenizer_clips_that_do_not_fit_the_protocol_give_a_note_not_a_number(spec):
    rfvd, note = start_rfvd(
        spec.model_copy(update={"eval": spec.eval.model_copy(update={"protocol": "rfvd"})}), "cpu"
    )
    assert rfvd is None and "5 frames" in note and "do not fit protocol rfvd" in note


def test_the_tokenizer_stage_has_no_frechet_code_of_its_own():
    import walt_bench.tokenizer.evaluate as tokenizer_eval

    assert tokenizer_eval.start_rfvd is start_rfvd
    assert not hasattr(tokenizer_eval, "_FrechetPair")
