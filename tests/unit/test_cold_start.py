"""`pulse serve` on the embedded defaults loads only what it runs (its cold start, issue 15):
the adapters of other configurations, httpx and the admin routes load when they are built, the
other commands' modules when they run, OpenTelemetry when traces are exported or the first
span opens; and the program loads with the garbage collector off (`pulse.bootstrap.launch`)."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pulse.bootstrap.container import DEFERRED, imported

# Loaded by configurations other than the embedded defaults (or by the admin API and console,
# off without ADMIN_HMAC_SECRET, or by a command other than serve); each a prefix.
NOT_LOADED = (
    "apscheduler",  # loaded in a thread once the daemon listens
    "httpx",
    "opentelemetry",
    "pulse.adapters_in.cli.backfill",
    "pulse.adapters_in.cli.console",
    "pulse.adapters_in.cli.control",
    "pulse.adapters_in.cli.incidents",
    "pulse.adapters_in.cli.infra",
    "pulse.adapters_in.cli.ingest",
    "pulse.adapters_in.cli.main",
    "pulse.adapters_in.cli.sign",
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

main.base_parser()[0].parse_args(["serve"])
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


# `pulse` (no command: its help) through the console script's module, counting collections while it loads.
LAUNCH = """
import gc, sys
collections = []
gc.callbacks.append(lambda phase, info: phase == "start" and collections.append(info))
from pulse.bootstrap import launch
code = launch.main([])  # no command: the help, and 0
print(code, len(collections), gc.isenabled(), gc.get_freeze_count(), "pulse.bootstrap.main" in sys.modules)
"""


@pytest.mark.slow
def test_the_program_loads_without_a_collection_and_what_it_built_is_frozen() -> None:
    # Before: about 140 collections while `pulse.bootstrap.main` loaded (a tenth of the start).
    out = subprocess.run(
        [sys.executable, "-c", LAUNCH], capture_output=True, text=True, check=True
    ).stdout.split("\n")[-2]
    code, collections, enabled, frozen, loaded = out.split()
    assert (code, enabled, loaded) == ("0", "True", "True")
    assert int(collections) < 10  # the few after loading: printing the help
    assert int(frozen) > 20_000  # the program's classes, functions and schemas


def test_start_up_imports_turn_the_collector_back_on_even_when_an_import_fails() -> None:
    from pulse.bootstrap.launch import start_up_imports

    assert gc.isenabled()
    with pytest.raises(ModuleNotFoundError), start_up_imports():
        assert not gc.isenabled()
        import pulse.no_such_module  # type: ignore[import-not-found]  # noqa: F401
    assert gc.isenabled()
    gc.unfreeze()  # what this test process had is collectable again


@pytest.mark.parametrize(
    ("argv", "light"),
    [
        (["serve"], True),
        (["serve", "--port", "8081"], True),
        (["--env-file", "x.env", "serve"], True),
        (["--env-file=x.env", "serve", "--help"], True),
        (["--help", "serve"], False),
        (["--version"], False),
        (["report"], False),
        ([], False),
    ],
)
def test_serve_is_parsed_by_the_light_parser_exactly_as_by_the_full_one(
    argv: list[str], light: bool
) -> None:
    from pulse.adapters_in.cli.arguments import base_parser, serve_only
    from pulse.adapters_in.cli.main import build_parser

    assert serve_only(argv) is light
    if light and "--help" not in argv:
        assert base_parser()[0].parse_args(argv) == build_parser().parse_args(argv)


def test_no_setting_defaults_to_a_builtin_factory() -> None:
    # pydantic reads each default factory's signature; a builtin's (`list`, `dict`) is parsed
    # from its text with tokenize, whose patterns compile on first use: 4-5 ms of every start.
    from pydantic import BaseModel

    from pulse.bootstrap.settings import Settings

    def models(model: type[BaseModel]) -> list[type[BaseModel]]:
        found = [model]
        for field in model.model_fields.values():
            for arg in (field.annotation, *getattr(field.annotation, "__args__", ())):
                if isinstance(arg, type) and issubclass(arg, BaseModel):
                    found += models(arg)
        return found

    builtin = [
        f"{model.__name__}.{name}"
        for model in models(Settings)
        for name, field in model.model_fields.items()
        if isinstance(field.default_factory, type)
        or type(field.default_factory).__name__ == "builtin_function_or_method"
    ]
    assert builtin == []
    assert len(models(Settings)) > 1  # the nested parts are looked at too
