"""`pulse` entry point: parse arguments, load settings, build the container, run the command."""

from __future__ import annotations

import argparse
import asyncio
import inspect
import os
import sys
import tempfile
from pathlib import Path

from adapters_in.cli import backfill as cli_backfill
from adapters_in.cli import console as cli_console
from adapters_in.cli import control as cli_control
from adapters_in.cli import dataset as cli_dataset
from adapters_in.cli import incidents as cli_incidents
from adapters_in.cli import infra as cli_infra
from adapters_in.cli import ingest as cli_ingest
from adapters_in.cli import main as cli
from adapters_in.cli import sign as cli_sign
from bootstrap.container import Container
from bootstrap.daemon import StartFailed
from bootstrap.logs import setup_logging
from bootstrap.settings import Settings, SettingsError, load_settings
from bootstrap.telemetry import setup_tracing


async def _run(container: Container, args: argparse.Namespace) -> int:
    try:
        if args.command == "serve":
            return await serve(container, args)
        return await cli.dispatch(args)
    finally:
        closing = container.shutdown_resources()
        if closing is not None:  # None when the command opened no async resource (admin call)
            await closing


async def serve(container: Container, args: argparse.Namespace) -> int:
    """`pulse serve`: a start that fails prints one line naming the cause and exits 2; what
    had started is unwound (the daemon's steps, then the container's resources)."""
    settings: Settings = container.settings()
    host = args.host or settings.host
    port = args.port if args.port is not None else settings.port
    try:
        check_data_dir(settings)
        try:
            daemon = container.daemon()
            if inspect.isawaitable(daemon):  # it is, while any store is an async resource
                daemon = await daemon
        except Exception as exc:
            raise StartFailed(f"opening the stores: {_reason(exc)}") from exc
        return await daemon.run(host, port)
    except StartFailed as exc:
        print(f"pulse: cannot start: {exc}", file=sys.stderr)
        return 2


def check_data_dir(settings: Settings) -> None:
    """The embedded stores live in DATA_DIR: it must be a folder this process can write."""
    if "sqlite" not in (settings.inbox, settings.ledger) and settings.sink != "local":
        return
    folder = Path(settings.data_dir)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-check-"):
            pass
    except OSError as exc:
        raise StartFailed(
            f"DATA_DIR {os.fspath(folder)!r} is not a writable folder: {_reason(exc)}"
        ) from exc


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.strerror}: {exc.filename}" if exc.filename else exc.strerror
    return str(exc) or type(exc).__name__


def main(argv: list[str] | None = None) -> int:
    args = cli.build_parser().parse_args(argv)
    try:
        settings = load_settings()
    except SettingsError as exc:
        print("pulse: configuration error:", file=sys.stderr)
        for line in str(exc).splitlines():
            print(f"  {line}", file=sys.stderr)
        return 2
    setup_logging(settings.log_level)
    tracing = setup_tracing(settings.otel_exporter_otlp_endpoint)
    container = Container(settings=settings)
    container.wire(
        modules=[
            cli,
            cli_control,
            cli_backfill,
            cli_dataset,
            cli_infra,
            cli_ingest,
            cli_incidents,
            cli_sign,
            cli_console,
        ]
    )
    try:
        return asyncio.run(_run(container, args))
    except KeyboardInterrupt:
        return 130
    finally:
        container.unwire()
        if tracing is not None:
            tracing.shutdown()  # flush spans still buffered


if __name__ == "__main__":
    sys.exit(main())
