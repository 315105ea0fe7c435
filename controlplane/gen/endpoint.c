/*
 * endpoint.c - EDS: one ClusterLoadAssignment per cluster of cluster.c.
 *
 * Endpoints grouped by locality, localities and endpoints sorted, each
 * endpoint with its weight.  Not-ready endpoints are left out; so are
 * endpoints whose address is a host name unless the profile has
 * endpoint_hostnames (gRPC cannot resolve names from EDS).  With
 * locality_weights, each locality is weighted by the sum of its
 * endpoints' weights (gRPC 1.51 drops localities without a weight).
 * Built for one proxy (profile locality_lb, gen_ctx.locality), EDS gets
 * istiod's locality load balancing (locality.c, gen__loc_lb): distribute
 * weights, else with outlier detection priorities by proximity, failover
 * rules or failoverPriority labels (a locality split per priority).
 * Inline DNS assignments (cluster.c) are shared by every proxy and get
 * none of it.
 */
#include "controlplane/gen/gen_int.h"

#include "common/err.h"
#include "controlplane/model/policy.h"

#include "envoy/config/endpoint/v3/endpoint.pb-c.h"
#include "envoy/config/endpoint/v3/endpoint_components.pb-c.h"
#include "google/protobuf/struct.pb-c.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

struct gen_ep {
	const char *locality;
	const struct cfg_labels *labels;
	uint32_t fp;                 /* failoverPriority rank for the proxy (0: none) */
	const char *address;
	uint32_t port;
	uint32_t weight;
	const char *tls_mode;        /* profile tls_mode_match: "istio", "disabled" or NULL */
};

static int gen_ep_cmp(const void *x, const void *y)
{
	const struct gen_ep *a = x, *b = y;
	int c = strcmp(a->locality, b->locality);

	if (c == 0)
		c = a->fp < b->fp ? -1 : a->fp > b->fp;
	if (c == 0)
		c = strcmp(a->address, b->address);
	if (c == 0)
		c = a->port < b->port ? -1 : a->port > b->port;
	if (c == 0)
		c = a->weight < b->weight ? -1 : a->weight > b->weight;
	if (c == 0)
		c = strcmp(a->tls_mode ? a->tls_mode : "", b->tls_mode ? b->tls_mode : "");
	return c;
}

static bool gen_is_ip(const char *s)
{
	unsigned char tmp[16];

	return s && (inet_pton(AF_INET, s, tmp) == 1 || inet_pton(AF_INET6, s, tmp) == 1);
}

/* "region/zone/subzone" into a Locality (missing parts stay empty). */
static Envoy__Config__Core__V3__Locality *gen_locality(struct arena *a, const char *s)
{
	Envoy__Config__Core__V3__Locality *l = gen__msg(a, &envoy__config__core__v3__locality__descriptor);
	char **parts[3];
	size_t i;

	if (!l)
		return NULL;
	parts[0] = &l->region;
	parts[1] = &l->zone;
	parts[2] = &l->sub_zone;
	for (i = 0; i < 3 && *s; i++) {
		const char *slash = i < 2 ? strchr(s, '/') : NULL;
		size_t len = slash ? (size_t)(slash - s) : strlen(s);

		if (!(*parts[i] = arena_strndup(a, s, len)))
			return NULL;
		s += len;
		if (*s == '/')
			s++;
	}
	return l;
}

