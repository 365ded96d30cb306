"""Portable binaries: build/wisp, built for the x86-64-v2 baseline with its
AVX2 / AVX-512 kernels chosen at run time, runs on CPUs without AVX-512 and
without AVX, and computes there exactly what the same level computes on
this machine.

qemu-user emulates the smaller CPUs: `-cpu max` (every extension TCG
implements: AVX2, FMA, F16C, no AVX-512) and `-cpu Nehalem` (SSE4.2, no
AVX). Each emulated run is compared with a native run forced to the same
level with WISP_SIMD, bit for bit: the greedy stories260K story (tokens and
text) and a golden model's logits from `evaluate` (as JSON numbers, which
wisp writes with enough digits to round-trip a float). Levels differ from
each other in their float bits (lane counts, FMA), so each is compared
with itself only. The emulated run must also report the level it chose.

Emulation only reaches the code a run executes, so the object files are
also read instruction by instruction: baseline files hold no VEX or EVEX
instruction, _avx2 files no EVEX one, and _avx512 / _amx files none from
an extension their flags do not name (AVX512-FP16, BF16, VBMI, ...);
_avx512bf16 files add AVX512-BF16's and nothing else.
"""
import json
import os
import pathlib
import re
import shutil
import subprocess

import pytest

from conftest import WISP_BIN, check_sanitizer_report
from wispgen import shared_file, stories_path, story_text

QEMU = shutil.which("qemu-x86_64")
EMULATION_TIMEOUT = 120
GOLDEN = ("golden/syn-qwen2-dsc-q4_0.gguf", "golden/syn-llama-spm-q4_k_m.gguf")
PROMPT_TOKENS = 8
STORY_TOKENS = 40
TOP_K = 64

# (qemu CPU model, the level wisp must choose there, host flags it needs)
CPUS = {
    "avx2": ("max", ("avx2", "fma", "f16c")),
    "scalar": ("Nehalem", ()),
}


def sanitized():
    """ASan builds cannot run under qemu-user: their shadow memory does not
    fit the emulator's guest address space (the process never starts)."""
    try:
        dyn = subprocess.run(["readelf", "-d", WISP_BIN], capture_output=True, text=True).stdout
    except OSError:
        return False
    return "libasan" in dyn


def host_flags():
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def run(cmd, requests, env=None):
    """wisp (under cmd's wrapper) answering requests: (results by id, stderr)."""
    full_env = dict(os.environ)
    full_env.pop("WISP_SIMD", None)
    full_env.update(env or {})
    stdin = "".join(json.dumps(r) + "\n" for r in requests).encode()
    p = subprocess.run(cmd, input=stdin, capture_output=True, env=full_env,
                       timeout=EMULATION_TIMEOUT)
    err = p.stderr.decode("utf-8", "replace")
    check_sanitizer_report(err)
    assert p.returncode == 0, f"{cmd} exited {p.returncode}:\n{err[-2000:]}"
    results = {}
    for line in p.stdout.decode().splitlines():
        msg = json.loads(line)
        if "id" in msg:
            assert "result" in msg, f"{cmd}: {msg}"
            results[msg["id"]] = msg["result"]
    assert len(results) == len(requests), f"{cmd}: {len(results)} answers\n{err[-2000:]}"
    return results, err


def story_requests():
    return [{"jsonrpc": "2.0", "id": 1, "method": "generate",
             "params": {"prompt": "Once upon a time", "max_tokens": STORY_TOKENS,
                        "temperature": 0, "seed": 1}}]


def golden_requests(model):
    ref = json.loads(pathlib.Path(model).with_suffix(".json").read_text())
    return [{"jsonrpc": "2.0", "id": 1, "method": "evaluate",
             "params": {"tokens": ref["prompt_ids"][:PROMPT_TOKENS], "top_k": TOP_K}}]


def comparable(method_result):
    """What must be identical: everything but the timings."""
    r = dict(method_result)
    r.pop("timings", None)
    return r


@pytest.mark.parametrize("level", sorted(CPUS))
@pytest.mark.parametrize("rel", [None, *GOLDEN],
                         ids=["stories260K", *(pathlib.Path(g).stem for g in GOLDEN)])
