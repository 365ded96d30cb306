"""f16_as_bf16 (model/load's param, --f16-as-bf16, wisp bench --f16-as-bf16):
the option is taken as sent, a non-bool is refused with -32602 and wisp keeps
serving, and model/load, model/info and status's weights report
{"requested", "tensors"}. tensors counts the weight tensors the CPU engine
computes in BF16: none for a quantized model, and for an F16 model some
exactly where the CPU engine takes the option (AVX512-BF16, repacked
weights, no AMX, not streamed)."""
import json
import os
import subprocess
import time

import pytest

from conftest import WISP_BIN, check_sanitizer_report, error_of, run_once
from wispgen import Server, shared_file

F16 = "golden/syn-qwen2-dsc-f16.gguf"
QUANTIZED = ["golden/syn-qwen2-dsc-q8_0.gguf", "golden/syn-llama-spm-q4_k_m.gguf"]
GREEDY = {"temperature": 0}
# Repacking on (the default), whatever the environment running the tests says.
ENV = {"WISP_REPACK": "1"}


def cpu_flags():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def engine_takes_bf16():
    """Where the contract says the CPU engine computes F16 weights in BF16:
    AVX512-BF16 present, no AMX (its own kernels are used there), and no
    WISP_SIMD that rules out the AVX-512 kernels."""
    flags = cpu_flags()
    simd = os.environ.get("WISP_SIMD", "")
    return ("avx512_bf16" in flags and not any(f.startswith("amx") for f in flags)
            and simd in ("", "avx512"))


def start(wisp, *args):
    return Server(wisp("--threads", "1", "--device", "cpu", *args, env=ENV))


def load(srv, rel, **params):
    return srv.result("model/load", dict({"path": str(shared_file(rel)), "n_ctx": 128,
                                          "warmup": False}, **params))


def reported(srv):
    """The option as model/info and status's weights report it, once they agree."""
    info = srv.result("model/info")["f16_as_bf16"]
    deadline = time.monotonic() + 10
    while True:
        st = srv.result("status")
        if st["weights"]["f16_as_bf16"] == info or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert st["weights"]["f16_as_bf16"] == info, (st["weights"], info)
    assert st["model"]["f16_as_bf16"] == info
    return info


@pytest.mark.parametrize("rel", QUANTIZED)
@pytest.mark.parametrize("requested", [True, False])
def test_taken_as_sent_and_no_tensors_on_a_quantized_model(wisp, rel, requested):
    srv = start(wisp)
    r = load(srv, rel, f16_as_bf16=requested)
    assert not {"F16", "BF16"} & set(r["tensor_types"]), r["tensor_types"]
    assert r["f16_as_bf16"] == {"requested": requested, "tensors": 0}
    assert reported(srv) == {"requested": requested, "tensors": 0}


def test_off_by_default(wisp):
    srv = start(wisp)
    assert load(srv, F16)["f16_as_bf16"] == {"requested": False, "tensors": 0}


@pytest.mark.parametrize("bad", ["yes", "true", 1, 0, [], {}])
def test_non_bool_refused_and_wisp_keeps_serving(wisp, bad):
    srv = start(wisp)
    path = str(shared_file(F16))
    r = srv.call("model/load", {"path": path, "n_ctx": 128, "f16_as_bf16": bad})
    assert "f16_as_bf16" in error_of(r, -32602)
    assert srv.result("status")["model"] is None
    assert load(srv, F16)["f16_as_bf16"]["requested"] is False


@pytest.mark.parametrize("requested", [True, False])
def test_f16_tensors_exactly_where_the_engine_takes_it(wisp, requested):
    srv = start(wisp)
    r = load(srv, F16, f16_as_bf16=requested)
    got = r["f16_as_bf16"]
    assert got["requested"] is requested
    if requested and engine_takes_bf16():
        half = r["tensor_types"].get("F16", 0) + r["tensor_types"].get("BF16", 0)
        assert 0 < got["tensors"] <= half, (got, r["tensor_types"])
    else:
        assert got["tensors"] == 0, got
    assert reported(srv) == got
    g = srv.ok(prompt="Hello", max_tokens=4, **GREEDY)
    assert len(g.tokens) == 4


