"""The demo database, built once per test session for the analyst-access and docs tests.

`chipwatch demo` runs the real pipeline (loopback feeds, the spaCy model, a briefing of 2024-W30)
in about six seconds; test_access.py and test_docs.py share one copy and only read it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.demo import run_demo

_BUILT: dict[str, Path] = {}


def demo_directory(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with config.toml and chipwatch.db: sample news of ISO weeks 2024-W29 and W30."""
    if "demo" not in _BUILT:
        directory = tmp_path_factory.mktemp("access_demo") / "demo"
        run_demo(directory)
        _BUILT["demo"] = directory
    return _BUILT["demo"]