static Envoy__Config__Endpoint__V3__LbEndpoint *gen_lb_endpoint(struct arena *a, const struct gen_ep *e)
{
	Envoy__Config__Endpoint__V3__LbEndpoint *lbe = gen__msg(a, &envoy__config__endpoint__v3__lb_endpoint__descriptor);
	Envoy__Config__Endpoint__V3__Endpoint *ep = gen__msg(a, &envoy__config__endpoint__v3__endpoint__descriptor);
	Envoy__Config__Core__V3__Address *ad = gen__msg(a, &envoy__config__core__v3__address__descriptor);
	Envoy__Config__Core__V3__SocketAddress *sa = gen__msg(a, &envoy__config__core__v3__socket_address__descriptor);

	if (!lbe || !ep || !ad || !sa || !(sa->address = arena_strdup(a, e->address)) ||
	    !(lbe->load_balancing_weight = gen__u32(a, e->weight)))
		return NULL;
	sa->port_specifier_case = ENVOY__CONFIG__CORE__V3__SOCKET_ADDRESS__PORT_SPECIFIER_PORT_VALUE;
	sa->port_value = e->port;
	ad->address_case = ENVOY__CONFIG__CORE__V3__ADDRESS__ADDRESS_SOCKET_ADDRESS;
	ad->socket_address = sa;
	ep->address = ad;
	lbe->host_identifier_case = ENVOY__CONFIG__ENDPOINT__V3__LB_ENDPOINT__HOST_IDENTIFIER_ENDPOINT;
	lbe->endpoint = ep;
	lbe->health_status = ENVOY__CONFIG__CORE__V3__HEALTH_STATUS__HEALTHY;
	if (e->tls_mode && !(lbe->metadata = gen__tls_mode_metadata(a, e->tls_mode)))
		return NULL;
	return lbe;
}

/* Istio's tlsMode of an endpoint for auto mTLS: its
 * security.istio.io/tlsMode label, "disabled" when PeerAuthentication
 * disables mTLS on its port; NULL without the label. */
static const char *gen_ep_tls_mode(const struct gen_ctx *g, const struct model_service *svc,
				   const struct model_endpoint *e, uint32_t port)
{
	const struct cfg_labels *l = e->labels ? e->labels : &gen__no_labels;
	struct gen_workload w = { .ns = e->ns ? e->ns : svc->ns, .labels = l };
	size_t i;

	for (i = 0; i < l->n; i++) {
		if (strcmp(l->v[i].key, GEN_TLS_MODE_LABEL) != 0)
			continue;
		if (model_peer_authn(g->m, w.ns, l, port) == CFG_MTLS_DISABLE)
			return "disabled";
		return l->v[i].value;
	}
	return NULL;
}

Envoy__Config__Core__V3__Metadata *gen__tls_mode_metadata(struct arena *a, const char *mode)
{
	Envoy__Config__Core__V3__Metadata *md = gen__msg(a, &envoy__config__core__v3__metadata__descriptor);
	Envoy__Config__Core__V3__Metadata__FilterMetadataEntry *fe =
		gen__msg(a, &envoy__config__core__v3__metadata__filter_metadata_entry__descriptor);
	Google__Protobuf__Struct *st = gen__msg(a, &google__protobuf__struct__descriptor);
	Google__Protobuf__Struct__FieldsEntry *f = gen__msg(a, &google__protobuf__struct__fields_entry__descriptor);
	Google__Protobuf__Value *v = gen__msg(a, &google__protobuf__value__descriptor);

	if (!md || !fe || !st || !f || !v || !(md->filter_metadata = arena_calloc(a, 1, sizeof(*md->filter_metadata))) ||
	    !(st->fields = arena_calloc(a, 1, sizeof(*st->fields))))
		return NULL;
	v->kind_case = GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE;
	v->string_value = (char *)mode;
	f->key = "tlsMode";
	f->value = v;
	st->fields[0] = f;
	st->n_fields = 1;
	fe->key = GEN_TLS_MATCH_METADATA;
	fe->value = st;
	md->filter_metadata[0] = fe;
	md->n_filter_metadata = 1;
	return md;
}

/* A group of endpoints: one LocalityLbEndpoints. */
struct gen_group {
	size_t start, end;           /* in the sorted endpoints */
	uint64_t weight;             /* sum of the endpoints' weights */
	uint32_t raw;                /* priority before compaction */
	uint32_t priority;
	bool dropped;                /* distribute names no weight for it */
};

