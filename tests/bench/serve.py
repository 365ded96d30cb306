#!/usr/bin/python3
"""Serving benchmark: drives build/wisp over stdio the
way a client does and measures what the scheduler and the paged KV cache
give under load.

It reports:
  - aggregate generated tokens/s with 1, 4, 16 and 64 concurrent streams
    (--streams): N greedy `generate` requests with different prompts written
    at once, each producing exactly --max-tokens tokens (end-of-generation
    banned through logit_bias), timed from the first write to the last
    answer; with the median time to first token (first `$/stream`) and the
    per-stream decode rate;
  - time to first token of a prompt whose --prefix-tokens (2000) leading
    tokens are in the prefix cache against one whose prefix is not (the
    same length, a fresh prefix), from the server's timings.ttft_ms and the
    client's clock, with usage.cached_tokens;
  - KV memory waste while the streams run: `status` is sampled every
    --sample-ms; waste = kv_cache.unused_slots / (kv_cache.blocks_used *
    kv_cache.block_size), the empty slots in partially filled blocks over the
    slots the live sequences hold (vLLM's measure), as mean and max over the
    samples of each run; and in a separate mixed-length run (--mixed-streams
    concurrent requests, prompt and output lengths drawn at random between
    --mixed-prompt and --mixed-output, e.g. 64-256 and 128-384 tokens, near
    the ShareGPT averages of 161 in and 338 out that vLLM's figure comes
    from), which is what the goal is judged on: the fixed-length runs use
    short 33-token prompts, where the empty tail of the last block (at most
    15 slots) is a large share of a short sequence.
Goals on CPU: 16 streams >= 4x one stream; cached TTFT < 10% of
uncached; KV waste < 4%.

HOW TO RUN:

    make -j2
    # the ~200M Qwen2-layout model of the CPU benchmarks (dim 1024, 16 layers, 16/2
    # heads, ffn 2816, 32k vocabulary, tied output), Q8_0:
    /usr/bin/python3 tests/bench/serve.py --synth /tmp/qwen2-200m-q8_0.gguf --threads 2
    # or any model:
    /usr/bin/python3 tests/bench/serve.py --model models/stories260K.gguf --ctx 2560

  Options: --streams 1,4,16,64  --max-tokens 128  --prompt-tokens 32
  --prefix-tokens 2000  --ctx N (default: enough for the prefix test)
  --kv-mb N  --threads N  --device cpu|cuda  --json (machine-readable
  summary on stdout; the table goes to stderr)  --skip-ttft  --skip-throughput.

Standard library only; run with /usr/bin/python3.
"""
import argparse
import json
import os
import random
import statistics
import sys
import threading
import time

from benchlib import (DEFAULT_BIN, DEFAULT_SYNTH, DEFAULT_VOCAB, Wisp, fmt, random_prompt,
                      stop_on_signals, stop_started, synthesize_qwen2_200m, token_range)

TIMEOUT = 3600  # a bound on every request


def synthesize(path, synth, vocab, ctx):
    synthesize_qwen2_200m(path, synth, vocab, ["--type", "q8_0"],
                          ["--ctx", str(ctx), "--name", "qwen2-200m-synthetic"])


class Sampler(threading.Thread):
    """Polls `status` while streams run: KV waste and batch sizes."""

    def __init__(self, w, period):
        super().__init__(daemon=True)
        self.w, self.period = w, period
        self.stop = threading.Event()
        self.waste, self.running, self.blocks = [], [], []

    def run(self):
        while not self.stop.is_set():
            st = self.w.call("status", timeout=TIMEOUT)
            kv = st["kv_cache"]
            used = kv["blocks_used"] * kv.get("block_size", 16)
            if used and "unused_slots" in kv:
                self.waste.append(kv["unused_slots"] / used)
            self.running.append(st["requests"].get("running", 0))
            self.blocks.append(kv["blocks_used"])
            self.stop.wait(self.period)


