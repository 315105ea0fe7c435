/*
 * node.c - YAML (and JSON, which is YAML) text -> a generic node tree.
 *
 * Built on libyaml's event API so that every node keeps its line and
 * column for error messages.  Scalars are resolved with the YAML core
 * schema (plus yes/no/on/off as booleans, as kubectl does); quoted scalars
 * are always strings.  Anchors and aliases are supported: an alias shares
 * the anchored node, and cfg__node.weight counts the expanded size so an
 * alias bomb hits CFG_MAX_DOCUMENT_NODES instead of memory.  Duplicate map
 * keys are errors (Kubernetes decodes strictly).
 *
 * Everything is allocated from the caller's arena.  See config_int.h.
 */
#include "controlplane/config/config_int.h"

#include "common/arena.h"
#include "common/err.h"
#include "common/json.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#define NODE__MAX_ANCHORS 1024

struct node__frame {
	struct cfg__node *node;      /* map or sequence being built */
	struct cfg__node **items;    /* malloc'd: seq items, or map key,value pairs */
	size_t n, cap;
	char *anchor;                /* anchor of this collection, registered when complete */
};

struct node__anchor {
	char *name;
	struct cfg__node *node;
};

struct node__parser {
	struct arena *a;
	int line0;
	struct node__frame stack[CFG_MAX_DEPTH + 1];
	size_t depth;
	struct node__anchor anchors[NODE__MAX_ANCHORS];
	size_t n_anchors;
	size_t n_nodes;              /* nodes created in this document */
	struct cfg__node *root;
	struct cfg__yaml_error *err;
};

static int node__fail(struct node__parser *p, int code, const yaml_mark_t *m, const char *fmt, const char *arg)
{
	if (p->err) {
		snprintf(p->err->msg, sizeof(p->err->msg), fmt, arg ? arg : "");
		p->err->line = m ? (int)m->line + 1 + p->line0 : 0;
		p->err->col = m ? (int)m->column + 1 : 0;
	}
	return code;
}

static bool node__eq(const char *s, const char *const *list)
{
	for (; *list; list++)
		if (strcmp(s, *list) == 0)
			return true;
	return false;
}

/* Resolve a plain scalar (core schema). */
static void node__resolve(struct cfg__node *n)
{
	static const char *const nulls[] = { "", "~", "null", "Null", "NULL", NULL };
	static const char *const trues[] = { "true", "True", "TRUE", "yes", "Yes", "YES", "on", "On", "ON", NULL };
	static const char *const falses[] = { "false", "False", "FALSE", "no", "No", "NO", "off", "Off", "OFF", NULL };
	const char *s = n->str;
	char *end;
	size_t i = 0;
	bool digits = false;

	if (node__eq(s, nulls)) {
		n->type = CFG__NULL;
		return;
	}
	if (node__eq(s, trues) || node__eq(s, falses)) {
		n->type = CFG__BOOL;
		n->b = node__eq(s, trues);
		return;
	}
	/* integers: [-+]?[0-9]+, 0x.., 0o.. */
	if (s[0] == '0' && (s[1] == 'x' || s[1] == 'o') && s[2]) {
		errno = 0;
		long long v = strtoll(s + 2, &end, s[1] == 'x' ? 16 : 8);
		if (!*end && !errno && s[2] != '-' && s[2] != '+' && s[2] != ' ') {
			n->type = CFG__INT;
			n->i = v;
			n->f = (double)v;
		}
		return;
	}
	if (s[i] == '-' || s[i] == '+')
		i++;
	while (s[i] >= '0' && s[i] <= '9') {
		i++;
		digits = true;
	}
	if (digits && !s[i]) {
		errno = 0;
		long long v = strtoll(s, &end, 10);
		if (!errno) {
			n->type = CFG__INT;
			n->i = v;
			n->f = (double)v;
			return;
		}
		/* too large for int64: a number all the same */
		n->type = CFG__FLOAT;
		n->f = strtod(s, NULL);
		return;
	}
	/* floats: [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)? and .inf/.nan */
	{
		static const char *const infs[] = { ".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF", NULL };
		static const char *const ninfs[] = { "-.inf", "-.Inf", "-.INF", NULL };
		static const char *const nans[] = { ".nan", ".NaN", ".NAN", NULL };
		bool frac = false;

		if (node__eq(s, infs) || node__eq(s, ninfs)) {
			n->type = CFG__FLOAT;
			n->f = node__eq(s, infs) ? HUGE_VAL : -HUGE_VAL;
			return;
		}
		if (node__eq(s, nans)) {
			n->type = CFG__FLOAT;
			n->f = NAN;
			return;
		}
		if (s[i] == '.') {
			i++;
			while (s[i] >= '0' && s[i] <= '9') {
				i++;
				frac = true;
			}
		}
		if (!digits && !frac)
			return;
		if (s[i] == 'e' || s[i] == 'E') {
			bool exp = false;
			i++;
			if (s[i] == '-' || s[i] == '+')
				i++;
			while (s[i] >= '0' && s[i] <= '9') {
				i++;
				exp = true;
			}
			if (!exp)
				return;
		}
		if (s[i])
			return;
		n->type = CFG__FLOAT;
		n->f = strtod(s, NULL);
	}
}

