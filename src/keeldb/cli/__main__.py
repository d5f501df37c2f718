"""``python -m keeldb.cli``: the same as the ``keeldb`` console script."""

import sys

from keeldb.cli import main

sys.exit(main())
