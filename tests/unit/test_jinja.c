/*
 * test_jinja.c - the chat-template interpreter, construct by construct:
 * whitespace control as transformers configures jinja2, statements,
 * expressions, tests, filters, methods, globals, Python's printing of
 * values, errors naming the line, and the limits on untrusted templates.
 * Expected strings are what Python's jinja2 renders.
 */
#include "harness.h"

#include "chat/jinja.h"

static wisp_jinja_limits small_limits(void)
{
    wisp_jinja_limits l;
    wisp_jinja_limits_default(&l);
    return l;
}

static wisp_jv *message(wisp_jinja_env *env, const char *role, const char *content)
{
    wisp_jv *m = wisp_jv_dict(env);
    wisp_jv_dict_set(env, m, "role", 4, wisp_jv_str(env, role, strlen(role)));
    wisp_jv_dict_set(env, m, "content", 7, wisp_jv_str(env, content, strlen(content)));
    return m;
}

/* Renders src with a small conversation; returns the text (static) or
 * "ERR:<message>". */
static const char *render_with(const char *src, const wisp_jinja_limits *lim)
{
    static char result[8192];
    wisp_jinja_env *env = wisp_jinja_env_new(lim);
    wisp_jv *msgs = wisp_jv_list(env);
    wisp_jv_list_push(env, msgs, message(env, "system", "Be brief."));
    wisp_jv_list_push(env, msgs, message(env, "user", "Hi \xc3\xa9t\xc3\xa9"));
    wisp_jv_list_push(env, msgs, message(env, "assistant", "Hello!"));
    wisp_jinja_env_set(env, "messages", msgs);
    wisp_jinja_env_set(env, "bos_token", wisp_jv_str(env, "<s>", 3));
    wisp_jinja_env_set(env, "flag", wisp_jv_bool(env, true));
    wisp_jinja_env_set(env, "n", wisp_jv_int(env, 7));
    wisp_jinja_env_set(env, "f", wisp_jv_float(env, 2.5));
    wisp_jinja_env_set(env, "nothing", wisp_jv_none(env));
    wisp_jinja_env_set_now(env, 0);
    wisp_buf out = WISP_BUF_INIT;
    wisp_err err = {0};
    int rc = wisp_jinja_render(env, src, strlen(src), &out, &err);
    if (rc)
        snprintf(result, sizeof result, "ERR:%s", err.msg);
    else
        snprintf(result, sizeof result, "%.*s", (int)out.len, out.data ? out.data : "");
    wisp_buf_free(&out);
    wisp_jinja_env_free(env);
    return result;
}

static const char *render(const char *src)
{
    wisp_jinja_limits l = small_limits();
    return render_with(src, &l);
}

#define RENDERS(src, want) CHECK_EQ_STR(render(src), want)
#define FAILS_WITH(src, part)                                                                      \
    do {                                                                                           \
        const char *got_ = render(src);                                                            \
        if (strncmp(got_, "ERR:", 4) != 0 || !strstr(got_, part)) {                                \
            fprintf(stderr, "  %s:%d: %s -> %s (wanted an error with '%s')\n", __FILE__, __LINE__, \
                    src, got_, part);                                                              \
            wisp_test_failed_checks++;                                                             \
        }                                                                                          \
    } while (0)

TEST(jinja_text_and_output)
{
    RENDERS("plain", "plain");
    RENDERS("{{ 'a' }}{{ \"b\" }}", "ab");
    RENDERS("{# comment #}x", "x");
    RENDERS("line\n", "line"); /* keep_trailing_newline off */
    RENDERS("a\r\nb", "a\nb");
}

TEST(jinja_whitespace_control)
{
    RENDERS("{% if true %}\nyes\n{% endif %}\nafter", "yes\nafter"); /* trim_blocks */
    RENDERS("x\n    {% if true %}y{% endif %}", "x\ny");             /* lstrip_blocks */
    RENDERS("x\n    {{ 'y' }}", "x\n    y");                         /* not for {{ */
    RENDERS("a   {%- if true -%}   b   {%- endif %}", "ab");
    RENDERS("a \n {{- 'b' -}} \n c", "abc");
    RENDERS("x\n    {%+ if true %}y{% endif %}", "x\n    y");
    RENDERS("{% if true +%}\ny{% endif %}", "\ny");
    RENDERS("  {# c #}\nz", "z");
}

