"""Keep-alive (model/load keep_alive_s, --keep-alive): a model idle for
keep_alive_s is unloaded, reported honestly by model/info and status, and
reopened with its load options by the next request that needs it, which is
then served as if nothing happened. model/unload still unloads for good."""
import os
import time

import pytest

from conftest import error_of, run_once
from wispgen import Server, start, stories_path

GREEDY = {"temperature": 0}
PROMPT = ("Once upon a time, there was a little girl named Lily. She loved to play outside "
          "in the park with her friends.")
IDLE_WAIT = 1.6  # keep_alive_s = 1, and some slack for the engine thread's timer


def model_or_skip():
    m = stories_path()
    if not os.path.exists(m):
        pytest.skip(f"fixture {m} is missing")
    return m


def info_of(srv):
    r = srv.call("model/info")
    assert "result" in r, r
    return r["result"]


def status_model(srv):
    r = srv.call("status")
    assert "result" in r, r
    return r["result"]["model"]


def loaded(wisp, keep_alive_s=1):
    srv = Server(wisp("--threads", "1"))
    r = srv.call("model/load", {"path": str(model_or_skip()), "n_ctx": 256,
                                "keep_alive_s": keep_alive_s})
    assert "result" in r, r
    assert r["result"]["resident"] is True
    assert r["result"]["keep_alive_s"] == keep_alive_s
    return srv


