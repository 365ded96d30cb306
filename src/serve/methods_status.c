/*
 * methods_status.c - status: what the server is doing right now.
 *
 * Runs on the loop thread so it answers at once even while the engine is
 * busy: request counts come from the dispatcher and the worker, engine
 * numbers from the scheduler snapshot the engine thread publishes after
 * every step (server.h), which is all zeros while no model is loaded,
 * since no KV cache exists then.
 */
#include "common/log.h"
#include "rpc/dispatch.h"
#include "rpc/job_int.h"
#include "rpc/worker.h"
#include "serve/methods.h"
#include "serve/server.h"

#define U(x) ((json_int_t)(x))

static json_t *kv_json(const wisp_kv_stats *kv)
{
    json_t *o = json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:f, s:I}", "block_size",
                          U(kv->block_size), "blocks_total", U(kv->blocks_total), "blocks_used",
                          U(kv->blocks_used), "blocks_cached", U(kv->blocks_cached_only),
                          "blocks_free", U(kv->blocks_free), "unused_slots", U(kv->unused_slots),
                          "fragmentation", kv->fragmentation, "cow_copies", U(kv->cow_copies));
    json_object_set_new(o, "bytes_per_block", json_integer(U(kv->bytes_per_block)));
    json_object_set_new(o, "bytes_total",
                        json_integer(U((uint64_t)kv->blocks_total * kv->bytes_per_block)));
    json_object_set_new(o, "bytes_used",
                        json_integer(U((uint64_t)kv->blocks_used * kv->bytes_per_block)));
    return o;
}

static json_t *prefix_json(const wisp_kv_stats *kv)
{
    json_t *host = json_pack("{s:I, s:I, s:I, s:I}", "bytes_capacity", U(kv->host_bytes_capacity),
                             "bytes_used", U(kv->host_bytes_used), "blocks", U(kv->host_blocks),
                             "blocks_capacity", U(kv->host_blocks_capacity));
    json_t *o = json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:o}", "blocks_cached",
                          U(kv->blocks_cached_only), "queries", U(kv->prefix_queries), "hits",
                          U(kv->prefix_hits), "misses", U(kv->prefix_misses), "query_tokens",
                          U(kv->query_tokens), "hit_tokens", U(kv->hit_tokens), "evictions",
                          U(kv->evictions), "demotions", U(kv->demotions), "promotions",
                          U(kv->promotions), "host_tier", host);
    json_object_set_new(o, "disk_blocks_loaded", json_integer(U(kv->disk_blocks_loaded)));
    json_object_set_new(o, "disk_blocks_saved", json_integer(U(kv->disk_blocks_saved)));
    return o;
}

/* Means over the model's life: sequences and tokens per engine step, and
 * the wait from submit to first admission per request (0 before any). */
static void add_averages(json_t *sched, const wisp_server_stats *st)
{
    double steps = (double)st->steps, adm = (double)st->admitted;
    json_object_set_new(sched, "avg_batch_seqs",
                        json_real(steps > 0 ? (double)st->batch_seqs / steps : 0.0));
    json_object_set_new(sched, "avg_batch_tokens",
                        json_real(steps > 0 ? (double)st->batch_tokens / steps : 0.0));
    json_object_set_new(sched, "admitted", json_integer(U(st->admitted)));
    json_object_set_new(sched, "avg_queue_wait_ms",
                        json_real(adm > 0 ? st->queue_wait_ms / adm : 0.0));
}

/* The loaded model's memory by device (its published info carries it),
 * or null without a model. */
static json_t *memory_json(json_t *model)
{
    json_t *m = json_is_object(model) ? json_object_get(model, "memory") : NULL;
    return m ? json_incref(m) : json_null();
}

/* How the engine holds its weights: bytes it keeps resident itself (a
 * GPU's copies, layer-streaming arenas; a CPU engine computing from the
 * file mapping keeps none), what streaming copied, how long the copies
 * took and how much of that compute waited for, and the stages of a
 * placement. copy_overlap is the share of copy time hidden behind
 * compute, null before any copy. f16_as_bf16 says whether the loaded
 * model asked for BF16 compute (its published info) and how many weight
 * tensors the engine computes in BF16. */
