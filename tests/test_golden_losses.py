"""The smoke tokenizer and W.A.L.T-tiny reproduce their committed loss curves (``tests/golden.py`` says how to
regenerate them after an intended change)."""

from __future__ import annotations

import json

import pytest
import torch
from golden import ASSETS, STEPS, golden_losses


@pytest.mark.slow
def test_smoke_tokenizer_and_walt_tiny_reproduce_the_golden_losses(tmp_path):
    losses = golden_losses(tmp_path)
    for name in ("tokenizer", "walt"):
        golden = json.loads((ASSETS / f"{name}.json").read_text())
        assert golden["steps"] == STEPS and len(losses[name]) == STEPS
        torch.testing.assert_close(
            torch.tensor(losses[name]),
            torch.tensor(golden["losses"]),
            rtol=1e-4,
            atol=1e-6,
            msg=lambda m, name=name: (
                f"{name} losses moved from tests/assets/losses/{name}.json ({m}); if the "
                "change is intended, regenerate with `.venv/bin/python tests/golden.py --write`"
            ),
        )
