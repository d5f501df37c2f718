"""The text tests' set-up."""

from __future__ import annotations

import sys
from pathlib import Path

# Test modules import helpers from text_util.py (importlib mode does not put test
# directories on sys.path).
sys.path.insert(0, str(Path(__file__).parent))