/* The failoverPriority rank of an endpoint for the proxy (Istio's
 * applyFailoverPriorityPerLocality): 0 when every label (in order)
 * matches the proxy's value ("label=value" overrides it), else
 * n - index of the first mismatch. */
static uint32_t gen_fp_rank(const struct gen_ctx *g, const struct cfg_strs *fp, const struct gen_ep *e)
{
	char pb[256], eb[256], key[256];
	size_t i;

	for (i = 0; i < fp->n; i++) {
		const char *want, *have, *eq = strchr(fp->v[i], '=');
		size_t klen = eq ? (size_t)(eq - fp->v[i]) : strlen(fp->v[i]);

		if (klen >= sizeof(key))
			klen = sizeof(key) - 1;
		memcpy(key, fp->v[i], klen);
		key[klen] = '\0';
		want = eq ? eq + 1 :
			    gen__priority_label(gen__workload_labels(g->caller), g->locality, key, pb, sizeof(pb));
		have = gen__priority_label(e->labels, e->locality, key, eb, sizeof(eb));
		if (strcmp(want ? want : "", have ? have : "") != 0)
			return (uint32_t)(fp->n - i);
	}
	return 0;
}

static int gen_u32_cmp(const void *x, const void *y)
{
	uint32_t a = *(const uint32_t *)x, b = *(const uint32_t *)y;

	return a < b ? -1 : a > b;
}

/* Priorities 0..N without gaps, keeping the order of raw values (Istio
 * renumbers "from 0 (highest) to N (lowest) without skipping"); tmp has
 * room for n values. */
static void gen_compact(struct gen_group *gr, size_t n, uint32_t *tmp)
{
	size_t i, u = 0;

	for (i = 0; i < n; i++)
		tmp[i] = gr[i].raw;
	if (n)
		qsort(tmp, n, sizeof(*tmp), gen_u32_cmp);
	for (i = 0; i < n; i++)
		if (i == 0 || tmp[i] != tmp[u - 1])
			tmp[u++] = tmp[i];
	for (i = 0; i < n; i++) {
		const uint32_t *f = bsearch(&gr[i].raw, tmp, u, sizeof(*tmp), gen_u32_cmp);

		gr[i].priority = f ? (uint32_t)(f - tmp) : 0;
	}
}

/* Istio's applyLocalityFailover for one group: LbPriority, and 4 for
 * another region than the `failover` rule of the proxy's region names. */
static uint32_t gen_failover_priority(const struct gen_ctx *g, const struct cfg_locality_lb *l, const char *loc)
{
	char pr[256], er[256];
	int p = gen__lb_priority(g->locality, loc);
	size_t i;

	gen__locality_part(g->locality, 0, pr, sizeof(pr));
	gen__locality_part(loc, 0, er, sizeof(er));
	for (i = 0; p == 3 && l && i < l->n_failover; i++) {
		if (l->failover[i].from && strcmp(l->failover[i].from, pr) == 0) {
			if (!l->failover[i].to || strcmp(l->failover[i].to, er) != 0)
				p = 4;
			break;
		}
	}
	return (uint32_t)p;
}

/* Istio's applyLocalityWeights: the first distribute rule whose `from`
 * matches the proxy gives each group matching one of its `to` localities
 * (first match) ceil(group weight x to weight / sum of the matched
 * groups' weights); groups it does not name are dropped (Istio empties
 * them).  No rule for the proxy: unchanged. */
static void gen_distribute(const struct gen_ctx *g, const struct cfg_locality_lb *l, const struct gen_ep *eps,
			   struct gen_group *gr, size_t n)
{
	const struct cfg_locality_distribute *d = NULL;
	uint64_t w;
	size_t i, k;

