/*
 * alogexpr.c - see alogexpr.h.  A recursive-descent parser over a small
 * lexer builds a tree of nodes in one array (indices, no pointers); the
 * types are checked while building, so evaluation cannot meet a mismatch
 * other than CEL's error value (a missing header).
 */
#include "dataplane/alogexpr.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum alx_type { T_BOOL, T_INT, T_STR, T_FLAGS /* int or string, by the other side */ };

enum alx_op {
	N_INT, N_STR, N_BOOL,       /* literals */
	N_ATTR,                     /* a of enum alx_attr */
	N_HDR,                      /* request.headers[i] */
	N_NOT, N_AND, N_OR,
	N_EQ, N_NE, N_LT, N_LE, N_GT, N_GE,
	N_STARTS, N_ENDS, N_CONTAINS,
};

enum alx_attr {
	A_PATH, A_URL_PATH, A_HOST, A_METHOD, A_SCHEME, A_PROTOCOL, A_ID, A_UA, A_REFERER, A_REQ_SIZE,
	A_CODE, A_DETAILS, A_FLAGS, A_RESP_SIZE,
	A_MTLS, A_SNI, A_TERMINATION, A_SRC_ADDR, A_SRC_PORT, A_DST_ADDR, A_DST_PORT,
	A_UP_ADDR, A_UP_FAILURE, A_CLUSTER, A_ROUTE,
};

static const struct {
	const char *name;
	enum alx_attr a;
	enum alx_type t;
} alx_attrs[] = {
	{ "request.path", A_PATH, T_STR },
	{ "request.url_path", A_URL_PATH, T_STR },
	{ "request.host", A_HOST, T_STR },
	{ "request.method", A_METHOD, T_STR },
	{ "request.scheme", A_SCHEME, T_STR },
	{ "request.protocol", A_PROTOCOL, T_STR },
	{ "request.id", A_ID, T_STR },
	{ "request.useragent", A_UA, T_STR },
	{ "request.referer", A_REFERER, T_STR },
	{ "request.size", A_REQ_SIZE, T_INT },
	{ "response.code", A_CODE, T_INT },
	{ "response.code_details", A_DETAILS, T_STR },
	{ "response.flags", A_FLAGS, T_FLAGS },
	{ "response.size", A_RESP_SIZE, T_INT },
	{ "connection.mtls", A_MTLS, T_BOOL },
	{ "connection.requested_server_name", A_SNI, T_STR },
	{ "connection.termination_details", A_TERMINATION, T_STR },
	{ "source.address", A_SRC_ADDR, T_STR },
	{ "source.port", A_SRC_PORT, T_INT },
	{ "destination.address", A_DST_ADDR, T_STR },
	{ "destination.port", A_DST_PORT, T_INT },
	{ "upstream.address", A_UP_ADDR, T_STR },
	{ "upstream.transport_failure_reason", A_UP_FAILURE, T_STR },
	{ "xds.cluster_name", A_CLUSTER, T_STR },
	{ "xds.route_name", A_ROUTE, T_STR },
};

struct alx_node {
	enum alx_op op;
	enum alx_type t;
	int l, r;                    /* children (indices), -1 none */
	int64_t i;                   /* N_INT, N_BOOL; N_ATTR: the attribute; N_HDR: the header index */
	char *s;                     /* N_STR (owned, NUL-terminated) */
	size_t slen;
};

struct alx {
	struct alx_node *n;
	size_t count;
	int root;
};

/* tokens */
enum tk { TK_END, TK_IDENT, TK_INT, TK_STR, TK_OP, TK_BAD };

struct alx_parser {
	const char *src;
	size_t len, pos;
	enum tk tk;
	size_t tstart, tlen;         /* the token's text */
	int64_t ival;
	char *sval;                  /* TK_STR, decoded (owned until taken) */
	size_t slen;
	struct alx *x;
	int depth;
	alx_header_fn hdr;
	void *hdr_ctx;
	char *err;
	size_t cap;
	int failed;
};

