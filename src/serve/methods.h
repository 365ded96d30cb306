/*
 * methods.h - the handlers of the method table (private to src/rpc).
 * One file per concern: methods_lifecycle.c, methods_status.c,
 * methods_model.c.
 */
#ifndef WISP_SERVE_METHODS_H
#define WISP_SERVE_METHODS_H

#include "rpc/method.h"

/* methods_lifecycle.c */
void wisp_m_initialize(wisp_job *job);
void wisp_m_shutdown(wisp_job *job);
void wisp_n_exit(struct wisp_dispatch *d, const json_t *params);
void wisp_n_initialized(struct wisp_dispatch *d, const json_t *params);
void wisp_n_cancel_request(struct wisp_dispatch *d, const json_t *params);

/* methods_status.c */
void wisp_m_status(wisp_job *job);

/* methods_model.c */
void wisp_m_model_load(wisp_job *job);
void wisp_m_model_plan(wisp_job *job);
void wisp_m_model_info(wisp_job *job);
/* Loads --model before the engine thread starts. Returns 0 or <0 with err. */
struct wisp_server;
int wisp_model_startup_load(struct wisp_server *s, const char *path, wisp_err *err);
void wisp_m_model_unload(wisp_job *job);
/* The engine thread's step hook and exit hook (ud: the wisp_server). */
bool wisp_model_step(void *ud);
/* Engine thread: false (err set, WISP_E_MODEL_CHANGED) once the loaded
 * model's file changed on disk; the model's requests are failed then. */
bool wisp_model_check_file(struct wisp_server *s, wisp_err *err);
void wisp_model_teardown(void *ud);

/* methods_text.c */
void wisp_m_tokenize(wisp_job *job);
void wisp_m_detokenize(wisp_job *job);

/* methods_gen.c */
void wisp_m_generate(wisp_job *job);
void wisp_m_evaluate(wisp_job *job);

/* methods_infill.c */
void wisp_m_infill(wisp_job *job);

/* methods_chat.c */
void wisp_m_chat_render(wisp_job *job);
void wisp_m_chat(wisp_job *job);

#endif
