/*
 * kube_json.c - strict JSON reader for Kubernetes API responses (see
 * kube_json.h).
 *
 * A recursive-descent parser over the whole text.  meshd's config parser
 * reads JSON through libyaml, but YAML's rules are looser than JSON's and
 * it keeps no byte ranges; API responses need both strictness (a watch
 * stream that carries garbage is dropped, not guessed at) and the byte
 * range of each object, so the kube module has this small reader.
 */
#include "controlplane/kube/kube_json.h"

#include "common/arena.h"
#include "common/err.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct kube__jp {
	struct arena *a;
	const char *p, *end, *base;
};

static void kube__ws(struct kube__jp *jp)
{
	while (jp->p < jp->end && (*jp->p == ' ' || *jp->p == '\t' || *jp->p == '\n' || *jp->p == '\r'))
		jp->p++;
}

static int kube__hex4(const char *s, unsigned *out)
{
	unsigned v = 0;
	int i;

	for (i = 0; i < 4; i++) {
		char c = s[i];
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

static size_t kube__utf8(unsigned cp, char *o)
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

/* At the opening quote.  The decoded text is never longer than the raw. */
static int kube__string(struct kube__jp *jp, char **out, size_t *out_len)
{
	const char *s = jp->p + 1, *q = s;
	char *d, *w;

	while (q < jp->end && *q != '"') {
		if ((unsigned char)*q < 0x20)
			return -MESH_EPARSE;
		if (*q == '\\')
			q++;
		q++;
	}
	if (q >= jp->end)
		return -MESH_EPARSE;
	d = arena_alloc(jp->a, (size_t)(q - s) + 1);
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
			if (q - s < 4 || kube__hex4(s, &cp) < 0)
				return -MESH_EPARSE;
			s += 4;
			if (cp >= 0xd800 && cp < 0xdc00) {
				if (q - s < 6 || s[0] != '\\' || s[1] != 'u' || kube__hex4(s + 2, &lo) < 0 ||
				    lo < 0xdc00 || lo >= 0xe000)
					return -MESH_EPARSE;
				s += 6;
				cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
			} else if (cp >= 0xdc00 && cp < 0xe000) {
				return -MESH_EPARSE;
			}
			/* "\uXXXX" is 6 bytes, "\uXXXX\uXXXX" 12: both longer than their UTF-8 */
			w += kube__utf8(cp, w);
			break;
		default:
			return -MESH_EPARSE;
		}
	}
	*w = '\0';
	*out = d;
	*out_len = (size_t)(w - d);
	jp->p = q + 1;
	return 0;
}

static int kube__number(struct kube__jp *jp, struct kube_json *v)
{
	const char *s = jp->p, *q = s;
	bool is_int = true;
	char *end;

	if (q < jp->end && *q == '-')
		q++;
	if (q >= jp->end || *q < '0' || *q > '9')
		return -MESH_EPARSE;
	if (*q == '0')
		q++;
	else
		while (q < jp->end && *q >= '0' && *q <= '9')
			q++;
	if (q < jp->end && *q == '.') {
		is_int = false;
		q++;
		if (q >= jp->end || *q < '0' || *q > '9')
			return -MESH_EPARSE;
		while (q < jp->end && *q >= '0' && *q <= '9')
			q++;
	}
	if (q < jp->end && (*q == 'e' || *q == 'E')) {
		is_int = false;
		q++;
		if (q < jp->end && (*q == '+' || *q == '-'))
			q++;
		if (q >= jp->end || *q < '0' || *q > '9')
			return -MESH_EPARSE;
		while (q < jp->end && *q >= '0' && *q <= '9')
			q++;
	}
	v->type = KUBE_JSON_NUMBER;
	v->str = arena_strndup(jp->a, s, (size_t)(q - s));
	if (!v->str)
		return -ENOMEM;
	v->len = (size_t)(q - s);
	v->num = strtod(v->str, NULL);
	if (is_int) {
		errno = 0;
		v->i = strtoll(v->str, &end, 10);
		v->is_int = errno == 0;
	}
	jp->p = q;
	return 0;
}

static int kube__lit(struct kube__jp *jp, const char *word)
{
	size_t l = strlen(word);

	if ((size_t)(jp->end - jp->p) < l || memcmp(jp->p, word, l) != 0)
		return -MESH_EPARSE;
	jp->p += l;
	return 0;
}

