/*
 * route_stub.c - see route_stub.h.  A stand-in, deliberately small: domain
 * matching (exact, "*.suffix", "prefix*", "*"), prefix/path matches (header,
 * query and regex matches make a route never match rather than match too
 * much), the first matching route wins.  Deleted when router.{c,h} merges.
 */
#include "dataplane/route_stub.h"

#include "envoy/extensions/filters/http/fault/v3/fault.pb-c.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct rs_route {
	int kind; /* 0 prefix, 1 path, 2 never */
	const char *match;
	size_t mlen;
	struct px_route r;
	struct px_hdr_edit *edits;   /* owned: req_add then resp_add */
	const char **removes;        /* owned: req_remove then resp_remove */
};

struct rs_vhost {
	char **domains;
	size_t n_domains;
	struct rs_route *routes;
	size_t n_routes;
};

struct rstub {
	struct rs_vhost *vh;
	size_t n_vh;
	struct px_weighted *wc; /* all weighted clusters, one allocation */
};

static uint64_t dur_ms(const Google__Protobuf__Duration *d)
{
	if (!d || d->seconds < 0)
		return 0;
	return (uint64_t)d->seconds * 1000 + (uint64_t)d->nanos / 1000000;
}

static unsigned parse_retry_on(const char *s)
{
	unsigned bits = 0;
	const char *p = s;

	while (p && *p) {
		const char *e = strchr(p, ',');
		size_t n = e ? (size_t)(e - p) : strlen(p);
#define RS_IS(name) (n == sizeof(name) - 1 && !strncmp(p, name, n))
		if (RS_IS("5xx"))
			bits |= PX_RETRY_5XX;
		else if (RS_IS("gateway-error"))
			bits |= PX_RETRY_GATEWAY;
		else if (RS_IS("connect-failure"))
			bits |= PX_RETRY_CONNECT_FAILURE;
		else if (RS_IS("reset"))
			bits |= PX_RETRY_RESET;
		else if (RS_IS("retriable-4xx"))
			bits |= PX_RETRY_4XX;
		else if (RS_IS("retriable-status-codes"))
			bits |= PX_RETRY_STATUS_CODES;
		else if (RS_IS("refused-stream"))
			bits |= PX_RETRY_REFUSED_STREAM;
#undef RS_IS
		p = e ? e + 1 : NULL;
	}
	return bits;
}

static uint32_t pct_per_million(const Envoy__Type__V3__FractionalPercent *p)
{
	uint64_t n;

	if (!p)
		return 1000000; /* Envoy: an absent percentage means 100% */
	n = p->numerator;
	switch (p->denominator) {
	case ENVOY__TYPE__V3__FRACTIONAL_PERCENT__DENOMINATOR_TYPE__HUNDRED: n *= 10000; break;
	case ENVOY__TYPE__V3__FRACTIONAL_PERCENT__DENOMINATOR_TYPE__TEN_THOUSAND: n *= 100; break;
	default: break;
	}
	return n > 1000000 ? 1000000 : (uint32_t)n;
}

static void compile_fault(const Envoy__Config__Route__V3__Route *rt, struct px_route *r)
{
	size_t i;

	for (i = 0; i < rt->n_typed_per_filter_config; i++) {
		const Google__Protobuf__Any *any = rt->typed_per_filter_config[i]->value;
		Envoy__Extensions__Filters__Http__Fault__V3__HTTPFault *f;

		if (strcmp(rt->typed_per_filter_config[i]->key, "envoy.filters.http.fault") || !any)
			continue;
		f = envoy__extensions__filters__http__fault__v3__httpfault__unpack(NULL, any->value.len,
										   any->value.data);
		if (!f)
			continue;
		if (f->delay && f->delay->fault_delay_secifier_case ==
				       ENVOY__EXTENSIONS__FILTERS__COMMON__FAULT__V3__FAULT_DELAY__FAULT_DELAY_SECIFIER_FIXED_DELAY) {
			r->fault_delay_ms = dur_ms(f->delay->fixed_delay);
			r->fault_delay_pct = pct_per_million(f->delay->percentage);
		}
		if (f->abort && f->abort->error_type_case ==
				       ENVOY__EXTENSIONS__FILTERS__HTTP__FAULT__V3__FAULT_ABORT__ERROR_TYPE_HTTP_STATUS) {
			r->fault_abort_status = f->abort->http_status;
			r->fault_abort_pct = pct_per_million(f->abort->percentage);
		}
		envoy__extensions__filters__http__fault__v3__httpfault__free_unpacked(f, NULL);
	}
}

