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

Which hidden layers are balanced (:func:`gauge_plan`): a pair's hidden layer is balanced when it
is not a residual stream (a stream is shared with skip connections that are not pairs), its
symmetry is diagonal, its writer is not the gate of a gated MLP, and no other pair with the same
writer or reader makes the layer's group smaller. Everything is decided from metadata; weights
are read once to solve and then lazily, as in every Network.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field

import numpy as np

from ..errors import InputError
from ..geometry.gauge import (
    DIAGONAL_GROUPS, GL, NONZERO_DIAG, ORTHOGONAL_GROUPS, angles_gauge_dependent, gl_balance,
)  # fmt: skip
from .network import MatrixInfo, Network, Pair

__all__ = ["GaugePlan", "gauge_plan", "balanced_network", "pair_gauge_dependent", "DEFAULT_TOL"]

log = logging.getLogger(__name__)

#: Convergence tolerance of the block-coordinate descent: max per-neuron |¼ log(out/in)|.
DEFAULT_TOL = 1e-13

_SLICE = re.compile(r"^(rows|columns) (\d+):(\d+) of (.+)$")


@dataclass
class GaugePlan:
    """What :func:`balanced_network` balances (metadata only).

    Attributes
    ----------
    spaces : dict[str, tuple[str, list[str]]]
        {writer: (symmetry, readers)}: diagonal hidden layers balanced jointly.
    heads : list
        (AttentionLayer) whose value → output heads are balanced by eq. (73).
    qk : list
        (AttentionLayer, rotary) whose query/key gauge is balanced: GL(d_head) by eq. (73)
        without rotary embeddings; per rotary 2-plane positive scalings with them.
    skipped : list[tuple[str, str]]
        (pair name, why its hidden layer is not balanced).
    """

    spaces: dict = field(default_factory=dict)
    heads: list = field(default_factory=list)
    qk: list = field(default_factory=list)
    skipped: list = field(default_factory=list)

    def balanced(self, pair: Pair) -> bool:
        """True when ``pair``'s own hidden layer is moved to its balanced point."""
        if pair.kind == "ov" and pair.symmetry == GL:
            return any(_part_of(pair.right, a.o) or _part_of(pair.left, a.v) for a in self.heads)
        return pair.left in self.spaces and pair.right in self.spaces[pair.left][1]


def _part_of(name: str, base: str) -> bool:
    """``name`` is ``base`` or a slice of it (``base[...]``)."""
    return name == base or name.startswith(base + "[")


def gauge_plan(network: Network) -> GaugePlan:
    """The hidden layers :func:`balanced_network` balances, and why the others are not."""
    plan = GaugePlan()
    by_left: dict[str, list[Pair]] = {}
    by_right: dict[str, list[Pair]] = {}
    for p in network.pairs:
        by_left.setdefault(p.left, []).append(p)
        by_right.setdefault(p.right, []).append(p)
    for p in network.pairs:
        if p.symmetry not in DIAGONAL_GROUPS:
            if p.symmetry not in ORTHOGONAL_GROUPS and not (p.kind == "ov" and p.symmetry == GL):
                plan.skipped.append((p.name, f"symmetry {p.symmetry}: not balanced"))
            continue
        why = None
        if p.kind == "residual":
            why = "residual stream (shared with skip connections): not balanced"
        elif network.matrices[p.left].role == "gate":
            why = "gate of a gated MLP: its rows are not rescaled (the up branch is)"
        elif any(q.symmetry != p.symmetry or q.kind == "residual" for q in by_left[p.left]):
            why = "the writer also feeds a pair of another symmetry"
        if why is None:
            others = [q for r in (x.right for x in by_left[p.left]) for q in by_right[r]]
            scaled = {q.left for q in others if q.symmetry in DIAGONAL_GROUPS
                      and network.matrices[q.left].role != "gate"}  # fmt: skip
            if len(scaled) > 1:
                why = "the reader also reads another rescaled writer"
        if why is not None:
            plan.skipped.append((p.name, why))
            continue
        plan.spaces.setdefault(p.left, (p.symmetry, []))[1].append(p.right)
    ov = {(p.left, p.right) for p in network.pairs if p.kind == "ov" and p.symmetry == GL}
    for a in network.attention:
        if any(r.startswith(a.o + "[") or r == a.o for _, r in ov) and a.v in network.matrices:
            plan.heads.append(a)
        rotary = _QK_GROUP.get(network.architecture)
        if rotary is not None and a.q in network.matrices and a.k in network.matrices:
            plan.qk.append((a, rotary))
    return plan


# query/key gauge per family: full GL(d_head) with absolute positions, per-2-plane scalings with
# rotary embeddings (HF rotate_half layout: dims i and i + d/2 form a plane); other graphs
# (traced attention) are not balanced: the positional scheme is not known
_QK_GROUP = {"gpt2": False, "bert": False, "llama": True}


