"""`pulse` entry point: parse arguments, load settings, build the container, run the command."""

from __future__ import annotations

import asyncio
import sys

from adapters_in.cli import control as cli_control
from adapters_in.cli import dataset as cli_dataset
from adapters_in.cli import infra as cli_infra
from adapters_in.cli import main as cli
from bootstrap.container import Container
from bootstrap.logs import setup_logging
from bootstrap.settings import SettingsError, load_settings
from bootstrap.telemetry import setup_tracing


async def _run(container: Container, args: object) -> int:
    try:
        return await cli.dispatch(args)  # type: ignore[arg-type]
    finally:
        closing = container.shutdown_resources()
        if closing is not None:  # None when the command opened no async resource (admin call)
            await closing


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
    container.wire(modules=[cli, cli_control, cli_dataset, cli_infra])
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
