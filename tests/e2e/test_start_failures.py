"""A start that fails is one line naming the cause and exit 2, never a traceback: the real
`pulse serve` subprocess with a busy port, an unusable DATA_DIR, a roster API that refuses."""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.emulators.aloware import AlowareEmulator

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

EXIT_TIMEOUT_SEC = 30.0


def serve_env(home: Path, **more: str) -> dict[str, str]:
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR")
    env = {k: os.environ[k] for k in keep if k in os.environ}
    env.update(
        DATA_DIR=str(home / "data"),
        HOST="127.0.0.1",
        PORT="0",
        ALOWARE_SECRET=secrets.token_hex(16),
        HUBSPOT_CLIENT_SECRET=secrets.token_hex(16),
        ROSTER_AGENTS='["42"]',
        PYTHONUNBUFFERED="1",
    )
    env.update(more)
    return env


async def serve_and_wait(home: Path, env: dict[str, str]) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "pulse.bootstrap.main",
        "serve",
        cwd=home,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), EXIT_TIMEOUT_SEC)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def the_one_line(stderr: str) -> str:
    """The line `pulse serve` printed about the failure; no traceback anywhere."""
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.startswith("pulse: ")]
    assert len(lines) == 1, stderr
    return lines[0]


@pytest.fixture
def busy_port() -> Iterator[int]:
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    try:
        yield holder.getsockname()[1]
    finally:
        holder.close()


async def test_a_busy_port_is_one_line_naming_the_address_and_exit_2(
    tmp_path: Path, busy_port: int
) -> None:
    code, _, err = await serve_and_wait(tmp_path, serve_env(tmp_path, PORT=str(busy_port)))
    assert code == 2
    line = the_one_line(err)
    assert line == (
        f"pulse: cannot start: listening on 127.0.0.1:{busy_port}: the address is already in use"
    )


async def test_a_data_dir_that_is_not_a_writable_folder_is_one_line_and_exit_2(
    tmp_path: Path,
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    data_dir = blocker / "data"
    code, _, err = await serve_and_wait(tmp_path, serve_env(tmp_path, DATA_DIR=str(data_dir)))
    assert code == 2
    line = the_one_line(err)
    assert line.startswith(f"pulse: cannot start: DATA_DIR '{data_dir}' is not a writable folder")
    assert not data_dir.exists()


async def test_a_roster_api_refusing_at_start_is_one_line_and_exit_2(tmp_path: Path) -> None:
    async with AlowareEmulator() as aloware:
        env = serve_env(
            tmp_path,
            ROSTER="aloware",
            ALOWARE_BASE_URL=aloware.base_url,
            ALOWARE_API_TOKEN="a-revoked-" + secrets.token_hex(8),
            RING_GROUP_ID="8465",
        )
        code, out, err = await serve_and_wait(tmp_path, env)
        assert aloware.requests, "the start asked the roster API"
    assert code == 2
    line = the_one_line(err)
    assert line.startswith("pulse: cannot start: the roster: "), line
    assert "401" in line
    assert env["ALOWARE_API_TOKEN"] not in out + err  # the token is never echoed
    assert '"msg": "listening"' not in out + err  # it never listened


async def test_a_crontab_the_scheduler_cannot_read_is_one_line_and_exit_2(tmp_path: Path) -> None:
    # Five fields (the settings check), but no 61st minute: apscheduler refuses it when the
    # scheduler loads, after the port listens; the start still fails as one line.
    env = serve_env(tmp_path, RECONCILE_CRON="61 2 * * *")
    code, out, err = await serve_and_wait(tmp_path, env)
    assert code == 2
    line = the_one_line(err)
    assert line.startswith("pulse: cannot start: the scheduler: "), line
    assert "61" in line
    assert '"msg": "listening"' not in out + err  # "listening" is logged once all has started
