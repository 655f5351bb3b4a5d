"""The WALT model: conditioning modes, image identity path, AdaLN-LoRA, position-embedding interpolation."""

from __future__ import annotations

import pytest
import torch

from walt_bench.denoiser.conditioning import adaln_lora, modulate
from walt_bench.denoiser.config import DenoiserConfig
from walt_bench.denoiser.model import WALT
from walt_bench.errors import UserError

C, GRID, CLASSES = 4, (3, 4, 4), 5


def tiny(**kw) -> WALT:
    num_classes = kw.pop("num_classes", CLASSES)
    cfg = DenoiserConfig(size="tiny", st_window=kw.pop("st_window", (3, 2, 2)), **kw)
    model = WALT(cfg, latent_channels=C, latent_size=GRID, num_classes=num_classes)
    with torch.no_grad():  # leave the zero-init regime so every path influences the output
        for p in model.parameters():
            if p.dim() > 1 and torch.count_nonzero(p) == 0:
                p.normal_(0, 0.05)
    return model


def latents(b=2, t=GRID[0], c=C):
    return torch.randn(b, t, c, *GRID[1:])


def check_forward_backward(model, z, t, **cond):
    v = model(z, t, **cond)
    assert v.shape == z.shape and torch.isfinite(v).all()
    v.square().mean().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert any(g is not None and g.abs().sum() > 0 for g in grads)
    return v


def test_zero_initialised_model_predicts_zero():
    cfg = DenoiserConfig(size="tiny", st_window=(3, 2, 2))
    model = WALT(cfg, latent_channels=C, latent_size=GRID, num_classes=CLASSES)
    assert model(latents(), torch.rand(2)).abs().max() == 0  # DiT: final layer zero-initialised


def test_class_conditional_forward_backward_and_label_matters():
    model = tiny()
    z, t = latents(), torch.rand(2)
    v = check_forward_backward(model, z, t, class_labels=torch.tensor([0, 1]))
    v_null = model(z, t, class_labels=torch.tensor([CLASSES, CLASSES]))  # the null class
    assert not torch.allclose(v, v_null)


def test_per_frame_conditioning_of_image_stacks():
    model = tiny()
    z = latents()
    t, labels = torch.rand(2, GRID[0]), torch.randint(0, CLASSES, (2, GRID[0]))
    is_image = torch.tensor([True, True])
    v = check_forward_backward(model, z, t, class_labels=labels, is_image=is_image)
    # frame 0 of an image stack depends only on its own t and label
    t2, labels2 = t.clone(), labels.clone()
    t2[:, 1:], labels2[:, 1:] = torch.rand(2, GRID[0] - 1), (labels[:, 1:] + 1) % CLASSES
    v2 = model(z, t2, class_labels=labels2, is_image=is_image)
    torch.testing.assert_close(v[:, 0], v2[:, 0], atol=1e-5, rtol=1e-5)
    assert not torch.allclose(v[:, 1:], v2[:, 1:])


def test_self_and_frame_conditioning_inputs_are_used():
    model = tiny(self_condition=True, frame_condition=True)
    z, t = latents(), torch.rand(2)
    m = torch.zeros(2, GRID[0], 1, *GRID[1:])
    m[:, :2] = 1
    frame_cond = torch.cat([m * latents(), m], dim=2)
    v = check_forward_backward(model, z, t, self_cond=latents(), frame_cond=frame_cond)
    assert not torch.allclose(v, model(z, t, frame_cond=frame_cond))  # self_cond absent = zeros
    assert model.in_channels == C + C + C + 1


