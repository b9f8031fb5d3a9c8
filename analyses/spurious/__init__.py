"""The spurious-background validation of the concept measure.

``scenes`` can tie the background photo family to the class (``spurious_background = p``).
A network trained with the tie relies on the background, which gives the concept measure
(docs/method.md section 4) a ground truth: per seed, the same architecture is trained with p = 0
(``neutral``) and with p high (``spurious``), both are quantified on the same images, and
the concept counts ``N_fg``, ``N_bg``, ``fg_ratio`` (and the mean object / background
entropies) are compared: per seed over the images, then over seeds (the unit of
replication is the training run).

Run ``python -m analyses.spurious [--quick]``; see ``analyses/spurious/README.md``.
"""

from kdexplain.lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    ".config": ["CONDITIONS", "SpuriousConfig", "experiment_config", "make_config"],
    ".images": [
        "ImageSet", "analysed_sets", "background_relation", "load_analysed_sets",
        "select_balanced",
    ],
    ".metrics": [
        "EXPECTED", "GROUPS", "METRICS", "border_cells", "compare_conditions", "image_metrics",
        "shared_counts", "verdict", "within_run_tests",
    ],
    ".pipeline": [
        "ValidationResults", "accuracy_table", "final_checkpoints", "per_image_table",
        "quantify_runs", "run_validation", "train_networks", "weights_digest",
    ],
    ".render": ["load_config", "record_from_page", "render_report"],
    ".report": ["RunRecord", "write_page", "write_report"],
})
