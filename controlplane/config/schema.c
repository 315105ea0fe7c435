/*
 * schema.c - the CRDs of crd-schemas/ (compiled in by
 * scripts/gen_crd_schemas.sh) and structural validation against them.
 *
 * The CRD text is parsed once, on first use, with the same YAML reader as
 * the configuration (node.c), into cfg__schema trees that live for the
 * whole process.  Validation implements the parts of OpenAPI v3 that
 * Kubernetes structural schemas use: type, properties (unknown fields are
 * errors unless x-kubernetes-preserve-unknown-fields), additionalProperties
 * maps, items, required, enum, minimum/maximum, min/max items, properties
 * and length, pattern (RE2, as Go's regexp the API server uses), format (int32, byte), nullable,
 * x-kubernetes-int-or-string, and oneOf/anyOf/allOf/not over required
 * groups.  x-kubernetes-validations (CEL) are not evaluated: their rules
 * are enforced by the semantic checks in decode.c.
 *
 * Explicit nulls count as absent, as when Istio reads YAML files.
 */
#include "controlplane/config/config_int.h"

#include "common/arena.h"
#include "common/err.h"
#include "common/log.h"
#include "common/re.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

extern const char *const crd_schema_names[];
extern const char *const crd_schema_texts[];
extern const unsigned crd_schema_count;

#define SCHEMA__MAX_CRDS 32
#define SCHEMA__ARENA_MAX (64u << 20)

enum {
	SCHEMA__T_OBJECT = 1 << 0,
	SCHEMA__T_ARRAY = 1 << 1,
	SCHEMA__T_STRING = 1 << 2,
	SCHEMA__T_INTEGER = 1 << 3,
	SCHEMA__T_NUMBER = 1 << 4,
	SCHEMA__T_BOOLEAN = 1 << 5,
};

struct cfg__schema {
	unsigned types;              /* 0: any */
	bool nullable, preserve_unknown, int_or_string;
	char **prop_names;
	struct cfg__schema **props;
	size_t n_props;
	struct cfg__schema *items;
	struct cfg__schema *additional;
	char **required;
	size_t n_required;
	char **enums;
	size_t n_enums;
	bool has_min, has_max;
	double min, max;
	int64_t min_items, max_items, min_props, max_props, min_len, max_len; /* -1: none */
	struct mesh_re *pattern;
	char *pattern_text;
	char *format;
	struct cfg__schema **one_of, **any_of, **all_of;
	size_t n_one_of, n_any_of, n_all_of;
	struct cfg__schema *not_;
};

static struct {
	pthread_once_t once;
	int rc;
	struct arena *arena;
	struct cfg__crd crds[SCHEMA__MAX_CRDS];
	size_t n_crds;
} schema__g = { PTHREAD_ONCE_INIT, 0, NULL, { { 0 } }, 0 };

/* ------------------------------------------------------------- building */

struct schema__build {
	struct arena *a;
	/* memo: the CRD files share sub-schemas through aliases; build each node once */
	const struct cfg__node **memo_nodes;
	struct cfg__schema **memo;
	size_t n_memo, cap_memo;
	int rc;
};

static struct cfg__schema *schema__from(struct schema__build *b, const struct cfg__node *n);

static int schema__strings(struct schema__build *b, const struct cfg__node *seq, char ***out, size_t *n)
{
	size_t i;

	if (!seq || seq->type != CFG__SEQ)
		return 0;
	*out = arena_calloc(b->a, seq->n ? seq->n : 1, sizeof(char *));
	if (!*out)
		return -ENOMEM;
	for (i = 0; i < seq->n; i++)
		if (seq->v[i]->str)
			(*out)[(*n)++] = seq->v[i]->str;
	return 0;
}

static int schema__list(struct schema__build *b, const struct cfg__node *seq, struct cfg__schema ***out, size_t *n)
{
	size_t i;

	if (!seq || seq->type != CFG__SEQ)
		return 0;
	*out = arena_calloc(b->a, seq->n ? seq->n : 1, sizeof(**out));
	if (!*out)
		return -ENOMEM;
	for (i = 0; i < seq->n; i++) {
		(*out)[i] = schema__from(b, seq->v[i]);
		if (!(*out)[i])
			return b->rc ? b->rc : -EINVAL;
	}
	*n = seq->n;
	return 0;
}

