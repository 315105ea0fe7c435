/*
 * route.c - RDS: the outbound route configurations.
 *
 * One RouteConfiguration "HOST:PORT" per service port, holding one
 * VirtualHost whose routes come from the one VirtualService that routes
 * the host (model_virtual_service(): Istio keeps the oldest and does not
 * merge them; delegates come merged into their root).  Each http route
 * becomes one Route per match that applies to this port (or one
 * catch-all); a catch-all ends the list, as in Istio.  With no
 * VirtualService, or none that yields a route for this port, the host
 * gets Istio's default route; when its routes have no catch-all, a
 * profile with no_match_fallback (proxyless) gets a final one that fails
 * the call with UNAVAILABLE (gRPC 1.51 crashes on a call no route matches).
 * Matches on the caller's labels or namespace are evaluated for the
 * calling workload when the output is built per caller (profile
 * per_caller_matches); in a snapshot shared by every client they are left
 * out, since it cannot tell callers apart.
 *
 * What the profile decides (proxyless: the gRPC 1.51 floor): header
 * matchers use string_match or the old exact/prefix/safe_regex/present
 * fields; weighted clusters carry total_weight equal to the sum of their
 * weights or none; the timeout is sent as max_stream_duration too (what
 * gRPC reads).  Redirects, rewrites, mirrors and header edits mean
 * nothing to a gRPC client and are not sent; the places where a profile
 * that allows them gets them built are marked "slot".
 */
#include "controlplane/gen/gen_int.h"
#include "controlplane/model/gateway.h"
#include "controlplane/model/policy.h"

#include "common/err.h"

#include "envoy/config/route/v3/route.pb-c.h"
#include "envoy/config/route/v3/route_components.pb-c.h"
#include "envoy/extensions/filters/http/cors/v3/cors.pb-c.h"
#include "envoy/extensions/filters/http/fault/v3/fault.pb-c.h"
#include "envoy/extensions/filters/common/fault/v3/fault.pb-c.h"
#include "envoy/extensions/retry/host/previous_hosts/v3/previous_hosts.pb-c.h"
#include "envoy/extensions/retry/priority/previous_priorities/v3/previous_priorities_config.pb-c.h"
#include "envoy/type/matcher/v3/regex.pb-c.h"
#include "envoy/type/matcher/v3/string.pb-c.h"
#include "envoy/type/v3/percent.pb-c.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef Envoy__Config__Route__V3__Route gen_route;
typedef Envoy__Config__Route__V3__RouteMatch gen_match;
typedef Envoy__Config__Route__V3__RouteAction gen_action;
typedef Envoy__Config__Route__V3__HeaderMatcher gen_header;
typedef Envoy__Config__Route__V3__RouteAction__HashPolicy gen_hash;

/* Istio's retry policy when a route has no `retries`. */
#define GEN_DEFAULT_RETRY_ON "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes"
#define GEN_DEFAULT_ATTEMPTS 2
/* ... and its retriable_status_codes (retry.go defaultPolicy(), unless
 * istiod runs with EXCLUDE_503_FROM_DEFAULT_RETRY), for the sidecar */
#define GEN_DEFAULT_RETRY_STATUS 503u
/* Fault percentages are sent per million so fractional percents survive. */
#define GEN_PER_MILLION      1000000u
/* Routes in one RouteConfiguration. */
#define GEN_MAX_ROUTES       4096
/* Istio's retry host predicate and its host selection attempts. */
#define GEN_PREVIOUS_HOSTS   "envoy.retry_host_predicates.previous_hosts"
#define GEN_HOST_SELECTION_ATTEMPTS 5
/* Istio's retry priority for retryRemoteLocalities, and its update frequency */
#define GEN_PREVIOUS_PRIORITIES "envoy.retry_priorities.previous_priorities"
#define GEN_PRIORITY_UPDATE_FREQUENCY 2

static Envoy__Type__V3__FractionalPercent *gen_percent(struct arena *a, double pct);
static Envoy__Type__V3__FractionalPercent *gen_percent_hundred(struct arena *a, uint32_t n);

struct gen_rctx {
	const struct gen_ctx *g;
	const struct model *m;
	const struct model_service *svc;
	uint32_t port;               /* the listener's port */
	struct arena *a;
	gen_route **routes;
	size_t n_routes, cap_routes;
	bool done;                   /* a catch-all was emitted */
	/* header edits of the one destination of the last action built
	 * (profile header_edits; NULL for weighted clusters) */
	const struct cfg_headers *dest_headers;
	/* the Gateway ("ns/name") the routes are built for (gen__gateway_routes,
	 * set by gen/gateway.c); NULL: the mesh's sidecars and proxyless clients */
	const char *gateway;
	const char *vs_ns;           /* the VirtualService's namespace, with gateway */
};

static int gen_push_route(struct gen_rctx *c, gen_route *r)
{
	gen_route **v;

	if (c->n_routes == c->cap_routes) {
		size_t cap = c->cap_routes ? c->cap_routes * 2 : 8;

		if (cap > GEN_MAX_ROUTES)
			return -MESH_ETOOBIG;
		v = arena_calloc(c->a, cap, sizeof(*v));
		if (!v)
			return -ENOMEM;
		if (c->n_routes)
			memcpy(v, c->routes, c->n_routes * sizeof(*v));
		c->routes = v;
		c->cap_routes = cap;
	}
	c->routes[c->n_routes++] = r;
	return 0;
}

/* ---------------------------------------------------------------- matches */

static Envoy__Type__Matcher__V3__RegexMatcher *gen_regex(struct arena *a, const char *re)
{
	Envoy__Type__Matcher__V3__RegexMatcher *m = gen__msg(a, &envoy__type__matcher__v3__regex_matcher__descriptor);
	Envoy__Type__Matcher__V3__RegexMatcher__GoogleRE2 *g =
		gen__msg(a, &envoy__type__matcher__v3__regex_matcher__google_re2__descriptor);

	if (!m || !g)
		return NULL;
	m->engine_type_case = ENVOY__TYPE__MATCHER__V3__REGEX_MATCHER__ENGINE_TYPE_GOOGLE_RE2;
	m->google_re2 = g;
	m->regex = arena_strdup(a, re ? re : "");
	return m->regex ? m : NULL;
}

/* HeaderMatcher.string_match for an exact, prefix or regex match. */
static bool gen_header_string_match(struct arena *a, gen_header *h, const struct cfg_string_match *sm)
{
	Envoy__Type__Matcher__V3__StringMatcher *m = gen__msg(a, &envoy__type__matcher__v3__string_matcher__descriptor);
	const char *v = sm->value ? sm->value : "";

	if (!m)
		return false;
	switch (sm->type) {
	case CFG_MATCH_EXACT:
		m->match_pattern_case = ENVOY__TYPE__MATCHER__V3__STRING_MATCHER__MATCH_PATTERN_EXACT;
		m->exact = arena_strdup(a, v);
		if (!m->exact)
			return false;
		break;
	case CFG_MATCH_PREFIX:
		m->match_pattern_case = ENVOY__TYPE__MATCHER__V3__STRING_MATCHER__MATCH_PATTERN_PREFIX;
		m->prefix = arena_strdup(a, v);
		if (!m->prefix)
			return false;
		break;
	case CFG_MATCH_REGEX:
	default:
		m->match_pattern_case = ENVOY__TYPE__MATCHER__V3__STRING_MATCHER__MATCH_PATTERN_SAFE_REGEX;
		m->safe_regex = gen_regex(a, v);
		if (!m->safe_regex)
			return false;
		break;
	}
	h->header_match_specifier_case = ENVOY__CONFIG__ROUTE__V3__HEADER_MATCHER__HEADER_MATCH_SPECIFIER_STRING_MATCH;
	h->string_match = m;
	return true;
}

/* A HeaderMatcher for one config string match (CFG_MATCH_NONE: present),
 * with string_match when the profile takes it. */
static gen_header *gen_header_match(const struct gen_profile *p, struct arena *a, const char *name,
				    const struct cfg_string_match *sm, bool invert)
{
	gen_header *h = gen__msg(a, &envoy__config__route__v3__header_matcher__descriptor);
	const char *v = sm->value ? sm->value : "";

	if (!h)
		return NULL;
	h->name = arena_strdup(a, name);
	if (!h->name)
		return NULL;
	h->invert_match = invert;
	if (p->string_match && sm->type != CFG_MATCH_NONE && !(sm->type == CFG_MATCH_PREFIX && !*v))
		return gen_header_string_match(a, h, sm) ? h : NULL;
	switch (sm->type) {
	case CFG_MATCH_EXACT:
		h->header_match_specifier_case = ENVOY__CONFIG__ROUTE__V3__HEADER_MATCHER__HEADER_MATCH_SPECIFIER_EXACT_MATCH;
		h->exact_match = arena_strdup(a, v);
		if (!h->exact_match)
			return NULL;
		break;
	case CFG_MATCH_PREFIX:
		if (!*v) {
			/* An empty prefix matches any value: Envoy wants it non-empty. */
			h->header_match_specifier_case = ENVOY__CONFIG__ROUTE__V3__HEADER_MATCHER__HEADER_MATCH_SPECIFIER_PRESENT_MATCH;
			h->present_match = true;
			break;
		}
		h->header_match_specifier_case = ENVOY__CONFIG__ROUTE__V3__HEADER_MATCHER__HEADER_MATCH_SPECIFIER_PREFIX_MATCH;
		h->prefix_match = arena_strdup(a, v);
		if (!h->prefix_match)
			return NULL;
		break;
	case CFG_MATCH_REGEX:
		h->header_match_specifier_case =
			ENVOY__CONFIG__ROUTE__V3__HEADER_MATCHER__HEADER_MATCH_SPECIFIER_SAFE_REGEX_MATCH;
		h->safe_regex_match = gen_regex(a, v);
		if (!h->safe_regex_match)
			return NULL;
		break;
	case CFG_MATCH_NONE:
	default:
		h->header_match_specifier_case = ENVOY__CONFIG__ROUTE__V3__HEADER_MATCHER__HEADER_MATCH_SPECIFIER_PRESENT_MATCH;
		h->present_match = true;
		break;
	}
	return h;
}

