// The compiled extension (out/extension.js) loaded against the vscode stub,
// driving the real wisp binary on a FIM model.
//   WISP_BIN     the server (default ../../build/wisp)
//   WISP_SHARED  the fixtures (default ../../../shared): golden/syn-qwen2-dsc-q8_0.gguf,
//                random weights with DeepSeek-Coder's FIM tokens, deterministic under greedy
"use strict";
const test = require("node:test");
const assert = require("node:assert/strict");
const fs = require("fs");
const path = require("path");

const stub = require("./vscode-stub");
stub.__test.install();
const { state, reset, makeDocument, setSettings } = stub.__test;

const HERE = path.resolve(__dirname, "..");
const WISP_BIN = process.env.WISP_BIN || path.resolve(HERE, "../../build/wisp");
const SHARED = process.env.WISP_SHARED || path.resolve(HERE, "../../../shared");
const MODEL = path.join(SHARED, "golden", "syn-qwen2-dsc-q8_0.gguf");
const EXT = path.join(HERE, "out", "extension.js");

const missing = [WISP_BIN, MODEL, EXT].filter(p => !fs.existsSync(p));
const skip = missing.length ? `missing ${missing.join(", ")}` : false;

const CODE = [
    "import math",
    "",
    "def area(radius):",
    "    return math.pi * radius * radius",
    "",
    "def add(a, b):",
    "    ret",
    "",
    "print(add(1, 2))",
].join("\n");

function withTimeout(p, ms, what) {
    let t;
    return Promise.race([p, new Promise((_, rej) => { t = setTimeout(() => rej(new Error(`timed out: ${what}`)), ms); })])
        .finally(() => clearTimeout(t));
}

async function waitFor(cond, ms, what) {
    const end = Date.now() + ms;
    while (!cond()) {
        if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
        await new Promise(r => setTimeout(r, 20));
    }
}

// Activates a fresh copy of the extension with `settings`.
function activate(settings) {
    reset();
    Object.assign(state.settings, settings);
    delete require.cache[require.resolve(EXT)];
    const mod = require(EXT);
    const context = { subscriptions: [], extensionPath: HERE };
    const ext = mod.activate(context);
    ext.server.shutdownTimeoutMs = 30000;   // a loaded machine or a sanitizer build is slow to exit
    assert.equal(state.providers.length, 1, "activate registers one inline completion provider");
    return {
        mod, ext, context, provider: state.providers[0].provider,
        // Deactivates; a server that was running must have ended cleanly
        // (shutdown + exit: status 0; a sanitizer report would change it).
        async close() {
            const running = ext.server.proc !== undefined;
            for (const d of context.subscriptions) d.dispose();
            await withTimeout(mod.deactivate(), 30000, "deactivate");
            if (running) {
                assert.deepEqual(ext.server.lastExit, { code: 0, signal: null }, "wisp exited cleanly");
            }
        },
    };
}

const BASE = { "wisp.serverPath": WISP_BIN, "wisp.model": MODEL, "wisp.threads": 2, "wisp.maxTokens": 16 };
const doc = makeDocument("/work/project/calc.py", CODE);
const cursor = () => new stub.Position(6, 7);   // after "    ret"
const invoke = { triggerKind: stub.InlineCompletionTriggerKind.Invoke, selectedCompletionInfo: undefined };

async function status(ext) {
    return ext.server.request("status");
}

// `status` once every sequence the scheduler took has ended: its counters
// are a snapshot the engine thread publishes after a step, so right after
// an answer they may not count that request yet.
async function settledStatus(ext) {
    const end = Date.now() + 20000;
    for (;;) {
        const s = await status(ext);
        if (s.scheduler.submitted === s.scheduler.finished || Date.now() > end) return s;
        await new Promise(r => setTimeout(r, 50));
    }
}

