"""Placement over the protocol: model/load's `device_map` (the model split
over several CPU engines) and `weights_budget_mb` (layers streamed through
a bounded weight buffer), and the --device-map / --weights-budget-mb flags.

Each placement must give exactly what a normal load gives: the same
`evaluate` logits (compared as the JSON numbers wisp writes, which carry
every bit of the float) and the same greedy tokens, alone, with prefix-cache
hits, and batched in a KV pool so small that sequences are preempted.
Refusals are -32602 naming what is wrong, and wisp keeps serving."""
import pytest

from conftest import error_of, run_once
from wispgen import Server, shared_file, stories_path

EOS = 2
GREEDY = {"temperature": 0, "logit_bias": [[EOS, False]]}
PROMPTS = [
    "Once upon a time, there was a little girl named Lily. She loved to play outside.",
    "One day, a big brown dog named Max found a red ball under a tree.",
    "Tom and Sue went to the beach with their mom. They saw a big boat.",
]
SPLIT = [{"device": "cpu", "layers": 3}, {"device": "cpu", "layers": 2}]
PLACEMENTS = {
    "split 3+2": {"device_map": SPLIT},
    "split 1+1+3": {"device_map": [{"device": "cpu", "layers": 1},
                                   {"device": "cpu", "layers": 1},
                                   {"device": "cpu", "layers": 3}]},
    "streamed": {"weights_budget_mb": 1},
    "split, second streamed": {"device_map": [{"device": "cpu", "layers": 2},
                                              {"device": "cpu", "layers": 3,
                                               "weights_budget_mb": 1}]},
}


def load(srv, model, **extra):
    """model/load on stories260K with a 1 MiB KV pool (1632 tokens)."""
    params = {"path": str(model), "threads": 2, "device": "cpu", "n_ctx": 1024,
              "kv_cache_mb": 1, **extra}
    return srv.result("model/load", params, timeout=60)


def workload(srv):
    """Everything compared between placements."""
    ids = srv.tokenize(PROMPTS[0] + " " + PROMPTS[1])
    ev = srv.result("evaluate", {"tokens": ids, "top_k": 8})["logits"]
    solo, cached = {}, {}
    for p in PROMPTS:
        solo[p] = srv.ok(prompt=p, max_tokens=60, **GREEDY).tokens
    for p in PROMPTS:  # again: the prompt's full blocks come from the prefix cache
        g = srv.ok(prompt=p, max_tokens=60, **GREEDY)
        assert g.tokens == solo[p]
        cached[p] = g.result["usage"]["cached_tokens"]
    assert all(n > 0 for n in cached.values()), cached
    # 12 requests of up to 300 tokens in a 1632-token pool: preemption.
    gens = [srv.submit(prompt=PROMPTS[i % 3], max_tokens=240, **GREEDY) for i in range(12)]
    srv.wait(gens, timeout=120)
    batched = [g.tokens for g in gens]
    preempted = sum(g.result["usage"].get("preemptions", 0) for g in gens)
    for i, g in enumerate(gens):
        assert g.tokens[:60] == solo[PROMPTS[i % 3]], f"request {i} differs when batched"
    return {"evaluate": ev, "solo": solo, "batched": batched}, preempted


