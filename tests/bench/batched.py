#!/usr/bin/python3
"""Batched decode benchmark: wisp against llama.cpp's llama-server, side by side.

For each model it starts build/wisp (JSON-RPC over stdio) and llama-server
(HTTP on 127.0.0.1, continuous batching, as many slots as the largest stream
count) and, alternating between the two for every stream count, runs N
concurrent greedy streams (N in --streams, default 1,2,4,8,16,32) with
different random --prompt-tokens (32) token prompts, each generating exactly
--max-tokens (64) tokens: the end-of-generation token and every control /
user-defined token of the vocabulary, and every byte-level token that is
not whole UTF-8 characters, are banned with logit_bias on both sides
(random-weight models would otherwise emit them, and llama-server then ends
a request with "does not match the expected Content-only format"); llama-
server runs with --reasoning-format none, wisp with a KV pool (--kv-mb) that
holds every stream at once, as llama-server's slots x context does.
Two rates per side: tok/s = generated tokens / (last answer - first
request), prompts included; decode = the tokens that arrive while all N
streams decode (after the last stream's first token, up to the first
stream's last token) over that window, timestamped as they stream in
($/stream on wisp, server-sent events on llama-server). The prefill goals
compare the decode rate, which the prompts' share does not dilute.

It also reports, for wisp:
  - pp256: prefill tokens/s from `wisp bench -p 256 -n 0` on the same file
    and thread count, and each stream count's decode rate as a share of it
    (the goals: 16 streams >= 70%, 8 streams >= 55%);
  - time to first token of a new 32-token request, idle and while --ttft-load
    (16) other streams decode (the goal: under load < 2x idle); the median of
    --ttft-reps probes, each sent once every loaded stream has its first
    token, so right after a step began: the client's time includes that
    step, the server's timings.ttft_ms (printed below it) does not.

HOW TO RUN (from the repository root, after `make -j2 && make tools`):

    /usr/bin/python3 tests/bench/batched.py --threads 2
    # models are synthesized on first use (the ~200M Qwen2 layout of
    # tests/bench/run.sh: dim 1024, 16 layers, 16/2 heads, ffn 2816,
    # deepseek-coder's 32256-token vocabulary, tied output) as
    # /tmp/wisp-bench-qwen2-200m-{q4_0,q4_k_m,q8_0,f16}.gguf; or pass --model
    /usr/bin/python3 tests/bench/batched.py --types q4_k_m --streams 1,16 --skip-llama

  Options: --types q4_0,q4_k_m,q8_0,f16  --model PATH (repeatable; instead of
  --types)  --streams 1,2,4,8,16,32  --max-tokens 64  --prompt-tokens 32
  --threads 2  --kv-mb 512  --llama-server PATH  --skip-llama  --skip-ttft
  --skip-pp  --pp-reps 3  --ttft-load 16  --ttft-reps 5  --model-dir /tmp
  --timeout S (a bound on every request, default 600)  --json.

Both servers are started and stopped by this script (only the PIDs it
started are ever signalled, also on SIGINT/SIGTERM); the machine should be
otherwise quiet, since the numbers are wall-clock: each row prints the load
average before it. llama-server's spinning threads collapse on an
oversubscribed machine (a few tokens/s at load 10 on 2 cores), far more
than wisp's, so a ratio taken under load says little. Standard library only; run with /usr/bin/python3.
"""
import argparse
import json
import os
import random
import socket
import statistics
import struct
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

from benchlib import (DEFAULT_BIN, DEFAULT_SYNTH, DEFAULT_VOCAB, SHARED, STARTED, Wisp, fmt,
                      load_avg, random_prompt, stop_on_signals, stop_started,
                      synthesize_qwen2_200m, token_range)

DEFAULT_LLAMA = str(SHARED / "oracle" / "llama.cpp" / "llama-server")


# ---------------------------------------------------------------- GGUF

GGUF_SCALAR = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q",
               12: "d"}