static int64_t schema__int(const struct cfg__node *m, const char *key)
{
	const struct cfg__node *n = cfg__node_field(m, key);

	return n && n->type == CFG__INT ? n->i : -1;
}

static struct cfg__schema *schema__from(struct schema__build *b, const struct cfg__node *n)
{
	struct cfg__schema *s;
	const struct cfg__node *v;
	size_t i;

	if (!n || n->type != CFG__MAP) {
		b->rc = -EINVAL;
		return NULL;
	}
	for (i = 0; i < b->n_memo; i++)
		if (b->memo_nodes[i] == n)
			return b->memo[i];
	s = arena_alloc(b->a, sizeof(*s));
	if (!s)
		goto oom;
	if (b->n_memo == b->cap_memo) {
		size_t cap = b->cap_memo ? b->cap_memo * 2 : 64;
		const struct cfg__node **mn = realloc(b->memo_nodes, cap * sizeof(*mn));
		struct cfg__schema **ms;
		if (!mn)
			goto oom;
		b->memo_nodes = mn;
		ms = realloc(b->memo, cap * sizeof(*ms));
		if (!ms)
			goto oom;
		b->memo = ms;
		b->cap_memo = cap;
	}
	b->memo_nodes[b->n_memo] = n;
	b->memo[b->n_memo++] = s;

	v = cfg__node_field(n, "type");
	if (v && v->str) {
		static const struct { const char *name; unsigned bit; } types[] = {
			{ "object", SCHEMA__T_OBJECT }, { "array", SCHEMA__T_ARRAY },
			{ "string", SCHEMA__T_STRING }, { "integer", SCHEMA__T_INTEGER },
			{ "number", SCHEMA__T_NUMBER }, { "boolean", SCHEMA__T_BOOLEAN },
		};
		for (i = 0; i < sizeof(types) / sizeof(types[0]); i++)
			if (strcmp(v->str, types[i].name) == 0)
				s->types = types[i].bit;
	}
	v = cfg__node_field(n, "nullable");
	s->nullable = v && v->type == CFG__BOOL && v->b;
	v = cfg__node_field(n, "x-kubernetes-preserve-unknown-fields");
	s->preserve_unknown = v && v->type == CFG__BOOL && v->b;
	v = cfg__node_field(n, "x-kubernetes-int-or-string");
	s->int_or_string = v && v->type == CFG__BOOL && v->b;

