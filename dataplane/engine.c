/*
 * engine.c - see engine.h.  This file compiles snapshots (listeners ->
 * ports, route configurations -> routers, clusters + load assignments ->
 * host sets), swaps configurations, binds virtualOutbound/virtualInbound
 * and every other Listener that binds itself (keeping a socket across
 * configs while its address stays, closing it when its Listener goes), and
 * serves the engine's admin pages.  The data path is proxy.c.
 *
 * engine_apply() works in two phases so that a rejected candidate changes
 * nothing: phase one decodes and validates everything into a new
 * px_config that does not touch the live objects; phase two (which cannot
 * fail for a reason worth a NACK) reconciles clusters and hosts by name
 * and swaps the config.
 */
#include "dataplane/engine-t.h"
#include "dataplane/dnscl.h"
#include "dataplane/grpc_client.h"
#include "dataplane/h2.h"
#include "dataplane/istio_stats.h"
#include "dataplane/jwt.h"

#include "common/log.h"
#include "dataplane/identity.h"
#include "dataplane/mtls.h"
#include "dataplane/net.h"
#include "envoy/config/cluster/v3/cluster.pb-c.h"
#include "envoy/config/endpoint/v3/endpoint.pb-c.h"
#include "envoy/config/listener/v3/listener.pb-c.h"
#include "envoy/extensions/filters/listener/original_src/v3/original_src.pb-c.h"
#include "envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.pb-c.h"
#include "envoy/extensions/filters/network/tcp_proxy/v3/tcp_proxy.pb-c.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>
#include <time.h>
#include <unistd.h>

typedef Envoy__Extensions__Filters__Network__HttpConnectionManager__V3__HttpConnectionManager px_hcm;

#define HCM_URL "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
#define TCP_URL "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy"
#define OSRC_URL "type.googleapis.com/envoy.extensions.filters.listener.original_src.v3.OriginalSrc"

/* --- random numbers (xorshift64*: retries' jitter, weighted picks, request ids) */

uint64_t px_rand(struct engine *e)
{
	uint64_t x = e->rng;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	e->rng = x;
	return x * 0x2545F4914F6CDD1DULL;
}

/* --- hosts and clusters */

struct px_host *px_host_ref(struct px_host *h)
{
	h->refs++;
	return h;
}

static void cluster_unref(struct px_cluster *cl);

void px_host_unref(struct px_host *h)
{
	if (!h || --h->refs)
		return;
	cluster_unref(h->cl);
	free(h);
}

static struct px_host *host_new(struct px_cluster *cl, const char *ip, uint32_t port)
{
	struct px_host *h = calloc(1, sizeof(*h));
	struct sockaddr_in *sin = (struct sockaddr_in *)&h->addr;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&h->addr;

	if (!h)
		return NULL;
	if (inet_pton(AF_INET, ip, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
		h->alen = sizeof(*sin);
		snprintf(h->name, sizeof(h->name), "%s:%u", ip, port);
	} else if (inet_pton(AF_INET6, ip, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
		h->alen = sizeof(*sin6);
		snprintf(h->name, sizeof(h->name), "[%s]:%u", ip, port);
	} else {
		free(h); /* a hostname (STRICT_DNS): not resolved on the loop; skipped */
		return NULL;
	}
	h->refs = 1;
	h->cl = cl;
	cl->refs++;
	return h;
}

/* A host for an upstream.h host (its address and key). */
static struct px_host *host_from_up(struct px_cluster *cl, struct up_host *up)
{
	struct px_host *h = calloc(1, sizeof(*h));

	if (!h)
		return NULL;
	memcpy(&h->addr, &up->addr, up->addr_len);
	h->alen = up->addr_len;
	snprintf(h->name, sizeof(h->name), "%.*s", (int)up->key_len, up->key);
	h->up = up;
	h->refs = 1;
	h->cl = cl;
	cl->refs++;
	return h;
}

static size_t hptr(const void *p, size_t cap)
{
	return (size_t)(((uintptr_t)p >> 4) * 0x9E3779B97F4A7C15ULL >> 17) & (cap - 1);
}

/* cl's engine host for up if it has one yet (NULL: none). */
static struct px_host *host_find(const struct px_cluster *cl, const struct up_host *up)
{
	size_t i;

	if (!cl->hmap_cap)
		return NULL;
	for (i = hptr(up, cl->hmap_cap);; i = (i + 1) & (cl->hmap_cap - 1)) {
		struct px_host *h = cl->hmap[i];

		if (!h || h->up == up)
			return h;
	}
}

static int hmap_build(struct px_cluster *cl);

/*
 * An EDS/STATIC cluster's engine hosts (struct px_host: pools, counters)
 * are made when the load balancer first picks their endpoint, not for
 * every endpoint of every cluster at each update: a sidecar holding the
 * whole mesh (1,000 services, 3,000 endpoints: ~0.7 MB with the host map,
 * DESIGN.md's budget is 10 MB) talks to a few of them.  /clusters shows
 * the others with zero counters, as the host made for them would.  The
 * table is a cache of cl, hence the const.
 */
struct px_host *px_cluster_host_of(const struct px_cluster *ccl, const struct up_host *up)
{
	struct px_cluster *cl = (struct px_cluster *)ccl;
	struct px_host *h = host_find(cl, up);

	if (h || cl->type == PX_CL_ORIGINAL_DST || !up->addr_len)
		return h; /* addr_len 0: a DNS cluster's name not resolved (dnscl.c), never connected */
	if (cl->n_hosts == cl->cap_hosts) {
		size_t cap = cl->cap_hosts ? 2 * cl->cap_hosts : 4;
		struct px_host **v = realloc(cl->hosts, cap * sizeof(*v));

		if (!v)
			return NULL;
		cl->hosts = v;
		cl->cap_hosts = cap;
	}
	h = host_from_up(cl, (struct up_host *)up); /* the px_host's view of its endpoint (engine-t.h) */
	if (!h)
		return NULL;
	cl->hosts[cl->n_hosts++] = h;
	if (cl->hmap_cap >= cl->n_hosts * 2) {
		size_t i;

		for (i = hptr(up, cl->hmap_cap); cl->hmap[i]; i = (i + 1) & (cl->hmap_cap - 1))
			;
		cl->hmap[i] = h;
	} else if (hmap_build(cl) < 0) {
		/* not findable: not kept, or the next pick would make another */
		cl->n_hosts--;
		px_host_unref(h);
		return NULL;
	}
	return h;
}

/* cl->hmap over cl->hosts, at most half full; none while no host. */
static int hmap_build(struct px_cluster *cl)
{
	size_t cap = 8, i;
	struct px_host **m;

	if (!cl->n_hosts) {
		free(cl->hmap);
		cl->hmap = NULL;
		cl->hmap_cap = 0;
		return 0;
	}
	while (cap < cl->n_hosts * 2)
		cap *= 2;
	m = calloc(cap, sizeof(*m));
	if (!m)
		return -ENOMEM;
	for (i = 0; i < cl->n_hosts; i++) {
		size_t k;

		if (!cl->hosts[i]->up)
			continue;
		for (k = hptr(cl->hosts[i]->up, cap); m[k]; k = (k + 1) & (cap - 1))
			;
		m[k] = cl->hosts[i];
	}
	free(cl->hmap);
	cl->hmap = m;
	cl->hmap_cap = cap;
	return 0;
}

static const char *up_health_flags(const struct up_host *u)
{
	/* every flag that applies, in Envoy's order (HostUtility::healthFlagsToString) */
	if (!u)
		return "healthy";
	if (u->ejected)
		return u->health == UP_UNHEALTHY ? "/failed_outlier_check/failed_eds_health"
		       : u->health == UP_DEGRADED ? "/failed_outlier_check/degraded_eds_health"
						  : "/failed_outlier_check";
	if (u->health == UP_UNHEALTHY)
		return "/failed_eds_health";
	if (u->health == UP_DEGRADED)
		return "/degraded_eds_health";
	return "healthy";
}

const char *px_host_health(const struct px_host *h)
{
	return up_health_flags(h->up);
}

/* The EDS resource a Cluster resource's hosts come from in s (NULL: none,
 * or not there). */
static struct px_resource *cluster_cla(const struct px_snapshot *s, const struct px_resource *r)
{
	return s && r && r->eds_name ? (struct px_resource *)px_snapshot_find(s, XDS_ENDPOINT, r->eds_name) : NULL;
}

/* Non-zero when cl's compiled Cluster and hosts came from the very
 * resources s has for it (resources are immutable and the xDS client keeps
 * the object when the bytes did not change; cl holds references, so equal
 * pointers are the same resources): a 1,000-cluster configuration is not
 * compiled again for every LDS, RDS or single-cluster update, and the heap
 * is not churned (and fragmented) by a thousand clusters' worth of
 * compiled objects each time. */
static int cluster_unchanged(const struct px_cluster *cl, const struct px_snapshot *s, const struct px_resource *r)
{
	return cl && cl->up && cl->hs && cl->src == r && cl->src_cla == cluster_cla(s, r);
}

/* cl's compiled state now comes from r (and its EDS resource in s). */
static void cluster_set_src(struct px_cluster *cl, const struct px_snapshot *s, const struct px_resource *r)
{
	struct px_resource *cla = cluster_cla(s, r);

	px_resource_unref(cl->src);
	px_resource_unref(cl->src_cla);
	cl->src = r ? px_resource_ref((struct px_resource *)r) : NULL;
	cl->src_cla = cla ? px_resource_ref(cla) : NULL;
}

/* *slot, allocated (zeroed) if it is not yet; NULL when out of memory. */
static struct ev_timer *cluster_timer(struct ev_timer **slot)
{
	if (!*slot)
		*slot = calloc(1, sizeof(**slot));
	return *slot;
}

/* The cluster's timers disarmed (they stay allocated until it is freed). */
static void cluster_timers_cancel(struct px_cluster *cl)
{
	if (!cl->e)
		return;
	if (cl->od_timer)
		ev_timer_cancel(cl->e->loop, cl->od_timer);
	if (cl->cleanup_timer)
		ev_timer_cancel(cl->e->loop, cl->cleanup_timer);
}

static void cluster_drop_hosts(struct px_cluster *cl)
{
	size_t i;

	for (i = 0; i < cl->n_hosts; i++) {
		cl->hosts[i]->removed = 1;
		cl->hosts[i]->up = NULL;
		px_pool_close_idle(cl->hosts[i]);
		px_host_unref(cl->hosts[i]);
	}
	free(cl->hosts);
	cl->hosts = NULL;
	cl->n_hosts = cl->cap_hosts = 0;
	free(cl->hmap);
	cl->hmap = NULL;
	cl->hmap_cap = 0;
	cluster_timers_cancel(cl);
	up_hostset_free(cl->hs);
	cl->hs = NULL;
	up_cluster_unref(cl->up);
	cl->up = NULL;
	cluster_set_src(cl, NULL, NULL);
	dnscl_detach(cl); /* issue 13: its lookups and refresh timers */
}

const struct px_cluster_stats px_cluster_stats_zero;

struct px_cluster_stats *px_cluster_stats_alloc(struct px_cluster *cl)
{
	static struct px_cluster_stats sink; /* out of memory: counts go nowhere */

	cl->st = calloc(1, sizeof(*cl->st));
	return cl->st ? cl->st : &sink;
}

static void cluster_unref(struct px_cluster *cl)
{
	if (!cl || --cl->refs)
		return;
	free(cl->hosts); /* empty: hosts hold a reference, so they are gone */
	free(cl->hmap);
	cluster_timers_cancel(cl);
	up_hostset_free(cl->hs);
	up_cluster_unref(cl->up);
	px_resource_unref(cl->src);
	px_resource_unref(cl->src_cla);
	px_mtls_free(cl->tls);
	dnscl_detach(cl);
	free(cl->od_timer);
	free(cl->cleanup_timer);
	free(cl->st);
	free(cl->name);
	free(cl);
}

/* The ORIGINAL_DST cleanup sweep (Envoy's OriginalDstCluster::cleanup): a
 * host picked since the last sweep, or with a request in flight, stays and
 * is marked unused; the others are removed (idle connections closed; the
 * host is freed once its last user lets go).  Re-armed while hosts remain. */
static void odst_cleanup(struct ev_loop *loop, struct ev_timer *t)
{
	struct px_cluster *cl = t->data;
	size_t i, k = 0;

	if (cl->type != PX_CL_ORIGINAL_DST)
		return; /* the cluster changed type: its hosts are EDS's now */
	for (i = 0; i < cl->n_hosts; i++) {
		struct px_host *h = cl->hosts[i];

		if (h->used || h->st.rq_active) {
			h->used = 0;
			cl->hosts[k++] = h;
			continue;
		}
		h->removed = 1;
		px_pool_close_idle(h);
		px_host_unref(h);
	}
	cl->n_hosts = k;
	if (k)
		ev_timer_arm(loop, t, PX_ODST_CLEANUP_MS);
}

struct px_host *px_cluster_dst_host(struct px_cluster *cl, const struct sockaddr_storage *ss, socklen_t len)
{
	char ip[INET6_ADDRSTRLEN];
	struct px_host *h, **v;
	uint32_t port;
	size_t i;

	for (i = 0; i < cl->n_hosts; i++)
		if (cl->hosts[i]->alen == len && !memcmp(&cl->hosts[i]->addr, ss, len)) {
			cl->hosts[i]->used = 1;
			return cl->hosts[i];
		}
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *s = (const struct sockaddr_in *)ss;

		inet_ntop(AF_INET, &s->sin_addr, ip, sizeof(ip));
		port = ntohs(s->sin_port);
	} else {
		const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)ss;

		inet_ntop(AF_INET6, &s->sin6_addr, ip, sizeof(ip));
		port = ntohs(s->sin6_port);
	}
	if (cl->n_hosts >= 1024) { /* bound the passthrough host table: drop the oldest idle-less host */
		for (i = 0; i < cl->n_hosts && cl->hosts[i]->refs > 1; i++)
			;
		if (i == cl->n_hosts)
			return NULL;
		cl->hosts[i]->removed = 1;
		px_pool_close_idle(cl->hosts[i]);
		px_host_unref(cl->hosts[i]);
		memmove(cl->hosts + i, cl->hosts + i + 1, (cl->n_hosts - i - 1) * sizeof(*v));
		cl->n_hosts--;
	}
	if (cl->n_hosts == cl->cap_hosts) {
		size_t nc = cl->cap_hosts ? cl->cap_hosts * 2 : 8;

		v = realloc(cl->hosts, nc * sizeof(*v));
		if (!v)
			return NULL;
		cl->hosts = v;
		cl->cap_hosts = nc;
	}
	h = host_new(cl, ip, port);
	if (!h)
		return NULL;
	h->used = 1;
	cl->hosts[cl->n_hosts++] = h;
	if (cl->e && cluster_timer(&cl->cleanup_timer) && !ev_timer_armed(cl->cleanup_timer)) {
		ev_timer_init(cl->cleanup_timer, odst_cleanup, cl);
		ev_timer_arm(cl->e->loop, cl->cleanup_timer, PX_ODST_CLEANUP_MS);
	}
	return h;
}

static int cmp_cluster(const void *a, const void *b)
{
	return strcmp((*(struct px_cluster *const *)a)->name, (*(struct px_cluster *const *)b)->name);
}

