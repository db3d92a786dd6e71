"""The seeded controls of the heads analyses (docs/theory.md, eq. (47)).

* :func:`random_init` — the same attention architecture with freshly initialised weights;
* :func:`mixed_heads` — each layer's weights kept, its head blocks re-cut by a random rotation;
* :func:`seeded_rotation` — the seeded Haar rotation both mixed-heads and the composition
  rotation null use.

Random-init: every attention matrix (q, k, v, o of each :class:`AttentionLayer`) is replaced
by a draw from PyTorch's ``nn.Linear`` default initialisation, ``kaiming_uniform_(a=√5)``, i.e.
i.i.d.

    W_ij ~ U(−1/√fan_in, 1/√fan_in),   fan_in = number of columns of the (out, in) matrix

(docs/theory.md, eq. (47)). Matrices are generated lazily and deterministically: matrix ``name``
always comes from ``numpy.random.default_rng([seed, crc32(name)])``, so the control costs no
memory until read and is identical across runs, platforms and reading orders. Only the attention
matrices are included (weights only, no biases, no norms); ``pairs`` is empty.
"""

from __future__ import annotations

import zlib

import numpy as np

from ...geometry.random import haar_orthogonal
from ...models.network import MatrixInfo, Network

__all__ = ["random_init", "mixed_heads", "seeded_rotation", "INIT_DESCRIPTION"]

INIT_DESCRIPTION = "PyTorch nn.Linear default: W ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)), i.i.d."


def _draw(name: str, shape: tuple[int, int], seed: int) -> np.ndarray:
    rng = np.random.default_rng([int(seed), _crc(name)])
    bound = 1.0 / np.sqrt(shape[1])
    return rng.uniform(-bound, bound, size=shape)


def _attention_matrices(network: Network):
    """(name, which, (out, in)) of every distinct q/k/v/o matrix of the network's attention."""
    seen = set()
    for attn in network.attention:
        for which in ("q", "k", "v", "o"):
            name = getattr(attn, which)
            if name in seen:
                continue
            seen.add(name)
            info = network.matrices.get(name)
            shape = tuple(info.shape) if info is not None else network.matrix(name).shape
            yield name, which, (int(shape[0]), int(shape[1]))


def random_init(network: Network, seed: int = 0) -> Network:
    """A Network with the attention matrices of ``network`` re-drawn at random (eq. (47)).

    Parameters
    ----------
    network : Network
        Source of shapes and head structure only; its weights are read solely to learn a matrix
        shape when the metadata lacks it.
    seed : int
        Seed of the initialisation.

    Returns
    -------
    Network
        ``name = "<name> [random-init seed=S]"``, same ``attention`` list, lazily generated
        float64 matrices under the same names.
    """
    infos = {
        name: MatrixInfo(name, shape, "float64", which, f"random-init of {name}", False,
                         INIT_DESCRIPTION)
        for name, which, shape in _attention_matrices(network)
    }
    loaders = {n: (lambda n=n, s=i.shape: _draw(n, s, seed)) for n, i in infos.items()}
    return _control_network(network, "random-init", seed, infos, loaders, fold_norms=False)


def _control_network(network: Network, kind: str, seed: int, infos, loaders, *,
                     fold_norms: bool) -> Network:
    """A control of ``network``: its attention layers over the given matrices, no pairs."""
    return Network(
        name=f"{network.name} [{kind} seed={seed}]",
        architecture=network.architecture,
        matrices=infos,
        loaders=loaders,
        pairs=[],
        attention=list(network.attention),
        fold_norms=fold_norms,
        source=f"{kind}({network.source or network.name}, seed={seed})",
    )


def seeded_rotation(n: int, *key: int) -> np.ndarray:
    """The n×n Haar-random orthogonal matrix drawn from ``numpy.random.default_rng(list(key))``
    (:func:`flagalign.geometry.random.haar_orthogonal`): the same key gives the same rotation on
    every run and platform, whatever else was drawn before."""
    return haar_orthogonal(n, np.random.default_rng([int(x) for x in key]))


def _crc(name: str) -> int:
    return zlib.crc32(name.encode("utf-8"))


def mixed_heads(network: Network, seed: int = 0) -> Network:
    """The *mixed-heads* control: each attention matrix's head blocks are re-cut at random.

    q/k/v matrices W (rows = heads × head_dim) become R W and o matrices become W Rᵀ, with R a
    seeded Haar-random orthogonal matrix of size rows (resp. columns) (docs/theory.md,
    eq. (47)). The layer's total Gram WᵀW (resp. W Wᵀ) — its anisotropy in ℝ^{d_model} — is kept
    exactly, the partition into heads is destroyed. Overlap above this control is head-specific
    structure; overlap above the Haar baseline but not above this control is layer-wide
    anisotropy that every head shares.
    """
    infos: dict[str, MatrixInfo] = {}
    loaders = {}
    for name, which, shape in _attention_matrices(network):
        infos[name] = MatrixInfo(name, shape, "float64", which, f"mixed-heads of {name}", True,
                                 "head blocks re-cut")
        if which == "o":
            loaders[name] = lambda n=name, s=shape: (
                network.matrix(n) @ seeded_rotation(s[1], seed, 104729, _crc(n)).T)
        else:
            loaders[name] = lambda n=name, s=shape: (
                seeded_rotation(s[0], seed, 104729, _crc(n)) @ network.matrix(n))
    return _control_network(network, "mixed-heads", seed, infos, loaders,
                            fold_norms=network.fold_norms)
