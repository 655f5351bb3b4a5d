"""The paper's numbers (Tables 1, 2, 3a-3f, 4, 5 of Gupta et al. 2023) and the tables we report them in.

Transcribed from the main text (``paper/walt.md``), W.A.L.T rows only: prior-work rows of Tables 1, 2
and 5 are not reproduced here. Every number is a :class:`PaperValue` that names the table, the row
(our variant key and the row label as printed), the column as printed, and whether lower or higher
is better. ``tests/test_report_paper.py`` checks a sample of cells against the paper text.

Tables and variants (``TABLES``): each variant names the spec file that runs it and any overrides on
top of that file (the pipeline runs ``spec + overrides``; the spec files under
``experiments/ablations/`` already set the ablated value):

====== ======================= =====================================================================
table  variant key             spec (+ overrides)
====== ======================= =====================================================================
1      ucf101/L                experiments/tables/table1-ucf101-L.yaml
1      ucf101/XL               experiments/tables/table1-ucf101-XL.yaml
1      k600/L                  experiments/tables/table1-k600-L.yaml
2      imagenet/L              experiments/tables/table2-imagenet-L.yaml
3a     patch=1|2|4             experiments/ablations/table3a-patch{1,2,4}.yaml
3b     st_window=5x4x4|5x8x8|  experiments/ablations/table3b-st{5x4x4,5x8x8,5x16x16,full}.yaml
       5x16x16|full
3c     p_sc=0.0|0.3|0.6|0.9    experiments/ablations/table3c-psc{0.0,0.3,0.6,0.9}.yaml
3d     r=2|4|16|64|256         experiments/ablations/table3d-r{2,4,16,64,256}.yaml
3e     no_qk_norm              experiments/ablations/table3e-no-qknorm.yaml
3e     no_latent_norm          experiments/ablations/table3e-no-latentnorm.yaml
3e     no_zero_snr             experiments/ablations/table3e-no-zerosnr.yaml
3e     full                    experiments/ablations/table3e-full.yaml
3f     c=4|8|16|32             experiments/ablations/table3f-c{4,8,16,32}.yaml
4      L/separate              experiments/tables/table1-ucf101-L.yaml + model.adaln=separate
4      XL/lora-r2              experiments/tables/table1-ucf101-XL.yaml
5      t2v-419M/video          (no spec: text-to-video is not implemented as a runnable table)
5      t2v-419M/video+image    (no spec)
5      t2v-3B/video+image      (no spec)
====== ======================= =====================================================================

Table 4 has no spec files of its own: its rows are read as the UCF-101 main-result setting (Table 1's
XL, FVD 36 +- 2, and Table 4's XL, 36.7, are presumably the same model; the paper does not say), L with
separate AdaLN per layer (458M) and XL with AdaLN-LoRA r = 2 (460M).

Note on the paper's own spread: the ablation default (L, p = 1, 5x8x8, p_sc = 0.9, r = 2, c = 8) is a
row of 3a, 3b, 3c, 3d, 3e and 3f, printed as FVD 60.7, 59.6, 61.4, 60.7, 60.7 and 75.4. The same spec
therefore backs several rows here, and a difference of about one FVD point between rows is within the
paper's own run-to-run variation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, NamedTuple

Better = Literal["lower", "higher"] | None

# ---------------------------------------------------------------------------------------------
# Metrics: key (as in result files) -> how it is shown and which direction is better
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Metric:
    key: str
    label: str  # column header, e.g. "FVD"
    better: Better
    source: Literal["metrics", "extra"]  # where a result file holds it: metrics[key].mean or extra[key]

    @property
    def arrow(self) -> str:
        return {"lower": "↓", "higher": "↑"}.get(self.better or "", "")


METRICS: dict[str, Metric] = {
    m.key: m
    for m in (
        Metric("fvd", "FVD", "lower", "metrics"),
        Metric("is", "IS", "higher", "metrics"),
        Metric("fid", "FID", "lower", "metrics"),
        Metric("rfvd", "rFVD", "lower", "metrics"),
        Metric("params_m", "params (M)", None, "extra"),
        Metric("steps_per_s", "steps/s", "higher", "extra"),
        Metric("peak_mem_gib", "peak mem (GiB)", "lower", "extra"),
        Metric("final_loss", "final loss", "lower", "extra"),
    )
}

# ---------------------------------------------------------------------------------------------
# Tables and their variants
# ---------------------------------------------------------------------------------------------


class Variant(NamedTuple):
    """One row we can run: ``key`` (the result files' ``variant``), the spec file and extra overrides."""

    key: str
    spec: str | None
    overrides: tuple[str, ...] = ()


@dataclass(frozen=True)
class TableDef:
    id: str  # "1", "2", "3a" ... "3f", "4", "5"
    title: str
    kind: Literal["main", "ablation"]
    columns: tuple[str, ...]  # metric keys the paper prints, in its order
    variants: tuple[Variant, ...]
    compare: tuple[str, ...] = ()  # metrics whose ordering over variants is compared (Kendall tau)
    ours_only: tuple[str, ...] = ()  # metrics we report that the paper prints no number for
    note: str = ""

    @property
    def variant_keys(self) -> list[str]:
        return [v.key for v in self.variants]

    def variant(self, key: str) -> Variant | None:
        return next((v for v in self.variants if v.key == key), None)


def _abl(prefix: str, pairs: list[tuple[str, str]]) -> tuple[Variant, ...]:
    return tuple(Variant(key, f"experiments/ablations/{prefix}{stem}.yaml") for key, stem in pairs)


TABLES: dict[str, TableDef] = {
    t.id: t
    for t in (
        TableDef(
            "1",
            "Video generation: UCF-101 class-conditional and Kinetics-600 frame prediction",
            "main",
            ("fvd", "params_m"),
            (
                Variant("ucf101/L", "experiments/tables/table1-ucf101-L.yaml"),
                Variant("ucf101/XL", "experiments/tables/table1-ucf101-XL.yaml"),
                Variant("k600/L", "experiments/tables/table1-k600-L.yaml"),
            ),
        ),
        TableDef(
            "2",
            "Class-conditional image generation on ImageNet 256x256 (no classifier-free guidance)",
            "main",
            ("fid", "is", "params_m"),
            (Variant("imagenet/L", "experiments/tables/table2-imagenet-L.yaml"),),
        ),
        TableDef(
            "3a",
            "Ablation: patch size p",
            "ablation",
            ("fvd", "is"),
            _abl("table3a-patch", [("patch=1", "1"), ("patch=2", "2"), ("patch=4", "4")]),
            compare=("fvd",),
        ),
        TableDef(
            "3b",
            "Ablation: spatiotemporal window size",
            "ablation",
            ("fvd", "is", "steps_per_s"),
            _abl(
                "table3b-st",
                [
                    ("st_window=5x4x4", "5x4x4"),
                    ("st_window=5x8x8", "5x8x8"),
                    ("st_window=5x16x16", "5x16x16"),
                    ("st_window=full", "full"),
                ],
            ),
            compare=("fvd", "steps_per_s"),
            ours_only=("peak_mem_gib",),
            note="The paper's steps/s are TPU training throughput; compare orderings, not values.",
        ),
        TableDef(
            "3c",
            "Ablation: self-conditioning rate p_sc",
            "ablation",
            ("fvd", "is"),
            _abl("table3c-psc", [(f"p_sc={p}", p) for p in ("0.0", "0.3", "0.6", "0.9")]),
            compare=("fvd",),
        ),
        TableDef(
            "3d",
            "Ablation: AdaLN-LoRA rank r",
            "ablation",
            ("fvd", "is", "params_m"),
            _abl("table3d-r", [(f"r={r}", r) for r in ("2", "4", "16", "64", "256")]),
            compare=("fvd", "params_m"),
        ),
        TableDef(
            "3e",
            "Ablation: other improvements (qk-norm, latent normalisation, zero terminal SNR)",
            "ablation",
            ("fvd", "is"),
            _abl(
                "table3e-",
                [
                    ("no_qk_norm", "no-qknorm"),
                    ("no_latent_norm", "no-latentnorm"),
                    ("no_zero_snr", "no-zerosnr"),
                    ("full", "full"),
                ],
            ),
            compare=("fvd",),
        ),
        TableDef(
            "3f",
            "Ablation: latent channels c of the autoencoder",
            "ablation",
            ("rfvd", "fvd", "is"),
            _abl("table3f-c", [(f"c={c}", c) for c in ("4", "8", "16", "32")]),
            compare=("rfvd", "fvd"),
        ),
        TableDef(
            "4",
            "Parameter-matched comparison: separate AdaLN per layer vs AdaLN-LoRA",
            "ablation",
            ("fvd", "is", "params_m", "final_loss"),
            (
                Variant("L/separate", "experiments/tables/table1-ucf101-L.yaml", ("model.adaln=separate",)),
                Variant("XL/lora-r2", "experiments/tables/table1-ucf101-XL.yaml"),
            ),
            compare=("fvd", "final_loss"),
        ),
        TableDef(
            "5",
            "UCF-101 zero-shot text-to-video generation",
            "main",
            ("is", "fvd"),
            (
                Variant("t2v-419M/video", None),
                Variant("t2v-419M/video+image", None),
                Variant("t2v-3B/video+image", None),
            ),
        ),
    )
}

# ---------------------------------------------------------------------------------------------
# The paper's numbers
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PaperValue:
    table: str
    variant: str
    metric: str  # key of METRICS
    value: float
    std: float | None = None
    column: str = ""  # the column header as printed
    row: str = ""  # the row label as printed
    printed: str = ""  # the number as printed ("2.00", "76.0")

    @property
    def better(self) -> Better:
        return METRICS[self.metric].better


def _rows(table: str, header: tuple[tuple[str, str], ...], rows: list[tuple]) -> list[PaperValue]:
    """``header`` = ((metric key, column as printed), ...); a row = (variant, row as printed, *values).
    A value is a number, ``(mean, std)`` or ``None`` (the paper prints none); a number is written as a
    string where the paper prints trailing zeros ("2.00")."""
    out = []
    for variant, row, *values in rows:
        for (metric, column), value in zip(header, values, strict=True):
            if value is None:
                continue
            mean, std = value if isinstance(value, tuple) else (value, None)
            text = mean if isinstance(mean, str) else f"{mean:g}"
            out.append(PaperValue(table, variant, metric, float(mean), std, column, row, text))
    return out


PAPER: tuple[PaperValue, ...] = tuple(
    # Table 1: K600 FVD↓ and UCF FVD↓ columns; one of them per row (the other prints "–").
    _rows(
        "1",
        (("fvd", "UCF FVD↓"), ("params_m", "params.")),
        [
            ("ucf101/L", "W.A.L.T-L Ours", (46.0, 2.0), 313.0),
            ("ucf101/XL", "W.A.L.T-XL Ours", (36.0, 2.0), 460.0),
        ],
    )
    + _rows(
        "1",
        (("fvd", "K600 FVD↓"), ("params_m", "params.")),
        [("k600/L", "W.A.L.T-L Ours", (3.3, 0.0), 313.0)],
    )
    # Table 2
    + _rows(
        "2",
        (("fid", "FID↓"), ("is", "IS↑"), ("params_m", "params.")),
        [("imagenet/L", "W.A.L.T-L Ours", 2.56, 215.1, 460.0)],
    )
    # Table 3a
    + _rows(
        "3a",
        (("fvd", "FVD↓"), ("is", "IS↑")),
        [("patch=1", "1", 60.7, 87.2), ("patch=2", "2", 134.4, 82.2), ("patch=4", "4", 461.8, 63.9)],
    )
    # Table 3b
    + _rows(
        "3b",
        (("fvd", "FVD↓"), ("is", "IS↑"), ("steps_per_s", "sps")),
        [
            ("st_window=5x4x4", "5 × 4 × 4", 56.9, 87.3, 2.24),
            ("st_window=5x8x8", "5 × 8 × 8", 59.6, 87.4, "2.00"),
            ("st_window=5x16x16", "5 × 16 × 16", 55.3, 87.4, 1.75),
            ("st_window=full", "full self attn.", 59.9, 87.8, "1.20"),
        ],
    )
    # Table 3c
    + _rows(
        "3c",
        (("fvd", "FVD↓"), ("is", "IS↑")),
        [
            ("p_sc=0.0", "0.0", 109.9, 82.6),
            ("p_sc=0.3", "0.3", "76.0", 86.5),
            ("p_sc=0.6", "0.6", "60.0", 86.8),
            ("p_sc=0.9", "0.9", 61.4, 87.1),
        ],
    )
    # Table 3d
    + _rows(
        "3d",
        (("fvd", "FVD↓"), ("is", "IS↑"), ("params_m", "params")),
        [
            ("r=2", "2", 60.7, 87.2, 313.0),
            ("r=4", "4", 56.6, 87.3, 314.0),
            ("r=16", "16", 55.5, "88.0", 316.0),
            ("r=64", "64", 54.4, 87.9, 324.0),
            ("r=256", "256", 52.5, 88.5, 357.0),
        ],
    )
    # Table 3e
    + _rows(
        "3e",
        (("fvd", "FVD↓"), ("is", "IS↑")),
        [
            ("no_qk_norm", "w/o qk norm [15]", "59.0", 86.8),
            ("no_latent_norm", "w/o latent norm", 67.9, 87.1),
            ("no_zero_snr", "w/o zero snr [49]", "91.0", 84.2),
            ("full", "full method", 60.7, 87.2),
        ],
    )
    # Table 3f
    + _rows(
        "3f",
        (("rfvd", "rFVD↓"), ("fvd", "FVD↓"), ("is", "IS↑")),
        [
            ("c=4", "4", 37.7, 86.4, 84.9),
            ("c=8", "8", 17.1, 75.4, 86.3),
            ("c=16", "16", 8.2, "67.0", "86.0"),
            ("c=32", "32", 3.5, 83.4, 82.9),
        ],
    )
    # Table 4
    + _rows(
        "4",
        (("fvd", "FVD↓"), ("is", "IS↑"), ("params_m", "params."), ("final_loss", "final loss")),
        [
            ("L/separate", "L separate", 34.6, 90.2, 458.0, 0.274),
            ("XL/lora-r2", "XL LoRA-2", 36.7, 89.4, 460.0, 0.268),
        ],
    )
    # Table 5 (columns printed IS then FVD)
    + _rows(
        "5",
        (("is", "IS (↑)"), ("fvd", "FVD (↓)")),
        [
            ("t2v-419M/video", "W.A.L.T (Ours) 419M (video only)", 26.8, 598.8),
            ("t2v-419M/video+image", "W.A.L.T (Ours) 419M (video + image)", 31.7, 344.5),
            ("t2v-3B/video+image", "W.A.L.T (Ours) 3B (video + image)", 35.1, 258.1),
        ],
    )
)


def paper_value(table: str, variant: str, metric: str) -> PaperValue | None:
    """The paper's number for one cell, or None where the paper prints none."""
    for v in PAPER:
        if (v.table, v.variant, v.metric) == (table, variant, metric):
            return v
    return None


def _check_consistency() -> None:
    """Every paper value names a known table, variant and metric (run at import; a typo is a bug here)."""
    for v in PAPER:
        t = TABLES.get(v.table)
        if t is None or t.variant(v.variant) is None or v.metric not in t.columns or v.metric not in METRICS:
            raise AssertionError(f"paper value {v} does not match TABLES/METRICS")


_check_consistency()
