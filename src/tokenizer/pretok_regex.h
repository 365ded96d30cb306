/*
 * pretok_regex.h - the pre-tokenizer regular expressions of each byte-level
 * BPE family, as llama.cpp lists them (llama-vocab.cpp) and as the models'
 * tokenizer.json files define them.
 *
 * Several families use a sequence of expressions: each one splits every
 * fragment left by the previous one into its matches and the text between
 * them (llama.cpp's unicode_regex_split). Where llama.cpp rewrote an
 * original expression for std::regex, the original is used when PCRE2
 * handles it the same way (the GPT-2 expression keeps its final "\s+").
 * Included once, by pretok.c.
 */
#ifndef WISP_PRETOK_REGEX_H
#define WISP_PRETOK_REGEX_H

#define RX_GPT2 "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"
#define RX_LLAMA3                                                                              \
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|" \
    "\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define RX_QWEN2                                                                               \
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|" \
    "\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define RX_CJK "[\xe4\xb8\x80-\xe9\xbe\xa5\xe0\xa0\x80-\xe4\xb8\x80\xea\xb0\x80-\xed\x9f\xbf]+"
#define RX_PORO \
    " ?[^(\\s|.,!?\xe2\x80\xa6\xe3\x80\x82\xef\xbc\x8c\xe3\x80\x81\xe0\xa5\xa4\xdb\x94\xd8\x8c)]+"

/* Deepseek LLM's letter class, spelled as code point ranges. */
#define RX_DSLLM_LETTERS                                                                        \
    "\\s?[A-Za-z\\x{b5}\\x{c0}-\\x{d6}\\x{d8}-\\x{f6}\\x{f8}-\\x{1ba}\\x{1bc}-\\x{1bf}"         \
    "\\x{1c4}-\\x{293}\\x{295}-\\x{2af}\\x{370}-\\x{373}\\x{376}\\x{377}\\x{37b}-\\x{37d}"      \
    "\\x{37f}\\x{386}\\x{388}-\\x{38a}\\x{38c}\\x{38e}-\\x{3a1}\\x{3a3}-\\x{3f5}"               \
    "\\x{3f7}-\\x{481}\\x{48a}-\\x{52f}\\x{531}-\\x{556}\\x{10a0}-\\x{10c5}\\x{13a0}-\\x{13f5}" \
    "\\x{13f8}-\\x{13fd}\\x{1c90}-\\x{1cba}\\x{1cbd}-\\x{1cbf}\\x{1d00}-\\x{1d2b}"              \
    "\\x{1d6b}-\\x{1d77}\\x{1d79}-\\x{1d9a}\\x{1e00}-\\x{1f15}\\x{1f18}-\\x{1f1d}"              \
    "\\x{1f20}-\\x{1f45}\\x{1f48}-\\x{1f4d}\\x{1f50}-\\x{1f57}\\x{1f59}\\x{1f5b}\\x{1f5d}"      \
    "\\x{1f5f}-\\x{1f7d}\\x{1f80}-\\x{1fb4}\\x{1fb6}-\\x{1fbc}\\x{1fbe}\\x{1fc2}-\\x{1fc4}"     \
    "\\x{1fc6}-\\x{1fcc}\\x{1fd0}-\\x{1fd3}\\x{1fd6}-\\x{1fdb}\\x{1fe0}-\\x{1fec}"              \
    "\\x{1ff2}-\\x{1ff4}\\x{1ff6}-\\x{1ffc}\\x{2102}\\x{2107}\\x{210a}-\\x{2113}\\x{2115}"      \
    "\\x{2119}-\\x{211d}\\x{2124}\\x{2126}\\x{2128}\\x{212a}-\\x{212d}\\x{212f}-\\x{2134}"      \
    "\\x{2139}\\x{213c}-\\x{213f}\\x{2145}-\\x{2149}\\x{214e}\\x{2183}\\x{2184}"                \
    "\\x{2c00}-\\x{2c7b}\\x{2c7e}-\\x{2ce4}\\x{2ceb}-\\x{2cee}\\x{2cf2}\\x{2cf3}"               \
    "\\x{a640}-\\x{a66d}\\x{a680}-\\x{a69b}\\x{a722}-\\x{a76f}\\x{a771}-\\x{a787}"              \
    "\\x{a78b}-\\x{a78e}\\x{ab70}-\\x{abbf}\\x{fb00}-\\x{fb06}\\x{fb13}-\\x{fb17}"              \
    "\\x{ff21}-\\x{ff3a}\\x{ff41}-\\x{ff5a}\\x{10400}-\\x{1044f}\\x{104b0}-\\x{104d3}"          \
    "\\x{104d8}-\\x{104fb}\\x{10c80}-\\x{10cb2}\\x{10cc0}-\\x{10cf2}\\x{118a0}-\\x{118df}"      \
    "\\x{1e900}-\\x{1e943}]+"
