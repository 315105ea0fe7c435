/*
 * store.c - the validated configuration meshd serves (see store.h).
 *
 * The store keeps, per origin (a file path, or "kube"), the objects that
 * origin contributed and the errors of its last parse.  The served view is
 * derived from all origins: for each (kind, namespace, name) the object of
 * the first origin in sorted order wins; a second definition elsewhere is
 * reported as an error and ignored.  Last-good: when a new parse of an
 * origin rejects a key it served before, the old object is carried over;
 * when the parse could not even identify its documents, everything the
 * origin served before is carried over.
 *
 * Every write re-derives the served view (O(n log n) over the objects,
 * bounded by the size of the configuration) and the reference warnings, and
 * bumps the generation when anything visible changed.  A batch
 * (cfg_store_begin/commit) records single-object writes as operations and
 * applies them together: the operations are sorted by key, reduced to one
 * effect per key and origin, merged into each origin's objects (sorted by
 * key for the merge) and followed by one rebuild.  Snapshots are
 * immutable copies of the served view, cached per generation and shared
 * by reference count.  Single writer (the config thread); snapshots may be
 * used and released from any thread.
 */
#include "controlplane/config/store.h"
#include "controlplane/config/config_int.h"

#include "common/arena.h"
#include "common/err.h"
#include "common/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define STORE__SNAPSHOT_ARENA_MAX (256u << 20)
#define STORE__DOMAIN "svc.cluster.local"

struct store__origin {
	char *name;
	struct cfg_object **objs;
	size_t n_objs;
	struct cfg_error *errors;
	size_t n_errors;
};

enum store__op_type { STORE__PUT, STORE__DEL, STORE__REJECT };

/* A single-object write recorded in a batch. */
struct store__op {
	enum store__op_type type;
	int kind;
	const char *ns, *name;       /* the key: into obj, err or own_*; name NULL for key-less errors */
	const char *origin;          /* PUT, REJECT: the origin written; DEL: NULL (every origin) */
	struct cfg_object *obj;      /* PUT: one reference */
	struct cfg_error err;        /* REJECT: a copy */
	char *own_ns, *own_name;     /* DEL: copies */
	size_t seq;
};

struct cfg_store {
	struct store__origin *origins; /* sorted by name */
	size_t n_origins;
	struct cfg_object **served;    /* sorted by (kind, ns, name); one reference each */
	size_t n_served;
	struct cfg_error *derived;     /* duplicates and reference warnings */
	size_t n_derived;
	struct cfg_error *logged;      /* reference warnings already logged (each is logged once) */
	size_t n_logged;
	uint64_t generation;
	uint64_t total_rejections;
	struct cfg_snapshot *cached;
	bool batching;
	struct store__op *ops;         /* the batch, in call order */
	size_t n_ops, cap_ops;
};

static void store__ops_free(struct store__op *ops, size_t n);

/* ------------------------------------------------------------- keys */

static int store__key_cmp(int ka, const char *nsa, const char *na, int kb, const char *nsb, const char *nb)
{
	int c;

	if (ka != kb)
		return ka < kb ? -1 : 1;
	c = strcmp(nsa ? nsa : "", nsb ? nsb : "");
	if (c)
		return c;
	return strcmp(na ? na : "", nb ? nb : "");
}

static int store__obj_cmp(const struct cfg_object *a, const struct cfg_object *b)
{
	return store__key_cmp((int)a->kind, a->ns, a->name, (int)b->kind, b->ns, b->name);
}

static bool store__error_is_for(const struct cfg_error *e, const struct cfg_object *o)
{
	return e->kind == (int)o->kind && e->name && store__key_cmp(e->kind, e->ns, e->name, (int)o->kind, o->ns,
								    o->name) == 0;
}

/* ------------------------------------------------------------- origins */

static struct store__origin *store__find_origin(struct cfg_store *s, const char *name, size_t *pos)
{
	size_t lo = 0, hi = s->n_origins;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int c = strcmp(s->origins[mid].name, name);
		if (c == 0) {
			if (pos)
				*pos = mid;
			return &s->origins[mid];
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (pos)
		*pos = lo;
	return NULL;
}

static struct store__origin *store__get_origin(struct cfg_store *s, const char *name)
{
	struct store__origin *o, *v;
	size_t pos;