def throughput(w, info, args, n_streams, rng, sample):
    """N concurrent streams of exactly max_tokens tokens each."""
    lo, hi, bos, eos = info["token_range"] + (info["bos"], info["eos"])
    bias = [[eos, False]] if eos is not None else []
    prompts = [random_prompt(rng, args.prompt_tokens, lo, hi, bos) for _ in range(n_streams)]
    sampler = Sampler(w, args.sample_ms / 1000.0) if sample else None
    if sampler:
        sampler.start()
    t0 = time.monotonic()
    sent = {}
    for p in prompts:
        rid = w.send("generate", {"prompt": p, "max_tokens": args.max_tokens, "temperature": 0,
                                  "logit_bias": bias})
        sent[rid] = time.monotonic()
    results = {rid: w.wait_message(rid, TIMEOUT) for rid in sent}
    t1 = max(t for t, _ in results.values())
    if sampler:
        sampler.stop.set()
        sampler.join()
    gen = 0
    ttft, rates = [], []
    for rid, (t, m) in results.items():
        if "error" in m:
            raise SystemExit(f"generate failed with {n_streams} streams: {m['error']}")
        r = m["result"]
        gen += r["usage"]["completion_tokens"]
        if rid in w.first:
            ttft.append((w.first[rid] - sent[rid]) * 1000)
        rates.append(r["timings"].get("decode_tokens_per_s", 0.0))
    out = {"streams": n_streams, "generated_tokens": gen, "wall_s": t1 - t0,
           "tokens_per_s": gen / (t1 - t0),
           "ttft_ms_median": statistics.median(ttft) if ttft else None,
           "stream_decode_tokens_per_s_median": statistics.median(rates)}
    if sampler:
        out["kv_waste_mean"] = statistics.fmean(sampler.waste) if sampler.waste else None
        out["kv_waste_max"] = max(sampler.waste) if sampler.waste else None
        out["kv_waste_samples"] = len(sampler.waste)
        out["running_max"] = max(sampler.running) if sampler.running else 0
        out["blocks_used_max"] = max(sampler.blocks) if sampler.blocks else 0
    return out


def mixed_waste(w, info, args, rng):
    """KV waste with prompt and output lengths drawn at random."""
    lo, hi, bos, eos = info["token_range"] + (info["bos"], info["eos"])
    bias = [[eos, False]] if eos is not None else []
    p_lo, p_hi = args.mixed_prompt
    o_lo, o_hi = args.mixed_output
    sampler = Sampler(w, args.sample_ms / 1000.0)
    sampler.start()
    t0 = time.monotonic()
    rids = []
    for _ in range(args.mixed_streams):
        prompt = random_prompt(rng, rng.randint(p_lo, p_hi), lo, hi, bos)
        rids.append(w.send("generate", {"prompt": prompt, "max_tokens": rng.randint(o_lo, o_hi),
                                        "temperature": 0, "logit_bias": bias}))
    gen = prompt_toks = 0
    for rid in rids:
        _, m = w.wait_message(rid, TIMEOUT)
        if "error" in m:
            raise SystemExit(f"mixed run failed: {m['error']}")
        gen += m["result"]["usage"]["completion_tokens"]
        prompt_toks += m["result"]["usage"]["prompt_tokens"]
    wall = time.monotonic() - t0
    sampler.stop.set()
    sampler.join()
    return {"streams": args.mixed_streams, "prompt_tokens": prompt_toks, "generated_tokens": gen,
            "wall_s": wall, "tokens_per_s": gen / wall,
            "kv_waste_mean": statistics.fmean(sampler.waste) if sampler.waste else None,
            "kv_waste_max": max(sampler.waste) if sampler.waste else None,
            "kv_waste_samples": len(sampler.waste)}


def prefix_ttft(w, info, args, rng):
    """TTFT with the prefix cached vs not, same prompt length."""
    lo, hi, bos, _ = info["token_range"] + (info["bos"], info["eos"])
    suffix_n = 16

    def one(prompt):
        t0 = time.monotonic()
        rid = w.send("generate", {"prompt": prompt, "max_tokens": 1, "temperature": 0})
        t, m = w.wait_message(rid, TIMEOUT)
        if "error" in m:
            raise SystemExit(f"prefix test: {m['error']}")
        r = m["result"]
        first = w.first.get(rid, t)
        return {"ttft_ms": r["timings"]["ttft_ms"], "client_ttft_ms": (first - t0) * 1000,
                "cached_tokens": r["usage"]["cached_tokens"],
                "prompt_tokens": r["usage"]["prompt_tokens"]}

    uncached, cached = [], []
    for _ in range(args.reps):
        prefix = random_prompt(rng, args.prefix_tokens - 1, lo, hi, bos)
        uncached.append(one(prefix + random_prompt(rng, suffix_n, lo, hi, None)))
        for _ in range(args.reps):
            cached.append(one(prefix + random_prompt(rng, suffix_n, lo, hi, None)))

    def med(rows, k):
        return statistics.median(r[k] for r in rows)

    out = {"prefix_tokens": args.prefix_tokens, "prompt_tokens": uncached[0]["prompt_tokens"],
           "uncached_ttft_ms": med(uncached, "ttft_ms"),
           "uncached_client_ttft_ms": med(uncached, "client_ttft_ms"),
           "uncached_cached_tokens": med(uncached, "cached_tokens"),
           "cached_ttft_ms": med(cached, "ttft_ms"),
           "cached_client_ttft_ms": med(cached, "client_ttft_ms"),
           "cached_cached_tokens": med(cached, "cached_tokens")}
    out["ratio"] = out["cached_ttft_ms"] / out["uncached_ttft_ms"]
    return out