static struct px_cluster *ctab_find(struct px_cluster **v, size_t n, const char *name)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int c = strcmp(v[mid]->name, name);

		if (!c)
			return v[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

struct px_cluster *px_config_cluster(const struct px_config *c, const char *name)
{
	return ctab_find(c->clusters, c->n_clusters, name);
}

/* --- configurations */

struct px_config *px_config_ref(struct px_config *c)
{
	c->refs++;
	return c;
}

static void sel_cleanup(struct px_sel *sel);

static void config_free(struct px_config *c)
{
	size_t i;

	router_unref(c->router);
	for (i = 0; i < c->n_in_routers; i++)
		router_unref(c->in_routers[i]);
	free(c->in_routers);
	free(c->in_ports);
	free(c->bh_out);
	for (i = 0; i < c->n_bound; i++) {
		free(c->bound[i].name);
		sel_cleanup(&c->bound[i].sel);
	}
	for (i = 0; i < c->n_out_ports; i++)
		if (c->out_ports[i].sel) {
			sel_cleanup(c->out_ports[i].sel);
			free(c->out_ports[i].sel);
		}
	sel_cleanup(&c->in_sel);
	free(c->out_ports);
	free(c->bound);
	for (i = 0; i < c->n_clusters; i++)
		cluster_unref(c->clusters[i]);
	free(c->clusters);
	for (i = 0; c->new_hs && i < c->snap->sets[XDS_CLUSTER].n; i++)
		up_hostset_free(c->new_hs[i]);
	for (i = 0; c->new_up && i < c->snap->sets[XDS_CLUSTER].n; i++)
		up_cluster_unref(c->new_up[i]);
	for (i = 0; c->new_tls && i < c->snap->sets[XDS_CLUSTER].n; i++)
		px_mtls_free(c->new_tls[i]);
	free(c->new_tls);
	for (i = 0; i < c->n_mtls; i++)
		px_mtls_free(c->mtls[i]);
	free(c->mtls);
	free(c->new_hs);
	free(c->new_up);
	for (i = 0; i < c->n_authzs; i++)
		authz_free(c->authzs[i]);
	free(c->authzs);
	for (i = 0; i < c->n_hcms; i++)
		protobuf_c_message_free_unpacked(c->hcms[i], NULL);
	free(c->hcms);
	for (i = 0; i < c->n_jwts; i++)
		jwt_config_free(c->jwts[i]);
	for (i = 0; i < c->n_traces; i++)
		trace_cfg_free(c->traces[i]);
	free(c->traces);
	for (i = 0; i < c->n_alogs; i++)
		px_alog_cfg_free(c->alogs[i]);
	free(c->alogs);
	for (i = 0; i < c->n_stats; i++)
		istio_stats_cfg_free(c->stats[i]);
	free(c->stats);
	free(c->jwts);
	px_snapshot_unref(c->snap);
	free(c);
}

void px_config_unref(struct px_config *c)
{
	if (c && --c->refs == 0)
		config_free(c);
}

static int in_router_add(struct px_config *c, struct router *r)
{
	struct router **v = realloc(c->in_routers, (c->n_in_routers + 1) * sizeof(*v));

	if (!v)
		return -ENOMEM;
	c->in_routers = v;
	v[c->n_in_routers++] = r;
	return 0;
}

static int port_add(struct px_port **v, size_t *n, const struct px_port *p)
{
	struct px_port *nv = realloc(*v, (*n + 1) * sizeof(*nv));

	if (!nv)
		return -ENOMEM;
	nv[(*n)++] = *p;
	*v = nv;
	return 0;
}

static int hcm_keep(struct px_config *c, ProtobufCMessage *m)
{
	ProtobufCMessage **v = realloc(c->hcms, (c->n_hcms + 1) * sizeof(*v));

	if (!v)
		return -ENOMEM;
	v[c->n_hcms++] = m;
	c->hcms = v;
	return 0;
}

/* The HCM's jwt_authn filter (RequestAuthentication), compiled and kept
 * by c for p; a config that does not compile refuses the listener. */
static int port_jwt(struct px_config *c, const char *lname, const px_hcm *hcm, struct px_port *p, char *err,
		    size_t cap)
{
	struct jwt_config *j = NULL, **v;
	char why[256] = "";
	int rc = jwt_config_from_hcm(hcm, &j, why, sizeof(why));

	if (rc < 0) {
		snprintf(err, cap, "listener %s: %s", lname, why);
		return rc;
	}
	if (!j)
		return 0;
	{
		/* Envoy's http.<stat_prefix>.jwt_authn.* (jwt.h), in the
		 * engine's counter table so they outlive this config */
		struct jwt_stats st;
		char name[512];
		const char *sp = hcm->stat_prefix ? hcm->stat_prefix : "";

		snprintf(name, sizeof(name), "http.%s.%sallowed", sp, JWT_STATS_PREFIX);
		st.allowed = authz_tab_counter(c->e->authz_tab, name);
		snprintf(name, sizeof(name), "http.%s.%sdenied", sp, JWT_STATS_PREFIX);
		st.denied = authz_tab_counter(c->e->authz_tab, name);
		snprintf(name, sizeof(name), "http.%s.%scors_preflight_bypassed", sp, JWT_STATS_PREFIX);
		st.cors_preflight_bypassed = authz_tab_counter(c->e->authz_tab, name);
		if (!st.allowed || !st.denied || !st.cors_preflight_bypassed) {
			jwt_config_free(j);
			return -ENOMEM;
		}
		jwt_config_set_stats(j, &st);
	}
	v = realloc(c->jwts, (c->n_jwts + 1) * sizeof(*v));
	if (!v) {
		jwt_config_free(j);
		return -ENOMEM;
	}
	v[c->n_jwts++] = j;
	c->jwts = v;
	p->jwt = j;
	return 0;
}

/* issue 14: the HCM's tracing (tracing.c), compiled and kept by c for p;
 * an unsupported collector refuses the listener. */
static int port_trace(struct px_config *c, const char *lname, const px_hcm *hcm, struct px_port *p, char *err,
		      size_t cap)
{
	struct trace_cfg *t = NULL, **v;
	char why[256] = "";
	int rc = hcm ? trace_cfg_new(hcm->tracing, &t, why, sizeof(why)) : 0;

	if (rc < 0) {
		snprintf(err, cap, "listener %s: %s", lname, why);
		return rc;
	}
	if (!t)
		return 0;
	v = realloc(c->traces, (c->n_traces + 1) * sizeof(*v));
	if (!v) {
		trace_cfg_free(t);
		return -ENOMEM;
	}
	v[c->n_traces++] = t;
	c->traces = v;
	p->trace = t;
	return 0;
}

#define ISTIO_STATS_NAME "istio.stats"
#define ISTIO_STATS_URL  "type.googleapis.com/stats.PluginConfig"

/* issue 14: the chain's istio.stats filter -- the HTTP one among the
 * HCM's http_filters, else the network one among the chain's filters --
 * compiled and kept by c into *out (NULL: none, and then, as Envoy
 * without the filter, no istio_* series for the chain).  An expression
 * meshproxy cannot evaluate refuses the listener with its message. */
static int chain_stats(struct px_config *c, const char *lname, const Envoy__Config__Listener__V3__FilterChain *fc,
		       const px_hcm *hcm, const struct istio_stats_cfg **out, char *err, size_t cap)
{
	const Google__Protobuf__Any *any = NULL;
	struct istio_stats_cfg *st = NULL, **v;
	char why[512] = "";
	size_t i;
	int rc;

	*out = NULL;
	for (i = 0; hcm && i < hcm->n_http_filters && !any; i++) {
		const Envoy__Extensions__Filters__Network__HttpConnectionManager__V3__HttpFilter *f = hcm->http_filters[i];

		if (f->config_type_case ==
			    ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_FILTER__CONFIG_TYPE_TYPED_CONFIG &&
		    f->typed_config && f->typed_config->type_url && !strcmp(f->typed_config->type_url, ISTIO_STATS_URL))
			any = f->typed_config;
	}
	for (i = 0; !hcm && fc && i < fc->n_filters && !any; i++) {
		const Envoy__Config__Listener__V3__Filter *f = fc->filters[i];

		if (f->config_type_case == ENVOY__CONFIG__LISTENER__V3__FILTER__CONFIG_TYPE_TYPED_CONFIG &&
		    f->typed_config && f->typed_config->type_url && !strcmp(f->typed_config->type_url, ISTIO_STATS_URL))
			any = f->typed_config;
	}
	if (!any)
		return 0;
	/* meshd sends the same bytes on most chains (one per direction): one
	 * compiled copy each (~2 KB), not one per chain */
	{
		uint64_t id = XXH3_64bits(any->value.data, any->value.len);

		for (i = 0; i < c->n_stats; i++)
			if (istio_stats_cfg_id(c->stats[i]) == id) {
				*out = c->stats[i];
				return 0;
			}
	}
	rc = istio_stats_cfg_new(any->value.data, any->value.len, &st, why, sizeof(why));
	if (rc < 0) {
		snprintf(err, cap, "listener %s: filter %s: %s", lname, ISTIO_STATS_NAME, why[0] ? why : mesh_strerror(rc));
		return rc;
	}
	if (istio_stats_cfg_dropped(st)) /* Istio logs and drops such a tag */
		log_info("istio_stats", "listener %s: %zu tag(s) left out, first: %s", lname,
			 istio_stats_cfg_dropped(st), why);
	v = realloc(c->stats, (c->n_stats + 1) * sizeof(*v));
	if (!v) {
		istio_stats_cfg_free(st);
		return -ENOMEM;
	}
	v[c->n_stats++] = st;
	c->stats = v;
	*out = st;
	return 0;
}

typedef Envoy__Extensions__Filters__Network__TcpProxy__V3__TcpProxy px_tcpf;

/* issue 14: the access_log of the chain's HCM (p->alog) or TCP proxy
 * (p->tcpp.alog), compiled and kept by c; one meshproxy cannot honour
 * refuses the listener with the reason (accesslog.h). */
static int port_alog(struct px_config *c, const char *lname, const px_hcm *hcm, const px_tcpf *tcpf,
		     struct px_port *p, char *err, size_t cap)
{
	struct px_alog_cfg *a = NULL, **v;
	char why[256] = "";
	int rc;

	if (hcm)
		rc = px_alog_cfg_new(c->e->alog_sinks, hcm->access_log, hcm->n_access_log, &a, why, sizeof(why));
	else if (tcpf)
		rc = px_alog_cfg_new(c->e->alog_sinks, tcpf->access_log, tcpf->n_access_log, &a, why, sizeof(why));
	else
		rc = 0;
	if (rc < 0) {
		snprintf(err, cap, "listener %s: %s", lname, why[0] ? why : strerror(-rc));
		return rc;
	}
	if (!a)
		return 0;
	v = realloc(c->alogs, (c->n_alogs + 1) * sizeof(*v));
	if (!v) {
		px_alog_cfg_free(a);
		return -ENOMEM;
	}
	v[c->n_alogs++] = a;
	c->alogs = v;
	if (hcm)
		p->alog = a;
	else
		p->tcpp.alog = a;
	return 0;
}

static int chain_decode_tcp(struct px_config *c, const char *lname, const Envoy__Config__Listener__V3__FilterChain *fc,
			    px_hcm **hcm, const char **tcp_cluster, const px_tcpf **tcpf, char *err, size_t cap);

/* virtualInbound's envoy.filters.listener.original_src (istiod adds it
 * under TPROXY with mark 1337): c->in_osrc and its mark.  bind_port (the
 * client's port too) is refused: istiod never sets it, and a second
 * connection from the same address and port to the application would
 * collide.  0, -EINVAL (reason in err) or -ENOMEM. */
static int original_src_decode(struct px_config *c, const Envoy__Config__Listener__V3__Listener *l, char *err,
			       size_t cap)
{
	size_t i;

	c->in_osrc = 0;
	c->in_osrc_mark = 0;
	for (i = 0; i < l->n_listener_filters; i++) {
		const Envoy__Config__Listener__V3__ListenerFilter *f = l->listener_filters[i];
		Envoy__Extensions__Filters__Listener__OriginalSrc__V3__OriginalSrc *os;

		if (!f->name || strcmp(f->name, "envoy.filters.listener.original_src"))
			continue;
		c->in_osrc = 1;
		if (f->config_type_case != ENVOY__CONFIG__LISTENER__V3__LISTENER_FILTER__CONFIG_TYPE_TYPED_CONFIG ||
		    !f->typed_config)
			continue;
		if (strcmp(f->typed_config->type_url, OSRC_URL)) {
			snprintf(err, cap, "listener %s: listener filter %s: typed_config is %s, not OriginalSrc", l->name,
				 f->name, f->typed_config->type_url);
			return -EINVAL;
		}
		os = envoy__extensions__filters__listener__original_src__v3__original_src__unpack(
			NULL, f->typed_config->value.len, f->typed_config->value.data);
		if (!os) {
			snprintf(err, cap, "listener %s: listener filter %s: OriginalSrc does not decode", l->name, f->name);
			return -EINVAL;
		}
		c->in_osrc_mark = os->mark;
		if (os->bind_port) {
			protobuf_c_message_free_unpacked(&os->base, NULL);
			snprintf(err, cap, "listener %s: listener filter %s: bind_port is not supported", l->name, f->name);
			return -EINVAL;
		}
		protobuf_c_message_free_unpacked(&os->base, NULL);
	}
	return 0;
}
/* The chain's network filter: an HCM (*hcm, kept by c) or a TCP proxy's cluster. */
static int chain_decode(struct px_config *c, const char *lname, const Envoy__Config__Listener__V3__FilterChain *fc,
			px_hcm **hcm, const char **tcp_cluster, char *err, size_t cap)
{
	return chain_decode_tcp(c, lname, fc, hcm, tcp_cluster, NULL, err, cap);
}

/* chain_decode(), also giving the TcpProxy filter itself (*tcpf, kept by c) */
static int chain_decode_tcp(struct px_config *c, const char *lname, const Envoy__Config__Listener__V3__FilterChain *fc,
			    px_hcm **hcm, const char **tcp_cluster, const px_tcpf **tcpf, char *err, size_t cap)
{
	size_t i;

	*hcm = NULL;
	*tcp_cluster = NULL;
	if (tcpf)
		*tcpf = NULL;
	for (i = 0; fc && i < fc->n_filters; i++) {
		const Envoy__Config__Listener__V3__Filter *f = fc->filters[i];
		const Google__Protobuf__Any *any;

		if (f->config_type_case != ENVOY__CONFIG__LISTENER__V3__FILTER__CONFIG_TYPE_TYPED_CONFIG ||
		    !f->typed_config)
			continue;
		any = f->typed_config;
		if (!strcmp(any->type_url, HCM_URL)) {
			px_hcm *h = envoy__extensions__filters__network__http_connection_manager__v3__http_connection_manager__unpack(
				NULL, any->value.len, any->value.data);

			if (!h) {
				snprintf(err, cap, "listener %s: filter %s: HttpConnectionManager does not decode",
					 lname, f->name);
				return -EINVAL;
			}
			if (hcm_keep(c, &h->base) < 0) {
				protobuf_c_message_free_unpacked(&h->base, NULL);
				return -ENOMEM;
			}
			*hcm = h;
			return 0;
		}
		if (!strcmp(any->type_url, TCP_URL)) {
			Envoy__Extensions__Filters__Network__TcpProxy__V3__TcpProxy *t =
				envoy__extensions__filters__network__tcp_proxy__v3__tcp_proxy__unpack(
					NULL, any->value.len, any->value.data);

			if (!t) {
				snprintf(err, cap, "listener %s: filter %s: TcpProxy does not decode", lname, f->name);
				return -EINVAL;
			}
			if (hcm_keep(c, &t->base) < 0) {
				protobuf_c_message_free_unpacked(&t->base, NULL);
				return -ENOMEM;
			}
			if (t->cluster_specifier_case ==
			    ENVOY__EXTENSIONS__FILTERS__NETWORK__TCP_PROXY__V3__TCP_PROXY__CLUSTER_SPECIFIER_CLUSTER)
				*tcp_cluster = t->cluster;
			if (tcpf)
				*tcpf = t;
			return 0;
		}
	}
	return 0;
}

/* Envoy's HTTP/1 codec answers an HTTP/1.0 request 426 unless the HCM's
 * http_protocol_options.accept_http_10 is set (Istio leaves it off). */
static int hcm_http10(const px_hcm *hcm)
{
	return hcm && hcm->http_protocol_options && hcm->http_protocol_options->accept_http_10;
}

static uint64_t dur_ms(const Google__Protobuf__Duration *d)
{
	if (d->seconds < 0 || d->nanos < 0)
		return 0;
	return (uint64_t)d->seconds * 1000 + (uint64_t)d->nanos / 1000000 + (d->nanos % 1000000 ? 1 : 0);
}

/* Envoy's HttpConnectionManager fields (http_connection_manager.proto):
 * stream_idle_timeout defaults to 5 min and 0 turns it off;
 * request_headers_timeout is off unless set (both PX_IDLE_UNSET when the
 * HCM sets none: the engine's --stream-idle-timeout and
 * --request-headers-timeout apply then, px_port_*_ms()); common_http_protocol_options'
 * idle_timeout is the downstream connection's (Envoy: 1 h when unset, 0
 * off); proxy_100_continue false means Envoy answers "100 Continue" itself
 * and strips Expect. */
uint64_t px_port_stream_idle_ms(const struct engine *e, const struct px_port *pp)
{
	return pp && pp->stream_idle_ms != PX_IDLE_UNSET ? pp->stream_idle_ms : e->o.stream_idle_ms;
}

uint64_t px_port_headers_ms(const struct engine *e, const struct px_port *pp)
{
	return pp && pp->headers_ms != PX_IDLE_UNSET ? pp->headers_ms : e->o.headers_ms;
}

uint64_t px_port_request_ms(const struct engine *e, const struct px_port *pp)
{
	return pp && pp->request_ms != PX_IDLE_UNSET ? pp->request_ms : e->o.request_ms;
}

void px_port_hcm(struct px_port *p, const px_hcm *hcm)
{
	p->stream_idle_ms = hcm && hcm->stream_idle_timeout ? dur_ms(hcm->stream_idle_timeout) : PX_IDLE_UNSET;
	p->headers_ms = hcm && hcm->request_headers_timeout ? dur_ms(hcm->request_headers_timeout) : PX_IDLE_UNSET;
	p->request_ms = hcm && hcm->request_timeout ? dur_ms(hcm->request_timeout) : PX_IDLE_UNSET;
	p->conn_idle_ms = hcm && hcm->common_http_protocol_options && hcm->common_http_protocol_options->idle_timeout
				  ? dur_ms(hcm->common_http_protocol_options->idle_timeout)
				  : PX_IDLE_UNSET;
	p->proxy_100 = hcm ? hcm->proxy_100_continue : 0;
	/* issue 12: the peer's certificate is told to the application (XFCC) */
	p->xfcc = hcm && (hcm->forward_client_cert_details ==
				  ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_CONNECTION_MANAGER__FORWARD_CLIENT_CERT_DETAILS__APPEND_FORWARD ||
			  hcm->forward_client_cert_details ==
				  ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_CONNECTION_MANAGER__FORWARD_CLIENT_CERT_DETAILS__SANITIZE_SET);
	/* Envoy's mutateXfccRequestHeader: what becomes of the client's own header */
	switch (hcm ? hcm->forward_client_cert_details : 0) {
	case ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_CONNECTION_MANAGER__FORWARD_CLIENT_CERT_DETAILS__FORWARD_ONLY:
	case ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_CONNECTION_MANAGER__FORWARD_CLIENT_CERT_DETAILS__APPEND_FORWARD:
		p->xfcc_keep = 1;
		break;
	case ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_CONNECTION_MANAGER__FORWARD_CLIENT_CERT_DETAILS__ALWAYS_FORWARD_ONLY:
		p->xfcc_keep = 2;
		break;
	default:
		p->xfcc_keep = 0;
	}
	p->http_opts = authz_http_opts(hcm);
}

/* The RBAC filters of chain fc (HTTP ones in hcm, else network ones)
 * compiled into p->authz, kept by c; a chain the evaluator cannot judge
 * refuses the configuration with its message (NACK). */
static int chain_authz(struct px_config *c, const char *lname, const Envoy__Config__Listener__V3__FilterChain *fc,
		       const px_hcm *hcm, struct px_port *p, char *err, size_t cap)
{
	struct authz *a = NULL, **v;
	int rc;

	rc = authz_compile(c->e->authz_tab, lname, fc, hcm, &a, err, cap);
	if (rc < 0 || !a)
		return rc;
	v = realloc(c->authzs, (c->n_authzs + 1) * sizeof(*v));
	if (!v) {
		authz_free(a);
		return -ENOMEM;
	}
	v[c->n_authzs++] = a;
	c->authzs = v;
	p->authz = a;
	return 0;
}

/* What serves a connection through chain fc: an HCM over RDS (route_name,
 * resolved against the config's router later), an HCM with an inline route
 * configuration (compiled here into a router of the config's own), or a
 * TCP proxy (*p->tcp, its cluster). */
static int chain_port(struct px_config *c, const char *lname, const Envoy__Config__Listener__V3__FilterChain *fc,
		      struct px_port *p, char *err, size_t cap)
{
	px_hcm *hcm;
	const char *tcp;
	const px_tcpf *tcpf;
	size_t i;
	int rc;

	rc = chain_decode_tcp(c, lname, fc, &hcm, &tcp, &tcpf, err, cap);
	if (rc < 0)
		return rc;
	px_port_hcm(p, hcm);
	tcpp_conf_init(&p->tcpp, tcpf);
	for (i = 0; tcpf && fc && i < fc->n_filters; i++)
		if (fc->filters[i]->name && !strcmp(fc->filters[i]->name, "envoy.filters.network.sni_cluster"))
			p->tcpp.sni_cluster = 1; /* issue 13: AUTO_PASSTHROUGH (tcpproxy.c) */
	rc = chain_authz(c, lname, fc, hcm, p, err, cap);
	if (rc < 0)
		return rc;
	p->accept_http_10 = hcm_http10(hcm);
	rc = port_jwt(c, lname, hcm, p, err, cap);
	if (rc < 0)
		return rc;
	rc = port_trace(c, lname, hcm, p, err, cap);
	if (rc == 0)
		rc = port_alog(c, lname, hcm, tcpf, p, err, cap);
	if (rc < 0)
		return rc;
	rc = chain_stats(c, lname, fc, hcm, &p->istio, err, cap);
	if (rc < 0)
		return rc;
	p->tcpp.istio = p->istio;
	if (!c->stats_in_any && p->istio && !strcmp(lname, "virtualInbound"))
		c->stats_in_any = p->istio; /* (requests no inbound port takes) */
	if (hcm && hcm->route_specifier_case ==
			   ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_CONNECTION_MANAGER__ROUTE_SPECIFIER_ROUTE_CONFIG &&
	    hcm->route_config) {
		const Envoy__Config__Route__V3__RouteConfiguration *one = hcm->route_config;
		struct router *r = NULL;

		rc = router_new(&one, 1, &r, err, cap);
		if (rc < 0)
			return rc;
		rc = in_router_add(c, r);
		if (rc < 0) {
			router_unref(r);
			return rc;
		}
		p->rcfg = router_config(r, one->name, strlen(one->name));
	} else if (hcm && hcm->route_specifier_case ==
				  ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_CONNECTION_MANAGER__ROUTE_SPECIFIER_RDS &&
		   hcm->rds) {
		p->route_name = hcm->rds->route_config_name;
	} else if (!hcm) {
		p->tcp = 1;
		p->tcp_cluster = tcp;
	}
	return 0;
}

static int is_tls_chain(const Envoy__Config__Listener__V3__FilterChain *fc)
{
	const Envoy__Config__Listener__V3__FilterChainMatch *m = fc->filter_chain_match;

	return m && m->transport_protocol && !strcmp(m->transport_protocol, "tls");
}

/* Every chain of l (and its default chain) compiled for Envoy's selection
 * by destination, SNI, transport and ALPN once the listener filters have
 * looked (fcmatch.h); port: what each chain's px_port.port says.  sel is
 * zeroed first; sel_cleanup() frees it, also after a failure. */
static int sel_init(struct px_config *c, const Envoy__Config__Listener__V3__Listener *l, uint32_t port,
		    struct px_sel *sel, char *err, size_t cap)
{
	size_t i;
	int rc;

	memset(sel, 0, sizeof(*sel));
	rc = fcm_table_init(&sel->fcm, l, err, cap);
	if (rc < 0)
		return rc;
	if (l->n_filter_chains) {
		sel->chains = calloc(l->n_filter_chains, sizeof(*sel->chains));
		sel->chain_tls = calloc(l->n_filter_chains, 1);
		if (!sel->chains || !sel->chain_tls)
			return -ENOMEM;
	}
	for (i = 0; i < l->n_filter_chains; i++) {
		sel->chains[i].port = port;
		sel->chain_tls[i] = l->filter_chains[i]->transport_socket != NULL;
		rc = chain_port(c, l->name, l->filter_chains[i], &sel->chains[i], err, cap);
		if (rc < 0)
			return rc;
		sel->n_chains++;
	}
	if (l->default_filter_chain) {
		sel->def.port = port;
		sel->def_tls = l->default_filter_chain->transport_socket != NULL;
		rc = chain_port(c, l->name, l->default_filter_chain, &sel->def, err, cap);
	}
	return rc;
}

static void sel_cleanup(struct px_sel *sel)
{
	fcm_table_cleanup(&sel->fcm);
	free(sel->chains);
	free(sel->chain_tls);
	memset(sel, 0, sizeof(*sel));
}

/* RDS names of sel's chains resolved against the config's router. */
static void sel_resolve(const struct px_config *c, struct px_sel *sel)
{
	size_t k;

	for (k = 0; k < sel->n_chains; k++)
		if (sel->chains[k].route_name)
			sel->chains[k].rcfg = router_config(c->router, sel->chains[k].route_name,
							    strlen(sel->chains[k].route_name));
	if (sel->def.route_name)
		sel->def.rcfg = router_config(c->router, sel->def.route_name, strlen(sel->def.route_name));
}

/* An inbound TLS chain's DownstreamTlsContext, kept by the config. */
static int inbound_tls(struct px_config *c, const char *lname, const Envoy__Config__Listener__V3__FilterChain *fc,
		       struct px_mtls **out, char *err, size_t cap)
{
	struct px_mtls **v;
	char why[200];
	int rc;

	*out = NULL;
	rc = px_mtls_chain(fc, out, why, sizeof(why));
	if (rc < 0) {
		snprintf(err, cap, "listener %s: filter chain %s: %s", lname, fc->name, why);
		return rc;
	}
	if (!*out)
		return 0;
	v = realloc(c->mtls, (c->n_mtls + 1) * sizeof(*v));
	if (!v) {
		px_mtls_free(*out);
		*out = NULL;
		return -ENOMEM;
	}
	c->mtls = v;
	c->mtls[c->n_mtls++] = *out;
	c->in_tls = 1;
	return 0;
}

/*
 * Issue 13: a gateway's listener (bound, not inbound) terminates TLS per
 * filter chain, as Envoy does: each chain with a transport socket gets its
 * DownstreamTlsContext (SIMPLE / MUTUAL certificates, ALPN, tls_params),
 * kept by c, which proxy.c's d_select() starts a handshake with once the
 * chain is selected (by SNI).  A listener whose chains match on SNI,
 * transport or ALPN without a tls_inspector gets one, as Envoy injects it
 * ("filter chain match rules require TLS Inspector listener filter").
 */
static int sel_tls(struct px_config *c, const Envoy__Config__Listener__V3__Listener *l, struct px_sel *sel,
		   char *err, size_t cap)
{
	int in_tls = c->in_tls; /* virtualInbound's first-byte peek is not ours */
	size_t i;
	int rc = 0;

	if (sel->fcm.uses & (FCM_USES_SNI | FCM_USES_TRANSPORT))
		sel->fcm.inspect |= FCM_INSPECT_TLS;
	for (i = 0; i < sel->n_chains && rc == 0; i++)
		if (sel->chain_tls[i])
			rc = inbound_tls(c, l->name, l->filter_chains[i], &sel->chains[i].tls, err, cap);
	if (rc == 0 && sel->def_tls)
		rc = inbound_tls(c, l->name, l->default_filter_chain, &sel->def.tls, err, cap);
	c->in_tls = in_tls;
	return rc;
}

/* Envoy binds a listener unless bind_to_port says false (unset: true). */
static int binds_itself(const Envoy__Config__Listener__V3__Listener *l)
{
	return !l->bind_to_port || l->bind_to_port->value;
}

/* A listener with a socket of its own (struct px_bound).  Its connections
 * are served by its first chain that is not TLS, else by its TLS chain,
 * else by its default chain.  Issue 12: an inbound one's TLS chain (a
 * Sidecar ingress listener under PeerAuthentication) gives the port its
 * DownstreamTlsContext: TLS-only is STRICT, with a plaintext chain
 * PERMISSIVE, told apart by the first byte as on virtualInbound (proxy.c). */
static int compile_bound(struct px_config *c, const Envoy__Config__Listener__V3__Listener *l,
			 const Envoy__Config__Core__V3__SocketAddress *sa, char *err, size_t cap)
{
	const Envoy__Config__Listener__V3__FilterChain *fc = NULL, *tls_fc = NULL;
	struct in6_addr a6;
	struct in_addr a4;
	struct px_bound *b, *v;
	size_t i;
	int rc;

	v = realloc(c->bound, (c->n_bound + 1) * sizeof(*v));
	if (!v)
		return -ENOMEM;
	c->bound = v;
	b = &v[c->n_bound];
	memset(b, 0, sizeof(*b));
	if (inet_pton(AF_INET, sa->address, &a4) == 1) {
		snprintf(b->key, sizeof(b->key), "%s:%u", sa->address, sa->port_value);
	} else if (inet_pton(AF_INET6, sa->address, &a6) == 1) {
		snprintf(b->key, sizeof(b->key), "[%s]:%u", sa->address, sa->port_value);
	} else {
		snprintf(err, cap, "listener %s: address %s is not numeric", l->name, sa->address);
		return -EINVAL;
	}
	for (i = 0; i < c->n_bound; i++)
		if (!strcmp(c->bound[i].key, b->key)) {
			/* Envoy's words for the same refusal */
			snprintf(err, cap, "error adding listener: '%s' has duplicate address '%s' as existing listener '%s'",
				 l->name, b->key, c->bound[i].name);
			return -EINVAL;
		}
	b->name = strdup(l->name);
	if (!b->name)
		return -ENOMEM;
	c->n_bound++;
	b->inbound = l->traffic_direction == ENVOY__CONFIG__CORE__V3__TRAFFIC_DIRECTION__INBOUND;
	b->port.port = sa->port_value;
	for (i = 0; i < l->n_filter_chains && !fc; i++)
		if (!is_tls_chain(l->filter_chains[i]))
			fc = l->filter_chains[i];
	for (i = 0; b->inbound && i < l->n_filter_chains && !tls_fc; i++)
		if (is_tls_chain(l->filter_chains[i]))
			tls_fc = l->filter_chains[i];
	if (tls_fc) {
		/* virtualInbound's first-byte peek (in_tls) is its own ports' business */
		int in_tls = c->in_tls;

		rc = inbound_tls(c, l->name, tls_fc, &b->port.tls, err, cap);
		c->in_tls = in_tls;
		if (rc < 0)
			return rc;
	}
	b->port.plain_ok = fc != NULL || !b->port.tls;
	if (!fc)
		fc = tls_fc ? tls_fc : l->default_filter_chain;
	rc = chain_port(c, l->name, fc, &b->port, err, cap);
	if (rc < 0)
		return rc;
	rc = sel_init(c, l, sa->port_value, &b->sel, err, cap);
	if (rc < 0 || b->inbound)
		return rc;
	return sel_tls(c, l, &b->sel, err, cap);
}

static int compile_listener(struct px_config *c, const Envoy__Config__Listener__V3__Listener *l, char *err,
			    size_t cap)
{
	const Envoy__Config__Core__V3__SocketAddress *sa = NULL;
	px_hcm *hcm;
	const char *tcp;
	struct px_port p;
	size_t i;
	int rc;

	if (l->address && l->address->address_case == ENVOY__CONFIG__CORE__V3__ADDRESS__ADDRESS_SOCKET_ADDRESS)
		sa = l->address->socket_address;
	if (!strcmp(l->name, "virtualOutbound")) {
		c->has_outbound = 1;
		c->out_transparent = l->transparent && l->transparent->value;
		for (i = 0; i < l->n_filter_chains; i++) {
			const Envoy__Config__Listener__V3__FilterChain *fc = l->filter_chains[i];

			rc = chain_decode(c, l->name, fc, &hcm, &tcp, err, cap);
			if (rc < 0)
				return rc;
			if (fc->filter_chain_match && fc->filter_chain_match->destination_port) {
				/* the chain catching traffic to 15001 itself
				 * (virtualOutbound-blackhole): honoured by port */
				uint32_t *nv;

				if (!tcp || strcmp(tcp, "BlackHoleCluster"))
					continue;
				nv = realloc(c->bh_out, (c->n_bh_out + 1) * sizeof(*nv));
				if (!nv)
					return -ENOMEM;
				c->bh_out = nv;
				c->bh_out[c->n_bh_out++] = fc->filter_chain_match->destination_port->value;
				continue;
			}
			if (tcp) {
				/* issue 14: the catch-all's access_log serves requests
				 * to destinations no port knows (proxy.c) */
				const px_tcpf *tcpf;
				struct px_port tmp;

				c->allow_any = !strcmp(tcp, "PassthroughCluster");
				memset(&tmp, 0, sizeof(tmp));
				rc = chain_decode_tcp(c, l->name, fc, &hcm, &tcp, &tcpf, err, cap);
				if (rc == 0)
					rc = port_alog(c, l->name, NULL, tcpf, &tmp, err, cap);
				if (rc < 0)
					return rc;
				c->out_catchall_alog = tmp.tcpp.alog;
			}
			/* issue 14: the catch-all's istio.stats serves what no port takes */
			if (!c->stats_out_any) {
				rc = chain_stats(c, l->name, fc, NULL, &c->stats_out_any, err, cap);
				if (rc < 0)
					return rc;
			}
		}
		return 0;
	}
	if (!strcmp(l->name, "virtualInbound")) {
		c->has_inbound = 1;
		c->in_transparent = l->transparent && l->transparent->value;
		rc = original_src_decode(c, l, err, cap);
		if (rc < 0)
			return rc;
		/* captured connections select among all its chains (Envoy) */
		sel_cleanup(&c->in_sel);
		rc = sel_init(c, l, 0, &c->in_sel, err, cap);
		if (rc < 0)
			return rc;
		for (i = 0; i < c->in_sel.n_chains; i++)
			c->in_sel.chains[i].port = fcm_chain_port(&c->in_sel.fcm, i);
		for (i = 0; i < l->n_filter_chains; i++) {
			const Envoy__Config__Listener__V3__FilterChain *fc = l->filter_chains[i];
			const Envoy__Config__Listener__V3__FilterChainMatch *m = fc->filter_chain_match;

			struct px_port *have = NULL;
			struct px_mtls *tls = NULL;
			size_t k;

			if (!m || !m->destination_port)
				continue;
			for (k = 0; k < c->n_in_ports; k++)
				if (c->in_ports[k].port == m->destination_port->value)
					have = &c->in_ports[k];
			/* issue 12: a port's TLS chain (transport_protocol "tls") and
			 * its raw_buffer chain are one port here: TLS-only is STRICT,
			 * both is PERMISSIVE (told apart by the first byte, proxy.c) */
			if (is_tls_chain(fc)) {
				rc = inbound_tls(c, l->name, fc, &tls, err, cap);
				if (rc < 0)
					return rc;
				if (have) {
					if (!have->tls)
						have->tls = tls;
					continue;
				}
			} else if (have) {
				have->plain_ok = 1;
				continue;
			}
			memset(&p, 0, sizeof(p));
			p.port = m->destination_port->value;
			rc = chain_port(c, l->name, fc, &p, err, cap);
			if (rc < 0)
				return rc;
			p.route_name = NULL; /* virtualInbound's chains carry their route configs inline */
			p.tls = tls;
			p.plain_ok = !tls;
			rc = port_add(&c->in_ports, &c->n_in_ports, &p);
			if (rc < 0)
				return rc;
		}
		return 0;
	}
	if (!sa || sa->port_specifier_case != ENVOY__CONFIG__CORE__V3__SOCKET_ADDRESS__PORT_SPECIFIER_PORT_VALUE) {
		snprintf(err, cap, "listener %s: no socket address with a port", l->name);
		return -EINVAL;
	}
	memset(&p, 0, sizeof(p));
	p.port = sa->port_value;
	if (binds_itself(l)) {
		/* served through its own socket; an outbound one is also listed
		 * with the ports virtualOutbound reaches (as Envoy's original
		 * destination lookup finds any listener by address) */
		rc = compile_bound(c, l, sa, err, cap);
		/* (a gateway has no virtualOutbound to look it up by: issue 13) */
		if (rc < 0 || l->traffic_direction == ENVOY__CONFIG__CORE__V3__TRAFFIC_DIRECTION__INBOUND || c->e->o.router ||
		    (inet_pton(AF_INET, sa->address, &p.vip) != 1 && strcmp(sa->address, "::")))
			return rc;
	}
	if (inet_pton(AF_INET, sa->address, &p.vip) != 1 && strcmp(sa->address, "::")) {
		snprintf(err, cap, "listener %s: address %s is not numeric", l->name, sa->address);
		return -EINVAL;
	}
	{
		const px_tcpf *tcpf;

		rc = chain_decode_tcp(c, l->name, l->n_filter_chains ? l->filter_chains[0] : NULL, &hcm, &tcp, &tcpf,
				      err, cap);
		if (rc < 0)
			return rc;
		tcpp_conf_init(&p.tcpp, tcpf);
		px_port_hcm(&p, hcm);
		rc = port_alog(c, l->name, hcm, tcpf, &p, err, cap);
		if (rc < 0)
			return rc;
	}
	rc = port_trace(c, l->name, hcm, &p, err, cap);
	if (rc < 0)
		return rc;
	/* issue 14: chain 0's istio.stats, as chain_port gives the others */
	rc = chain_stats(c, l->name, l->n_filter_chains ? l->filter_chains[0] : NULL, hcm, &p.istio, err, cap);
	if (rc < 0)
		return rc;
	p.tcpp.istio = p.istio;
	if (hcm) {
		p.accept_http_10 = hcm_http10(hcm);
		if (hcm->route_specifier_case ==
		    ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_CONNECTION_MANAGER__ROUTE_SPECIFIER_RDS)
			p.route_name = hcm->rds->route_config_name;
	} else {
		p.tcp = 1;
		p.tcp_cluster = tcp;
	}
	if (l->n_filter_chains > 1 || l->n_listener_filters) {
		/* a captured connection to it selects among its chains
		 * (sniffed ports, tls: routes); chain 0 above serves requests
		 * sent straight to the outbound port */
		p.sel = calloc(1, sizeof(*p.sel));
		if (!p.sel)
			return -ENOMEM;
		rc = sel_init(c, l, sa->port_value, p.sel, err, cap);
		if (rc == 0)
			rc = port_add(&c->out_ports, &c->n_out_ports, &p);
		if (rc < 0) {
			sel_cleanup(p.sel);
			free(p.sel);
		}
		return rc;
	}
	return port_add(&c->out_ports, &c->n_out_ports, &p);
}

/* Phase one: everything that can be refused. */
static int config_compile(struct engine *e, struct px_snapshot *s, struct px_config **out, char *err, size_t cap)
{
	const struct px_resource_set *ls = &s->sets[XDS_LISTENER], *rs = &s->sets[XDS_ROUTE],
				     *cs = &s->sets[XDS_CLUSTER];
	struct px_config *c;
	size_t i;
	int rc = 0;

	*out = NULL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->refs = 1;
	c->e = e;
	c->snap = px_snapshot_ref(s);
	{
		const Envoy__Config__Route__V3__RouteConfiguration **rcs = calloc(rs->n + 1, sizeof(*rcs));

		if (!rcs) {
			rc = -ENOMEM;
			goto out;
		}
		for (i = 0; i < rs->n; i++)
			if (!(rcs[i] = (const void *)px_resource_msg(rs->v[i]))) {
				free(rcs);
				rc = -ENOMEM;
				goto out;
			}
		rc = router_new(rcs, rs->n, &c->router, err, cap);
		free(rcs);
		if (rc < 0)
			goto out;
	}
	for (i = 0; i < ls->n; i++) {
		const Envoy__Config__Listener__V3__Listener *l = (const void *)px_resource_msg(ls->v[i]);

		rc = l ? compile_listener(c, l, err, cap) : -ENOMEM;
		if (rc < 0)
			goto out;
	}
	for (i = 0; i < c->n_out_ports; i++)
		if (c->out_ports[i].route_name)
			c->out_ports[i].rcfg = router_config(c->router, c->out_ports[i].route_name,
							     strlen(c->out_ports[i].route_name));
	for (i = 0; i < c->n_bound; i++) {
		struct px_bound *b = &c->bound[i];

		if (b->port.route_name)
			b->port.rcfg = router_config(c->router, b->port.route_name, strlen(b->port.route_name));
		sel_resolve(c, &b->sel);
	}
	for (i = 0; i < c->n_out_ports; i++)
		if (c->out_ports[i].sel)
			sel_resolve(c, c->out_ports[i].sel);
	sel_resolve(c, &c->in_sel);
	c->new_up = calloc(cs->n + 1, sizeof(*c->new_up));
	c->new_hs = calloc(cs->n + 1, sizeof(*c->new_hs));
	c->new_tls = calloc(cs->n + 1, sizeof(*c->new_tls));
	if (!c->new_up || !c->new_hs || !c->new_tls) {
		rc = -ENOMEM;
		goto out;
	}
	for (i = 0; i < cs->n; i++) {
		const Envoy__Config__Cluster__V3__Cluster *m;
		const Envoy__Config__Endpoint__V3__ClusterLoadAssignment *cla;
		struct px_cluster *old = ctab_find(e->ctab, e->n_ctab, cs->v[i]->name);
		char why[256] = "";

		if (cluster_unchanged(old, s, cs->v[i]))
			continue; /* new_up/new_hs/new_tls[i] NULL: the cluster keeps its own */
		m = (const void *)px_resource_msg(cs->v[i]);
		if (!m) {
			rc = -ENOMEM;
			goto out;
		}
		cla = m->load_assignment;
		rc = up_cluster_new(m, why, sizeof(why), &c->new_up[i]);
		if (rc < 0) {
			snprintf(err, cap, "cluster %s: %s", m->name, why);
			goto out;
		}
		/* issue 12: its UpstreamTlsContext (mtls.c) */
		rc = px_mtls_cluster(m, &c->new_tls[i], why, sizeof(why));
		if (rc < 0) {
			snprintf(err, cap, "cluster %s: transport socket: %s", m->name, why);
			goto out;
		}
		if (c->new_up[i]->type == UP_EDS) {
			const struct px_resource *r = px_snapshot_find(s, XDS_ENDPOINT, c->new_up[i]->eds_name);

			cla = NULL;
			if (r && !(cla = (const void *)px_resource_msg(r))) {
				rc = -ENOMEM;
				goto out;
			}
		}
		rc = up_hostset_new(c->new_up[i], cla, old ? old->hs : NULL, px_rand(e), why, sizeof(why),
				    &c->new_hs[i]);
		if (rc < 0) {
			snprintf(err, cap, "cluster %s: endpoints: %s", m->name, why);
			goto out;
		}
		up_hostset_stamp(c->new_hs[i], ev_now(e->loop));
	}
	*out = c;
	c = NULL;
out:
	if (c)
		config_free(c);
	return rc;
}

static void od_tick(struct ev_loop *loop, struct ev_timer *t)
{
	struct px_cluster *cl = t->data;

	if (!cl->hs || !cl->up || !cl->up->od.enabled)
		return;
	if (outlier_tick(cl->hs, ev_now(loop)) < 0)
		log_warn("meshproxy", "cluster %s: outlier sweep: out of memory", cl->name);
	ev_timer_arm(loop, t, cl->up->od.interval_ms ? cl->up->od.interval_ms : OUTLIER_DEFAULT_INTERVAL_MS);
}

/* Phase two: the cluster object, reused by name, takes the compiled Cluster
 * and host set; its hosts (pools, counters) carry over by address. */
static int cluster_update(struct engine *e, struct px_cluster *cl, struct up_cluster *up, struct up_hostset *hs)
{
	struct px_host **nv;
	size_t i, k, n = 0;
	int rc = 0;

	cl->e = e;
	cl->type = up->original_dst ? PX_CL_ORIGINAL_DST
		   : up->type == UP_EDS ? PX_CL_EDS
		   : up->type == UP_STATIC ? PX_CL_STATIC
					   : PX_CL_OTHER;
	cl->connect_timeout_ms = up->connect_timeout_ms ? up->connect_timeout_ms : 5000;
	cl->idle_timeout_ms = up->idle_timeout_ms;
	cl->max_connection_duration_ms = up->max_connection_duration_ms;
	cl->tcp_keepalive = up->tcp_keepalive;
	cl->keepalive_probes = up->keepalive_probes;
	cl->keepalive_time_s = up->keepalive_time_s;
	cl->keepalive_interval_s = up->keepalive_interval_s;
	cl->max_requests_per_connection = up->max_requests_per_connection;
	cl->max_connections = (uint32_t)cb_limit(&up->cb, CB_PRIO_DEFAULT, CB_CONNECTIONS);
	cl->max_pending = (uint32_t)cb_limit(&up->cb, CB_PRIO_DEFAULT, CB_PENDING);
	cl->max_requests = (uint32_t)cb_limit(&up->cb, CB_PRIO_DEFAULT, CB_REQUESTS);
	cl->max_retries = (uint32_t)cb_limit(&up->cb, CB_PRIO_DEFAULT, CB_RETRIES);
	if (cl->type == PX_CL_ORIGINAL_DST) {
		/* hosts are made per destination (px_cluster_dst_host) */
		up_hostset_free(cl->hs);
		up_cluster_unref(cl->up);
		cl->hs = hs;
		cl->up = up;
		return 0;
	}
	nv = calloc(cl->n_hosts + 1, sizeof(*nv));
	if (!nv) {
		up_hostset_free(hs);
		up_cluster_unref(up);
		return -ENOMEM;
	}
	/* the hosts made so far (px_cluster_host_of) whose endpoint stays;
	 * the others are made when picked */
	for (i = 0; i < hs->n && cl->n_hosts; i++) {
		struct px_host *h = NULL;

		for (k = 0; k < cl->n_hosts; k++)
			if (cl->hosts[k] && !strcmp(cl->hosts[k]->name, hs->hosts[i]->key)) {
				h = cl->hosts[k];
				cl->hosts[k] = NULL; /* moved */
				break;
			}
		if (!h)
			continue;
		h->up = hs->hosts[i];
		nv[n++] = h;
	}
	for (k = 0; k < cl->n_hosts; k++)
		if (cl->hosts[k]) {
			cl->hosts[k]->removed = 1;
			cl->hosts[k]->up = NULL;
			px_pool_close_idle(cl->hosts[k]);
			px_host_unref(cl->hosts[k]);
		}
	free(cl->hosts);
	cl->hosts = nv;
	cl->cap_hosts = k + 1; /* nv's size: the old count + 1 */
	cl->n_hosts = n;
	up_hostset_free(cl->hs);
	up_cluster_unref(cl->up);
	cl->hs = hs;
	cl->up = up;
	if (hmap_build(cl) < 0)
		rc = -ENOMEM;
	if (up->od.enabled) {
		if (!cluster_timer(&cl->od_timer)) {
			log_warn("meshproxy", "cluster %s: out of memory arming outlier detection", cl->name);
			rc = -ENOMEM;
		} else if (!ev_timer_armed(cl->od_timer)) {
			ev_timer_init(cl->od_timer, od_tick, cl);
			ev_timer_arm(e->loop, cl->od_timer, up->od.interval_ms ? up->od.interval_ms : OUTLIER_DEFAULT_INTERVAL_MS);
		}
	} else if (cl->od_timer) {
		ev_timer_cancel(e->loop, cl->od_timer);
	}
	return rc;
}

int px_cluster_set_hosts(struct px_cluster *cl, struct up_hostset *hs)
{
	if (!cl->e || !cl->up) {
		up_hostset_free(hs);
		return -EINVAL;
	}
	return cluster_update(cl->e, cl, up_cluster_ref(cl->up), hs);
}

static int config_link_clusters(struct engine *e, struct px_config *c)
{
	const struct px_resource_set *cs = &c->snap->sets[XDS_CLUSTER];
	struct px_cluster **nt;
	size_t i;
	int rc = 0;

	c->clusters = calloc(cs->n + 1, sizeof(*c->clusters));
	nt = calloc(cs->n + 1, sizeof(*nt));
	if (!c->clusters || !nt) {
		free(nt);
		return -ENOMEM;
	}
	for (i = 0; i < cs->n; i++) {
		const char *name = cs->v[i]->name; /* the Cluster's name (snapshot.h) */
		struct px_cluster *cl = ctab_find(e->ctab, e->n_ctab, name);
		struct up_cluster *up = c->new_up[i];
		struct up_hostset *hs = c->new_hs[i];

		if (cl) {
			cl->refs++;
		} else {
			cl = calloc(1, sizeof(*cl));
			if (!cl || !(cl->name = strdup(name))) {
				free(cl);
				rc = -ENOMEM;
				break;
			}
			cl->refs = 1;
		}
		cl->in_config = 1;
		c->new_up[i] = NULL;
		c->new_hs[i] = NULL;
		if (up) {
			/* the TLS policy: connections made with the old one keep their context */
			px_mtls_free(cl->tls);
			cl->tls = c->new_tls[i];
			c->new_tls[i] = NULL;
			/* issue 13: a DNS cluster's names are resolved off the loop
			 * (dnscl.c): it gets the set of the addresses known so far */
			if (up->type == UP_STRICT_DNS || up->type == UP_LOGICAL_DNS)
				hs = dnscl_attach(e, cl, cs->v[i], up, hs);
			else
				dnscl_detach(cl);
			if (cluster_update(e, cl, up, hs) < 0) {
				log_warn("meshproxy", "cluster %s: out of memory updating hosts", cl->name);
				cluster_set_src(cl, c->snap, NULL);
			} else {
				cluster_set_src(cl, c->snap, cs->v[i]);
			}
		}
		/* else unchanged (config_compile): it keeps its compiled state, TLS
		 * policy included (made from the Cluster resource alone; Envoy does
		 * not rebuild an unchanged cluster either) */
		nt[c->n_clusters] = cl;
		c->clusters[c->n_clusters++] = cl;
		cl->refs++; /* the config's reference (nt holds the table's) */
	}
	qsort(c->clusters, c->n_clusters, sizeof(*c->clusters), cmp_cluster);
	qsort(nt, c->n_clusters, sizeof(*nt), cmp_cluster);
	/* clusters that left: out of the table, their idle pools closed */
	for (i = 0; i < e->n_ctab; i++) {
		struct px_cluster *cl = e->ctab[i];

		if (!ctab_find(nt, c->n_clusters, cl->name)) {
			cl->in_config = 0;
			cluster_drop_hosts(cl);
		}
		cluster_unref(cl);
	}
	free(e->ctab);
	e->ctab = nt;
	e->n_ctab = c->n_clusters;
	return rc;
}

/* --- listeners */

const char *px_listener_name(const struct px_listener *l)
{
	if (l->name)
		return l->name;
	return l->inbound ? "virtualInbound" : "virtualOutbound";
}

/* Listens on addr and fills l (not yet watched: listener_watch()).
 * Listeners from the configuration take SO_REUSEPORT as Envoy's do
 * (enable_reuse_port defaults to true on Linux): captureMode NONE gives a
 * workload's port both an inbound listener on 0.0.0.0:PORT and an outbound
 * one on 127.0.0.1:PORT, which Linux lets coexist only so.  The
 * --outbound-addr/--inbound-addr sockets stay exclusive, so that a second
 * proxy started on the same ports fails loudly instead of sharing them. */
static int listener_open(struct engine *e, struct px_listener *l, const char *addr, int flags)
{
	socklen_t len = sizeof(l->local);
	int fd;

	fd = net_listen(addr, 1024, flags);
	if (fd < 0)
		return fd;
	getsockname(fd, (struct sockaddr *)&l->local, &len);
	l->e = e;
	l->fd = fd;
	l->port = net_local_port(fd);
	ev_io_init(&l->io, fd, px_accept_cb, l);
	ev_timer_init(&l->pause, px_accept_resume, l);
	return 0;
}

static int listener_watch(struct engine *e, struct px_listener *l)
{
	int rc = ev_io_start(e->loop, &l->io, EV_READ);

	if (rc < 0) {
		close(l->fd);
		l->fd = -1;
	}
	return rc;
}

static int listener_bind(struct engine *e, struct px_listener *l, const char *addr, int inbound, char *err,
			 size_t cap)
{
	int rc;

	if (l->fd >= 0)
		return 0;
	l->inbound = inbound;
	rc = listener_open(e, l, addr, 0);
	if (rc < 0) {
		snprintf(err, cap, "%s listener %s: %s", inbound ? "virtualInbound" : "virtualOutbound", addr,
			 strerror(-rc));
		return rc;
	}
	rc = listener_watch(e, l);
	if (rc < 0) {
		snprintf(err, cap, "listener %s: %s", addr, strerror(-rc));
		return rc;
	}
	log_info("meshproxy", "%s listening on %s (port %d)", inbound ? "virtualInbound" : "virtualOutbound", addr,
		 l->port);
	return 0;
}

/* Listener.transparent on a virtual listener's socket (set or cleared
 * as the config says; nothing when it already is).  0, or negative errno
 * with the reason in err: without CAP_NET_ADMIN the kernel refuses
 * IP_TRANSPARENT, and the config is rejected rather than served without
 * the connections TPROXY would divert to it. */
static int listener_transparent(struct px_listener *l, int on, char *err, size_t cap)
{
	int rc;

	if (l->fd < 0 || l->transparent == on)
		return 0;
	rc = net_set_transparent(l->fd, on);
	if (rc < 0) {
		snprintf(err, cap, "%s: transparent: setsockopt IP_TRANSPARENT: %s%s", px_listener_name(l),
			 strerror(-rc), rc == -EPERM ? " (TPROXY interception needs CAP_NET_ADMIN for meshproxy)" : "");
		log_error("meshproxy", "%s", err);
		return rc;
	}
	l->transparent = on;
	log_info("meshproxy", "%s: transparent %s", px_listener_name(l), on ? "on" : "off");
	return 0;
}

static void listener_close(struct engine *e, struct px_listener *l)
{
	if (l->fd < 0)
		return;
	ev_timer_cancel(e->loop, &l->pause);
	ev_io_stop(e->loop, &l->io);
	close(l->fd);
	l->fd = -1;
	l->transparent = 0;
}

void px_listener_unref(struct px_listener *l)
{
	if (!l || l->embedded || --l->refs)
		return;
	listener_close(l->e, l);
	free(l->name);
	free(l);
}

/* The open socket for key.  One closed (its watch failed, or a drain
 * closed it) is not reused: outside a drain the address is bound again. */
static struct px_listener *bl_find(struct engine *e, const char *key)
{
	size_t i;

	for (i = 0; i < e->n_bl; i++)
		if (!strcmp(e->bl[i]->key, key) && (e->bl[i]->fd >= 0 || e->draining))
			return e->bl[i];
	return NULL;
}

/* Phase one, second half: a socket for every bound listener of c, the one
 * already open for the same address, else a new one (listening, so the
 * kernel queues connections, but not watched before the swap).  On a
 * failure the new ones are closed again and nothing changed: the NACK
 * carries Envoy's words. */
static int bound_open(struct engine *e, struct px_config *c, char *err, size_t cap)
{
	size_t i;
	int rc = 0;

	for (i = 0; i < c->n_bound; i++) {
		struct px_bound *b = &c->bound[i];
		struct px_listener *l = bl_find(e, b->key);

		if (l) {
			b->l = l;
			continue;
		}
		l = calloc(1, sizeof(*l));
		if (!l) {
			rc = -ENOMEM;
			break;
		}
		l->refs = 1;
		l->fd = -1;
		snprintf(l->key, sizeof(l->key), "%s", b->key);
		rc = listener_open(e, l, b->key, NET_REUSEPORT);
		if (rc < 0) {
			snprintf(err, cap, "Error adding/updating listener(s) %s: cannot bind '%s': %s", b->name, b->key,
				 strerror(-rc));
			free(l);
			break;
		}
		b->l = l;
		b->fresh = 1;
	}
	if (rc < 0)
		for (i = 0; i < c->n_bound; i++)
			if (c->bound[i].fresh) {
				px_listener_unref(c->bound[i].l);
				c->bound[i].l = NULL;
				c->bound[i].fresh = 0;
			}
	return rc;
}

/* A refused config's fresh sockets (config_free() does not own them). */
static void bound_abandon(struct px_config *c)
{
	size_t i;

	for (i = 0; c && i < c->n_bound; i++) {
		if (c->bound[i].fresh)
			px_listener_unref(c->bound[i].l);
		c->bound[i].l = NULL;
		c->bound[i].fresh = 0;
	}
}

/* A listener that left the configuration: it stops accepting now, its
 * idle connections close, in-flight requests finish (Envoy drains them). */
static void listener_retire(struct engine *e, struct px_listener *l)
{
	log_info("meshproxy", "listener %s (%s) removed", px_listener_name(l), l->key);
	listener_close(e, l);
	l->conf = NULL;
	px_dconn_drain_listener(e, l);
	px_listener_unref(l);
}

/* Phase two: c is current; its sockets are watched, the ones it no
 * longer lists retired.  Cannot fail but for memory (then the old
 * sockets stay open, unwatched ones are logged). */
static void bound_commit(struct engine *e, struct px_config *c)
{
	struct px_listener **nv = calloc(c->n_bound + 1, sizeof(*nv));
	size_t i, k;

	if (!nv) {
		log_error("meshproxy", "listeners: out of memory, keeping the previous set");
		bound_abandon(c);
		for (i = 0; i < e->n_bl; i++)
			e->bl[i]->conf = NULL;
		return;
	}
	for (i = 0; i < c->n_bound; i++) {
		struct px_bound *b = &c->bound[i];
		struct px_listener *l = b->l;
		char *name = strdup(b->name);

		if (name) {
			free(l->name);
			l->name = name;
		}
		l->inbound = b->inbound;
		l->conf = b;
		if (b->fresh) {
			b->fresh = 0;
			if (listener_watch(e, l) < 0)
				log_error("meshproxy", "listener %s (%s): cannot watch the socket", b->name, b->key);
			else
				log_info("meshproxy", "listener %s listening on %s (port %d)", b->name, b->key, l->port);
		} else {
			l->refs++;
		}
		nv[i] = l;
	}
	for (i = 0; i < e->n_bl; i++) {
		for (k = 0; k < c->n_bound && nv[k] != e->bl[i]; k++)
			;
		if (k == c->n_bound)
			listener_retire(e, e->bl[i]);
		else
			px_listener_unref(e->bl[i]); /* nv holds its own */
	}
	free(e->bl);
	e->bl = nv;
	e->n_bl = c->n_bound;
}

/* --- engine */

/* --- destinations that are meshproxy itself: the loop guard
 *
 * A request whose destination is one of meshproxy's own listening sockets
 * would come straight back in and be proxied again, once per connection,
 * until the fds run out (a Host of 127.0.0.1:15001 through PassthroughCluster,
 * a Sidecar ingress whose defaultEndpoint is its own bind address), or
 * would reach the admin port from the network.  Istio closes the 15001 and
 * 15006 cases with its blackhole chains; meshproxy's ports can differ, so
 * every upstream connection is checked against the sockets themselves. */

/* sa as a px_addr (IPv4-mapped IPv6 folded to IPv4); -EAFNOSUPPORT otherwise. */
static int addr_from_sa(const struct sockaddr *sa, socklen_t len, struct px_addr *out)
{
	memset(out, 0, sizeof(*out));
	if (sa->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;

		out->family = AF_INET;
		out->port = ntohs(in->sin_port);
		memcpy(out->a, &in->sin_addr, 4);
		return 0;
	}
	if (sa->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;

		out->port = ntohs(in6->sin6_port);
		if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
			out->family = AF_INET;
			memcpy(out->a, in6->sin6_addr.s6_addr + 12, 4);
		} else {
			out->family = AF_INET6;
			memcpy(out->a, in6->sin6_addr.s6_addr, 16);
		}
		return 0;
	}
	return -EAFNOSUPPORT;
}

