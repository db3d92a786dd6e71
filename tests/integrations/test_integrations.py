"""Lightning and HF Trainer callbacks, each with a tiny real training run."""

import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from flagalign.diagnostics.dynamics import law_rate, read_log  # noqa: E402

from _tiny_runs import FFN, hf_args, loader, tiny_bert, tiny_lightning_module  # noqa: E402


def test_importing_flagalign_imports_no_framework():
    code = (
        "import sys, flagalign, flagalign.integrations, flagalign.diagnostics.dynamics;"
        "cls = flagalign.AlignmentTracker;"
        "bad = [m for m in ('torch', 'pytorch_lightning', 'lightning', 'transformers') if m in sys.modules];"
        "print(cls.__name__, bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "AlignmentTracker []", out.stdout + out.stderr


def test_lightning_callback_tiny_fit(tmp_path):
    pl = pytest.importorskip("pytorch_lightning")
    from flagalign.integrations.lightning import AlignmentCallback

    cb = AlignmentCallback(every=2, log=tmp_path / "align.jsonl")
    trainer = pl.Trainer(max_steps=8, callbacks=[cb], logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False,
                         accelerator="cpu", default_root_dir=tmp_path)  # fmt: skip
    trainer.fit(tiny_lightning_module(pl), loader())
    t = cb.tracker
    assert [(p.name, p.activation) for p in t.pairs] == [
        ("net.0.weight -> net.2.weight", "homogeneous"), ("net.2.weight -> net.3.weight", "linear")]  # fmt: skip
    assert sorted(t.history.step.unique()) == [0, 2, 4, 6, 8]
    assert t.predicted_rate() == pytest.approx(law_rate(0.1, 1e-2))
    meta, recs = read_log(tmp_path / "align.jsonl")
    assert [r["step"] for r in recs] == [0, 2, 4, 6, 8]
    # the recorded imbalance is that of the trained weights
    net = trainer.lightning_module.net
    W, b, Wn = (net[2].weight.detach().double(), net[2].bias.detach().double(),
                net[3].weight.detach().double())  # fmt: skip
    Wt = torch.cat([W, b[:, None]], 1)
    D = Wn.T @ Wn - Wt @ Wt.T
    h = t.history
    last = h[(h.step == 8) & (h.pair == "net.2.weight -> net.3.weight") & (h.metric == "imbalance_abs")].value.item()
    assert last == pytest.approx(float(torch.linalg.norm(D)), rel=1e-10)


def test_transformers_callback_tiny_trainer(tmp_path):
    transformers = pytest.importorskip("transformers")
    from flagalign.integrations.transformers import AlignmentCallback

    model, ds = tiny_bert(transformers)
    cb = AlignmentCallback(every=1, pairs=[FFN], log=tmp_path / "align.jsonl")
    args = hf_args(transformers, tmp_path, max_steps=3)
    transformers.Trainer(model=model, args=args, train_dataset=ds, callbacks=[cb]).train()
    t = cb.tracker
    assert sorted(t.history.step.unique()) == [0, 1, 2, 3]
    assert t.pairs[0].activation == "unknown"
    # HF's default optimizer is AdamW: the tracker refuses to predict a rate
    assert t.predicted_rate() is None
    rates = t.fit_rates()
    assert not rates.applicable.any()
    assert rates[rates.metric == "imbalance_abs"].reason.str.contains("AdamW").all()
    imb = t.history[t.history.metric == "imbalance_abs"].sort_values("step").value.to_numpy()
    assert np.isfinite(imb).all() and imb[0] != imb[-1]  # the weights did move
    _, recs = read_log(tmp_path / "align.jsonl")
    assert len(recs) == 4
