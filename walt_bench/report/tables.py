"""Our results beside the paper's, one pandas DataFrame per table, and how our orderings compare.

For each table: which result backs each row (:func:`select`), a numeric frame for CSV and a display frame
(strings; missing cells are "—", never 0) for Markdown and LaTeX (:func:`build_table`), and for ablations
Kendall's τ between our values and the paper's over the variants both sides have (:func:`kendall`).
At smoke scale τ is information about the ordering, not a pass/fail: smoke numbers are not comparable
with the paper's in absolute terms.

Markdown and LaTeX are rendered here (a few lines each) rather than through ``DataFrame.to_markdown`` /
``to_latex``, whose ``tabulate`` / ``jinja2`` are not dependencies of walt_bench.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
from scipy.stats import kendalltau

from walt_bench.report.paper import METRICS, TABLES, TableDef, paper_value
from walt_bench.report.results import LoadedResult

MISSING = "—"
T2V_NOT_RUN = "text-to-video not run"  # Table 5's note until a result of ours exists
SCALE_RANK = {"smoke": 0, "small": 1, "paper": 2}
SMOKE_NOTE = (
    "smoke-scale numbers are not comparable with the paper in absolute terms; "
    "orderings are reported as information"
)

# ---------------------------------------------------------------------------------------------
# Which result backs each cell
# ---------------------------------------------------------------------------------------------


def _recency(r: LoadedResult) -> float:
    """When the result was made: ``created`` (naive times read as UTC), else the file's modification time."""
    if r.result.created:
        when = datetime.fromisoformat(r.result.created.replace("Z", "+00:00"))
        return (when if when.tzinfo else when.replace(tzinfo=timezone.utc)).timestamp()
    try:
        return r.path.stat().st_mtime
    except OSError:
        return 0.0


def select(
    results: list[LoadedResult], scale: str | None = None
) -> tuple[dict[tuple[str, str], LoadedResult], list[str]]:
    """One result per (table, variant): the largest scale, then a complete one over a failed one, then the
    newest. Returns the choice and one note per result set aside (naming its file)."""
    chosen: dict[tuple[str, str], LoadedResult] = {}
    notes: list[str] = []
    groups: dict[tuple[str, str], list[LoadedResult]] = {}
    for r in results:
        if scale is None or r.result.scale == scale:
            groups.setdefault((r.result.table, r.result.variant), []).append(r)
    for key, group in groups.items():
        group.sort(
            key=lambda r: (SCALE_RANK[r.result.scale], r.result.status == "complete", _recency(r)),
            reverse=True,
        )
        chosen[key] = group[0]
        for other in group[1:]:
            notes.append(
                f"Table {key[0]} {key[1]}: used {group[0].path} ({group[0].result.scale}, "
                f"{group[0].result.status}) over {other.path} ({other.result.scale}, {other.result.status})"
            )
    return chosen, notes


# ---------------------------------------------------------------------------------------------
# Kendall's tau between our ordering and the paper's
# ---------------------------------------------------------------------------------------------


@dataclass
class Ordering:
    table: str
    metric: str
    variants: list[str]  # shared by both sides, in the paper's row order
    tau: float | None  # None: fewer than 2 shared variants, or one side all ties
    p_value: float | None
    reason: str = ""  # why tau is n/a

    @property
    def n(self) -> int:
        return len(self.variants)

    @property
    def verdict(self) -> str:
        if self.tau is None:
            return f"n/a ({self.reason})"
        if math.isclose(self.tau, 1.0):
            return "same order as the paper"
        if math.isclose(self.tau, -1.0):
            return "reversed order"
        if self.tau > 0:
            return "agrees in part"
        if self.tau < 0:
            return "disagrees in part"
        return "no association"

    def describe(self) -> str:
        label = METRICS[self.metric].label if self.metric in METRICS else self.metric
        if self.tau is None:
            return f"{label}: Kendall τ n/a ({self.reason})"
        return (
            f"{label}: Kendall τ = {self.tau:+.2f} (p = {self.p_value:.2g}) over {self.n} variants "
            f"({', '.join(self.variants)}): {self.verdict}"
        )


def kendall(ours: dict[str, float], paper: dict[str, float], order: list[str] | None = None) -> tuple:
    """Kendall's τ-b (scipy) between our values and the paper's over the keys both have.

    Returns ``(tau, p_value, shared_keys, reason)``; τ and p are None with a reason when fewer than 2 keys
    are shared or one side is constant. The same metric is on both sides, so whether lower or higher is
    better does not change τ."""
    keys = [k for k in (order or list(paper)) if k in ours and k in paper]
    if len(keys) < 2:
        return None, None, keys, f"{len(keys)} variant(s) on both sides, need 2"
    res = kendalltau([ours[k] for k in keys], [paper[k] for k in keys])
    tau, p = float(res.statistic), float(res.pvalue)
    if math.isnan(tau):
        return None, None, keys, "one side has the same value for every variant"
    return tau, p, keys, ""


# ---------------------------------------------------------------------------------------------
# One table
# ---------------------------------------------------------------------------------------------


