#!/usr/bin/python3
"""Keystroke-to-ghost-text benchmark of the Neovim plugin (clients/nvim).

Where keystroke.py measures wisp over the pipe, this one measures what a
Neovim user sees: a headless Neovim with the plugin types the same
generated Python file (keystroke.py's generate_source) into a real buffer,
key by key at --cps characters per second, above --tail-lines lines that
are there from the start, with two other files visited first (the plugin's
repository-context ring picks chunks from them). The plugin auto-triggers
as it would for a user (debounce, supersede, type-through). At every pause
(the end of a word) the typist waits for the suggestion and reads it to
its end (the request completes) before typing on.

It reports:
  - keystroke -> first ghost character: from nvim_feedkeys of the last key
    before a pause to the plugin drawing the first character of the new
    suggestion (its User WispSuggestionShown event), median and p95
    (nearest rank); pauses where the suggestion already shown still
    matched (type-through, no request) and pauses without a suggestion are
    counted apart;
  - the share of prompt tokens served from wisp's prefix cache, over the
    completed infill requests (usage.cached_tokens / usage.prompt_tokens),
    and the server's prefix-cache hit share over all requests, the
    superseded ones included (`status` prefix_cache hit_tokens /
    query_tokens);
  - requests sent, completed, superseded by the next keystroke.

HOW TO RUN:

    make -j2
    /usr/bin/python3 tests/bench/nvim_keystroke.py --synth /tmp/code200m.gguf --threads 2

  (--synth makes keystroke.py's ~190M StarCoder-vocabulary model on first
  use; or --model M.gguf.) Options: --cps, --pauses (stop after N pauses,
  default 200), --debounce-ms, --max-tokens, --lines, --json.

Standard library only; needs nvim (Debian: neovim).
"""
import argparse
import json
import os
import pathlib
import shutil
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import keystroke  # noqa: E402  (generate_source, synthesize, percentile)

