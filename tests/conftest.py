"""Shared fixtures. Real data lives in ../shared beside the repository (see its README);
tests that need it skip cleanly when it is absent. Set DNATOK_SHARED to use another
folder (a nonexistent path simulates a clone without ../shared). Only tests of real-data
facts need it: logic tests write small synthetic inputs (tests/synthetic.py) themselves."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ["DNATOK_SHARED"]) if os.environ.get("DNATOK_SHARED") else REPO.parent / "shared"


@pytest.fixture(scope="session")
def repo_dir() -> Path:
    return REPO


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not (SHARED / "data").is_dir():
        pytest.skip(f"real data folder {SHARED} is absent")
    return SHARED


@pytest.fixture(scope="session")
def gue_dir(shared_dir) -> Path:
    return shared_dir / "data" / "gue"


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """Tiny models on a 2-core box: one torch thread avoids OpenMP threads waiting on each
    other (several times faster here). Tests that spawn `dnatok` get their own threads."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
