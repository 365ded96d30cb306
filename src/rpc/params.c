/* params.c - table-driven params checks: see params.h. */
#include "rpc/params.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static bool has_range(const wisp_param *p) { return p->min < p->max; }

static void range_text(const wisp_param *p, char *out, size_t cap)
{
    if (!has_range(p)) {
        out[0] = '\0';
        return;
    }
    /* %.17g prints integers exactly and keeps small reals readable. */
    if (p->max >= 9.0e15)
        snprintf(out, cap, " >= %.17g", p->min);
    else if (p->min <= -9.0e15)
        snprintf(out, cap, " <= %.17g", p->max);
    else
        snprintf(out, cap, " in [%.17g, %.17g]", p->min, p->max);
}

static bool in_range(const wisp_param *p, double v)
{
    return !has_range(p) || (v >= p->min && v <= p->max);
}

/* An integer element of an int array / prompt. */
static bool int_ok(const wisp_param *p, const json_t *v)
{
    return json_is_integer(v) && in_range(p, (double)json_integer_value(v));
}

static bool fail(char *msg, size_t cap, const char *name, const char *what, const char *range)
{
    snprintf(msg, cap, "'%s' must be %s%s", name, what, range);
    return false;
}

/* A choice "name:N" stands for "name:" and 1 to 3 digits ("cuda:0"). */
static bool choice_matches(const char *choice, const char *v)
{
    size_t n = strlen(choice);
    if (n < 2 || strcmp(choice + n - 2, ":N") != 0)
        return strcmp(choice, v) == 0;
    if (strncmp(v, choice, n - 1) != 0)
        return false;
    size_t digits = strspn(v + n - 1, "0123456789");
    return digits >= 1 && digits <= 3 && v[n - 1 + digits] == '\0';
}

static bool check_field(const wisp_param *p, const json_t *v, char *msg, size_t cap)
{
    char range[96];
    range_text(p, range, sizeof range);
    switch (p->type) {
    case WISP_PT_STRING:
        if (!json_is_string(v))
            return fail(msg, cap, p->name, "a string", "");
        if (p->choices) {
            for (const char *const *c = p->choices; *c; c++)
                if (choice_matches(*c, json_string_value(v)))
                    return true;
            char list[160] = "";
            for (const char *const *c = p->choices; *c; c++) {
                size_t n = strlen(list);
                snprintf(list + n, sizeof list - n, "%s\"%s\"", n ? ", " : "", *c);
            }
            return fail(msg, cap, p->name, "one of ", list);
        }
        return true;
    case WISP_PT_INT:
        if (!int_ok(p, v))
            return fail(msg, cap, p->name, "an integer", range);
        return true;
    case WISP_PT_NUMBER:
        if (!json_is_number(v) || !isfinite(json_number_value(v)) ||
            !in_range(p, json_number_value(v)))
            return fail(msg, cap, p->name, "a number", range);
        return true;
    case WISP_PT_BOOL:
        if (!json_is_boolean(v))
            return fail(msg, cap, p->name, "true or false", "");
        return true;
    case WISP_PT_PROMPT:
        if (json_is_string(v))
            return true;
        if (!json_is_array(v))
            return fail(msg, cap, p->name, "a string or an array of token ids", "");
        __attribute__((fallthrough)); /* an array of token ids */
    case WISP_PT_INT_ARRAY: {
        if (!json_is_array(v))
            return fail(msg, cap, p->name, "an array of integers", range);
        size_t i;
        const json_t *e;
        json_array_foreach(v, i, e)
        {
            if (!int_ok(p, e)) {
                char name[96];
                snprintf(name, sizeof name, "%s[%zu]", p->name, i);
                return fail(msg, cap, name, "an integer", range);
            }
        }
        return true;
    }
    case WISP_PT_STRING_ARRAY: {
        if (!json_is_array(v))
            return fail(msg, cap, p->name, "an array of strings", "");
        size_t i;
        const json_t *e;
        json_array_foreach(v, i, e)
        {
            if (!json_is_string(e)) {
                char name[96];
                snprintf(name, sizeof name, "%s[%zu]", p->name, i);
                return fail(msg, cap, name, "a string", "");
            }
        }
        return true;
    }
    case WISP_PT_ID:
        if (!json_is_string(v) && !json_is_number(v))
            return fail(msg, cap, p->name, "a string or a number", "");
        return true;
    case WISP_PT_OBJECT:
        if (!json_is_object(v))
            return fail(msg, cap, p->name, "an object", "");
        return true;
    case WISP_PT_ANY: return true;
    case WISP_PT_LOGIT_BIAS: {
        if (!json_is_array(v))
            return fail(msg, cap, p->name, "an array of [token, bias] pairs", "");
        size_t i;
        const json_t *e;
        json_array_foreach(v, i, e)
        {
            const json_t *b = json_array_get(e, 1);
            if (!json_is_array(e) || json_array_size(e) != 2 || !int_ok(p, json_array_get(e, 0)) ||
                !((json_is_number(b) && isfinite(json_number_value(b))) || json_is_false(b))) {
                char name[96];
                snprintf(name, sizeof name, "%s[%zu]", p->name, i);
                return fail(msg, cap, name, "[token id, number or false]", range);
            }
        }
        return true;
    }
    case WISP_PT_CHUNKS: {
        if (!json_is_array(v))
            return fail(msg, cap, p->name, "an array of {filename, text} objects", "");
        size_t i;
        const json_t *e;
        json_array_foreach(v, i, e)
        {
            const json_t *fn = json_object_get(e, "filename");
            bool ok = json_is_object(e) && json_is_string(json_object_get(e, "text")) &&
                      (!fn || json_is_string(fn)) && json_object_size(e) == (size_t)(fn ? 2 : 1);
            if (!ok) {
                char name[96];
                snprintf(name, sizeof name, "%s[%zu]", p->name, i);
                return fail(msg, cap, name, "{\"filename\": string, \"text\": string}", "");
            }
        }
        return true;
    }
    }
    return true;
}

bool wisp_params_check(const wisp_param *fields, bool open, const json_t *params, char *msg,
                       size_t cap)
{
    if (!json_is_object(params)) {
        snprintf(msg, cap, "params must be an object (named parameters)");
        return false;
    }
    for (const wisp_param *p = fields; p && p->name; p++) {
        const json_t *v = json_object_get(params, p->name);
        if (!v) {
            if (p->required) {
                snprintf(msg, cap, "missing required field '%s'", p->name);
                return false;
            }
            continue;
        }
        if (!check_field(p, v, msg, cap))
            return false;
    }
    if (open)
        return true;
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)params, key, v)
    {
        const wisp_param *p = fields;
        while (p && p->name && strcmp(p->name, key) != 0)
            p++;
        if (!p || !p->name) {
            snprintf(msg, cap, "unknown field '%.64s'", key);
            return false;
        }
    }
    return true;
}