	v = cfg__node_field(n, "properties");
	if (v && v->type == CFG__MAP) {
		s->prop_names = arena_calloc(b->a, v->n ? v->n : 1, sizeof(char *));
		s->props = arena_calloc(b->a, v->n ? v->n : 1, sizeof(*s->props));
		if (!s->prop_names || !s->props)
			goto oom;
		for (i = 0; i < v->n; i++) {
			s->prop_names[i] = v->k[i]->str;
			s->props[i] = schema__from(b, v->v[i]);
			if (!s->props[i])
				return NULL;
		}
		s->n_props = v->n;
	}
	v = cfg__node_field(n, "items");
	if (v && !(s->items = schema__from(b, v)))
		return NULL;
	v = cfg__node_field(n, "additionalProperties");
	if (v && v->type == CFG__MAP && !(s->additional = schema__from(b, v)))
		return NULL;
	if (v && v->type == CFG__BOOL && v->b)
		s->preserve_unknown = true;
	if (schema__strings(b, cfg__node_field(n, "required"), &s->required, &s->n_required) < 0 ||
	    schema__strings(b, cfg__node_field(n, "enum"), &s->enums, &s->n_enums) < 0)
		goto oom;
	v = cfg__node_field(n, "minimum");
	if (v && (v->type == CFG__INT || v->type == CFG__FLOAT)) {
		s->has_min = true;
		s->min = v->f;
	}
	v = cfg__node_field(n, "maximum");
	if (v && (v->type == CFG__INT || v->type == CFG__FLOAT)) {
		s->has_max = true;
		s->max = v->f;
	}
	s->min_items = schema__int(n, "minItems");
	s->max_items = schema__int(n, "maxItems");
	s->min_props = schema__int(n, "minProperties");
	s->max_props = schema__int(n, "maxProperties");
	s->min_len = schema__int(n, "minLength");
	s->max_len = schema__int(n, "maxLength");
	v = cfg__node_field(n, "format");
	if (v && v->str)
		s->format = v->str;
	v = cfg__node_field(n, "pattern");
	if (v && v->str) {
		char why[256];
		int rc;

		/* compiled once and kept for the life of the process, as the
		 * schema trees are */
		rc = mesh_re_new(v->str, v->len, MESH_RE_ISTIO_MAX_PROGRAM_SIZE, &s->pattern, why, sizeof(why));
		if (rc == -ENOMEM)
			goto oom;
		if (rc < 0)
			log_warn("config", "CRD pattern %s does not compile (%s); not enforced", v->str, why);
		s->pattern_text = v->str;
	}
	if (schema__list(b, cfg__node_field(n, "oneOf"), &s->one_of, &s->n_one_of) < 0 ||
	    schema__list(b, cfg__node_field(n, "anyOf"), &s->any_of, &s->n_any_of) < 0 ||
	    schema__list(b, cfg__node_field(n, "allOf"), &s->all_of, &s->n_all_of) < 0)
		return NULL;
	v = cfg__node_field(n, "not");
	if (v && !(s->not_ = schema__from(b, v)))
		return NULL;
	/* anyOf [integer, string] is how Istio spells int-or-string in status */
	if (s->n_any_of && !s->types && s->int_or_string)
		s->types = SCHEMA__T_INTEGER | SCHEMA__T_STRING;
	return s;
oom:
	b->rc = -ENOMEM;
	return NULL;
}

struct schema__load_ctx {
	struct schema__build *b;
	const char *file;
};

static int schema__crd_doc(void *ctx, struct cfg__node *root)
{
	struct schema__load_ctx *lc = ctx;
	struct schema__build *b = lc->b;
	const struct cfg__node *spec = cfg__node_field(root, "spec");
	const struct cfg__node *names = cfg__node_field(spec, "names");
	const struct cfg__node *versions = cfg__node_field(spec, "versions");
	const struct cfg__node *v;
	struct cfg__crd *crd;
	size_t i;

	if (root->type == CFG__NULL)
		return 0;
	v = cfg__node_field(root, "kind");
	if (!v || !v->str || strcmp(v->str, "CustomResourceDefinition") != 0 || !versions ||
	    versions->type != CFG__SEQ || schema__g.n_crds == SCHEMA__MAX_CRDS) {
		log_error("config", "%s: not a CustomResourceDefinition meshd can use", lc->file);
		return -EINVAL;
	}
	crd = &schema__g.crds[schema__g.n_crds];
	v = cfg__node_field(spec, "group");
	crd->group = v ? v->str : NULL;
	v = cfg__node_field(names, "kind");
	crd->kind = v ? v->str : NULL;
	v = cfg__node_field(names, "listKind");
	crd->list_kind = v ? v->str : NULL;
	if (!crd->group || !crd->kind)
		return -EINVAL;
	for (i = 0; i < versions->n && crd->n_versions < CFG__MAX_VERSIONS; i++) {
		const struct cfg__node *ver = versions->v[i];
		const struct cfg__node *schema = cfg__node_field(cfg__node_field(ver, "schema"), "openAPIV3Schema");
		const struct cfg__node *name = cfg__node_field(ver, "name");
		const struct cfg__node *served = cfg__node_field(ver, "served");
		size_t k = crd->n_versions;

		if (!name || !name->str || !schema)
			return -EINVAL;
		crd->versions[k] = name->str;
		crd->served[k] = served && served->type == CFG__BOOL && served->b;
		crd->schema[k] = schema__from(b, schema);
		if (!crd->schema[k])
			return b->rc ? b->rc : -EINVAL;
		crd->n_versions++;
	}
	schema__g.n_crds++;
	return 0;
}