TEST(jinja_if_for_set)
{
    RENDERS("{% if n > 8 %}a{% elif n > 6 %}b{% else %}c{% endif %}", "b");
    RENDERS("{% for m in messages %}{{ loop.index0 }}{{ loop.index }}{{ loop.first }}"
            "{{ loop.last }}{{ loop.length }}|{% endfor %}",
            "01TrueFalse3|12FalseFalse3|23FalseTrue3|");
    RENDERS("{% for m in messages if m.role != 'system' %}{{ loop.index }}{{ m.role }}{% endfor %}",
            "1user2assistant");
    RENDERS("{% for x in [] %}a{% else %}empty{% endfor %}", "empty");
    RENDERS("{% for k, v in {'a': 1, 'b': 2}.items() %}{{ k }}={{ v }};{% endfor %}", "a=1;b=2;");
    RENDERS("{% for x in range(5) %}{% if x == 1 %}{% continue %}{% endif %}{% if x == 3 %}"
            "{% break %}{% endif %}{{ x }}{% endfor %}",
            "02");
    RENDERS("{% for m in messages %}{% if not loop.first %}{{ loop.previtem.role }}>{% endif %}"
            "{% endfor %}",
            "system>user>");
    RENDERS("{% set x = 1 %}{% for i in range(3) %}{% set x = x + i %}{% endfor %}{{ x }}", "1");
    RENDERS("{% set ns = namespace(x=1) %}{% for i in range(3) %}{% set ns.x = ns.x + i %}"
            "{% endfor %}{{ ns.x }}",
            "4");
    RENDERS("{% set a, b = 1, 2 %}{{ b }}{{ a }}", "21");
    RENDERS("{% set block %}in {{ n }}{% endset %}[{{ block }}]", "[in 7]");
    RENDERS("{% for c in 'h\xc3\xa9' %}<{{ c }}>{% endfor %}", "<h><\xc3\xa9>");
}

TEST(jinja_macro_and_call)
{
    RENDERS("{% macro m(a, b='B') %}{{ a }}-{{ b }}{% endmacro %}{{ m(1) }}|{{ m(1, b=2) }}",
            "1-B|1-2");
    RENDERS("{% macro w() %}<{{ caller() }}>{% endmacro %}{% call w() %}in{% endcall %}", "<in>");
    RENDERS("{% macro r(n) %}{% if n > 0 %}{{ n }}{{ r(n - 1) }}{% endif %}{% endmacro %}{{ r(3) "
            "}}",
            "321");
    RENDERS("{% filter upper %}abc{% endfilter %}", "ABC");
}

TEST(jinja_python_values)
{
    RENDERS("{{ true }} {{ false }} {{ none }} {{ nothing }}", "True False None None");
    RENDERS("{{ 1.0 }} {{ 0.1 + 0.2 }} {{ 1e16 }} {{ 1.5e-5 }} {{ 10 / 4 }} {{ 7 // 2 }}",
            "1.0 0.30000000000000004 1e+16 1.5e-05 2.5 3");
    RENDERS("{{ -7 // 2 }} {{ -7 % 3 }} {{ 2 ** 10 }} {{ f * 2 }}", "-4 2 1024 5.0");
    RENDERS("{{ [1, 'a', none, true] }}", "[1, 'a', None, True]");
    RENDERS("{{ {'k': \"it's\", 'n': [1.5]} }}", "{'k': \"it's\", 'n': [1.5]}");
    RENDERS("{{ undefined_thing }}|{{ messages[0].nope }}", "|");
    RENDERS("{{ 'a' ~ 1 ~ none }}", "a1None");
    RENDERS("{{ 'ab' * 3 }}", "ababab");
}

