"""Placement (model/plan and model/load): the plan reports exactly the
placement the load builds (strategy, layers, weights and KV per device, KV
pool), for every bundled and golden model; the plan honours `device`;
model/info and status report the placement, the memory by device and the
warm-up; `warmup: false` skips it."""
import time

import pytest

from conftest import error_of
from wispgen import SHARED, Server, shared_file, stories_path

MODELS = ["models/stories260K.gguf", "models/llama-2-tiny-random.gguf",
          "golden/syn-llama-spm-f16.gguf", "golden/syn-llama-spm-q8_0.gguf",
          "golden/syn-llama-spm-q4_k_m.gguf", "golden/syn-qwen2-dsc-f16.gguf",
          "golden/syn-qwen2-dsc-q4_0.gguf", "golden/syn-qwen2-dsc-q8_0.gguf"]


def settled_status(srv, timeout=10.0):
    """status once the engine thread published the snapshot of its last
    step (an answer goes out during the step that finishes it)."""
    deadline = time.monotonic() + timeout
    last = srv.result("status")
    while time.monotonic() < deadline:
        time.sleep(0.05)
        st = srv.result("status")
        if st["scheduler"] == last["scheduler"] and st["tokens"] == last["tokens"]:
            return st
        last = st
    raise AssertionError("status kept changing with no request running")


def stable(placement):
    """A placement without what moves with the machine's free memory."""
    stages = [{k: v for k, v in s.items() if k != "capacity_bytes"}
              for s in placement["stages"]]
    return {"strategy": placement["strategy"], "kv_blocks": placement["kv_blocks"],
            "block_size": placement["block_size"], "stages": stages}


@pytest.mark.parametrize("rel", MODELS)
@pytest.mark.parametrize("params", [{"n_ctx": 256}, {"n_ctx": 128, "kv_cache_mb": 4},
                                    {"n_ctx": 64, "kv_type": "f32", "device": "cpu"}])
def test_plan_and_load_agree(wisp, rel, params):
    path = str(shared_file(rel))
    srv = Server(wisp("--threads", "1"))
    plan = srv.result("model/plan", dict(params, path=path))
    assert plan["fits"] is True, plan
    load = srv.result("model/load", dict(params, path=path))
    assert stable(plan["placement"]) == stable(load["placement"])
    assert plan["strategy"] == load["placement"]["strategy"] == "resident"
    stage = load["placement"]["stages"][0]
    assert stage["device"] == load["device"] == "cpu"
    assert (stage["layer_begin"], stage["layer_end"]) == (0, load["n_layers"])
    assert stage["weight_bytes"] == plan["weight_bytes"]
    assert stage["kv_bytes"] == load["kv_cache"]["bytes"]
    assert load["placement"]["kv_blocks"] == load["kv_cache"]["blocks"]
    # the per-device view names the CPU with the layers
    cpu = [d for d in plan["devices"] if d["name"] == "cpu"]
    assert cpu and cpu[0]["layers"] == load["n_layers"]
    assert cpu[0]["kv_bytes"] == stage["kv_bytes"]
    assert srv.result("model/info")["placement"] == load["placement"]


def test_plan_honours_device(wisp):
    path = str(stories_path())
    srv = Server(wisp())
    caps = srv.result("initialize")["capabilities"]
    has_gpu = any(d["kind"] == "cuda" for d in caps["devices"])
    cpu = srv.result("model/plan", {"path": path, "n_ctx": 256, "device": "cpu"})
    assert cpu["fits"] and cpu["placement"]["stages"][0]["device"] == "cpu"
    assert "device_note" not in cpu
    if has_gpu:
        pytest.skip("a CUDA device is present: the CPU-only answers below do not apply")
    for dev in ("cuda", "cuda:1"):
        r = srv.result("model/plan", {"path": path, "n_ctx": 256, "device": dev})
        assert r["fits"] is False and r["strategy"] == "none" and r["placement"] is None
        assert f'device "{dev}" was requested' in r["reason"], r
        # model/load refuses the same way
        error_of(srv.call("model/load", {"path": path, "n_ctx": 256, "device": dev}), -31006)
    auto = srv.result("model/plan", {"path": path, "n_ctx": 256})
    assert auto["device_note"] == "auto: built without CUDA; using the CPU"
    msg = error_of(srv.call("model/plan", {"path": path, "device": "cuda:x"}), -32602)
    assert "'device'" in msg and '"cuda:N"' in msg


