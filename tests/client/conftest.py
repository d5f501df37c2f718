"""Test modules here import helpers from this directory (pytest runs in importlib mode,
which does not put test directories on sys.path): ``wordhash_embedding``, the test
embedding function a server process also imports (``--embeddings-module``)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
