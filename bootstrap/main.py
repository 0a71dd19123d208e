"""`pulse` entry point: parse arguments, load settings, build the container, run the command."""

from __future__ import annotations

import argparse
import asyncio
import inspect
import io
import logging
import os
import signal
import sys
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Any

from aiohttp import web

from pulse.adapters_in.cli.arguments import base_parser, serve_only
from pulse.adapters_in.http.edge_child import Forwarder, build_child_app, build_metrics_app
from pulse.adapters_in.http.middleware import write_access_lines_with
from pulse.adapters_in.http.server import PulseRunner
from pulse.adapters_out.sqlite.db import private_folder
from pulse.bootstrap.container import Container
from pulse.bootstrap.daemon import StartFailed
from pulse.bootstrap.edge_processes import die_with_parent
from pulse.bootstrap.logs import access_lines, setup_logging
from pulse.bootstrap.settings import (
    ENV_FILE_VARIABLE,
    Settings,
    SettingsError,
    load_settings,
    unknown_settings,
)
from pulse.bootstrap.telemetry import setup_tracing


async def _run(container: Container, args: argparse.Namespace) -> int:
    try:
        if args.command == "serve" and args.edge_child:
            return await serve_edge_child(container, args)
        if args.command == "serve":
            return await serve(container, args)
        cli, _ = _commands()
        code: int = await cli.dispatch(args)
        return code
    finally:
        closing = container.shutdown_resources()
        if closing is not None:  # None when the command opened no async resource (admin call)
            await closing


async def serve(container: Container, args: argparse.Namespace) -> int:
    """`pulse serve`: a start that fails prints one line naming the cause and exits 2; what
    had started is unwound (the daemon's steps, then the container's resources)."""
    settings: Settings = container.settings()
    write_access_lines_with(access_lines())
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


async def serve_edge_child(container: Container, args: argparse.Namespace) -> int:
    """`pulse serve --edge-child DIR`: one of the extra edge processes the first one starts
    (EDGE_PROCESSES): webhooks on the shared port, every other request passed to the first
    process; SIGTERM stops listening and finishes the requests being stored."""
    die_with_parent()
    write_access_lines_with(access_lines())
    settings: Settings = container.settings()
    run_dir = Path(args.edge_child)
    try:
        edge: Any = container.child_edge()
        limit: Any = container.body_limit()
        if inspect.isawaitable(edge):  # the inbox is an async resource
            edge, limit = await edge, await limit
    except Exception as exc:
        print(
            f"pulse: edge process {args.edge_index}: cannot start: {_reason(exc)}", file=sys.stderr
        )
        return 2
    forwarder = Forwarder(str(run_dir / "pulse.sock"))
    metrics = container.metrics()
    app = build_child_app(edge, metrics, forwarder, limit)
    runner = PulseRunner(app, access_log=None, shutdown_timeout=settings.drain_timeout_sec)
    own = web.AppRunner(build_metrics_app(metrics), access_log=None)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        own_socket = str(run_dir / f"edge-{args.edge_index}.sock")
        await own.setup()
        await web.UnixSite(own, own_socket).start()
        await runner.setup()
        await web.TCPSite(runner, args.host, args.port, reuse_port=True).start()
        fields = {"edge_process": args.edge_index, "pid": os.getpid(), "socket": own_socket}
        logging.getLogger("pulse.daemon").info("edge process listening", extra={"fields": fields})
        await stop.wait()
    finally:
        await runner.cleanup()  # stops listening; the requests being stored finish
        await own.cleanup()
        await forwarder.close()
    return 0


def settings_for(args: argparse.Namespace, env_file: Path | None) -> Settings:
    """The settings `args` runs with; `serve --processes N` overrides EDGE_PROCESSES."""
    overrides = {}
    if args.command == "serve" and args.processes is not None:
        overrides["edge_processes"] = args.processes
    if args.command == "serve" and env_file is not None:
        os.environ[ENV_FILE_VARIABLE] = str(env_file)  # the edge processes read it too
    return load_settings(env_file=env_file, read_only=reads_only(args), **overrides)


def check_data_dir(settings: Settings) -> None:
    """The embedded stores live in DATA_DIR: it must be a folder this process can write."""
    if "sqlite" not in (settings.inbox, settings.ledger) and "local" not in settings.sink_names:
        return
    folder = Path(settings.data_dir)
    try:
        private_folder(folder)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-check-"):
            pass
    except OSError as exc:
        raise StartFailed(
            f"DATA_DIR {os.fspath(folder)!r} is not a writable folder: {_reason(exc)}"
        ) from exc


