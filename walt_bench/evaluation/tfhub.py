"""The reference FVD network: DeepMind's I3D from TF-Hub (``deepmind/i3d-kinetics-400/1``), optional.

Install with ``pip install 'walt_bench[tfhub]'`` (TensorFlow, tensorflow-hub, tf-keras); TensorFlow is
imported only here, only when this extractor is asked for. ``hub.load`` accepts a handle (cached under
``$TFHUB_CACHE_DIR``; nothing is fetched by tests) or a local SavedModel directory, which is how it runs
offline. The module is called on ``(B, T, 224, 224, 3)`` float32 in [-1, 1] — the tensor the google-research
``frechet_video_distance`` code feeds it — through its ``default`` signature when it has one, else directly;
the output is the 400 Kinetics logits.
"""

from __future__ import annotations

import numpy as np
import torch

from walt_bench.errors import WeightsError


def load_tfhub_i3d(location: str):
    """A callable (B, T, 3, H, W) in [-1, 1] -> {"features", "logits"} (400-d) backed by TensorFlow."""
    try:
        import tensorflow as tf
        import tensorflow_hub as hub
    except ImportError as exc:
        raise WeightsError(
            f"the TF-Hub I3D ({location}) needs TensorFlow: pip install 'walt_bench[tfhub]'. Without it, use "
            "the TorchScript I3D (eval.i3d_weights=/path/i3d_torchscript.pt)."
        ) from exc
    from walt_bench.evaluation.extractors import i3d_input

    try:
        module = hub.load(location)
    except Exception as exc:  # noqa: BLE001 - hub raises many types for a bad handle or directory
        raise WeightsError(
            f"hub.load({location!r}) failed: {exc}. Expected a TF-Hub I3D handle or SavedModel directory."
        ) from exc
    signature = getattr(module, "signatures", {}).get("default") if hasattr(module, "signatures") else None

    def call(batch: np.ndarray) -> np.ndarray:
        x = tf.constant(batch)
        if signature is None:
            out = module(x)
        else:
            names = list(signature.structured_input_signature[1])
            out = signature(**{names[0]: x}) if names else signature(x)
        if isinstance(out, dict):
            out = out["default"] if "default" in out else next(iter(out.values()))
        return np.asarray(out)

    def run(video: torch.Tensor) -> dict[str, torch.Tensor]:
        batch = i3d_input(video.cpu()).permute(0, 2, 3, 4, 1).contiguous().numpy()  # (B, T, 224, 224, 3)
        logits = torch.from_numpy(call(batch.astype(np.float32)))
        return {"features": logits, "logits": logits}

    return run
