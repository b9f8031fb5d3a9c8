"""Visual concepts, the three hypotheses' metrics and their statistics (docs/method.md section 4).

Takes the entropy grids the sweep produced (:class:`RunEntropies`, one per seed) and turns
them into per-image concept counts, the model-level metrics ``N_fg``, ``N_bg``,
``fg_ratio`` (lambda), ``D_mean``, ``D_std`` (``D_var``), ``rho``, bootstrap intervals, paired
tests of S against B and a verdict per hypothesis: :func:`analyze_concepts`.

This room imports only ``kdexplain.utils`` and ``kdexplain.data`` from the package.
"""

from kdexplain.concepts.analysis import (
    HYPOTHESES,
    METRICS,
    ROLE_LABELS,
    ROLES,
    ConceptAnalysis,
    ConceptSettings,
    RunEntropies,
    analyze_concepts,
)
from kdexplain.concepts.calibration import (
    ThresholdCalibration,
    calibrate_threshold,
    concept_margins,
)
from kdexplain.concepts.drivers import DISTANCE_FORMS, distance_drivers, drivers_sentence
from kdexplain.concepts.metrics import (
    DEFAULT_CONCEPT_THRESHOLD,
    DEFAULT_LATE_FRACTION,
    ModelConcepts,
    background_entropy,
    concept_cells,
    count_concepts,
    distance_spread,
    effective_images,
    foreground_ratio,
    model_concepts,
    peak_checkpoint,
    peak_distance,
    region_means,
    stability,
    usable_images,
)
from kdexplain.concepts.stats import (
    HOLDS,
    INCONCLUSIVE,
    NOT_HOLDS,
    BootstrapCI,
    PairedTest,
    bootstrap_ci,
    holm,
    hypothesis_verdict,
    metric_verdict,
    min_seed_p_value,
    paired_bootstrap_ci,
    paired_test,
    seed_paired_test,
    spread_test,
)
from kdexplain.concepts.threshold import DEFAULT_THRESHOLDS, ThresholdCurve, threshold_curve

__all__ = [
    "DEFAULT_CONCEPT_THRESHOLD",
    "DEFAULT_LATE_FRACTION",
    "DEFAULT_THRESHOLDS",
    "DISTANCE_FORMS",
    "HOLDS",
    "HYPOTHESES",
    "INCONCLUSIVE",
    "METRICS",
    "NOT_HOLDS",
    "ROLES",
    "ROLE_LABELS",
    "BootstrapCI",
    "ConceptAnalysis",
    "ConceptSettings",
    "ModelConcepts",
    "PairedTest",
    "RunEntropies",
    "ThresholdCalibration",
    "ThresholdCurve",
    "analyze_concepts",
    "background_entropy",
    "bootstrap_ci",
    "calibrate_threshold",
    "concept_cells",
    "concept_margins",
    "count_concepts",
    "distance_drivers",
    "distance_spread",
    "drivers_sentence",
    "effective_images",
    "foreground_ratio",
    "holm",
    "hypothesis_verdict",
    "metric_verdict",
    "min_seed_p_value",
    "model_concepts",
    "paired_bootstrap_ci",
    "paired_test",
    "peak_checkpoint",
    "peak_distance",
    "region_means",
    "seed_paired_test",
    "spread_test",
    "stability",
    "threshold_curve",
    "usable_images",
]