def test_plan_refusal_names_the_shortfall(wisp):
    """A context no memory holds: the plan says fits false with the
    reason, and model/load refuses (-31003: it can never fit) for the same
    reason. Which check refuses first depends on the machine's memory:
    the KV pool (one context's cache beyond what is available) or the
    planner (the cache, weights and attention scratch on every device)."""
    path = str(stories_path())
    srv = Server(wisp())
    params = {"path": path, "n_ctx": 16777216, "kv_type": "f32"}
    r = srv.result("model/plan", params)
    assert r["fits"] is False and r["strategy"] == "none" and r["placement"] is None
    reason = r["reason"]
    if reason.startswith("the model does not fit: it needs "):
        assert "MiB on one device to stream its layers, short by " in reason
        assert "MiB available; lower n_ctx" in reason
    else:
        assert reason.startswith("n_ctx 16777216 needs "), reason

    def key(msg):  # what does not move with the free memory
        return msg.split(" or ")[0].split(", more than")[0]
    msg = error_of(srv.call("model/load", params), -31003)
    assert key(msg) == key(reason)


def test_warmup_and_status_memory(wisp):
    path = str(stories_path())
    srv = Server(wisp("--threads", "1"))
    warm = srv.result("model/load", {"path": path, "n_ctx": 256})
    assert isinstance(warm["warmup_ms"], float) and warm["warmup_ms"] >= 0
    assert warm["warmup_ms"] <= warm["load_ms"]
    st = srv.result("status")
    mem = st["memory"]
    assert mem["devices"][0]["device"] == "cpu"
    assert mem["devices"][0]["layers"] == warm["n_layers"]
    assert mem["devices"][0]["weight_bytes"] == warm["placement"]["stages"][0]["weight_bytes"]
    assert mem["scratch_bytes"] > 0 and mem["kv_bytes"] == warm["kv_cache"]["bytes"]
    # warm-up wrote no KV the scheduler knows of, and counted no request
    assert st["scheduler"]["submitted"] == 0 and st["scheduler"]["steps"] == 0
    assert st["scheduler"]["avg_batch_seqs"] == 0 and st["scheduler"]["avg_queue_wait_ms"] == 0
    a = srv.ok(prompt="Once upon a time", max_tokens=4, temperature=0)
    st = settled_status(srv)
    sched = st["scheduler"]
    assert sched["admitted"] == 1
    assert sched["avg_batch_seqs"] == 1.0  # one request: one sequence per step
    # every token the engine computed, over the steps
    done = st["tokens"]["prompt"] + st["tokens"]["generated"]
    assert sched["steps"] > 1
    assert sched["avg_batch_tokens"] == pytest.approx(done / sched["steps"])
    assert sched["avg_queue_wait_ms"] >= 0
    cold = srv.result("model/load", {"path": path, "n_ctx": 256, "warmup": False})
    assert cold["warmup_ms"] is None
    b = srv.ok(prompt="Once upon a time", max_tokens=4, temperature=0)
    assert a.tokens == b.tokens  # warm-up changes no output
    assert srv.result("status")["memory"]["devices"][0]["device"] == "cpu"
    srv.result("model/unload")
    assert srv.result("status")["memory"] is None


STORIES_MAPS = [
    {"device_map": [{"device": "cpu", "layers": 3}, {"device": "cpu", "layers": 2}]},
    {"weights_budget_mb": 1},
    {"device_map": [{"device": "cpu", "layers": 2},
                    {"device": "cpu", "layers": 3, "weights_budget_mb": 1}]},
    {"device_map": [{"device": "cpu", "layers": 5}], "kv_cache_mb": 2},
]


@pytest.mark.parametrize("params", STORIES_MAPS)
def test_plan_and_load_agree_for_explicit_maps(wisp, params):
    path = str(stories_path())
    srv = Server(wisp("--threads", "1", "--log-level", "off"))
    params = dict(params, path=path, n_ctx=256)
    plan = srv.result("model/plan", params)
    assert plan["fits"] is True, plan
    assert "device_note" not in plan
    load = srv.result("model/load", params)
    assert stable(plan["placement"]) == stable(load["placement"])
    assert plan["strategy"] == load["placement"]["strategy"]
    assert plan["reason"] == plan["placement"]["reason"]
    assert plan["reason"].endswith("MiB as device_map places it"), plan["reason"]
    stages = load["placement"]["stages"]
    want = params.get("device_map", [{"device": "cpu", "layers": 5}])
    assert [(s["device"], s["layers"]) for s in stages] == \
        [(e["device"], e["layers"]) for e in want]
    assert sum(s["kv_bytes"] for s in stages) == load["kv_cache"]["bytes"]
    assert all(s["weight_bytes"] > 0 and s["scratch_bytes"] > 0 for s in stages)
    assert all(s["capacity_bytes"] > 0 for s in stages)
    streamed = [s for s in stages if s["weights_budget_bytes"]]
    assert (plan["strategy"] == "stream") == bool(streamed)
    # a streamed stage holds at most its budget of its layers' weights
    layer = plan["layer_bytes"]
    for s in streamed:
        assert s["weight_bytes"] - min(s["weights_budget_bytes"],
                                       sum(layer[s["layer_begin"]:s["layer_end"]])) >= 0
    if "device_map" not in params:
        assert plan["strategy"] == "stream" and len(stages) == 1
    # the two CPU stages are both on the CPU: it holds every layer
    cpu = [d for d in plan["devices"] if d["name"] == "cpu"]
    assert cpu and cpu[0]["layers"] == load["n_layers"]
    assert srv.result("model/info")["placement"] == load["placement"]


