"""`generate` through the protocol on real models: the stories260K story
token for token, streaming, sampling parameters, stop strings, end of
generation, UTF-8 across tokens, refusals, and cancellation in prefill and
decode. Every message is schema-checked by conftest; every request's stream
is checked against its answer by wispgen.Server."""
import json
import math
import os
import pathlib
import random
import subprocess
import time

import pytest

from conftest import error_of

TOOLS = os.environ.get("WISP_TOOLS", str(pathlib.Path(__file__).resolve().parents[2] / "build" / "tools"))
from wispgen import (CANCELLED, INVALID_PARAMS, NEVER_FITS, shared_file, start, stories_path,
                     story_text, valid_utf8)

PROMPT = "Once upon a time"
EOS = 2                      # stories260K and llama-2 SentencePiece vocabs
TIMING_KEYS = ("ttft_ms", "queue_ms", "prefill_ms", "decode_ms", "total_ms",
               "prefill_tokens_per_s", "decode_tokens_per_s")
GREEDY = {"temperature": 0}


@pytest.fixture
def ref():
    return json.loads(shared_file("models/stories260K.json").read_text())


@pytest.fixture
def stories(wisp):
    return start(wisp, stories_path(), ctx=512)


@pytest.fixture
def tiny(wisp):
    return start(wisp, shared_file("models/llama-2-tiny-random.gguf"), ctx=512)


# ------------------------------------------------------------ the story
def test_story_greedy_exact(stories, ref):
    assert stories.tokenize(PROMPT) == ref["prompt_ids"]
    g = stories.ok(prompt=PROMPT, max_tokens=60, **GREEDY)
    r = g.result
    assert r["text"] == story_text()
    assert r["tokens"] == ref["greedy_ids"]
    assert r["finish_reason"] == "length"
    assert r["usage"]["prompt_tokens"] == len(ref["prompt_ids"])
    assert r["usage"]["completion_tokens"] == 60
    assert r["usage"]["cached_tokens"] == 0          # a fresh process has nothing cached
    assert len(g.streams) >= 2, "a 60-token generation came in fewer than 2 $/stream pieces"
    for k in TIMING_KEYS:
        assert k in r["timings"], f"timings lacks {k}: {r['timings']!r}"
        assert r["timings"][k] >= 0
    t = r["timings"]
    assert t["ttft_ms"] <= t["total_ms"] + 1e-6
    assert t["prefill_ms"] + t["decode_ms"] <= t["total_ms"] + 1.0


def test_story_without_streaming(stories):
    g = stories.ok(prompt=PROMPT, max_tokens=60, stream=False, **GREEDY)
    assert g.streams == []
    assert g.text == story_text()


def test_token_prompt_equals_text_prompt(stories, ref):
    a = stories.ok(prompt=ref["prompt_ids"], max_tokens=20, **GREEDY)
    assert a.tokens == ref["greedy_ids"][:20]
    assert a.result["usage"]["prompt_tokens"] == len(ref["prompt_ids"])


# ------------------------------------------------------------ sampling
SAMPLED = {"temperature": 1.0, "top_k": 0, "top_p": 1.0, "min_p": 0.0}


def test_seed_reproduces(stories):
    a = stories.ok(prompt=PROMPT, max_tokens=40, seed=1234, **SAMPLED)
    b = stories.ok(prompt=PROMPT, max_tokens=40, seed=1234, **SAMPLED)
    c = stories.ok(prompt=PROMPT, max_tokens=40, seed=1234, stream=False, **SAMPLED)
    assert a.tokens == b.tokens == c.tokens
    assert a.text == b.text == c.text
    others = {tuple(stories.ok(prompt=PROMPT, max_tokens=40, seed=s, **SAMPLED).tokens)
              for s in (1, 2, 3, 4)}
    assert len(others | {tuple(a.tokens)}) >= 3, "different seeds keep giving the same sample"