def fmt(value: float | None, std: float | None = None) -> str:
    """4 significant digits (no exponent below 10^5), "± std" when given; "—" for a missing value."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return MISSING

    def one(v: float, digits: int) -> str:
        return f"{v:.0f}" if abs(v) >= 10**digits else f"{v:.{digits}g}"

    return one(value, 4) if std is None else f"{one(value, 4)} ± {one(std, 2)}"


def fmt_paper(value: float | None, std: float | None = None, printed: str = "") -> str:
    """A paper number as printed (``printed``, else 46, 3.3, 2.56), with "± std" to as many decimals as the
    mean ("3.3 ± 0.0")."""
    if value is None:
        return MISSING
    text = printed or f"{value:g}"
    if std is None:
        return text
    decimals = len(text.split(".")[1]) if "." in text else 0
    return f"{text} ± {std:.{decimals}f}"


@dataclass
class TableReport:
    table: TableDef
    data: pd.DataFrame  # numeric (CSV): NaN where missing
    display: pd.DataFrame  # strings (Markdown, LaTeX): "—" where missing
    orderings: list[Ordering] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    rows: dict[str, LoadedResult] = field(default_factory=dict)  # variant -> result used

    @property
    def scales(self) -> list[str]:
        return sorted({r.result.scale for r in self.rows.values()}, key=SCALE_RANK.__getitem__)

    @property
    def has_results(self) -> bool:
        return any(r.result.status == "complete" for r in self.rows.values())


def _row(
    t: TableDef, v: str, r: LoadedResult | None, metrics: list[str], labels: dict[str, set[str]]
) -> tuple[dict[str, object], dict[str, str]]:
    """One variant's numeric row (CSV) and display row (Markdown/LaTeX); a failed run shows no numbers."""
    res = r.result if r else None
    ok = res is not None and res.status == "complete"
    d: dict[str, object] = {"variant": v, "status": res.status if res else "missing"}
    d["scale"] = res.scale if res else None
    shown: dict[str, str] = {"variant": v}
    ns: list[int] = []
    for m in metrics:
        meta = METRICS[m]
        rec = res.metrics.get(m) if ok else None
        ours = res.value(m) if ok else None
        d[f"{m}_ours"] = ours
        if meta.source == "metrics":
            d[f"{m}_ours_std"] = rec.std if rec else None
            d[f"{m}_n"] = rec.num_samples if rec else None
            if rec:
                ns.append(rec.num_samples)
                labels.setdefault(m, set()).add(
                    f"{rec.label} ({rec.protocol or 'protocol not given'}, "
                    f"{rec.num_samples} samples × {rec.repeats})"
                )
        head = f"{meta.label}{meta.arrow}"
        shown[f"{head} ours"] = fmt(ours, rec.std if rec else None)
        if m in t.columns:  # the paper prints this column (ours_only metrics have no paper side)
            pv = paper_value(t.id, v, m)
            d[f"{m}_paper"] = pv.value if pv else None
            d[f"{m}_paper_std"] = pv.std if pv else None
            shown[f"{head} paper"] = fmt_paper(pv.value, pv.std, pv.printed) if pv else MISSING
    d["num_samples"] = min(ns) if ns else None
    d["train_steps"] = res.extra.get("train_steps") if ok else None
    d["spec"] = res.spec if res else (t.variant(v).spec if t.variant(v) else None)
    d["result_file"] = str(r.path) if r else None
    shown["N"] = "/".join(str(n) for n in sorted(set(ns))) if ns else MISSING
    shown["scale"] = (res.scale if ok else f"{res.scale} (failed)") if res else MISSING
    steps = d["train_steps"]
    shown["train steps"] = fmt(steps) if isinstance(steps, int | float) else MISSING
    return d, shown


