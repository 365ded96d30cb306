"""Continuous batching end to end on stories260K:
many concurrent greedy requests with overlapping prefixes, each equal to
the same request run alone; a cancel storm; a KV pool so small that
sequences must be preempted; all with nothing leaked in `status`.

Greedy decoding is deterministic, so "correct" has an exact meaning here:
the tokens a request gets while batched with others are the tokens it gets
alone, and a cancelled request's partial tokens are a prefix of them."""
import math
import random
import time

from wispgen import CANCELLED, common_prefix, start, stories_path

EOS = 2
GREEDY = {"temperature": 0}
BASES = [
    "Once upon a time, there was a little girl named Lily. She loved to play outside "
    "in the park with her friends.",
    "One day, a big brown dog named Max found a red ball under a tree. Max was very "
    "happy and wanted to play.",
    "Tom and Sue went to the beach with their mom. They saw a big boat on the water "
    "and the sun was hot.",
    "There was a small bird who lived in a tall tree. Every morning the bird would "
    "sing a happy song.",
]
TAILS = ["", " One day,", " She said,", " Then they"]


def prompts16():
    return [b + t for b in BASES for t in TAILS]


def max_tokens_of(i):
    return 8 + (i * 7) % 33


def block_size(srv):
    st = srv.status()
    return st["kv_cache"].get("block_size") or 16


def run_alone(srv, prompt, n):
    """A request with nothing else in flight."""
    return srv.ok(prompt=prompt, max_tokens=n, logit_bias=[[EOS, False]], **GREEDY)


def test_32_concurrent_requests_equal_their_solo_runs(wisp):
    prompts = prompts16()
    # Alone, one after another, in a first process: the references. Each
    # prompt that shares at least a full block with an earlier one reuses
    # cached blocks, never more than the shared prefix.
    solo = start(wisp, stories_path(), ctx=512)
    bs = block_size(solo)
    toks = [solo.tokenize(p) for p in prompts]
    refs = {}
    for i, p in enumerate(prompts):
        g = run_alone(solo, p, 40)
        refs[p] = g.tokens
        shared = max([common_prefix(toks[i], toks[j]) for j in range(i)], default=0)
        cached = g.result["usage"]["cached_tokens"]
        assert cached <= shared, f"{p!r}: {cached} cached tokens but only {shared} shared"
        if shared >= bs + 1:
            assert cached > 0, f"{p!r} shares {shared} tokens with an earlier prompt, 0 cached"
    assert sum(1 for t in toks if len(t) > 2 * bs) >= 8, "prompts too short for the test"

    # Then 32 at once (each prompt twice, varied lengths) in a fresh process,
    # twice: cold, then with every prefix cached.
    srv = start(wisp, stories_path(), ctx=512)
    reqs = [(prompts[i % 16], max_tokens_of(i)) for i in range(32)]
    for wave in ("cold", "warm"):
        steps0 = srv.status()["scheduler"]["steps"]
        gens = [srv.submit(prompt=p, max_tokens=n, logit_bias=[[EOS, False]], **GREEDY)
                for p, n in reqs]
        srv.wait(gens, timeout=60)
        # Batched for real: far fewer engine steps than generated tokens.
        steps = srv.status()["scheduler"]["steps"] - steps0
        generated = sum(n for _, n in reqs)
        assert steps * 4 <= generated, f"{wave}: {steps} steps for {generated} tokens"
        for g, (p, n) in zip(gens, reqs):
            assert g.result is not None, f"{wave}: {g!r}"
            assert g.tokens == refs[p][:n], \
                f"{wave}: {p!r} batched gave {g.tokens}, alone {refs[p][:n]}"
            assert g.result["finish_reason"] == "length"
            if wave == "warm" and len(srv.tokenize(p)) > bs:
                assert g.result["usage"]["cached_tokens"] > 0, f"warm: nothing cached for {g!r}"
        st = srv.settled_status()
        assert st["prefix_cache"]["hits"] > 0
    assert st["requests"]["completed"] >= 64


def test_cancel_storm(wisp):
    rng = random.Random(2024)
    srv = start(wisp, stories_path(), ctx=512)
    prompts = prompts16()[::2]
    refs = {p: run_alone(srv, p, 120) for p in prompts}
    alone_s = max(g.t_done - g.t_sent for g in refs.values())
    before = srv.status()["requests"]["cancelled"]

    n = 40
    plan = []
    for i in range(n):
        p = prompts[i % len(prompts)]
        m = rng.randrange(20, 121)
        cancel_at = rng.uniform(0, max(0.3, 4 * alone_s)) if i % 2 == 0 else None
        plan.append((p, m, cancel_at))
    t0 = time.monotonic()
    gens = [srv.submit(prompt=p, max_tokens=m, logit_bias=[[EOS, False]], **GREEDY)
            for p, m, _ in plan]
    pending = sorted((c, k) for k, (_, _, c) in enumerate(plan) if c is not None)
    while pending:
        due, k = pending[0]
        now = time.monotonic() - t0
        if now >= due:
            srv.cancel(gens[k])
            pending.pop(0)
        else:
            srv.pump(due - now)
    srv.wait(gens, timeout=60)
    # Nothing more may come for these ids (pump fails on a second answer).
    srv.status()
    end = time.monotonic() + 0.3
    while time.monotonic() < end:
        srv.pump(end - time.monotonic())

    n_cancelled = 0
    for g, (p, m, cancel_at) in zip(gens, plan):
        want = refs[p].tokens[:m]
        if g.error is not None:
            assert cancel_at is not None and g.code() == CANCELLED, g
            n_cancelled += 1
            got = g.error["data"]["tokens"]
            assert got == want[:len(got)], f"partial output is not a prefix of the solo run: {g!r}"
            # A cancel that races the last piece is answered -32800 with the
            # whole output (the streams are a prefix of it), never with a
            # success whose text the streams do not add up to.
            assert len(got) <= m
        else:
            assert g.tokens == want, f"{g!r} != solo {want}"
    assert n_cancelled >= 5, f"only {n_cancelled} of {n // 2} cancels landed before the end"
    st = srv.settled_status()
    assert st["requests"]["cancelled"] - before == n_cancelled
    assert st["requests"]["in_flight"] == 1        # this status request
    p = prompts[0]
    assert run_alone(srv, p, 120).tokens == refs[p].tokens


