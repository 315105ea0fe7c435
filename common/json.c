/*
 * json.c - see json.h.
 */
#include "json.h"

#include "err.h"

#include <ctype.h>
#include <errno.h>
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

struct json__rd {
	const char *p, *end;
	int depth;
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

/* A string at r->p (on the opening quote) into *out (malloc'd).  Decoded
 * text is never longer than the escaped input, so one allocation of the
 * input span suffices. */
static int json__string(struct json__rd *r, char **out)
{
	const char *s = ++r->p, *q = s;
	char *buf, *o;
	int rc = -MESH_EPARSE;

	while (q < r->end && *q != '"')
		q += (*q == '\\' && q + 1 < r->end) ? 2 : 1;
	if (q >= r->end)
		return -MESH_EPARSE;
	buf = malloc((size_t)(q - s) + 1);
	if (!buf)
		return -ENOMEM;
	o = buf;
	while (r->p < q) {
		unsigned char c = (unsigned char)*r->p++;
		unsigned cp, lo;

		if (c < 0x20)
			goto out;
		if (c != '\\') {
			*o++ = (char)c;
			continue;
		}
		c = (unsigned char)*r->p++;
		switch (c) {
		case '"': *o++ = '"'; break;
		case '\\': *o++ = '\\'; break;
		case '/': *o++ = '/'; break;
		case 'b': *o++ = '\b'; break;
		case 'f': *o++ = '\f'; break;
		case 'n': *o++ = '\n'; break;
		case 'r': *o++ = '\r'; break;
		case 't': *o++ = '\t'; break;
		case 'u':
			if (q - r->p < 4 || json__hex4(r->p, &cp) < 0)
				goto out;
			r->p += 4;
			if (cp >= 0xd800 && cp < 0xdc00) {
				/* a surrogate pair: \uD8xx\uDCxx (12 input bytes for 4 output) */
				if (q - r->p < 6 || r->p[0] != '\\' || r->p[1] != 'u' || json__hex4(r->p + 2, &lo) < 0 ||
				    lo < 0xdc00 || lo > 0xdfff)
					goto out;
				r->p += 6;
				cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
			} else if (cp >= 0xdc00 && cp < 0xe000) {
				goto out;
			}
			if (cp == 0)
				goto out;
			o += json__utf8(cp, o);
			break;
		default:
			goto out;
		}
	}
	*o = '\0';
	r->p = q + 1;
	*out = buf;
	buf = NULL;
	rc = 0;
out:
	free(buf);
	return rc;
}

static int json__value(struct json__rd *r, struct json_value **out);

static int json__push(struct json_value *v, struct json_value *m, char *key, size_t *cap)
{
	if (v->n == *cap) {
		size_t nc = *cap ? *cap * 2 : 4;
		struct json_value **nv = realloc(v->v, nc * sizeof(*nv));
		char **nk;

		if (!nv)
			return -ENOMEM;
		v->v = nv;
		if (v->type == JSON_OBJECT) {
			nk = realloc(v->keys, nc * sizeof(*nk));
			if (!nk)
				return -ENOMEM;
			v->keys = nk;
		}
		*cap = nc;
	}
	v->v[v->n] = m;
	if (v->type == JSON_OBJECT)
		v->keys[v->n] = key;
	v->n++;
	return 0;
}

/* An array or object at r->p (on its bracket) into v. */
static int json__members(struct json__rd *r, struct json_value *v)
{
	char close = v->type == JSON_OBJECT ? '}' : ']';
	size_t cap = 0;
	int rc;

	if (++r->depth > JSON_MAX_DEPTH)
		return -MESH_ETOOBIG;
	r->p++;
	json__ws(r);
	if (r->p < r->end && *r->p == close) {
		r->p++;
		r->depth--;
		return 0;
	}
	for (;;) {
		struct json_value *m = NULL;
		char *key = NULL;

		json__ws(r);
		if (v->type == JSON_OBJECT) {
			if (r->p >= r->end || *r->p != '"')
				return -MESH_EPARSE;
			rc = json__string(r, &key);
			if (rc < 0)
				return rc;
			json__ws(r);
			if (r->p >= r->end || *r->p != ':') {
				free(key);
				return -MESH_EPARSE;
			}
			r->p++;
		}
		rc = json__value(r, &m);
		if (rc == 0)
			rc = json__push(v, m, key, &cap);
		if (rc < 0) {
			json_free(m);
			free(key);
			return rc;
		}
		json__ws(r);
		if (r->p < r->end && *r->p == ',') {
			r->p++;
			continue;
		}
		if (r->p < r->end && *r->p == close) {
			r->p++;
			r->depth--;
			return 0;
		}
		return -MESH_EPARSE;
	}
}

static bool json__lit(struct json__rd *r, const char *lit)
{
	size_t n = strlen(lit);

	if ((size_t)(r->end - r->p) < n || memcmp(r->p, lit, n))
		return false;
	r->p += n;
	return true;
}

static int json__number(struct json__rd *r, double *out)
{
	const char *s = r->p;
	char tmp[64], *end;

	if (r->p < r->end && *r->p == '-')
		r->p++;
	if (r->p >= r->end || !isdigit((unsigned char)*r->p))
		return -MESH_EPARSE;
	if (*r->p == '0')
		r->p++;
	else
		while (r->p < r->end && isdigit((unsigned char)*r->p))
			r->p++;
	if (r->p < r->end && *r->p == '.') {
		r->p++;
		if (r->p >= r->end || !isdigit((unsigned char)*r->p))
			return -MESH_EPARSE;
		while (r->p < r->end && isdigit((unsigned char)*r->p))
			r->p++;
	}
	if (r->p < r->end && (*r->p == 'e' || *r->p == 'E')) {
		r->p++;
		if (r->p < r->end && (*r->p == '+' || *r->p == '-'))
			r->p++;
		if (r->p >= r->end || !isdigit((unsigned char)*r->p))
			return -MESH_EPARSE;
		while (r->p < r->end && isdigit((unsigned char)*r->p))
			r->p++;
	}
	if ((size_t)(r->p - s) >= sizeof(tmp))
		return -MESH_ETOOBIG;
	memcpy(tmp, s, (size_t)(r->p - s));
	tmp[r->p - s] = '\0';
	*out = strtod(tmp, &end);
	return 0;
}

static int json__value(struct json__rd *r, struct json_value **out)
{
	struct json_value *v;
	int rc = 0;

	*out = NULL;
	json__ws(r);
	if (r->p >= r->end)
		return -MESH_EPARSE;
	v = calloc(1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	switch (*r->p) {
	case '{':
		v->type = JSON_OBJECT;
		rc = json__members(r, v);
		break;
	case '[':
		v->type = JSON_ARRAY;
		rc = json__members(r, v);
		break;
	case '"':
		v->type = JSON_STRING;
		rc = json__string(r, &v->str);
		break;
	case 't':
	case 'f':
		v->type = JSON_BOOL;
		v->b = *r->p == 't';
		rc = json__lit(r, v->b ? "true" : "false") ? 0 : -MESH_EPARSE;
		break;
	case 'n':
		v->type = JSON_NULL;
		rc = json__lit(r, "null") ? 0 : -MESH_EPARSE;
		break;
	default:
		v->type = JSON_NUMBER;
		rc = json__number(r, &v->num);
		break;
	}
	if (rc < 0) {
		json_free(v);
		return rc;
	}
	*out = v;
	return 0;
}

int json_parse(const char *text, size_t len, struct json_value **out)
{
	struct json__rd r = { text, text + len, 0 };
	struct json_value *v = NULL;
	int rc;

	*out = NULL;
	if (len > JSON_MAX_INPUT)
		return -MESH_ETOOBIG;
	rc = json__value(&r, &v);
	if (rc < 0)
		return rc;
	json__ws(&r);
	if (r.p != r.end) {
		json_free(v);
		return -MESH_EPARSE;
	}
	*out = v;
	return 0;
}

void json_free(struct json_value *v)
{
	size_t i;

	if (!v)
		return;
	for (i = 0; i < v->n; i++) {
		json_free(v->v[i]);
		if (v->keys)
			free(v->keys[i]);
	}
	free(v->v);
	free(v->keys);
	free(v->str);
	free(v);
}

const struct json_value *json_get(const struct json_value *obj, const char *key)
{
	size_t i;

	if (!obj || obj->type != JSON_OBJECT)
		return NULL;
	for (i = 0; i < obj->n; i++)
		if (!strcmp(obj->keys[i], key))
			return obj->v[i];
	return NULL;
}

const char *json_get_str(const struct json_value *obj, const char *key)
{
	const struct json_value *v = json_get(obj, key);

	return v && v->type == JSON_STRING ? v->str : NULL;
}