def test_greedy_equivalents(stories, ref):
    want = ref["greedy_ids"][:30]
    assert stories.ok(prompt=PROMPT, max_tokens=30, temperature=0).tokens == want
    assert stories.ok(prompt=PROMPT, max_tokens=30, temperature=1.5, top_k=1,
                      seed=7).tokens == want
    # min_p 1 keeps only tokens as likely as the best one.
    assert stories.ok(prompt=PROMPT, max_tokens=30, temperature=1.5, top_k=0, top_p=1.0,
                      min_p=1.0, seed=7).tokens == want
    # A tiny top_p keeps the single most likely token.
    assert stories.ok(prompt=PROMPT, max_tokens=30, temperature=1.5, top_k=0, top_p=1e-6,
                      min_p=0.0, seed=7).tokens == want


def test_n_probs(stories, ref):
    # Per generated token: {token, logprob, top: [{token, logprob}] x n_probs},
    # log-probabilities of the model's distribution, most likely first.
    g = stories.ok(prompt=PROMPT, max_tokens=10, n_probs=5, **GREEDY)
    probs = g.result["probs"]
    assert len(probs) == len(g.tokens) == 10
    # The whole distribution (stories260K has 512 tokens) from evaluate.
    seq = ref["prompt_ids"] + g.tokens[:-1]
    full = stories.result("evaluate", {"tokens": seq, "top_k": 512})["logits"]
    for i, (tok, entry) in enumerate(zip(g.tokens, probs)):
        top = entry["top"]
        assert entry["token"] == tok
        assert len(top) == 5, f"step {i}: {entry!r}"
        ids = [p["token"] for p in top]
        vals = [p["logprob"] for p in top]
        assert len(set(ids)) == 5, f"step {i}: repeated ids {entry!r}"
        assert vals == sorted(vals, reverse=True), f"step {i}: not sorted {entry!r}"
        assert all(v <= 1e-6 for v in vals), f"step {i}: log-probs above 0: {entry!r}"
        assert ids[0] == tok, f"step {i}: greedy token {tok} is not the most likely {entry!r}"
        assert entry["logprob"] == vals[0]
        row = full[len(ref["prompt_ids"]) - 1 + i]
        assert len(row) == 512
        mx = row[0][1]
        lse = mx + math.log(sum(math.exp(v - mx) for _, v in row))
        want = [(t, v - lse) for t, v in row[:5]]
        for (t, lp), (wt, wlp) in zip(zip(ids, vals), want):
            assert abs(lp - wlp) < 2e-3, f"step {i}: logprob {t}:{lp} vs softmax {wt}:{wlp}"
    # Each stream piece carries the probs of its own tokens.
    for s in g.streams:
        assert len(s.get("probs", [])) == len(s["tokens"])


def test_logit_bias(stories, ref):
    first = ref["greedy_ids"][0]
    top = ref["top5"][-1]                      # the distribution of the first generated token
    assert top[0][0] == first
    banned = stories.ok(prompt=PROMPT, max_tokens=3, logit_bias=[[first, False]], **GREEDY)
    assert first not in banned.tokens
    if top[1][1] - top[2][1] > 0.05:
        assert banned.tokens[0] == top[1][0]
    forced = stories.ok(prompt=PROMPT, max_tokens=1, logit_bias=[[top[4][0], 100.0]], **GREEDY)
    assert forced.tokens == [top[4][0]]


def test_presence_and_frequency_penalties_stop_repeats(stories, ref):
    assert len(set(ref["greedy_ids"][:40])) < 40, "the reference no longer repeats a token"
    for field in ("presence_penalty", "frequency_penalty"):
        g = stories.ok(prompt=PROMPT, max_tokens=40, repeat_last_n=64,
                       **{field: 100.0}, **GREEDY)
        assert len(g.tokens) == 40
        assert len(set(g.tokens)) == 40, f"{field}=100 still repeats: {g.tokens}"
        assert not set(g.tokens) & set(ref["prompt_ids"][1:]), \
            f"{field}=100 repeats a prompt token within repeat_last_n"


