"""The callbacks' metrics reach the frameworks' loggers: Lightning's CSVLogger, HF log_history."""

import csv
import math

import pytest

torch = pytest.importorskip("torch")

from flagalign.diagnostics.dynamics import METRICS  # noqa: E402
from flagalign.integrations import metric_key  # noqa: E402

from _tiny_runs import FFN, hf_args, loader, tiny_bert, tiny_lightning_module  # noqa: E402


def test_metric_key_is_pair_id_and_metric():
    assert metric_key("net.0 -> net.2", "imbalance") == "flagalign/net.0 -> net.2/imbalance"
    assert metric_key("a -> b", "commutator", "rate") == "flagalign/a -> b/commutator/rate"


def test_lightning_csvlogger_gets_every_record_and_the_rates(tmp_path):
    pl = pytest.importorskip("pytorch_lightning")
    from pytorch_lightning.loggers import CSVLogger

    from flagalign.integrations.lightning import AlignmentCallback

    cb = AlignmentCallback(every=2)
    logger = CSVLogger(tmp_path, name="run", version=0)
    trainer = pl.Trainer(max_steps=8, callbacks=[cb], logger=logger, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False,
                         accelerator="cpu", default_root_dir=tmp_path, log_every_n_steps=50)
    trainer.fit(tiny_lightning_module(pl), loader())
    with open(tmp_path / "run" / "version_0" / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    pair = "net.2.weight -> net.3.weight"
    key = metric_key(pair, "imbalance_abs")
    logged = {int(r["step"]): float(r[key]) for r in rows if r.get(key)}
    # every record (not only every log_every_n_steps), at the trainer's global step
    assert sorted(logged) == [0, 2, 4, 6, 8]
    h = cb.tracker.history
    for step, value in logged.items():
        want = h[(h.step == step) & (h.pair == pair) & (h.metric == "imbalance_abs")].value.item()
        assert value == pytest.approx(want, rel=1e-12)
    assert {metric_key(p.name, m) for p in cb.tracker.pairs for m in METRICS} <= set(rows[0])
    # the fitted rates at the end, equal to fit_rates()
    rates = cb.tracker.fit_rates()
    rk = metric_key(pair, "imbalance_abs", "rate")
    got = [float(r[rk]) for r in rows if r.get(rk)]
    want = rates[(rates.pair == pair) & (rates.metric == "imbalance_abs")].rate.item()
    assert got == [pytest.approx(want, rel=1e-12)]
    pk = metric_key(pair, "imbalance_abs", "predicted")
    assert any(r.get(pk) for r in rows)


def test_hf_log_history_and_report_to_get_the_records(tmp_path):
    transformers = pytest.importorskip("transformers")
    model, ds = tiny_bert(transformers)
    from flagalign.integrations.transformers import AlignmentCallback

    seen = []

    class Reporter(transformers.TrainerCallback):  # stands in for a report_to integration
        def on_log(self, args, state, control, logs=None, **kwargs):
            seen.append(dict(logs))

    cb = AlignmentCallback(every=1, pairs=[FFN])
    trainer = transformers.Trainer(model=model, args=hf_args(transformers, tmp_path),
                                   train_dataset=ds, callbacks=[Reporter(), cb])
    trainer.train()
    assert cb.trainer is trainer
    pair = cb.tracker.pairs[0].name
    key = metric_key(pair, "imbalance_abs")
    hist = [r for r in trainer.state.log_history if key in r]
    assert [r["step"] for r in hist] == [0, 1, 2, 3, 4]
    h = cb.tracker.history
    for r in hist:
        want = h[(h.step == r["step"]) & (h.metric == "imbalance_abs")].value.item()
        assert r[key] == pytest.approx(want, rel=1e-12)
    assert sum(key in logs for logs in seen) == 5  # the report_to path saw every record
    # the fitted rates at train end (AdamW: fitted, no prediction), equal to fit_rates()
    rk = metric_key(pair, "imbalance_abs", "rate")
    logged = [r[rk] for r in trainer.state.log_history if rk in r]
    fit = cb.tracker.fit_rates()
    want = fit[fit.metric == "imbalance_abs"].rate.item()
    assert math.isfinite(want) and logged == [pytest.approx(want, rel=1e-12)]
    assert not any(metric_key(pair, "imbalance_abs", "predicted") in r
                   for r in trainer.state.log_history)


def test_hf_without_a_trainer_falls_back_to_log_history(tmp_path):
    transformers = pytest.importorskip("transformers")
    model, _ = tiny_bert(transformers)
    from flagalign.integrations.transformers import AlignmentCallback

    cb = AlignmentCallback(every=1, pairs=[FFN])
    state, control = transformers.TrainerState(), transformers.TrainerControl()
    cb.on_train_begin(None, state, control, model=model)  # no Trainer among the callers
    assert cb.trainer is None
    state.global_step = 1
    cb.on_step_end(None, state, control, model=model)
    key = metric_key(cb.tracker.pairs[0].name, "overlap")
    assert [r["step"] for r in state.log_history if key in r] == [0, 1]
