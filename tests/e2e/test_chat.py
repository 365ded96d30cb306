"""`chat` through the protocol: the model's own chat template (a GGUF with
tokenizer.chat_template, synthesized from the Phi-3 vocabulary and the
Phi-3.5 template), streaming, the same tokens as generate on the rendered
prompt, the end-of-turn token, the prefix cache on a follow-up turn, and the
clear error of a model without a template."""
import json
import os
import pathlib
import subprocess

import pytest

from wispgen import Gen, SHARED, shared_file, start, stories_path

TOOLS = pathlib.Path(os.environ.get("WISP_TOOLS", str(pathlib.Path(__file__).resolve().parents[2]
                                                      / "build" / "tools")))
TEMPLATE = "microsoft-Phi-3.5-mini-instruct.jinja"
GREEDY = {"temperature": 0}
LONG = ("Tell me about the history of the lighthouse on the northern cape, who built it, "
        "how the keepers lived through the winters, and why it was finally automated. ") * 3


@pytest.fixture(scope="module")
def phi_model(tmp_path_factory):
    synth = TOOLS / "synth"
    if not synth.is_file():
        pytest.skip(f"{synth} not built (make tools)")
    vocab = shared_file("vocab/ggml-vocab-phi-3.gguf")
    template = shared_file("templates/" + TEMPLATE)
    out = tmp_path_factory.mktemp("chat") / "phi-chat.gguf"
    subprocess.run([str(synth), "--arch", "llama", "--layers", "1", "--embd", "64", "--heads", "4",
                    "--kv-heads", "2", "--ff", "128", "--vocab", str(vocab), "--chat-template",
                    str(template), "--out", str(out)], check=True, capture_output=True)
    return out


@pytest.fixture
def phi(wisp, phi_model):
    return start(wisp, phi_model, ctx=1024)


def chat(srv, **params):
    """Runs one chat request to its answer, with its $/stream pieces checked."""
    rid = srv.c.request("chat", params)
    g = Gen(rid, params)
    srv.gens[srv._key(rid)] = g
    return srv.wait([g])[0]


def conversation(*turns):
    roles = ["user", "assistant"]
    return [{"role": roles[i % 2], "content": t} for i, t in enumerate(turns)]


def test_render_uses_the_models_template_and_tokens(phi):
    try:
        import jinja2  # noqa: F401
    except ImportError:
        pytest.skip("python3-jinja2 is not installed (make deps)")
    case = "multi-turn"
    ref = subprocess.run(["/usr/bin/python3", str(SHARED / "templates" / "render.py"),
                          str(SHARED / "templates" / TEMPLATE),
                          str(SHARED / "templates" / "conversations.json"), "--case", case,
                          "--bos", "<s>", "--eos", "<|endoftext|>"],
                         capture_output=True, text=True, check=True).stdout
    want = json.loads(ref)["prompt"]
    convs = json.loads((SHARED / "templates" / "conversations.json").read_text(encoding="utf-8"))
    messages = next(c for c in convs if c["name"] == case)["messages"]
    assert phi.result("chat/render", {"messages": messages})["prompt"] == want


def test_chat_streams_and_answers_with_a_message(phi):
    g = chat(phi, messages=conversation("Hello there"), max_tokens=12, **GREEDY)
    r = g.result
    assert r is not None, g
    assert r["message"]["role"] == "assistant"
    assert r["message"]["content"] == r["text"].strip()
    assert "".join(p["text"] for p in g.streams) == r["text"]
    assert r["usage"]["completion_tokens"] == len(r["tokens"])


def test_chat_generates_what_generate_does_on_the_rendered_prompt(phi):
    msgs = conversation("Hello there")
    prompt = phi.result("chat/render", {"messages": msgs})["prompt"]
    ids = phi.result("tokenize", {"text": prompt, "add_special": False,
                                  "parse_special": True})["tokens"]
    assert ids.count(1) <= 1, "the template's BOS must not be doubled"
    c = chat(phi, messages=msgs, max_tokens=10, **GREEDY).result
    g = phi.ok(prompt=ids, max_tokens=10, **GREEDY).result
    assert c["usage"]["prompt_tokens"] == len(ids)
    assert c["tokens"] == g["tokens"]


def test_chat_stops_at_the_end_of_turn_token(phi):
    end = phi.result("tokenize", {"text": "<|end|>", "add_special": False,
                                  "parse_special": True})["tokens"]
    assert len(end) == 1
    r = chat(phi, messages=conversation("Hi"), max_tokens=20, logit_bias=[[end[0], 100]],
             **GREEDY).result
    assert r["finish_reason"] == "eog"
    assert r["tokens"] == end
    assert r["message"]["content"] == "" and "<|end|>" not in r["text"]


def test_follow_up_turn_reuses_the_prefix_cache(phi):
    first = conversation(LONG)
    r1 = chat(phi, messages=first, max_tokens=8, **GREEDY).result
    second = first + [{"role": "assistant", "content": r1["message"]["content"]},
                      {"role": "user", "content": "And the keepers' families?"}]
    r2 = chat(phi, messages=second, max_tokens=8, **GREEDY).result
    assert r2["usage"]["cached_tokens"] > 0, r2["usage"]
    assert r2["usage"]["cached_tokens"] >= r1["usage"]["prompt_tokens"] // 2, r2["usage"]


def test_template_error_is_answered_and_wisp_keeps_serving(phi):
    r = phi.call("chat", {"messages": conversation("x"), "max_tokens": 2,
                          "template": "{{ raise_exception('only system turns') }}"})
    assert "only system turns" in r["error"]["message"]
    assert chat(phi, messages=conversation("x"), max_tokens=2, **GREEDY).result is not None


def test_model_without_a_template_is_a_clear_error(wisp):
    srv = start(wisp, stories_path(), ctx=256)
    r = srv.call("chat/render", {"messages": conversation("hi")})
    assert "error" in r and "chat template" in r["error"]["message"], r
    r = srv.call("chat", {"messages": conversation("hi"), "max_tokens": 4})
    assert "error" in r and "chat template" in r["error"]["message"], r
    # an explicit template works with any model
    r = srv.result("chat/render", {"messages": conversation("hi"),
                                   "template": "{{ bos_token }}{{ messages[0].content }}"})
    assert r["prompt"] == "<s>hi"
