"""Shared fixtures. Keep additions small and well-named; several test modules use them."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_world_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A generated world store (3 advertisers x 30 days), made once per test session. Treat it as
    read-only; tests that write use `writable_world_path`."""
    from tools.market.data_model import WorldConfig
    from tools.market.generate import generate_world_file

    out = tmp_path_factory.mktemp("tiny_world") / "world.sqlite"
    generate_world_file(WorldConfig(n_advertisers=3, days=30, seed=11), out)
    return out


@pytest.fixture
def writable_world_path(tiny_world_path: Path, tmp_path: Path) -> Path:
    """A private copy of the tiny world (with its truth file) that a test may write to."""
    for f in tiny_world_path.parent.iterdir():
        if f.is_file():
            shutil.copy2(f, tmp_path / f.name)
    return tmp_path / tiny_world_path.name
