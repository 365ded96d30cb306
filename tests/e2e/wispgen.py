"""Helpers for the generation end-to-end tests (test_generate, test_parity,
test_batching, test_cache_persist): fixtures from $WISP_SHARED, llama.cpp's
reference outputs, and a Server that multiplexes many in-flight requests
over one conftest Client.

Why a multiplexer: conftest's Client.response() waits for one id and keeps
everything else in a backlog, which suits one request at a time. Batching
tests keep dozens of generations in flight, cancel some at chosen moments
and must see, per request, every `$/stream` in order and exactly one
answer. Server.pump() reads one message and files it under its request, so
the checks below hold for every request of every test:
- `$/stream` indexes count 0, 1, 2, ... with no gap;
- no `$/stream` comes after its request's answer, and no request is
  answered twice;
- every text piece is valid UTF-8 (a lone surrogate escape fails here);
- streamed text and tokens concatenate to the final ones (or, when
  cancelled, are a prefix of the partial output in the error's data).
"""
import json
import os
import pathlib
import time

import pytest

from conftest import ROOT, TIMEOUT

SHARED = pathlib.Path(os.environ.get("WISP_SHARED") or (ROOT.parent / "shared"))
THREADS = os.environ.get("WISP_TEST_THREADS", "2")
DEVICE = os.environ.get("WISP_DEVICE")

CANCELLED = -32800
INVALID_PARAMS = -32602
NEVER_FITS = -31003


# ---------------------------------------------------------------- fixtures
def shared_file(rel):
    """Path of a fixture under $WISP_SHARED; skips the test when missing."""
    p = SHARED / rel
    if not p.is_file():
        pytest.skip(f"fixture missing: {p} (set WISP_SHARED)")
    return p


def stories_path():
    """The bundled default model (models/ in the repo), else the shared copy."""
    bundled = ROOT / "models" / "stories260K.gguf"
    return bundled if bundled.is_file() else shared_file("models/stories260K.gguf")


def reference_of(model):
    """llama.cpp's outputs beside a model file (see golden/README.md)."""
    ref = pathlib.Path(model).with_suffix(".json")
    if not ref.is_file():
        pytest.skip(f"reference missing: {ref}")
    return json.loads(ref.read_text())


def parity_models():
    """Every model with a reference in golden/ and models/ (names relative to
    $WISP_SHARED); an empty list still yields one id that skips."""
    out = []
    for sub in ("golden", "models"):
        d = SHARED / sub
        if d.is_dir():
            out += [f"{sub}/{p.name}" for p in sorted(d.glob("*.gguf"))
                    if p.with_suffix(".json").is_file()]
    return out or ["golden/(none: set WISP_SHARED)"]


def tolerance_of(model_name):
    """golden/README.md: 0.05 for F32/F16/Q8_0, 0.1 for 4-bit types."""
    name = model_name.lower()
    return 0.1 if any(q in name for q in ("q4_", "q4k", "q5_", "q3_", "q2_")) else 0.05


def story_text():
    """The 60-token greedy continuation quoted in $WISP_SHARED/models/README.md
    (the indented block after 'must continue:')."""
    readme = shared_file("models/README.md").read_text()
    lines = readme.split("must continue:", 1)[1].split("\n")
    block = []
    for line in lines[1:]:
        if line.startswith("    "):
            block.append(line[4:])
        elif block:
            break
    assert block, "models/README.md no longer quotes the story"
    return "\n".join(block)


def server_args(model, ctx=None, kv_mb=None, cache_dir=None, threads=THREADS, extra=()):
    args = ["--model", str(model), "--threads", str(threads)]
    if ctx is not None:
        args += ["--ctx", str(ctx)]
    if kv_mb is not None:
        args += ["--kv-mb", str(kv_mb)]
    if cache_dir is not None:
        args += ["--cache-dir", str(cache_dir)]
    if DEVICE:
        args += ["--device", DEVICE]
    return args + list(extra)


def start(wisp, model, **kw):
    """A Server on a wisp started with --model (and the given options)."""
    return Server(wisp(*server_args(model, **kw)))


def valid_utf8(s):
    try:
        s.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def common_prefix(a, b):
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


# ---------------------------------------------------------------- requests
class Gen:
    """One generate request: its params, streamed pieces and its answer."""

    def __init__(self, id, params):
        self.id = id
        self.params = params
        self.streams = []
        self.result = None
        self.error = None
        self.t_sent = time.monotonic()
        self.t_first = None
        self.t_done = None
        self.t_cancel = None

    @property
    def done(self):
        return self.result is not None or self.error is not None

    @property
    def streamed_text(self):
        return "".join(s["text"] for s in self.streams)

    @property
    def streamed_tokens(self):
        return [t for s in self.streams for t in s["tokens"]]

    @property
    def tokens(self):
        return self.result["tokens"]

    @property
    def text(self):
        return self.result["text"]

    def code(self):
        return self.error["code"] if self.error else None

    def __repr__(self):
        what = self.result if self.result is not None else self.error
        return f"Gen(id={self.id!r}, params={self.params!r}, answer={what!r})"


