"""Many requests at once: ids, cancellation, a slow reader."""
import json
import threading
import time

from conftest import error_of


def test_interleaved_requests_answered_by_id(client):
    # Loop-thread (status) and engine-thread (model/load) requests mixed in one
    # write: engine answers may come back after later loop answers.
    msgs = []
    for i in range(60):
        if i % 2:
            msgs.append({"jsonrpc": "2.0", "id": f"s{i}", "method": "status"})
        else:
            msgs.append({"jsonrpc": "2.0", "id": i, "method": "model/load",
                         "params": {"path": f"/nonexistent/{i}"}})
    for m in msgs:
        client.methods[json.dumps(m["id"])] = m["method"]
    client.send_raw(b"".join(client.frame(json.dumps(m).encode()) for m in msgs))
    got = {}
    for _ in range(60):
        r = client.recv()
        assert r["id"] not in got
        got[r["id"]] = r
    for m in msgs:
        r = got[m["id"]]
        if m["method"] == "status":
            assert "result" in r
        else:
            assert f"/nonexistent/{m['id']}" in error_of(r, -31002)


def test_cancel_unknown_and_finished_ids(client):
    assert "result" in client.call("status", id=10)
    client.notify("$/cancelRequest", {"id": 10})        # finished
    client.notify("$/cancelRequest", {"id": "never"})   # unknown
    client.notify("$/cancelRequest", {"id": 3.5})
    r = client.call("status", id=11)
    assert r["id"] == 11, "cancelling unknown ids is answered by nothing"
    assert r["result"]["requests"]["cancelled"] == 0


def test_cancel_before_start_answers_32800(client):
    # A cancel that arrives in the same write as its engine request is seen
    # before the engine thread runs it only if the engine is busy; either
    # answer is correct, but it must come exactly once and be well formed.
    msgs = [{"jsonrpc": "2.0", "id": i, "method": "model/plan", "params": {"path": "/nonexistent"}}
            for i in range(200)]
    msgs += [{"jsonrpc": "2.0", "method": "$/cancelRequest", "params": {"id": i}} for i in range(200)]
    for m in msgs[:200]:
        client.methods[json.dumps(m["id"])] = "model/plan"
    client.send_raw(b"".join(client.frame(json.dumps(m).encode()) for m in msgs))
    codes = {}
    for _ in range(200):
        r = client.recv()
        assert r["id"] not in codes
        codes[r["id"]] = r["error"]["code"]
    assert set(codes.values()) <= {-31002, -32800}
    st = client.call("status")["result"]["requests"]
    assert st["cancelled"] == list(codes.values()).count(-32800)


def test_duplicate_in_flight_id(client):
    # Both lines arrive in one read: the first (an engine request) is still in
    # flight when the second is dispatched.
    a = {"jsonrpc": "2.0", "id": 7, "method": "model/load", "params": {"path": "/nonexistent"}}
    b = {"jsonrpc": "2.0", "id": 7, "method": "status"}
    client.methods["7"] = "model/load"
    client.send_raw(client.frame(json.dumps(a).encode()) + client.frame(json.dumps(b).encode()))
    r1, r2 = client.recv(), client.recv()
    dup, first = (r1, r2) if r1["error"]["code"] == -32600 else (r2, r1)
    assert "duplicate id" in error_of(dup, -32600)
    error_of(first, -31002)
    # Once answered, the id is free again.
    client.methods["7"] = "status"
    assert "result" in client.call("status", id=7)


def test_duplicate_id_inside_a_batch(client):
    client.send([{"jsonrpc": "2.0", "id": 1, "method": "model/load", "params": {"path": "/x"}},
                 {"jsonrpc": "2.0", "id": 1, "method": "model/load", "params": {"path": "/y"}}])
    r = client.recv()
    codes = sorted(m["error"]["code"] for m in r)
    assert codes == [-32600, -31002]


def test_slow_reader_gets_every_reply_and_pauses_input(client):
    """The client stops reading: wisp queues output up to its high-water
    mark, then stops reading stdin (so the writer blocks); when the client
    reads again, every answer arrives, in order, none lost or cut."""
    n = 20000
    client.read_gate.clear()
    time.sleep(0.05)
    for i in range(n):
        client.methods[str(i)] = "status"
    data = b"".join(client.frame(b'{"jsonrpc":"2.0","id":%d,"method":"status"}' % i) for i in range(n))
    done = threading.Event()

    def writer():
        client.send_raw(data)
        done.set()

    t = threading.Thread(target=writer, daemon=True)
    t.start()
    # ~10 MB of answers cannot fit the pipe plus wisp's 4 MiB queue, so wisp
    # must stop reading and our writer must still be blocked.
    time.sleep(1.0)
    assert not done.is_set(), "wisp kept reading stdin while its output was not being read"
    client.read_gate.set()
    ids = []
    for _ in range(n):
        ids.append(client.recv(timeout=60)["id"])
    assert ids == list(range(n))
    t.join(10)
    assert done.is_set()
