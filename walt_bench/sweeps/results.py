"""One result JSON per table cell, the format ``walt-bench report`` reads (``walt_bench.result/1``).

write_result("results", {"table": "3c", "variant": "p_sc=0.3", ...})   # results/3c/p_sc=0.3.json
"""

from __future__ import annotations

import json
import os
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

FORMAT = "walt_bench.result/1"


def variant_slug(variant: str) -> str:
    """A file name for a variant label: ``"adaln=lora r=2"`` -> ``"adaln=lora-r=2"``."""
    return re.sub(r"[^A-Za-z0-9._=+-]+", "-", variant).strip("-") or "variant"


def result_path(results_dir: str | Path, table: str, variant: str) -> Path:
    return Path(results_dir) / table / f"{variant_slug(variant)}.json"


def write_result(results_dir: str | Path, record: dict[str, Any]) -> Path:
    """Write ``record`` (``format`` and ``created`` filled in) atomically; returns its path."""
    record = {"format": FORMAT, **record}
    record.setdefault("created", datetime.now(timezone.utc).isoformat(timespec="seconds"))
    path = result_path(results_dir, record["table"], record["variant"])
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(record, indent=2, default=str) + "\n")
    os.replace(tmp, path)
    return path