	o = store__find_origin(s, name, &pos);
	if (o)
		return o;
	v = realloc(s->origins, (s->n_origins + 1) * sizeof(*v));
	if (!v)
		return NULL;
	s->origins = v;
	memmove(&s->origins[pos + 1], &s->origins[pos], (s->n_origins - pos) * sizeof(*v));
	memset(&s->origins[pos], 0, sizeof(*v));
	s->origins[pos].name = strdup(name);
	if (!s->origins[pos].name) {
		memmove(&s->origins[pos], &s->origins[pos + 1], (s->n_origins - pos) * sizeof(*v));
		return NULL;
	}
	s->n_origins++;
	return &s->origins[pos];
}

static void store__origin_clear(struct store__origin *o)
{
	size_t i;

	for (i = 0; i < o->n_objs; i++)
		cfg_object_unref(o->objs[i]);
	free(o->objs);
	for (i = 0; i < o->n_errors; i++)
		cfg_error_cleanup(&o->errors[i]);
	free(o->errors);
	o->objs = NULL;
	o->errors = NULL;
	o->n_objs = o->n_errors = 0;
}

static void store__drop_origin(struct cfg_store *s, struct store__origin *o)
{
	size_t pos = (size_t)(o - s->origins);

	store__origin_clear(o);
	free(o->name);
	memmove(&s->origins[pos], &s->origins[pos + 1], (s->n_origins - pos - 1) * sizeof(*o));
	s->n_origins--;
}

static void store__derived_clear(struct cfg_store *s)
{
	size_t i;

	for (i = 0; i < s->n_derived; i++)
		cfg_error_cleanup(&s->derived[i]);
	free(s->derived);
	s->derived = NULL;
	s->n_derived = 0;
}

static int store__derived_add(struct cfg_store *s, const struct cfg_object *o, const char *field, bool warning,
			      int line, int col, const char *fmt, ...) __attribute__((format(printf, 7, 8)));
/* line/col: where in o's source the message points (0: the document's
 * first token) */
static int store__derived_add(struct cfg_store *s, const struct cfg_object *o, const char *field, bool warning,
			      int line, int col, const char *fmt, ...)
{
	struct cfg_error e, *v;
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	memset(&e, 0, sizeof(e));
	e.origin = o->origin;
	e.line = line ? line : o->line;
	e.column = line ? col : o->col;
	e.kind = (int)o->kind;
	e.api_version = o->api_version;
	e.ns = o->ns;
	e.name = o->name;
	e.field = (char *)field;
	e.message = msg;
	e.warning = warning;
	v = realloc(s->derived, (s->n_derived + 1) * sizeof(*v));
	if (!v)
		return -ENOMEM;
	s->derived = v;
	if (cfg_error_copy(&s->derived[s->n_derived], &e) < 0)
		return -ENOMEM;
	s->derived[s->n_derived].warning = warning;
	s->n_derived++;
	return 0;
}

/* ------------------------------------------------------------- deriving the served view */

struct store__cand {
	struct cfg_object *obj;
	size_t origin;               /* index: lower wins */
};

static int store__cand_cmp(const void *x, const void *y)
{
	const struct store__cand *a = x, *b = y;
	int c = store__obj_cmp(a->obj, b->obj);

	if (c)
		return c;
	return a->origin < b->origin ? -1 : a->origin > b->origin;
}

/* Rebuild s->served and the duplicate errors.  *changed: keys whose served
 * object differs from before. */
static int store__rebuild(struct cfg_store *s, int *changed)
{
	struct store__cand *c = NULL;
	struct cfg_object **served = NULL;
	size_t n = 0, i, j, k, ns = 0;
	int rc = 0, diff = 0;

	for (i = 0; i < s->n_origins; i++)
		n += s->origins[i].n_objs;
	if (n) {
		c = malloc(n * sizeof(*c));
		served = malloc(n * sizeof(*served));
		if (!c || !served) {
			rc = -ENOMEM;
			goto out;
		}
	}
	for (i = 0, k = 0; i < s->n_origins; i++)
		for (j = 0; j < s->origins[i].n_objs; j++) {
			c[k].obj = s->origins[i].objs[j];
			c[k++].origin = i;
		}
	if (n)
		qsort(c, n, sizeof(*c), store__cand_cmp);
	store__derived_clear(s);
	for (i = 0; i < n; i++) {
		if (ns && store__obj_cmp(served[ns - 1], c[i].obj) == 0) {
			const struct cfg_object *w = served[ns - 1];
			rc = store__derived_add(s, c[i].obj, NULL, false, 0, 0,
						"also defined at %s:%d:%d, which wins (origins are taken in sorted order); "
						"this definition is ignored", w->origin, w->line, w->col);
			if (rc < 0)
				goto out;
			continue;
		}
		served[ns++] = cfg_object_ref(c[i].obj);
	}
	/* count changed keys: merge old and new, both sorted */
	for (i = 0, j = 0; i < s->n_served || j < ns;) {
		int cmp = i == s->n_served ? 1 : j == ns ? -1 : store__obj_cmp(s->served[i], served[j]);
		if (cmp == 0) {
			diff += s->served[i] != served[j] && s->served[i]->hash != served[j]->hash;
			i++;
			j++;
		} else {
			diff++;
			if (cmp < 0)
				i++;
			else
				j++;
		}
	}
	for (i = 0; i < s->n_served; i++)
		cfg_object_unref(s->served[i]);
	free(s->served);
	s->served = served;
	s->n_served = ns;
	served = NULL;
	*changed = diff;
	rc = cfg_store_check_references(s);
	if (rc > 0)
		rc = 0;
out:
	free(c);
	if (served) {
		for (i = 0; i < ns; i++)
			cfg_object_unref(served[i]);
		free(served);
	}
	return rc;
}

static void store__bump(struct cfg_store *s)
{
	s->generation++;
	cfg_snapshot_unref(s->cached);
	s->cached = NULL;
}

/* ------------------------------------------------------------- public */

struct cfg_store *cfg_store_new(void)
{
	return calloc(1, sizeof(struct cfg_store));
}

void cfg_store_free(struct cfg_store *s)
{
	size_t i;

	if (!s)
		return;
	for (i = 0; i < s->n_logged; i++)
		cfg_error_cleanup(&s->logged[i]);
	free(s->logged);
	for (i = 0; i < s->n_origins; i++) {
		store__origin_clear(&s->origins[i]);
		free(s->origins[i].name);
	}
	free(s->origins);
	for (i = 0; i < s->n_served; i++)
		cfg_object_unref(s->served[i]);
	free(s->served);
	store__derived_clear(s);
	cfg_snapshot_unref(s->cached);
	store__ops_free(s->ops, s->n_ops);
	free(s);
}

static size_t store__count_rejections(const struct cfg_error *e, size_t n)
{
	size_t i, c = 0;

	for (i = 0; i < n; i++)
		c += !e[i].warning;
	return c;
}

int cfg_store_apply_origin(struct cfg_store *s, const char *origin, struct cfg_parse_result *res)
{
	struct store__origin *o;
	struct cfg_object **objs = NULL;
	size_t n = 0, i, j;
	int rc, changed = 0;

	if (s->batching)
		return -EBUSY;
	o = store__get_origin(s, origin);
	if (!o)
		return -ENOMEM;
	objs = malloc((res->n_objects + o->n_objs + 1) * sizeof(*objs));
	if (!objs)
		return -ENOMEM;
	for (i = 0; i < res->n_objects; i++)
		objs[n++] = res->objects[i];
	/* last good: keep the old version of a key the new parse rejected, or of
	 * every key when the parse could not identify its documents */
	for (i = 0; i < o->n_objs; i++) {
		struct cfg_object *old = o->objs[i];
		bool keep = res->unidentified_errors;

		for (j = 0; j < res->n_objects; j++)
			if (store__obj_cmp(res->objects[j], old) == 0)
				break;
		if (j < res->n_objects)
			continue; /* replaced by a good new version */
		for (j = 0; j < res->n_errors && !keep; j++)
			keep = !res->errors[j].warning && store__error_is_for(&res->errors[j], old);
		if (keep)
			objs[n++] = cfg_object_ref(old);
	}
	store__origin_clear(o);
	o->objs = objs;
	o->n_objs = n;
	o->errors = res->errors;
	o->n_errors = res->n_errors;
	s->total_rejections += store__count_rejections(res->errors, res->n_errors);
	/* consumed */
	free(res->objects);
	res->objects = NULL;
	res->n_objects = 0;
	res->errors = NULL;
	res->n_errors = 0;
	if (!o->n_objs && !o->n_errors)
		store__drop_origin(s, o);
	rc = store__rebuild(s, &changed);
	store__bump(s);
	return rc < 0 ? rc : changed;
}

int cfg_store_remove_origin(struct cfg_store *s, const char *origin)
{
	struct store__origin *o = store__find_origin(s, origin, NULL);
	int rc, changed = 0;

	if (s->batching)
		return -EBUSY;
	if (!o)
		return 0;
	store__drop_origin(s, o);
	rc = store__rebuild(s, &changed);
	store__bump(s);
	return rc < 0 ? rc : changed;
}

/* Drop errors of origin o about o's key (kind, ns, name). */
static void store__forget_errors(struct store__origin *o, int kind, const char *ns, const char *name)
{
	size_t i, k = 0;

	for (i = 0; i < o->n_errors; i++) {
		struct cfg_error *e = &o->errors[i];
		if (e->kind == kind && e->name && store__key_cmp(e->kind, e->ns, e->name, kind, ns, name) == 0)
			cfg_error_cleanup(e);
		else
			o->errors[k++] = *e;
	}
	o->n_errors = k;
}

/* ------------------------------------------------------------- batches */

static void store__ops_free(struct store__op *ops, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		cfg_object_unref(ops[i].obj);
		cfg_error_cleanup(&ops[i].err);
		free(ops[i].own_ns);
		free(ops[i].own_name);
	}
	free(ops);
}

