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
