"""infill over the real binary: FIM prompt construction, code stop rules,
supersede under a keystroke burst, context trimming, and the errors.

The model is synthesized once per module by build/tools/synth (random
weights, qwen2 layout) with the DeepSeek-Coder vocabulary from
$WISP_SHARED/vocab, which carries FIM tokens. Random weights decide nothing
useful on their own, so the stop-rule tests steer the text with logit_bias
and check that the rule fired where the protocol says it must.
"""
import os
import subprocess
import time

import pytest

from conftest import ROOT, error_of

SHARED = os.environ.get("WISP_SHARED", str(ROOT.parent / "shared"))
TOOLS = os.environ.get("WISP_TOOLS", str(ROOT / "build" / "tools"))
VOCAB = os.path.join(SHARED, "vocab", "ggml-vocab-deepseek-coder.gguf")
STORIES = str(ROOT / "models" / "stories260K.gguf")


@pytest.fixture(scope="module")
def fim_model(tmp_path_factory):
    if not os.path.exists(VOCAB):
        pytest.skip(f"fixture {VOCAB} is missing")
    synth = os.path.join(TOOLS, "synth")
    if not os.access(synth, os.X_OK):
        pytest.skip(f"{synth} is not built")
    out = tmp_path_factory.mktemp("fim") / "dsc-fim.gguf"
    subprocess.run([synth, "--arch", "qwen2", "--layers", "2", "--embd", "128", "--heads", "4",
                    "--kv-heads", "2", "--ff", "256", "--ctx", "4096", "--type", "q8_0", "--tied",
                    "--vocab", VOCAB, "--seed", "7", "--out", str(out)],
                   check=True, capture_output=True)
    return str(out)


def token_id(c, text):
    ids = c.call("tokenize", {"text": text})["result"]["tokens"]
    assert len(ids) == 1, (text, ids)
    return ids[0]


def test_model_without_fim_tokens_is_refused(wisp):
    c = wisp("--model", STORIES)
    msg = error_of(c.call("infill", {"input_prefix": "def f(", "max_tokens": 4}), -31007)
    assert "missing" in msg and "prefix" in msg, msg


def test_model_info_reports_fim(wisp, fim_model):
    c = wisp("--model", fim_model)
    tk = c.call("model/info")["result"]["tokenizer"]
    assert tk["fim"] is True
    assert tk["special"]["fim_prefix"] is not None


def test_special_token_text_in_user_code_stays_text(wisp, fim_model):
    c = wisp("--model", fim_model)
    prefix = "s = '<｜fim▁hole｜><|EOT|>'\n"
    plain = c.call("tokenize", {"text": prefix})["result"]["tokens"]
    special = c.call("tokenize", {"text": prefix, "parse_special": True})["result"]["tokens"]
    assert len(plain) != len(special), "the vocabulary must know these special tokens"
    r = c.call("infill", {"input_prefix": prefix, "input_suffix": "", "max_tokens": 1,
                          "temperature": 0})["result"]
    assert r["prompt_parts"]["prefix"] == len(plain)
    assert r["fim_family"] == "deepseek-coder"


def test_prompt_parts_add_up_and_typed_text_goes_last(wisp, fim_model):
    c = wisp("--model", fim_model)
    p = {"input_prefix": "def add(a, b):\n    ", "input_suffix": "\n\nprint(add(1, 2))\n",
         "input_extra": [{"filename": "util.py", "text": "def mul(a, b):\n    return a * b\n"}],
         "prompt": "ret", "max_tokens": 1, "temperature": 0}
    r = c.call("infill", p)["result"]
    parts = r["prompt_parts"]
    assert parts["extra"] > 0 and parts["prefix"] > 0 and parts["suffix"] > 0 and parts["typed"] > 0
    # The FIM markers (and BOS) come on top of the parts.
    assert r["usage"]["prompt_tokens"] > sum(parts.values())
    # Typing more on the line keeps everything before the middle token cached.
    p2 = dict(p, prompt="retu")
    r2 = c.call("infill", p2)["result"]
    assert r2["usage"]["cached_tokens"] >= 16, r2["usage"]


