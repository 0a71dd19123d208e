"""requirements.lock (what the Docker image installs) stays in step with pyproject.toml."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]


def _locked() -> dict[str, tuple[str, list[str]]]:
    """name -> (version, hashes) from the lock."""
    text = (ROOT / "requirements.lock").read_text()
    pins: dict[str, tuple[str, list[str]]] = {}
    for block in re.split(r"\n(?=\S)", text):
        head = re.match(r"([A-Za-z0-9_.\-]+)(?:\[[^\]]*\])?==([^\s\\;]+)", block)
        if head:
            hashes = re.findall(r"--hash=sha256:([0-9a-f]{64})", block)
            pins[canonicalize_name(head.group(1))] = (head.group(2), hashes)
    return pins


def test_every_runtime_dependency_is_locked_at_a_version_its_specifier_allows() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    locked = _locked()
    build = [Requirement(r) for r in project["build-system"]["requires"]]
    image = (
        project["project"]["dependencies"] + project["project"]["optional-dependencies"]["lambda"]
    )
    for requirement in [Requirement(r) for r in image] + build:
        name = canonicalize_name(requirement.name)
        assert name in locked, f"{name} is not in requirements.lock: run make lock"
        version, _ = locked[name]
        assert requirement.specifier.contains(version, prereleases=True), (
            f"requirements.lock has {name}=={version}, pyproject asks {requirement}: run make lock"
        )


def test_every_locked_package_carries_hashes() -> None:
    locked = _locked()
    assert len(locked) > 20
    assert all(hashes for _, hashes in locked.values()), [
        name for name, (_, hashes) in locked.items() if not hashes
    ]


def test_the_lock_holds_no_test_tooling() -> None:
    """The image is the runtime: nothing from the test extra rides along."""
    locked = _locked()
    for tool in ("pytest", "moto", "ruff", "mypy", "selenium"):
        assert tool not in locked
