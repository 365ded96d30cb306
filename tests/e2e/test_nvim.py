"""The Neovim plugin (clients/nvim) driving the real wisp binary.

Each clients/nvim/tests/test_*.lua script runs in its own headless Neovim
(`nvim --headless -u NONE`, the plugin on the runtimepath), starts wisp
through the plugin on the synthetic DeepSeek-Coder FIM model, types into
real buffers and writes one JSON object per check to a file; this test
fails on any failed check, a Lua error, or a script that did not finish.
"""
import json
import os
import shutil
import subprocess

import pytest

from conftest import ROOT, WISP_BIN

SHARED = os.environ.get("WISP_SHARED", str(ROOT.parent / "shared"))
FIM_MODEL = os.path.join(SHARED, "golden", "syn-qwen2-dsc-q8_0.gguf")
PLUGIN = ROOT / "clients" / "nvim"
SCRIPTS = sorted(p.name for p in (PLUGIN / "tests").glob("test_*.lua"))
NVIM = shutil.which("nvim")


@pytest.mark.parametrize("script", SCRIPTS)
def test_nvim_plugin(script, tmp_path):
    if NVIM is None:
        pytest.skip("nvim is not installed (Debian package neovim; make deps)")
    if not os.path.exists(FIM_MODEL):
        pytest.skip(f"fixture {FIM_MODEL} is missing")
    out = tmp_path / "results.jsonl"
    env = dict(os.environ, WISP_BIN=WISP_BIN, WISP_FIM_MODEL=FIM_MODEL, WISP_TEST_OUT=str(out),
               WISP_NOFIM_MODEL=str(ROOT / "models" / "stories260K.gguf"),
               HOME=str(tmp_path), XDG_STATE_HOME=str(tmp_path), XDG_DATA_HOME=str(tmp_path))
    # The plugin owns wisp's stderr; a sanitizer build's reports go to files
    # instead, checked below.
    san = tmp_path / "san"
    for var in ("ASAN_OPTIONS", "UBSAN_OPTIONS"):
        env[var] = ":".join(filter(None, [os.environ.get(var, ""), f"log_path={san}"]))
    cmd = [NVIM, "--headless", "-u", "NONE", "-i", "NONE", "-n",
           "--cmd", f"set rtp^={PLUGIN}", "-c", f"luafile {PLUGIN / 'tests' / script}"]
    p = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, timeout=120)
    assert out.exists(), f"{script} wrote no results; nvim said:\n{p.stdout!r}\n{p.stderr!r}"
    records = [json.loads(line) for line in out.read_text().splitlines() if line.strip()]
    failed = [r for r in records if r.get("ok") is False or "error" in r]
    checks = [r for r in records if "check" in r]
    log = "\n".join(json.dumps(r, ensure_ascii=False) for r in records)
    assert not failed, f"{script}: failed checks:\n{log}"
    assert records and records[-1].get("done"), f"{script} did not finish:\n{log}"
    assert len(checks) >= 3, f"{script} checked too little:\n{log}"
    reports = [f.read_text(errors="replace") for f in tmp_path.glob("san*")]
    assert not reports, "sanitizer report from wisp:\n" + "\n".join(reports)