static int addr_unspecified(const struct px_addr *a)
{
	static const unsigned char zero[16];

	return !memcmp(a->a, zero, a->family == AF_INET ? 4 : 16);
}

static int addr_eq(const struct px_addr *x, const struct px_addr *y)
{
	return x->family == y->family && !memcmp(x->a, y->a, x->family == AF_INET ? 4 : 16);
}

/* A destination that a connect() delivers to this host. */
static int addr_is_local(const struct engine *e, const struct px_addr *a)
{
	static const unsigned char v6lo[16] = { [15] = 1 };
	size_t i;

	if (addr_unspecified(a))
		return 1; /* connect() to 0.0.0.0 / :: reaches the local host */
	if (a->family == AF_INET && a->a[0] == 127)
		return 1;
	if (a->family == AF_INET6 && !memcmp(a->a, v6lo, 16))
		return 1;
	for (i = 0; i < e->n_ifaddrs; i++)
		if (addr_eq(&e->ifaddrs[i], a))
			return 1;
	return 0;
}

/* Does a connection to d reach the socket bound to l? */
static int self_match(const struct engine *e, const struct px_addr *l, const struct px_addr *d)
{
	if (l->port != d->port)
		return 0;
	if (l->family == AF_INET && d->family != AF_INET)
		return 0; /* an IPv4 socket takes no IPv6 connection (an IPv6 one is dual-stack) */
	if (addr_unspecified(l))
		return addr_is_local(e, d); /* a wildcard socket takes every local destination */
	return addr_eq(l, d) || addr_unspecified(d);
}

