"""wisp under real clients: a stderr nobody reads, a stdout that goes away,
signals, the LSP client process dying, sloppy LSP fields."""
import json
import os
import select
import signal
import subprocess
import sys
import time

import pytest

from conftest import TIMEOUT, WISP_BIN, error_of, run_once
from wispgen import CANCELLED, shared_file, start, server_args

TOOLS = os.environ.get("WISP_TOOLS", "build/tools")
GREEDY = {"temperature": 0}
LONG = 1900                       # tokens a runaway generation would make
EOS = 2

STATUS = b'{"jsonrpc":"2.0","id":1,"method":"status"}\n'


def read_line(fd, timeout):
    """One line from a raw fd within timeout seconds (None on timeout/EOF)."""
    buf = b""
    deadline = time.monotonic() + timeout
    while b"\n" not in buf:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            return None
        data = os.read(fd, 65536)
        if not data:
            return None
        buf += data
    return buf.split(b"\n", 1)[0]


# ---------------------------------------------------------------- 1: stderr
def test_unread_stderr_never_blocks_answers():
    # stderr is a pipe nobody drains (Node's default spawn): thousands of
    # warnings fill it, and the status request after them must still be
    # answered, reporting the lines it had to drop.
    p = subprocess.Popen([WISP_BIN], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, bufsize=0)
    try:
        p.stdin.write(b'{"jsonrpc":"2.0","method":"foo"}\n' * 8000 + STATUS)
        line = read_line(p.stdout.fileno(), TIMEOUT)
        assert line is not None, "no answer: logging blocked the I/O thread"
        st = json.loads(line)["result"]
        assert st["log"]["dropped_lines"] > 0
        p.stdin.close()
        assert p.wait(timeout=TIMEOUT) == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        p.stderr.close()
        p.stdout.close()


def test_log_level_off_writes_nothing():
    rc, out, err = run_once(["--log-level", "off"],
                            b'{"jsonrpc":"2.0","method":"foo"}\n{not json\n' + STATUS)
    assert rc == 0
    assert err == ""
    assert json.loads(out.splitlines()[-1])["result"]["log"]["dropped_lines"] == 0


def test_status_reports_no_drops_when_stderr_is_read(client):
    assert client.call("status")["result"]["log"] == {"dropped_lines": 0}


# ---------------------------------------------------------------- a slow model
@pytest.fixture(scope="module")
def slow_model(tmp_path_factory):
    """An F32 model slow enough that a 1900-token generation takes seconds."""
    synth = os.path.join(TOOLS, "synth")
    if not os.access(synth, os.X_OK):
        pytest.skip(f"{synth} is not built")
    model = tmp_path_factory.mktemp("robust") / "slow.gguf"
    subprocess.run([synth, "--arch", "llama", "--layers", "8", "--embd", "384", "--heads", "6",
                    "--kv-heads", "6", "--ff", "1024", "--ctx", "2048", "--type", "f32",
                    "--vocab", shared_file("vocab/ggml-vocab-llama-spm.gguf"),
                    "--out", str(model)], check=True, capture_output=True)
    return model


def long_generation():
    return {"prompt": "Once upon a time", "max_tokens": LONG, "logit_bias": [[EOS, False]],
            **GREEDY}


def decode_seconds_per_token(srv):
    g = srv.ok(prompt="Once upon a time", max_tokens=24, logit_bias=[[EOS, False]], **GREEDY)
    return (g.t_done - g.t_first) / 23


# ---------------------------------------------------------------- 2: stdout gone
def test_stdout_gone_cancels_work_and_exits_at_eof(wisp, slow_model):
    srv = start(wisp, slow_model, ctx=2048)
    per_token = decode_seconds_per_token(srv)
    full = per_token * LONG
    if full < 3.0:
        pytest.skip(f"{LONG} tokens take {full:.1f}s here: too fast to tell a stop from an end")
    srv.c.close_stdin()
    srv.c.finish()
    p = subprocess.Popen([WISP_BIN, *server_args(slow_model, ctx=2048)], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0)
    try:
        p.stdin.write(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "generate",
                                  "params": long_generation()}).encode() + b"\n")
        assert read_line(p.stdout.fileno(), TIMEOUT) is not None   # streaming began
        p.stdout.close()          # the client is gone (| head -c 100)
        t0 = time.monotonic()
        time.sleep(0.3)           # its next piece meets EPIPE
        p.stdin.close()
        rc = p.wait(timeout=TIMEOUT)
        took = time.monotonic() - t0
        err = p.stderr.read().decode()
        assert rc == 0, err
        assert "stdout gone: cancelling 1 request" in err, err
        assert took < max(1.5, full / 4), f"exit took {took:.2f}s, the whole generation {full:.1f}s"
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