static void edit_from(const Envoy__Config__Core__V3__HeaderValueOption *o, struct px_hdr_edit *e)
{
	e->name = o->header ? o->header->key : "";
	e->value = o->header ? o->header->value : "";
	e->mode = PX_HDR_APPEND;
	if ((o->append && !o->append->value) ||
	    o->append_action == ENVOY__CONFIG__CORE__V3__HEADER_VALUE_OPTION__HEADER_APPEND_ACTION__OVERWRITE_IF_EXISTS_OR_ADD)
		e->mode = PX_HDR_SET;
	else if (o->append_action == ENVOY__CONFIG__CORE__V3__HEADER_VALUE_OPTION__HEADER_APPEND_ACTION__ADD_IF_ABSENT)
		e->mode = PX_HDR_IF_ABSENT;
}

static int compile_edits(const Envoy__Config__Route__V3__VirtualHost *vh, const Envoy__Config__Route__V3__Route *rt,
			 struct rs_route *o)
{
	size_t na = rt->n_request_headers_to_add + vh->n_request_headers_to_add;
	size_t nb = rt->n_response_headers_to_add + vh->n_response_headers_to_add;
	size_t nr = rt->n_request_headers_to_remove + vh->n_request_headers_to_remove;
	size_t ns = rt->n_response_headers_to_remove + vh->n_response_headers_to_remove;
	size_t i, k = 0;

	if (!na && !nb && !nr && !ns)
		return 0;
	o->edits = calloc(na + nb + 1, sizeof(*o->edits));
	o->removes = calloc(nr + ns + 1, sizeof(*o->removes));
	if (!o->edits || !o->removes)
		return -ENOMEM;
	for (i = 0; i < rt->n_request_headers_to_add; i++)
		edit_from(rt->request_headers_to_add[i], &o->edits[k++]);
	for (i = 0; i < vh->n_request_headers_to_add; i++)
		edit_from(vh->request_headers_to_add[i], &o->edits[k++]);
	for (i = 0; i < rt->n_response_headers_to_add; i++)
		edit_from(rt->response_headers_to_add[i], &o->edits[k++]);
	for (i = 0; i < vh->n_response_headers_to_add; i++)
		edit_from(vh->response_headers_to_add[i], &o->edits[k++]);
	o->r.req_add = o->edits;
	o->r.n_req_add = na;
	o->r.resp_add = o->edits + na;
	o->r.n_resp_add = nb;
	k = 0;
	for (i = 0; i < rt->n_request_headers_to_remove; i++)
		o->removes[k++] = rt->request_headers_to_remove[i];
	for (i = 0; i < vh->n_request_headers_to_remove; i++)
		o->removes[k++] = vh->request_headers_to_remove[i];
	for (i = 0; i < rt->n_response_headers_to_remove; i++)
		o->removes[k++] = rt->response_headers_to_remove[i];
	for (i = 0; i < vh->n_response_headers_to_remove; i++)
		o->removes[k++] = vh->response_headers_to_remove[i];
	o->r.req_remove = o->removes;
	o->r.n_req_remove = nr;
	o->r.resp_remove = o->removes + nr;
	o->r.n_resp_remove = ns;
	return 0;
}

static int compile_route(const Envoy__Config__Route__V3__VirtualHost *vh, const Envoy__Config__Route__V3__Route *rt,
			 struct rs_route *o, struct px_weighted **wc)
{
	const Envoy__Config__Route__V3__RouteMatch *m = rt->match;
	struct px_route *r = &o->r;
	size_t i;

