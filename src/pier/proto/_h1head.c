/* pier.proto._h1head: the HTTP/1.1 request-head fast path.
 *
 * One function, parse_head(), reads one request head that begins at a message
 * boundary and is whole in one buffer, and hands back everything
 * H1Parser.on_headers_complete would pass to RequestHandler.on_request. It accepts a
 * strict subset of HTTP/1.1 (RFC 9112): plain origin-form requests with CRLF line ends,
 * printable ASCII, Content-Length framing or none. Anything else, well-formed or not,
 * gets None and is read by llhttp and pier's Python checks exactly as before, so every
 * refusal (400, 413, 414, 431, 505) and every unusual framing (chunked, upgrades,
 * CONNECT, absolute-form, obs-fold, obs-text) keeps a single implementation.
 *
 * Why C of our own: the per-header Python callbacks and checks cost ~25k instructions
 * per keep-alive request (docs/performance.md, "What a native hot path would gain");
 * llhttp cannot be linked here (no other project's source is vendored and Debian has
 * no llhttp library), and the subset is small enough to read in one sitting.
 *
 * The contract it keeps is pinned by tests/proto/test_h1head.py: whenever it returns a
 * tuple, the llhttp path makes the same on_request call and consumes the same bytes.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <string.h>

/* Fields one head may hold on the fast path; a head with more declines (llhttp reads it). */
#define MAX_FAST_FIELDS 128
/* Bytes searched for the head's end beyond the head-size limit: the limit counts names and
 * stripped values, the wire also holds the request line, ": " and line ends. */
#define SEARCH_SLACK 4096

enum { C_TCHAR = 1, C_VALUE = 2, C_TARGET = 4, C_HOST = 8 };
static unsigned char char_class[256];

/* Where "\r\n\r\n" starts in p[0:n], or NULL. memchr from one CR to the next: a head
 * has a CR per line, and glibc's memmem pays ~1k instructions per call for its set-up
 * (callgrind, a 70-byte hello head), this ~0.1k. */
static const char *
find_head_end(const char *p, Py_ssize_t n)
{
    const char *end = p + n;
    while (end - p >= 4) {
        const char *cr = memchr(p, '\r', (size_t)(end - p - 3));
        if (cr == NULL)
            return NULL;
        if (cr[1] == '\n' && cr[2] == '\r' && cr[3] == '\n')
            return cr;
        p = cr + 1;
    }
    return NULL;
}

static void
init_char_classes(void)
{
    const char *tchar_extra = "!#$%&'*+-.^_`|~";
    /* RFC 3986 pchar / query without '#': unreserved, pct-encoded's '%', sub-delims,
     * ':', '@', '/', '?'. */
    const char *target_extra = "-._~%!$&'()*+,;=:@/?";
    const char *host_extra = "-._~";
    for (int c = 0; c < 256; c++) {
        unsigned char k = 0;
        int alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        if (alnum || (c && strchr(tchar_extra, c)))
            k |= C_TCHAR;
        if (c == '\t' || (c >= 0x20 && c <= 0x7e))
            k |= C_VALUE;
        if (alnum || (c && strchr(target_extra, c)))
            k |= C_TARGET;
        if (alnum || (c && strchr(host_extra, c)))
            k |= C_HOST;
        char_class[c] = k;
    }
}

static inline unsigned char
lower(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + 32) : c;
}

/* Is s[0:n] equal to the lower-case word w, ignoring the case of s? */
static inline int
equals_lower(const char *s, Py_ssize_t n, const char *w, Py_ssize_t wn)
{
    if (n != wn)
        return 0;
    for (Py_ssize_t i = 0; i < n; i++)
        if (lower((unsigned char)s[i]) != (unsigned char)w[i])
            return 0;
    return 1;
}

/* Names most heads carry, kept as one bytes object each: a request's list then shares
 * them instead of allocating a lower-cased copy per field. */
static const char *const common_names[] = {
    "host", "user-agent", "accept", "accept-encoding", "accept-language",
    "connection", "content-length", "content-type", "cookie", "referer", "origin",
    "cache-control", "pragma", "authorization", "x-forwarded-for", "x-forwarded-proto",
    "x-forwarded-host", "x-real-ip", "x-request-id", "sec-fetch-site", "sec-fetch-mode",
    "sec-fetch-dest", "sec-fetch-user", "sec-ch-ua", "sec-ch-ua-mobile",
    "sec-ch-ua-platform", "upgrade-insecure-requests", "priority", "if-none-match",
    "if-modified-since", "dnt", "te", "expect", "keep-alive", "x-requested-with",
    "traceparent", "tracestate", "baggage", "range", "content-encoding",
};
#define N_COMMON (sizeof(common_names) / sizeof(common_names[0]))
static PyObject *common_name_objects[N_COMMON];

static const char *const method_names[] = {
    "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE",
};
#define N_METHODS (sizeof(method_names) / sizeof(method_names[0]))
static PyObject *method_objects[N_METHODS];
static PyObject *version_11;
static PyObject *version_10;

