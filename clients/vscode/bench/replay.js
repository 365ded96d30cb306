#!/usr/bin/env node
// Replayed typing session through the extension: the time from a
// provideInlineCompletionItems call to its items, and the share of prompt
// tokens wisp took from its prefix cache.
//
// Loads the compiled extension (out/) against the test stub of `vscode`,
// types a generated Python file one character at a time above a tail of
// code that is already there, and calls the provider at every word end
// (VS Code asks on every keystroke; a word end is where a typist pauses,
// as in tests/bench/keystroke.py). Two other files are "saved" first so the
// context ring buffer holds chunks of them (input_extra).
//
//   npm run compile
//   node bench/replay.js --model /tmp/code200m.gguf [--threads 2] [--max-requests 200]
//       [--cps 0]   characters per second; 0 waits for each answer (default),
//                   >0 types at that pace: calls overlap and each one cancels
//                   the previous, as VS Code does
//       [--json]
//
// Synthesize the ~200M code model first (see tests/bench/keystroke.py):
//   build/tools/synth --arch llama --layers 12 --embd 1024 --heads 16 --kv-heads 4 \
//       --ff 2816 --tied --type q8_0 --ctx 4096 \
//       --vocab ../shared/vocab/ggml-vocab-starcoder.gguf --out /tmp/code200m.gguf
"use strict";
const path = require("path");
const stub = require("../test/vscode-stub");
stub.__test.install();
const { state, reset, makeDocument } = stub.__test;

const HERE = path.resolve(__dirname, "..");

function parseArgs(argv) {
    const a = { model: "", wisp: process.env.WISP_BIN || path.resolve(HERE, "../../build/wisp"),
                threads: 0, maxRequests: 0, cps: 0, lines: 200, tailLines: 20, seed: 8,
                maxTokens: 8, json: false, ctx: 4096 };
    for (let i = 2; i < argv.length; i++) {
        const k = argv[i];
        const v = () => argv[++i];
        if (k === "--model") a.model = v();
        else if (k === "--wisp") a.wisp = v();
        else if (k === "--threads") a.threads = Number(v());
        else if (k === "--max-requests") a.maxRequests = Number(v());
        else if (k === "--cps") a.cps = Number(v());
        else if (k === "--lines") a.lines = Number(v());
        else if (k === "--max-tokens") a.maxTokens = Number(v());
        else if (k === "--ctx") a.ctx = Number(v());
        else if (k === "--json") a.json = true;
        else throw new Error(`unknown option ${k}`);
    }
    if (!a.model) throw new Error("--model is required");
    return a;
}

// A deterministic xorshift, so every run types the same file.
function rng(seed) {
    let x = seed >>> 0 || 1;
    return () => { x ^= x << 13; x >>>= 0; x ^= x >> 17; x ^= x << 5; x >>>= 0; return x / 4294967296; };
}

// Ordinary Python: functions with docstrings, loops, conditionals.
function generateSource(nLines, seed) {
    const r = rng(seed);
    const pick = (xs) => xs[Math.floor(r() * xs.length)];
    const names = ["count", "total", "value", "index", "item", "result", "limit", "offset",
                   "width", "height", "scale", "score", "weight", "delta", "step", "size"];
    const ops = ["+", "-", "*", "//", "%"];
    const out = ['"""Replay source for the VS Code benchmark."""', "import math", ""];
    for (let fn = 1; out.length < nLines; fn++) {
        const a = pick(names);
        let b = pick(names);
        while (b === a) b = pick(names);
        out.push(`def compute_${fn}(${a}, ${b}):`, `    """Combine ${a} and ${b} into a score."""`);
        const acc = pick(names);
        out.push(`    ${acc} = ${a} ${pick(ops)} ${1 + Math.floor(r() * 9)}`);
        for (let k = 1 + Math.floor(r() * 3); k > 0; k--) {
            const v = pick(names);
            out.push(`    for ${v} in range(${b}):`, `        if ${v} % ${2 + Math.floor(r() * 6)} == 0:`,
                     `            ${acc} ${pick(ops)}= ${v}`, "        else:",
                     `            ${acc} = math.floor(${acc} / ${2 + Math.floor(r() * 4)})`);
        }
        out.push(`    return ${acc}`, "");
    }
    return out.slice(0, nLines);
}

function percentile(xs, p) {
    const s = [...xs].sort((x, y) => x - y);
    return s[Math.max(0, Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1))];
}

