/*
 * dnscl.c - see dnscl.h.  A DNS cluster keeps one target per distinct
 * name in its load_assignment (a name listed with two ports is resolved
 * once); each target has its own lookup and refresh timer, as Envoy's
 * ResolveTarget.  When a target's addresses change, the host set is built
 * again from the Cluster's load_assignment (decoded again from the
 * resource: the engine sheds decoded messages after compiling) with every
 * target's current addresses, and handed to the engine like an EDS update
 * (px_cluster_set_hosts()).
 */
#include "dataplane/dnscl.h"

#include "dataplane/engine-t.h"
#include "dataplane/snapshot.h"
#include "dataplane/upstream.h"

#include "common/arena.h"
#include "common/log.h"
#include "envoy/config/cluster/v3/cluster.pb-c.h"
#include "envoy/config/core/v3/address.pb-c.h"
#include "envoy/config/endpoint/v3/endpoint.pb-c.h"
#include "envoy/config/endpoint/v3/endpoint_components.pb-c.h"
#include "google/protobuf/duration.pb-c.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DNSCL_ARENA_MAX (1u << 20)

struct dnscl_target {
	struct dnscl *d;
	char *name;                  /* owned */
	struct dns_query *q;         /* in flight, or NULL */
	struct ev_timer t;           /* the next resolution */
	struct dns_addr addrs[DNS_ADDRS_MAX]; /* the last good resolution */
	size_t n;
	int done;                    /* resolved or failed at least once */
	int failing;                 /* the last resolution failed (logged once per change) */
	int keep;                    /* set_targets: still named by the new resource */
	int fresh;                   /* set_targets: made by this call */
};

struct dnscl {
	struct engine *e;
	struct px_cluster *cl;       /* the owner (cl->dns): no reference */
	struct px_resource *src;     /* the Cluster resource the targets come from (a reference) */
	bool logical;
	enum dns_family fam;
	uint64_t refresh_ms;
	int stale;                   /* the last resolved set could not be installed (out of memory) */
	struct dnscl_target **t;     /* one allocation each: the timers are linked into the loop's heap */
	size_t n_t;
};

/* --- the load assignment with addresses */

static bool is_ip(const char *s)
{
	unsigned char b[16];

	return inet_pton(AF_INET, s, b) == 1 || inet_pton(AF_INET6, s, b) == 1;
}

static const char *ep_name(const Envoy__Config__Endpoint__V3__LbEndpoint *le)
{
	if (le->host_identifier_case != ENVOY__CONFIG__ENDPOINT__V3__LB_ENDPOINT__HOST_IDENTIFIER_ENDPOINT ||
	    !le->endpoint || !le->endpoint->address ||
	    le->endpoint->address->address_case != ENVOY__CONFIG__CORE__V3__ADDRESS__ADDRESS_SOCKET_ADDRESS ||
	    !le->endpoint->address->socket_address->address)
		return NULL;
	return le->endpoint->address->socket_address->address;
}

/* le with its address replaced by a (a copy in ar pointing into le). */
static Envoy__Config__Endpoint__V3__LbEndpoint *ep_with(struct arena *ar, const Envoy__Config__Endpoint__V3__LbEndpoint *le,
							const struct dns_addr *a)
{
	Envoy__Config__Endpoint__V3__LbEndpoint *nl = arena_alloc(ar, sizeof(*nl));
	Envoy__Config__Endpoint__V3__Endpoint *ne = arena_alloc(ar, sizeof(*ne));
	Envoy__Config__Core__V3__Address *na = arena_alloc(ar, sizeof(*na));
	Envoy__Config__Core__V3__SocketAddress *ns = arena_alloc(ar, sizeof(*ns));
	char *ip = arena_alloc(ar, INET6_ADDRSTRLEN);

	if (!nl || !ne || !na || !ns || !ip)
		return NULL;
	if (a->u.sa.sa_family == AF_INET)
		inet_ntop(AF_INET, &a->u.in4.sin_addr, ip, INET6_ADDRSTRLEN);
	else
		inet_ntop(AF_INET6, &a->u.in6.sin6_addr, ip, INET6_ADDRSTRLEN);
	*nl = *le;
	*ne = *le->endpoint;
	*na = *le->endpoint->address;
	*ns = *le->endpoint->address->socket_address;
	ns->address = ip;
	na->socket_address = ns;
	ne->address = na;
	nl->endpoint = ne;
	return nl;
}