def test_split_over_two_cpu_stages_counts_both(wisp):
    srv = start(wisp)
    one = load(srv, F16, f16_as_bf16=True)
    n = one["n_layers"]
    split = load(srv, F16, f16_as_bf16=True,
                 device_map=[{"device": "cpu", "layers": n // 2},
                             {"device": "cpu", "layers": n - n // 2}])
    assert split["placement"]["strategy"] == "split"
    assert split["f16_as_bf16"] == one["f16_as_bf16"]
    assert reported(srv) == one["f16_as_bf16"]


def test_not_taken_when_streaming(wisp):
    srv = start(wisp)
    r = load(srv, F16, f16_as_bf16=True, weights_budget_mb=64)
    assert r["placement"]["strategy"] == "stream"
    assert r["f16_as_bf16"] == {"requested": True, "tensors": 0}


def test_not_taken_without_repacking(wisp):
    srv = Server(wisp("--threads", "1", "--device", "cpu", env={"WISP_REPACK": "0"}))
    r = load(srv, F16, f16_as_bf16=True)
    assert r["f16_as_bf16"] == {"requested": True, "tensors": 0}


def test_flag_is_the_default_that_params_override(wisp):
    path = str(shared_file(F16))
    srv = start(wisp, "--model", path, "--ctx", "128", "--f16-as-bf16")
    with_flag = reported(srv)
    assert with_flag["requested"] is True
    # a load without the param takes the flag's value; the param overrides it
    assert load(srv, F16)["f16_as_bf16"] == with_flag
    assert load(srv, F16, f16_as_bf16=False)["f16_as_bf16"] == {"requested": False,
                                                                "tensors": 0}
    srv = start(wisp, "--f16-as-bf16", "--f16-as-bf16=0")
    assert load(srv, F16)["f16_as_bf16"] == {"requested": False, "tensors": 0}


@pytest.mark.parametrize("args", [["--f16-as-bf16=yes"], ["--f16-as-bf16="]])
def test_bad_flag_value_exits_2(args):
    rc, out, err = run_once(args)
    assert rc == 2 and "--f16-as-bf16: expected 0 or 1" in err and out == b"", err


def test_keep_alive_reopens_with_it(wisp):
    srv = start(wisp)
    first = load(srv, F16, f16_as_bf16=True, keep_alive_s=1)["f16_as_bf16"]
    deadline = time.monotonic() + 10
    while srv.result("status")["model"]["resident"]:
        assert time.monotonic() < deadline, "the model was not unloaded when idle"
        time.sleep(0.1)
    srv.ok(prompt="Hello", max_tokens=2, **GREEDY)  # reopens it
    info = srv.result("model/info")
    assert info["idle_reloads"] == 1
    assert info["f16_as_bf16"] == first and first["requested"] is True


def bench(args):
    """wisp bench with repacking on: (returncode, stdout bytes, stderr text)."""
    p = subprocess.run([WISP_BIN, *args], capture_output=True, timeout=120,
                       env=dict(os.environ, **ENV))
    err = p.stderr.decode("utf-8", "replace")
    check_sanitizer_report(err)
    return p.returncode, p.stdout, err


BENCH = ["bench", "-p", "8", "-n", "2", "-r", "1", "-t", "1", "--device", "cpu"]


@pytest.mark.parametrize("value", ["1", "0"])
def test_bench_reports_it(value):
    path = str(shared_file(F16))
    rc, out, err = bench(BENCH + ["-m", path, "--f16-as-bf16", value, "--json"])
    assert rc == 0, err
    got = json.loads(out)["f16_as_bf16"]
    assert got["requested"] is (value == "1")
    assert (got["tensors"] > 0) == (value == "1" and engine_takes_bf16()), got
    rc, out, err = bench(BENCH + ["-m", path, "--f16-as-bf16", value, "-o", "jsonl"])
    assert rc == 0, err
    assert all(json.loads(line)["f16_as_bf16"] == got for line in out.decode().splitlines())


@pytest.mark.parametrize("value", ["2", "yes", None])
def test_bench_refuses_other_values(value):
    path = str(shared_file(F16))
    rc, out, err = bench(BENCH + ["-m", path, "--f16-as-bf16"] + ([value] if value else []))
    assert rc == 2 and "--f16-as-bf16 needs 0 or 1" in err, err