TEST(jinja_expressions)
{
    RENDERS("{{ 'yes' if flag else 'no' }}{{ 'x' if not flag }}", "yes");
    RENDERS("{{ 1 < 2 < 3 }} {{ 3 in [1, 3] }} {{ 'b' in 'abc' }} {{ 'k' not in {'k': 1} }}",
            "True True True False");
    RENDERS("{{ nothing or 'd' }} {{ 0 and 1 }} {{ not [] }}", "d 0 True");
    RENDERS("{{ 'hello'[::-1] }} {{ 'h\xc3\xa9llo'[1:3] }} {{ [1,2,3,4][-2:] }} {{ [1,2,3][::-2] "
            "}}",
            "olleh \xc3\xa9l [3, 4] [3, 1]");
    RENDERS("{{ messages[-1]['content'] }} {{ messages[0].role }}", "Hello! system");
    RENDERS("{{ (1, 2)[1] }} {{ [1, [2, 3]][1][0] }}", "2 2");
}

TEST(jinja_tuple_arithmetic)
{
    RENDERS("{{ (1, 2) * 2 }} {{ 2 * (1,) }} {{ (1, 2) + (3,) }} {{ () }} {{ () + (1,) }}",
            "(1, 2, 1, 2) (1, 1) (1, 2, 3) () (1,)");
    RENDERS("{{ ((1, 2) * 2)[1:] }} {{ [1] * 2 + [3] }}", "(2, 1, 2) [1, 1, 3]");
    FAILS_WITH("{{ (1, 2) + [3] }}", "can only concatenate tuple (not \"list\") to tuple");
    FAILS_WITH("{{ [3] + (1, 2) }}", "can only concatenate list (not \"tuple\") to list");
}