static bool ep_same(const Envoy__Config__Endpoint__V3__LbEndpoint *a, const Envoy__Config__Endpoint__V3__LbEndpoint *b)
{
	const char *na = ep_name(a), *nb = ep_name(b);

	return na && nb && !strcmp(na, nb) &&
	       a->endpoint->address->socket_address->port_value == b->endpoint->address->socket_address->port_value;
}

/* e's address and port are already among the endpoints built so far
 * (c's localities before li, then cur) or the template's IP endpoints
 * (kept as they are, wherever they come). */
static bool ep_listed(const Envoy__Config__Endpoint__V3__ClusterLoadAssignment *tmpl,
		      const Envoy__Config__Endpoint__V3__ClusterLoadAssignment *c, size_t li,
		      const Envoy__Config__Endpoint__V3__LocalityLbEndpoints *cur,
		      const Envoy__Config__Endpoint__V3__LbEndpoint *e)
{
	size_t i, j;

	for (i = 0; i < li; i++)
		for (j = 0; j < c->endpoints[i]->n_lb_endpoints; j++)
			if (ep_same(c->endpoints[i]->lb_endpoints[j], e))
				return true;
	for (j = 0; j < cur->n_lb_endpoints; j++)
		if (ep_same(cur->lb_endpoints[j], e))
			return true;
	for (i = 0; i < tmpl->n_endpoints; i++)
		for (j = 0; j < tmpl->endpoints[i]->n_lb_endpoints; j++) {
			const char *n = ep_name(tmpl->endpoints[i]->lb_endpoints[j]);

			if (n && is_ip(n) && ep_same(tmpl->endpoints[i]->lb_endpoints[j], e))
				return true;
		}
	return false;
}

static const struct dnscl_result *res_find(const struct dnscl_result *res, size_t n, const char *name)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (!strcmp(res[i].name, name))
			return &res[i];
	return NULL;
}

int dnscl_cla(const Envoy__Config__Endpoint__V3__ClusterLoadAssignment *tmpl, bool logical,
	      const struct dnscl_result *res, size_t n_res, struct arena *a,
	      Envoy__Config__Endpoint__V3__ClusterLoadAssignment **out)
{
	Envoy__Config__Endpoint__V3__ClusterLoadAssignment *c;
	size_t i, j, k;

	*out = NULL;
	if (!tmpl)
		return 0;
	c = arena_alloc(a, sizeof(*c));
	if (!c)
		return -ENOMEM;
	*c = *tmpl;
	c->endpoints = arena_calloc(a, tmpl->n_endpoints + 1, sizeof(*c->endpoints));
	if (!c->endpoints)
		return -ENOMEM;
	for (i = 0; i < tmpl->n_endpoints; i++) {
		const Envoy__Config__Endpoint__V3__LocalityLbEndpoints *ol = tmpl->endpoints[i];
		Envoy__Config__Endpoint__V3__LocalityLbEndpoints *nl = arena_alloc(a, sizeof(*nl));
		size_t cap = 1;

		if (!nl)
			return -ENOMEM;
		*nl = *ol;
		for (j = 0; j < ol->n_lb_endpoints; j++) {
			const char *name = ep_name(ol->lb_endpoints[j]);
			const struct dnscl_result *r = name && !is_ip(name) ? res_find(res, n_res, name) : NULL;

			cap += r ? r->n : 1;
		}
		nl->lb_endpoints = arena_calloc(a, cap, sizeof(*nl->lb_endpoints));
		if (!nl->lb_endpoints)
			return -ENOMEM;
		nl->n_lb_endpoints = 0;
		for (j = 0; j < ol->n_lb_endpoints; j++) {
			Envoy__Config__Endpoint__V3__LbEndpoint *le = ol->lb_endpoints[j];
			const char *name = ep_name(le);
			const struct dnscl_result *r;
			size_t n;

			if (!name || is_ip(name)) {
				/* an IP (or no socket address: up_hostset_new says why) stays */
				nl->lb_endpoints[nl->n_lb_endpoints++] = le;
				continue;
			}
			r = res_find(res, n_res, name);
			n = r ? (logical && r->n ? 1 : r->n) : 0;
			for (k = 0; k < n; k++) {
				Envoy__Config__Endpoint__V3__LbEndpoint *e = ep_with(a, le, &r->addrs[k]);

				if (!e)
					return -ENOMEM;
				/* an address another endpoint already has (two names, or a
				 * name and an IP, meeting on one address) is one host: the
				 * host set refuses duplicates, Envoy would keep two */
				if (!ep_listed(tmpl, c, i, nl, e))
					nl->lb_endpoints[nl->n_lb_endpoints++] = e;
			}
		}
		c->endpoints[i] = nl;
	}
	*out = c;
	return 0;
}

