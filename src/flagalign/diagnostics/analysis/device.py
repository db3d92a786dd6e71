"""``analyze(device=...)``: matrix factors and pair products with ``torch.linalg`` on a CUDA GPU
(``"cuda"``) or, to validate that code path, on the CPU (``"torch"``, the CLI's ``cpu-torch``).

* **Factors** (eqs. (3), (13)): the smaller Gram G = WᵀW (or WWᵀ) and its eigendecomposition
  (``torch.linalg.eigh``) when eq. (3)'s tolerance is resolvable from a Gram at the compute
  precision (rtol² ≥ 100·max(shape)·ε_c: bf16/fp16/fp8/quantized weights in float64), else the thin
  SVD (``torch.linalg.svd``). The result is a full spectrum, so the numerical rank is counted from
  it and lost_dims needs no further factorisation of W.
* **Pair products** (eqs. (10)–(12), (50)): A = WWᵀ, B = W'ᵀW', C = AB on the device;
  ‖C − Cᵀ‖_F/(‖A‖‖B‖), D = B − W̃W̃ᵀ, its diagonal and off-diagonal norms, the four moments of the
  null, and σ(W'U_r) for lost_dims. A narrow pair (i + [b] + o ≤ QR_RATIO·n) stays on the CPU
  QR route (nothing n×n anywhere).
* Angles, overlap and the flag table (k×k) come from the top-k vectors on the CPU, through the
  one assembler's constructor.

``precision="float32"`` computes in float32; eq. (3)'s tolerances are then raised to at least
max(shape)·ε₃₂ (a float32 SVD cannot resolve more), which changes nothing for 16-bit weights.
Measured error against the numpy float64 path: docs/benchmarks.md (GPU section).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ...errors import InputError
from ...geometry import rank_from_singular_values
from ...geometry.factored import QR_RATIO
from ...geometry.imbalance import Imbalance
from ...geometry.lost import basis_error
from ...geometry.nulls import commutator_null_rms_from_moments
from ...geometry.svd import TopSubspaces
from .measure import choose_k
from .store import truncate

__all__ = ["Device", "resolve_device", "DEVICES", "PRECISIONS"]

DEVICES = ("cpu", "cpu-torch", "torch", "cuda")
PRECISIONS = ("float64", "float32")


@dataclass(frozen=True)
class Device:
    """A torch device and compute dtype for :func:`factors` and :func:`pair`."""

    name: str  # "cuda" or "torch" (CPU)
    precision: str  # "float64" or "float32"

    @property
    def torch(self):
        import torch  # deferred: optional dependency

        return torch

    @property
    def dev(self):
        return self.torch.device("cuda" if self.name == "cuda" else "cpu")

    @property
    def dtype(self):
        return self.torch.float64 if self.precision == "float64" else self.torch.float32

    @property
    def eps(self) -> float:
        return float(np.finfo(np.float64 if self.precision == "float64" else np.float32).eps)

    def t(self, a):
        return self.torch.as_tensor(np.ascontiguousarray(a), device=self.dev).to(self.dtype)

    def align(self, task, W, Wn, left, right, *, k_user=None, bias=None):
        """:func:`pair` on this device (called by :func:`~.measure.align_task`)."""
        return pair(self, task, W, Wn, left, right, k_user=k_user, bias=bias)

    def rtol(self, rtol: float, shape) -> float:
        """eq. (3)'s tolerance, at least what the compute precision resolves."""
        if self.precision == "float64":
            return float(rtol)
        return max(float(rtol), float(max(shape)) * self.eps)


def resolve_device(device, precision: str = "float64") -> Device | None:
    """None for the numpy path (``device`` None/``"cpu"``/``"numpy"``), else a :class:`Device`.

    Raises
    ------
    InputError
        An unknown device or precision, torch not installed, or ``cuda`` without a usable GPU.
    """
    if precision not in PRECISIONS:
        raise InputError(f"precision={precision!r}: choose from {', '.join(PRECISIONS)}")
    if device in (None, "cpu", "numpy"):
        if precision != "float64":
            raise InputError("--precision float32 needs --device cuda or cpu-torch (the numpy "
                             "path computes in float64)")
        return None
    if device not in DEVICES:
        raise InputError(f"device={device!r}: choose from {', '.join(DEVICES)}")
    try:
        import torch
    except ImportError:
        raise InputError(f"--device {device} needs torch: pip install 'flagalign[torch]'") from None
    if device == "cuda":
        if not torch.cuda.is_available():
            raise InputError(
                f"--device cuda: CUDA is not available (torch {torch.__version__}, "
                f"{'built without CUDA' if torch.version.cuda is None else 'no visible GPU'}); "
                "use --device cpu")
        return Device("cuda", precision)
    return Device("torch", precision)


def _np(x) -> np.ndarray:
    return x.detach().to("cpu").double().numpy()


def factors(d: Device, task, w: np.ndarray):
    """Full-spectrum factors of one matrix on the device (a :class:`TopSubspaces` in numpy
    float64; U and V hold every singular vector with σ > 0 at the tolerance)."""
    torch = d.torch
    m, n = w.shape
    rtol = d.rtol(task.rtol, w.shape)
    x = d.t(w)
    if rtol * rtol >= 100.0 * max(m, n) * d.eps:  # eq. (3) resolvable from the Gram
        small_in = n <= m
        g = x.T @ x if small_in else x @ x.T
        lam, vec = torch.linalg.eigh(g)
        lam, vec = torch.flip(lam, (0,)), torch.flip(vec, (1,))
        s = torch.sqrt(torch.clamp(lam, min=0.0))
        s_np = _np(s)
        r = rank_from_singular_values(s_np, rtol) if s_np[0] > 0 else 0
        other = (x @ vec[:, :r]) / s[:r] if small_in else (x.T @ vec[:, :r]) / s[:r]
        # the vectors past the rank are not singular vectors of W: keep the rank's
        u, v = (other, vec[:, :r]) if small_in else (vec[:, :r], other)
        del g, x
        return TopSubspaces(_orth(d, u), s_np, _orth(d, v), "exact")
    u, s, vh = torch.linalg.svd(x, full_matrices=False)
    return TopSubspaces(_orth(d, u), _np(s), _orth(d, vh.T), "exact")


