/*
 * telemetry.c - the effective Telemetry of a workload (see telemetry.h).
 *
 * A port of the merge rules of Istio's pilot/pkg/model/telemetry.go, in
 * our own code: the applicable objects are collected in precedence order,
 * then each signal is folded over them.  Everything the result points to
 * that is not borrowed from the model lives in one arena, so the result is
 * freed at once; arrays grow by doubling inside it (the old copy stays in
 * the arena until the free: at most twice the final size).
 */
#include "controlplane/model/telemetry.h"

#include "common/arena.h"
#include "common/err.h"
#include "common/json.h"
#include "controlplane/config/meshcfg.h"
#include "controlplane/config/store.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Cap on one result's arena: far above any real mesh's Telemetry, low
 * enough that a hostile set of objects cannot exhaust meshd. */
#define TEL_ARENA_MAX (16u << 20)

/* Istio's IstioMetric names but ALL_METRICS, sorted (telemetry.go allMetrics). */
static const char *const tel__all_metrics[] = {
	"GRPC_REQUEST_MESSAGES", "GRPC_RESPONSE_MESSAGES", "REQUEST_COUNT",	   "REQUEST_DURATION",
	"REQUEST_SIZE",		 "RESPONSE_SIZE",	   "TCP_CLOSED_CONNECTIONS", "TCP_OPENED_CONNECTIONS",
	"TCP_RECEIVED_BYTES",	 "TCP_SENT_BYTES",
};
#define TEL_N_ALL (sizeof(tel__all_metrics) / sizeof(tel__all_metrics[0]))

static const char *const tel__prometheus[] = { "prometheus" };
const struct model_telemetry_defaults model_telemetry_istio_defaults = { tel__prometheus, 1, NULL, 0, NULL, 0 };

void model_telemetry_mesh_defaults(const struct mesh_config *mc, struct model_telemetry_defaults *d)
{
	*d = model_telemetry_istio_defaults;
	if (!mc)
		return;
	d->tracing = (const char *const *)mc->default_tracing.v;
	d->n_tracing = mc->default_tracing.n;
	d->access_logging = (const char *const *)mc->default_access_logging.v;
	d->n_access_logging = mc->default_access_logging.n;
	if (mc->default_metrics_set) {
		d->metrics = (const char *const *)mc->default_metrics.v;
		d->n_metrics = mc->default_metrics.n;
	}
}

/* ------------------------------------------------------------------ helpers */

/* Make room for one more element of size sz in *v (n used, *cap held).
 * 0 or -ENOMEM. */
static int tel__grow(struct arena *a, void **v, size_t *cap, size_t n, size_t sz)
{
	void *nv;
	size_t nc;

	if (n < *cap)
		return 0;
	nc = *cap ? *cap * 2 : 4;
	nv = arena_calloc(a, nc, sz);
	if (!nv)
		return -ENOMEM;
	if (n)
		memcpy(nv, *v, n * sz);
	*v = nv;
	*cap = nc;
	return 0;
}

/* A list of provider names (borrowed strings). */
struct tel__names {
	const char **v;
	size_t n, cap;
};

static bool tel__names_has(const struct tel__names *s, const char *name)
{
	size_t i;

	for (i = 0; i < s->n; i++)
		if (strcmp(s->v[i], name) == 0)
			return true;
	return false;
}

static int tel__names_add(struct arena *a, struct tel__names *s, const char *name)
{
	if (tel__names_has(s, name))
		return 0;
	if (tel__grow(a, (void **)&s->v, &s->cap, s->n, sizeof(*s->v)) < 0)
		return -ENOMEM;
	s->v[s->n++] = name;
	return 0;
}

static void tel__names_set(struct tel__names *s, const char *const *v, size_t n)
{
	/* a borrowed view: callers never add to a set one */
	s->v = (const char **)v;
	s->n = n;
	s->cap = 0;
}

/* Whether an entry matched on mode applies to mode want (CLIENT/SERVER). */
static bool tel__mode_applies(enum cfg_tel_mode entry, enum cfg_tel_mode want)
{
	return entry == CFG_TEL_CLIENT_AND_SERVER || entry == want;
}

static int tel__cmp_obj(const void *a, const void *b)
{
	const struct cfg_object *x = *(const struct cfg_object *const *)a, *y = *(const struct cfg_object *const *)b;

	if (cfg_object_older(x, y))
		return -1;
	return cfg_object_older(y, x) ? 1 : 0;
}

