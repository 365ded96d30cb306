"""The prefix cache on disk (--cache-dir): a restarted
wisp starts warm; damaged or foreign cache files are never trusted.

A first process computes a prompt and exits cleanly (stdin EOF), which
writes its cached blocks. The next process on the same directory must
report cached tokens on its very first request and produce the same greedy
tokens as a cold run; a damaged file or another model's cache must change
nothing but the cache hit."""
import os
import random

from wispgen import shared_file, start, stories_path

GREEDY = {"temperature": 0}
PROMPT = ("Once upon a time, there was a little girl named Lily. She loved to play outside "
          "in the park with her friends. One day, she saw a big red ball near the tree.")


def run_and_exit(wisp, model, cache_dir, prompt=PROMPT, n=24):
    """One request in a fresh process, then a clean exit; its answer."""
    srv = start(wisp, model, ctx=512, cache_dir=cache_dir)
    g = srv.ok(prompt=prompt, max_tokens=n, **GREEDY)
    srv.c.close_stdin()
    assert srv.c.wait() == 0, srv.c.stderr_text()
    return g


def cache_files(d):
    return [os.path.join(root, f) for root, _, files in os.walk(d) for f in files]


def test_restart_starts_warm(wisp, tmp_path):
    cold = run_and_exit(wisp, stories_path(), tmp_path)
    assert cold.result["usage"]["cached_tokens"] == 0
    assert cache_files(tmp_path), "no cache file written at exit"
    warm = run_and_exit(wisp, stories_path(), tmp_path)
    p = warm.result["usage"]["prompt_tokens"]
    assert 0 < warm.result["usage"]["cached_tokens"] <= p
    assert warm.tokens == cold.tokens
    assert warm.text == cold.text


def test_damaged_cache_files_are_ignored(wisp, tmp_path):
    cold = run_and_exit(wisp, stories_path(), tmp_path)
    files = cache_files(tmp_path)
    assert files
    rng = random.Random(9)
    for f in files:                       # random bytes over the second half
        size = os.path.getsize(f)
        with open(f, "r+b") as fh:
            fh.seek(size // 2)
            fh.write(bytes(rng.randrange(256) for _ in range(size - size // 2)))
    again = run_and_exit(wisp, stories_path(), tmp_path)
    assert again.tokens == cold.tokens, "a damaged cache file changed the output"
    for f in cache_files(tmp_path):       # truncated to a few bytes
        with open(f, "r+b") as fh:
            fh.truncate(7)
    again = run_and_exit(wisp, stories_path(), tmp_path)
    assert again.tokens == cold.tokens
    assert again.result["usage"]["cached_tokens"] == 0


def test_other_models_cache_is_not_used(wisp, tmp_path):
    # Same tokenizer and shapes, other weights: a cache keyed by tokens alone
    # would hit; keyed by the model file's identity, it must not.
    mine = shared_file("golden/syn-llama-spm-f16.gguf")
    other = shared_file("golden/syn-llama-spm-q8_0.gguf")
    run_and_exit(wisp, mine, tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    cold = run_and_exit(wisp, other, empty)
    g = run_and_exit(wisp, other, tmp_path)
    assert g.result["usage"]["cached_tokens"] == 0, "another model's cached blocks were used"
    assert g.tokens == cold.tokens


def test_bf16_compute_keeps_its_own_cache(wisp, tmp_path):
    # KV computed with --f16-as-bf16 is not the exact path's: where the
    # engine takes the option, the two must not serve each other's blocks;
    # where it does not, they compute the same and may.
    model = shared_file("golden/syn-qwen2-dsc-f16.gguf")
    prompt = [5 + i % 40 for i in range(40)]

    def run(extra):
        srv = start(wisp, model, ctx=256, cache_dir=tmp_path, extra=extra)
        taken = srv.result("model/info")["f16_as_bf16"]["tensors"] > 0
        g = srv.ok(prompt=prompt, max_tokens=4, **GREEDY)
        srv.c.close_stdin()
        assert srv.c.wait() == 0, srv.c.stderr_text()
        return taken, g.result["usage"]["cached_tokens"]

    assert run(())[1] == 0
    taken, cached = run(("--f16-as-bf16",))
    assert (cached == 0) == taken, (taken, cached)
    taken, cached = run(("--f16-as-bf16",))
    assert cached > 0, "the BF16 run's own cache was not used"
    assert run(())[1] > 0, "the exact run's cache did not survive the BF16 runs"
