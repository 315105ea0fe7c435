/*
 * model.c - build the service model from validated configuration.
 *
 * Services come from ServiceEntries: one model_service per host, with the
 * entry's ports and endpoints (inline `endpoints`, or the WorkloadEntries of
 * the same namespace selected by `workloadSelector`).  Everything the model
 * allocates lives in its arena; config objects are borrowed from the
 * cfg_snapshot the model holds a reference on.  See model.h.
 */
#include "controlplane/model/model.h"

#include "common/arena.h"
#include "common/log.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MODEL_HOST_MAX 256

static int cmp_service(const void *a, const void *b)
{
	const struct model_service *x = a, *y = b;
	int c = strcmp(x->hostname, y->hostname);
	if (c)
		return c;
	c = strcmp(x->ns, y->ns);
	if (c)
		return c;
	return strcmp(x->origin->name, y->origin->name);
}

/* The port a workload serves service port p on: the workload's named port
 * for p's name, else the target port, else p's number. */
static uint32_t workload_port(const struct cfg_workload *w, const struct cfg_port *p)
{
	size_t i;

	for (i = 0; w && p->name && i < w->n_ports; i++) {
		if (strcmp(w->ports[i].key, p->name) == 0) {
			long v = strtol(w->ports[i].value, NULL, 10);
			if (v > 0 && v < 65536)
				return (uint32_t)v;
		}
	}
	if (p->target_port > 0)
		return (uint32_t)p->target_port;
	return (uint32_t)p->number;
}

static int endpoint_init(struct arena *a, struct model_endpoint *ep, const struct cfg_workload *w,
			 const char *ns, const struct cfg_service_entry *se)
{
	size_t i;

	ep->address = w->address;
	ep->labels = &w->labels;
	ep->locality = w->locality ? w->locality : "";
	ep->network = w->network ? w->network : "";
	ep->weight = w->weight > 0 ? (uint32_t)w->weight : 1;
	ep->service_account = w->service_account;
	ep->ns = ns;
	ep->workload = w;
	ep->ports = arena_calloc(a, se->n_ports ? se->n_ports : 1, sizeof(uint32_t));
	if (!ep->ports)
		return -ENOMEM;
	for (i = 0; i < se->n_ports; i++)
		ep->ports[i] = workload_port(w, &se->ports[i]);
	return 0;
}

static int build_service(struct model *m, struct model_service *svc, const struct cfg_object *o,
			 const char *host, const struct cfg_snapshot *cfg)
{
	const struct cfg_service_entry *se = &o->spec.se;
	struct arena *a = m->arena;
	size_t i, n = 0, cap;

	svc->hostname = host;
	svc->ns = o->ns;
	svc->resolution = se->resolution;
	svc->mesh_external = se->location == CFG_MESH_EXTERNAL;
	svc->origin = o;
	svc->n_ports = se->n_ports;
	svc->ports = arena_calloc(a, se->n_ports ? se->n_ports : 1, sizeof(*svc->ports));
	if (!svc->ports)
		return -ENOMEM;
	for (i = 0; i < se->n_ports; i++) {
		struct model_port *p = &svc->ports[i];
		p->number = (uint32_t)se->ports[i].number;
		p->name = se->ports[i].name ? se->ports[i].name : "";
		p->protocol = se->ports[i].protocol ? se->ports[i].protocol : "TCP";
		p->target_port = se->ports[i].target_port > 0 ? (uint32_t)se->ports[i].target_port : 0;
	}

	cap = se->n_endpoints;
	if (se->has_workload_selector)
		cap += cfg->n_objects[CFG_WORKLOAD_ENTRY];
	svc->endpoints = arena_calloc(a, cap ? cap : 1, sizeof(*svc->endpoints));
	if (!svc->endpoints)
		return -ENOMEM;
	for (i = 0; i < se->n_endpoints; i++)
		if (endpoint_init(a, &svc->endpoints[n++], &se->endpoints[i], o->ns, se) < 0)
			return -ENOMEM;
	if (se->has_workload_selector) {
		for (i = 0; i < cfg->n_objects[CFG_WORKLOAD_ENTRY]; i++) {
			const struct cfg_object *we = cfg->objects[CFG_WORKLOAD_ENTRY][i];
			if (strcmp(we->ns, o->ns) != 0)
				continue;
			if (!model_labels_match(&se->workload_selector, &we->spec.we.labels))
				continue;
			if (endpoint_init(a, &svc->endpoints[n++], &we->spec.we, we->ns, se) < 0)
				return -ENOMEM;
		}
	}
	svc->n_endpoints = n;
	return 0;
}