def pair_gauge_dependent(network: Network, pair: Pair, gauge: str | None, plan: GaugePlan | None = None) -> bool:
    """Whether ``pair``'s angles, overlap, intersection_dim and commutator depend on a choice of
    representative of the network's symmetry orbit in this gauge (eq. (75)).

    Three groups move the pair's subspaces: its own hidden layer's; the one of the hidden layer
    W *reads* (it acts on W's columns, so on W's left singular vectors); the one of the hidden
    layer W_next *writes* (on W_next's rows). The pair is gauge-dependent when one of them has
    non-orthogonal elements that the gauge does not fix: with the stored weights, every such
    group; balanced, the GL(n) of the pair itself (only its invariants are reported), residual
    streams and other layers :func:`gauge_plan` does not balance, and attention's query/key
    gauge (never balanced) for the matrix that reads the stream with Q and K.
    """
    balanced = gauge == "balanced"
    if balanced and plan is None:
        plan = gauge_plan(network)

    def fixed(q: Pair) -> bool:  # is q's hidden layer canonical in this gauge?
        if q.symmetry in ORTHOGONAL_GROUPS:
            return True
        if not balanced or q.symmetry not in DIAGONAL_GROUPS | {GL}:
            return False
        if q.symmetry == GL:
            return q.kind == "ov" and plan.balanced(q)
        return any(plan.balanced(x) for x in network.pairs if x.right == q.right)

    if pair.symmetry == GL or not fixed(pair):
        return True
    qk_fixed = {id(a) for a, _ in plan.qk} if balanced else set()
    for a in network.attention:  # the query/key gauge acts on the rows of Q and K
        if id(a) in qk_fixed:
            continue
        if _same_layer(network, a.q, pair.right) or _same_layer(network, a.k, pair.right):
            return True
    for q in network.pairs:
        if q is pair:
            continue
        reads = _same_layer(network, q.right, pair.left)  # q's layer acts on W's columns
        writes = _same_layer(network, q.left, pair.right) and network.matrices[q.left].role != "gate"
        if (reads or writes) and not fixed(q):
            return True
    return False


def _same_layer(network: Network, a: str, b: str) -> bool:
    """a and b are views of one weight (same source key, or one a slice/stack part of the other)."""
    if a == b:
        return True
    ia, ib = network.matrices.get(a), network.matrices.get(b)
    if ia is None or ib is None:
        return False
    ka, kb = set(ia.source_key.split(" + ")) | {a}, set(ib.source_key.split(" + ")) | {b}
    return bool(ka & kb)


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


def _kernel_views(network: Network, name: str) -> tuple[str, str | None, int]:
    """(writer view, reader view or None, kernel size) of the weight ``name`` belongs to."""
    info = network.matrices[name]
    key = info.source_key or name
    views = [n for n, i in network.matrices.items() if (i.source_key or n) == key and i.role in ("conv", "conv_in")]
    writer = next((n for n in views if network.matrices[n].role == "conv"), name)
    reader = next((n for n in views if network.matrices[n].role == "conv_in"), None)
    if reader is None:
        return writer, None, 1
    return writer, reader, network.matrices[writer].shape[1] // network.matrices[reader].shape[1]


def _channel_energy(network: Network, writer: str, ksz: int) -> np.ndarray:
    """E[k, c] = Σ_r W[k, c·ksz + r]² of the writer view (channel-level squared weights)."""
    w = network.matrix(writer)
    return (w * w).reshape(w.shape[0], -1, ksz).sum(axis=2)


def _solve_diagonal(network: Network, plan: GaugePlan, tol: float, max_iter: int):
    """Per-space log-scalings u (block-coordinate descent, module docstring) and the summary."""
    spaces = plan.spaces
    kern = {}  # weight writer view -> (reader view, ksz)
    for w in spaces:
        kern[w] = _kernel_views(network, w)
    reader_of = {}  # reader matrix -> (writer view of its weight, ksz, space)
    for w, (_, readers) in spaces.items():
        for r in readers:
            wv, _, ksz = _kernel_views(network, r)
            reader_of[r] = (wv, ksz, w)
    # channel-level squared weights of every weight touching a balanced space
    energy = {}
    for w in spaces:
        energy[kern[w][0]] = _channel_energy(network, kern[w][0], kern[w][2])
    for r, (wv, ksz, _) in reader_of.items():
        if wv not in energy:
            energy[wv] = _channel_energy(network, wv, ksz)
    bias_sq = {w: (lambda b: np.zeros(energy[kern[w][0]].shape[0]) if b is None else b * b)(network.bias(w))
               for w in spaces}  # fmt: skip
    u = {w: np.zeros(energy[kern[w][0]].shape[0]) for w in spaces}
    in_space = {reader_of[r][0]: reader_of[r][2] for r in reader_of}  # weight -> space it reads
    out_space = {kern[w][0]: w for w in spaces}  # weight -> space it writes

    def u_out(weight):
        s = out_space.get(weight)
        return None if s is None else u[s]

    def u_in(weight):
        s = in_space.get(weight)
        return None if s is None else u[s]

    def in_out(w):
        wv = kern[w][0]
        e = energy[wv]
        ui = u_in(wv)
        a = (e if ui is None else e * np.exp(-2.0 * ui)[None, :]).sum(axis=1) * np.exp(2.0 * u[w])
        a = a + bias_sq[w] * np.exp(2.0 * u[w])
        c = np.zeros_like(a)
        for r in spaces[w][1]:
            rv = reader_of[r][0]
            e = energy[rv]
            uo = u_out(rv)
            c += (e if uo is None else e * np.exp(2.0 * uo)[:, None]).sum(axis=0)
        return a, c * np.exp(-2.0 * u[w])

    it, resid, dead = 0, 0.0, 0
    for it in range(1, max_iter + 1):
        resid = 0.0
        for w in spaces:
            a, c = in_out(w)
            ok = (a > 0) & (c > 0)
            step = np.zeros_like(a)
            step[ok] = 0.25 * np.log(c[ok] / a[ok])
            u[w] = u[w] + step
            resid = max(resid, float(np.max(np.abs(step), initial=0.0)))
        if resid <= tol:
            break
        if resid <= _NEWTON_FROM and _newton(u, spaces, energy, out_space, in_space, bias_sq, kern, tol):
            resid = max(float(np.max(np.abs(0.25 * np.log(c[(a > 0) & (c > 0)] / a[(a > 0) & (c > 0)])),
                                     initial=0.0)) for a, c in (in_out(w) for w in spaces))  # fmt: skip
            if resid <= tol:
                break
    for w in spaces:
        a, c = in_out(w)
        dead += int(np.count_nonzero(~((a > 0) & (c > 0))))
    return u, kern, reader_of, {"iterations": it, "residual": resid, "converged": resid <= tol, "dead": dead}