def gguf_tokenizer(path):
    """tokenizer.ggml.{model, tokens, token_type} of a GGUF file."""
    with open(path, "rb") as f:
        data = f.read(64 << 20)  # the metadata comes first and is far smaller

    off = 0

    def take(fmt):
        nonlocal off
        v = struct.unpack_from("<" + fmt, data, off)
        off += struct.calcsize("<" + fmt)
        return v[0]

    def string():
        nonlocal off
        n = take("Q")
        s = data[off:off + n]
        off += n
        return s

    def value(t, keep):
        nonlocal off
        if t in GGUF_SCALAR:
            return take(GGUF_SCALAR[t])
        if t == 8:
            return string() if keep else (string(), None)[1]
        if t == 9:
            et, n = take("I"), take("Q")
            if et in GGUF_SCALAR and keep:
                fmt = "<%d%s" % (n, GGUF_SCALAR[et])
                v = list(struct.unpack_from(fmt, data, off))
                off += struct.calcsize(fmt)
                return v
            if et in GGUF_SCALAR:
                off += n * struct.calcsize("<" + GGUF_SCALAR[et])
                return None
            items = [value(et, keep) for _ in range(n)]
            return items if keep else None
        raise ValueError(f"{path}: GGUF value type {t}")

    if data[:4] != b"GGUF":
        raise ValueError(f"{path}: not a GGUF file")
    off = 4
    take("I")
    take("Q")
    n_kv = take("Q")
    want = ("tokenizer.ggml.model", "tokenizer.ggml.tokens", "tokenizer.ggml.token_type")
    out = {}
    for _ in range(n_kv):
        key = string().decode()
        t = take("I")
        v = value(t, key in want)
        if key in want:
            out[key.split(".")[-1]] = v
    return out


def gpt2_byte_decoder():
    """GPT-2 byte-level BPE: the printable character standing for each byte."""
    bs = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs)}


def banned_tokens(path, eos):
    """EOS, every token that is not normal text or a byte (types 2-5:
    unknown, control, user-defined, unused) and, for byte-level BPE, every
    token whose bytes are not whole UTF-8 characters: llama-server refuses
    a completion that ends inside a character ("does not match the expected
    Content-only format"), which random weights hit within a few hundred
    tokens."""
    tk = gguf_tokenizer(path)
    types = tk.get("token_type") or []
    ids = {i for i, t in enumerate(types) if t in (2, 3, 4, 5)}
    if tk.get("model") == b"gpt2" and tk.get("tokens"):
        dec = gpt2_byte_decoder()
        for i, tok in enumerate(tk["tokens"]):
            try:
                bytes(dec[c] for c in tok.decode("utf-8")).decode("utf-8")
            except (KeyError, UnicodeDecodeError):
                ids.add(i)
    if eos is not None:
        ids.add(eos)
    return sorted(ids)


# ---------------------------------------------------------------- wisp

def decode_rate(arrivals):
    """Tokens/s while every stream decodes: the tokens that arrive after the
    last stream's first token and up to the first stream's last token, over
    that window (None when the window is empty)."""
    t_a = max(a[0][0] for a in arrivals)
    t_b = min(a[-1][0] for a in arrivals)
    if t_b <= t_a:
        return None
    n = sum(k for a in arrivals for t, k in a if t_a < t <= t_b)
    return n / (t_b - t_a)


def wisp_streams(w, prompts, max_tokens, bias, timeout):
    """(generated tokens, wall seconds, steady decode tokens/s)."""
    t0 = time.monotonic()
    rids = [w.send("generate", {"prompt": p, "max_tokens": max_tokens, "temperature": 0,
                                "logit_bias": bias, "stream": True}) for p in prompts]
    gen, t1 = 0, t0
    for rid in rids:
        t, r = w.wait(rid, timeout)
        gen += r["usage"]["completion_tokens"]
        t1 = max(t1, t)
    with w.cv:
        arr = [w.arrivals.pop(rid, []) for rid in rids]
    return gen, t1 - t0, decode_rate(arr) if all(arr) else None


def wisp_ttft(w, rng, args, bias, lo, hi, load):
    """Client-side time to the first $/stream of a new request, with `load`
    streams decoding (each past its first token) when it is sent, and the
    server's timings.ttft_ms (from the scheduler's submit, which waits for
    the step in flight to end, to the first token): medians of both."""
    out, server = [], []
    for _ in range(args.ttft_reps):
        bg = []
        if load:
            bg = [w.send("generate", {"prompt": random_prompt(rng, args.prompt_tokens, lo, hi),
                                      "max_tokens": args.ttft_load_tokens, "temperature": 0,
                                      "logit_bias": bias})
                  for _ in range(load)]
            w.wait_for(lambda: all(r in w.first for r in bg), args.timeout, "first tokens")
        t0 = time.monotonic()
        rid = w.send("generate", {"prompt": random_prompt(rng, args.prompt_tokens, lo, hi),
                                  "max_tokens": 2, "temperature": 0, "logit_bias": bias})
        w.wait_for(lambda: rid in w.first, args.timeout, "first token of the probe")
        out.append((w.first[rid] - t0) * 1000)
        running = len([r for r in bg if r not in w.answers])
        server.append(w.wait(rid, args.timeout)[1]["timings"]["ttft_ms"])
        for r in bg:
            w.wait(r, args.timeout)
        if load and running < load:
            print(f"  note: only {running} of {load} load streams were still running when the "
                  f"probe's first token came (raise --ttft-load-tokens)", file=sys.stderr)
    return statistics.median(out), statistics.median(server)