async function main() {
    const args = parseArgs(process.argv);
    reset();
    Object.assign(state.settings, {
        "wisp.serverPath": args.wisp, "wisp.model": args.model, "wisp.threads": args.threads,
        "wisp.args": ["--ctx", String(args.ctx)], "wisp.maxTokens": args.maxTokens,
    });
    const mod = require(path.join(HERE, "out", "extension.js"));
    const context = { subscriptions: [], extensionPath: HERE };
    const ext = mod.activate(context);
    const provider = state.providers[0].provider;
    const t0 = Date.now();
    if (!(await ext.ensureServer())) {
        throw new Error(`wisp did not start: ${state.errors.join("; ")}`);
    }
    const loadMs = Date.now() - t0;

    // Two other files the user saved: their chunks enter the ring.
    const helpers = generateSource(96, args.seed + 1);
    for (let i = 0; i < 2; i++) {
        const d = makeDocument(`/work/project/lib/helpers_${i}.py`, helpers.slice(i * 48, (i + 1) * 48).join("\n"));
        state.onDidSaveTextDocument.fire(d);
    }
    while (ext.ring.update()) { /* as the idle timer would */ }

    const all = generateSource(args.lines + args.tailLines, args.seed);
    const text = all.slice(0, args.lines).join("\n") + "\n";
    const tail = all.slice(args.lines).join("\n");
    let points = [];
    for (let i = 1; i < text.length; i++) {
        if ((text[i] === " " || text[i] === "\n") && !/\s/.test(text[i - 1])) points.push(i + 1);
    }
    if (args.maxRequests) points = points.slice(0, args.maxRequests);

    const latencies = [];
    const serverMs = [];      // wisp's own timings.total_ms (arrival to answer)
    let prompt = 0, cached = 0, items = 0, empty = 0, cancelled = 0, errors = 0;
    const record = (o) => {
        if (o.kind === "cancelled") { cancelled++; return; }
        if (o.kind === "error") { errors++; return; }
        if (o.kind !== "items" && o.kind !== "empty") return;
        latencies.push(o.ms);
        serverMs.push(o.result.timings.total_ms);
        o.kind === "items" ? items++ : empty++;
        prompt += o.result.usage.prompt_tokens;
        cached += o.result.usage.cached_tokens;
    };
    ext.onCompletionDone = record;
    const statusBefore = await ext.server.request("status");
    const pending = [];
    let prev;
    const start = performance.now();
    for (let n = 0; n < points.length; n++) {
        const typed = points[n];
        if (args.cps > 0) {
            const due = start + (typed / args.cps) * 1000;
            const wait = due - performance.now();
            if (wait > 0) await new Promise(r => setTimeout(r, wait));
        }
        const before = text.slice(0, typed);
        const doc = makeDocument("/work/project/replay.py", before + "\n" + tail);
        const lines = before.split("\n");
        const pos = new stub.Position(lines.length - 1, lines[lines.length - 1].length);
        const cts = new stub.CancellationTokenSource();
        const call = provider.provideInlineCompletionItems(
            doc, pos, { triggerKind: stub.InlineCompletionTriggerKind.Automatic }, cts.token);
        if (args.cps > 0) {
            if (prev) prev.cancel();
            prev = cts;
            pending.push(call);
        } else {
            await call;
        }
    }
    await Promise.all(pending);
    const statusAfter = await ext.server.request("status");
    for (const d of context.subscriptions) d.dispose();
    await mod.deactivate();

    const median = percentile(latencies, 50);
    const summary = {
        model: args.model, model_name: ext.server.modelInfo?.name, threads: args.threads || "default",
        load_ms: loadMs, requests: points.length, cps: args.cps, max_tokens: args.maxTokens,
        answered: latencies.length, items, empty, cancelled, errors,
        call_to_items_ms: { median, p95: percentile(latencies, 95), min: Math.min(...latencies),
                            max: Math.max(...latencies) },
        server_total_ms: { median: percentile(serverMs, 50), p95: percentile(serverMs, 95) },
        client_overhead_ms_median: percentile(latencies.map((x, i) => x - serverMs[i]), 50),
        cached_token_share_pct: prompt ? (100 * cached) / prompt : null,
        prompt_tokens_mean: latencies.length ? prompt / latencies.length : null,
        prefix_cache_hits: statusAfter.prefix_cache.hits - statusBefore.prefix_cache.hits,
        prefix_cache_misses: statusAfter.prefix_cache.misses - statusBefore.prefix_cache.misses,
        ring_chunks: ext.ring.chunks.length,
    };
    if (args.json) {
        console.log(JSON.stringify(summary, null, 2));
    } else {
        const f = (x) => x === null || x === undefined ? "-" : x.toFixed(1);
        console.log(`replay: ${summary.requests} provider calls (cps ${args.cps || "wait for each answer"}), `
            + `model ${summary.model_name} (${args.model}), threads ${summary.threads}`);
        console.log(`call -> items ms: median ${f(median)}  p95 ${f(summary.call_to_items_ms.p95)}  `
            + `min ${f(summary.call_to_items_ms.min)}  max ${f(summary.call_to_items_ms.max)}`);
        console.log(`wisp's total_ms: median ${f(summary.server_total_ms.median)}  p95 ${f(summary.server_total_ms.p95)}; `
            + `extension + pipes overhead: median ${f(summary.client_overhead_ms_median)} ms`);
        console.log(`cached prompt tokens: ${f(summary.cached_token_share_pct)}% `
            + `(mean prompt ${f(summary.prompt_tokens_mean)} tokens, ${summary.ring_chunks} ring chunks)`);
        console.log(`answers: ${items} with items, ${empty} empty, ${cancelled} cancelled, ${errors} errors`);
    }
    process.exitCode = errors ? 1 : 0;
}

main().catch(e => { console.error(e); process.exit(1); });