def test_emulated_cpu_computes_the_native_bits(level, rel):
    if QEMU is None:
        pytest.skip("qemu-x86_64 is missing (Debian package qemu-user)")
    if sanitized():
        pytest.skip("an ASan build does not start under qemu-user (shadow memory)")
    cpu, needs = CPUS[level]
    missing = [f for f in needs if f not in host_flags()]
    if missing:
        pytest.skip(f"this CPU lacks {', '.join(missing)}: no native {level} run to compare with")
    model = stories_path() if rel is None else shared_file(rel)
    reqs = story_requests() if rel is None else golden_requests(model)
    name = pathlib.Path(model).stem
    args = ["--model", str(model), "--threads", "2", "--ctx", "256"]

    native, native_err = run([WISP_BIN, *args], reqs, env={"WISP_SIMD": level})
    assert f"SIMD level {level} " in native_err, native_err[-2000:]
    emulated, emu_err = run([QEMU, "-cpu", cpu, WISP_BIN, *args], reqs)
    assert f"SIMD level {level} (the CPU's highest: {level})" in emu_err, emu_err[-2000:]

    for id_, res in native.items():
        assert comparable(emulated[id_]) == comparable(res), \
            f"{name}: qemu -cpu {cpu} differs from native WISP_SIMD={level}"
    if rel is None:
        # The story models/README.md quotes, at every level.
        assert len(native[1]["tokens"]) == STORY_TOKENS
        assert story_text().startswith(native[1]["text"]), native[1]["text"]
    else:
        assert len(native[1]["logits"]) == PROMPT_TOKENS
        assert all(len(row) == TOP_K for row in native[1]["logits"])


# ------------------------------------------------------------ objects
INSN = re.compile(r"^\s*[0-9a-f]+:\t(\S+)\s*(.*)$")
VECTOR_REG = re.compile(r"%[yz]mm|%k[0-7]")
EVEX_ONLY = re.compile(r"%zmm|%k[0-7]|%[xy]mm(1[6-9]|2[0-9]|3[01])\b|\{")
# AVX512-FP16 (ph/sh arithmetic and conversions but F16C's two), BF16,
# VBMI/VBMI2, BITALG, VPOPCNTDQ, IFMA, GFNI, VAES, VPCLMULQDQ.
NOT_IN_AVX512_LEVEL = re.compile(
    r"(ph|sh|phx)$|ph2|2ph|sh2|2sh|^vmovw$|bf16|^vperm[it]?2?b$|^vpmultishiftqb$|"
    r"^vp(compress|expand)[bw]$|^vpsh[lr]d|^vpopcnt|^vpshufbitqmb$|^vpmadd52|^vgf2p8|"
    r"^vaes|^vpclmul")
F16C = {"vcvtph2ps", "vcvtps2ph"}


def object_dir():
    """The object folder of the build WISP_BIN came from (its variant stamp)."""
    out = pathlib.Path(WISP_BIN).parent
    stamps = list(out.glob(".variant-*"))
    if len(stamps) != 1:
        pytest.skip(f"no single variant stamp beside {WISP_BIN}")
    variant = stamps[0].name[len(".variant-"):]
    if variant.endswith("-native"):
        pytest.skip("a NATIVE=1 build is meant for this machine only")
    d = out / f"obj-{variant}"
    if not d.is_dir():
        pytest.skip(f"object folder {d} is missing")
    return d


def bad_instructions(obj, allowed):
    dis = subprocess.run(["objdump", "-d", "--no-show-raw-insn", str(obj)],
                         capture_output=True, text=True, check=True).stdout
    bad = set()
    for line in dis.splitlines():
        m = INSN.match(line)
        if m and not allowed(m.group(1), m.group(2)):
            bad.add(f"{m.group(1)} {m.group(2)}".strip())
    return sorted(bad)[:5]


def test_objects_use_only_their_files_instructions():
    if shutil.which("objdump") is None:
        pytest.skip("objdump is missing (Debian package binutils)")
    objs = sorted(object_dir().rglob("*.o"))
    assert objs
    problems = {}
    for o in objs:
        if o.name.endswith(".cu.o"):
            continue
        if o.stem.endswith(("_avx512", "_amx")):
            def allowed(mn, ops):
                return not mn.startswith("v") or mn in F16C or not NOT_IN_AVX512_LEVEL.search(mn)
        elif o.stem.endswith("_avx512bf16"):
            # the AVX-512 level's instructions and AVX512-BF16's, no more
            def allowed(mn, ops):
                return (not mn.startswith("v") or mn in F16C or "bf16" in mn
                        or not NOT_IN_AVX512_LEVEL.search(mn))
        elif o.stem.endswith("_avx2"):
            def allowed(mn, ops):
                return not EVEX_ONLY.search(ops)
        else:
            def allowed(mn, ops):
                return not mn.startswith("v") and not VECTOR_REG.search(ops)
        bad = bad_instructions(o, allowed)
        if bad:
            problems[str(o)] = bad
    assert not problems, "instructions beyond their file's ISA:\n" + "\n".join(
        f"{k}: {v}" for k, v in problems.items())
