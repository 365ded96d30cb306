"""The remote backend against real servers on loopback: llama.cpp's
llama-server (../shared/oracle/llama.cpp) started here on free 127.0.0.1
ports, plus small fake servers (one that accepts and stays silent, one that
answers garbage) written in this file.

Covers: greedy generate through wisp equals the server's own greedy
/completion on the same tokens and the streamed pieces add up to the
result (llama.cpp and OpenAI APIs); chat; refused parameters; infill with
its code rules; $/cancelRequest and supersede stop the server's slot;
cache-aware routing over two servers and failover when one dies; timeouts
and garbage give clear errors while wisp keeps serving.
"""
import json
import os
import socket
import subprocess
import threading
import time
import urllib.request

import pytest

from conftest import ROOT, error_of

SHARED = os.environ.get("WISP_SHARED", str(ROOT.parent / "shared"))
LLAMA_SERVER = os.path.join(SHARED, "oracle", "llama.cpp", "llama-server")
STORIES = str(ROOT / "models" / "stories260K.gguf")
FIM_MODEL = os.path.join(SHARED, "golden", "syn-qwen2-dsc-f16.gguf")
START_TIMEOUT = 30.0

# A story long enough for the router's key (64 tokens) and a warm cache.
DOC = ("Once upon a time, there was a little girl named Lily. She loved to play outside in "
       "the park with her friends. One day, she saw a big red ball under a tree. She ran to "
       "the ball and kicked it very high. The ball flew over the fence and into the garden "
       "of an old man. Lily was sad, but she went to the old man and asked for her ball.")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(url, body=None, timeout=10):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read())


class LlamaServer:
    def __init__(self, model, n_parallel=2, ctx=4096):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [LLAMA_SERVER, "-m", model, "-t", "1", "-np", str(n_parallel), "-c", str(ctx),
             "--host", "127.0.0.1", "--port", str(self.port), "--slots", "--metrics"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode(errors="replace")[-800:]
                raise RuntimeError(f"llama-server exited {self.proc.returncode}: {err}")
            try:
                if http(self.url + "/health", timeout=1).get("status") == "ok":
                    return
            except Exception:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"llama-server did not start within {START_TIMEOUT}s")

    def busy(self):
        return any(s.get("is_processing") for s in http(self.url + "/slots"))

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)
        self.proc.stderr.close()


def start_or_skip(model, **kw):
    if not os.access(LLAMA_SERVER, os.X_OK):
        pytest.skip(f"{LLAMA_SERVER} is missing")
    if not os.path.exists(model):
        pytest.skip(f"fixture {model} is missing")
    try:
        return LlamaServer(model, **kw)
    except Exception as e:  # a CPU or library it cannot run on
        pytest.skip(f"llama-server cannot start here: {e}")


@pytest.fixture(scope="module")
def stories_server():
    s = start_or_skip(STORIES)
    yield s
    s.stop()


@pytest.fixture(scope="module")
def fim_server():
    s = start_or_skip(FIM_MODEL, n_parallel=1)
    yield s
    s.stop()


# The golden model's vocabulary (deepseek-coder) has 256 added tokens from
# 32000; random weights would emit them and llama-server then refuses its
# own output, so they are banned on both sides.
NO_SPECIALS = [[i, False] for i in range(32000, 32256)]


def load(c, url, path=None, **remote):
    params = {"remote": {"url": url, **remote}}
    if path:
        params["path"] = path
    r = c.call("model/load", params)
    assert "result" in r, r
    return r["result"]


def run(c, method, params):
    """The response and the $/stream pieces of one request."""
    rid = c.request(method, params)
    r = c.response(rid)
    pieces = [m["params"] for m in c.backlog
              if m.get("method") == "$/stream" and m["params"]["id"] == rid]
    c.backlog = [m for m in c.backlog
                 if not (m.get("method") == "$/stream" and m["params"]["id"] == rid)]
    return r, pieces


# ---------------------------------------------------------------- generate