# ---------------------------------------------------------------- llama-server

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Llama:
    def __init__(self, binary, model, threads, slots, ctx_per_slot, timeout):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cmd = [binary, "-m", model, "-t", str(threads), "-tb", str(threads), "-np", str(slots),
               "-c", str(slots * ctx_per_slot), "--host", "127.0.0.1", "--port", str(self.port),
               "-cb", "--no-webui", "--reasoning-format", "none"]
        self.log = open(f"/tmp/batched-llama-{os.getpid()}.log", "wb")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=subprocess.STDOUT)
        STARTED.append(self.proc)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise SystemExit(f"llama-server exited ({self.proc.returncode}); see {self.log.name}")
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=5) as r:
                    if r.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"llama-server did not come up within {timeout}s")
            time.sleep(0.5)

    def complete(self, prompt, max_tokens, bias, timeout):
        """Streams one completion: (tokens predicted, [(time, tokens)] of its
        chunks)."""
        body = json.dumps({"prompt": prompt, "n_predict": max_tokens, "temperature": 0,
                           "top_k": 1, "logit_bias": bias, "ignore_eos": True,
                           "cache_prompt": False, "stream": True}).encode()
        req = urllib.request.Request(self.url + "/completion", data=body,
                                     headers={"Content-Type": "application/json"})
        arrivals, predicted = [], 0
        with urllib.request.urlopen(req, timeout=timeout) as r:
            for line in r:
                if not line.startswith(b"data: "):
                    continue
                now = time.monotonic()
                m = json.loads(line[6:])
                if "error" in m:
                    raise RuntimeError(m["error"])
                if m.get("tokens"):
                    arrivals.append((now, len(m["tokens"])))
                predicted = m.get("tokens_predicted", predicted)
                if m.get("stop"):
                    break
        return predicted, arrivals

    def close(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def llama_streams(ls, prompts, max_tokens, bias, timeout):
    res, errs = [None] * len(prompts), []

    def one(i):
        try:
            res[i] = (ls.complete(prompts[i], max_tokens, bias, timeout), time.monotonic())
        except Exception as e:  # reported below, after every thread is done
            errs.append(repr(e))

    th = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(len(prompts))]
    t0 = time.monotonic()
    for t in th:
        t.start()
    for t in th:
        t.join(timeout)
    if errs or any(r is None for r in res):
        raise SystemExit(f"llama-server: {errs[:3] or 'no answer in time'}")
    gen = sum(r[0] for r, _ in res)
    arr = [r[1] for r, _ in res]
    return gen, max(t for _, t in res) - t0, decode_rate(arr) if all(arr) else None


# ---------------------------------------------------------------- driver

def synthesize(path, synth, vocab, t):
    kind = ["--recipe", t] if t.endswith("_k_m") else ["--type", t]
    synthesize_qwen2_200m(path, synth, vocab, kind,
                          ["--rope-base", "1000000", "--name", f"qwen2-200m-{t}"])


def pp256(args, model):
    cmd = [args.wisp, "bench", "-m", model, "-p", "256", "-n", "0", "-r", str(args.pp_reps),
           "-t", str(args.threads), "--json"]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=args.timeout)
    for line in out.stdout.splitlines():
        line = line.strip()
        if line.startswith("{"):
            pp = json.loads(line).get("pp") or {}
            if pp.get("tokens_per_s"):
                return pp["tokens_per_s"]
    raise SystemExit(f"wisp bench printed no pp result:\n{out.stdout}\n{out.stderr}")


