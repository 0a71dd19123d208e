"""`pulse` commands as an operator runs them: a subprocess in a folder of the test's own, with a
clean environment (nothing of the CI machine's leaks in) and generated webhook secrets."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def clean_env(**extra: str) -> dict[str, str]:
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "SYSTEMROOT")
    env = {k: os.environ[k] for k in keep if k in os.environ}
    env["PYTHONPATH"] = str(ROOT)  # the code under test, wherever the command runs from
    env.update(extra)
    return env


def webhook_secrets() -> dict[str, str]:
    return {
        "ALOWARE_SECRET": secrets.token_urlsafe(24),
        "HUBSPOT_CLIENT_SECRET": secrets.token_urlsafe(24),
    }


def write_env_file(path: Path, values: Mapping[str, str]) -> Path:
    path.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    return path


def pulse(
    args: Sequence[str], cwd: Path, env: Mapping[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pulse.bootstrap.launch", *args],
        cwd=cwd,
        env=dict(env) if env is not None else clean_env(),
        capture_output=True,
        text=True,
        encoding="utf-8",
        errors="replace",
        timeout=timeout,
    )
