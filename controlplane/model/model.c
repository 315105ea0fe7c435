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
#include "controlplane/model/model_int.h"
#include "controlplane/model/policy.h"

#include "common/arena.h"
#include "common/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MODEL_HOST_MAX 256

static int model_index_build(struct model *m);

static int cmp_service(const void *a, const void *b)
{
	const struct model_service *x = a, *y = b;
	int c = strcmp(x->hostname, y->hostname);
	if (c)
		return c;
	/* a Kubernetes Service wins over a ServiceEntry of the same host, as in Istio */
	c = (x->origin->kind != CFG_K8S_SERVICE) - (y->origin->kind != CFG_K8S_SERVICE);
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

/* Istio's istio-locality label ("region.zone.subzone": a label value
 * cannot hold '/') as a locality "region/zone/subzone", in a; NULL when
 * absent (or out of memory: the caller falls back). */
static const char *label_locality(struct arena *a, const struct cfg_labels *l)
{
	size_t i, j;

	for (i = 0; l && i < l->n; i++) {
		char *s;

		if (strcmp(l->v[i].key, "istio-locality") != 0 || !l->v[i].value || !l->v[i].value[0])
			continue;
		if (!(s = arena_strdup(a, l->v[i].value)))
			return NULL;
		for (j = 0; s[j]; j++)
			if (s[j] == '.')
				s[j] = '/';
		return s;
	}
	return NULL;
}

static int endpoint_init(struct arena *a, struct model_endpoint *ep, const struct cfg_workload *w,
			 const char *ns, const struct cfg_service_entry *se)
{
	size_t i;

	ep->address = w->address;
	ep->labels = &w->labels;
	/* as Istio: the entry's locality, else its istio-locality label */
	ep->locality = w->locality && w->locality[0] ? w->locality : label_locality(a, &w->labels);
	if (!ep->locality)
		ep->locality = "";
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
		p->sniffed = !se->ports[i].protocol; /* Istio auto-detects a port without protocol */
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


/* ---------------------------------------------------------------- Kubernetes */

/* A served object by (namespace, name): snapshots keep each kind sorted so. */
static const struct cfg_object *find_object(const struct cfg_snapshot *cfg, enum cfg_kind k,
					    const char *ns, const char *name)
{
	size_t lo = 0, hi = cfg->n_objects[k];

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const struct cfg_object *o = cfg->objects[k][mid];
		int c = strcmp(ns, o->ns);
		if (c == 0)
			c = strcmp(name, o->name);
		if (c == 0)
			return o;
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

/* Istio's protocol selection: appProtocol, else the port name's prefix;
 * neither: "TCP" with *sniffed set (Istio's auto-detection). */
static const char *k8s_protocol(const struct cfg_k8s_service_port *p, bool *sniffed)
{
	static const struct {
		const char *prefix, *proto;
	} names[] = {
		{ "grpc-web", "GRPC-WEB" }, { "grpc", "GRPC" }, { "http2", "HTTP2" }, { "https", "HTTPS" },
		{ "http", "HTTP" }, { "tls", "TLS" }, { "tcp", "TCP" }, { "mongo", "MONGO" },
		{ "mysql", "MYSQL" }, { "redis", "REDIS" }, { "udp", "UDP" },
	};
	const char *n = p->app_protocol ? p->app_protocol : p->name;
	size_t i;

	*sniffed = false;
	if (strcmp(p->protocol, "UDP") == 0)
		return "UDP";
	for (i = 0; n && i < sizeof(names) / sizeof(names[0]); i++) {
		size_t l = strlen(names[i].prefix);
		if (strncasecmp(n, names[i].prefix, l) == 0 && (n[l] == '\0' || n[l] == '-'))
			return names[i].proto;
	}
	*sniffed = true;
	return "TCP";
}

/* The port the endpoint serves service port sp on. */
static uint32_t k8s_endpoint_port(const struct cfg_k8s_service_port *sp, const struct cfg_k8s_endpoint_slice *es,
				  const struct cfg_object *pod)
{
	size_t i;

	for (i = 0; i < es->n_ports; i++)
		if (es->ports[i].port > 0 && strcmp(es->ports[i].name, sp->name) == 0)
			return (uint32_t)es->ports[i].port;
	if (sp->target_port > 0)
		return (uint32_t)sp->target_port;
	for (i = 0; pod && sp->target_port_name && i < pod->spec.pod.n_ports; i++)
		if (strcmp(pod->spec.pod.ports[i].name, sp->target_port_name) == 0)
			return (uint32_t)pod->spec.pod.ports[i].container_port;
	return (uint32_t)sp->port;
}

static const char *k8s_locality(struct arena *a, const struct cfg_k8s_endpoint *ep, const struct cfg_object *pod)
{
	const char *l = pod ? label_locality(a, &pod->labels) : NULL;

	/* as Istio's getPodLocality: the pod's istio-locality label first;
	 * region and subzone come from node labels meshd does not watch, so
	 * otherwise the zone the slice gives */
	if (l)
		return l;
	return ep->zone ? arena_printf(a, "/%s", ep->zone) : "";
}

static int build_k8s_service(struct model *m, struct model_service *svc, const struct cfg_object *o,
			     const struct cfg_snapshot *cfg)
{
	const struct cfg_k8s_service *ks = &o->spec.svc;
	static const struct cfg_labels no_labels;
	struct arena *a = m->arena;
	size_t i, j, k, cap = 0, n = 0;

	svc->hostname = arena_printf(a, "%s.%s.svc.%s", o->name, o->ns, m->domain);
	svc->ns = o->ns;
	svc->resolution = CFG_RESOLUTION_STATIC;
	svc->mesh_external = false;
	svc->origin = o;
	svc->cluster_ip = ks->cluster_ip;
	svc->n_ports = ks->n_ports;
	svc->ports = arena_calloc(a, ks->n_ports ? ks->n_ports : 1, sizeof(*svc->ports));
	if (!svc->hostname || !svc->ports)
		return -ENOMEM;
	for (i = 0; i < ks->n_ports; i++) {
		svc->ports[i].number = (uint32_t)ks->ports[i].port;
		svc->ports[i].name = ks->ports[i].name;
		svc->ports[i].protocol = k8s_protocol(&ks->ports[i], &svc->ports[i].sniffed);
		svc->ports[i].target_port = ks->ports[i].target_port > 0 ? (uint32_t)ks->ports[i].target_port : 0;
	}

	for (i = 0; i < cfg->n_objects[CFG_K8S_ENDPOINT_SLICE]; i++) {
		const struct cfg_object *es = cfg->objects[CFG_K8S_ENDPOINT_SLICE][i];
		if (strcmp(es->ns, o->ns) == 0 && es->spec.eps.service_name &&
		    strcmp(es->spec.eps.service_name, o->name) == 0)
			for (j = 0; j < es->spec.eps.n_endpoints; j++)
				cap += es->spec.eps.endpoints[j].addresses.n;
	}
	if (ks->has_selector && ks->selector.n)
		cap += cfg->n_objects[CFG_WORKLOAD_ENTRY];
	svc->endpoints = arena_calloc(a, cap ? cap : 1, sizeof(*svc->endpoints));
	if (!svc->endpoints)
		return -ENOMEM;

	for (i = 0; i < cfg->n_objects[CFG_K8S_ENDPOINT_SLICE]; i++) {
		const struct cfg_object *eso = cfg->objects[CFG_K8S_ENDPOINT_SLICE][i];
		const struct cfg_k8s_endpoint_slice *es = &eso->spec.eps;

		if (strcmp(eso->ns, o->ns) != 0 || !es->service_name || strcmp(es->service_name, o->name) != 0)
			continue;
		if (strcmp(es->address_type, "FQDN") == 0)
			continue;
		for (j = 0; j < es->n_endpoints; j++) {
			const struct cfg_k8s_endpoint *kep = &es->endpoints[j];
			const struct cfg_object *pod = NULL;

			if (kep->target_kind && strcmp(kep->target_kind, "Pod") == 0 && kep->target_name)
				pod = find_object(cfg, CFG_K8S_POD, kep->target_ns ? kep->target_ns : eso->ns,
						  kep->target_name);
			for (k = 0; k < kep->addresses.n; k++) {
				struct model_endpoint *ep = &svc->endpoints[n++];
				size_t p;

				ep->address = kep->addresses.v[k];
				ep->labels = pod ? &pod->labels : &no_labels;
				ep->locality = k8s_locality(a, kep, pod);
				ep->network = "";
				ep->weight = 1;
				ep->service_account = pod ? pod->spec.pod.service_account : NULL;
				ep->ns = pod ? pod->ns : eso->ns;
				/* ready unset means ready; terminating endpoints are drained */
				ep->not_ready = kep->ready == 0 || kep->terminating == 1;
				ep->ports = arena_calloc(a, ks->n_ports ? ks->n_ports : 1, sizeof(uint32_t));
				if (!ep->locality || !ep->ports)
					return -ENOMEM;
				for (p = 0; p < ks->n_ports; p++)
					ep->ports[p] = k8s_endpoint_port(&ks->ports[p], es, pod);
			}
		}
	}
	/* WorkloadEntries selected by the Service's selector join it, as in Istio */
	if (ks->has_selector && ks->selector.n) {
		struct cfg_service_entry fake = { 0 };
		struct cfg_port *ports = arena_calloc(a, ks->n_ports ? ks->n_ports : 1, sizeof(*ports));

		if (!ports)
			return -ENOMEM;
		for (i = 0; i < ks->n_ports; i++) {
			ports[i].number = ks->ports[i].port;
			ports[i].name = ks->ports[i].name;
			ports[i].target_port = ks->ports[i].target_port;
		}
		fake.ports = ports;
		fake.n_ports = ks->n_ports;
		for (i = 0; i < cfg->n_objects[CFG_WORKLOAD_ENTRY]; i++) {
			const struct cfg_object *we = cfg->objects[CFG_WORKLOAD_ENTRY][i];
			if (strcmp(we->ns, o->ns) != 0 || !model_labels_match(&ks->selector, &we->spec.we.labels))
				continue;
			if (endpoint_init(a, &svc->endpoints[n++], &we->spec.we, we->ns, &fake) < 0)
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
	mesh_refcount_init(&m->refs, 1);
	m->arena = arena_new(0);
	if (!m->arena)
		goto fail;
	m->cfg = cfg_snapshot_ref(cfg);
	m->generation = cfg->generation;
	m->domain = arena_strdup(m->arena, domain ? domain : "cluster.local");
	m->root_namespace = arena_strdup(m->arena, root_namespace ? root_namespace : "istio-system");

	for (i = 0; i < cfg->n_objects[CFG_SERVICE_ENTRY]; i++)
		total += cfg->objects[CFG_SERVICE_ENTRY][i]->spec.se.hosts.n;
	total += cfg->n_objects[CFG_K8S_SERVICE];
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
	for (i = 0; i < cfg->n_objects[CFG_K8S_SERVICE]; i++) {
		const struct cfg_object *o = cfg->objects[CFG_K8S_SERVICE][i];
		if (strcmp(o->spec.svc.type, "ExternalName") == 0)
			continue; /* a DNS alias, no endpoints of its own */
		if (build_k8s_service(m, &m->services[n++], o, cfg) < 0)
			goto fail;
	}
	qsort(m->services, n, sizeof(*m->services), cmp_service);
	/* One service per hostname: the first ServiceEntry (by namespace, name) wins, as in Istio. */
	if (n > 1) {
		size_t w = 1;
		for (i = 1; i < n; i++) {
			if (strcmp(m->services[i].hostname, m->services[w - 1].hostname) == 0) {
				log_warn("model", "host %s is defined by %s %s/%s and %s %s/%s; using the first",
					 m->services[i].hostname, cfg_kind_name(m->services[w - 1].origin->kind),
					 m->services[w - 1].origin->ns, m->services[w - 1].origin->name,
					 cfg_kind_name(m->services[i].origin->kind), m->services[i].origin->ns,
					 m->services[i].origin->name);
				continue;
			}
			m->services[w++] = m->services[i];
		}
		n = w;
	}
	m->n_services = n;
	if (model_index_build(m) < 0)
		goto fail;
	return m;
fail:
	model_unref(m);
	return NULL;
}

struct model *model_ref(struct model *m)
{
	if (m)
		mesh_refcount_ref(&m->refs);
	return m;
}

void model_unref(struct model *m)
{
	if (!m)
		return;
	if (!mesh_refcount_unref(&m->refs))
		return;
	cfg_snapshot_unref(m->cfg);
	meshcfg_unref(m->mesh);
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

/* 0: no match; otherwise a score, higher = more specific (exact beats
 * wildcards, longer wildcard suffix beats shorter): cfg_host_covers(). */
static size_t host_match(const char *pattern, const char *host)
{
	size_t score = 0;

	(void)cfg_host_covers(pattern, host, &score);
	return score;
}

/* ---------------------------------------------------------- host index */

/* VirtualServices and DestinationRules by resolved host, built once per
 * model (the generators ask for every service: resolving every object's
 * hosts on each call made compiling 1,000 services O(N^2)).
 *
 * VirtualServices: every mesh VirtualService with hosts (delegates merged
 * into their root), numbered in Istio's order (oldest first, then name,
 * then namespace); `all` holds every (host, VirtualService) pair sorted by
 * (host, number), `wild` the pairs whose host starts with '*'.
 *
 * DestinationRules: Istio's three indexes (namespace-local rules,
 * exported rules, root-namespace private rules), each keyed by
 * (namespace, host); rules of one key with the same exportTo and the same
 * workload selector are merged into one (subsets of all, the first one's
 * traffic policy), in Istio's order: workload-scoped rules first, then by
 * creation time, name, namespace. */
struct model__vs_ref {
	const char *host;
	size_t pos;
	const struct cfg_object *o;      /* delegates merged */
};

enum model__dr_list { MODEL_DR_LOCAL, MODEL_DR_EXPORTED, MODEL_DR_ROOT_LOCAL };

struct model__dr_ent {
	enum model__dr_list list;
	const char *ns;                  /* the namespace the index is keyed by */
	const char *host;                /* resolved */
	const char *export_key;          /* normalised exportTo */
	const char *sel_key;             /* workload selector; "" without one */
	size_t pos;                      /* Istio's order of the first rule */
	const struct cfg_object *first;  /* the first rule as written */
	struct cfg_object *o;            /* the merged rule */
};

struct model__index {
	struct model__vs_ref *vs_all, *vs_wild;
	size_t n_vs_all, n_vs_wild;
	/* every VirtualService of the snapshot with its delegates merged in
	 * (model__merge_delegates; itself when it delegates nothing, NULL for
	 * a delegate), in the snapshot's order: the mesh index above and the
	 * gateway binding (gateway.c) share the merged copies */
	const struct cfg_object **vs_merged;
	struct model__dr_ent *dr, *dr_wild; /* merged, sorted by (list, ns, host, pos) */
	size_t n_dr, n_dr_wild;
};

static int vs_ref_cmp(const void *a, const void *b)
{
	const struct model__vs_ref *x = a, *y = b;
	int c = strcmp(x->host, y->host);

	return c ? c : (x->pos > y->pos) - (x->pos < y->pos);
}

static int obj_creation_cmp(const void *a, const void *b)
{
	return model__cmp_creation(*(const struct cfg_object *const *)a, *(const struct cfg_object *const *)b);
}

/* Istio's sortConfigBySelectorAndCreationTime. */
static int dr_order_cmp(const void *a, const void *b)
{
	const struct cfg_object *x = *(const struct cfg_object *const *)a, *y = *(const struct cfg_object *const *)b;

	if (x->spec.dr.has_workload_selector != y->spec.dr.has_workload_selector)
		return x->spec.dr.has_workload_selector ? -1 : 1;
	return model__cmp_creation(x, y);
}

static int dr_key_cmp(const struct model__dr_ent *x, const struct model__dr_ent *y)
{
	int c = (int)x->list - (int)y->list;

	if (!c)
		c = strcmp(x->ns, y->ns);
	if (!c)
		c = strcmp(x->host, y->host);
	return c;
}

static int dr_merge_cmp(const void *a, const void *b)
{
	const struct model__dr_ent *x = a, *y = b;
	int c = dr_key_cmp(x, y);

	if (!c)
		c = strcmp(x->export_key, y->export_key);
	if (!c)
		c = strcmp(x->sel_key, y->sel_key);
	return c ? c : (x->pos > y->pos) - (x->pos < y->pos);
}

static int dr_lookup_cmp(const void *a, const void *b)
{
	const struct model__dr_ent *x = a, *y = b;
	int c = dr_key_cmp(x, y);

	return c ? c : (x->pos > y->pos) - (x->pos < y->pos);
}

static int str_cmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* "a\nb" from the sorted, de-duplicated entries of v ("." as ns; none:
 * "*"), in the arena; NULL on OOM. */
static const char *export_key(struct arena *a, const struct cfg_strs *v, const char *ns)
{
	const char **e;
	size_t i, n = 0, len = 1;
	char *out, *p;

	if (!v->n)
		return "*";
	e = arena_calloc(a, v->n, sizeof(*e));
	if (!e)
		return NULL;
	for (i = 0; i < v->n; i++) {
		e[n] = strcmp(v->v[i], ".") == 0 ? ns : v->v[i];
		len += strlen(e[n++]) + 1;
	}
	qsort(e, n, sizeof(*e), str_cmp);
	out = p = arena_alloc(a, len);
	if (!out)
		return NULL;
	for (i = 0; i < n; i++) {
		size_t l = strlen(e[i]);

		if (i && strcmp(e[i], e[i - 1]) == 0)
			continue;
		memcpy(p, e[i], l);
		p += l;
		*p++ = '\n';
	}
	*p = '\0';
	return out;
}

static int kv_cmp(const void *a, const void *b)
{
	const struct cfg_kv *x = a, *y = b;
	int c = strcmp(x->key, y->key);

	return c ? c : strcmp(x->value, y->value);
}

static const char *selector_key(struct arena *a, const struct cfg_destination_rule *dr)
{
	struct cfg_kv *v;
	const char *k = "";
	size_t i;

	if (!dr->has_workload_selector)
		return "";
	v = arena_calloc(a, dr->workload_selector.n + 1, sizeof(*v));
	if (!v)
		return NULL;
	if (dr->workload_selector.n)
		memcpy(v, dr->workload_selector.v, dr->workload_selector.n * sizeof(*v));
	qsort(v, dr->workload_selector.n, sizeof(*v), kv_cmp);
	k = "\x01";                      /* an empty selector still selects (everything) */
	for (i = 0; i < dr->workload_selector.n && k; i++)
		k = arena_printf(a, "%s%s=%s\n", k, v[i].key, v[i].value);
	return k;
}

static int model_index_vs(struct model *m, struct model__index *ix)
{
	const struct cfg_snapshot *cfg = m->cfg;
	size_t nv = cfg->n_objects[CFG_VIRTUAL_SERVICE], i, j, n = 0;
	const struct cfg_object **vs = arena_calloc(m->arena, nv ? nv : 1, sizeof(*vs));
	char buf[MODEL_HOST_MAX];

	if (!vs || !(ix->vs_merged = arena_calloc(m->arena, nv ? nv : 1, sizeof(*ix->vs_merged))))
		return -ENOMEM;
	for (i = 0; i < nv; i++) {
		const struct cfg_object *o = cfg->objects[CFG_VIRTUAL_SERVICE][i];

		/* a VirtualService without hosts is a delegate, used through its root */
		if (!o->spec.vs.hosts.n)
			continue;
		if (!(ix->vs_merged[i] = model__merge_delegates(m, o)))
			return -ENOMEM;
		/* gateway-only VirtualServices do not apply to the mesh */
		if (model_gateways_include_mesh(&o->spec.vs.gateways))
			vs[n++] = ix->vs_merged[i];
	}
	qsort(vs, n, sizeof(*vs), obj_creation_cmp);
	for (i = 0, nv = 0; i < n; i++)
		nv += vs[i]->spec.vs.hosts.n;
	ix->vs_all = arena_calloc(m->arena, nv ? nv : 1, sizeof(*ix->vs_all));
	ix->vs_wild = arena_calloc(m->arena, nv ? nv : 1, sizeof(*ix->vs_wild));
	if (!ix->vs_all || !ix->vs_wild)
		return -ENOMEM;
	for (i = 0; i < n; i++) {
		const struct cfg_object *o = vs[i];

		for (j = 0; j < o->spec.vs.hosts.n; j++) {
			struct model__vs_ref r = { NULL, i, o };

			r.host = arena_strdup(m->arena, model_resolve_host(m, o->spec.vs.hosts.v[j], o->ns, buf,
									   sizeof(buf)));
			if (!r.host)
				return -ENOMEM;
			ix->vs_all[ix->n_vs_all++] = r;
			if (r.host[0] == '*')
				ix->vs_wild[ix->n_vs_wild++] = r;
		}
	}
	qsort(ix->vs_all, ix->n_vs_all, sizeof(*ix->vs_all), vs_ref_cmp);
	return 0;
}

/* Istio's setDestinationRules: which index lists a rule joins. */
static int model_index_dr(struct model *m, struct model__index *ix)
{
	const struct cfg_snapshot *cfg = m->cfg;
	size_t nd = cfg->n_objects[CFG_DESTINATION_RULE], i, n = 0, w = 0;
	const struct cfg_object **drs = arena_calloc(m->arena, nd ? nd : 1, sizeof(*drs));
	struct model__dr_ent *raw = arena_calloc(m->arena, 2 * nd + 1, sizeof(*raw));
	char buf[MODEL_HOST_MAX];

	if (!drs || !raw)
		return -ENOMEM;
	for (i = 0; i < nd; i++)
		drs[i] = cfg->objects[CFG_DESTINATION_RULE][i];
	qsort(drs, nd, sizeof(*drs), dr_order_cmp);
	for (i = 0; i < nd; i++) {
		const struct cfg_object *o = drs[i];
		/* no exportTo: the mesh config's defaultDestinationRuleExportTo */
		const struct cfg_strs *ex = o->spec.dr.export_to.n ? &o->spec.dr.export_to :
				model_export_default(m, CFG_DESTINATION_RULE);
		struct model__dr_ent e = { .ns = o->ns, .pos = i, .first = o };
		bool sel = o->spec.dr.has_workload_selector, local, private_only;
		const char *own;
		size_t k;

		e.host = arena_strdup(m->arena, model_resolve_host(m, o->spec.dr.host, o->ns, buf, sizeof(buf)));
		e.export_key = sel ? o->ns : export_key(m->arena, ex, o->ns);
		e.sel_key = selector_key(m->arena, &o->spec.dr);
		if (!e.host || !e.export_key || !e.sel_key)
			return -ENOMEM;
		/* a workload-scoped rule is private ("."); otherwise: visible in its
		 * own namespace unless exportTo leaves it out; exported unless it
		 * names only its own namespace */
		local = sel || !ex->n;
		for (k = 0; k < ex->n && !local; k++)
			local = strcmp(ex->v[k], "*") == 0 || strcmp(ex->v[k], ".") == 0 ||
				strcmp(ex->v[k], o->ns) == 0;
		own = arena_printf(m->arena, "%s\n", o->ns);
		if (!own)
			return -ENOMEM;
		private_only = sel || (ex->n && strcmp(e.export_key, own) == 0);
		if (local) {
			e.list = MODEL_DR_LOCAL;
			raw[n++] = e;
		}
		if (!private_only) {
			e.list = MODEL_DR_EXPORTED;
			raw[n++] = e;
		} else if (strcmp(o->ns, m->root_namespace) == 0) {
			e.list = MODEL_DR_ROOT_LOCAL;
			raw[n++] = e;
		}
	}
	qsort(raw, n, sizeof(*raw), dr_merge_cmp);
	/* merge runs of one (list, ns, host, exportTo, selector) */
	for (i = 0; i < n; i++) {
		if (w && dr_key_cmp(&raw[w - 1], &raw[i]) == 0 &&
		    strcmp(raw[w - 1].export_key, raw[i].export_key) == 0 &&
		    strcmp(raw[w - 1].sel_key, raw[i].sel_key) == 0) {
			raw[w - 1].o = model__dr_merge(m, raw[w - 1].o, raw[i].first);
			if (!raw[w - 1].o)
				return -ENOMEM;
			continue;
		}
		raw[w] = raw[i];
		raw[w].o = model__dr_merge(m, NULL, raw[i].first);
		if (!raw[w].o)
			return -ENOMEM;
		w++;
	}
	qsort(raw, w, sizeof(*raw), dr_lookup_cmp);
	ix->dr = raw;
	ix->n_dr = w;
	ix->dr_wild = arena_calloc(m->arena, w ? w : 1, sizeof(*ix->dr_wild));
	if (!ix->dr_wild)
		return -ENOMEM;
	for (i = 0; i < w; i++)
		if (raw[i].host[0] == '*')
			ix->dr_wild[ix->n_dr_wild++] = raw[i];
	return 0;
}

static int model_index_build(struct model *m)
{
	struct model__index *ix = arena_alloc(m->arena, sizeof(*ix));
	int rc;

	if (!ix)
		return -ENOMEM;
	rc = model_index_vs(m, ix);
	if (rc == 0)
		rc = model_index_dr(m, ix);
	if (rc == 0)
		m->priv = ix;
	return rc;
}

const struct cfg_object *model__vs_merged(const struct model *m, size_t i)
{
	const struct model__index *ix = m ? m->priv : NULL;

	if (!ix || !m->cfg || i >= m->cfg->n_objects[CFG_VIRTUAL_SERVICE])
		return NULL;
	return ix->vs_merged[i];
}

/* First entry of all[] (sorted by host) whose host is not below hostname. */
static size_t vs_lower(const struct model__index *ix, const char *hostname)
{
	size_t lo = 0, hi = ix->n_vs_all;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (strcmp(ix->vs_all[mid].host, hostname) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* Istio's SelectVirtualServices order for the mesh gateway (private to the
 * caller's namespace, then exported to it by name, then public; each by
 * creation) and computeWildcardHostVirtualServiceIndex: the first exact
 * host wins, else the most specific wildcard. */
const struct cfg_object *model_virtual_service(const struct model *m, const char *hostname, const char *client_ns)
{
	const struct model__index *ix = m->priv;
	const struct cfg_object *best = NULL;
	size_t i, best_pos = 0, best_score = 0;
	int best_cls = 99;

	if (!ix || !hostname)
		return NULL;
	for (i = vs_lower(ix, hostname); i < ix->n_vs_all && strcmp(ix->vs_all[i].host, hostname) == 0; i++) {
		int cls = (int)model_export_class(m, ix->vs_all[i].o, client_ns);

		if (cls < 0)
			continue;
		if (cls < best_cls || (cls == best_cls && ix->vs_all[i].pos < best_pos)) {
			best = ix->vs_all[i].o;
			best_cls = cls;
			best_pos = ix->vs_all[i].pos;
		}
	}
	if (best)
		return best;
	for (i = 0; i < ix->n_vs_wild; i++) {
		size_t sc = host_match(ix->vs_wild[i].host, hostname);
		int cls;

		if (sc == 0 || sc >= 100000)
			continue;
		cls = (int)model_export_class(m, ix->vs_wild[i].o, client_ns);
		if (cls < 0)
			continue;
		if (sc > best_score || (sc == best_score && (cls < best_cls ||
							     (cls == best_cls && ix->vs_wild[i].pos < best_pos)))) {
			best = ix->vs_wild[i].o;
			best_score = sc;
			best_cls = cls;
			best_pos = ix->vs_wild[i].pos;
		}
	}
	return best;
}

/* Candidates of (list, ns) for hostname, Istio's MostSpecificHostMatch:
 * the exact host's entries, else those of the longest wildcard matching
 * it.  Sets *first and *n (a run of ix->dr or of ix->dr_wild). */
static void dr_candidates(const struct model__index *ix, enum model__dr_list list, const char *ns,
			  const char *hostname, const struct model__dr_ent **first, size_t *n)
{
	struct model__dr_ent key = { .list = list, .ns = ns, .host = hostname };
	size_t lo = 0, hi = ix->n_dr, i, best_score = 0;

	*first = NULL;
	*n = 0;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (dr_key_cmp(&ix->dr[mid], &key) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (i = lo; i < ix->n_dr && dr_key_cmp(&ix->dr[i], &key) == 0; i++) {
		if (!*first)
			*first = &ix->dr[i];
		(*n)++;
	}
	if (*n)
		return;
	for (i = 0; i < ix->n_dr_wild; i++) {
		const struct model__dr_ent *e = &ix->dr_wild[i];
		size_t sc;

		if (e->list != list || strcmp(e->ns, ns) != 0)
			continue;
		sc = host_match(e->host, hostname);
		if (sc == 0 || sc < best_score)
			continue;
		if (sc > best_score) {
			best_score = sc;
			*first = e;
			*n = 1;
		} else if (strcmp((*first)->host, e->host) == 0) {
			(*n)++;              /* entries of one host are adjacent */
		}
	}
}

/* The rule of a candidate run that applies to a workload with labels
 * (NULL: none): a workload-scoped rule selecting it, else the first rule
 * without a selector.  exported: only rules exported to client_ns. */
static const struct cfg_object *dr_select(const struct model *m, const struct model__dr_ent *first, size_t n,
					  const char *client_ns, const struct cfg_labels *labels, bool exported, bool *any)
{
	const struct cfg_object *plain = NULL;
	size_t i;

	*any = false;
	for (i = 0; i < n; i++) {
		const struct model__dr_ent *e = &first[i];

		if (exported && client_ns && model_export_class(m, e->first, client_ns) == MODEL_EXPORT_NONE)
			continue;
		*any = true;
		if (e->first->spec.dr.has_workload_selector) {
			if (labels && model_labels_match(&e->first->spec.dr.workload_selector, labels))
				return e->o;
			continue;
		}
		if (!plain)
			plain = e->o;
	}
	return plain;
}

/* Istio's PushContext.destinationRule: the caller's namespace (or the
 * root namespace's private rules for a caller there), then rules the
 * service's namespace exports to the caller, then those the root
 * namespace exports. */
const struct cfg_object *model_destination_rule_for(const struct model *m, const char *hostname, const char *client_ns,
						    const struct cfg_labels *labels)
{
	const struct model__index *ix = m->priv;
	const struct model_service *svc;
	const struct model__dr_ent *first;
	const struct cfg_object *o;
	size_t n;
	bool any;

	if (!ix || !hostname)
		return NULL;
	svc = model_find_service(m, hostname);
	if (!client_ns) {
		/* the mesh-wide view: every rule as if exported to "*", from the
		 * service's namespace, then the root namespace */
		static const enum model__dr_list lists[] = { MODEL_DR_LOCAL, MODEL_DR_EXPORTED, MODEL_DR_ROOT_LOCAL,
							     MODEL_DR_EXPORTED };
		size_t k;

		for (k = 0; k < sizeof(lists) / sizeof(lists[0]); k++) {
			const char *ns = k < 2 ? (svc ? svc->ns : NULL) : m->root_namespace;

			if (!ns)
				continue;
			dr_candidates(ix, lists[k], ns, hostname, &first, &n);
			o = dr_select(m, first, n, NULL, labels, false, &any);
			if (o)
				return o;
		}
		return NULL;
	}
	{
		bool root = strcmp(client_ns, m->root_namespace) == 0;

		dr_candidates(ix, root ? MODEL_DR_ROOT_LOCAL : MODEL_DR_LOCAL, client_ns, hostname, &first, &n);
		if (n)
			return dr_select(m, first, n, client_ns, labels, false, &any);
	}
	if (svc) {
		dr_candidates(ix, MODEL_DR_EXPORTED, svc->ns, hostname, &first, &n);
		o = dr_select(m, first, n, client_ns, labels, true, &any);
		if (any)
			return o;
	}
	dr_candidates(ix, MODEL_DR_EXPORTED, m->root_namespace, hostname, &first, &n);
	o = dr_select(m, first, n, client_ns, labels, true, &any);
	return any ? o : NULL;
}

const struct cfg_object *model_destination_rule(const struct model *m, const char *hostname, const char *client_ns)
{
	return model_destination_rule_for(m, hostname, client_ns, NULL);
}

bool model_service_visible(const struct model *m, const struct model_service *svc, const char *client_ns)
{
	(void)m;
	return svc && (!svc->origin || model_export_class(m, svc->origin, client_ns) != MODEL_EXPORT_NONE);
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