def bench_model(args, model, streams):
    rng = random.Random(args.seed)
    res = {"model": model, "threads": args.threads, "rows": []}
    n_ctx = args.prompt_tokens + max(args.max_tokens, args.ttft_load_tokens) + 8
    w = Wisp(args.wisp, ["--model", model, "--ctx", str(n_ctx), "--threads", str(args.threads),
                         "--kv-mb", str(args.kv_mb), "--log-level", "warn"])
    ls = None
    try:
        info = w.call("model/info")
        sp = info["tokenizer"]["special"]
        ban = banned_tokens(model, sp.get("eos"))
        bias = [[t, False] for t in ban]
        vocab = info["vocab_size"]
        lo, hi = token_range(vocab)
        res["banned_tokens"] = len(ban)
        res["model_name"] = info.get("name")
        res["tensor_types"] = info.get("tensor_types")
        if not args.skip_llama:
            ls = Llama(args.llama_server, model, args.threads, max(streams), n_ctx, args.timeout)
        # warm-up: page the weights in on both sides
        wisp_streams(w, [random_prompt(rng, args.prompt_tokens, lo, hi)], 8, bias, args.timeout)
        if ls:
            llama_streams(ls, [random_prompt(rng, args.prompt_tokens, lo, hi)], 8, bias,
                          args.timeout)
        for n in streams:
            prompts = [random_prompt(rng, args.prompt_tokens, lo, hi) for _ in range(n)]
            row = {"streams": n, "load_before": load_avg()}
            gen, wall, dec = wisp_streams(w, prompts, args.max_tokens, bias, args.timeout)
            if gen != n * args.max_tokens:
                raise SystemExit(f"wisp generated {gen} tokens, expected {n * args.max_tokens}")
            row["wisp_tokens_per_s"], row["wisp_decode_tokens_per_s"] = gen / wall, dec
            if ls:
                gen, wall, dec = llama_streams(ls, prompts, args.max_tokens, bias, args.timeout)
                if gen != n * args.max_tokens:
                    raise SystemExit(f"llama-server generated {gen} tokens, expected "
                                     f"{n * args.max_tokens}")
                row["llama_tokens_per_s"], row["llama_decode_tokens_per_s"] = gen / wall, dec
            row["load_after"] = load_avg()
            res["rows"].append(row)
            print(f"  {n:>2} streams: wisp {row['wisp_tokens_per_s']:.1f} tok/s "
                  f"(decode {fmt(row['wisp_decode_tokens_per_s'])})"
                  + (f", llama-server {row['llama_tokens_per_s']:.1f} "
                     f"(decode {fmt(row['llama_decode_tokens_per_s'])})" if ls else "")
                  + f" (load {row['load_before']:.2f})", file=sys.stderr)
        if ls:
            ls.close()
            ls = None
        if not args.skip_ttft:
            res["ttft_idle_ms"], res["server_ttft_idle_ms"] = wisp_ttft(w, rng, args, bias, lo,
                                                                         hi, 0)
            res["ttft_load_ms"], res["server_ttft_load_ms"] = wisp_ttft(w, rng, args, bias, lo,
                                                                         hi, args.ttft_load)
            res["ttft_load_streams"] = args.ttft_load
            res["ttft_prompt_tokens"] = args.prompt_tokens
    finally:
        if ls:
            ls.close()
        w.close()
    if not args.skip_pp:
        res["pp256_tokens_per_s"] = pp256(args, model)
    res["load"] = load_avg()
    return res


