"""Methods: params checks (the C tables against protocol/schema/), the
answers a server without a model gives, initialize and status."""
import json
import os
import pathlib

import pytest

from conftest import SCHEMAS, error_of, schema_name

METHODS = ["initialize", "shutdown", "status", "model/load", "model/info", "model/unload",
           "model/plan", "tokenize", "detokenize", "generate", "infill", "evaluate"]
NEEDS_MODEL = ["model/info", "model/unload", "tokenize", "detokenize", "generate", "infill",
               "evaluate"]
# A valid params object per method (matching its schema).
VALID = {
    "model/info": {}, "model/unload": {},
    "tokenize": {"text": "hello", "add_special": True, "parse_special": False},
    "detokenize": {"tokens": [1, 2, 3]},
    "generate": {"prompt": "Once upon a time", "max_tokens": 8, "temperature": 0.7, "top_k": 40,
                 "top_p": 0.9, "min_p": 0.05, "repeat_penalty": 1.1, "presence_penalty": 0.0,
                 "frequency_penalty": 0.0, "seed": 42, "stop": ["\n"], "stream": True,
                 "n_probs": 2},
    "infill": {"input_prefix": "def f(", "input_suffix": "):\n", "max_tokens": 16},
    "evaluate": {"tokens": [1, 2, 3], "top_k": 5},
    "model/load": {"path": "/nonexistent/model.gguf", "n_ctx": 512, "device": "cpu", "threads": 2},
    "model/plan": {"path": "/nonexistent/model.gguf", "n_ctx": 512, "n_seq": 4, "device": "auto"},
}


def wrong_value(prop):
    """A value of the wrong type for a schema property."""
    t = prop.get("type")
    if t == "string" or "enum" in prop:
        return 12
    if t in ("integer", "number", "boolean"):
        return "x"
    if t == "array":
        return [{"x": 1}]
    if "oneOf" in prop:
        return {"x": 1}
    return None


def test_schemas_cover_every_method():
    for m in METHODS:
        assert SCHEMAS.has(schema_name(m) + ".params.json"), m
        assert SCHEMAS.has(schema_name(m) + ".result.json"), m
    for n in ["stream", "progress", "cancelRequest", "exit"]:
        assert SCHEMAS.has(n + ".params.json"), n


@pytest.mark.parametrize("method", sorted(VALID))
def test_valid_params_match_schema_and_pass_the_checks(client, method):
    assert SCHEMAS.errors(schema_name(method) + ".params.json", VALID[method]) == []
    r = client.call(method, VALID[method])
    code = r["error"]["code"]
    assert code in (-31001, -31002), f"{method}: valid params were refused: {r!r}"


@pytest.mark.parametrize("method", sorted(VALID))
def test_each_field_checked_like_its_schema(client, method):
    """Every property in the schema: a wrong type is -32602 naming it;
    a missing required one too; an unknown field too."""
    schema = SCHEMAS.store[schema_name(method) + ".params.json"]
    for name, prop in schema.get("properties", {}).items():
        bad = dict(VALID[method])
        bad[name] = wrong_value(prop)
        assert SCHEMAS.errors(schema_name(method) + ".params.json", bad), (method, name)
        msg = error_of(client.call(method, bad), -32602)
        assert f"'{name}" in msg, (method, name, msg)
    for name in schema.get("required", []):
        bad = {k: v for k, v in VALID[method].items() if k != name}
        msg = error_of(client.call(method, bad), -32602)
        assert f"'{name}'" in msg and "missing" in msg, msg
    if schema.get("additionalProperties") is False:
        bad = dict(VALID[method], nonsense_field=1)
        assert "'nonsense_field'" in error_of(client.call(method, bad), -32602)


@pytest.mark.parametrize("method,field,value", [
    ("generate", "top_p", 1.5), ("generate", "temperature", -1), ("generate", "max_tokens", -1),
    ("generate", "max_tokens", 1.5), ("generate", "n_probs", 101), ("generate", "seed", -1),
    ("generate", "prompt", [1, -2]), ("generate", "prompt", [1, "a"]), ("generate", "stop", ["a", 1]),
    ("evaluate", "top_k", 0), ("detokenize", "tokens", [2**31]), ("model/load", "device", "tpu"),
    ("model/load", "n_ctx", 0), ("model/plan", "n_seq", 0),
])
def test_ranges_checked_like_the_schema(client, method, field, value):
    bad = dict(VALID[method], **{field: value})
    assert SCHEMAS.errors(schema_name(method) + ".params.json", bad), "schema should refuse it too"
    msg = error_of(client.call(method, bad), -32602)
    assert f"'{field}" in msg, msg


@pytest.mark.parametrize("method", NEEDS_MODEL)
def test_model_methods_need_a_model(client, method):
    msg = error_of(client.call(method, VALID[method]), -31001)
    assert "no model loaded" in msg


def test_model_load_missing_path(client):
    msg = error_of(client.call("model/load", {"path": "/nonexistent/m.gguf"}), -31002)
    assert msg == "cannot open /nonexistent/m.gguf: No such file or directory"
    msg = error_of(client.call("model/plan", {"path": "/nonexistent/m.gguf"}), -31002)
    assert "No such file or directory" in msg


def test_model_load_existing_path_says_why(client, tmp_path):
    f = tmp_path / "m.gguf"
    f.write_bytes(b"GGUF")
    msg = error_of(client.call("model/load", {"path": str(f)}), -31002)
    assert str(f) in msg


def test_initialize(client):
    r = client.call("initialize", {"clientInfo": {"name": "pytest", "version": "1"},
                                   "processId": os.getpid(), "rootUri": None,
                                   "capabilities": {"textDocument": {}}})
    res = r["result"]
    assert res["serverInfo"]["name"] == "wisp"
    assert set(res["capabilities"]["framings"]) == {"ndjson", "lsp"}
    assert res["capabilities"]["framing"] == "ndjson"
    assert set(METHODS) <= set(res["capabilities"]["methods"])
    assert {"exit", "$/cancelRequest"} <= set(res["capabilities"]["notifications"])
    cpu = [d for d in res["capabilities"]["devices"] if d["kind"] == "cpu"]
    assert len(cpu) == 1 and cpu[0]["memory_bytes"] > 0
    assert res["model"] is None
    assert res["capabilities"]["max_message_bytes"] == 16 * 1024 * 1024


def test_initialize_is_optional(client):
    r = client.call("generate", {"prompt": "hi"})
    error_of(r, -31001)


def test_status_without_model(client):
    client.call("nope")
    client.call("model/load", {"path": "/nonexistent"})
    res = client.call("status")["result"]
    assert res["model"] is None
    assert res["kv_cache"]["blocks_total"] == 0 and res["kv_cache"]["blocks_used"] == 0
    req = res["requests"]
    assert req["in_flight"] == 1          # this status request
    assert req["received"] == 3
    assert req["failed"] == 1             # model/load (-32601 is refused before it is a job)
    assert res["shutting_down"] is False


def test_protocol_doc_lists_every_method_and_code():
    doc = (pathlib.Path(__file__).resolve().parents[2] / "protocol" / "PROTOCOL.md").read_text()
    for m in METHODS + ["$/stream", "$/progress", "$/cancelRequest", "exit"]:
        assert f"`{m}`" in doc, m
    src = (pathlib.Path(__file__).resolve().parents[2] / "src" / "rpc" / "codes.h").read_text()
    import re
    codes = re.findall(r"X\(\w+,\s*(-\d+),", src)
    assert len(codes) >= 12
    for c in codes:
        assert f"`{c}`" in doc, f"error code {c} is not documented"
    json.dumps(codes)