	memset(o, 0, sizeof(*o));
	r->vhost_name = vh->name;
	r->route_name = rt->name;
	r->attempt_count = vh->include_request_attempt_count;
	o->kind = 2;
	if (m && m->n_headers == 0 && m->n_query_parameters == 0) {
		if (m->path_specifier_case == ENVOY__CONFIG__ROUTE__V3__ROUTE_MATCH__PATH_SPECIFIER_PREFIX) {
			o->kind = 0;
			o->match = m->prefix;
		} else if (m->path_specifier_case == ENVOY__CONFIG__ROUTE__V3__ROUTE_MATCH__PATH_SPECIFIER_PATH) {
			o->kind = 1;
			o->match = m->path;
		}
		o->mlen = o->match ? strlen(o->match) : 0;
	}
	compile_fault(rt, r);
	if (compile_edits(vh, rt, o) < 0)
		return -ENOMEM;
	switch (rt->action_case) {
	case ENVOY__CONFIG__ROUTE__V3__ROUTE__ACTION_ROUTE: {
		const Envoy__Config__Route__V3__RouteAction *a = rt->route;
		const Envoy__Config__Route__V3__RetryPolicy *rp = a->retry_policy ? a->retry_policy : vh->retry_policy;

		if (a->cluster_specifier_case == ENVOY__CONFIG__ROUTE__V3__ROUTE_ACTION__CLUSTER_SPECIFIER_CLUSTER) {
			r->cluster = a->cluster;
		} else if (a->cluster_specifier_case ==
			   ENVOY__CONFIG__ROUTE__V3__ROUTE_ACTION__CLUSTER_SPECIFIER_WEIGHTED_CLUSTERS) {
			r->weighted = *wc;
			for (i = 0; i < a->weighted_clusters->n_clusters; i++) {
				const Envoy__Config__Route__V3__WeightedCluster__ClusterWeight *cw =
					a->weighted_clusters->clusters[i];

				(*wc)->cluster = cw->name;
				(*wc)->weight = cw->weight ? cw->weight->value : 0;
				r->total_weight += (*wc)->weight;
				(*wc)++;
				r->n_weighted++;
			}
		}
		/* Envoy: an unset route timeout is 15 s; "0s" disables it */
		r->timeout_ms = a->timeout ? dur_ms(a->timeout) : 15000;
		if (rp) {
			r->num_retries = rp->num_retries ? rp->num_retries->value : 1;
			r->retry_on = parse_retry_on(rp->retry_on);
			r->per_try_timeout_ms = dur_ms(rp->per_try_timeout);
			r->retriable_codes = rp->retriable_status_codes;
			r->n_retriable_codes = rp->n_retriable_status_codes;
			for (i = 0; i < rp->n_retry_host_predicate; i++)
				if (strstr(rp->retry_host_predicate[i]->name, "previous_hosts"))
					r->previous_hosts = 1;
			r->backoff_base_ms = 25; /* Envoy's defaults */
			r->backoff_max_ms = 250;
			if (rp->retry_back_off) {
				if (dur_ms(rp->retry_back_off->base_interval))
					r->backoff_base_ms = dur_ms(rp->retry_back_off->base_interval);
				r->backoff_max_ms = rp->retry_back_off->max_interval
							    ? dur_ms(rp->retry_back_off->max_interval)
							    : r->backoff_base_ms * 10;
			}
		}
		if (a->prefix_rewrite && *a->prefix_rewrite) {
			r->prefix_rewrite = a->prefix_rewrite;
			r->prefix_match = o->kind == 0 ? o->match : NULL;
		}
		if (a->host_rewrite_specifier_case ==
		    ENVOY__CONFIG__ROUTE__V3__ROUTE_ACTION__HOST_REWRITE_SPECIFIER_HOST_REWRITE_LITERAL)
			r->host_rewrite = a->host_rewrite_literal;
		if (a->n_request_mirror_policies && *a->request_mirror_policies[0]->cluster) {
			const Envoy__Config__Route__V3__RouteAction__RequestMirrorPolicy *mp = a->request_mirror_policies[0];

			r->mirror_cluster = mp->cluster;
			r->mirror_pct = mp->runtime_fraction ? pct_per_million(mp->runtime_fraction->default_value)
							     : 1000000;
		}
		break;
	}
	case ENVOY__CONFIG__ROUTE__V3__ROUTE__ACTION_DIRECT_RESPONSE:
		r->direct_status = rt->direct_response->status;
		if (rt->direct_response->body && rt->direct_response->body->specifier_case ==
							 ENVOY__CONFIG__CORE__V3__DATA_SOURCE__SPECIFIER_INLINE_STRING)
			r->direct_body = rt->direct_response->body->inline_string;
		break;
	case ENVOY__CONFIG__ROUTE__V3__ROUTE__ACTION_REDIRECT: {
		const Envoy__Config__Route__V3__RedirectAction *ra = rt->redirect;
		static const uint32_t codes[] = { 301, 302, 303, 307, 308 };

		r->redirect_status = (unsigned)ra->response_code < 5 ? codes[ra->response_code] : 301;
		r->redirect_host = *ra->host_redirect ? ra->host_redirect : NULL;
		r->redirect_port = ra->port_redirect;
		if (ra->path_rewrite_specifier_case ==
		    ENVOY__CONFIG__ROUTE__V3__REDIRECT_ACTION__PATH_REWRITE_SPECIFIER_PATH_REDIRECT)
			r->redirect_path = ra->path_redirect;
		if (ra->scheme_rewrite_specifier_case ==
		    ENVOY__CONFIG__ROUTE__V3__REDIRECT_ACTION__SCHEME_REWRITE_SPECIFIER_SCHEME_REDIRECT)
			r->redirect_scheme = ra->scheme_redirect;
		else if (ra->scheme_rewrite_specifier_case ==
				 ENVOY__CONFIG__ROUTE__V3__REDIRECT_ACTION__SCHEME_REWRITE_SPECIFIER_HTTPS_REDIRECT &&
			 ra->https_redirect)
			r->redirect_scheme = "https";
		break;
	}
	default:
		o->kind = 2;
		break;
	}
	return 0;
}

