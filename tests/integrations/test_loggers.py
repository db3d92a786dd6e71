"""The callbacks' metrics reach the frameworks' loggers: Lightning's CSVLogger, HF log_history."""

import csv
import math

import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

from flagalign.diagnostics.dynamics import METRICS  # noqa: E402
from flagalign.integrations import metric_key  # noqa: E402


@pytest.fixture(autouse=True)
def _one_torch_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def _loader(n=64, d=6, classes=3, batch=16):
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(n, d, generator=g), torch.randint(0, classes, (n,), generator=g)
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=batch)


def test_metric_key_is_pair_id_and_metric():
    assert metric_key("net.0 -> net.2", "imbalance") == "flagalign/net.0 -> net.2/imbalance"
    assert metric_key("a -> b", "commutator", "rate") == "flagalign/a -> b/commutator/rate"


def test_lightning_csvlogger_gets_every_record_and_the_rates(tmp_path):
    pl = pytest.importorskip("pytorch_lightning")
    from pytorch_lightning.loggers import CSVLogger

    from flagalign.integrations.lightning import AlignmentCallback

    class Tiny(pl.LightningModule):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.net = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 8), nn.Linear(8, 3))

        def training_step(self, batch, _):
            x, y = batch
            return nn.functional.cross_entropy(self.net(x), y)

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1, weight_decay=1e-2)

    cb = AlignmentCallback(every=2)
    logger = CSVLogger(tmp_path, name="run", version=0)
    trainer = pl.Trainer(max_steps=8, callbacks=[cb], logger=logger, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False,
                         accelerator="cpu", default_root_dir=tmp_path, log_every_n_steps=50)
    trainer.fit(Tiny(), _loader())
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


def _tiny_bert():
    transformers = pytest.importorskip("transformers")
    cfg = transformers.BertConfig(vocab_size=40, hidden_size=16, num_hidden_layers=1,
                                  num_attention_heads=2, intermediate_size=32,
                                  max_position_embeddings=16, num_labels=2)
    torch.manual_seed(0)
    model = transformers.BertForSequenceClassification(cfg)
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 40, (32, 8), generator=g)
    labels = torch.randint(0, 2, (32,), generator=g)

    class DS(torch.utils.data.Dataset):
        def __len__(self):
            return 32

        def __getitem__(self, i):
            return {"input_ids": ids[i], "labels": labels[i]}

    return transformers, model, DS()


FFN = ("bert.encoder.layer.0.intermediate.dense", "bert.encoder.layer.0.output.dense")


def _args(transformers, tmp_path, **kw):
    return transformers.TrainingArguments(
        output_dir=str(tmp_path), max_steps=4, per_device_train_batch_size=8, learning_rate=1e-3,
        weight_decay=1e-2, report_to=[], save_strategy="no", logging_strategy="no",
        use_cpu=True, disable_tqdm=True, dataloader_num_workers=0, **kw)


def test_hf_log_history_and_report_to_get_the_records(tmp_path):
    transformers, model, ds = _tiny_bert()
    from flagalign.integrations.transformers import AlignmentCallback

    seen = []

    class Reporter(transformers.TrainerCallback):  # stands in for a report_to integration
        def on_log(self, args, state, control, logs=None, **kwargs):
            seen.append(dict(logs))

    cb = AlignmentCallback(every=1, pairs=[FFN])
    trainer = transformers.Trainer(model=model, args=_args(transformers, tmp_path),
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
    transformers, model, _ = _tiny_bert()
    from flagalign.integrations.transformers import AlignmentCallback

    cb = AlignmentCallback(every=1, pairs=[FFN])
    state, control = transformers.TrainerState(), transformers.TrainerControl()
    cb.on_train_begin(None, state, control, model=model)  # no Trainer among the callers
    assert cb.trainer is None
    state.global_step = 1
    cb.on_step_end(None, state, control, model=model)
    key = metric_key(cb.tracker.pairs[0].name, "overlap")
    assert [r["step"] for r in state.log_history if key in r] == [0, 1]