TEST(jinja_percent_format)
{
    RENDERS("{{ \"%s-%d\" % (\"a\", 3) }} {{ \"%05.2f\" % f }} {{ \"%d%%\" % (n * 10) }}",
            "a-3 02.50 70%");
    RENDERS("{{ \"%(role)s: %(content)s\" % messages[0] }}", "system: Be brief.");
    RENDERS("{{ \"%(a)s %(b)d\" % {\"a\": \"x\", \"b\": 2} }}", "x 2");
    /* one operand that is not a tuple, and what str() and repr() print */
    RENDERS("{{ \"%s\" % messages[0] }}", "{'role': 'system', 'content': 'Be brief.'}");
    RENDERS("{{ \"%s|%s|%s\" % (none, [1, 'a'], (1, 2)) }} {{ \"%s\" % ((1,),) }}",
            "None|[1, 'a']|(1, 2) (1,)");
    RENDERS("{{ \"%r %a\" % (\"\xc3\xa9\", \"\xc3\xa9\") }} {{ \"%r\" % \"a'b\" }}",
            "'\xc3\xa9' '\\xe9' \"a'b\"");
    /* a list or dict no conversion consumes is no error, as in Python */
    RENDERS("{{ \"abc\" % [] }}{{ \"abc\" % {} }}{{ \"%s\" % [] }}", "abcabc[]");
    /* str(Undefined) is empty */
    RENDERS("{{ \"%s|\" % x }}{{ \"abc\" % x }}", "|abc");
    RENDERS("{{ \"%+05d|%#x|%#o|%.3d|%x|%#X|%+ d|% d|%o|%.2x\" % (-3, 0, 8, -5, -255, 255, 3, 3, "
            "-8, 5) }}",
            "-0003|0x0|0o10|-005|-ff|0XFF|+3| 3|-10|05");
    RENDERS("{{ \"%d|%i|%d|%d\" % (3.7, true, -2.9, 1e20) }}", "3|1|-2|100000000000000000000");
    RENDERS("{{ \"%-5s|%.1s|%5.1f|%05s\" % (\"\xc3\xa9\", \"\xc3\xa9"
            "a\", -2.25, \"a\") }}",
            "\xc3\xa9    |\xc3\xa9| -2.2|    a");
    RENDERS("{{ \"%c%c%5c|\" % (\"\xc3\xa9\", 233, \"x\") }}", "\xc3\xa9\xc3\xa9    x|");
    RENDERS("{{ \"%e|%g|%#g|%E|%G|%#.0f|%010.3e|%.0f\" % (12345.678, 0.0001, 1.0, 1.5, 1e-10, "
            "3.0, -1.5, 2.5) }}",
            "1.234568e+04|0.0001|1.00000|1.500000E+00|1E-10|3.|-1.500e+00|2");
    RENDERS("{{ \"%+f|% .1e|%+g\" % (2.5, 2.5, -0.0) }} {{ \"%-08.3f|%08.3f|%+08d\" % (-1.5, "
            "-1.5, 42) }}",
            "+2.500000| 2.5e+00|-0 -1.500  |-001.500|+0000042");
    RENDERS("{{ \"%.*f|%*s|\" % (2, 3.14159, -4, \"a\") }} {{ \"%ld %%s %s%%\" % (3, 5) }}",
            "3.14|a   | 3 %s 5%");
    /* the format filter: str(value) % args, or % kwargs */
    RENDERS("{{ \"%s, %s!\"|format(\"Hello\", n) }} {{ \"%(a)s=%(b)05.1f\"|format(a=\"x\", b=f) }}",
            "Hello, 7! x=002.5");
    RENDERS("{{ n|format }}|{{ x|format }}|{{ \"%s\"|format([1]) }}", "7||[1]");
    FAILS_WITH("{{ \"%s %s\"|format(\"a\", b=\"c\") }}",
               "can't handle positional and keyword arguments at the same time");
    FAILS_WITH("{{ \"%s\"|format }}", "not enough arguments for format string");
    FAILS_WITH("{{ \"%d\" % \"x\" }}", "%d format: a real number is required, not str");
    FAILS_WITH("{{ \"%x\" % 1.5 }}", "%x format: an integer is required, not float");
    FAILS_WITH("{{ \"%f\" % \"x\" }}", "must be real number, not str");
    FAILS_WITH("{{ \"%c\" % \"ab\" }}", "%c requires int or char");
    FAILS_WITH("{{ \"%c\" % 1114112 }}", "%c arg not in range(0x110000)");
    FAILS_WITH("{{ \"\xc3\xa9%zx\" % 1 }}", "unsupported format character 'z' (0x7a) at index 2");
    /* a %(key) value is the operand the rest of that spec consumes */
    RENDERS("{{ \"%s %(a)s\" % {\"a\": 1} }} {{ \"%hd|%Lf\" % (3, 1.5) }}",
            "{'a': 1} 1 3|1.500000");
    FAILS_WITH("{{ \"%(a)s %s\" % {\"a\": 1} }}", "not enough arguments for format string");
    FAILS_WITH("{{ \"%hhd\" % 1 }}", "unsupported format character 'h' (0x68) at index 2");
    FAILS_WITH("{{ \"%\xc3\xa9\" % 1 }}", "unsupported format character '?' (0xe9) at index 1");
    FAILS_WITH("{{ \"%5%\" % (1,) }}", "unsupported format character '%' (0x25) at index 2");
    FAILS_WITH("{{ \"%\" % 1 }}", "incomplete format");
    FAILS_WITH("{{ \"%(k\" % {} }}", "incomplete format key");
    FAILS_WITH("{{ \"%(k)s\" % 1 }}", "format requires a mapping");
    FAILS_WITH("{{ \"%(k)s\" % {} }}", "'k'");
    FAILS_WITH("{{ \"%(a)s\" % [1] }}", "list indices must be integers or slices, not str");
    FAILS_WITH("{{ \"abc\" % 5 }}", "not all arguments converted during string formatting");
    FAILS_WITH("{{ \"%s\" % (1, 2) }}", "not all arguments converted during string formatting");
    FAILS_WITH("{{ \"%s %s\" % (1,) }}", "not enough arguments for format string");
    FAILS_WITH("{{ \"%s\" % () }}", "not enough arguments for format string");
    FAILS_WITH("{{ \"%*d\" % (\"a\", 1) }}", "* wants int");
    FAILS_WITH("{{ \"%d\" % x }}", "'x' is undefined");
    FAILS_WITH("{{ \"%d\" % (f * 1e308) }}", "cannot convert float infinity to integer");
    FAILS_WITH("{{ \"%d\" % (f * 1e308 - f * 1e308) }}", "cannot convert float NaN to integer");
    /* not Python's: a limit on untrusted templates, checked before padding */
    FAILS_WITH("{{ \"%999999999d\" % 1 }}", "format width too large");
    FAILS_WITH("{{ \"%*d\" % (-9223372036854775807, 1) }}", "format width too large");
    FAILS_WITH("{{ \"%.*f\" % (99999999, 1.5) }}", "format width too large");
}

