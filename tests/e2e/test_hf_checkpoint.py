"""A Hugging Face checkpoint (config.json + safetensors + tokenizer.json)
against the GGUF file of the same weights and vocabulary, through the real
binary. build/tools/synth writes both from one seed; the tokenizer.json is
its export of the shared vocabulary. Every case of llama.cpp's tokenizer
test data must tokenize to the reference ids from both, and the two models
must give the same logits (the GGUF llama file stores Q/K permuted for the
normal RoPE layout, the checkpoint uses rotate-half: same numbers).
"""
import os
import subprocess

import pytest

from conftest import ROOT

SHARED = os.environ.get("WISP_SHARED", str(ROOT.parent / "shared"))
TOOLS = os.environ.get("WISP_TOOLS", str(ROOT / "build" / "tools"))

# (vocab, architecture): one byte-level BPE and one SentencePiece vocabulary.
CASES = [("gpt-2", "qwen2"), ("deepseek-coder", "qwen2"), ("llama-spm", "llama")]


def read_cases(name):
    base = os.path.join(SHARED, "vocab", f"ggml-vocab-{name}.gguf")
    if not os.path.exists(base + ".inp"):
        pytest.skip(f"fixture {base}.inp is missing")
    # Every case is followed by a line "__ggml_vocab_test__"; .out has one
    # line of ids per case.
    texts = open(base + ".inp", encoding="utf-8").read().split("\n__ggml_vocab_test__\n")
    assert texts[-1] == "", "the .inp must end with a separator line"
    texts = texts[:-1]
    lines = open(base + ".out", encoding="utf-8").read().split("\n")
    assert len(lines) >= len(texts)
    ids = [[int(x) for x in line.split()] for line in lines[: len(texts)]]
    return base, texts, ids


@pytest.mark.parametrize("vocab,arch", CASES)
def test_hf_and_gguf_agree(wisp, tmp_path, vocab, arch):
    base, texts, want = read_cases(vocab)
    synth = os.path.join(TOOLS, "synth")
    if not os.access(synth, os.X_OK):
        pytest.skip(f"{synth} is not built")
    gguf, hf = tmp_path / "m.gguf", tmp_path / "hf"
    subprocess.run([synth, "--arch", arch, "--layers", "2", "--embd", "64", "--heads", "4",
                    "--kv-heads", "2", "--ff", "128", "--type", "f32", "--vocab", base,
                    "--seed", "11", "--out", str(gguf), "--hf-dir", str(hf), "--hf-dtype", "f32"],
                   check=True, capture_output=True)
    a, b = wisp("--model", str(gguf), "--threads", "1"), wisp("--model", str(hf), "--threads", "1")
    assert b.call("model/info")["result"]["format"] == "safetensors"
    failures = []
    for i, (text, ref) in enumerate(zip(texts, want)):
        for c, what in ((a, "gguf"), (b, "tokenizer.json")):
            got = c.call("tokenize", {"text": text})["result"]["tokens"]
            if got != ref:
                failures.append((what, i, text[:40], got[:12], ref[:12]))
    print(f"{vocab}: {len(texts) * 2 - len(failures)}/{len(texts) * 2} cases match")
    assert not failures, failures[:5]
    toks = want[1][:8] or [1, 2, 3]
    la = a.call("evaluate", {"tokens": toks, "top_k": 5})["result"]["logits"]
    lb = b.call("evaluate", {"tokens": toks, "top_k": 5})["result"]["logits"]
    for pa, pb in zip(la, lb):
        assert [t for t, _ in pa][:1] == [t for t, _ in pb][:1]
        for (ta, va), (tb, vb) in zip(pa, pb):
            assert abs(va - vb) < 1e-3, (pa, pb)
