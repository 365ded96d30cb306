/*
 * hf_tokenizer_export.h - a GGUF vocabulary as a Hugging Face
 * tokenizer.json (used by the synthesizer; see hf_tokenizer_export.c).
 */
#ifndef WISP_HF_TOKENIZER_EXPORT_H
#define WISP_HF_TOKENIZER_EXPORT_H

#include "common/err.h"
#include "model/gguf.h"

/* Writes tokenizer.json for the tokenizer in g to path. Returns 0, or
 * WISP_E_UNSUPPORTED for a tokenizer model or pre-tokenizer it cannot
 * express, WISP_E_FORMAT without a tokenizer, WISP_E_IO. */
int wisp_hf_tokenizer_export(const wisp_gguf *g, const char *path, wisp_err *err);

#endif