@pytest.mark.parametrize("kind", ["llama.cpp", "openai"])
def test_greedy_generate_equals_server(wisp, stories_server, kind):
    c = wisp()
    info = load(c, stories_server.url, STORIES, kind=kind)
    assert info["device"] == "remote" and info["remote"]["kind"] == kind
    ids = c.call("tokenize", {"text": "Once upon a time", "add_special": True})["result"]["tokens"]
    r, pieces = run(c, "generate", {"prompt": ids, "max_tokens": 24, "temperature": 0})
    res = r["result"]
    ref = http(stories_server.url + "/completion",
               {"prompt": ids, "n_predict": 24, "temperature": 0, "cache_prompt": False})
    assert res["text"] == ref["content"]
    assert "".join(p["text"] for p in pieces) == res["text"]
    assert [p["index"] for p in pieces] == list(range(len(pieces)))
    assert res["finish_reason"] == "length"
    assert res["usage"]["completion_tokens"] == 24
    if kind == "llama.cpp":  # its events carry the token ids
        assert sum(len(p["tokens"]) for p in pieces) == 24 == len(res["tokens"])


def test_text_prompt_and_server_tokenizer(wisp, stories_server):
    c = wisp()
    load(c, stories_server.url, kind="llama.cpp")  # no path: the server tokenizes
    t = c.call("tokenize", {"text": "Once upon a time", "add_special": True})["result"]["tokens"]
    assert t == http(stories_server.url + "/tokenize",
                     {"content": "Once upon a time", "add_special": True})["tokens"]
    assert c.call("detokenize", {"tokens": t[1:]})["result"]["text"].strip() == "Once upon a time"
    r, _ = run(c, "generate", {"prompt": "Once upon a time", "max_tokens": 8, "temperature": 0,
                               "stream": False})
    ref = http(stories_server.url + "/completion",
               {"prompt": "Once upon a time", "n_predict": 8, "temperature": 0})
    assert r["result"]["text"] == ref["content"]
    # Without a local vocabulary ids go as they are, but only ids.
    for bad in (2**40, -1):
        msg = error_of(c.call("generate", {"prompt": [1, bad], "max_tokens": 2}), -32602)
        assert "prompt[1]" in msg, msg


def test_chat(wisp, stories_server):
    c = wisp()
    load(c, stories_server.url, STORIES)
    msgs = [{"role": "user", "content": "Tell me a story."}]
    r, pieces = run(c, "chat", {"messages": msgs, "max_tokens": 12, "temperature": 0})
    ref = http(stories_server.url + "/v1/chat/completions",
               {"messages": msgs, "max_tokens": 12, "temperature": 0})
    msg = r["result"]["message"]
    assert msg["role"] == "assistant"
    assert msg["content"] == ref["choices"][0]["message"]["content"]
    assert "".join(p["text"] for p in pieces) == msg["content"]


def test_unsupported_fields_are_refused(wisp, stories_server):
    c = wisp()
    load(c, stories_server.url, STORIES, kind="openai")
    msg = error_of(c.call("generate", {"prompt": "Hi", "typical_p": 0.5}), -32602)
    assert "typical_p" in msg and "OpenAI" in msg, msg
    msg = error_of(c.call("chat", {"messages": [{"role": "user", "content": "x"}],
                                   "template": "{{ x }}"}), -32602)
    assert "template" in msg and "remote" in msg, msg
    error_of(c.call("evaluate", {"tokens": [1, 2, 3]}), -31007)
    msg = error_of(c.call("model/load", {"remote": {"url": "ftp://x"}}), -32602)
    assert "http" in msg, msg
    msg = error_of(c.call("model/load", {"remote": {"url": stories_server.url,
                                                    "api_key_env": "WISP_NO_SUCH_VAR"}}), -32602)
    assert "WISP_NO_SUCH_VAR" in msg, msg
    # The failed loads left the working backend serving.
    assert "result" in c.call("generate", {"prompt": "Hi", "max_tokens": 2})