def has_data(settings: Settings, command: tuple[str, str | None]) -> bool:
    """False when `command` reads a store in DATA_DIR and the folder is missing: it would
    read an empty one."""
    store = READS_DATA.get(command)
    embedded = store is not None and getattr(settings, store[0]) == store[1]
    return not embedded or Path(settings.data_dir).is_dir()


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.strerror}: {exc.filename}" if exc.filename else exc.strerror
    return str(exc) or type(exc).__name__


def _commands() -> tuple[ModuleType, tuple[ModuleType, ...]]:
    """`cli.main` and the command modules whose functions take their dependencies injected:
    imported by the commands other than `serve`, which needs none of them."""
    from pulse.adapters_in.cli import (
        backfill,
        console,
        control,
        dataset,
        incidents,
        infra,
        ingest,
        sign,
    )
    from pulse.adapters_in.cli import main as cli

    return cli, (control, backfill, dataset, infra, ingest, incidents, sign, console)


# Commands that take no webhook and write nothing: they run without the webhook secrets.
READ_ONLY = {("report", None), ("check", None), ("dead-letters", "list")}
READ_ONLY |= {(name, "history") for name in ("metrics", "shifts")}


# Reads whose answer from a missing DATA_DIR ("no activity") would pass for the truth, and
# the store each reads there: the local warehouse (SINK=local), the SQLite inbox.
READS_DATA = {("report", None): ("sink", "local"), ("dead-letters", "list"): ("inbox", "sqlite")}


def _command(args: argparse.Namespace) -> tuple[str, str | None]:
    action = getattr(args, "action", None)
    return (args.command, None if (args.command, None) in READ_ONLY else action)


def reads_only(args: argparse.Namespace) -> bool:
    return _command(args) in READ_ONLY


def chosen_env_file(flag: str | None) -> Path | None:
    """--env-file, else PULSE_ENV_FILE, else None (./.env if there is one); one named must exist."""
    named, source = (flag, "--env-file") if flag else (os.environ.get(ENV_FILE_VARIABLE), None)
    if not named:
        return None
    path = Path(named).expanduser().absolute()
    if not path.is_file():
        raise SettingsError(f"{source or ENV_FILE_VARIABLE}: {named} is not a file")
    return path


def _tolerant_output() -> None:
    """A terminal or pipe that cannot show `—`, `·` or `×` (PYTHONIOENCODING=ascii) gets `?`
    rather than a UnicodeEncodeError halfway through a report."""
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(errors="replace")


def main(argv: list[str] | None = None) -> int:
    _tolerant_output()
    words = sys.argv[1:] if argv is None else argv
    parser = base_parser()[0] if serve_only(words) else _commands()[0].build_parser()
    args = parser.parse_args(words)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        env_file = chosen_env_file(args.env_file)
        args.unknown_settings = unknown_settings(env_file, os.environ)
        settings = settings_for(args, env_file)
    except SettingsError as exc:
        print("pulse: configuration error:", file=sys.stderr)
        for line in str(exc).splitlines():
            print(f"  {line}", file=sys.stderr)
        return 2
    if args.command != "check":  # `pulse check` reports them as errors
        for line in args.unknown_settings:
            print(f"pulse: warning: {line}", file=sys.stderr)
    if not has_data(settings, _command(args)):
        print(
            f"pulse: {args.command}: DATA_DIR {Path(settings.data_dir).absolute()} does not exist:"
            " nothing to read (run where the daemon's .env is, or name it:"
            f" --env-file PATH or {ENV_FILE_VARIABLE})",
            file=sys.stderr,
        )
        return 2
    setup_logging(settings.log_level)
    tracing = setup_tracing(settings.otel_exporter_otlp_endpoint)
    container = Container(settings=settings)
    # The commands take their parts injected; `serve` takes them from the container itself,
    # and wiring (every function of nine modules inspected) is a tenth of its cold start.
    wired = args.command != "serve"
    if wired:
        cli, commands = _commands()
        container.wire(modules=[cli, *commands])
    try:
        code = asyncio.run(_run(container, args))
        sys.stdout.flush()  # a closed pipe fails here, inside the try, not at exit
        return code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `pulse check | head`: the reader has what it wanted; no traceback, and nothing more
        # written to the closed pipe at exit (the documented way: stdout onto devnull).
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, as a shell reports it
    finally:
        if wired:
            container.unwire()
        if tracing is not None:
            tracing.shutdown()  # flush spans still buffered


if __name__ == "__main__":
    sys.exit(main())