/* The field name's bytes object, lower-cased: a shared one when it is common. */
static PyObject *
name_object(const char *name, Py_ssize_t n)
{
    char buffer[64];
    if (n <= (Py_ssize_t)sizeof(buffer)) {
        for (Py_ssize_t i = 0; i < n; i++)
            buffer[i] = (char)lower((unsigned char)name[i]);
        for (size_t k = 0; k < N_COMMON; k++) {
            PyObject *known = common_name_objects[k];
            if (PyBytes_GET_SIZE(known) == n && memcmp(PyBytes_AS_STRING(known), buffer, n) == 0) {
                Py_INCREF(known);
                return known;
            }
        }
        return PyBytes_FromStringAndSize(buffer, n);
    }
    PyObject *object = PyBytes_FromStringAndSize(NULL, n);
    if (object == NULL)
        return NULL;
    char *out = PyBytes_AS_STRING(object);
    for (Py_ssize_t i = 0; i < n; i++)
        out[i] = (char)lower((unsigned char)name[i]);
    return object;
}

typedef struct {
    const char *name;
    Py_ssize_t name_len;
    const char *value;
    Py_ssize_t value_len;
} field_span;

/* Connection tokens (RFC 9110 section 7.6.1) as llhttp acts on them. Returns 0 when the
 * value is one the fast path leaves to llhttp: an "upgrade" token, an empty element, or an
 * element that is not a single token. */
static int
read_connection(const char *v, Py_ssize_t n, int *close, int *keep_alive)
{
    Py_ssize_t i = 0;
    for (;;) {
        while (i < n && (v[i] == ' ' || v[i] == '\t'))
            i++;
        Py_ssize_t token = i;
        while (i < n && (char_class[(unsigned char)v[i]] & C_TCHAR))
            i++;
        Py_ssize_t token_len = i - token;
        while (i < n && (v[i] == ' ' || v[i] == '\t'))
            i++;
        if (token_len == 0 || (i < n && v[i] != ','))
            return 0;
        if (equals_lower(v + token, token_len, "close", 5))
            *close = 1;
        else if (equals_lower(v + token, token_len, "keep-alive", 10))
            *keep_alive = 1;
        else if (equals_lower(v + token, token_len, "upgrade", 7))
            return 0;
        if (i == n)
            return 1;
        i++; /* the comma */
    }
}

/* reg-name [":" *DIGIT], reg-name of unreserved characters only (a subset of what
 * H1Parser._check_host allows; the rest declines and is checked there). */
static int
plain_host(const char *v, Py_ssize_t n)
{
    Py_ssize_t i = 0;
    while (i < n && (char_class[(unsigned char)v[i]] & C_HOST))
        i++;
    if (i == 0)
        return 0;
    if (i == n)
        return 1;
    if (v[i] != ':')
        return 0;
    for (i++; i < n; i++)
        if (v[i] < '0' || v[i] > '9')
            return 0;
    return 1;
}

static int
contains_trailers(const char *v, Py_ssize_t n)
{
    for (Py_ssize_t i = 0; i + 8 <= n; i++)
        if (equals_lower(v + i, 8, "trailers", 8))
            return 1;
    return 0;
}

static PyObject *
build_result(Py_ssize_t end, PyObject *method, const char *target, Py_ssize_t target_len,
             Py_ssize_t query_at, field_span *fields, Py_ssize_t count, PyObject *version,
             int keep_alive, int expect_continue, long long content_length,
             int accepts_trailers)
{
    PyObject *result = PyTuple_New(10);
    if (result == NULL)
        return NULL;
    PyObject *headers = PyList_New(count);
    if (headers == NULL)
        goto fail;
    PyTuple_SET_ITEM(result, 4, headers);
    for (Py_ssize_t k = 0; k < count; k++) {
        PyObject *name = name_object(fields[k].name, fields[k].name_len);
        if (name == NULL)
            goto fail;
        PyObject *value = PyBytes_FromStringAndSize(fields[k].value, fields[k].value_len);
        if (value == NULL) {
            Py_DECREF(name);
            goto fail;
        }
        PyObject *pair = PyTuple_New(2);
        if (pair == NULL) {
            Py_DECREF(name);
            Py_DECREF(value);
            goto fail;
        }
        PyTuple_SET_ITEM(pair, 0, name);
        PyTuple_SET_ITEM(pair, 1, value);
        PyList_SET_ITEM(headers, k, pair);
    }
    PyObject *item = PyLong_FromSsize_t(end);
    if (item == NULL)
        goto fail;
    PyTuple_SET_ITEM(result, 0, item);
    Py_INCREF(method);
    PyTuple_SET_ITEM(result, 1, method);
    Py_ssize_t path_len = query_at < 0 ? target_len : query_at;
    item = PyBytes_FromStringAndSize(target, path_len);
    if (item == NULL)
        goto fail;
    PyTuple_SET_ITEM(result, 2, item);
    if (query_at < 0)
        item = PyBytes_FromStringAndSize("", 0);
    else
        item = PyBytes_FromStringAndSize(target + query_at + 1, target_len - query_at - 1);
    if (item == NULL)
        goto fail;
    PyTuple_SET_ITEM(result, 3, item);
    Py_INCREF(version);
    PyTuple_SET_ITEM(result, 5, version);
    item = keep_alive ? Py_True : Py_False;
    Py_INCREF(item);
    PyTuple_SET_ITEM(result, 6, item);
    item = expect_continue ? Py_True : Py_False;
    Py_INCREF(item);
    PyTuple_SET_ITEM(result, 7, item);
    if (content_length < 0) {
        Py_INCREF(Py_None);
        item = Py_None;
    } else {
        item = PyLong_FromLongLong(content_length);
        if (item == NULL)
            goto fail;
    }
    PyTuple_SET_ITEM(result, 8, item);
    item = accepts_trailers ? Py_True : Py_False;
    Py_INCREF(item);
    PyTuple_SET_ITEM(result, 9, item);
    return result;
fail:
    Py_DECREF(result);  /* unset items are NULL, which tuple and list deallocation skip */
    return NULL;
}

