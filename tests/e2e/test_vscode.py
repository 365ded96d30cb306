"""The VS Code extension (clients/vscode) against the real binary.

Runs the extension's own suite: `npm ci` when node_modules is missing (the
versions pinned in package-lock.json), `npm run compile` (tsc), `npm test`
(Node's test runner loading out/extension.js against a stub `vscode`
module, driving $WISP_BIN on the FIM model in $WISP_SHARED). Skipped with
the reason when node or npm is missing, too old, or the packages cannot be
fetched.
"""
import os
import shutil
import subprocess

import pytest

from conftest import ROOT, WISP_BIN

EXT = ROOT / "clients" / "vscode"
SHARED = os.environ.get("WISP_SHARED", str(ROOT.parent / "shared"))
MODEL = os.path.join(SHARED, "golden", "syn-qwen2-dsc-q8_0.gguf")


def run(cmd, timeout, env=None):
    return subprocess.run(cmd, cwd=EXT, capture_output=True, text=True, timeout=timeout, env=env)


def tail(p):
    return (p.stdout + p.stderr)[-6000:]


def test_vscode_extension():
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        pytest.skip("node and npm are needed for the VS Code extension tests "
                    f"(node: {node or 'missing'}, npm: {npm or 'missing'})")
    version = run([node, "--version"], 30).stdout.strip()
    if int(version.lstrip("v").split(".")[0]) < 18:
        pytest.skip(f"node {version} is too old: node --test needs 18 or newer")
    if not os.path.exists(MODEL):
        pytest.skip(f"fixture {MODEL} is missing")
    if not (EXT / "node_modules").is_dir():
        p = run([npm, "ci", "--no-audit", "--no-fund"], 900)
        if p.returncode != 0:
            pytest.skip(f"npm ci failed (is the npm registry reachable?):\n{tail(p)}")
    p = run([npm, "run", "compile"], 300)
    assert p.returncode == 0, f"npm run compile failed:\n{tail(p)}"
    env = dict(os.environ, WISP_BIN=os.path.abspath(WISP_BIN), WISP_SHARED=SHARED)
    p = run([npm, "test"], 300, env)
    assert p.returncode == 0, f"npm test failed:\n{tail(p)}"
    # The runner's summary: every test ran (none skipped for a missing fixture).
    out = p.stdout
    assert "# fail 0" in out and "# skipped 0" in out, tail(p)
