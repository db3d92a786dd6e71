"""``flagalign.collapse``: Neural Collapse and the Level-1/2/3 hierarchy (docs/theory.md, §3).

Re-exports :mod:`flagalign.diagnostics.collapse`.
"""

from .diagnostics.collapse import *  # noqa: F401,F403
from .diagnostics.collapse import __all__  # noqa: F401