#: Block-coordinate descent hands over to Newton's method once every step is below this.
_NEWTON_FROM = 1e-2


def _newton(u, spaces, energy, out_space, in_space, bias_sq, kern, tol, max_steps: int = 50) -> bool:
    """Newton's method with backtracking on f of eq. (74) in all log-scalings at once (a sparse
    weighted-Laplacian Hessian; dead neurons held fixed). Updates ``u`` in place; False if the
    linear algebra fails (the caller keeps sweeping)."""
    import scipy.sparse as sp
    import scipy.sparse.linalg as spla

    names = list(spaces)
    off = {}
    n = 0
    for w in names:
        off[w] = n
        n += u[w].size
    terms = [(e, out_space.get(wv), in_space.get(wv)) for wv, e in energy.items()]

    def evaluate(x, hess: bool):
        f, g, d = 0.0, np.zeros(n), np.zeros(n)
        rows, cols, vals = [], [], []
        ins, outs = np.zeros(n), np.zeros(n)
        for e, so, si in terms:
            xo = x[off[so] : off[so] + e.shape[0]] if so else 0.0
            yi = x[off[si] : off[si] + e.shape[1]] if si else 0.0
            t = e * np.exp(2.0 * (np.asarray(xo)[..., None] - np.asarray(yi)))
            f += float(t.sum())
            if so:
                rs = t.sum(axis=1)
                g[off[so] : off[so] + rs.size] += 2 * rs
                d[off[so] : off[so] + rs.size] += 4 * rs
                ins[off[so] : off[so] + rs.size] += rs
            if si:
                cs = t.sum(axis=0)
                g[off[si] : off[si] + cs.size] -= 2 * cs
                d[off[si] : off[si] + cs.size] += 4 * cs
                outs[off[si] : off[si] + cs.size] += cs
            if hess and so and si:
                k, c = np.nonzero(t)
                rows += [off[so] + k, off[si] + c]
                cols += [off[si] + c, off[so] + k]
                vals += [-4 * t[k, c], -4 * t[k, c]]
        for w in names:
            t = bias_sq[w] * np.exp(2.0 * x[off[w] : off[w] + u[w].size])
            f += float(t.sum())
            g[off[w] : off[w] + t.size] += 2 * t
            d[off[w] : off[w] + t.size] += 4 * t
            ins[off[w] : off[w] + t.size] += t
        h = None
        if hess:
            rows.append(np.arange(n))
            cols.append(np.arange(n))
            vals.append(d)
            h = sp.csc_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n))
        return f, g, h, ins, outs

    x = np.concatenate([u[w] for w in names])
    f, g, h, ins, outs = evaluate(x, True)
    live = np.flatnonzero((ins > 0) & (outs > 0))
    for _ in range(max_steps):
        try:
            step = np.zeros(n)
            step[live] = -spla.spsolve(h[live][:, live], g[live])
        except Exception:  # noqa: BLE001 - singular or failed factorisation: keep sweeping
            return False
        if not np.all(np.isfinite(step)):
            return False
        t, slope = 1.0, float(g @ step)
        while t > 1e-8:
            f2, g2, h2, ins2, outs2 = evaluate(x + t * step, True)
            if f2 <= f + 1e-4 * t * slope:
                break
            t /= 2
        else:
            return False
        x, f, g, h, ins, outs = x + t * step, f2, g2, h2, ins2, outs2
        if np.max(np.abs(0.25 * np.log(outs[live] / ins[live])), initial=0.0) <= tol:
            break
    for w in names:
        u[w] = x[off[w] : off[w] + u[w].size]
    return True


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
