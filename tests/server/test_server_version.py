"""The version string lives in keeldb/_version.py only; everything else reads it there."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import keeldb
from keeldb import _version

SRC = Path(keeldb.__file__).parent
PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def test_the_package_and_pyproject_read_the_one_version() -> None:
    assert keeldb.__version__ == _version.__version__
    project = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))
    assert "version" not in project["project"]
    assert "version" in project["project"]["dynamic"]
    dynamic = project["tool"]["setuptools"]["dynamic"]["version"]
    assert dynamic == {"attr": "keeldb._version.__version__"}


def test_no_other_module_spells_the_version() -> None:
    pattern = re.compile(r"__version__\s*=|" + re.escape(_version.__version__))
    spelled = [
        str(p.relative_to(SRC))
        for p in SRC.rglob("*.py")
        if p.name != "_version.py" and pattern.search(p.read_text(encoding="utf-8"))
    ]
    assert spelled == []


def test_health_and_openapi_report_the_version(api: Any) -> None:
    assert api.get("/healthz").json() == {"status": "ok", "version": keeldb.__version__}
    assert api.get("/openapi.json").json()["info"]["version"] == keeldb.__version__
