#!/usr/bin/python3
"""Keystroke-replay benchmark for `infill`: what an editor plugin does to wisp.

Replays typing a 200-line source file one character at a time, top to
bottom above 20 lines that are already there (generated deterministically,
or --file), the way
llama.vim / llama.vscode drive llama.cpp's /infill: at every pause (by
default the end of each word) it sends an `infill` request with the text
before the cursor line as `input_prefix`, the typed part of the cursor line
as `prompt`, the rest of the document as `input_suffix`, a few chunks of
another file as `input_extra`, and `supersede` set to the document URI so a
newer request cancels an older one still in flight.

It reports:
  - time to first token (TTFT): from writing the request to the first
    `$/stream` notification for it (median and p95, nearest rank);
  - prefill tokens per request: usage.prompt_tokens - usage.cached_tokens,
    and that as a share of the prompt (goal: under 10%);
  - cache hit rate: cached prompt tokens / prompt tokens over all requests,
    the share of requests that hit at all, and the `status` prefix-cache
    counters before and after.
Goal on CPU: median TTFT under 50 ms, under 10% of the prompt
re-prefilled per request.

HOW TO RUN (needs the integrated binary: `infill` with input_prefix /
input_suffix / input_extra / prompt / supersede, usage.cached_tokens):

    make -j2                      # build/wisp and build/tools/synth
    # a ~190M-parameter code model with the StarCoder FIM vocabulary
    # (12 layers, 1024 wide, GQA 16/4 heads, tied embeddings, Q8_0):
    build/tools/synth --arch llama --layers 12 --embd 1024 --heads 16 \\
        --kv-heads 4 --ff 2816 --tied --type q8_0 --ctx 4096 \\
        --vocab ../shared/vocab/ggml-vocab-starcoder.gguf --out /tmp/code200m.gguf
    /usr/bin/python3 tests/bench/keystroke.py --model /tmp/code200m.gguf

  or let the script synthesize it (same shape) with --synth /tmp/code200m.gguf.
  Useful options: --max-requests N (stop early), --pause word|line|char,
  --cps 8 (type at 8 characters per second: requests then overlap and
  supersede each other, as with a real typist; default 0 = wait for each
  answer before typing on), --json (machine-readable summary), --file F
  (replay a real source file instead of the generated one).

  Runtime with the defaults is about one request per word (~1000 requests);
  use --max-requests 200 for a quick look on a shared machine.

Standard library only; run with /usr/bin/python3.
"""
import argparse
import json
import os
import pathlib
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = pathlib.Path(__file__).resolve().parents[2]
DEFAULT_BIN = os.environ.get("WISP_BIN", str(ROOT / "build" / "wisp"))
DEFAULT_SYNTH = str(ROOT / "build" / "tools" / "synth")
DEFAULT_VOCAB = str(ROOT.parent / "shared" / "vocab" / "ggml-vocab-starcoder.gguf")
DOC_URI = "file:///bench/replay.py"
CANCELLED = -32800


# ------------------------------------------------------------- source text

def generate_source(n_lines, seed):
    """A deterministic Python file of exactly n_lines lines: functions with
    docstrings, loops, conditionals and arithmetic, like ordinary code."""
    rng = random.Random(seed)
    names = ["count", "total", "value", "index", "item", "result", "limit", "offset",
             "width", "height", "scale", "score", "weight", "delta", "step", "size"]
    ops = ["+", "-", "*", "//", "%"]
    lines = ['"""Replay source for the keystroke benchmark."""', "import math", ""]
    fn = 0
    while len(lines) < n_lines:
        fn += 1
        a, b = rng.sample(names, 2)
        lines.append(f"def compute_{fn}({a}, {b}):")
        lines.append(f'    """Combine {a} and {b} into a score."""')
        acc = rng.choice(names)
        lines.append(f"    {acc} = {a} {rng.choice(ops)} {rng.randint(1, 9)}")
        for _ in range(rng.randint(1, 3)):
            v = rng.choice(names)
            lines.append(f"    for {v} in range({b}):")
            lines.append(f"        if {v} % {rng.randint(2, 7)} == 0:")
            lines.append(f"            {acc} {rng.choice(ops)}= {v}")
            lines.append("        else:")
            lines.append(f"            {acc} = math.floor({acc} / {rng.randint(2, 5)})")
        lines.append(f"    return {acc}")
        lines.append("")
    return "\n".join(lines[:n_lines]) + "\n"