/* Record one write of a batch: a put of obj, a reject of e, or a delete of
 * (kind, ns, name).  0 or -ENOMEM. */
static int store__record(struct cfg_store *s, enum store__op_type type, struct cfg_object *obj,
			 const struct cfg_error *e, int kind, const char *ns, const char *name)
{
	struct store__op *op;

	if (s->n_ops == s->cap_ops) {
		size_t cap = s->cap_ops ? s->cap_ops * 2 : 64;
		struct store__op *v = realloc(s->ops, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		s->ops = v;
		s->cap_ops = cap;
	}
	op = &s->ops[s->n_ops];
	memset(op, 0, sizeof(*op));
	op->type = type;
	op->seq = s->n_ops;
	switch (type) {
	case STORE__PUT:
		op->obj = cfg_object_ref(obj);
		op->kind = (int)obj->kind;
		op->ns = obj->ns;
		op->name = obj->name;
		op->origin = obj->origin ? obj->origin : "kube";
		break;
	case STORE__REJECT:
		if (cfg_error_copy(&op->err, e) < 0) {
			cfg_error_cleanup(&op->err);
			return -ENOMEM;
		}
		op->err.warning = e->warning;
		op->kind = e->kind;
		op->ns = op->err.ns;
		op->name = op->err.name;
		op->origin = op->err.origin ? op->err.origin : "kube";
		break;
	case STORE__DEL:
		op->own_ns = strdup(ns ? ns : "");
		op->own_name = strdup(name ? name : "");
		if (!op->own_ns || !op->own_name) {
			free(op->own_ns);
			free(op->own_name);
			return -ENOMEM;
		}
		op->kind = kind;
		op->ns = op->own_ns;
		op->name = op->own_name;
		break;
	}
	s->n_ops++;
	return 0;
}

/* Key-less operations first, then by key, then in call order. */
static int store__op_cmp(const void *x, const void *y)
{
	const struct store__op *a = x, *b = y;
	int c;

	if (!a->name != !b->name)
		return a->name ? 1 : -1;
	if (a->name) {
		c = store__key_cmp(a->kind, a->ns, a->name, b->kind, b->ns, b->name);
		if (c)
			return c;
	}
	return a->seq < b->seq ? -1 : a->seq > b->seq;
}

static int store__objp_cmp(const void *x, const void *y)
{
	return store__obj_cmp(*(struct cfg_object *const *)x, *(struct cfg_object *const *)y);
}

#define STORE__ALL ((size_t)-1)

/* What a batch does to one key in one origin (or, origin STORE__ALL, a
 * delete in every origin).  Every effect also drops the origin's errors
 * about the key before adding err. */
struct store__effect {
	const struct store__op *key;
	size_t origin;
	bool set_obj;                /* replace the key's objects by obj (NULL: remove) */
	struct cfg_object *obj;      /* borrowed from the op */
	struct cfg_error *err;       /* the op's error, moved into the origin */
};

static int store__effect_key_cmp(const struct store__effect *e, int kind, const char *ns, const char *name)
{
	return store__key_cmp(e->key->kind, e->key->ns, e->key->name, kind, ns, name);
}

/* Does an effect on origin oi cover the key (kind, ns, name)?  eff is
 * sorted by key. */
static bool store__effect_covers(const struct store__effect *eff, size_t n, size_t oi, int kind, const char *ns,
				 const char *name)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (store__effect_key_cmp(&eff[mid], kind, ns, name) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (; lo < n && store__effect_key_cmp(&eff[lo], kind, ns, name) == 0; lo++)
		if (eff[lo].origin == oi || eff[lo].origin == STORE__ALL)
			return true;
	return false;
}

/* Apply the effects that concern origin oi. */
static int store__apply_effects(struct cfg_store *s, size_t oi, struct store__effect *eff, size_t n_eff,
				bool any_delete)
{
	struct store__origin *o = &s->origins[oi];
	struct cfg_object **objs;
	struct cfg_error *errs;
	size_t i, j = 0, n = 0, n_add = 0, k;
	bool mine = any_delete;

	for (i = 0; i < n_eff && !mine; i++)
		mine = eff[i].origin == oi;
	if (!mine)
		return 0;
	for (i = 0; i < n_eff; i++)
		n_add += eff[i].origin == oi && eff[i].err;
	objs = malloc((o->n_objs + n_eff + 1) * sizeof(*objs));
	errs = malloc((o->n_errors + n_add + 1) * sizeof(*errs));
	if (!objs || !errs) {
		free(objs);
		free(errs);
		return -ENOMEM;
	}
	/* objects: merge the origin's (sorted) with the effects (sorted) */
	if (o->n_objs > 1)
		qsort(o->objs, o->n_objs, sizeof(*o->objs), store__objp_cmp);
	for (i = 0; i < n_eff; i++) {
		const struct store__effect *e = &eff[i];
		if ((e->origin != oi && e->origin != STORE__ALL) || !e->set_obj)
			continue;
		while (j < o->n_objs && store__effect_key_cmp(e, (int)o->objs[j]->kind, o->objs[j]->ns,
							      o->objs[j]->name) > 0)
			objs[n++] = o->objs[j++];
		while (j < o->n_objs && store__effect_key_cmp(e, (int)o->objs[j]->kind, o->objs[j]->ns,
							      o->objs[j]->name) == 0)
			cfg_object_unref(o->objs[j++]);
		if (e->obj)
			objs[n++] = cfg_object_ref(e->obj);
	}
	while (j < o->n_objs)
		objs[n++] = o->objs[j++];
	free(o->objs);
	o->objs = objs;
	o->n_objs = n;
	/* errors: drop those about touched keys, then add the new ones */
	for (i = 0, k = 0; i < o->n_errors; i++) {
		struct cfg_error *e = &o->errors[i];
		if (e->name && store__effect_covers(eff, n_eff, oi, e->kind, e->ns, e->name))
			cfg_error_cleanup(e);
		else
			errs[k++] = *e;
	}
	for (i = 0; i < n_eff; i++) {
		if (eff[i].origin != oi || !eff[i].err)
			continue;
		errs[k++] = *eff[i].err;
		memset(eff[i].err, 0, sizeof(*eff[i].err)); /* moved */
	}
	free(o->errors);
	o->errors = errs;
	o->n_errors = k;
	return 0;
}

int cfg_store_begin(struct cfg_store *s)
{
	if (s->batching)
		return -EBUSY;
	s->batching = true;
	return 0;
}

int cfg_store_commit(struct cfg_store *s)
{
	struct store__op *ops = s->ops;
	struct store__effect *eff = NULL;
	size_t n = s->n_ops, n_eff = 0, i, j, k, pos;
	bool any_delete = false;
	int rc = 0, changed = 0;

	if (!s->batching)
		return 0;
	s->batching = false;
	s->ops = NULL;
	s->n_ops = s->cap_ops = 0;
	if (!n)
		goto out;
	/* every origin written exists before any index into s->origins is kept */
	for (i = 0; i < n; i++) {
		if (ops[i].origin && !store__get_origin(s, ops[i].origin)) {
			rc = -ENOMEM;
			goto out;
		}
	}
	qsort(ops, n, sizeof(*ops), store__op_cmp);
	eff = calloc(n, sizeof(*eff));
	if (!eff) {
		rc = -ENOMEM;
		goto out;
	}
	for (i = 0; i < n; i = j) {
		size_t last_del = SIZE_MAX, first_eff = n_eff;

		if (!ops[i].name) {
			/* an error about no particular object: added as it is */
			struct store__origin *o = store__find_origin(s, ops[i].origin, NULL);
			struct cfg_error *v = realloc(o->errors, (o->n_errors + 1) * sizeof(*v));
			if (!v) {
				rc = -ENOMEM;
				goto out;
			}
			o->errors = v;
			o->errors[o->n_errors++] = ops[i].err;
			memset(&ops[i].err, 0, sizeof(ops[i].err));
			j = i + 1;
			continue;
		}
		for (j = i; j < n && ops[j].name &&
			    store__key_cmp(ops[j].kind, ops[j].ns, ops[j].name, ops[i].kind, ops[i].ns, ops[i].name) == 0;
		     j++)
			if (ops[j].type == STORE__DEL)
				last_del = j;
		if (last_del != SIZE_MAX) {
			eff[n_eff++] = (struct store__effect){ .key = &ops[last_del], .origin = STORE__ALL, .set_obj = true };
			any_delete = true;
			first_eff = n_eff;
		}
		for (k = last_del == SIZE_MAX ? i : last_del + 1; k < j; k++) {
			struct store__effect *e = NULL;
			size_t m;

			store__find_origin(s, ops[k].origin, &pos);
			for (m = first_eff; m < n_eff && !e; m++)
				if (eff[m].origin == pos)
					e = &eff[m];
			if (!e) {
				e = &eff[n_eff++];
				*e = (struct store__effect){ .key = &ops[k], .origin = pos };
			}
			if (ops[k].type == STORE__PUT) {
				e->set_obj = true;
				e->obj = ops[k].obj;
				e->err = NULL;
			} else {
				e->err = &ops[k].err;
			}
		}
	}
	for (i = 0; i < s->n_origins; i++) {
		rc = store__apply_effects(s, i, eff, n_eff, any_delete);
		if (rc < 0)
			goto out;
	}
	for (i = s->n_origins; i-- > 0;)
		if (!s->origins[i].n_objs && !s->origins[i].n_errors)
			store__drop_origin(s, &s->origins[i]);
	rc = store__rebuild(s, &changed);
	store__bump(s);
out:
	free(eff);
	store__ops_free(ops, n);
	return rc < 0 ? rc : changed;
}

/* ------------------------------------------------------------- single writes */

int cfg_store_put(struct cfg_store *s, struct cfg_object *obj)
{
	struct store__origin *o = s->batching ? NULL : store__get_origin(s, obj->origin ? obj->origin : "kube");
	size_t i;
	int rc, changed = 0;

	if (s->batching)
		return store__record(s, STORE__PUT, obj, NULL, 0, NULL, NULL);
	if (!o)
		return -ENOMEM;
	store__forget_errors(o, (int)obj->kind, obj->ns, obj->name);
	for (i = 0; i < o->n_objs; i++) {
		if (store__obj_cmp(o->objs[i], obj) == 0) {
			cfg_object_unref(o->objs[i]);
			o->objs[i] = cfg_object_ref(obj);
			break;
		}
	}
	if (i == o->n_objs) {
		struct cfg_object **v = realloc(o->objs, (o->n_objs + 1) * sizeof(*v));
		if (!v)
			return -ENOMEM;
		o->objs = v;
		o->objs[o->n_objs++] = cfg_object_ref(obj);
	}
	rc = store__rebuild(s, &changed);
	store__bump(s);
	return rc < 0 ? rc : changed > 0;
}

int cfg_store_delete(struct cfg_store *s, enum cfg_kind kind, const char *ns, const char *name)
{
	size_t i, j;
	int rc, changed = 0;

	if (s->batching)
		return store__record(s, STORE__DEL, NULL, NULL, (int)kind, ns, name);
	for (i = 0; i < s->n_origins; i++) {
		struct store__origin *o = &s->origins[i];
		store__forget_errors(o, (int)kind, ns, name);
		for (j = 0; j < o->n_objs; j++) {
			if (store__key_cmp((int)o->objs[j]->kind, o->objs[j]->ns, o->objs[j]->name, (int)kind, ns, name) == 0) {
				cfg_object_unref(o->objs[j]);
				memmove(&o->objs[j], &o->objs[j + 1], (o->n_objs - j - 1) * sizeof(*o->objs));
				o->n_objs--;
				break;
			}
		}
	}
	for (i = s->n_origins; i-- > 0;)
		if (!s->origins[i].n_objs && !s->origins[i].n_errors)
			store__drop_origin(s, &s->origins[i]);
	rc = store__rebuild(s, &changed);
	store__bump(s);
	return rc < 0 ? rc : changed > 0;
}

int cfg_store_reject(struct cfg_store *s, const struct cfg_error *e)
{
	struct store__origin *o;
	struct cfg_error *v;

	if (s->batching) {
		int rc = store__record(s, STORE__REJECT, NULL, e, 0, NULL, NULL);
		if (rc == 0 && !e->warning)
			s->total_rejections++;
		return rc;
	}
	o = store__get_origin(s, e->origin ? e->origin : "kube");
	if (!o)
		return -ENOMEM;
	if (e->name)
		store__forget_errors(o, e->kind, e->ns, e->name);
	v = realloc(o->errors, (o->n_errors + 1) * sizeof(*v));
	if (!v)
		return -ENOMEM;
	o->errors = v;
	if (cfg_error_copy(&o->errors[o->n_errors], e) < 0)
		return -ENOMEM;
	o->errors[o->n_errors].warning = e->warning;
	o->n_errors++;
	if (!e->warning)
		s->total_rejections++;
	store__bump(s);
	return 0;
}

const struct cfg_object *cfg_store_get(const struct cfg_store *s, enum cfg_kind kind, const char *ns, const char *name)
{
	size_t lo = 0, hi = s->n_served;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		const struct cfg_object *o = s->served[mid];
		int c = store__key_cmp((int)o->kind, o->ns, o->name, (int)kind, ns, name);
		if (c == 0)
			return o;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

/* ------------------------------------------------------------- references */

/* Host as a comparable FQDN: short names are relative to the namespace. */
static void store__fqdn(const char *host, const char *ns, char *out, size_t cap)
{
	if (!strchr(host, '.'))
		snprintf(out, cap, "%s.%s.%s", host, ns, STORE__DOMAIN);
	else
		snprintf(out, cap, "%s", host);
}

static bool store__host_matches(const char *pattern, const char *host)
{
	return cfg_host_covers(pattern, host, NULL);
}

/* The served DestinationRules by host, built once per reference check so
 * that checking every VirtualService destination is not a scan of the
 * whole store each (1,000 services made that 2,000 x 3,000 snprintf()s per
 * config change).  Exact hosts are sorted (case-insensitive) for binary
 * search; wildcard hosts are few and scanned. */
struct store__dr_ref {
	char fqdn[300];
	size_t pos;                      /* in s->served: later wins the error text */
	const struct cfg_object *o;
};

struct store__dr_index {
	struct store__dr_ref *exact, *wild;
	size_t n_exact, n_wild;
};

static int store__dr_ref_cmp(const void *x, const void *y)
{
	const struct store__dr_ref *a = x, *b = y;
	int c = strcasecmp(a->fqdn, b->fqdn);

	return c ? c : (a->pos > b->pos) - (a->pos < b->pos);
}

static int store__dr_index_build(const struct cfg_store *s, struct store__dr_index *ix)
{
	size_t i, n = 0;

	memset(ix, 0, sizeof(*ix));
	for (i = 0; i < s->n_served; i++)
		n += s->served[i]->kind == CFG_DESTINATION_RULE && s->served[i]->spec.dr.host;
	if (!n)
		return 0;
	ix->exact = malloc(n * sizeof(*ix->exact));
	ix->wild = malloc(n * sizeof(*ix->wild));
	if (!ix->exact || !ix->wild)
		return -ENOMEM;
	for (i = 0; i < s->n_served; i++) {
		const struct cfg_object *o = s->served[i];
		struct store__dr_ref *r;

		if (o->kind != CFG_DESTINATION_RULE || !o->spec.dr.host)
			continue;
		r = o->spec.dr.host[0] == '*' ? &ix->wild[ix->n_wild++] : &ix->exact[ix->n_exact++];
		store__fqdn(o->spec.dr.host, o->ns, r->fqdn, sizeof(r->fqdn));
		r->pos = i;
		r->o = o;
	}
	qsort(ix->exact, ix->n_exact, sizeof(*ix->exact), store__dr_ref_cmp);
	return 0;
}

static void store__dr_index_cleanup(struct store__dr_index *ix)
{
	free(ix->exact);
	free(ix->wild);
	memset(ix, 0, sizeof(*ix));
}

/* Does r define the subset?  Counts r as a DestinationRule for the host. */
static bool store__dr_has_subset(const struct store__dr_ref *r, const char *subset, size_t *n_dr,
				 const struct store__dr_ref **named)
{
	size_t k;

	(*n_dr)++;
	if (!*named || r->pos > (*named)->pos)
		*named = r;
	for (k = 0; k < r->o->spec.dr.n_subsets; k++)
		if (r->o->spec.dr.subsets[k].name && strcmp(r->o->spec.dr.subsets[k].name, subset) == 0)
			return true;
	return false;
}

static int store__check_destination(struct cfg_store *s, const struct store__dr_index *ix,
				    const struct cfg_object *vs, const struct cfg_destination *d,
				    const char *field, int line, int col)
{
	char want[300];
	size_t i, lo = 0, hi = ix->n_exact, n_dr = 0;
	const struct store__dr_ref *named = NULL;

	if (!d->subset || !d->host)
		return 0;
	store__fqdn(d->host, vs->ns, want, sizeof(want));
	/* first exact entry not below want */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (strcasecmp(ix->exact[mid].fqdn, want) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (i = lo; i < ix->n_exact && strcasecmp(ix->exact[i].fqdn, want) == 0; i++)
		if (store__dr_has_subset(&ix->exact[i], d->subset, &n_dr, &named))
			return 0;
	for (i = 0; i < ix->n_wild; i++)
		if (store__host_matches(ix->wild[i].fqdn, want) &&
		    store__dr_has_subset(&ix->wild[i], d->subset, &n_dr, &named))
			return 0;
	if (!n_dr)
		return store__derived_add(s, vs, field, true, line, col,
					  "subset \"%s\" is not defined: no DestinationRule for host %s; "
					  "this route has no healthy upstream", d->subset, d->host) < 0 ? -ENOMEM : 1;
	return store__derived_add(s, vs, field, true, line, col,
				  "subset \"%s\" is not defined by DestinationRule %s/%s for host %s; "
				  "this route has no healthy upstream", d->subset, named->o->ns, named->o->name,
				  d->host) < 0 ? -ENOMEM : 1;
}

static bool store__str_eq(const char *a, const char *b)
{
	return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

/* Is a finding equal to e in v[0..n)? */
static bool store__error_in(const struct cfg_error *e, const struct cfg_error *v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (v[i].kind == e->kind && v[i].line == e->line && store__str_eq(v[i].origin, e->origin) &&
		    store__str_eq(v[i].ns, e->ns) && store__str_eq(v[i].name, e->name) &&
		    store__str_eq(v[i].field, e->field) && store__str_eq(v[i].message, e->message))
			return true;
	return false;
}

/* Istio's analyzer MultipleSidecarsWithoutSelectors (IST0109): of several
 * Sidecars without a workloadSelector in one namespace, Istio applies one
 * (the oldest, then by name: model_sidecar_select()); each of the others
 * gets a warning naming it.  Returns the number of warnings or -ENOMEM. */
static int store__check_sidecars(struct cfg_store *s)
{
	size_t i, j;
	int found = 0, rc;

	for (i = 0; i < s->n_served; i++) {
		const struct cfg_object *o = s->served[i], *win = NULL;

		if (o->kind != CFG_SIDECAR || o->spec.sc.has_workload_selector)
			continue;
		for (j = 0; j < s->n_served; j++) {
			const struct cfg_object *c = s->served[j];

			if (c->kind == CFG_SIDECAR && !c->spec.sc.has_workload_selector && strcmp(c->ns, o->ns) == 0 &&
			    (!win || cfg_object_older(c, win)))
				win = c;
		}
		if (win == o)
			continue;
		rc = store__derived_add(s, o, NULL, true, 0, 0,
					"several Sidecars without workloadSelector in namespace %s: only %s (the oldest, "
					"then by name) applies, this one is ignored", o->ns, win->name);
		if (rc < 0)
			return rc;
		found++;
	}
	return found;
}

/* Istio's analyzer MultipleTelemetriesWithoutWorkloadSelectors (IST0160):
 * of several Telemetry objects without selector (and without targetRefs)
 * in one namespace, istiod applies one, the oldest then by name
 * (model/telemetry.c, as its namespaceWideTelemetryConfig); each of the
 * others gets a warning naming the one that applies.  Returns the number
 * of warnings or -ENOMEM. */
static bool store__telemetry_wide(const struct cfg_object *o)
{
	return o->kind == CFG_TELEMETRY && !o->spec.tm.has_target_refs &&
	       (!o->spec.tm.has_selector || o->spec.tm.selector.n == 0);
}

static int store__check_telemetries(struct cfg_store *s)
{
	size_t i, j;
	int found = 0, rc;

	for (i = 0; i < s->n_served; i++) {
		const struct cfg_object *o = s->served[i], *win = NULL;

		if (!store__telemetry_wide(o))
			continue;
		for (j = 0; j < s->n_served; j++) {
			const struct cfg_object *c = s->served[j];

			if (store__telemetry_wide(c) && strcmp(c->ns, o->ns) == 0 && (!win || cfg_object_older(c, win)))
				win = c;
		}
		if (win == o)
			continue;
		rc = store__derived_add(s, o, NULL, true, 0, 0,
					"MultipleTelemetriesWithoutWorkloadSelectors (IST0160): several Telemetry objects "
					"without selector in namespace %s: only %s (the oldest, then by name) applies, this "
					"one is ignored; merge them into one", o->ns, win->name);
		if (rc < 0)
			return rc;
		found++;
	}
	return found;
}

/* The service (ServiceEntry or Service) of s with port number port, or
 * NULL. */
static const struct cfg_object *store__service_with_port(const struct cfg_store *s, int64_t port)
{
	size_t i, j;

	for (i = 0; i < s->n_served; i++) {
		const struct cfg_object *o = s->served[i];

		for (j = 0; o->kind == CFG_SERVICE_ENTRY && j < o->spec.se.n_ports; j++)
			if (o->spec.se.ports[j].number == port)
				return o;
		for (j = 0; o->kind == CFG_K8S_SERVICE && j < o->spec.svc.n_ports; j++)
			if (o->spec.svc.ports[j].port == port)
				return o;
	}
	return NULL;
}

/* A Sidecar under captureMode NONE whose ingress listener and the
 * outbound listener of the same port bind the same address (ingress
 * bind, default 0.0.0.0; egress bind of the port's egress listener, else
 * of the catch-all one, default 127.0.0.1): both would be "BIND_PORT".
 * istiod sends both, outbound first, and Envoy keeps the first and
 * rejects the duplicate; meshd's generator keeps the outbound one.  A
 * warning on the Sidecar says so (with the catch-all listener only when
 * some service has the port: which services it imports is the
 * generator's business).  Returns the number of warnings or -ENOMEM. */
static int store__check_sidecar_listeners(struct cfg_store *s)
{
	size_t i, j, k;
	int found = 0, rc;

	for (i = 0; i < s->n_served; i++) {
		const struct cfg_object *o = s->served[i];
		const struct cfg_sidecar *sc = &o->spec.sc;
		bool none = false;

		if (o->kind != CFG_SIDECAR)
			continue;
		for (j = 0; j < sc->n_ingress; j++)
			none = none || sc->ingress[j].capture_mode == CFG_CAPTURE_NONE;
		for (j = 0; j < sc->n_egress; j++)
			none = none || sc->egress[j].capture_mode == CFG_CAPTURE_NONE;
		if (!none)
			continue;
		for (j = 0; j < sc->n_ingress; j++) {
			const struct cfg_sidecar_ingress *in = &sc->ingress[j];
			const char *ib = in->bind && in->bind[0] ? in->bind : "0.0.0.0", *eb = NULL, *via = NULL;
			const struct cfg_object *svc = NULL;
			char field[48];

			for (k = 0; k < sc->n_egress && !eb; k++) {
				const struct cfg_sidecar_egress *e = &sc->egress[k];
				if (e->port == in->port || (e->port < 0 && (svc = store__service_with_port(s, in->port)))) {
					eb = e->bind && e->bind[0] ? e->bind : "127.0.0.1";
					via = e->port < 0 ? "the catch-all egress listener" : "its egress listener";
				}
			}
			if (!eb || strcmp(eb, ib) != 0)
				continue;
			snprintf(field, sizeof(field), "spec.ingress[%zu]", j);
			rc = store__derived_add(s, o, field, true, 0, 0,
						"sidecar: conflicting listeners %s_%lld: this ingress listener and the outbound "
						"listener of port %lld (%s%s%s%s%s) bind the same address; meshd serves the "
						"outbound one, not this ingress listener (istiod sends both and Envoy keeps "
						"the first, the outbound one)", ib, (long long)in->port, (long long)in->port,
						via, svc ? ", service " : "", svc ? svc->ns : "", svc ? "/" : "",
						svc ? svc->name : "");
			if (rc < 0)
				return rc;
			found++;
		}
	}
	return found;
}

/* gwcheck.c's findings become derived warnings of the Gateway. */
static int store__gateway_finding(void *ctx, const struct cfg_object *o, const char *field, int line, int col,
				  const char *msg)
{
	return store__derived_add(ctx, o, field, true, line, col, "%s", msg);
}

int cfg_store_check_references(struct cfg_store *s)
{
	struct store__dr_index ix;
	size_t i, r, t, k = 0;
	int found = 0, rc;
	char field[96];

	/* drop earlier reference findings (derived warnings), keep duplicates */
	for (i = 0; i < s->n_derived; i++) {
		if (s->derived[i].warning)
			cfg_error_cleanup(&s->derived[i]);
		else
			s->derived[k++] = s->derived[i];
	}
	s->n_derived = k;
	memset(&ix, 0, sizeof(ix));
	rc = store__dr_index_build(s, &ix);
	if (rc < 0)
		goto out;
	for (i = 0; i < s->n_served; i++) {
		const struct cfg_object *o = s->served[i];
		const struct cfg_virtual_service *vs = &o->spec.vs;

		if (o->kind != CFG_VIRTUAL_SERVICE)
			continue;
		for (r = 0; r < vs->n_http; r++) {
			const struct cfg_http_route *h = &vs->http[r];
			for (t = 0; t < h->n_route; t++) {
				snprintf(field, sizeof(field), "spec.http[%zu].route[%zu].destination.subset", r, t);
				rc = store__check_destination(s, &ix, o, &h->route[t].destination, field, h->line, h->col);
				if (rc < 0)
					goto out;
				found += rc;
			}
			/* every mirror is emitted now, so every mirror's subset is checked */
			for (t = 0; t < h->n_mirrors; t++) {
				snprintf(field, sizeof(field), "spec.http[%zu].mirrors[%zu].destination.subset", r, t);
				rc = store__check_destination(s, &ix, o, &h->mirrors[t].destination, field, h->line, h->col);
				if (rc < 0)
					goto out;
				found += rc;
			}
			if (h->mirror.set && !h->n_mirrors) {
				snprintf(field, sizeof(field), "spec.http[%zu].mirror.subset", r);
				rc = store__check_destination(s, &ix, o, &h->mirror.destination, field, h->line, h->col);
				if (rc < 0)
					goto out;
				found += rc;
			}
		}
		for (r = 0; r < vs->n_tcp; r++) {
			for (t = 0; t < vs->tcp[r].n_route; t++) {
				snprintf(field, sizeof(field), "spec.tcp[%zu].route[%zu].destination.subset", r, t);
				rc = store__check_destination(s, &ix, o, &vs->tcp[r].route[t].destination, field, 0, 0);
				if (rc < 0)
					goto out;
				found += rc;
			}
		}
	}
	rc = store__check_sidecars(s);
	if (rc < 0)
		goto out;
	found += rc;
	rc = store__check_telemetries(s);
	if (rc < 0)
		goto out;
	found += rc;
	rc = store__check_sidecar_listeners(s);
	if (rc < 0)
		goto out;
	found += rc;
	/* Gateways meeting on one gateway proxy (gwcheck.c) */
	rc = cfg__gateway_checks((const struct cfg_object *const *)s->served, s->n_served, store__gateway_finding, s);
	if (rc < 0)
		goto out;
	rc += found;
out:
	store__dr_index_cleanup(&ix);
	return rc;
}

/* Findings print their text where parse errors do: the log names each
 * reference warning and each duplicate ("also defined at ..., which wins")
 * once, when a snapshot (what meshd serves, after a whole batch of changes)
 * first shows it, so that the passing states of a load do not. */
static void store__log_findings(struct cfg_store *s)
{
	struct cfg_error *now;
	size_t i, n_now = 0;

	now = calloc(s->n_derived + 1, sizeof(*now));
	for (i = 0; now && i < s->n_derived; i++) {
		char text[1024];
		if (!store__error_in(&s->derived[i], s->logged, s->n_logged)) {
			cfg_error_format(&s->derived[i], text, sizeof(text));
			if (s->derived[i].warning)
				log_warn("config", "%s", text);
			else
				log_error("config", "rejected: %s", text);
		}
		if (cfg_error_copy(&now[n_now], &s->derived[i]) == 0)
			n_now++;
	}
	if (now) {
		for (i = 0; i < s->n_logged; i++)
			cfg_error_cleanup(&s->logged[i]);
		free(s->logged);
		s->logged = now;
		s->n_logged = n_now;
	}
}

/* ------------------------------------------------------------- snapshots */

static int store__err_cmp(const void *x, const void *y)
{
	const struct cfg_error *a = x, *b = y;
	int c = strcmp(a->origin ? a->origin : "", b->origin ? b->origin : "");

	if (c)
		return c;
	if (a->line != b->line)
		return a->line < b->line ? -1 : 1;
	return a->column < b->column ? -1 : a->column > b->column;
}

static char *store__adup(struct arena *a, const char *s, bool *oom)
{
	char *d;

	if (!s)
		return NULL;
	d = arena_strdup(a, s);
	if (!d)
		*oom = true;
	return d;
}

struct cfg_snapshot *cfg_store_snapshot(struct cfg_store *s)
{
	struct cfg_snapshot *snap = NULL;
	struct arena *a;
	size_t i, k, n_err = 0, counts[CFG_KIND_COUNT] = { 0 };
	bool oom = false;

	if (s->cached)
		return cfg_snapshot_ref(s->cached);
	store__log_findings(s);
	a = arena_new(STORE__SNAPSHOT_ARENA_MAX);
	if (!a)
		return NULL;
	snap = arena_alloc(a, sizeof(*snap));
	if (!snap)
		goto fail;
	snap->arena = a;
	mesh_refcount_init(&snap->refs, 1);
	snap->generation = s->generation;
	snap->total_rejections = s->total_rejections;
	for (i = 0; i < s->n_served; i++)
		counts[s->served[i]->kind]++;
	for (k = 0; k < CFG_KIND_COUNT; k++) {
		snap->objects[k] = arena_calloc(a, counts[k] ? counts[k] : 1, sizeof(struct cfg_object *));
		if (!snap->objects[k])
			goto fail;
	}
	/* served is sorted by kind, then (ns, name): per-kind arrays come out sorted */
	for (i = 0; i < s->n_served; i++) {
		struct cfg_object *o = s->served[i];
		snap->objects[o->kind][snap->n_objects[o->kind]++] = cfg_object_ref(o);
	}
	for (i = 0; i < s->n_origins; i++)
		n_err += s->origins[i].n_errors;
	n_err += s->n_derived;
	snap->errors = arena_calloc(a, n_err ? n_err : 1, sizeof(*snap->errors));
	if (!snap->errors)
		goto fail;
	for (i = 0; i <= s->n_origins; i++) {
		const struct cfg_error *src = i < s->n_origins ? s->origins[i].errors : s->derived;
		size_t n = i < s->n_origins ? s->origins[i].n_errors : s->n_derived;
		for (k = 0; k < n; k++) {
			struct cfg_error *d = &snap->errors[snap->n_errors++];
			*d = src[k];
			d->origin = store__adup(a, src[k].origin, &oom);
			d->api_version = store__adup(a, src[k].api_version, &oom);
			d->ns = store__adup(a, src[k].ns, &oom);
			d->name = store__adup(a, src[k].name, &oom);
			d->field = store__adup(a, src[k].field, &oom);
			d->message = store__adup(a, src[k].message, &oom);
		}
	}
	if (oom)
		goto fail;
	qsort(snap->errors, snap->n_errors, sizeof(*snap->errors), store__err_cmp);
	s->cached = snap;
	return cfg_snapshot_ref(snap);
fail:
	if (snap) {
		mesh_refcount_init(&snap->refs, 1);
		cfg_snapshot_unref(snap);
	} else {
		arena_free(a);
	}
	return NULL;
}

struct cfg_snapshot *cfg_snapshot_ref(struct cfg_snapshot *snap)
{
	if (snap)
		mesh_refcount_ref(&snap->refs);
	return snap;
}

void cfg_snapshot_unref(struct cfg_snapshot *snap)
{
	size_t k, i;

	if (!snap)
		return;
	if (!mesh_refcount_unref(&snap->refs))
		return;
	for (k = 0; k < CFG_KIND_COUNT; k++)
		for (i = 0; i < snap->n_objects[k]; i++)
			cfg_object_unref(snap->objects[k][i]);
	arena_free(snap->arena);
}