#define DECLINE Py_RETURN_NONE

PyDoc_STRVAR(parse_head_doc,
"parse_head(data, start, target_limit, fields_limit, field_size_limit, head_size_limit,\n"
"           body_limit, /)\n"
"--\n\n"
"Read the request head at data[start:]: a tuple of what on_request takes, or None when\n"
"the head is incomplete or outside the fast path's subset (llhttp reads it then).\n"
"body_limit is -1 for no limit.");

static PyObject *
parse_head(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 7) {
        PyErr_SetString(PyExc_TypeError, "parse_head() takes exactly 7 arguments");
        return NULL;
    }
    if (!PyBytes_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "parse_head() needs bytes");
        return NULL;
    }
    Py_ssize_t limit[6];
    for (int k = 0; k < 6; k++) {
        limit[k] = PyLong_AsSsize_t(args[k + 1]);
        if (limit[k] == -1 && PyErr_Occurred())
            return NULL;
    }
    Py_ssize_t start = limit[0], target_limit = limit[1], fields_limit = limit[2];
    Py_ssize_t field_size_limit = limit[3], head_size_limit = limit[4];
    Py_ssize_t body_limit = limit[5];

    const char *buffer = PyBytes_AS_STRING(args[0]);
    Py_ssize_t size = PyBytes_GET_SIZE(args[0]);
    if (start < 0 || start >= size)
        DECLINE;
    const char *p = buffer + start;
    Py_ssize_t window = size - start;
    if (head_size_limit >= 0 && window > head_size_limit + SEARCH_SLACK)
        window = head_size_limit + SEARCH_SLACK;
    const char *head_end = find_head_end(p, window);
    if (head_end == NULL)
        DECLINE;
    /* Every line below ends at a CRLF at or before head_end + 2; the blank line follows. */
    const char *stop = head_end + 2;

    /* Request line: METHOD SP origin-form SP HTTP/1.x CRLF */
    PyObject *method = NULL;
    for (size_t k = 0; k < N_METHODS; k++) {
        size_t n = strlen(method_names[k]);
        if (p + n < stop && memcmp(p, method_names[k], n) == 0 && p[n] == ' ') {
            method = method_objects[k];
            p += n + 1;
            break;
        }
    }
    if (method == NULL || *p != '/')
        DECLINE;
    const char *target = p;
    Py_ssize_t query_at = -1;
    while (p < stop && (char_class[(unsigned char)*p] & C_TARGET)) {
        if (*p == '?' && query_at < 0)
            query_at = p - target;
        p++;
    }
    Py_ssize_t target_len = p - target;
    if (target_len > target_limit || stop - p < 11 || *p != ' ')
        DECLINE;
    p++;
    PyObject *version;
    if (memcmp(p, "HTTP/1.1\r\n", 10) == 0)
        version = version_11;
    else if (memcmp(p, "HTTP/1.0\r\n", 10) == 0)
        version = version_10;
    else
        DECLINE;
    p += 10;

    field_span fields[MAX_FAST_FIELDS];
    Py_ssize_t count = 0, head_size = target_len;
    int hosts = 0, close = 0, keep_alive_token = 0, expect_continue = 0;
    int accepts_trailers = 0, content_types = 0, authorizations = 0;
    long long content_length = -1;
    const char *host = NULL;
    Py_ssize_t host_len = 0;
    while (p < stop) {
        /* name ":" OWS value OWS CRLF */
        const char *name = p;
        while (char_class[(unsigned char)*p] & C_TCHAR)
            p++;
        Py_ssize_t name_len = p - name;
        if (name_len == 0 || *p != ':')
            DECLINE;  /* obs-fold, whitespace before ':', a stray CR or LF, a non-token */
        p++;
        while (*p == ' ' || *p == '\t')
            p++;
        const char *value = p;
        while (char_class[(unsigned char)*p] & C_VALUE)
            p++;
        if (p[0] != '\r' || p[1] != '\n')
            DECLINE;
        const char *value_end = p;
        while (value_end > value && (value_end[-1] == ' ' || value_end[-1] == '\t'))
            value_end--;
        Py_ssize_t value_len = value_end - value;
        p += 2;
        if (count == fields_limit || count == MAX_FAST_FIELDS
            || name_len + value_len > field_size_limit)
            DECLINE;
        head_size += name_len + value_len + 4;
        fields[count].name = name;
        fields[count].name_len = name_len;
        fields[count].value = value;
        fields[count].value_len = value_len;
        count++;

        switch (name_len) {
        case 2:
            if (equals_lower(name, 2, "te", 2))
                accepts_trailers = contains_trailers(value, value_len);
            break;
        case 4:
            if (equals_lower(name, 4, "host", 4)) {
                hosts++;
                host = value;
                host_len = value_len;
            }
            break;
        case 6:
            if (equals_lower(name, 6, "expect", 6))
                expect_continue = equals_lower(value, value_len, "100-continue", 12);
            break;
        case 7:
            if (equals_lower(name, 7, "upgrade", 7))
                DECLINE;
            break;
        case 10:
            if (equals_lower(name, 10, "connection", 10)
                && !read_connection(value, value_len, &close, &keep_alive_token))
                DECLINE;
            break;
        case 12:
            if (equals_lower(name, 12, "content-type", 12) && ++content_types > 1)
                DECLINE;
            break;
        case 13:
            if (equals_lower(name, 13, "authorization", 13) && ++authorizations > 1)
                DECLINE;
            break;
        case 14:
            if (equals_lower(name, 14, "content-length", 14)) {
                if (content_length >= 0 || value_len == 0 || value_len > 15)
                    DECLINE;
                long long n = 0;
                for (Py_ssize_t i = 0; i < value_len; i++) {
                    if (value[i] < '0' || value[i] > '9')
                        DECLINE;
                    n = n * 10 + (value[i] - '0');
                }
                content_length = n;
            }
            break;
        case 16:
            if (equals_lower(name, 16, "proxy-connection", 16))
                DECLINE;
            break;
        case 17:
            if (equals_lower(name, 17, "transfer-encoding", 17))
                DECLINE;
            break;
        }
    }
    if (head_size > head_size_limit)
        DECLINE;
    if (body_limit >= 0 && content_length > body_limit)
        DECLINE;
    /* Both tokens: llhttp's answer differs by version; not worth a fast path. */
    if (close && keep_alive_token)
        DECLINE;
    int keep_alive;
    if (version == version_11) {
        if (hosts != 1)
            DECLINE;
        keep_alive = !close;
    } else {
        if (hosts > 1)
            DECLINE;
        keep_alive = keep_alive_token;
        expect_continue = 0;  /* RFC 9110 section 10.1.1 */
    }
    if (hosts && !plain_host(host, host_len))
        DECLINE;
    return build_result(stop + 2 - buffer, method, target, target_len, query_at, fields, count,
                        version, keep_alive, expect_continue, content_length,
                        accepts_trailers);
}

