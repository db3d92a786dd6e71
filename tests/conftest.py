"""Shared test configuration: deterministic hypothesis profile, Agg backend, one BLAS thread."""

import os

os.environ.setdefault("MPLBACKEND", "Agg")

from hypothesis import HealthCheck, settings  # noqa: E402

settings.register_profile(
    "flagalign",
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("flagalign")

# One torch thread: on a shared 2-core machine torch's default intra-op pool makes tiny training
# loops ~17x slower (measured: 400 steps 9.9 s vs 0.58 s).
try:  # torch is an optional extra; the core suite runs without it
    import torch  # noqa: E402

    torch.set_num_threads(1)
except ImportError:  # pragma: no cover
    pass