static int listener_is(const struct engine *e, const struct px_listener *l, const struct px_addr *d)
{
	struct px_addr la;

	/* the port first: on the data path, most checks end here */
	if (l->fd < 0 || l->port != (int)d->port ||
	    addr_from_sa((const struct sockaddr *)&l->local, sizeof(l->local), &la) < 0)
		return 0;
	return self_match(e, &la, d);
}

/* skip_inbound: an inbound listener is no loop for the caller (px_engine_is_loop()) */
static int engine_self(const struct engine *e, const struct sockaddr *sa, socklen_t len, int skip_inbound)
{
	struct px_addr d;
	size_t i;

	if (addr_from_sa(sa, len, &d) < 0)
		return 0;
	if (listener_is(e, &e->lout, &d) || (!skip_inbound && listener_is(e, &e->lin, &d)))
		return 1;
	for (i = 0; i < e->n_bl; i++)
		if (!(skip_inbound && e->bl[i]->inbound) && listener_is(e, e->bl[i], &d))
			return 1;
	for (i = 0; i < e->n_self; i++)
		if (self_match(e, &e->self[i], &d))
			return 1;
	return 0;
}

int px_engine_is_self(const struct engine *e, const struct sockaddr *sa, socklen_t len)
{
	return engine_self(e, sa, len, 0);
}