def test_bad_sampling_params_name_the_field(stories):
    for params, field in (({"top_p": 3}, "top_p"), ({"temperature": -1}, "temperature"),
                          ({"logit_bias": [[100000, 1.0]]}, "logit_bias"),
                          ({"prompt": [1, 5, 100000]}, "prompt")):
        g = stories.generate(**{"prompt": PROMPT, "max_tokens": 4, **params})
        assert g.code() == INVALID_PARAMS, f"{params}: {g!r}"
        assert field in g.error["message"], f"{params}: message does not name {field}: {g!r}"
        assert not g.streams


# ------------------------------------------------------------ stop strings
def pieces_of(g):
    """Single-token stream pieces with their text offsets: (offset, text)."""
    out, off = [], 0
    for s in g.streams:
        if len(s["tokens"]) == 1 and s["text"]:
            out.append((off, s["text"]))
        off += len(s["text"])
    return out


def boundary_stops(full, pieces):
    """Stop strings that start inside one token's text and end inside the
    next token's (or two tokens later), with their first occurrence exactly
    there; each with the text expected before it."""
    stops = []
    for (o1, t1), (o2, t2) in zip(pieces, pieces[1:]):
        if o2 != o1 + len(t1) or len(t1) < 2 or len(t2) < 2:
            continue
        s = t1[-2:] + t2[:2]
        if full.find(s) == o2 - 2:
            stops.append((s, full[:o2 - 2]))
    for (o1, t1), (o2, t2), (o3, t3) in zip(pieces, pieces[1:], pieces[2:]):
        if o2 == o1 + len(t1) and o3 == o2 + len(t2) and t1 and t3:
            s = t1[-1:] + t2 + t3[:1]
            if full.find(s) == o2 - 1:
                stops.append((s, full[:o2 - 1]))
    return stops


def test_stop_strings_across_tokens(stories, ref):
    full_g = stories.ok(prompt=PROMPT, max_tokens=60, **GREEDY)
    full = full_g.text
    stops = boundary_stops(full, pieces_of(full_g))
    assert len(stops) >= 3, f"too few token boundaries to test in {full!r}"
    random.Random(5).shuffle(stops)
    for stop, before in stops[:6]:
        g = stories.ok(prompt=PROMPT, max_tokens=60, stop=[stop], **GREEDY)
        assert g.result["finish_reason"] == "stop", f"stop {stop!r}: {g!r}"
        assert g.text == before, f"stop {stop!r}: {g.text!r} != {before!r}"
        assert stop not in g.streamed_text
        assert ref["greedy_ids"][:len(g.tokens)] == g.tokens
        n = stories.ok(prompt=PROMPT, max_tokens=60, stop=[stop], stream=False, **GREEDY)
        assert n.text == before and n.result["finish_reason"] == "stop"


def test_stop_earliest_wins_and_edge_cases(stories):
    full = story_text()
    late, early = "red ball", "little girl"
    g = stories.ok(prompt=PROMPT, max_tokens=60, stop=[late, early], **GREEDY)
    assert g.text == full[:full.index(early)] and g.result["finish_reason"] == "stop"
    g = stories.ok(prompt=PROMPT, max_tokens=60, stop=[full[:3]], **GREEDY)
    assert g.text == "" and g.result["finish_reason"] == "stop"
    g = stories.ok(prompt=PROMPT, max_tokens=60, stop=["zebra xylophone"], **GREEDY)
    assert g.text == full and g.result["finish_reason"] == "length"
    # A stop string split across the newline byte token.
    g = stories.ok(prompt=PROMPT, max_tokens=60, stop=["high.\nLi"], **GREEDY)
    assert g.text == full[:full.index("high.\nLi")] and g.result["finish_reason"] == "stop"