/* Does this match apply to a client calling this port?  Matches on the
 * caller's labels or namespace depend on the client: evaluated for it
 * when the output is built per caller, left out of a shared snapshot,
 * which cannot know the caller. */
static bool gen_match_applies(const struct gen_rctx *c, const struct cfg_http_match *mt, uint32_t port)
{
	const struct gen_workload *caller = c->g->caller;

	if (mt->port >= 0 && (uint64_t)mt->port != port)
		return false;
	/* a match's own gateways narrow the VirtualService's (none: its) */
	if (c->gateway ? mt->gateways.n && !model_gateways_include(&mt->gateways, c->vs_ns, c->gateway)
		       : !model_gateways_include_mesh(&mt->gateways))
		return false;
	if (mt->source_labels.n > 0 || mt->source_namespace) {
		if (!c->g->p->per_caller_matches || !caller)
			return false;
		if (!model_labels_match(&mt->source_labels, gen__workload_labels(caller)))
			return false;
		if (mt->source_namespace && strcmp(mt->source_namespace, gen__workload_ns(caller)) != 0)
			return false;
	}
	return true;
}

static bool gen_uri_is_catchall(const struct cfg_string_match *u)
{
	if (u->type == CFG_MATCH_NONE)
		return true;
	if (u->type == CFG_MATCH_PREFIX && u->value && (!u->value[0] || strcmp(u->value, "/") == 0))
		return true;
	if (u->type == CFG_MATCH_REGEX && u->value && (strcmp(u->value, "*") == 0 || strcmp(u->value, ".*") == 0))
		return true;
	return false;
}

bool gen__match_is_catchall(const struct cfg_http_match *mt)
{
	if (!mt)
		return true;
	return gen_uri_is_catchall(&mt->uri) && mt->n_headers == 0 && mt->n_query_params == 0 &&
	       mt->method.type == CFG_MATCH_NONE && mt->authority.type == CFG_MATCH_NONE &&
	       mt->scheme.type == CFG_MATCH_NONE;
}

/* Query parameter matchers.  gRPC skips any route that has one (it cannot
 * see a query string), which keeps such routes from matching everything. */
static Envoy__Config__Route__V3__QueryParameterMatcher *gen_query_match(struct arena *a, const struct cfg_header_match *q)
{
	Envoy__Config__Route__V3__QueryParameterMatcher *qm =
		gen__msg(a, &envoy__config__route__v3__query_parameter_matcher__descriptor);
	Envoy__Type__Matcher__V3__StringMatcher *sm;
	const char *v = q->match.value ? q->match.value : "";

	if (!qm || !(qm->name = arena_strdup(a, q->name ? q->name : "")))
		return NULL;
	if (q->match.type == CFG_MATCH_NONE || (q->match.type == CFG_MATCH_EXACT && !*v)) {
		qm->query_parameter_match_specifier_case =
			ENVOY__CONFIG__ROUTE__V3__QUERY_PARAMETER_MATCHER__QUERY_PARAMETER_MATCH_SPECIFIER_PRESENT_MATCH;
		qm->present_match = true;
		return qm;
	}
	sm = gen__msg(a, &envoy__type__matcher__v3__string_matcher__descriptor);
	if (!sm)
		return NULL;
	switch (q->match.type) {
	case CFG_MATCH_PREFIX:
		sm->match_pattern_case = ENVOY__TYPE__MATCHER__V3__STRING_MATCHER__MATCH_PATTERN_PREFIX;
		sm->prefix = arena_strdup(a, v);
		if (!sm->prefix)
			return NULL;
		break;
	case CFG_MATCH_REGEX:
		sm->match_pattern_case = ENVOY__TYPE__MATCHER__V3__STRING_MATCHER__MATCH_PATTERN_SAFE_REGEX;
		sm->safe_regex = gen_regex(a, v);
		if (!sm->safe_regex)
			return NULL;
		break;
	case CFG_MATCH_EXACT:
	default:
		sm->match_pattern_case = ENVOY__TYPE__MATCHER__V3__STRING_MATCHER__MATCH_PATTERN_EXACT;
		sm->exact = arena_strdup(a, v);
		if (!sm->exact)
			return NULL;
		break;
	}
	qm->query_parameter_match_specifier_case =
		ENVOY__CONFIG__ROUTE__V3__QUERY_PARAMETER_MATCHER__QUERY_PARAMETER_MATCH_SPECIFIER_STRING_MATCH;
	qm->string_match = sm;
	return qm;
}

/* A StringMatcher for a config string match (exact when not set). */
static Envoy__Type__Matcher__V3__StringMatcher *gen_string_matcher(struct arena *a, const struct cfg_string_match *m)
{
	Envoy__Type__Matcher__V3__StringMatcher *sm = gen__msg(a, &envoy__type__matcher__v3__string_matcher__descriptor);
	const char *v = m->value ? m->value : "";

	if (!sm)
		return NULL;
	switch (m->type) {
	case CFG_MATCH_PREFIX:
		sm->match_pattern_case = ENVOY__TYPE__MATCHER__V3__STRING_MATCHER__MATCH_PATTERN_PREFIX;
		sm->prefix = arena_strdup(a, v);
		return sm->prefix ? sm : NULL;
	case CFG_MATCH_REGEX:
		sm->match_pattern_case = ENVOY__TYPE__MATCHER__V3__STRING_MATCHER__MATCH_PATTERN_SAFE_REGEX;
		sm->safe_regex = gen_regex(a, v);
		return sm->safe_regex ? sm : NULL;
	case CFG_MATCH_EXACT:
	default:
		sm->match_pattern_case = ENVOY__TYPE__MATCHER__V3__STRING_MATCHER__MATCH_PATTERN_EXACT;
		sm->exact = arena_strdup(a, v);
		return sm->exact ? sm : NULL;
	}
}

/* strs joined by "," (Envoy's CorsPolicy takes comma-separated lists); NULL when empty. */
static char *gen_join(struct arena *a, const struct cfg_strs *v)
{
	size_t i, len = 1;
	char *out, *p;

	if (v->n == 0)
		return NULL;
	for (i = 0; i < v->n; i++)
		len += strlen(v->v[i]) + 1;
	if (!(out = arena_alloc(a, len)))
		return NULL;
	p = out;
	for (i = 0; i < v->n; i++) {
		size_t l = strlen(v->v[i]);

		if (i)
			*p++ = ',';
		memcpy(p, v->v[i], l);
		p += l;
	}
	*p = 0;
	return out;
}

/* Istio's TranslateCORSPolicy (networking/core/route/route.go): the cors
 * filter's own policy, envoy.extensions.filters.http.cors.v3.CorsPolicy,
 * as the route's typed_per_filter_config "envoy.filters.http.cors" (what
 * Istio emits since Envoy deprecated RouteAction.cors): origins as string
 * matchers, methods, headers and exposed headers joined by ",", max_age in
 * whole seconds, allow_credentials when given, filter_enabled 100%,
 * forward_not_matching_preflights true (Istio's default, unmatchedPreflights
 * FORWARD).  *out is the Any.  Returns 0 or -ENOMEM. */
static int gen_cors(struct arena *a, const struct cfg_cors *in, Google__Protobuf__Any **out)
{
	Envoy__Extensions__Filters__Http__Cors__V3__CorsPolicy *cp =
		gen__msg(a, &envoy__extensions__filters__http__cors__v3__cors_policy__descriptor);
	Envoy__Config__Core__V3__RuntimeFractionalPercent *rf =
		gen__msg(a, &envoy__config__core__v3__runtime_fractional_percent__descriptor);
	size_t i;

	if (!cp || !rf)
		return -ENOMEM;
	if (in->n_allow_origins) {
		if (!(cp->allow_origin_string_match = arena_calloc(a, in->n_allow_origins, sizeof(*cp->allow_origin_string_match))))
			return -ENOMEM;
		for (i = 0; i < in->n_allow_origins; i++)
			if (!(cp->allow_origin_string_match[i] = gen_string_matcher(a, &in->allow_origins[i])))
				return -ENOMEM;
		cp->n_allow_origin_string_match = in->n_allow_origins;
	}
	if ((in->allow_methods.n && !(cp->allow_methods = gen_join(a, &in->allow_methods))) ||
	    (in->allow_headers.n && !(cp->allow_headers = gen_join(a, &in->allow_headers))) ||
	    (in->expose_headers.n && !(cp->expose_headers = gen_join(a, &in->expose_headers))))
		return -ENOMEM;
	if (in->max_age >= 0 && !(cp->max_age = arena_printf(a, "%lld", (long long)(in->max_age / 1000000000LL))))
		return -ENOMEM;
	if (in->allow_credentials >= 0 && !(cp->allow_credentials = gen__bool(a, in->allow_credentials != 0)))
		return -ENOMEM;
	if (!(rf->default_value = gen_percent_hundred(a, 100)) ||
	    !(cp->forward_not_matching_preflights = gen__bool(a, true)))
		return -ENOMEM;
	cp->filter_enabled = rf;
	*out = gen__any(a, &cp->base);
	return *out ? 0 : -ENOMEM;
}

