"""Reference-statistics files: pytorch-fid's ``.npz`` layout plus the identity of what made them.

A file holds ``mu`` (d,) and ``sigma`` (d, d) over all its real clips (what pytorch-fid reads), and, written
by ``walt-bench eval stats`` or the statistics cache:

- ``mu_sets`` (R, d), ``sigma_sets`` (R, d, d): one reference set per repeat when R > 1 (MAGVIT's UCF-101
  protocol pairs each repeat of generated clips with its own real clips);
- ``features`` (R, n, d) float32: the real features themselves, for KID (optional);
- scalars naming what made them: ``protocol``, ``extractor``, ``extractor_backend``, ``weights_sha256``,
  ``covariance``, ``num_samples`` (clips per set), ``sets``, ``reference_sets``, ``dataset``, ``split``,
  ``fold``, ``data_fingerprint``, ``frames``, ``height``, ``width`` and ``walt_bench_stats`` (format version).

:func:`mismatches` compares that identity with an evaluation's settings, so a file made under other settings
is refused by name instead of silently giving a number that is not comparable. Files without the identity
(pytorch-fid's, ADM's reference batches) are read as they are and results say they were not verified.

Reading never loads arrays it does not need: shapes and dtypes come from the ``.npy`` headers, so ADM's
reference batch (``arr_0``: 10,000 x 256 x 256 x 3 images, about 2 GB, beside ``mu``/``sigma``) costs only
its statistics.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from walt_bench.errors import DataError, UserError
from walt_bench.evaluation.samples import read_npy_header

STATS_FORMAT = 2  # value of the ``walt_bench_stats`` key; bump when the layout or identity changes
ARRAY_KEYS = ("mu", "sigma", "mu_sets", "sigma_sets", "features")
CHECKED = (  # identity fields an evaluation compares with a given statistics file, in reporting order
    "protocol",
    "extractor",
    "extractor_backend",
    "weights_sha256",
    "covariance",
    "reference_sets",
    "sets",
    "num_samples",
    "dataset",
    "split",
    "fold",
    "data_fingerprint",
    "frames",
    "height",
    "width",
)


class StatsMismatchError(UserError):
    """A statistics file was made under other settings than the evaluation that was asked to use it."""


@dataclass
class ReferenceStats:
    """One or more real-data reference sets: ``mu[r]``, ``sigma[r]`` (and optionally ``features[r]``)."""

    mu: list[np.ndarray]
    sigma: list[np.ndarray]
    meta: dict = field(default_factory=dict)
    features: list[np.ndarray] | None = None
    pooled: tuple[np.ndarray, np.ndarray] | None = None  # (mu, sigma) over every set, pytorch-fid's keys
    info: dict = field(
        default_factory=dict
    )  # where it came from in this run (source, cached, verified); not saved

    @property
    def dim(self) -> int:
        return int(self.mu[0].size)

    @property
    def sets(self) -> int:
        return len(self.mu)

    @property
    def verified(self) -> bool:
        """True when the file records what made it (a walt-bench statistics file)."""
        return "walt_bench_stats" in self.meta


# ------------------------------------------------------------------------------------------- reading


def npz_headers(path: str | Path) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """``{key: (shape, dtype)}`` of every array in an ``.npz``, read from the ``.npy`` headers only."""
    path = Path(path)
    try:
        out = {}
        with zipfile.ZipFile(path) as zf:
            for name in zf.namelist():
                if not name.endswith(".npy"):
                    continue
                with zf.open(name) as fh:
                    shape, _, dtype = read_npy_header(fh)
                out[name.removesuffix(".npy")] = (tuple(shape), dtype)
        return out
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(
            f"cannot read statistics file {path} ({exc}); expected an .npz with 'mu' (d,) and 'sigma' (d, d) as "
            "written by `walt-bench eval stats` or pytorch-fid --save-stats. Recompute it."
        ) from exc


def _read_member(path: Path, key: str) -> np.ndarray:
    try:
        with zipfile.ZipFile(path) as zf, zf.open(f"{key}.npy") as fh:
            return np.lib.format.read_array(fh, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(f"cannot read {key!r} of statistics file {path}: {exc}. Recompute the file.") from exc


def read_stats(path: str | Path, *, with_features: bool = False) -> ReferenceStats:
    """The reference sets of a statistics file (pytorch-fid, ADM reference batch or walt-bench)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"statistics file {path} does not exist; compute it with `walt-bench eval stats`.")
    if not zipfile.is_zipfile(path):
        raise DataError(
            f"cannot read statistics file {path}: it is not an .npz with 'mu' and 'sigma' (a plain .npy array, or a "
            "truncated archive?); write statistics with `walt-bench eval stats` or pytorch-fid --save-stats."
        )
    headers = npz_headers(path)
    if not {"mu", "sigma"} <= set(headers):
        raise DataError(
            f"{path} holds {sorted(headers)}; expected the keys 'mu' and 'sigma' (pytorch-fid / ADM "
            "reference-batch layout). A file with only 'arr_0' holds images: give it as eval.reference_stats "
            "and `walt-bench eval` computes their statistics."
        )
    meta = {}
    for key, (shape, dtype) in headers.items():
        if shape == () and key not in ARRAY_KEYS and dtype.kind in "biufU":
            meta[key] = _read_member(path, key).item()
    mu, sigma = _as_stats(path, _read_member(path, "mu"), _read_member(path, "sigma"))
    if "mu_sets" in headers and "sigma_sets" in headers:
        mus, sigmas = _read_member(path, "mu_sets"), _read_member(path, "sigma_sets")
        if mus.ndim != 2 or sigmas.shape != (len(mus), mus.shape[1], mus.shape[1]) or mus.shape[1] != mu.size:
            raise DataError(
                f"{path}: mu_sets {mus.shape} / sigma_sets {sigmas.shape} do not match mu {mu.shape}."
            )
        sets_mu = [m.astype(np.float64) for m in mus]
        sets_sigma = [s.astype(np.float64) for s in sigmas]
    else:
        sets_mu, sets_sigma = [mu], [sigma]
    features = None
    if with_features and "features" in headers:
        feats = _read_member(path, "features")
        if feats.ndim == 3 and len(feats) == len(sets_mu) and feats.shape[2] == mu.size:
            features = list(feats)
    return ReferenceStats(sets_mu, sets_sigma, meta, features, pooled=(mu, sigma))