def test_max_tokens_and_eog(stories):
    full = story_text()
    for n in (1, 7, 33):
        g = stories.ok(prompt=PROMPT, max_tokens=n, **GREEDY)
        assert len(g.tokens) == n and g.result["finish_reason"] == "length"
        assert full.startswith(g.text)
    g = stories.ok(prompt=PROMPT, max_tokens=10, logit_bias=[[EOS, 100.0]], **GREEDY)
    assert g.result["finish_reason"] == "eog", g
    assert g.text == "" and g.tokens == [EOS]     # the id is returned, its text is not


# ------------------------------------------------------------ UTF-8
def byte_token(b):
    return b + 3      # SentencePiece byte fallback: <0x00> is id 3 in the llama vocab


def test_utf8_prompt_and_split_characters(tiny):
    text = "Grüße, 世界! naïve café 🎉"
    toks = tiny.tokenize(text)
    party = [byte_token(b) for b in "🎉".encode()]
    assert any(toks[i:i + 4] == party for i in range(len(toks))), \
        f"🎉 is not byte-fallback tokens {party} in {toks}"
    assert text in tiny.detokenize(toks)
    assert tiny.detokenize(party) == "🎉"
    for cut in (1, 2, 3):
        # Part of a character: valid UTF-8 (a replacement) or a clear refusal.
        r = tiny.call("detokenize", {"tokens": party[:cut]})
        if "result" in r:
            assert valid_utf8(r["result"]["text"])
        else:
            assert r["error"]["code"] == INVALID_PARAMS, r
    g = tiny.ok(prompt=text, max_tokens=16, **GREEDY)
    assert g.result["usage"]["prompt_tokens"] == len(toks)


@pytest.mark.parametrize("seed", [5, 6])
def test_utf8_random_high_bytes_never_break_streams(tiny, seed):
    # Almost only bytes 0x80-0xFF: lead bytes, continuation bytes, overlong
    # forms and surrogates, in random order. Every $/stream must still be
    # valid UTF-8 (conftest parses each message strictly) and the characters
    # that are well formed must come through.
    bias = [[byte_token(b), 40.0] for b in range(0x80, 0x100)]
    g = tiny.ok(prompt="Hello", max_tokens=64, seed=seed, logit_bias=bias, temperature=1.0,
                top_k=0, top_p=1.0, min_p=0.0)
    assert len(g.tokens) == 64
    assert all(byte_token(0x80) <= t <= byte_token(0xFF) for t in g.tokens), g.tokens
    raw = bytes(t - 3 for t in g.tokens)
    want = raw.decode("utf-8", "replace").replace("\ufffd", "")
    assert g.text.replace("\ufffd", "") == want


def test_utf8_valid_multibyte_through_byte_tokens(tiny):
    # Only the three bytes of '日' (E6 97 A5) are allowed: whatever order the
    # sampler picks, each complete '日' appears once whole, never in halves.
    bias = [[byte_token(b), 60.0] for b in "日".encode()]
    g = tiny.ok(prompt="x", max_tokens=48, seed=11, logit_bias=bias, temperature=1.0,
                top_k=0, top_p=1.0, min_p=0.0)
    raw = bytes(t - 3 for t in g.tokens)
    assert set(raw) <= set("日".encode())
    want = raw.decode("utf-8", "replace").replace("\ufffd", "")
    assert g.text.replace("\ufffd", "") == want
    for s in g.streams:
        assert valid_utf8(s["text"])


# ------------------------------------------------------------ refusals
def test_prompt_beyond_context_refused_up_front(wisp):
    srv = start(wisp, stories_path(), ctx=128)
    rng = random.Random(3)
    prompt = [1] + [rng.randrange(300, 500) for _ in range(99)]
    for p, n in ((prompt, 29), (prompt + prompt, 1)):
        g = srv.generate(prompt=p, max_tokens=n, **GREEDY)
        assert g.code() == NEVER_FITS, g
        assert not g.streams
        assert g.t_done - g.t_sent < 2.0
    g = srv.ok(prompt=prompt, max_tokens=28, logit_bias=[[EOS, False]], **GREEDY)
    assert len(g.tokens) == 28      # exactly n_ctx: fits
    srv.settled_status()


