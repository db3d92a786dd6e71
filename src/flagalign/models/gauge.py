"""The balanced gauge of a whole network (docs/theory.md §7, eqs. (73)–(75)).

:func:`balanced_network` moves a :class:`~.network.Network` to the canonical representative of
its orbit under the hidden-layer symmetries it knows (``Pair.symmetry``), acting on every hidden
layer at once:

* **diagonal groups** (``pos-diag×perm``, ``nonzero-diag×perm``): the representative minimises
  Σ_layers ‖W_l‖²_F (biases included) over per-neuron log-scalings u — a convex function of u
  (a sum of exponentials of linear forms), strictly convex when no neuron is dead, so the
  minimiser is unique. It is found by exact block-coordinate descent: with the other layers
  fixed, each neuron's optimum balances its in-norm² against its out-norm²,
  u_i ← u_i + ¼ log(out_i/in_i) (eq. (74)); once every step is below 1e-2, Newton's method with
  backtracking on all log-scalings at once (sparse Laplacian Hessian) finishes, until
  max_i |¼ log(out_i/in_i)| ≤ tol (default 1e-13), which is also the optimality condition (the
  gradient is 2(in_i − out_i) per neuron). For ``nonzero-diag×perm`` the sign of each neuron is fixed by
  making the largest-magnitude entry of its writer row positive (sign flips are part of the
  group, and the gate → down pair of a gated MLP is not invariant under them).
* **GL(d_head)** of attention heads (``ov`` pairs, grouped by kv-head): eq. (73), the matrix
  geometric mean, per kv group (V rows of the group against the sum of its heads' O Grams).
* **query/key gauge** of attention (Q_h → G Q_h, K_g → G⁻ᵀ K_g; it moves the rows of the
  stacked Q/K/V reader): eq. (73) per kv group for absolute positions (GPT-2, BERT), per rotary
  2-plane positive scalings for the Llama family (eq. (75)); not for traced attention.
* **orthogonal groups** need nothing: every pair measure is invariant under them.

Which hidden layers are balanced (:func:`gauge_plan`, in :mod:`.gauge_plan`): a pair's hidden
layer is balanced when it is not a residual stream (a stream is shared with skip connections
that are not pairs), its symmetry is diagonal, its writer is not the gate of a gated MLP, and no
other pair with the same writer or reader makes the layer's group smaller. Everything is decided
from metadata; weights are read once to solve (the convex solver of the diagonal groups is
:mod:`.gauge_solver`) and then lazily, as in every Network (this module: the transform).
"""


from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field

import numpy as np

from ..errors import InputError
from ..geometry.gauge import GL, NONZERO_DIAG, gl_balance
from .gauge_plan import GaugePlan, gauge_plan, pair_gauge_dependent
from .gauge_solver import _kernel_views, _solve_diagonal
from .network import MatrixInfo, Network

__all__ = ["GaugePlan", "gauge_plan", "balanced_network", "pair_gauge_dependent", "DEFAULT_TOL"]

log = logging.getLogger(__name__)

#: Convergence tolerance of the block-coordinate descent: max per-neuron |¼ log(out/in)|.
DEFAULT_TOL = 1e-13

_SLICE = re.compile(r"^(rows|columns) (\d+):(\d+) of (.+)$")



# -- the transform --------------------------------------------------------------------------


@dataclass
class _Ops:
    """Row/column operators on one base matrix: diagonal factors, then block maps."""

    rows: np.ndarray | None = None
    cols: np.ndarray | None = None
    row_blocks: list = field(default_factory=list)  # (start, G): rows[start:start+d] ← G @ ...
    col_blocks: list = field(default_factory=list)  # (start, H): cols[...] ← ... @ H

    def apply(self, m: np.ndarray) -> np.ndarray:
        m = np.array(m, dtype=np.float64, copy=True)
        if self.rows is not None:
            m *= self.rows[:, None]
        if self.cols is not None:
            m *= self.cols[None, :]
        for s, g in self.row_blocks:
            m[s : s + g.shape[0]] = g @ m[s : s + g.shape[0]]
        for s, h in self.col_blocks:
            m[:, s : s + h.shape[0]] = m[:, s : s + h.shape[0]] @ h
        return m

    def apply_bias(self, b: np.ndarray) -> np.ndarray:
        b = np.array(b, dtype=np.float64, copy=True)
        if self.rows is not None:
            b *= self.rows
        for s, g in self.row_blocks:
            b[s : s + g.shape[0]] = g @ b[s : s + g.shape[0]]
        return b


