"""`pulse serve` with EDGE_PROCESSES=3: three processes on one port (SO_REUSEPORT). Webhooks
are stored by whichever process the kernel gives the connection, every other request is
answered by the first process wherever it lands, `/metrics` counts all three, a killed edge
process is started again, and SIGTERM stops them all."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import time
import urllib.request

from pulse.adapters_in.http.admin.auth import signed_headers
from tests.support.serve import Daemon, Pulse, post, sample, wait_for

CHILD = re.compile(
    r'"msg": "edge process listening", "edge_process": (\d+), "pid": (\d+), "socket": "([^"]+)"'
)
RECEIVED = re.compile(r'^pulse_webhooks_received_total\{source="aloware"\} (\S+)$', re.M)
WEBHOOKS = 120


def start(pulse: Pulse) -> Daemon:
    env = pulse.env
    pulse.env = lambda: {**env(), "EDGE_PROCESSES": "3"}  # type: ignore[method-assign]
    daemon = pulse.serve("pulse.log")
    wait_for(lambda: len(children(daemon)) == 2, 20, "two edge processes listening")
    return daemon


def children(daemon: Daemon) -> dict[int, tuple[int, str]]:
    """edge index → (pid, metrics socket), the latest start of each."""
    return {int(i): (int(pid), path) for i, pid, path in CHILD.findall(daemon.log())}


def own_received(socket_path: str) -> float:
    """What one edge process stored, read from its own page on its private socket."""
    with socket.socket(socket.AF_UNIX) as conn:
        conn.settimeout(5)
        conn.connect(socket_path)
        conn.sendall(b"GET /metrics HTTP/1.1\r\nHost: pulse\r\nConnection: close\r\n\r\n")
        page = b""
        while chunk := conn.recv(65536):
            page += chunk
    found = RECEIVED.search(page.decode())
    return float(found.group(1)) if found else 0.0


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(request, timeout=10) as response:  # a new connection each time
        return int(response.status), response.read().decode()


def webhook(communication_id: int) -> bytes:
    body = sample("aloware-call-disposed")["body"]
    body["body"]["id"] = str(communication_id)
    return json.dumps(body).encode()


def test_three_processes_store_each_webhook_once_and_answer_every_route(pulse: Pulse) -> None:
    daemon = start(pulse)
    headers = {
        "Authorization": f"Bearer {pulse.aloware_secret}",
        "Content-Type": "application/json",
    }
    for n in range(WEBHOOKS):  # each on its own connection, so the kernel spreads them
        status, answer = post(f"{daemon.url}/webhooks/aloware", webhook(700_000 + n), headers)
        assert status == 202, answer
    wait_for(lambda: pulse.stored_keys()[0] == WEBHOOKS, 30, "every webhook counted")
    total, keys = pulse.stored_keys()
    assert len(set(keys)) == total == WEBHOOKS

    by_child = [own_received(path) for _, path in children(daemon).values()]
    assert all(stored > 0 for stored in by_child), by_child  # the others stored some …
    assert sum(by_child) < WEBHOOKS  # … and so did the first process
    for _ in range(20):  # wherever each lands, the first process answers, counting all three
        status, page = get(f"{daemon.url}/metrics")
        assert status == 200 and float(RECEIVED.search(page).group(1)) == WEBHOOKS  # type: ignore[union-attr]
        assert get(f"{daemon.url}/readyz")[0] == 200
        path = "/admin/status"
        status, body = get(
            daemon.url + path, signed_headers(pulse.admin_secret, "GET", path, b"", time.time())
        )
        assert status == 200 and "jobs" in json.loads(body), body
    assert daemon.stop() == 0  # and its sockets' folder goes with it


def test_a_killed_edge_process_is_started_again_and_sigterm_stops_all(pulse: Pulse) -> None:
    daemon = start(pulse)
    headers = {
        "Authorization": f"Bearer {pulse.aloware_secret}",
        "Content-Type": "application/json",
    }
    for n in range(30):
        assert post(f"{daemon.url}/webhooks/aloware", webhook(800_000 + n), headers)[0] == 202
    assert received(daemon) == 30
    first = children(daemon)
    assert own_received(first[1][1]) > 0  # what the one about to be killed stored …
    os.kill(first[1][0], signal.SIGKILL)
    wait_for(lambda: children(daemon)[1][0] != first[1][0], 20, "edge process 1 started again")
    assert received(daemon) == 30  # … is still counted: the summed counter never goes down
    for n in range(30, 60):
        assert post(f"{daemon.url}/webhooks/aloware", webhook(800_000 + n), headers)[0] == 202
    assert received(daemon) == 60
    assert "edge process exited; starting it again" in daemon.log()
    wait_for(lambda: pulse.stored_keys()[0] == 60, 30, "every webhook counted")
    pids = [pid for pid, _ in children(daemon).values()]
    assert daemon.stop() == 0
    for pid in pids:  # stopped with the first, not left behind
        wait_for(lambda pid=pid: not _alive(pid), 10, f"edge process {pid} to exit")
    total, keys = pulse.stored_keys()
    assert total == len(set(keys)) == 60


def received(daemon: Daemon) -> float:
    status, page = get(f"{daemon.url}/metrics")
    found = RECEIVED.search(page)
    assert status == 200 and found is not None
    return float(found.group(1))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = open(f"/proc/{pid}/status").read()  # a zombie has exited
    return "State:\tZ" not in status
