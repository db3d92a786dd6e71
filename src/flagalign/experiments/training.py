"""Small, generic training helpers shared by the experiments (``ridge``, ``collapse``).

Everything here is deliberately plain: scikit-learn's 8×8 digits (1797 samples, 64 features,
10 classes), an ``nn.Sequential`` MLP, and a hand-rolled optimisation loop whose optimiser is a
stock ``torch.optim`` object (so :class:`~flagalign.AlignmentTracker` can read its
hyper-parameters). torch and scikit-learn are imported lazily, inside the functions.

Typical use::

    from flagalign.experiments.training import load_digits_data, make_mlp, train
    data = load_digits_data()
    model = make_mlp(64, 64, depth=3, out_dim=10, activation="relu", seed=0)
    result = train(model, data.x, data.y, steps=2000, lr=0.1, weight_decay=1e-3)
    result.losses[-1], result.optimizer

Conventions
-----------
* ``depth`` counts ``nn.Linear`` layers (``depth=3``: in→width→width→out).
* Module names are stable across activations: linear layers are at even indices
  ``"0", "2", "4", ...``; odd indices hold the activation (``nn.Identity`` for ``"linear"``),
  so ``model[2 * i]`` is the i-th linear layer whatever the activation.
* Weight decay is plain L2 applied by the optimiser to **every** parameter (weights and
  biases) unless ``decay_biases=False`` — the ridge law of docs/theory.md, eq. (21), needs it on
  every parameter involved.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from .._threads import blas_threads
from ..errors import InputError, MissingDependencyError

__all__ = [
    "Digits",
    "TrainResult",
    "ACTIVATIONS",
    "load_digits_data",
    "make_mlp",
    "make_optimizer",
    "train",
    "linear_layers",
    "features",
    "torch_threads",
]

#: activation name -> torch.nn class name (``"linear"`` = identity, no nonlinearity).
ACTIVATIONS = {"linear": "Identity", "relu": "ReLU", "tanh": "Tanh"}


def require_torch(what: str):
    """Import and return torch, or raise MissingDependencyError naming ``what``."""
    try:
        import torch
    except ImportError as exc:
        raise MissingDependencyError(
            f"torch is needed for {what}; pip install 'flagalign[torch]'"
        ) from exc
    return torch


@dataclass
class Digits:
    """scikit-learn digits as float32/int64 torch tensors.

    Attributes
    ----------
    x, y : torch.Tensor
        Training inputs (n, 64) and integer labels (n,).
    x_test, y_test : torch.Tensor
        Held-out split (empty when ``test_fraction=0``).
    n_classes : int
        10.
    """

    x: object
    y: object
    x_test: object
    y_test: object
    n_classes: int = 10

    @property
    def n_features(self) -> int:
        return int(self.x.shape[1])


@dataclass
class TrainResult:
    """Outcome of :func:`train`.

    Attributes
    ----------
    losses : numpy.ndarray
        Data loss (without the decay term) after each step's forward pass, shape (steps,).
    optimizer : torch.optim.Optimizer
        The optimiser used (its ``param_groups`` hold lr / weight_decay / momentum).
    steps : int
    """

    losses: np.ndarray
    optimizer: object
    steps: int = 0
    extra: dict = field(default_factory=dict)


def load_digits_data(
    *, standardize: bool = True, test_fraction: float = 0.0, seed: int = 0
) -> Digits:
    """Load scikit-learn's digits (no download; it ships with scikit-learn).

    Parameters
    ----------
    standardize : bool
        Centre each pixel and scale it to unit variance (constant pixels stay 0), using
        training-split statistics.
    test_fraction : float
        Fraction held out (stratified shuffle with ``seed``); 0 keeps all 1797 samples.
    seed : int
    """
    torch = require_torch("the digits experiments")
    try:
        from sklearn.datasets import load_digits
    except ImportError as exc:  # pragma: no cover - sklearn is a dev dependency
        raise MissingDependencyError(
            "scikit-learn is needed for the digits experiments; pip install 'flagalign[dev]'"
        ) from exc
    X, y = load_digits(return_X_y=True)
    X = X.astype(np.float64)
    rng = np.random.default_rng(seed)
    if test_fraction > 0:
        test_idx = []
        for c in np.unique(y):
            idx = np.flatnonzero(y == c)
            rng.shuffle(idx)
            test_idx.extend(idx[: int(round(test_fraction * idx.size))])
        mask = np.zeros(y.size, dtype=bool)
        mask[np.asarray(test_idx, dtype=int)] = True
        Xtr, ytr, Xte, yte = X[~mask], y[~mask], X[mask], y[mask]
    else:
        Xtr, ytr, Xte, yte = X, y, X[:0], y[:0]
    if standardize:
        mu = Xtr.mean(axis=0)
        sd = Xtr.std(axis=0)
        sd[sd == 0] = 1.0
        Xtr, Xte = (Xtr - mu) / sd, (Xte - mu) / sd

    def t(a, dtype):
        return torch.as_tensor(np.ascontiguousarray(a), dtype=dtype)

    return Digits(
        x=t(Xtr, torch.float32),
        y=t(ytr, torch.long),
        x_test=t(Xte, torch.float32),
        y_test=t(yte, torch.long),
        n_classes=10,
    )


def make_mlp(
    in_dim: int,
    width: int,
    depth: int,
    out_dim: int,
    *,
    activation: str = "relu",
    bias: bool = True,
    init_scales: list[float] | None = None,
    seed: int = 0,
):
    """An ``nn.Sequential`` MLP with ``depth`` linear layers and PyTorch's default init.

    Parameters
    ----------
    in_dim, width, out_dim : int
    depth : int
        Number of ``nn.Linear`` layers (≥ 2).
    activation : {"linear", "relu", "tanh"}
        Placed after every linear layer but the last (``nn.Identity`` for ``"linear"``).
    bias : bool
    init_scales : list of float, optional
        Multiply layer i's weight *and bias* by ``init_scales[i]`` after the default init — an
        unbalanced start (a large initial imbalance D_0, docs/theory.md eq. (11)) makes the
        decay of eq. (22) visible over many decades.
    seed : int
        ``torch.manual_seed`` used for the init (the global RNG state is restored afterwards).
    """
    torch = require_torch("make_mlp")
    from torch import nn

    if depth < 2:
        raise InputError(f"make_mlp: depth must be >= 2 linear layers, got {depth}")
    if activation not in ACTIVATIONS:
        raise InputError(
            f"make_mlp: activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}"
        )
    if init_scales is not None and len(init_scales) != depth:
        raise InputError(f"make_mlp: init_scales needs {depth} entries, got {len(init_scales)}")
    dims = [in_dim] + [width] * (depth - 1) + [out_dim]
    state = torch.random.get_rng_state()
    try:
        torch.manual_seed(seed)
        layers: list = []
        for i in range(depth):
            lin = nn.Linear(dims[i], dims[i + 1], bias=bias)
            if init_scales is not None:
                with torch.no_grad():
                    lin.weight.mul_(float(init_scales[i]))
                    if lin.bias is not None:
                        lin.bias.mul_(float(init_scales[i]))
            layers.append(lin)
            if i < depth - 1:
                layers.append(getattr(nn, ACTIVATIONS[activation])())
    finally:
        torch.random.set_rng_state(state)
    return nn.Sequential(*layers)


def linear_layers(model) -> list[tuple[str, object]]:
    """``(name, module)`` of every ``nn.Linear`` in registration order."""
    torch = require_torch("linear_layers")
    return [(n, m) for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)]


def features(model, x):
    """Penultimate representation: ``model`` (an ``nn.Sequential``) without its last layer,
    evaluated on ``x`` under ``torch.no_grad()``."""
    torch = require_torch("features")
    with torch.no_grad():
        return model[:-1](x)


def make_optimizer(
    model,
    name: str = "sgd",
    *,
    lr: float,
    weight_decay: float = 0.0,
    momentum: float = 0.0,
    decay_biases: bool = True,
):
    """A stock torch optimiser over ``model.parameters()``.

    Parameters
    ----------
    name : {"sgd", "adam", "adamw"}
        ``"sgd"`` is plain (heavy-ball when ``momentum > 0``) SGD with coupled L2 decay;
        ``"adam"`` is Adam with coupled L2; ``"adamw"`` is AdamW (decoupled decay).
    decay_biases : bool
        False puts 1-D parameters (biases) in a group with ``weight_decay=0`` — which breaks the
        ridge law's hypothesis (docs/theory.md §2); the tracker then reports "no prediction".
    """
    torch = require_torch("make_optimizer")
    params = list(model.parameters())
    if decay_biases:
        groups = [{"params": params, "weight_decay": weight_decay}]
    else:
        groups = [
            {"params": [p for p in params if p.ndim > 1], "weight_decay": weight_decay},
            {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0},
        ]
    name = name.lower()
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=momentum)
    if name == "adam":
        return torch.optim.Adam(groups, lr=lr)
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr)
    raise InputError(f"make_optimizer: unknown optimizer {name!r}; use sgd, adam or adamw")


def train(
    model,
    x,
    y,
    *,
    steps: int,
    lr: float,
    weight_decay: float = 0.0,
    momentum: float = 0.0,
    optimizer: str | object = "sgd",
    batch_size: int | None = None,
    loss: str = "cross_entropy",
    decay_biases: bool = True,
    seed: int = 0,
    on_step: Callable[[int, float], None] | None = None,
) -> TrainResult:
    """Plain optimisation loop: ``steps`` updates, full batch unless ``batch_size`` is given.

    Parameters
    ----------
    model : torch.nn.Module
    x, y : torch.Tensor
        Inputs and integer labels.
    steps : int
    lr, weight_decay, momentum : float
        Passed to :func:`make_optimizer` (ignored when ``optimizer`` is an optimiser object).
    optimizer : str or torch.optim.Optimizer
    batch_size : int, optional
        Minibatch size (sampled without replacement per epoch with ``seed``); None = full batch
        (deterministic gradient descent).
    loss : {"cross_entropy", "mse"}
        ``"mse"`` regresses one-hot targets (the usual Neural-Collapse setting).
    on_step : callable, optional
        ``on_step(step, loss)`` after each optimiser step (``step`` counts from 1); attach an
        :class:`~flagalign.AlignmentTracker` here (``lambda s, l: tracker.step()``).
    """
    torch = require_torch("train")
    import torch.nn.functional as F

    opt = (
        optimizer
        if not isinstance(optimizer, str)
        else make_optimizer(
            model,
            optimizer,
            lr=lr,
            weight_decay=weight_decay,
            momentum=momentum,
            decay_biases=decay_biases,
        )
    )
    if loss == "cross_entropy":
        loss_fn = F.cross_entropy
    elif loss == "mse":
        n_out = None

        def loss_fn(out, target):
            nonlocal n_out
            n_out = out.shape[1]
            return F.mse_loss(out, F.one_hot(target, n_out).to(out.dtype))

    else:
        raise InputError(f"train: loss must be 'cross_entropy' or 'mse', got {loss!r}")
    n = int(x.shape[0])
    gen = torch.Generator().manual_seed(seed)
    perm, pos = None, n
    losses = np.empty(steps, dtype=np.float64)
    model.train()
    for t in range(steps):
        if batch_size is None or batch_size >= n:
            xb, yb = x, y
        else:
            if pos + batch_size > n:
                perm, pos = torch.randperm(n, generator=gen), 0
            idx = perm[pos : pos + batch_size]
            pos += batch_size
            xb, yb = x[idx], y[idx]
        opt.zero_grad(set_to_none=True)
        value = loss_fn(model(xb), yb)
        value.backward()
        opt.step()
        losses[t] = float(value.detach())
        if on_step is not None:
            on_step(t + 1, losses[t])
    return TrainResult(losses=losses, optimizer=opt, steps=steps)


@contextlib.contextmanager
def torch_threads(n: int = 1):
    """Temporarily set torch's intra-op thread count (and BLAS threads via threadpoolctl when
    available) — the experiments use one thread so that timings are stable on shared CPUs."""
    torch = require_torch("torch_threads")
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        with blas_threads(n):
            yield
    finally:
        torch.set_num_threads(old)