def pause_points(text, mode):
    """Offsets (number of characters typed) at which the typist pauses."""
    if mode == "char":
        return list(range(1, len(text) + 1))
    if mode == "line":
        return [i + 1 for i, c in enumerate(text) if c == "\n"]
    # word: after whitespace that ends a run of non-whitespace
    return [i + 1 for i, c in enumerate(text)
            if c in " \n" and i > 0 and not text[i - 1].isspace()]


def request_parts(doc, typed, tail):
    """llama.vim's split of the document while the first `typed` characters
    of `doc` are typed above `tail` (the code below, there from the start):
    the lines before the cursor line, the cursor line up to the cursor, and
    what follows the cursor: the rest of the cursor line (empty: we type at
    its end), its newline, then the tail. After an Enter the cursor sits on
    a new empty line above the tail, as in an editor."""
    before = doc[:typed]
    nl = before.rfind("\n")
    prefix = before[:nl + 1]
    prompt = before[nl + 1:]
    suffix = "\n" + tail if tail else ""
    return prefix, prompt, suffix


# ------------------------------------------------------------- wisp client

class Wisp:
    """A wisp process spoken to in ndjson; a reader thread files every
    message by request id with its arrival time."""

    def __init__(self, binary, model, ctx, threads):
        args = [binary, "--model", model, "--ctx", str(ctx)]
        if threads:
            args += ["--threads", str(threads)]
        self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)
        self.cv = threading.Condition()
        self.first_stream = {}   # id -> perf_counter of its first $/stream
        self.final = {}          # id -> (perf_counter, message)
        self.next_id = 1
        self.stderr_tail = []
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._drain_stderr, daemon=True).start()

    def _read(self):
        for raw in self.proc.stdout:
            now = time.perf_counter()
            line = raw.strip()
            if not line:
                continue
            msg = json.loads(line)
            for m in msg if isinstance(msg, list) else [msg]:
                with self.cv:
                    if m.get("method") == "$/stream":
                        rid = m["params"]["id"]
                        self.first_stream.setdefault(rid, now)
                    elif "id" in m and m.get("method") is None:
                        self.final[m["id"]] = (now, m)
                    self.cv.notify_all()
        with self.cv:
            self.cv.notify_all()

    def _drain_stderr(self):
        for raw in self.proc.stderr:
            self.stderr_tail = (self.stderr_tail + [raw.decode("utf-8", "replace")])[-20:]

    def send(self, method, params=None):
        rid = self.next_id
        self.next_id += 1
        msg = {"jsonrpc": "2.0", "id": rid, "method": method}
        if params is not None:
            msg["params"] = params
        data = (json.dumps(msg, separators=(",", ":")) + "\n").encode()
        t0 = time.perf_counter()
        self.proc.stdin.write(data)
        self.proc.stdin.flush()
        return rid, t0

    def wait(self, rid, timeout, first_token_only=False):
        """Waits for the answer (or only the first $/stream) of rid."""
        deadline = time.monotonic() + timeout
        with self.cv:
            while rid not in self.final and not (first_token_only and rid in self.first_stream):
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    raise RuntimeError(f"no answer to request {rid} (wisp stderr: "
                                       f"{''.join(self.stderr_tail)[-2000:]})")
                self.cv.wait(left)

    def call(self, method, params=None, timeout=600):
        rid, _ = self.send(method, params)
        self.wait(rid, timeout)
        msg = self.final[rid][1]
        if "error" in msg:
            raise RuntimeError(f"{method}: {msg['error']}")
        return msg["result"]

    def close(self):
        try:
            self.call("shutdown", timeout=60)
            self.proc.stdin.write(b'{"jsonrpc":"2.0","method":"exit"}\n')
            self.proc.stdin.close()
            self.proc.wait(timeout=30)
        except (RuntimeError, OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()


# ------------------------------------------------------------- the replay

def percentile(values, p):
    """Nearest-rank percentile."""
    s = sorted(values)
    k = max(0, min(len(s) - 1, int(-(-p * len(s) // 100)) - 1))
    return s[k]


def synthesize(path, synth, vocab, ctx):
    cmd = [synth, "--arch", "llama", "--layers", "12", "--embd", "1024", "--heads", "16",
           "--kv-heads", "4", "--ff", "2816", "--tied", "--type", "q8_0", "--ctx", str(ctx),
           "--vocab", vocab, "--name", "code-200m-synthetic", "--out", path]
    print("synthesizing:", " ".join(cmd), file=sys.stderr)
    subprocess.run(cmd, check=True)


def replay(args):
    if args.file:
        doc = pathlib.Path(args.file).read_text()
        tail = ""
    else:
        full = generate_source(args.lines + args.tail_lines, args.seed).splitlines(keepends=True)
        doc, tail = "".join(full[:args.lines]), "".join(full[args.lines:])
    extra_src = generate_source(3 * args.extra_lines, args.seed + 1).splitlines(keepends=True)
    extra = [{"filename": f"lib/helpers_{i}.py",
              "text": "".join(extra_src[i * args.extra_lines:(i + 1) * args.extra_lines])}
             for i in range(args.extra_chunks)]
    points = pause_points(doc, args.pause)
    if args.max_requests:
        points = points[:args.max_requests]

    w = Wisp(args.wisp, args.model, args.ctx, args.threads)
    try:
        w.call("initialize", {"clientInfo": {"name": "keystroke-bench"}})
        status_before = w.call("status")
        sent = []        # (rid, t0, typed)
        t_type = time.perf_counter()
        for n, typed in enumerate(points):
            if args.cps > 0:   # the typist's own pace, independent of wisp
                prev = points[n - 1] if n else 0
                t_type += (typed - prev) / args.cps
                delay = t_type - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
            prefix, prompt, suffix = request_parts(doc, typed, tail)
            params = {
                "input_prefix": prefix, "input_suffix": suffix, "input_extra": extra,
                "prompt": prompt, "filename": "replay.py", "supersede": DOC_URI,
                "max_tokens": args.max_tokens, "temperature": 0, "seed": 1, "stream": True,
            }
            rid, t0 = w.send("infill", params)
            sent.append((rid, t0, typed))
            if args.cps <= 0:
                w.wait(rid, args.timeout)
        for rid, _, _ in sent:
            w.wait(rid, args.timeout)
        status_after = w.call("status")
    finally:
        w.close()
    return summarize(args, doc, points, sent, w, status_before, status_after)


def summarize(args, doc, points, sent, w, status_before, status_after):
    ttft, prefill, share, prompt_tok, cached_tok, hits = [], [], [], 0, 0, 0
    n_ok = n_cancelled = n_err = n_no_stream = 0
    errors = {}
    for rid, t0, _ in sent:
        t_end, msg = w.final[rid]
        if rid in w.first_stream:
            ttft.append((w.first_stream[rid] - t0) * 1000.0)
        if "error" in msg:
            code = msg["error"].get("code")
            if code == CANCELLED:
                n_cancelled += 1
            else:
                n_err += 1
                errors.setdefault(code, msg["error"].get("message"))
            continue
        n_ok += 1
        if rid not in w.first_stream:
            n_no_stream += 1   # an empty completion: first token was end-of-generation
            ttft.append((t_end - t0) * 1000.0)
        usage = msg["result"].get("usage", {})
        p, c = usage.get("prompt_tokens", 0), usage.get("cached_tokens", 0)
        prompt_tok += p
        cached_tok += c
        hits += c > 0
        prefill.append(p - c)
        if p:
            share.append(100.0 * (p - c) / p)

    def pc(s):
        return s.get("prefix_cache", {})

    out = {
        "model": args.model, "lines": doc.count("\n"), "chars": len(doc),
        "pause": args.pause, "requests": len(sent), "cps": args.cps,
        "answers": {"completed": n_ok, "cancelled": n_cancelled, "errors": n_err,
                    "without_stream": n_no_stream},
        "ttft_ms": {"median": statistics.median(ttft) if ttft else None,
                    "p95": percentile(ttft, 95) if ttft else None,
                    "first": ttft[0] if ttft else None, "n": len(ttft)},
        "prefill_tokens": {"mean": statistics.mean(prefill) if prefill else None,
                           "median": statistics.median(prefill) if prefill else None,
                           "mean_share_pct": statistics.mean(share) if share else None,
                           "median_share_pct": statistics.median(share) if share else None},
        "cache": {"token_hit_rate_pct": 100.0 * cached_tok / prompt_tok if prompt_tok else None,
                  "requests_hit_pct": 100.0 * hits / n_ok if n_ok else None,
                  "prefix_cache_hits": pc(status_after).get("hits", 0) - pc(status_before).get("hits", 0),
                  "prefix_cache_misses": pc(status_after).get("misses", 0) - pc(status_before).get("misses", 0)},
        "error_examples": errors,
    }
    return out


def fmt(v, spec=".1f"):
    return "-" if v is None else format(v, spec)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", help="GGUF code model with FIM tokens")
    ap.add_argument("--synth", metavar="PATH",
                    help="synthesize the ~200M model at PATH first (if missing) and use it")
    ap.add_argument("--synth-bin", default=DEFAULT_SYNTH)
    ap.add_argument("--vocab", default=DEFAULT_VOCAB, help="vocabulary for --synth")
    ap.add_argument("--wisp", default=DEFAULT_BIN)
    ap.add_argument("--ctx", type=int, default=4096)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--file", help="replay this file instead of the generated one")
    ap.add_argument("--lines", type=int, default=200)
    ap.add_argument("--tail-lines", type=int, default=20,
                    help="lines below the typed region, present from the start (the suffix)")
    ap.add_argument("--seed", type=int, default=8)
    ap.add_argument("--pause", choices=["word", "line", "char"], default="word")
    ap.add_argument("--cps", type=float, default=0.0,
                    help="typing speed in characters/s (0: wait for each answer)")
    ap.add_argument("--max-tokens", type=int, default=8)
    ap.add_argument("--max-requests", type=int, default=0)
    ap.add_argument("--extra-chunks", type=int, default=2)
    ap.add_argument("--extra-lines", type=int, default=32)
    ap.add_argument("--timeout", type=float, default=120.0)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if args.synth:
        if not os.path.exists(args.synth):
            synthesize(args.synth, args.synth_bin, args.vocab, args.ctx)
        args.model = args.synth
    if not args.model:
        ap.error("--model or --synth is required")

    r = replay(args)
    if args.json:
        print(json.dumps(r, indent=2))
        return 1 if r["answers"]["errors"] else 0
    a, t, p, c = r["answers"], r["ttft_ms"], r["prefill_tokens"], r["cache"]
    print(f"keystroke replay: {r['lines']} lines, {r['chars']} chars, {r['requests']} requests "
          f"(pause: {r['pause']}, cps: {r['cps'] or 'wait for each answer'}), model {r['model']}")
    print(f"TTFT ms:        median {fmt(t['median'])}  p95 {fmt(t['p95'])}  "
          f"(first request {fmt(t['first'])}, n={t['n']})")
    print(f"prefill/request: mean {fmt(p['mean'])} tokens, median {fmt(p['median'])}; "
          f"share of prompt re-prefilled: mean {fmt(p['mean_share_pct'])}%, "
          f"median {fmt(p['median_share_pct'])}%")
    print(f"cache:          {fmt(c['token_hit_rate_pct'])}% of prompt tokens cached, "
          f"{fmt(c['requests_hit_pct'])}% of requests hit; prefix_cache hits "
          f"{c['prefix_cache_hits']} misses {c['prefix_cache_misses']}")
    print(f"answers:        {a['completed']} completed ({a['without_stream']} empty), "
          f"{a['cancelled']} cancelled (superseded), {a['errors']} errors")
    for code, message in r["error_examples"].items():
        print(f"  error {code}: {message}")
    return 1 if a["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
