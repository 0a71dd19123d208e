"""The README's "Try it", run as written on what `make run` sets up: the Makefile's `.env`
recipe, its sample CRM file, no roster; the Aloware curl and the `pulse sign hubspot … | sh`
lines through bash; then `pulse report` prints the table the README shows, EMAILS and CASES
included."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.curl import parse_curl
from tests.support.serve import Pulse

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
VENV = Path(sys.executable).parent.parent
README = (ROOT / "README.md").read_text()
# What `make run` sets by itself: the harness's own secrets, roster and CRM stay out of it.
NOT_MAKE_RUN = (
    "ALOWARE_SECRET",
    "HUBSPOT_CLIENT_SECRET",
    "ADMIN_HMAC_SECRET",
    "PUBLIC_BASE_URL",
    "ROSTER_AGENTS",
    "ROSTER_FILE",
    "CRM_FILE",
    "DATA_DIR",
)


class MakeRun(Pulse):
    """`pulse` in a folder laid out like a fresh clone after `make run` wrote its `.env`."""

    def env(self) -> dict[str, str]:
        env = super().env()
        for name in NOT_MAKE_RUN:
            env.pop(name, None)
        return env

    def lay_out(self) -> None:
        (self.home / "samples").symlink_to(ROOT / "samples")
        (self.home / ".venv").symlink_to(VENV)
        subprocess.run(
            ["make", "-s", "-f", str(ROOT / "Makefile"), f"BIN={VENV / 'bin'}", ".env"],
            cwd=self.home,
            check=True,
            capture_output=True,
            timeout=60,
        )

    def shell(self, script: str, port: int) -> str:
        done = subprocess.run(
            [
                "bash",
                "-euo",
                "pipefail",
                "-c",
                script.replace("127.0.0.1:8080", f"127.0.0.1:{port}"),
            ],
            cwd=self.home,
            env={**self.env(), "PORT": str(port)},  # `pulse sign`'s default URL: HOST:PORT
            capture_output=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr.decode()
        return done.stdout.decode()


def try_it_block() -> tuple[str, str, list[str]]:
    """The README's "Try it" commands: (the posts, the report command, the table it shows)."""
    section = README.split("### Try it", 1)[1]
    block = re.search(r"```sh\n(.*?)```", section, re.DOTALL)
    assert block is not None
    lines = block.group(1).splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith(".venv/bin/pulse report"))
    posts = "\n".join(line for line in lines[:at] if not line.startswith("#"))
    table = [line.removeprefix("# ") for line in lines[at + 1 :] if line.startswith("# ")]
    return posts, lines[at], table


@pytest.mark.skipif(shutil.which("curl") is None, reason="the README's commands need curl")
def test_the_readmes_try_it_counts_calls_emails_and_cases_on_make_runs_defaults(
    tmp_path: Path,
) -> None:
    pulse = MakeRun(tmp_path)
    pulse.lay_out()
    assert "CRM_FILE=samples/crm.json" in (tmp_path / ".env").read_text()
    posts, report, table = try_it_block()
    assert "pulse sign hubspot samples/hubspot-email-created.json | sh" in posts
    assert any("EMAILS" in row for row in table) and any("CASES" in row for row in table)
    daemon = pulse.serve("serve.log")
    try:
        answers = pulse.shell(posts, daemon.port)
        assert answers.count('{"request_id": "') == 3, answers
        pulse.wait_drained()
        assert pulse.dead_letter_reasons() == []
        assert pulse.shell(report, daemon.port).splitlines() == table
        # The same request again: HubSpot's retry of it adds nothing.
        again = pulse.shell(posts.splitlines()[-1], daemon.port)
        assert json.loads(again)["request_id"]
        pulse.wait_drained()
        assert pulse.shell(report, daemon.port).splitlines() == table
    finally:
        assert daemon.stop() == 0


def test_a_signed_request_replayed_without_curl_is_accepted_and_counted(tmp_path: Path) -> None:
    """The printed command as bash hands it to curl, replayed by an HTTP client: 202, counted."""
    pulse = MakeRun(tmp_path)
    pulse.lay_out()
    daemon = pulse.serve("serve.log")
    try:
        command = pulse.shell(
            ".venv/bin/pulse sign hubspot samples/hubspot-ticket-created.json", daemon.port
        )
        status, answer = parse_curl(command).send()
        assert status == 202, answer
        pulse.wait_drained()
        cases = [r for r in pulse.report("2025-11-05") if r["MetricID"] == "CASES" and r["Count"]]
        assert [(r["AgentKey"], r["Count"]) for r in cases] == [("jsmith@example.test", 1)]
    finally:
        assert daemon.stop() == 0