int px_engine_is_loop(const struct engine *e, const struct sockaddr *sa, socklen_t len, int from_inbound)
{
	return engine_self(e, sa, len, !from_inbound);
}

int px_original_src(struct engine *e, const struct px_listener *l, const char *peer_ip, int fd, int family)
{
	struct sockaddr_storage ss;
	int rc;

	if (!e->cur || !e->cur->in_osrc || l != &e->lin || !peer_ip || !*peer_ip)
		return 0;
	memset(&ss, 0, sizeof(ss));
	if (inet_pton(AF_INET, peer_ip, &((struct sockaddr_in *)&ss)->sin_addr) == 1)
		ss.ss_family = AF_INET;
	else if (inet_pton(AF_INET6, peer_ip, &((struct sockaddr_in6 *)&ss)->sin6_addr) == 1)
		ss.ss_family = AF_INET6;
	else
		return 0;
	rc = net_original_src(fd, family, &ss, e->cur->in_osrc_mark);
	if (rc == -EAFNOSUPPORT)
		return 0; /* a client of the other family: the default source (Envoy would fail the bind) */
	if (rc < 0) {
		if (!e->osrc_logged) {
			e->osrc_logged = 1;
			log_error("meshproxy", "original_src: the upstream connection cannot leave from the client's "
					       "address %s: %s%s", peer_ip, strerror(-rc),
				  rc == -EPERM ? " (IP_TRANSPARENT and SO_MARK need CAP_NET_ADMIN for meshproxy)" : "");
		}
		return rc;
	}
	return 1;
}

