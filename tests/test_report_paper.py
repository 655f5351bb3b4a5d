"""The paper's numbers stored in walt_bench.report.paper, and the table/variant -> spec mapping."""

from __future__ import annotations

from pathlib import Path

import pytest

from walt_bench.report.paper import METRICS, PAPER, TABLES, paper_value
from walt_bench.spec import load_spec

REPO = Path(__file__).resolve().parents[1]

# (table, variant, metric, value, std) as printed in the paper (walt.md), with the printed line.
CELLS = [
    ("3c", "p_sc=0.9", "fvd", 61.4, None),  # "0.9  61.4  87.1" (Table 3c)
    ("3c", "p_sc=0.9", "is", 87.1, None),
    ("3c", "p_sc=0.0", "fvd", 109.9, None),  # "0.0  109.9  82.6"
    ("3d", "r=2", "params_m", 313.0, None),  # "2  60.7  87.2  313 M" (Table 3d)
    ("3d", "r=256", "params_m", 357.0, None),  # "256  52.5  88.5  357 M"
    ("1", "ucf101/L", "fvd", 46.0, 2.0),  # "W.A.L.T-L Ours  3.3 ± 0.0  46 ± 2  313M  50" (Table 1)
    ("1", "k600/L", "fvd", 3.3, 0.0),
    ("1", "ucf101/XL", "fvd", 36.0, 2.0),  # "W.A.L.T-XL Ours  –  36 ± 2  460M  50"
    ("2", "imagenet/L", "fid", 2.56, None),  # "W.A.L.T-L Ours  437k×1024  2.56  215.1  460M  50" (Table 2)
    ("2", "imagenet/L", "is", 215.1, None),
    ("3a", "patch=4", "fvd", 461.8, None),  # "4  461.8  63.9" (Table 3a)
    ("3b", "st_window=full", "steps_per_s", 1.20, None),  # "full self attn.  59.9  87.8  1.20" (Table 3b)
    ("3b", "st_window=5x16x16", "fvd", 55.3, None),
    ("3e", "no_zero_snr", "fvd", 91.0, None),  # "w/o zero snr [49]  91.0  84.2" (Table 3e)
    ("3f", "c=16", "rfvd", 8.2, None),  # "16  8.2  67.0  86.0" (Table 3f)
    ("3f", "c=32", "fvd", 83.4, None),
    ("4", "L/separate", "params_m", 458.0, None),  # "L  separate  34.6  90.2  458M  0.274" (Table 4)
    ("4", "XL/lora-r2", "final_loss", 0.268, None),  # "XL  LoRA-2  36.7  89.4  460M  0.268"
    ("5", "t2v-3B/video+image", "fvd", 258.1, None),  # "W.A.L.T (Ours) 3B (video + image)  35.1  258.1"
    ("5", "t2v-419M/video", "is", 26.8, None),
]


@pytest.mark.parametrize("table, variant, metric, value, std", CELLS)
def test_paper_numbers_match_the_paper_text(table, variant, metric, value, std):
    cell = paper_value(table, variant, metric)
    assert cell is not None
    assert cell.value == pytest.approx(value)
    assert cell.std == (pytest.approx(std) if std is not None else None)


def test_every_printed_cell_of_the_walt_rows_is_stored():
    # W.A.L.T rows x printed columns we store, e.g. Table 1: 3 rows x (FVD, params); 3d: 5 x (FVD, IS, params).
    expected = {"1": 6, "2": 3, "3a": 6, "3b": 12, "3c": 8, "3d": 15, "3e": 8, "3f": 12, "4": 8, "5": 6}
    counts = {t: sum(v.table == t for v in PAPER) for t in TABLES}
    assert counts == expected


def test_direction_of_each_metric():
    assert METRICS["fvd"].better == "lower" and METRICS["rfvd"].better == "lower"
    assert METRICS["is"].better == "higher"
    assert paper_value("3c", "p_sc=0.9", "fvd").better == "lower"


def test_every_runnable_variant_names_an_existing_spec_file():
    for table in TABLES.values():
        for variant in table.variants:
            if table.id == "5":
                assert variant.spec is None  # text-to-video is not a runnable table
            else:
                assert (REPO / variant.spec).is_file(), (table.id, variant)


# variant -> (spec attribute path, expected value) for the ablations the spec files set
SETS = {
    ("3a", "patch=2"): ("model.patch_size", 2),
    ("3b", "st_window=5x16x16"): ("model.st_window", (5, 16, 16)),
    ("3c", "p_sc=0.3"): ("diffusion.p_sc", 0.3),
    ("3d", "r=64"): ("model.lora_rank", 64),
    ("3e", "no_latent_norm"): ("diffusion.latent_norm", False),
    ("3e", "no_zero_snr"): ("diffusion.zero_terminal_snr", False),
    ("3f", "c=32"): ("tokenizer.latent_channels", 32),
    ("4", "L/separate"): ("model.adaln", "separate"),
    ("4", "XL/lora-r2"): ("model.size", "XL"),
}


@pytest.mark.parametrize("key", list(SETS), ids=lambda k: f"{k[0]}-{k[1]}")
def test_spec_and_overrides_of_a_variant_set_its_value(key):
    table, variant = key
    v = TABLES[table].variant(variant)
    spec = load_spec(REPO / v.spec, list(v.overrides))
    section, name = SETS[key][0].split(".")
    value = getattr(getattr(spec, section), name)
    assert (tuple(value) if isinstance(value, list | tuple) else value) == SETS[key][1]
