"""Files only their owner can read: `.env` (both webhook secrets), DATA_DIR and the SQLite files
(raw webhook bodies hold lead phone numbers), whatever the umask."""

from __future__ import annotations

import asyncio
import os
import shutil
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from pulse.adapters_out.sqlite.db import Database
from pulse.bootstrap.main import check_data_dir
from pulse.bootstrap.settings import load_settings
from tests.support.cli import ROOT


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(autouse=True)
def _permissive_umask() -> Iterator[None]:
    old = os.umask(0o022)  # the common default, under which files come out 0644
    yield
    os.umask(old)


def test_a_database_its_folder_and_its_wal_files_are_private(tmp_path: Path) -> None:
    path = tmp_path / "data" / "inbox.sqlite"
    db = Database(path, "CREATE TABLE t (x); INSERT INTO t VALUES (1);")
    try:
        assert mode(path.parent) == 0o700
        for name in ("inbox.sqlite", "inbox.sqlite-wal", "inbox.sqlite-shm"):
            assert mode(path.parent / name) == 0o600, name
    finally:
        asyncio.run(db.close())


def test_an_existing_database_left_readable_by_others_is_made_private(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    path.touch(mode=0o644)
    db = Database(path)
    try:
        assert mode(path) == 0o600
    finally:
        asyncio.run(db.close())


def test_the_data_dir_pulse_creates_is_private(tmp_path: Path) -> None:
    settings = load_settings(
        aloware_auth="none", hubspot_auth="none", data_dir=tmp_path / "deep" / "data"
    )
    check_data_dir(settings)
    assert mode(tmp_path / "deep" / "data") == 0o700


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_writes_env_readable_by_its_owner_only(tmp_path: Path) -> None:
    venv = ROOT / ".venv"
    subprocess.run(
        ["make", "-s", "-f", str(ROOT / "Makefile"), f"VENV={venv}", ".env"],
        cwd=tmp_path,
        check=True,
        capture_output=True,
    )
    written = tmp_path / ".env"
    assert mode(written) == 0o600
    assert written.read_text().startswith("ALOWARE_SECRET=")
    assert "HUBSPOT_CLIENT_SECRET=" in written.read_text()
