"""The experiment config: one YAML file describes a whole experiment.

A config names the dataset, the architecture and the distilled layer, how the teacher,
the student and the baseline are trained (docs/method.md section 2), which epochs are kept as
checkpoints, and how the sweep analyses them (docs/method.md sections 3-4). It is validated on load:
an unknown key or a value outside the allowed choices is an error that names the key and
what is allowed.

Load with :func:`load_config`; override single values from the command line with
``key.sub=value`` (the value is parsed as YAML, so ``optim.lr=0.01``,
``checkpoints=[0,1,2]``, ``teacher.pretrained=null`` all work)::

    cfg = load_config("configs/quickstart.yaml", ["optim.lr=0.02", "student.mode=soft"])

Every run saves the resolved config (:func:`dump_config`) as ``config.yaml``.
"""

from kdexplain.config.errors import ConfigError
from kdexplain.config.loading import (
    config_description,
    dump_config,
    find_run_config,
    flatten_config,
    key_under,
    load_config,
    resolve_config,
    shipped_configs,
)
from kdexplain.config.overrides import apply_overrides
from kdexplain.config.schema import (
    CONCEPT_KEYS,
    PAPER_CHECKPOINTS,
    REPORT_ONLY_KEYS,
    AnalysisConfig,
    BaselineConfig,
    DataConfig,
    ExperimentConfig,
    ModelConfig,
    OptimConfig,
    OptimOverrides,
    SourceDataConfig,
    StudentConfig,
    TeacherConfig,
    parse_config,
)
from kdexplain.config.yaml_io import read_yaml

__all__ = [
    "CONCEPT_KEYS",
    "PAPER_CHECKPOINTS",
    "REPORT_ONLY_KEYS",
    "AnalysisConfig",
    "BaselineConfig",
    "ConfigError",
    "DataConfig",
    "ExperimentConfig",
    "ModelConfig",
    "OptimConfig",
    "OptimOverrides",
    "SourceDataConfig",
    "StudentConfig",
    "TeacherConfig",
    "flatten_config",
    "key_under",
    "apply_overrides",
    "config_description",
    "dump_config",
    "find_run_config",
    "load_config",
    "parse_config",
    "read_yaml",
    "resolve_config",
    "shipped_configs",
]
