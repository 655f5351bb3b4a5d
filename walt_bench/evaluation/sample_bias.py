"""How much the Fréchet distance moves with the sample count N (why FVD/FID numbers of different N differ).

    OMP_NUM_THREADS=1 python -m walt_bench.evaluation.sample_bias --dims 400 2048 --counts 2048 10000 50000

The estimate FD(N) from N samples per side is biased upwards: even two sets drawn from one distribution have
FD > 0, by roughly (trace terms of the covariance estimation error) ~ d^2 / N. This measures it on synthetic
Gaussian features of the extractors' widths (400: I3D logits for FVD; 2048: Inception pool_3 for FID), with a
covariance spectrum that decays like real network features (eigenvalues ~ 1 / i), for two cases:

- ``same``: both sets from N(0, S): the true FD is 0, everything measured is bias;
- ``shifted``: generated from N(m, c S) with ``|m|^2 = d / 100`` and ``c = 0.9``: a true FD known in closed
  form, ``|m|^2 + (1 + c - 2 sqrt(c)) tr S``, to compare the estimates with.

Sets are nested (the first 2,048 rows are part of the 10,000, ...), so the differences are due to N only.
No network is involved: this is the sampling behaviour of the estimator at the features' dimension.
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from walt_bench.evaluation.frechet import RunningStats, frechet_distance


def _spectrum(dim: int) -> np.ndarray:
    return 1.0 / np.arange(1, dim + 1, dtype=np.float64)


def _blocks(counts: list[int], chunk: int = 2048):
    """Row-block sizes that end exactly at every count in ``counts`` (sorted)."""
    done = 0
    for n in counts:
        while done < n:
            step = min(chunk, n - done)
            done += step
            yield step, done


def measure(dim: int, counts: list[int], seed: int = 0, shrink: float = 0.9) -> dict:
    """FD estimates at each N for the ``same`` and ``shifted`` cases (one seed)."""
    rng = np.random.default_rng(seed)
    basis, _ = np.linalg.qr(rng.standard_normal((dim, dim)))  # a random orientation of the spectrum
    spectrum = _spectrum(dim)
    shift = np.full(dim, 0.1)  # |m|^2 = d / 100
    true_shifted = float(shift @ shift + (1 + shrink - 2 * np.sqrt(shrink)) * spectrum.sum())
    sets = {
        "real": (np.sqrt(spectrum), np.zeros(dim)),
        "same": (np.sqrt(spectrum), np.zeros(dim)),
        "shifted": (np.sqrt(shrink * spectrum), shift),
    }
    snapshots: dict[str, dict[int, tuple]] = {}
    for name, (scale, mean) in sets.items():
        stats, snapshots[name] = RunningStats(dim), {}
        for rows, seen in _blocks(counts):
            stats.update(mean + (rng.standard_normal((rows, dim)) * scale) @ basis.T)
            if seen in counts:
                snapshots[name][seen] = (stats.mean.copy(), stats.covariance())
    out = {"dim": dim, "seed": seed, "true": {"same": 0.0, "shifted": true_shifted}, "fd": {}}
    for case in ("same", "shifted"):
        out["fd"][case] = {n: frechet_distance(*snapshots["real"][n], *snapshots[case][n]) for n in counts}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dims", type=int, nargs="+", default=[400, 2048])
    parser.add_argument("--counts", type=int, nargs="+", default=[2048, 10_000, 50_000])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="print every measurement as JSON")
    args = parser.parse_args(argv)
    runs = [measure(d, sorted(set(args.counts)), seed) for d in args.dims for seed in range(args.seeds)]
    if args.json:
        print(json.dumps(runs, indent=2))
        return 0
    print(
        f"{'d':>5} {'case':>8} {'true FD':>9} "
        + " ".join(f"{'N=' + str(n):>18}" for n in sorted(args.counts))
    )
    for dim in args.dims:
        for case in ("same", "shifted"):
            mine = [r for r in runs if r["dim"] == dim]
            cells = []
            for n in sorted(args.counts):
                values = np.array([r["fd"][case][n] for r in mine])
                cells.append(f"{values.mean():>10.3f} ± {values.std():<6.3f}")
            print(f"{dim:>5} {case:>8} {mine[0]['true'][case]:>9.3f} " + " ".join(cells))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
