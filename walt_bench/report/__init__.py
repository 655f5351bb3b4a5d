"""walt_bench.report: our result files beside the paper's numbers (``walt-bench report``).

- ``paper``    the paper's numbers (Tables 1, 2, 3a-3f, 4, 5) and ``TABLES``: each table's variants, their spec
  files and overrides, and the metrics an ablation's ordering is compared on.
- ``results``  the result-file contract (``walt_bench.result/1``): ``write_result`` for the pipelines,
  ``load_results`` for the report.
- ``tables``   pandas frames per table, Kendall τ, Markdown / CSV / LaTeX.
- ``plots``    matplotlib PNGs: ours vs paper (normalised), loss curves, sample frames.
- ``build``    ``write_report``: all of the above plus the index ``README.md``.

Nothing here imports torch: the report reads files and never trains.
"""
