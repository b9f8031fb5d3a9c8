"""kdexplain.models.features: parameter flags and train/eval mode restored on exit."""

from __future__ import annotations

from torch import nn

from kdexplain.models.features import frozen, parameter_state


def test_parameter_state_restores_flags_and_mode():
    model = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2)).train()
    model[1].weight.requires_grad_(False)
    with frozen(model):
        assert not model.training and not any(p.requires_grad for p in model.parameters())
    assert model.training and [p.requires_grad for p in model.parameters()] == [True, True, False, True]
    try:
        with parameter_state(model, requires_grad=True, train=False):
            assert all(p.requires_grad for p in model.parameters())
            raise KeyError
    except KeyError:
        pass
    assert model.training and not model[1].weight.requires_grad