# ---------------------------------------------------------------- 3: signals
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_cancels_in_flight_with_partial_output(wisp, slow_model, sig):
    srv = start(wisp, slow_model, ctx=2048)
    g = srv.submit(**long_generation())
    while len(g.streams) < 3:
        srv.pump(TIMEOUT)
    srv.c.signal(sig)
    srv.wait([g])
    assert g.code() == CANCELLED, g
    part = g.error["data"]
    assert 3 <= len(part["tokens"]) < LONG
    assert part["tokens"][:len(g.streamed_tokens)] == g.streamed_tokens
    assert srv.c.wait() == 0


def test_eof_still_finishes_in_flight(wisp):
    # EOF keeps its meaning: `printf ... | wisp` prints its answer.
    from wispgen import stories_path
    lines = [json.dumps({"jsonrpc": "2.0", "id": 1, "method": "generate",
                         "params": {"prompt": "Once", "max_tokens": 8, "stream": False,
                                    **GREEDY}})]
    rc, out, err = run_once(server_args(stories_path()), ("\n".join(lines) + "\n").encode())
    assert rc == 0, err
    res = json.loads(out.splitlines()[-1])["result"]
    assert res["finish_reason"] in ("length", "eog") and res["tokens"]


# ---------------------------------------------------------------- 4: processId
def test_exits_when_the_lsp_client_process_dies(wisp):
    parent = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        c = wisp(framing="lsp")
        assert "result" in c.call("initialize", {"processId": parent.pid, "capabilities": {}})
        assert "result" in c.call("status")
        parent.kill()
        parent.wait()
        assert c.wait(timeout=TIMEOUT) == 0
        assert "client process %d" % parent.pid in c.stderr_text()
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()


def test_process_id_null_or_alive_changes_nothing(client):
    assert "result" in client.call("initialize", {"processId": None})
    assert "result" in client.call("initialize", {"processId": os.getpid()})
    assert "result" in client.call("status")


# ---------------------------------------------------------------- 6: lenient LSP
def test_lsp_sloppy_fields_and_initialized(wisp):
    c = wisp(framing="lsp")
    r = c.call("initialize", {"processId": None, "capabilities": [], "clientInfo": [],
                              "rootUri": None, "trace": "off"})
    assert "result" in r, r
    assert "initialized" in r["result"]["capabilities"]["notifications"]
    c.notify("initialized", {})
    c.notify("initialized", [])
    assert "result" in c.call("status")
    c.call("shutdown")
    c.notify("exit")
    assert c.wait() == 0
    assert "initialized" not in c.stderr_text()
    assert "warn" not in c.stderr_text()


def test_strict_where_it_matters(client):
    # Fields wisp uses keep their types.
    error_of(client.call("model/load", {"path": 5}), -32602)


# ---------------------------------------------------------------- 7: error codes
def test_application_codes_outside_reserved_ranges(client):
    init = client.call("initialize")["result"]
    assert init["protocolVersion"] == "2.0"
    seen = set()
    seen.add(client.call("generate", {"prompt": "x"})["error"]["code"])
    seen.add(client.call("model/load", {"path": "/nonexistent/m.gguf"})["error"]["code"])
    assert seen == {-31001, -31002}
    for code in seen:
        assert not -32768 <= code <= -32000 and not -32899 <= code <= -32800


# ---------------------------------------------------------------- 8: NUL, BOM
def stories(wisp):
    from wispgen import stories_path
    return start(wisp, stories_path(), ctx=256)


def test_nul_in_strings_is_carried(wisp):
    srv = stories(wisp)
    c = srv.c
    body = b'{"jsonrpc":"2.0","id":"t","method":"tokenize","params":{"text":"a\\u0000\\u0001 b"}}'
    c.send(body)
    r = c.response("t")
    assert "result" in r, r
    toks = r["result"]["tokens"]
    back = srv.result("detokenize", {"tokens": toks})["text"]
    assert back == "a\x00\x01 b"
    # A vocabulary token that decodes to a NUL byte (SentencePiece <0x00>)
    # keeps everything after it.
    nul = srv.result("tokenize", {"text": "\x00"})["tokens"][-1]
    assert srv.result("detokenize", {"tokens": [nul]})["text"] == "\x00"
    assert srv.result("detokenize", {"tokens": toks + [nul]})["text"] == "a\x00\x01 b\x00"
    g = srv.ok(prompt="Once", max_tokens=3, logit_bias=[[nul, 100.0]], **GREEDY)
    assert g.text == "\x00\x00\x00" and g.streamed_text == g.text