/* issue 15: Istio's upstream_bind_config of InboundPassthroughClusterIpv4
 * / Ipv6 (InboundPassthroughBindIpv4/Ipv6, 127.0.0.6 and ::6). */
void px_bind_inbound_passthrough(int fd, const struct sockaddr *dst)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int family = dst->sa_family;

	/* a pod's captured inbound connections have the pod's address as
	 * their original destination, never a loopback one: that comes from
	 * capture set up on loopback (test_mesh_security), whose rules know
	 * the proxy by its default source */
	if ((family == AF_INET &&
	     (ntohl(((const struct sockaddr_in *)dst)->sin_addr.s_addr) >> 24) == 127) ||
	    (family == AF_INET6 && IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)dst)->sin6_addr)))
		return;
	memset(&ss, 0, sizeof(ss));
	if (family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&ss;

		sin->sin_family = AF_INET;
		sin->sin_addr.s_addr = htonl(0x7f000006);
		len = sizeof(*sin);
	} else if (family == AF_INET6) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;

		sin6->sin6_family = AF_INET6;
		sin6->sin6_addr.s6_addr[15] = 6;
		len = sizeof(*sin6);
	} else {
		return;
	}
	/* ::6 exists only where capture added it (meshproxy iptables, as
	 * istio-iptables does); without it the connection leaves from the
	 * pod's address, as it did before */
	if (bind(fd, (struct sockaddr *)&ss, len) < 0)
		log_debug("meshproxy", "inbound passthrough: bind %s: %s", family == AF_INET ? "127.0.0.6" : "::6",
			  strerror(errno));
}

/* This host's interface addresses, read again (at start and on every
 * apply: an address added since then is then known).  A failure keeps the
 * previous list: loopback and the listeners' own addresses are matched
 * without it. */
static void self_read_ifaddrs(struct engine *e)
{
	struct ifaddrs *ifa = NULL, *i;
	struct px_addr *v;
	size_t n = 0, k = 0;

	if (getifaddrs(&ifa) < 0)
		return;
	for (i = ifa; i; i = i->ifa_next)
		n += i->ifa_addr && (i->ifa_addr->sa_family == AF_INET || i->ifa_addr->sa_family == AF_INET6);
	v = calloc(n ? n : 1, sizeof(*v));
	if (!v)
		goto out;
	for (i = ifa; i; i = i->ifa_next) {
		if (!i->ifa_addr)
			continue;
		if (addr_from_sa(i->ifa_addr, i->ifa_addr->sa_family == AF_INET ? sizeof(struct sockaddr_in)
										: sizeof(struct sockaddr_in6),
				 &v[k]) == 0)
			k++;
	}
	free(e->ifaddrs);
	e->ifaddrs = v;
	e->n_ifaddrs = k;
out:
	freeifaddrs(ifa);
}

int engine_self_add(struct engine *e, const char *addr, int port)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	struct px_addr a, *nv;
	int rc;

	if (port <= 0 || port > 65535)
		return -EINVAL;
	rc = net_parse_addr(addr, &ss, &len);
	if (rc < 0)
		return rc;
	if (addr_from_sa((const struct sockaddr *)&ss, len, &a) < 0)
		return -EINVAL;
	a.port = (uint16_t)port;
	nv = realloc(e->self, (e->n_self + 1) * sizeof(*nv));
	if (!nv)
		return -ENOMEM;
	e->self = nv;
	e->self[e->n_self++] = a;
	return 0;
}

/* tracing.h's resolver: the collector cluster's first endpoint in the
 * current config (Envoy sends to the cluster; meshd's zipkin cluster has
 * one endpoint in practice). */
static int engine_trace_resolve(void *ctx, const char *cluster, struct sockaddr_storage *ss, socklen_t *len)
{
	struct engine *e = ctx;
	struct px_cluster *cl = e->cur ? px_config_cluster(e->cur, cluster) : NULL;
	const struct up_host *h;

	/* the endpoints' addresses (engine hosts are made only when the LB picks one) */
	if (!cl || !cl->hs || !cl->hs->n)
		return -ENOENT;
	h = cl->hs->hosts[0];
	memcpy(ss, &h->addr, h->addr_len);
	*len = h->addr_len;
	return 0;
}

int engine_new(struct ev_loop *loop, const struct engine_opts *o, struct engine **out)
{
	struct engine *e;
	struct timespec ts;
	int rc = 0;

	*out = NULL;
	e = calloc(1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	e->loop = loop;
	e->o = *o;
	if (!e->o.drain_ms)
		e->o.drain_ms = 5000;
	if (!e->o.idle_ms)
		e->o.idle_ms = 3600000; /* Envoy's downstream idle_timeout default: 1 h */
	if (!e->o.pool_idle_ms)
		e->o.pool_idle_ms = 60000;
	if (!e->o.stream_idle_ms)
		e->o.stream_idle_ms = PX_STREAM_IDLE_DEFAULT_MS;
	else if (e->o.stream_idle_ms == ENGINE_OFF)
		e->o.stream_idle_ms = 0;
	e->lout.fd = e->lin.fd = -1;
	e->lout.embedded = e->lin.embedded = 1;
	e->lout.e = e->lin.e = e;
	e->lin.inbound = 1;
	clock_gettime(CLOCK_REALTIME, &ts);
	e->rng = ((uint64_t)ts.tv_nsec << 20) ^ (uint64_t)ts.tv_sec ^ ((uint64_t)getpid() << 40) ^ 0x9E3779B97F4A7C15ULL;
	e->lbrng.s = e->rng ^ 0x5851F42D4C957F2DULL;
	ev_timer_init(&e->trim_timer, px_trim, e);
	self_read_ifaddrs(e);
	rc = dns_resolver_new(loop, 0, &e->dns); /* issue 13: DNS clusters */
	if (rc == 0)
		rc = authz_tab_new(&e->authz_tab);
	/* issue 14: the span exporter; idle until a config asks for tracing */
	if (rc == 0 && !(e->tracer = tracer_new(loop, o->node_id, o->labels, engine_trace_resolve, e)))
		rc = -ENOMEM;
	if (rc == 0 && !(e->alog_sinks = px_alog_sinks_new(loop)))
		rc = -ENOMEM;
	if (rc == 0 && o->access_log && *o->access_log) {
		/* one writer per file: a config naming the same file (or stdout)
		 * shares this sink, lines never cut into each other */
		char why[256];

		rc = px_alog_sinks_get(e->alog_sinks, o->access_log, &e->alog, why, sizeof(why));
	}
	if (rc == 0 && o->node_id)
		rc = istio_stats_new(o->node_id, o->labels, o->service_account, 0, &e->istio);
	if (rc == 0 && e->istio)
		rc = istio_stats_set_workload(e->istio, o->workload_name);
	if (rc < 0) {
		px_alog_sinks_free(e->alog_sinks); /* e->alog with it */
		tracer_free(e->tracer);
		authz_tab_free(e->authz_tab);
		dns_resolver_free(e->dns);
		free(e->ifaddrs);
		free(e);
		return rc;
	}
	*out = e;
	return 0;
}

void engine_free(struct engine *e)
{
	size_t i;

	if (!e)
		return;
	listener_close(e, &e->lout);
	listener_close(e, &e->lin);
	for (i = 0; i < e->n_bl; i++)
		listener_close(e, e->bl[i]);
	px_h2_free_all(e);       /* HTTP/2 sessions first: their stream pipes end in dconns */
	px_dconn_free_all(e);
	for (i = 0; i < e->n_bl; i++)
		px_listener_unref(e->bl[i]);
	free(e->bl);
	e->bl = NULL;
	e->n_bl = 0;
	ev_timer_cancel(e->loop, &e->drain_timer);
	ev_timer_cancel(e->loop, &e->trim_timer);
	for (i = 0; i < e->n_ctab; i++) {
		cluster_drop_hosts(e->ctab[i]);
		cluster_unref(e->ctab[i]);
	}
	free(e->ctab);
	px_config_unref(e->cur);
	/* after the streams, the clusters and the last config (they cancelled
	 * their lookups); exiting, the one place a lookup still on glibc's
	 * thread is waited for */
	dns_resolver_free(e->dns);
	px_alog_sinks_free(e->alog_sinks); /* after the last config: it points at them; e->alog with them */
	istio_stats_free(e->istio);
	tracer_free(e->tracer); /* after the connections: their streams end spans */
	authz_tab_free(e->authz_tab);
	free(e->self);
	free(e->ifaddrs);
	free(e);
}

int engine_apply(struct engine *e, struct px_snapshot *candidate, char *err, size_t cap)
{
	struct px_config *c = NULL;
	int rc;

	if (cap)
		err[0] = 0;
	rc = config_compile(e, candidate, &c, err, cap);
	if (rc < 0)
		goto out;
	self_read_ifaddrs(e);
	if (e->o.router) {
		/* issue 13: a gateway has no capture (Istio's router: every
		 * listener binds its own address); virtual listeners sent to it
		 * are not served */
		c->has_outbound = c->has_inbound = 0;
	}
	if (c->has_outbound && e->o.outbound_addr && *e->o.outbound_addr) {
		rc = listener_bind(e, &e->lout, e->o.outbound_addr, 0, err, cap);
		if (rc < 0)
			goto out;
	}
	if (c->has_inbound && e->o.inbound_addr && *e->o.inbound_addr) {
		rc = listener_bind(e, &e->lin, e->o.inbound_addr, 1, err, cap);
		if (rc < 0)
			goto out;
	}
	rc = listener_transparent(&e->lout, c->has_outbound && c->out_transparent, err, cap);
	if (rc == 0)
		rc = listener_transparent(&e->lin, c->has_inbound && c->in_transparent, err, cap);
	if (rc < 0)
		goto out;
	rc = bound_open(e, c, err, cap);
	if (rc < 0)
		goto out;
	rc = config_link_clusters(e, c);
	if (rc < 0) {
		snprintf(err, cap, "out of memory");
		goto out;
	}
	/* virtualOutbound/virtualInbound gone from the config (captureMode
	 * NONE): their sockets close as any removed listener's */
	if (!c->has_outbound && e->lout.fd >= 0) {
		listener_close(e, &e->lout);
		px_dconn_drain_listener(e, &e->lout);
	}
	if (!c->has_inbound && e->lin.fd >= 0) {
		listener_close(e, &e->lin);
		px_dconn_drain_listener(e, &e->lin);
	}
	{
		struct px_config *old = e->cur;

		e->cur = c;
		bound_commit(e, c); /* before the old config goes: listeners point into it until then */
		px_config_unref(old);
	}
	c = NULL;
	e->ready = 1;
	e->st.applies++;
	/* the old configuration and the decode's garbage are freed: trim once quiet */
	if (!ev_timer_armed(&e->trim_timer))
		ev_timer_arm(e->loop, &e->trim_timer, PX_TRIM_AFTER_MS);
out:
	if (rc < 0) {
		e->st.apply_rejects++;
		if (cap && !err[0])
			snprintf(err, cap, "%s", strerror(-rc));
	}
	if (c) {
		bound_abandon(c);
		config_free(c);
	}
	/* compiled or refused, the decoded messages are no longer needed
	 * (what runs is the compiled copy): give their memory back */
	px_snapshot_shed(candidate);
	return rc;
}

int engine_ready(const struct engine *e)
{
	return e->cur != NULL;
}

const int *engine_draining_flag(const struct engine *e)
{
	return &e->draining;
}

int engine_reopen_logs(struct engine *e, char *err, size_t cap)
{
	return px_alog_sinks_reopen(e->alog_sinks, err, cap);
}

int engine_dns_warmed(struct engine *e)
{
	size_t i;

	if (e->dns_warmed)
		return 1;
	if (!e->cur)
		return 0;
	for (i = 0; i < e->cur->n_clusters; i++)
		if (e->cur->clusters[i]->dns && !dnscl_warm(e->cur->clusters[i]->dns))
			return 0;
	e->dns_warmed = 1;
	return 1;
}

const int *engine_ready_flag(const struct engine *e)
{
	return &e->ready;
}

int engine_outbound_port(const struct engine *e)
{
	return e->lout.fd >= 0 ? e->lout.port : -ENOTCONN;
}

int engine_inbound_port(const struct engine *e)
{
	return e->lin.fd >= 0 ? e->lin.port : -ENOTCONN;
}

int engine_listener_port(const struct engine *e, const char *name)
{
	size_t i;

	for (i = 0; i < e->n_bl; i++)
		if (e->bl[i]->fd >= 0 && e->bl[i]->name && !strcmp(e->bl[i]->name, name))
			return e->bl[i]->port;
	return -ENOENT;
}

/* --- admin pages */

/* "IP:PORT" ("[V6]:PORT") of what l is bound to (the real port when 0 was asked for). */
static void listener_addr(const struct px_listener *l, char *out, size_t cap)
{
	char ip[INET6_ADDRSTRLEN] = "";

	if (l->local.ss_family == AF_INET6) {
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)&l->local)->sin6_addr, ip, sizeof(ip));
		snprintf(out, cap, "[%s]:%d", ip, l->port);
	} else {
		inet_ntop(AF_INET, &((const struct sockaddr_in *)&l->local)->sin_addr, ip, sizeof(ip));
		snprintf(out, cap, "%s:%d", ip, l->port);
	}
}

