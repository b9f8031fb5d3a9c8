"""The names the whole house shares, defined once (imported by config, models, train, ...).

Only the standard library: the config and the command line read these without loading torch.
"""

import warnings

__all__ = ["ALL_ROLES", "ARCHS", "CONTROL", "ROLES", "TORCHVISION_ARCHS", "renamed_keys",
           "warn_renamed"]

#: The three networks of the triplet (docs/method.md section 2), in table order.
ROLES: tuple[str, ...] = ("teacher", "student", "baseline")

#: The random-teacher control: a student distilled by the student's procedure from an
#: untrained teacher (``student.control``); analysed whenever the student is.
CONTROL = "control"

#: Every model role a run may hold, in table order.
ALL_ROLES: tuple[str, ...] = (*ROLES, CONTROL)

#: torchvision architectures with the paper's layer aliases (conv, fc1, fc2, fc3); the ones
#: a config may train. ``kdexplain quantify`` takes any torchvision classification model.
TORCHVISION_ARCHS: tuple[str, ...] = ("alexnet", "vgg11", "vgg16", "vgg19", "resnet18",
                                      "resnet34", "resnet50", "resnet101", "resnet152")

#: Every architecture a config may name: the small CPU network and the torchvision ones.
ARCHS: tuple[str, ...] = ("kdnet", *TORCHVISION_ARCHS)


def warn_renamed(old: str, new: str, *, stacklevel: int = 3) -> None:
    """Warn (``FutureWarning``, shown by default) that ``old`` is now called ``new``.

    Old names keep working for one release (0.1 -> 0.2), with this message.
    """
    warnings.warn(f"{old} is deprecated and will be removed in the next release: use {new}",
                  FutureWarning, stacklevel=stacklevel)


def renamed_keys(values: dict, renames: dict[str, str], where: str = "") -> dict:
    """``values`` with each old key of ``renames`` (old -> new) under its new name, warning.

    Raises
    ------
    ValueError
        Both the old and the new name are given.
    """
    out = dict(values)
    for old, new in renames.items():
        if old in out:
            if new in out:
                raise ValueError(f"{where}{old} and {where}{new} are the same setting "
                                 f"({old} is its old name): give only {where}{new}")
            warn_renamed(f"{where}{old}", f"{where}{new}", stacklevel=4)
            out[new] = out.pop(old)
    return out
