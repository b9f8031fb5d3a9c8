"""Visual concepts, the three hypotheses' metrics and their statistics (docs/method.md section 4).

Takes the entropy grids the sweep produced (:class:`RunEntropies`, one per seed) and turns
them into per-image concept counts, the model-level metrics ``N_fg``, ``N_bg``,
``fg_ratio`` (lambda), ``D_mean``, ``D_std`` (``D_var``), ``rho``, bootstrap intervals, paired
tests of S against B and a verdict per hypothesis: :func:`analyze_concepts`.

This room imports only ``kdexplain.utils`` and ``kdexplain.data`` from the package.
"""

from kdexplain.lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    ".analysis": ["analyze_concepts"],
    ".calibration": ["ThresholdCalibration", "calibrate_threshold", "concept_margins"],
    ".drivers": ["DISTANCE_FORMS", "distance_drivers", "drivers_sentence"],
    ".hypotheses": ["HYPOTHESES", "METRICS", "ROLE_LABELS"],
    ".metrics": [
        "ModelConcepts",
        "background_entropy", "concept_cells", "count_concepts", "distance_spread",
        "effective_images", "foreground_ratio", "model_concepts", "peak_checkpoint",
        "peak_distance", "region_means", "stability", "usable_images",
    ],
    ".result": ["ConceptAnalysis"],
    ".runs": ["RunEntropies"],
    ".settings": ["DEFAULT_CONCEPT_THRESHOLD", "DEFAULT_LATE_FRACTION", "ConceptSettings"],
    ".stats": [
        "BootstrapCI", "PairedTest", "bootstrap_ci", "min_seed_p_value", "paired_bootstrap_ci",
        "paired_test", "seed_paired_test", "spread_test",
    ],
    ".threshold": ["DEFAULT_THRESHOLDS", "ThresholdCurve", "threshold_curve"],
    ".verdicts": [
        "HOLDS", "INCONCLUSIVE", "NOT_HOLDS", "holm", "hypothesis_verdict", "metric_verdict",
    ],
})
