"""The convex solver of the balanced gauge for the diagonal groups (docs/theory.md §7, eq. (74)).

Minimises Σ_layers ‖W_l‖²_F (biases included) over per-neuron log-scalings u: exact
block-coordinate descent (u_i ← u_i + ¼ log(out_i/in_i), eq. (74)), then Newton's method with
backtracking on all log-scalings at once (sparse Laplacian Hessian) once every step is below
1e-2, until max_i |¼ log(out_i/in_i)| ≤ tol. Used by
:func:`flagalign.models.gauge.balanced_network`.
"""

from __future__ import annotations

import logging

import numpy as np

from .gauge_plan import GaugePlan
from .network import Network

__all__: list[str] = []

#: The logger of :mod:`flagalign.models.gauge` (the solver's messages kept their source).
log = logging.getLogger(__package__ + ".gauge")


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
