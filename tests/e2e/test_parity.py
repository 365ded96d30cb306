"""Parity with llama.cpp through `evaluate` and greedy `generate`, on every
model with a reference in $WISP_SHARED/golden and $WISP_SHARED/models.

The reference JSON (golden/README.md) holds, for prompt_ids + greedy_ids,
llama.cpp's five best logits at every position: `top5[i]` for prompt
position i (predicting prompt token i+1, the last one predicting
greedy_ids[0]) and `gen_top5[j]` after greedy token j. Fed the same
sequence, wisp's `evaluate` answers one entry per position, so entry k
lines up with (top5 + gen_top5)[k].

Comparisons, with the README's tolerance (0.05 for F32/F16/Q8_0, 0.1 for
4-bit types):
- the k-th largest logit equals llama.cpp's k-th largest (an order
  statistic moves by at most the largest per-logit difference, so this holds
  whatever the order of near-ties);
- each of llama.cpp's top-5 tokens has the same logit in wisp (or, when it
  is not in wisp's top 10, a logit that could be below wisp's 10th);
- the argmax is the same wherever llama.cpp's top-1 leads its top-2 by more
  than the tolerance.
"""
import pytest

from wispgen import parity_models, reference_of, shared_file, start, tolerance_of

WIDE = 10


def ref_rows(ref):
    rows = ref["top5"] + ref["gen_top5"]
    assert len(ref["top5"]) == len(ref["prompt_ids"])
    assert len(ref["gen_top5"]) == len(ref["greedy_ids"])
    return rows


def compare_position(mine, theirs, tol):
    """Problems at one position (a list of strings)."""
    bad = []
    vals = [v for _, v in mine]
    if vals != sorted(vals, reverse=True):
        bad.append(f"wisp's top-{len(mine)} not sorted: {mine}")
    if len({i for i, _ in mine}) != len(mine):
        bad.append(f"wisp's top-{len(mine)} repeats a token: {mine}")
    for k, (_, v) in enumerate(theirs):
        if abs(vals[k] - v) > tol:
            bad.append(f"{k + 1}-th largest logit {vals[k]:.5f} vs llama.cpp {v:.5f}")
    have = dict(mine)
    for tok, v in theirs:
        if tok in have:
            if abs(have[tok] - v) > tol:
                bad.append(f"token {tok}: logit {have[tok]:.5f} vs llama.cpp {v:.5f}")
        elif v > vals[-1] + tol:
            bad.append(f"token {tok} (llama.cpp {v:.5f}) missing from wisp's top-{len(mine)} "
                       f"whose last is {vals[-1]:.5f}")
    if theirs[0][1] - theirs[1][1] > tol and mine[0][0] != theirs[0][0]:
        bad.append(f"argmax {mine[0][0]} vs llama.cpp {theirs[0][0]} "
                   f"(llama.cpp's margin {theirs[0][1] - theirs[1][1]:.4f})")
    return bad


@pytest.mark.parametrize("rel", parity_models())
def test_evaluate_matches_llamacpp(wisp, rel):
    model = shared_file(rel)
    ref = reference_of(model)
    tol = tolerance_of(rel)
    srv = start(wisp, model, ctx=256)
    seq = ref["prompt_ids"] + ref["greedy_ids"]
    rows = ref_rows(ref)
    res = srv.result("evaluate", {"tokens": seq, "top_k": WIDE})
    logits = res["logits"]
    assert len(logits) == len(seq), f"{len(logits)} positions for {len(seq)} tokens"
    problems = []
    for pos, (mine, theirs) in enumerate(zip(logits, rows)):
        assert len(mine) == WIDE, f"position {pos}: {len(mine)} pairs for top_k {WIDE}"
        problems += [f"position {pos}: {p}" for p in compare_position(mine, theirs, tol)]
    assert not problems, f"{rel} (tolerance {tol}):\n" + "\n".join(problems)
    # top_k defaults to 5 and the answer is the same.
    short = srv.result("evaluate", {"tokens": seq})["logits"]
    assert [[i for i, _ in p] for p in short] == [[i for i, _ in p[:5]] for p in logits]


@pytest.mark.parametrize("rel", parity_models())
def test_greedy_generation_matches_llamacpp(wisp, rel):
    model = shared_file(rel)
    ref = reference_of(model)
    tol = tolerance_of(rel)
    rows = ref_rows(ref)
    p = len(ref["prompt_ids"])
    # Greedy token j is chosen from row p-1+j; compare up to the first near-tie.
    sure = 0
    for j in range(len(ref["greedy_ids"])):
        row = rows[p - 1 + j]
        if row[0][1] - row[1][1] <= tol:
            break
        sure += 1
    srv = start(wisp, model, ctx=256)
    n = len(ref["greedy_ids"])
    by_ids = srv.ok(prompt=ref["prompt_ids"], max_tokens=n, temperature=0)
    assert by_ids.tokens[:sure] == ref["greedy_ids"][:sure], \
        f"{rel}: greedy tokens differ within the first {sure} (no near-tie there)"
    assert by_ids.result["usage"]["prompt_tokens"] == p
    # The text prompt tokenizes as llama.cpp did (BOS added, specials parsed).
    by_text = srv.ok(prompt=ref["prompt"], max_tokens=n, temperature=0)
    assert by_text.result["usage"]["prompt_tokens"] == p
    assert by_text.tokens == by_ids.tokens
    if sure == n and by_ids.result["finish_reason"] == "length":
        want = bytes.fromhex(ref["greedy_text_hex"])
        assert by_ids.text == want.decode("utf-8", "replace")
