// The ring buffer's rules and the request split, without a server.
"use strict";
const test = require("node:test");
const assert = require("node:assert/strict");
const path = require("path");

const OUT = path.resolve(__dirname, "..", "out");
const { RingBuffer, chunkSimilarity } = require(path.join(OUT, "ring.js"));
const { localContext, insertTextFor } = require(path.join(OUT, "context.js"));

const lines = (n, tag) => Array.from({ length: n }, (_, i) => `${tag} line ${i}`);
const docOf = (text) => {
    const l = text.split("\n");
    return { lineCount: l.length, lineAt: (i) => ({ text: l[i] }) };
};

test("Dice similarity over lines", () => {
    assert.equal(chunkSimilarity(["a", "b"], ["a", "b"]), 1);
    assert.equal(chunkSimilarity(["a", "b"], ["c", "d"]), 0);
    assert.equal(chunkSimilarity(["a", "b", "c", "d"], ["a", "b", "x", "y"]), 0.5);
    assert.equal(chunkSimilarity([], []), 1);
});

test("picks: small chunks ignored, long text cut to half a chunk, duplicates dropped", () => {
    const r = new RingBuffer({ nChunks: 2, chunkSize: 8, maxQueued: 3 }, () => 0);
    r.pick(["a", "b"], "f.py", true);
    assert.equal(r.queued.length, 0, "under 3 lines");
    r.pick(lines(20, "x"), "f.py", true);
    assert.deepEqual(r.queued[0].lines, lines(4, "x"), "a window of chunkSize / 2 lines");
    assert.equal(r.queued[0].text, lines(4, "x").join("\n") + "\n");
    r.pick(lines(20, "x"), "f.py", true);
    assert.equal(r.queued.length, 1, "the same chunk is not queued twice");
    r.pick(lines(5, "short"), "g.py", true);
    assert.deepEqual(r.queued[1].lines, lines(5, "short"), "shorter than chunkSize - 1: whole");
});

test("similar picks evict (or are dropped without eviction)", () => {
    const r = new RingBuffer({ nChunks: 4, chunkSize: 64, maxQueued: 16 });
    const base = lines(20, "y");
    r.pick(base, "a.py", true);
    r.update();
    const near = [...base.slice(0, 19), "changed"];   // 19 of 20 lines shared: 0.95
    r.pick(near, "a.py", false);
    assert.equal(r.queued.length, 0, "without eviction the new chunk is dropped");
    r.pick(near, "a.py", true);
    assert.equal(r.chunks.length, 0, "with eviction the old chunk goes");
    assert.equal(r.queued.length, 1);
    assert.equal(r.evicted, 1);
});

test("queue and ring are bounded FIFOs; chunks near the cursor are evicted", () => {
    const r = new RingBuffer({ nChunks: 2, chunkSize: 64, maxQueued: 2 });
    for (const t of ["a", "b", "c"]) r.pick(lines(5, t), `${t}.py`, true);
    assert.deepEqual(r.queued.map(c => c.filename), ["b.py", "c.py"], "the oldest queued chunk dropped");
    r.pick(lines(5, "d"), "d.py", true);
    while (r.update()) { /* drain */ }
    assert.deepEqual(r.extra().map(c => c.filename), ["c.py", "d.py"], "ring keeps the newest, oldest first");
    r.evictSimilar([...lines(5, "c").slice(0, 3), "x", "y"]);   // 3 of 5 shared: 0.6 > 0.5
    assert.deepEqual(r.extra().map(c => c.filename), ["d.py"]);
    // a queued copy of the cursor's code goes too, or the next update
    // would bring it back into the ring
    r.pick(lines(5, "e"), "e.py", true);
    r.pick(lines(5, "f"), "f.py", true);
    assert.equal(r.evictSimilar(lines(5, "e")), 1);
    assert.deepEqual(r.queued.map(c => c.filename), ["f.py"]);
    while (r.update()) { /* drain */ }
    assert.deepEqual(r.extra().map(c => c.filename), ["d.py", "f.py"]);
    const off = new RingBuffer({ nChunks: 0, chunkSize: 64, maxQueued: 2 });
    off.pick(lines(5, "a"), "a.py", true);
    assert.equal(off.queued.length, 0, "nChunks 0 turns extra context off");
});

test("request split: prefix lines, typed part as prompt, suffix, indentation", () => {
    const d = docOf("a = 1\ndef f(x):\n    return x\n\nb = 2");
    const c = localContext(d, 2, 10, 256, 64);
    assert.equal(c.prefix, "a = 1\ndef f(x):\n");
    assert.equal(c.prompt, "    return");
    assert.equal(c.suffix, " x\n\nb = 2\n");
    assert.equal(c.indent, 4);
    const blank = localContext(docOf("def f():\n    \nx"), 1, 4, 256, 64);
    assert.equal(blank.prompt, "", "a blank line sends no prompt");
    assert.equal(blank.indent, 0);
    assert.equal(localContext(d, 2, 10, 1, 1).prefix, "def f(x):\n", "n_prefix bounds the prefix");
});

test("completion clean-up", () => {
    const d = docOf("def f():\n    ret\nprint(f())");
    const c = localContext(d, 1, 7, 256, 64);
    assert.equal(insertTextFor("urn 1\n\n", c, "", "print(f())"), "urn 1", "trailing blank lines dropped");
    assert.equal(insertTextFor("  \n", c, "", undefined), undefined, "whitespace only");
    const mid = localContext(docOf("x = foo(a)"), 0, 8, 256, 64);
    assert.equal(insertTextFor("b, a)\nmore", mid, "", undefined), "b, ", "mid-line: first line, cut before the line's rest");
    const blank = localContext(docOf("def f():\n    \nx"), 1, 4, 256, 64);
    assert.equal(insertTextFor("    return 1", blank, "    ", "x"), "return 1", "typed indentation not repeated");
    assert.equal(insertTextFor("x", blank, "    ", "    x"), undefined, "repeats the next line");
});