PyDoc_STRVAR(has_any_name_doc,
"has_any_name(names, headers, /)\n"
"--\n\n"
"Is the name of any (name, value) pair in the list `headers` in the frozenset `names`?\n"
"(names first, for functools.partial.)");

/* The proxy-header check runs on every request from a trusted peer (127.0.0.1 is trusted
 * by default): this loop costs ~2.7k instructions in Python for three headers. */
static PyObject *
has_any_name(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || !PyFrozenSet_Check(args[0]) || !PyList_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "has_any_name() takes a frozenset and a list");
        return NULL;
    }
    PyObject *headers = args[1];
    for (Py_ssize_t k = 0; k < PyList_GET_SIZE(headers); k++) {
        PyObject *pair = PyList_GET_ITEM(headers, k);
        if (!PyTuple_Check(pair) || PyTuple_GET_SIZE(pair) != 2) {
            PyErr_SetString(PyExc_TypeError, "headers must be (name, value) tuples");
            return NULL;
        }
        int found = PySet_Contains(args[0], PyTuple_GET_ITEM(pair, 0));
        if (found < 0)
            return NULL;
        if (found)
            Py_RETURN_TRUE;
    }
    Py_RETURN_FALSE;
}


PyDoc_STRVAR(environ_fields_doc,
"environ_fields(environ, names, headers, /)\n"
"--\n\n"
"Add each (name, value) byte pair of the list `headers` to the dict `environ` as\n"
"environ[names[name]] = value read as latin-1. False, with `environ` partly filled,\n"
"as soon as a name is not in the dict `names`, its key is already in `environ`, or a\n"
"pair is not a tuple of two bytes (False too if `headers` is not a list): the caller\n"
"starts again one field at a time.");