static void schema__load(void)
{
	struct schema__build b = { 0 };
	unsigned i;
	int rc = 0;

	schema__g.arena = arena_new(SCHEMA__ARENA_MAX);
	if (!schema__g.arena) {
		schema__g.rc = -ENOMEM;
		return;
	}
	b.a = schema__g.arena;
	for (i = 0; i < crd_schema_count && rc == 0; i++) {
		struct schema__load_ctx lc = { &b, crd_schema_names[i] };
		struct cfg__yaml_error err = { { 0 }, 0, 0 };

		rc = cfg__yaml_parse(schema__g.arena, crd_schema_texts[i], strlen(crd_schema_texts[i]), 0,
				     schema__crd_doc, &lc, &err);
		if (rc < 0)
			log_error("config", "crd-schemas/%s:%d:%d: %s", crd_schema_names[i], err.line, err.col,
				  err.msg[0] ? err.msg : mesh_strerror(rc));
	}
	free(b.memo_nodes);
	free(b.memo);
	schema__g.rc = rc;
}

int cfg__crds(const struct cfg__crd **out, size_t *n)
{
	pthread_once(&schema__g.once, schema__load);
	*out = schema__g.crds;
	*n = schema__g.n_crds;
	return schema__g.rc;
}

/* ------------------------------------------------------------- validation */

static const char *schema__type_name(const struct cfg__node *n)
{
	switch (n->type) {
	case CFG__NULL: return "null";
	case CFG__BOOL: return "a boolean";
	case CFG__INT: return "an integer";
	case CFG__FLOAT: return "a number";
	case CFG__STR: return "a string";
	case CFG__MAP: return "an object";
	case CFG__SEQ: return "a list";
	}
	return "?";
}

static const char *schema__want_name(const struct cfg__schema *s)
{
	if (s->int_or_string)
		return "an integer or a string";
	switch (s->types) {
	case SCHEMA__T_OBJECT: return "an object";
	case SCHEMA__T_ARRAY: return "a list";
	case SCHEMA__T_STRING: return "a string";
	case SCHEMA__T_INTEGER: return "an integer";
	case SCHEMA__T_NUMBER: return "a number";
	case SCHEMA__T_BOOLEAN: return "a boolean (true or false)";
	}
	return "something else";
}

/* integral floats (90.0) count as integers, as in Kubernetes */
static bool schema__is_integer(const struct cfg__node *n)
{
	return n->type == CFG__INT ||
	       (n->type == CFG__FLOAT && isfinite(n->f) && n->f == floor(n->f) && fabs(n->f) < 9.2e18);
}

static bool schema__type_ok(const struct cfg__schema *s, const struct cfg__node *n)
{
	if (s->int_or_string)
		return schema__is_integer(n) || n->type == CFG__STR;
	switch (s->types) {
	case 0: return true;
	case SCHEMA__T_OBJECT: return n->type == CFG__MAP;
	case SCHEMA__T_ARRAY: return n->type == CFG__SEQ;
	case SCHEMA__T_STRING: return n->type == CFG__STR;
	case SCHEMA__T_INTEGER: return schema__is_integer(n);
	case SCHEMA__T_NUMBER: return n->type == CFG__INT || n->type == CFG__FLOAT;
	case SCHEMA__T_BOOLEAN: return n->type == CFG__BOOL;
	}
	return false;
}

static bool schema__has(const struct cfg__node *map, const char *key)
{
	return cfg__node_field(map, key) != NULL;
}

/* Does n satisfy the required/not/anyOf/allOf/oneOf constraints of s
 * (the shape used by oneOf branches)?  No errors are recorded. */
static bool schema__matches(const struct cfg__schema *s, const struct cfg__node *n)
{
	size_t i, c;

	for (i = 0; i < s->n_required; i++)
		if (!schema__has(n, s->required[i]))
			return false;
	if (s->not_ && schema__matches(s->not_, n))
		return false;
	if (s->n_any_of) {
		for (i = 0; i < s->n_any_of; i++)
			if (schema__matches(s->any_of[i], n))
				break;
		if (i == s->n_any_of)
			return false;
	}
	for (i = 0; i < s->n_all_of; i++)
		if (!schema__matches(s->all_of[i], n))
			return false;
	if (s->n_one_of) {
		for (i = 0, c = 0; i < s->n_one_of; i++)
			c += schema__matches(s->one_of[i], n);
		if (c != 1)
			return false;
	}
	return true;
}