/* mt NULL: the catch-all. */
static gen_match *gen_route_match(const struct gen_profile *p, struct arena *a, const struct cfg_http_match *mt)
{
	gen_match *rm = gen__msg(a, &envoy__config__route__v3__route_match__descriptor);
	size_t nh = 0, i;
	const char *v;

	if (!rm)
		return NULL;
	rm->path_specifier_case = ENVOY__CONFIG__ROUTE__V3__ROUTE_MATCH__PATH_SPECIFIER_PREFIX;
	rm->prefix = "";
	if (!mt)
		return rm;

	v = mt->uri.value ? mt->uri.value : "";
	switch (mt->uri.type) {
	case CFG_MATCH_EXACT:
		rm->path_specifier_case = ENVOY__CONFIG__ROUTE__V3__ROUTE_MATCH__PATH_SPECIFIER_PATH;
		rm->path = arena_strdup(a, v);
		if (!rm->path)
			return NULL;
		break;
	case CFG_MATCH_PREFIX:
		rm->prefix = arena_strdup(a, v);
		if (!rm->prefix)
			return NULL;
		break;
	case CFG_MATCH_REGEX:
		rm->path_specifier_case = ENVOY__CONFIG__ROUTE__V3__ROUTE_MATCH__PATH_SPECIFIER_SAFE_REGEX;
		rm->safe_regex = gen_regex(a, v);
		if (!rm->safe_regex)
			return NULL;
		break;
	case CFG_MATCH_NONE:
	default:
		break;
	}
	if (mt->ignore_uri_case) {
		rm->case_sensitive = gen__bool(a, false);
		if (!rm->case_sensitive)
			return NULL;
	}

	rm->headers = arena_calloc(a, mt->n_headers + 3, sizeof(*rm->headers));
	if (!rm->headers)
		return NULL;
	for (i = 0; i < mt->n_headers; i++) {
		const struct cfg_header_match *hm = &mt->headers[i];

		rm->headers[nh] = gen_header_match(p, a, hm->name, &hm->match, hm->invert);
		if (!rm->headers[nh++])
			return NULL;
	}
	if (mt->method.type != CFG_MATCH_NONE) {
		rm->headers[nh] = gen_header_match(p, a, ":method", &mt->method, false);
		if (!rm->headers[nh++])
			return NULL;
	}
	if (mt->authority.type != CFG_MATCH_NONE) {
		rm->headers[nh] = gen_header_match(p, a, ":authority", &mt->authority, false);
		if (!rm->headers[nh++])
			return NULL;
	}
	if (mt->scheme.type != CFG_MATCH_NONE) {
		rm->headers[nh] = gen_header_match(p, a, ":scheme", &mt->scheme, false);
		if (!rm->headers[nh++])
			return NULL;
	}
	rm->n_headers = nh;
	if (mt->n_query_params) {
		rm->query_parameters = arena_calloc(a, mt->n_query_params, sizeof(*rm->query_parameters));
		if (!rm->query_parameters)
			return NULL;
		for (i = 0; i < mt->n_query_params; i++)
			if (!(rm->query_parameters[i] = gen_query_match(a, &mt->query_params[i])))
				return NULL;
		rm->n_query_parameters = mt->n_query_params;
	}
	return rm;
}

/* ---------------------------------------------------------------- action */

struct gen_dest {
	char host[GEN_NAME_MAX];     /* FQDN */
	uint32_t port;
	const char *subset;
	uint32_t weight;
	const char *ns;              /* namespace the DestinationRule is looked up from; NULL: mesh-wide */
	const struct cfg_headers *headers; /* the destination's header edits */
};

static void gen_resolve_dest(const struct gen_rctx *c, const char *vs_ns,
			     const struct cfg_route_destination *rd, struct gen_dest *d)
{
	const struct model_service *ds;

	/* vs_ns NULL: meshd's own default / no-match route to the service
	 * itself, whose hostname is used as it is (Istio's default route names
	 * the service's own hostname: a ServiceEntry host without a dot stays
	 * "shorty"); a VirtualService's destinations are resolved against its
	 * namespace, short names to FQDNs, as Istio resolves them */
	if (!vs_ns)
		mesh_str_copy(d->host, sizeof(d->host), rd->destination.host);
	else
		model_resolve_host(c->m, rd->destination.host, vs_ns, d->host, sizeof(d->host));
	ds = model_find_service(c->m, d->host);
	if (rd->destination.port > 0)
		d->port = gen__clamp_u32(rd->destination.port);
	else if (ds && ds->n_ports == 1)
		d->port = ds->ports[0].number;
	else
		d->port = c->port;
	d->subset = rd->destination.subset;
	d->weight = rd->weight < 0 ? 0 : gen__clamp_u32(rd->weight);
	/* the DestinationRule the caller sees; a shared snapshot: the mesh-wide one */
	d->ns = gen__client_ns(c->g);
	d->headers = &rd->headers;
}

/* The consistent-hash settings that apply to one destination, or NULL. */
static const struct cfg_consistent_hash *gen_dest_hash(const struct gen_rctx *c, const struct gen_dest *d,
						       struct cfg_traffic_policy *pol)
{
	const struct cfg_object *dr = c->g->caller && c->g->p->per_caller_matches
					      ? model_destination_rule_for(c->m, d->host, d->ns,
									   gen__workload_labels(c->g->caller))
					      : model_destination_rule(c->m, d->host, NULL);

	model_dr_policy(dr, d->subset, d->port, pol);
	if (!pol->load_balancer.set || !pol->load_balancer.has_consistent_hash)
		return NULL;
	if (pol->load_balancer.consistent_hash.key == CFG_HASH_NONE)
		return NULL;
	return &pol->load_balancer.consistent_hash;
}

static bool gen_streq(const char *x, const char *y)
{
	if (!x || !y)
		return x == y;
	return strcmp(x, y) == 0;
}

static bool gen_hash_equal(const struct cfg_consistent_hash *x, const struct cfg_consistent_hash *y)
{
	return x->key == y->key && gen_streq(x->header_name, y->header_name) &&
	       gen_streq(x->cookie_name, y->cookie_name) && gen_streq(x->cookie_path, y->cookie_path) &&
	       x->cookie_ttl == y->cookie_ttl && gen_streq(x->query_param, y->query_param);
}

static gen_hash *gen_hash_policy(struct arena *a, const struct cfg_consistent_hash *h)
{
	gen_hash *hp = gen__msg(a, &envoy__config__route__v3__route_action__hash_policy__descriptor);

	if (!hp)
		return NULL;
	switch (h->key) {
	case CFG_HASH_HEADER: {
		Envoy__Config__Route__V3__RouteAction__HashPolicy__Header *x =
			gen__msg(a, &envoy__config__route__v3__route_action__hash_policy__header__descriptor);
		if (!x || !(x->header_name = arena_strdup(a, h->header_name ? h->header_name : "")))
			return NULL;
		hp->policy_specifier_case = ENVOY__CONFIG__ROUTE__V3__ROUTE_ACTION__HASH_POLICY__POLICY_SPECIFIER_HEADER;
		hp->header = x;
		break;
	}
	case CFG_HASH_COOKIE: {
		Envoy__Config__Route__V3__RouteAction__HashPolicy__Cookie *x =
			gen__msg(a, &envoy__config__route__v3__route_action__hash_policy__cookie__descriptor);
		if (!x || !(x->name = arena_strdup(a, h->cookie_name ? h->cookie_name : "")))
			return NULL;
		if (h->cookie_path && !(x->path = arena_strdup(a, h->cookie_path)))
			return NULL;
		if (h->cookie_ttl >= 0 && !(x->ttl = gen__duration(a, h->cookie_ttl)))
			return NULL;
		hp->policy_specifier_case = ENVOY__CONFIG__ROUTE__V3__ROUTE_ACTION__HASH_POLICY__POLICY_SPECIFIER_COOKIE;
		hp->cookie = x;
		break;
	}
	case CFG_HASH_SOURCE_IP: {
		Envoy__Config__Route__V3__RouteAction__HashPolicy__ConnectionProperties *x =
			gen__msg(a, &envoy__config__route__v3__route_action__hash_policy__connection_properties__descriptor);
		if (!x)
			return NULL;
		x->source_ip = true;
		hp->policy_specifier_case =
			ENVOY__CONFIG__ROUTE__V3__ROUTE_ACTION__HASH_POLICY__POLICY_SPECIFIER_CONNECTION_PROPERTIES;
		hp->connection_properties = x;
		break;
	}
	case CFG_HASH_QUERY_PARAM: {
		Envoy__Config__Route__V3__RouteAction__HashPolicy__QueryParameter *x =
			gen__msg(a, &envoy__config__route__v3__route_action__hash_policy__query_parameter__descriptor);
		if (!x || !(x->name = arena_strdup(a, h->query_param ? h->query_param : "")))
			return NULL;
		hp->policy_specifier_case =
			ENVOY__CONFIG__ROUTE__V3__ROUTE_ACTION__HASH_POLICY__POLICY_SPECIFIER_QUERY_PARAMETER;
		hp->query_parameter = x;
		break;
	}
	case CFG_HASH_NONE:
	default:
		return NULL;
	}
	return hp;
}

/* Istio's retryOn: HTTP status codes among the conditions become
 * retriable_status_codes (and "retriable-status-codes" is added once);
 * the other conditions are kept in order.  Returns 0 or -ENOMEM. */