/* The WSGI environ's header fields (pier.wsgi.environ): in Python this loop costs
 * ~1.7k instructions per field (a lookup, a check, a latin-1 decode by codec name and a
 * store), a third of building a hello request's environ. */
static PyObject *
environ_fields(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3 || !PyDict_CheckExact(args[0]) || !PyDict_CheckExact(args[1])) {
        PyErr_SetString(PyExc_TypeError, "environ_fields() takes two dicts and a list");
        return NULL;
    }
    PyObject *environ = args[0], *names = args[1], *headers = args[2];
    if (!PyList_CheckExact(headers))
        Py_RETURN_FALSE;
    for (Py_ssize_t k = 0; k < PyList_GET_SIZE(headers); k++) {
        PyObject *pair = PyList_GET_ITEM(headers, k);
        if (!PyTuple_CheckExact(pair) || PyTuple_GET_SIZE(pair) != 2)
            Py_RETURN_FALSE;
        PyObject *name = PyTuple_GET_ITEM(pair, 0), *raw = PyTuple_GET_ITEM(pair, 1);
        if (!PyBytes_CheckExact(name) || !PyBytes_CheckExact(raw))
            Py_RETURN_FALSE;
        PyObject *key = PyDict_GetItemWithError(names, name); /* borrowed */
        if (key == NULL) {
            if (PyErr_Occurred())
                return NULL;
            Py_RETURN_FALSE;
        }
        int present = PyDict_Contains(environ, key);
        if (present < 0)
            return NULL;
        if (present)
            Py_RETURN_FALSE;
        PyObject *value = PyUnicode_DecodeLatin1(PyBytes_AS_STRING(raw), PyBytes_GET_SIZE(raw),
                                                 NULL);
        if (value == NULL)
            return NULL;
        int failed = PyDict_SetItem(environ, key, value);
        Py_DECREF(value);
        if (failed)
            return NULL;
    }
    Py_RETURN_TRUE;
}


/* --- The response side: head and first body in one call ----------------------------- */

/* Set once by proto/h1.py (framer_tables): the dict of app header pairs already
 * validated by proto/headers.py classify() and what each means, the status lines built
 * so far, and the two meanings this path writes itself. Borrowed forever (module-level
 * objects of pier.proto). */
static PyObject *pairs_table;
static PyObject *status_lines_table;
static PyObject *kind_plain;
static PyObject *kind_content_length;
static PyObject *attr_chunked, *attr_keep_alive, *attr_no_body, *attr_remaining, *attr_sent,
    *attr_trailers;

PyDoc_STRVAR(framer_tables_doc,
"framer_tables(pairs, status_lines, plain, content_length, /)\n"
"--\n\n"
"Give frame_response the tables it reads (proto/headers.py PAIRS and its PLAIN and\n"
"CONTENT_LENGTH kinds, proto/h1.py _STATUS_LINES). Called once, at import.");

static PyObject *
framer_tables(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 4 || !PyDict_CheckExact(args[0]) || !PyDict_CheckExact(args[1])) {
        PyErr_SetString(PyExc_TypeError, "framer_tables() takes two dicts and two kinds");
        return NULL;
    }
    PyObject *objects[4] = {args[0], args[1], args[2], args[3]};
    PyObject **slots[4] = {&pairs_table, &status_lines_table, &kind_plain,
                           &kind_content_length};
    for (int k = 0; k < 4; k++) {
        Py_INCREF(objects[k]);
        Py_XSETREF(*slots[k], objects[k]);
    }
    Py_RETURN_NONE;
}

/* Where a head's pieces are gathered: the status line, the default block, the app's
 * fields (name, value), the framing lines. Heads with more fields decline. */
#define MAX_RESPONSE_FIELDS 64

static inline char *
put(char *out, const char *s, Py_ssize_t n)
{
    memcpy(out, s, (size_t)n);
    return out + n;
}

/* "content-length: N\r\n" into out (48 bytes), its length. By hand: snprintf cost ~2k
 * instructions per response (callgrind), this ~0.1k. */