static struct cfg__node *node__new(struct node__parser *p, enum cfg__type t, const yaml_mark_t *m)
{
	struct cfg__node *n;

	if (++p->n_nodes > CFG_MAX_DOCUMENT_NODES)
		return NULL;
	n = arena_alloc(p->a, sizeof(*n));
	if (!n)
		return NULL;
	n->type = t;
	n->line = (int)m->line + 1 + p->line0;
	n->col = (int)m->column + 1;
	n->weight = 1;
	n->height = 1;
	return n;
}

static int node__register_anchor(struct node__parser *p, const char *name, struct cfg__node *n, const yaml_mark_t *m)
{
	size_t i;

	if (!name)
		return 0;
	/* a later anchor of the same name shadows the earlier one */
	for (i = 0; i < p->n_anchors; i++) {
		if (strcmp(p->anchors[i].name, name) == 0) {
			p->anchors[i].node = n;
			return 0;
		}
	}
	if (p->n_anchors == NODE__MAX_ANCHORS)
		return node__fail(p, -MESH_ETOOBIG, m, "too many anchors in one document%s", NULL);
	p->anchors[p->n_anchors].name = arena_strdup(p->a, name);
	if (!p->anchors[p->n_anchors].name)
		return -ENOMEM;
	p->anchors[p->n_anchors++].node = n;
	return 0;
}

/* Attach a finished node to the collection on top of the stack, or make it the root. */
static int node__add(struct node__parser *p, struct cfg__node *n, const yaml_mark_t *m)
{
	struct node__frame *f;

	if (p->depth == 0) {
		p->root = n;
		return 0;
	}
	f = &p->stack[p->depth - 1];
	if (f->node->type == CFG__MAP && f->n % 2 == 0) {
		/* a key */
		if (n->type == CFG__MAP || n->type == CFG__SEQ)
			return node__fail(p, -MESH_EPARSE, m, "a mapping key must be a scalar%s", NULL);
	}
	if (f->n == f->cap) {
		size_t cap = f->cap ? f->cap * 2 : 8;
		struct cfg__node **items = realloc(f->items, cap * sizeof(*items));
		if (!items)
			return -ENOMEM;
		f->items = items;
		f->cap = cap;
	}
	f->items[f->n++] = n;
	if ((int)p->depth + n->height > CFG_MAX_DEPTH)
		return node__fail(p, -MESH_ETOOBIG, m, "nesting deeper than %s levels (aliases expanded)", "64");
	if (f->node->height < n->height + 1)
		f->node->height = n->height + 1;
	if (f->node->weight + n->weight > CFG_MAX_DOCUMENT_NODES)
		return node__fail(p, -MESH_ETOOBIG, m, "document has more than " "%s" " nodes (aliases expanded)",
				  "200000");
	f->node->weight += n->weight;
	return 0;
}

static int node__push(struct node__parser *p, struct cfg__node *n, const char *anchor, const yaml_mark_t *m)
{
	struct node__frame *f;

	if (p->depth == CFG_MAX_DEPTH)
		return node__fail(p, -MESH_ETOOBIG, m, "nesting deeper than %s levels", "64");
	f = &p->stack[p->depth++];
	memset(f, 0, sizeof(*f));
	f->node = n;
	if (anchor) {
		f->anchor = arena_strdup(p->a, anchor);
		if (!f->anchor)
			return -ENOMEM;
	}
	return 0;
}

