"""How many cases each fuzzer runs: its default times ITSMD_FUZZ_SCALE (default 1), for longer runs by hand."""

from __future__ import annotations

import os


def examples(default: int) -> int:
    return max(1, round(default * float(os.environ.get("ITSMD_FUZZ_SCALE", "1"))))
