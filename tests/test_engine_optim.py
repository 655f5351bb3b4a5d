"""Learning-rate schedules (cosine with linear warmup, constant) and the optimizer choices."""

from __future__ import annotations

import math

import pytest
import torch

from walt_bench.engine.config import TrainConfig
from walt_bench.engine.optim import build_optimizer, build_scheduler, lr_multiplier


def test_linear_warmup_reaches_peak_at_the_last_warmup_step():
    assert [lr_multiplier(s, 100, 4, "cosine") for s in range(4)] == [0.25, 0.5, 0.75, 1.0]


def test_cosine_decays_from_peak_through_half_to_floor():
    total, warm = 110, 10
    assert lr_multiplier(10, total, warm, "cosine") == pytest.approx(1.0)
    assert lr_multiplier(60, total, warm, "cosine") == pytest.approx(0.5)
    assert lr_multiplier(35, total, warm, "cosine") == pytest.approx(0.5 * (1 + math.cos(math.pi / 4)))
    assert lr_multiplier(110, total, warm, "cosine") == pytest.approx(0.0)
    assert lr_multiplier(110, total, warm, "cosine", min_lr_ratio=0.1) == pytest.approx(0.1)
    assert lr_multiplier(60, total, warm, "cosine", min_lr_ratio=0.1) == pytest.approx(0.55)


def test_constant_schedule_stays_at_peak_after_warmup():
    assert [lr_multiplier(s, 50, 2, "constant") for s in (0, 1, 2, 49)] == [0.5, 1.0, 1.0, 1.0]


def test_scheduler_sets_the_optimizer_lr_per_step():
    cfg = TrainConfig(lr=1e-3, warmup_steps=2, lr_schedule="cosine")
    opt = build_optimizer(torch.nn.Linear(2, 2).parameters(), cfg)
    sched = build_scheduler(opt, cfg, total_steps=6)
    seen = []
    for _ in range(6):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert seen == pytest.approx([1e-3 * lr_multiplier(s, 6, 2, "cosine") for s in range(6)])


@pytest.mark.parametrize(
    ("name", "cls"),
    [("adamw", torch.optim.AdamW), ("adam", torch.optim.Adam), ("adafactor", torch.optim.Adafactor)],
)
def test_optimizer_choice_and_settings(name, cls):
    cfg = TrainConfig(optimizer=name, lr=2e-4, weight_decay=0.01, betas=(0.8, 0.95))
    frozen = torch.nn.Parameter(torch.zeros(1), requires_grad=False)
    opt = build_optimizer([*torch.nn.Linear(2, 2).parameters(), frozen], cfg)
    assert type(opt) is cls and opt.param_groups[0]["lr"] == 2e-4
    assert opt.param_groups[0]["weight_decay"] == 0.01
    assert sum(len(g["params"]) for g in opt.param_groups) == 2
    if name != "adafactor":
        assert opt.param_groups[0]["betas"] == (0.8, 0.95)
