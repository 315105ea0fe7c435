/*
 * cel.c - see cel.h.  A recursive descent over cel-spec's grammar:
 *   expr     = or ['?' or ':' expr]
 *   or       = and {'||' and}       and = rel {'&&' rel}
 *   rel      = add {relop add}      add = mul {('+'|'-') mul}
 *   mul      = unary {('*'|'/'|'%') unary}
 *   unary    = member | '!'{'!'} member | '-'{'-'} member
 *   member   = primary {'.' IDENT ['(' args ')'] | '[' expr ']' | '{' fields '}'}
 *   primary  = ['.'] IDENT ['(' args ')'] | '(' expr ')' | '[' list ']' | '{' map '}' | literal
 * No allocation; the depth is capped (CEL_DEPTH_MAX).
 */
#include "cel.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

enum { K_END, K_IDENT, K_LIT, K_OP, K_BAD };

struct cel_p {
	const char *s, *tok; /* input, current token's start */
	size_t tlen;
	int kind;
	int depth;
	int rc;
	char *why;
	size_t cap;
};

/* cel-spec's reserved words: not identifiers */
static const char *const reserved[] = { "as",	   "break",   "const",	 "continue", "else",   "for",
					"function", "if",      "import", "let",	     "loop",   "package",
					"namespace", "return", "var",	 "void",     "while",  "in" };

/* Functions and macros CEL's RegisterBuiltinFunctions and parser define. */
static const char *const builtins[] = { "size",	       "string",	 "int",		  "uint",
					"double",      "bytes",		 "bool",	  "type",
					"dyn",	       "duration",	 "timestamp",	  "matches",
					"contains",    "startsWith",	 "endsWith",	  "getFullYear",
					"getMonth",    "getDayOfYear",	 "getDayOfMonth", "getDate",
					"getDayOfWeek", "getHours",	 "getMinutes",	  "getSeconds",
					"getMilliseconds", "has",	 "all",		  "exists",
					"exists_one",  "map",		 "filter" };

static void fail(struct cel_p *p, int rc, const char *msg)
{
	if (p->rc == CEL_PARSE || (p->rc && rc != CEL_PARSE))
		return;
	p->rc = rc; /* a parse error wins over a function: CEL parses before it builds */
	if (p->cap)
		snprintf(p->why, p->cap, "%s at offset %d", msg, (int)(p->tok - p->s));
}

/* a quoted string after any r/b prefix; returns the end or NULL */
static const char *str_end(const char *q, int raw)
{
	char c = *q;
	int triple = q[1] == c && q[2] == c;

	q += triple ? 3 : 1;
	for (; *q; q++) {
		if (*q == '\\' && !raw) {
			if (!q[1])
				return NULL;
			q++;
			continue;
		}
		if (!triple && (*q == '\n' || *q == '\r'))
			return NULL;
		if (*q == c && (!triple || (q[1] == c && q[2] == c)))
			return q + (triple ? 3 : 1);
	}
	return NULL;
}

static void next(struct cel_p *p)
{
	const char *q = p->tok + p->tlen;
	static const char *const ops2[] = { "<=", ">=", "==", "!=", "&&", "||" };
	size_t i;

	while (*q == ' ' || *q == '\t' || *q == '\n' || *q == '\r' || *q == '\f' ||
	       (q[0] == '/' && q[1] == '/')) {
		if (*q == '/')
			q += strcspn(q, "\n");
		else
			q++;
	}
	p->tok = q;
	p->tlen = 0;
	if (!*q) {
		p->kind = K_END;
		return;
	}
	/* strings and bytes, with r/R and b/B prefixes */
	{
		const char *r = q;
		int raw = 0, by = 0;

		while ((*r == 'r' || *r == 'R' || *r == 'b' || *r == 'B') && r - q < 2) {
			if (*r == 'r' || *r == 'R')
				raw++;
			else
				by++;
			r++;
		}
		if ((*r == '"' || *r == '\'') && raw <= 1 && by <= 1) {
			const char *e = str_end(r, raw);

			p->kind = e ? K_LIT : K_BAD;
			p->tlen = e ? (size_t)(e - q) : strlen(q);
			return;
		}
	}
	if (isalpha((unsigned char)*q) || *q == '_') {
		const char *e = q;

		while (isalnum((unsigned char)*e) || *e == '_')
			e++;
		p->tlen = (size_t)(e - q);
		p->kind = K_IDENT;
		if ((p->tlen == 4 && (!memcmp(q, "true", 4) || !memcmp(q, "null", 4))) ||
		    (p->tlen == 5 && !memcmp(q, "false", 5)))
			p->kind = K_LIT;
		else if (p->tlen == 2 && !memcmp(q, "in", 2))
			p->kind = K_OP;
		return;
	}
	if (isdigit((unsigned char)*q) || (*q == '.' && isdigit((unsigned char)q[1]))) {
		const char *e = q;

		if (e[0] == '0' && (e[1] == 'x' || e[1] == 'X')) {
			e += 2;
			if (!isxdigit((unsigned char)*e)) {
				p->kind = K_BAD;
				return;
			}
			while (isxdigit((unsigned char)*e))
				e++;
			if (*e == 'u' || *e == 'U')
				e++;
		} else {
			int dbl = 0;

			while (isdigit((unsigned char)*e))
				e++;
			if (*e == '.' && isdigit((unsigned char)e[1])) {
				dbl = 1;
				e++;
				while (isdigit((unsigned char)*e))
					e++;
			}
			if ((*e == 'e' || *e == 'E') &&
			    (isdigit((unsigned char)e[1]) ||
			     ((e[1] == '+' || e[1] == '-') && isdigit((unsigned char)e[2])))) {
				dbl = 1;
				e += 2;
				while (isdigit((unsigned char)*e))
					e++;
			}
			if (!dbl && (*e == 'u' || *e == 'U'))
				e++;
		}
		if (isalnum((unsigned char)*e) || *e == '_') {
			p->kind = K_BAD;
			return;
		}
		p->tlen = (size_t)(e - q);
		p->kind = K_LIT;
		return;
	}
	for (i = 0; i < sizeof(ops2) / sizeof(ops2[0]); i++)
		if (!strncmp(q, ops2[i], 2)) {
			p->kind = K_OP;
			p->tlen = 2;
			return;
		}
	if (strchr("()[]{}.,:?!-+*/%<>", *q)) {
		p->kind = K_OP;
		p->tlen = 1;
		return;
	}
	p->kind = K_BAD;
}

