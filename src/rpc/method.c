/* method.c - the generic run step of a method table row: see method.h. */
#include "rpc/method.h"

#include <stdio.h>

#include "rpc/app.h"
#include "rpc/job_int.h"

void wisp_method_run(wisp_job *job)
{
    const wisp_method *m = job->method;
    if (wisp_job_cancelled(job)) {
        wisp_job_error(job, WISP_RPC_REQUEST_CANCELLED, NULL, NULL);
        return;
    }
    const wisp_app *app = job->app;
    if (app && app->ops->gate) {
        const char *msg = NULL;
        int code = app->ops->gate(app->ctx, m, &msg);
        if (code) {
            wisp_job_error(job, code, msg, NULL);
            return;
        }
    }
    if (!m->fn) {
        char msg[128];
        snprintf(msg, sizeof msg, "'%s' is not available in this build", m->name);
        wisp_job_error(job, WISP_RPC_NOT_AVAILABLE, msg, NULL);
        return;
    }
    m->fn(job);
}
