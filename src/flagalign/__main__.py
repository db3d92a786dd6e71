"""``python -m flagalign`` runs the command line (same as the ``flagalign`` script)."""

import sys

from .cli import main

sys.exit(main())
