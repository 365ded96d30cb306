"""The shell commands over pipes and, for `wisp chat`, through tmux.

`wisp run`, `wisp complete` and `wisp chat` are JSON-RPC clients of a wisp
child, so each test compares what the command prints with what a direct
request to build/wisp answers for the same params (greedy, so the two must
agree byte for byte). The chat tests need the server's `chat` method; with
a binary that lacks it they skip with that reason (the tests of the parts
that need no reply still run). tmux runs on a private socket per test.
"""
import json
import os
import shlex
import shutil
import signal
import subprocess
import time

import pytest

from conftest import ROOT, SCHEMAS, WISP_BIN, check_sanitizer_report

SHARED = os.environ.get("WISP_SHARED", str(ROOT.parent / "shared"))
STORIES = str(ROOT / "models" / "stories260K.gguf")
FIM_MODEL = os.path.join(SHARED, "golden", "syn-qwen2-dsc-q8_0.gguf")
GREEDY = ["--temp", "0", "--seed", "1"]
GREEDY_PARAMS = {"temperature": 0, "seed": 1}
# Long enough that it is still generating when the test acts on it (the
# whole run takes minutes), short enough to fit the context given.
LONG = ["-n", "30000", "-c", "32768"]
TIMEOUT = 60
# A ChatML template: stories260K carries none, so the chat tests pass it.
CHATML = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
          "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def cli(*args, stdin=b"", timeout=TIMEOUT):
    """Runs `wisp ARGS` to its end: (returncode, stdout bytes, stderr text)."""
    p = subprocess.run([WISP_BIN, *args], input=stdin, capture_output=True, timeout=timeout)
    err = p.stderr.decode("utf-8", "replace")
    check_sanitizer_report(err)
    return p.returncode, p.stdout, err


def direct(wisp, method, params, model=STORIES):
    """The answer of one direct request to a fresh server."""
    c = wisp("--model", model, "--log-level", "error")
    return c.call(method, params)


@pytest.fixture(scope="module")
def chat_template(tmp_path_factory):
    path = tmp_path_factory.mktemp("tpl") / "chatml.jinja"
    path.write_text(CHATML)
    return str(path)


@pytest.fixture(scope="module")
def has_chat():
    """Whether the binary serves `chat` (it answers -32601 when it does not)."""
    p = subprocess.run([WISP_BIN, "--model", STORIES, "--log-level", "error"],
                       input=(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "chat", "params": {
                           "messages": [{"role": "user", "content": "hi"}], "template": CHATML,
                           "max_tokens": 1, "stream": False}}) + "\n").encode(),
                       capture_output=True, timeout=TIMEOUT)
    answer = json.loads(p.stdout.decode().splitlines()[0])
    return answer.get("error", {}).get("code") != -32601


def need_chat(has_chat):
    if not has_chat:
        pytest.skip(f"{WISP_BIN} has no 'chat' method (answered -32601 method not found)")


# ---------------------------------------------------------------- wisp run

def test_run_streams_the_generate_text(wisp):
    want = direct(wisp, "generate", {"prompt": "Once upon a time", "max_tokens": 40, **GREEDY_PARAMS})
    rc, out, err = cli("run", "-m", STORIES, "-n", "40", *GREEDY, "Once", "upon", "a", "time")
    assert rc == 0, err
    assert out.decode() == want["result"]["text"]
    assert err == "", "nothing on stderr without -v"


def test_run_reads_the_prompt_from_stdin(wisp):
    want = direct(wisp, "generate", {"prompt": "Once upon a time", "max_tokens": 20, **GREEDY_PARAMS})
    rc, out, err = cli("run", "-m", STORIES, "-n", "20", *GREEDY, stdin=b"Once upon a time\n")
    assert rc == 0, err
    assert out.decode() == want["result"]["text"]


