"""Raw faiss exact search (``IndexFlatIP``): the exact baseline (see faiss_hnsw.py)."""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import main  # noqa: E402
from faiss_hnsw import FaissFlat  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(FaissFlat()))
