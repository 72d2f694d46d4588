"""``python -m movex_p2p``: the ``movex-p2p`` command line."""

from __future__ import annotations

import sys

from .cli import main

sys.exit(main())
