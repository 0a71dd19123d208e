"""The five rooms keep their folders at the top of the repository and ship under one import
root: ``pulse.core`` lives in ``core/`` (and so on), so the wheel installs beside anything,
including another distribution's top-level ``core`` module. Everything else is in
pyproject.toml."""

from setuptools import find_packages, setup

ROOMS = ("core", "ports", "adapters_in", "adapters_out", "bootstrap")

setup(
    package_dir={f"pulse.{room}": room for room in ROOMS},
    packages=[
        f"pulse.{package}"
        for package in find_packages(include=[*ROOMS, *(f"{room}.*" for room in ROOMS)])
    ],
)