def test_run_json_prints_the_result(wisp):
    want = direct(wisp, "generate", {"prompt": "Lily", "max_tokens": 12, **GREEDY_PARAMS})["result"]
    rc, out, err = cli("run", "-m", STORIES, "-n", "12", *GREEDY, "--json", "Lily")
    assert rc == 0, err
    lines = out.decode().splitlines()
    assert len(lines) == 1, out
    got = json.loads(lines[0])
    assert SCHEMAS.errors("generate.result.json", got) == []
    for key in ("text", "tokens", "finish_reason", "seed"):
        assert got[key] == want[key], key


def test_run_verbose_puts_timings_on_stderr_only(wisp):
    want = direct(wisp, "generate", {"prompt": "Once", "max_tokens": 8, **GREEDY_PARAMS})
    rc, out, err = cli("run", "-m", STORIES, "-n", "8", *GREEDY, "-v", "Once")
    assert rc == 0, err
    assert out.decode() == want["result"]["text"]
    assert "8 generated (length)" in err and "decode" in err, err


def test_run_stop_strings(wisp):
    params = {"prompt": "Once upon a time", "max_tokens": 60, **GREEDY_PARAMS}
    full = direct(wisp, "generate", params)["result"]["text"]
    stop = " girl" if " girl" in full else full.split()[3]
    want = direct(wisp, "generate", {**params, "stop": [stop, "zzz"]})["result"]
    assert want["finish_reason"] == "stop"
    rc, out, err = cli("run", "-m", STORIES, "-n", "60", *GREEDY, "--stop", stop, "--stop=zzz",
                       "Once upon a time")
    assert rc == 0, err
    assert out.decode() == want["text"]
    assert len(out) < len(full.encode())


def test_run_into_head_ends_with_head():
    cmd = f"{shlex.quote(WISP_BIN)} run -m {shlex.quote(STORIES)} {' '.join(LONG)} --temp 0 Once" \
          " | head -c 20; echo \" rc=${PIPESTATUS[0]}\""
    t0 = time.monotonic()
    p = subprocess.run(["bash", "-c", cmd], capture_output=True, timeout=TIMEOUT)
    elapsed = time.monotonic() - t0
    out = p.stdout.decode()
    assert len(out.split(" rc=")[0].encode()) == 20, out
    assert out.endswith(" rc=0\n"), (out, p.stderr)
    # The whole generation takes minutes; the command must not run it out.
    assert elapsed < TIMEOUT / 2, elapsed
    check_sanitizer_report(p.stderr.decode("utf-8", "replace"))


