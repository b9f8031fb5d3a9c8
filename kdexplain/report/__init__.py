"""Report writers: tables (CSV, Markdown, LaTeX), figures (PNG) and ``index.md``.

The entry point is :func:`write_report` on the result of
:func:`kdexplain.concepts.analyze_concepts`. This room imports ``kdexplain.concepts`` and
``kdexplain.utils`` only. Numbers, tables and figures are rendered by
:mod:`kdexplain.utils.render` (re-exported here), which the lower rooms use too.
"""

from kdexplain.lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    ".figures": [
        "plot_concepts_vs_distance", "plot_entropy_heatmaps", "plot_peak_distance",
        "upsample_nearest",
    ],
    ".tables": [
        "METRIC_HEADERS", "TABLE_METRICS", "concept_metrics_latex", "concept_metrics_markdown",
        "concept_metrics_table", "hypotheses_latex", "hypotheses_markdown", "hypotheses_table",
        "write_tables",
    ],
    ".writer": ["verdict_sentences", "write_report"],
    "kdexplain.utils.render": [
        "ENTROPY_CMAP", "format_number", "format_p", "format_pm", "markdown_table", "save_png",
    ],
})