static int node__key_cmp(const void *x, const void *y)
{
	const struct cfg__node *a = *(const struct cfg__node *const *)x, *b = *(const struct cfg__node *const *)y;
	int c = strcmp(a->str, b->str);

	if (c)
		return c;
	if (a->line != b->line)
		return a->line < b->line ? -1 : 1;
	return a->col < b->col ? -1 : a->col > b->col;
}

/* Duplicate keys, in O(n log n); the error names the later occurrence. */
static int node__check_duplicates(struct node__parser *p, const struct cfg__node *n)
{
	struct cfg__node **keys;
	size_t i;
	int rc = 0;

	if (n->n < 2)
		return 0;
	keys = malloc(n->n * sizeof(*keys));
	if (!keys)
		return -ENOMEM;
	memcpy(keys, n->k, n->n * sizeof(*keys));
	qsort(keys, n->n, sizeof(*keys), node__key_cmp);
	for (i = 1; i < n->n; i++) {
		if (strcmp(keys[i - 1]->str, keys[i]->str) == 0) {
			yaml_mark_t m = { 0, (size_t)(keys[i]->line - 1 - p->line0), (size_t)(keys[i]->col - 1) };
			rc = node__fail(p, -MESH_EPARSE, &m, "duplicate key \"%s\"", keys[i]->str);
			break;
		}
	}
	free(keys);
	return rc;
}

static int node__pop(struct node__parser *p, const yaml_mark_t *m)
{
	struct node__frame *f = &p->stack[p->depth - 1];
	struct cfg__node *n = f->node;
	size_t i;
	int rc = 0;

	if (n->type == CFG__MAP) {
		n->n = f->n / 2;
		n->k = arena_calloc(p->a, n->n ? n->n : 1, sizeof(*n->k));
		n->v = arena_calloc(p->a, n->n ? n->n : 1, sizeof(*n->v));
		if (!n->k || !n->v) {
			rc = -ENOMEM;
			goto out;
		}
		for (i = 0; i < n->n; i++) {
			n->k[i] = f->items[2 * i];
			n->v[i] = f->items[2 * i + 1];
		}
		rc = node__check_duplicates(p, n);
		if (rc < 0)
			goto out;
	} else {
		n->n = f->n;
		n->v = arena_calloc(p->a, n->n ? n->n : 1, sizeof(*n->v));
		if (!n->v) {
			rc = -ENOMEM;
			goto out;
		}
		if (n->n)
			memcpy(n->v, f->items, n->n * sizeof(*n->v));
	}
	rc = node__register_anchor(p, f->anchor, n, m);
out:
	free(f->items);
	f->items = NULL;
	p->depth--;
	if (rc == 0)
		rc = node__add(p, n, m);
	return rc;
}

static int node__scalar(struct node__parser *p, const yaml_event_t *ev)
{
	const char *tag = (const char *)ev->data.scalar.tag;
	struct cfg__node *n = node__new(p, CFG__STR, &ev->start_mark);
	int rc;

	if (!n)
		return p->n_nodes > CFG_MAX_DOCUMENT_NODES
			? node__fail(p, -MESH_ETOOBIG, &ev->start_mark, "document has more than %s nodes", "200000")
			: -ENOMEM;
	n->len = ev->data.scalar.length;
	n->str = arena_strndup(p->a, (const char *)ev->data.scalar.value, n->len);
	if (!n->str)
		return -ENOMEM;
	if (tag && strcmp(tag, YAML_STR_TAG) == 0) {
		/* explicit !!str */
	} else if (tag && (strcmp(tag, YAML_INT_TAG) == 0 || strcmp(tag, YAML_FLOAT_TAG) == 0 ||
			   strcmp(tag, YAML_BOOL_TAG) == 0 || strcmp(tag, YAML_NULL_TAG) == 0)) {
		node__resolve(n);
	} else if (ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE) {
		node__resolve(n);
	}
	rc = node__register_anchor(p, (const char *)ev->data.scalar.anchor, n, &ev->start_mark);
	if (rc == 0)
		rc = node__add(p, n, &ev->start_mark);
	return rc;
}

static int node__alias(struct node__parser *p, const yaml_event_t *ev)
{
	const char *name = (const char *)ev->data.alias.anchor;
	size_t i;

	for (i = 0; i < p->n_anchors; i++)
		if (strcmp(p->anchors[i].name, name) == 0)
			return node__add(p, p->anchors[i].node, &ev->start_mark);
	return node__fail(p, -MESH_EPARSE, &ev->start_mark, "unknown anchor \"%s\" (or an alias inside its own anchor)",
			  name);
}

