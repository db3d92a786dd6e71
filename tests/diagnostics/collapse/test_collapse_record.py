"""Hook-based recording from a live torch model: ``flagalign.collapse.record``."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from flagalign.collapse import metrics, record  # noqa: E402
from flagalign.errors import InputError  # noqa: E402


def _model_and_batches():
    g = torch.Generator().manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(6, 8), torch.nn.ReLU(), torch.nn.Linear(8, 5), torch.nn.Tanh(),
        torch.nn.Linear(5, 3),
    ).double()
    x = torch.randn(90, 6, generator=g, dtype=torch.float64)
    y = torch.arange(90) % 3
    batches = [(x[i : i + 16], y[i : i + 16]) for i in range(0, 90, 16)]
    return model, x, y, batches


def test_record_equals_one_shot_metrics_and_restores_mode():
    model, x, y, batches = _model_and_batches()
    model.train()
    rep = record(model, model[3], batches, model[4])
    assert model.training  # mode restored
    with torch.no_grad():
        H = model[:4](x)
    ref = metrics(H, y, model[4].weight.detach(), model[4].bias.detach())
    for f in ("nc1", "cdnv", "nc2_etf", "nc3", "nc4", "level2_overlap", "level3_commutator"):
        assert getattr(rep, f) == pytest.approx(getattr(ref, f), rel=1e-10, abs=1e-13), f
    assert rep.num_samples == 90 and rep.dim == 5 and rep.num_classes == 3
    assert not model[3]._forward_hooks  # hook removed


def test_record_errors():
    model, x, y, batches = _model_and_batches()
    other = torch.nn.Linear(2, 2)
    with pytest.raises(InputError, match="feature_module"):
        record(model, other, batches, model[4])
    with pytest.raises(InputError, match="no batches"):
        record(model, model[3], [], model[4])
    assert not other._forward_hooks and not model[3]._forward_hooks
    assert np.isfinite(record(model, model[3], batches, model[4].weight).nc1)


def test_recorder_every_n_steps_in_a_training_loop():
    from flagalign.collapse import CollapseRecorder
    from flagalign.experiments.training import train

    model, x, y, batches = _model_and_batches()
    model = model.float()
    batches = [(xb.float(), yb) for xb, yb in batches]
    rec = CollapseRecorder(model, model[3], batches, model[4], every=5)
    train(model, x.float(), y, steps=12, lr=0.1, on_step=lambda s, l: rec.step(s))
    hist = rec.history()
    assert hist.step.tolist() == [5, 10]
    final = record(model, model[3], batches, model[4])
    assert hist.nc1.iloc[-1] != final.nc1  # two more steps changed the model
    rec.record()
    assert rec.history().nc1.iloc[-1] == pytest.approx(final.nc1, rel=1e-12)
    with pytest.raises(InputError):
        CollapseRecorder(model, model[3], batches, model[4], every=0)