def test_nul_in_generate_prompt_and_infill_is_answered(wisp):
    srv = stories(wisp)
    g = srv.ok(prompt="x\x00y", max_tokens=2, **GREEDY)
    assert g.result["usage"]["prompt_tokens"] >= 3


def test_nul_in_a_stop_string_is_refused_and_serving_goes_on(wisp):
    # A stop string is matched as a C string: one cut at its NUL would stop
    # on the prefix, so it is refused by name, for generate and chat alike.
    srv = stories(wisp)
    for method, params in (("generate", {"prompt": "Once", "max_tokens": 4}),
                           ("chat", {"messages": [{"role": "user", "content": "hi"}],
                                     "template": "{{ messages[0].content }}",
                                     "max_tokens": 4})):
        r = srv.call(method, {**params, "stop": ["ok", "a\x00b"], **GREEDY})
        msg = error_of(r, -32602)
        assert "stop[1]" in msg and "NUL" in msg, r
    assert srv.ok(prompt="Once", max_tokens=2, stop=["a"], **GREEDY).result is not None


def test_nul_where_a_c_string_is_needed_is_refused(client):
    client.send(b'{"jsonrpc":"2.0","id":1,"method":"status\\u0000x"}')
    client.methods["1"] = "status"
    assert client.recv()["error"]["code"] == -32600
    for method in ("model/load", "model/plan"):
        client.send(b'{"jsonrpc":"2.0","id":2,"method":"%s","params":{"path":"/dev/null\\u0000x"}}'
                    % method.encode())
        r = client.response(2)
        assert r["error"]["code"] == -32602 and "path" in r["error"]["message"], r


def test_leading_utf8_bom_is_accepted():
    rc, out, err = run_once([], b"\xef\xbb\xbf" + STATUS)
    assert rc == 0, err
    assert json.loads(out)["id"] == 1


# ---------------------------------------------------------------- 11: failed load
def test_failed_load_keeps_the_working_model(wisp):
    srv = stories(wisp)
    before = srv.result("model/info")
    r = srv.call("model/load", {"path": "/nonexistent/m.gguf"})
    assert r["error"]["code"] == -31002
    r = srv.call("model/load", {"path": before["path"], "kv_cache_mb": 1, "n_ctx": 65536})
    assert r["error"]["code"] == -31003, r
    assert srv.result("model/info")["path"] == before["path"]
    assert srv.ok(prompt="Once", max_tokens=4, **GREEDY).tokens


# ---------------------------------------------------------------- 12: logit_bias, -inf
def test_banning_every_token_is_refused(wisp):
    srv = stories(wisp)
    n = srv.result("model/info")["vocab_size"]
    g = srv.generate(prompt="Once", max_tokens=3, logit_bias=[[t, False] for t in range(n)])
    assert g.code() == -32602 and "nothing is left to sample" in g.error["message"], g
    # All but one: that one is what comes out.
    g = srv.ok(prompt="Once", max_tokens=3, logit_bias=[[t, False] for t in range(n) if t != 300],
               **GREEDY)
    assert g.tokens == [300, 300, 300]


def test_probs_have_one_entry_per_token_with_null_for_minus_inf(wisp):
    srv = stories(wisp)
    n = srv.result("model/info")["vocab_size"]
    # Only two tokens allowed: the top-5 of the rest are -inf.
    bias = [[t, False] for t in range(n) if t not in (300, 301)]
    g = srv.ok(prompt="Once", max_tokens=4, n_probs=5, logit_bias=bias, **GREEDY)
    probs = g.result["probs"]
    assert len(probs) == len(g.tokens) == 4
    for p in probs:
        assert p["logprob"] is not None
        assert len(p["top"]) == 5
        assert [e["logprob"] for e in p["top"]][2:] == [None, None, None]


