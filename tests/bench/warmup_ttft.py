#!/usr/bin/env python3
"""First-request latency with and without model/load's warm-up.

Each round copies the model to a private temporary file, evicts that copy
from the page cache (posix_fadvise DONTNEED: only this file, so other
programs' cached pages stay), starts a fresh build/wisp, loads the copy
with `warmup` true or false, then sends one greedy `generate` of one token
and times it from the write to the answer (the client's clock), next to
the server's `timings.ttft_ms` and model/load's `load_ms`/`warmup_ms`.
Rounds alternate warm and cold; medians are printed. It asserts nothing.

  tests/bench/warmup_ttft.py [--model PATH] [--rounds N] [--threads T]
"""
import argparse
import json
import os
import pathlib
import shutil
import statistics
import subprocess
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[2]
SHARED = pathlib.Path(os.environ.get("WISP_SHARED") or (ROOT.parent / "shared"))


class Wisp:
    def __init__(self, binary, threads):
        self.p = subprocess.Popen([binary, "--threads", str(threads), "--log-level", "error"],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.DEVNULL)
        self.next = 1

    def call(self, method, params=None):
        msg = {"jsonrpc": "2.0", "id": self.next, "method": method}
        if params is not None:
            msg["params"] = params
        self.next += 1
        t0 = time.perf_counter()
        self.p.stdin.write((json.dumps(msg) + "\n").encode())
        self.p.stdin.flush()
        while True:
            line = self.p.stdout.readline()
            if not line:
                raise RuntimeError("wisp exited")
            r = json.loads(line)
            if r.get("id") == msg["id"]:
                if "error" in r:
                    raise RuntimeError(f"{method}: {r['error']}")
                return r["result"], (time.perf_counter() - t0) * 1000.0

    def close(self):
        self.p.stdin.close()
        self.p.wait(timeout=30)


def evict(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def one_round(binary, model, threads, warm, tmpdir):
    copy = os.path.join(tmpdir, "model.gguf")
    shutil.copyfile(model, copy)
    evict(copy)
    w = Wisp(binary, threads)
    try:
        info, _ = w.call("model/load", {"path": copy, "n_ctx": 512, "warmup": warm})
        res, client_ms = w.call("generate", {"prompt": "Once upon a time", "max_tokens": 1,
                                             "temperature": 0})
        return {"load_ms": info["load_ms"], "warmup_ms": info.get("warmup_ms"),
                "client_ms": client_ms, "ttft_ms": res["timings"]["ttft_ms"]}
    finally:
        w.close()
        os.unlink(copy)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=str(SHARED / "golden" / "syn-qwen2-dsc-f16.gguf"))
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--wisp", default=str(ROOT / "build" / "wisp"))
    a = ap.parse_args()
    rows = {True: [], False: []}
    with tempfile.TemporaryDirectory() as d:
        for _ in range(a.rounds):
            for warm in (True, False):
                rows[warm].append(one_round(a.wisp, a.model, a.threads, warm, d))
    print(f"model {a.model}, threads {a.threads}, {a.rounds} rounds, page cache evicted")
    for warm in (True, False):
        r = rows[warm]
        med = {k: statistics.median(x[k] for x in r) for k in ("load_ms", "client_ms", "ttft_ms")}
        wm = [x["warmup_ms"] for x in r if x["warmup_ms"] is not None]
        print(f"warmup={str(warm).lower():5}  load_ms {med['load_ms']:8.1f}  "
              f"warmup_ms {statistics.median(wm) if wm else 0:8.1f}  "
              f"first generate (client) {med['client_ms']:8.1f} ms  "
              f"server ttft_ms {med['ttft_ms']:8.1f}")


if __name__ == "__main__":
    main()