struct model *model_build(struct cfg_snapshot *cfg, const char *domain, const char *root_namespace)
{
	struct model *m = calloc(1, sizeof(*m));
	size_t i, j, n = 0, total = 0;

	if (!m)
		return NULL;
	m->refs = 1;
	m->arena = arena_new(0);
	if (!m->arena)
		goto fail;
	m->cfg = cfg_snapshot_ref(cfg);
	m->generation = cfg->generation;
	m->domain = arena_strdup(m->arena, domain ? domain : "cluster.local");
	m->root_namespace = arena_strdup(m->arena, root_namespace ? root_namespace : "istio-system");

	for (i = 0; i < cfg->n_objects[CFG_SERVICE_ENTRY]; i++)
		total += cfg->objects[CFG_SERVICE_ENTRY][i]->spec.se.hosts.n;
	m->services = arena_calloc(m->arena, total ? total : 1, sizeof(*m->services));
	if (!m->services)
		goto fail;
	for (i = 0; i < cfg->n_objects[CFG_SERVICE_ENTRY]; i++) {
		const struct cfg_object *o = cfg->objects[CFG_SERVICE_ENTRY][i];
		for (j = 0; j < o->spec.se.hosts.n; j++) {
			if (build_service(m, &m->services[n++], o, o->spec.se.hosts.v[j], cfg) < 0)
				goto fail;
		}
	}
	qsort(m->services, n, sizeof(*m->services), cmp_service);
	/* One service per hostname: the first ServiceEntry (by namespace, name) wins, as in Istio. */
	if (n > 1) {
		size_t w = 1;
		for (i = 1; i < n; i++) {
			if (strcmp(m->services[i].hostname, m->services[w - 1].hostname) == 0) {
				log_warn("model", "host %s is defined by ServiceEntry %s/%s and %s/%s; using the first",
					 m->services[i].hostname, m->services[w - 1].origin->ns,
					 m->services[w - 1].origin->name, m->services[i].origin->ns,
					 m->services[i].origin->name);
				continue;
			}
			m->services[w++] = m->services[i];
		}
		n = w;
	}
	m->n_services = n;
	return m;
fail:
	model_unref(m);
	return NULL;
}

struct model *model_ref(struct model *m)
{
	if (m)
		atomic_fetch_add_explicit((_Atomic int *)&m->refs, 1, memory_order_relaxed);
	return m;
}

void model_unref(struct model *m)
{
	if (!m)
		return;
	if (atomic_fetch_sub_explicit((_Atomic int *)&m->refs, 1, memory_order_acq_rel) != 1)
		return;
	cfg_snapshot_unref(m->cfg);
	arena_free(m->arena);
	free(m);
}