def test_lowres_and_noise_augmentation_for_super_resolution():
    model = tiny(lowres_condition=True)
    z, t = latents(), torch.rand(2)
    lowres = torch.randn(2, GRID[0], C, GRID[1] // 2, GRID[2] // 2)
    v = check_forward_backward(model, z, t, lowres=lowres, noise_aug=torch.tensor([0.1, 0.2]))
    assert not torch.allclose(v, model(z, t, lowres=lowres, noise_aug=torch.tensor([0.5, 0.5])))
    with pytest.raises(ValueError, match="lowres"):
        model(z, t)


@pytest.mark.parametrize("where", ["spatial", "all"])
def test_text_cross_attention(where):
    model = tiny(text_dim=12, cross_attention=where, num_classes=0)
    kinds = [layer.kind for layer in model.layers if layer.cross_attn is not None]
    assert kinds == (["spatial"] if where == "spatial" else ["spatial", "spatiotemporal"])
    z, t, text = latents(), torch.rand(2), torch.randn(2, 6, 12)
    mask = torch.ones(2, 6, dtype=torch.bool)
    mask[1, 3:] = False
    v = check_forward_backward(model, z, t, text=text, text_mask=mask)
    other = text.clone()
    other[1, 3:] = torch.randn(3, 12)  # masked-out text tokens change nothing
    torch.testing.assert_close(
        model(z, t, text=other, text_mask=mask)[1], v[1].detach(), atol=1e-5, rtol=1e-5
    )


def test_image_output_ignores_other_items_and_frames():
    model = tiny()
    z, t, y = latents(3), torch.rand(3), torch.tensor([0, 1, 2])
    is_image = torch.tensor([True, False, False])
    v = model(z, t, class_labels=y, is_image=is_image)
    z2 = z.clone()
    z2[1:] = torch.randn_like(z2[1:])  # other items
    z2[0, 1:] = torch.randn_like(z2[0, 1:])  # other images of the stack
    v2 = model(z2, t, class_labels=y, is_image=is_image)
    torch.testing.assert_close(v[0, 0], v2[0, 0], atol=1e-5, rtol=1e-5)
    # a video item's frame 0 does see its other frames
    z3 = z.clone()
    z3[1, 1:] = torch.randn_like(z3[1, 1:])
    assert not torch.allclose(v[1, 0], model(z3, t, class_labels=y, is_image=is_image)[1, 0])


def test_single_frame_image_latents_run_through_a_video_model():
    model = tiny()
    z = torch.randn(2, 1, C, *GRID[1:])
    check_forward_backward(
        model, z, torch.rand(2), class_labels=torch.tensor([0, 1]), is_image=torch.ones(2, dtype=bool)
    )


def test_full_self_attention_option():
    model = tiny(st_window="full")
    assert model.window_for("spatiotemporal", model.grid) == GRID
    check_forward_backward(model, latents(), torch.rand(2))


def test_patch_size_two():
    model = tiny(patch_size=2, st_window=(3, 2, 2))
    assert model.grid == (3, 2, 2)
    check_forward_backward(model, latents(), torch.rand(2))


def test_adaln_lora_reduces_to_shared_mlp_when_branch_is_zero():
    model = tiny()
    cond = torch.randn(2, 1, 32)
    shared = model.shared_adaln(cond)
    for layer in model.layers:
        assert not torch.allclose(layer.adaln(cond, shared), shared)  # Eq. 3 adds the rank-r term
        torch.nn.init.zeros_(layer.adaln.up.weight)
        torch.testing.assert_close(layer.adaln(cond, shared), shared)
        assert layer.adaln.down.out_features == 2


def test_adaln_lora_is_equation_3():
    down, up = torch.nn.Linear(8, 2, bias=False), torch.nn.Linear(2, 48, bias=False)
    shared, cond = torch.randn(3, 1, 48), torch.randn(3, 1, 8)
    expected = shared + cond @ down.weight.T @ up.weight.T
    torch.testing.assert_close(adaln_lora(shared, cond, down, up), expected)


def test_separate_adaln_has_one_mlp_per_layer():
    model = tiny(adaln="separate")
    assert model.shared_adaln is None
    assert all(layer.adaln.linear.out_features == 6 * 32 for layer in model.layers)
    check_forward_backward(model, latents(), torch.rand(2))


def test_modulate_applies_per_frame():
    x = torch.ones(1, 6, 2)  # 3 frames x 2 tokens
    shift = torch.tensor([[[0.0, 0.0], [1.0, 1.0], [2.0, 2.0]]])
    out = modulate(x, shift, torch.zeros_like(shift))
    torch.testing.assert_close(out[0, :, 0], torch.tensor([1.0, 1.0, 2.0, 2.0, 3.0, 3.0]))


def test_position_embedding_is_interpolated_for_a_new_aspect_ratio():
    model = tiny()
    wide = WALT(
        DenoiserConfig(size="tiny", st_window=(3, 2, 2), spatial_window=(1, 4, 4)),
        latent_channels=C, latent_size=(3, 4, 8), num_classes=CLASSES,
    )  # fmt: skip
    wide.load_state_dict(model.state_dict())
    assert wide.pos_embed.spatial.shape == (4, 8, 32)
    old, new = model.pos_embed.spatial.detach(), wide.pos_embed.spatial.detach()
    assert abs(new.mean() - old.mean()) < 0.2 * old.abs().mean()
    check_forward_backward(wide, torch.randn(1, 3, C, 4, 8), torch.rand(1))
    model.resize_pos_embed((4, 8))
    torch.testing.assert_close(model.pos_embed.spatial, wide.pos_embed.spatial)


def test_image_frames_use_the_first_temporal_embedding():
    model = tiny()
    pos = model.pos_embed(GRID, torch.tensor([True, False]))  # (B, N, D)
    per_frame = pos.view(2, GRID[0], -1, pos.shape[-1])
    torch.testing.assert_close(per_frame[0, 2], per_frame[1, 0])
    assert not torch.allclose(per_frame[1, 2], per_frame[1, 0])


def test_bad_geometry_is_a_user_error():
    with pytest.raises(UserError, match="even"):
        WALT(DenoiserConfig(size="tiny", depth=3), latent_channels=C, latent_size=GRID, num_classes=0)
    with pytest.raises(UserError, match="patch_size"):
        WALT(DenoiserConfig(size="tiny", patch_size=3), latent_channels=C, latent_size=GRID, num_classes=0)


@pytest.mark.parametrize(
    "options",
    [
        dict(qk_norm_type="rmsnorm"),
        dict(qk_norm=False),
        dict(rel_pos_bias=False),
        dict(spatial_window=(1, 2, 2)),
    ],
    ids=["rmsnorm", "no-qk-norm", "no-rel-bias", "small-spatial-window"],
)
def test_attention_options_forward_backward(options):
    model = tiny(**options)
    check_forward_backward(model, latents(), torch.rand(2), class_labels=torch.tensor([0, 1]))
    if "rel_pos_bias" in options:
        assert all(layer.attn.rel_bias is None for layer in model.layers)


def test_inputs_the_model_was_not_built_for_are_rejected():
    model = tiny(self_condition=False)
    with pytest.raises(ValueError, match="self_cond"):
        model(latents(), torch.rand(2), self_cond=latents())
    with pytest.raises(ValueError, match="text"):
        model(latents(), torch.rand(2), text=torch.randn(2, 3, 8))


def test_activation_checkpointing_recomputes_without_changing_gradients():
    z, t, y = latents(), torch.rand(2), torch.tensor([0, 1])
    grads, calls = [], []
    for recompute in (False, True):
        torch.manual_seed(0)
        model = tiny().train()
        model.activation_checkpointing = recompute
        layer, count = model.layers[0], []
        forward = layer.forward
        layer.forward = lambda *a, _f=forward, _c=count: (_c.append(1), _f(*a))[1]  # counts the layer's runs
        model(z, t, class_labels=y).square().mean().backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None]))
        calls.append(len(count))
    assert calls == [1, 2]  # the checkpointed layer ran again in the backward pass
    torch.testing.assert_close(grads[1], grads[0])


def test_a_one_frame_latent_is_an_image_even_without_is_image():
    """§4.2: spatiotemporal layers give images identity attention; a 1-frame latent gets it unasked."""
    model = tiny()
    z, t, y = torch.randn(2, 1, C, *GRID[1:]), torch.rand(2), torch.tensor([0, 1])
    unasked = model(z, t, class_labels=y)
    torch.testing.assert_close(unasked, model(z, t, class_labels=y, is_image=torch.ones(2, dtype=bool)))
    assert not torch.allclose(unasked, model(z, t, class_labels=y, is_image=torch.zeros(2, dtype=bool)))
