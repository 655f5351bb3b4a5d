"""The sections of ``walt-bench bench``: what is measured and how each number is defined.

=============  ==========================================================================================
section        measures
=============  ==========================================================================================
peak           the device's attainable dense matmul FLOP/s (n x n @ n x n; best of the repeats), MFU's base
denoiser       one diffusion training step of the spec's W.A.L.T (objective with self-conditioning + backward
               + optimizer step, as ``walt-bench train`` runs it): samples/s, tokens/s, MFU, peak step memory
tokenizer      one training step of the spec's causal autoencoder (reconstruction loss; the GAN and the
               perceptual network are left out): samples/s, latent tokens/s, MFU, peak step memory
attention      the denoiser step with windowed vs full attention at equal width and depth, at latent grids
               5x16x16, 5x32x32, 5x32x56: each config's numbers and the ratios full / windowed
sampling       DDIM sampling (``diffusion.sample_steps`` steps, self-conditioning, CFG when set) + tokenizer
               decode of one batch: clips/s
extractors     the evaluators' feature extraction (I3D, InceptionV3, C3D, the synthetic classifier) with
               their reference preprocessing, on randomly initialised weights loaded through the same code
               path as real weights (speed does not depend on the values): clips/s
=============  ==========================================================================================

Weights are random everywhere (speed and memory do not depend on them); inputs are random tensors of the
spec's shapes, and every step reseeds its generator, so repeats do the same work.
"""

from __future__ import annotations

import contextlib
import functools
import math
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from walt_bench.bench.measure import (
    CPU_METHOD,
    CUDA_METHOD,
    measure_matmul_peak,
    mfu,
    rates,
    step_peak_memory,
    time_calls,
)

SECTIONS = ("peak", "denoiser", "tokenizer", "attention", "sampling", "extractors")
EXTRACTORS = ("synthetic", "c3d", "i3d", "inception")

# Windowed configurations of the attention comparison: the Table 3 defaults (spatial 1x16x16, spatiotemporal
# 5x8x8) and, for the 9:16 grid, Table 6's windows (1x16x28, 5x8x14). "Full" is the same model with
# st_window=full and the spatial window = the whole latent frame.
ATTENTION_WINDOWS: dict[tuple[int, int, int], tuple[tuple[int, int, int], tuple[int, int, int]]] = {
    (5, 16, 16): ((1, 16, 16), (5, 8, 8)),
    (5, 32, 32): ((1, 16, 16), (5, 8, 8)),
    (5, 32, 56): ((1, 16, 28), (5, 8, 14)),
}


def default_windows(grid: tuple[int, int, int]) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """Windows for a grid: the table above, else the largest divisors of each axis up to 16 (spatial) and
    5 x 8 x 8 (spatiotemporal)."""
    if tuple(grid) in ATTENTION_WINDOWS:
        return ATTENTION_WINDOWS[tuple(grid)]

    def divisor(n: int, cap: int) -> int:
        return max(d for d in range(1, min(n, cap) + 1) if n % d == 0)

    t, h, w = grid
    return (1, divisor(h, 16), divisor(w, 16)), (divisor(t, 5), divisor(h, 8), divisor(w, 8))


def attention_configs(model_cfg, grid, *, depth: int, width: int, heads: int):
    """(windowed, full) denoiser configs: equal everything, except ``spatial_window`` and ``st_window``."""
    spatial, st = default_windows(grid)
    base = model_cfg.model_copy(update={"depth": depth, "hidden_size": width, "num_heads": heads})
    windowed = base.model_copy(update={"spatial_window": spatial, "st_window": st})
    full = base.model_copy(update={"spatial_window": None, "st_window": "full"})
    return windowed, full


@dataclass
class BenchConfig:
    """What ``walt-bench bench`` runs (command-line options; defaults finish in minutes on 2 CPU cores)."""

    spec: object  # ExperimentSpec: the denoiser, tokenizer, sampling and extractor shapes
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    precision: str = "auto"  # auto: bf16 autocast on CUDA, fp32 on CPU
    compile: bool = False
    warmup: int = 1
    repeats: int = 3
    batch: int = 4  # denoiser training batch
    tokenizer_batch: int = 2
    attn_grids: tuple = ((5, 16, 16), (5, 32, 32), (5, 32, 56))
    attn_depth: int = 2
    attn_width: int = 128
    attn_heads: int = 4
    attn_batch: int = 1
    sample_batch: int = 4
    sample_steps: int | None = None  # None: the spec's diffusion.sample_steps
    eval_batch: int = 2
    extractors: tuple = EXTRACTORS
    matmul_n: int = 2048

    @property
    def autocast(self) -> torch.dtype | None:
        from walt_bench.engine.loop import autocast_dtype

        return autocast_dtype(self.precision, self.device)

    def amp(self):
        dtype = self.autocast
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=dtype)


