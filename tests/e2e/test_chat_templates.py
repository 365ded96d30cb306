"""chat/render against the oracle: every chat template in $WISP_SHARED/templates
over every conversation there must give the bytes Python's jinja2 gives as
transformers configures it (render.py), or refuse when the template refuses
(with the template's own message for raise_exception). The template is passed
explicitly, so no model is needed; bos/eos are the same strings render.py gets
and the clock strftime_now reads is render.py's fixed one."""
import datetime
import json
import subprocess
import time

import pytest

from wispgen import SHARED

TEMPLATES = SHARED / "templates"
PYTHON = "/usr/bin/python3"     # Debian's, with python3-jinja2
BOS, EOS = "<s>", "</s>"
NOW = int(time.mktime(datetime.datetime(2026, 1, 2, 3, 4, 5).timetuple()))   # render.py's clock


def template_names():
    return sorted(p.name for p in TEMPLATES.glob("*.jinja")) or ["(none)"]


def oracle(template):
    try:
        import jinja2  # noqa: F401  (the oracle's dependency, checked here for a clear skip)
    except ImportError:
        pytest.skip("python3-jinja2 is not installed (make deps)")
    out = subprocess.run([PYTHON, str(TEMPLATES / "render.py"), str(template),
                          str(TEMPLATES / "conversations.json"), "--bos", BOS, "--eos", EOS],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return {r["case"]: r for r in map(json.loads, out.stdout.splitlines())}


@pytest.mark.parametrize("name", template_names())
def test_template_matches_jinja2(client, name):
    path = TEMPLATES / name
    if not path.is_file():
        pytest.skip(f"fixture missing: {TEMPLATES} (set WISP_SHARED)")
    ref = oracle(path)
    source = path.read_text(encoding="utf-8")
    cases = json.loads((TEMPLATES / "conversations.json").read_text(encoding="utf-8"))
    failures = []
    for case in cases:
        params = {"messages": case["messages"], "template": source, "bos_token": BOS,
                  "eos_token": EOS, "now": NOW,
                  "add_generation_prompt": case.get("add_generation_prompt", True)}
        if case.get("tools") is not None:
            params["tools"] = case["tools"]
        if case.get("extra"):
            params["template_kwargs"] = case["extra"]
        got = client.call("chat/render", params)
        want = ref[case["name"]]
        if "error" in want:
            kind, _, message = want["error"].partition(": ")
            if "error" not in got:
                failures.append(f"{case['name']}: jinja2 refused ({want['error']}), wisp rendered")
            elif kind == "TemplateError" and message not in got["error"]["message"]:
                failures.append(f"{case['name']}: wisp's error {got['error']['message']!r} "
                                f"lacks the template's message {message!r}")
        elif "result" not in got:
            failures.append(f"{case['name']}: wisp refused: {got['error']['message']}")
        elif got["result"]["prompt"] != want["prompt"]:
            a, b = got["result"]["prompt"], want["prompt"]
            at = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
            failures.append(f"{case['name']}: differs at byte {at}: wisp {a[at:at + 60]!r} "
                            f"jinja2 {b[at:at + 60]!r}")
    assert not failures, "\n".join(failures)


def test_no_template_and_no_model_is_a_clear_error(client):
    r = client.call("chat/render", {"messages": [{"role": "user", "content": "hi"}]})
    assert "error" in r
    assert "template" in r["error"]["message"]


def test_template_error_names_the_line(client):
    r = client.call("chat/render", {"messages": [], "template": "ok\n{{ 1 + }}"})
    assert "error" in r and "line 2" in r["error"]["message"], r
    r = client.call("chat/render", {"messages": [], "template": "{% frobnicate %}"})
    assert "frobnicate" in r["error"]["message"], r
    r = client.call("chat/render", {"messages": [],
                                    "template": "a\n\n{{ raise_exception('no system role') }}"})
    assert "no system role" in r["error"]["message"] and "line 3" in r["error"]["message"], r
    # wisp keeps serving after a template error
    r = client.call("chat/render", {"messages": [{"role": "user", "content": "x"}],
                                    "template": "{% for m in messages %}{{ m.content }}{% endfor %}"})
    assert r["result"]["prompt"] == "x"


def test_bad_messages_are_refused(client):
    for bad in ([1], [{"content": "no role"}], "text"):
        r = client.call("chat/render", {"messages": bad, "template": "x"})
        assert "error" in r, r


def test_runaway_template_is_bounded(client):
    # (the step and memory limits are exercised with small limits in test_jinja.c)
    r = client.call("chat/render", {"messages": [], "template":
                                    "{% for i in range(100000) %}{{ 'x' * 100000 }}{% endfor %}"})
    assert "error" in r and "output limit" in r["error"]["message"], r
    r = client.call("chat/render", {"messages": [], "template":
                                    "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}"})
    assert "error" in r and "nested" in r["error"]["message"], r
