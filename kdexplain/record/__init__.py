"""Explain distillation done anywhere: record any training loop, assemble runs from your own
checkpoints (``docs/own-models.md``)."""

from kdexplain.record.assemble import ASSEMBLED_FILE, assemble_run, epoch_of_file
from kdexplain.record.recorder import ANALYSED_PHASE, Recorder, check_state_dict

__all__ = ["ANALYSED_PHASE", "ASSEMBLED_FILE", "Recorder", "assemble_run", "check_state_dict",
           "epoch_of_file"]