TEST(jinja_tests)
{
    RENDERS("{{ x is defined }}{{ n is defined }}{{ nothing is none }}{{ 'a' is string }}",
            "FalseTrueTrueTrue");
    RENDERS("{{ {} is mapping }}{{ [] is iterable }}{{ n is number }}{{ 'a' is sequence }}",
            "TrueTrueTrueTrue");
    RENDERS("{{ flag is boolean }}{{ flag is true }}{{ flag is false }}{{ n is not string }}",
            "TrueTrueFalseTrue");
    RENDERS("{{ n is odd }}{{ 6 is divisibleby 3 }}{{ 'a' is eq 'a' }}", "TrueTrueTrue");
    /* a test after a call's parentheses or a bare argument applies to the result */
    RENDERS("{{ n is defined() is string }}{{ n is not divisibleby(3) is sameas false }}"
            "{{ n is divisibleby 3 is odd }}",
            "FalseFalseFalse");
    FAILS_WITH("{{ x is defined is string }}", "You cannot chain multiple tests with is");
    FAILS_WITH("{{ n is not defined is none }}", "You cannot chain multiple tests with is");
    FAILS_WITH("{% if n is odd is odd %}{% endif %}", "You cannot chain multiple tests with is");
    /* any name but else/or/and is a bare argument, so these do not parse */
    FAILS_WITH("{{ n is odd if true else 1 }}", "expected '}}', got true");
    FAILS_WITH("{{ x is not not defined }}", "unknown test 'not'");
}

TEST(jinja_filters)
{
    RENDERS("{{ {'a': 'é', 'b': [1, 2.5, none, true]}|tojson }}",
            "{\"a\": \"é\", \"b\": [1, 2.5, null, true]}");
    RENDERS("{{ {'a': [1]}|tojson(indent=2) }}", "{\n  \"a\": [\n    1\n  ]\n}");
    RENDERS("{{ 'é'|tojson(ensure_ascii=true) }}", "\"\\u00e9\"");
    RENDERS("{{ {'b': 1, 'a': 2}|tojson(sort_keys=true) }}", "{\"a\": 2, \"b\": 1}");
    RENDERS("{{ {'a': 1}|tojson(separators=(',', ':')) }}", "{\"a\":1}");
    RENDERS("{{ '  x \n'|trim }}|{{ 'xxaxx'|trim('x') }}", "x|a");
}

TEST(jinja_filters_more)
{
    RENDERS("{{ messages|length }} {{ 'h\xc3\xa9'|length }}", "3 2");
    RENDERS("{{ (messages|first).role }} {{ (messages|last).role }}", "system assistant");
    RENDERS("{{ [1, 2, 3]|join(', ') }} {{ messages|join('/', attribute='role') }}",
            "1, 2, 3 system/user/assistant");
    RENDERS("{{ x|default('dflt') }} {{ ''|default('e', true) }} {{ n|default(1) }}", "dflt e 7");
    RENDERS("{{ {'a': 1}|items|list }} {{ 'ab'|list }} {{ (1,) }}", "[('a', 1)] ['a', 'b'] (1,)");
    RENDERS("{{ (3|string ~ '4')|int + 1 }} {{ 'x'|int }} {{ '3.7'|int }}", "35 0 3");
    FAILS_WITH("{{ 3|string ~ '4'|int + 1 }}",
               "can only concatenate str"); /* + binds looser than ~ */
    RENDERS("{{ 'Ab'|upper }}{{ 'Ab'|lower }}{{ 'hELLO'|capitalize }}", "ABabHello");
    RENDERS("{{ 'aXbX'|replace('X', '-') }} {{ '<b>'|safe }}", "a-b- <b>");
    RENDERS("{{ messages|map(attribute='role')|list }}", "['system', 'user', 'assistant']");
    RENDERS("{{ ['a', 'b']|map('upper')|join }}", "AB");
    RENDERS("{{ messages|selectattr('role', 'equalto', 'user')|map(attribute='content')|first }}",
            "Hi \xc3\xa9t\xc3\xa9");
    RENDERS("{{ messages|rejectattr('role', 'in', ['user', 'system'])|list|length }}", "1");
    RENDERS("{{ ['a', 'A', 'b', 'a']|unique|list }}", "['a', 'b']");
    RENDERS("{{ 'a\nb\n'|indent(2) }}|{{ 'a\n\nb'|indent(2, true) }}", "a\n  b\n|  a\n\n  b");
    RENDERS("{{ {'b': 1, 'A': 2}|dictsort }}", "[('A', 2), ('b', 1)]");
    /* reverse keeps equal keys in their input order, as Python's sorted()
     * (jinja2's answers). */
    RENDERS("{% for x in [{'a': 1, 'n': 'x'}, {'a': 2, 'n': 'z'}, {'a': 1, 'n': 'y'}]"
            "|sort(attribute='a', reverse=true) %}{{ x.n }}{% endfor %}",
            "zxy");
    RENDERS("{{ {'b': 1, 'A': 2, 'a': 3}|dictsort(reverse=true) }}",
            "[('b', 1), ('A', 2), ('a', 3)]");
    RENDERS("{{ [3, 1, 2]|sort(reverse=true) }}", "[3, 2, 1]");
}