static int is(const struct cel_p *p, const char *op)
{
	return p->kind == K_OP && p->tlen == strlen(op) && !memcmp(p->tok, op, p->tlen);
}

static int expect(struct cel_p *p, const char *op)
{
	if (!is(p, op)) {
		char m[48];

		snprintf(m, sizeof(m), "expected '%s'", op);
		fail(p, CEL_PARSE, m);
		return -1;
	}
	next(p);
	return 0;
}

static void expr(struct cel_p *p);

static int ident_ok(struct cel_p *p)
{
	size_t i;

	if (p->kind != K_IDENT) {
		fail(p, CEL_PARSE, "expected an identifier");
		return 0;
	}
	for (i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++)
		if (p->tlen == strlen(reserved[i]) && !memcmp(p->tok, reserved[i], p->tlen)) {
			fail(p, CEL_PARSE, "reserved word used as an identifier");
			return 0;
		}
	return 1;
}

static void call_check(struct cel_p *p, const char *name, size_t len)
{
	size_t i;
	char m[96];

	for (i = 0; i < sizeof(builtins) / sizeof(builtins[0]); i++)
		if (len == strlen(builtins[i]) && !memcmp(name, builtins[i], len))
			return;
	if (p->rc == CEL_FUNCTION)
		return;
	snprintf(m, sizeof(m), "no such function '%.*s'", (int)(len > 40 ? 40 : len), name);
	/* a parse error found later still wins: CEL parses before it builds */
	if (!p->rc) {
		p->rc = CEL_FUNCTION;
		if (p->cap)
			snprintf(p->why, p->cap, "%s", m);
	}
}

/* '(' already current: args up to ')' */
static void args(struct cel_p *p, const char *close)
{
	next(p);
	if (is(p, close)) {
		next(p);
		return;
	}
	for (;;) {
		expr(p);
		if (p->rc == CEL_PARSE)
			return;
		if (is(p, ",")) {
			next(p);
			if (is(p, close)) { /* CEL allows a trailing comma in lists */
				next(p);
				return;
			}
			continue;
		}
		expect(p, close);
		return;
	}
}

/* '{' current: map entries "expr: expr" or, after a type name, fields "ident: expr" */
static void inits(struct cel_p *p, int fields)
{
	next(p);
	while (!is(p, "}") && p->rc != CEL_PARSE) {
		if (fields) {
			if (!ident_ok(p))
				return;
			next(p);
		} else {
			expr(p);
		}
		if (expect(p, ":") < 0)
			return;
		expr(p);
		if (!is(p, ","))
			break;
		next(p);
	}
	expect(p, "}");
}