def balanced_network(network: Network, *, tol: float = DEFAULT_TOL, max_iter: int = 20000) -> Network:
    """``network`` moved to the balanced representative of its symmetry orbit (module docstring).

    Parameters
    ----------
    network : Network
        With ``Pair.symmetry`` set (by the architecture rules, or by the caller for
        :meth:`Network.from_arrays`).
    tol : float
        Stop when every neuron's balancing step |¼ log(out/in)| is ≤ tol (eq. (74)).
    max_iter : int
        Sweeps over all balanced hidden layers; not converging adds a warning.

    Returns
    -------
    Network
        Same names, pairs, attention and metadata; lazily loaded balanced matrices and biases;
        ``name = "<name> [balanced]"``; ``gauge_summary`` (a dict: ``iterations``, ``residual``,
        ``converged``, ``dead``, the counts of balanced layers and ``line``, also logged at INFO)
        says what was balanced and how well; a warning is added only when the solver did not
        converge or neurons were dead.
    """
    if tol <= 0 or max_iter < 1:
        raise InputError("balanced_network: tol must be > 0 and max_iter ≥ 1")
    plan = gauge_plan(network)
    ops: dict[str, _Ops] = {}

    def op(name: str) -> _Ops:
        return ops.setdefault(name, _Ops())

    summary = {"iterations": 0, "residual": 0.0, "converged": True, "dead": 0}
    if plan.spaces:
        u, kern, reader_of, summary = _solve_diagonal(network, plan, tol, max_iter)
        for w, (sym, readers) in plan.spaces.items():
            s = np.exp(u[w])
            if sym == NONZERO_DIAG:
                wm = network.matrix(kern[w][0])
                idx = np.argmax(np.abs(wm), axis=1)
                sign = np.sign(wm[np.arange(wm.shape[0]), idx])
                s = s * np.where(sign == 0, 1.0, sign)
            wv, rv, ksz = kern[w]
            o = op(wv)
            o.rows = s if o.rows is None else o.rows * s
            if rv is not None:
                o = op(rv)
                rep = np.repeat(s, ksz)
                o.rows = rep if o.rows is None else o.rows * rep
            for r in readers:
                rwv, rrv, rk = _kernel_views(network, r)
                o = op(rwv)
                rep = np.repeat(1.0 / s, rk)
                o.cols = rep if o.cols is None else o.cols * rep
                if rrv is not None:
                    o = op(rrv)
                    o.cols = 1.0 / s if o.cols is None else o.cols / s
    for a in plan.heads:
        _plan_heads(network, a, op)
    for a, rotary in plan.qk:
        _plan_qk(network, a, rotary, op)
    infos, loaders, biases = _transformed(network, ops)
    what = f"{len(plan.spaces)} diagonal hidden layers" + (f", {len(plan.heads)} attention layers (GL heads)" if plan.heads else "")
    what += f", {len(plan.qk)} query/key gauges" if plan.qk else ""
    line = f"gauge=balanced: {what}"
    if plan.spaces:
        line += (f"; {summary['iterations']} block-coordinate sweeps (then Newton), "
                 f"max |¼ log(out/in)| = {summary['residual']:.1e} (tol {tol:.0e})")  # fmt: skip
    warnings = list(network.warnings)
    if not summary["converged"]:
        warnings.append(line + ": NOT converged; balanced numbers are approximate")
    if summary["dead"]:
        warnings.append(f"gauge=balanced: {summary['dead']} dead neurons (zero in- or out-weights) left unscaled")
    log.info("%s", line)
    net = Network(
        name=f"{network.name} [balanced]", architecture=network.architecture, matrices=infos, loaders=loaders,
        pairs=list(network.pairs), attention=list(network.attention), biases=biases,
        skipped=list(network.skipped) + [(p, f"gauge: {why}") for p, why in plan.skipped],
        warnings=warnings, fold_norms=network.fold_norms, source=network.source,
    )  # fmt: skip
    net.flags = network.flags
    net.zero_reasons = network.zero_reasons
    net.gauge_summary = {**summary, "line": line, "diagonal_layers": len(plan.spaces),
                         "attention_layers": len(plan.heads), "query_key": len(plan.qk)}  # fmt: skip
    return net


def _resolve(network: Network, name: str) -> tuple[str, int, int]:
    """(base matrix, row offset, column offset) of a head slice (following chains of slices)."""
    r0 = c0 = 0
    while True:
        info = network.matrices[name]
        m = _SLICE.match(info.note or "") if info.derived and info.role != "stacked" else None
        if m is None or info.source_key not in network.matrices:
            return name, r0, c0
        if m.group(1) == "rows":
            r0 += int(m.group(2))
        else:
            c0 += int(m.group(2))
        name = info.source_key


def _plan_heads(network: Network, a, op) -> None:
    """Eq. (73) per kv group of attention layer ``a``: V_g ← G V_g, O_h ← O_h G⁻¹ (h in g)."""
    d = a.head_dim
    v, o = network.matrix(a.v), network.matrix(a.o)
    bv = network.bias(a.v)
    vbase, vr, vc = _resolve(network, a.v)
    obase, orow, ocol = _resolve(network, a.o)
    if vc or orow:
        raise InputError(f"gauge=balanced: cannot place the heads of {a.v} / {a.o} in their weights")
    group = a.heads // a.kv_heads
    for g in range(a.kv_heads):
        vg = v[g * d : (g + 1) * d]
        if bv is not None:
            vg = np.column_stack([vg, bv[g * d : (g + 1) * d]])
        bsum = sum(o[:, h * d : (h + 1) * d].T @ o[:, h * d : (h + 1) * d] for h in range(g * group, (g + 1) * group))
        G = gl_balance(vg @ vg.T, bsum)
        op(vbase).row_blocks.append((vr + g * d, G))
        ginv = np.linalg.inv(G)
        for h in range(g * group, (g + 1) * group):
            op(obase).col_blocks.append((ocol + h * d, ginv))


