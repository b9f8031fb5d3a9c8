"""The top room: the quantification sweep over a run and the end-to-end pipeline."""

from kdexplain.pipeline.run import make_report, run_experiment
from kdexplain.pipeline.sweep import SweepData, load_sweep, select_images, sweep

__all__ = ["SweepData", "load_sweep", "make_report", "run_experiment", "select_images", "sweep"]
