/*
 * methods_lifecycle.c - initialize, shutdown, exit, $/cancelRequest.
 *
 * The lifecycle follows LSP so editor clients work unchanged: initialize is
 * optional here (defaults apply, so a one-line shell call works), shutdown
 * cancels and answers everything, then answers null; exit ends the process
 * with 0 after shutdown and 1 otherwise.
 */
#include <string.h>

#include "common/log.h"
#include "rpc/dispatch.h"
#include "rpc/job_int.h"
#include "serve/methods.h"
#include "serve/server.h"
#include "serve/version.h"

static json_t *method_names(unsigned want_notification)
{
    json_t *a = json_array();
    size_t n;
    const wisp_method *m = wisp_methods(&n);
    for (size_t i = 0; i < n; i++)
        if ((m[i].flags & WISP_M_NOTIFICATION) == want_notification)
            json_array_append_new(a, json_string(m[i].name));
    return a;
}

void wisp_m_initialize(wisp_job *job)
{
    wisp_server *s = wisp_job_server(job);
    const json_t *client = json_object_get(wisp_job_params(job), "clientInfo");
    const json_t *cname = json_object_get(client, "name");
    if (json_is_string(cname))
        WISP_LOGI("client: %.100s", json_string_value(cname));
    /* LSP: when the process named here is gone, the server exits. null (or
     * anything not a positive integer) names none. */
    const json_t *pid = json_object_get(wisp_job_params(job), "processId");
    if (json_is_integer(pid) && json_integer_value(pid) > 0 &&
        json_integer_value(pid) <= 0x7fffffff)
        wisp_dispatch_set_client_pid(job->dispatch, (long)json_integer_value(pid));

    json_t *devices = json_array();
    for (int i = 0; i < s->n_devices; i++)
        json_array_append_new(devices, json_pack("{s:s, s:s, s:I}", "kind", s->devices[i].kind,
                                                 "name", s->devices[i].name, "memory_bytes",
                                                 (json_int_t)s->devices[i].memory_bytes));
    json_t *caps =
        json_pack("{s:[s,s], s:s, s:o, s:o, s:o, s:I}", "framings", "ndjson", "lsp", "framing",
                  wisp_framing_name(wisp_dispatch_framing(job->dispatch)), "methods",
                  method_names(0), "notifications", method_names(WISP_M_NOTIFICATION), "devices",
                  devices, "max_message_bytes", (json_int_t)s->opts->max_message_bytes);
    json_t *result = json_pack("{s:{s:s, s:s}, s:s, s:o, s:o}", "serverInfo", "name", "wisp",
                               "version", WISP_VERSION, "protocolVersion", WISP_PROTOCOL_VERSION,
                               "capabilities", caps, "model", wisp_server_model_info(s));
    if (!result) {
        wisp_job_error(job, WISP_RPC_INTERNAL_ERROR, "out of memory building the result", NULL);
        return;
    }
    wisp_job_reply(job, result);
}

void wisp_m_shutdown(wisp_job *job)
{
    WISP_LOGI("shutdown requested");
    /* The dispatcher answers this job (null) once every other request in
     * flight has been answered; cancelling them makes that quick. */
    wisp_dispatch_begin_shutdown(job->dispatch, job);
}

void wisp_n_exit(struct wisp_dispatch *d, const json_t *params)
{
    (void)params;
    int code = 0;
    wisp_dispatch_request_exit(d);
    wisp_dispatch_exit_requested(d, &code);
    WISP_LOGI("exit requested (exit code %d)", code);
    wisp_dispatch_cancel_all(d);
}

/* Every LSP client sends it after initialize's answer; it asks for nothing. */
void wisp_n_initialized(struct wisp_dispatch *d, const json_t *params)
{
    (void)d;
    (void)params;
    WISP_LOGD("client initialized");
}

void wisp_n_cancel_request(struct wisp_dispatch *d, const json_t *params)
{
    const json_t *id = json_object_get(params, "id");
    /* LSP: cancelling an unknown or finished request is not an error. */
    if (!wisp_dispatch_cancel(d, id))
        WISP_LOGD("$/cancelRequest: no request in flight with that id");
}
