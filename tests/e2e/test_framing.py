"""Transport: ndjson and LSP framing, message boundaries, the size limit."""
import json
import time

from conftest import error_of, run_once

REQ = b'{"jsonrpc":"2.0","id":%d,"method":"status"}'


def test_both_framings_round_trip(framed):
    r = framed.call("initialize")
    assert r["result"]["capabilities"]["framing"] == framed.framing
    assert "result" in framed.call("status")
    error_of(framed.call("generate", {"prompt": "x"}), -31001)


def test_message_split_across_many_writes(framed):
    data = framed.frame(REQ % 7)
    framed.methods["7"] = "status"
    for i in range(len(data)):
        framed.send_raw(data[i:i + 1])
        if i % 7 == 0:
            time.sleep(0.001)
    assert framed.recv()["id"] == 7


def test_several_messages_in_one_write(framed):
    data = b"".join(framed.frame(REQ % i) for i in range(1, 51))
    for i in range(1, 51):
        framed.methods[str(i)] = "status"
    framed.send_raw(data)
    ids = [framed.recv()["id"] for _ in range(50)]
    assert ids == list(range(1, 51)), "loop-thread answers keep the order of the requests"


def test_oversized_then_normal(framed):
    big = b'{"jsonrpc":"2.0","id":1,"method":"tokenize","params":{"text":"' + b"a" * 5000 + b'"}}'
    wisp = framed
    wisp.send(big)
    r = wisp.recv()
    # 5 KB is fine under the default limit.
    error_of(r, -31001)


def test_oversized_message_skipped_and_serving_goes_on(wisp):
    for framing in ("ndjson", "lsp"):
        c = wisp("--max-message-bytes", "1000", framing=framing)
        big = b'{"jsonrpc":"2.0","id":1,"method":"tokenize","params":{"text":"' + b"a" * 200000 + b'"}}'
        # Sent in pieces, as a pipe delivers it: never buffered whole.
        data = c.frame(big) + c.frame(REQ % 2)
        c.methods["2"] = "status"
        for i in range(0, len(data), 4096):
            c.send_raw(data[i:i + 4096])
        r = c.recv()
        assert r["id"] is None
        assert error_of(r, -32600) == "message too large"
        assert r["error"]["data"]["max_message_bytes"] == 1000
        if framing == "lsp":
            assert r["error"]["data"]["length"] == len(big)
        assert c.recv()["id"] == 2


def test_limit_is_exact(wisp):
    c = wisp("--max-message-bytes", "100")
    body = b'{"jsonrpc":"2.0","id":1,"method":"status","params":{}}'
    body = body[:-1] + b" " * (100 - len(body)) + b"}"
    assert len(body) == 100
    c.send(body)
    assert "result" in c.recv()
    c.send(body[:-1] + b" }")
    assert error_of(c.recv(), -32600) == "message too large"


def test_ndjson_blank_lines_crlf_and_last_line_without_newline():
    data = b"\n\r\n  \n" + (REQ % 1) + b"\r\n\n" + (REQ % 2)
    rc, out, err = run_once([], data)
    assert rc == 0, err
    lines = out.split(b"\n")
    assert lines[-1] == b""
    ids = [json.loads(l)["id"] for l in lines[:-1]]
    assert ids == [1, 2]


def test_lsp_detected_with_any_case_and_content_type(wisp):
    c = wisp(framing="lsp")
    body = REQ % 3
    c.methods["3"] = "status"
    c.send_raw(b"content-length: %d\r\nContent-Type: application/vscode-jsonrpc; charset=utf-8\r\n\r\n"
               % len(body) + body)
    assert c.recv()["id"] == 3


def test_lsp_bad_header_then_recovery(wisp):
    c = wisp(framing="lsp")
    c.send(REQ % 1)
    c.methods["1"] = "status"
    assert c.recv()["id"] == 1
    c.send_raw(b"Content-Length: abc\r\n\r\n")
    r = c.recv()
    assert r["id"] is None and "Content-Length" in error_of(r, -32700)
    c.send_raw(b"Content-Type: x\r\n\r\n")
    assert "missing Content-Length" in error_of(c.recv(), -32700)
    c.send(REQ % 2)
    c.methods["2"] = "status"
    assert c.recv()["id"] == 2


def test_lsp_answers_are_lsp_framed():
    body = REQ % 1
    rc, out, err = run_once([], b"Content-Length: %d\r\n\r\n" % len(body) + body)
    assert rc == 0, err
    assert out.startswith(b"Content-Length: ")
    head, _, rest = out.partition(b"\r\n\r\n")
    assert int(head.split(b": ")[1]) == len(rest)
    assert json.loads(rest)["id"] == 1


def test_garbage_first_bytes_mean_ndjson():
    rc, out, err = run_once([], b"hello\n" + (REQ % 1) + b"\n")
    assert rc == 0
    a, b = out.splitlines()
    assert json.loads(a)["error"]["code"] == -32700
    assert json.loads(b)["id"] == 1
