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

/* Istio's protocol selection: appProtocol, else the port name's prefix. */
static const char *k8s_protocol(const struct cfg_k8s_service_port *p)
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

	if (strcmp(p->protocol, "UDP") == 0)
		return "UDP";
	for (i = 0; n && i < sizeof(names) / sizeof(names[0]); i++) {
		size_t l = strlen(names[i].prefix);
		if (strncasecmp(n, names[i].prefix, l) == 0 && (n[l] == '\0' || n[l] == '-'))
			return names[i].proto;
	}
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

static const char *k8s_locality(struct arena *a, const struct cfg_k8s_endpoint *ep)
{
	/* region comes from node labels meshd does not watch; zone from the slice */
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
		svc->ports[i].protocol = k8s_protocol(&ks->ports[i]);
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
				ep->locality = k8s_locality(a, kep);
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

static size_t vs_scan(const struct model *m, const char *hostname, const struct cfg_object **out, size_t cap)
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

			if (!model_gateways_include_mesh(&vs->gateways)) /* gateway-only */
				continue;
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

static const struct cfg_object *dr_scan(const struct model *m, const char *hostname, const char *client_ns)
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

/* ---------------------------------------------------------- host index */

/* The hosts of VirtualServices and DestinationRules, resolved once per
 * model.  The generators ask for every service, and resolving every
 * object's hosts on each call made compiling 1,000 services O(N^2)
 * snprintf()s (about 0.4 s of CPU per config change).  `all` holds every
 * (host, object) pair sorted by (host, position in the snapshot); `wild`
 * the pairs whose host starts with '*', by position.  Lookups give the
 * same answers, in the same order, as scanning the snapshot. */
struct model__host_ref {
	const char *host;
	size_t pos;
	const struct cfg_object *o;
};

struct model__host_list {
	struct model__host_ref *all, *wild;
	size_t n_all, n_wild;
};

struct model__index {
	struct model__host_list vs, dr;
};

static int host_ref_cmp(const void *a, const void *b)
{
	const struct model__host_ref *x = a, *y = b;
	int c = strcmp(x->host, y->host);

	return c ? c : (x->pos > y->pos) - (x->pos < y->pos);
}

static bool vs_applies_to_mesh(const struct cfg_virtual_service *vs)
{
	/* gateway-only VirtualServices do not apply to the mesh */
	return model_gateways_include_mesh(&vs->gateways);
}

static int host_list_add(struct model *m, struct model__host_list *l, const char *host, const char *ns, size_t pos,
			 const struct cfg_object *o)
{
	char buf[MODEL_HOST_MAX];
	struct model__host_ref r = { arena_strdup(m->arena, model_resolve_host(m, host, ns, buf, sizeof(buf))), pos, o };

	if (!r.host)
		return -ENOMEM;
	l->all[l->n_all++] = r;
	if (r.host[0] == '*')
		l->wild[l->n_wild++] = r;
	return 0;
}

static int host_list_init(struct model *m, struct model__host_list *l, size_t n)
{
	l->all = arena_calloc(m->arena, n ? n : 1, sizeof(*l->all));
	l->wild = arena_calloc(m->arena, n ? n : 1, sizeof(*l->wild));
	return l->all && l->wild ? 0 : -ENOMEM;
}

static int model_index_build(struct model *m)
{
	const struct cfg_snapshot *cfg = m->cfg;
	struct model__index *ix = arena_alloc(m->arena, sizeof(*ix));
	size_t i, j, n = 0;

	if (!ix)
		return -ENOMEM;
	for (i = 0; i < cfg->n_objects[CFG_VIRTUAL_SERVICE]; i++)
		n += cfg->objects[CFG_VIRTUAL_SERVICE][i]->spec.vs.hosts.n;
	if (host_list_init(m, &ix->vs, n) < 0 || host_list_init(m, &ix->dr, cfg->n_objects[CFG_DESTINATION_RULE]) < 0)
		return -ENOMEM;
	for (i = 0; i < cfg->n_objects[CFG_VIRTUAL_SERVICE]; i++) {
		const struct cfg_object *o = cfg->objects[CFG_VIRTUAL_SERVICE][i];
		if (!vs_applies_to_mesh(&o->spec.vs))
			continue;
		for (j = 0; j < o->spec.vs.hosts.n; j++)
			if (host_list_add(m, &ix->vs, o->spec.vs.hosts.v[j], o->ns, i, o) < 0)
				return -ENOMEM;
	}
	for (i = 0; i < cfg->n_objects[CFG_DESTINATION_RULE]; i++) {
		const struct cfg_object *o = cfg->objects[CFG_DESTINATION_RULE][i];
		/* workload-scoped rules apply to selected clients only (sidecars) */
		if (o->spec.dr.has_workload_selector)
			continue;
		if (host_list_add(m, &ix->dr, o->spec.dr.host, o->ns, i, o) < 0)
			return -ENOMEM;
	}
	qsort(ix->vs.all, ix->vs.n_all, sizeof(*ix->vs.all), host_ref_cmp);
	qsort(ix->dr.all, ix->dr.n_all, sizeof(*ix->dr.all), host_ref_cmp);
	m->priv = ix;
	return 0;
}

/* First entry of l->all whose host is not below hostname. */
static size_t host_list_lower(const struct model__host_list *l, const char *hostname)
{
	size_t lo = 0, hi = l->n_all;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (strcmp(l->all[mid].host, hostname) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static size_t out_add(const struct cfg_object **out, size_t n, const struct cfg_object *o)
{
	size_t k;

	/* a VirtualService matching exactly is not listed again as a wildcard */
	for (k = 0; k < n; k++)
		if (out[k] == o)
			return n;
	out[n] = o;
	return n + 1;
}

size_t model_virtual_services(const struct model *m, const char *hostname,
			      const struct cfg_object **out, size_t cap)
{
	const struct model__index *ix = m->priv;
	size_t i, n = 0;

	if (!ix)
		return vs_scan(m, hostname, out, cap);
	/* exact matches first, then wildcards */
	for (i = host_list_lower(&ix->vs, hostname);
	     i < ix->vs.n_all && n < cap && strcmp(ix->vs.all[i].host, hostname) == 0; i++)
		n = out_add(out, n, ix->vs.all[i].o);
	for (i = 0; i < ix->vs.n_wild && n < cap; i++) {
		size_t sc = host_match(ix->vs.wild[i].host, hostname);
		if (sc > 0 && sc < 100000)
			n = out_add(out, n, ix->vs.wild[i].o);
	}
	return n;
}

struct dr_best {
	const struct cfg_object *o;
	int rank;
	size_t score;
};

/* An equal (rank, score) keeps the earlier candidate, as the scan does. */
static void dr_consider(const struct model *m, struct dr_best *b, const struct cfg_object *o, size_t score,
			const char *client_ns, const struct model_service *svc)
{
	int rank = ns_rank(o->ns, client_ns, svc ? svc->ns : NULL, m->root_namespace);

	if (rank > b->rank || (rank == b->rank && score > b->score)) {
		b->o = o;
		b->rank = rank;
		b->score = score;
	}
}

const struct cfg_object *model_destination_rule(const struct model *m, const char *hostname, const char *client_ns)
{
	const struct model__index *ix = m->priv;
	const struct model_service *svc;
	struct dr_best best = { NULL, -1, 0 };
	size_t i;

	if (!ix)
		return dr_scan(m, hostname, client_ns);
	svc = model_find_service(m, hostname);
	/* exact hosts (by position), then wildcards (by position): candidates
	 * of equal score are met in snapshot order either way */
	for (i = host_list_lower(&ix->dr, hostname); i < ix->dr.n_all && strcmp(ix->dr.all[i].host, hostname) == 0;
	     i++)
		dr_consider(m, &best, ix->dr.all[i].o, 100000, client_ns, svc);
	for (i = 0; i < ix->dr.n_wild; i++) {
		size_t score = host_match(ix->dr.wild[i].host, hostname);
		if (score)
			dr_consider(m, &best, ix->dr.wild[i].o, score, client_ns, svc);
	}
	return best.o;
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
