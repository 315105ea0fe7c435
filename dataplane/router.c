/*
 * router.c - compiled RouteConfigurations and route selection (router.h).
 *
 * Compile (router_new) walks each RouteConfiguration once: every string
 * the match path needs is copied into the router's arena, domains go
 * into one open-addressing table per configuration (exact, "*suffix" and
 * "prefix*" entries keyed by kind and text, plus the distinct wildcard
 * lengths, longest first), regexes become RE2 programs, and header edits
 * are flattened per route (and per weighted cluster) into the order Envoy
 * applies them.  Match (router_config_match) then hashes the authority
 * once, probes the table per wildcard length, and walks the virtual
 * host's routes comparing bytes: no allocation, no locks.
 *
 * Behaviour follows Envoy's source/common/router/config_impl.cc (route
 * and virtual host selection, rewrites, header parsers),
 * source/common/http/header_utility.cc (header matchers) and
 * source/common/http/utility.cc (redirect URIs); each place says which.
 * A field that would change behaviour and is not implemented is a NACK
 * naming it, never ignored.
 */
#include "dataplane/router.h"

#include "common/arena.h"
#include "common/err.h"
#include "common/re.h"
#include "common/refcount.h"

#include "envoy/config/core/v3/base.pb-c.h"
#include "envoy/config/route/v3/route_components.pb-c.h"
#include "envoy/extensions/filters/common/fault/v3/fault.pb-c.h"
#include "envoy/extensions/filters/http/cors/v3/cors.pb-c.h"
#include "envoy/extensions/filters/http/fault/v3/fault.pb-c.h"
#include "envoy/type/matcher/v3/regex.pb-c.h"
#include "envoy/type/matcher/v3/string.pb-c.h"
#include "envoy/type/v3/percent.pb-c.h"
#include "envoy/type/v3/range.pb-c.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef Envoy__Config__Route__V3__RouteConfiguration pb_rc;
typedef Envoy__Config__Route__V3__VirtualHost pb_vh;
typedef Envoy__Config__Route__V3__Route pb_route;
typedef Envoy__Config__Route__V3__RouteMatch pb_match;
typedef Envoy__Config__Route__V3__RouteAction pb_action;
typedef Envoy__Config__Route__V3__HeaderMatcher pb_hm;
typedef Envoy__Type__Matcher__V3__StringMatcher pb_sm;
typedef Envoy__Type__Matcher__V3__RegexMatcher pb_re;
typedef Envoy__Config__Core__V3__HeaderValueOption pb_hvo;
typedef Envoy__Config__Route__V3__RetryPolicy pb_retry;

#define ROUTER_FAULT_FILTER   "envoy.filters.http.fault"
#define ROUTER_FAULT_URL      "type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault"
#define ROUTER_CORS_FILTER    "envoy.filters.http.cors"
#define ROUTER_CORS_URL       "type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy"
#define ROUTER_PREVIOUS_HOSTS "envoy.retry_host_predicates.previous_hosts"
#define ROUTER_PREVIOUS_PRIORITIES "envoy.retry_priorities.previous_priorities"
/* Header edits of one route after flattening every level. */
#define ROUTER_MAX_HDRS       1024
/* Bytes of a rewritten path or Location built on the stack. */
#define ROUTER_PATH_MAX       8192

enum { SM_EXACT, SM_PREFIX, SM_SUFFIX, SM_CONTAINS, SM_REGEX };
struct router_string_matcher {
	uint8_t kind;
	bool ignore_case;
	uint32_t len;
	const char *s;
	struct mesh_re *re;
};

enum { HM_STRING, HM_PRESENT, HM_RANGE };
enum { PSEUDO_NONE, PSEUDO_METHOD, PSEUDO_AUTHORITY, PSEUDO_PATH, PSEUDO_SCHEME };
struct router_hmatch {
	const char *name;
	uint32_t name_len;
	uint8_t kind, pseudo;
	bool present, invert, missing_empty;
	struct router_string_matcher sm;
	int64_t start, end;
};

struct router_qmatch {
	const char *name;
	uint32_t name_len;
	bool present_only;
	struct router_string_matcher sm;
};

enum { PATH_PREFIX, PATH_EXACT, PATH_REGEX, PATH_SEPARATED };
struct router_rentry {
	struct router_route pub;
	uint8_t path_kind;
	bool case_sensitive, grpc, has_fraction;
	uint32_t path_len;
	const char *path;
	struct mesh_re *path_re;
	uint32_t frac_num, frac_den;
	uint32_t n_headers, n_queries;
	const struct router_hmatch *headers;
	const struct router_qmatch *queries;
};

struct router_vhost {
	const char *name;
	struct router_rentry *routes;
	uint32_t n_routes;
	/* issue 13: require_tls (Istio's Gateway httpsRedirect): a request whose
	 * scheme is not https gets ssl_rt, Envoy's SSL_REDIRECT_ROUTE (301);
	 * made only when require_tls is set (a whole route in every virtual
	 * host was ~0.45 MB of a sidecar's 1,000 services) */
	uint8_t require_tls;             /* 0 NONE, 1 EXTERNAL_ONLY, 2 ALL (Envoy's enum) */
	struct router_rentry *ssl_rt;    /* in the router's arena; NULL when require_tls is NONE */
};

enum { DOM_EXACT = 1, DOM_SUFFIX, DOM_PREFIX };
/* 24 bytes (a sidecar's table holds ~10 domains per service: 1,000
 * services are 16,384 slots): the slot is found by the hash's low bits and
 * confirmed by its high ones. */
struct router_dom {
	uint32_t tag;                    /* dom_tag(): the hash's high half, never 0; 0: empty slot */
	uint32_t len;
	const char *s;
	uint32_t vh;
	uint8_t kind;
};

struct router_config {
	const char *name;
	uint32_t name_len;
	struct router_vhost *vhosts;
	uint32_t n_vhosts;
	struct router_dom *table;
	uint32_t mask;
	uint32_t *suffix_lens, *prefix_lens; /* distinct lengths, descending */
	uint32_t n_suffix_lens, n_prefix_lens;
	int32_t default_vh;              /* "*", or -1 */
	bool ignore_port, validate_clusters;
};

struct router {
	struct mesh_refcount refs;
	struct arena *a;
	struct router_config *configs;   /* sorted by name */
	size_t n_configs;
	struct mesh_re **res;            /* every compiled regex, freed with the router */
	size_t n_res, cap_res;
	long re_program;                 /* their program sizes summed (ROUTER_MAX_REGEX_PROGRAM_TOTAL) */
};

/* ---------------------------------------------------------------- compile context */

struct rctx {
	struct router *r;
	struct arena *a;
	char *err;
	size_t cap;
	const char *rc, *vh;
	long route;                      /* index in the virtual host, -1 outside routes */
	bool most_specific_wins;
	uint32_t max_body;
	const struct router_retry *last_retry; /* the last one compiled: the next identical one shares it */
};