static int gen_retry_on(struct arena *a, const char *in, Envoy__Config__Route__V3__RetryPolicy *rp)
{
	size_t len = strlen(in), n_codes = 0, out_len = 0;
	char *out = arena_alloc(a, len + sizeof(",retriable-status-codes"));
	uint32_t *codes = arena_calloc(a, len / 2 + 1, sizeof(*codes));
	bool has_rsc = false;
	const char *p = in;

	if (!out || !codes)
		return -ENOMEM;
	while (*p) {
		const char *comma = strchr(p, ',');
		size_t n = comma ? (size_t)(comma - p) : strlen(p);
		const char *b = p, *e = p + n;
		char *end;
		unsigned long code;

		while (b < e && (*b == ' ' || *b == '\t'))
			b++;
		while (e > b && (e[-1] == ' ' || e[-1] == '\t'))
			e--;
		if (e > b) {
			code = strtoul(b, &end, 10);
			if (end == e && *b >= '0' && *b <= '9' && code >= 100 && code <= 599) {
				codes[n_codes++] = (uint32_t)code;
			} else {
				if ((size_t)(e - b) == strlen("retriable-status-codes") &&
				    strncmp(b, "retriable-status-codes", (size_t)(e - b)) == 0)
					has_rsc = true;
				if (out_len)
					out[out_len++] = ',';
				memcpy(out + out_len, b, (size_t)(e - b));
				out_len += (size_t)(e - b);
			}
		}
		p = comma ? comma + 1 : p + n;
	}
	if (n_codes && !has_rsc) {
		const char *add = out_len ? ",retriable-status-codes" : "retriable-status-codes";

		memcpy(out + out_len, add, strlen(add));
		out_len += strlen(add);
	}
	out[out_len] = '\0';
	rp->retry_on = out;
	rp->retriable_status_codes = codes;
	rp->n_retriable_status_codes = n_codes;
	return 0;
}

/* Istio's retry_host_predicate: avoid the hosts already tried. */
static int gen_retry_previous_hosts(struct arena *a, Envoy__Config__Route__V3__RetryPolicy *rp)
{
	Envoy__Extensions__Retry__Host__PreviousHosts__V3__PreviousHostsPredicate ph =
		ENVOY__EXTENSIONS__RETRY__HOST__PREVIOUS_HOSTS__V3__PREVIOUS_HOSTS_PREDICATE__INIT;
	Envoy__Config__Route__V3__RetryPolicy__RetryHostPredicate *hp =
		gen__msg(a, &envoy__config__route__v3__retry_policy__retry_host_predicate__descriptor);

	if (!hp || !(rp->retry_host_predicate = arena_calloc(a, 1, sizeof(*rp->retry_host_predicate))))
		return -ENOMEM;
	hp->name = GEN_PREVIOUS_HOSTS;
	hp->config_type_case = ENVOY__CONFIG__ROUTE__V3__RETRY_POLICY__RETRY_HOST_PREDICATE__CONFIG_TYPE_TYPED_CONFIG;
	hp->typed_config = gen__any(a, &ph.base);
	if (!hp->typed_config)
		return -ENOMEM;
	rp->retry_host_predicate[0] = hp;
	rp->n_retry_host_predicate = 1;
	rp->host_selection_retry_max_attempts = GEN_HOST_SELECTION_ATTEMPTS;
	return 0;
}

/* Istio's retry_priority for retryRemoteLocalities: previous_priorities
 * with update_frequency 2.  Returns 0 or -ENOMEM. */
static int gen_retry_previous_priorities(struct arena *a, Envoy__Config__Route__V3__RetryPolicy *rp)
{
	Envoy__Extensions__Retry__Priority__PreviousPriorities__V3__PreviousPrioritiesConfig pp =
		ENVOY__EXTENSIONS__RETRY__PRIORITY__PREVIOUS_PRIORITIES__V3__PREVIOUS_PRIORITIES_CONFIG__INIT;
	Envoy__Config__Route__V3__RetryPolicy__RetryPriority *pr =
		gen__msg(a, &envoy__config__route__v3__retry_policy__retry_priority__descriptor);

	if (!pr)
		return -ENOMEM;
	pp.update_frequency = GEN_PRIORITY_UPDATE_FREQUENCY;
	pr->name = GEN_PREVIOUS_PRIORITIES;
	pr->config_type_case = ENVOY__CONFIG__ROUTE__V3__RETRY_POLICY__RETRY_PRIORITY__CONFIG_TYPE_TYPED_CONFIG;
	pr->typed_config = gen__any(a, &pp.base);
	if (!pr->typed_config)
		return -ENOMEM;
	rp->retry_priority = pr;
	return 0;
}

/* Returns 0 and *out (NULL when no retry policy), or -ENOMEM.  With the
 * profile's istio_retry, as Istio's retry.ConvertPolicy(): the default
 * policy retries a 503 too (retriable_status_codes [503]) and a `retries`
 * block without retryOn keeps it; retryOn status codes become
 * retriable_status_codes; previous_hosts is the host predicate unless the
 * route hashes (hashed, a retry must go back to the same host) or
 * retryIgnorePreviousHosts is false; retryRemoteLocalities adds the
 * previous_priorities retry priority; backoff is
 * retry_back_off.base_interval. */
static int gen_retry(const struct gen_profile *p, struct arena *a, const struct cfg_retries *r, bool hashed,
		     Envoy__Config__Route__V3__RetryPolicy **out)
{
	Envoy__Config__Route__V3__RetryPolicy *rp;
	const char *on = GEN_DEFAULT_RETRY_ON;
	uint32_t attempts = GEN_DEFAULT_ATTEMPTS;
	bool prev_hosts = !hashed, user_on = false;

	*out = NULL;
	if (r->set) {
		if (r->attempts <= 0)
			return 0;
		attempts = gen__clamp_u32(r->attempts);
		if (r->retry_on && r->retry_on[0]) {
			on = r->retry_on;
			user_on = true;
		}
		/* Istio: an explicit retryIgnorePreviousHosts decides, even hashed */
		if (r->ignore_previous_hosts >= 0)
			prev_hosts = r->ignore_previous_hosts == 1;
	}
	rp = gen__msg(a, &envoy__config__route__v3__retry_policy__descriptor);
	if (!rp || !(rp->num_retries = gen__u32(a, attempts)))
		return -ENOMEM;
	if (p->istio_retry) {
		if (gen_retry_on(a, on, rp) < 0)
			return -ENOMEM;
		if (!user_on) {
			/* the default conditions carry no code: 503 is added as data */
			if (!(rp->retriable_status_codes = arena_calloc(a, 1, sizeof(*rp->retriable_status_codes))))
				return -ENOMEM;
			rp->retriable_status_codes[0] = GEN_DEFAULT_RETRY_STATUS;
			rp->n_retriable_status_codes = 1;
		}
		if (prev_hosts && gen_retry_previous_hosts(a, rp) < 0)
			return -ENOMEM;
		rp->host_selection_retry_max_attempts = GEN_HOST_SELECTION_ATTEMPTS;
		if (r->set && r->retry_remote_localities && gen_retry_previous_priorities(a, rp) < 0)
			return -ENOMEM;
		if (r->set && r->backoff > 0) {
			rp->retry_back_off = gen__msg(a, &envoy__config__route__v3__retry_policy__retry_back_off__descriptor);
			if (!rp->retry_back_off || !(rp->retry_back_off->base_interval = gen__duration(a, r->backoff)))
				return -ENOMEM;
		}
	} else if (!(rp->retry_on = arena_strdup(a, on))) {
		return -ENOMEM;
	}
	if (r->set && r->per_try_timeout > 0 && !(rp->per_try_timeout = gen__duration(a, r->per_try_timeout)))
		return -ENOMEM;
	*out = rp;
	return 0;
}

/* ---------------------------------------------------------------- header edits */

/* Header operations as Istio writes them: set -> OVERWRITE_IF_EXISTS_OR_ADD,
 * add -> APPEND_IF_EXISTS_OR_ADD, remove -> the remove list.  Appends to
 * *add / *rm (arena arrays).  Returns 0 or -ENOMEM. */
static int gen_header_ops(struct arena *a, const struct cfg_header_ops *ops,
			  Envoy__Config__Core__V3__HeaderValueOption ***add, size_t *n_add, char ***rm, size_t *n_rm)
{
	size_t n = ops->set.n + ops->add.n, i, k;
	Envoy__Config__Core__V3__HeaderValueOption **v;
	char **r;

	if (n) {
		v = arena_calloc(a, *n_add + n, sizeof(*v));
		if (!v)
			return -ENOMEM;
		if (*n_add)
			memcpy(v, *add, *n_add * sizeof(*v));
		for (i = 0; i < n; i++) {
			bool set = i < ops->set.n;
			const struct cfg_kv *kv = set ? &ops->set.v[i] : &ops->add.v[i - ops->set.n];
			Envoy__Config__Core__V3__HeaderValueOption *o =
				gen__msg(a, &envoy__config__core__v3__header_value_option__descriptor);
			Envoy__Config__Core__V3__HeaderValue *h = gen__msg(a, &envoy__config__core__v3__header_value__descriptor);

			if (!o || !h)
				return -ENOMEM;
			h->key = kv->key;
			h->value = kv->value ? kv->value : "";
			o->header = h;
			o->append_action = set ? ENVOY__CONFIG__CORE__V3__HEADER_VALUE_OPTION__HEADER_APPEND_ACTION__OVERWRITE_IF_EXISTS_OR_ADD
					       : ENVOY__CONFIG__CORE__V3__HEADER_VALUE_OPTION__HEADER_APPEND_ACTION__APPEND_IF_EXISTS_OR_ADD;
			v[(*n_add)++] = o;
		}
		*add = v;
	}
	if (ops->remove.n) {
		r = arena_calloc(a, *n_rm + ops->remove.n, sizeof(*r));
		if (!r)
			return -ENOMEM;
		if (*n_rm)
			memcpy(r, *rm, *n_rm * sizeof(*r));
		for (k = 0; k < ops->remove.n; k++)
			r[(*n_rm)++] = ops->remove.v[k];
		*rm = r;
	}
	return 0;
}

