"""Product code stays readable: no block above cyclomatic complexity 15 (radon), no function
longer than 60 lines. Tests and benchmarks are not product code."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

from radon.complexity import cc_visit

ROOMS = ("core", "ports", "adapters_in", "adapters_out", "bootstrap")
MAX_COMPLEXITY = 15
MAX_LINES = 60


def problems(root: Path) -> list[str]:
    found = []
    for room in ROOMS:
        for path in sorted((root / room).rglob("*.py")):
            source = path.read_text()
            where = path.relative_to(root)
            for block in cc_visit(source):
                if block.complexity > MAX_COMPLEXITY:
                    found.append(
                        f"{where}:{block.lineno} {block.fullname}: complexity {block.complexity}"
                    )
            for node in ast.walk(ast.parse(source)):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    length = (node.end_lineno or node.lineno) - node.lineno + 1
                    if length > MAX_LINES:
                        found.append(f"{where}:{node.lineno} {node.name}: {length} lines")
    return found


if __name__ == "__main__":
    found = problems(Path(__file__).resolve().parents[1])
    for line in found:
        print(line)
    print(f"complexity: {len(found)} function(s) over {MAX_COMPLEXITY} or {MAX_LINES} lines")
    sys.exit(1 if found else 0)