# -- which attention kernel runs -------------------------------------------------------------------------
KERNELS = {
    "_scaled_dot_product_flash_attention": "flash",
    "_scaled_dot_product_efficient_attention": "memory-efficient",
    "_scaled_dot_product_cudnn_attention": "cudnn",
    "_scaled_dot_product_flash_attention_for_cpu": "flash (cpu)",
    "_safe_softmax": "math",
}


class _KernelLog(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.seen: set[str] = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.overloadpacket.__name__
        if name in KERNELS:
            self.seen.add(KERNELS[name])
        return func(*args, **(kwargs or {}))


def attention_kernels(fn) -> list[str]:
    """The SDPA backends one (eager) call of ``fn`` dispatches to (``math`` = the unfused reference path)."""
    log = _KernelLog()
    with log:
        fn()
    return sorted(log.seen)


# -- the diffusion training step ---------------------------------------------------------------------------
@dataclass
class TrainStep:
    """A callable training step plus what is needed to report on it."""

    step: object
    model: torch.nn.Module
    forward_flops: float  # one sample's forward
    tokens_per_sample: int
    state: dict = field(default_factory=dict)

    def __call__(self):
        return self.step()

    @property
    def flops_per_sample(self) -> float:
        """Forward + backward (3 x forward) plus the gradient-free self-conditioning pass, which runs on the
        whole batch whenever any of its examples draws it (§4.3)."""
        sc = float(self.state.get("sc_rate", 0.0))
        return 3.0 * self.forward_flops + (self.forward_flops if sc > 0 else 0.0)


def diffusion_train_step(spec, denoiser, batch: int, cfg: BenchConfig) -> TrainStep:
    """One optimizer step of ``denoiser`` on random latents, as the diffusion trainer runs it."""
    from walt_bench.denoiser.info import forward_flops
    from walt_bench.diffusion.train import LatentDiffusionModel, build_objective
    from walt_bench.engine.optim import build_optimizer

    dev = cfg.device
    model = LatentDiffusionModel(denoiser, denoiser.latent_channels, spec.diffusion.latent_norm).to(dev)
    objective = build_objective(spec)
    optimizer = build_optimizer(model.parameters(), spec.train)
    module = torch.compile(model) if cfg.compile else model
    gen = torch.Generator(dev).manual_seed(0)
    t, h, w = denoiser.latent_size
    z0 = torch.randn((batch, t, denoiser.latent_channels, h, w), device=dev, generator=gen)
    nc = spec.data.num_classes
    labels = torch.randint(0, nc, (batch,), device=dev, generator=gen) if nc > 0 else None
    state: dict = {}

    def step():
        g = torch.Generator(dev).manual_seed(0)  # the same draws (t, noise, p_sc) at every call
        with cfg.amp():
            loss, stats = objective(module, z0, labels=labels, generator=g)
        loss.float().backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        state["sc_rate_tensor"] = stats["sc_rate"]

    step()  # the first warm-up call: builds the optimizer state, so timed and profiled calls start alike
    state["sc_rate"] = float(state.pop("sc_rate_tensor"))
    return TrainStep(step, model, forward_flops(denoiser)["total"], math.prod(denoiser.grid), state)


def _throughput(ts: TrainStep, batch: int, cfg: BenchConfig, peak: float | None) -> dict:
    timing = time_calls(ts, warmup=max(cfg.warmup - 1, 0), repeats=cfg.repeats, device=cfg.device)
    sps = rates(timing, batch)
    out = {
        "batch": batch,
        "timing": timing,
        "samples_per_s": sps,
        "tokens_per_s": {k: v * ts.tokens_per_sample for k, v in sps.items()},
        "tokens_per_sample": ts.tokens_per_sample,
        "train_flops_per_sample": ts.flops_per_sample,
        "memory": step_peak_memory(ts, cfg.device),
    }
    if peak:
        out["mfu"] = mfu(ts.flops_per_sample, sps["median"], peak)
    return out


def _datasheet_mfu(result: dict, cfg: BenchConfig) -> None:
    """On CUDA, also MFU against the vendor's dense peak (``engine.throughput``), when the GPU is known."""
    if cfg.device.type != "cuda":
        return
    from walt_bench.engine.throughput import peak_flops

    peak = peak_flops(cfg.device, cfg.autocast)
    if peak:
        result["datasheet_peak_flops_per_s"] = peak
        result["mfu_datasheet"] = mfu(
            result["train_flops_per_sample"], result["samples_per_s"]["median"], peak
        )


# -- sections ----------------------------------------------------------------------------------------------
def run_peak(cfg: BenchConfig) -> dict:
    dtype = cfg.autocast or torch.float32
    return measure_matmul_peak(
        cfg.device, dtype, n=cfg.matmul_n, warmup=cfg.warmup, repeats=max(cfg.repeats, 5)
    )


def run_denoiser(cfg: BenchConfig, peak: float | None) -> dict:
    from walt_bench.denoiser.info import count_parameters
    from walt_bench.denoiser.model import build_denoiser

    spec = cfg.spec
    torch.manual_seed(0)
    denoiser = build_denoiser(spec)
    ts = diffusion_train_step(spec, denoiser, cfg.batch, cfg)
    out = {
        "size": spec.model.size,
        "params": count_parameters(denoiser)["total"],
        "geometry": {
            "depth": denoiser.size.depth,
            "hidden_size": denoiser.size.hidden_size,
            "num_heads": denoiser.size.num_heads,
            "latent": list(denoiser.latent_size),
            "token_grid": list(denoiser.grid),
            "spatial_window": list(denoiser.window_for("spatial", denoiser.grid)),
            "st_window": list(denoiser.window_for("spatiotemporal", denoiser.grid)),
        },
        "attention_kernels": attention_kernels(ts) if not cfg.compile else ["(compiled: not inspected)"],
        "flops_source": "walt_bench.denoiser.info.forward_flops (model_info): 3 x forward + the "
        "self-conditioning forward",
        **_throughput(ts, cfg.batch, cfg, peak),
    }
    _datasheet_mfu(out, cfg)
    return out


def autoencoder_forward_flops(tok_cfg, clip_shape: tuple[int, ...]) -> float:
    """Forward FLOPs (encode + decode) of one clip, counted by ``torch.utils.flop_counter`` on the meta device
    (the tokenizer has no FLOP formula of its own; convolutions and matmuls are counted)."""
    from torch.utils.flop_counter import FlopCounterMode

    from walt_bench.tokenizer.model import CausalAutoencoder

    with torch.device("meta"):
        model = CausalAutoencoder(tok_cfg)
        x = torch.empty((1, *clip_shape))
    with FlopCounterMode(display=False) as counter:
        model.decode(model.encode(x))
    return float(counter.get_total_flops())


def run_tokenizer(cfg: BenchConfig, peak: float | None) -> dict:
    from walt_bench.engine.optim import build_optimizer
    from walt_bench.tokenizer.model import CausalAutoencoder, num_parameters
    from walt_bench.tokenizer.objective import TokenizerObjective

    spec, dev, b = cfg.spec, cfg.device, cfg.tokenizer_batch
    clip = (spec.data.num_frames, 3, spec.data.height, spec.data.width)
    torch.manual_seed(0)
    model = CausalAutoencoder(spec.tokenizer).to(dev)
    objective = TokenizerObjective(spec.tokenizer.model_copy(update={"perceptual_weights": None})).to(dev)
    optimizer = build_optimizer(model.parameters(), spec.tokenizer.train)
    module = torch.compile(model) if cfg.compile else model
    video = torch.rand((b, *clip), device=dev, generator=torch.Generator(dev).manual_seed(0)) * 2 - 1
    amp = cfg.autocast if spec.tokenizer.train.precision != "fp32" else None

    def step():
        g = torch.Generator(dev).manual_seed(0)
        with torch.autocast(dev.type, dtype=amp) if amp else contextlib.nullcontext():
            loss, _, _ = objective.generator_loss(module, None, video, 0, generator=g)
        loss.float().backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    step()  # the first warm-up call (optimizer state)
    fwd = autoencoder_forward_flops(spec.tokenizer, clip)
    lt, lh, lw = spec.latent_shape
    ts = TrainStep(step, model, fwd, lt * lh * lw)
    out = {
        "params": num_parameters(model),
        "clip": list(clip),
        "latent": [lt, spec.tokenizer.latent_channels, lh, lw],
        "precision": str(amp).replace("torch.", "") if amp else "fp32",
        "flops_source": "torch.utils.flop_counter on the meta device (conv + matmul), 3 x forward; "
        "reconstruction loss only (no discriminator, no perceptual network)",
        **_throughput(ts, b, cfg, peak),
    }
    out["latent_tokens_per_s"] = out.pop("tokens_per_s")
    out["latent_tokens_per_sample"] = out.pop("tokens_per_sample")
    _datasheet_mfu(out, cfg)
    return out


def run_attention(cfg: BenchConfig) -> dict:
    """Windowed vs full attention at equal width and depth, per latent grid (c, classes, p from the spec)."""
    from walt_bench.denoiser.model import WALT

    spec = cfg.spec
    out = {
        "depth": cfg.attn_depth,
        "hidden_size": cfg.attn_width,
        "num_heads": cfg.attn_heads,
        "batch": cfg.attn_batch,
        "grids": [],
    }
    for grid in cfg.attn_grids:
        grid = tuple(grid)
        windowed_cfg, full_cfg = attention_configs(
            spec.model, grid, depth=cfg.attn_depth, width=cfg.attn_width, heads=cfg.attn_heads
        )
        row: dict = {"latent": list(grid)}
        for name, model_cfg in (("windowed", windowed_cfg), ("full", full_cfg)):
            torch.manual_seed(0)
            denoiser = WALT(
                model_cfg,
                latent_channels=spec.tokenizer.latent_channels,
                latent_size=grid,
                num_classes=spec.data.num_classes,
            )
            ts = diffusion_train_step(spec, denoiser, cfg.attn_batch, cfg)
            timing = time_calls(ts, warmup=max(cfg.warmup - 1, 0), repeats=cfg.repeats, device=cfg.device)
            row[name] = {
                "spatial_window": list(denoiser.window_for("spatial", denoiser.grid)),
                "st_window": list(denoiser.window_for("spatiotemporal", denoiser.grid)),
                "timing": timing,
                "samples_per_s": rates(timing, cfg.attn_batch),
                "train_flops_per_sample": ts.flops_per_sample,
                "memory": step_peak_memory(ts, cfg.device),
            }
            del ts, denoiser
        row["speedup"] = row["full"]["timing"]["median_s"] / row["windowed"]["timing"]["median_s"]
        row["memory_ratio"] = row["full"]["memory"]["step_bytes"] / max(
            row["windowed"]["memory"]["step_bytes"], 1
        )
        out["grids"].append(row)
    return out


def run_sampling(cfg: BenchConfig) -> dict:
    from walt_bench.diffusion.sample import stage_sampler
    from walt_bench.diffusion.train import build_model
    from walt_bench.errors import UserError
    from walt_bench.tokenizer.model import CausalAutoencoder

    spec, dev, b = cfg.spec, cfg.device, cfg.sample_batch
    if spec.model.lowres_condition:
        raise UserError("bench sampling: the spec is a super-resolution stage; bench a base-stage spec")
    torch.manual_seed(0)
    model = build_model(spec).to(dev).eval()
    if cfg.compile:
        model.denoiser = torch.compile(model.denoiser)
    sampler = stage_sampler(spec, model, autocast=cfg.autocast)
    steps = cfg.sample_steps or spec.diffusion.sample_steps
    sampler.cfg = spec.diffusion.model_copy(update={"sample_steps": steps})
    tokenizer = CausalAutoencoder(spec.tokenizer).to(dev).eval()
    nc = spec.data.num_classes
    labels = torch.arange(b, device=dev) % nc if nc > 0 else None
    latents: dict = {}

    @torch.no_grad()
    def sample_and_decode():
        g = torch.Generator(dev).manual_seed(0)
        z = sampler.sample(b, labels=labels, generator=g, device=dev)
        latents["z"] = z
        return tokenizer.decode(z)

    @torch.no_grad()
    def decode():
        return tokenizer.decode(latents["z"])

    total = time_calls(sample_and_decode, warmup=cfg.warmup, repeats=cfg.repeats, device=dev)
    dec = time_calls(decode, warmup=0, repeats=cfg.repeats, device=dev)
    return {
        "batch": b,
        "ddim_steps": steps,
        "guidance_scale": spec.diffusion.guidance_scale,
        "self_condition": spec.model.self_condition,
        "timing": total,
        "clips_per_s": rates(total, b),
        "decode_timing": dec,
        "decode_share": dec["median_s"] / total["median_s"],
    }


def _random_extractor(kind: str, folder: Path, spec, device: torch.device):
    """An extractor of ``kind`` with random weights, loaded through ``evaluation.extractors`` as real ones are."""
    import json

    from walt_bench.evaluation import extractors as ex

    torch.manual_seed(0)
    path = folder / f"{kind}.pt"
    if kind == "i3d":
        from walt_bench.evaluation.i3d import InceptionI3d

        torch.save(InceptionI3d().state_dict(), path)
        return ex.load_i3d(str(path), "state_dict", device)
    if kind == "inception":
        from walt_bench.evaluation.inception import FIDInceptionV3

        torch.save(FIDInceptionV3().state_dict(), path)
        return ex.load_inception(str(path), device)
    if kind == "c3d":
        from walt_bench.evaluation.c3d import C3D

        torch.save(C3D().state_dict(), path)
        return ex.load_c3d(str(path), device)
    if kind == "synthetic":
        from walt_bench.evaluation.classifier import SyntheticVideoClassifier

        classes = max(spec.data.num_classes, 1)
        torch.save(SyntheticVideoClassifier(classes).state_dict(), path)
        Path(f"{path}.json").write_text(json.dumps({"num_classes": classes, "width": 32}))
        return ex.load_synthetic(str(path), device)
    raise ValueError(f"unknown extractor {kind!r}; choose from {', '.join(EXTRACTORS)}")


def run_extractors(cfg: BenchConfig) -> dict:
    """clips/s of each evaluator on clips of its protocol's shape (UCF-101: 16 frames of 128 x 128; the
    synthetic classifier: the spec's clips)."""
    spec, dev, b = cfg.spec, cfg.device, cfg.eval_batch
    out: dict = {"batch": b, "extractors": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for kind in cfg.extractors:
            extractor = _random_extractor(kind, Path(tmp), spec, dev)
            if kind == "synthetic":
                shape = (b, spec.data.num_frames, 3, spec.data.height, spec.data.width)
            else:
                shape = (b, 16, 3, 128, 128)
            video = torch.rand(shape, device=dev, generator=torch.Generator(dev).manual_seed(0)) * 2 - 1
            timing = time_calls(
                functools.partial(extractor, video), warmup=cfg.warmup, repeats=cfg.repeats, device=dev
            )
            out["extractors"][kind] = {
                "clip": list(shape[1:]),
                "timing": timing,
                "clips_per_s": rates(timing, b),
            }
    return out


def run_bench(
    cfg: BenchConfig, sections: tuple[str, ...] = SECTIONS, *, command: str = "", log=print
) -> dict:
    """Run ``sections`` in order; returns the JSON-ready record (device, commit, command, settings, results).

    MFU needs the ``peak`` section's measured matmul FLOP/s; it runs first whenever denoiser or tokenizer do.
    """
    from walt_bench.bench import report

    unknown = [s for s in sections if s not in SECTIONS]
    if unknown:
        raise ValueError(f"unknown section(s) {unknown}; choose from {', '.join(SECTIONS)}")
    wanted = list(sections)
    if ("denoiser" in wanted or "tokenizer" in wanted) and "peak" not in wanted:
        wanted.insert(0, "peak")
    result: dict = {
        "command": command,
        "date": report.now_utc(),
        "git": report.git_commit(),
        "device": report.device_info(cfg.device),
        "load_average_start": report.load_average(),
        "settings": {
            "spec_hash": cfg.spec.hash,
            "precision": str(cfg.autocast).replace("torch.", "") if cfg.autocast else "fp32",
            "compile": cfg.compile,
            "warmup": cfg.warmup,
            "repeats": cfg.repeats,
            "options": {
                k: (list(v) if isinstance(v, tuple) else v)
                for k, v in vars(cfg).items()
                if k not in ("spec", "device")
            },
        },
        "memory_method": CUDA_METHOD if cfg.device.type == "cuda" else CPU_METHOD,
        "sections": {},
    }
    peak = None
    for name in sorted(wanted, key=SECTIONS.index):
        log(f"bench: {name} ...")
        if name == "peak":
            r = run_peak(cfg)
            peak = r["peak_flops_per_s"]
        elif name == "denoiser":
            r = run_denoiser(cfg, peak)
        elif name == "tokenizer":
            r = run_tokenizer(cfg, peak)
        elif name == "attention":
            r = run_attention(cfg)
        elif name == "sampling":
            r = run_sampling(cfg)
        else:
            r = run_extractors(cfg)
        result["sections"][name] = r
    result["load_average_end"] = report.load_average()
    return result
