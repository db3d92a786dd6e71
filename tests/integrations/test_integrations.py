"""Lightning and HF Trainer callbacks, each with a tiny real training run."""

import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

from flagalign.diagnostics.dynamics import law_rate, read_log  # noqa: E402


@pytest.fixture(autouse=True)
def _one_torch_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def test_importing_flagalign_imports_no_framework():
    code = (
        "import sys, flagalign, flagalign.integrations, flagalign.diagnostics.dynamics;"
        "cls = flagalign.AlignmentTracker;"
        "bad = [m for m in ('torch', 'pytorch_lightning', 'lightning', 'transformers') if m in sys.modules];"
        "print(cls.__name__, bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "AlignmentTracker []", out.stdout + out.stderr


def _loader(n=64, d=6, classes=3, batch=16):
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(n, d, generator=g), torch.randint(0, classes, (n,), generator=g)
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=batch)


def test_lightning_callback_tiny_fit(tmp_path):
    pl = pytest.importorskip("pytorch_lightning")
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

    cb = AlignmentCallback(every=2, log=tmp_path / "align.jsonl")
    trainer = pl.Trainer(max_steps=8, callbacks=[cb], logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False,
                         accelerator="cpu", default_root_dir=tmp_path)  # fmt: skip
    trainer.fit(Tiny(), _loader())
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

    cfg = transformers.BertConfig(vocab_size=40, hidden_size=16, num_hidden_layers=1,
                                  num_attention_heads=2, intermediate_size=32,
                                  max_position_embeddings=16, num_labels=2)  # fmt: skip
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

    ffn = ("bert.encoder.layer.0.intermediate.dense", "bert.encoder.layer.0.output.dense")
    cb = AlignmentCallback(every=1, pairs=[ffn], log=tmp_path / "align.jsonl")
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path), max_steps=3, per_device_train_batch_size=8, learning_rate=1e-3,
        weight_decay=1e-2, report_to=[], save_strategy="no", logging_strategy="no",
        use_cpu=True, disable_tqdm=True, dataloader_num_workers=0,
    )  # fmt: skip
    transformers.Trainer(model=model, args=args, train_dataset=DS(), callbacks=[cb]).train()
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