static int kube__value(struct kube__jp *jp, struct kube_json *v, int depth)
{
	struct kube_json **tail;
	int rc;

	kube__ws(jp);
	if (jp->p >= jp->end)
		return -MESH_EPARSE;
	v->start = (size_t)(jp->p - jp->base);
	switch (*jp->p) {
	case '{':
	case '[': {
		char close = *jp->p == '{' ? '}' : ']';
		bool obj = close == '}';

		if (depth >= KUBE_JSON_MAX_DEPTH)
			return -MESH_ETOOBIG;
		v->type = obj ? KUBE_JSON_OBJECT : KUBE_JSON_ARRAY;
		tail = &v->child;
		jp->p++;
		kube__ws(jp);
		if (jp->p < jp->end && *jp->p == close) {
			jp->p++;
			break;
		}
		for (;;) {
			struct kube_json *c = arena_alloc(jp->a, sizeof(*c));
			if (!c)
				return -ENOMEM;
			if (obj) {
				size_t kl;
				kube__ws(jp);
				if (jp->p >= jp->end || *jp->p != '"')
					return -MESH_EPARSE;
				rc = kube__string(jp, &c->key, &kl);
				if (rc < 0)
					return rc;
				kube__ws(jp);
				if (jp->p >= jp->end || *jp->p != ':')
					return -MESH_EPARSE;
				jp->p++;
			}
			rc = kube__value(jp, c, depth + 1);
			if (rc < 0)
				return rc;
			*tail = c;
			tail = &c->next;
			v->n++;
			kube__ws(jp);
			if (jp->p >= jp->end)
				return -MESH_EPARSE;
			if (*jp->p == ',') {
				jp->p++;
				continue;
			}
			if (*jp->p != close)
				return -MESH_EPARSE;
			jp->p++;
			break;
		}
		break;
	}
	case '"':
		v->type = KUBE_JSON_STRING;
		rc = kube__string(jp, &v->str, &v->len);
		if (rc < 0)
			return rc;
		break;
	case 't':
		v->type = KUBE_JSON_BOOL;
		v->b = true;
		rc = kube__lit(jp, "true");
		if (rc < 0)
			return rc;
		break;
	case 'f':
		v->type = KUBE_JSON_BOOL;
		rc = kube__lit(jp, "false");
		if (rc < 0)
			return rc;
		break;
	case 'n':
		v->type = KUBE_JSON_NULL;
		rc = kube__lit(jp, "null");
		if (rc < 0)
			return rc;
		break;
	default:
		rc = kube__number(jp, v);
		if (rc < 0)
			return rc;
		break;
	}
	v->end = (size_t)(jp->p - jp->base);
	return 0;
}

int kube_json_parse(struct arena *a, const char *data, size_t len, struct kube_json **out)
{
	struct kube__jp jp = { .a = a, .p = data, .end = data + len, .base = data };
	struct kube_json *root;
	int rc;

	*out = NULL;
	root = arena_alloc(a, sizeof(*root));
	if (!root)
		return -ENOMEM;
	rc = kube__value(&jp, root, 0);
	if (rc < 0)
		return rc;
	kube__ws(&jp);
	if (jp.p != jp.end)
		return -MESH_EPARSE;
	*out = root;
	return 0;
}

const struct kube_json *kube_json_get(const struct kube_json *obj, const char *key)
{
	const struct kube_json *c;

	if (!obj || obj->type != KUBE_JSON_OBJECT)
		return NULL;
	for (c = obj->child; c; c = c->next)
		if (strcmp(c->key, key) == 0)
			return c;
	return NULL;
}

const char *kube_json_str(const struct kube_json *obj, const char *key)
{
	const struct kube_json *v = kube_json_get(obj, key);

	return v && v->type == KUBE_JSON_STRING ? v->str : NULL;
}

int64_t kube_json_int(const struct kube_json *obj, const char *key, int64_t def)
{
	const struct kube_json *v = kube_json_get(obj, key);

	return v && v->type == KUBE_JSON_NUMBER && v->is_int ? v->i : def;
}

bool kube_json_bool(const struct kube_json *obj, const char *key, bool def)
{
	const struct kube_json *v = kube_json_get(obj, key);

	return v && v->type == KUBE_JSON_BOOL ? v->b : def;
}
