"""`pulse`, the console script (and `python -m pulse.bootstrap.launch`): the program's imports
with the cyclic garbage collector off, then `pulse.bootstrap.main.main`.

Importing the program builds some 60,000 objects that live as long as the process: classes,
functions, pydantic schemas. With the collector on, building them sets off about 140
collections that scan them again and again and free nearly nothing: about a tenth of the cold
start (issue 15). With it off until they are built, then `gc.freeze()`, they are never
scanned again, here or in the steady state's full collections. What the imports leave as
garbage (about 2,000 objects, some hundred kilobytes) is frozen with them: one `gc.collect()`
to free it would cost as much as the collections saved.
"""

from __future__ import annotations

import contextlib
import gc
import sys
from collections.abc import Iterator


@contextlib.contextmanager
def start_up_imports() -> Iterator[None]:
    """The collector off inside; on leaving, what was built is frozen and the collector is on."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()


def main(argv: list[str] | None = None) -> int:
    with start_up_imports():
        from pulse.bootstrap.main import main as program
    return program(argv)


if __name__ == "__main__":
    sys.exit(main())