/* Every listener with a socket, virtual ones first. */
static size_t listeners_open(struct engine *e, const struct px_listener **v, size_t cap)
{
	size_t n = 0, i;

	if (e->lout.fd >= 0 && n < cap)
		v[n++] = &e->lout;
	if (e->lin.fd >= 0 && n < cap)
		v[n++] = &e->lin;
	for (i = 0; i < e->n_bl && n < cap; i++)
		if (e->bl[i]->fd >= 0)
			v[n++] = e->bl[i];
	return n;
}

/* Envoy's /listeners text: NAME::ADDRESS per line. */
static int listeners_page(struct engine *e, struct mesh_buf *b)
{
	const struct px_listener **v = calloc(e->n_bl + 2, sizeof(*v));
	size_t n, i;
	char a[80];

	if (!v)
		return -ENOMEM;
	n = listeners_open(e, v, e->n_bl + 2);
	for (i = 0; i < n; i++) {
		listener_addr(v[i], a, sizeof(a));
		mesh_buf_printf(b, "%s::%s\n", px_listener_name(v[i]), a);
	}
	free(v);
	return 0;
}

/* One jwt_authn counter family on /stats/prometheus: the counters named
 * "http.PREFIX.jwt_authn.<want>" as
 * envoy_http_jwt_authn_<want>{http_conn_manager_prefix="PREFIX"},
 * Envoy's tag name.  The label holds the whole stat prefix: Envoy's
 * default extractor ("http.$.**") would take only its first
 * dot-separated token ("inbound_0" of "inbound_0.0.0.0_8080") and Istio's
 * bootstrap regex none, flattening the address into the metric name; a
 * stable family name with the prefix as a label is what istio/istio#31330
 * asked for. */
struct jwt_prom {
	struct mesh_buf *b;
	const char *want;
	int typed;
};

static void jwt_prom_one(void *ctx, const char *name, uint64_t v)
{
	struct jwt_prom *p = ctx;
	const char *mid;
	size_t wl = strlen(p->want), nl = strlen(name), ml = strlen("." JWT_STATS_PREFIX);

	if (strncmp(name, "http.", 5) || nl < 5 + ml + wl || strcmp(name + nl - wl, p->want))
		return;
	mid = name + nl - wl - ml;
	if (strncmp(mid, "." JWT_STATS_PREFIX, ml))
		return;
	if (!p->typed++)
		mesh_buf_printf(p->b, "# TYPE envoy_http_jwt_authn_%s counter\n", p->want);
	mesh_buf_printf(p->b, "envoy_http_jwt_authn_%s{http_conn_manager_prefix=\"%.*s\"} %llu\n", p->want,
			(int)(mid - (name + 5)), name + 5, (unsigned long long)v);
}

static void jwt_prom(struct engine *e, struct mesh_buf *b)
{
	static const char *const names[] = { "allowed", "cors_preflight_bypassed", "denied" };
	size_t i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		struct jwt_prom p = { b, names[i], 0 };

		authz_tab_each(e->authz_tab, jwt_prom_one, &p);
	}
}

/* Envoy's listener.ADDRESS.downstream_cx_* (ADDRESS with '_' for the last ':'). */
static void listener_prom(struct engine *e, struct mesh_buf *b)
{
	const struct px_listener **v = calloc(e->n_bl + 2, sizeof(*v));
	size_t n, i, k;
	char a[80];

	if (!v)
		return;
	n = listeners_open(e, v, e->n_bl + 2);
	for (k = 0; k < 5; k++) {
		static const char *const name[] = { "downstream_cx_total", "downstream_cx_active", "no_filter_chain_match",
						    "downstream_cx_overflow", "downstream_global_cx_overflow" };
		const uint64_t *val;

		mesh_buf_printf(b, "# TYPE envoy_listener_%s %s\n", name[k], k == 1 ? "gauge" : "counter");
		for (i = 0; i < n; i++) {
			char *colon;

			listener_addr(v[i], a, sizeof(a));
			colon = strrchr(a, ':');
			if (colon)
				*colon = '_';
			val = k == 0 ? &v[i]->st.cx_total
			      : k == 1 ? &v[i]->st.cx_active
			      : k == 2 ? &v[i]->st.no_chain
			      : k == 3 ? &v[i]->st.cx_overflow
				       : &v[i]->st.global_cx_overflow;
			mesh_buf_printf(b, "envoy_listener_%s{envoy_listener_address=\"%s\"} %llu\n", name[k], a,
					(unsigned long long)*val);
		}
	}
	free(v);
}

/* One host's /clusters rows: a its address, st its counters, u its
 * upstream.h host (NULL: an ORIGINAL_DST destination). */
static void host_rows(struct mesh_buf *b, const struct px_cluster *cl, const char *a, const struct px_host_stats *st,
		      const struct up_host *u)
{
	const char *n = cl->name;
	const struct up_locality *loc = NULL;
	uint32_t k;

	mesh_buf_printf(b, "%s::%s::cx_active::%llu\n", n, a, (unsigned long long)st->cx_active);
	mesh_buf_printf(b, "%s::%s::cx_connect_fail::%llu\n", n, a, (unsigned long long)st->cx_connect_fail);
	mesh_buf_printf(b, "%s::%s::cx_total::%llu\n", n, a, (unsigned long long)st->cx_total);
	mesh_buf_printf(b, "%s::%s::rq_active::%llu\n", n, a, (unsigned long long)st->rq_active);
	mesh_buf_printf(b, "%s::%s::rq_error::%llu\n", n, a, (unsigned long long)st->rq_error);
	mesh_buf_printf(b, "%s::%s::rq_success::%llu\n", n, a, (unsigned long long)st->rq_success);
	mesh_buf_printf(b, "%s::%s::rq_timeout::%llu\n", n, a, (unsigned long long)st->rq_timeout);
	mesh_buf_printf(b, "%s::%s::rq_total::%llu\n", n, a, (unsigned long long)st->rq_total);
	/* issue 13: a DNS cluster's host: the name it was resolved from */
	{
		const char *hn = u && cl->dns ? dnscl_hostname(cl->dns, &u->addr.sa) : NULL;

		mesh_buf_printf(b, "%s::%s::hostname::%s\n", n, a, hn ? hn : "");
	}
	mesh_buf_printf(b, "%s::%s::health_flags::%s\n", n, a, up_health_flags(u));
	mesh_buf_printf(b, "%s::%s::weight::%u\n", n, a, u ? u->weight : 1);
	/* the host's locality and priority in the current host set */
	if (u && cl->hs && u->priority < cl->hs->n_prio && u->locality < cl->hs->prio[u->priority].n_loc)
		loc = &cl->hs->prio[u->priority].loc[u->locality];
	/* a host gone from the current set keeps stale indices */
	for (k = 0; loc && k < loc->n && cl->hs->prio[u->priority].hosts[loc->first + k] != u; k++)
		;
	if (loc && k == loc->n)
		loc = NULL;
	mesh_buf_printf(b, "%s::%s::region::%s\n%s::%s::zone::%s\n%s::%s::sub_zone::%s\n", n, a,
			loc && loc->region ? loc->region : "", n, a, loc && loc->zone ? loc->zone : "", n, a,
			loc && loc->sub_zone ? loc->sub_zone : "");
	mesh_buf_printf(b, "%s::%s::canary::false\n%s::%s::priority::%u\n", n, a, n, a, loc ? u->priority : 0);
	mesh_buf_printf(b, "%s::%s::success_rate::-1.0\n%s::%s::local_origin_success_rate::-1.0\n", n, a, n, a);
}

static void clusters_page(struct engine *e, struct mesh_buf *b)
{
	static const struct px_host_stats zero;
	size_t i, j;

	for (i = 0; i < e->n_ctab; i++) {
		const struct px_cluster *cl = e->ctab[i];

		mesh_buf_printf(b, "%s::observability_name::%s\n", cl->name, cl->name);
		mesh_buf_printf(b, "%s::default_priority::max_connections::%u\n", cl->name, cl->max_connections);
		mesh_buf_printf(b, "%s::default_priority::max_pending_requests::%u\n", cl->name, cl->max_pending);
		mesh_buf_printf(b, "%s::default_priority::max_requests::%u\n", cl->name, cl->max_requests);
		mesh_buf_printf(b, "%s::default_priority::max_retries::%u\n", cl->name, cl->max_retries);
		mesh_buf_printf(b, "%s::added_via_api::true\n", cl->name);
		if (cl->type == PX_CL_ORIGINAL_DST || !cl->hs) {
			for (j = 0; j < cl->n_hosts; j++)
				host_rows(b, cl, cl->hosts[j]->name, &cl->hosts[j]->st, cl->hosts[j]->up);
			continue;
		}
		/* every endpoint, in EDS order: those never picked have no
		 * px_host yet (px_cluster_host_of) */
		for (j = 0; j < cl->hs->n; j++) {
			const struct up_host *u = cl->hs->hosts[j];
			const struct px_host *h = host_find(cl, u);
			char a[UP_KEY_MAX + 1];

			snprintf(a, sizeof(a), "%.*s", (int)u->key_len, u->key);
			host_rows(b, cl, a, h ? &h->st : &zero, u);
		}
	}
}

static void prom_line(struct mesh_buf *b, const char *metric, const char *type, int typed, const char *cl,
		      uint64_t v)
{
	if (!typed)
		mesh_buf_printf(b, "# TYPE %s %s\n", metric, type);
	mesh_buf_printf(b, "%s{cluster_name=\"%s\"} %llu\n", metric, cl, (unsigned long long)v);
}