def test_device_map_and_streaming_equal_a_normal_load(wisp):
    model = stories_path()
    srv = Server(wisp("--log-level", "warn"))
    info = load(srv, model)
    assert info["n_layers"] == 5
    ref, preempted = workload(srv)
    assert preempted > 0, "the pool should be too small for 12 requests at once"
    st = srv.settled_status()
    assert st["weights"]["stages"] == [] and not st["weights"]["streaming"]
    for name, extra in PLACEMENTS.items():
        load(srv, model, **extra)
        got, preempted = workload(srv)
        assert got["evaluate"] == ref["evaluate"], f"{name}: evaluate logits differ"
        assert got["solo"] == ref["solo"], f"{name}: greedy output differs"
        assert got["batched"] == ref["batched"], f"{name}: batched output differs"
        assert preempted > 0, name
        w = srv.settled_status()["weights"]
        streamed = "weights_budget_mb" in str(extra)
        assert w["streaming"] == streamed, (name, w)
        n_stages = len(extra.get("device_map", []))
        assert len(w["stages"]) == n_stages, (name, w)
        if n_stages:
            assert w["stages"][0]["layer_begin"] == 0 and w["stages"][-1]["layer_end"] == 5
            assert all(a["layer_end"] == b["layer_begin"]
                       for a, b in zip(w["stages"], w["stages"][1:]))
            assert all(s["kv_bytes"] > 0 for s in w["stages"])
        if streamed:
            assert 0 < w["resident_bytes"] <= (1 << 20), (name, w)
            assert w["streamed_bytes"] > 0 and w["copy_ms"] > 0, (name, w)
            assert 0 <= w["copy_overlap"] <= 1, (name, w)
        else:
            assert w["resident_bytes"] == 0 and w["streamed_bytes"] == 0, (name, w)


def test_flags_set_the_default_placement(wisp):
    model = stories_path()
    ids = list(range(3, 60))
    logits = []
    for flags in ([], ["--device-map", "cpu=3,cpu=2"], ["--weights-budget-mb", "1"],
                  ["--device-map=cpu=4,cpu=1", "--weights-budget-mb=1"]):
        srv = Server(wisp("--model", str(model), "--threads", "2", "--device", "cpu",
                          "--log-level", "warn", *flags))
        logits.append(srv.result("evaluate", {"tokens": ids, "top_k": 5})["logits"])
        w = srv.status()["weights"]
        assert len(w["stages"]) == (2 if "--device-map" in " ".join(flags) else 0), flags
        assert w["streaming"] == ("budget" in " ".join(flags)), flags
        # A request naming a device without a map drops the flag's map.
        srv.result("model/load", {"path": str(model), "threads": 2, "device": "cpu",
                                  "weights_budget_mb": 0})
        w = srv.status()["weights"]
        assert w["stages"] == [] and not w["streaming"], (flags, w)
        srv.c.close_stdin()
        assert srv.c.wait() == 0
    assert all(lg == logits[0] for lg in logits[1:])


@pytest.mark.parametrize("extra,code,says", [
    ({"device_map": [{"device": "cpu", "layers": 3}, {"device": "cpu", "layers": 1}]},
     -32602, "'device_map' holds 4 layers but the model has 5"),
    ({"device_map": [{"device": "cpu", "layers": 6}]}, -32602, "holds 6 layers"),
    ({"device_map": [{"device": "tpu", "layers": 5}]}, -32602, "unknown device \"tpu\""),
    ({"device_map": [{"device": "cpu", "layers": 0}, {"device": "cpu", "layers": 5}]},
     -32602, "from 1 to"),
    ({"device_map": [{"device": "cpu", "layers": 2.5}]}, -32602, "'device_map' entry 0"),
    ({"device_map": [{"device": "cpu", "layers": 5, "gpu": 1}]}, -32602, "unknown field 'gpu'"),
    ({"device_map": []}, -32602, "'device_map' must be an array of 1 to 16"),
    ({"device_map": {"device": "cpu"}}, -32602, "'device_map' must be an array"),
    ({"device_map": [{"device": "cpu", "layers": 1}] * 17}, -32602, "1 to 16"),
    ({"weights_budget_mb": -1}, -32602, "'weights_budget_mb"),
])
def test_bad_placements_are_refused_and_the_model_keeps_serving(wisp, extra, code, says):
    model = stories_path()
    srv = Server(wisp("--model", str(model), "--threads", "2", "--log-level", "off"))
    r = srv.call("model/load", {"path": str(model), "threads": 2, **extra})
    assert says in error_of(r, code)
    assert srv.result("model/info")["n_layers"] == 5
    assert srv.ok(prompt="Once", max_tokens=3, **GREEDY).tokens


