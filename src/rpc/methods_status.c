/*
 * methods_status.c - status: what the server is doing right now.
 *
 * Runs on the loop thread so it answers at once even while the engine is
 * busy: request counts come from the dispatcher and the worker, engine
 * numbers from the snapshot the engine side publishes (server.h), which is
 * all zeros while no model is loaded, since no KV cache exists then.
 */
#include "rpc/dispatch.h"
#include "rpc/job_int.h"
#include "rpc/methods.h"
#include "rpc/server.h"
#include "rpc/worker.h"

#define U(x) ((json_int_t)(x))

void wisp_m_status(wisp_job *job)
{
    wisp_server *s = wisp_job_server(job);
    wisp_dispatch_counts c;
    wisp_dispatch_counts_get(job->dispatch, &c);
    wisp_engine_stats st;
    wisp_server_read_stats(s, &st);
    size_t queued = s->worker ? wisp_worker_queued(s->worker) : 0;

    json_t *requests = json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}",
                                 /* this status request itself is in flight too */
                                 "in_flight", U(c.in_flight), "queued", U(queued), "running",
                                 U(st.running), "waiting", U(st.waiting), "received",
                                 U(c.received), "completed", U(c.completed), "failed",
                                 U(c.failed), "cancelled", U(c.cancelled));
    json_t *kv = json_pack("{s:I, s:I, s:I, s:I, s:I}", "blocks_total", U(st.kv_blocks_total),
                           "blocks_used", U(st.kv_blocks_used), "block_size",
                           U(st.kv_block_size), "bytes_total", U(st.kv_bytes_total), "bytes_used",
                           U(st.kv_bytes_used));
    json_t *prefix = json_pack("{s:I, s:I, s:I, s:I}", "blocks_cached",
                               U(st.prefix_blocks_cached), "hits", U(st.prefix_hits), "misses",
                               U(st.prefix_misses), "host_blocks", U(st.prefix_host_blocks));
    json_t *tokens = json_pack("{s:I, s:I}", "prompt", U(st.tokens_prompt), "generated",
                               U(st.tokens_generated));
    json_t *result = json_pack("{s:o, s:o, s:o, s:o, s:o, s:I, s:b}", "requests", requests,
                               "kv_cache", kv, "prefix_cache", prefix, "tokens", tokens, "model",
                               wisp_server_model_info(s), "uptime_ms",
                               U(wisp_now_ms() - s->start_ms), "shutting_down",
                               wisp_dispatch_shutting_down(job->dispatch));
    if (!result) {
        wisp_job_error(job, WISP_RPC_INTERNAL_ERROR, "out of memory building the result", NULL);
        return;
    }
    wisp_job_reply(job, result);
}
