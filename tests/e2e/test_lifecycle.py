"""Lifecycle and the command line: shutdown/exit codes, EOF, signals,
--help/--version, bad flags, logs on stderr only."""
import json
import signal
import time

from conftest import WISP_BIN, error_of, run_once


def test_shutdown_then_exit_is_0(client):
    assert client.call("shutdown")["result"] is None
    client.notify("exit")
    assert client.wait() == 0


def test_exit_without_shutdown_is_1(client):
    client.call("status")
    client.notify("exit")
    assert client.wait() == 1


def test_requests_after_shutdown_are_refused(client):
    assert client.call("shutdown")["result"] is None
    assert "shutting down" in error_of(client.call("status"), -31005)
    assert "shutting down" in error_of(client.call("shutdown"), -31005)
    client.notify("exit")
    assert client.wait() == 0


def test_shutdown_answers_everything_outstanding_first(client):
    # Engine-thread requests queued in the same write as the shutdown: each
    # gets its answer (or -32800) before shutdown's null.
    reqs = [{"jsonrpc": "2.0", "id": i, "method": "model/load", "params": {"path": "/nonexistent"}}
            for i in range(1, 41)]
    reqs.append({"jsonrpc": "2.0", "id": "down", "method": "shutdown"})
    data = b"".join(client.frame(json.dumps(r).encode()) for r in reqs)
    for r in reqs:
        client.methods[json.dumps(r["id"])] = r["method"]
    client.send_raw(data)
    got = [client.recv() for _ in range(41)]
    assert got[-1]["id"] == "down" and got[-1]["result"] is None
    assert sorted(m["id"] for m in got[:-1]) == list(range(1, 41))
    for m in got[:-1]:
        assert m["error"]["code"] in (-31002, -32800)
    client.notify("exit")
    assert client.wait() == 0


def test_eof_with_requests_in_flight_answers_them_all():
    lines = [json.dumps({"jsonrpc": "2.0", "id": i, "method": "model/plan",
                         "params": {"path": "/nonexistent"}}) for i in range(200)]
    rc, out, err = run_once([], ("\n".join(lines) + "\n").encode())
    assert rc == 0, err
    got = [json.loads(l) for l in out.splitlines()]
    assert sorted(m["id"] for m in got) == list(range(200))
    assert all(m["error"]["code"] == -31002 for m in got)


def test_one_line_shell_call():
    rc, out, err = run_once([], b'{"jsonrpc":"2.0","id":1,"method":"status"}')
    assert rc == 0
    assert json.loads(out)["id"] == 1


def test_empty_input_exits_0():
    rc, out, err = run_once([], b"")
    assert rc == 0 and out == b""


def test_sigterm_behaves_like_eof(client):
    assert "result" in client.call("status")
    client.signal(signal.SIGTERM)
    assert client.wait() == 0
    assert "signal" in client.stderr_text()


def test_sigint_behaves_like_eof(client):
    client.call("status")
    client.signal(signal.SIGINT)
    assert client.wait() == 0


def test_help_and_version():
    rc, out, err = run_once(["--help"])
    assert rc == 0
    text = out.decode()
    for flag in ["--model", "--ctx", "--threads", "--device", "--log-level", "--max-message-bytes",
                 "--help", "--version"]:
        assert flag in text
    rc, out, err = run_once(["--version"])
    assert rc == 0 and out.decode().startswith("wisp ")


def test_bad_flags_exit_2_with_a_clear_message():
    cases = [
        (["--bogus"], "unknown option '--bogus'"),
        (["--ctx"], "--ctx: missing value"),
        (["--ctx", "abc"], "--ctx: expected a whole number"),
        (["--threads", "0"], "--threads"),
        (["--device", "tpu"], "expected auto, cpu or cuda"),
        (["--device", "cuda:x"], "expected auto, cpu or cuda[:N], got 'cuda:x'"),
        (["--device", "cuda:"], "expected auto, cpu or cuda[:N]"),
        (["--log-level", "loud"], "--log-level"),
        (["--max-message-bytes", "-5"], "--max-message-bytes"),
        (["stray"], "unknown command 'stray'"),
    ]
    for args, want in cases:
        rc, out, err = run_once(args)
        assert rc == 2, (args, rc, err)
        assert want in err, (args, err)
        assert out == b"", "errors go to stderr"


def test_flags_with_equals_and_values_accepted():
    rc, out, err = run_once(["--ctx=256", "--threads", "2", "--device", "cpu", "--log-level=debug",
                             "--max-message-bytes=4096"], b'{"jsonrpc":"2.0","id":1,"method":"status"}\n')
    assert rc == 0, err
    assert json.loads(out)["id"] == 1


def test_missing_model_file_is_fatal_with_a_reason():
    rc, out, err = run_once(["--model", "/nonexistent/model.gguf"])
    assert rc == 1
    assert "cannot open /nonexistent/model.gguf: No such file or directory" in err
    assert out == b""


def test_logs_never_on_stdout(wisp):
    c = wisp("--log-level", "debug")
    c.call("initialize", {"clientInfo": {"name": "log-test"}})
    c.notify("$/unknown")
    c.notify("unknown")
    c.send(b"{not json")
    c.recv()
    c.call("shutdown")
    c.notify("exit")
    assert c.wait() == 0
    # Every byte on stdout parsed as protocol (the harness checks that); the
    # logs went to stderr.
    assert b"wisp" not in c.stdout_bytes.replace(b'"wisp"', b"")
    assert "debug" in c.stderr_text() and "client: log-test" in c.stderr_text()


def test_client_closing_stdout_does_not_kill_wisp():
    import subprocess
    p = subprocess.Popen([WISP_BIN], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    p.stdout.close()   # the reader goes away: writes get EPIPE, not SIGPIPE
    req = b'{"jsonrpc":"2.0","id":1,"method":"status"}\n'
    p.stdin.write(req * 100)
    p.stdin.close()
    assert p.wait(timeout=20) == 0
    assert "stdout" in p.stderr.read().decode()


def test_exit_on_the_last_line_without_newline():
    rc, out, err = run_once([], b'{"jsonrpc":"2.0","method":"exit"}')
    assert rc == 1 and out == b""
    rc, out, err = run_once([], b'{"jsonrpc":"2.0","id":1,"method":"shutdown"}\n'
                                b'{"jsonrpc":"2.0","method":"exit"}\n'
                                b'{"jsonrpc":"2.0","id":2,"method":"status"}\n')
    assert rc == 0
    assert [json.loads(l)["id"] for l in out.splitlines()] == [1], "nothing is read after exit"


def test_regular_files_as_stdin_and_stdout(tmp_path):
    import subprocess
    src = tmp_path / "in.jsonl"
    src.write_bytes(b"".join(b'{"jsonrpc":"2.0","id":%d,"method":"status"}\n' % i for i in range(100)))
    dst = tmp_path / "out.jsonl"
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        rc = subprocess.run([WISP_BIN], stdin=fin, stdout=fout, stderr=subprocess.PIPE,
                            timeout=20).returncode
    assert rc == 0
    assert [json.loads(l)["id"] for l in dst.read_bytes().splitlines()] == list(range(100))
