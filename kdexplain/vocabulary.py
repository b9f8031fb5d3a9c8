"""The names the whole house shares, defined once (imported by config, models, train, ...).

Only the standard library: the config and the command line read these without loading torch.
"""

__all__ = ["ALL_ROLES", "ARCHS", "COMPARED_ROLES", "CONTROL", "OPTIMIZERS", "ROLES", "SCHEDULES",
           "TORCHVISION_ARCHS"]

#: The three networks of the triplet (docs/method.md section 2), in table order.
ROLES: tuple[str, ...] = ("teacher", "student", "baseline")

#: The two models the hypotheses compare: the student S against the baseline B.
COMPARED_ROLES: tuple[str, str] = ("student", "baseline")

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

#: The optimisers of the config's ``optim.name`` (built by ``kdexplain.train.build_optimizer``).
OPTIMIZERS: tuple[str, ...] = ("sgd", "adam")

#: The learning-rate schedules of ``optim.schedule`` (``kdexplain.train.LrFactor``).
SCHEDULES: tuple[str, ...] = ("loglinear", "constant", "cosine")