def build_table(table_id: str, chosen: dict[tuple[str, str], LoadedResult]) -> TableReport:
    """The frames, orderings and notes of one table from the chosen results."""
    t = TABLES[table_id]
    rows = {v: r for (tid, v), r in chosen.items() if tid == table_id}
    unknown = [v for v in rows if v not in t.variant_keys]
    variants = t.variant_keys + sorted(unknown)
    metrics = [*t.columns, *t.ours_only]
    notes: list[str] = []
    if t.id == "5" and not any(r.result.status == "complete" for r in rows.values()):
        notes.append(T2V_NOT_RUN)
    elif t.note:
        notes.append(t.note)
    for v in unknown:
        notes.append(
            f"variant {v!r} ({rows[v].path}) is not a row of Table {t.id} (rows: {', '.join(t.variant_keys)})"
        )

    data_rows, display_rows = [], []
    labels: dict[str, set[str]] = {}  # metric -> what our number is (label, protocol, counts)
    for v in variants:
        d, shown = _row(t, v, rows.get(v), metrics, labels)
        data_rows.append(d)
        display_rows.append(shown)

    for m, ls in sorted(labels.items()):
        notes.append(f"ours, {m}: {'; '.join(sorted(ls))}")
    failed = [
        f"{v}: {rows[v].result.error}" for v in variants if v in rows and rows[v].result.status == "failed"
    ]
    if failed:
        notes.append("failed runs: " + "; ".join(failed))

    orderings = []
    for m in t.compare:
        ours = {
            v: val
            for v in variants
            if (r := rows.get(v)) and r.result.status == "complete"
            if (val := r.result.value(m)) is not None
        }
        paper = {v: pv.value for v in t.variant_keys if (pv := paper_value(t.id, v, m))}
        tau, p, keys, reason = kendall(ours, paper, t.variant_keys)
        orderings.append(Ordering(t.id, m, keys, tau, p, reason))

    data = pd.DataFrame(data_rows)
    for col in [c for c in data.columns if c.endswith("_n")] + ["num_samples", "train_steps"]:
        try:  # counts stay integers beside missing cells (CSV: "64", not "64.0")
            data[col] = data[col].astype("Int64")
        except (TypeError, ValueError):
            pass
    report = TableReport(t, data, pd.DataFrame(display_rows), orderings, notes, rows)
    if len(report.scales) > 1:
        notes.insert(0, f"rows ran at different scales ({', '.join(report.scales)}); orderings mix them")
    if "smoke" in report.scales:
        notes.insert(0, SMOKE_NOTE)
    return report


# ---------------------------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------------------------


def to_markdown(df: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table of a frame of strings (no index)."""

    def cell(x: object) -> str:
        return str(x).replace("|", "\\|").replace("\n", " ")

    head = "| " + " | ".join(cell(c) for c in df.columns) + " |"
    sep = "|" + "|".join("---" for _ in df.columns) + "|"
    body = ["| " + " | ".join(cell(x) for x in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join([head, sep, *body]) + "\n"


_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}
_LATEX_UNICODE = {
    "±": r"$\pm$",
    "↓": r"$\downarrow$",
    "↑": r"$\uparrow$",
    "—": "--",
    "×": r"$\times$",
    "τ": r"$\tau$",
}


def latex_escape(text: object) -> str:
    out = "".join(_LATEX_SPECIAL.get(ch, ch) for ch in str(text))
    for k, v in _LATEX_UNICODE.items():
        out = out.replace(k, v)
    return out


def to_latex(df: pd.DataFrame, caption: str, label: str, notes: list[str] = ()) -> str:
    """A booktabs ``table`` of a frame of strings (needs ``\\usepackage{booktabs}``)."""
    cols = "l" + "r" * (len(df.columns) - 1)
    lines = [
        r"\begin{table}[t]",
        r"\centering",
        r"\small",
        f"\\caption{{{latex_escape(caption)}}}",
        f"\\label{{{label}}}",
        f"\\begin{{tabular}}{{{cols}}}",
        r"\toprule",
        " & ".join(latex_escape(c) for c in df.columns) + r" \\",
        r"\midrule",
        *(" & ".join(latex_escape(x) for x in row) + r" \\" for row in df.itertuples(index=False)),
        r"\bottomrule",
        r"\end{tabular}",
    ]
    if notes:
        lines += [r"\par\smallskip\footnotesize", *(latex_escape(n) + r"\\" for n in notes)]
    lines.append(r"\end{table}")
    return "\n".join(lines) + "\n"


def table_markdown(report: TableReport) -> str:
    t = report.table
    parts = [f"## Table {t.id}. {t.title}\n"]
    parts += [f"> {n}\n" for n in report.notes]
    parts.append(to_markdown(report.display))
    if report.orderings:
        parts.append("\nOrdering vs the paper:\n")
        parts += [f"- {o.describe()}" for o in report.orderings]
        parts.append("")
    return "\n".join(parts)


def write_table(report: TableReport, out_dir: Path) -> list[Path]:
    """``tableX.md``, ``tableX.csv`` and ``tableX.tex`` in ``out_dir``."""
    t = report.table
    stem = out_dir / f"table{t.id}"
    md, csv, tex = stem.with_suffix(".md"), stem.with_suffix(".csv"), stem.with_suffix(".tex")
    md.write_text(table_markdown(report), encoding="utf-8")
    report.data.to_csv(csv, index=False)
    notes = report.notes + [o.describe() for o in report.orderings]
    tex.write_text(
        to_latex(
            report.display, f"Table {t.id}: {t.title} (ours beside the paper's)", f"tab:walt-{t.id}", notes
        ),
        encoding="utf-8",
    )
    return [md, csv, tex]


def orderings_frame(reports: list[TableReport]) -> pd.DataFrame:
    rows = [
        {
            "table": o.table,
            "metric": o.metric,
            "n_variants": o.n,
            "variants": ", ".join(o.variants),
            "kendall_tau": o.tau,
            "p_value": o.p_value,
            "verdict": o.verdict,
            "scales": ", ".join(r.scales),
        }
        for r in reports
        for o in r.orderings
    ]
    columns = ["table", "metric", "n_variants", "variants", "kendall_tau", "p_value", "verdict", "scales"]
    return pd.DataFrame(rows, columns=columns)