/* The request and response edits of h onto a Route. */
static int gen_route_headers(struct arena *a, const struct cfg_headers *h, gen_route *r)
{
	int rc = gen_header_ops(a, &h->request, &r->request_headers_to_add, &r->n_request_headers_to_add,
				&r->request_headers_to_remove, &r->n_request_headers_to_remove);

	if (rc == 0)
		rc = gen_header_ops(a, &h->response, &r->response_headers_to_add, &r->n_response_headers_to_add,
				    &r->response_headers_to_remove, &r->n_response_headers_to_remove);
	return rc;
}

/* Build the route action for route hr of VirtualService vs. */
static int gen_action_build(struct gen_rctx *c, const struct cfg_object *vs, const struct cfg_http_route *hr,
			    gen_action **out)
{
	struct arena *a = c->a;
	gen_action *ra = gen__msg(a, &envoy__config__route__v3__route_action__descriptor);
	struct gen_dest *d = NULL;
	const struct cfg_consistent_hash *hash = NULL;
	struct cfg_traffic_policy pol, pol0;
	size_t i, n = 0;
	uint64_t total = 0;
	int rc = -ENOMEM;

	*out = NULL;
	if (!ra)
		goto out;
	d = calloc(hr->n_route, sizeof(*d));
	if (!d)
		goto out;
	for (i = 0; i < hr->n_route; i++)
		gen_resolve_dest(c, vs->ns, &hr->route[i], &d[i]);
	for (i = 0; i < hr->n_route; i++)
		total += d[i].weight;
	/* Zero-weight destinations are dropped while others carry weight (as
	 * Istio does); with no weight at all, traffic splits evenly. */
	for (i = 0; i < hr->n_route; i++) {
		if (total > 0 && d[i].weight == 0)
			continue;
		if (total == 0)
			d[i].weight = 1;
		d[n++] = d[i];
	}
	c->dest_headers = NULL;
	if (n == 1) {
		c->dest_headers = d[0].headers;
		ra->cluster_specifier_case = ENVOY__CONFIG__ROUTE__V3__ROUTE_ACTION__CLUSTER_SPECIFIER_CLUSTER;
		ra->cluster = gen__cluster_name(a, d[0].port, d[0].subset, d[0].host);
		if (!ra->cluster)
			goto out;
	} else {
		Envoy__Config__Route__V3__WeightedCluster *wc =
			gen__msg(a, &envoy__config__route__v3__weighted_cluster__descriptor);
		uint64_t sum = 0;

		if (!wc || !(wc->clusters = arena_calloc(a, n, sizeof(*wc->clusters))))
			goto out;
		for (i = 0; i < n; i++) {
			Envoy__Config__Route__V3__WeightedCluster__ClusterWeight *cw =
				gen__msg(a, &envoy__config__route__v3__weighted_cluster__cluster_weight__descriptor);
			if (!cw || !(cw->name = gen__cluster_name(a, d[i].port, d[i].subset, d[i].host)) ||
			    !(cw->weight = gen__u32(a, d[i].weight)))
				goto out;
			if (c->g->p->header_edits &&
			    (gen_header_ops(a, &d[i].headers->request, &cw->request_headers_to_add,
					    &cw->n_request_headers_to_add, &cw->request_headers_to_remove,
					    &cw->n_request_headers_to_remove) < 0 ||
			     gen_header_ops(a, &d[i].headers->response, &cw->response_headers_to_add,
					    &cw->n_response_headers_to_add, &cw->response_headers_to_remove,
					    &cw->n_response_headers_to_remove) < 0))
				goto out;
			sum += d[i].weight;
			wc->clusters[i] = cw;
		}
		wc->n_clusters = n;
		if (sum > UINT32_MAX) {
			rc = -EINVAL;
			goto out;
		}
		/* gRPC 1.51 requires the total to equal the sum. */
		if (c->g->p->weighted_total && !(wc->total_weight = gen__u32(a, (uint32_t)sum)))
			goto out;
		ra->cluster_specifier_case = ENVOY__CONFIG__ROUTE__V3__ROUTE_ACTION__CLUSTER_SPECIFIER_WEIGHTED_CLUSTERS;
		ra->weighted_clusters = wc;
	}

	/* Istio: no timeout unless the route gives one (0s disables it). */
	ra->timeout = gen__duration(a, hr->timeout > 0 ? hr->timeout : 0);
	if (!ra->timeout)
		goto out;
	if (hr->timeout > 0 && c->g->p->max_stream_duration) {
		Envoy__Config__Route__V3__RouteAction__MaxStreamDuration *msd =
			gen__msg(a, &envoy__config__route__v3__route_action__max_stream_duration__descriptor);
		if (!msd || !(msd->max_stream_duration = gen__duration(a, hr->timeout)))
			goto out;
		ra->max_stream_duration = msd;
	}
	/* Istio's setTimeout for Envoy-shaped proxies: the gRPC client's
	 * grpc-timeout is honoured, capped at the route timeout (0s: no cap) */
	if (!c->g->p->max_stream_duration && !(ra->max_grpc_timeout = gen__duration(a, hr->timeout > 0 ? hr->timeout : 0)))
		goto out;
	/* Hashing applies when every destination hashes the same way. */
	for (i = 0; i < n; i++) {
		const struct cfg_consistent_hash *h = gen_dest_hash(c, &d[i], i == 0 ? &pol0 : &pol);

		if (!h || (hash && !gen_hash_equal(hash, h))) {
			hash = NULL;
			break;
		}
		if (i == 0)
			hash = h;
	}
	rc = gen_retry(c->g->p, a, &hr->retries, hash != NULL, &ra->retry_policy);
	if (rc < 0)
		goto out;
	if (hash) {
		rc = -ENOMEM;
		if (!(ra->hash_policy = arena_calloc(a, 1, sizeof(*ra->hash_policy))))
			goto out;
		ra->hash_policy[0] = gen_hash_policy(a, hash);
		if (!ra->hash_policy[0])
			goto out;
		ra->n_hash_policy = 1;
	}
	rc = -ENOMEM;
	/* Istio: uri -> prefix_rewrite, authority -> host_rewrite_literal. */
	if (c->g->p->rewrites && hr->rewrite.set) {
		if (hr->rewrite.uri && !(ra->prefix_rewrite = arena_strdup(a, hr->rewrite.uri)))
			goto out;
		if (hr->rewrite.authority && hr->rewrite.authority[0]) {
			ra->host_rewrite_specifier_case =
				ENVOY__CONFIG__ROUTE__V3__ROUTE_ACTION__HOST_REWRITE_SPECIFIER_HOST_REWRITE_LITERAL;
			if (!(ra->host_rewrite_literal = arena_strdup(a, hr->rewrite.authority)))
				goto out;
		}
		/* Istio: uriRegexRewrite -> regex_rewrite (RE2); the decoder
		 * allows it only without uri */
		if (hr->rewrite.uri_regex_match && !hr->rewrite.uri) {
			Envoy__Type__Matcher__V3__RegexMatchAndSubstitute *rs =
				gen__msg(a, &envoy__type__matcher__v3__regex_match_and_substitute__descriptor);

			if (!rs || !(rs->pattern = gen_regex(a, hr->rewrite.uri_regex_match)) ||
			    !(rs->substitution = arena_strdup(a, hr->rewrite.uri_regex_rewrite ? hr->rewrite.uri_regex_rewrite : "")))
				goto out;
			ra->regex_rewrite = rs;
		}
	}
	/* Istio (translateRoute): one request_mirror_policies entry per
	 * mirror -- "mirror" first, then each of "mirrors" -- each with
	 * runtime_fraction from its own percentage (per million) and
	 * trace_sampled false; a 0% mirror is left out (MirrorPercent
	 * returns nil). The decoder copies mirrors[0] into mirror, so
	 * "mirrors" alone is walked when it is set. */
	if (c->g->p->mirror && (hr->n_mirrors || hr->mirror.set)) {
		const struct cfg_mirror *mv = hr->n_mirrors ? hr->mirrors : &hr->mirror;
		size_t nm = hr->n_mirrors ? hr->n_mirrors : 1, k;

		if (!(ra->request_mirror_policies = arena_calloc(a, nm, sizeof(*ra->request_mirror_policies))))
			goto out;
		for (k = 0; k < nm; k++) {
			struct cfg_route_destination md = { .destination = mv[k].destination, .weight = -1 };
			Envoy__Config__Route__V3__RouteAction__RequestMirrorPolicy *mp;
			Envoy__Config__Core__V3__RuntimeFractionalPercent *rf;
			struct gen_dest *mdst;

			if (!mv[k].set || !(mv[k].percent > 0))
				continue;
			mp = gen__msg(a, &envoy__config__route__v3__route_action__request_mirror_policy__descriptor);
			rf = gen__msg(a, &envoy__config__core__v3__runtime_fractional_percent__descriptor);
			if (!(mdst = calloc(1, sizeof(*mdst))))
				goto out;
			gen_resolve_dest(c, vs->ns, &md, mdst);
			if (mp)
				mp->cluster = gen__cluster_name(a, mdst->port, mdst->subset, mdst->host);
			free(mdst);
			if (!mp || !rf || !mp->cluster || !(rf->default_value = gen_percent(a, mv[k].percent)) ||
			    !(mp->trace_sampled = gen__bool(a, false)))
				goto out;
			mp->runtime_fraction = rf;
			ra->request_mirror_policies[ra->n_request_mirror_policies++] = mp;
		}
	}
	*out = ra;
	rc = 0;
out:
	free(d);
	return rc;
}