static void alx_fail(struct alx_parser *p, size_t at, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void alx_fail(struct alx_parser *p, size_t at, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (p->failed)
		return;
	p->failed = 1;
	if (!p->cap)
		return;
	n = snprintf(p->err, p->cap, "access log filter expression, offset %zu: ", at);
	if (n < 0 || (size_t)n >= p->cap)
		return;
	va_start(ap, fmt);
	vsnprintf(p->err + n, p->cap - (size_t)n, fmt, ap);
	va_end(ap);
}

static bool is_ident0(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* The next token into p (tk, tstart, tlen, ival, sval). */
static void alx_next(struct alx_parser *p)
{
	const char *s = p->src;
	size_t i = p->pos;

	free(p->sval);
	p->sval = NULL;
	while (i < p->len && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r'))
		i++;
	p->tstart = i;
	if (i >= p->len) {
		p->tk = TK_END;
		p->tlen = 0;
		p->pos = i;
		return;
	}
	if (is_ident0(s[i])) {
		while (i < p->len && (is_ident0(s[i]) || is_digit(s[i])))
			i++;
		p->tk = TK_IDENT;
	} else if (is_digit(s[i])) {
		int64_t v = 0;

		while (i < p->len && is_digit(s[i])) {
			if (v > (INT64_MAX - 9) / 10) {
				alx_fail(p, p->tstart, "integer out of range");
				p->tk = TK_BAD;
				p->pos = i;
				return;
			}
			v = v * 10 + (s[i++] - '0');
		}
		if (i < p->len && (s[i] == 'u' || s[i] == 'U'))
			i++; /* CEL's uint literal: the same number here */
		p->ival = v;
		p->tk = TK_INT;
	} else if (s[i] == '\'' || s[i] == '"') {
		char q = s[i++], *out = malloc(p->len - i + 1);
		size_t n = 0;

		if (!out) {
			alx_fail(p, p->tstart, "out of memory");
			p->tk = TK_BAD;
			return;
		}
		while (i < p->len && s[i] != q) {
			char c = s[i++];

			if (c == '\\') {
				if (i >= p->len)
					break;
				c = s[i++];
				switch (c) {
				case 'n': c = '\n'; break;
				case 't': c = '\t'; break;
				case 'r': c = '\r'; break;
				case '\\': case '\'': case '"': break;
				default:
					free(out);
					alx_fail(p, i - 2, "unsupported escape \\%c in a string", c);
					p->tk = TK_BAD;
					p->pos = i;
					return;
				}
			}
			out[n++] = c;
		}
		if (i >= p->len) {
			free(out);
			alx_fail(p, p->tstart, "unterminated string");
			p->tk = TK_BAD;
			p->pos = i;
			return;
		}
		i++;
		out[n] = 0;
		p->sval = out;
		p->slen = n;
		p->tk = TK_STR;
	} else {
		static const char *const two[] = { "==", "!=", "<=", ">=", "&&", "||" };
		size_t k;

		p->tk = TK_OP;
		for (k = 0; k < sizeof(two) / sizeof(two[0]); k++)
			if (i + 1 < p->len && s[i] == two[k][0] && s[i + 1] == two[k][1]) {
				i += 2;
				goto done;
			}
		if (strchr("()[].,!<>", s[i]))
			i++;
		else
			p->tk = TK_BAD;
		if (p->tk == TK_BAD) {
			alx_fail(p, i, "unsupported character '%c'", s[i] >= 0x20 && s[i] < 0x7f ? s[i] : '?');
			p->pos = i + 1;
			return;
		}
	}
done:
	p->tlen = i - p->tstart;
	p->pos = i;
}

static bool tk_is(const struct alx_parser *p, const char *op)
{
	return (p->tk == TK_OP || p->tk == TK_IDENT) && p->tlen == strlen(op) && !memcmp(p->src + p->tstart, op, p->tlen);
}

static int alx_node(struct alx_parser *p, enum alx_op op, enum alx_type t, int l, int r)
{
	struct alx_node *n;

	if (p->failed)
		return -1;
	if (p->x->count >= ALX_MAX_NODES) {
		alx_fail(p, p->tstart, "more than %d nodes", ALX_MAX_NODES);
		return -1;
	}
	n = &p->x->n[p->x->count];
	memset(n, 0, sizeof(*n));
	n->op = op;
	n->t = t;
	n->l = l;
	n->r = r;
	return (int)p->x->count++;
}

static int alx_or(struct alx_parser *p);

static const char *type_name(enum alx_type t)
{
	return t == T_BOOL ? "bool" : t == T_INT ? "int" : t == T_STR ? "string" : "flags";
}

/* a member chain a.b.c, a.b['x'], then .method(arg) */
static int alx_primary(struct alx_parser *p)
{
	char path[96];
	size_t plen = 0, at = p->tstart;
	int id = -1;
	size_t k;

	if (p->failed)
		return -1;
	if (tk_is(p, "(")) {
		alx_next(p);
		id = alx_or(p);
		if (!p->failed && !tk_is(p, ")"))
			alx_fail(p, p->tstart, "')' expected");
		alx_next(p);
		return p->failed ? -1 : id;
	}
	if (p->tk == TK_INT) {
		id = alx_node(p, N_INT, T_INT, -1, -1);
		if (id >= 0)
			p->x->n[id].i = p->ival;
		alx_next(p);
		return id;
	}
	if (p->tk == TK_STR) {
		id = alx_node(p, N_STR, T_STR, -1, -1);
		if (id >= 0) {
			p->x->n[id].s = p->sval;
			p->x->n[id].slen = p->slen;
			p->sval = NULL;
		}
		alx_next(p);
		return id;
	}
	if (tk_is(p, "true") || tk_is(p, "false")) {
		id = alx_node(p, N_BOOL, T_BOOL, -1, -1);
		if (id >= 0)
			p->x->n[id].i = tk_is(p, "true");
		alx_next(p);
		return id;
	}
	if (p->tk != TK_IDENT) {
		if (p->tk == TK_END)
			alx_fail(p, p->tstart, "unexpected end of expression");
		else
			alx_fail(p, p->tstart, "unexpected '%.*s'", (int)p->tlen, p->src + p->tstart);
		return -1;
	}
	/* an attribute: idents joined by '.', until a method call or '[' */
	for (;;) {
		if (p->tk != TK_IDENT || plen + p->tlen + 2 > sizeof(path)) {
			alx_fail(p, p->tstart, "attribute name expected");
			return -1;
		}
		memcpy(path + plen, p->src + p->tstart, p->tlen);
		plen += p->tlen;
		path[plen] = 0;
		alx_next(p);
		if (!tk_is(p, "."))
			break;
		/* a method of what we have so far? (request.path.startsWith) */
		{
			size_t save = p->pos, sstart = p->tstart;

			alx_next(p);
			if (p->tk == TK_IDENT && p->pos < p->len) {
				size_t q = p->pos;

				while (q < p->len && p->src[q] == ' ')
					q++;
				if (q < p->len && p->src[q] == '(') {
					/* rewind to the '.' and let the method loop take it */
					p->pos = save;
					p->tstart = sstart;
					p->tk = TK_OP;
					p->tlen = 1;
					break;
				}
			}
		}
		path[plen++] = '.';
		path[plen] = 0;
	}
	if (!strcmp(path, "request.headers")) {
		int hi;

		if (!tk_is(p, "[")) {
			alx_fail(p, p->tstart, "request.headers is read one header at a time: request.headers['name']");
			return -1;
		}
		alx_next(p);
		if (p->tk != TK_STR || !p->slen) {
			alx_fail(p, p->tstart, "a header name string expected");
			return -1;
		}
		hi = p->hdr(p->hdr_ctx, p->sval, p->slen);
		if (hi < 0) {
			alx_fail(p, p->tstart, "more than %d request headers named by one access log config",
				 PX_ALOG_MAX_HDRS);
			return -1;
		}
		alx_next(p);
		if (!tk_is(p, "]")) {
			alx_fail(p, p->tstart, "']' expected");
			return -1;
		}
		alx_next(p);
		id = alx_node(p, N_HDR, T_STR, -1, -1);
		if (id >= 0)
			p->x->n[id].i = hi;
	} else {
		for (k = 0; k < sizeof(alx_attrs) / sizeof(alx_attrs[0]); k++)
			if (!strcmp(path, alx_attrs[k].name))
				break;
		if (k == sizeof(alx_attrs) / sizeof(alx_attrs[0])) {
			alx_fail(p, at, "unsupported attribute or function '%s'", path);
			return -1;
		}
		id = alx_node(p, N_ATTR, alx_attrs[k].t, -1, -1);
		if (id >= 0)
			p->x->n[id].i = alx_attrs[k].a;
	}
	/* methods: .startsWith('x') .endsWith('x') .contains('x') */
	while (id >= 0 && tk_is(p, ".")) {
		enum alx_op op;
		size_t mat;
		int arg;

		alx_next(p);
		mat = p->tstart;
		if (tk_is(p, "startsWith"))
			op = N_STARTS;
		else if (tk_is(p, "endsWith"))
			op = N_ENDS;
		else if (tk_is(p, "contains"))
			op = N_CONTAINS;
		else {
			alx_fail(p, mat, "unsupported method '%.*s'", (int)p->tlen, p->src + p->tstart);
			return -1;
		}
		alx_next(p);
		if (!tk_is(p, "(")) {
			alx_fail(p, p->tstart, "'(' expected");
			return -1;
		}
		alx_next(p);
		if (++p->depth > ALX_MAX_DEPTH) {
			alx_fail(p, p->tstart, "nested more than %d deep", ALX_MAX_DEPTH);
			return -1;
		}
		arg = alx_or(p);
		p->depth--;
		if (p->failed)
			return -1;
		if (!tk_is(p, ")")) {
			alx_fail(p, p->tstart, "')' expected");
			return -1;
		}
		alx_next(p);
		if (p->x->n[id].t != T_STR && p->x->n[id].t != T_FLAGS) {
			alx_fail(p, mat, "%s has no string methods", type_name(p->x->n[id].t));
			return -1;
		}
		if (p->x->n[arg].t != T_STR) {
			alx_fail(p, mat, "a string argument expected, not %s", type_name(p->x->n[arg].t));
			return -1;
		}
		id = alx_node(p, op, T_BOOL, id, arg);
	}
	return id;
}

static int alx_unary(struct alx_parser *p)
{
	int id;

	if (++p->depth > ALX_MAX_DEPTH) {
		alx_fail(p, p->tstart, "nested more than %d deep", ALX_MAX_DEPTH);
		return -1;
	}
	if (tk_is(p, "!")) {
		size_t at = p->tstart;

		alx_next(p);
		id = alx_unary(p);
		if (id >= 0 && p->x->n[id].t != T_BOOL) {
			alx_fail(p, at, "'!' takes a bool, not %s", type_name(p->x->n[id].t));
			id = -1;
		}
		id = id >= 0 ? alx_node(p, N_NOT, T_BOOL, id, -1) : -1;
	} else {
		id = alx_primary(p);
	}
	p->depth--;
	return id;
}

static int alx_cmp(struct alx_parser *p)
{
	static const struct {
		const char *s;
		enum alx_op op;
	} ops[] = { { "==", N_EQ }, { "!=", N_NE }, { "<=", N_LE }, { ">=", N_GE }, { "<", N_LT }, { ">", N_GT } };
	int l = alx_unary(p), r;
	size_t k, at;
	enum alx_type lt, rt;

	if (l < 0)
		return -1;
	for (k = 0; k < sizeof(ops) / sizeof(ops[0]); k++)
		if (tk_is(p, ops[k].s))
			break;
	if (k == sizeof(ops) / sizeof(ops[0])) {
		if (tk_is(p, "in") || (p->tk == TK_OP && !tk_is(p, ")") && !tk_is(p, "&&") && !tk_is(p, "||") &&
				       !tk_is(p, ",") && !tk_is(p, "]")))
			alx_fail(p, p->tstart, "unsupported operator '%.*s'", (int)p->tlen, p->src + p->tstart);
		return l;
	}
	at = p->tstart;
	alx_next(p);
	r = alx_unary(p);
	if (r < 0)
		return -1;
	lt = p->x->n[l].t;
	rt = p->x->n[r].t;
	/* response.flags takes the other side's type */
	if (lt == T_FLAGS && rt == T_FLAGS)
		lt = rt = T_INT;
	if (lt == T_FLAGS)
		lt = rt == T_STR ? T_STR : T_INT;
	if (rt == T_FLAGS)
		rt = lt == T_STR ? T_STR : T_INT;
	if (lt != rt) {
		alx_fail(p, at, "no '%s' between %s and %s", ops[k].s, type_name(p->x->n[l].t), type_name(p->x->n[r].t));
		return -1;
	}
	if (lt == T_BOOL && ops[k].op != N_EQ && ops[k].op != N_NE) {
		alx_fail(p, at, "bools compare with == and != only");
		return -1;
	}
	{
		int id = alx_node(p, ops[k].op, T_BOOL, l, r);

		if (id >= 0)
			p->x->n[id].i = lt; /* the comparison's type */
		return id;
	}
}

static int alx_and(struct alx_parser *p)
{
	int l = alx_cmp(p);

	while (l >= 0 && tk_is(p, "&&")) {
		size_t at = p->tstart;
		int r;

		alx_next(p);
		r = alx_cmp(p);
		if (r < 0)
			return -1;
		if (p->x->n[l].t != T_BOOL || p->x->n[r].t != T_BOOL) {
			alx_fail(p, at, "'&&' takes bools");
			return -1;
		}
		l = alx_node(p, N_AND, T_BOOL, l, r);
	}
	return l;
}

static int alx_or(struct alx_parser *p)
{
	int l = alx_and(p);

	while (l >= 0 && tk_is(p, "||")) {
		size_t at = p->tstart;
		int r;

		alx_next(p);
		r = alx_and(p);
		if (r < 0)
			return -1;
		if (p->x->n[l].t != T_BOOL || p->x->n[r].t != T_BOOL) {
			alx_fail(p, at, "'||' takes bools");
			return -1;
		}
		l = alx_node(p, N_OR, T_BOOL, l, r);
	}
	return l;
}

void alx_free(struct alx *x)
{
	size_t i;

	if (!x)
		return;
	for (i = 0; i < x->count; i++)
		free(x->n[i].s);
	free(x->n);
	free(x);
}

int alx_compile(const char *src, size_t len, alx_header_fn hdr, void *hdr_ctx, struct alx **out, char *err,
		size_t cap)
{
	struct alx_parser p;
	int rc = -EINVAL;

	*out = NULL;
	memset(&p, 0, sizeof(p));
	p.src = src;
	p.len = len;
	p.hdr = hdr;
	p.hdr_ctx = hdr_ctx;
	p.err = err;
	p.cap = cap;
	if (cap)
		err[0] = 0;
	if (len > ALX_MAX_LEN) {
		alx_fail(&p, 0, "longer than %d bytes", ALX_MAX_LEN);
		goto out;
	}
	if (memchr(src, 0, len)) {
		alx_fail(&p, (size_t)((const char *)memchr(src, 0, len) - src), "a NUL byte");
		goto out;
	}
	p.x = calloc(1, sizeof(*p.x));
	if (!p.x || !(p.x->n = calloc(ALX_MAX_NODES, sizeof(*p.x->n)))) {
		rc = -ENOMEM;
		goto out;
	}
	alx_next(&p);
	p.x->root = alx_or(&p);
	if (!p.failed && p.tk != TK_END)
		alx_fail(&p, p.tstart, "unexpected '%.*s'", (int)p.tlen, p.src + p.tstart);
	if (!p.failed && p.x->n[p.x->root].t != T_BOOL)
		alx_fail(&p, 0, "the expression is a %s, not a bool", type_name(p.x->n[p.x->root].t));
	if (p.failed)
		goto out;
	*out = p.x;
	p.x = NULL;
	rc = 0;
out:
	free(p.sval);
	alx_free(p.x);
	return rc;
}

/* ------------------------------------------------------------ evaluation */

struct alx_val {
	enum { V_ERR, V_BOOL, V_INT, V_STR } k;
	int64_t i;
	const char *s;
	size_t n;
};

static struct alx_val v_str(const char *s, size_t n)
{
	struct alx_val v = { V_STR, 0, s ? s : "", s ? n : 0 };

	return v;
}

static struct alx_val v_cstr(const char *s)
{
	return v_str(s, s ? strlen(s) : 0);
}

static struct alx_val v_int(int64_t i)
{
	struct alx_val v = { V_INT, i, NULL, 0 };

	return v;
}

/* "IP:PORT" split at the last ':' (brackets of IPv6 kept off) */
static struct alx_val v_addr(const char *a, bool port)
{
	const char *c = a ? strrchr(a, ':') : NULL;

	if (!a || !c)
		return port ? v_int(0) : v_cstr(a);
	if (port)
		return v_int(strtol(c + 1, NULL, 10));
	return v_str(a, (size_t)(c - a));
}

static struct alx_val alx_attr(int a, const struct px_alog_entry *e, bool flags_str, char *fl, size_t flcap)
{
	const char *q;

	switch ((enum alx_attr)a) {
	case A_PATH: return v_str(e->path.p, e->path.len);
	case A_URL_PATH:
		q = e->path.len ? memchr(e->path.p, '?', e->path.len) : NULL;
		return v_str(e->path.p, q ? (size_t)(q - e->path.p) : e->path.len);
	case A_HOST: return v_str(e->authority.p, e->authority.len);
	case A_METHOD: return v_str(e->method.p, e->method.len);
	case A_SCHEME: return v_cstr(e->mtls ? "https" : "http");
	case A_PROTOCOL: return v_str(e->protocol.p, e->protocol.len);
	case A_ID: return v_str(e->rid.p, e->rid.len);
	case A_UA: return v_str(e->ua.p, e->ua.len);
	case A_REFERER: return v_cstr("");
	case A_REQ_SIZE: return v_int((int64_t)e->rx);
	case A_CODE: return v_int(e->status);
	case A_DETAILS: return v_cstr(e->details);
	case A_FLAGS:
		if (flags_str)
			return v_cstr(px_flags_str(e->flags, fl, flcap));
		return v_int((int64_t)px_flags_envoy(e->flags));
	case A_RESP_SIZE: return v_int((int64_t)e->tx);
	case A_MTLS: {
		struct alx_val v = { V_BOOL, e->mtls != 0, NULL, 0 };

		return v;
	}
	case A_SNI: return v_cstr(e->sni);
	case A_TERMINATION: return v_cstr(e->termination);
	case A_SRC_ADDR: return v_addr(e->downstream_remote, false);
	case A_SRC_PORT: return v_addr(e->downstream_remote, true);
	case A_DST_ADDR: return v_addr(e->downstream_local, false);
	case A_DST_PORT: return v_addr(e->downstream_local, true);
	case A_UP_ADDR: return v_cstr(e->upstream_host);
	case A_UP_FAILURE: return v_cstr(e->transport_failure);
	case A_CLUSTER: return v_cstr(e->upstream_cluster);
	case A_ROUTE: return v_cstr(e->route_name);
	}
	return v_int(0);
}

static int str_cmp(const struct alx_val *a, const struct alx_val *b)
{
	size_t n = a->n < b->n ? a->n : b->n;
	int c = n ? memcmp(a->s, b->s, n) : 0;

	return c ? c : a->n < b->n ? -1 : a->n > b->n;
}

/* flags_str: a response.flags below is read as its string (set by the
 * comparison above it, whose type the compiler fixed) */
static struct alx_val alx_ev(const struct alx *x, int id, const struct px_alog_entry *e, bool flags_str, char *fl,
			     size_t flcap)
{
	const struct alx_node *n = &x->n[id];
	struct alx_val a, b, r = { V_ERR, 0, NULL, 0 };

	switch (n->op) {
	case N_INT: return v_int(n->i);
	case N_STR: return v_str(n->s, n->slen);
	case N_BOOL: r.k = V_BOOL; r.i = n->i; return r;
	case N_ATTR: return alx_attr((int)n->i, e, flags_str, fl, flcap);
	case N_HDR:
		if ((size_t)n->i >= e->n_hdrs || !e->hdrs[n->i].p)
			return r; /* CEL: no such key */
		return v_str(e->hdrs[n->i].p, e->hdrs[n->i].len);
	case N_NOT:
		a = alx_ev(x, n->l, e, flags_str, fl, flcap);
		if (a.k == V_BOOL)
			a.i = !a.i;
		return a;
	case N_AND:
	case N_OR:
		/* CEL's commutative logic: a decided side wins over an error */
		a = alx_ev(x, n->l, e, flags_str, fl, flcap);
		if (a.k == V_BOOL && a.i == (n->op == N_OR))
			return a;
		b = alx_ev(x, n->r, e, flags_str, fl, flcap);
		if (b.k == V_BOOL && b.i == (n->op == N_OR))
			return b;
		if (a.k == V_ERR || b.k == V_ERR)
			return r;
		return b;
	case N_STARTS:
	case N_ENDS:
	case N_CONTAINS:
		a = alx_ev(x, n->l, e, true, fl, flcap);
		b = alx_ev(x, n->r, e, true, fl, flcap);
		if (a.k != V_STR || b.k != V_STR)
			return r;
		r.k = V_BOOL;
		if (b.n > a.n)
			r.i = 0;
		else if (n->op == N_STARTS)
			r.i = !b.n || !memcmp(a.s, b.s, b.n);
		else if (n->op == N_ENDS)
			r.i = !b.n || !memcmp(a.s + a.n - b.n, b.s, b.n);
		else {
			size_t k;

			r.i = !b.n;
			for (k = 0; !r.i && k + b.n <= a.n; k++)
				r.i = !memcmp(a.s + k, b.s, b.n);
		}
		return r;
	default: {
		int c;

		a = alx_ev(x, n->l, e, n->i == T_STR, fl, flcap);
		/* the flags buffer is reused: keep a's copy apart when both sides
		 * could be response.flags */
		{
			char fl2[64];

			b = alx_ev(x, n->r, e, n->i == T_STR, fl2, sizeof(fl2));
			if (a.k == V_ERR || b.k == V_ERR || a.k != b.k)
				return r;
			c = a.k == V_STR ? str_cmp(&a, &b) : (a.i > b.i) - (a.i < b.i);
		}
		r.k = V_BOOL;
		switch (n->op) {
		case N_EQ: r.i = c == 0; break;
		case N_NE: r.i = c != 0; break;
		case N_LT: r.i = c < 0; break;
		case N_LE: r.i = c <= 0; break;
		case N_GT: r.i = c > 0; break;
		case N_GE: r.i = c >= 0; break;
		default: r.k = V_ERR;
		}
		return r;
	}
	}
}

int alx_eval(const struct alx *x, const struct px_alog_entry *e)
{
	char fl[64];
	struct alx_val v = alx_ev(x, x->root, e, false, fl, sizeof(fl));

	return v.k == V_BOOL && v.i;
}