static void prometheus_page(struct engine *e, struct mesh_buf *b)
{
	static const struct {
		const char *name, *type;
		size_t off;
	} m[] = {
#define PXS(n, t, f) { "envoy_cluster_" n, t, offsetof(struct px_cluster_stats, f) }
		PXS("upstream_rq_total", "counter", rq_total),
		PXS("upstream_rq_active", "gauge", rq_active),
		PXS("upstream_rq_pending_active", "gauge", rq_pending_active),
		PXS("upstream_rq_pending_overflow", "counter", rq_pending_overflow),
		PXS("upstream_rq_retry", "counter", rq_retry),
		PXS("upstream_rq_retry_success", "counter", rq_retry_success),
		PXS("upstream_rq_retry_overflow", "counter", rq_retry_overflow),
		PXS("upstream_rq_timeout", "counter", rq_timeout),
		PXS("upstream_rq_per_try_timeout", "counter", rq_per_try_timeout),
		PXS("upstream_rq_rx_reset", "counter", rq_rx_reset),
		PXS("upstream_cx_total", "counter", cx_total),
		PXS("upstream_cx_active", "gauge", cx_active),
		PXS("upstream_cx_connect_fail", "counter", cx_connect_fail),
		PXS("upstream_cx_connect_timeout", "counter", cx_connect_timeout),
		PXS("upstream_cx_overflow", "counter", cx_overflow),
		PXS("upstream_cx_destroy", "counter", cx_destroy),
		PXS("upstream_cx_max_requests", "counter", cx_max_requests),
		PXS("upstream_cx_max_duration_reached", "counter", cx_max_duration_reached),
		PXS("outlier_detection_ejections_active", "gauge", outlier_ejections_active),
		PXS("upstream_cx_rx_bytes_total", "counter", cx_rx_bytes),
		PXS("upstream_cx_tx_bytes_total", "counter", cx_tx_bytes),
		/* issue 13: DNS clusters' resolutions (0 for the others, as Envoy prints them) */
		PXS("update_attempt", "counter", update_attempt),
		PXS("update_success", "counter", update_success),
		PXS("update_failure", "counter", update_failure),
		PXS("update_no_rebuild", "counter", update_no_rebuild),
#undef PXS
	};
	/* meshproxy's own connection to meshd, as Envoy's static xds-grpc
	 * cluster (the Istio control-plane dashboard's "XDS" panels read it) */
	struct px_cluster_stats xs = { 0 };
	size_t i, j, n = e->n_ctab + (e->xds_cx != NULL);

	if (e->xds_cx) {
		xs.cx_total = e->xds_cx->cx_total;
		xs.cx_active = e->xds_cx->cx_active;
		xs.cx_connect_fail = e->xds_cx->cx_connect_fail;
		xs.cx_rx_bytes = e->xds_cx->cx_rx_bytes;
		xs.cx_tx_bytes = e->xds_cx->cx_tx_bytes;
		xs.rq_total = e->xds_cx->rq_total;
		xs.rq_active = e->xds_cx->rq_active;
	}
	for (i = 0; i < sizeof(m) / sizeof(m[0]); i++)
		for (j = 0; j < n; j++) {
			const struct px_cluster_stats *st = j < e->n_ctab ? px_cst_ro(e->ctab[j]) : &xs;
			uint64_t v = *(const uint64_t *)((const char *)st + m[i].off);

			/* a gauge read from the host set (no counter allocated for it) */
			if (m[i].off == offsetof(struct px_cluster_stats, outlier_ejections_active))
				v = j < e->n_ctab && e->ctab[j]->hs ? outlier_ejected_count(e->ctab[j]->hs) : 0;
			prom_line(b, m[i].name, m[i].type, j > 0, j < e->n_ctab ? e->ctab[j]->name : "xds-grpc", v);
		}
	/* response code classes: Envoy's upstream_rq_2xx under Istio's stats_tags
	 * (response_code_class "2xx", cluster_name), as Istio's sidecars print them */
	for (i = 0; i < 4; i++) {
		static const char *cls[] = { "2xx", "3xx", "4xx", "5xx" };

		if (i == 0)
			mesh_buf_puts(b, "# TYPE envoy_cluster_upstream_rq counter\n");
		for (j = 0; j < e->n_ctab; j++) {
			const struct px_cluster_stats *s = px_cst_ro(e->ctab[j]);
			uint64_t v = i == 0 ? s->rq_2xx : i == 1 ? s->rq_3xx : i == 2 ? s->rq_4xx : s->rq_5xx;

			mesh_buf_printf(b, "envoy_cluster_upstream_rq{response_code_class=\"%s\",cluster_name=\"%s\"} %llu\n",
					cls[i], e->ctab[j]->name, (unsigned long long)v);
		}
	}
	mesh_buf_printf(b,
			"# TYPE envoy_http_downstream_cx_total counter\nenvoy_http_downstream_cx_total{http_conn_manager_prefix=\"meshproxy\"} %llu\n"
			"# TYPE envoy_http_downstream_cx_active gauge\nenvoy_http_downstream_cx_active{http_conn_manager_prefix=\"meshproxy\"} %llu\n"
			"# TYPE envoy_http_downstream_rq_total counter\nenvoy_http_downstream_rq_total{http_conn_manager_prefix=\"meshproxy\"} %llu\n"
			"# TYPE envoy_http_downstream_rq_active gauge\nenvoy_http_downstream_rq_active{http_conn_manager_prefix=\"meshproxy\"} %llu\n"
			"# TYPE envoy_http_downstream_rq counter\n"
			"envoy_http_downstream_rq{response_code_class=\"2xx\",http_conn_manager_prefix=\"meshproxy\"} %llu\n"
			"envoy_http_downstream_rq{response_code_class=\"3xx\",http_conn_manager_prefix=\"meshproxy\"} %llu\n"
			"envoy_http_downstream_rq{response_code_class=\"4xx\",http_conn_manager_prefix=\"meshproxy\"} %llu\n"
			"envoy_http_downstream_rq{response_code_class=\"5xx\",http_conn_manager_prefix=\"meshproxy\"} %llu\n"
			"# TYPE envoy_http_downstream_cx_protocol_error counter\nenvoy_http_downstream_cx_protocol_error{http_conn_manager_prefix=\"meshproxy\"} %llu\n"
			"# TYPE envoy_http_no_route counter\nenvoy_http_no_route{http_conn_manager_prefix=\"meshproxy\"} %llu\n"
			"# TYPE envoy_http_downstream_rq_idle_timeout counter\nenvoy_http_downstream_rq_idle_timeout{http_conn_manager_prefix=\"meshproxy\"} %llu\n"
			"# TYPE envoy_http_downstream_rq_header_timeout counter\nenvoy_http_downstream_rq_header_timeout{http_conn_manager_prefix=\"meshproxy\"} %llu\n"
			"# TYPE envoy_http_downstream_cx_idle_timeout counter\nenvoy_http_downstream_cx_idle_timeout{http_conn_manager_prefix=\"meshproxy\"} %llu\n"
			"# TYPE envoy_http_downstream_rq_timeout counter\nenvoy_http_downstream_rq_timeout{http_conn_manager_prefix=\"meshproxy\"} %llu\n"
			"# TYPE meshproxy_listener_accept_paused counter\nmeshproxy_listener_accept_paused %llu\n"
			"# TYPE meshproxy_http_loop_refused counter\nmeshproxy_http_loop_refused %llu\n",
			(unsigned long long)e->st.cx_total, (unsigned long long)e->st.cx_active,
			(unsigned long long)e->st.rq_total, (unsigned long long)e->st.rq_active,
			(unsigned long long)e->st.rq_2xx, (unsigned long long)e->st.rq_3xx,
			(unsigned long long)e->st.rq_4xx, (unsigned long long)e->st.rq_5xx,
			(unsigned long long)e->st.codec_errors, (unsigned long long)e->st.no_route,
			(unsigned long long)e->st.rq_idle_timeout, (unsigned long long)e->st.rq_header_timeout,
			(unsigned long long)e->st.cx_idle_timeout, (unsigned long long)e->st.rq_timeout,
			(unsigned long long)e->st.accept_paused, (unsigned long long)e->st.rq_loop_refused);
	/* Envoy's TCP proxy stats, by stat_prefix (Istio's: the destination
	 * cluster), for the clusters a TCP proxy counted on */
	{
		static const struct {
			const char *name, *type;
			size_t off;
		} t[] = {
#define PXT(n, ty, f) { "envoy_tcp_" n, ty, offsetof(struct px_cluster_stats, f) }
			PXT("downstream_cx_total", "counter", tcp_cx_total),
			PXT("downstream_cx_active", "gauge", tcp_cx_active),
			PXT("downstream_cx_rx_bytes_total", "counter", tcp_rx_bytes),
			PXT("downstream_cx_tx_bytes_total", "counter", tcp_tx_bytes),
			PXT("idle_timeout", "counter", tcp_idle_timeout),
			PXT("max_downstream_connection_duration", "counter", tcp_max_duration),
#undef PXT
		};

		for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
			int typed = 0;

			for (j = 0; j < e->n_ctab; j++) {
				if (!px_cst_ro(e->ctab[j])->tcp_cx_total)
					continue;
				if (!typed++)
					mesh_buf_printf(b, "# TYPE %s %s\n", t[i].name, t[i].type);
				mesh_buf_printf(b, "%s{envoy_tcp_prefix=\"%s\"} %llu\n", t[i].name, e->ctab[j]->name,
						(unsigned long long)*(const uint64_t *)((const char *)px_cst_ro(e->ctab[j]) +
											t[i].off));
			}
		}
	}
	/* issue 12: inbound TLS (Envoy's listener ssl.connection_error; a
	 * plaintext connection no filter chain takes is Envoy's no_filter_chain_match) */
	mesh_buf_printf(b,
			"# TYPE meshproxy_tls_handshake_failures counter\nmeshproxy_tls_handshake_failures %llu\n"
			"# TYPE meshproxy_tls_plaintext_refused counter\nmeshproxy_tls_plaintext_refused %llu\n",
			(unsigned long long)e->tls_handshake_fail, (unsigned long long)e->tls_plain_refused);
	/* shadow requests: no Envoy name (Envoy counts them only in the
	 * mirror cluster's upstream_rq_total, which meshproxy does too) */
	mesh_buf_printf(b,
			"# TYPE meshproxy_mirror_requests_sent counter\nmeshproxy_mirror_requests_sent %llu\n"
			"# TYPE meshproxy_mirror_requests_dropped counter\nmeshproxy_mirror_requests_dropped %llu\n",
			(unsigned long long)e->mirrors_sent, (unsigned long long)e->mirrors_dropped);
	/* Envoy's file access log statistics (filesystem.*) */
	{
		struct px_alog_fs_stats fs;

		px_alog_sinks_fs_stats(e->alog_sinks, &fs);
		mesh_buf_printf(b,
				"# TYPE envoy_filesystem_flushed_by_timer counter\nenvoy_filesystem_flushed_by_timer %llu\n"
				"# TYPE envoy_filesystem_reopen_failed counter\nenvoy_filesystem_reopen_failed %llu\n"
				"# TYPE envoy_filesystem_write_buffered counter\nenvoy_filesystem_write_buffered %llu\n"
				"# TYPE envoy_filesystem_write_completed counter\nenvoy_filesystem_write_completed %llu\n"
				"# TYPE envoy_filesystem_write_failed counter\nenvoy_filesystem_write_failed %llu\n"
				"# TYPE envoy_filesystem_write_total_buffered gauge\n"
				"envoy_filesystem_write_total_buffered %llu\n",
				(unsigned long long)fs.flushed_by_timer, (unsigned long long)fs.reopen_failed,
				(unsigned long long)fs.write_buffered, (unsigned long long)fs.write_completed,
				(unsigned long long)fs.write_failed, (unsigned long long)fs.write_total_buffered);
	}
	/* issue 14: Envoy's zipkin tracer counters (tracing.zipkin.*), and the
	 * spans the bounded queue or a failed POST lost */
	{
		struct tracer_stats ts;

		tracer_get_stats(e->tracer, &ts);
		mesh_buf_printf(b,
				"# TYPE envoy_tracing_zipkin_spans_sent counter\nenvoy_tracing_zipkin_spans_sent %llu\n"
				"# TYPE envoy_tracing_zipkin_reports_sent counter\nenvoy_tracing_zipkin_reports_sent %llu\n"
				"# TYPE envoy_tracing_zipkin_reports_failed counter\nenvoy_tracing_zipkin_reports_failed %llu\n"
				"# TYPE meshproxy_tracing_spans_dropped counter\nmeshproxy_tracing_spans_dropped %llu\n",
				(unsigned long long)ts.spans_sent, (unsigned long long)ts.posts_ok,
				(unsigned long long)ts.posts_failed, (unsigned long long)ts.spans_dropped);
		/* Envoy's OpenTelemetry tracer counters (tracing.opentelemetry.*) */
		mesh_buf_printf(b,
				"# TYPE envoy_tracing_opentelemetry_spans_sent counter\nenvoy_tracing_opentelemetry_spans_sent %llu\n"
				"# TYPE envoy_tracing_opentelemetry_http_reports_sent counter\n"
				"envoy_tracing_opentelemetry_http_reports_sent %llu\n"
				"# TYPE envoy_tracing_opentelemetry_http_reports_success counter\n"
				"envoy_tracing_opentelemetry_http_reports_success %llu\n"
				"# TYPE envoy_tracing_opentelemetry_http_reports_failed counter\n"
				"envoy_tracing_opentelemetry_http_reports_failed %llu\n",
				(unsigned long long)ts.otlp_spans_sent, (unsigned long long)ts.otlp_reports_sent,
				(unsigned long long)ts.otlp_reports_ok, (unsigned long long)ts.otlp_reports_failed);
	}
	/* issue 13: the resolver of DNS clusters and passthrough names, under
	 * the names an Istio sidecar exports (Istio configures Envoy's c-ares
	 * resolver: dns.cares.*, Envoy's documented set), whatever library
	 * resolves here */
	{
		struct dns_stats ds;

		dns_get_stats(e->dns, &ds);
		mesh_buf_printf(b,
				"# TYPE envoy_dns_cares_resolve_total counter\nenvoy_dns_cares_resolve_total %llu\n"
				"# TYPE envoy_dns_cares_pending_resolutions gauge\nenvoy_dns_cares_pending_resolutions %llu\n"
				"# TYPE envoy_dns_cares_not_found counter\nenvoy_dns_cares_not_found %llu\n"
				"# TYPE envoy_dns_cares_timeout counter\nenvoy_dns_cares_timeout %llu\n"
				"# TYPE envoy_dns_cares_get_addr_failure counter\nenvoy_dns_cares_get_addr_failure %llu\n",
				(unsigned long long)ds.resolve_total, (unsigned long long)ds.pending,
				(unsigned long long)ds.not_found, (unsigned long long)ds.timeouts,
				(unsigned long long)ds.failures);
	}
	listener_prom(e, b);
	jwt_prom(e, b);
	if (e->istio)
		istio_stats_prometheus(e->istio, b);
}

void engine_stats_text(struct engine *e, struct mesh_buf *out)
{
	const struct px_listener **v = calloc(e->n_bl + 2, sizeof(*v));
	size_t n, i;
	char a[80];

	authz_tab_text(e->authz_tab, out);
	/* issue 16: the downstream limits' counters, Envoy's names */
	mesh_buf_printf(out,
			"http.meshproxy.downstream_cx_idle_timeout: %llu\n"
			"http.meshproxy.downstream_rq_header_timeout: %llu\n"
			"http.meshproxy.downstream_rq_idle_timeout: %llu\n"
			"http.meshproxy.downstream_rq_timeout: %llu\n",
			(unsigned long long)e->st.cx_idle_timeout, (unsigned long long)e->st.rq_header_timeout,
			(unsigned long long)e->st.rq_idle_timeout, (unsigned long long)e->st.rq_timeout);
	/* Envoy's file access log statistics (filesystem.*) */
	{
		struct px_alog_fs_stats fs;

		px_alog_sinks_fs_stats(e->alog_sinks, &fs);
		mesh_buf_printf(out,
				"filesystem.flushed_by_timer: %llu\n"
				"filesystem.reopen_failed: %llu\n"
				"filesystem.write_buffered: %llu\n"
				"filesystem.write_completed: %llu\n"
				"filesystem.write_failed: %llu\n"
				"filesystem.write_total_buffered: %llu\n",
				(unsigned long long)fs.flushed_by_timer, (unsigned long long)fs.reopen_failed,
				(unsigned long long)fs.write_buffered, (unsigned long long)fs.write_completed,
				(unsigned long long)fs.write_failed, (unsigned long long)fs.write_total_buffered);
	}
	if (!v)
		return;
	n = listeners_open(e, v, e->n_bl + 2);
	for (i = 0; i < n; i++) {
		char *colon;

		listener_addr(v[i], a, sizeof(a));
		colon = strrchr(a, ':');
		if (colon)
			*colon = '_';
		mesh_buf_printf(out,
				"listener.%s.downstream_cx_active: %llu\n"
				"listener.%s.downstream_cx_overflow: %llu\n"
				"listener.%s.downstream_cx_total: %llu\n"
				"listener.%s.downstream_global_cx_overflow: %llu\n",
				a, (unsigned long long)v[i]->st.cx_active, a, (unsigned long long)v[i]->st.cx_overflow, a,
				(unsigned long long)v[i]->st.cx_total, a, (unsigned long long)v[i]->st.global_cx_overflow);
	}
	free(v);
}

int engine_admin_page(struct engine *e, const char *path, size_t plen, struct mesh_buf *out, const char **ctype)
{
	if (plen == 9 && !memcmp(path, "/clusters", 9)) {
		clusters_page(e, out);
		*ctype = "text/plain; charset=UTF-8";
		/* ~5 MB with 1,000 clusters, freed once sent: trimmed once quiet,
		 * as after a burst of connections (px_trim), so that reading it
		 * does not leave an idle proxy's RSS higher */
		if (!ev_timer_armed(&e->trim_timer))
			ev_timer_arm(e->loop, &e->trim_timer, PX_TRIM_AFTER_MS);
		return 0;
	}
	if (plen == 10 && !memcmp(path, "/listeners", 10)) {
		*ctype = "text/plain; charset=UTF-8";
		return listeners_page(e, out);
	}
	if (plen == 6 && !memcmp(path, "/certs", 6)) {
		/* issue 12: the workload certificate (identity.c) */
		px_identity_certs_json(e->ident, out);
		*ctype = "application/json";
		return 0;
	}
	if (plen == 17 && !memcmp(path, "/stats/prometheus", 17)) {
		prometheus_page(e, out);
		*ctype = "text/plain; version=0.0.4; charset=UTF-8";
		return 0;
	}
	return -ENOENT;
}

/* --- drain */

static void drain_finish(struct engine *e)
{
	void (*done)(void *) = e->drain_done;

	ev_timer_cancel(e->loop, &e->drain_timer);
	e->drain_done = NULL;
	if (done)
		done(e->drain_arg);
}

static void drain_timeout(struct ev_loop *loop, struct ev_timer *t)
{
	struct engine *e = t->data;

	(void)loop;
	log_info("meshproxy", "drain: period ended with %llu request(s) in flight",
		 (unsigned long long)e->st.rq_active);
	drain_finish(e);
}

void px_engine_check_drained(struct engine *e)
{
	/* Istio's agent waits the whole drain period unless told to leave
	 * when nothing is left (EXIT_ON_ZERO_ACTIVE_CONNECTIONS): clients with
	 * stale endpoints keep their grace window */
	if (e->draining && e->drain_done && e->o.exit_on_zero && e->st.rq_active == 0 && e->st.cx_active == 0) {
		log_info("meshproxy", "drain: no connection left");
		drain_finish(e);
	}
}

void engine_set_xds_stats(struct engine *e, const struct grpc_client_stats *st)
{
	e->xds_cx = st;
}

void engine_set_identity(struct engine *e, struct px_identity *id)
{
	e->ident = id;
}

void engine_drain(struct engine *e, void (*done)(void *arg), void *arg)
{
	if (e->draining)
		return;
	e->draining = 1;
	e->drain_done = done;
	e->drain_arg = arg;
	/* both listeners stay open: inbound connections are told to go
	 * (proxy.c); /ready reads engine_draining_flag() */
	px_dconn_drain_all(e);
	ev_timer_init(&e->drain_timer, drain_timeout, e);
	ev_timer_arm(e->loop, &e->drain_timer, e->o.drain_ms);
	px_engine_check_drained(e);
}