/* ---------------------------------------------------------------- fault */

static uint32_t gen_status_code(const char *s)
{
	static const char *const names[] = {
		"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
		"ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
		"ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
		"UNAUTHENTICATED",
	};
	char *end;
	unsigned long v;
	size_t i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcasecmp(s, names[i]) == 0)
			return (uint32_t)i;
	v = strtoul(s, &end, 10);
	if (end != s && !*end && v <= 16)
		return (uint32_t)v;
	return 2; /* UNKNOWN */
}

static Envoy__Type__V3__FractionalPercent *gen_percent(struct arena *a, double pct)
{
	Envoy__Type__V3__FractionalPercent *p = gen__msg(a, &envoy__type__v3__fractional_percent__descriptor);
	double v = pct * (GEN_PER_MILLION / 100) + 0.5;

	if (!p)
		return NULL;
	if (!(v > 0))
		v = 0;
	if (v > GEN_PER_MILLION)
		v = GEN_PER_MILLION;
	p->numerator = (uint32_t)v;
	p->denominator = ENVOY__TYPE__V3__FRACTIONAL_PERCENT__DENOMINATOR_TYPE__MILLION;
	return p;
}

static Envoy__Type__V3__FractionalPercent *gen_percent_hundred(struct arena *a, uint32_t n)
{
	Envoy__Type__V3__FractionalPercent *p = gen__msg(a, &envoy__type__v3__fractional_percent__descriptor);

	if (p) {
		p->numerator = n;
		p->denominator = ENVOY__TYPE__V3__FRACTIONAL_PERCENT__DENOMINATOR_TYPE__HUNDRED;
	}
	return p;
}

/* Returns 0 with *out NULL when the route injects no fault. */
static int gen_fault(struct arena *a, const struct cfg_fault *f, Google__Protobuf__Any **out)
{
	Envoy__Extensions__Filters__Http__Fault__V3__HTTPFault hf = ENVOY__EXTENSIONS__FILTERS__HTTP__FAULT__V3__HTTPFAULT__INIT;
	Envoy__Extensions__Filters__Common__Fault__V3__FaultDelay dl =
		ENVOY__EXTENSIONS__FILTERS__COMMON__FAULT__V3__FAULT_DELAY__INIT;
	Envoy__Extensions__Filters__Http__Fault__V3__FaultAbort ab = ENVOY__EXTENSIONS__FILTERS__HTTP__FAULT__V3__FAULT_ABORT__INIT;

	*out = NULL;
	if (!f->has_delay && !f->has_abort)
		return 0;
	if (f->has_delay) {
		dl.fault_delay_secifier_case = ENVOY__EXTENSIONS__FILTERS__COMMON__FAULT__V3__FAULT_DELAY__FAULT_DELAY_SECIFIER_FIXED_DELAY;
		dl.fixed_delay = gen__duration(a, f->fixed_delay);
		/* Istio's TranslateFault: no percentage is the integer percent 0
		 * over a hundred: the delay is never injected */
		dl.percentage = f->delay_percent < 0 ? gen_percent_hundred(a, 0) : gen_percent(a, f->delay_percent);
		if (!dl.fixed_delay || !dl.percentage)
			return -ENOMEM;
		hf.delay = &dl;
	}
	if (f->has_abort) {
		if (f->http_status >= 0) {
			ab.error_type_case = ENVOY__EXTENSIONS__FILTERS__HTTP__FAULT__V3__FAULT_ABORT__ERROR_TYPE_HTTP_STATUS;
			ab.http_status = gen__clamp_u32(f->http_status);
		} else {
			ab.error_type_case = ENVOY__EXTENSIONS__FILTERS__HTTP__FAULT__V3__FAULT_ABORT__ERROR_TYPE_GRPC_STATUS;
			ab.grpc_status = gen_status_code(f->grpc_status ? f->grpc_status : "UNKNOWN");
		}
		/* Istio's TranslateFault: no percentage, none sent (0% for Envoy
		 * and gRPC: the abort is never injected) */
		if (f->abort_percent >= 0 && !(ab.percentage = gen_percent(a, f->abort_percent)))
			return -ENOMEM;
		hf.abort = &ab;
	}
	*out = gen__any(a, &hf.base);
	return *out ? 0 : -ENOMEM;
}

/* ---------------------------------------------------------------- routes */

/* The route's trace operation as istiod's getRouteOperation (route.go):
 * the path is "PREFIX*" for a prefix match ("/" then "*" for a route matching
 * everything), the exact path, or the regex; the host and port are those
 * of the route's one cluster when it has one ("outbound|PORT|SUBSET|HOST"),
 * else the VirtualService's name and the listener's port (weighted
 * clusters, redirects, direct responses).  NULL when out of memory. */
static char *gen_route_operation(struct gen_rctx *c, const gen_route *r, const char *vs_name)
{
	const Envoy__Config__Route__V3__RouteMatch *m = r->match;
	const char *path = "/*", *cl = NULL, *p1, *p2, *p3;

	if (m && m->path_specifier_case == ENVOY__CONFIG__ROUTE__V3__ROUTE_MATCH__PATH_SPECIFIER_PREFIX && m->prefix &&
	    m->prefix[0] && !(m->prefix[0] == '/' && !m->prefix[1])) {
		if (!(path = arena_printf(c->a, "%s*", m->prefix)))
			return NULL;
	} else if (m && m->path_specifier_case == ENVOY__CONFIG__ROUTE__V3__ROUTE_MATCH__PATH_SPECIFIER_PATH && m->path) {
		path = m->path;
	} else if (m && m->path_specifier_case == ENVOY__CONFIG__ROUTE__V3__ROUTE_MATCH__PATH_SPECIFIER_SAFE_REGEX &&
		   m->safe_regex && m->safe_regex->regex) {
		path = m->safe_regex->regex;
	}
	if (r->action_case == ENVOY__CONFIG__ROUTE__V3__ROUTE__ACTION_ROUTE && r->route &&
	    r->route->cluster_specifier_case == ENVOY__CONFIG__ROUTE__V3__ROUTE_ACTION__CLUSTER_SPECIFIER_CLUSTER)
		cl = r->route->cluster;
	/* Istio's IsValidSubsetKey: exactly three '|' */
	if (cl && (p1 = strchr(cl, '|')) && (p2 = strchr(p1 + 1, '|')) && (p3 = strchr(p2 + 1, '|')) &&
	    !strchr(p3 + 1, '|'))
		return arena_printf(c->a, "%s:%.*s%s", p3 + 1, (int)(p2 - p1 - 1), p1 + 1, path);
	return arena_printf(c->a, "%s:%u%s", vs_name ? vs_name : "", (unsigned)c->port, path);
}

/* One Route: match mt (NULL: catch-all) with either the route action ra
 * or the redirect rd; the route's and (one destination) the
 * destination's header edits when the profile has header_edits. */
static int gen_add_route(struct gen_rctx *c, const char *vs_name, const struct cfg_http_route *hr,
			 const struct cfg_http_match *mt, gen_action *ra, Envoy__Config__Route__V3__RedirectAction *rd,
			 Envoy__Config__Route__V3__DirectResponseAction *dr, Google__Protobuf__Any *fault,
			 Google__Protobuf__Any *cors)
{
	gen_route *r = gen__msg(c->a, &envoy__config__route__v3__route__descriptor);
	Envoy__Config__Route__V3__Route__TypedPerFilterConfigEntry *e;

	if (!r || !(r->match = gen_route_match(c->g->p, c->a, mt)))
		return -ENOMEM;
	if (hr && hr->name && !(r->name = arena_strdup(c->a, hr->name)))
		return -ENOMEM;
	if (rd) {
		r->action_case = ENVOY__CONFIG__ROUTE__V3__ROUTE__ACTION_REDIRECT;
		r->redirect = rd;
	} else if (dr) {
		r->action_case = ENVOY__CONFIG__ROUTE__V3__ROUTE__ACTION_DIRECT_RESPONSE;
		r->direct_response = dr;
	} else {
		r->action_case = ENVOY__CONFIG__ROUTE__V3__ROUTE__ACTION_ROUTE;
		r->route = ra;
	}
	if (c->g->p->header_edits && hr) {
		if (gen_route_headers(c->a, &hr->headers, r) < 0)
			return -ENOMEM;
		if (ra && c->dest_headers && gen_route_headers(c->a, c->dest_headers, r) < 0)
			return -ENOMEM;
	}
	if (c->g->p->decorators) {
		if (!(r->decorator = gen__msg(c->a, &envoy__config__route__v3__decorator__descriptor)) ||
		    !(r->decorator->operation = gen_route_operation(c, r, vs_name)))
			return -ENOMEM;
	}
	/* Istio's per-route filter configs (route.go): the cors filter's policy
	 * and the fault filter's, keys in their sorted order */
	if ((fault || cors) && !(r->typed_per_filter_config = arena_calloc(c->a, 2, sizeof(*r->typed_per_filter_config))))
		return -ENOMEM;
	if (cors) {
		if (!(e = gen__msg(c->a, &envoy__config__route__v3__route__typed_per_filter_config_entry__descriptor)))
			return -ENOMEM;
		e->key = GEN_CORS_FILTER;
		e->value = cors;
		r->typed_per_filter_config[r->n_typed_per_filter_config++] = e;
	}
	if (fault) {
		if (!(e = gen__msg(c->a, &envoy__config__route__v3__route__typed_per_filter_config_entry__descriptor)))
			return -ENOMEM;
		e->key = GEN_FAULT_FILTER;
		e->value = fault;
		r->typed_per_filter_config[r->n_typed_per_filter_config++] = e;
	}
	return gen_push_route(c, r);
}