/* The field names a oneOf group is about, for messages: "exact, prefix or regex" */
static void schema__one_of_names(const struct cfg__schema *s, char *buf, size_t cap)
{
	size_t i, j, len = 0, count = 0, total = 0;

	for (i = 0; i < s->n_one_of; i++)
		total += s->one_of[i]->n_required;
	buf[0] = '\0';
	for (i = 0; i < s->n_one_of; i++) {
		for (j = 0; j < s->one_of[i]->n_required && len < cap; j++) {
			const char *sep = count == 0 ? "" : (count + 1 == total ? " or " : ", ");
			int w = snprintf(buf + len, cap - len, "%s%s", sep, s->one_of[i]->required[j]);
			if (w < 0)
				return;
			len += (size_t)w;
			count++;
		}
	}
	if (len >= cap)
		buf[cap - 1] = '\0';
}

static size_t schema__utf8_len(const char *s, size_t n)
{
	size_t i, c = 0;

	for (i = 0; i < n; i++)
		if (((unsigned char)s[i] & 0xc0) != 0x80)
			c++;
	return c;
}

static bool schema__base64(const char *s, size_t n)
{
	size_t i, pad = 0;

	if (n % 4)
		return false;
	for (i = 0; i < n; i++) {
		char ch = s[i];
		if (ch == '=') {
			pad++;
			if (pad > 2)
				return false;
			continue;
		}
		if (pad)
			return false;
		if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
		      ch == '+' || ch == '/'))
			return false;
	}
	return true;
}

static void schema__validate(struct cfg__ectx *e, const struct cfg__schema *s, const struct cfg__node *n, bool root);

static void schema__check_object(struct cfg__ectx *e, const struct cfg__schema *s, const struct cfg__node *n, bool root)
{
	size_t i, j;

	for (i = 0; i < n->n; i++) {
		const char *key = n->k[i]->str;
		const struct cfg__node *val = n->v[i];
		const struct cfg__schema *sub = NULL;
		size_t mark;

		if (root && (strcmp(key, "apiVersion") == 0 || strcmp(key, "kind") == 0 || strcmp(key, "metadata") == 0))
			continue;
		for (j = 0; j < s->n_props; j++) {
			if (strcmp(s->prop_names[j], key) == 0) {
				sub = s->props[j];
				break;
			}
		}
		if (!sub)
			sub = s->additional;
		mark = cfg__path_key(e, key);
		if (sub) {
			schema__validate(e, sub, val, false);
		} else if (!s->preserve_unknown) {
			const char *hint = NULL;
			for (j = 0; j < s->n_props; j++)
				if (strcasecmp(s->prop_names[j], key) == 0)
					hint = s->prop_names[j];
			if (hint)
				cfg__error(e, n->k[i], "unknown field \"%s\" (did you mean \"%s\"?)", key, hint);
			else
				cfg__error(e, n->k[i], "unknown field \"%s\"", key);
		}
		cfg__path_pop(e, mark);
	}
	for (i = 0; i < s->n_required; i++) {
		if (!schema__has(n, s->required[i])) {
			size_t mark = cfg__path_key(e, s->required[i]);
			cfg__error(e, n, "required field \"%s\" is missing", s->required[i]);
			cfg__path_pop(e, mark);
		}
	}
	if (s->min_props >= 0 && n->n < (size_t)s->min_props)
		cfg__error(e, n, "must have at least %lld entries", (long long)s->min_props);
	if (s->max_props >= 0 && n->n > (size_t)s->max_props)
		cfg__error(e, n, "must have at most %lld entries, has %zu", (long long)s->max_props, n->n);
}