# ------------------------------------------------------------ cancellation
def test_cancel_during_decode(wisp, ref):
    srv = start(wisp, stories_path(), ctx=2048)
    g = srv.submit(prompt=PROMPT, max_tokens=2000, logit_bias=[[EOS, False]], **GREEDY)
    deadline = time.monotonic() + 20
    while not g.streams and not g.done and time.monotonic() < deadline:
        srv.pump(deadline - time.monotonic())
    assert g.streams, f"no token streamed: {g!r}"
    srv.cancel(g)
    srv.wait([g])
    assert g.code() == CANCELLED, g
    assert g.t_done - g.t_cancel < 2.0, f"cancel took {g.t_done - g.t_cancel:.2f}s"
    part = g.error["data"]
    assert 1 <= len(part["tokens"]) < 2000
    n = min(60, len(part["tokens"]))
    assert part["tokens"][:n] == ref["greedy_ids"][:n]
    story = story_text()
    assert story.startswith(part["text"]) or part["text"].startswith(story), part["text"]
    srv.settled_status()
    assert srv.ok(prompt=PROMPT, max_tokens=60, **GREEDY).text == story_text()


def test_cancel_during_prefill(wisp, tmp_path):
    # A model of its own, in F32 (no int8 or AMX shortcuts): the golden
    # models prefill 2000 tokens in tens of milliseconds on a fast CPU,
    # too quick to cancel in the middle.
    synth = os.path.join(TOOLS, "synth")
    if not os.access(synth, os.X_OK):
        pytest.skip(f"{synth} is not built")
    model = tmp_path / "slow.gguf"
    subprocess.run([synth, "--arch", "llama", "--layers", "8", "--embd", "384", "--heads", "6",
                    "--kv-heads", "6", "--ff", "1024", "--ctx", "2048", "--type", "f32",
                    "--vocab", shared_file("vocab/ggml-vocab-llama-spm.gguf"),
                    "--out", str(model)], check=True, capture_output=True)
    srv = start(wisp, str(model), ctx=2048)
    rng = random.Random(17)

    def long_prompt():
        return [1] + [rng.randrange(100, 31000) for _ in range(1999)]

    base = srv.ok(prompt=long_prompt(), max_tokens=1, **GREEDY, timeout=120)
    prefill_s = base.t_done - base.t_sent
    if prefill_s < 0.2:
        pytest.skip(f"a 2000-token prefill takes {prefill_s * 1000:.0f} ms here: too fast to "
                    "cancel in the middle reliably")
    g = srv.submit(prompt=long_prompt(), max_tokens=8, **GREEDY)
    until = time.monotonic() + prefill_s * 0.25
    while time.monotonic() < until and not g.done:
        srv.pump(max(0.001, until - time.monotonic()))
    srv.cancel(g)
    srv.wait([g], timeout=60)
    assert g.code() == CANCELLED, f"{g!r} (uncancelled prefill took {prefill_s:.2f}s)"
    # Stopped inside the prefill: well before the remaining 3/4 of it would end.
    assert g.t_done - g.t_cancel < min(2.0, 0.4 * prefill_s + 0.15), \
        f"cancel took {g.t_done - g.t_cancel:.2f}s, the whole prefill {prefill_s:.2f}s"
    assert not g.streams
    assert g.error.get("data", {}).get("tokens", []) == []
    st = srv.settled_status()
    assert st["requests"]["cancelled"] >= 1
    # Still serving, and deterministically so.
    a = srv.ok(prompt=[1, 450, 4996, 17354], max_tokens=6, **GREEDY)
    b = srv.ok(prompt=[1, 450, 4996, 17354], max_tokens=6, **GREEDY)
    assert len(a.tokens) == 6 and a.tokens == b.tokens
