"""The composition root, the entry point and the process's settings, logs and telemetry."""

import sys

# httpx's __init__ imports its command-line client whenever click, rich and pygments are
# installed (the test extra brings them, the image does not): a tenth of a second of every
# cold start, for a tool Pulse never runs. Marked absent, httpx falls back to its own stub.
sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