#define RX_DSLLM_PUNCT \
    "\\s?[!-/:-~\\x{ff01}-\\x{ff0f}\\x{ff1a}-\\x{ff5e}\\x{2018}-\\x{201f}\\x{3000}-\\x{3002}]+"

#define RX_TEKKEN                                                                  \
    "[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}])([^a-z]))*((?=[\\p{L}])([^A-Z]))+|"        \
    "[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}])([^a-z]))+((?=[\\p{L}])([^A-Z]))*|\\p{N}|" \
    " ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"

#define RX_DS3                                                                           \
    "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\\r\\n\\p{L}\\p{P}\\p{S}]?" \
    "[\\p{L}\\p{M}]+| ?[\\p{P}\\p{S}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"

enum {
    PRE_CLEAN = 1,
    PRE_IGNORE_MERGES = 2,
    PRE_ADD_BOS = 4,
    PRE_NO_BOS = 8
};

typedef struct pre_def {
    const char *names[14]; /* NULL-terminated aliases */
    unsigned flags;
    const char *rx[7]; /* NULL-terminated sequence */
} pre_def;

static const pre_def k_pre[] = {
    {{"default", NULL},
     PRE_CLEAN,
     {"[\\p{P}\\$\\+<=>\\^~\\|]+", RX_GPT2, "\\p{N}+", "[0-9][0-9][0-9]", NULL}},
    {{"llama3", "llama-v3", "llama-bpe", "falcon3", NULL},
     PRE_CLEAN | PRE_IGNORE_MERGES | PRE_ADD_BOS,
     {RX_LLAMA3, NULL}},
    {{"dbrx", "smaug-bpe", NULL}, PRE_CLEAN, {RX_LLAMA3, NULL}},
    {{"deepseek-llm", NULL},
     0,
     {"[\\r\\n]", RX_DSLLM_LETTERS, RX_DSLLM_PUNCT, "\\s+$", RX_CJK, "\\p{N}+", NULL}},
    {{"deepseek-coder", NULL},
     0,
     {"[\\r\\n]", "\\s?\\p{L}+", "\\s?\\p{P}+", RX_CJK, "\\p{N}", NULL}},
    {{"deepseek-v3", NULL},
     0,
     {"\\p{N}{1,3}",
      "[\xe4\xb8\x80-\xe9\xbe\xa5\xe3\x81\x80-\xe3\x82\x9f\xe3\x82\xa0-\xe3\x83\xbf]+", RX_DS3,
      NULL}},
    {{"falcon", NULL}, PRE_CLEAN, {"[\\p{P}\\$\\+<=>\\^~\\|`]+", RX_GPT2, "[0-9][0-9][0-9]", NULL}},
    {{"gpt-2", "mpt", "olmo", "jais", "phi-2", "jina-es", "jina-de", "gigachat", "jina-v1-en",
      "jina-v2-es", "jina-v2-de", "jina-v2-code", "roberta-bpe", NULL},
     PRE_CLEAN,
     {RX_GPT2, NULL}},
    {{"starcoder", "refact", "codeshell", "exaone", "minerva-7b", NULL},
     PRE_CLEAN,
     {"\\p{N}", RX_GPT2, NULL}},
    {{"command-r", "smollm", NULL}, 0, {"\\p{N}", RX_GPT2, NULL}},
    {{"qwen2", NULL}, 0, {RX_QWEN2, NULL}},
    {{"stablelm2", "megrez", NULL}, PRE_CLEAN, {RX_QWEN2, NULL}},
    {{"poro-chat", NULL}, 0, {RX_PORO, NULL}},
    {{"bloom", "gpt3-finnish", NULL}, PRE_CLEAN, {RX_PORO, NULL}},
    {{"chatglm-bpe", NULL}, PRE_CLEAN | PRE_NO_BOS, {RX_LLAMA3, NULL}},
    {{"viking", NULL}, 0, {RX_PORO, "\\p{N}", NULL}},
    {{"tekken", NULL}, PRE_IGNORE_MERGES | PRE_ADD_BOS, {RX_TEKKEN, NULL}},
    {{"chameleon", NULL},
     PRE_ADD_BOS,
     {"<sentinel:[0-9]+>", "(IMGIMG)((A|B|C|D|E|F|G|H|I){1,4})Z", "([\\t\\n]|    |  )", "\\p{N}",
      "[\\p{P}!-/:-@\\[-`{-~]", RX_GPT2, NULL}},
};

#endif