test("a completion is returned for a document", { skip }, async () => {
    const a = activate(BASE);
    try {
        const cts = new stub.CancellationTokenSource();
        const items = await withTimeout(a.provider.provideInlineCompletionItems(doc, cursor(), invoke, cts.token),
                                        60000, "completion");
        assert.ok(Array.isArray(items) && items.length === 1, `one item, got ${JSON.stringify(items)}`);
        const item = items[0];
        assert.equal(typeof item.insertText, "string");
        assert.ok(item.insertText.trim().length > 0, "non-empty completion");
        assert.ok(item.range.start.isEqual(cursor()) && item.range.isEmpty, "inserted at the cursor");
        // The item is the server's text (cut at the first line end, nothing else changed here).
        const o = a.ext.lastOutcome;
        assert.equal(o.kind, "items");
        assert.ok(o.result.text.startsWith(item.insertText), "the item is wisp's completion");
        assert.equal(o.result.fim_family, "deepseek-coder");
        assert.ok(o.result.usage.prompt_tokens > 0);
        // The typed part of the line went as `prompt`, so it is counted apart from the prefix.
        assert.ok(o.result.prompt_parts.typed > 0 && o.result.prompt_parts.prefix > 0);
        // The load was shown with withProgress, the status bar names the model.
        assert.equal(state.progress.length, 1);
        assert.match(state.progress[0].title, /loading syn-qwen2-dsc-q8_0\.gguf/);
        assert.match(state.statusBarItems[0].text, /ms/);
        assert.deepEqual(state.errors, []);
        // Typed once more: same prefix, so the prompt comes from the cache.
        const again = await a.provider.provideInlineCompletionItems(doc, cursor(), invoke, cts.token);
        assert.deepEqual(again.map(i => i.insertText), items.map(i => i.insertText), "greedy is deterministic");
        assert.ok(a.ext.lastOutcome.result.usage.cached_tokens > 0, "the second request hits the prefix cache");
        // wisp.showStatus prints the server's counters.
        await state.commands.get("wisp.showStatus")();
        assert.ok(state.outputs[0].lines.some(l => l.includes("\"prefix_cache\"")), "status in the output channel");
    } finally {
        await a.close();
    }
});

test("a cancelled token yields no items and wisp answers -32800", { skip }, async () => {
    const a = activate({ ...BASE, "wisp.maxTokens": 1500, "wisp.tMaxPredictMs": 0 });
    try {
        // Start the server first so the counters can be read around the request.
        assert.ok(await a.ext.ensureServer());
        const before = await settledStatus(a.ext);
        const cts = new stub.CancellationTokenSource();
        a.ext.onRequestSent = () => cts.cancel();
        // wisp is stopped until the request and its cancel are both in the
        // pipe, so the request cannot end on its own first.
        const pid = a.ext.server.pid;
        process.kill(pid, "SIGSTOP");
        const call = a.provider.provideInlineCompletionItems(doc, cursor(), invoke, cts.token);
        await new Promise(r => setTimeout(r, 300));
        process.kill(pid, "SIGCONT");
        const items = await withTimeout(call, 60000, "cancelled completion");
        assert.equal(items, undefined, "nothing for a cancelled token");
        assert.equal(a.ext.lastOutcome.kind, "cancelled");
        assert.equal(a.ext.lastOutcome.code, -32800, "the server's answer was RequestCancelled");
        const after = await settledStatus(a.ext);
        assert.equal(after.requests.cancelled - before.requests.cancelled, 1);
        // A token cancelled before the call sends nothing at all.
        const gone = new stub.CancellationTokenSource();
        gone.cancel();
        assert.equal(await a.provider.provideInlineCompletionItems(doc, cursor(), invoke, gone.token), undefined);
        const last = await status(a.ext);
        assert.equal(last.requests.received - after.requests.received, 1, "only the status request arrived");
    } finally {
        await a.close();
    }
});

test("ten rapid calls, each cancelling the previous, compute one completion to the end", { skip }, async () => {
    const a = activate({ ...BASE, "wisp.maxTokens": 64, "wisp.tMaxPredictMs": 0 });
    try {
        assert.ok(await a.ext.ensureServer());
        const before = await settledStatus(a.ext);
        const outcomes = [];
        a.ext.onCompletionDone = o => outcomes.push(o);
        const calls = [];
        let prev;
        // The calls come faster than the server works: wisp is stopped
        // while they are written, so none can finish before the next one
        // and its cancel arrive (on a loaded machine a short generation
        // could otherwise win that race).
        const pid = a.ext.server.pid;
        process.kill(pid, "SIGSTOP");
        try {
            for (let i = 0; i < 10; i++) {
                const cts = new stub.CancellationTokenSource();
                const sent = new Promise(r => { a.ext.onRequestSent = r; });
                // The user typed one more character: the editor asks again and
                // cancels the previous request.
                const line = "    ret" + "urn a + b".slice(0, i);
                const d = makeDocument("/work/project/calc.py", CODE.replace("    ret\n", line + "\n"));
                calls.push(a.provider.provideInlineCompletionItems(d, new stub.Position(6, line.length), invoke, cts.token));
                await withTimeout(sent, 30000, `request ${i} sent`);
                if (prev) prev.cancel();
                prev = cts;
            }
            await new Promise(r => setTimeout(r, 300));   // the writes reach the pipe
        } finally {
            process.kill(pid, "SIGCONT");
        }
        const results = await withTimeout(Promise.all(calls), 60000, "ten completions");
        const after = await settledStatus(a.ext);
        assert.deepEqual(results.slice(0, 9), Array(9).fill(undefined), "the nine cancelled calls give nothing");
        assert.ok(Array.isArray(results[9]), "the last call answers");
        assert.equal(outcomes.filter(o => o.kind === "cancelled" && o.code === -32800).length, 9);
        // scheduler.finished counts every ended sequence, the cancelled ones too.
        const ran = (x) => x.scheduler.finished - x.scheduler.cancelled - x.scheduler.failed;
        assert.equal(ran(after) - ran(before), 1, "one generation ran to its end");
        assert.equal(after.requests.cancelled - before.requests.cancelled, 9, "nine answered -32800");
        assert.equal(after.requests.failed - before.requests.failed, 0);
    } finally {
        await a.close();
    }
});