/* A VirtualService redirect as Istio translates it: uri -> path_redirect,
 * authority -> host_redirect, port, scheme, redirectCode (301 default). */
static Envoy__Config__Route__V3__RedirectAction *gen_redirect(struct arena *a, const struct cfg_redirect *r)
{
	Envoy__Config__Route__V3__RedirectAction *rd = gen__msg(a, &envoy__config__route__v3__redirect_action__descriptor);

	if (!rd)
		return NULL;
	if (r->uri && r->uri[0]) {
		rd->path_rewrite_specifier_case = ENVOY__CONFIG__ROUTE__V3__REDIRECT_ACTION__PATH_REWRITE_SPECIFIER_PATH_REDIRECT;
		rd->path_redirect = r->uri;
	}
	if (r->authority && r->authority[0])
		rd->host_redirect = r->authority;
	if (r->port > 0)
		rd->port_redirect = gen__clamp_u32(r->port);
	if (r->scheme && r->scheme[0]) {
		rd->scheme_rewrite_specifier_case =
			ENVOY__CONFIG__ROUTE__V3__REDIRECT_ACTION__SCHEME_REWRITE_SPECIFIER_SCHEME_REDIRECT;
		rd->scheme_redirect = r->scheme;
	}
	switch (r->redirect_code) {
	case 302:
		rd->response_code = ENVOY__CONFIG__ROUTE__V3__REDIRECT_ACTION__REDIRECT_RESPONSE_CODE__FOUND;
		break;
	case 303:
		rd->response_code = ENVOY__CONFIG__ROUTE__V3__REDIRECT_ACTION__REDIRECT_RESPONSE_CODE__SEE_OTHER;
		break;
	case 307:
		rd->response_code = ENVOY__CONFIG__ROUTE__V3__REDIRECT_ACTION__REDIRECT_RESPONSE_CODE__TEMPORARY_REDIRECT;
		break;
	case 308:
		rd->response_code = ENVOY__CONFIG__ROUTE__V3__REDIRECT_ACTION__REDIRECT_RESPONSE_CODE__PERMANENT_REDIRECT;
		break;
	default:
		rd->response_code = ENVOY__CONFIG__ROUTE__V3__REDIRECT_ACTION__REDIRECT_RESPONSE_CODE__MOVED_PERMANENTLY;
		break;
	}
	return rd;
}

/* base64 (standard alphabet, padding optional) decoded into out (at
 * least 3 * len / 4 + 3 bytes); returns the length, or -EINVAL. */
static long gen_b64_decode(const char *in, size_t len, uint8_t *out)
{
	uint32_t acc = 0;
	int bits = 0;
	long n = 0;
	size_t i;
	static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

	for (i = 0; i < len && in[i] != '='; i++) {
		const char *k = in[i] ? strchr(alphabet, in[i]) : NULL;

		if (!k)
			return -EINVAL;
		acc = acc << 6 | (uint32_t)(k - alphabet);
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[n++] = (uint8_t)(acc >> bits);
		}
	}
	return n;
}

/* Istio's directResponse: status, body.string as inline_string,
 * body.bytes (base64 in the YAML) as inline_bytes. */
static int gen_direct_response(struct arena *a, const struct cfg_direct_response *in,
			       Envoy__Config__Route__V3__DirectResponseAction **out)
{
	Envoy__Config__Route__V3__DirectResponseAction *dr =
		gen__msg(a, &envoy__config__route__v3__direct_response_action__descriptor);
	Envoy__Config__Core__V3__DataSource *ds;

	if (!dr)
		return -ENOMEM;
	dr->status = gen__clamp_u32(in->status);
	if (in->body) {
		if (!(ds = gen__msg(a, &envoy__config__core__v3__data_source__descriptor)))
			return -ENOMEM;
		if (in->body_is_bytes) {
			size_t l = strlen(in->body);
			uint8_t *b = arena_alloc(a, l / 4 * 3 + 4);
			long n;

			if (!b)
				return -ENOMEM;
			n = gen_b64_decode(in->body, l, b);
			if (n < 0)
				return (int)n;
			ds->specifier_case = ENVOY__CONFIG__CORE__V3__DATA_SOURCE__SPECIFIER_INLINE_BYTES;
			ds->inline_bytes.data = b;
			ds->inline_bytes.len = (size_t)n;
		} else {
			ds->specifier_case = ENVOY__CONFIG__CORE__V3__DATA_SOURCE__SPECIFIER_INLINE_STRING;
			if (!(ds->inline_string = arena_strdup(a, in->body)))
				return -ENOMEM;
		}
		dr->body = ds;
	}
	*out = dr;
	return 0;
}

static int gen_http_route(struct gen_rctx *c, const struct cfg_object *vs, const struct cfg_http_route *hr)
{
	gen_action *ra = NULL;
	Envoy__Config__Route__V3__RedirectAction *rd = NULL;
	Envoy__Config__Route__V3__DirectResponseAction *dr = NULL;
	Google__Protobuf__Any *fault = NULL, *cors = NULL;
	size_t i, applies = 0;
	int rc = 0;

	/* A redirect or a direct response (profiles redirects,
	 * direct_responses) or nothing: a gRPC client can neither follow one
	 * nor answer directly. */
	if (hr->n_route == 0 && !(hr->redirect.set && c->g->p->redirects) &&
	    !(hr->direct_response.set && c->g->p->direct_responses))
		goto out;
	for (i = 0; i < hr->n_match; i++)
		if (gen_match_applies(c, &hr->match[i], c->port))
			applies++;
	if (hr->n_match > 0 && applies == 0)
		goto out;
	if (hr->n_route == 0 && hr->redirect.set) {
		c->dest_headers = NULL;
		rd = gen_redirect(c->a, &hr->redirect);
		rc = rd ? 0 : -ENOMEM;
	} else if (hr->n_route == 0) {
		c->dest_headers = NULL;
		rc = gen_direct_response(c->a, &hr->direct_response, &dr);
	} else {
		rc = gen_action_build(c, vs, hr, &ra);
	}
	if (rc == 0)
		rc = gen_fault(c->a, &hr->fault, &fault);
	if (rc == 0 && c->g->p->cors && hr->cors.set)
		rc = gen_cors(c->a, &hr->cors, &cors);
	if (rc < 0)
		goto out;
	if (hr->n_match == 0) {
		rc = gen_add_route(c, vs->name, hr, NULL, ra, rd, dr, fault, cors);
		c->done = true;
		goto out;
	}
	for (i = 0; i < hr->n_match && !c->done; i++) {
		const struct cfg_http_match *mt = &hr->match[i];

		if (!gen_match_applies(c, mt, c->port))
			continue;
		rc = gen_add_route(c, vs->name, hr, mt, ra, rd, dr, fault, cors);
		if (rc < 0)
			goto out;
		if (gen__match_is_catchall(mt))
			c->done = true;
	}
out:
	return rc;
}

/* Istio's default route when no VirtualService applies: everything to
 * the service's own cluster.  Built as the one-destination route an
 * Istio user would write, so it gets the same defaults (no timeout, the
 * default retry policy) and the DestinationRule's hash policy. */
static int gen_default_route(struct gen_rctx *c)
{
	struct cfg_route_destination dest = {
		.destination = { .host = (char *)c->svc->hostname, .port = c->port },
		.weight = -1,
	};
	struct cfg_http_route hr = {
		.route = &dest,
		.n_route = 1,
		.timeout = -1,
	};
	/* ns NULL: the destination is the service's own hostname, as it is */
	struct cfg_object owner = { .kind = CFG_VIRTUAL_SERVICE, .ns = NULL };
	gen_action *ra;
	int rc;

	rc = gen_action_build(c, &owner, &hr, &ra);
	if (rc < 0)
		return rc;
	return gen_add_route(c, NULL, NULL, NULL, ra, NULL, NULL, NULL, NULL);
}

/* The catch-all that ends a VirtualService's routes when none of them
 * matches everything (profile no_match_fallback): to the service's own
 * cluster, with a 100% abort fault UNAVAILABLE, so a call no route matches
 * fails with a gRPC status instead of crashing gRPC 1.51's client. */
static int gen_no_match_route(struct gen_rctx *c)
{
	struct cfg_route_destination dest = {
		.destination = { .host = (char *)c->svc->hostname, .port = c->port },
		.weight = -1,
	};
	struct cfg_http_route hr = {
		.name = (char *)"no-route-matched",
		.route = &dest,
		.n_route = 1,
		.timeout = -1,
		.retries = { .set = true, .attempts = 0, .per_try_timeout = -1 },
	};
	struct cfg_fault f = {
		.has_abort = true,
		.abort_percent = 100,
		.http_status = -1,
		.grpc_status = (char *)"UNAVAILABLE",
		.fixed_delay = -1,
	};
	/* ns NULL: the destination is the service's own hostname, as it is */
	struct cfg_object owner = { .kind = CFG_VIRTUAL_SERVICE, .ns = NULL };
	Google__Protobuf__Any *fault = NULL;
	gen_action *ra;
	int rc;

	rc = gen_action_build(c, &owner, &hr, &ra);
	if (rc == 0)
		rc = gen_fault(c->a, &f, &fault);
	if (rc < 0)
		return rc;
	return gen_add_route(c, NULL, &hr, NULL, ra, NULL, NULL, fault, NULL);
}

