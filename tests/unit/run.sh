#!/usr/bin/env bash
# Runs every unit-test program in the given build folder and sums the results
# into one closing line, "unit: N passed, N failed, N skipped".
set -u
dir=${1:?usage: run.sh BUILD_DIR/tests/unit}
total_p=0 total_f=0 total_s=0 progs_failed=()
for t in "$dir"/test_*; do
    [ -x "$t" ] || continue
    out=$("$t" 2>&1)
    rc=$?
    printf '%s\n' "$out" | grep -v '^ok ' 
    line=$(printf '%s\n' "$out" | grep -E '^test_[A-Za-z0-9_]+: [0-9]+ passed, [0-9]+ failed, [0-9]+ skipped$' | tail -n 1)
    if [ -z "$line" ]; then
        echo "$(basename "$t"): crashed or printed no summary (exit $rc)"
        total_f=$((total_f + 1)); progs_failed+=("$(basename "$t")"); continue
    fi
    read -r p f s < <(echo "$line" | sed -E 's/.*: ([0-9]+) passed, ([0-9]+) failed, ([0-9]+) skipped/\1 \2 \3/')
    total_p=$((total_p + p)); total_f=$((total_f + f)); total_s=$((total_s + s))
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then total_f=$((total_f + 1)); progs_failed+=("$(basename "$t")"); fi
done
[ ${#progs_failed[@]} -eq 0 ] || echo "failed programs: ${progs_failed[*]}"
echo "unit: $total_p passed, $total_f failed, $total_s skipped"
[ "$total_f" -eq 0 ]