__attribute__((format(printf, 2, 3))) static int nack(struct rctx *c, const char *fmt, ...)
{
	va_list ap;
	size_t n = 0;
	int k;

	if (!c->err || !c->cap)
		return -EINVAL;
	c->err[0] = '\0';
	if (c->rc) {
		k = snprintf(c->err, c->cap, "route config '%s': ", c->rc);
		n = k > 0 ? (size_t)k : 0;
	}
	if (c->vh && n < c->cap) {
		k = snprintf(c->err + n, c->cap - n, "virtual host '%s': ", c->vh);
		n += k > 0 ? (size_t)k : 0;
	}
	if (c->route >= 0 && n < c->cap) {
		k = snprintf(c->err + n, c->cap - n, "route %ld: ", c->route);
		n += k > 0 ? (size_t)k : 0;
	}
	if (n < c->cap) {
		va_start(ap, fmt);
		vsnprintf(c->err + n, c->cap - n, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

/* Fields our proto/ subset does not know arrive as unknown fields: any of
 * them could change behaviour, so they are refused. */
static int ck_unknown(struct rctx *c, const void *msg)
{
	const ProtobufCMessage *m = msg;

	if (m && m->n_unknown_fields)
		return nack(c, "%s: field number %u is not supported by meshproxy", m->descriptor->name,
			    m->unknown_fields[0].tag);
	return 0;
}

static char *lowdup(struct arena *a, const char *s, size_t n)
{
	char *d = arena_strndup(a, s, n);
	size_t i;

	if (d)
		for (i = 0; i < n; i++)
			if (d[i] >= 'A' && d[i] <= 'Z')
				d[i] = (char)(d[i] - 'A' + 'a');
	return d;
}

static int64_t dur_ms(const Google__Protobuf__Duration *d)
{
	return d->seconds * 1000 + d->nanos / 1000000;
}

static uint32_t per_million(const Envoy__Type__V3__FractionalPercent *p)
{
	uint64_t v;

	if (!p)
		return ROUTER_PER_MILLION;
	switch (p->denominator) {
	case ENVOY__TYPE__V3__FRACTIONAL_PERCENT__DENOMINATOR_TYPE__HUNDRED:
		v = (uint64_t)p->numerator * 10000;
		break;
	case ENVOY__TYPE__V3__FRACTIONAL_PERCENT__DENOMINATOR_TYPE__TEN_THOUSAND:
		v = (uint64_t)p->numerator * 100;
		break;
	default:
		v = p->numerator;
		break;
	}
	return v > ROUTER_PER_MILLION ? ROUTER_PER_MILLION : (uint32_t)v;
}

static int compile_re(struct rctx *c, const pb_re *m, struct mesh_re **out, const char *what)
{
	char err[512];
	/* Istio's runtime limit, not Envoy's bare default of 100: meshd sends
	 * google_re2 {} as istiod does, and relies on it */
	unsigned max = MESH_RE_ISTIO_MAX_PROGRAM_SIZE;
	int rc;

	*out = NULL;
	if ((rc = ck_unknown(c, m)) < 0)
		return rc;
	if (m->engine_type_case == ENVOY__TYPE__MATCHER__V3__REGEX_MATCHER__ENGINE_TYPE_GOOGLE_RE2 && m->google_re2) {
		if ((rc = ck_unknown(c, m->google_re2)) < 0)
			return rc;
		if (m->google_re2->max_program_size)
			max = m->google_re2->max_program_size->value;
	}
	if (c->r->n_res == c->r->cap_res) {
		size_t cap = c->r->cap_res ? c->r->cap_res * 2 : 16;
		struct mesh_re **v = realloc(c->r->res, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		c->r->res = v;
		c->r->cap_res = cap;
	}
	if (c->r->re_program >= ROUTER_MAX_REGEX_PROGRAM_TOTAL)
		return nack(c, "%s: the regexes' total RE2 program size is past the limit of %ld "
			    "(ROUTER_MAX_REGEX_PROGRAM_TOTAL)", what, ROUTER_MAX_REGEX_PROGRAM_TOTAL);
	rc = mesh_re_new(m->regex ? m->regex : "", m->regex ? strlen(m->regex) : 0, max, out, err, sizeof(err));
	if (rc == -EINVAL)
		return nack(c, "%s: %s", what, err);
	if (rc < 0)
		return rc;
	c->r->res[c->r->n_res++] = *out;
	c->r->re_program += mesh_re_program_size(*out);
	if (c->r->re_program > ROUTER_MAX_REGEX_PROGRAM_TOTAL)
		return nack(c, "%s: the regexes' total RE2 program size %ld is past the limit of %ld "
			    "(ROUTER_MAX_REGEX_PROGRAM_TOTAL)", what, c->r->re_program, ROUTER_MAX_REGEX_PROGRAM_TOTAL);
	return 0;
}

static int compile_sm(struct rctx *c, const pb_sm *m, struct router_string_matcher *sm, const char *what)
{
	const char *s = NULL;
	int rc;

	if (!m)
		return nack(c, "%s: string matcher missing", what);
	if ((rc = ck_unknown(c, m)) < 0)
		return rc;
	sm->ignore_case = m->ignore_case;
	switch (m->match_pattern_case) {
	case ENVOY__TYPE__MATCHER__V3__STRING_MATCHER__MATCH_PATTERN_EXACT:
		sm->kind = SM_EXACT;
		s = m->exact;
		break;
	case ENVOY__TYPE__MATCHER__V3__STRING_MATCHER__MATCH_PATTERN_PREFIX:
		sm->kind = SM_PREFIX;
		s = m->prefix;
		break;
	case ENVOY__TYPE__MATCHER__V3__STRING_MATCHER__MATCH_PATTERN_SUFFIX:
		sm->kind = SM_SUFFIX;
		s = m->suffix;
		break;
	case ENVOY__TYPE__MATCHER__V3__STRING_MATCHER__MATCH_PATTERN_CONTAINS:
		sm->kind = SM_CONTAINS;
		s = m->contains;
		break;
	case ENVOY__TYPE__MATCHER__V3__STRING_MATCHER__MATCH_PATTERN_SAFE_REGEX:
		sm->kind = SM_REGEX;
		/* Envoy: "ignore_case has no effect for safe_regex" is a config error */
		if (m->ignore_case)
			return nack(c, "%s: ignore_case has no effect for safe_regex", what);
		if (!m->safe_regex)
			return nack(c, "%s: safe_regex missing", what);
		return compile_re(c, m->safe_regex, &sm->re, what);
	default:
		return nack(c, "%s: string matcher without a pattern", what);
	}
	if (!s)
		s = "";
	sm->len = (uint32_t)strlen(s);
	/* compared case-insensitively by lowering both sides */
	sm->s = sm->ignore_case ? lowdup(c->a, s, sm->len) : arena_strndup(c->a, s, sm->len);
	return sm->s ? 0 : -ENOMEM;
}

static int compile_hm(struct rctx *c, const pb_hm *m, struct router_hmatch *h)
{
	char what[160];
	int rc;

	if ((rc = ck_unknown(c, m)) < 0)
		return rc;
	snprintf(what, sizeof(what), "header matcher '%s'", m->name ? m->name : "");
	if (!m->name || !m->name[0])
		return nack(c, "%s: name is empty", what);
	h->name_len = (uint32_t)strlen(m->name);
	if (!(h->name = lowdup(c->a, m->name, h->name_len)))
		return -ENOMEM;
	if (strcmp(h->name, ":method") == 0)
		h->pseudo = PSEUDO_METHOD;
	else if (strcmp(h->name, ":authority") == 0 || strcmp(h->name, "host") == 0)
		h->pseudo = PSEUDO_AUTHORITY;      /* Envoy keeps Host as :authority */
	else if (strcmp(h->name, ":path") == 0)
		h->pseudo = PSEUDO_PATH;
	else if (strcmp(h->name, ":scheme") == 0)
		h->pseudo = PSEUDO_SCHEME;
	else if (h->name[0] == ':')
		return nack(c, "%s: pseudo-header not supported", what);
	h->invert = m->invert_match;
	h->missing_empty = m->treat_missing_header_as_empty;
	h->kind = HM_STRING;
	switch (m->header_match_specifier_case) {
	case ENVOY__CONFIG__ROUTE__V3__HEADER_MATCHER__HEADER_MATCH_SPECIFIER_EXACT_MATCH:
		h->sm.kind = SM_EXACT;
		h->sm.s = arena_strdup(c->a, m->exact_match ? m->exact_match : "");
		break;
	case ENVOY__CONFIG__ROUTE__V3__HEADER_MATCHER__HEADER_MATCH_SPECIFIER_PREFIX_MATCH:
		h->sm.kind = SM_PREFIX;
		h->sm.s = arena_strdup(c->a, m->prefix_match ? m->prefix_match : "");
		break;
	case ENVOY__CONFIG__ROUTE__V3__HEADER_MATCHER__HEADER_MATCH_SPECIFIER_SUFFIX_MATCH:
		h->sm.kind = SM_SUFFIX;
		h->sm.s = arena_strdup(c->a, m->suffix_match ? m->suffix_match : "");
		break;
	case ENVOY__CONFIG__ROUTE__V3__HEADER_MATCHER__HEADER_MATCH_SPECIFIER_CONTAINS_MATCH:
		h->sm.kind = SM_CONTAINS;
		h->sm.s = arena_strdup(c->a, m->contains_match ? m->contains_match : "");
		break;
	case ENVOY__CONFIG__ROUTE__V3__HEADER_MATCHER__HEADER_MATCH_SPECIFIER_SAFE_REGEX_MATCH:
		h->sm.kind = SM_REGEX;
		if (!m->safe_regex_match)
			return nack(c, "%s: safe_regex_match missing", what);
		return compile_re(c, m->safe_regex_match, &h->sm.re, what);
	case ENVOY__CONFIG__ROUTE__V3__HEADER_MATCHER__HEADER_MATCH_SPECIFIER_STRING_MATCH:
		return compile_sm(c, m->string_match, &h->sm, what);
	case ENVOY__CONFIG__ROUTE__V3__HEADER_MATCHER__HEADER_MATCH_SPECIFIER_RANGE_MATCH:
		h->kind = HM_RANGE;
		if (!m->range_match)
			return nack(c, "%s: range_match missing", what);
		h->start = m->range_match->start;
		h->end = m->range_match->end;
		return 0;
	case ENVOY__CONFIG__ROUTE__V3__HEADER_MATCHER__HEADER_MATCH_SPECIFIER_PRESENT_MATCH:
		h->kind = HM_PRESENT;
		h->present = m->present_match;
		return 0;
	default:
		/* Envoy: no specifier is a presence match */
		h->kind = HM_PRESENT;
		h->present = true;
		return 0;
	}
	if (!h->sm.s)
		return -ENOMEM;
	h->sm.len = (uint32_t)strlen(h->sm.s);
	return 0;
}

/* ---------------------------------------------------------------- header edits */

struct hdr_level {
	struct router_hdr *req, *resp;
	uint32_t n_req, n_resp;
};

/* Envoy's header formatter: "%%" is a '%', any other '%' starts a command
 * meshproxy does not evaluate. */
static int hdr_value(struct rctx *c, const char *key, const char *v, size_t n, const char **out, uint32_t *len)
{
	char *d = arena_alloc(c->a, n + 1);
	size_t i, k = 0;

	if (!d)
		return -ENOMEM;
	for (i = 0; i < n; i++) {
		if (v[i] == '%') {
			if (i + 1 < n && v[i + 1] == '%') {
				d[k++] = '%';
				i++;
				continue;
			}
			return nack(c, "header '%s': value '%.*s' uses a %%COMMAND%% formatter, not supported", key, (int)n,
				    v);
		}
		d[k++] = v[i];
	}
	d[k] = '\0';
	*out = d;
	*len = (uint32_t)k;
	return 0;
}

/* One level's removes then adds (HeaderParser::evaluateHeaders). */
static int hdr_side(struct rctx *c, pb_hvo *const *add, size_t n_add, char *const *rm, size_t n_rm,
		    struct router_hdr **out, uint32_t *n_out)
{
	struct router_hdr *v;
	size_t i, n = 0;
	int rc;

	*out = NULL;
	*n_out = 0;
	if (n_add + n_rm == 0)
		return 0;
	if (n_add + n_rm > ROUTER_MAX_HDRS)
		return nack(c, "more than %d header edits", ROUTER_MAX_HDRS);
	if (!(v = arena_calloc(c->a, n_add + n_rm, sizeof(*v))))
		return -ENOMEM;
	for (i = 0; i < n_rm; i++) {
		const char *k = rm[i] ? rm[i] : "";

		/* Envoy: HeaderParser, isModifiableHeader */
		if (!k[0] || k[0] == ':' || strcasecmp(k, "host") == 0)
			return nack(c, "headers_to_remove: ':-prefixed' or host headers may not be removed ('%s')", k);
		v[n].name_len = (uint32_t)strlen(k);
		if (!(v[n].name = lowdup(c->a, k, v[n].name_len)))
			return -ENOMEM;
		v[n].value = "";
		v[n++].op = ROUTER_HDR_REMOVE;
	}
	for (i = 0; i < n_add; i++) {
		const pb_hvo *o = add[i];
		const Envoy__Config__Core__V3__HeaderValue *h = o ? o->header : NULL;
		const char *k = h && h->key ? h->key : "";
		const char *val = h && h->value ? h->value : "";
		size_t vlen = strlen(val);

		if (!h)
			return nack(c, "headers_to_add: header missing");
		if ((rc = ck_unknown(c, o)) < 0 || (rc = ck_unknown(c, h)) < 0)
			return rc;
		if (!k[0] || k[0] == ':' || strcasecmp(k, "host") == 0)
			return nack(c, "headers_to_add: ':-prefixed' or host headers may not be modified ('%s')", k);
		if (!vlen && h->raw_value.len) {
			val = (const char *)h->raw_value.data;
			vlen = h->raw_value.len;
		}
		v[n].name_len = (uint32_t)strlen(k);
		if (!(v[n].name = lowdup(c->a, k, v[n].name_len)))
			return -ENOMEM;
		if ((rc = hdr_value(c, k, val, vlen, &v[n].value, &v[n].value_len)) < 0)
			return rc;
		if (o->append) {
			/* Envoy: append and append_action together are an error */
			if (o->append_action != ENVOY__CONFIG__CORE__V3__HEADER_VALUE_OPTION__HEADER_APPEND_ACTION__APPEND_IF_EXISTS_OR_ADD)
				return nack(c, "header '%s': both append and append_action are set", k);
			v[n].op = o->append->value ? ROUTER_HDR_APPEND_IF_EXISTS_OR_ADD : ROUTER_HDR_OVERWRITE_IF_EXISTS_OR_ADD;
		} else {
			switch (o->append_action) {
			case ENVOY__CONFIG__CORE__V3__HEADER_VALUE_OPTION__HEADER_APPEND_ACTION__APPEND_IF_EXISTS_OR_ADD:
				v[n].op = ROUTER_HDR_APPEND_IF_EXISTS_OR_ADD;
				break;
			case ENVOY__CONFIG__CORE__V3__HEADER_VALUE_OPTION__HEADER_APPEND_ACTION__ADD_IF_ABSENT:
				v[n].op = ROUTER_HDR_ADD_IF_ABSENT;
				break;
			case ENVOY__CONFIG__CORE__V3__HEADER_VALUE_OPTION__HEADER_APPEND_ACTION__OVERWRITE_IF_EXISTS_OR_ADD:
				v[n].op = ROUTER_HDR_OVERWRITE_IF_EXISTS_OR_ADD;
				break;
			case ENVOY__CONFIG__CORE__V3__HEADER_VALUE_OPTION__HEADER_APPEND_ACTION__OVERWRITE_IF_EXISTS:
				v[n].op = ROUTER_HDR_OVERWRITE_IF_EXISTS;
				break;
			default:
				return nack(c, "header '%s': unknown append_action %d", k, (int)o->append_action);
			}
		}
		v[n++].keep_empty = o->keep_empty_value;
	}
	*out = v;
	*n_out = (uint32_t)n;
	return 0;
}

static int hdr_level(struct rctx *c, pb_hvo *const *req_add, size_t n_req_add, char *const *req_rm, size_t n_req_rm,
		     pb_hvo *const *resp_add, size_t n_resp_add, char *const *resp_rm, size_t n_resp_rm,
		     struct hdr_level *l)
{
	int rc = hdr_side(c, req_add, n_req_add, req_rm, n_req_rm, &l->req, &l->n_req);

	if (rc == 0)
		rc = hdr_side(c, resp_add, n_resp_add, resp_rm, n_resp_rm, &l->resp, &l->n_resp);
	return rc;
}

/* Flatten levels[0..n) (most specific first) into out, in Envoy's order:
 * the weighted cluster's own first, then route, virtual host, config, or
 * config, virtual host, route with most_specific_header_mutations_wins. */
static int hdr_flatten(struct rctx *c, const struct hdr_level *wc, const struct hdr_level *const lv[3],
		       struct router_hdrs *out)
{
	const struct hdr_level *order[4];
	struct router_hdr *req, *resp;
	size_t n_req = 0, n_resp = 0, i, k = 0;

	if (wc)
		order[k++] = wc;
	for (i = 0; i < 3; i++)
		order[k++] = lv[c->most_specific_wins ? 2 - i : i];
	for (i = 0; i < k; i++) {
		n_req += order[i]->n_req;
		n_resp += order[i]->n_resp;
	}
	memset(out, 0, sizeof(*out));
	if (n_req + n_resp > ROUTER_MAX_HDRS)
		return nack(c, "more than %d header edits", ROUTER_MAX_HDRS);
	req = n_req ? arena_calloc(c->a, n_req, sizeof(*req)) : NULL;
	resp = n_resp ? arena_calloc(c->a, n_resp, sizeof(*resp)) : NULL;
	if ((n_req && !req) || (n_resp && !resp))
		return -ENOMEM;
	for (i = 0; i < k; i++) {
		if (order[i]->n_req)
			memcpy(req + out->n_req, order[i]->req, order[i]->n_req * sizeof(*req));
		out->n_req += order[i]->n_req;
		if (order[i]->n_resp)
			memcpy(resp + out->n_resp, order[i]->resp, order[i]->n_resp * sizeof(*resp));
		out->n_resp += order[i]->n_resp;
	}
	out->req = req;
	out->resp = resp;
	return 0;
}

/* ---------------------------------------------------------------- policies */

static const struct {
	const char *name;
	uint32_t bit;
} retry_names[] = {
	{ "5xx", ROUTER_RETRY_5XX },
	{ "gateway-error", ROUTER_RETRY_GATEWAY_ERROR },
	{ "connect-failure", ROUTER_RETRY_CONNECT_FAILURE },
	{ "retriable-4xx", ROUTER_RETRY_RETRIABLE_4XX },
	{ "refused-stream", ROUTER_RETRY_REFUSED_STREAM },
	{ "retriable-status-codes", ROUTER_RETRY_STATUS_CODES },
	{ "reset", ROUTER_RETRY_RESET },
	{ "reset-before-request", ROUTER_RETRY_RESET_BEFORE_REQUEST },
	{ "envoy-ratelimited", ROUTER_RETRY_ENVOY_RATELIMITED },
	{ "http3-post-connect-failure", ROUTER_RETRY_HTTP3_POST_CONNECT },
	{ "cancelled", ROUTER_RETRY_GRPC_CANCELLED },
	{ "deadline-exceeded", ROUTER_RETRY_GRPC_DEADLINE },
	{ "resource-exhausted", ROUTER_RETRY_GRPC_RESOURCE },
	{ "unavailable", ROUTER_RETRY_GRPC_UNAVAILABLE },
	{ "internal", ROUTER_RETRY_GRPC_INTERNAL },
};

static bool retry_eq(const struct router_retry *x, const struct router_retry *y)
{
	return x->on == y->on && x->num_retries == y->num_retries && x->per_try_timeout_ms == y->per_try_timeout_ms &&
	       x->per_try_idle_timeout_ms == y->per_try_idle_timeout_ms && x->n_status_codes == y->n_status_codes &&
	       (!x->n_status_codes || !memcmp(x->status_codes, y->status_codes, x->n_status_codes * sizeof(*x->status_codes))) &&
	       x->previous_hosts == y->previous_hosts && x->previous_priorities == y->previous_priorities &&
	       x->host_selection_max_attempts == y->host_selection_max_attempts &&
	       x->backoff_base_ms == y->backoff_base_ms && x->backoff_max_ms == y->backoff_max_ms;
}

/* A route's RetryPolicy.  Istio gives every route of a sidecar the same
 * one: a policy equal to the last one compiled is that one (read-only, in
 * the router's arena), not one more copy per route. */
static int compile_retry(struct rctx *c, const pb_retry *p, const struct router_retry **out)
{
	struct router_retry t = { 0 }, *r = &t;
	const char *s;
	size_t i;
	int rc;

	*out = NULL;
	if (!p)
		return 0;
	if ((rc = ck_unknown(c, p)) < 0)
		return rc;
	/* Istio's retryRemoteLocalities sends previous_priorities: accepted
	 * (r->previous_priorities) so the route is not NACKed; a retry still
	 * picks by the normal priority order (see router.h) */
	if (p->retry_priority && (!p->retry_priority->name || strcmp(p->retry_priority->name, ROUTER_PREVIOUS_PRIORITIES)))
		return nack(c, "retry_policy.retry_priority '%s' is not supported",
			    p->retry_priority->name ? p->retry_priority->name : "");
	if (p->n_retry_options_predicates)
		return nack(c, "retry_policy.retry_options_predicates is not supported");
	if (p->n_retriable_headers || p->n_retriable_request_headers)
		return nack(c, "retry_policy.retriable_headers / retriable_request_headers are not supported");
	for (s = p->retry_on ? p->retry_on : ""; *s;) {
		const char *e = strchr(s, ',');
		size_t n = e ? (size_t)(e - s) : strlen(s);
		const char *b = s, *t = s + n;

		while (b < t && (*b == ' ' || *b == '\t'))
			b++;
		while (t > b && (t[-1] == ' ' || t[-1] == '\t'))
			t--;
		if (t > b) {
			for (i = 0; i < sizeof(retry_names) / sizeof(retry_names[0]); i++)
				if (strlen(retry_names[i].name) == (size_t)(t - b) &&
				    memcmp(retry_names[i].name, b, (size_t)(t - b)) == 0)
					break;
			if (i == sizeof(retry_names) / sizeof(retry_names[0]))
				return nack(c, "retry_policy.retry_on: unknown condition '%.*s'", (int)(t - b), b);
			r->on |= retry_names[i].bit;
		}
		s = e ? e + 1 : s + n;
	}
	r->num_retries = p->num_retries ? p->num_retries->value : 1;
	r->per_try_timeout_ms = p->per_try_timeout ? dur_ms(p->per_try_timeout) : 0;
	r->per_try_idle_timeout_ms = p->per_try_idle_timeout ? dur_ms(p->per_try_idle_timeout) : 0;
	r->status_codes = p->retriable_status_codes; /* copied below unless shared */
	r->n_status_codes = (uint32_t)p->n_retriable_status_codes;
	for (i = 0; i < p->n_retry_host_predicate; i++) {
		const Envoy__Config__Route__V3__RetryPolicy__RetryHostPredicate *h = p->retry_host_predicate[i];

		if (!h || !h->name || strcmp(h->name, ROUTER_PREVIOUS_HOSTS) != 0)
			return nack(c, "retry_policy.retry_host_predicate '%s' is not supported",
				    h && h->name ? h->name : "");
		r->previous_hosts = true;
	}
	r->previous_priorities = p->retry_priority != NULL;
	r->host_selection_max_attempts = p->host_selection_retry_max_attempts;
	r->backoff_base_ms = ROUTER_DEFAULT_BACKOFF_MS;
	if (p->retry_back_off) {
		if ((rc = ck_unknown(c, p->retry_back_off)) < 0)
			return rc;
		if (!p->retry_back_off->base_interval)
			return nack(c, "retry_policy.retry_back_off.base_interval is required");
		r->backoff_base_ms = dur_ms(p->retry_back_off->base_interval);
		if (r->backoff_base_ms <= 0)
			return nack(c, "retry_policy.retry_back_off.base_interval must be at least 1ms");
	}
	r->backoff_max_ms = r->backoff_base_ms * 10;
	if (p->retry_back_off && p->retry_back_off->max_interval) {
		r->backoff_max_ms = dur_ms(p->retry_back_off->max_interval);
		if (r->backoff_max_ms < r->backoff_base_ms)
			return nack(c, "retry_policy.retry_back_off: max_interval must be greater than or equal to the "
				    "base_interval");
	}
	if (c->last_retry && retry_eq(c->last_retry, &t)) {
		*out = c->last_retry;
		return 0;
	}
	if (!(r = arena_alloc(c->a, sizeof(*r))))
		return -ENOMEM;
	*r = t;
	if (t.n_status_codes) {
		uint32_t *v = arena_calloc(c->a, t.n_status_codes, sizeof(*v));

		if (!v)
			return -ENOMEM;
		memcpy(v, t.status_codes, t.n_status_codes * sizeof(*v));
		r->status_codes = v;
	} else {
		r->status_codes = NULL;
	}
	c->last_retry = r;
	*out = r;
	return 0;
}

static int compile_mirrors(struct rctx *c, Envoy__Config__Route__V3__RouteAction__RequestMirrorPolicy *const *v,
			   size_t n, const struct router_mirror **out, uint32_t *n_out)
{
	struct router_mirror *m;
	size_t i;
	int rc;

	*out = NULL;
	*n_out = 0;
	if (!n)
		return 0;
	if (!(m = arena_calloc(c->a, n, sizeof(*m))))
		return -ENOMEM;
	for (i = 0; i < n; i++) {
		if ((rc = ck_unknown(c, v[i])) < 0)
			return rc;
		if (v[i]->cluster_header && v[i]->cluster_header[0])
			return nack(c, "request_mirror_policies.cluster_header is not supported");
		if (!v[i]->cluster || !v[i]->cluster[0])
			return nack(c, "request_mirror_policies: cluster is empty");
		if (!(m[i].cluster = arena_strdup(c->a, v[i]->cluster)))
			return -ENOMEM;
		m[i].per_million = v[i]->runtime_fraction ? per_million(v[i]->runtime_fraction->default_value)
							  : ROUTER_PER_MILLION;
		m[i].disable_shadow_host_suffix_append = v[i]->disable_shadow_host_suffix_append;
	}
	*out = m;
	*n_out = (uint32_t)n;
	return 0;
}

/* The fields both CORS policy messages carry (route.v3.CorsPolicy, the
 * deprecated RouteAction/VirtualHost.cors, and the cors filter's own
 * cors.v3.CorsPolicy: the same fields under other numbers). */
#define CORS_COMMON(p, enabled)                                                                              \
	{ (p)->allow_origin_string_match, (p)->n_allow_origin_string_match, (p)->allow_methods, (p)->allow_headers, \
	  (p)->expose_headers, (p)->max_age, (p)->allow_credentials, (enabled), (p)->shadow_enabled,              \
	  (p)->allow_private_network_access, (p)->forward_not_matching_preflights }

struct cors_fields {
	Envoy__Type__Matcher__V3__StringMatcher **origins;
	size_t n_origins;
	const char *allow_methods, *allow_headers, *expose_headers, *max_age;
	const Google__Protobuf__BoolValue *allow_credentials;
	const Envoy__Config__Core__V3__RuntimeFractionalPercent *filter_enabled, *shadow_enabled;
	const Google__Protobuf__BoolValue *allow_private_network_access, *forward_not_matching_preflights;
};

static int compile_cors_fields(struct rctx *c, const struct cors_fields *p, const struct router_cors **out)
{
	struct router_cors *k;
	struct router_string_matcher *o = NULL;
	size_t i;
	int rc;

	if (!(k = arena_alloc(c->a, sizeof(*k))))
		return -ENOMEM;
	if (p->n_origins && !(o = arena_calloc(c->a, p->n_origins, sizeof(*o))))
		return -ENOMEM;
	for (i = 0; i < p->n_origins; i++)
		if ((rc = compile_sm(c, p->origins[i], &o[i], "cors.allow_origin_string_match")) < 0)
			return rc;
	k->origins = o;
	k->n_origins = (uint32_t)p->n_origins;
	if ((p->allow_methods && p->allow_methods[0] && !(k->allow_methods = arena_strdup(c->a, p->allow_methods))) ||
	    (p->allow_headers && p->allow_headers[0] && !(k->allow_headers = arena_strdup(c->a, p->allow_headers))) ||
	    (p->expose_headers && p->expose_headers[0] && !(k->expose_headers = arena_strdup(c->a, p->expose_headers))) ||
	    (p->max_age && p->max_age[0] && !(k->max_age = arena_strdup(c->a, p->max_age))))
		return -ENOMEM;
	k->allow_credentials = p->allow_credentials ? (int8_t)p->allow_credentials->value : -1;
	k->enabled_per_million = p->filter_enabled ? per_million(p->filter_enabled->default_value) : ROUTER_PER_MILLION;
	k->shadow_per_million = p->shadow_enabled ? per_million(p->shadow_enabled->default_value) : 0;
	k->allow_private_network_access = p->allow_private_network_access && p->allow_private_network_access->value;
	k->forward_not_matching_preflights = !p->forward_not_matching_preflights ||
					     p->forward_not_matching_preflights->value;
	*out = k;
	return 0;
}

/* The deprecated RouteAction.cors / VirtualHost.cors (meshd sent it before
 * it sent the cors filter's typed_per_filter_config; still read). */
static int compile_cors(struct rctx *c, const Envoy__Config__Route__V3__CorsPolicy *p, const struct router_cors **out)
{
	int rc;

	*out = NULL;
	if (!p)
		return 0;
	if ((rc = ck_unknown(c, p)) < 0)
		return rc;
	{
		const struct cors_fields f = CORS_COMMON(
			p, p->enabled_specifier_case == ENVOY__CONFIG__ROUTE__V3__CORS_POLICY__ENABLED_SPECIFIER_FILTER_ENABLED
				   ? p->filter_enabled
				   : NULL);

		return compile_cors_fields(c, &f, out);
	}
}

/* typed_per_filter_config "envoy.filters.http.cors": the cors filter's own
 * envoy.extensions.filters.http.cors.v3.CorsPolicy, what Istio emits per
 * route (TranslateCORSPolicy).  Returns 0 or a NACK. */
static int compile_cors_typed(struct rctx *c, const Google__Protobuf__Any *v, const char *key, const struct router_cors **out)
{
	Envoy__Extensions__Filters__Http__Cors__V3__CorsPolicy *cp;
	int rc;

	if (!v || !v->type_url || strcmp(v->type_url, ROUTER_CORS_URL) != 0)
		return nack(c, "typed_per_filter_config '%s': type '%s' is not supported (want %s)", key,
			    v && v->type_url ? v->type_url : "", ROUTER_CORS_URL);
	cp = envoy__extensions__filters__http__cors__v3__cors_policy__unpack(NULL, v->value.len, v->value.data);
	if (!cp)
		return nack(c, "typed_per_filter_config '%s': CorsPolicy does not decode", key);
	rc = ck_unknown(c, cp);
	if (rc == 0) {
		const struct cors_fields f = CORS_COMMON(cp, cp->filter_enabled);

		/* the arena copies every string and matcher it keeps */
		rc = compile_cors_fields(c, &f, out);
	}
	envoy__extensions__filters__http__cors__v3__cors_policy__free_unpacked(cp, NULL);
	return rc;
}

/* typed_per_filter_config: the fault filter's HTTPFault and the cors
 * filter's CorsPolicy; anything else would configure a filter meshproxy
 * does not run. */
static int compile_filter_configs(struct rctx *c, size_t n, void *const *entries, const struct router_fault **out,
				  const struct router_cors **cors)
{
	size_t i;
	int rc = 0;

	*out = NULL;
	*cors = NULL;
	for (i = 0; i < n; i++) {
		/* every map entry type has key then value after the base */
		const Envoy__Config__Route__V3__Route__TypedPerFilterConfigEntry *e = entries[i];
		Envoy__Extensions__Filters__Http__Fault__V3__HTTPFault *hf;
		struct router_fault *f;

		if (e->key && strcmp(e->key, ROUTER_CORS_FILTER) == 0) {
			if ((rc = compile_cors_typed(c, e->value, e->key, cors)) < 0)
				return rc;
			continue;
		}
		if (!e->key || strcmp(e->key, ROUTER_FAULT_FILTER) != 0)
			return nack(c, "typed_per_filter_config '%s' is not supported", e->key ? e->key : "");
		if (!e->value || !e->value->type_url || strcmp(e->value->type_url, ROUTER_FAULT_URL) != 0)
			return nack(c, "typed_per_filter_config '%s': type '%s' is not supported (want %s)", e->key,
				    e->value && e->value->type_url ? e->value->type_url : "", ROUTER_FAULT_URL);
		hf = envoy__extensions__filters__http__fault__v3__httpfault__unpack(NULL, e->value->value.len,
										     e->value->value.data);
		if (!hf)
			return nack(c, "typed_per_filter_config '%s': HTTPFault does not decode", e->key);
		f = arena_alloc(c->a, sizeof(*f));
		if (!f) {
			rc = -ENOMEM;
			goto next;
		}
		f->abort_grpc_status = -1;
		if ((rc = ck_unknown(c, hf)) < 0)
			goto next;
		if ((hf->upstream_cluster && hf->upstream_cluster[0]) || hf->n_headers || hf->n_downstream_nodes ||
		    hf->max_active_faults) {
			rc = nack(c, "fault: upstream_cluster, headers, downstream_nodes and max_active_faults are not "
				  "supported");
			goto next;
		}
		if (hf->delay) {
			if ((rc = ck_unknown(c, hf->delay)) < 0)
				goto next;
			if (hf->delay->fault_delay_secifier_case !=
				    ENVOY__EXTENSIONS__FILTERS__COMMON__FAULT__V3__FAULT_DELAY__FAULT_DELAY_SECIFIER_FIXED_DELAY ||
			    !hf->delay->fixed_delay) {
				rc = nack(c, "fault.delay: only fixed_delay is supported");
				goto next;
			}
			f->has_delay = true;
			f->delay_ms = dur_ms(hf->delay->fixed_delay);
			f->delay_per_million = per_million(hf->delay->percentage);
		}
		if (hf->abort) {
			if ((rc = ck_unknown(c, hf->abort)) < 0)
				goto next;
			f->has_abort = true;
			f->abort_per_million = per_million(hf->abort->percentage);
			if (hf->abort->error_type_case ==
			    ENVOY__EXTENSIONS__FILTERS__HTTP__FAULT__V3__FAULT_ABORT__ERROR_TYPE_HTTP_STATUS) {
				if (hf->abort->http_status < 200 || hf->abort->http_status >= 600) {
					rc = nack(c, "fault.abort.http_status %u out of [200, 600)", hf->abort->http_status);
					goto next;
				}
				f->abort_http_status = hf->abort->http_status;
			} else if (hf->abort->error_type_case ==
				   ENVOY__EXTENSIONS__FILTERS__HTTP__FAULT__V3__FAULT_ABORT__ERROR_TYPE_GRPC_STATUS) {
				f->abort_grpc_status = (int32_t)hf->abort->grpc_status;
			} else {
				rc = nack(c, "fault.abort: only http_status and grpc_status are supported");
				goto next;
			}
		}
		*out = f;
next:
		envoy__extensions__filters__http__fault__v3__httpfault__free_unpacked(hf, NULL);
		if (rc < 0)
			return rc;
	}
	return 0;
}

/* ---------------------------------------------------------------- routes */

struct vh_defaults {
	const struct router_retry *retry;
	const struct router_mirror *mirrors;
	uint32_t n_mirrors;
	const struct router_cors *cors;
	const struct router_cors *cors_typed; /* the cors filter's per-filter config (wins over cors) */
	const struct router_fault *fault;
	bool attempt_req, attempt_resp;
	uint32_t buffer_limit;
	const struct hdr_level *levels[3]; /* [1] virtual host, [2] config; [0] set per route */
};

static int compile_match(struct rctx *c, const pb_match *m, struct router_rentry *e)
{
	size_t i;
	int rc;

	if (!m)
		return nack(c, "match is missing");
	if ((rc = ck_unknown(c, m)) < 0)
		return rc;
	if (m->tls_context || m->n_dynamic_metadata)
		return nack(c, "match.tls_context / dynamic_metadata are not supported");
	e->case_sensitive = !m->case_sensitive || m->case_sensitive->value;
	switch (m->path_specifier_case) {
	case ENVOY__CONFIG__ROUTE__V3__ROUTE_MATCH__PATH_SPECIFIER_PREFIX:
		e->path_kind = PATH_PREFIX;
		e->path = m->prefix;
		break;
	case ENVOY__CONFIG__ROUTE__V3__ROUTE_MATCH__PATH_SPECIFIER_PATH:
		e->path_kind = PATH_EXACT;
		e->path = m->path;
		break;
	case ENVOY__CONFIG__ROUTE__V3__ROUTE_MATCH__PATH_SPECIFIER_PATH_SEPARATED_PREFIX:
		e->path_kind = PATH_SEPARATED;
		e->path = m->path_separated_prefix;
		/* Envoy's proto validation: no '?', '#', and no trailing '/' */
		if (!e->path || e->path[0] != '/' || strpbrk(e->path, "?#") ||
		    (strlen(e->path) > 1 && e->path[strlen(e->path) - 1] == '/'))
			return nack(c, "match.path_separated_prefix '%s' is invalid", e->path ? e->path : "");
		break;
	case ENVOY__CONFIG__ROUTE__V3__ROUTE_MATCH__PATH_SPECIFIER_SAFE_REGEX:
		e->path_kind = PATH_REGEX;
		if (!m->safe_regex)
			return nack(c, "match.safe_regex is missing");
		if ((rc = compile_re(c, m->safe_regex, &e->path_re, "match.safe_regex")) < 0)
			return rc;
		break;
	case ENVOY__CONFIG__ROUTE__V3__ROUTE_MATCH__PATH_SPECIFIER_CONNECT_MATCHER:
		return nack(c, "match.connect_matcher is not supported");
	default:
		return nack(c, "match has no path specifier (prefix, path, safe_regex or path_separated_prefix)");
	}
	if (e->path_kind != PATH_REGEX) {
		e->path_len = (uint32_t)strlen(e->path ? e->path : "");
		e->path = e->case_sensitive ? arena_strndup(c->a, e->path ? e->path : "", e->path_len)
					    : lowdup(c->a, e->path ? e->path : "", e->path_len);
		if (!e->path)
			return -ENOMEM;
	}
	if (m->runtime_fraction) {
		const Envoy__Type__V3__FractionalPercent *p = m->runtime_fraction->default_value;

		e->has_fraction = true;
		e->frac_num = p ? p->numerator : 0;
		e->frac_den = !p || p->denominator == ENVOY__TYPE__V3__FRACTIONAL_PERCENT__DENOMINATOR_TYPE__HUNDRED ? 100
			      : p->denominator == ENVOY__TYPE__V3__FRACTIONAL_PERCENT__DENOMINATOR_TYPE__TEN_THOUSAND ? 10000
			      : 1000000;
	}
	e->grpc = m->grpc != NULL;
	if (m->n_headers) {
		struct router_hmatch *h = arena_calloc(c->a, m->n_headers, sizeof(*h));

		if (!h)
			return -ENOMEM;
		for (i = 0; i < m->n_headers; i++)
			if ((rc = compile_hm(c, m->headers[i], &h[i])) < 0)
				return rc;
		e->headers = h;
		e->n_headers = (uint32_t)m->n_headers;
	}
	if (m->n_query_parameters) {
		struct router_qmatch *q = arena_calloc(c->a, m->n_query_parameters, sizeof(*q));

		if (!q)
			return -ENOMEM;
		for (i = 0; i < m->n_query_parameters; i++) {
			const Envoy__Config__Route__V3__QueryParameterMatcher *qm = m->query_parameters[i];

			if ((rc = ck_unknown(c, qm)) < 0)
				return rc;
			if (!qm->name || !qm->name[0])
				return nack(c, "query_parameters: name is empty");
			q[i].name_len = (uint32_t)strlen(qm->name);
			if (!(q[i].name = arena_strdup(c->a, qm->name)))
				return -ENOMEM;
			if (qm->query_parameter_match_specifier_case ==
			    ENVOY__CONFIG__ROUTE__V3__QUERY_PARAMETER_MATCHER__QUERY_PARAMETER_MATCH_SPECIFIER_STRING_MATCH) {
				if ((rc = compile_sm(c, qm->string_match, &q[i].sm, "query_parameters")) < 0)
					return rc;
			} else {
				/* present_match, or nothing: Envoy checks presence */
				q[i].present_only = true;
			}
		}
		e->queries = q;
		e->n_queries = (uint32_t)m->n_query_parameters;
	}
	return 0;
}

static int compile_rewrite(struct rctx *c, const Envoy__Type__Matcher__V3__RegexMatchAndSubstitute *m,
			   const struct mesh_re **re, const char **sub, const char *what)
{
	struct mesh_re *x;
	char err[512];
	int rc;

	if ((rc = ck_unknown(c, m)) < 0)
		return rc;
	if (!m->pattern)
		return nack(c, "%s: pattern is missing", what);
	if ((rc = compile_re(c, m->pattern, &x, what)) < 0)
		return rc;
	if (mesh_re_check_rewrite(x, m->substitution ? m->substitution : "", err, sizeof(err)) < 0)
		return nack(c, "%s: %s", what, err);
	*re = x;
	*sub = arena_strdup(c->a, m->substitution ? m->substitution : "");
	return *sub ? 0 : -ENOMEM;
}

static int compile_hash(struct rctx *c, const pb_action *a, struct router_route *rt)
{
	struct router_hash_policy *h;
	size_t i;
	int rc;

	if (!a->n_hash_policy)
		return 0;
	if (!(h = arena_calloc(c->a, a->n_hash_policy, sizeof(*h))))
		return -ENOMEM;
	for (i = 0; i < a->n_hash_policy; i++) {
		const Envoy__Config__Route__V3__RouteAction__HashPolicy *p = a->hash_policy[i];
		const char *name = NULL;

		if ((rc = ck_unknown(c, p)) < 0)
			return rc;
		h[i].terminal = p->terminal;
		h[i].cookie_ttl_ms = -1;
		switch (p->policy_specifier_case) {
		case ENVOY__CONFIG__ROUTE__V3__ROUTE_ACTION__HASH_POLICY__POLICY_SPECIFIER_HEADER:
			if (p->header->regex_rewrite)
				return nack(c, "hash_policy.header.regex_rewrite is not supported");
			h[i].kind = ROUTER_HASH_HEADER;
			name = p->header->header_name;
			if (!name || !(h[i].name = lowdup(c->a, name, strlen(name))))
				return name ? -ENOMEM : nack(c, "hash_policy.header: header_name is empty");
			continue;
		case ENVOY__CONFIG__ROUTE__V3__ROUTE_ACTION__HASH_POLICY__POLICY_SPECIFIER_COOKIE:
			if (p->cookie->n_attributes)
				return nack(c, "hash_policy.cookie.attributes is not supported");
			h[i].kind = ROUTER_HASH_COOKIE;
			name = p->cookie->name;
			if (p->cookie->ttl)
				h[i].cookie_ttl_ms = dur_ms(p->cookie->ttl);
			if (p->cookie->path && p->cookie->path[0] &&
			    !(h[i].cookie_path = arena_strdup(c->a, p->cookie->path)))
				return -ENOMEM;
			break;
		case ENVOY__CONFIG__ROUTE__V3__ROUTE_ACTION__HASH_POLICY__POLICY_SPECIFIER_CONNECTION_PROPERTIES:
			if (!p->connection_properties->source_ip)
				return nack(c, "hash_policy.connection_properties without source_ip");
			h[i].kind = ROUTER_HASH_SOURCE_IP;
			continue;
		case ENVOY__CONFIG__ROUTE__V3__ROUTE_ACTION__HASH_POLICY__POLICY_SPECIFIER_QUERY_PARAMETER:
			h[i].kind = ROUTER_HASH_QUERY;
			name = p->query_parameter->name;
			break;
		case ENVOY__CONFIG__ROUTE__V3__ROUTE_ACTION__HASH_POLICY__POLICY_SPECIFIER_FILTER_STATE:
			return nack(c, "hash_policy.filter_state is not supported");
		default:
			return nack(c, "hash_policy without a policy");
		}
		if (!name || !name[0])
			return nack(c, "hash_policy: name is empty");
		if (!(h[i].name = arena_strdup(c->a, name)))
			return -ENOMEM;
	}
	rt->hash = h;
	rt->n_hash = (uint32_t)a->n_hash_policy;
	return 0;
}

static int compile_action(struct rctx *c, const pb_action *a, struct router_route *rt, const pb_route *r,
			  const struct hdr_level *const lv[3])
{
	struct router_cluster *cl;
	size_t i;
	int rc;

	if ((rc = ck_unknown(c, a)) < 0)
		return rc;
	if (a->metadata_match)
		return nack(c, "route.metadata_match is not supported");
	if (a->hedge_policy)
		return nack(c, "route.hedge_policy is not supported");
	if (a->host_rewrite_specifier_case ==
	    ENVOY__CONFIG__ROUTE__V3__ROUTE_ACTION__HOST_REWRITE_SPECIFIER_HOST_REWRITE_PATH_REGEX)
		return nack(c, "route.host_rewrite_path_regex is not supported");
	switch (a->cluster_not_found_response_code) {
	case ENVOY__CONFIG__ROUTE__V3__ROUTE_ACTION__CLUSTER_NOT_FOUND_RESPONSE_CODE__NOT_FOUND:
		rt->cluster_not_found_code = 404;
		break;
	case ENVOY__CONFIG__ROUTE__V3__ROUTE_ACTION__CLUSTER_NOT_FOUND_RESPONSE_CODE__INTERNAL_SERVER_ERROR:
		rt->cluster_not_found_code = 500;
		break;
	default:
		rt->cluster_not_found_code = 503;
		break;
	}
	switch (a->cluster_specifier_case) {
	case ENVOY__CONFIG__ROUTE__V3__ROUTE_ACTION__CLUSTER_SPECIFIER_CLUSTER:
		if (!a->cluster || !a->cluster[0])
			return nack(c, "route.cluster is empty");
		if (!(cl = arena_alloc(c->a, sizeof(*cl))) || !(cl->name = arena_strdup(c->a, a->cluster)))
			return -ENOMEM;
		cl->weight = 1;
		if ((rc = hdr_flatten(c, NULL, lv, &cl->hdrs)) < 0)
			return rc;
		rt->clusters = cl;
		rt->n_clusters = 1;
		break;
	case ENVOY__CONFIG__ROUTE__V3__ROUTE_ACTION__CLUSTER_SPECIFIER_CLUSTER_HEADER:
		if (!a->cluster_header || !a->cluster_header[0])
			return nack(c, "route.cluster_header is empty");
		if (!(rt->cluster_header = lowdup(c->a, a->cluster_header, strlen(a->cluster_header))))
			return -ENOMEM;
		break;
	case ENVOY__CONFIG__ROUTE__V3__ROUTE_ACTION__CLUSTER_SPECIFIER_WEIGHTED_CLUSTERS: {
		const Envoy__Config__Route__V3__WeightedCluster *w = a->weighted_clusters;
		uint64_t sum = 0;

		if ((rc = ck_unknown(c, w)) < 0)
			return rc;
		if (w->random_value_specifier_case == ENVOY__CONFIG__ROUTE__V3__WEIGHTED_CLUSTER__RANDOM_VALUE_SPECIFIER_HEADER_NAME)
			return nack(c, "weighted_clusters.header_name is not supported");
		if (!w->n_clusters)
			return nack(c, "weighted_clusters has no clusters");
		if (!(cl = arena_calloc(c->a, w->n_clusters, sizeof(*cl))))
			return -ENOMEM;
		for (i = 0; i < w->n_clusters; i++) {
			const Envoy__Config__Route__V3__WeightedCluster__ClusterWeight *cw = w->clusters[i];
			struct hdr_level wl;

			if ((rc = ck_unknown(c, cw)) < 0)
				return rc;
			if ((cw->cluster_header && cw->cluster_header[0]) || cw->metadata_match ||
			    cw->n_typed_per_filter_config)
				return nack(c, "weighted_clusters: cluster_header, metadata_match and typed_per_filter_config "
					    "of a cluster are not supported");
			if (!cw->name || !cw->name[0])
				return nack(c, "weighted_clusters: cluster %zu has no name", i);
			if (!(cl[i].name = arena_strdup(c->a, cw->name)))
				return -ENOMEM;
			cl[i].weight = cw->weight ? cw->weight->value : 0;
			sum += cl[i].weight;
			if (cw->host_rewrite_specifier_case ==
				    ENVOY__CONFIG__ROUTE__V3__WEIGHTED_CLUSTER__CLUSTER_WEIGHT__HOST_REWRITE_SPECIFIER_HOST_REWRITE_LITERAL &&
			    cw->host_rewrite_literal && cw->host_rewrite_literal[0] &&
			    !(cl[i].host_rewrite = arena_strdup(c->a, cw->host_rewrite_literal)))
				return -ENOMEM;
			if ((rc = hdr_level(c, cw->request_headers_to_add, cw->n_request_headers_to_add,
					    cw->request_headers_to_remove, cw->n_request_headers_to_remove,
					    cw->response_headers_to_add, cw->n_response_headers_to_add,
					    cw->response_headers_to_remove, cw->n_response_headers_to_remove, &wl)) < 0 ||
			    (rc = hdr_flatten(c, &wl, lv, &cl[i].hdrs)) < 0)
				return rc;
		}
		/* Envoy: the weights must add up to total_weight when it is set */
		if (w->total_weight && w->total_weight->value != sum)
			return nack(c, "weighted_clusters: sum of weights %llu must add up to total_weight %u",
				    (unsigned long long)sum, w->total_weight->value);
		if (sum == 0)
			return nack(c, "weighted_clusters: sum of weights is 0");
		if (sum > UINT32_MAX)
			return nack(c, "weighted_clusters: sum of weights exceeds %u", UINT32_MAX);
		rt->clusters = cl;
		rt->n_clusters = (uint32_t)w->n_clusters;
		rt->weighted = true;
		rt->total_weight = sum;
		break;
	}
	default:
		return nack(c, "route action without cluster, cluster_header or weighted_clusters");
	}
	if (a->prefix_rewrite && a->prefix_rewrite[0] && !(rt->prefix_rewrite = arena_strdup(c->a, a->prefix_rewrite)))
		return -ENOMEM;
	if (a->regex_rewrite) {
		if (rt->prefix_rewrite)
			return nack(c, "specify only one of prefix_rewrite and regex_rewrite");
		if ((rc = compile_rewrite(c, a->regex_rewrite, &rt->regex_rewrite, &rt->regex_sub, "regex_rewrite")) < 0)
			return rc;
	}
	switch (a->host_rewrite_specifier_case) {
	case ENVOY__CONFIG__ROUTE__V3__ROUTE_ACTION__HOST_REWRITE_SPECIFIER_HOST_REWRITE_LITERAL:
		if (a->host_rewrite_literal && a->host_rewrite_literal[0] &&
		    !(rt->host_rewrite = arena_strdup(c->a, a->host_rewrite_literal)))
			return -ENOMEM;
		break;
	case ENVOY__CONFIG__ROUTE__V3__ROUTE_ACTION__HOST_REWRITE_SPECIFIER_AUTO_HOST_REWRITE:
		rt->auto_host_rewrite = a->auto_host_rewrite && a->auto_host_rewrite->value;
		break;
	case ENVOY__CONFIG__ROUTE__V3__ROUTE_ACTION__HOST_REWRITE_SPECIFIER_HOST_REWRITE_HEADER:
		if (a->host_rewrite_header && a->host_rewrite_header[0] &&
		    !(rt->host_rewrite_header = lowdup(c->a, a->host_rewrite_header, strlen(a->host_rewrite_header))))
			return -ENOMEM;
		break;
	default:
		break;
	}
	rt->append_x_forwarded_host = a->append_x_forwarded_host;
	rt->timeout_ms = a->timeout ? dur_ms(a->timeout) : ROUTER_DEFAULT_TIMEOUT_MS;
	rt->idle_timeout_ms = a->idle_timeout ? dur_ms(a->idle_timeout) : -1;
	rt->max_stream_duration_ms = -1;
	rt->grpc_timeout_header_max_ms = -1;
	/* the deprecated max_grpc_timeout / grpc_timeout_offset, then the
	 * newer max_stream_duration fields, which win (Envoy) */
	if (a->max_grpc_timeout)
		rt->grpc_timeout_header_max_ms = dur_ms(a->max_grpc_timeout);
	if (a->grpc_timeout_offset)
		rt->grpc_timeout_header_offset_ms = dur_ms(a->grpc_timeout_offset);
	if (a->max_stream_duration) {
		const Envoy__Config__Route__V3__RouteAction__MaxStreamDuration *m = a->max_stream_duration;

		if ((rc = ck_unknown(c, m)) < 0)
			return rc;
		if (m->max_stream_duration)
			rt->max_stream_duration_ms = dur_ms(m->max_stream_duration);
		if (m->grpc_timeout_header_max)
			rt->grpc_timeout_header_max_ms = dur_ms(m->grpc_timeout_header_max);
		if (m->grpc_timeout_header_offset)
			rt->grpc_timeout_header_offset_ms = dur_ms(m->grpc_timeout_header_offset);
	}
	if (a->retry_policy && (rc = compile_retry(c, a->retry_policy, &rt->retry)) < 0)
		return rc;
	if ((rc = compile_hash(c, a, rt)) < 0)
		return rc;
	if (a->n_request_mirror_policies &&
	    (rc = compile_mirrors(c, a->request_mirror_policies, a->n_request_mirror_policies, &rt->mirrors,
				  &rt->n_mirrors)) < 0)
		return rc;
	if (a->cors && (rc = compile_cors(c, a->cors, &rt->cors)) < 0)
		return rc;
	rt->priority_high = a->priority == ENVOY__CONFIG__CORE__V3__ROUTING_PRIORITY__HIGH;
	if (a->n_upgrade_configs) {
		struct router_upgrade *u = arena_calloc(c->a, a->n_upgrade_configs, sizeof(*u));

		if (!u)
			return -ENOMEM;
		for (i = 0; i < a->n_upgrade_configs; i++) {
			const char *t = a->upgrade_configs[i]->upgrade_type ? a->upgrade_configs[i]->upgrade_type : "";

			if ((rc = ck_unknown(c, a->upgrade_configs[i])) < 0)
				return rc;
			if (!(u[i].type = lowdup(c->a, t, strlen(t))))
				return -ENOMEM;
			u[i].enabled = a->upgrade_configs[i]->enabled ? (int8_t)a->upgrade_configs[i]->enabled->value : -1;
		}
		rt->upgrades = u;
		rt->n_upgrades = (uint32_t)a->n_upgrade_configs;
	}
	(void)r;
	return 0;
}

/* Envoy's SSL_REDIRECTOR: 301 to https, host and path kept. */
static const struct router_redirect ssl_redirect = { .ssl = true, .code = 301 };

static int compile_redirect(struct rctx *c, const Envoy__Config__Route__V3__RedirectAction *d,
			    struct router_redirect *rd)
{
	int rc;

	if ((rc = ck_unknown(c, d)) < 0)
		return rc;
	if (d->scheme_rewrite_specifier_case == ENVOY__CONFIG__ROUTE__V3__REDIRECT_ACTION__SCHEME_REWRITE_SPECIFIER_HTTPS_REDIRECT &&
	    d->https_redirect)
		rd->scheme = "https";
	else if (d->scheme_rewrite_specifier_case ==
			 ENVOY__CONFIG__ROUTE__V3__REDIRECT_ACTION__SCHEME_REWRITE_SPECIFIER_SCHEME_REDIRECT &&
		 d->scheme_redirect && d->scheme_redirect[0] && !(rd->scheme = lowdup(c->a, d->scheme_redirect, strlen(d->scheme_redirect))))
		return -ENOMEM;
	if (d->host_redirect && d->host_redirect[0] && !(rd->host = arena_strdup(c->a, d->host_redirect)))
		return -ENOMEM;
	rd->port = d->port_redirect;
	switch (d->path_rewrite_specifier_case) {
	case ENVOY__CONFIG__ROUTE__V3__REDIRECT_ACTION__PATH_REWRITE_SPECIFIER_PATH_REDIRECT:
		if (d->path_redirect && d->path_redirect[0]) {
			if (!(rd->path = arena_strdup(c->a, d->path_redirect)))
				return -ENOMEM;
			rd->path_has_query = strchr(rd->path, '?') != NULL;
		}
		break;
	case ENVOY__CONFIG__ROUTE__V3__REDIRECT_ACTION__PATH_REWRITE_SPECIFIER_PREFIX_REWRITE:
		if (!(rd->prefix_rewrite = arena_strdup(c->a, d->prefix_rewrite ? d->prefix_rewrite : "")))
			return -ENOMEM;
		break;
	case ENVOY__CONFIG__ROUTE__V3__REDIRECT_ACTION__PATH_REWRITE_SPECIFIER_REGEX_REWRITE:
		if ((rc = compile_rewrite(c, d->regex_rewrite, &rd->regex, &rd->regex_sub, "redirect.regex_rewrite")) < 0)
			return rc;
		break;
	default:
		break;
	}
	switch (d->response_code) {
	case ENVOY__CONFIG__ROUTE__V3__REDIRECT_ACTION__REDIRECT_RESPONSE_CODE__FOUND:
		rd->code = 302;
		break;
	case ENVOY__CONFIG__ROUTE__V3__REDIRECT_ACTION__REDIRECT_RESPONSE_CODE__SEE_OTHER:
		rd->code = 303;
		break;
	case ENVOY__CONFIG__ROUTE__V3__REDIRECT_ACTION__REDIRECT_RESPONSE_CODE__TEMPORARY_REDIRECT:
		rd->code = 307;
		break;
	case ENVOY__CONFIG__ROUTE__V3__REDIRECT_ACTION__REDIRECT_RESPONSE_CODE__PERMANENT_REDIRECT:
		rd->code = 308;
		break;
	default:
		rd->code = 301;
		break;
	}
	rd->strip_query = d->strip_query;
	return 0;
}

static int compile_route(struct rctx *c, const pb_route *r, struct router_rentry *e, const struct vh_defaults *vd)
{
	struct router_route *rt = &e->pub;
	const struct router_cors *cors_typed;
	struct hdr_level rl;
	const struct hdr_level *lv[3] = { &rl, vd->levels[1], vd->levels[2] };
	int rc;

	if ((rc = ck_unknown(c, r)) < 0)
		return rc;
	if ((rc = compile_match(c, r->match, e)) < 0)
		return rc;
	if (!(rt->name = arena_strdup(c->a, r->name ? r->name : "")))
		return -ENOMEM;
	/* Envoy's DecoratorImpl: an empty operation decorates nothing */
	if (r->decorator && r->decorator->operation && r->decorator->operation[0] &&
	    !(rt->decorator = arena_strdup(c->a, r->decorator->operation)))
		return -ENOMEM;
	rt->decorator_propagate = !r->decorator || !r->decorator->propagate || r->decorator->propagate->value;
	if ((rc = hdr_level(c, r->request_headers_to_add, r->n_request_headers_to_add, r->request_headers_to_remove,
			    r->n_request_headers_to_remove, r->response_headers_to_add, r->n_response_headers_to_add,
			    r->response_headers_to_remove, r->n_response_headers_to_remove, &rl)) < 0 ||
	    (rc = hdr_flatten(c, NULL, lv, &rt->hdrs)) < 0)
		return rc;
	if ((rc = compile_filter_configs(c, r->n_typed_per_filter_config, (void *const *)r->typed_per_filter_config,
					 &rt->fault, &cors_typed)) < 0)
		return rc;
	if (!rt->fault)
		rt->fault = vd->fault;
	rt->per_request_buffer_limit = r->per_request_buffer_limit_bytes ? r->per_request_buffer_limit_bytes->value
									  : vd->buffer_limit;
	switch (r->action_case) {
	case ENVOY__CONFIG__ROUTE__V3__ROUTE__ACTION_ROUTE:
		rt->action = ROUTER_ACTION_ROUTE;
		if ((rc = compile_action(c, r->route, rt, r, lv)) < 0)
			return rc;
		break;
	case ENVOY__CONFIG__ROUTE__V3__ROUTE__ACTION_REDIRECT:
		rt->action = ROUTER_ACTION_REDIRECT;
		{
			struct router_redirect *rd = arena_alloc(c->a, sizeof(*rd));

			if (!rd)
				return -ENOMEM;
			if ((rc = compile_redirect(c, r->redirect, rd)) < 0)
				return rc;
			rt->redirect = rd;
		}
		break;
	case ENVOY__CONFIG__ROUTE__V3__ROUTE__ACTION_DIRECT_RESPONSE: {
		const Envoy__Config__Route__V3__DirectResponseAction *d = r->direct_response;
		const Envoy__Config__Core__V3__DataSource *b = d->body;

		rt->action = ROUTER_ACTION_DIRECT;
		if ((rc = ck_unknown(c, d)) < 0)
			return rc;
		if (d->status < 200 || d->status >= 600)
			return nack(c, "direct_response.status %u out of [200, 600)", d->status);
		rt->direct_status = (uint16_t)d->status;
		rt->direct_body = "";
		if (b) {
			const void *p = NULL;
			size_t n = 0;

			if (b->specifier_case == ENVOY__CONFIG__CORE__V3__DATA_SOURCE__SPECIFIER_INLINE_STRING) {
				p = b->inline_string;
				n = p ? strlen(b->inline_string) : 0;
			} else if (b->specifier_case == ENVOY__CONFIG__CORE__V3__DATA_SOURCE__SPECIFIER_INLINE_BYTES) {
				p = b->inline_bytes.data;
				n = b->inline_bytes.len;
			} else if (b->specifier_case != ENVOY__CONFIG__CORE__V3__DATA_SOURCE__SPECIFIER__NOT_SET) {
				return nack(c, "direct_response.body: only inline_string and inline_bytes are supported");
			}
			if (n > c->max_body)
				return nack(c, "direct_response.body is %zu bytes, over max_direct_response_body_size_bytes %u",
					    n, c->max_body);
			if (n) {
				char *copy = arena_alloc(c->a, n + 1);

				if (!copy)
					return -ENOMEM;
				memcpy(copy, p, n);
				rt->direct_body = copy;
				rt->direct_body_len = n;
			}
		}
		break;
	}
	case ENVOY__CONFIG__ROUTE__V3__ROUTE__ACTION_NON_FORWARDING_ACTION:
		return nack(c, "non_forwarding_action is not supported");
	default:
		return nack(c, "route has no action");
	}
	if (!rt->retry)
		rt->retry = vd->retry;
	if (!rt->n_mirrors) {
		rt->mirrors = vd->mirrors;
		rt->n_mirrors = vd->n_mirrors;
	}
	/* Envoy's cors filter: the most specific typed_per_filter_config (route,
	 * then virtual host) wins; without one, the deprecated RouteAction.cors,
	 * then VirtualHost.cors */
	if (cors_typed)
		rt->cors = cors_typed;
	else if (vd->cors_typed)
		rt->cors = vd->cors_typed;
	else if (!rt->cors)
		rt->cors = vd->cors;
	rt->include_attempt_count_req = vd->attempt_req;
	rt->include_attempt_count_resp = vd->attempt_resp;
	return 0;
}

/* ---------------------------------------------------------------- domains */

static inline uint64_t dom_hash(uint8_t kind, const char *s, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ULL ^ kind;
	size_t i;

	for (i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];

		if (ch >= 'A' && ch <= 'Z')
			ch = (unsigned char)(ch - 'A' + 'a');
		h ^= ch;
		h *= 0x100000001b3ULL;
	}
	return h | 1;                    /* 0 marks an empty slot */
}

/* s (request bytes, any case) equals d (lowercase)? */
static inline bool eq_lower(const char *s, const char *d, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];

		if (ch >= 'A' && ch <= 'Z')
			ch = (unsigned char)(ch - 'A' + 'a');
		if (ch != (unsigned char)d[i])
			return false;
	}
	return true;
}

static inline uint32_t dom_tag(uint64_t h)
{
	return (uint32_t)(h >> 32) | 1;
}

static const struct router_dom *dom_find(const struct router_config *cf, uint8_t kind, const char *s, size_t n)
{
	uint64_t h = dom_hash(kind, s, n);
	uint32_t i = (uint32_t)h & cf->mask, tag = dom_tag(h);

	for (;; i = (i + 1) & cf->mask) {
		const struct router_dom *d = &cf->table[i];

		if (!d->tag)
			return NULL;
		if (d->tag == tag && d->kind == kind && d->len == n && eq_lower(s, d->s, n))
			return d;
	}
}

static int add_len(struct arena *a, uint32_t **v, uint32_t *n, uint32_t len, uint32_t cap)
{
	uint32_t i, k;

	for (i = 0; i < *n; i++)
		if ((*v)[i] == len)
			return 0;
	if (!*v && !(*v = arena_calloc(a, cap, sizeof(**v))))
		return -ENOMEM;
	for (i = 0; i < *n && (*v)[i] > len; i++)
		;
	for (k = *n; k > i; k--)
		(*v)[k] = (*v)[k - 1];
	(*v)[i] = len;
	(*n)++;
	return 0;
}

static int compile_domains(struct rctx *c, const pb_rc *p, struct router_config *cf)
{
	size_t total = 0, i, j, slots = 16;
	int rc;

	for (i = 0; i < p->n_virtual_hosts; i++)
		total += p->virtual_hosts[i]->n_domains;
	/* load at most 3/4 (linear probing stays short; a slot stays empty) */
	while (slots * 3 < total * 4)
		slots *= 2;
	if (!(cf->table = arena_calloc(c->a, slots, sizeof(*cf->table))))
		return -ENOMEM;
	cf->mask = (uint32_t)(slots - 1);
	cf->default_vh = -1;
	for (i = 0; i < p->n_virtual_hosts; i++) {
		const pb_vh *v = p->virtual_hosts[i];

		for (j = 0; j < v->n_domains; j++) {
			const char *d = v->domains[j] ? v->domains[j] : "";
			size_t n = strlen(d);
			uint8_t kind;
			const char *key = d;
			struct router_dom *slot;
			uint32_t k;

			if (!n)
				return nack(c, "virtual host '%s': empty domain", v->name ? v->name : "");
			if (strcmp(d, "*") == 0) {
				if (cf->default_vh >= 0)
					return nack(c, "Only unique values for domains are permitted. Duplicate entry of "
						    "domain * in route %s", c->rc);
				cf->default_vh = (int32_t)i;
				continue;
			}
			/* Envoy's RouteMatcher: a leading '*' is a suffix
			 * wildcard, else a trailing one a prefix wildcard */
			if (d[0] == '*') {
				kind = DOM_SUFFIX;
				key = d + 1;
				n--;
			} else if (d[n - 1] == '*') {
				kind = DOM_PREFIX;
				n--;
			} else {
				kind = DOM_EXACT;
			}
			if (dom_find(cf, kind, key, n))
				return nack(c, "Only unique values for domains are permitted. Duplicate entry of domain %s "
					    "in route %s", d, c->rc);
			k = (uint32_t)dom_hash(kind, key, n) & cf->mask;
			while (cf->table[k].tag)
				k = (k + 1) & cf->mask;
			slot = &cf->table[k];
			if (!(slot->s = lowdup(c->a, key, n)))
				return -ENOMEM;
			slot->tag = dom_tag(dom_hash(kind, key, n));
			slot->len = (uint32_t)n;
			slot->vh = (uint32_t)i;
			slot->kind = kind;
			if (kind == DOM_SUFFIX &&
			    (rc = add_len(c->a, &cf->suffix_lens, &cf->n_suffix_lens, (uint32_t)n, (uint32_t)total)) < 0)
				return rc;
			if (kind == DOM_PREFIX &&
			    (rc = add_len(c->a, &cf->prefix_lens, &cf->n_prefix_lens, (uint32_t)n, (uint32_t)total)) < 0)
				return rc;
		}
	}
	return 0;
}

static int compile_config(struct rctx *c, const pb_rc *p, struct router_config *cf)
{
	struct hdr_level rcl, *vhl = NULL;
	size_t i, j;
	int rc;

	c->rc = p->name ? p->name : "";
	c->vh = NULL;
	c->route = -1;
	if ((rc = ck_unknown(c, p)) < 0)
		return rc;
	if (p->n_internal_only_headers)
		return nack(c, "internal_only_headers is not supported");
	if (p->n_typed_per_filter_config)
		return nack(c, "typed_per_filter_config is not supported on a route configuration");
	c->most_specific_wins = p->most_specific_header_mutations_wins;
	c->max_body = p->max_direct_response_body_size_bytes ? p->max_direct_response_body_size_bytes->value
							     : ROUTER_DIRECT_BODY_MAX;
	cf->name_len = (uint32_t)strlen(c->rc);
	if (!(cf->name = arena_strdup(c->a, c->rc)))
		return -ENOMEM;
	cf->ignore_port = p->ignore_port_in_host_matching;
	cf->validate_clusters = p->validate_clusters && p->validate_clusters->value;
	if ((rc = hdr_level(c, p->request_headers_to_add, p->n_request_headers_to_add, p->request_headers_to_remove,
			    p->n_request_headers_to_remove, p->response_headers_to_add, p->n_response_headers_to_add,
			    p->response_headers_to_remove, p->n_response_headers_to_remove, &rcl)) < 0)
		return rc;
	if ((rc = compile_domains(c, p, cf)) < 0)
		return rc;
	if (p->n_virtual_hosts &&
	    (!(cf->vhosts = arena_calloc(c->a, p->n_virtual_hosts, sizeof(*cf->vhosts))) ||
	     !(vhl = arena_calloc(c->a, p->n_virtual_hosts, sizeof(*vhl)))))
		return -ENOMEM;
	cf->n_vhosts = (uint32_t)p->n_virtual_hosts;
	for (i = 0; i < p->n_virtual_hosts; i++) {
		const pb_vh *v = p->virtual_hosts[i];
		struct router_vhost *vh = &cf->vhosts[i];
		struct vh_defaults vd = { .levels = { NULL, &vhl[i], &rcl } };

		c->vh = v->name ? v->name : "";
		c->route = -1;
		if ((rc = ck_unknown(c, v)) < 0)
			return rc;
		if (v->require_tls != ENVOY__CONFIG__ROUTE__V3__VIRTUAL_HOST__TLS_REQUIREMENT_TYPE__NONE &&
		    v->require_tls != ENVOY__CONFIG__ROUTE__V3__VIRTUAL_HOST__TLS_REQUIREMENT_TYPE__EXTERNAL_ONLY &&
		    v->require_tls != ENVOY__CONFIG__ROUTE__V3__VIRTUAL_HOST__TLS_REQUIREMENT_TYPE__ALL)
			return nack(c, "require_tls: unknown value");
		if (v->hedge_policy)
			return nack(c, "hedge_policy is not supported");
		if (!(vh->name = arena_strdup(c->a, c->vh)))
			return -ENOMEM;
		vh->require_tls = (uint8_t)v->require_tls;
		if (vh->require_tls) {
			if (!(vh->ssl_rt = arena_alloc(c->a, sizeof(*vh->ssl_rt))))
				return -ENOMEM;
			vh->ssl_rt->pub.name = "";
			vh->ssl_rt->pub.vhost = vh->name;
			vh->ssl_rt->pub.action = ROUTER_ACTION_REDIRECT;
			vh->ssl_rt->pub.redirect = &ssl_redirect;
		}
		if ((rc = hdr_level(c, v->request_headers_to_add, v->n_request_headers_to_add, v->request_headers_to_remove,
				    v->n_request_headers_to_remove, v->response_headers_to_add, v->n_response_headers_to_add,
				    v->response_headers_to_remove, v->n_response_headers_to_remove, &vhl[i])) < 0)
			return rc;
		if ((rc = compile_retry(c, v->retry_policy, &vd.retry)) < 0 ||
		    (rc = compile_mirrors(c, v->request_mirror_policies, v->n_request_mirror_policies, &vd.mirrors,
					  &vd.n_mirrors)) < 0 ||
		    (rc = compile_cors(c, v->cors, &vd.cors)) < 0 ||
		    (rc = compile_filter_configs(c, v->n_typed_per_filter_config,
						 (void *const *)v->typed_per_filter_config, &vd.fault, &vd.cors_typed)) < 0)
			return rc;
		vd.attempt_req = v->include_request_attempt_count;
		vd.attempt_resp = v->include_attempt_count_in_response;
		vd.buffer_limit = v->per_request_buffer_limit_bytes ? v->per_request_buffer_limit_bytes->value : 0;
		if (v->n_routes && !(vh->routes = arena_calloc(c->a, v->n_routes, sizeof(*vh->routes))))
			return -ENOMEM;
		vh->n_routes = (uint32_t)v->n_routes;
		for (j = 0; j < v->n_routes; j++) {
			c->route = (long)j;
			if (!v->routes[j])
				return nack(c, "route is empty");
			vh->routes[j].pub.vhost = vh->name;
			if ((rc = compile_route(c, v->routes[j], &vh->routes[j], &vd)) < 0)
				return rc;
		}
	}
	c->vh = NULL;
	c->route = -1;
	return 0;
}

static int config_cmp(const void *x, const void *y)
{
	const struct router_config *a = x, *b = y;

	return strcmp(a->name, b->name);
}

int router_new(const Envoy__Config__Route__V3__RouteConfiguration *const *rcs, size_t n, struct router **out,
	       char *err, size_t cap)
{
	struct router *r = calloc(1, sizeof(*r));
	struct rctx c = { .err = err, .cap = cap, .route = -1 };
	size_t i;
	int rc = -ENOMEM;

	*out = NULL;
	if (err && cap)
		err[0] = '\0';
	if (!r || !(r->a = arena_new(0)))
		goto out;
	mesh_refcount_init(&r->refs, 1);
	c.r = r;
	c.a = r->a;
	if (n && !(r->configs = arena_calloc(r->a, n, sizeof(*r->configs))))
		goto out;
	for (i = 0; i < n; i++) {
		rc = compile_config(&c, rcs[i], &r->configs[i]);
		if (rc < 0)
			goto out;
	}
	r->n_configs = n;
	/* no route configs yet (listeners before RDS): configs is NULL, which qsort must not get */
	if (n > 1)
		qsort(r->configs, n, sizeof(*r->configs), config_cmp);
	for (i = 1; i < n; i++)
		if (strcmp(r->configs[i - 1].name, r->configs[i].name) == 0) {
			c.rc = NULL;
			c.vh = NULL;
			c.route = -1;
			rc = nack(&c, "route configuration '%s' given twice", r->configs[i].name);
			goto out;
		}
	*out = r;
	r = NULL;
	rc = 0;
out:
	if (r) {
		mesh_refcount_init(&r->refs, 1);
		router_unref(r);
	}
	return rc;
}

struct router *router_ref(struct router *r)
{
	if (r)
		mesh_refcount_ref(&r->refs);
	return r;
}

void router_unref(struct router *r)
{
	size_t i;

	if (!r || !mesh_refcount_unref(&r->refs))
		return;
	for (i = 0; i < r->n_res; i++)
		mesh_re_free(r->res[i]);
	free(r->res);
	arena_free(r->a);
	free(r);
}

/* ---------------------------------------------------------------- match */

const struct router_config *router_config(const struct router *r, const char *name, size_t name_len)
{
	size_t lo = 0, hi = r->n_configs;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		const struct router_config *cf = &r->configs[mid];
		size_t n = cf->name_len < name_len ? cf->name_len : name_len;
		int d = memcmp(cf->name, name, n);

		if (d == 0)
			d = cf->name_len < name_len ? -1 : cf->name_len > name_len ? 1 : 0;
		if (d == 0)
			return cf;
		if (d < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

size_t router_n_configs(const struct router *r)
{
	return r->n_configs;
}

bool router_config_validate_clusters(const struct router_config *c)
{
	return c->validate_clusters;
}

/* Envoy's HeaderUtility::getPortStart: the ':' of a port, not inside an
 * IPv6 literal; n when none. */
static size_t port_start(const char *h, size_t n)
{
	size_t i = n;

	while (i > 0 && h[i - 1] != ':' && h[i - 1] != ']')
		i--;
	if (i == 0 || h[i - 1] != ':')
		return n;
	return i - 1;
}

static const struct router_vhost *find_vhost(const struct router_config *cf, const char *host, size_t n)
{
	const struct router_dom *d;
	uint32_t i;

	if (cf->ignore_port)
		n = port_start(host, n);
	if ((d = dom_find(cf, DOM_EXACT, host, n)))
		return &cf->vhosts[d->vh];
	/* wildcards: longest first; the '*' must stand for at least one byte */
	for (i = 0; i < cf->n_suffix_lens; i++) {
		uint32_t l = cf->suffix_lens[i];

		if (l < n && (d = dom_find(cf, DOM_SUFFIX, host + n - l, l)))
			return &cf->vhosts[d->vh];
	}
	for (i = 0; i < cf->n_prefix_lens; i++) {
		uint32_t l = cf->prefix_lens[i];

		if (l < n && (d = dom_find(cf, DOM_PREFIX, host, l)))
			return &cf->vhosts[d->vh];
	}
	return cf->default_vh >= 0 ? &cf->vhosts[cf->default_vh] : NULL;
}

static inline char lower(char ch)
{
	return ch >= 'A' && ch <= 'Z' ? (char)(ch - 'A' + 'a') : ch;
}

static bool starts(const char *s, size_t n, const char *p, size_t pn, bool icase)
{
	if (pn > n)
		return false;
	return icase ? eq_lower(s, p, pn) : memcmp(s, p, pn) == 0;
}

static bool sm_match(const struct router_string_matcher *m, const char *v, size_t n)
{
	size_t i;

	switch (m->kind) {
	case SM_EXACT:
		return n == m->len && starts(v, n, m->s, m->len, m->ignore_case);
	case SM_PREFIX:
		return starts(v, n, m->s, m->len, m->ignore_case);
	case SM_SUFFIX:
		return n >= m->len && starts(v + n - m->len, m->len, m->s, m->len, m->ignore_case);
	case SM_CONTAINS:
		if (m->len == 0)
			return true;
		for (i = 0; i + m->len <= n; i++)
			if ((m->ignore_case ? lower(v[i]) : v[i]) == m->s[0] &&
			    starts(v + i, n - i, m->s, m->len, m->ignore_case))
				return true;
		return false;
	case SM_REGEX:
	default:
		return mesh_re_full_match(m->re, v, n);
	}
}

/* absl::SimpleAtoi as Envoy's range match uses it: optional surrounding
 * whitespace, optional sign, decimal digits, no overflow. */
static bool parse_i64(const char *s, size_t n, int64_t *out)
{
	size_t i = 0;
	bool neg = false;
	uint64_t v = 0, lim;

	while (i < n && (s[i] == ' ' || s[i] == '\t'))
		i++;
	while (n > i && (s[n - 1] == ' ' || s[n - 1] == '\t'))
		n--;
	if (i < n && (s[i] == '+' || s[i] == '-'))
		neg = s[i++] == '-';
	if (i == n)
		return false;
	lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
	for (; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		if (v > (lim - (uint64_t)(s[i] - '0')) / 10)
			return false;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	*out = neg ? (int64_t)(0 - v) : (int64_t)v;
	return true;
}

static const char *req_header(const struct router_req *q, const struct router_hmatch *h, size_t *n)
{
	switch (h->pseudo) {
	case PSEUDO_METHOD:
		*n = q->method_len;
		return q->method;
	case PSEUDO_AUTHORITY:
		*n = q->authority_len;
		return q->authority;
	case PSEUDO_PATH:
		*n = q->path_len;
		return q->path;
	case PSEUDO_SCHEME:
		*n = q->scheme ? strlen(q->scheme) : 4;
		return q->scheme ? q->scheme : "http";
	default:
		return q->header ? q->header(q->header_ctx, h->name, h->name_len, n) : NULL;
	}
}

/* Envoy's HeaderUtility (HeaderDataBaseImpl::matchesHeaders): a missing
 * header never matches (inverted or not) unless treat_missing_header_as_
 * empty; a presence match compares presence, then inverts. */
static bool hm_match(const struct router_req *q, const struct router_hmatch *h)
{
	size_t n = 0;
	const char *v = req_header(q, h, &n);
	int64_t x;
	bool m;

	if (h->kind == HM_PRESENT)
		return (h->present == (v != NULL)) != h->invert;
	if (!v) {
		if (!h->missing_empty)
			return false;
		v = "";
		n = 0;
	}
	if (h->kind == HM_RANGE)
		m = parse_i64(v, n, &x) && x >= h->start && x < h->end;
	else
		m = sm_match(&h->sm, v, n);
	return m != h->invert;
}

/* The first value of query parameter name in the query (the part after
 * '?'), raw (Envoy's QueryParamsMulti::parseQueryString + getFirstValue). */
static bool query_param(const char *qs, size_t n, const char *name, size_t nlen, const char **v, size_t *vlen)
{
	size_t i = 0;

	while (i < n) {
		size_t e = i, eq;

		while (e < n && qs[e] != '&')
			e++;
		for (eq = i; eq < e && qs[eq] != '='; eq++)
			;
		if (eq - i == nlen && memcmp(qs + i, name, nlen) == 0) {
			*v = eq < e ? qs + eq + 1 : qs + e;
			*vlen = eq < e ? e - eq - 1 : 0;
			return true;
		}
		i = e + 1;
	}
	return false;
}

static size_t path_only_len(const char *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (p[i] == '?' || p[i] == '#')
			return i;
	return n;
}

static bool is_grpc(const struct router_req *q)
{
	size_t n = 0;
	const char *ct = q->header ? q->header(q->header_ctx, "content-type", 12, &n) : NULL;

	/* Envoy's Grpc::Common::isGrpcRequestHeaders */
	if (!ct || n < 16 || memcmp(ct, "application/grpc", 16) != 0)
		return false;
	return n == 16 || ct[16] == '+' || ct[16] == ';';
}

static bool route_matches(const struct router_rentry *e, const struct router_req *q, size_t plen)
{
	const char *qs;
	size_t qn, i;

	switch (e->path_kind) {
	case PATH_PREFIX:
		if (!starts(q->path, plen, e->path, e->path_len, !e->case_sensitive))
			return false;
		break;
	case PATH_EXACT:
		if (plen != e->path_len || !starts(q->path, plen, e->path, e->path_len, !e->case_sensitive))
			return false;
		break;
	case PATH_SEPARATED:
		if (!starts(q->path, plen, e->path, e->path_len, !e->case_sensitive) ||
		    (plen > e->path_len && q->path[e->path_len] != '/'))
			return false;
		break;
	case PATH_REGEX:
	default:
		if (!mesh_re_full_match(e->path_re, q->path, plen))
			return false;
		break;
	}
	/* Envoy's RouteEntryImplBase::matchRoute: runtime, headers, query, grpc */
	if (e->has_fraction && q->random % e->frac_den >= e->frac_num)
		return false;
	for (i = 0; i < e->n_headers; i++)
		if (!hm_match(q, &e->headers[i]))
			return false;
	if (e->n_queries) {
		const char *qm = memchr(q->path, '?', q->path_len);

		qs = qm ? qm + 1 : q->path + q->path_len;
		qn = (size_t)(q->path + q->path_len - qs);
		/* a fragment is not part of the query */
		{
			const char *frag = memchr(qs, '#', qn);

			if (frag)
				qn = (size_t)(frag - qs);
		}
		for (i = 0; i < e->n_queries; i++) {
			const struct router_qmatch *m = &e->queries[i];
			const char *v;
			size_t vn;

			if (!query_param(qs, qn, m->name, m->name_len, &v, &vn))
				return false;
			if (!m->present_only && !sm_match(&m->sm, v, vn))
				return false;
		}
	}
	if (e->grpc && !is_grpc(q))
		return false;
	return true;
}

/* Envoy's isEnvoyInternalRequest: x-envoy-internal is "true" (or the edge
 * HCM's own verdict, req->internal). */
static bool req_internal(const struct router_req *req)
{
	const char *v;
	size_t n = 0;

	if (req->internal)
		return req->internal > 0;
	v = req->header ? req->header(req->header_ctx, "x-envoy-internal", 16, &n) : NULL;
	return v && n == 4 && !strncasecmp(v, "true", 4);
}

const struct router_route *router_config_match(const struct router_config *c, const struct router_req *req)
{
	const struct router_vhost *vh;
	size_t plen, i;

	if (!c || !req->authority)
		return NULL;
	vh = find_vhost(c, req->authority, req->authority_len);
	if (!vh)
		return NULL;
	/* Envoy's VirtualHostImpl::getRouteFromEntries: the SSL redirect first */
	if (vh->require_tls && (!req->scheme || strcmp(req->scheme, "https")) &&
	    (vh->require_tls == ENVOY__CONFIG__ROUTE__V3__VIRTUAL_HOST__TLS_REQUIREMENT_TYPE__ALL || !req_internal(req)))
		return &vh->ssl_rt->pub;
	plen = path_only_len(req->path, req->path_len);
	for (i = 0; i < vh->n_routes; i++)
		if (route_matches(&vh->routes[i], req, plen))
			return &vh->routes[i].pub;
	return NULL;
}

const struct router_route *router_match(const struct router *r, const char *route_config,
					const struct router_req *req)
{
	return router_config_match(router_config(r, route_config, strlen(route_config)), req);
}

/* ---------------------------------------------------------------- results */

const struct router_cluster *router_pick(const struct router_route *rt, uint64_t random)
{
	uint64_t v, begin = 0;
	uint32_t i;

	if (rt->action != ROUTER_ACTION_ROUTE || !rt->n_clusters)
		return NULL;
	if (!rt->weighted)
		return &rt->clusters[0];
	/* Envoy's WeightedClusterUtil::pickCluster */
	v = random % rt->total_weight;
	for (i = 0; i < rt->n_clusters; i++) {
		uint64_t end = begin + rt->clusters[i].weight;

		if (v >= begin && v < end)
			return &rt->clusters[i];
		begin = end;
	}
	return &rt->clusters[rt->n_clusters - 1];
}

struct out {
	char *p;
	size_t n, cap;
	bool full;
};

static void put(struct out *o, const char *s, size_t n)
{
	if (o->full || n > o->cap - 1 - o->n) {
		o->full = true;
		return;
	}
	memcpy(o->p + o->n, s, n);
	o->n += n;
}

/* The matched part of the path a prefix_rewrite replaces
 * (currentUrlPathAfterRewriteWithMatchedPath): the prefix, or the whole
 * path (without query) for path and regex matches. */
static size_t matched_len(const struct router_rentry *e, size_t plen)
{
	return e->path_kind == PATH_PREFIX || e->path_kind == PATH_SEPARATED ? e->path_len : plen;
}

/* path (with query) after prefix_rewrite / regex rewrite into o. */
static int rewrite_path(const struct router_rentry *e, const char *prefix, const struct mesh_re *re, const char *sub,
			const struct router_req *req, struct out *o)
{
	size_t plen = path_only_len(req->path, req->path_len);

	if (prefix) {
		size_t m = matched_len(e, plen);

		put(o, prefix, strlen(prefix));
		put(o, req->path + m, req->path_len - m);
		return o->full ? -ENOSPC : 1;
	}
	if (re) {
		size_t n = 0;
		int rc = mesh_re_replace(re, req->path, plen, sub, true, o->p + o->n, o->cap - o->n, &n);

		if (rc < 0)
			return rc;
		o->n += n;
		put(o, req->path + plen, req->path_len - plen);
		return o->full ? -ENOSPC : 1;
	}
	return 0;
}

int router_upstream_path(const struct router_route *rt, const struct router_req *req, char *out, size_t cap,
			 size_t *len)
{
	const struct router_rentry *e = (const struct router_rentry *)rt;
	struct out o = { out, 0, cap, false };
	int rc;

	if (!rt->prefix_rewrite && !rt->regex_rewrite)
		return 0;
	if (cap == 0)
		return -ENOSPC;
	rc = rewrite_path(e, rt->prefix_rewrite, rt->regex_rewrite, rt->regex_sub, req, &o);
	out[o.n] = '\0';
	if (len)
		*len = o.n;
	return rc;
}

const char *router_upstream_authority(const struct router_route *rt, const struct router_cluster *cl,
				      const struct router_req *req, size_t *len)
{
	const char *h = NULL;

	/* WeightedClusterEntry sets its host first, then the route's
	 * finalizeRequestHeaders sets the route's: the route's wins */
	if (rt->host_rewrite)
		h = rt->host_rewrite;
	else if (cl && cl->host_rewrite)
		h = cl->host_rewrite;
	if (h) {
		*len = strlen(h);
		return h;
	}
	if (rt->host_rewrite_header && req->header) {
		size_t n = 0;
		const char *v = req->header(req->header_ctx, rt->host_rewrite_header, strlen(rt->host_rewrite_header), &n);

		if (v && n) {
			*len = n;
			return v;
		}
	}
	*len = 0;
	return NULL;
}

/* Http::Utility::processRequestHost: drop the request's port when a new
 * port is set, or when the scheme changes away from a default port. */
static size_t redirect_host_len(const char *host, size_t n, const char *new_scheme, const char *req_scheme,
				bool new_port)
{
	size_t end = n, i;
	bool remove;

	if (!n)
		return 0;
	if (host[0] == '[') {
		for (i = n - 1; i > 0; i--)
			if (host[i] == ':' && host[i - 1] == ']')
				break;
		end = i > 0 ? i : n;
	} else {
		for (i = n; i > 0 && host[i - 1] != ':'; i--)
			;
		end = i > 0 ? i - 1 : n;
	}
	if (end == n)
		return n;
	remove = new_port;
	if (strcmp(new_scheme, req_scheme) != 0) {
		remove |= strcmp(req_scheme, "https") == 0 && n - end == 4 && memcmp(host + end, ":443", 4) == 0;
		remove |= strcmp(req_scheme, "http") == 0 && n - end == 3 && memcmp(host + end, ":80", 3) == 0;
	}
	return remove ? end : n;
}

int router_redirect_location(const struct router_route *rt, const struct router_req *req, char *out, size_t cap,
			     size_t *len)
{
	const struct router_rentry *e = (const struct router_rentry *)rt;
	const struct router_redirect *rd = rt->redirect;
	const char *req_scheme = req->scheme ? req->scheme : "http";
	const char *scheme;
	char port[16] = "", path[ROUTER_PATH_MAX];
	struct out o = { out, 0, cap, false }, po = { path, 0, sizeof(path), false };
	const char *fp;
	size_t fn, plen = path_only_len(req->path, req->path_len);
	int rc;

	if (!rd)
		return -EINVAL;
	scheme = rd->scheme ? rd->scheme : req_scheme;
	if (cap == 0)
		return -ENOSPC;
	if (rd->ssl) {
		/* Envoy's Http::Utility::createSslRedirectPath: Host and path as sent */
		put(&o, "https://", 8);
		put(&o, req->authority, req->authority_len);
		put(&o, req->path, req->path_len);
		if (o.full)
			return -ENOSPC;
		out[o.n] = '\0';
		if (len)
			*len = o.n;
		return 0;
	}
	if (rd->port)
		snprintf(port, sizeof(port), ":%u", rd->port);
	/* the path: path_redirect (keeping the request's query unless it has
	 * its own), else the rewritten path, else the request's */
	if (rd->path) {
		put(&po, rd->path, strlen(rd->path));
		if (!rd->path_has_query)
			put(&po, req->path + plen, req->path_len - plen);
	} else if (rd->prefix_rewrite || rd->regex) {
		rc = rewrite_path(e, rd->prefix_rewrite, rd->regex, rd->regex_sub, req, &po);
		if (rc < 0)
			return rc;
	} else {
		put(&po, req->path, req->path_len);
	}
	if (po.full)
		return -ENOSPC;
	fp = path;
	fn = po.n;
	if (!rd->path_has_query && rd->strip_query) {
		const char *qm = memchr(fp, '?', fn);

		if (qm)
			fn = (size_t)(qm - fp);
	}
	put(&o, scheme, strlen(scheme));
	put(&o, "://", 3);
	if (rd->host)
		put(&o, rd->host, strlen(rd->host));
	else
		put(&o, req->authority,
		    redirect_host_len(req->authority, req->authority_len, scheme, req_scheme, rd->port != 0));
	put(&o, port, strlen(port));
	if (!fn || fp[0] != '/')
		put(&o, "/", 1);
	put(&o, fp, fn);
	if (o.full)
		return -ENOSPC;
	out[o.n] = '\0';
	if (len)
		*len = o.n;
	return 0;
}

bool router_cors_origin_allowed(const struct router_cors *c, const char *origin, size_t len)
{
	uint32_t i;

	for (i = 0; i < c->n_origins; i++)
		if (sm_match(&c->origins[i], origin, len))
			return true;
	return false;
}
