/*
 * methods_model.c - model/load, model/plan, model/info.
 *
 * These run on the engine thread, which owns the loaded model. The loader
 * is not part of this build yet, so model/load and model/plan check what
 * they can (the path) and answer -32002 saying why no model can be loaded;
 * each handler is self-contained so the loader drops in here.
 */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "rpc/methods.h"
#include "rpc/server.h"

/* Why path cannot be loaded: it cannot be opened, or this build has no
 * loader. Always fails (returns <0 with err set). */
static int unloadable(const char *path, wisp_err *err)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return wisp_err_set(err, WISP_E_NOT_FOUND, "cannot open %s: %s", path, strerror(errno));
    return wisp_err_set(err, WISP_E_UNSUPPORTED,
                        "model loading is not available in this build (%s)", path);
}

static void answer_unloadable(wisp_job *job)
{
    wisp_err err = {0};
    unloadable(json_string_value(json_object_get(wisp_job_params(job), "path")), &err);
    wisp_job_error(job, WISP_RPC_MODEL_LOAD_FAILED, err.msg, NULL);
}

int wisp_model_startup_load(wisp_server *s, const char *path, wisp_err *err)
{
    (void)s;
    return unloadable(path, err);
}

void wisp_m_model_load(wisp_job *job) { answer_unloadable(job); }

void wisp_m_model_plan(wisp_job *job) { answer_unloadable(job); }

void wisp_m_model_info(wisp_job *job)
{
    /* Reached only with a model loaded (the table flags NEEDS_MODEL). */
    wisp_job_reply(job, wisp_server_model_info(wisp_job_server(job)));
}