/* Domains for the host: "HOST", "HOST:PORT", and for a Kubernetes-style
 * name.ns.svc.<domain> the short forms name, name.ns, name.ns.svc (each
 * with and without the port). */
static int gen_domains(struct gen_rctx *c, Envoy__Config__Route__V3__VirtualHost *vh)
{
	const char *host = c->svc->hostname;
	char *suffix = arena_printf(c->a, ".svc.%s", c->m->domain ? c->m->domain : "cluster.local");
	char **v = arena_calloc(c->a, 8, sizeof(*v));
	size_t hl = strlen(host), sl, n = 0, i;

	if (!v || !suffix)
		return -ENOMEM;
	v[n++] = (char *)host;
	v[n++] = arena_printf(c->a, "%s:%u", host, c->port);
	sl = strlen(suffix);
	if (hl > sl && strcmp(host + hl - sl, suffix) == 0) {
		int base = (int)(hl - sl);       /* "name.ns" */
		const char *dot = memchr(host, '.', (size_t)base);
		int name = dot ? (int)(dot - host) : 0;

		/* exactly one dot, with a label on each side */
		if (dot && name > 0 && name + 1 < base && !memchr(dot + 1, '.', (size_t)(base - name - 1))) {
			v[n++] = arena_printf(c->a, "%.*s", name, host);
			v[n++] = arena_printf(c->a, "%.*s:%u", name, host, c->port);
			v[n++] = arena_printf(c->a, "%.*s", base, host);
			v[n++] = arena_printf(c->a, "%.*s:%u", base, host, c->port);
			v[n++] = arena_printf(c->a, "%.*s", base + 4, host);
			v[n++] = arena_printf(c->a, "%.*s:%u", base + 4, host, c->port);
		}
	}
	for (i = 0; i < n; i++)
		if (!v[i])
			return -ENOMEM;
	vh->domains = v;
	vh->n_domains = n;
	return 0;
}

/* Sidecar domains, as istiod's generateVirtualHostDomains() builds them
 * for a caller in namespace ns: the FQDN and "FQDN." (absolute), for a
 * Kubernetes Service the short names ("name", "name.ns.svc", "name.ns"
 * for a caller of the same namespace; "name.ns", "name.ns.svc"
 * otherwise), then the VIPs; without ":PORT" forms: as Istio >= 1.20
 * (httproute.go: SidecarIgnorePort() for every proxy but proxyless gRPC,
 * generateVirtualHostDomains() then appends no port) the route config
 * sets ignore_port_in_host_matching, so "HOST:PORT" still matches
 * "HOST", whatever the port (sidecar.c gen_route_config_port()). */
static int gen_sidecar_domains(struct gen_rctx *c, Envoy__Config__Route__V3__VirtualHost *vh)
{
	const struct model_service *svc = c->svc;
	const char *host = svc->hostname, *ns = gen__workload_ns(c->g->caller);
	char *suffix = arena_printf(c->a, ".svc.%s", c->m->domain ? c->m->domain : "cluster.local");
	const char *forms[8];
	char **v;
	size_t hl = strlen(host), sl, n = 0, nf = 0, i, n_vips = 0;
	bool kube = svc->origin && svc->origin->kind == CFG_K8S_SERVICE;

	if (!suffix)
		return -ENOMEM;
	if (svc->cluster_ip && strcmp(svc->cluster_ip, "None") != 0 && svc->cluster_ip[0])
		n_vips = 1;
	else if (svc->origin && svc->origin->kind == CFG_SERVICE_ENTRY)
		n_vips = svc->origin->spec.se.addresses.n;
	v = arena_calloc(c->a, 2 * (8 + n_vips), sizeof(*v));
	if (!v)
		return -ENOMEM;
	forms[nf++] = host;
	forms[nf++] = arena_printf(c->a, "%s.", host);
	sl = strlen(suffix);
	if (kube && hl > sl && strcmp(host + hl - sl, suffix) == 0) {
		int base = (int)(hl - sl);       /* "name.ns" */
		const char *dot = memchr(host, '.', (size_t)base);
		int name = dot ? (int)(dot - host) : 0;

		if (dot && name > 0 && name + 1 < base) {
			bool same = (size_t)(base - name - 1) == strlen(ns) && strncmp(dot + 1, ns, strlen(ns)) == 0;

			if (same) {
				forms[nf++] = arena_printf(c->a, "%.*s", name, host);
				forms[nf++] = arena_printf(c->a, "%.*s", base + 4, host);
				forms[nf++] = arena_printf(c->a, "%.*s", base, host);
			} else {
				forms[nf++] = arena_printf(c->a, "%.*s", base, host);
				forms[nf++] = arena_printf(c->a, "%.*s", base + 4, host);
			}
		}
	}
	for (i = 0; i < nf; i++) {
		if (!forms[i])
			return -ENOMEM;
		v[n++] = (char *)forms[i];
	}
	for (i = 0; i < n_vips; i++) {
		const char *vip = svc->cluster_ip && n_vips == 1 && !(svc->origin && svc->origin->kind == CFG_SERVICE_ENTRY)
					  ? svc->cluster_ip : svc->origin->spec.se.addresses.v[i];
		bool v6 = strchr(vip, ':') != NULL;

		if (strchr(vip, '/'))
			continue;                /* a CIDR is no Host */
		v[n++] = v6 ? arena_printf(c->a, "[%s]", vip) : (char *)vip;
	}
	for (i = 0; i < n; i++)
		if (!v[i])
			return -ENOMEM;
	vh->domains = v;
	vh->n_domains = n;
	return 0;
}

int gen__virtual_host(const struct gen_ctx *g, const struct model_service *svc, uint32_t port, struct arena *a,
		      Envoy__Config__Route__V3__VirtualHost **out)
{
	Envoy__Config__Route__V3__VirtualHost *vh = gen__msg(a, &envoy__config__route__v3__virtual_host__descriptor);
	const struct model *m = g->m;
	struct gen_rctx c = { .g = g, .m = m, .svc = svc, .port = port, .a = a };
	const struct cfg_object *vs = gen__vs(g, svc);
	size_t j;
	int rc = -ENOMEM;

	*out = NULL;
	if (!vh || !(vh->name = arena_printf(a, "%s:%u", svc->hostname, port)))
		goto out;
	rc = 0;
	for (j = 0; vs && j < vs->spec.vs.n_http && !c.done; j++) {
		rc = gen_http_route(&c, vs, &vs->spec.vs.http[j]);
		if (rc < 0)
			goto out;
	}
	if (c.n_routes == 0) {
		rc = gen_default_route(&c);
		if (rc < 0)
			goto out;
	} else if (!c.done && g->p->no_match_fallback) {
		rc = gen_no_match_route(&c);
		if (rc < 0)
			goto out;
	}
	rc = g->p->listener_address ? gen_sidecar_domains(&c, vh) : gen_domains(&c, vh);
	if (rc < 0)
		goto out;
	vh->routes = c.routes;
	vh->n_routes = c.n_routes;
	/* Istio: x-envoy-attempt-count on every request of a sidecar */
	vh->include_request_attempt_count = g->p->istio_retry;
	*out = vh;
out:
	return rc;
}

static int gen_route_config(const struct gen_ctx *g, const struct model_service *svc, uint32_t port,
			    struct arena *a, struct xds_snapshot *snap)
{
	Envoy__Config__Route__V3__RouteConfiguration rc_msg = ENVOY__CONFIG__ROUTE__V3__ROUTE_CONFIGURATION__INIT;
	Envoy__Config__Route__V3__VirtualHost *vhs[1];
	int rc;

	rc = gen__virtual_host(g, svc, port, a, &vhs[0]);
	if (rc < 0)
		return rc;
	rc_msg.name = vhs[0]->name;
	rc_msg.virtual_hosts = vhs;
	rc_msg.n_virtual_hosts = 1;
	return gen__emit(g, snap, XDS_ROUTE, rc_msg.name, &rc_msg.base);
}

int gen__routes(const struct gen_ctx *g, const struct model_service *svc, struct arena *a,
		struct xds_snapshot *snap)
{
	int rc = 0;
	size_t i;

	for (i = 0; i < svc->n_ports && rc == 0; i++)
		rc = gen_route_config(g, svc, svc->ports[i].number, a, snap);
	return rc;
}

int gen__gateway_routes(const struct gen_ctx *g, const struct cfg_object *vs, uint32_t port, const char *gateway,
			struct arena *a, Envoy__Config__Route__V3__Route ***routes, size_t *n)
{
	struct gen_rctx c = { .g = g, .m = g->m, .port = port, .a = a, .gateway = gateway, .vs_ns = vs->ns };
	size_t j;
	int rc = 0;

	*routes = NULL;
	*n = 0;
	for (j = 0; j < vs->spec.vs.n_http && !c.done && rc == 0; j++)
		rc = gen_http_route(&c, vs, &vs->spec.vs.http[j]);
	if (rc < 0)
		return rc;
	*routes = c.routes;
	*n = c.n_routes;
	return 0;
}
