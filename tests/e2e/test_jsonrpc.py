"""JSON-RPC 2.0 conformance: the specification's examples, adapted to wisp's
methods (https://www.jsonrpc.org/specification#examples), and the rules
around them: ids, notifications, batches, errors."""
import json

from conftest import error_of

OK_REQ = {"jsonrpc": "2.0", "method": "status", "id": 1}


def test_parse_error(client):
    client.send(b'{"jsonrpc": "2.0", "method": "foobar, "params": "bar", "baz]')
    r = client.recv()
    assert r["id"] is None
    assert "parse error" in error_of(r, -32700)
    # The server keeps serving after garbage.
    assert "result" in client.call("status")


def test_invalid_request_object(client):
    client.send({"jsonrpc": "2.0", "method": 1, "params": "bar"})
    r = client.recv()
    assert r["id"] is None
    assert "'method'" in error_of(r, -32600)


def test_batch_invalid_json(client):
    client.send(b'[{"jsonrpc": "2.0", "method": "status", "id": "1"},{"jsonrpc": "2.0", "method"]')
    r = client.recv()
    assert isinstance(r, dict) and r["id"] is None
    error_of(r, -32700)


def test_empty_batch(client):
    client.send(b"[]")
    r = client.recv()
    assert isinstance(r, dict), "an empty batch is answered by one error, not an array"
    assert r["id"] is None
    assert "empty batch" in error_of(r, -32600)


def test_invalid_batch_of_one(client):
    client.send(b"[1]")
    r = client.recv()
    assert isinstance(r, list) and len(r) == 1
    assert r[0]["id"] is None
    error_of(r[0], -32600)


def test_invalid_batch_of_three(client):
    client.send(b"[1,2,3]")
    r = client.recv()
    assert isinstance(r, list) and len(r) == 3
    for m in r:
        assert m["id"] is None
        error_of(m, -32600)


def test_mixed_batch(client):
    client.send([
        {"jsonrpc": "2.0", "method": "status", "id": "1"},
        {"jsonrpc": "2.0", "method": "$/cancelRequest", "params": {"id": 999}},
        {"jsonrpc": "2.0", "method": "tokenize", "params": {"text": "hi"}, "id": "2"},
        {"foo": "boo"},
        {"jsonrpc": "2.0", "method": "foo.get", "params": {"name": "myself"}, "id": "5"},
        {"jsonrpc": "2.0", "method": "initialize", "id": "9"},
    ])
    r = client.recv()
    assert isinstance(r, list)
    # The notification is not answered; every other member is, once.
    assert len(r) == 5
    by_id = {}
    nulls = []
    for m in r:
        (nulls.append(m) if m["id"] is None else by_id.__setitem__(m["id"], m))
    assert set(by_id) == {"1", "2", "5", "9"}
    assert "result" in by_id["1"] and "result" in by_id["9"]
    error_of(by_id["2"], -31001)
    assert "foo.get" in error_of(by_id["5"], -32601)
    assert len(nulls) == 1
    error_of(nulls[0], -32600)


def test_notification_only_batch_gets_no_reply(client):
    client.send([
        {"jsonrpc": "2.0", "method": "$/cancelRequest", "params": {"id": 1}},
        {"jsonrpc": "2.0", "method": "$/setTrace", "params": {"value": "off"}},
    ])
    client.send(OK_REQ)
    r = client.recv()
    assert isinstance(r, dict) and r["id"] == 1, f"the batch of notifications was answered: {r!r}"


def test_notifications_are_never_answered(client):
    client.notify("status")                    # a request method without an id
    client.notify("no/such/method")            # unknown
    client.notify("$/anything", {"x": 1})      # unknown $/ notification: ignored
    client.notify("$/cancelRequest", {"bad": 1})   # invalid params: still no answer
    r = client.call("status")
    assert r["id"] == 1 and "result" in r
    client.close_stdin()
    assert client.recv_all() == []


def test_string_and_number_ids_echoed(client):
    for id in ["abc", "", 0, -5, 2**53, 1.5, "1"]:
        r = client.call("status", id=id)
        assert r["id"] == id and type(r["id"]) is type(id)


def test_string_and_number_id_are_distinct(client):
    client.send([{"jsonrpc": "2.0", "id": 1, "method": "model/load", "params": {"path": "/nonexistent"}},
                 {"jsonrpc": "2.0", "id": "1", "method": "model/load", "params": {"path": "/nonexistent"}}])
    r = client.recv()
    assert sorted(json.dumps(m["id"]) for m in r) == ['"1"', "1"]
    for m in r:
        error_of(m, -31002)


def test_bad_ids_rejected(client):
    for bad in [None, [1], {"a": 1}, True]:
        client.send({"jsonrpc": "2.0", "id": bad, "method": "status"})
        r = client.recv()
        assert r["id"] is None
        assert "'id'" in error_of(r, -32600)


def test_jsonrpc_version_required(client):
    client.send({"id": 1, "method": "status"})
    assert "'jsonrpc'" in error_of(client.recv(), -32600)
    client.send({"jsonrpc": "1.0", "id": 2, "method": "status"})
    r = client.recv()
    assert r["id"] == 2
    error_of(r, -32600)


def test_params_must_be_structured(client):
    client.send({"jsonrpc": "2.0", "id": 1, "method": "status", "params": 3})
    assert "'params'" in error_of(client.recv(), -32600)
    client.send({"jsonrpc": "2.0", "id": 2, "method": "tokenize", "params": ["hi"]})
    assert "object" in error_of(client.recv(), -32602)
    # null is taken as "no params" (LSP clients send it for shutdown).
    client.send({"jsonrpc": "2.0", "id": 3, "method": "status", "params": None})
    assert "result" in client.recv()


def test_method_not_found(client):
    r = client.call("nope/nothing")
    assert "nope/nothing" in error_of(r, -32601)


def test_notification_method_sent_as_request(client):
    r = client.call("exit")
    assert "notification" in error_of(r, -32600)
    assert "result" in client.call("status"), "exit with an id must not end the server"


def test_invalid_utf8_rejected(client):
    client.send(b'{"jsonrpc":"2.0","id":1,"method":"tokenize","params":{"text":"\xff\xfe"}}')
    r = client.recv()
    assert r["id"] is None
    assert "UTF-8" in error_of(r, -32700)
    client.send(b'{"jsonrpc":"2.0","id":2,"method":"tokenize","params":{"text":"\xc3\x28"}}')
    error_of(client.recv(), -32700)
    # Valid multi-byte text passes the parser (and then needs a model).
    r = client.call("tokenize", {"text": "h\u00e9llo \u4e16\u754c \U0001F600"})
    error_of(r, -31001)


def test_trailing_garbage_is_a_parse_error(client):
    client.send(b'{"jsonrpc":"2.0","id":1,"method":"status"} x')
    error_of(client.recv(), -32700)


def test_a_response_object_is_not_a_request(client):
    client.send({"jsonrpc": "2.0", "id": 5, "result": 1})
    r = client.recv()
    assert r["id"] == 5
    error_of(r, -32600)
