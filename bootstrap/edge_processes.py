"""EDGE_PROCESSES > 1: the extra edge processes, started, watched and stopped by the first.

Each is `pulse serve --edge-child DIR --edge-index I`: it listens on the same host and port
(SO_REUSEPORT), stores webhooks in the same inbox, and passes every other request to this
process over `DIR/pulse.sock` (`adapters_in/http/edge_child.py`). DIR is a private temporary
folder (0700) holding that socket and each child's `edge-I.sock`, on which the child shows its
own counts: this process adds them to `/metrics`, and tells the silence alarm which sources
they heard from. A child that exits is started again after a second; a child outlives no
parent (the kernel sends it SIGTERM when this process dies)."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from aiohttp import ClientError, ClientSession, ClientTimeout, UnixConnector

from pulse.adapters_in.metrics import summed_samples

log = logging.getLogger("pulse.daemon")

RESTART_DELAY_SEC = 1.0  # after an exit; doubled for each exit soon after a start, up to
RESTART_DELAY_MAX_SEC = 60.0
STEADY_SEC = 60.0  # a child that ran this long exited "after a while": the delay starts over
PAGE_TIMEOUT = ClientTimeout(total=2)
ACTIVITY_SEC = 5.0
RECEIVED = "pulse_webhooks_received_total"
RUN_PREFIX = "pulse-edge-"
PR_SET_PDEATHSIG = 1


class EdgeProcesses:
    def __init__(
        self,
        processes: int,
        saw: Callable[[str], None] | None = None,
        command: Sequence[str] = (sys.executable, "-m", "pulse.bootstrap.launch", "serve"),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.extra = max(0, processes - 1)
        self.saw = saw
        """Told each source a child stored webhooks from (the silence alarm)."""
        self.command = tuple(command)
        self._clock = clock
        self.delays: list[float] = []
        """Each restart's wait, in order (what the log says too)."""
        self.run_dir: Path | None = None
        self._procs: dict[int, asyncio.subprocess.Process] = {}
        self._watchers: list[asyncio.Task[None]] = []
        self._stopping = False
        self._received: dict[str, float] = {}
        self._latest: dict[int, tuple[int, str]] = {}  # edge index → (pid, its last page)
        self._gone: list[str] = []  # the last pages of children that were started again

    @property
    def enabled(self) -> bool:
        return self.extra > 0

    def prepare(self) -> Path:
        """The private folder of the sockets; the first process's own socket path in it.
        Folders a first process killed with SIGKILL left behind (its pid file names a process
        that is gone) are removed first."""
        remove_orphans(Path(tempfile.gettempdir()))
        self.run_dir = Path(tempfile.mkdtemp(prefix=RUN_PREFIX))
        (self.run_dir / "pid").write_text(str(os.getpid()))
        return self.run_dir / "pulse.sock"

    def child_socket(self, index: int) -> Path:
        assert self.run_dir is not None
        return self.run_dir / f"edge-{index}.sock"

    async def start(self, host: str, port: int) -> None:
        self._host, self._port = host, port
        for index in range(1, self.extra + 1):
            await self._spawn(index)
            self._watchers.append(asyncio.create_task(self._watch(index)))

    async def _spawn(self, index: int) -> None:
        # The same settings: the environment (PULSE_ENV_FILE names the file `pulse serve` read).
        self._procs[index] = await asyncio.create_subprocess_exec(
            *self.command, "--host", self._host, "--port", str(self._port),
            "--edge-child", str(self.run_dir), "--edge-index", str(index),
        )  # fmt: skip

    async def _watch(self, index: int) -> None:
        """Start the child again after it exits: a second later, twice as long again for each
        exit soon after a start (a setting only it rejects, a full disk), up to a minute."""
        delay = RESTART_DELAY_SEC
        while True:
            started = self._clock()
            code = await self._procs[index].wait()
            if self._stopping:
                return
            if self._clock() - started >= STEADY_SEC:
                delay = RESTART_DELAY_SEC
            log.warning(
                "edge process exited; starting it again",
                extra={"fields": {"edge_process": index, "exit_code": code, "in_sec": delay}},
            )
            self.delays.append(delay)
            await asyncio.sleep(delay)
            if self._stopping:
                return
            await self._spawn(index)
            delay = min(delay * 2, RESTART_DELAY_MAX_SEC)

    async def stop(self, budget_sec: float) -> None:
        """SIGTERM to each (it stops listening and finishes the requests it is storing),
        SIGKILL to any still running after `budget_sec`."""
        self._stopping = True
        for task in self._watchers:
            task.cancel()
        running = [p for p in self._procs.values() if p.returncode is None]
        for proc in running:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
        if running:
            waits = [asyncio.create_task(p.wait()) for p in running]
            await asyncio.wait(waits, timeout=budget_sec)
            for proc in running:
                if proc.returncode is None:
                    log.warning("edge process did not stop in time; killed")
                    with contextlib.suppress(ProcessLookupError):
                        proc.kill()
                    await proc.wait()
        if self.run_dir is not None:
            shutil.rmtree(self.run_dir, ignore_errors=True)

    async def pages(self) -> Sequence[str]:
        """Each child's own `/metrics` page, so the first process's page can add them in.

        Counters must never go down on the summed page (Prometheus would read a reset and count
        everything again): a child that does not answer is counted by its last page, and when
        it was started again, that last page of the process that is gone stays counted beside
        the new one's."""
        if not self.enabled or self.run_dir is None:
            return ()
        for index, proc in self._procs.items():
            last = self._latest.get(index)
            if last is not None and last[0] != proc.pid:
                self._gone.append(last[1])
                del self._latest[index]
        found = await asyncio.gather(*(self._page(i) for i in self._procs))
        for (index, proc), page in zip(self._procs.items(), found, strict=True):
            if page is not None:
                self._latest[index] = (proc.pid, page)
        return [page for _, page in self._latest.values()] + self._gone

    async def _page(self, index: int) -> str | None:
        try:
            connector = UnixConnector(path=str(self.child_socket(index)))
            async with (
                ClientSession(connector=connector, timeout=PAGE_TIMEOUT) as session,
                session.get("http://pulse/metrics") as answer,
            ):
                return await answer.text() if answer.status == 200 else None
        except (ClientError, OSError, TimeoutError):
            return None  # starting again, or stopping

    async def run(self) -> None:
        """Tell `saw` each source a child stored a webhook from since the last look."""
        while self.enabled and self.saw is not None:
            await asyncio.sleep(ACTIVITY_SEC)
            totals = {
                dict(labels)["source"]: value
                for family in summed_samples(await self.pages()).values()
                for (name, labels), value in family.items()
                if name == RECEIVED
            }
            for source, value in totals.items():
                if value > self._received.get(source, 0.0):
                    self.saw(source)
            self._received = totals


def remove_orphans(folder: Path) -> None:
    for run_dir in folder.glob(f"{RUN_PREFIX}*"):
        try:
            pid = int((run_dir / "pid").read_text())
            os.kill(pid, 0)
        except ProcessLookupError:
            shutil.rmtree(run_dir, ignore_errors=True)  # its first process is gone
        except (OSError, ValueError):
            pass  # another user's, being written, or not ours: left alone


def die_with_parent() -> None:
    """Linux: SIGTERM to this process when the one that started it dies."""
    parent = os.getppid()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # it died before the call
        os.kill(os.getpid(), signal.SIGTERM)
