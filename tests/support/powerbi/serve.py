"""`pulse serve` for the daemon-level Power BI tests: `python -m tests.support.powerbi.serve`.

Settings come from the environment exactly as for `pulse serve` (SINK=powerbi, POWERBI__*
with the API base URL on the emulator). Two providers are overridden, both true external
edges: the Entra ID client (`powerbi_auth`, the same client with login.microsoftonline.com →
the emulator's Entra ID on loopback) and the time the limiter runs on (`timebase`, the
emulator's compressed clock, shared through its origin: time.monotonic() is system-wide). The
rest is `bootstrap.main.main(["serve"])`.
"""

from __future__ import annotations

import os
import sys

from dependency_injector import providers

from pulse.bootstrap import main
from pulse.bootstrap.container import Container
from tests.emulators.aad import AuthorityRedirect, rerouted
from tests.emulators.clock import ScaledTime

EMULATOR_URL = "PULSE_TEST_EMULATOR_URL"
TIME_FACTOR = "PULSE_TEST_TIME_FACTOR"
TIME_ORIGIN = "PULSE_TEST_TIME_ORIGIN"


def run() -> int:
    session = AuthorityRedirect(os.environ[EMULATOR_URL])
    clock = ScaledTime(float(os.environ[TIME_FACTOR]), origin=float(os.environ[TIME_ORIGIN]))
    try:
        with (
            Container.powerbi_auth.override(rerouted(Container.powerbi_auth, session)),
            Container.timebase.override(providers.Object(clock)),
        ):
            return main.main(["serve"])
    finally:
        session.close()


if __name__ == "__main__":
    sys.exit(run())