def test_budget_below_two_layers_is_refused_with_the_numbers(wisp):
    # syn-llama-spm-f16: 1.5 MiB per layer, so 3 MiB is the least that streams.
    model = shared_file("golden/syn-llama-spm-f16.gguf")
    srv = Server(wisp("--log-level", "off"))
    r = srv.call("model/load", {"path": str(model), "threads": 2, "weights_budget_mb": 2})
    msg = error_of(r, -32602)
    assert "two of the largest layers" in msg and "3.00 MiB needed" in msg, msg
    # model/plan answers what model/load does, budget check included
    plan = srv.call("model/plan", {"path": str(model), "weights_budget_mb": 2})
    assert error_of(plan, -32602) == msg
    assert srv.result("model/plan", {"path": str(model), "weights_budget_mb": 3})["fits"]
    info = srv.result("model/load", {"path": str(model), "threads": 2, "weights_budget_mb": 3})
    assert info["n_layers"] == 2
    ev = srv.result("evaluate", {"tokens": [1, 450, 4996, 17354], "top_k": 5})["logits"]
    w = srv.settled_status()["weights"]
    assert w["streaming"] and 0 < w["resident_bytes"] <= 3 << 20, w
    srv.result("model/load", {"path": str(model), "threads": 2})
    assert srv.result("evaluate", {"tokens": [1, 450, 4996, 17354], "top_k": 5})["logits"] == ev


def test_device_without_an_engine_is_a_device_error(wisp):
    srv = Server(wisp("--log-level", "off"))
    devices = srv.result("initialize", {})["capabilities"]["devices"]
    if any(d["kind"] == "cuda" for d in devices):
        pytest.skip("this build has a CUDA engine")
    r = srv.call("model/load", {"path": str(stories_path()), "threads": 2,
                                "device_map": [{"device": "cpu", "layers": 3},
                                               {"device": "cuda:0", "layers": 2}]})
    assert "no engine for device \"cuda:0\"" in error_of(r, -31006)


@pytest.mark.parametrize("args,want", [
    (["--device-map", "cpu"], "--device-map: \"cpu\" is not DEVICE=LAYERS"),
    (["--device-map", "tpu=3"], "--device-map: entry 0: unknown device \"tpu\""),
    (["--device-map", "cpu=3,"], "a device is missing after the last ','"),
    (["--device-map", "cpu=x"], "the layer count is not a number"),
    (["--device-map", "cpu=0"], "from 1 to"),
    (["--weights-budget-mb", "0"], "--weights-budget-mb"),
])
def test_bad_placement_flags_exit_2(args, want):
    rc, out, err = run_once(args)
    assert rc == 2, (args, rc, err)
    assert want in err, (args, err)


def test_prefix_cache_on_disk_moves_between_placements(wisp, tmp_path):
    """A block's bytes are the same whatever the placement (each stage's
    layers in order), so a cache written by a normal run warms a split,
    streamed run and the other way round, with the same output."""
    model = stories_path()
    prompt = PROMPTS[0] + " " + PROMPTS[1]
    outs = []
    for flags in ([], ["--device-map", "cpu=2,cpu=3", "--weights-budget-mb", "1"], []):
        srv = Server(wisp("--model", str(model), "--threads", "2", "--device", "cpu",
                          "--ctx", "512", "--cache-dir", str(tmp_path), "--log-level", "warn",
                          *flags))
        g = srv.ok(prompt=prompt, max_tokens=24, **GREEDY)
        outs.append(g)
        srv.c.close_stdin()
        assert srv.c.wait() == 0, srv.c.stderr_text()
    assert outs[0].result["usage"]["cached_tokens"] == 0
    for g in outs[1:]:
        assert g.result["usage"]["cached_tokens"] > 0, g.result["usage"]
        assert g.tokens == outs[0].tokens