def test_tiny_pool_forces_preemption(wisp):
    # 1 MiB of KV: 1632 tokens of stories260K (640 bytes each), just above one
    # 1536-token context. Requests that each fit alone but together need
    # several pools.
    srv = start(wisp, stories_path(), ctx=1536, kv_mb=1)
    st = srv.status()["kv_cache"]
    bs = st.get("block_size") or 16
    pool = st["blocks_total"] * bs
    assert 1536 <= pool < 1536 * 4, f"--kv-mb 1 gave a pool of {pool} tokens"
    prompts = [b + " One day," for b in BASES]
    plen = max(len(srv.tokenize(p)) for p in prompts)
    m = max(40, min(300, pool // 2 - plen))
    assert plen + m <= pool
    n = min(40, max(8, math.ceil(2.5 * pool / (plen + m))))
    refs = {p: run_alone(srv, p, m).tokens for p in prompts}
    srv.settled_status()

    gens = [srv.submit(prompt=prompts[i % len(prompts)], max_tokens=m,
                       logit_bias=[[EOS, False]], **GREEDY) for i in range(n)]
    srv.wait(gens, timeout=120)
    preempted = 0
    for i, g in enumerate(gens):
        assert g.result is not None, g
        assert g.tokens == refs[prompts[i % len(prompts)]], f"request {i} differs after batching"
        preempted += g.result["usage"].get("preemptions", 0)
    assert preempted > 0, f"{n} requests of {plen + m} tokens in a {pool}-token pool: no preemption"
    srv.settled_status()


def test_shutdown_answers_every_generation_first(wisp):
    srv = start(wisp, stories_path(), ctx=1024)
    gens = [srv.submit(prompt=b, max_tokens=900, logit_bias=[[EOS, False]], **GREEDY)
            for b in BASES * 2]
    deadline = time.monotonic() + 20
    while not gens[0].streams and time.monotonic() < deadline:
        srv.pump(deadline - time.monotonic())
    r = srv.call("shutdown")
    assert r.get("result", "missing") is None, r
    for g in gens:
        assert g.done, f"shutdown answered before {g.id!r}"
        assert g.result is not None or g.code() == CANCELLED, g
    assert any(g.code() == CANCELLED for g in gens)
    srv.c.notify("exit")
    assert srv.c.wait() == 0


def test_eof_lets_generations_finish(wisp):
    srv = start(wisp, stories_path(), ctx=512)
    gens = [srv.submit(prompt=b, max_tokens=40, logit_bias=[[EOS, False]], **GREEDY)
            for b in BASES * 2]
    srv.c.close_stdin()
    srv.wait(gens)
    for g in gens:
        assert g.result is not None and len(g.tokens) == 40, g
    for a, b in zip(gens[:4], gens[4:]):
        assert a.tokens == b.tokens
    assert srv.c.wait() == 0


def test_overload_is_refused_and_nothing_is_lost(wisp):
    # Far more long requests than can run (64) plus wait (256): the excess is
    # refused with -31004 at once; every request gets exactly one answer.
    srv = start(wisp, stories_path(), ctx=1024)
    n = 400
    gens = [srv.submit(prompt=BASES[i % 4], max_tokens=900, logit_bias=[[EOS, False]],
                       stream=False, **GREEDY) for i in range(n)]
    deadline = time.monotonic() + 20
    while sum(g.code() == -31004 for g in gens) < n - 64 - 256 and time.monotonic() < deadline:
        srv.pump(deadline - time.monotonic())
    refused = [g for g in gens if g.code() == -31004]
    assert len(refused) >= n - 64 - 256, f"only {len(refused)} of {n} refused as overloaded"
    for g in gens:
        if not g.done:
            srv.cancel(g)
    srv.wait(gens, timeout=60)
    for g in gens:
        assert g.code() in (None, CANCELLED, -31004), g
    refused = [g for g in gens if g.code() == -31004]
    st = srv.settled_status()
    assert st["scheduler"]["rejected_overloaded"] == len(refused)
    assert run_alone(srv, BASES[0], 10).result["finish_reason"] == "length"


def test_supersede_cancels_the_earlier_request_with_the_same_key(wisp):
    srv = start(wisp, stories_path(), ctx=1024)
    first = srv.submit(prompt=BASES[0], max_tokens=900, logit_bias=[[EOS, False]],
                       supersede="file:///a.txt", **GREEDY)
    other = srv.submit(prompt=BASES[1], max_tokens=30, logit_bias=[[EOS, False]],
                       supersede="file:///b.txt", **GREEDY)
    deadline = time.monotonic() + 20
    while not first.streams and time.monotonic() < deadline:
        srv.pump(deadline - time.monotonic())
    second = srv.submit(prompt=BASES[0] + " One day,", max_tokens=12,
                        logit_bias=[[EOS, False]], supersede="file:///a.txt", **GREEDY)
    srv.wait([first, second, other])
    assert first.code() == CANCELLED, first
    assert second.result is not None and len(second.tokens) == 12, second
    assert other.result is not None and len(other.tokens) == 30, other
    srv.settled_status()