const struct model_service *model_find_service(const struct model *m, const char *hostname)
{
	size_t lo = 0, hi = m->n_services;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(hostname, m->services[mid].hostname);
		if (c == 0)
			return &m->services[mid];
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

const char *model_resolve_host(const struct model *m, const char *host, const char *ns, char *buf, size_t cap)
{
	if (!host)
		host = "";
	if (strchr(host, '.') || strcmp(host, "*") == 0 || !*host)
		snprintf(buf, cap, "%s", host);
	else
		snprintf(buf, cap, "%s.%s.svc.%s", host, ns, m->domain);
	return buf;
}

/* 0: no match; otherwise a score, higher = more specific (exact beats wildcards,
 * longer wildcard suffix beats shorter). */
static size_t host_match(const char *pattern, const char *host)
{
	size_t pl = strlen(pattern), hl = strlen(host);

	if (strcmp(pattern, host) == 0)
		return 100000;
	if (strcmp(pattern, "*") == 0)
		return 1;
	if (pl >= 2 && pattern[0] == '*' && pattern[1] == '.') {
		/* "*.example.com" matches "a.example.com", "a.b.example.com" */
		if (hl > pl - 1 && strcmp(host + hl - (pl - 1), pattern + 1) == 0)
			return 1 + pl;
	}
	return 0;
}

size_t model_virtual_services(const struct model *m, const char *hostname,
			      const struct cfg_object **out, size_t cap)
{
	const struct cfg_snapshot *cfg = m->cfg;
	size_t i, j, n = 0;
	char buf[MODEL_HOST_MAX];

	/* exact matches first, then wildcards */
	for (int pass = 0; pass < 2; pass++) {
		for (i = 0; i < cfg->n_objects[CFG_VIRTUAL_SERVICE] && n < cap; i++) {
			const struct cfg_object *o = cfg->objects[CFG_VIRTUAL_SERVICE][i];
			const struct cfg_virtual_service *vs = &o->spec.vs;
			int hit = 0;

			/* gateway-only VirtualServices do not apply to the mesh */
			if (vs->gateways.n) {
				int mesh = 0;
				for (j = 0; j < vs->gateways.n; j++)
					if (strcmp(vs->gateways.v[j], "mesh") == 0)
						mesh = 1;
				if (!mesh)
					continue;
			}
			for (j = 0; j < vs->hosts.n && !hit; j++) {
				size_t s = host_match(model_resolve_host(m, vs->hosts.v[j], o->ns, buf, sizeof(buf)),
						      hostname);
				if (pass == 0 ? s == 100000 : (s > 0 && s < 100000))
					hit = 1;
			}
			if (hit) {
				/* a VirtualService matching exactly is not listed again as a wildcard */
				size_t k;
				for (k = 0; k < n; k++)
					if (out[k] == o)
						break;
				if (k == n)
					out[n++] = o;
			}
		}
	}
	return n;
}

static int ns_rank(const char *ns, const char *client_ns, const char *svc_ns, const char *root_ns)
{
	if (client_ns && strcmp(ns, client_ns) == 0)
		return 3;
	if (svc_ns && strcmp(ns, svc_ns) == 0)
		return 2;
	if (root_ns && strcmp(ns, root_ns) == 0)
		return 1;
	return 0;
}

const struct cfg_object *model_destination_rule(const struct model *m, const char *hostname, const char *client_ns)
{
	const struct cfg_snapshot *cfg = m->cfg;
	const struct model_service *svc = model_find_service(m, hostname);
	const struct cfg_object *best = NULL;
	int best_rank = -1;
	size_t best_score = 0, i;
	char buf[MODEL_HOST_MAX];

	for (i = 0; i < cfg->n_objects[CFG_DESTINATION_RULE]; i++) {
		const struct cfg_object *o = cfg->objects[CFG_DESTINATION_RULE][i];
		size_t score;
		int rank;

		/* workload-scoped rules apply to selected clients only (sidecars) */
		if (o->spec.dr.has_workload_selector)
			continue;
		score = host_match(model_resolve_host(m, o->spec.dr.host, o->ns, buf, sizeof(buf)), hostname);
		if (!score)
			continue;
		rank = ns_rank(o->ns, client_ns, svc ? svc->ns : NULL, m->root_namespace);
		if (rank > best_rank || (rank == best_rank && score > best_score)) {
			best = o;
			best_rank = rank;
			best_score = score;
		}
	}
	return best;
}

const struct cfg_subset *model_subset(const struct cfg_object *dr, const char *subset)
{
	size_t i;

	if (!dr || !subset)
		return NULL;
	for (i = 0; i < dr->spec.dr.n_subsets; i++)
		if (strcmp(dr->spec.dr.subsets[i].name, subset) == 0)
			return &dr->spec.dr.subsets[i];
	return NULL;
}

bool model_labels_match(const struct cfg_labels *selector, const struct cfg_labels *labels)
{
	size_t i, j;

	for (i = 0; i < selector->n; i++) {
		bool found = false;
		for (j = 0; labels && j < labels->n; j++) {
			if (strcmp(selector->v[i].key, labels->v[j].key) == 0) {
				found = strcmp(selector->v[i].value, labels->v[j].value) == 0;
				break;
			}
		}
		if (!found)
			return false;
	}
	return true;
}
