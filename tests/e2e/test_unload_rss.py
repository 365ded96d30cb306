"""model/unload frees everything: the process's resident memory falls back
after an unload and does not grow over load/unload cycles (ASan's leak
check covers the allocations; this covers the mapping and the KV pool)."""
import os

import pytest

from conftest import ROOT

SHARED = os.environ.get("WISP_SHARED", str(ROOT.parent / "shared"))
MODEL = os.path.join(SHARED, "golden", "syn-qwen2-dsc-f16.gguf")


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_unload_returns_memory(wisp):
    if not os.path.exists(MODEL):
        pytest.skip(f"fixture {MODEL} is missing")
    if "/build/san/" in os.environ.get("WISP_BIN", ""):
        pytest.skip("RSS is not meaningful under AddressSanitizer's allocator (SANITIZE=1)")
    c = wisp("--threads", "1")
    pid = c.proc.pid
    base = rss_kb(pid)
    file_kb = os.path.getsize(MODEL) // 1024
    peaks, afters = [], []
    for _ in range(3):
        r = c.call("model/load", {"path": MODEL, "n_ctx": 512, "kv_cache_mb": 16})
        assert "result" in r, r
        # Touch every weight: teacher-force a few tokens.
        assert "result" in c.call("evaluate", {"tokens": [1, 2, 3, 4], "top_k": 1})
        peaks.append(rss_kb(pid))
        assert c.call("model/unload")["result"] is None
        afters.append(rss_kb(pid))
    # Loaded, the weights (mapped and touched) are resident.
    assert peaks[0] - base > file_kb // 2, (base, peaks, file_kb)
    # Unloaded, the mapping and the pool are gone again ...
    for p, a in zip(peaks, afters):
        assert p - a > file_kb // 2, (peaks, afters)
    # ... and cycles do not accumulate memory.
    assert afters[-1] - afters[0] < 4096, afters