/* qsort, which must not be handed a NULL base even for 0 elements. */
static void tel__sort(void *v, size_t n, size_t sz, int (*cmp)(const void *, const void *))
{
	if (n > 1)
		qsort(v, n, sz, cmp);
}

/* ------------------------------------------------------------------ selection */

static bool tel__namespace_wide(const struct cfg_object *o)
{
	return !o->spec.tm.has_target_refs && (!o->spec.tm.has_selector || o->spec.tm.selector.n == 0);
}

/* The Telemetry objects of ns, oldest first, into an arena array. */
static int tel__of_namespace(struct arena *a, const struct model *m, const char *ns, const struct cfg_object ***out,
			     size_t *n)
{
	struct cfg_object **all = m->cfg->objects[CFG_TELEMETRY];
	size_t i, total = m->cfg->n_objects[CFG_TELEMETRY], k = 0;
	const struct cfg_object **v;

	*out = NULL;
	*n = 0;
	v = arena_calloc(a, total ? total : 1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	for (i = 0; i < total; i++)
		if (all[i]->ns && strcmp(all[i]->ns, ns) == 0)
			v[k++] = all[i];
	tel__sort(v, k, sizeof(*v), tel__cmp_obj);
	*out = v;
	*n = k;
	return 0;
}

static const struct cfg_object *tel__first_wide(const struct cfg_object **v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (tel__namespace_wide(v[i]))
			return v[i];
	return NULL;
}

/* The applicable objects, in precedence order, into t (root, ns, workload)
 * and *order (all of them, lowest precedence first). */
static int tel__select(struct model_telemetry *t, const struct model *m, const char *ns,
		       const struct cfg_labels *labels, const struct cfg_object ***order, size_t *n_order)
{
	static const struct cfg_labels none = { NULL, 0 };
	const char *root = m->root_namespace ? m->root_namespace : "istio-system";
	const struct cfg_object **v, **ord;
	size_t n, i, k = 0;
	int rc;

	rc = tel__of_namespace(t->arena, m, root, &v, &n);
	if (rc < 0)
		return rc;
	t->root = tel__first_wide(v, n);
	if (strcmp(ns, root) != 0) {
		rc = tel__of_namespace(t->arena, m, ns, &v, &n);
		if (rc < 0)
			return rc;
		t->ns = tel__first_wide(v, n);
	}
	/* v, n: the workload's namespace (the root's when it is the root) */
	ord = arena_calloc(t->arena, n + 2, sizeof(*ord));
	t->workload = arena_calloc(t->arena, n ? n : 1, sizeof(*t->workload));
	if (!ord || !t->workload)
		return -ENOMEM;
	if (t->root)
		ord[k++] = t->root;
	if (t->ns)
		ord[k++] = t->ns;
	for (i = 0; i < n; i++) {
		if (tel__namespace_wide(v[i]) || v[i]->spec.tm.has_target_refs)
			continue;
		if (!model_labels_match(&v[i]->spec.tm.selector, labels ? labels : &none))
			continue;
		t->workload[t->n_workload++] = v[i];
		ord[k++] = v[i];
	}
	*order = ord;
	*n_order = k;
	return 0;
}

/* ------------------------------------------------------------------ metrics */

/* Working state of one provider while merging (mergeMetrics's maps). */
struct tel__mmode {
	bool disabled_all;
	struct model_tel_metric *v;
	size_t n, cap;
	size_t *tag_cap;                 /* per metric, parallel to v */
	size_t tag_cap_cap;
};

struct tel__mprov {
	const char *name;
	struct tel__mmode mode[2];       /* 0 client, 1 server */
	int64_t interval;
};

static struct model_tel_metric *tel__metric_entry(struct arena *a, struct tel__mmode *mm, const char *name)
{
	size_t i;

	for (i = 0; i < mm->n; i++)
		if (strcmp(mm->v[i].name, name) == 0)
			return &mm->v[i];
	if (tel__grow(a, (void **)&mm->v, &mm->cap, mm->n, sizeof(*mm->v)) < 0)
		return NULL;
	if (tel__grow(a, (void **)&mm->tag_cap, &mm->tag_cap_cap, mm->n, sizeof(*mm->tag_cap)) < 0)
		return NULL;
	memset(&mm->v[mm->n], 0, sizeof(mm->v[mm->n]));
	mm->v[mm->n].name = name;
	mm->tag_cap[mm->n] = 0;
	return &mm->v[mm->n++];
}

static int tel__metric_tag(struct arena *a, struct tel__mmode *mm, struct model_tel_metric *e,
			   const struct cfg_tel_tag_override *o)
{
	size_t i, idx = (size_t)(e - mm->v);

	if (!o->tag)
		return 0;
	for (i = 0; i < e->n_tags; i++)
		if (strcmp(e->tags[i].name, o->tag) == 0)
			break;
	if (i == e->n_tags) {
		if (tel__grow(a, (void **)&e->tags, &mm->tag_cap[idx], e->n_tags, sizeof(*e->tags)) < 0)
			return -ENOMEM;
		e->n_tags++;
	}
	e->tags[i].name = o->tag;
	e->tags[i].remove = o->remove;
	e->tags[i].value = o->remove ? NULL : o->value;
	return 0;
}

/* ALL_METRICS: an override without match, with a match naming no metric,
 * or naming ALL_METRICS (isAllMetrics). */
static bool tel__is_all(const struct cfg_tel_metric_override *o)
{
	if (o->custom_metric)
		return false;
	return !o->metric || strcmp(o->metric, "ALL_METRICS") == 0;
}

static int tel__apply_override(struct arena *a, struct tel__mprov *p, const struct cfg_tel_metric_override *o)
{
	const char *one;
	const char *const *names;
	size_t n_names, i, j;
	int md, rc;

	if (tel__is_all(o) && o->disabled == 1) {
		for (md = 0; md < 2; md++)
			if (tel__mode_applies(o->mode, md == 0 ? CFG_TEL_CLIENT : CFG_TEL_SERVER))
				p->mode[md].disabled_all = true;
		return 0;
	}
	if (o->custom_metric || (o->metric && strcmp(o->metric, "ALL_METRICS") != 0)) {
		one = o->custom_metric ? o->custom_metric : o->metric;
		names = &one;
		n_names = 1;
	} else {
		names = tel__all_metrics;
		n_names = TEL_N_ALL;
	}
	for (md = 0; md < 2; md++) {
		struct tel__mmode *mm = &p->mode[md];

		if (!tel__mode_applies(o->mode, md == 0 ? CFG_TEL_CLIENT : CFG_TEL_SERVER))
			continue;
		/* a lower level enables what a higher one disabled wholesale */
		mm->disabled_all = false;
		for (i = 0; i < n_names; i++) {
			struct model_tel_metric *e = tel__metric_entry(a, mm, names[i]);

			if (!e)
				return -ENOMEM;
			if (o->disabled >= 0)
				e->disabled = o->disabled == 1;
			for (j = 0; j < o->n_tags; j++) {
				rc = tel__metric_tag(a, mm, e, &o->tags[j]);
				if (rc < 0)
					return rc;
			}
		}
	}
	return 0;
}

static int tel__cmp_metric(const void *a, const void *b)
{
	return strcmp(((const struct model_tel_metric *)a)->name, ((const struct model_tel_metric *)b)->name);
}

static int tel__cmp_tag(const void *a, const void *b)
{
	return strcmp(((const struct model_tel_tag *)a)->name, ((const struct model_tel_tag *)b)->name);
}

static int tel__cmp_mprov(const void *a, const void *b)
{
	return strcmp(((const struct model_tel_metrics_provider *)a)->name,
		      ((const struct model_tel_metrics_provider *)b)->name);
}

static void tel__finish_mode(const struct tel__mmode *mm, struct model_tel_metrics_mode *out)
{
	size_t i;

	out->disabled = mm->disabled_all;
	if (mm->disabled_all)
		return; /* no filter: its overrides do not matter */
	out->overrides = mm->v;
	out->n_overrides = mm->n;
	tel__sort(out->overrides, out->n_overrides, sizeof(*out->overrides), tel__cmp_metric);
	for (i = 0; i < out->n_overrides; i++)
		tel__sort(out->overrides[i].tags, out->overrides[i].n_tags, sizeof(*out->overrides[i].tags), tel__cmp_tag);
}

static struct tel__mprov *tel__mprov_get(struct arena *a, struct tel__mprov **v, size_t *n, size_t *cap,
					 const char *name)
{
	size_t i;

	for (i = 0; i < *n; i++)
		if (strcmp((*v)[i].name, name) == 0)
			return &(*v)[i];
	if (tel__grow(a, (void **)v, cap, *n, sizeof(**v)) < 0)
		return NULL;
	memset(&(*v)[*n], 0, sizeof((*v)[*n]));
	(*v)[*n].name = name;
	(*v)[*n].interval = -1;
	return &(*v)[(*n)++];
}

/* mergeMetrics over the metrics[] entries of the objects in order. */
static int tel__merge_metrics(struct model_telemetry *t, const struct cfg_object **ord, size_t n_ord,
			      const struct model_telemetry_defaults *d)
{
	struct arena *a = t->arena;
	struct tel__names in_scope = { 0 }, parent = { 0 }, names = { 0 };
	struct tel__mprov *pv = NULL;
	size_t np = 0, cap = 0, i, j, k, o, any = 0;
	int rc;

	for (i = 0; i < n_ord; i++)
		any += ord[i]->spec.tm.n_metrics;
	tel__names_set(&in_scope, d->metrics, d->n_metrics);
	/* the most specific providers list wins, not merged */
	for (i = 0; i < n_ord; i++)
		for (j = 0; j < ord[i]->spec.tm.n_metrics; j++)
			if (ord[i]->spec.tm.metrics[j].providers.n)
				tel__names_set(&in_scope, (const char *const *)ord[i]->spec.tm.metrics[j].providers.v,
					       ord[i]->spec.tm.metrics[j].providers.n);
	if (!any) {
		/* the defaults, without overrides */
		for (k = 0; k < d->n_metrics; k++)
			if (!tel__mprov_get(a, &pv, &np, &cap, d->metrics[k]))
				return -ENOMEM;
	}
	tel__names_set(&parent, d->metrics, d->n_metrics);
	for (i = 0; i < n_ord; i++) {
		for (j = 0; j < ord[i]->spec.tm.n_metrics; j++) {
			const struct cfg_tel_metrics *m = &ord[i]->spec.tm.metrics[j];

			if (m->providers.n)
				tel__names_set(&names, (const char *const *)m->providers.v, m->providers.n);
			else
				names = parent;
			parent = names;
			for (k = 0; k < names.n; k++) {
				struct tel__mprov *p;

				/* a provider a lower level dropped */
				if (!tel__names_has(&in_scope, names.v[k]))
					continue;
				p = tel__mprov_get(a, &pv, &np, &cap, names.v[k]);
				if (!p)
					return -ENOMEM;
				if (m->reporting_interval > 0)
					p->interval = m->reporting_interval;
				for (o = 0; o < m->n_overrides; o++) {
					rc = tel__apply_override(a, p, &m->overrides[o]);
					if (rc < 0)
						return rc;
				}
			}
		}
	}
	if (np) {
		t->metrics = arena_calloc(a, np, sizeof(*t->metrics));
		if (!t->metrics)
			return -ENOMEM;
	}
	for (i = 0; i < np; i++) {
		t->metrics[i].name = pv[i].name;
		t->metrics[i].reporting_interval = pv[i].interval;
		tel__finish_mode(&pv[i].mode[0], &t->metrics[i].client);
		tel__finish_mode(&pv[i].mode[1], &t->metrics[i].server);
	}
	t->n_metrics = np;
	tel__sort(t->metrics, t->n_metrics, sizeof(*t->metrics), tel__cmp_mprov);
	return 0;
}

/* ------------------------------------------------------------------ tracing */

static void tel__merge_tracing(struct model_telemetry *t, const struct cfg_object **ord, size_t n_ord,
			       const struct model_telemetry_defaults *d)
{
	struct model_tel_tracing *specs[2] = { &t->client_tracing, &t->server_tracing };
	size_t i, j, s, any = 0;

	for (i = 0; i < n_ord; i++)
		any += ord[i]->spec.tm.n_tracing;
	if (!any && !d->n_tracing)
		return;
	t->has_tracing = true;
	for (s = 0; s < 2; s++) {
		specs[s]->random_sampling_percentage = -1;
		specs[s]->use_request_id_for_trace_sampling = true;
		/* Istio uses the first default provider only */
		specs[s]->provider = d->n_tracing ? d->tracing[0] : NULL;
	}
	for (i = 0; i < n_ord; i++) {
		for (j = 0; j < ord[i]->spec.tm.n_tracing; j++) {
			const struct cfg_tel_tracing *m = &ord[i]->spec.tm.tracing[j];

			for (s = 0; s < 2; s++) {
				struct model_tel_tracing *sp = specs[s];

				if (!tel__mode_applies(m->mode, s == 0 ? CFG_TEL_CLIENT : CFG_TEL_SERVER))
					continue;
				if (m->providers.n)
					sp->provider = m->providers.v[0];
				if (m->disable_span_reporting >= 0)
					sp->disabled = m->disable_span_reporting == 1;
				/* a shallow merge: customTags replace the parent's */
				if (m->has_custom_tags) {
					sp->custom_tags = m->custom_tags;
					sp->n_custom_tags = m->n_custom_tags;
				}
				if (m->random_sampling_percentage >= 0)
					sp->random_sampling_percentage = m->random_sampling_percentage;
				if (m->use_request_id_for_trace_sampling >= 0)
					sp->use_request_id_for_trace_sampling = m->use_request_id_for_trace_sampling == 1;
			}
		}
	}
	/* no provider: nothing to report to */
	for (s = 0; s < 2; s++)
		if (!specs[s]->provider)
			specs[s]->disabled = true;
}

/* ------------------------------------------------------------------ access logging */

static int tel__cmp_log(const void *a, const void *b)
{
	return strcmp(((const struct model_tel_log *)a)->provider, ((const struct model_tel_log *)b)->provider);
}

static struct model_tel_log *tel__log_get(struct arena *a, struct model_tel_log **v, size_t *n, size_t *cap,
					  const char *provider)
{
	size_t i;

	for (i = 0; i < *n; i++)
		if (strcmp((*v)[i].provider, provider) == 0)
			return &(*v)[i];
	if (tel__grow(a, (void **)v, cap, *n, sizeof(**v)) < 0)
		return NULL;
	memset(&(*v)[*n], 0, sizeof((*v)[*n]));
	(*v)[*n].provider = provider;
	return &(*v)[(*n)++];
}

/* mergeLogs for one mode: the providers in scope (the most specific
 * object naming any wins), each with the filter last given for it, or
 * disabled by the last entry that disables it. */
static int tel__merge_logs(struct model_telemetry *t, const struct cfg_object **ord, size_t n_ord,
			   const struct model_telemetry_defaults *d, enum cfg_tel_mode mode, struct model_tel_log **out,
			   size_t *n_out)
{
	struct arena *a = t->arena;
	struct tel__names in_scope = { 0 }, parent = { 0 }, names = { 0 };
	struct model_tel_log *filters = NULL, *v = NULL, *f;
	size_t nf = 0, capf = 0, n = 0, cap = 0, i, j, k, any = 0;

	for (i = 0; i < n_ord; i++)
		any += ord[i]->spec.tm.n_access_logging;
	if (!any) {
		for (k = 0; k < d->n_access_logging; k++)
			if (!tel__log_get(a, &v, &n, &cap, d->access_logging[k]))
				return -ENOMEM;
		goto out;
	}
	tel__names_set(&in_scope, d->access_logging, d->n_access_logging);
	for (i = 0; i < n_ord; i++) {
		struct tel__names here = { 0 };

		for (j = 0; j < ord[i]->spec.tm.n_access_logging; j++) {
			const struct cfg_tel_access_logging *l = &ord[i]->spec.tm.access_logging[j];

			if (!tel__mode_applies(l->mode, mode))
				continue;
			for (k = 0; k < l->providers.n; k++) {
				if (tel__names_add(a, &here, l->providers.v[k]) < 0)
					return -ENOMEM;
				f = tel__log_get(a, &filters, &nf, &capf, l->providers.v[k]);
				if (!f)
					return -ENOMEM;
				f->filter = l->filter;
			}
		}
		if (here.n)
			in_scope = here;
	}
	tel__names_set(&parent, d->access_logging, d->n_access_logging);
	for (i = 0; i < n_ord; i++) {
		for (j = 0; j < ord[i]->spec.tm.n_access_logging; j++) {
			const struct cfg_tel_access_logging *l = &ord[i]->spec.tm.access_logging[j];

			if (l->providers.n)
				tel__names_set(&names, (const char *const *)l->providers.v, l->providers.n);
			else
				names = parent;
			parent = names;
			if (!tel__mode_applies(l->mode, mode))
				continue;
			for (k = 0; k < names.n; k++) {
				struct model_tel_log *e;

				if (!tel__names_has(&in_scope, names.v[k]))
					continue;
				e = tel__log_get(a, &v, &n, &cap, names.v[k]);
				if (!e)
					return -ENOMEM;
				if (l->disabled == 1) {
					e->disabled = true;
					e->filter = NULL;
					continue;
				}
				e->disabled = false;
				f = tel__log_get(a, &filters, &nf, &capf, names.v[k]);
				if (!f)
					return -ENOMEM;
				e->filter = f->filter;
			}
		}
	}
out:
	tel__sort(v, n, sizeof(*v), tel__cmp_log);
	*out = v;
	*n_out = n;
	return 0;
}

/* ------------------------------------------------------------------ entry */

int model_telemetry_for(const struct model *m, const char *ns, const struct cfg_labels *labels,
			const struct model_telemetry_defaults *defaults, struct model_telemetry **out)
{
	static const struct model_telemetry_defaults none = { NULL, 0, NULL, 0, NULL, 0 };
	const struct model_telemetry_defaults *d = defaults ? defaults : &none;
	struct model_telemetry *t = NULL;
	const struct cfg_object **ord = NULL;
	struct arena *a;
	size_t n_ord = 0, i;
	bool any_log = false;
	int rc;

	*out = NULL;
	a = arena_new(TEL_ARENA_MAX);
	if (!a)
		return -ENOMEM;
	t = arena_alloc(a, sizeof(*t));
	if (!t) {
		arena_free(a);
		return -ENOMEM;
	}
	t->arena = a;
	rc = tel__select(t, m, ns && *ns ? ns : "default", labels, &ord, &n_ord);
	if (rc < 0)
		goto out;
	rc = tel__merge_metrics(t, ord, n_ord, d);
	if (rc < 0)
		goto out;
	for (i = 0; i < t->n_metrics; i++)
		t->metrics[i].prometheus = meshcfg_metrics_provider_is_prometheus(m->mesh, t->metrics[i].name);
	tel__merge_tracing(t, ord, n_ord, d);
	for (i = 0; i < n_ord; i++)
		any_log = any_log || ord[i]->spec.tm.n_access_logging;
	t->has_access_logging = any_log || d->n_access_logging;
	if (t->has_access_logging) {
		rc = tel__merge_logs(t, ord, n_ord, d, CFG_TEL_CLIENT, &t->client_logs, &t->n_client_logs);
		if (rc == 0)
			rc = tel__merge_logs(t, ord, n_ord, d, CFG_TEL_SERVER, &t->server_logs, &t->n_server_logs);
	}
out:
	if (rc < 0) {
		arena_free(a);
		return rc;
	}
	*out = t;
	return 0;
}

void model_telemetry_free(struct model_telemetry *t)
{
	if (t)
		arena_free(t->arena);
}

/* ------------------------------------------------------------------ JSON */

static void tel__json_obj_name(struct mesh_buf *b, const struct cfg_object *o)
{
	if (!o) {
		mesh_buf_puts(b, "null");
		return;
	}
	/* names are DNS labels (<= 253 bytes each), escaped anyway */
	char buf[520];

	snprintf(buf, sizeof(buf), "%s/%s", o->ns ? o->ns : "", o->name ? o->name : "");
	json_put_string(b, buf);
}

/* A string or null. */
static void tel__json_str(struct mesh_buf *b, const char *s)
{
	if (s)
		json_put_string(b, s);
	else
		mesh_buf_puts(b, "null");
}

static void tel__json_mode(struct mesh_buf *b, const struct model_tel_metrics_mode *mm)
{
	size_t i, j;

	mesh_buf_printf(b, "{\"disabled\":%s,\"overrides\":[", mm->disabled ? "true" : "false");
	for (i = 0; i < mm->n_overrides; i++) {
		const struct model_tel_metric *e = &mm->overrides[i];

		mesh_buf_puts(b, i ? ",{\"name\":" : "{\"name\":");
		json_put_string(b, e->name);
		mesh_buf_printf(b, ",\"disabled\":%s,\"tags\":[", e->disabled ? "true" : "false");
		for (j = 0; j < e->n_tags; j++) {
			mesh_buf_puts(b, j ? ",{\"name\":" : "{\"name\":");
			json_put_string(b, e->tags[j].name);
			mesh_buf_printf(b, ",\"operation\":\"%s\"", e->tags[j].remove ? "REMOVE" : "UPSERT");
			if (!e->tags[j].remove) {
				mesh_buf_puts(b, ",\"value\":");
				tel__json_str(b, e->tags[j].value);
			}
			mesh_buf_putc(b, '}');
		}
		mesh_buf_puts(b, "]}");
	}
	mesh_buf_puts(b, "]}");
}

static void tel__json_tracing(struct mesh_buf *b, const struct model_tel_tracing *s)
{
	static const char *const kinds[] = { "literal", "environment", "header" };
	size_t i;

	mesh_buf_puts(b, "{\"provider\":");
	tel__json_str(b, s->provider);
	mesh_buf_printf(b, ",\"disabled\":%s,\"randomSamplingPercentage\":", s->disabled ? "true" : "false");
	if (s->random_sampling_percentage >= 0)
		mesh_buf_printf(b, "%g", s->random_sampling_percentage);
	else
		mesh_buf_puts(b, "null");
	mesh_buf_printf(b, ",\"useRequestIdForTraceSampling\":%s,\"customTags\":{",
			s->use_request_id_for_trace_sampling ? "true" : "false");
	for (i = 0; i < s->n_custom_tags; i++) {
		const struct cfg_tel_custom_tag *c = &s->custom_tags[i];

		if (i)
			mesh_buf_putc(b, ',');
		tel__json_str(b, c->name ? c->name : "");
		mesh_buf_printf(b, ":{\"%s\":{\"%s\":", kinds[c->kind], c->kind == CFG_TEL_TAG_LITERAL ? "value" : "name");
		tel__json_str(b, c->value);
		if (c->default_value) {
			mesh_buf_puts(b, ",\"defaultValue\":");
			json_put_string(b, c->default_value);
		}
		mesh_buf_puts(b, "}}");
	}
	mesh_buf_puts(b, "}}");
}

static void tel__json_logs(struct mesh_buf *b, const struct model_tel_log *v, size_t n)
{
	size_t i;

	mesh_buf_putc(b, '[');
	for (i = 0; i < n; i++) {
		mesh_buf_puts(b, i ? ",{\"provider\":" : "{\"provider\":");
		json_put_string(b, v[i].provider);
		mesh_buf_printf(b, ",\"disabled\":%s,\"filter\":", v[i].disabled ? "true" : "false");
		tel__json_str(b, v[i].filter);
		mesh_buf_putc(b, '}');
	}
	mesh_buf_putc(b, ']');
}

void model_telemetry_json(const struct model_telemetry *t, struct mesh_buf *b)
{
	size_t i;

	mesh_buf_puts(b, "{\"telemetries\":{\"root\":");
	tel__json_obj_name(b, t->root);
	mesh_buf_puts(b, ",\"namespace\":");
	tel__json_obj_name(b, t->ns);
	mesh_buf_puts(b, ",\"workload\":[");
	for (i = 0; i < t->n_workload; i++) {
		if (i)
			mesh_buf_putc(b, ',');
		tel__json_obj_name(b, t->workload[i]);
	}
	mesh_buf_puts(b, "]},\"metrics\":[");
	for (i = 0; i < t->n_metrics; i++) {
		const struct model_tel_metrics_provider *p = &t->metrics[i];

		mesh_buf_puts(b, i ? ",{\"provider\":" : "{\"provider\":");
		json_put_string(b, p->name);
		if (p->reporting_interval > 0)
			mesh_buf_printf(b, ",\"reportingInterval\":\"%gs\"", (double)p->reporting_interval / 1e9);
		mesh_buf_puts(b, ",\"client\":");
		tel__json_mode(b, &p->client);
		mesh_buf_puts(b, ",\"server\":");
		tel__json_mode(b, &p->server);
		mesh_buf_putc(b, '}');
	}
	mesh_buf_puts(b, "],\"tracing\":");
	if (t->has_tracing) {
		mesh_buf_puts(b, "{\"client\":");
		tel__json_tracing(b, &t->client_tracing);
		mesh_buf_puts(b, ",\"server\":");
		tel__json_tracing(b, &t->server_tracing);
		mesh_buf_putc(b, '}');
	} else {
		mesh_buf_puts(b, "null");
	}
	mesh_buf_puts(b, ",\"accessLogging\":");
	if (t->has_access_logging) {
		mesh_buf_puts(b, "{\"client\":");
		tel__json_logs(b, t->client_logs, t->n_client_logs);
		mesh_buf_puts(b, ",\"server\":");
		tel__json_logs(b, t->server_logs, t->n_server_logs);
		mesh_buf_putc(b, '}');
	} else {
		mesh_buf_puts(b, "null");
	}
	mesh_buf_putc(b, '}');
}