TEST(jinja_methods)
{
    RENDERS("[{{ '\t a b \n'.strip() }}][{{ 'xxa'.lstrip('x') }}][{{ 'a\n'.rstrip() }}]",
            "[a b][a][a]");
    RENDERS("{{ ' a  b '.split() }} {{ 'a,,b'.split(',') }} {{ 'a b c'.split(' ', 1) }}",
            "['a', 'b'] ['a', '', 'b'] ['a', 'b c']");
    RENDERS("{{ 'abc'.startswith('ab') }}{{ 'abc'.endswith(('x', 'c')) }}", "TrueTrue");
    RENDERS("{{ 'aB'.upper() }}{{ 'aB'.lower() }}{{ 'aaa'.replace('a', 'b', 2) }}", "ABabbba");
    RENDERS("{{ {'a': 1}.get('a') }} {{ {'a': 1}.get('b') }} {{ {'a': 1}.get('b', 2) }}",
            "1 None 2");
    RENDERS("{{ {'a': 1, 'b': 2}.keys()|list }} {{ {'a': 1}.values()|list }}", "['a', 'b'] [1]");
    RENDERS("{{ messages[0].items()|list|length }}", "2");
    RENDERS("{{ 'x</think>y'.split('</think>')[-1] }}", "y");
}

TEST(jinja_globals)
{
    RENDERS("{{ range(3)|list }} {{ range(1, 7, 2)|list }}", "[0, 1, 2] [1, 3, 5]");
    RENDERS("{{ dict(a=1) }} {{ namespace(a=1).a }}", "{'a': 1} 1");
    RENDERS("{{ strftime_now('%Y') }}", "1970");
    RENDERS("{{ bos_token }}", "<s>");
    FAILS_WITH("ok\n{{ raise_exception('Only user and assistant roles') }}",
               "line 2: Only user and assistant roles");
}