int rstub_new(const Envoy__Config__Route__V3__RouteConfiguration *rc, struct rstub **out, char *err, size_t cap)
{
	struct rstub *r;
	struct px_weighted *wc;
	size_t i, j, nw = 0;
	int rc_ = 0;

	*out = NULL;
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	for (i = 0; i < rc->n_virtual_hosts; i++)
		for (j = 0; j < rc->virtual_hosts[i]->n_routes; j++) {
			const Envoy__Config__Route__V3__Route *rt = rc->virtual_hosts[i]->routes[j];

			if (rt->action_case == ENVOY__CONFIG__ROUTE__V3__ROUTE__ACTION_ROUTE &&
			    rt->route->cluster_specifier_case ==
				    ENVOY__CONFIG__ROUTE__V3__ROUTE_ACTION__CLUSTER_SPECIFIER_WEIGHTED_CLUSTERS)
				nw += rt->route->weighted_clusters->n_clusters;
		}
	r->vh = calloc(rc->n_virtual_hosts + 1, sizeof(*r->vh));
	r->wc = calloc(nw + 1, sizeof(*r->wc));
	if (!r->vh || !r->wc) {
		rc_ = -ENOMEM;
		goto out;
	}
	wc = r->wc;
	r->n_vh = rc->n_virtual_hosts;
	for (i = 0; i < rc->n_virtual_hosts; i++) {
		const Envoy__Config__Route__V3__VirtualHost *vh = rc->virtual_hosts[i];
		struct rs_vhost *v = &r->vh[i];

		if (vh->n_domains == 0) {
			snprintf(err, cap, "route config %s: virtual host %s has no domains", rc->name, vh->name);
			rc_ = -EINVAL;
			goto out;
		}
		v->domains = vh->domains;
		v->n_domains = vh->n_domains;
		v->routes = calloc(vh->n_routes + 1, sizeof(*v->routes));
		if (!v->routes) {
			rc_ = -ENOMEM;
			goto out;
		}
		v->n_routes = vh->n_routes;
		for (j = 0; j < vh->n_routes; j++) {
			if (!vh->routes[j]->match) {
				snprintf(err, cap, "route config %s: virtual host %s: route %zu has no match", rc->name,
					 vh->name, j);
				rc_ = -EINVAL;
				goto out;
			}
			rc_ = compile_route(vh, vh->routes[j], &v->routes[j], &wc);
			if (rc_ < 0)
				goto out;
		}
	}
	*out = r;
	r = NULL;
out:
	rstub_free(r);
	return rc_;
}

void rstub_free(struct rstub *r)
{
	size_t i;

	if (!r)
		return;
	for (i = 0; i < r->n_vh; i++) {
		size_t j;

		for (j = 0; r->vh[i].routes && j < r->vh[i].n_routes; j++) {
			free(r->vh[i].routes[j].edits);
			free(r->vh[i].routes[j].removes);
		}
		free(r->vh[i].routes);
	}
	free(r->vh);
	free(r->wc);
	free(r);
}

/* Envoy's order: exact domain, then longest suffix wildcard, then longest prefix wildcard, then "*". */
static int domain_score(const char *d, const char *a, size_t alen)
{
	size_t dl = strlen(d);

	if (dl == 1 && d[0] == '*')
		return 1;
	if (dl == alen && !strncasecmp(d, a, alen))
		return 1 << 20;
	if (d[0] == '*' && dl - 1 <= alen && !strncasecmp(d + 1, a + alen - (dl - 1), dl - 1))
		return (1 << 18) + (int)dl;
	if (dl > 1 && d[dl - 1] == '*' && dl - 1 <= alen && !strncasecmp(d, a, dl - 1))
		return (1 << 16) + (int)dl;
	return 0;
}

const struct px_route *rstub_match(const struct rstub *r, const char *authority, size_t alen, const char *path,
				   size_t plen)
{
	const struct rs_vhost *best = NULL;
	int best_score = 0;
	size_t i, j;

	for (i = 0; i < r->n_vh; i++)
		for (j = 0; j < r->vh[i].n_domains; j++) {
			int s = domain_score(r->vh[i].domains[j], authority, alen);

			if (s == 1 << 20) { /* exact: nothing beats it */
				best = &r->vh[i];
				i = r->n_vh;
				break;
			}
			if (s > best_score) {
				best_score = s;
				best = &r->vh[i];
			}
		}
	if (!best)
		return NULL;
	for (j = 0; j < best->n_routes; j++) {
		const struct rs_route *rt = &best->routes[j];
		size_t pl = plen;
		const char *q = memchr(path, '?', plen);

		if (q)
			pl = (size_t)(q - path);
		if (rt->kind == 0 && rt->mlen <= plen && !memcmp(rt->match, path, rt->mlen))
			return &rt->r;
		if (rt->kind == 1 && rt->mlen == pl && !memcmp(rt->match, path, pl))
			return &rt->r;
	}
	return NULL;
}
