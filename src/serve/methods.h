/*
 * methods.h - wisp's method table and its handlers (private to src/serve).
 * One file per concern: methods_lifecycle.c, methods_status.c,
 * methods_model.c, methods_text.c, methods_gen.c, methods_infill.c.
 */
#ifndef WISP_SERVE_METHODS_H
#define WISP_SERVE_METHODS_H

#include "rpc/method.h"

/* methods.c: the table */
/* The row named name, or NULL. */
const wisp_method *wisp_method_find(const char *name);
/* The whole table (n rows). */
const wisp_method *wisp_methods(size_t *n);
/* app.h's gate (ctx: the wisp_server): -32001 for a WISP_M_NEEDS_MODEL row
 * while no model is loaded. */
int wisp_serve_gate(void *ctx, const wisp_method *m, const char **msg);

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
int wisp_serve_startup_load(struct wisp_server *s, const char *path, wisp_err *err);
void wisp_m_model_unload(wisp_job *job);
/* Engine thread: reopens an idle-unloaded model (s->idle_unloaded) with
 * the options it was loaded with. Returns 0, or <0 with err set. */
int wisp_serve_reload(struct wisp_server *s, wisp_err *err);
/* Engine thread: a model request arrived (restarts the idle timer). */
void wisp_serve_touch(struct wisp_server *s);
/* The engine thread's step hook and exit hook (ud: the wisp_server). */
bool wisp_serve_step(void *ud);
/* --remote at startup (--model, if any, is the local tokenizer). */
int wisp_serve_startup_remote(struct wisp_server *s, wisp_err *err);
/* Engine thread: false (err set, WISP_E_MODEL_CHANGED) once the loaded
 * model's file changed on disk; the model's requests are failed then. */
bool wisp_model_check_file(struct wisp_server *s, wisp_err *err);
void wisp_serve_teardown(void *ud);

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