def _as_stats(path: Path, mu: np.ndarray, sigma: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mu, sigma = mu.astype(np.float64), sigma.astype(np.float64)
    mu = mu.reshape(-1) if mu.ndim == 2 and 1 in mu.shape else mu  # some tools write (1, d)
    if mu.ndim != 1 or sigma.shape != (mu.size, mu.size):
        raise DataError(
            f"{path}: mu has shape {mu.shape} and sigma {sigma.shape}; expected mu (d,) and sigma (d, d) of one "
            "feature size d. The file is not a pytorch-fid / walt-bench statistics file; recompute it."
        )
    return mu, sigma


def load_stats(path: str | Path) -> tuple[np.ndarray, np.ndarray, dict]:
    """``mu``, ``sigma`` (over every real clip of the file) and its identity scalars."""
    stats = read_stats(path)
    return stats.pooled[0], stats.pooled[1], stats.meta


# ------------------------------------------------------------------------------------------- writing


def save_stats(path: str | Path, mu: np.ndarray, sigma: np.ndarray, **meta) -> Path:
    """Write one reference set as pytorch-fid statistics (``mu``, ``sigma``) plus scalar metadata."""
    return write_stats(path, ReferenceStats([np.asarray(mu)], [np.asarray(sigma)], meta))


def write_stats(path: str | Path, stats: ReferenceStats) -> Path:
    """Write ``stats`` atomically: pooled ``mu``/``sigma``, per-set arrays when there are several, features."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    mu, sigma = stats.pooled if stats.pooled is not None else (stats.mu[0], stats.sigma[0])
    arrays = {"mu": np.asarray(mu, np.float64), "sigma": np.asarray(sigma, np.float64)}
    if stats.sets > 1:
        arrays["mu_sets"] = np.stack(stats.mu).astype(np.float64)
        arrays["sigma_sets"] = np.stack(stats.sigma).astype(np.float64)
    if stats.features is not None:
        arrays["features"] = np.stack(stats.features).astype(np.float32)
    extra = {k: np.asarray(v) for k, v in stats.meta.items() if v is not None and k not in ARRAY_KEYS}
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, **arrays, **extra)
    tmp.replace(path)
    return path


# ---------------------------------------------------------------------------------------- identity


def mismatches(meta: dict, expected: dict, names=("the file has", "this evaluation uses")) -> list[str]:
    """``field: the file has A, this evaluation uses B`` for every identity field the two disagree on
    (fields either side does not record are not compared)."""
    out = []
    for key in CHECKED:
        mine, theirs = meta.get(key), expected.get(key)
        if mine is not None and theirs is not None and str(mine) != str(theirs):
            out.append(f"{key}: {names[0]} {mine!r}, {names[1]} {theirs!r}")
    return out


def check_matches(stats: ReferenceStats, expected: dict, source: str) -> None:
    """Refuse (:class:`StatsMismatchError`, exit 2) a walt-bench statistics file made under other settings."""
    if stats.dim != expected.get("dim", stats.dim):
        raise StatsMismatchError(
            f"{source} holds {stats.dim}-d statistics; the {expected.get('extractor')} extractor gives "
            f"{expected['dim']}-d features. It was made with another feature network."
        )
    if not stats.verified:
        return
    problems = mismatches(stats.meta, expected)
    if problems:
        raise StatsMismatchError(
            f"{source} was made under other settings than this evaluation:\n  - "
            + "\n  - ".join(problems)
            + "\nRecompute it with `walt-bench eval stats --spec FILE --out F.npz` under this spec, or evaluate "
            "with the settings it was made with."
        )
