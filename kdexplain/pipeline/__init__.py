"""The top room: the quantification sweep over a run and the end-to-end pipeline."""

from kdexplain.pipeline.calibrate import calibrate_experiment, reference_sweep
from kdexplain.pipeline.run import make_report, run_experiment
from kdexplain.pipeline.sweep import SweepData, load_sweep, select_images, sweep

__all__ = ["SweepData", "calibrate_experiment", "load_sweep", "make_report", "reference_sweep",
           "run_experiment", "select_images", "sweep"]