static void primary(struct cel_p *p)
{
	if (is(p, ".")) /* a leading '.': the root namespace */
		next(p);
	if (p->kind == K_IDENT) {
		const char *name = p->tok;
		size_t len = p->tlen;

		if (!ident_ok(p))
			return;
		next(p);
		if (is(p, "(")) {
			call_check(p, name, len);
			args(p, ")");
		}
		return;
	}
	if (p->kind == K_LIT) {
		next(p);
		return;
	}
	if (is(p, "(")) {
		next(p);
		expr(p);
		expect(p, ")");
		return;
	}
	if (is(p, "[")) {
		args(p, "]");
		return;
	}
	if (is(p, "{")) {
		inits(p, 0);
		return;
	}
	fail(p, CEL_PARSE, p->kind == K_END ? "unexpected end" : "unexpected token");
}

static void member(struct cel_p *p)
{
	int ident = p->kind == K_IDENT || is(p, ".");

	primary(p);
	while (p->rc != CEL_PARSE) {
		if (is(p, ".")) {
			const char *name;
			size_t len;

			next(p);
			if (!ident_ok(p))
				return;
			name = p->tok;
			len = p->tlen;
			next(p);
			if (is(p, "(")) {
				call_check(p, name, len);
				args(p, ")");
				ident = 0;
			}
		} else if (is(p, "[")) {
			next(p);
			expr(p);
			expect(p, "]");
			ident = 0;
		} else if (is(p, "{") && ident) { /* a message: Name{field: value} */
			inits(p, 1);
			ident = 0;
		} else {
			return;
		}
	}
}

static void unary(struct cel_p *p)
{
	while (is(p, "!") || is(p, "-"))
		next(p);
	member(p);
}

static void binary(struct cel_p *p, int level)
{
	static const char *const ops[][7] = {
		{ "||" }, { "&&" }, { "<", "<=", ">", ">=", "==", "!=", "in" }, { "+", "-" }, { "*", "/", "%" },
	};
	size_t i;

	for (;;) {
		if (level == 4)
			unary(p);
		else
			binary(p, level + 1);
		if (p->rc == CEL_PARSE)
			return;
		for (i = 0; i < 7 && ops[level][i]; i++)
			if (is(p, ops[level][i]))
				break;
		if (i == 7 || !ops[level][i])
			return;
		next(p);
	}
}

static void expr(struct cel_p *p)
{
	if (++p->depth > CEL_DEPTH_MAX) {
		fail(p, CEL_PARSE, "nested too deep");
		return;
	}
	binary(p, 0);
	if (p->rc != CEL_PARSE && is(p, "?")) {
		next(p);
		binary(p, 0);
		if (expect(p, ":") == 0)
			expr(p);
	}
	p->depth--;
}

int cel_check(const char *text, char *why, size_t cap)
{
	struct cel_p p = { .s = text, .tok = text, .why = why, .cap = cap };

	if (cap)
		why[0] = '\0';
	next(&p);
	expr(&p);
	if (p.rc != CEL_PARSE && p.kind != K_END) {
		fail(&p, CEL_PARSE, p.kind == K_BAD ? "bad token" : "unexpected token");
	}
	return p.rc;
}

int cel_istio_tag_evaluated(const char *text)
{
	static const char *const attrs[] = { "request.host",	"request.method",      "request.path",
					     "request.url_path", "response.code",       "source.address",
					     "source.port",	"destination.address", "destination.port",
					     "xds.cluster_name", "xds.route_name" };
	static const char *const peer[] = { "app", "version", "workload", "namespace", "cluster", "service", "revision" };
	size_t n = strlen(text), i, k;
	const char *f;

	while (n && text[n - 1] == ' ')
		n--;
	while (n && *text == ' ') {
		text++;
		n--;
	}
	if (n > 8 && !memcmp(text, "string(", 7) && text[n - 1] == ')') {
		text += 7;
		n -= 8;
	}
	/* a literal without escapes nor its own quote inside */
	if (n >= 2 && (text[0] == '\'' || text[0] == '"') && text[n - 1] == text[0])
		return !memchr(text + 1, text[0], n - 2) && !memchr(text + 1, '\\', n - 2);
	for (i = 0; i < sizeof(attrs) / sizeof(attrs[0]); i++)
		if (n == strlen(attrs[i]) && !memcmp(text, attrs[i], n))
			return 1;
	if (n > 19 && !memcmp(text, "request.headers[", 16) && text[n - 1] == ']' &&
	    (text[16] == '\'' || text[16] == '"') && text[n - 2] == text[16])
		return !memchr(text + 17, text[16], n - 19) && !memchr(text + 17, '\\', n - 19);
	if (n > 14 && !memcmp(text, "upstream_peer.", 14))
		f = text + 14;
	else if (n > 16 && !memcmp(text, "downstream_peer.", 16))
		f = text + 16;
	else
		return 0;
	k = n - (size_t)(f - text);
	for (i = 0; i < sizeof(peer) / sizeof(peer[0]); i++)
		if (k == strlen(peer[i]) && !memcmp(f, peer[i], k))
			return 1;
	return 0;
}