# ---------------------------------------------------------------- 13: sizes
def test_absurd_sizes_are_refused_clearly(wisp):
    srv = stories(wisp)
    path = srv.result("model/info")["path"]
    r = srv.call("model/load", {"path": path, "n_ctx": 2147483647})
    assert r["error"]["code"] == -32602 and "n_ctx" in r["error"]["message"]
    r = srv.call("model/load", {"path": path, "threads": 2000})
    assert r["error"]["code"] == -32602 and "threads" in r["error"]["message"]
    r = srv.call("model/load", {"path": path, "n_ctx": 4096, "kv_cache_mb": 1})
    assert r["error"]["code"] == -31003 and "kv_cache_mb" in r["error"]["message"]
    rc, out, err = run_once(["--ctx", "2147483647"])
    assert rc == 2 and "--ctx" in err
    rc, out, err = run_once(["--threads", "2000"])
    assert rc == 2 and "--threads" in err


# ---------------------------------------------------------------- 14: odd files
def test_non_regular_paths_are_refused(client, tmp_path):
    fifo = tmp_path / "model.gguf"
    os.mkfifo(fifo)
    for path in (str(fifo), "/dev/stdin", "/dev/null"):
        for method in ("model/load", "model/plan"):
            r = client.call(method, {"path": path})
            assert r["error"]["code"] == -31002, (method, path, r)
            assert "not a regular file" in r["error"]["message"]
    assert "result" in client.call("status")


def test_fifo_in_the_cache_files_place_is_ignored(wisp, tmp_path):
    from wispgen import stories_path
    cache = tmp_path / "cache"
    cache.mkdir()
    srv = start(wisp, stories_path(), ctx=256, cache_dir=cache)
    srv.ok(prompt="Once upon a time there was a cat who liked to sit", max_tokens=2, **GREEDY)
    srv.c.close_stdin()
    srv.c.finish()
    files = list(cache.glob("wisp-kv-*.cache"))
    assert len(files) == 1
    files[0].unlink()
    os.mkfifo(files[0])
    srv = start(wisp, stories_path(), ctx=256, cache_dir=cache)
    assert srv.ok(prompt="Once", max_tokens=2, **GREEDY).tokens
    # stderr is read by its own thread: all of it is in once wisp exited
    srv.c.close_stdin()
    srv.c.finish()
    assert "not a regular file" in srv.c.stderr_text()


# ---------------------------------------------------------------- 16: batch cap
def test_batch_length_is_capped(client):
    big = [{"jsonrpc": "2.0", "id": i, "method": "status"} for i in range(1025)]
    client.send(big)
    r = client.recv()
    assert isinstance(r, dict) and r["error"]["code"] == -32600
    assert r["error"]["data"] == {"max_batch": 1024}
    ok = big[:1024]
    client.send(ok)
    r = client.recv()
    assert isinstance(r, list) and len(r) == 1024


# ---------------------------------------------------------------- 17: status after answer
def test_status_right_after_the_answer_shows_it_released(wisp):
    srv = stories(wisp)
    for i in range(20):
        g = srv.ok(prompt="Once upon a time", max_tokens=8 + i % 5, **GREEDY)
        st = srv.status()
        assert st["kv_cache"]["blocks_used"] == 0, st["kv_cache"]
        assert st["requests"]["running"] == 0, st["requests"]


# ---------------------------------------------------------------- 9: LSP resync
def test_lsp_resyncs_after_a_bad_content_length(wisp):
    c = wisp(framing="lsp")
    body1 = b'{"jsonrpc":"2.0","id":1,"method":"status"}'
    body2 = b'{"jsonrpc":"2.0","id":2,"method":"status"}'
    c.methods["1"] = c.methods["2"] = c.methods["3"] = "status"
    # A bad length: its body follows (without a newline), then a good message.
    c.send_raw(b"Content-Length: 4x\r\n\r\n" + body1 + b"Content-Length: %d\r\n\r\n" % len(body2)
               + body2)
    r = c.recv()
    assert r["id"] is None and r["error"]["code"] == -32700
    assert c.recv()["id"] == 2
    # Garbage in front of a header: reported once, the message after it served.
    body3 = b'{"jsonrpc":"2.0","id":3,"method":"status"}'
    c.send_raw(b"xx garbage Content-Length: %d\r\n\r\n" % len(body3) + body3)
    r = c.recv()
    assert r["id"] is None and "skipped" in r["error"]["message"]
    assert c.recv()["id"] == 3


def test_lsp_truncated_body_at_eof_is_answered():
    body = b'{"jsonrpc":"2.0","id":1,"method":"status"}'
    rc, out, err = run_once([], b"Content-Length: 100\r\n\r\n" + body)
    assert rc == 0
    assert b'"code":-32700' in out and b"never came" in out, out


