"""walt_bench.denoiser: the W.A.L.T window-attention latent transformer (§4.2-4.5), a pure nn.Module package.

    from walt_bench.denoiser.model import build_denoiser
    from walt_bench.denoiser.info import model_info
    model = build_denoiser(spec)                 # WALT sized by spec.model, spec.tokenizer, spec.data
    v_hat = model(z_t, t, class_labels=y, self_cond=z0_est, is_image=is_image)
    model_info(model)["params"]["total"]         # 313M for the paper's default L (Table 3d)

It knows tensors only: no files, schedules, training or logging. This file imports nothing, so ``spec.py``
can import ``denoiser.config`` without loading torch.
"""