/* --- the engine's side */

static const Envoy__Config__Cluster__V3__Cluster *src_msg(const struct dnscl *d)
{
	return d->src ? (const void *)px_resource_msg(d->src) : NULL;
}

/* The host set from the Cluster's load assignment and the addresses known
 * now.  NULL when out of memory (or the resource does not decode). */
static struct up_hostset *build(struct dnscl *d, struct up_cluster *up, const struct up_hostset *prev)
{
	const Envoy__Config__Cluster__V3__Cluster *m = src_msg(d);
	struct arena *a = arena_new(DNSCL_ARENA_MAX);
	struct dnscl_result *res = calloc(d->n_t + 1, sizeof(*res));
	Envoy__Config__Endpoint__V3__ClusterLoadAssignment *cla = NULL;
	struct up_hostset *hs = NULL;
	char why[256] = "";
	size_t i;

	if (!m || !a || !res)
		goto out;
	for (i = 0; i < d->n_t; i++) {
		res[i].name = d->t[i]->name;
		res[i].addrs = d->t[i]->addrs;
		res[i].n = d->t[i]->n;
	}
	if (dnscl_cla(m->load_assignment, d->logical, res, d->n_t, a, &cla) < 0)
		goto out;
	if (up_hostset_new(up, cla, prev, px_rand(d->e), why, sizeof(why), &hs) < 0) {
		/* the names' set compiled, so only memory can fail here */
		log_warn("meshproxy", "cluster %s: resolved hosts: %s", d->cl->name, why);
		hs = NULL;
		goto out;
	}
	up_hostset_stamp(hs, ev_now(d->e->loop));
out:
	free(res);
	arena_free(a);
	return hs;
}

static void target_start(struct dnscl_target *t);

static void target_timer(struct ev_loop *loop, struct ev_timer *tm)
{
	(void)loop;
	target_start(tm->data);
}

static void addrs_text(const struct dns_addr *v, size_t n, char *buf, size_t cap)
{
	size_t i, off = 0;

	buf[0] = 0;
	for (i = 0; i < n && off + INET6_ADDRSTRLEN + 2 < cap; i++) {
		if (i)
			buf[off++] = ',';
		inet_ntop(v[i].u.sa.sa_family, v[i].u.sa.sa_family == AF_INET ? (const void *)&v[i].u.in4.sin_addr
									       : (const void *)&v[i].u.in6.sin6_addr,
			  buf + off, (socklen_t)(cap - off));
		off += strlen(buf + off);
	}
}

