"""`pulse serve` on the embedded defaults loads only what it runs (its cold start, issue 15):
the adapters of other configurations, httpx and the admin routes load when they are built."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pulse.bootstrap.container import DEFERRED, imported

# Loaded by configurations other than the embedded defaults (or by the admin API and console,
# off without ADMIN_HMAC_SECRET, or by a command other than serve); each a prefix.
NOT_LOADED = (
    "httpx",
    "pulse.adapters_in.aws_lambda",
    "pulse.adapters_in.http.admin",
    "pulse.adapters_in.http.console",
    "pulse.adapters_out.alerts.webhook",
    "pulse.adapters_out.aloware",
    "pulse.adapters_out.aws_client",
    "pulse.adapters_out.aws_infra",
    "pulse.adapters_out.dynamodb",
    "pulse.adapters_out.entra",
    "pulse.adapters_out.fabric",
    "pulse.adapters_out.hubspot",
    "pulse.adapters_out.powerbi",
    "pulse.adapters_out.push",
    "pulse.adapters_out.secrets.aws",
    "pulse.adapters_out.sqs",
)

# What `pulse serve` does before it listens: parse, load settings, build the daemon.
SERVE = """
import asyncio, inspect, sys
from pulse.bootstrap import main
from pulse.bootstrap.container import Container
from pulse.bootstrap.settings import load_settings, unknown_settings

async def build():
    container = Container(settings=load_settings())
    daemon = container.daemon()
    if inspect.isawaitable(daemon):
        await daemon
    closing = container.shutdown_resources()
    if closing is not None:
        await closing

main.cli.build_parser().parse_args(["serve"])
unknown_settings(None, {})
asyncio.run(build())
loaded = (m for m, module in sys.modules.items() if module is not None)  # None: a failed try
print(" ".join(sorted(m for m in loaded if m.startswith(tuple(sys.argv[1:])))))
"""


@pytest.mark.slow
def test_serve_on_the_embedded_defaults_loads_no_other_configurations_modules(
    tmp_path: Path,
) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")},
        "DATA_DIR": str(tmp_path / "data"),
        "ALOWARE_AUTH": "none",
        "HUBSPOT_AUTH": "none",
        "ROSTER_AGENTS": "42",
    }
    out = subprocess.run(
        [sys.executable, "-c", SERVE, *NOT_LOADED],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.split() == []


@pytest.mark.parametrize("target", DEFERRED)
def test_every_deferred_adapter_can_be_found(target: str) -> None:
    assert callable(imported(target)), target
