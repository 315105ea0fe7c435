/*
 * json.c - see json.h.
 */
#include "json.h"

#include "arena.h"
#include "err.h"

#include <errno.h>
#include "str.h"

#include <stdlib.h>

#include <stdio.h>
#include <string.h>

void json_put_stringn(struct mesh_buf *b, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	size_t i, start = 0;

	mesh_buf_putc(b, '"');
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		const char *esc = NULL;
		char u[7];

		/* Bytes that are not UTF-8 (a node id or header from a client, a
		 * string cut at a byte cap) become U+FFFD, so whatever a client
		 * sends every JSON view stays valid JSON (issue 16). */
		if (c >= 0x80) {
			size_t k = mesh_utf8_seq((const unsigned char *)s + i, n - i);
			if (k) {
				i += k - 1;
				continue;
			}
			mesh_buf_append(b, s + start, i - start);
			mesh_buf_puts(b, "\\ufffd");
			start = i + 1;
			continue;
		}
		switch (c) {
		case '"': esc = "\\\""; break;
		case '\\': esc = "\\\\"; break;
		case '\n': esc = "\\n"; break;
		case '\r': esc = "\\r"; break;
		case '\t': esc = "\\t"; break;
		default:
			if (c < 0x20) {
				u[0] = '\\'; u[1] = 'u'; u[2] = '0'; u[3] = '0';
				u[4] = hex[c >> 4]; u[5] = hex[c & 15]; u[6] = '\0';
				esc = u;
			}
		}
		if (esc) {
			mesh_buf_append(b, s + start, i - start);
			mesh_buf_puts(b, esc);
			start = i + 1;
		}
	}
	mesh_buf_append(b, s + start, n - start);
	mesh_buf_putc(b, '"');
}

void json_put_string(struct mesh_buf *b, const char *s)
{
	if (!s) {
		mesh_buf_puts(b, "null");
		return;
	}
	json_put_stringn(b, s, strlen(s));
}

/* ---------------------------------------------------------------- reader */

/* A recursive-descent parser over the whole text.  It used to exist twice
 * (here, malloc'd, for JWT; in controlplane/kube, arena-based, with byte
 * ranges); the grammar is the same, so one parser serves both and the
 * callers' differences are data (struct json_limits). */

struct json__rd {
	struct arena *a;
	const struct json_limits *lim;
	const char *p, *end, *base;
};

static void json__ws(struct json__rd *r)
{
	while (r->p < r->end && (*r->p == ' ' || *r->p == '\t' || *r->p == '\n' || *r->p == '\r'))
		r->p++;
}

static int json__hex4(const char *p, unsigned *out)
{
	unsigned v = 0;
	int i;

	for (i = 0; i < 4; i++) {
		char c = p[i];
		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= (unsigned)(c - '0');
		else if (c >= 'a' && c <= 'f')
			v |= (unsigned)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			v |= (unsigned)(c - 'A' + 10);
		else
			return -MESH_EPARSE;
	}
	*out = v;
	return 0;
}

