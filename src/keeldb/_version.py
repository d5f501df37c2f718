"""The package version, written in this one place.

``pyproject.toml`` reads it from here (``[tool.setuptools.dynamic]``); ``keeldb.__version__``,
the CLI's ``--version``, the server's ``/healthz`` and its OpenAPI ``info.version`` all
import it. Standard library only: importing it loads nothing else.
"""

__version__ = "0.1.0"