static json_t *weights_json(const wisp_engine_stats *e, bool bf16_requested)
{
    bool streaming = e->weights_streaming;
    json_t *stages = json_array();
    for (int i = 0; i < e->n_stages && i < WISP_ENGINE_MAX_STAGES; i++) {
        const wisp_engine_stage_stats *g = &e->stages[i];
        json_array_append_new(stages,
                              json_pack("{s:s, s:i, s:i, s:I, s:I, s:I, s:b}", "device", g->device,
                                        "layer_begin", g->layer_begin, "layer_end", g->layer_end,
                                        "weight_bytes", U(g->weight_bytes), "kv_bytes",
                                        U(g->kv_bytes), "scratch_bytes", U(g->scratch_bytes),
                                        "streamed", g->streamed));
    }
    double overlap = 1.0 - e->weights_wait_ms / e->weights_copy_ms;
    json_t *o =
        json_pack("{s:b, s:I, s:I, s:f, s:f, s:o, s:o}", "streaming", streaming, "resident_bytes",
                  U(e->weight_bytes), "streamed_bytes", U(e->weights_streamed_bytes), "copy_ms",
                  e->weights_copy_ms, "wait_ms", e->weights_wait_ms, "copy_overlap",
                  e->weights_copy_ms > 0 ? json_real(overlap < 0 ? 0 : overlap) : json_null(),
                  "stages", stages);
    json_object_set_new(o, "f16_as_bf16",
                        json_pack("{s:b, s:i}", "requested", bf16_requested, "tensors",
                                  e->bf16_tensors));
    return o;
}

void wisp_m_status(wisp_job *job)
{
    wisp_server *s = wisp_job_server(job);
    wisp_dispatch_counts c;
    wisp_dispatch_counts_get(job->dispatch, &c);
    wisp_server_stats st;
    wisp_server_read_stats(s, &st);
    size_t queued = s->worker ? wisp_worker_queued(s->worker) : 0;

    json_t *requests =
        json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}",
                  /* this status request itself is in flight too */
                  "in_flight", U(c.in_flight), "queued", U(queued), "running", U(st.running),
                  "waiting", U(st.queued), "received", U(c.received), "completed", U(c.completed),
                  "failed", U(c.failed), "cancelled", U(c.cancelled));
    json_t *sched =
        json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "steps", U(st.steps), "submitted",
                  U(st.submitted), "finished", U(st.finished), "cancelled", U(st.cancelled),
                  "failed", U(st.failed), "preemptions", U(st.preemptions), "rejected_overloaded",
                  U(st.rejected_overloaded), "rejected_too_large", U(st.rejected_too_large));
    add_averages(sched, &st);
    json_t *tokens =
        json_pack("{s:I, s:I}", "prompt", U(st.prefill_tokens), "generated", U(st.decode_tokens));
    json_t *model = wisp_server_model_info(s);
    json_t *memory = memory_json(model);
    /* read before the result takes model over */
    const bool bf16_requested =
        json_is_true(json_object_get(json_object_get(model, "f16_as_bf16"), "requested"));
    json_t *result = json_pack("{s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:I, s:b}", "requests",
                               requests, "kv_cache", kv_json(&st.kv), "prefix_cache",
                               prefix_json(&st.kv), "scheduler", sched, "tokens", tokens, "model",
                               model, "memory", memory, "uptime_ms", U(wisp_now_ms() - s->start_ms),
                               "shutting_down", wisp_dispatch_shutting_down(job->dispatch));
    /* Lines the stderr reader was too slow for (log.h): a client that never
     * reads stderr loses logs, never answers. */
    json_object_set_new(result, "log", json_pack("{s:I}", "dropped_lines", U(wisp_log_dropped())));
    /* Where requests go: per-server counts and latency, live. */
    json_t *remote = wisp_server_remote_status(s);
    if (remote)
        json_object_set_new(result, "remote", remote);
    wisp_engine_stats es;
    wisp_server_read_engine_stats(s, &es);
    json_object_set_new(result, "weights", weights_json(&es, bf16_requested));
    if (!result) {
        wisp_job_error(job, WISP_RPC_INTERNAL_ERROR, "out of memory building the result", NULL);
        return;
    }
    wisp_job_reply(job, result);
}