def _plan_qk(network: Network, a, rotary: bool, op) -> None:
    """Balance the query/key gauge of attention layer ``a`` per kv group g: Q_h ← G Q_h (h in g),
    K_g ← G⁻ᵀ K_g leaves every score (Q_h x + b)ᵀ(K_g y + c) unchanged. Without rotary
    embeddings G is eq. (73)'s geometric mean of A = Σ_h Q̃_hQ̃_hᵀ and B = K̃_gK̃_gᵀ; with them G
    must commute with the position rotations, so only a positive scalar per rotary 2-plane
    (i, i + d/2) is balanced: a⁴ = ‖K̃ plane‖²/‖Q̃ plane‖² (its rotation part is orthogonal on the
    rows and changes no pair)."""
    d = a.head_dim
    q, k = network.matrix(a.q), network.matrix(a.k)
    bq, bk = network.bias(a.q), network.bias(a.k)
    qbase, qr, qc = _resolve(network, a.q)
    kbase, kr, kc = _resolve(network, a.k)
    if qc or kc:
        raise InputError(f"gauge=balanced: cannot place the heads of {a.q} / {a.k} in their weights")
    group = a.heads // a.kv_heads

    def rows(m, b, h):
        x = m[h * d : (h + 1) * d]
        return x if b is None else np.column_stack([x, b[h * d : (h + 1) * d]])

    for g in range(a.kv_heads):
        A = sum(rows(q, bq, h) @ rows(q, bq, h).T for h in range(g * group, (g + 1) * group))
        kg = rows(k, bk, g)
        B = kg @ kg.T
        if rotary:
            half = d // 2
            da, db = np.diag(A), np.diag(B)
            pa, pb = da[:half] + da[half:], db[:half] + db[half:]
            s = np.ones(half)
            ok = (pa > 0) & (pb > 0)
            s[ok] = (pb[ok] / pa[ok]) ** 0.25
            G, Ginv_t = np.diag(np.r_[s, s]), np.diag(1.0 / np.r_[s, s])
        else:
            G = gl_balance(A, B)
            Ginv_t = np.linalg.inv(G).T
        for h in range(g * group, (g + 1) * group):
            op(qbase).row_blocks.append((qr + h * d, G))
        op(kbase).row_blocks.append((kr + g * d, Ginv_t))


def _transformed(network: Network, ops: dict[str, _Ops]):
    """MatrixInfo, loaders and biases of the transformed network (derived views re-derived)."""
    infos: dict[str, MatrixInfo] = {}
    loaders, biases = {}, {}
    cache_key = {}

    def base_loader(name):
        f, o = network.loaders[name], ops[name]
        return lambda: o.apply(f())

    def base_bias(name):
        f = network.biases.get(name)
        if f is None:
            return None
        o = ops[name]
        return lambda: o.apply_bias(np.asarray(f(), dtype=np.float64))

    touched = set(ops)
    for name, info in network.matrices.items():
        base, r0, c0 = _resolve(network, name)
        if name in ops:
            loaders[name], b = base_loader(name), base_bias(name)
            if b is not None:
                biases[name] = b
        elif info.role == "stacked":
            parts = info.source_key.split(" + ")
            if any(_resolve(network, p)[0] in touched for p in parts):
                cache_key[name] = parts
        elif base != name and base in touched:
            cache_key[name] = (base, r0, c0, info.shape)
        if name not in loaders and name not in cache_key:
            loaders[name] = network.loaders[name]
            if name in network.biases:
                biases[name] = network.biases[name]
        infos[name] = info
    for name, spec in cache_key.items():
        if isinstance(spec, list):
            fs = [lambda p=p: _load(loaders, network, cache_key, p) for p in spec]
            loaders[name] = lambda fs=fs: np.vstack([f() for f in fs])
            if all(_bias_loader(biases, network, cache_key, p) is not None for p in spec):
                bl = [_bias_loader(biases, network, cache_key, p) for p in spec]
                biases[name] = lambda bl=bl: np.concatenate([f() for f in bl])
        else:
            base, r0, c0, (nr, nc) = spec
            fb = loaders[base]
            loaders[name] = lambda fb=fb, r0=r0, c0=c0, nr=nr, nc=nc: fb()[r0 : r0 + nr, c0 : c0 + nc]
            if base in biases and c0 == 0 and name in network.biases:
                bb = biases[base]
                biases[name] = lambda bb=bb, r0=r0, nr=nr: bb()[r0 : r0 + nr]
    return infos, loaders, biases


def _load(loaders, network, cache_key, name):
    return loaders[name]()


def _bias_loader(biases, network, cache_key, name):
    return biases.get(name)