def report(all_res, out):
    p = lambda *a: print(*a, file=out)
    for res in all_res:
        pp = res.get("pp256_tokens_per_s")
        p("")
        p(f"{res['model']} ({res['model_name']}), {res['threads']} threads, "
          f"{res['banned_tokens']} tokens banned"
          + (f", wisp pp256 {pp:.1f} tok/s" if pp else ""))
        p("tok/s: generated tokens over the wall time from the first request to the last "
          "answer (prompts included);")
        p("decode: tokens/s while all N streams decode (after the last first token, before "
          "the first stream ends)")
        p(f"{'streams':>7} | {'wisp tok/s':>10} {'decode':>8} {'% pp256':>8} | {'llama tok/s':>11}"
          f" {'decode':>8} | {'wisp/llama':>10} {'decode':>7} | {'load':>5}")
        for r in res["rows"]:
            wt, lt = r["wisp_tokens_per_s"], r.get("llama_tokens_per_s")
            wd, ld = r.get("wisp_decode_tokens_per_s"), r.get("llama_decode_tokens_per_s")
            share = f"{wd / pp * 100:.1f}%" if pp and wd else "-"
            p(f"{r['streams']:>7} | {wt:>10.1f} {fmt(wd):>8} {share:>8} | "
              f"{fmt(lt):>11} {fmt(ld):>8} | {(f'{wt / lt:.2f}' if lt else '-'):>10} "
              f"{(f'{wd / ld:.2f}' if wd and ld else '-'):>7} | {r['load_before']:>5.2f}")
        if "ttft_idle_ms" in res:
            a, b = res["ttft_idle_ms"], res["ttft_load_ms"]
            p(f"TTFT of a new {res['ttft_prompt_tokens']}-token request: idle {a:.1f} ms, with "
              f"{res['ttft_load_streams']} streams decoding {b:.1f} ms ({b / a:.2f}x; goal < 2x)")
            a, b = res["server_ttft_idle_ms"], res["server_ttft_load_ms"]
            p(f"  server side (after the step in flight): idle {a:.1f} ms, loaded {b:.1f} ms "
              f"({b / a:.2f}x)")
        rows = {r["streams"]: r for r in res["rows"]}
        if pp:
            for n, goal in ((16, 0.70), (8, 0.55)):
                if n in rows and rows[n].get("wisp_decode_tokens_per_s"):
                    x = rows[n]["wisp_decode_tokens_per_s"] / pp
                    y = rows[n]["wisp_tokens_per_s"] / pp
                    p(f"goal {n} streams' decode >= {goal:.0%} of pp256: {x:.1%} "
                      f"({'met' if x >= goal else 'NOT met'}; wall tok/s incl. prompts {y:.1%})")
        ratios = [r["wisp_tokens_per_s"] / r["llama_tokens_per_s"] for r in res["rows"]
                  if r.get("llama_tokens_per_s")]
        if ratios:
            p(f"goal >= 1.5x llama-server at every stream count: min {min(ratios):.2f}x "
              f"({'met' if min(ratios) >= 1.5 else 'NOT met'})")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--types", default="q4_0,q4_k_m,q8_0,f16")
    ap.add_argument("--model", action="append", help="a GGUF file (instead of --types)")
    ap.add_argument("--model-dir", default="/tmp", help="where --types models live")
    ap.add_argument("--synth-bin", default=DEFAULT_SYNTH)
    ap.add_argument("--vocab", default=DEFAULT_VOCAB)
    ap.add_argument("--wisp", default=DEFAULT_BIN)
    ap.add_argument("--llama-server", default=DEFAULT_LLAMA)
    ap.add_argument("--skip-llama", action="store_true")
    ap.add_argument("--skip-ttft", action="store_true")
    ap.add_argument("--skip-pp", action="store_true")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--streams", default="1,2,4,8,16,32")
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--prompt-tokens", type=int, default=32)
    ap.add_argument("--pp-reps", type=int, default=3)
    ap.add_argument("--kv-mb", type=int, default=512,
                    help="wisp's KV pool: room for every stream at once (llama-server gets "
                         "slots x context)")
    ap.add_argument("--ttft-load", type=int, default=16)
    ap.add_argument("--ttft-load-tokens", type=int, default=96,
                    help="tokens each load stream generates (must outlast the probe)")
    ap.add_argument("--ttft-reps", type=int, default=5)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=600)
    ap.add_argument("--json", action="store_true", help="a JSON summary on stdout")
    args = ap.parse_args()
    stop_on_signals()
    streams = [int(s) for s in args.streams.split(",") if s]
    models = args.model or []
    if not models:
        for t in args.types.split(","):
            path = os.path.join(args.model_dir, f"wisp-bench-qwen2-200m-{t}.gguf")
            if not os.path.exists(path):
                synthesize(path, args.synth_bin, args.vocab, t)
            models.append(path)
    if not args.skip_llama and not os.access(args.llama_server, os.X_OK):
        print(f"llama-server {args.llama_server} is missing: --skip-llama assumed",
              file=sys.stderr)
        args.skip_llama = True
    print(f"CPU {open('/proc/cpuinfo').read().split('model name')[1].split(':')[1].splitlines()[0].strip()}"
          f", {os.cpu_count()} logical cores, load {load_avg():.2f}", file=sys.stderr)
    all_res = []
    try:
        for m in models:
            print(f"{m}:", file=sys.stderr)
            all_res.append(bench_model(args, m, streams))
    finally:
        stop_started()
    report(all_res, sys.stderr if args.json else sys.stdout)
    if args.json:
        json.dump(all_res, sys.stdout, indent=1)
        print()


if __name__ == "__main__":
    main()
