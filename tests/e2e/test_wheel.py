"""The wheel installs beside anything: the rooms ship as pulse.core, pulse.ports, ... so an
environment that already has another distribution's top-level ``core`` module keeps both.

The wheel is built from a copy of the sources (nothing is written into the work tree), offline
(no build isolation). The fresh venv holds only the wheel and the other ``core``; the runtime
dependencies come from this test venv's site-packages through a .pth line, which adds the
directory without running its .pth files, so the editable install of Pulse is not seen there.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import shutil
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

ROOT = Path(__file__).resolve().parents[2]
ROOMS = ("core", "ports", "adapters_in", "adapters_out", "bootstrap")


def _build_wheel(out: Path, scratch: Path) -> Path:
    source = scratch / "src"
    source.mkdir()
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for room in ROOMS:
        shutil.copytree(ROOT / room, source / room, ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
         "--no-index", "--wheel-dir", str(out), str(source)],
        check=True, timeout=180, capture_output=True,
    )  # fmt: skip
    (wheel,) = out.glob("pulse_etl-*.whl")
    return wheel


def _other_core_wheel(out: Path) -> Path:
    """A wheel of another distribution whose top-level package is ``core``, written by hand."""
    files = {
        "core/__init__.py": b"WHOSE = 'othercore'\n",
        "othercore-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: othercore\nVersion: 1.0\n",
        "othercore-1.0.dist-info/WHEEL": (
            b"Wheel-Version: 1.0\nGenerator: hand\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        ),
    }
    record = []
    for name, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{name},sha256={digest},{len(data)}")
    record.append("othercore-1.0.dist-info/RECORD,,")
    path = out / "othercore-1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
        archive.writestr("othercore-1.0.dist-info/RECORD", "\n".join(record) + "\n")
    return path


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    scratch = tmp_path_factory.mktemp("wheel")
    return _build_wheel(scratch / "dist", scratch)


def test_the_wheel_ships_one_import_root_with_its_data(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/")[0] for name in names}
    assert {top for top in tops if not top.endswith(".dist-info")} == {"pulse"}
    for room in ROOMS:
        assert f"pulse/{room}/__init__.py" in names
    assert "pulse/adapters_in/http/openapi.json" in names
    assert any(n.startswith("pulse/adapters_in/http/console/templates/") for n in names)
    shipped = {n.removeprefix("pulse/") for n in names if n.endswith(".py")}
    in_tree = {
        str(path.relative_to(ROOT))
        for room in ROOMS
        for path in (ROOT / room).rglob("*.py")
        if "__pycache__" not in path.parts
    }
    assert shipped == in_tree


def test_pulse_runs_in_a_fresh_venv_beside_another_top_level_core(
    wheel: Path, tmp_path: Path
) -> None:
    fresh = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(fresh)
    python = fresh / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True, timeout=30,
    ).stdout.strip()  # fmt: skip
    Path(purelib, "borrowed-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet",
         "--no-deps", "--no-index", str(wheel), str(_other_core_wheel(tmp_path))],
        check=True, timeout=180, capture_output=True,
    )  # fmt: skip

    home = tmp_path / "home"
    home.mkdir()
    env = {
        "PATH": f"{fresh / 'bin'}:/usr/bin:/bin",
        "HOME": str(home),
        "DATA_DIR": str(home / "data"),
        "ALOWARE_SECRET": secrets.token_urlsafe(24),
        "HUBSPOT_CLIENT_SECRET": secrets.token_urlsafe(24),
    }

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            list(args), cwd=home, env=env, capture_output=True, text=True, timeout=60
        )

    both = run(
        str(python),
        "-c",
        "import core, pulse.core.ingest as ingest; print(core.WHOSE, ingest.__file__)",
    )
    assert both.returncode == 0, both.stderr
    whose, where = both.stdout.split()
    assert whose == "othercore"
    assert where.startswith(purelib) and str(ROOT) not in where

    version = run(str(fresh / "bin" / "pulse"), "--version")
    assert version.returncode == 0, version.stderr
    assert version.stdout.strip().startswith("pulse ")

    check = run(str(fresh / "bin" / "pulse"), "check")
    assert check.returncode == 0, check.stdout + check.stderr
    for dependency in ("inbox", "ledger", "sink"):
        assert f"ok    {dependency}" in check.stdout
    assert env["ALOWARE_SECRET"] not in check.stdout