TEST(jinja_errors_name_the_line)
{
    FAILS_WITH("a\nb\n{{ 1 + }}", "line 3");
    FAILS_WITH("{% if true %}open", "missing '{% endif %}'");
    FAILS_WITH("{% include 'x' %}", "unknown or unsupported statement 'include'");
    FAILS_WITH("\n{{ x|nosuchfilter }}", "line 2: unknown filter 'nosuchfilter'");
    FAILS_WITH("{{ x is nosuchtest }}", "unknown test 'nosuchtest'");
    /* jinja2's tests are functions of a fixed arity: a TypeError there */
    FAILS_WITH("{{ 1 is odd(2) }}", "test 'odd' takes no arguments (1 given)");
    FAILS_WITH("{{ x is defined(1) }}", "test 'defined' takes no arguments (1 given)");
    FAILS_WITH("{{ 1 is eq(1, 2) }}", "test 'eq' takes 1 argument (2 given)");
    FAILS_WITH("{{ 1 is eq(other=1) }}", "test 'eq' got an unexpected keyword argument 'other'");
    FAILS_WITH("{{ [1, 2] | select('odd', 3) | list }}", "test 'odd' takes no arguments (1 given)");
    FAILS_WITH("{{ undefined_thing.attr }}", "'undefined_thing' is undefined");
    FAILS_WITH("{{ 'a' + 1 }}", "can only concatenate str");
    FAILS_WITH("{{ 1 / 0 }}", "division by zero");
    FAILS_WITH("{{ 'unterminated }}", "unterminated string");
    FAILS_WITH("{% endfor %}", "unexpected 'endfor'");
    FAILS_WITH("{{ x }", "missing '}}'");
    FAILS_WITH("{{ x|tojson }}", "not JSON serializable");
    FAILS_WITH("{% set x = 1 %}{% set x.a = 2 %}", "non-namespace");
    FAILS_WITH("{{ range(1000000)|length }}", "Range too big");
    /* Powers take log2(exponent) steps: this one ends at once. */
    RENDERS("{{ 1 ** 1000000000000000000 }}|{{ (-2) ** 63 }}", "1|-9223372036854775808");
    FAILS_WITH("{{ 2 ** 63 }}", "integer overflow");
    RENDERS("[{{ '' * 1000000000000000000 }}]{{ [] * 1000000000000000000 }}", "[][]");
    FAILS_WITH("{{ 0 ** -1 }}", "0.0 cannot be raised to a negative power");
    /* A tuple's slice is a tuple. */
    RENDERS("{{ (1, 2, 3)[1:] }}|{{ (1, 2)[5:] }}", "(2, 3)|()");
    /* A literal longer than the lexer's buffer, its '.' at the buffer's
     * last byte: the edge where a copy of the literal would overrun. */
    FAILS_WITH("{{ 444444444444444444444444444444444444444444444444444444444444444.4 }}",
               "number literal too long");
    FAILS_WITH("{{ 1"
               "000000000000000000000000000000000000000000000000000000000000000000000e5 }}",
               "number literal too long");
    RENDERS("{{ 1_000.5e1 }}", "10005.0");
}

TEST(jinja_limits)
{
    wisp_jinja_limits l = small_limits();
    l.max_output = 100;
    CHECK(strstr(render_with("{% for i in range(200) %}x{% endfor %}", &l), "output limit"));
    l = small_limits();
    l.max_steps = 1000;
    CHECK(strstr(render_with("{% for i in range(100000) %}{% endfor %}", &l), "step limit"));
    l = small_limits();
    l.max_depth = 8;
    CHECK(strstr(render_with("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}", &l),
                 "nested deeper"));
    l = small_limits();
    l.max_memory = 1 << 20;
    CHECK(strstr(render_with("{% set ns = namespace(s='x') %}{% for i in range(100000) %}"
                             "{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
                             &l),
                 "limit"));
    /* every construct meets the memory limit as an error, never a crash */
    static const char *const hungry[] = {
        "{% for i in range(5000) %}{{ 'abc'.split('b') }}{{ {'a': i}|items|list }}{% endfor %}",
        "{% for i in range(5000) %}{{ 'a b c'.split() }}{{ 'x\ny'|indent(2) }}{% endfor %}",
        "{% for i in range(5000) %}{{ [3, 1, 2]|sort }}{{ {'b': 1, 'a': 2}|dictsort }}{% endfor %}",
        "{% for i in range(5000) %}{{ ['a', 'b']|unique|list }}{{ 'abc'|reverse }}{% endfor %}",
        "{% for i in range(5000) %}{% set ns = namespace(a=[i]) %}{{ ns.a }}{{ (i, i) }}{% endfor "
        "%}",
        "{% for i in range(5000) %}{% for m in messages if m.role %}{{ loop.cycle('a', 'b') }}"
        "{% endfor %}{% endfor %}",
    };
    for (size_t i = 0; i < sizeof hungry / sizeof hungry[0]; i++) {
        l = small_limits();
        l.max_memory = 80 * 1024;
        const char *r = render_with(hungry[i], &l);
        if (!strstr(r, "memory limit"))
            fprintf(stderr, "  hungry[%zu] gave: %.200s\n", i, r);
        CHECK(strstr(r, "memory limit") != NULL);
    }
    /* deep nesting in the syntax is refused, not a stack overflow */
    char deep[4200] = "{{ ";
    for (int i = 0; i < 1000; i++)
        strcat(deep, "(");
    strcat(deep, "1");
    for (int i = 0; i < 1000; i++)
        strcat(deep, ")");
    strcat(deep, " }}");
    const char *got = render(deep);
    if (!strstr(got, "nested too deeply"))
        fprintf(stderr, "  deep nesting gave: %s\n", got);
    CHECK(strstr(got, "nested too deeply"));
}