def test_api_key_is_sent_and_never_logged(wisp, stories_server):
    secret = "sk-wisp-test-0123456789"
    c = wisp("--remote", stories_server.url, "--remote-api-key-env", "WISP_TEST_KEY",
             "--log-level", "debug", env={"WISP_TEST_KEY": secret})
    assert "result" in c.call("generate", {"prompt": "Once", "max_tokens": 2})
    st = c.call("status")["result"]
    assert st["remote"]["servers"][0]["requests"] >= 1
    c.close_stdin()
    c.wait()
    assert secret not in c.stderr_text()


# ---------------------------------------------------------------- infill

def test_infill_with_code_rules(wisp, fim_server):
    c = wisp()
    load(c, fim_server.url, FIM_MODEL, kind="llama.cpp")
    base = {"input_prefix": "def add(a, b):\n    ", "input_suffix": "\n\nprint(add(1, 2))\n",
            "temperature": 0, "logit_bias": NO_SPECIALS}
    r, pieces = run(c, "infill", {**base, "max_tokens": 16})
    res = r["result"]
    assert res["finish_reason"] in ("length", "eog", "n_indent", "suffix_repeat")
    assert "".join(p["text"] for p in pieces) == res["text"]
    # t_max_predict_ms ends a long completion by the clock once a line is
    # done (llama.cpp's rule): newlines are steered in.
    nl = c.call("tokenize", {"text": "\n"})["result"]["tokens"][-1]
    t0 = time.monotonic()
    r, _ = run(c, "infill", {**base, "max_tokens": 2000, "t_max_predict_ms": 50,
                             "logit_bias": NO_SPECIALS + [[nl, 100]]})
    assert r["result"]["finish_reason"] == "t_max_predict_ms", r
    assert r["result"]["usage"]["completion_tokens"] < 2000
    assert time.monotonic() - t0 < 5
    # n_indent: no line after the first is indented less than asked.
    r, _ = run(c, "infill", {**base, "max_tokens": 64, "n_indent": 4})
    for line in r["result"]["text"].split("\n")[1:]:
        if line.strip():
            assert len(line) - len(line.lstrip(" ")) >= 4, r["result"]["text"]
    # The OpenAI path builds the FIM prompt here, with the local FIM tokens.
    c2 = wisp()
    load(c2, fim_server.url, FIM_MODEL, kind="openai")
    r, _ = run(c2, "infill", {**base, "max_tokens": 8})
    assert r["result"]["usage"]["prompt_tokens"] > 0
    assert r["result"]["finish_reason"] in ("length", "eog", "n_indent", "suffix_repeat")


# ---------------------------------------------------------------- cancellation

def wait_idle(server, within=1.0):
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not server.busy():
            return True
        time.sleep(0.02)
    return not server.busy()


def first_piece(c, rid):
    seen = []
    try:
        while True:
            m = c.recv(10)
            if m.get("method") == "$/stream" and m["params"]["id"] == rid:
                return m
            seen.append(m)
    finally:
        c.backlog = seen + c.backlog


def test_cancel_and_supersede_stop_the_server(wisp, fim_server):
    c = wisp()
    load(c, fim_server.url, FIM_MODEL, kind="llama.cpp")
    long = {"prompt": "def main():", "max_tokens": 100000, "temperature": 0,
            "logit_bias": NO_SPECIALS}
    rid = c.request("generate", long)
    first_piece(c, rid)
    assert fim_server.busy()
    c.notify("$/cancelRequest", {"id": rid})
    error_of(c.response(rid), -32800)
    assert wait_idle(fim_server), "the server still generates a second after the cancel"
    # Supersede: the newer request with the same key ends the older one.
    a = c.request("generate", {**long, "supersede": "file:///a.py"})
    first_piece(c, a)
    b = c.request("generate", {**long, "max_tokens": 4, "supersede": "file:///a.py"})
    error_of(c.response(a), -32800)
    assert c.response(b)["result"]["usage"]["completion_tokens"] == 4
    assert wait_idle(fim_server)


# ---------------------------------------------------------------- routing