	for (i = 0; i < l->n_distribute && !d; i++)
		if (l->distribute[i].from && gen__locality_match(g->locality, l->distribute[i].from))
			d = &l->distribute[i];
	if (!d)
		return;
	for (i = 0; i < n; i++)
		gr[i].dropped = true;
	for (k = 0; k < d->n_to; k++) {
		uint64_t total = 0;

		w = strtoull(d->to[k].value, NULL, 10);
		for (i = 0; i < n; i++)
			if (gr[i].dropped && gr[i].raw != UINT32_MAX &&
			    gen__locality_match(eps[gr[i].start].locality, d->to[k].key)) {
				gr[i].raw = UINT32_MAX; /* marks "matched by rule k" */
				total += gr[i].weight;
			}
		for (i = 0; i < n; i++) {
			if (gr[i].raw != UINT32_MAX || !gr[i].dropped)
				continue;
			gr[i].dropped = false;
			gr[i].raw = 0;
			if (total && w)
				gr[i].weight = (gr[i].weight * w + total - 1) / total;
		}
	}
}

/* The assignment, with the locality load balancing ll for g's proxy
 * (NULL: none, every group at priority 0). */
static int gen_assignment_build(const struct gen_ctx *g, const struct model_service *svc, size_t pi,
				const char *subset, const struct cfg_labels *sel, const struct gen_loc_lb *ll,
				struct arena *a, Envoy__Config__Endpoint__V3__ClusterLoadAssignment **out)
{
	Envoy__Config__Endpoint__V3__ClusterLoadAssignment *clap =
		gen__msg(a, &envoy__config__endpoint__v3__cluster_load_assignment__descriptor);
	static const struct cfg_labels no_labels;
	const struct model_port *mp = &svc->ports[pi];
	const struct cfg_locality_lb *l = ll ? ll->set : NULL;
	struct gen_ep *eps = NULL;
	struct gen_group *gr = NULL;
	uint32_t *tmp = NULL;
	size_t i, n = 0, start, n_gr = 0;
	bool use_fp = false, use_failover = false;
	int rc = -ENOMEM;

	*out = NULL;
	if (!clap)
		goto out;
	if (svc->n_endpoints && (!(eps = arena_calloc(a, svc->n_endpoints, sizeof(*eps))) ||
				 !(gr = arena_calloc(a, svc->n_endpoints, sizeof(*gr))) ||
				 !(tmp = arena_calloc(a, svc->n_endpoints, sizeof(*tmp)))))
		goto out;
	clap->cluster_name = gen__cluster_name(a, mp->number, subset, svc->hostname);
	if (!clap->cluster_name)
		goto out;
	if (ll && !(l && l->n_distribute) && ll->failover) {
		/* Istio: failoverPriority (needs proxy labels), and the
		 * region failover on top only when `failover` is given too */
		use_fp = l && l->failover_priority.n && gen__proxy_has_labels(g);
		use_failover = !(l && l->failover_priority.n) || (l && l->n_failover);
	}
	for (i = 0; i < svc->n_endpoints; i++) {
		const struct model_endpoint *e = &svc->endpoints[i];
		uint32_t port = e->ports ? e->ports[pi] : 0;

		if (!e->address || e->not_ready || (!g->p->endpoint_hostnames && !gen_is_ip(e->address)))
			continue;
		if (sel && !model_labels_match(sel, e->labels ? e->labels : &no_labels))
			continue;
		if (port == 0)
			port = mp->target_port ? mp->target_port : mp->number;
		eps[n].locality = e->locality ? e->locality : "";
		eps[n].labels = e->labels ? e->labels : &no_labels;
		eps[n].address = e->address;
		eps[n].port = port;
		eps[n].weight = e->weight ? e->weight : 1;
		eps[n].tls_mode = g->p->tls_mode_match ? gen_ep_tls_mode(g, svc, e, port) : NULL;
		eps[n].fp = use_fp ? gen_fp_rank(g, &l->failover_priority, &eps[n]) : 0;
		n++;
	}
	if (n)
		qsort(eps, n, sizeof(*eps), gen_ep_cmp);
	for (start = 0; start < n; n_gr++) {
		struct gen_group *x = &gr[n_gr];

		x->start = start;
		for (x->end = start; x->end < n && strcmp(eps[x->end].locality, eps[start].locality) == 0 &&
				     eps[x->end].fp == eps[start].fp; x->end++)
			x->weight += eps[x->end].weight;
		x->raw = eps[start].fp;
		start = x->end;
	}
	if (use_fp)
		gen_compact(gr, n_gr, tmp);
	if (use_failover)
		for (i = 0; i < n_gr; i++)
			gr[i].raw = (use_fp ? gr[i].priority : 0) * 5 + gen_failover_priority(g, l, eps[gr[i].start].locality);
	if (use_fp || use_failover)
		gen_compact(gr, n_gr, tmp);
	if (ll && l && l->n_distribute)
		gen_distribute(g, l, eps, gr, n_gr);
	if (n_gr && !(clap->endpoints = arena_calloc(a, n_gr, sizeof(*clap->endpoints))))
		goto out;
	for (start = 0; start < n_gr; start++) {
		const struct gen_group *x = &gr[start];
		Envoy__Config__Endpoint__V3__LocalityLbEndpoints *le;

		if (x->dropped)
			continue;
		le = gen__msg(a, &envoy__config__endpoint__v3__locality_lb_endpoints__descriptor);
		if (!le || !(le->locality = gen_locality(a, eps[x->start].locality)) ||
		    !(le->lb_endpoints = arena_calloc(a, x->end - x->start, sizeof(*le->lb_endpoints))))
			goto out;
		for (i = x->start; i < x->end; i++)
			if (!(le->lb_endpoints[i - x->start] = gen_lb_endpoint(a, &eps[i])))
				goto out;
		le->n_lb_endpoints = x->end - x->start;
		le->priority = x->priority;
		if (g->p->locality_weights &&
		    !(le->load_balancing_weight =
			      gen__u32(a, x->weight > UINT32_MAX ? UINT32_MAX : (uint32_t)x->weight)))
			goto out;
		clap->endpoints[clap->n_endpoints++] = le;
	}
	*out = clap;
	rc = 0;
out:
	return rc;
}