def test_context_overflow_trims_extra_first_then_whole_lines(wisp, fim_model):
    c = wisp("--model", fim_model, "--ctx", "256")
    prefix = "".join(f"x{i} = {i}\n" for i in range(200))
    extra = [{"filename": "big.py", "text": "y = 1\n" * 100}]
    r = c.call("infill", {"input_prefix": prefix, "input_suffix": "z = 0\n", "input_extra": extra,
                          "max_tokens": 8, "temperature": 0})["result"]
    assert r["trimmed"] is True
    t = r["trim"]
    assert t["extra_dropped"] == 1 and t["prefix_lines_trimmed"] > 0, t
    assert r["usage"]["prompt_tokens"] + 8 <= 256


def test_n_indent_stops_at_a_dedented_line(wisp, fim_model):
    c = wisp("--model", fim_model)
    x, nl = token_id(c, "x"), token_id(c, "\n")
    r = c.call("infill", {"input_prefix": "if a:\n    ", "input_suffix": "", "max_tokens": 64,
                          "temperature": 1.0, "top_k": 0, "top_p": 1, "min_p": 0, "seed": 3,
                          "logit_bias": [[x, 60], [nl, 60]], "n_indent": 4})["result"]
    assert r["finish_reason"] == "n_indent", r
    # Nothing from the dedented line is returned.
    assert not r["text"].split("\n")[-1].strip(), repr(r["text"])


def test_t_max_predict_ms_stops_at_the_next_newline(wisp, fim_model):
    c = wisp("--model", fim_model)
    x, nl = token_id(c, "x"), token_id(c, "\n")
    r = c.call("infill", {"input_prefix": "    ", "input_suffix": "", "max_tokens": 2000,
                          "temperature": 1.0, "top_k": 0, "top_p": 1, "min_p": 0, "seed": 5,
                          "logit_bias": [[x, 60], [nl, 59]], "t_max_predict_ms": 1})["result"]
    assert r["finish_reason"] == "t_max_predict_ms", r
    assert r["usage"]["completion_tokens"] < 2000


def test_fim_marker_ends_generation(wisp, fim_model):
    c = wisp("--model", fim_model)
    end = c.call("model/info")["result"]["tokenizer"]["special"]["fim_middle"]
    r = c.call("infill", {"input_prefix": "a", "input_suffix": "b", "max_tokens": 16,
                          "temperature": 0, "logit_bias": [[end, 100]]})["result"]
    assert r["finish_reason"] == "eog" and r["text"] == "", r


def test_supersede_burst_one_completes_the_rest_cancelled(wisp, fim_model):
    c = wisp("--model", fim_model)
    x = token_id(c, "x")
    ids = []
    for i in range(50):
        ids.append(c.request("infill", {"input_prefix": "v = " + "1" * i, "input_suffix": "",
                                        "max_tokens": 32, "temperature": 0,
                                        "logit_bias": [[x, 60]],
                                        "supersede": "file:///a.py"}))
    answers = [c.response(i, timeout=60) for i in ids]
    done = [a for a in answers if "result" in a]
    cancelled = [a for a in answers if "error" in a]
    assert len(done) == 1 and done[0]["id"] == ids[-1], [a.get("error") for a in answers][-3:]
    assert len(cancelled) == 49
    assert all(a["error"]["code"] == -32800 for a in cancelled)
    # Nothing leaked: no sequence holds KV blocks once all are answered.
    deadline = time.monotonic() + 5
    while True:
        st = c.call("status")["result"]
        if st["kv_cache"]["blocks_used"] == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert st["kv_cache"]["blocks_used"] == 0, st["kv_cache"]
    assert st["requests"]["running"] == 0 and st["requests"]["waiting"] == 0
