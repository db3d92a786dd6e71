"""Tiny training setups shared by the callback tests (Lightning and HF Trainer)."""

import torch

nn = torch.nn

#: the BERT FFN pair the HF tests track
FFN = ("bert.encoder.layer.0.intermediate.dense", "bert.encoder.layer.0.output.dense")


def loader(n=64, d=6, classes=3, batch=16):
    """A fixed random classification set as a DataLoader."""
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(n, d, generator=g), torch.randint(0, classes, (n,), generator=g)
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=batch)


def tiny_lightning_module(pl):
    """A 3-layer MLP LightningModule (SGD, lr 0.1, weight decay 1e-2) for :func:`loader`."""

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

    return Tiny()


def tiny_bert(transformers):
    """(model, dataset): a one-layer BERT classifier and 32 fixed random sequences."""
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

    return model, DS()


def hf_args(transformers, tmp_path, max_steps=4, **kw):
    """CPU TrainingArguments with no logging, saving or reporting of their own."""
    return transformers.TrainingArguments(
        output_dir=str(tmp_path), max_steps=max_steps, per_device_train_batch_size=8,
        learning_rate=1e-3, weight_decay=1e-2, report_to=[], save_strategy="no",
        logging_strategy="no", use_cpu=True, disable_tqdm=True, dataloader_num_workers=0, **kw)