static void schema__check_scalar(struct cfg__ectx *e, const struct cfg__schema *s, const struct cfg__node *n)
{
	size_t i;

	if (s->n_enums) {
		for (i = 0; i < s->n_enums; i++)
			if (n->str && strcmp(n->str, s->enums[i]) == 0)
				break;
		if (i == s->n_enums) {
			char list[256];
			size_t len = 0;
			for (i = 0; i < s->n_enums && len < sizeof(list); i++) {
				int w = snprintf(list + len, sizeof(list) - len, "%s%s", i ? ", " : "", s->enums[i]);
				if (w < 0)
					break;
				len += (size_t)w;
			}
			cfg__error(e, n, "\"%s\" is not one of %s", n->str ? n->str : "", list);
			return;
		}
	}
	if ((n->type == CFG__INT || n->type == CFG__FLOAT) && !s->int_or_string) {
		if (s->has_min && n->f < s->min)
			cfg__error(e, n, "%s is less than the minimum %.15g", n->str, s->min);
		else if (s->has_max && n->f > s->max)
			cfg__error(e, n, "%s is more than the maximum %.15g", n->str, s->max);
		if (s->format && strcmp(s->format, "int32") == 0 && (n->f < -2147483648.0 || n->f > 2147483647.0))
			cfg__error(e, n, "%s does not fit in 32 bits", n->str);
	}
	if (n->type == CFG__STR) {
		size_t len = schema__utf8_len(n->str, n->len);
		if (s->min_len >= 0 && len < (size_t)s->min_len)
			cfg__error(e, n, "must be at least %lld characters long", (long long)s->min_len);
		if (s->max_len >= 0 && len > (size_t)s->max_len)
			cfg__error(e, n, "must be at most %lld characters long, is %zu", (long long)s->max_len, len);
		if (s->pattern && strlen(n->str) == n->len && !mesh_re_partial_match(s->pattern, n->str, n->len))
			cfg__error(e, n, "\"%s\" does not match %s", n->str, s->pattern_text);
		if (s->format && strcmp(s->format, "byte") == 0 && !schema__base64(n->str, n->len))
			cfg__error(e, n, "must be base64 encoded");
	}
}

static void schema__validate(struct cfg__ectx *e, const struct cfg__schema *s, const struct cfg__node *n, bool root)
{
	size_t i;

	if (e->n_errors >= CFG__MAX_ERRORS_PER_DOC || e->oom)
		return;
	if (n->type == CFG__NULL)
		return; /* absent */
	if (!schema__type_ok(s, n)) {
		cfg__error(e, n, "must be %s, not %s", schema__want_name(s), schema__type_name(n));
		return;
	}
	if (s->n_one_of) {
		size_t c = 0;
		for (i = 0; i < s->n_one_of; i++)
			c += schema__matches(s->one_of[i], n);
		if (c != 1) {
			char names[200];
			schema__one_of_names(s, names, sizeof(names));
			cfg__error(e, n, "only one of %s may be set", names);
		}
	}
	for (i = 0; i < s->n_all_of; i++) {
		const struct cfg__schema *sub = s->all_of[i];
		if (sub->n_one_of) {
			size_t c = 0, j;
			for (j = 0; j < sub->n_one_of; j++)
				c += schema__matches(sub->one_of[j], n);
			if (c != 1) {
				char names[200];
				schema__one_of_names(sub, names, sizeof(names));
				cfg__error(e, n, "only one of %s may be set", names);
			}
		} else if (!schema__matches(sub, n)) {
			cfg__error(e, n, "does not satisfy the schema");
		}
	}
	switch (n->type) {
	case CFG__MAP:
		schema__check_object(e, s, n, root);
		break;
	case CFG__SEQ:
		if (s->min_items >= 0 && n->n < (size_t)s->min_items)
			cfg__error(e, n, "must have at least %lld item%s", (long long)s->min_items,
				   s->min_items == 1 ? "" : "s");
		if (s->max_items >= 0 && n->n > (size_t)s->max_items)
			cfg__error(e, n, "must have at most %lld items, has %zu", (long long)s->max_items, n->n);
		for (i = 0; i < n->n && s->items; i++) {
			size_t mark = cfg__path_idx(e, i);
			if (n->v[i]->type == CFG__NULL)
				cfg__error(e, n->v[i], "list items may not be null");
			else
				schema__validate(e, s->items, n->v[i], false);
			cfg__path_pop(e, mark);
		}
		break;
	default:
		schema__check_scalar(e, s, n);
		break;
	}
}

void cfg__schema_validate(struct cfg__ectx *e, const struct cfg__schema *s, const struct cfg__node *root)
{
	schema__validate(e, s, root, true);
}