ROOT = pathlib.Path(__file__).resolve().parents[2]
PLUGIN = ROOT / "clients" / "nvim"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model")
    ap.add_argument("--synth", metavar="PATH")
    ap.add_argument("--synth-bin", default=keystroke.DEFAULT_SYNTH)
    ap.add_argument("--vocab", default=keystroke.DEFAULT_VOCAB)
    ap.add_argument("--wisp", default=keystroke.DEFAULT_BIN)
    ap.add_argument("--nvim", default=shutil.which("nvim") or "nvim")
    ap.add_argument("--ctx", type=int, default=4096)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--lines", type=int, default=200)
    ap.add_argument("--tail-lines", type=int, default=20)
    ap.add_argument("--seed", type=int, default=8)
    ap.add_argument("--cps", type=float, default=15.0)
    ap.add_argument("--pauses", type=int, default=200)
    ap.add_argument("--debounce-ms", type=int, default=30)
    ap.add_argument("--max-tokens", type=int, default=16)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if args.synth:
        if not os.path.exists(args.synth):
            keystroke.synthesize(args.synth, args.synth_bin, args.vocab, args.ctx)
        args.model = args.synth
    if not args.model:
        ap.error("--model or --synth is required")

    full = keystroke.generate_source(args.lines + args.tail_lines, args.seed).splitlines(keepends=True)
    doc, tail = "".join(full[:args.lines]), "".join(full[args.lines:])
    extra_src = keystroke.generate_source(64, args.seed + 1).splitlines(keepends=True)
    with tempfile.TemporaryDirectory(prefix="wisp-nvim-bench-") as tmp:
        tmp = pathlib.Path(tmp)
        (tmp / "replay.py").write_text(doc)
        (tmp / "tail.py").write_text(tail)
        extras = []
        for i in range(2):
            p = tmp / "lib" / f"helpers_{i}.py"
            p.parent.mkdir(exist_ok=True)
            p.write_text("".join(extra_src[i * 32:(i + 1) * 32]))
            extras.append(str(p))
        cmd = [os.path.abspath(args.wisp), "--model", os.path.abspath(args.model), "--ctx", str(args.ctx)]
        if args.threads:
            cmd += ["--threads", str(args.threads)]
        out = tmp / "result.json"
        env = dict(os.environ, WISP_BENCH_CMD=json.dumps(cmd), WISP_BENCH_DOC=str(tmp / "replay.py"),
                   WISP_BENCH_TAIL=str(tmp / "tail.py"), WISP_BENCH_EXTRA=json.dumps(extras),
                   WISP_BENCH_OUT=str(out), WISP_BENCH_CPS=str(args.cps),
                   WISP_BENCH_PAUSES=str(args.pauses), WISP_BENCH_DEBOUNCE=str(args.debounce_ms),
                   WISP_BENCH_MAX_TOKENS=str(args.max_tokens), HOME=str(tmp))
        nv = [args.nvim, "--headless", "-u", "NONE", "-i", "NONE", "-n", "--cmd", f"set rtp^={PLUGIN}",
              "-c", f"luafile {PLUGIN / 'bench' / 'replay.lua'}"]
        p = subprocess.run(nv, cwd=tmp, env=env, capture_output=True, timeout=3600)
        if not out.exists():
            print(f"nvim wrote no result (status {p.returncode}):\n{p.stderr.decode(errors='replace')}",
                  file=sys.stderr)
            return 1
        r = json.loads(out.read_text())
    if "error" in r:
        print("benchmark failed:", r["error"], file=sys.stderr)
        return 1
    s = r["samples_ms"]
    summary = {
        "model": args.model, "threads": args.threads, "nvim": r["nvim"], "cps": r["cps"],
        "debounce_ms": r["debounce_ms"], "max_tokens": r["max_tokens"], "pauses": r["pauses"],
        "typed_chars": r["typed_chars"], "elapsed_s": r["elapsed_s"],
        "key_to_ghost_ms": {"median": statistics.median(s) if s else None,
                            "p95": keystroke.percentile(s, 95) if s else None,
                            "min": min(s) if s else None, "max": max(s) if s else None, "n": len(s)},
        "pauses_by_kind": r["kinds"],
        "requests": {k: r[k] for k in ("requests", "completed", "superseded", "cancelled", "errors")},
        "cache": {"prompt_tokens": r["prompt_tokens"], "cached_tokens": r["cached_tokens"],
                  "cached_share_pct": 100.0 * r["cached_tokens"] / r["prompt_tokens"] if r["prompt_tokens"] else None},
        "ring": r.get("ring"),
    }
    pc0 = (r.get("server_status_before") or {}).get("prefix_cache", {})
    pc1 = (r.get("server_status") or {}).get("prefix_cache", {})
    q = pc1.get("query_tokens", 0) - pc0.get("query_tokens", 0)
    hit = pc1.get("hit_tokens", 0) - pc0.get("hit_tokens", 0)
    summary["server_prefix_cache"] = {"query_tokens": q, "hit_tokens": hit,
                                      "hit_share_pct": 100.0 * hit / q if q else None}
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    k, q, c = summary["key_to_ghost_ms"], summary["requests"], summary["cache"]
    f = keystroke.fmt
    print(f"nvim {r['nvim']} keystroke replay: {r['typed_chars']} chars typed at {r['cps']} cps, "
          f"{r['pauses']} pauses, debounce {r['debounce_ms']} ms, max_tokens {r['max_tokens']}, "
          f"model {args.model}, threads {args.threads or 'default'}")
    print(f"key -> first ghost char ms: median {f(k['median'])}  p95 {f(k['p95'])}  "
          f"(min {f(k['min'])}, max {f(k['max'])}, n={k['n']})")
    print(f"pauses: {r['kinds']['request']} new suggestion, {r['kinds']['type_through']} typed-through, "
          f"{r['kinds']['none']} without suggestion")
    print(f"requests: {q['requests']} sent, {q['completed']} completed, {q['superseded']} superseded, "
          f"{q['cancelled']} cancelled, {q['errors']} errors")
    print(f"cache: {f(c['cached_share_pct'])}% of prompt tokens served from cache "
          f"({c['cached_tokens']} of {c['prompt_tokens']}, completed requests' usage)")
    spc = summary["server_prefix_cache"]
    print(f"server prefix cache over all requests (superseded included): "
          f"{f(spc['hit_share_pct'])}% of {spc['query_tokens']} looked-up tokens hit")
    return 0


if __name__ == "__main__":
    sys.exit(main())