static Py_ssize_t
put_length_line(char *out, long long value)
{
    static const char prefix[] = "content-length: ";
    char digits[24];
    int n = 0;
    unsigned long long v = (unsigned long long)value;
    do {
        digits[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    memcpy(out, prefix, sizeof prefix - 1);
    Py_ssize_t size = sizeof prefix - 1;
    while (n)
        out[size++] = digits[--n];
    out[size++] = '\r';
    out[size++] = '\n';
    return size;
}

/* A chunk's size line, "<lower-case hex>\r\n", into out (24 bytes), its length. */
static Py_ssize_t
put_chunk_size(char *out, Py_ssize_t value)
{
    static const char hex[] = "0123456789abcdef";
    char digits[20];
    int n = 0;
    size_t v = (size_t)value;
    do {
        digits[n++] = hex[v & 15];
        v >>= 4;
    } while (v);
    Py_ssize_t size = 0;
    while (n)
        out[size++] = digits[--n];
    out[size++] = '\r';
    out[size++] = '\n';
    return size;
}

/* The framer fields frame_response sets, in the order of framer_names. */
#define N_FRAMER_FIELDS 6
/* The framer type whose fields are plain slots, their offsets, and the type's version
 * tag when they were read (a change to the class gives it a new tag). Six
 * PyObject_SetAttr calls cost ~1.7k instructions per response (callgrind: each looks
 * the descriptor up through the type); a store at a known offset costs a few. */
static PyTypeObject *framer_type;
static unsigned int framer_type_version;
static Py_ssize_t framer_offsets[N_FRAMER_FIELDS];

static PyObject **
framer_names(void)
{
    static PyObject *names[N_FRAMER_FIELDS];
    names[0] = attr_remaining;
    names[1] = attr_sent;
    names[2] = attr_chunked;
    names[3] = attr_trailers;
    names[4] = attr_keep_alive;
    names[5] = attr_no_body;
    return names;
}

/* Are the framer's six fields writable slots of its type (no __setattr__, no property
 * in their place)? Remembers the answer for the type. */
static int
framer_has_slots(PyTypeObject *type)
{
    if (type == framer_type && (type->tp_flags & Py_TPFLAGS_VALID_VERSION_TAG) &&
        type->tp_version_tag == framer_type_version)
        return 1;
    if (type->tp_setattro != PyObject_GenericSetAttr)
        return 0;
    PyObject **names = framer_names();
    Py_ssize_t offsets[N_FRAMER_FIELDS];
    for (int k = 0; k < N_FRAMER_FIELDS; k++) {
        PyObject *descr = _PyType_Lookup(type, names[k]);
        if (descr == NULL || !Py_IS_TYPE(descr, &PyMemberDescr_Type))
            return 0;
        PyMemberDef *member = ((PyMemberDescrObject *)descr)->d_member;
        if (member->type != T_OBJECT_EX || (member->flags & READONLY))
            return 0;
        offsets[k] = member->offset;
    }
    if (!(type->tp_flags & Py_TPFLAGS_VALID_VERSION_TAG))
        return 0;  /* no tag to tell a later change of the class by: the generic path */
    Py_XSETREF(framer_type, (PyTypeObject *)Py_NewRef(type));
    framer_type_version = type->tp_version_tag;
    memcpy(framer_offsets, offsets, sizeof offsets);
    return 1;
}

/* Set the framer's fields to `state` (new references kept by the caller). */
static int
set_framer_state(PyObject *framer, PyObject *const *state)
{
    if (framer_has_slots(Py_TYPE(framer))) {
        for (int k = 0; k < N_FRAMER_FIELDS; k++) {
            PyObject **field = (PyObject **)((char *)framer + framer_offsets[k]);
            PyObject *old = *field;
            *field = Py_NewRef(state[k]);
            Py_XDECREF(old);
        }
        return 0;
    }
    PyObject **names = framer_names();
    for (int k = 0; k < N_FRAMER_FIELDS; k++) {
        if (PyObject_SetAttr(framer, names[k], state[k]) < 0)
            return -1;
    }
    return 0;
}

PyDoc_STRVAR(frame_response_doc,
"frame_response(framer, status, headers, default_headers, method, http_version,\n"
"               keep_alive, body_length, body, more_body, /)\n"
"--\n\n"
"ResponseFramer.head(...) followed by .body(body, more_body), joined, in one call; the\n"
"framer's state set as those two calls set it. None, with nothing changed, where the\n"
"response is not the plain kind this path frames (HEAD, 1xx/204/304, trailers, a field\n"
"pair not yet validated by classify() or meaning more than a plain field or a\n"
"Content-Length, a body that breaks its length, anything not exactly bytes): the\n"
"Python framer then does it all, and raises what it raises.");

/* The Python framer (proto/h1.py ResponseFramer.head and .body) is the reference; this
 * frames only what that framer would frame without raising, with byte-identical output
 * (tests/proto/test_h1frame.py). Why C: head() and body() cost ~11k instructions per
 * hello response in Python (docs/performance.md). */
static PyObject *
frame_response(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 10) {
        PyErr_SetString(PyExc_TypeError, "frame_response() takes 10 arguments");
        return NULL;
    }
    if (pairs_table == NULL)
        Py_RETURN_NONE;
    PyObject *framer = args[0], *status = args[1], *headers = args[2];
    PyObject *defaults = args[3], *method = args[4], *version = args[5];
    PyObject *body_length_obj = args[7], *body = args[8];
    int keep_alive = PyObject_IsTrue(args[6]);
    int more = PyObject_IsTrue(args[9]);
    if (keep_alive < 0 || more < 0)
        return NULL;
    if (!PyLong_CheckExact(status) || !PyBytes_CheckExact(defaults) ||
        !PyBytes_CheckExact(body) || !PyUnicode_Check(method) || !PyUnicode_Check(version))
        Py_RETURN_NONE;
    int overflow;
    long code = PyLong_AsLongAndOverflow(status, &overflow);
    if (overflow || code < 200 || code == 204 || code == 304)
        Py_RETURN_NONE;  /* 1xx raise; 204/304 have no body; all are the Python path's */
    if (PyUnicode_CompareWithASCIIString(method, "HEAD") == 0)
        Py_RETURN_NONE;
    int http11 = PyUnicode_CompareWithASCIIString(version, "1.1") == 0;
    int http10 = !http11 && PyUnicode_CompareWithASCIIString(version, "1.0") == 0;
    long long body_length = -1;
    if (body_length_obj != Py_None) {
        if (!PyLong_CheckExact(body_length_obj))
            Py_RETURN_NONE;
        body_length = PyLong_AsLongLongAndOverflow(body_length_obj, &overflow);
        if (overflow || body_length < 0)
            Py_RETURN_NONE;
    }
    PyObject *line = PyDict_GetItemWithError(status_lines_table, status);
    if (line == NULL) {
        if (PyErr_Occurred())
            return NULL;
        Py_RETURN_NONE;  /* the Python path builds and caches it */
    }
    if (!PyBytes_CheckExact(line))
        Py_RETURN_NONE;

    Py_ssize_t count;
    if (PyList_CheckExact(headers))
        count = PyList_GET_SIZE(headers);
    else if (PyTuple_CheckExact(headers))
        count = PyTuple_GET_SIZE(headers);
    else
        Py_RETURN_NONE;
    if (count > MAX_RESPONSE_FIELDS)
        Py_RETURN_NONE;
    /* The pairs are held before any lookup: a lookup may run an __eq__ (a stored key's
     * bytes subclass) that changes the list. */
    PyObject *fields[MAX_RESPONSE_FIELDS];
    PyObject *const *items = PyList_CheckExact(headers) ? ((PyListObject *)headers)->ob_item
                                                        : ((PyTupleObject *)headers)->ob_item;
    for (Py_ssize_t k = 0; k < count; k++)
        fields[k] = Py_NewRef(items[k]);
    Py_ssize_t size = PyBytes_GET_SIZE(line) + PyBytes_GET_SIZE(defaults);
    long long content_length = -1;
    PyObject *result = NULL;
    for (Py_ssize_t k = 0; k < count; k++) {
        PyObject *pair = fields[k];
        if (!PyTuple_CheckExact(pair) || PyTuple_GET_SIZE(pair) != 2)
            goto decline;
        PyObject *name = PyTuple_GET_ITEM(pair, 0), *value = PyTuple_GET_ITEM(pair, 1);
        if (!PyBytes_CheckExact(name) || !PyBytes_CheckExact(value))
            goto decline;
        PyObject *kind = PyDict_GetItemWithError(pairs_table, pair);
        if (kind == NULL) {
            if (PyErr_Occurred())
                PyErr_Clear();  /* the Python path says what is wrong with the pair */
            goto decline;
        }
        if (kind == kind_content_length) {
            if (content_length >= 0)
                goto decline;  /* a second one: the Python framer sends or refuses it */
            /* classify() checked the value is ASCII digits; int() of it, if it is small. */
            Py_ssize_t n = PyBytes_GET_SIZE(value);
            const char *digits = PyBytes_AS_STRING(value);
            if (n < 1 || n > 18)
                goto decline;
            content_length = 0;
            for (Py_ssize_t i = 0; i < n; i++) {
                if (digits[i] < '0' || digits[i] > '9')
                    goto decline;
                content_length = content_length * 10 + (digits[i] - '0');
            }
        } else if (kind != kind_plain) {
            goto decline;
        }
        size += PyBytes_GET_SIZE(name) + PyBytes_GET_SIZE(value) + 4;
    }

    /* The framing ResponseFramer.head() chooses, and the first body() call's checks. */
    Py_ssize_t body_size = PyBytes_GET_SIZE(body);
    long long remaining = -1;
    int chunked = 0;
    char length_line[48];
    Py_ssize_t length_line_size = 0;
    if (content_length >= 0) {
        remaining = content_length;
    } else if (body_length >= 0) {
        length_line_size = put_length_line(length_line, body_length);
        remaining = body_length;
    } else if (http11) {
        chunked = 1;
    } else {
        keep_alive = 0;
    }
    if (remaining >= 0 && (body_size > remaining || (!more && remaining != body_size)))
        goto decline;  /* body() raises: the Python path's error */
    static const char chunked_line[] = "transfer-encoding: chunked\r\n";
    static const char close_line[] = "connection: close\r\n";
    static const char keep_alive_line[] = "connection: keep-alive\r\n";
    static const char last_chunk[] = "0\r\n\r\n";
    char chunk_size[24];
    Py_ssize_t chunk_size_len = 0;
    size += length_line_size + 2;
    if (chunked)
        size += sizeof chunked_line - 1;
    if (!keep_alive)
        size += sizeof close_line - 1;
    else if (http10)
        size += sizeof keep_alive_line - 1;
    if (chunked) {
        if (body_size) {
            chunk_size_len = put_chunk_size(chunk_size, body_size);
            size += chunk_size_len + body_size + 2;
        }
        if (!more)
            size += sizeof last_chunk - 1;
    } else {
        size += body_size;
    }

    result = PyBytes_FromStringAndSize(NULL, size);
    if (result == NULL)
        goto done;
    char *out = PyBytes_AS_STRING(result);
    out = put(out, PyBytes_AS_STRING(line), PyBytes_GET_SIZE(line));
    out = put(out, PyBytes_AS_STRING(defaults), PyBytes_GET_SIZE(defaults));
    for (Py_ssize_t k = 0; k < count; k++) {
        PyObject *name = PyTuple_GET_ITEM(fields[k], 0), *value = PyTuple_GET_ITEM(fields[k], 1);
        out = put(out, PyBytes_AS_STRING(name), PyBytes_GET_SIZE(name));
        out = put(out, ": ", 2);
        out = put(out, PyBytes_AS_STRING(value), PyBytes_GET_SIZE(value));
        out = put(out, "\r\n", 2);
    }
    out = put(out, length_line, length_line_size);
    if (chunked)
        out = put(out, chunked_line, sizeof chunked_line - 1);
    if (!keep_alive)
        out = put(out, close_line, sizeof close_line - 1);
    else if (http10)
        out = put(out, keep_alive_line, sizeof keep_alive_line - 1);
    out = put(out, "\r\n", 2);
    if (chunked) {
        if (body_size) {
            out = put(out, chunk_size, chunk_size_len);
            out = put(out, PyBytes_AS_STRING(body), body_size);
            out = put(out, "\r\n", 2);
        }
        if (!more)
            out = put(out, last_chunk, sizeof last_chunk - 1);
    } else {
        out = put(out, PyBytes_AS_STRING(body), body_size);
    }
    assert(out == PyBytes_AS_STRING(result) + size);

    /* The framer's state as head() then body() leave it. */
    PyObject *state[N_FRAMER_FIELDS] = {
        remaining >= 0 ? PyLong_FromLongLong(remaining - body_size) : Py_NewRef(Py_None),
        PyLong_FromSsize_t(body_size),
        Py_NewRef(chunked ? Py_True : Py_False),
        Py_NewRef(Py_False),
        Py_NewRef(keep_alive ? Py_True : Py_False),
        Py_NewRef(Py_False),
    };
    if (state[0] == NULL || state[1] == NULL || set_framer_state(framer, state) < 0)
        Py_CLEAR(result);
    for (int k = 0; k < N_FRAMER_FIELDS; k++)
        Py_XDECREF(state[k]);
    goto done;
decline:
    result = Py_NewRef(Py_None);
done:
    for (Py_ssize_t k = 0; k < count; k++)
        Py_DECREF(fields[k]);
    return result;
}

static PyMethodDef methods[] = {
    {"parse_head", (PyCFunction)(void (*)(void))parse_head, METH_FASTCALL, parse_head_doc},
    {"has_any_name", (PyCFunction)(void (*)(void))has_any_name, METH_FASTCALL,
     has_any_name_doc},
    {"environ_fields", (PyCFunction)(void (*)(void))environ_fields, METH_FASTCALL,
     environ_fields_doc},
    {"framer_tables", (PyCFunction)(void (*)(void))framer_tables, METH_FASTCALL,
     framer_tables_doc},
    {"frame_response", (PyCFunction)(void (*)(void))frame_response, METH_FASTCALL,
     frame_response_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    "pier.proto._h1head",
    "The HTTP/1.1 request-head fast path (see parse_head).",
    -1,
    methods,
    NULL,
    NULL,
    NULL,
    NULL,
};

PyMODINIT_FUNC
PyInit__h1head(void)
{
    init_char_classes();
    for (size_t k = 0; k < N_COMMON; k++) {
        common_name_objects[k] = PyBytes_FromString(common_names[k]);
        if (common_name_objects[k] == NULL)
            return NULL;
    }
    for (size_t k = 0; k < N_METHODS; k++) {
        method_objects[k] = PyUnicode_InternFromString(method_names[k]);
        if (method_objects[k] == NULL)
            return NULL;
    }
    version_11 = PyUnicode_InternFromString("1.1");
    version_10 = PyUnicode_InternFromString("1.0");
    if (version_11 == NULL || version_10 == NULL)
        return NULL;
    PyObject **attrs[6] = {&attr_chunked, &attr_keep_alive, &attr_no_body, &attr_remaining,
                           &attr_sent, &attr_trailers};
    const char *attr_names[6] = {"chunked", "keep_alive", "no_body", "remaining", "sent",
                                 "trailers"};
    for (int k = 0; k < 6; k++) {
        *attrs[k] = PyUnicode_InternFromString(attr_names[k]);
        if (*attrs[k] == NULL)
            return NULL;
    }
    return PyModule_Create(&module_def);
}
