"""Report writers: tables (CSV, Markdown, LaTeX), figures (PNG) and ``index.md``.

The entry point is :func:`write_report` on the result of
:func:`kdexplain.concepts.analyze_concepts`. This room imports ``kdexplain.concepts`` and
``kdexplain.utils`` only. Numbers, tables and figures are rendered by
:mod:`kdexplain.utils.render` (re-exported here), which the lower rooms use too.
"""

from kdexplain.report.figures import (
    plot_concepts_vs_distance,
    plot_entropy_heatmaps,
    plot_peak_distance,
    upsample_nearest,
)
from kdexplain.report.tables import (
    METRIC_HEADERS,
    TABLE_METRICS,
    concept_metrics_latex,
    concept_metrics_markdown,
    concept_metrics_table,
    hypotheses_latex,
    hypotheses_markdown,
    hypotheses_table,
    write_tables,
)
from kdexplain.report.writer import verdict_sentences, write_report
from kdexplain.utils.render import (
    ENTROPY_CMAP,
    format_number,
    format_p,
    format_pm,
    markdown_table,
    save_png,
)

__all__ = [
    "ENTROPY_CMAP",
    "METRIC_HEADERS",
    "TABLE_METRICS",
    "concept_metrics_latex",
    "concept_metrics_markdown",
    "concept_metrics_table",
    "format_number",
    "format_p",
    "format_pm",
    "hypotheses_latex",
    "hypotheses_markdown",
    "hypotheses_table",
    "markdown_table",
    "plot_concepts_vs_distance",
    "plot_entropy_heatmaps",
    "plot_peak_distance",
    "save_png",
    "upsample_nearest",
    "verdict_sentences",
    "write_report",
    "write_tables",
]