test("a crashed server is restarted", { skip }, async () => {
    const a = activate(BASE);
    try {
        assert.ok(await a.ext.ensureServer());
        const pid = a.ext.server.pid;
        assert.ok(pid > 0);
        process.kill(pid, "SIGKILL");
        await waitFor(() => state.warnings.length > 0, 10000, "the crash notification");
        assert.match(state.warnings[0], /killed by SIGKILL; restarting/);
        await waitFor(() => a.ext.server.ready && a.ext.server.pid !== pid, 30000, "a new server");
        const cts = new stub.CancellationTokenSource();
        const items = await withTimeout(a.provider.provideInlineCompletionItems(doc, cursor(), invoke, cts.token),
                                        60000, "completion after restart");
        assert.ok(Array.isArray(items) && items.length === 1, `completions work again: ${JSON.stringify(a.ext.lastOutcome)}`);
        assert.deepEqual(state.errors, []);
        // wisp.restart replaces a healthy server too.
        const pid2 = a.ext.server.pid;
        await state.commands.get("wisp.restart")();
        assert.ok(a.ext.server.pid && a.ext.server.pid !== pid2);
        assert.equal(state.warnings.length, 1, "a requested restart is no crash");
    } finally {
        await a.close();
    }
    // deactivate ran shutdown/exit: the process is gone.
    assert.equal(a.ext.server.proc, undefined);
});

test("bad settings give a clear error message", { skip }, async (t) => {
    const cts = new stub.CancellationTokenSource();
    const cases = [
        [{ "wisp.serverPath": "/nonexistent/bin/wisp" },
         /the server binary `\/nonexistent\/bin\/wisp` \(setting `wisp\.serverPath`\) does not exist/],
        [{ "wisp.model": "/nonexistent/model.gguf" },
         /cannot load the model `\/nonexistent\/model\.gguf` \(setting `wisp\.model`\): .*No such file or directory/],
        [{ "wisp.model": "" }, /no model configured: set `wisp\.model`/],
    ];
    for (const [settings, expected] of cases) {
        const a = activate({ ...BASE, ...settings });
        try {
            const items = await withTimeout(a.provider.provideInlineCompletionItems(doc, cursor(), invoke, cts.token),
                                            30000, "failed start");
            assert.equal(items, undefined);
            assert.equal(state.errors.length, 1, `one message, got ${JSON.stringify(state.errors)}`);
            assert.match(state.errors[0], expected);
            assert.equal(a.ext.server.proc, undefined, "no process left behind");
            // Further calls stay quiet until the settings change.
            await a.provider.provideInlineCompletionItems(doc, cursor(), invoke, cts.token);
            assert.equal(state.errors.length, 1);
        } finally {
            await a.close();
        }
    }
    await t.test("fixing the setting restarts the server", async () => {
        const a = activate({ ...BASE, "wisp.model": "/nonexistent/model.gguf" });
        try {
            assert.equal(await a.provider.provideInlineCompletionItems(doc, cursor(), invoke, cts.token), undefined);
            setSettings({ "wisp.model": MODEL });
            await waitFor(() => a.ext.server.ready, 30000, "the restarted server");
            const items = await a.provider.provideInlineCompletionItems(doc, cursor(), invoke, cts.token);
            assert.ok(Array.isArray(items) && items.length === 1);
        } finally {
            await a.close();
        }
    });
    await t.test("serverPath empty: wisp is looked up on PATH", async () => {
        const { findBinary } = require(path.join(HERE, "out", "server.js"));
        assert.equal(findBinary("", path.dirname(WISP_BIN)), WISP_BIN);
        assert.equal(findBinary("", "/nonexistent"), undefined);
        assert.equal(findBinary(WISP_BIN, ""), WISP_BIN);
        const { expandHome } = require(path.join(HERE, "out", "server.js"));
        assert.equal(expandHome("~/m.gguf"), path.join(require("os").homedir(), "m.gguf"));
        assert.equal(expandHome("/a/~/b"), "/a/~/b");
    });
});
