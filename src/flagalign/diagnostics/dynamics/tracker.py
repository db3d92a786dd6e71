"""AlignmentTracker: watch the ridge law happen in a live torch training run (docs/theory.md §2).

::

    tracker = flagalign.AlignmentTracker(model, every=10, optimizer=opt, log="run/align.jsonl")
    for batch in data:
        ...; opt.step()
        tracker.step()
    tracker.history          # long DataFrame: step, pair, metric, value
    tracker.fit_rates()      # fitted vs predicted decay rate per pair and metric
    tracker.predicted_rate() # -2 log(1 - ηλ) for plain SGD, None for Adam & co.

torch is never imported at module level; the tracker only touches ``model.named_modules()``,
``.weight``/``.bias`` tensors and ``optimizer.param_groups``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass


from ..._arrays import input_eps
from ..._threads import blas_threads
from ...errors import InputError
from ...models.labels import pair_id
from .log import JsonlLog
from .metrics import METRICS, pair_metrics, rate_table
from .rates import Prediction, predict_from_optimizer

__all__ = ["AlignmentTracker", "TrackedPair", "discover_pairs", "ACTIVATION_KINDS"]

_log = logging.getLogger(__name__)

ACTIVATION_KINDS = ("linear", "homogeneous", "other", "unknown")
# leaf modules between two Linear layers, by class name
_LINEAR = {"Identity"}
# AlphaDropout is affine (a·(mask·x + α'(1−mask)) + b), not positively homogeneous: "other"
_HOMOGENEOUS = {"ReLU", "LeakyReLU", "Dropout", "Dropout1d"}


@dataclass(frozen=True)
class TrackedPair:
    """Two ``nn.Linear`` modules composed as right(σ(left(x))) with σ of kind ``activation``."""

    left: str
    right: str
    activation: str = "unknown"

    @property
    def name(self) -> str:
        """The pair id of every output (docs/schema.md): the *weight* names, as in
        ``pairs.csv`` of ``flagalign.analyze(model)`` — ``0.weight -> 2.weight``."""
        return pair_id(f"{self.left}.weight", f"{self.right}.weight")

    @property
    def modules(self) -> str:
        """The module form ``0 -> 2`` (accepted wherever a pair is looked up)."""
        return f"{self.left} -> {self.right}"


def _is_linear(m) -> bool:
    return type(m).__name__ == "Linear" and hasattr(m, "weight") and getattr(m.weight, "ndim", 0) == 2


def _classify(between: list) -> str:
    names = {type(m).__name__ for m in between}
    if names <= _LINEAR:
        return "linear"
    if names <= _LINEAR | _HOMOGENEOUS:
        return "homogeneous"
    return "other"


def discover_pairs(model) -> list[TrackedPair]:
    """Adjacent ``nn.Linear`` pairs of ``model``.

    Inside every ``nn.Sequential``: consecutive Linear children whose dimensions match, with the
    activation kind read from the leaf modules between them (Identity → linear; ReLU, LeakyReLU,
    Dropout → homogeneous; anything else → other). If no Sequential holds such a pair, consecutive
    Linear modules in registration order with matching dimensions, activation ``"unknown"`` (a
    functional activation in ``forward`` is invisible; pass explicit pairs to assert one).
    A model whose weights match an architecture family (BERT, GPT-2, Llama, ...) is paired as
    :func:`flagalign.load` pairs it instead: its pairs of whole ``nn.Linear`` weights
    (:func:`flagalign.models.module.module_pairs`), activation ``"other"`` (a norm or a
    nonlinearity sits between them).
    """
    from ...models.module import linear_module_pairs, module_pairs

    graph = module_pairs(model)
    if graph is not None:
        pairs = [TrackedPair(a, c, "other") for a, c, _ in linear_module_pairs(model, graph)]
        if pairs:
            return pairs
    pairs: list[TrackedPair] = []
    for prefix, mod in model.named_modules():
        if type(mod).__name__ != "Sequential":
            continue
        last, between = None, []
        for cname, child in mod.named_children():
            full = f"{prefix}.{cname}" if prefix else cname
            if _is_linear(child):
                if last is not None and last[1].weight.shape[0] == child.weight.shape[1]:
                    pairs.append(TrackedPair(last[0], full, _classify(between)))
                last, between = (full, child), []
            elif any(True for _ in child.children()):
                last, between = None, []  # a container: composition not visible
            else:
                between.append(child)
    if pairs:
        return pairs
    linears = [(n, m) for n, m in model.named_modules() if _is_linear(m)]
    for (a, ma), (b, mb) in zip(linears, linears[1:]):
        if ma.weight.shape[0] == mb.weight.shape[1]:
            pairs.append(TrackedPair(a, b, "unknown"))
    if pairs:
        _log.warning(
            "no Linear pairs inside an nn.Sequential; using consecutive nn.Linear modules in "
            "registration order (activation unknown) — pass pairs= to be explicit"
        )
    return pairs


class AlignmentTracker:
    """Records the alignment metrics of adjacent Linear pairs of a torch module during training.

    Parameters
    ----------
    model : torch.nn.Module
    every : int
        Record when the step counter is a multiple of ``every``.
    k : int, optional
        Flag depth for overlap / intersection_dim; default :func:`flagalign.geometry.default_k`,
        fixed per pair at the first record so that the series are comparable.
    pairs : list, optional
        ``(left, right)`` or ``(left, right, activation)`` module names, activation one of
        ``linear``, ``homogeneous``, ``other``, ``unknown``; default :func:`discover_pairs`.
    optimizer : torch.optim.Optimizer, optional
        Read (never modified) for the predicted rate (eqs. (22), (25)).
    log : str or Path, optional
        Append-only JSONL log, fsync-ed per record (:mod:`.log`). A ``.parquet`` path keeps the
        crash-safe JSONL next to it (same name, ``.jsonl``) and writes Parquet at :meth:`close`.
    record_initial : bool
        Record step 0 at construction (the initial imbalance D_0).
    method : str
        Top-k factor method (eq. (13)); ``"auto"`` picks randomized for large matrices.
    threads : int or None
        BLAS threads while measuring (default 1: many small factorizations run faster on one
        thread than on a pool shared with the training loop; None: the BLAS default). Only the
        tracker's own work is limited; training runs with its usual threads.

    Attributes
    ----------
    last_record : tuple or None
        ``(step, {pair: {metric: value}})`` of the latest record (what loggers forward).
    """

    def __init__(self, model, every: int = 1, k: int | None = None, pairs=None, optimizer=None,
                 log=None, *, record_initial: bool = True, method: str = "auto", fsync: bool = True,
                 threads: int | None = 1):  # fmt: skip
        if not hasattr(model, "named_modules"):
            raise InputError("AlignmentTracker: model must be a torch.nn.Module")
        if int(every) < 1:
            raise InputError(f"AlignmentTracker: every must be >= 1, got {every}")
        self.model = model
        self.every = int(every)
        self.k = k
        self.method = method
        self.optimizer = optimizer
        self.threads = threads
        self.last_record: tuple[int, dict[str, dict[str, float]]] | None = None
        self._modules = dict(model.named_modules())
        self.pairs = self._resolve_pairs(pairs)
        if not self.pairs:
            raise InputError(
                "AlignmentTracker: no adjacent nn.Linear pairs found; pass pairs=[(left, right)]"
            )
        self._k: dict[str, int | None] = {p.name: k for p in self.pairs}
        self._rows: list[tuple[int, str, str, float]] = []
        self._t = 0
        self._last_recorded: int | None = None
        self._log = None
        self._parquet = None
        if log is not None and str(log).endswith(".parquet"):
            # Parquet cannot be appended crash-safely: keep a JSONL beside it, export at close()
            from pathlib import Path

            self._parquet = Path(log)
            log = self._parquet.with_suffix(".jsonl")
        if log is not None:
            meta = {
                "pairs": [vars(p) | {"name": p.name} for p in self.pairs],
                "every": self.every,
                "predictions": {p.name: vars(self.prediction(p.name)) for p in self.pairs},
                "eps": self._eps(),
            }
            self._log = JsonlLog(log, meta, fsync=fsync)
        if record_initial:
            self.record(0)

    # -- set-up -----------------------------------------------------------------------------
    def _resolve_pairs(self, pairs) -> list[TrackedPair]:
        if pairs is None:
            return discover_pairs(self.model)
        out = []
        for spec in pairs:
            if isinstance(spec, TrackedPair):
                spec = (spec.left, spec.right, spec.activation)
            if not isinstance(spec, (tuple, list)) or len(spec) not in (2, 3):
                raise InputError(f"pairs: expected (left, right[, activation]), got {spec!r}")
            left, right = spec[0], spec[1]
            act = spec[2] if len(spec) == 3 else "unknown"
            if act not in ACTIVATION_KINDS:
                raise InputError(f"pairs: activation must be one of {ACTIVATION_KINDS}, got {act!r}")
            for name in (left, right):
                if name not in self._modules or not hasattr(self._modules[name], "weight"):
                    raise InputError(f"pairs: {name!r} is not a module with a weight in the model")
            wl, wr = self._modules[left].weight, self._modules[right].weight
            if wl.ndim != 2 or wr.ndim != 2 or wl.shape[0] != wr.shape[1]:
                raise InputError(
                    f"pairs: {left} writes {tuple(wl.shape)} but {right} reads {tuple(wr.shape)}; "
                    "the left output dimension must equal the right input dimension"
                )
            out.append(TrackedPair(left, right, act))
        return out

    def _params(self, pair: TrackedPair) -> list:
        left, right = self._modules[pair.left], self._modules[pair.right]
        ps = [left.weight, right.weight]
        if getattr(left, "bias", None) is not None:
            ps.insert(1, left.bias)
        return ps

    def _eps(self) -> dict[str, float]:
        out = {}
        for p in self.pairs:
            dt = str(self._modules[p.left].weight.dtype).replace("torch.", "")
            out[p.name] = input_eps(dt)
        return out

    # -- recording --------------------------------------------------------------------------
    def step(self, step: int | None = None) -> bool:
        """Advance the step counter (call once per optimiser step); record when due.

        Parameters
        ----------
        step : int, optional
            The trainer's global step (overrides the internal counter).

        Returns
        -------
        bool
            True when a record was taken.
        """
        self._t = self._t + 1 if step is None else int(step)
        if self._t % self.every == 0 and self._t != self._last_recorded:
            self.record(self._t)
            return True
        return False

    def record(self, step: int | None = None) -> dict[str, dict[str, float]]:
        """Measure every pair now (regardless of ``every``) and append to history and log."""
        step = self._t if step is None else int(step)
        values: dict[str, dict[str, float]] = {}
        with blas_threads(self.threads):  # many tiny QR/SVDs: a BLAS pool only synchronises
            for p in self.pairs:
                left, right = self._modules[p.left], self._modules[p.right]
                bias = getattr(left, "bias", None)
                vals, k = pair_metrics(
                    left.weight, right.weight, None if bias is None else bias, k=self._k[p.name],
                    method=self.method,
                )  # fmt: skip
                self._k[p.name] = k
                values[p.name] = vals
                self._rows.extend((step, p.name, m, float(vals[m])) for m in METRICS)
        self._last_recorded = step
        self.last_record = (step, values)
        if self._log is not None:
            self._log.append(step, values, k={p.name: self._k[p.name] for p in self.pairs})
        return values

    # -- results ----------------------------------------------------------------------------
    @property
    def history(self):
        """Long pandas DataFrame: step, pair, metric, value."""
        import pandas as pd

        return pd.DataFrame(self._rows, columns=["step", "pair", "metric", "value"])

    def prediction(self, pair: str | None = None) -> Prediction:
        """:class:`~.rates.Prediction` for ``pair`` (default: the first), read from the
        optimiser's current hyper-parameters."""
        p = self._pair(pair)
        return predict_from_optimizer(self.optimizer, self._params(p))

    def predicted_rate(self, pair: str | None = None) -> float | None:
        """Predicted per-step decay rate of ‖D‖ (eqs. (22), (25)), or None (reason:
        :meth:`prediction` / the ``reason`` column of :meth:`fit_rates`)."""
        return self.prediction(pair).rate

    def _pair(self, pair) -> TrackedPair:
        if pair is None:
            return self.pairs[0]
        for p in self.pairs:
            if pair in (p.name, p.modules, p.left):
                return p
        raise InputError(f"unknown pair {pair!r}; tracked: {[p.name for p in self.pairs]}")

    def fit_rates(self, start=None, stop=None, tail: float = 0.5):
        """Fitted vs predicted decay rates (eq. (27)); see :func:`.metrics.rate_table`.

        Columns: pair, metric, rate, stderr, predicted, ratio, applicable, reason, n_points,
        window_start, window_stop, regime (:func:`.rates.rate_regime`: decay-limited,
        convergence-limited, transient, ...). The default window is the last half of the
        recorded steps.
        """
        preds = {p.name: self.prediction(p.name) for p in self.pairs}
        acts = {p.name: p.activation for p in self.pairs}
        from .fit_table import RateTable  # a DataFrame with plot() and a notebook view

        history = self.history
        table = rate_table(history, preds, acts, eps=self._eps(), start=start, stop=stop, tail=tail)
        return RateTable.of(table, history)

    def close(self) -> None:
        """Close the log (records already written are safe either way); with a ``.parquet``
        log path, also write the history there (needs pyarrow)."""
        if self._log is not None:
            self._log.close()
        if self._parquet is not None:
            from .log import write_parquet

            write_parquet(self.history, self._parquet)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self) -> str:
        return (
            f"AlignmentTracker({len(self.pairs)} pairs, every={self.every}, "
            f"records={len({r[0] for r in self._rows})})"
        )
