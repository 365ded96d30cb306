/*
 * bench.h - `wisp bench`: prefill and decode throughput of the engine the
 * server would serve the model with.
 *
 * Measures what llama-bench measures, the same way: pp = p prompt tokens in
 * forward steps of the engine's batch limit (one step for p <= 512), tg = n
 * single-token decode steps from an empty
 * cache; each repeated r times after a warm-up, reported as tokens/s mean
 * and standard deviation over the repetitions.
 */
#ifndef WISP_BENCH_H
#define WISP_BENCH_H

/* wisp bench -m MODEL [-p 512] [-n 128] [-t THREADS] [-r 5]
 *            [--device auto|cpu|cuda] [--kv-type f16|q8_0|f32]
 *            [--json | -o json|jsonl|md]
 * Prints a table (one JSON object with --json; llama-bench's records or
 * markdown table with -o, test names pp512 / tg128) to stdout; errors to
 * stderr. Returns the process exit status (0 ok, 1 error, 2 usage). */
int wisp_cmd_bench(int argc, char **argv);

#endif