def test_plan_takes_the_flags_map_as_load_does(wisp):
    path = str(stories_path())
    srv = Server(wisp("--threads", "1", "--log-level", "off", "--device-map", "cpu=4,cpu=1"))
    plan = srv.result("model/plan", {"path": path, "n_ctx": 256})
    load = srv.result("model/load", {"path": path, "n_ctx": 256})
    assert plan["strategy"] == "split" and stable(plan["placement"]) == stable(load["placement"])
    # a request that names a device drops the flag's map, for both
    plan = srv.result("model/plan", {"path": path, "n_ctx": 256, "device": "cpu"})
    load = srv.result("model/load", {"path": path, "n_ctx": 256, "device": "cpu"})
    assert plan["strategy"] == "resident" and stable(plan["placement"]) == stable(load["placement"])


@pytest.mark.parametrize("extra,says", [
    ({"device_map": [{"device": "cpu", "layers": 3}, {"device": "cpu", "layers": 1}]},
     "'device_map' holds 4 layers but the model has 5"),
    ({"device_map": [{"device": "tpu", "layers": 5}]}, "unknown device \"tpu\""),
    ({"device_map": []}, "'device_map' must be an array of 1 to 16"),
    ({"device_map": [{"device": "cpu", "layers": 5, "gpu": 1}]}, "unknown field 'gpu'"),
])
def test_bad_maps_are_refused_by_plan_as_by_load(wisp, extra, says):
    path = str(stories_path())
    srv = Server(wisp("--log-level", "off"))
    params = dict(extra, path=path, n_ctx=256)
    msg = error_of(srv.call("model/plan", params), -32602)
    assert says in msg
    assert error_of(srv.call("model/load", params), -32602) == msg


def test_plan_refuses_a_map_on_a_missing_device_as_load_does(wisp):
    path = str(stories_path())
    srv = Server(wisp("--log-level", "off"))
    if any(d["kind"] == "cuda" for d in srv.result("initialize")["capabilities"]["devices"]):
        pytest.skip("a CUDA device is present")
    params = {"path": path, "n_ctx": 256,
              "device_map": [{"device": "cpu", "layers": 3}, {"device": "cuda:0", "layers": 2}]}
    r = srv.result("model/plan", params)
    assert r["fits"] is False and r["strategy"] == "none" and r["placement"] is None
    assert r["reason"] == 'device_map entry 1: no engine for device "cuda:0" here (devices: cpu)'
    assert error_of(srv.call("model/load", params), -31006) == r["reason"]


def test_plan_refuses_a_map_no_memory_holds_as_load_does(wisp):
    """A context no memory holds on an explicit map: the KV pool check or
    the per-device check refuses first, depending on the machine's
    memory; model/load refuses for the same reason (-31003)."""
    path = str(stories_path())
    srv = Server(wisp("--log-level", "off"))
    params = {"path": path, "n_ctx": 16777216, "kv_type": "f32",
              "device_map": [{"device": "cpu", "layers": 3}, {"device": "cpu", "layers": 2}]}
    r = srv.result("model/plan", params)
    assert r["fits"] is False and r["placement"] is None
    reason = r["reason"]
    if reason.startswith("the device_map does not fit"):
        assert "tokens): cpu needs " in reason  # the pool: whole blocks
        assert "MiB available, short by " in reason
    else:
        assert reason.startswith("n_ctx 16777216 needs "), reason

    def key(msg):  # what does not move with the free memory
        return msg.split(" MiB of ")[0].split(" or ")[0].split(", more than")[0]
    msg = error_of(srv.call("model/load", params), -31003)
    assert key(msg) == key(reason)


def test_device_flag_takes_cuda_n_as_load_does(wisp):
    """--device cuda:N is model/load's device: the default of model/plan
    and model/load alike."""
    path = str(stories_path())
    srv = Server(wisp("--device", "cuda:1", "--log-level", "off"))
    if any(d["kind"] == "cuda" for d in srv.result("initialize")["capabilities"]["devices"]):
        pytest.skip("a CUDA device is present: the CPU-only answers below do not apply")
    r = srv.result("model/plan", {"path": path, "n_ctx": 256})
    assert r["fits"] is False and 'device "cuda:1" was requested' in r["reason"], r
    assert error_of(srv.call("model/load", {"path": path, "n_ctx": 256}), -31006) == r["reason"]
    ok = srv.result("model/plan", {"path": path, "n_ctx": 256, "device": "cpu"})
    assert ok["fits"] is True
