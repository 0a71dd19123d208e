"""A venv holding only Pulse's runtime packages, as the Docker image does, built without network.

The test venv also holds the test tools and what they pull in (moto's werkzeug and PyYAML among
them), and runtime libraries import some of those when they are there (dependency-injector
imports both; OpenTelemetry's context scans every installed distribution's entry points). The
image installs `requirements.lock` only, so a cold start timed in the test venv pays for imports
and scans the image never makes. `runtime_venv()` makes a venv next to the running one and links
into it, file by file from each distribution's RECORD, the distributions Pulse needs at run time
(its requirements without extras, followed through): the same files, nothing downloaded.
"""

from __future__ import annotations

import importlib.metadata as metadata
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

from packaging.requirements import Requirement


def _key(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def runtime_distributions(
    site: Path, distribution: str = "pulse-etl"
) -> list[metadata.Distribution]:
    """`distribution` and everything it requires at run time, as installed in `site` (not a
    checkout's `*.egg-info` that the current directory would show first); markers evaluated."""
    installed = {_key(d.metadata["Name"]): d for d in metadata.distributions(path=[str(site)])}
    found: dict[str, metadata.Distribution] = {}
    pending = [distribution]
    while pending:
        name = pending.pop()
        dist = installed.get(_key(name))
        if dist is None or _key(name) in found:
            continue  # seen, or a requirement for another platform or Python
        found[_key(name)] = dist
        for line in dist.requires or []:
            req = Requirement(line)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                pending.append(req.name)
    return list(found.values())


def runtime_venv(where: Path) -> Path:
    """(Re)make the venv at `where`; its python. Files are symlinks into this venv's own."""
    shutil.rmtree(where, ignore_errors=True)
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", "--symlinks", str(where)], check=True
    )
    here = Path(sysconfig.get_paths()["purelib"])
    site = Path(sysconfig.get_paths(vars={"base": str(where), "platbase": str(where)})["purelib"])
    for dist in runtime_distributions(here):
        for file in dist.files or ():
            if file.parts[0] == "..":  # scripts in bin/: not needed to import or run -m
                continue
            source = (here / file).resolve()
            if not source.is_file():
                continue
            target = site / file
            target.parent.mkdir(parents=True, exist_ok=True)
            if not target.exists():
                target.symlink_to(source)
    return where / "bin" / "python"