class Server:
    """Many requests in flight on one Client; see the module comment."""

    def __init__(self, client):
        self.c = client
        self.gens = {}       # json id -> Gen
        self.others = {}     # json id -> response of a non-generate request
        self.stray = []      # notifications for no known request

    @staticmethod
    def _key(id):
        return json.dumps(id)

    # ---- reading
    def pump(self, timeout):
        """Reads and files one message; False when none came in time."""
        try:
            m = self.c.recv(timeout)
        except AssertionError as e:
            if "no message from wisp within" in str(e):
                return False
            raise
        if m is None:
            raise AssertionError("wisp closed stdout; stderr:\n" + self.c.stderr_text())
        assert isinstance(m, dict), f"unexpected batch answer {m!r}"
        now = time.monotonic()
        if m.get("method") == "$/stream":
            p = m["params"]
            g = self.gens.get(self._key(p["id"]))
            assert g is not None, f"$/stream for an id no generate carried: {m!r}"
            assert not g.done, f"$/stream after the answer of {g.id!r}: {m!r}"
            assert p["index"] == len(g.streams), \
                f"$/stream index {p['index']} after {len(g.streams)} pieces for {g.id!r}"
            assert valid_utf8(p["text"]), f"$/stream text is not valid UTF-8: {p['text']!r}"
            assert g.params.get("stream", True), f"$/stream for a stream:false request: {m!r}"
            if g.t_first is None:
                g.t_first = now
            g.streams.append(p)
        elif "method" in m:
            if m["method"] != "$/progress":
                self.stray.append(m)
        else:
            key = self._key(m.get("id"))
            g = self.gens.get(key)
            if g is None:
                assert key not in self.others, f"second answer to {m.get('id')!r}: {m!r}"
                self.others[key] = m
                return True
            assert not g.done, f"second answer to {g.id!r}: {m!r} (first: {g!r})"
            g.t_done = now
            if "error" in m:
                g.error = m["error"]
            else:
                g.result = m["result"]
                assert valid_utf8(g.result["text"]), f"final text is not valid UTF-8: {m!r}"
        return True

    def wait(self, gens, timeout=TIMEOUT):
        """Pumps until every Gen in gens is answered; returns them."""
        gens = list(gens)
        deadline = time.monotonic() + timeout
        while not all(g.done for g in gens):
            left = deadline - time.monotonic()
            if left <= 0:
                pending = [g.id for g in gens if not g.done]
                raise AssertionError(f"no answer within {timeout}s for {pending}; stderr:\n"
                                     + self.c.stderr_text()[-4000:])
            self.pump(left)
        for g in gens:
            check_pieces(g)
        return gens

    # ---- writing
    def submit(self, id=None, **params):
        """Sends a generate request; returns its Gen without waiting."""
        rid = self.c.request("generate", params, id=id)
        g = Gen(rid, params)
        self.gens[self._key(rid)] = g
        return g

    def cancel(self, g):
        g.t_cancel = time.monotonic()
        self.c.notify("$/cancelRequest", {"id": g.id})

    def generate(self, timeout=TIMEOUT, **params):
        """Runs one generate to its answer (result or error)."""
        return self.wait([self.submit(**params)], timeout)[0]

    def ok(self, timeout=TIMEOUT, **params):
        """Runs one generate and asserts it succeeded."""
        g = self.generate(timeout=timeout, **params)
        assert g.result is not None, f"generate failed: {g!r}"
        return g

    def call(self, method, params=None, timeout=TIMEOUT):
        """Any other request, answered while generations keep being filed."""
        key = self._key(self.c.request(method, params))
        deadline = time.monotonic() + timeout
        while key not in self.others:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no answer to {method} within {timeout}s; stderr:\n"
                                     + self.c.stderr_text()[-4000:])
            self.pump(left)
        return self.others.pop(key)

    def result(self, method, params=None, timeout=TIMEOUT):
        r = self.call(method, params, timeout)
        assert "result" in r, f"{method} {params!r} failed: {r!r}"
        return r["result"]

    def tokenize(self, text):
        """Tokens exactly as generate tokenizes a text prompt."""
        return self.result("tokenize", {"text": text, "add_special": True,
                                        "parse_special": True})["tokens"]

    def detokenize(self, tokens):
        return self.result("detokenize", {"tokens": list(tokens)})["text"]

    def status(self):
        return self.result("status")

    def settled_status(self, timeout=5.0):
        """status once no sequence is live: no block held by a sequence.
        Fails when blocks stay used (a leak) past the timeout."""
        deadline = time.monotonic() + timeout
        while True:
            st = self.status()
            live = st["kv_cache"]["blocks_used"]
            running = st["requests"].get("running", 0) + st["requests"].get("waiting", 0)
            if live == 0 and running == 0:
                kv = st["kv_cache"]
                if "blocks_free" in kv and "blocks_cached" in kv:
                    assert kv["blocks_free"] + kv["blocks_cached"] == kv["blocks_total"], \
                        f"idle, yet blocks are neither free nor cached: {kv!r}"
                return st
            if time.monotonic() > deadline:
                raise AssertionError(f"KV blocks still held with nothing in flight: {st!r}")
            time.sleep(0.05)


def check_pieces(g):
    """Stream/answer consistency of one answered request."""
    if g.result is not None:
        r = g.result
        if g.params.get("stream", True):
            assert g.streamed_text == r["text"], \
                f"{g.id!r}: streamed text {g.streamed_text!r} != final {r['text']!r}"
            assert g.streamed_tokens == r["tokens"], \
                f"{g.id!r}: streamed tokens {g.streamed_tokens} != final {r['tokens']}"
            if "probs" in r:
                sp = [p for s in g.streams for p in s.get("probs", [])]
                assert sp == r["probs"], f"{g.id!r}: streamed probs differ from the final ones"
        else:
            assert not g.streams
    elif g.error["code"] == CANCELLED and isinstance(g.error.get("data"), dict):
        d = g.error["data"]
        assert valid_utf8(d["text"])
        assert d["text"].startswith(g.streamed_text), \
            f"{g.id!r}: streamed {g.streamed_text!r} is not a prefix of the partial {d['text']!r}"
        assert d["tokens"][:len(g.streamed_tokens)] == g.streamed_tokens, \
            f"{g.id!r}: streamed tokens are not a prefix of the partial tokens"