def test_two_servers_cache_routing_and_failover(wisp):
    a = start_or_skip(STORIES)
    try:
        b = start_or_skip(STORIES)
    except BaseException:
        a.stop()
        raise
    try:
        c = wisp()
        c.call("model/load", {"path": STORIES,
                              "remote": {"urls": [a.url, b.url], "kind": "llama.cpp"}})
        r1 = c.call("generate", {"prompt": DOC, "max_tokens": 4, "temperature": 0})["result"]
        r2 = c.call("generate", {"prompt": DOC + " The old man", "max_tokens": 4,
                                 "temperature": 0})["result"]
        assert r1["remote"]["url"] == r2["remote"]["url"]
        assert r2["usage"]["cached_tokens"] > 0, r2
        servers = c.call("status")["result"]["remote"]["servers"]
        assert {s["url"] for s in servers} == {a.url, b.url}
        home = r1["remote"]["url"]
        assert [s for s in servers if s["url"] == home][0]["keyed"] >= 2
        # The document's server dies: its traffic moves, with at most one error.
        dead, alive = (a, b) if home == a.url else (b, a)
        dead.stop()
        errors = 0
        for i in range(3):
            r = c.call("generate", {"prompt": DOC + " " * i, "max_tokens": 4})
            if "error" in r:
                errors += 1
                assert r["error"]["code"] == -31010 and dead.url in r["error"]["message"]
            else:
                assert r["result"]["remote"]["url"] == alive.url
        assert errors <= 1
        st = c.call("model/info")["result"]["remote"]["servers"]
        assert [s for s in st if s["url"] == dead.url][0]["up"] is False
    finally:
        a.stop()
        b.stop()


# ---------------------------------------------------------------- bad servers

class FakeServer:
    """Answers GET /v1/models; POSTs get silence or garbage."""

    def __init__(self, mode, models=True):
        self.mode = mode
        self.models = models
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.url = "http://127.0.0.1:%d" % self.sock.getsockname()[1]
        self.conns = []
        self.stopped = False
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while not self.stopped:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn):
        try:
            req = conn.recv(65536).decode(errors="replace")
            if req.startswith("GET /v1/models") and self.models:
                body = b'{"object":"list","data":[{"id":"fake"}]}'
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             b"Content-Length: %d\r\n\r\n" % len(body) + body)
            elif self.mode == "garbage":
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n"
                             b"this is not an event stream\r\n\x00\xff{{{\n\n")
                conn.close()
            # silent: keep the connection open, answer nothing
        except OSError:
            pass

    def stop(self):
        self.stopped = True
        self.sock.close()
        for c in self.conns:
            c.close()


def test_silent_and_garbage_servers_fail_clearly(wisp):
    c = wisp()
    silent = FakeServer("silent")
    garbage = FakeServer("garbage")
    mute = FakeServer("silent", models=False)
    try:
        load(c, silent.url, idle_timeout_ms=400)
        t0 = time.monotonic()
        msg = error_of(c.call("generate", {"prompt": "Hi", "max_tokens": 4}), -31010)
        assert 0.3 < time.monotonic() - t0 < 3, msg
        assert "no answer for 400 ms" in msg and silent.url in msg, msg
        load(c, garbage.url, idle_timeout_ms=2000)
        msg = error_of(c.call("generate", {"prompt": "Hi", "max_tokens": 4}), -31010)
        assert garbage.url in msg, msg
        # A server that never answers at all fails the load within the timeout.
        t0 = time.monotonic()
        msg = error_of(c.call("model/load", {"remote": {"url": mute.url,
                                                        "idle_timeout_ms": 300}}), -31002)
        assert time.monotonic() - t0 < 3 and "no remote server answered" in msg, msg
        # wisp keeps serving: a local model loads and generates.
        assert "result" in c.call("model/load", {"path": STORIES})
        assert c.call("generate", {"prompt": "Once", "max_tokens": 3})["result"]["text"]
        assert "remote" not in c.call("status")["result"]
    finally:
        silent.stop()
        garbage.stop()
        mute.stop()
