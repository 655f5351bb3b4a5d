"""EMA of weights: ema <- decay * ema + (1 - decay) * param, a plain copy before start_step."""

from __future__ import annotations

import torch

from walt_bench.engine.ema import EMA


def test_update_is_the_exponential_moving_average():
    net = torch.nn.Linear(3, 2)
    ema = EMA(net, decay=0.9)
    w0 = net.weight.detach().clone()
    with torch.no_grad():
        net.weight.add_(1.0)
    ema.update(net, step=0)
    torch.testing.assert_close(ema.shadow[0], 0.9 * w0 + 0.1 * (w0 + 1.0))
    with torch.no_grad():
        net.weight.add_(1.0)
    ema.update(net, step=1)
    torch.testing.assert_close(ema.shadow[0], 0.9 * (0.9 * w0 + 0.1 * (w0 + 1)) + 0.1 * (w0 + 2.0))


def test_before_start_step_the_ema_copies_the_weights():
    net = torch.nn.Linear(3, 2)
    ema = EMA(net, decay=0.9999, start_step=5)
    with torch.no_grad():
        net.weight.mul_(3.0)
    ema.update(net, step=4)
    assert torch.equal(ema.shadow[0], net.weight)
    with torch.no_grad():
        net.weight.add_(1.0)
    ema.update(net, step=5)
    assert not torch.equal(ema.shadow[0], net.weight)


def test_copy_to_and_state_dict_round_trip():
    net, other = torch.nn.Linear(3, 2), torch.nn.Linear(3, 2)
    ema = EMA(net, decay=0.5)
    ema.copy_to(other)
    assert torch.equal(other.weight, net.weight) and torch.equal(other.bias, net.bias)
    state = ema.state_dict()
    assert set(state) == {"weight", "bias"}
    fresh = EMA(torch.nn.Linear(3, 2), decay=0.5)
    fresh.load_state_dict(state)
    assert all(torch.equal(a, b) for a, b in zip(fresh.shadow, ema.shadow))