def wait_unloaded(srv, timeout=10.0):
    """Polls status (a loop-thread request: it never reloads the model)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        m = status_model(srv)
        if m and m["resident"] is False:
            return m
        time.sleep(0.1)
    raise AssertionError(f"model still resident after {timeout} s idle: {m}")


def test_idle_unload_then_transparent_reload(wisp):
    srv = loaded(wisp)
    first = srv.ok(prompt=PROMPT, max_tokens=24, **GREEDY)
    time.sleep(IDLE_WAIT)
    m = wait_unloaded(srv)
    assert m["idle_unloaded"] is True and m["idle_unloads"] == 1 and m["idle_reloads"] == 0
    # model/info reports without reloading.
    info = info_of(srv)
    assert info["resident"] is False and info["idle_unloaded"] is True
    assert info["path"] == str(stories_path())
    assert status_model(srv)["resident"] is False
    # The next generate reopens the model and answers as before.
    again = srv.ok(prompt=PROMPT, max_tokens=24, **GREEDY)
    assert again.tokens == first.tokens and again.text == first.text
    info = info_of(srv)
    assert info["resident"] is True and info["idle_unloaded"] is False
    assert info["idle_reloads"] == 1 and info["n_ctx"] == 256


def test_reload_starts_warm_from_cache_dir(wisp, tmp_path):
    srv = start(wisp, model_or_skip(), ctx=512, cache_dir=tmp_path, extra=("--keep-alive", "1"))
    cold = srv.ok(prompt=PROMPT, max_tokens=16, **GREEDY)
    assert cold.result["usage"]["cached_tokens"] == 0
    time.sleep(IDLE_WAIT)
    wait_unloaded(srv)
    files = [f for _, _, fs in os.walk(tmp_path) for f in fs]
    assert files, "the idle unload wrote no prefix cache to --cache-dir"
    warm = srv.ok(prompt=PROMPT, max_tokens=16, **GREEDY)
    assert info_of(srv)["idle_reloads"] == 1
    assert 0 < warm.result["usage"]["cached_tokens"] <= warm.result["usage"]["prompt_tokens"]
    assert warm.tokens == cold.tokens


def test_model_unload_is_for_good(wisp):
    srv = loaded(wisp)
    srv.ok(prompt=PROMPT, max_tokens=4, **GREEDY)
    time.sleep(IDLE_WAIT)
    wait_unloaded(srv)
    assert srv.call("model/unload")["result"] is None
    assert status_model(srv) is None
    error_of(srv.call("model/info"), -31001)
    assert srv.generate(prompt=PROMPT, max_tokens=4).code() == -31001


def test_explicit_unload_is_not_reloaded(wisp):
    srv = loaded(wisp)
    srv.ok(prompt=PROMPT, max_tokens=4, **GREEDY)
    assert srv.call("model/unload")["result"] is None
    time.sleep(IDLE_WAIT)
    assert srv.generate(prompt=PROMPT, max_tokens=4).code() == -31001


def test_negative_keep_alive_refused(wisp):
    srv = Server(wisp("--threads", "1"))
    r = srv.call("model/load", {"path": str(model_or_skip()), "keep_alive_s": -1})
    assert "keep_alive_s" in error_of(r, -32602)
    # Nothing was loaded, and wisp keeps serving.
    assert status_model(srv) is None
    assert "result" in srv.call("model/load", {"path": str(stories_path()), "n_ctx": 256})


def test_negative_keep_alive_flag_refused():
    rc, out, err = run_once(["--keep-alive", "-1"])
    assert rc != 0 and out == b""
    assert "--keep-alive" in err


def test_reload_failure_answers_and_keeps_serving(wisp, tmp_path):
    link = tmp_path / "model.gguf"
    link.write_bytes(open(model_or_skip(), "rb").read())
    srv = Server(wisp("--threads", "1"))
    r = srv.call("model/load", {"path": str(link), "n_ctx": 256, "keep_alive_s": 1})
    assert "result" in r, r
    srv.ok(prompt=PROMPT, max_tokens=4, **GREEDY)
    time.sleep(IDLE_WAIT)
    wait_unloaded(srv)
    link.unlink()
    g = srv.generate(prompt=PROMPT, max_tokens=4)
    assert g.code() == -31002, g
    assert "result" in srv.call("status")
    assert "result" in srv.call("model/load", {"path": str(stories_path()), "n_ctx": 256})
    assert srv.ok(prompt=PROMPT, max_tokens=4, **GREEDY).text


def test_busy_model_is_never_unloaded(wisp):
    """Requests kept in flight back to back for twice keep_alive_s: the
    model stays resident throughout and every request completes."""
    srv = loaded(wisp)
    end = time.monotonic() + 2.0
    n = 0
    while time.monotonic() < end:
        gens = [srv.submit(prompt=PROMPT, max_tokens=64, **GREEDY) for _ in range(2)]
        for g in srv.wait(gens):
            assert g.result is not None, g
        n += 2
    long = srv.ok(prompt="Once", max_tokens=240, **GREEDY)
    assert long.result["usage"]["completion_tokens"] > 0
    m = status_model(srv)
    assert m["resident"] is True and m["idle_unloads"] == 0, (n, m)


def test_idle_unload_returns_memory(wisp):
    """The idle unload frees what model/unload frees (test_unload_rss.py):
    the mapped, touched weights leave the resident set."""
    from test_unload_rss import MODEL, rss_kb
    if not os.path.exists(MODEL):
        pytest.skip(f"fixture {MODEL} is missing")
    if "/build/san/" in os.environ.get("WISP_BIN", ""):
        pytest.skip("RSS is not meaningful under AddressSanitizer's allocator (SANITIZE=1)")
    srv = Server(wisp("--threads", "1"))
    r = srv.call("model/load", {"path": MODEL, "n_ctx": 512, "kv_cache_mb": 16, "keep_alive_s": 1})
    assert "result" in r, r
    assert "result" in srv.call("evaluate", {"tokens": [1, 2, 3, 4], "top_k": 1})
    pid = srv.c.proc.pid
    peak = rss_kb(pid)
    time.sleep(IDLE_WAIT)
    wait_unloaded(srv)
    after = rss_kb(pid)
    file_kb = os.path.getsize(MODEL) // 1024
    assert peak - after > file_kb // 2, (peak, after, file_kb)
    # And it comes back for the next request.
    assert "result" in srv.call("evaluate", {"tokens": [1, 2, 3, 4], "top_k": 1})
    assert info_of(srv)["resident"] is True


def test_long_generation_is_not_unloaded_under(wisp):
    """One generation that outlasts keep_alive_s completes in full: an
    unload under it would answer it -31005."""
    from test_unload_rss import MODEL
    if not os.path.exists(MODEL):
        pytest.skip(f"fixture {MODEL} is missing")
    san = "/build/san/" in os.environ.get("WISP_BIN", "")
    n = 400 if san else 2000
    srv = Server(wisp("--threads", "1"))
    r = srv.call("model/load", {"path": MODEL, "n_ctx": 2048, "kv_cache_mb": 64,
                                "keep_alive_s": 1})
    assert "result" in r, r
    eos = r["result"]["tokenizer"]["special"]["eos"]
    t0 = time.monotonic()
    g = srv.ok(prompt=[1, 2, 3], max_tokens=n, temperature=0,
               logit_bias=[[eos, False]] if eos is not None else [])
    took = time.monotonic() - t0
    assert g.result["usage"]["completion_tokens"] == n
    assert info_of(srv)["idle_unloads"] == 0
    if took < 1.2:
        pytest.skip(f"{n} tokens took only {took:.2f} s here, under keep_alive_s: "
                    "no idle deadline passed during the request")