static size_t json__utf8(unsigned cp, char *o)
{
	if (cp < 0x80) {
		o[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		o[0] = (char)(0xc0 | (cp >> 6));
		o[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		o[0] = (char)(0xe0 | (cp >> 12));
		o[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		o[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	o[0] = (char)(0xf0 | (cp >> 18));
	o[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
	o[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
	o[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

/* A string at r->p (on the opening quote) into *out (from the arena).
 * Decoded text is never longer than the escaped input ("\uXXXX" is 6
 * bytes, "\uXXXX\uXXXX" 12: both longer than their UTF-8), so one
 * allocation of the input span suffices. */
static int json__string(struct json__rd *r, char **out, size_t *out_len)
{
	const char *s = r->p + 1, *q = s;
	char *d, *w;

	while (q < r->end && *q != '"') {
		if ((unsigned char)*q < 0x20)
			return -MESH_EPARSE;
		if (*q == '\\')
			q++;
		q++;
	}
	if (q >= r->end)
		return -MESH_EPARSE;
	d = arena_alloc(r->a, (size_t)(q - s) + 1);
	if (!d)
		return -ENOMEM;
	w = d;
	while (s < q) {
		unsigned cp, lo;

		if (*s != '\\') {
			*w++ = *s++;
			continue;
		}
		s++;
		switch (*s++) {
		case '"': *w++ = '"'; break;
		case '\\': *w++ = '\\'; break;
		case '/': *w++ = '/'; break;
		case 'b': *w++ = '\b'; break;
		case 'f': *w++ = '\f'; break;
		case 'n': *w++ = '\n'; break;
		case 'r': *w++ = '\r'; break;
		case 't': *w++ = '\t'; break;
		case 'u':
			if (q - s < 4 || json__hex4(s, &cp) < 0)
				return -MESH_EPARSE;
			s += 4;
			if (cp >= 0xd800 && cp < 0xdc00) {
				/* a surrogate pair: \uD8xx\uDCxx */
				if (q - s < 6 || s[0] != '\\' || s[1] != 'u' || json__hex4(s + 2, &lo) < 0 ||
				    lo < 0xdc00 || lo >= 0xe000)
					return -MESH_EPARSE;
				s += 6;
				cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
			} else if (cp >= 0xdc00 && cp < 0xe000) {
				return -MESH_EPARSE;
			}
			/* an embedded NUL would cut the string short for strcmp users (JWT claims) */
			if (cp == 0 && !r->lim->allow_nul)
				return -MESH_EPARSE;
			w += json__utf8(cp, w);
			break;
		default:
			return -MESH_EPARSE;
		}
	}
	*w = '\0';
	*out = d;
	*out_len = (size_t)(w - d);
	r->p = q + 1;
	return 0;
}

static int json__number(struct json__rd *r, struct json_value *v)
{
	const char *s = r->p, *q = s;
	bool is_int = true;
	char *end;

	if (q < r->end && *q == '-')
		q++;
	if (q >= r->end || *q < '0' || *q > '9')
		return -MESH_EPARSE;
	if (*q == '0')
		q++;
	else
		while (q < r->end && *q >= '0' && *q <= '9')
			q++;
	if (q < r->end && *q == '.') {
		is_int = false;
		q++;
		if (q >= r->end || *q < '0' || *q > '9')
			return -MESH_EPARSE;
		while (q < r->end && *q >= '0' && *q <= '9')
			q++;
	}
	if (q < r->end && (*q == 'e' || *q == 'E')) {
		is_int = false;
		q++;
		if (q < r->end && (*q == '+' || *q == '-'))
			q++;
		if (q >= r->end || *q < '0' || *q > '9')
			return -MESH_EPARSE;
		while (q < r->end && *q >= '0' && *q <= '9')
			q++;
	}
	if (r->lim->max_number && (size_t)(q - s) > r->lim->max_number)
		return -MESH_ETOOBIG;
	v->type = JSON_NUMBER;
	v->str = arena_strndup(r->a, s, (size_t)(q - s));
	if (!v->str)
		return -ENOMEM;
	v->len = (size_t)(q - s);
	v->num = strtod(v->str, NULL);
	if (is_int) {
		errno = 0;
		v->i = strtoll(v->str, &end, 10);
		v->is_int = errno == 0;
	}
	r->p = q;
	return 0;
}

static int json__lit(struct json__rd *r, const char *word)
{
	size_t l = strlen(word);

	if ((size_t)(r->end - r->p) < l || memcmp(r->p, word, l) != 0)
		return -MESH_EPARSE;
	r->p += l;
	return 0;
}

static int json__value(struct json__rd *r, struct json_value *v, int depth);

/* An array or object at r->p (on its bracket) into v. */
static int json__members(struct json__rd *r, struct json_value *v, int depth)
{
	char close = *r->p == '{' ? '}' : ']';
	bool obj = close == '}';
	struct json_value **tail = &v->child, *c;
	size_t i;
	int rc;

	if (depth >= r->lim->max_depth)
		return -MESH_ETOOBIG;
	v->type = obj ? JSON_OBJECT : JSON_ARRAY;
	r->p++;
	json__ws(r);
	if (r->p < r->end && *r->p == close) {
		r->p++;
		return 0;
	}
	for (;;) {
		c = arena_alloc(r->a, sizeof(*c));
		if (!c)
			return -ENOMEM;
		if (obj) {
			size_t kl;

			json__ws(r);
			if (r->p >= r->end || *r->p != '"')
				return -MESH_EPARSE;
			rc = json__string(r, &c->key, &kl);
			if (rc < 0)
				return rc;
			json__ws(r);
			if (r->p >= r->end || *r->p != ':')
				return -MESH_EPARSE;
			r->p++;
		}
		rc = json__value(r, c, depth + 1);
		if (rc < 0)
			return rc;
		*tail = c;
		tail = &c->next;
		v->n++;
		json__ws(r);
		if (r->p >= r->end)
			return -MESH_EPARSE;
		if (*r->p == ',') {
			r->p++;
			continue;
		}
		if (*r->p != close)
			return -MESH_EPARSE;
		r->p++;
		break;
	}
	if (!r->lim->index)
		return 0;
	/* the size is known only now: one exact array, no growth in the arena */
	v->v = arena_calloc(r->a, v->n, sizeof(*v->v));
	if (!v->v)
		return -ENOMEM;
	for (i = 0, c = v->child; c; c = c->next)
		v->v[i++] = c;
	return 0;
}

static int json__value(struct json__rd *r, struct json_value *v, int depth)
{
	int rc;

	json__ws(r);
	if (r->p >= r->end)
		return -MESH_EPARSE;
	v->start = (size_t)(r->p - r->base);
	switch (*r->p) {
	case '{':
	case '[':
		rc = json__members(r, v, depth);
		break;
	case '"':
		v->type = JSON_STRING;
		rc = json__string(r, &v->str, &v->len);
		break;
	case 't':
		v->type = JSON_BOOL;
		v->b = true;
		rc = json__lit(r, "true");
		break;
	case 'f':
		v->type = JSON_BOOL;
		rc = json__lit(r, "false");
		break;
	case 'n':
		v->type = JSON_NULL;
		rc = json__lit(r, "null");
		break;
	default:
		rc = json__number(r, v);
		break;
	}
	if (rc < 0)
		return rc;
	v->end = (size_t)(r->p - r->base);
	return 0;
}

int json_parse_arena(struct arena *a, const char *text, size_t len, const struct json_limits *lim,
		     struct json_value **out)
{
	struct json__rd r = { .a = a, .lim = lim, .p = text, .end = text + len, .base = text };
	struct json_value *root;
	int rc;

	*out = NULL;
	if (lim->max_input && len > lim->max_input)
		return -MESH_ETOOBIG;
	root = arena_alloc(a, sizeof(*root));
	if (!root)
		return -ENOMEM;
	rc = json__value(&r, root, 0);
	if (rc < 0)
		return rc;
	json__ws(&r);
	if (r.p != r.end)
		return -MESH_EPARSE;
	*out = root;
	return 0;
}

int json_parse(const char *text, size_t len, struct json_value **out)
{
	static const struct json_limits lim = {
		.max_depth = JSON_MAX_DEPTH,
		.max_input = JSON_MAX_INPUT,
		.max_number = JSON_MAX_NUMBER,
		.allow_nul = false,
		.index = true,
	};
	struct arena *a;
	int rc;

	*out = NULL;
	a = arena_new(0);
	if (!a)
		return -ENOMEM;
	rc = json_parse_arena(a, text, len, &lim, out);
	if (rc < 0) {
		arena_free(a);
		return rc;
	}
	(*out)->owner = a;
	return 0;
}

void json_free(struct json_value *v)
{
	if (v && v->owner)
		arena_free(v->owner);
}

const struct json_value *json_get(const struct json_value *obj, const char *key)
{
	const struct json_value *c;

	if (!obj || obj->type != JSON_OBJECT)
		return NULL;
	for (c = obj->child; c; c = c->next)
		if (strcmp(c->key, key) == 0)
			return c;
	return NULL;
}

const char *json_get_str(const struct json_value *obj, const char *key)
{
	const struct json_value *v = json_get(obj, key);

	return v && v->type == JSON_STRING ? v->str : NULL;
}

int64_t json_get_int(const struct json_value *obj, const char *key, int64_t def)
{
	const struct json_value *v = json_get(obj, key);

	return v && v->type == JSON_NUMBER && v->is_int ? v->i : def;
}

bool json_get_bool(const struct json_value *obj, const char *key, bool def)
{
	const struct json_value *v = json_get(obj, key);

	return v && v->type == JSON_BOOL ? v->b : def;
}