def _orth(d: Device, q) -> np.ndarray:
    """float64 numpy columns; in float32 re-orthonormalised by a float64 QR on the device (the
    nested spans of the leading columns, i.e. the flag, are kept; signs follow the input)."""
    if d.precision == "float64" or q.shape[1] == 0:
        return _np(q)
    torch = d.torch
    q64 = q.to(torch.float64)
    qq, rr = torch.linalg.qr(q64)
    sgn = torch.sign(torch.diagonal(rr))
    sgn[sgn == 0] = 1.0
    return _np(qq * sgn)


def pair(d: Device, task, W, Wn, left, right, *, k_user=None, bias=None):
    """The :class:`~flagalign.geometry.pair.PairAlignment` of one planned pair with its products
    on the device, or ``(None, status)`` (as :func:`~.measure.align_task`)."""
    from ...geometry.angles import _angles_from, _cos_sin_orthonormal, overlap_baseline
    from ...geometry.flags import flag_table
    from ...geometry.pair import PairAlignment, assemble_pair

    p = task.pair
    n = int(p.dim)
    if W.shape[0] != n or Wn.shape[1] != n:
        return None, f"shape mismatch {W.shape} -> {Wn.shape} (dim {n})"
    rtol_w, rtol_n = d.rtol(task.rtols[0], W.shape), d.rtol(task.rtols[1], Wn.shape)
    rw = rank_from_singular_values(left.s, rtol_w) if left.s.size and left.s[0] > 0 else 0
    rn = rank_from_singular_values(right.s, rtol_n) if right.s.size and right.s[0] > 0 else 0
    kk = choose_k(k_user, n, rw, rn)
    if kk == 0:
        return None, "rank 0 (zero map)"
    nb = 0 if bias is None else 1
    if W.shape[1] + nb + Wn.shape[0] <= QR_RATIO * n:  # narrow: the CPU QR route is O(n·r)
        return assemble_pair(W, Wn, left, truncate(right, kk), k=kk, tol=task.tol, rtol_w=rtol_w,
                             rtol_n=rtol_n, bias=bias, rank_next=rn), None
    u, v = left.U[:, :kk], right.V[:, :kk]
    cos, sin = _cos_sin_orthonormal(u, v)
    overlap = float(np.sum(cos**2) / kk)
    baseline = overlap_baseline(kk, kk, n)
    torch = d.torch
    w, wn = d.t(W), d.t(Wn)
    a = w @ w.T
    b = wn.T @ wn
    na, nbn = float(torch.linalg.norm(a)), float(torch.linalg.norm(b))
    if na == 0.0 or nbn == 0.0:
        comm = 0.0
    else:
        c = a @ b
        comm = float(torch.linalg.norm(c - c.T)) / (na * nbn)
        del c
    null = commutator_null_rms_from_moments(float(torch.trace(a)), na * na, float(torch.trace(b)),
                                            nbn * nbn, n)
    if bias is not None:
        bt = d.t(bias)
        a = a + torch.outer(bt, bt)
    dd = b - a
    full = float(torch.linalg.norm(dd))
    diag = float(torch.linalg.norm(torch.diagonal(dd)))
    dd.fill_diagonal_(0.0)
    off = float(torch.linalg.norm(dd))
    denom = float(torch.linalg.norm(a)) + nbn
    del dd, a, b
    imb = Imbalance(full=full, diag=diag, offdiag=off,
                    relative=full / denom if denom > 0 else math.nan)
    lost = _lost(d, W, wn, left, right, rtol_n, rw, n)
    return PairAlignment(n=n, k=kk, method="exact", angles=_angles_from(cos, sin),
                         overlap=overlap, baseline=baseline, overlap_ratio=overlap / baseline,
                         intersection_dim=int(np.count_nonzero(sin <= task.tol)),
                         flag_table=flag_table(u, v), commutator=comm, imbalance=imb,
                         lost_dims=int(lost), tol=float(task.tol), commutator_null=null), None


def _lost(d: Device, W, wn, left, right, rtol_n, r, n) -> int:
    """eq. (12) from the full-spectrum factors: r − #{σ(W'U_r) > τ}, τ with the basis error."""
    if r == 0:
        return 0
    s_next0 = float(right.s[0]) if right.s.size else 0.0
    if s_next0 == 0.0:
        return r
    if r == n:  # U_r square orthogonal: σ(W'U_r) = σ(W')
        return int(r - rank_from_singular_values(right.s, rtol_n, s_next0))
    tol = rtol_n + basis_error(W.shape, left.s[0], left.s[r - 1])
    if d.precision == "float32":
        tol = max(tol, float(max(W.shape)) * d.eps * float(left.s[0]) / float(left.s[r - 1]))
    sv = _np(d.torch.linalg.svdvals(wn @ d.t(left.U[:, :r])))
    return int(r - rank_from_singular_values(sv, tol, s_next0))
