"""A printed `curl` command as the shell hands it to curl, and replayed without curl."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass, field

# `curl` as a shell function that prints the arguments it was given: what bash's quoting made of
# the command line is then exactly what a real curl would have received.
_ARGV_DUMPING_CURL = (
    'curl() { "$PULSE_PYTHON" -c "import json, sys; print(json.dumps(sys.argv[1:]))" "$@"; }\n'
)


@dataclass
class CurlRequest:
    method: str = "GET"
    url: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    def send(self) -> tuple[int, dict[str, object]]:
        request = urllib.request.Request(
            self.url, data=self.body, headers=self.headers, method=self.method
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return int(response.status), json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())


def curl_argv(command: str) -> list[str]:
    """The arguments `bash` passes to curl for `command` (one curl invocation)."""
    done = subprocess.run(
        ["bash", "-c", _ARGV_DUMPING_CURL + command],
        env={"PULSE_PYTHON": sys.executable, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        timeout=30,
        check=True,
    )
    argv: list[str] = json.loads(done.stdout)
    return argv


def parse_curl(command: str) -> CurlRequest:
    """The request `command` makes; only the options `pulse sign` prints are understood."""
    request = CurlRequest()
    args = iter(curl_argv(command))
    for arg in args:
        if arg == "-X":
            request.method = next(args)
        elif arg == "-H":
            name, _, value = next(args).partition(": ")
            request.headers[name] = value
        elif arg == "--data-binary":
            request.body = next(args).encode()
        elif arg == "-w":
            next(args)  # what curl prints after the answer
        elif arg == "-sS":
            continue
        elif arg.startswith("-"):
            raise AssertionError(f"curl option {arg!r} not understood by the replay")
        else:
            request.url = arg
    return request