static void node__reset(struct node__parser *p)
{
	while (p->depth) {
		free(p->stack[p->depth - 1].items);
		p->depth--;
	}
	p->n_anchors = 0;
	p->n_nodes = 0;
	p->root = NULL;
}

/* Line and column (0-based, as libyaml's marks; the column in characters)
 * of byte offset off of data[0..len). */
static void node__offset_mark(const char *data, size_t len, size_t off, yaml_mark_t *m)
{
	size_t i;

	memset(m, 0, sizeof(*m));
	if (off > len)
		off = len;
	m->index = off;
	for (i = 0; i < off; i++) {
		unsigned char c = (unsigned char)data[i];
		if (c == '\n') {
			m->line++;
			m->column = 0;
		} else if ((c & 0xc0) != 0x80) {
			m->column++;   /* a UTF-8 continuation byte is no new character */
		}
	}
}

/* What input that fails to read at byte off probably is, for the message:
 * NULs at every other byte of its start are UTF-16 (or UTF-32) without a
 * byte-order mark (libyaml reads UTF-16 with one); control or high bytes
 * failing in its first bytes are no text at all.  A failure further in is a
 * bad byte in a text file: no hint. */
static const char *node__encoding_hint(const char *data, size_t len, size_t off)
{
	size_t i, n = len < 16 ? len : 16, zeros[2] = { 0, 0 };
	bool binary = false;

	if (off >= 16)
		return "";
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)data[i];
		if (!c)
			zeros[i & 1]++;
		else if (c < 0x09 || c == 0x7f || c >= 0x80)
			binary = true;
	}
	if (n >= 4 && (zeros[0] * 2 >= n / 2 || zeros[1] * 2 >= n / 2))
		return "; is this UTF-16 or UTF-32 without a byte-order mark? meshd reads UTF-8 (or UTF-16 with a BOM)";
	if (binary)
		return "; this does not look like a text file";
	return "";
}