int gen__assignment(const struct gen_ctx *g, const struct model_service *svc, size_t pi, const char *subset,
		    const struct cfg_labels *sel, struct arena *a,
		    Envoy__Config__Endpoint__V3__ClusterLoadAssignment **out)
{
	return gen_assignment_build(g, svc, pi, subset, sel, NULL, a, out);
}

static int gen_assignment(const struct gen_ctx *g, const struct model_service *svc, size_t pi, const char *subset,
			  const struct cfg_labels *sel, struct arena *a, struct xds_snapshot *snap)
{
	Envoy__Config__Endpoint__V3__ClusterLoadAssignment *cla;
	struct gen_loc_lb ll;
	bool loc = gen__loc_lb(g, svc, svc->ports[pi].number, subset, &ll);
	int rc = gen_assignment_build(g, svc, pi, subset, sel, loc ? &ll : NULL, a, &cla);

	if (rc == 0)
		rc = gen__emit(g, snap, XDS_ENDPOINT, cla->cluster_name, &cla->base);
	return rc;
}

int gen__endpoints(const struct gen_ctx *g, const struct model_service *svc, struct arena *a,
		   struct xds_snapshot *snap)
{
	const struct cfg_object *dr = gen__dr(g, svc);
	size_t i, j;
	int rc = 0;

	/* DNS clusters carry their endpoints inline (cluster.c) */
	if (gen__dns_cluster(g, svc))
		return 0;
	for (i = 0; i < svc->n_ports && rc == 0; i++) {
		rc = gen_assignment(g, svc, i, NULL, NULL, a, snap);
		for (j = 0; dr && j < dr->spec.dr.n_subsets && rc == 0; j++) {
			const struct cfg_subset *ss = &dr->spec.dr.subsets[j];

			rc = gen_assignment(g, svc, i, ss->name, &ss->labels, a, snap);
		}
	}
	return rc;
}
