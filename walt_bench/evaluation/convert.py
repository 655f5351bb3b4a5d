"""``walt-bench eval convert-c3d``: MAGVIT's flax C3D checkpoint -> a state dict of our :class:`C3D`.

    walt-bench eval convert-c3d c3d_ucf101.flax --out ~/.cache/walt_bench/weights/c3d_ucf101_magvit.pt

MAGVIT (``videogvt/train_lib/inception_score.py``) stores its C3D as ``flax.serialization.to_bytes`` of the
parameter tree: msgpack maps of names to arrays, each array an msgpack extension (code 1) holding
``(shape, dtype name, raw C-order bytes)``. This reads that format with the ``msgpack`` package alone (no
JAX/flax), then moves each layer into PyTorch's layout:

- ``convNx/kernel`` (kT, kH, kW, in, out) -> ``convNx.weight`` (out, in, kT, kH, kW); ``bias`` as is;
- ``fcN/kernel`` (in, out) -> ``fcN.weight`` (out, in) — MAGVIT flattens pool5 in (C, T, H, W) order, as we do;
- ``x_offset`` (16, 112, 112, 3), the negated Sports-1M mean clip in BGR, as is.

The result is loaded strictly into :class:`C3D` before it is written, so a file that converts is a file
that loads. Nothing else is read from the checkpoint (no code runs).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from walt_bench.errors import WeightsError

FLAX_NDARRAY_EXT = 1  # flax.serialization's msgpack extension code for an ndarray


def looks_like_flax(path: str | Path) -> bool:
    """A flax msgpack checkpoint starts with a map whose first key is a string (a torch pickle never does)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(2)
    except OSError:
        return False
    if len(head) < 2:
        return False
    is_map = 0x81 <= head[0] <= 0x8F or head[0] in (0xDE, 0xDF)
    return is_map and (0xA0 <= head[1] <= 0xBF or head[1] == 0xD9)


def read_flax_msgpack(path: str | Path) -> dict:
    """The nested ``{name: ndarray | dict}`` tree of a ``flax.serialization.to_bytes`` file."""
    try:
        import msgpack
    except ImportError as exc:  # a declared dependency; only a broken install lacks it
        raise WeightsError(
            "reading a flax checkpoint needs the msgpack package: pip install msgpack"
        ) from exc

    def ext_hook(code: int, data: bytes):
        if code != FLAX_NDARRAY_EXT:
            return msgpack.ExtType(code, data)
        shape, dtype, buffer = msgpack.unpackb(data, raw=False)
        return np.frombuffer(buffer, dtype=np.dtype(dtype)).reshape(shape)

    try:
        tree = msgpack.unpackb(Path(path).read_bytes(), ext_hook=ext_hook, raw=False, strict_map_key=False)
    except (
        OSError,
        ValueError,
        TypeError,
        msgpack.ExtraData,
        msgpack.FormatError,
        msgpack.StackError,
    ) as exc:
        raise WeightsError(f"{path} is not a flax msgpack checkpoint ({type(exc).__name__}: {exc}).") from exc
    if not isinstance(tree, dict):
        raise WeightsError(f"{path} holds a {type(tree).__name__}, not flax's parameter tree.")
    return tree


def c3d_state_from_flax(tree: dict, source: str = "checkpoint") -> dict[str, torch.Tensor]:
    """MAGVIT's C3D parameter tree (with or without the top-level ``params``) -> our state dict."""
    from walt_bench.evaluation.c3d import C3D

    params = tree.get("params", tree)
    missing = [name for name in (*C3D.CONVS, *C3D.DENSES, "x_offset") if name not in params]
    if missing:
        raise WeightsError(
            f"{source} is not MAGVIT's C3D checkpoint: it lacks {missing} (it holds {sorted(params)[:12]})."
        )
    state = {}
    for name in (*C3D.CONVS, *C3D.DENSES):
        kernel, bias = np.asarray(params[name]["kernel"]), np.asarray(params[name]["bias"])
        if name.startswith("conv") and kernel.ndim == 5:
            weight = kernel.transpose(4, 3, 0, 1, 2)  # (kT, kH, kW, in, out) -> (out, in, kT, kH, kW)
        elif name.startswith("fc") and kernel.ndim == 2:
            weight = kernel.T  # (in, out) -> (out, in)
        else:
            raise WeightsError(f"{source}: {name}/kernel has shape {kernel.shape}, not a C3D layer.")
        state[f"{name}.weight"] = torch.from_numpy(np.ascontiguousarray(weight, dtype=np.float32))
        state[f"{name}.bias"] = torch.from_numpy(np.array(bias, dtype=np.float32))
    state["x_offset"] = torch.from_numpy(np.array(params["x_offset"], dtype=np.float32))
    return state


def convert_c3d(source: str | Path, out: str | Path) -> Path:
    """Convert MAGVIT's ``c3d_ucf101.flax`` to a :class:`C3D` state dict at ``out`` (checked by loading it)."""
    from walt_bench.evaluation.c3d import C3D

    state = c3d_state_from_flax(read_flax_msgpack(source), str(source))
    frames, size = state["x_offset"].shape[:2]
    model = C3D(
        num_classes=state["fc8.weight"].shape[0],
        num_frames=frames,
        size=size,
        base=state["conv1a.weight"].shape[0],
        hidden=state["fc7.weight"].shape[0],
    )
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise WeightsError(f"{source} does not convert to a C3D: {exc}") from exc
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), out)
    return out
