"""`wisp bench` output modes: llama-bench's -o json / jsonl / md and wisp's --json.

The llama-bench records must carry llama-bench's fields so one script reads
both; when the reference llama-bench of ../shared/oracle is there, the field
set is taken from its own output on the same model, else from the list below
(the fields of llama-bench's JSON as of August 2026). Timings are not
asserted, only their shape and their consistency (avg_ts is the mean of
samples_ts, one sample per repetition).
"""
import json
import os
import subprocess

import pytest

from conftest import ROOT, run_once

SHARED = os.environ.get("WISP_SHARED", str(ROOT.parent / "shared"))
STORIES = str(ROOT / "models" / "stories260K.gguf")
LLAMA_BENCH = os.path.join(SHARED, "oracle", "llama.cpp", "llama-bench")
FIELDS = [
    "build_commit", "build_number", "cpu_info", "gpu_info", "backends", "model_filename",
    "model_type", "model_size", "model_n_params", "n_batch", "n_ubatch", "n_threads",
    "cpu_mask", "cpu_strict", "poll", "type_k", "type_v", "n_gpu_layers", "n_cpu_moe",
    "split_mode", "main_gpu", "no_kv_offload", "flash_attn", "devices", "tensor_split",
    "tensor_buft_overrides", "load_mode", "embeddings", "no_op_offload", "no_host",
    "fit_target", "fit_min_ctx", "n_prompt", "n_gen", "n_depth", "test_time", "avg_ns",
    "stddev_ns", "avg_ts", "stddev_ts", "samples_ns", "samples_ts",
]
ARGS = ["bench", "-m", STORIES, "-p", "8", "-n", "4", "-r", "2", "-t", "1", "--device", "cpu"]


def need_model():
    if not os.path.exists(STORIES):
        pytest.skip(f"{STORIES} is missing")


def llama_fields():
    """llama-bench's own field list on the same model, or FIELDS."""
    if not os.access(LLAMA_BENCH, os.X_OK):
        return FIELDS
    try:
        p = subprocess.run([LLAMA_BENCH, "-m", STORIES, "-p", "8", "-n", "0", "-r", "1", "-t",
                            "1", "-o", "json"], capture_output=True, timeout=120)
        return list(json.loads(p.stdout)[0].keys())
    except (subprocess.SubprocessError, ValueError, IndexError, OSError):
        return FIELDS


def check_record(r, n_prompt, n_gen):
    assert r["n_prompt"] == n_prompt and r["n_gen"] == n_gen and r["n_depth"] == 0
    assert r["n_threads"] == 1 and r["backends"] == "CPU"
    assert r["model_filename"] == STORIES and r["model_size"] > 0 and r["model_n_params"] > 0
    assert len(r["samples_ts"]) == 2 and len(r["samples_ns"]) == 2
    assert all(t > 0 for t in r["samples_ts"]) and all(n > 0 for n in r["samples_ns"])
    assert r["avg_ts"] == pytest.approx(sum(r["samples_ts"]) / 2, rel=1e-6)
    assert r["avg_ns"] == pytest.approx(sum(r["samples_ns"]) / 2, abs=1)
    tokens = n_prompt + n_gen
    for ns, ts in zip(r["samples_ns"], r["samples_ts"]):
        assert ts == pytest.approx(tokens / (ns / 1e9), rel=1e-3)


def test_json_has_llama_bench_fields():
    need_model()
    rc, out, err = run_once(ARGS + ["-o", "json"], timeout=120)
    assert rc == 0, err
    recs = json.loads(out)
    assert [(r["n_prompt"], r["n_gen"]) for r in recs] == [(8, 0), (0, 4)]
    want = llama_fields()
    for r in recs:
        missing = [f for f in want if f not in r]
        assert not missing, f"fields llama-bench has and wisp lacks: {missing}"
    check_record(recs[0], 8, 0)
    check_record(recs[1], 0, 4)


def test_jsonl_one_record_per_line():
    need_model()
    rc, out, err = run_once(ARGS + ["-o", "jsonl", "-n", "0"], timeout=120)
    assert rc == 0, err
    lines = out.decode().splitlines()
    assert len(lines) == 1
    check_record(json.loads(lines[0]), 8, 0)


def test_md_has_test_names():
    need_model()
    rc, out, err = run_once(ARGS + ["-o", "md"], timeout=120)
    assert rc == 0, err
    text = out.decode()
    rows = [l for l in text.splitlines() if l.startswith("| ") and not l.startswith("| -")]
    assert rows[0].split("|")[1:-1][-2:] == ["            test ", "                  t/s "]
    tests = [r.split("|")[6].strip() for r in rows[1:]]
    assert tests == ["pp8", "tg4"]


def test_wisp_json_still_there():
    need_model()
    rc, out, err = run_once(ARGS + ["--json"], timeout=120)
    assert rc == 0, err
    d = json.loads(out)
    assert d["pp"]["n_tokens"] == 8 and d["tg"]["n_tokens"] == 4
    assert d["pp"]["tokens_per_s"] > 0 and d["tg"]["tokens_per_s"] > 0


def test_bad_output_mode_is_refused():
    need_model()
    rc, out, err = run_once(["bench", "-m", STORIES, "-o", "csv"])
    assert rc == 2 and "json, jsonl or md" in err and out == b""


@pytest.mark.parametrize("extra,strategy,stages", [
    (["--device-map", "cpu=3,cpu=2"], "split", 2),
    (["--weights-budget-mb", "1"], "stream", 1),
    (["--device-map", "cpu=3,cpu=2", "--weights-budget-mb", "1"], "stream", 2),
])
def test_placement_flags_bench_the_same_engine(extra, strategy, stages):
    """A split or streamed placement is benchmarked with the engine the
    server would build for the same flags."""
    need_model()
    rc, out, err = run_once(ARGS + ["--json"] + extra, timeout=120)
    assert rc == 0, err
    d = json.loads(out)
    assert d["placement"]["strategy"] == strategy and d["placement"]["stages"] == stages, d
    assert d["pp"]["tokens_per_s"] > 0 and d["tg"]["tokens_per_s"] > 0


@pytest.mark.parametrize("extra,says", [
    (["--device-map", "cpu=3,cpu=3"], "holds 6 layers but the model has 5"),
    (["--device-map", "tpu=5"], "unknown device \"tpu\""),
    (["--weights-budget-mb", "0"], "--weights-budget-mb"),
    (["--device", "cuda:x"], "--device needs auto, cpu, cuda or cuda:N"),
])
def test_bad_placement_flags_are_refused(extra, says):
    need_model()
    rc, out, err = run_once(ARGS + ["--json"] + extra, timeout=120)
    assert rc != 0 and says in err, (rc, err)