def test_run_ctrl_c_prints_what_was_generated(wisp):
    c = wisp("--model", STORIES, "--ctx", "32768", "--log-level", "error")
    greedy = c.call("generate", {"prompt": "Once", "max_tokens": 200, **GREEDY_PARAMS})
    greedy = greedy["result"]["text"].encode()
    p = subprocess.Popen([WISP_BIN, "run", "-m", STORIES, *LONG, *GREEDY, "Once"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        seen = b""
        while len(seen) < 40:
            chunk = os.read(p.stdout.fileno(), 4096)
            assert chunk, "wisp run ended before the interrupt"
            seen += chunk
        p.send_signal(signal.SIGINT)
        rest, err = p.communicate(timeout=TIMEOUT)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    err = err.decode("utf-8", "replace")
    check_sanitizer_report(err)
    assert p.returncode == 0, err
    out = seen + rest
    # What was generated, from its start: the greedy text's prefix.
    assert out.startswith(greedy) or greedy.startswith(out), (out[:300], greedy)
    # Still far from the 30000 tokens asked for: it stopped on the signal.
    assert len(out) < 30000, len(out)
    assert err == "", err


def test_run_ctrl_c_json_carries_the_partial_output():
    p = subprocess.Popen([WISP_BIN, "run", "-m", STORIES, *LONG, "--temp", "0", "--json", "-v",
                          "Once"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        # -v shows the server's log: once it is ready, the command's Ctrl-C
        # handler is in place and the generation (minutes long) is queued.
        log = b""
        while b"wisp ready" not in log:
            chunk = os.read(p.stderr.fileno(), 4096)
            assert chunk, f"wisp run ended before the interrupt: {log!r}"
            log += chunk
        time.sleep(0.2)
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=TIMEOUT)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 0, err
    got = json.loads(out.decode())
    assert got["code"] == -32800, got
    assert isinstance(got["data"]["text"], str) and got["data"]["tokens"], got


@pytest.mark.parametrize("args,needle", [
    (["run", "-m", STORIES, "--bogus", "x"], "--bogus"),
    (["run", "-m", STORIES, "-n", "many", "x"], "-n needs an integer"),
    (["run", "-m", STORIES, "--temp"], "--temp needs a value"),
    (["run", "-m", STORIES, "--json=1", "x"], "--json takes no value"),
    (["run", "-m", STORIES, "--f16-as-bf16=1", "x"], "--f16-as-bf16 takes no value"),
    (["run", "hello"], "-m MODEL is required"),
    (["run", "-m", STORIES, "--top-p", "3", "x"], "'top_p'"),
    (["run", "-m", STORIES, "--system-prompt", "s", "x"], "needs --chat"),
    (["complete", "-m", STORIES], "FILE:LINE:COL"),
    (["complete", "-m", STORIES, "f.py:1"], "not FILE:LINE:COL"),
    (["complete", "-m", STORIES, "f.py:0:1"], "LINE must be"),
    (["chat", "-m", STORIES, "extra"], "takes no arguments"),
])
def test_bad_command_lines_exit_2(args, needle):
    rc, out, err = cli(*args)
    assert rc == 2, (rc, err)
    assert needle in err, err
    assert out == b""


def test_help_lists_the_flags():
    rc, out, err = cli("run", "--help")
    assert rc == 0, err
    text = out.decode()
    for flag in ("--max-tokens", "--temp", "--top-k", "--top-p", "--seed", "--stop", "--threads",
                 "--ctx-size", "--f16-as-bf16", "--chat", "--json"):
        assert flag in text, flag


@pytest.mark.parametrize("command", [["run", "hello"], ["chat"], ["complete", __file__ + ":1:1"]])
def test_missing_model_exits_1_with_a_message(tmp_path, command):
    missing = str(tmp_path / "nope.gguf")
    rc, out, err = cli(command[0], "-m", missing, *command[1:], stdin=b"hello\n")
    assert rc == 1, err
    assert missing in err and "No such file" in err, err
    assert f"wisp {command[0]}:" in err, err
    assert out == b""


def test_run_threads_and_ctx_reach_the_server(wisp):
    want = direct(wisp, "generate", {"prompt": "Once", "max_tokens": 10, **GREEDY_PARAMS})
    rc, out, err = cli("run", "-m", STORIES, "-t", "1", "-c", "256", "-n", "10", *GREEDY, "Once")
    assert rc == 0, err
    assert out.decode() == want["result"]["text"]
    # A context too small for the request is the server's refusal.
    rc, out, err = cli("run", "-m", STORIES, "-c", "16", "-n", "100", *GREEDY, "Once")
    assert rc == 1 and "wisp run:" in err and out == b"", (rc, err)


def test_run_f16_as_bf16_reaches_the_server(wisp):
    """The same text as a server started with --f16-as-bf16 (which computes
    an F16 model in BF16 where the CPU can, so its greedy text may differ
    from the F16 one)."""
    f16 = os.path.join(SHARED, "golden", "syn-qwen2-dsc-f16.gguf")
    if not os.path.exists(f16):
        pytest.skip(f"fixture {f16} is missing")
    c = wisp("--model", f16, "--log-level", "error", "--f16-as-bf16")
    assert c.call("model/info")["result"]["f16_as_bf16"]["requested"] is True
    want = c.call("generate", {"prompt": "Once", "max_tokens": 8, **GREEDY_PARAMS})
    rc, out, err = cli("run", "-m", f16, "--f16-as-bf16", "-n", "8", *GREEDY, "Once")
    assert rc == 0, err
    assert out.decode() == want["result"]["text"]


# ---------------------------------------------------------------- wisp complete

def fim_model():
    if not os.path.exists(FIM_MODEL):
        pytest.skip(f"fixture {FIM_MODEL} is missing")
    return FIM_MODEL


SOURCE = "def add(a, b):\n    return a + b\n\n\ndef mul(a, b):\n    résult = a * b\n    return résult\n"


@pytest.mark.parametrize("line,col", [(2, 5), (6, 6), (6, 12), (8, 1), (1, 1)])
def test_complete_equals_infill(wisp, tmp_path, line, col):
    model = fim_model()
    f = tmp_path / "m.py"
    f.write_text(SOURCE)
    lines = SOURCE.split("\n")
    off = sum(len(l) + 1 for l in lines[:line - 1]) + (col - 1)
    prefix, suffix = SOURCE[:off], SOURCE[off:]
    want = direct(wisp, "infill", {"input_prefix": prefix, "input_suffix": suffix,
                                   "filename": str(f), "max_tokens": 16, **GREEDY_PARAMS},
                  model=model)
    rc, out, err = cli("complete", "-m", model, "-n", "16", *GREEDY, f"{f}:{line}:{col}")
    assert rc == 0, err
    assert out.decode() == want["result"]["text"]


def test_complete_json(wisp, tmp_path):
    model = fim_model()
    f = tmp_path / "m.py"
    f.write_text(SOURCE)
    rc, out, err = cli("complete", "-m", model, "-n", "8", *GREEDY, "--json", f"{f}:2:5")
    assert rc == 0, err
    got = json.loads(out.decode())
    assert SCHEMAS.errors("infill.result.json", got) == []
    assert got["prompt_parts"]["prefix"] > 0 and got["prompt_parts"]["suffix"] > 0


@pytest.mark.parametrize("pos,needle", [
    ("9:1", "there is no line 9"),
    ("2:18", "column 18 is past its end"),
    # 18 characters but 19 bytes: columns count characters.
    ("6:20", "column 20 is past its end (at most 19)"),
])
def test_complete_out_of_range_positions(tmp_path, pos, needle):
    f = tmp_path / "m.py"
    f.write_text(SOURCE)
    rc, out, err = cli("complete", "-m", STORIES, f"{f}:{pos}")
    assert rc == 2, err
    assert needle in err, err


def test_complete_missing_file(tmp_path):
    rc, out, err = cli("complete", "-m", STORIES, f"{tmp_path}/none.py:1:1")
    assert rc == 1 and "cannot open" in err, err


# ---------------------------------------------------------------- --chat

def test_run_chat_equals_the_chat_method(wisp, has_chat, chat_template):
    need_chat(has_chat)
    want = direct(wisp, "chat", {"messages": [{"role": "system", "content": "Be brief."},
                                              {"role": "user", "content": "Tell a story"}],
                                 "template": CHATML, "max_tokens": 24, **GREEDY_PARAMS})
    assert "result" in want, want
    rc, out, err = cli("run", "-m", STORIES, "--chat", "--chat-template-file", chat_template,
                       "-sys", "Be brief.", "-n", "24", *GREEDY, "Tell a story")
    assert rc == 0, err
    assert out.decode() == want["result"]["text"]


def test_run_chat_without_the_method_fails_clearly(has_chat):
    if has_chat:
        pytest.skip(f"{WISP_BIN} has the 'chat' method")
    rc, out, err = cli("run", "-m", STORIES, "--chat", "hello")
    assert rc == 1
    assert "no 'chat' method" in err, err


def test_chat_from_a_pipe(wisp, has_chat, chat_template):
    need_chat(has_chat)
    first = direct(wisp, "chat", {"messages": [{"role": "user", "content": "Hi"}],
                                  "template": CHATML, "max_tokens": 10, **GREEDY_PARAMS})["result"]
    rc, out, err = cli("chat", "-m", STORIES, "--chat-template-file", chat_template, "-n", "10",
                       *GREEDY, stdin=b"Hi\n/system Be kind.\nAgain\n/reset\nHi\n")
    assert rc == 0, err
    out = out.decode()
    # Each reply ends with a newline. After /reset the conversation starts
    # over with the system message kept: the last reply is the one to
    # [system, user] alone.
    last = direct(wisp, "chat", {"messages": [{"role": "system", "content": "Be kind."},
                                              {"role": "user", "content": "Hi"}],
                                 "template": CHATML, "max_tokens": 10, **GREEDY_PARAMS})["result"]
    assert out.startswith(first["text"] + "\n"), out
    assert out.endswith("\n" + last["text"] + "\n"), out
    assert out.count("\n") >= 3
    assert "(system message set: Be kind.)" in err and "(new conversation)" in err, err


def test_chat_from_a_pipe_without_the_method(has_chat):
    if has_chat:
        pytest.skip(f"{WISP_BIN} has the 'chat' method")
    rc, out, err = cli("chat", "-m", STORIES, stdin=b"/system Be kind.\n/nope\nHi\n")
    assert rc == 1
    assert "(system message set: Be kind.)" in err, err
    assert "unknown command '/nope'" in err, err
    assert "no 'chat' method" in err, err


def test_chat_from_a_pipe_commands_only():
    rc, out, err = cli("chat", "-m", STORIES, stdin=b"/help\n/system\n/reset\n\n   \n")
    assert rc == 0, err
    assert out == b""
    assert "/reset" in err and "(system message removed)" in err and "(new conversation)" in err


# ---------------------------------------------------------------- wisp chat in a terminal

class Tmux:
    """One tmux server on a private socket running one command in a pane."""

    def __init__(self, command):
        self.sock = f"wisp-cli-test-{os.getpid()}-{time.monotonic_ns()}"
        self.base = ["tmux", "-L", self.sock, "-f", "/dev/null"]
        subprocess.run(self.base + ["new-session", "-d", "-x", "150", "-y", "50",
                                    command + "; echo EXITED rc=$?; sleep 120"], check=True)

    def keys(self, *keys):
        subprocess.run(self.base + ["send-keys", *keys], check=True)

    def type(self, text):
        subprocess.run(self.base + ["send-keys", "-l", text], check=True)

    def screen(self):
        p = subprocess.run(self.base + ["capture-pane", "-p", "-S", "-200"], capture_output=True,
                           check=True)
        return p.stdout.decode("utf-8", "replace")

    def wait_for(self, pred, what, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            s = self.screen()
            if pred(s):
                return s
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}; screen:\n{self.screen()}")

    def close(self):
        subprocess.run(self.base + ["kill-server"], capture_output=True)


@pytest.fixture
def tmux(tmp_path):
    if not shutil.which("tmux"):
        pytest.skip("tmux is not installed (make deps)")
    sessions = []
    state = tmp_path / "state"

    def start(*args):
        t = Tmux(" ".join(shlex.quote(a) for a in ["env", f"XDG_STATE_HOME={state}", WISP_BIN,
                                                   "chat", "-m", STORIES, *args]))
        sessions.append(t)
        return t

    yield start
    for t in sessions:
        t.close()


def prompts(screen):
    return [l for l in screen.splitlines() if l.startswith(">")]


def last_line(screen):
    lines = [l for l in screen.splitlines() if l.strip()]
    return lines[-1] if lines else ""


def test_chat_terminal_prompt_commands_and_ctrl_d(tmux):
    t = tmux()
    t.wait_for(lambda s: s.rstrip().endswith(">"), "the prompt")
    t.type("/system Be kind.")
    t.keys("Enter")
    t.wait_for(lambda s: "(system message set: Be kind.)" in s, "the /system notice")
    t.type("/reset")
    t.keys("Enter")
    t.wait_for(lambda s: "(new conversation)" in s, "the /reset notice")
    # Ctrl-C at the prompt drops the line typed so far and stays.
    t.type("half a line")
    t.wait_for(lambda s: "half a line" in s, "the typed text")
    t.keys("C-c")
    t.wait_for(lambda s: last_line(s) == ">", "a fresh prompt after Ctrl-C")
    t.type("/help")
    t.keys("Enter")
    t.wait_for(lambda s: "Ctrl-D quits" in s and last_line(s) == ">", "the help")
    # History: Up brings the last line back.
    t.keys("Up")
    t.wait_for(lambda s: last_line(s) == "> /help", "the history entry")
    t.keys("C-u")
    t.keys("C-d")
    s = t.wait_for(lambda s: "EXITED" in s, "the exit")
    assert "EXITED rc=0" in s, s
    check_sanitizer_report(s)


def test_chat_terminal_history_is_kept_between_sessions(tmux, tmp_path):
    t = tmux()
    t.wait_for(lambda s: s.rstrip().endswith(">"), "the prompt")
    t.type("/system remembered")
    t.keys("Enter")
    t.wait_for(lambda s: "(system message set: remembered)" in s, "the notice")
    t.keys("C-d")
    t.wait_for(lambda s: "EXITED rc=0" in s, "the exit")
    assert "remembered" in (tmp_path / "state" / "wisp" / "chat_history").read_text()
    t = tmux()
    t.wait_for(lambda s: s.rstrip().endswith(">"), "the prompt")
    t.keys("Up")
    t.wait_for(lambda s: last_line(s) == "> /system remembered", "the saved line")
    t.keys("C-u")
    t.keys("C-d")
    t.wait_for(lambda s: "EXITED rc=0" in s, "the exit")


def test_chat_terminal_reply_reset_and_interrupt(tmux, has_chat, chat_template):
    need_chat(has_chat)
    t = tmux("--chat-template-file", chat_template, *LONG, "--temp", "0")
    t.wait_for(lambda s: s.rstrip().endswith(">"), "the prompt")
    t.type("Tell me a story")
    t.keys("Enter")
    # The reply streams: text shows up below the message while it runs.
    t.wait_for(lambda s: len(s.split("> Tell me a story", 1)[-1].strip()) > 40, "a streamed reply")
    t.keys("C-c")
    s = t.wait_for(lambda s: last_line(s) == ">", "the prompt back after Ctrl-C")
    assert "EXITED" not in s
    t.type("/reset")
    t.keys("Enter")
    t.wait_for(lambda s: "(new conversation)" in s and last_line(s) == ">", "the /reset notice")
    t.keys("C-d")
    s = t.wait_for(lambda s: "EXITED" in s, "the exit")
    assert "EXITED rc=0" in s, s
    check_sanitizer_report(s)


def test_chat_terminal_short_replies(tmux, has_chat, chat_template, wisp):
    need_chat(has_chat)
    want = direct(wisp, "chat", {"messages": [{"role": "user", "content": "Hi"}],
                                 "template": CHATML, "max_tokens": 8, **GREEDY_PARAMS})["result"]
    t = tmux("--chat-template-file", chat_template, "-n", "8", *GREEDY)
    t.wait_for(lambda s: s.rstrip().endswith(">"), "the prompt")
    t.type("Hi")
    t.keys("Enter")
    s = t.wait_for(lambda s: len(prompts(s)) >= 2 and last_line(s) == ">", "the reply")
    first_line = want["text"].split("\n")[0].strip()
    assert first_line in s, (first_line, s)
    t.keys("C-d")
    s = t.wait_for(lambda s: "EXITED" in s, "the exit")
    assert "EXITED rc=0" in s, s


def test_chat_terminal_without_the_method(tmux, has_chat):
    if has_chat:
        pytest.skip(f"{WISP_BIN} has the 'chat' method")
    t = tmux()
    t.wait_for(lambda s: s.rstrip().endswith(">"), "the prompt")
    t.type("hello")
    t.keys("Enter")
    s = t.wait_for(lambda s: "EXITED" in s, "the exit")
    assert "no 'chat' method" in s and "EXITED rc=1" in s, s