static void target_done(void *arg, int status, const struct dns_addr *addrs, size_t n)
{
	struct dnscl_target *t = arg;
	struct dnscl *d = t->d;
	struct px_cluster *cl = d->cl;
	char txt[512];

	t->q = NULL;
	t->done = 1;
	if (status == 0) {
		px_cst(cl)->update_success++;
		if (t->failing)
			log_info("meshproxy", "cluster %s: %s resolves again", cl->name, t->name);
		t->failing = 0;
		/* LOGICAL_DNS follows the first address (a rotating answer moves
		 * new connections, as Envoy's logical host does); STRICT_DNS the set */
		if (!d->stale && (d->logical ? t->n && n && dns_addrs_equal(t->addrs, 1, addrs, 1)
					     : dns_addrs_equal(t->addrs, t->n, addrs, n))) {
			memcpy(t->addrs, addrs, n * sizeof(*addrs));
			t->n = n;
			px_cst(cl)->update_no_rebuild++;
		} else {
			struct up_hostset *hs;

			bool first = !t->n;

			memcpy(t->addrs, addrs, n * sizeof(*addrs));
			t->n = n;
			addrs_text(addrs, n, txt, sizeof(txt));
			/* a rotating answer moves a logical cluster at every refresh: only
			 * its first resolution is worth the info level */
			if (first || !d->logical)
				log_info("meshproxy", "cluster %s: %s resolves to %s", cl->name, t->name, txt);
			else
				log_debug("meshproxy", "cluster %s: %s resolves to %s", cl->name, t->name, txt);
			hs = cl->up ? build(d, cl->up, cl->hs) : NULL;
			/* not installed: the next resolution builds again even if
			 * nothing changed by then */
			d->stale = !hs || px_cluster_set_hosts(cl, hs) < 0;
			if (d->stale)
				log_warn("meshproxy", "cluster %s: out of memory updating the hosts of %s", cl->name,
					 t->name);
		}
	} else {
		px_cst(cl)->update_failure++;
		if (!t->failing) {
			t->failing = 1;
			log_warn("meshproxy", "cluster %s: resolving %s failed: %s (keeping its %zu last address%s)",
				 cl->name, t->name, status == -ENOENT ? "no such name or no address of the family"
						    : status == -ETIMEDOUT ? "timed out" : mesh_strerror(status),
				 t->n, t->n == 1 ? "" : "es");
		}
	}
	ev_timer_arm(d->e->loop, &t->t, d->refresh_ms);
}

static void target_start(struct dnscl_target *t)
{
	struct dnscl *d = t->d;
	int rc;

	if (t->q)
		return;
	px_cst(d->cl)->update_attempt++;
	rc = dns_resolve(d->e->dns, t->name, d->fam, target_done, t, &t->q);
	if (rc < 0) {
		/* not even started: counted as a failed resolution, tried again later */
		t->q = NULL;
		target_done(t, rc, NULL, 0);
	}
}

static void target_free(struct dnscl_target *t)
{
	if (!t)
		return;
	dns_cancel(t->q);
	ev_timer_cancel(t->d->e->loop, &t->t);
	free(t->name);
	free(t);
}

bool dnscl_warm(const struct dnscl *d)
{
	size_t i;

	for (i = 0; d && i < d->n_t; i++)
		if (!d->t[i]->done)
			return false;
	return true;
}

const char *dnscl_hostname(const struct dnscl *d, const struct sockaddr *sa)
{
	struct dns_addr a;
	size_t i, k;

	if (!d || (sa->sa_family != AF_INET && sa->sa_family != AF_INET6))
		return NULL;
	memset(&a, 0, sizeof(a));
	if (sa->sa_family == AF_INET) {
		a.u.in4.sin_family = AF_INET;
		a.u.in4.sin_addr = ((const struct sockaddr_in *)sa)->sin_addr;
		a.len = sizeof(a.u.in4);
	} else {
		a.u.in6.sin6_family = AF_INET6;
		a.u.in6.sin6_addr = ((const struct sockaddr_in6 *)sa)->sin6_addr;
		a.u.in6.sin6_scope_id = ((const struct sockaddr_in6 *)sa)->sin6_scope_id;
		a.len = sizeof(a.u.in6);
	}
	for (i = 0; i < d->n_t; i++)
		for (k = 0; k < d->t[i]->n; k++)
			if (dns_addrs_equal(&d->t[i]->addrs[k], 1, &a, 1))
				return d->t[i]->name;
	return NULL;
}

void dnscl_detach(struct px_cluster *cl)
{
	struct dnscl *d = cl->dns;
	size_t i;

	if (!d)
		return;
	for (i = 0; i < d->n_t; i++)
		target_free(d->t[i]);
	free(d->t);
	px_resource_unref(d->src);
	free(d);
	cl->dns = NULL;
}

