"""``python -m qr_leaderboard.cli``: the same as ``qr-eval``."""

import sys

from . import main

sys.exit(main())