def model_facts(info):
    tok = info.get("tokenizer", {})
    special = tok.get("special", {})
    vocab = info["vocab_size"]
    bos = special.get("bos") if tok.get("add_bos", True) else None
    return {"token_range": token_range(vocab), "bos": bos, "eos": special.get("eos"),
            "n_ctx": info["n_ctx"], "name": info.get("name"), "vocab_size": vocab}


def report(res, out):
    p = lambda *a: print(*a, file=out)
    m = res["model"]
    p(f"model {m['path']} ({m['name']}), threads {res['threads']}, ctx {m['n_ctx']}, "
      f"KV pool {m['kv_blocks']} blocks of {m['block_size']}")
    if res.get("throughput"):
        p("")
        p(f"{'streams':>7} {'tokens':>7} {'wall s':>8} {'agg tok/s':>10} {'x1':>6} "
          f"{'ttft ms':>8} {'tok/s/stream':>12} {'KV waste':>9} {'run max':>7}")
        base = res["throughput"][0]["tokens_per_s"]
        for r in res["throughput"]:
            waste = r.get("kv_waste_mean")
            p(f"{r['streams']:>7} {r['generated_tokens']:>7} {r['wall_s']:>8.2f} "
              f"{r['tokens_per_s']:>10.1f} {r['tokens_per_s'] / base:>6.2f} "
              f"{fmt(r['ttft_ms_median']):>8} {fmt(r['stream_decode_tokens_per_s_median']):>12} "
              f"{'-' if waste is None else format(waste * 100, '.2f') + '%':>9} "
              f"{r.get('running_max', '-'):>7}")
    if res.get("mixed"):
        x = res["mixed"]
        p("")
        p(f"mixed lengths: {x['streams']} streams, {x['prompt_tokens']} prompt + "
          f"{x['generated_tokens']} generated tokens in {x['wall_s']:.2f} s "
          f"({x['tokens_per_s']:.1f} tok/s); KV waste mean "
          f"{fmt(x['kv_waste_mean'] and x['kv_waste_mean'] * 100, '.2f')}%, max "
          f"{fmt(x['kv_waste_max'] and x['kv_waste_max'] * 100, '.2f')}% "
          f"over {x['kv_waste_samples']} samples")
    if res.get("prefix"):
        x = res["prefix"]
        p("")
        p(f"TTFT, {x['prompt_tokens']}-token prompt, {x['prefix_tokens']}-token prefix:")
        p(f"  uncached {x['uncached_ttft_ms']:.1f} ms (client {x['uncached_client_ttft_ms']:.1f}, "
          f"{x['uncached_cached_tokens']:.0f} cached)")
        p(f"  cached   {x['cached_ttft_ms']:.1f} ms (client {x['cached_client_ttft_ms']:.1f}, "
          f"{x['cached_cached_tokens']:.0f} cached)")
        p(f"  ratio    {x['ratio'] * 100:.1f}% (goal < 10%)")
    g = res.get("goals", {})
    if g:
        p("")
        for k, v in g.items():
            p(f"goal {k}: {v}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", help="GGUF file or HF directory")
    ap.add_argument("--synth", metavar="PATH",
                    help="synthesize the ~200M Qwen2-layout Q8_0 model at PATH (if missing) and use it")
    ap.add_argument("--synth-bin", default=DEFAULT_SYNTH)
    ap.add_argument("--vocab", default=DEFAULT_VOCAB, help="vocabulary for --synth")
    ap.add_argument("--wisp", default=DEFAULT_BIN)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--ctx", type=int, default=None,
                    help="context (default: prefix + 64, at least the prompt + max tokens)")
    ap.add_argument("--kv-mb", type=int, default=None)
    ap.add_argument("--device", default=None)
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--prompt-tokens", type=int, default=32)
    ap.add_argument("--streams", default="1,4,16,64")
    ap.add_argument("--prefix-tokens", type=int, default=2000)
    ap.add_argument("--reps", type=int, default=2, help="prefixes (and cached runs per prefix)")
    ap.add_argument("--sample-ms", type=float, default=50)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--mixed-streams", type=int, default=16,
                    help="concurrent requests of the mixed-length KV waste run (0: skip it)")
    ap.add_argument("--mixed-prompt", type=lambda v: tuple(int(x) for x in v.split("-")),
                    default=(64, 256), metavar="LO-HI", help="prompt lengths of the mixed run")
    ap.add_argument("--mixed-output", type=lambda v: tuple(int(x) for x in v.split("-")),
                    default=(128, 384), metavar="LO-HI", help="output lengths of the mixed run")
    ap.add_argument("--skip-ttft", action="store_true")
    ap.add_argument("--skip-throughput", action="store_true")
    ap.add_argument("--json", action="store_true", help="print a JSON summary on stdout")
    args = ap.parse_args()
    if args.synth:
        ctx = args.ctx or max(4096, args.prefix_tokens + 64)
        if not os.path.exists(args.synth):
            synthesize(args.synth, args.synth_bin, args.vocab, ctx)
        args.model = args.synth
    if not args.model:
        ap.error("--model or --synth is required")
    streams = [int(s) for s in args.streams.split(",") if s]
    ctx = args.ctx or max(args.prefix_tokens + 64, args.prompt_tokens + args.max_tokens + 2,
                          args.mixed_prompt[1] + args.mixed_output[1] + 2 if args.mixed_streams else 0)

    wargs = ["--model", args.model, "--ctx", str(ctx), "--log-level", "warn"]
    if args.threads:
        wargs += ["--threads", str(args.threads)]
    if args.kv_mb:
        wargs += ["--kv-mb", str(args.kv_mb)]
    if args.device:
        wargs += ["--device", args.device]
    stop_on_signals()
    w = Wisp(args.wisp, wargs)
    try:
        info = w.call("model/info", timeout=TIMEOUT)
        facts = model_facts(info)
        kv = w.call("status", timeout=TIMEOUT)["kv_cache"]
        res = {"model": {"path": args.model, "name": facts["name"], "n_ctx": info["n_ctx"],
                         "vocab_size": facts["vocab_size"], "kv_blocks": kv["blocks_total"],
                         "block_size": kv.get("block_size")},
               "threads": args.threads, "max_tokens": args.max_tokens,
               "prompt_tokens": args.prompt_tokens}
        rng = random.Random(args.seed)
        # Warm-up: page the weights in, start the pool's threads.
        w.call("generate", {"prompt": random_prompt(rng, 8, *facts["token_range"], facts["bos"]),
                            "max_tokens": 4, "temperature": 0}, timeout=TIMEOUT)
        if not args.skip_throughput:
            res["throughput"] = []
            for i, n in enumerate(streams):
                r = throughput(w, facts, args, n, rng, sample=True)
                res["throughput"].append(r)
                print(f"{n} streams: {r['tokens_per_s']:.1f} tok/s", file=sys.stderr)
            if args.mixed_streams:
                res["mixed"] = mixed_waste(w, facts, args, rng)
        if not args.skip_ttft:
            res["prefix"] = prefix_ttft(w, facts, args, rng)
        res["status"] = w.call("status", timeout=TIMEOUT)
    finally:
        w.close()
        stop_started()

    goals = {}
    tp = {r["streams"]: r for r in res.get("throughput", [])}
    if 1 in tp and 16 in tp:
        x = tp[16]["tokens_per_s"] / tp[1]["tokens_per_s"]
        goals["16 streams >= 4x one stream"] = f"{x:.2f}x ({'met' if x >= 4 else 'NOT met'})"
    if res.get("prefix"):
        x = res["prefix"]["ratio"]
        goals["cached TTFT < 10% of uncached"] = \
            f"{x * 100:.1f}% ({'met' if x < 0.10 else 'NOT met'})"
    mixed = res.get("mixed", {}).get("kv_waste_mean")
    if mixed is not None:
        goals["KV waste < 4% (mixed lengths)"] = \
            f"{mixed * 100:.2f}% ({'met' if mixed < 0.04 else 'NOT met'})"
    res["goals"] = goals
    report(res, sys.stderr if args.json else sys.stdout)
    if args.json:
        json.dump(res, sys.stdout, indent=1)
        print()


if __name__ == "__main__":
    main()
