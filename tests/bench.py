"""`make bench`: run every benchmark in tests/benchmarks/ and print one table.

Each module `tests/benchmarks/bench_*.py` has `run() -> list[Figure]`. Figures are printed,
never asserted: speed and memory belong here, not in the test suite.
"""

from __future__ import annotations

import importlib
import os
import platform
import pkgutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from . import benchmarks


@dataclass(frozen=True)
class Figure:
    name: str
    value: float
    unit: str
    target: str


def peak_memory_mb(code: str) -> float:
    """Run Python code in a fresh process; its peak resident memory (VmHWM, reset at exec)."""
    probe = code + ("\nprint('VmHWM', next(l.split()[1] for l in open('/proc/self/status') "
                    "if l.startswith('VmHWM')))\n")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[1]).stdout
    return int(out.rsplit("VmHWM", 1)[1].split()[0]) / 1024


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            cpu = next((line.split(":", 1)[1].strip() for line in info if line.startswith("model name")), cpu)
    except OSError:
        pass
    memory = ""
    try:
        pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        memory = f", {pages / 2**30:.0f} GiB RAM"
    except (ValueError, OSError):
        pass
    return (f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores ({cpu}){memory}, "
            f"Python {platform.python_version()}, SQLite {__import__('sqlite3').sqlite_version}")


def main(selected: list[str]) -> int:
    print(f"machine: {machine()}")
    print(f"date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}\n")
    figures: list[Figure] = []
    for info in sorted(pkgutil.iter_modules(benchmarks.__path__), key=lambda m: m.name):
        if not info.name.startswith("bench_") or (selected and info.name not in selected):
            continue
        module = importlib.import_module(f"{benchmarks.__name__}.{info.name}")
        print(f"running {info.name} ...", file=sys.stderr, flush=True)
        figures.extend(module.run())
    width = max([len(f.name) for f in figures] + [9])
    print(f"| {'benchmark':<{width}} | {'figure':>12} | {'unit':<10} | target |")
    print(f"|{'-' * (width + 2)}|{'-' * 14}|{'-' * 12}|--------|")
    for f in figures:
        print(f"| {f.name:<{width}} | {f.value:>12,.2f} | {f.unit:<10} | {f.target} |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
