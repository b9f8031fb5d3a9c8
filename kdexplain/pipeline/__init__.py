"""The top room: the quantification sweep over a run and the end-to-end pipeline."""

from kdexplain.lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    ".calibrate": ["calibrate_experiment", "reference_sweep"],
    ".run": ["make_report", "run_experiment"],
    ".sweeps": ["SweepData", "load_sweep", "select_images", "sweep"],
})
