"""The bundled Python client (clients/python/wisp_client.py) against the
real wisp: ids, cancel, cancel when a stream is left, timeouts, infill,
no hang after wisp died, clean command-line errors."""
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import ROOT, WISP_BIN
from wispgen import shared_file, stories_path

sys.path.insert(0, str(ROOT / "clients" / "python"))
import wisp_client  # noqa: E402
from wisp_client import Wisp, WispError, WispGone, WispTimeout  # noqa: E402

CLIENT = str(ROOT / "clients" / "python" / "wisp_client.py")
TOOLS = os.environ.get("WISP_TOOLS", str(ROOT / "build" / "tools"))
LONG = {"max_tokens": 1900, "logit_bias": [[2, False]], "temperature": 0}


@pytest.fixture(scope="module")
def slow_model(tmp_path_factory):
    """An F32 model slow enough that 1900 tokens take seconds (stories260K
    makes them faster than a test can cancel)."""
    synth = os.path.join(TOOLS, "synth")
    if not os.access(synth, os.X_OK):
        pytest.skip(f"{synth} is not built")
    model = tmp_path_factory.mktemp("client") / "slow.gguf"
    subprocess.run([synth, "--arch", "llama", "--layers", "8", "--embd", "384", "--heads", "6",
                    "--kv-heads", "6", "--ff", "1024", "--ctx", "2048", "--type", "f32",
                    "--vocab", shared_file("vocab/ggml-vocab-llama-spm.gguf"),
                    "--out", str(model)], check=True, capture_output=True)
    return str(model)


def spawn(model, **kw):
    return Wisp([WISP_BIN, "--model", str(model), "--threads", "2", "--log-level", "warn",
                 "--ctx", "2048"], stderr=subprocess.DEVNULL, **kw)


@pytest.fixture
def w(slow_model):
    c = spawn(slow_model, timeout=30)
    yield c
    c.close()


def settled(w, timeout=10):
    deadline = time.monotonic() + timeout
    while True:
        st = w.call("status")
        # Only this status in flight: every cancelled request was answered.
        if (st["requests"]["in_flight"] == 1 and st["requests"]["running"] == 0
                and st["kv_cache"]["blocks_used"] == 0):
            return st
        assert time.monotonic() < deadline, f"still generating: {st['requests']}"
        time.sleep(0.05)


def test_stream_has_an_id_and_a_result(w):
    s = w.generate_stream("Once upon a time", max_tokens=12, temperature=0)
    assert isinstance(s.id, int)
    text = "".join(s)
    assert s.result["text"] == text and len(s.result["tokens"]) == 12
    r = w.generate("Once upon a time", max_tokens=12, temperature=0)
    assert r["tokens"] == s.result["tokens"]


def test_cancel_a_stream(w):
    s = w.generate_stream("Once upon a time", **LONG)
    next(s)
    s.cancel()
    with pytest.raises(WispError) as e:
        for _ in s:
            pass
    assert e.value.code == -32800 and e.value.data["tokens"]
    settled(w)


def test_leaving_a_stream_cancels_it(w):
    for i, _ in enumerate(w.generate_stream("Once upon a time", **LONG)):
        if i == 3:
            break
    st = settled(w)
    assert st["requests"]["cancelled"] >= 1


def test_timeout_cancels_the_request(w):
    with pytest.raises(WispTimeout):
        w.generate("Once upon a time", timeout=0.3, **LONG)
    st = settled(w)
    assert st["requests"]["cancelled"] >= 1
    assert w.call("status", timeout=5)["requests"]["in_flight"] == 1


def test_no_hang_after_wisp_died(slow_model):
    c = spawn(slow_model)
    s = c.generate_stream("Once upon a time", **LONG)
    next(s)
    c.proc.kill()
    c.proc.wait()
    with pytest.raises(WispGone):
        for _ in s:
            pass
    t0 = time.monotonic()
    with pytest.raises(WispGone):
        c.call("status")               # made after the reader ended
    assert time.monotonic() - t0 < 5
    c.close()


def test_infill(tmp_path):
    vocab = shared_file("vocab/ggml-vocab-deepseek-coder.gguf")
    synth = os.path.join(TOOLS, "synth")
    if not os.access(synth, os.X_OK):
        pytest.skip(f"{synth} is not built")
    model = tmp_path / "fim.gguf"
    subprocess.run([synth, "--arch", "qwen2", "--layers", "2", "--embd", "128", "--heads", "4",
                    "--kv-heads", "2", "--ff", "256", "--ctx", "4096", "--type", "q8_0", "--tied",
                    "--vocab", str(vocab), "--seed", "7", "--out", str(model)],
                   check=True, capture_output=True)
    with Wisp([WISP_BIN, "--model", str(model), "--log-level", "warn"], timeout=30) as c:
        whole = c.infill("def add(a, b):\n    return ", "\n", max_tokens=6, temperature=0)
        s = c.infill_stream("def add(a, b):\n    return ", "\n", max_tokens=6, temperature=0)
        assert "".join(s) == whole["text"] == s.result["text"]
        assert s.result["tokens"] == whole["tokens"]


def test_cli_missing_model_is_a_clean_error(tmp_path):
    p = subprocess.run([sys.executable, CLIENT, "--wisp", WISP_BIN, "--model",
                        str(tmp_path / "none.gguf"), "hi"], capture_output=True, timeout=30)
    assert p.returncode == 2
    assert b"Traceback" not in p.stderr and b"no such model" in p.stderr
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"not a model")
    p = subprocess.run([sys.executable, CLIENT, "--wisp", WISP_BIN, "--model", str(bad), "hi"],
                       capture_output=True, timeout=30)
    assert p.returncode == 1
    assert b"Traceback" not in p.stderr and b"not a model file" in p.stderr, p.stderr


def test_cli_ctrl_c_is_a_clean_exit(slow_model):
    p = subprocess.Popen([sys.executable, CLIENT, "--wisp", WISP_BIN, "--model",
                          slow_model, "--max-tokens", "1900", "--temperature", "0",
                          "Once upon a time"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        p.stdout.read(40)                           # it is streaming
        os.killpg(p.pid, signal.SIGINT)             # Ctrl-C reaches the whole group
        out, err = p.communicate(timeout=30)
        assert p.returncode == 130, err
        assert b"Traceback" not in err, err
        assert b"interrupted" in err
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
