#!/usr/bin/env bash
# make bench: synthesizes a Qwen2-layout model of about 200M parameters
# (dim 1024, 16 layers, 16 heads / 2 kv heads, ffn 2816, deepseek-coder's
# 32256-token vocabulary, tied output) in F16, Q8_0, Q4_0 and Q4_K_M under
# build/bench/, then runs `wisp bench` on each: prefill (pp) and decode (tg)
# tokens/s, mean ± stddev over the repetitions, like llama-bench.
#
# Defaults are sized to finish in a few minutes on 2 cores; override with
#   BENCH_P (prompt tokens, 512)   BENCH_N (generated tokens, 64)
#   BENCH_R (repetitions, 3)       BENCH_THREADS (physical cores)
#   BENCH_TYPES ("f16 q8_0 q4_0 q4_k_m")   BENCH_JSON=1 (JSON lines)
# Models are kept between runs (delete build/bench/ to regenerate).
set -euo pipefail
cd "$(dirname "$0")/../.."

bin=${WISP_BIN:-build/wisp}
tools=${WISP_TOOLS:-build/tools}
shared=${WISP_SHARED:-../shared}
vocab=$shared/vocab/ggml-vocab-deepseek-coder.gguf
out=build/bench
p=${BENCH_P:-512}
n=${BENCH_N:-64}
r=${BENCH_R:-3}
types=${BENCH_TYPES:-"f16 q8_0 q4_0 q4_k_m"}

[ -x "$tools/synth" ] || { echo "bench: $tools/synth is missing (make tools)" >&2; exit 1; }
[ -r "$vocab" ] || { echo "bench: vocabulary $vocab is missing" >&2; exit 1; }
if ! "$bin" bench --help >/dev/null 2>&1; then
    echo "bench: '$bin bench' is not available (main must route 'bench' to wisp_cmd_bench)" >&2
    exit 1
fi
mkdir -p "$out"

args=(-p "$p" -n "$n" -r "$r")
[ -n "${BENCH_THREADS:-}" ] && args+=(-t "$BENCH_THREADS")
[ "${BENCH_JSON:-0}" = 1 ] && args+=(--json)

echo "bench: CPU $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(nproc) logical cores"
for t in $types; do
    model=$out/qwen2-200m-$t.gguf
    if [ ! -s "$model" ]; then
        case $t in
            q*_k_m) kind=(--recipe "$t") ;;
            *) kind=(--type "$t") ;;
        esac
        echo "bench: synthesizing $model"
        "$tools/synth" --arch qwen2 --layers 16 --embd 1024 --heads 16 --kv-heads 2 --ff 2816 \
            --vocab "$vocab" --tied --rope-base 1000000 --name "qwen2-200m-$t" "${kind[@]}" \
            --out "$model.tmp" >/dev/null
        mv "$model.tmp" "$model"
    fi
    "$bin" bench -m "$model" "${args[@]}"
done