/* The distinct names of m's load assignment (IPs left out) into d's
 * targets: kept ones keep their state, new ones are made (not started). */
static int set_targets(struct dnscl *d, const Envoy__Config__Cluster__V3__Cluster *m)
{
	const Envoy__Config__Endpoint__V3__ClusterLoadAssignment *cla = m->load_assignment;
	struct dnscl_target **nv;
	size_t i, j, k, n = 0, total = 0;

	for (i = 0; cla && i < cla->n_endpoints; i++)
		total += cla->endpoints[i]->n_lb_endpoints;
	nv = calloc(total + 1, sizeof(*nv));
	if (!nv)
		return -ENOMEM;
	for (k = 0; k < d->n_t; k++)
		d->t[k]->keep = 0;
	for (i = 0; cla && i < cla->n_endpoints; i++)
		for (j = 0; j < cla->endpoints[i]->n_lb_endpoints; j++) {
			const char *name = ep_name(cla->endpoints[i]->lb_endpoints[j]);
			struct dnscl_target *t = NULL;

			if (!name || is_ip(name))
				continue;
			for (k = 0; k < n && strcmp(nv[k]->name, name); k++)
				;
			if (k < n)
				continue; /* listed twice (two ports): one lookup */
			for (k = 0; k < d->n_t; k++)
				if (!d->t[k]->keep && !strcmp(d->t[k]->name, name)) {
					t = d->t[k];
					break;
				}
			if (!t) {
				t = calloc(1, sizeof(*t));
				if (!t || !(t->name = strdup(name))) {
					free(t);
					for (k = 0; k < n; k++)
						if (nv[k]->fresh) {
							free(nv[k]->name);
							free(nv[k]);
						}
					free(nv);
					return -ENOMEM;
				}
				t->d = d;
				t->fresh = 1;
				ev_timer_init(&t->t, target_timer, t);
			}
			t->keep = 1;
			nv[n++] = t;
		}
	for (k = 0; k < d->n_t; k++)
		if (!d->t[k]->keep)
			target_free(d->t[k]);
	for (k = 0; k < n; k++)
		nv[k]->fresh = 0;
	free(d->t);
	d->t = nv;
	d->n_t = n;
	return 0;
}

struct up_hostset *dnscl_attach(struct engine *e, struct px_cluster *cl, const struct px_resource *r,
				struct up_cluster *up, struct up_hostset *names_hs)
{
	const Envoy__Config__Cluster__V3__Cluster *m = r ? (const void *)px_resource_msg(r) : NULL;
	struct dnscl *d = cl->dns;
	struct up_hostset *hs;
	size_t i;

	if (!m || !e->dns)
		return names_hs;
	if (!d) {
		d = calloc(1, sizeof(*d));
		if (!d)
			return names_hs;
		d->e = e;
		d->cl = cl;
		cl->dns = d;
	}
	px_resource_unref(d->src);
	d->src = px_resource_ref((struct px_resource *)r);
	d->logical = up->type == UP_LOGICAL_DNS;
	d->fam = (int)m->dns_lookup_family <= (int)DNS_ALL ? (enum dns_family)m->dns_lookup_family : DNS_AUTO;
	d->refresh_ms = DNSCL_REFRESH_DEFAULT_MS;
	if (m->dns_refresh_rate && (m->dns_refresh_rate->seconds > 0 || m->dns_refresh_rate->nanos > 0))
		d->refresh_ms = (uint64_t)m->dns_refresh_rate->seconds * 1000u +
				(uint64_t)m->dns_refresh_rate->nanos / 1000000u;
	if (!d->refresh_ms)
		d->refresh_ms = 1; /* Envoy requires more than 1 ms; a sub-ms rate is not a busy loop here */
	if (set_targets(d, m) < 0)
		return names_hs;
	for (i = 0; i < d->n_t; i++)
		if (!d->t[i]->done && !d->t[i]->q)
			target_start(d->t[i]);
	hs = build(d, up, cl->hs);
	if (!hs)
		return names_hs;
	up_hostset_free(names_hs);
	return hs;
}