# ---------------------------------------------------------------- 5: LSP progress tokens
@pytest.mark.parametrize("field", ["partialResultToken", "workDoneToken"])
def test_stream_pieces_as_lsp_progress(wisp, field):
    from wispgen import stories_path
    c = wisp(*server_args(stories_path(), ctx=256), framing="lsp")
    rid = c.request("generate", {"prompt": "Once upon a time", "max_tokens": 12,
                                 field: "tok-7", **GREEDY})
    pieces, other = [], []
    while True:
        m = c.recv()
        if m.get("method") == "$/progress":
            assert m["params"]["token"] == "tok-7"
            pieces.append(m["params"]["value"])
        elif "method" in m:
            other.append(m)
        elif m.get("id") == rid:
            break
    assert not other, f"no $/stream when a token was given: {other!r}"
    assert [p["index"] for p in pieces] == list(range(len(pieces)))
    res = m["result"]
    assert "".join(p["text"] for p in pieces) == res["text"]
    assert [t for p in pieces for t in p["tokens"]] == res["tokens"]


# ---------------------------------------------------------------- 15: model file changed
MODEL_CHANGED = -31009


def test_truncated_model_file_is_an_error_not_sigbus(wisp, tmp_path):
    from wispgen import stories_path
    import shutil
    model = tmp_path / "m.gguf"
    shutil.copyfile(stories_path(), model)
    srv = start(wisp, model, ctx=256)
    assert srv.ok(prompt="Once", max_tokens=4, **GREEDY).tokens
    with open(model, "r+b") as f:
        f.truncate(os.path.getsize(model) // 3)
    g = srv.generate(prompt="Once upon a time", max_tokens=8, **GREEDY)
    assert g.code() == MODEL_CHANGED, g
    assert "changed on disk" in g.error["message"] and "model/load" in g.error["message"]
    r = srv.call("tokenize", {"text": "x"})
    assert r["error"]["code"] == MODEL_CHANGED
    assert "result" in srv.call("status")
    shutil.copyfile(stories_path(), model)
    assert "result" in srv.call("model/load", {"path": str(model), "n_ctx": 256})
    assert srv.ok(prompt="Once", max_tokens=4, **GREEDY).tokens


def test_same_size_rewrite_with_restored_mtime_is_noticed(wisp, tmp_path):
    from wispgen import stories_path
    import shutil
    model = tmp_path / "m.gguf"
    shutil.copyfile(stories_path(), model)
    st = os.stat(model)
    srv = start(wisp, model, ctx=256)
    assert srv.ok(prompt="Once", max_tokens=2, **GREEDY).tokens
    data = bytearray(model.read_bytes())
    data[-100:] = bytes(100)
    with open(model, "r+b") as f:        # in place: same inode, same size
        f.write(data)
    os.utime(model, ns=(st.st_atime_ns, st.st_mtime_ns))   # as cp -p does
    g = srv.generate(prompt="Once", max_tokens=2, **GREEDY)
    assert g.code() == MODEL_CHANGED, g


# ---------------------------------------------------------------- 10: cache identity
def test_weights_replaced_in_place_are_a_cache_miss(wisp, tmp_path):
    from wispgen import stories_path
    import shutil
    model = tmp_path / "m.gguf"
    shutil.copyfile(stories_path(), model)
    cache = tmp_path / "cache"
    cache.mkdir()
    prompt = ("Once upon a time, there was a little girl named Lily. She loved to play outside "
              "in the park with her friends.")

    def run(how):
        srv = start(wisp, model, ctx=512, cache_dir=cache)
        g = srv.ok(prompt=prompt, max_tokens=4, **GREEDY)
        srv.c.close_stdin()
        assert srv.c.wait() == 0
        assert f"identity over the weights: {how}" in srv.c.stderr_text()
        return g.result["usage"]["cached_tokens"]

    assert run("hashed") == 0
    # Unchanged: the memo spares the hashing, and the cache is used.
    assert run("file unchanged") > 0, "the unchanged model must start warm"
    st = os.stat(model)
    data = bytearray(model.read_bytes())
    for i in range(len(data) - 4096, len(data), 7):   # other weights, same size
        data[i] ^= 0x5A
    with open(model, "r+b") as f:
        f.write(data)
    os.utime(model, ns=(st.st_atime_ns, st.st_mtime_ns))   # as cp -p, rsync, tar do
    assert os.stat(model).st_size == st.st_size
    # The status-change time moved: hashed again, and a miss.
    assert run("hashed") == 0, "KV computed with the old weights was served for the new ones"
