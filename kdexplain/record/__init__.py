"""Explain distillation done anywhere: record any training loop, assemble runs from your own
checkpoints (``docs/own-models.md``)."""

from kdexplain.lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    ".assemble": ["ASSEMBLED_FILE", "assemble_run", "epoch_of_file"],
    ".recorder": ["ANALYSED_PHASE", "Recorder", "check_state_dict"],
})