int cfg__yaml_parse(struct arena *a, const char *data, size_t len, int line0,
		    cfg__doc_fn fn, void *ctx, struct cfg__yaml_error *err)
{
	yaml_parser_t yp;
	yaml_event_t ev;
	struct node__parser *p;
	bool done = false;
	int rc = 0;

	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->a = a;
	p->line0 = line0;
	p->err = err;
	if (!yaml_parser_initialize(&yp)) {
		free(p);
		return -ENOMEM;
	}
	yaml_parser_set_input_string(&yp, (const unsigned char *)data, len);
	while (!done) {
		if (!yaml_parser_parse(&yp, &ev)) {
			yaml_mark_t m = yp.problem_mark;
			char msg[200];

			if (yp.error == YAML_MEMORY_ERROR) {
				rc = -ENOMEM;
				break;
			}
			/* the reader (encoding: a NUL or other control character,
			 * invalid UTF-8) reports a byte offset, not a mark */
			if (yp.error == YAML_READER_ERROR) {
				node__offset_mark(data, len, yp.problem_offset, &m);
				if (yp.problem_value >= 0)
					snprintf(msg, sizeof(msg), "%s (byte 0x%02x at offset %zu)%s",
						 yp.problem ? yp.problem : "cannot read", (unsigned)yp.problem_value & 0xff,
						 yp.problem_offset, node__encoding_hint(data, len, yp.problem_offset));
				else
					snprintf(msg, sizeof(msg), "%s (at offset %zu)", yp.problem ? yp.problem : "cannot read",
						 yp.problem_offset);
				rc = node__fail(p, -MESH_EPARSE, &m, "not YAML text: %s", msg);
				break;
			}
			/* libyaml stops where it gave up; for an unclosed quote or
			 * bracket that is lines after the mistake, so the error points at
			 * where the quoted scalar or flow collection began (a block
			 * mapping's start, on the other hand, says nothing) */
			if (yp.context && yp.context_mark.line < m.line &&
			    (strstr(yp.context, "quoted scalar") || strstr(yp.context, "flow"))) {
				snprintf(msg, sizeof(msg), "%s %s that starts here (unclosed; reached line %d)",
					 yp.problem ? yp.problem : "syntax error", yp.context, (int)m.line + 1 + p->line0);
				m = yp.context_mark;
			} else if (yp.context)
				snprintf(msg, sizeof(msg), "%s %s", yp.problem ? yp.problem : "syntax error", yp.context);
			else
				snprintf(msg, sizeof(msg), "%s", yp.problem ? yp.problem : "syntax error");
			rc = node__fail(p, -MESH_EPARSE, &m, "malformed YAML: %s", msg);
			break;
		}
		switch (ev.type) {
		case YAML_STREAM_END_EVENT:
			done = true;
			break;
		case YAML_DOCUMENT_START_EVENT:
			node__reset(p);
			break;
		case YAML_DOCUMENT_END_EVENT:
			if (!p->root) {
				p->root = node__new(p, CFG__NULL, &ev.start_mark);
				if (!p->root) {
					rc = -ENOMEM;
					break;
				}
				p->root->str = "";
			}
			rc = fn(ctx, p->root);
			node__reset(p);
			break;
		case YAML_SCALAR_EVENT:
			rc = node__scalar(p, &ev);
			break;
		case YAML_ALIAS_EVENT:
			rc = node__alias(p, &ev);
			break;
		case YAML_SEQUENCE_START_EVENT:
		case YAML_MAPPING_START_EVENT: {
			bool map = ev.type == YAML_MAPPING_START_EVENT;
			struct cfg__node *n = node__new(p, map ? CFG__MAP : CFG__SEQ, &ev.start_mark);
			const char *anchor = (const char *)(map ? ev.data.mapping_start.anchor
						      : ev.data.sequence_start.anchor);
			if (!n) {
				rc = p->n_nodes > CFG_MAX_DOCUMENT_NODES
					? node__fail(p, -MESH_ETOOBIG, &ev.start_mark,
						     "document has more than %s nodes", "200000")
					: -ENOMEM;
				break;
			}
			rc = node__push(p, n, anchor, &ev.start_mark);
			break;
		}
		case YAML_SEQUENCE_END_EVENT:
		case YAML_MAPPING_END_EVENT:
			rc = node__pop(p, &ev.start_mark);
			break;
		default:
			break;
		}
		yaml_event_delete(&ev);
		if (rc < 0)
			break;
	}
	node__reset(p);
	yaml_parser_delete(&yp);
	free(p);
	return rc;
}

const struct cfg__node *cfg__node_get(const struct cfg__node *map, const char *key)
{
	size_t i;

	if (!map || map->type != CFG__MAP)
		return NULL;
	for (i = 0; i < map->n; i++)
		if (strcmp(map->k[i]->str, key) == 0)
			return map->v[i];
	return NULL;
}

const struct cfg__node *cfg__node_field(const struct cfg__node *map, const char *key)
{
	const struct cfg__node *n = cfg__node_get(map, key);

	return n && n->type != CFG__NULL ? n : NULL;
}

void cfg__node_json(struct mesh_buf *b, const struct cfg__node *n)
{
	size_t i;

	switch (n->type) {
	case CFG__NULL:
		mesh_buf_puts(b, "null");
		break;
	case CFG__BOOL:
		mesh_buf_puts(b, n->b ? "true" : "false");
		break;
	case CFG__INT:
		mesh_buf_printf(b, "%lld", (long long)n->i);
		break;
	case CFG__FLOAT:
		if (isfinite(n->f))
			mesh_buf_printf(b, "%.17g", n->f);
		else
			json_put_string(b, n->str); /* JSON has no inf/nan */
		break;
	case CFG__STR:
		json_put_stringn(b, n->str, n->len);
		break;
	case CFG__MAP:
		mesh_buf_putc(b, '{');
		for (i = 0; i < n->n && !b->err; i++) {
			if (i)
				mesh_buf_putc(b, ',');
			json_put_stringn(b, n->k[i]->str, n->k[i]->len);
			mesh_buf_putc(b, ':');
			cfg__node_json(b, n->v[i]);
		}
		mesh_buf_putc(b, '}');
		break;
	case CFG__SEQ:
		mesh_buf_putc(b, '[');
		for (i = 0; i < n->n && !b->err; i++) {
			if (i)
				mesh_buf_putc(b, ',');
			cfg__node_json(b, n->v[i]);
		}
		mesh_buf_putc(b, ']');
		break;
	}
}
