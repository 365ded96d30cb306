/*
 * job.h - one request, as its handler sees it.
 *
 * The dispatcher turns every valid request into a wisp_job and calls the
 * method's handler with it, on the loop thread or, for methods flagged
 * WISP_M_ENGINE, on the engine thread. A handler answers the job exactly
 * once, with wisp_job_reply() or wisp_job_error(), either before it returns
 * or later: a scheduler keeps many jobs alive on the engine thread and
 * answers each when its sequence finishes (see worker.h's step hook).
 *
 * After the answer the job belongs to the dispatcher again and may be freed
 * at any moment: the handler must not touch it any more. Until then every
 * function here may be called from the thread that runs the handler.
 */
#ifndef WISP_RPC_JOB_H
#define WISP_RPC_JOB_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "rpc/codes.h"

typedef struct wisp_job wisp_job;

/* The request's params: an object (empty when the request had none),
 * already checked against the method's parameter table. Borrowed. */
const json_t *wisp_job_params(const wisp_job *job);
/* The request's id (a string or a number). Borrowed. */
const json_t *wisp_job_id(const wisp_job *job);
/* The method name ("generate"). */
const char *wisp_job_method(const wisp_job *job);
/* The application's context (app.h's wisp_app.ctx): its shared state. */
void *wisp_job_app(wisp_job *job);

/* True once $/cancelRequest named this job, or shutdown/exit cancelled it.
 * A handler that keeps the job polls this between steps and answers with
 * WISP_RPC_REQUEST_CANCELLED (data: the partial text and tokens). */
bool wisp_job_cancelled(const wisp_job *job);

/* A slot for the handler's own per-request state (a scheduler's sequence). */
void wisp_job_set_user(wisp_job *job, void *user);
void *wisp_job_user(const wisp_job *job);

/* Sends a notification (params stolen; may be NULL). On the engine thread
 * this blocks while the output queue is above its high-water mark, so a
 * client that stops reading pauses generation instead of growing memory.
 * Returns 0; WISP_E_CANCELLED (nothing sent) when the job was cancelled,
 * so the caller answers it; WISP_E_SHUTDOWN when the server is stopping or
 * stdout is gone. */
int wisp_job_notify(wisp_job *job, const char *method, json_t *params);

/* $/stream {id, index, text, tokens[, probs]}: one emitted piece of a
 * streaming request; text is len bytes (invalid UTF-8 becomes U+FFFD),
 * probs (stolen) the pieces' per-token probabilities or NULL. When the
 * request named an LSP partialResultToken (or workDoneToken), the piece
 * goes out as $/progress {token, value: {index, text, tokens[, probs]}}
 * instead. The one encoder of both. Same returns as wisp_job_notify. */
int wisp_job_stream(wisp_job *job, int64_t index, const char *text, size_t len,
                    const int32_t *tokens, size_t n_tokens, json_t *probs);

/* $/progress {token: the request's id, value: {kind, message?, percentage?}}
 * for long work (model loading). kind is "begin", "report" or "end";
 * message may be NULL; percentage < 0 leaves it out. */
int wisp_job_progress(wisp_job *job, const char *kind, const char *message, double percentage);

/* Answers with result (stolen; NULL means JSON null). */
void wisp_job_reply(wisp_job *job, json_t *result);

/* Answers with an error. rpc_code is a wisp_rpc_code; message NULL takes the
 * code's default; data (stolen) may be NULL. */
void wisp_job_error(wisp_job *job, int rpc_code, const char *message, json_t *data);

/* Answers with an internal error value: the code maps through
 * wisp_rpc_code_from_wisp() and err->msg becomes the message. */
void wisp_job_fail(wisp_job *job, const wisp_err *err);

#endif
