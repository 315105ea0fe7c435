/*
 * rbac_eval.c - evaluate a request against Envoy RBAC HTTP filter configs.
 *
 * Used by meshproxy, `meshctl authz check` and the authorization tests, on
 * the exact messages meshd serves.  Every matcher is implemented after
 * Envoy's RBAC filter (see rbac_eval.h); anything else fails the compile
 * step with a message that names the matcher, so a check never silently
 * answers a question it cannot.  Regexes run on RE2 (common/re.h), as in
 * Envoy, with the program-size limit Envoy has under Istio, so meshd's
 * validator, the proxy and `meshctl authz check` agree on every pattern.
 *
 * Compiling walks every matcher once: it validates it, compiles each
 * RegexMatcher into an RE2 program kept in an array sorted by the message's
 * address (found again by binary search), and sorts each rule set's
 * policies by name, as Envoy's map does.  Checking then walks the messages
 * with short-circuit evaluation and no allocation: a header value repeated
 * under one name is joined into a scratch buffer on the checker's stack.
 */
#include "common/xds/rbac_eval.h"

#include "common/buf.h"
#include "common/err.h"
#include "common/json.h"
#include "common/re.h"

#include "envoy/config/core/v3/address.pb-c.h"
#include "envoy/config/route/v3/route_components.pb-c.h"
#include "envoy/type/matcher/v3/metadata.pb-c.h"
#include "envoy/type/matcher/v3/value.pb-c.h"
#include "envoy/type/matcher/v3/path.pb-c.h"
#include "envoy/type/matcher/v3/regex.pb-c.h"
#include "envoy/type/matcher/v3/string.pb-c.h"
#include "envoy/type/v3/range.pb-c.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef Envoy__Config__Rbac__V3__Permission rbac_perm;
typedef Envoy__Config__Rbac__V3__Principal rbac_id;
typedef Envoy__Type__Matcher__V3__StringMatcher rbac_sm;
typedef Envoy__Config__Route__V3__HeaderMatcher rbac_hdr;
typedef Envoy__Type__Matcher__V3__RegexMatcher rbac_re;
typedef Envoy__Config__Rbac__V3__RBAC rbac_rules;
typedef Envoy__Type__Matcher__V3__MetadataMatcher rbac_md;
typedef Envoy__Type__Matcher__V3__ValueMatcher rbac_vm;

struct rbac__regex {
	const rbac_re *key;          /* the message it was compiled from */
	struct mesh_re *re;
};

struct rbac__policy {
	const char *name;
	const Envoy__Config__Rbac__V3__Policy *p;
};

/* One set of rules: policies sorted by name. */
struct rbac__rules {
	const rbac_rules *msg;       /* NULL: none */
	struct rbac__policy *v;
	size_t n;
};

struct rbac__filter {
	struct rbac__rules rules, shadow;
};

struct rbac_eval {
	struct rbac__filter *f;
	size_t n;
	struct rbac__regex *rx;      /* sorted by key */
	size_t n_rx, cap_rx;
};

/* State of one compile or one check. */
struct rbac__ev {
	const struct rbac_request *r;  /* NULL while compiling */
	struct rbac_eval *e;
	char *err;
	size_t errcap;
	const char *policy;          /* policy being looked at, for messages */
	int depth;
	char *scratch;               /* RBAC_EVAL_HEADER_MAX bytes (checking) */
};

__attribute__((format(printf, 3, 4)))
static int rbac__fail(struct rbac__ev *ev, int code, const char *fmt, ...)
{
	va_list ap;
	int n = 0;

	if (ev->err && ev->errcap) {
		if (ev->policy)
			n = snprintf(ev->err, ev->errcap, "policy %s: ", ev->policy);
		if (n < 0 || (size_t)n >= ev->errcap)
			n = 0;
		va_start(ap, fmt);
		vsnprintf(ev->err + n, ev->errcap - (size_t)n, fmt, ap);
		va_end(ap);
	}
	return code;
}

/* ------------------------------------------------------------- strings */

static int rbac__rx_cmp(const void *a, const void *b)
{
	const struct rbac__regex *x = a, *y = b;

	return x->key < y->key ? -1 : x->key > y->key;
}

/* Compile: an RE2 program, with the matcher's own program-size limit or
 * Istio's (as meshproxy's router does). */
static int rbac__regex_compile(struct rbac__ev *ev, const rbac_re *m)
{
	struct rbac_eval *e = ev->e;
	const char *re = m ? m->regex : NULL;
	unsigned max = MESH_RE_ISTIO_MAX_PROGRAM_SIZE;
	char why[512];
	int rc;

	if (!re)
		return rbac__fail(ev, -EINVAL, "regex matcher without a pattern");
	if (strlen(re) > RBAC_EVAL_REGEX_MAX)
		return rbac__fail(ev, -MESH_ETOOBIG, "regex longer than %u bytes", (unsigned)RBAC_EVAL_REGEX_MAX);
	if (m->engine_type_case == ENVOY__TYPE__MATCHER__V3__REGEX_MATCHER__ENGINE_TYPE_GOOGLE_RE2 && m->google_re2 &&
	    m->google_re2->max_program_size)
		max = m->google_re2->max_program_size->value;
	if (e->n_rx == e->cap_rx) {
		size_t cap = e->cap_rx ? e->cap_rx * 2 : 8;
		struct rbac__regex *v = realloc(e->rx, cap * sizeof(*v));
		if (!v)
			return rbac__fail(ev, -ENOMEM, "out of memory");
		e->rx = v;
		e->cap_rx = cap;
	}
	rc = mesh_re_new(re, strlen(re), max, &e->rx[e->n_rx].re, why, sizeof(why));
	if (rc == -ENOMEM)
		return rbac__fail(ev, -ENOMEM, "out of memory");
	if (rc < 0)
		return rbac__fail(ev, -EINVAL, "regex \"%s\" does not compile: %s", re, why);
	e->rx[e->n_rx++].key = m;
	return 0;
}

/* Check: full match of value against a compiled RegexMatcher.  1 or 0. */
static int rbac__regex_match(struct rbac__ev *ev, const rbac_re *m, const char *value)
{
	struct rbac__regex key = { .key = m }, *found = NULL;

	if (ev->e->n_rx)
		found = bsearch(&key, ev->e->rx, ev->e->n_rx, sizeof(key), rbac__rx_cmp);
	if (!found)
		return rbac__fail(ev, -EINVAL, "regex was not compiled"); /* a message changed after compiling */
	return mesh_re_full_match(found->re, value, strlen(value));
}

static bool rbac__has_prefix(const char *s, const char *p, bool nocase)
{
	size_t n = strlen(p);

	return nocase ? strncasecmp(s, p, n) == 0 : strncmp(s, p, n) == 0;
}

static bool rbac__has_suffix(const char *s, const char *p, bool nocase)
{
	size_t n = strlen(s), k = strlen(p);

	if (k > n)
		return false;
	return nocase ? strcasecmp(s + n - k, p) == 0 : strcmp(s + n - k, p) == 0;
}

static bool rbac__contains(const char *s, const char *p, bool nocase)
{
	return nocase ? strcasestr(s, p) != NULL : strstr(s, p) != NULL;
}

/* StringMatcher against value (NULL: no value, never matches). */
static int rbac__sm_match(struct rbac__ev *ev, const rbac_sm *m, const char *value)
{
	if (!m)
		return rbac__fail(ev, -EINVAL, "string matcher missing");
	if (!value)
		return 0;
	switch (m->match_pattern_case) {
	case ENVOY__TYPE__MATCHER__V3__STRING_MATCHER__MATCH_PATTERN_EXACT:
		return m->ignore_case ? strcasecmp(value, m->exact) == 0 : strcmp(value, m->exact) == 0;
	case ENVOY__TYPE__MATCHER__V3__STRING_MATCHER__MATCH_PATTERN_PREFIX:
		return rbac__has_prefix(value, m->prefix, m->ignore_case);
	case ENVOY__TYPE__MATCHER__V3__STRING_MATCHER__MATCH_PATTERN_SUFFIX:
		return rbac__has_suffix(value, m->suffix, m->ignore_case);
	case ENVOY__TYPE__MATCHER__V3__STRING_MATCHER__MATCH_PATTERN_CONTAINS:
		return rbac__contains(value, m->contains, m->ignore_case);
	case ENVOY__TYPE__MATCHER__V3__STRING_MATCHER__MATCH_PATTERN_SAFE_REGEX:
		return rbac__regex_match(ev, m->safe_regex, value);
	default:
		break;
	}
	return rbac__fail(ev, -ENOTSUP, "string matcher with unknown pattern (case %d)", (int)m->match_pattern_case);
}

/* ------------------------------------------------------------- headers */

static bool rbac__hdr_name_eq(const char *a, const char *b)
{
	return strcasecmp(a, b) == 0;
}

/* Append s to the scratch value at *len; false when it does not fit. */
static bool rbac__scratch_put(struct rbac__ev *ev, size_t *len, const char *s)
{
	size_t n = strlen(s);

	if (n >= RBAC_EVAL_HEADER_MAX - *len)
		return false;
	memcpy(ev->scratch + *len, s, n + 1);
	*len += n;
	return true;
}

/* The value of header `name` as Envoy's RBAC sees it (repeated headers
 * joined by ","), into *value (the request's own string, or the scratch
 * buffer); *present says whether it exists. */
static int rbac__header_value(struct rbac__ev *ev, const char *name, const char **value, bool *present)
{
	const struct rbac_request *r = ev->r;
	const char *pseudo = NULL, *first = NULL;
	size_t i, len = 0, count = 0;
	bool fits = true;

	*present = false;
	*value = "";
	if (rbac__hdr_name_eq(name, ":method"))
		pseudo = r->method;
	else if (rbac__hdr_name_eq(name, ":path"))
		pseudo = r->path;
	else if (rbac__hdr_name_eq(name, ":authority") || rbac__hdr_name_eq(name, "host"))
		pseudo = r->host;
	else if (name[0] == ':')
		return rbac__fail(ev, -ENOTSUP, "header matcher on pseudo-header %s is not supported", name);
	if (pseudo) {
		*present = true;
		*value = pseudo;
		return 0;
	}
	if (name[0] == ':' || rbac__hdr_name_eq(name, "host"))
		return 0;
	if (r->n_headers > RBAC_EVAL_MAX_HEADERS)
		return rbac__fail(ev, -MESH_ETOOBIG, "more than %d request headers", RBAC_EVAL_MAX_HEADERS);
	for (i = 0; i < r->n_headers; i++) {
		const char *v;

		if (!r->headers[i].name || !rbac__hdr_name_eq(r->headers[i].name, name))
			continue;
		v = r->headers[i].value ? r->headers[i].value : "";
		if (count++ == 0) {
			first = v;
			fits = rbac__scratch_put(ev, &len, v);
		} else {
			fits = fits && rbac__scratch_put(ev, &len, ",") && rbac__scratch_put(ev, &len, v);
		}
	}
	if (!count)
		return 0;
	*present = true;
	if (count == 1) {
		*value = first; /* as sent, whatever its length */
		return 0;
	}
	if (!fits)
		return rbac__fail(ev, -MESH_ETOOBIG, "header %s longer than %d bytes", name, RBAC_EVAL_HEADER_MAX);
	*value = ev->scratch;
	return 0;
}

static int rbac__hdr_match(struct rbac__ev *ev, const rbac_hdr *h)
{
	bool present;
	const char *v;
	char *end;
	long long num;
	int rc;

	if (!h || !h->name || !h->name[0])
		return rbac__fail(ev, -EINVAL, "header matcher without a name");
	rc = rbac__header_value(ev, h->name, &v, &present);
	if (rc < 0)
		return rc;
	if (!present && !h->treat_missing_header_as_empty) {
		/* Envoy: a missing header only satisfies present_match: false
		 * (or, inverted, present_match: true) */
		bool is_present = h->header_match_specifier_case ==
				  ENVOY__CONFIG__ROUTE__V3__HEADER_MATCHER__HEADER_MATCH_SPECIFIER_PRESENT_MATCH;
		return h->invert_match ? (is_present && h->present_match) : (is_present && !h->present_match);
	}
	switch (h->header_match_specifier_case) {
	case ENVOY__CONFIG__ROUTE__V3__HEADER_MATCHER__HEADER_MATCH_SPECIFIER_EXACT_MATCH:
		rc = strcmp(v, h->exact_match) == 0;
		break;
	case ENVOY__CONFIG__ROUTE__V3__HEADER_MATCHER__HEADER_MATCH_SPECIFIER_PREFIX_MATCH:
		rc = rbac__has_prefix(v, h->prefix_match, false);
		break;
	case ENVOY__CONFIG__ROUTE__V3__HEADER_MATCHER__HEADER_MATCH_SPECIFIER_SUFFIX_MATCH:
		rc = rbac__has_suffix(v, h->suffix_match, false);
		break;
	case ENVOY__CONFIG__ROUTE__V3__HEADER_MATCHER__HEADER_MATCH_SPECIFIER_CONTAINS_MATCH:
		rc = rbac__contains(v, h->contains_match, false);
		break;
	case ENVOY__CONFIG__ROUTE__V3__HEADER_MATCHER__HEADER_MATCH_SPECIFIER_PRESENT_MATCH:
		rc = h->present_match ? 1 : 0; /* the header is there */
		break;
	case ENVOY__CONFIG__ROUTE__V3__HEADER_MATCHER__HEADER_MATCH_SPECIFIER_SAFE_REGEX_MATCH:
		rc = rbac__regex_match(ev, h->safe_regex_match, v);
		break;
	case ENVOY__CONFIG__ROUTE__V3__HEADER_MATCHER__HEADER_MATCH_SPECIFIER_RANGE_MATCH:
		errno = 0;
		num = strtoll(v, &end, 10);
		rc = h->range_match && v[0] && !*end && errno == 0 && num >= h->range_match->start &&
		     num < h->range_match->end;
		break;
	case ENVOY__CONFIG__ROUTE__V3__HEADER_MATCHER__HEADER_MATCH_SPECIFIER_STRING_MATCH:
		rc = rbac__sm_match(ev, h->string_match, v);
		break;
	default:
		/* no specifier: Envoy treats it as "present" */
		rc = 1;
		break;
	}
	if (rc >= 0 && h->invert_match)
		rc = !rc;
	return rc;
}

/* ------------------------------------------------------------- addresses */

struct rbac__addr {
	int family;
	unsigned char b[16];
};

static int rbac__addr_parse(const char *s, struct rbac__addr *a)
{
	memset(a, 0, sizeof(*a));
	if (inet_pton(AF_INET, s, a->b) == 1) {
		a->family = AF_INET;
		return 0;
	}
	if (inet_pton(AF_INET6, s, a->b) == 1) {
		a->family = AF_INET6;
		return 0;
	}
	return -EINVAL;
}

static int rbac__cidr_match(struct rbac__ev *ev, const Envoy__Config__Core__V3__CidrRange *c, const char *ip)
{
	struct rbac__addr net, addr;
	unsigned bits, i, max;

	if (!c || !c->address_prefix)
		return rbac__fail(ev, -EINVAL, "CIDR range missing");
	if (rbac__addr_parse(c->address_prefix, &net) < 0)
		return rbac__fail(ev, -EINVAL, "CIDR range \"%s\" is not an IP address", c->address_prefix);
	if (!ip)
		return 0;
	if (rbac__addr_parse(ip, &addr) < 0)
		return rbac__fail(ev, -EINVAL, "request address \"%s\" is not an IP address", ip);
	if (addr.family != net.family)
		return 0;
	max = net.family == AF_INET ? 32 : 128;
	bits = c->prefix_len ? c->prefix_len->value : 0;
	if (bits > max)
		return rbac__fail(ev, -EINVAL, "CIDR prefix length %u too long for %s", bits, c->address_prefix);
	for (i = 0; i < bits / 8; i++)
		if (net.b[i] != addr.b[i])
			return 0;
	if (bits % 8) {
		unsigned char mask = (unsigned char)(0xff << (8 - bits % 8));
		if ((net.b[i] & mask) != (addr.b[i] & mask))
			return 0;
	}
	return 1;
}

/* ------------------------------------------------------------- JWT metadata */

/*
 * Filter "istio_authn"'s metadata, read from the request's verified JWT
 * (struct rbac_jwt): a value is a plain string (principal, audiences,
 * presenter) or a node of the payload (claims).  A string claim counts as
 * a list of one, as Istio's authn filter stores claims as lists.
 */
struct rbac__mdval {
	const char *s;
	const struct json_value *j;
};

static int rbac__vm_match(struct rbac__ev *ev, const rbac_vm *vm, const struct rbac__mdval *v, int depth);

static int rbac__vm_list(struct rbac__ev *ev, const rbac_vm *one, const struct rbac__mdval *v, int depth)
{
	struct rbac__mdval e = { NULL, NULL };
	size_t i;
	int rc;

	if (v->j && v->j->type == JSON_ARRAY) {
		for (i = 0; i < v->j->n; i++) {
			e.j = v->j->v[i];
			rc = rbac__vm_match(ev, one, &e, depth + 1);
			if (rc != 0)
				return rc;
		}
		return 0;
	}
	if (v->j && v->j->type == JSON_STRING)
		return rbac__vm_match(ev, one, v, depth + 1);
	return 0;
}

static int rbac__vm_match(struct rbac__ev *ev, const rbac_vm *vm, const struct rbac__mdval *v, int depth)
{
	const char *str = v->s ? v->s : v->j && v->j->type == JSON_STRING ? v->j->str : NULL;
	size_t i;
	int rc;

	if (!vm)
		return rbac__fail(ev, -EINVAL, "metadata value matcher missing");
	if (depth > RBAC_EVAL_MAX_DEPTH)
		return rbac__fail(ev, -MESH_ETOOBIG, "value matchers nested deeper than %d", RBAC_EVAL_MAX_DEPTH);
	switch (vm->match_pattern_case) {
	case ENVOY__TYPE__MATCHER__V3__VALUE_MATCHER__MATCH_PATTERN_STRING_MATCH:
		return str ? rbac__sm_match(ev, vm->string_match, str) : 0;
	case ENVOY__TYPE__MATCHER__V3__VALUE_MATCHER__MATCH_PATTERN_PRESENT_MATCH:
		return (v->s || v->j) ? (vm->present_match ? 1 : 0) : 0;
	case ENVOY__TYPE__MATCHER__V3__VALUE_MATCHER__MATCH_PATTERN_LIST_MATCH:
		return rbac__vm_list(ev, vm->list_match->one_of, v, depth);
	case ENVOY__TYPE__MATCHER__V3__VALUE_MATCHER__MATCH_PATTERN_OR_MATCH:
		for (i = 0; i < vm->or_match->n_value_matchers; i++) {
			rc = rbac__vm_match(ev, vm->or_match->value_matchers[i], v, depth + 1);
			if (rc != 0)
				return rc;
		}
		return 0;
	default:
		return rbac__fail(ev, -ENOTSUP, "metadata value matcher (case %d) is not supported",
				  (int)vm->match_pattern_case);
	}
}

static int rbac__md_match(struct rbac__ev *ev, const rbac_md *m)
{
	const struct rbac_jwt *jwt = ev->r->jwt;
	struct rbac__mdval v = { NULL, NULL };
	const char *key = m->path[0]->key;
	size_t i;
	int rc;

	if (!jwt) {
		rc = 0;
	} else if (!strcmp(key, RBAC_AUTHN_PRINCIPAL)) {
		v.s = jwt->principal;
	} else if (!strcmp(key, RBAC_AUTHN_AUDIENCES)) {
		/* Istio's authn filter keeps the first audience only */
		const struct json_value *aud = json_get(jwt->payload, "aud");
		if (aud && aud->type == JSON_ARRAY && aud->n)
			aud = aud->v[0];
		v.s = aud && aud->type == JSON_STRING ? aud->str : NULL;
	} else if (!strcmp(key, RBAC_AUTHN_PRESENTER)) {
		v.s = json_get_str(jwt->payload, "azp");
	} else {
		v.j = jwt->payload;
		for (i = 1; v.j && i < m->n_path; i++)
			v.j = json_get(v.j, m->path[i]->key);
	}
	rc = jwt && (v.s || v.j) ? rbac__vm_match(ev, m->value, &v, 0) : 0;
	if (rc >= 0 && m->invert)
		rc = !rc;
	return rc;
}

/* ------------------------------------------------------------- permissions, principals */

static int rbac__path_match(struct rbac__ev *ev, const Envoy__Type__Matcher__V3__PathMatcher *pm)
{
	const char *p = ev->r->path;
	size_t n;

	if (!pm || pm->rule_case != ENVOY__TYPE__MATCHER__V3__PATH_MATCHER__RULE_PATH)
		return rbac__fail(ev, -ENOTSUP, "url_path matcher without a path rule");
	if (!p)
		return 0;
	n = strcspn(p, "?");
	if (!p[n])
		return rbac__sm_match(ev, pm->path, p);
	if (n >= RBAC_EVAL_HEADER_MAX)
		return rbac__fail(ev, -MESH_ETOOBIG, "request path longer than %d bytes", RBAC_EVAL_HEADER_MAX - 1);
	memcpy(ev->scratch, p, n);
	ev->scratch[n] = '\0';
	return rbac__sm_match(ev, pm->path, ev->scratch);
}

static int rbac__perm_match(struct rbac__ev *ev, const rbac_perm *p);

static int rbac__perm_set(struct rbac__ev *ev, const Envoy__Config__Rbac__V3__Permission__Set *s, bool and)
{
	size_t i;
	int rc;

	if (!s)
		return rbac__fail(ev, -EINVAL, "permission set missing");
	for (i = 0; i < s->n_rules; i++) {
		rc = rbac__perm_match(ev, s->rules[i]);
		if (rc < 0)
			return rc;
		if (and && !rc)
			return 0;
		if (!and && rc)
			return 1;
	}
	return and ? 1 : 0;
}

static int rbac__perm_match(struct rbac__ev *ev, const rbac_perm *p)
{
	const struct rbac_request *r = ev->r;
	int rc;

	if (!p)
		return rbac__fail(ev, -EINVAL, "permission missing");
	if (++ev->depth > RBAC_EVAL_MAX_DEPTH) {
		rc = rbac__fail(ev, -MESH_ETOOBIG, "permissions nested deeper than %d", RBAC_EVAL_MAX_DEPTH);
		goto out;
	}
	switch (p->rule_case) {
	case ENVOY__CONFIG__RBAC__V3__PERMISSION__RULE_AND_RULES:
		rc = rbac__perm_set(ev, p->and_rules, true);
		break;
	case ENVOY__CONFIG__RBAC__V3__PERMISSION__RULE_OR_RULES:
		rc = rbac__perm_set(ev, p->or_rules, false);
		break;
	case ENVOY__CONFIG__RBAC__V3__PERMISSION__RULE_ANY:
		rc = p->any ? 1 : 0;
		break;
	case ENVOY__CONFIG__RBAC__V3__PERMISSION__RULE_NOT_RULE:
		rc = rbac__perm_match(ev, p->not_rule);
		if (rc >= 0)
			rc = !rc;
		break;
	case ENVOY__CONFIG__RBAC__V3__PERMISSION__RULE_HEADER:
		rc = rbac__hdr_match(ev, p->header);
		break;
	case ENVOY__CONFIG__RBAC__V3__PERMISSION__RULE_URL_PATH:
		rc = rbac__path_match(ev, p->url_path);
		break;
	case ENVOY__CONFIG__RBAC__V3__PERMISSION__RULE_DESTINATION_IP:
		rc = rbac__cidr_match(ev, p->destination_ip, r->destination_ip);
		break;
	case ENVOY__CONFIG__RBAC__V3__PERMISSION__RULE_DESTINATION_PORT:
		rc = r->destination_port != 0 && r->destination_port == p->destination_port;
		break;
	case ENVOY__CONFIG__RBAC__V3__PERMISSION__RULE_DESTINATION_PORT_RANGE:
		rc = p->destination_port_range && r->destination_port != 0 &&
		     (int64_t)r->destination_port >= p->destination_port_range->start &&
		     (int64_t)r->destination_port < p->destination_port_range->end;
		break;
	case ENVOY__CONFIG__RBAC__V3__PERMISSION__RULE_REQUESTED_SERVER_NAME:
		rc = rbac__sm_match(ev, p->requested_server_name, r->sni ? r->sni : "");
		break;
	case ENVOY__CONFIG__RBAC__V3__PERMISSION__RULE_METADATA:
		rc = rbac__md_match(ev, p->metadata);
		break;
	default:
		rc = rbac__fail(ev, -ENOTSUP, "permission with unknown or unset rule (case %d)", (int)p->rule_case);
		break;
	}
out:
	ev->depth--;
	return rc;
}

static int rbac__id_match(struct rbac__ev *ev, const rbac_id *p);

static int rbac__id_set(struct rbac__ev *ev, const Envoy__Config__Rbac__V3__Principal__Set *s, bool and)
{
	size_t i;
	int rc;

	if (!s)
		return rbac__fail(ev, -EINVAL, "principal set missing");
	for (i = 0; i < s->n_ids; i++) {
		rc = rbac__id_match(ev, s->ids[i]);
		if (rc < 0)
			return rc;
		if (and && !rc)
			return 0;
		if (!and && rc)
			return 1;
	}
	return and ? 1 : 0;
}

static int rbac__id_match(struct rbac__ev *ev, const rbac_id *p)
{
	const struct rbac_request *r = ev->r;
	int rc;

	if (!p)
		return rbac__fail(ev, -EINVAL, "principal missing");
	if (++ev->depth > RBAC_EVAL_MAX_DEPTH) {
		rc = rbac__fail(ev, -MESH_ETOOBIG, "principals nested deeper than %d", RBAC_EVAL_MAX_DEPTH);
		goto out;
	}
	switch (p->identifier_case) {
	case ENVOY__CONFIG__RBAC__V3__PRINCIPAL__IDENTIFIER_AND_IDS:
		rc = rbac__id_set(ev, p->and_ids, true);
		break;
	case ENVOY__CONFIG__RBAC__V3__PRINCIPAL__IDENTIFIER_OR_IDS:
		rc = rbac__id_set(ev, p->or_ids, false);
		break;
	case ENVOY__CONFIG__RBAC__V3__PRINCIPAL__IDENTIFIER_ANY:
		rc = p->any ? 1 : 0;
		break;
	case ENVOY__CONFIG__RBAC__V3__PRINCIPAL__IDENTIFIER_NOT_ID:
		rc = rbac__id_match(ev, p->not_id);
		if (rc >= 0)
			rc = !rc;
		break;
	case ENVOY__CONFIG__RBAC__V3__PRINCIPAL__IDENTIFIER_AUTHENTICATED:
		if (!p->authenticated)
			rc = rbac__fail(ev, -EINVAL, "authenticated principal missing");
		else if (!r->principal && !r->n_peer_names)
			rc = 0; /* plaintext peer: nothing authenticated */
		else if (!p->authenticated->principal_name)
			rc = 1; /* any authenticated peer */
		else {
			size_t k;

			/* Envoy: any URI SAN, then any DNS SAN, matches */
			rc = r->principal ? rbac__sm_match(ev, p->authenticated->principal_name, r->principal) : 0;
			for (k = 0; rc == 0 && k < r->n_peer_names; k++)
				rc = rbac__sm_match(ev, p->authenticated->principal_name, r->peer_names[k]);
		}
		break;
	case ENVOY__CONFIG__RBAC__V3__PRINCIPAL__IDENTIFIER_SOURCE_IP:
		rc = rbac__cidr_match(ev, p->source_ip, r->source_ip);
		break;
	case ENVOY__CONFIG__RBAC__V3__PRINCIPAL__IDENTIFIER_DIRECT_REMOTE_IP:
		rc = rbac__cidr_match(ev, p->direct_remote_ip, r->source_ip);
		break;
	case ENVOY__CONFIG__RBAC__V3__PRINCIPAL__IDENTIFIER_REMOTE_IP:
		rc = rbac__cidr_match(ev, p->remote_ip, r->remote_ip ? r->remote_ip : r->source_ip);
		break;
	case ENVOY__CONFIG__RBAC__V3__PRINCIPAL__IDENTIFIER_HEADER:
		rc = rbac__hdr_match(ev, p->header);
		break;
	case ENVOY__CONFIG__RBAC__V3__PRINCIPAL__IDENTIFIER_URL_PATH:
		rc = rbac__path_match(ev, p->url_path);
		break;
	case ENVOY__CONFIG__RBAC__V3__PRINCIPAL__IDENTIFIER_METADATA:
		rc = rbac__md_match(ev, p->metadata);
		break;
	case ENVOY__CONFIG__RBAC__V3__PRINCIPAL__IDENTIFIER_FILTER_STATE:
		rc = rbac__fail(ev, -ENOTSUP, "principal matcher \"filter_state\" is not supported by the evaluator");
		break;
	default:
		rc = rbac__fail(ev, -ENOTSUP, "principal with unknown or unset identifier (case %d)",
				(int)p->identifier_case);
		break;
	}
out:
	ev->depth--;
	return rc;
}

/* ------------------------------------------------------------- policies */

static int rbac__policy_match(struct rbac__ev *ev, const Envoy__Config__Rbac__V3__Policy *pol)
{
	size_t i;
	int rc = 0;

	if (!pol)
		return rbac__fail(ev, -EINVAL, "policy without a value");
	for (i = 0; i < pol->n_permissions && rc == 0; i++)
		rc = rbac__perm_match(ev, pol->permissions[i]);
	if (rc <= 0)
		return rc;
	rc = 0;
	for (i = 0; i < pol->n_principals && rc == 0; i++)
		rc = rbac__id_match(ev, pol->principals[i]);
	return rc;
}

/* The first policy (by name) of a rule set that matches: 1 and *matched,
 * 0, or < 0. */
static int rbac__rules_match(struct rbac__ev *ev, const struct rbac__rules *rs, const char **matched)
{
	size_t i;
	int rc;

	*matched = NULL;
	for (i = 0; i < rs->n; i++) {
		ev->policy = rs->v[i].name;
		rc = rbac__policy_match(ev, rs->v[i].p);
		if (rc < 0)
			return rc;
		if (rc) {
			*matched = rs->v[i].name;
			ev->policy = NULL;
			return 1;
		}
	}
	ev->policy = NULL;
	return 0;
}

/* ------------------------------------------------------------- compiling */

static int rbac__sm_compile(struct rbac__ev *ev, const rbac_sm *m)
{
	if (!m)
		return rbac__fail(ev, -EINVAL, "string matcher missing");
	switch (m->match_pattern_case) {
	case ENVOY__TYPE__MATCHER__V3__STRING_MATCHER__MATCH_PATTERN_EXACT:
	case ENVOY__TYPE__MATCHER__V3__STRING_MATCHER__MATCH_PATTERN_PREFIX:
	case ENVOY__TYPE__MATCHER__V3__STRING_MATCHER__MATCH_PATTERN_SUFFIX:
	case ENVOY__TYPE__MATCHER__V3__STRING_MATCHER__MATCH_PATTERN_CONTAINS:
		return 0;
	case ENVOY__TYPE__MATCHER__V3__STRING_MATCHER__MATCH_PATTERN_SAFE_REGEX:
		if (m->ignore_case)
			return rbac__fail(ev, -ENOTSUP, "string matcher: ignore_case with safe_regex is not supported");
		return rbac__regex_compile(ev, m->safe_regex);
	default:
		break;
	}
	return rbac__fail(ev, -ENOTSUP, "string matcher with unknown pattern (case %d)", (int)m->match_pattern_case);
}

static int rbac__hdr_compile(struct rbac__ev *ev, const rbac_hdr *h)
{
	if (!h || !h->name || !h->name[0])
		return rbac__fail(ev, -EINVAL, "header matcher without a name");
	if (h->name[0] == ':' && !rbac__hdr_name_eq(h->name, ":method") && !rbac__hdr_name_eq(h->name, ":path") &&
	    !rbac__hdr_name_eq(h->name, ":authority"))
		return rbac__fail(ev, -ENOTSUP, "header matcher on pseudo-header %s is not supported", h->name);
	switch (h->header_match_specifier_case) {
	case ENVOY__CONFIG__ROUTE__V3__HEADER_MATCHER__HEADER_MATCH_SPECIFIER_SAFE_REGEX_MATCH:
		return rbac__regex_compile(ev, h->safe_regex_match);
	case ENVOY__CONFIG__ROUTE__V3__HEADER_MATCHER__HEADER_MATCH_SPECIFIER_STRING_MATCH:
		return rbac__sm_compile(ev, h->string_match);
	default:
		return 0;
	}
}

static int rbac__cidr_compile(struct rbac__ev *ev, const Envoy__Config__Core__V3__CidrRange *c)
{
	struct rbac__addr net;
	unsigned bits;

	if (!c || !c->address_prefix)
		return rbac__fail(ev, -EINVAL, "CIDR range missing");
	if (rbac__addr_parse(c->address_prefix, &net) < 0)
		return rbac__fail(ev, -EINVAL, "CIDR range \"%s\" is not an IP address", c->address_prefix);
	bits = c->prefix_len ? c->prefix_len->value : 0;
	if (bits > (net.family == AF_INET ? 32u : 128u))
		return rbac__fail(ev, -EINVAL, "CIDR prefix length %u too long for %s", bits, c->address_prefix);
	return 0;
}

static int rbac__path_compile(struct rbac__ev *ev, const Envoy__Type__Matcher__V3__PathMatcher *pm)
{
	if (!pm || pm->rule_case != ENVOY__TYPE__MATCHER__V3__PATH_MATCHER__RULE_PATH)
		return rbac__fail(ev, -ENOTSUP, "url_path matcher without a path rule");
	return rbac__sm_compile(ev, pm->path);
}

static int rbac__vm_compile(struct rbac__ev *ev, const rbac_vm *vm, int depth)
{
	size_t i;
	int rc;

	if (!vm)
		return rbac__fail(ev, -EINVAL, "metadata value matcher missing");
	if (depth > RBAC_EVAL_MAX_DEPTH)
		return rbac__fail(ev, -MESH_ETOOBIG, "value matchers nested deeper than %d", RBAC_EVAL_MAX_DEPTH);
	switch (vm->match_pattern_case) {
	case ENVOY__TYPE__MATCHER__V3__VALUE_MATCHER__MATCH_PATTERN_STRING_MATCH:
		return rbac__sm_compile(ev, vm->string_match);
	case ENVOY__TYPE__MATCHER__V3__VALUE_MATCHER__MATCH_PATTERN_PRESENT_MATCH:
		return 0;
	case ENVOY__TYPE__MATCHER__V3__VALUE_MATCHER__MATCH_PATTERN_LIST_MATCH:
		if (!vm->list_match || vm->list_match->match_pattern_case !=
					       ENVOY__TYPE__MATCHER__V3__LIST_MATCHER__MATCH_PATTERN_ONE_OF)
			return rbac__fail(ev, -EINVAL, "list matcher without one_of");
		return rbac__vm_compile(ev, vm->list_match->one_of, depth + 1);
	case ENVOY__TYPE__MATCHER__V3__VALUE_MATCHER__MATCH_PATTERN_OR_MATCH:
		if (!vm->or_match)
			return rbac__fail(ev, -EINVAL, "or matcher missing");
		for (i = 0; i < vm->or_match->n_value_matchers; i++)
			if ((rc = rbac__vm_compile(ev, vm->or_match->value_matchers[i], depth + 1)) < 0)
				return rc;
		return 0;
	default:
		return rbac__fail(ev, -ENOTSUP, "metadata value matcher (case %d) is not supported by the evaluator",
				  (int)vm->match_pattern_case);
	}
}

/* Only Istio's JWT metadata (filter "istio_authn", keys in rbac_eval.h):
 * anything else is metadata the proxy does not have. */
static int rbac__md_compile(struct rbac__ev *ev, const rbac_md *m)
{
	const char *key;
	size_t i;

	if (!m || !m->filter || strcmp(m->filter, RBAC_AUTHN_FILTER))
		return rbac__fail(ev, -ENOTSUP, "metadata matcher on filter \"%s\" is not supported by the evaluator "
				  "(only " RBAC_AUTHN_FILTER ")", m && m->filter ? m->filter : "");
	for (i = 0; i < m->n_path; i++)
		if (!m->path[i] || m->path[i]->segment_case !=
					   ENVOY__TYPE__MATCHER__V3__METADATA_MATCHER__PATH_SEGMENT__SEGMENT_KEY ||
		    !m->path[i]->key)
			return rbac__fail(ev, -EINVAL, "metadata matcher path segment %zu is not a key", i);
	key = m->n_path ? m->path[0]->key : "";
	if (!strcmp(key, RBAC_AUTHN_CLAIMS) ? m->n_path < 2
	    : (strcmp(key, RBAC_AUTHN_PRINCIPAL) && strcmp(key, RBAC_AUTHN_AUDIENCES) &&
	       strcmp(key, RBAC_AUTHN_PRESENTER)) || m->n_path != 1)
		return rbac__fail(ev, -ENOTSUP, "metadata matcher path \"%s\" (%zu segments) is not supported by the "
				  "evaluator", key, m->n_path);
	return rbac__vm_compile(ev, m->value, 0);
}

static int rbac__perm_compile(struct rbac__ev *ev, const rbac_perm *p)
{
	const Envoy__Config__Rbac__V3__Permission__Set *set = NULL;
	size_t i;
	int rc = 0;

	if (!p)
		return rbac__fail(ev, -EINVAL, "permission missing");
	if (++ev->depth > RBAC_EVAL_MAX_DEPTH) {
		rc = rbac__fail(ev, -MESH_ETOOBIG, "permissions nested deeper than %d", RBAC_EVAL_MAX_DEPTH);
		goto out;
	}
	switch (p->rule_case) {
	case ENVOY__CONFIG__RBAC__V3__PERMISSION__RULE_AND_RULES:
	case ENVOY__CONFIG__RBAC__V3__PERMISSION__RULE_OR_RULES:
		set = p->rule_case == ENVOY__CONFIG__RBAC__V3__PERMISSION__RULE_AND_RULES ? p->and_rules : p->or_rules;
		if (!set) {
			rc = rbac__fail(ev, -EINVAL, "permission set missing");
			break;
		}
		for (i = 0; i < set->n_rules && rc == 0; i++)
			rc = rbac__perm_compile(ev, set->rules[i]);
		break;
	case ENVOY__CONFIG__RBAC__V3__PERMISSION__RULE_ANY:
	case ENVOY__CONFIG__RBAC__V3__PERMISSION__RULE_DESTINATION_PORT:
	case ENVOY__CONFIG__RBAC__V3__PERMISSION__RULE_DESTINATION_PORT_RANGE:
		break;
	case ENVOY__CONFIG__RBAC__V3__PERMISSION__RULE_NOT_RULE:
		rc = rbac__perm_compile(ev, p->not_rule);
		break;
	case ENVOY__CONFIG__RBAC__V3__PERMISSION__RULE_HEADER:
		rc = rbac__hdr_compile(ev, p->header);
		break;
	case ENVOY__CONFIG__RBAC__V3__PERMISSION__RULE_URL_PATH:
		rc = rbac__path_compile(ev, p->url_path);
		break;
	case ENVOY__CONFIG__RBAC__V3__PERMISSION__RULE_DESTINATION_IP:
		rc = rbac__cidr_compile(ev, p->destination_ip);
		break;
	case ENVOY__CONFIG__RBAC__V3__PERMISSION__RULE_REQUESTED_SERVER_NAME:
		rc = rbac__sm_compile(ev, p->requested_server_name);
		break;
	case ENVOY__CONFIG__RBAC__V3__PERMISSION__RULE_METADATA:
		rc = rbac__md_compile(ev, p->metadata);
		break;
	default:
		rc = rbac__fail(ev, -ENOTSUP, "permission with unknown or unset rule (case %d)", (int)p->rule_case);
		break;
	}
out:
	ev->depth--;
	return rc;
}

static int rbac__id_compile(struct rbac__ev *ev, const rbac_id *p)
{
	const Envoy__Config__Rbac__V3__Principal__Set *set = NULL;
	size_t i;
	int rc = 0;

	if (!p)
		return rbac__fail(ev, -EINVAL, "principal missing");
	if (++ev->depth > RBAC_EVAL_MAX_DEPTH) {
		rc = rbac__fail(ev, -MESH_ETOOBIG, "principals nested deeper than %d", RBAC_EVAL_MAX_DEPTH);
		goto out;
	}
	switch (p->identifier_case) {
	case ENVOY__CONFIG__RBAC__V3__PRINCIPAL__IDENTIFIER_AND_IDS:
	case ENVOY__CONFIG__RBAC__V3__PRINCIPAL__IDENTIFIER_OR_IDS:
		set = p->identifier_case == ENVOY__CONFIG__RBAC__V3__PRINCIPAL__IDENTIFIER_AND_IDS ? p->and_ids : p->or_ids;
		if (!set) {
			rc = rbac__fail(ev, -EINVAL, "principal set missing");
			break;
		}
		for (i = 0; i < set->n_ids && rc == 0; i++)
			rc = rbac__id_compile(ev, set->ids[i]);
		break;
	case ENVOY__CONFIG__RBAC__V3__PRINCIPAL__IDENTIFIER_ANY:
		break;
	case ENVOY__CONFIG__RBAC__V3__PRINCIPAL__IDENTIFIER_NOT_ID:
		rc = rbac__id_compile(ev, p->not_id);
		break;
	case ENVOY__CONFIG__RBAC__V3__PRINCIPAL__IDENTIFIER_AUTHENTICATED:
		if (!p->authenticated)
			rc = rbac__fail(ev, -EINVAL, "authenticated principal missing");
		else if (p->authenticated->principal_name)
			rc = rbac__sm_compile(ev, p->authenticated->principal_name);
		break;
	case ENVOY__CONFIG__RBAC__V3__PRINCIPAL__IDENTIFIER_SOURCE_IP:
		rc = rbac__cidr_compile(ev, p->source_ip);
		break;
	case ENVOY__CONFIG__RBAC__V3__PRINCIPAL__IDENTIFIER_DIRECT_REMOTE_IP:
		rc = rbac__cidr_compile(ev, p->direct_remote_ip);
		break;
	case ENVOY__CONFIG__RBAC__V3__PRINCIPAL__IDENTIFIER_REMOTE_IP:
		rc = rbac__cidr_compile(ev, p->remote_ip);
		break;
	case ENVOY__CONFIG__RBAC__V3__PRINCIPAL__IDENTIFIER_HEADER:
		rc = rbac__hdr_compile(ev, p->header);
		break;
	case ENVOY__CONFIG__RBAC__V3__PRINCIPAL__IDENTIFIER_URL_PATH:
		rc = rbac__path_compile(ev, p->url_path);
		break;
	case ENVOY__CONFIG__RBAC__V3__PRINCIPAL__IDENTIFIER_METADATA:
		rc = rbac__md_compile(ev, p->metadata);
		break;
	case ENVOY__CONFIG__RBAC__V3__PRINCIPAL__IDENTIFIER_FILTER_STATE:
		rc = rbac__fail(ev, -ENOTSUP, "principal matcher \"filter_state\" is not supported by the evaluator");
		break;
	default:
		rc = rbac__fail(ev, -ENOTSUP, "principal with unknown or unset identifier (case %d)",
				(int)p->identifier_case);
		break;
	}
out:
	ev->depth--;
	return rc;
}

static int rbac__policy_cmp(const void *a, const void *b)
{
	const struct rbac__policy *x = a, *y = b;

	return strcmp(x->name, y->name);
}

/* Check every policy of a rule set and sort them by name (Envoy keeps
 * them in a sorted map, so the first matching name decides). */
static int rbac__rules_compile(struct rbac__ev *ev, const rbac_rules *msg, struct rbac__rules *out)
{
	const Envoy__Config__Rbac__V3__Policy *pol;
	size_t i, k;
	int rc = 0;

	out->msg = msg;
	if (!msg || !msg->n_policies)
		return 0;
	if (msg->n_policies > RBAC_EVAL_MAX_POLICIES)
		return rbac__fail(ev, -MESH_ETOOBIG, "more than %d policies in one filter", RBAC_EVAL_MAX_POLICIES);
	out->v = calloc(msg->n_policies, sizeof(*out->v));
	if (!out->v)
		return rbac__fail(ev, -ENOMEM, "out of memory");
	for (i = 0; i < msg->n_policies && rc == 0; i++) {
		if (!msg->policies[i])
			return rbac__fail(ev, -EINVAL, "policy entry missing");
		out->v[i].name = msg->policies[i]->key ? msg->policies[i]->key : "";
		out->v[i].p = pol = msg->policies[i]->value;
		out->n++;
		ev->policy = out->v[i].name;
		if (!pol) {
			rc = rbac__fail(ev, -EINVAL, "policy without a value");
			break;
		}
		for (k = 0; k < pol->n_permissions && rc == 0; k++)
			rc = rbac__perm_compile(ev, pol->permissions[k]);
		for (k = 0; k < pol->n_principals && rc == 0; k++)
			rc = rbac__id_compile(ev, pol->principals[k]);
	}
	ev->policy = NULL;
	if (rc == 0)
		qsort(out->v, out->n, sizeof(*out->v), rbac__policy_cmp);
	return rc;
}

void rbac_eval_free(struct rbac_eval *e)
{
	size_t i;

	if (!e)
		return;
	for (i = 0; i < e->n_rx; i++)
		mesh_re_free(e->rx[i].re);
	for (i = 0; i < e->n; i++) {
		free(e->f[i].rules.v);
		free(e->f[i].shadow.v);
	}
	free(e->rx);
	free(e->f);
	free(e);
}

int rbac_eval_compile(const rbac_filter *const *chain, size_t n, struct rbac_eval **out, char *err, size_t errcap)
{
	struct rbac_eval *e;
	struct rbac__ev ev = { NULL, NULL, err, errcap, NULL, 0, NULL };
	size_t i;
	int rc = 0;

	*out = NULL;
	if (err && errcap)
		err[0] = '\0';
	if (n && !chain)
		return rbac__fail(&ev, -EINVAL, "no filter chain");
	e = calloc(1, sizeof(*e));
	if (!e || !(e->f = calloc(n ? n : 1, sizeof(*e->f)))) {
		rc = rbac__fail(&ev, -ENOMEM, "out of memory");
		goto out;
	}
	e->n = n;
	ev.e = e;
	for (i = 0; i < n && rc == 0; i++) {
		const rbac_filter *f = chain[i];

		if (!f)
			continue;
		rc = rbac__rules_compile(&ev, f->shadow_rules, &e->f[i].shadow);
		if (rc == 0)
			rc = rbac__rules_compile(&ev, f->rules, &e->f[i].rules);
		if (rc == 0 && f->rules && f->rules->action != ENVOY__CONFIG__RBAC__V3__RBAC__ACTION__ALLOW &&
		    f->rules->action != ENVOY__CONFIG__RBAC__V3__RBAC__ACTION__DENY &&
		    f->rules->action != ENVOY__CONFIG__RBAC__V3__RBAC__ACTION__LOG)
			rc = rbac__fail(&ev, -ENOTSUP, "RBAC filter with unknown action %d", (int)f->rules->action);
	}
	if (rc < 0)
		goto out;
	if (e->n_rx)
		qsort(e->rx, e->n_rx, sizeof(*e->rx), rbac__rx_cmp);
	*out = e;
	e = NULL;
out:
	rbac_eval_free(e);
	return rc;
}

/* ------------------------------------------------------------- checking */

int rbac_eval_check(const struct rbac_eval *e, const struct rbac_request *r, struct rbac_decision *out, char *err,
		    size_t errcap)
{
	return rbac_eval_check_each(e, r, out, NULL, 0, err, errcap);
}

/* A shadow engine's verdict as Envoy's RBAC filters count it
 * (shadow_allowed / shadow_denied): an ALLOW set allows what it matches, a
 * DENY set denies what it matches; a LOG set allows everything. */
static int rbac__shadow_verdict(const struct rbac__rules *rs, int matched)
{
	if (rs->msg->action == ENVOY__CONFIG__RBAC__V3__RBAC__ACTION__ALLOW)
		return matched ? RBAC_FILTER_ALLOWED : RBAC_FILTER_DENIED;
	if (rs->msg->action == ENVOY__CONFIG__RBAC__V3__RBAC__ACTION__DENY)
		return matched ? RBAC_FILTER_DENIED : RBAC_FILTER_ALLOWED;
	return RBAC_FILTER_ALLOWED;
}

int rbac_eval_check_each(const struct rbac_eval *e, const struct rbac_request *r, struct rbac_decision *out,
			 struct rbac_filter_result *each, size_t n_each, char *err, size_t errcap)
{
	char scratch[RBAC_EVAL_HEADER_MAX];
	struct rbac__ev ev = { r, (struct rbac_eval *)e, err, errcap, NULL, 0, scratch };
	const char *allowed_by = NULL, *m;
	size_t i;
	int rc = 0;

	if (err && errcap)
		err[0] = '\0';
	if (!e || !out || !r)
		return rbac__fail(&ev, -EINVAL, "no request or no decision to fill");
	memset(out, 0, sizeof(*out));
	for (i = 0; i < n_each; i++) {
		each[i].rules = RBAC_FILTER_NONE;
		each[i].shadow = RBAC_FILTER_NONE;
		each[i].policy = each[i].shadow_policy = NULL;
	}
	out->allowed = true;
	for (i = 0; i < e->n; i++) {
		const struct rbac__filter *f = &e->f[i];
		struct rbac_filter_result *res = i < n_each ? &each[i] : NULL;

		if (f->shadow.msg) {
			rc = rbac__rules_match(&ev, &f->shadow, &m);
			if (rc < 0)
				return rc;
			if (rc && !out->audit_policy)
				out->audit_policy = m;
			if (res) {
				res->shadow = rbac__shadow_verdict(&f->shadow, rc);
				res->shadow_policy = rc ? m : NULL;
			}
		}
		if (!f->rules.msg)
			continue; /* shadow only: allows everything */
		rc = rbac__rules_match(&ev, &f->rules, &m);
		if (rc < 0)
			return rc;
		if (res)
			res->policy = rc ? m : NULL;
		switch (f->rules.msg->action) {
		case ENVOY__CONFIG__RBAC__V3__RBAC__ACTION__ALLOW:
			if (!rc) {
				out->allowed = false;
				out->reason = RBAC_REASON_NO_ALLOW;
				if (res)
					res->rules = RBAC_FILTER_DENIED;
				return 0;
			}
			if (res)
				res->rules = RBAC_FILTER_ALLOWED;
			allowed_by = m;
			break;
		case ENVOY__CONFIG__RBAC__V3__RBAC__ACTION__DENY:
			if (res)
				res->rules = rc ? RBAC_FILTER_DENIED : RBAC_FILTER_ALLOWED;
			if (rc) {
				out->allowed = false;
				out->policy = m;
				return 0;
			}
			break;
		default: /* LOG (compile refused anything else) */
			if (res)
				res->rules = RBAC_FILTER_ALLOWED;
			if (rc && !out->audit_policy)
				out->audit_policy = m;
			break;
		}
	}
	out->policy = allowed_by;
	if (!allowed_by)
		out->reason = RBAC_REASON_NO_POLICY;
	return 0;
}

/* ------------------------------------------------------------- one-off forms */

int rbac_eval_chain(const rbac_filter *const *chain, size_t n, const struct rbac_request *r,
		    struct rbac_decision *out, char *err, size_t errcap)
{
	struct rbac_eval *e = NULL;
	int rc;

	if (!out || !r) {
		if (err && errcap)
			snprintf(err, errcap, "no request or no decision to fill");
		return -EINVAL;
	}
	rc = rbac_eval_compile(chain, n, &e, err, errcap);
	if (rc == 0)
		rc = rbac_eval_check(e, r, out, err, errcap);
	rbac_eval_free(e);
	return rc;
}

int rbac_eval(const rbac_filter *deny, const rbac_filter *allow, const rbac_filter *audit,
	      const struct rbac_request *r, struct rbac_decision *out, char *err, size_t errcap)
{
	const rbac_filter *chain[3] = { audit, deny, allow };

	return rbac_eval_chain(chain, 3, r, out, err, errcap);
}

int rbac_eval_rules(const Envoy__Config__Rbac__V3__RBAC *rules, const struct rbac_request *r,
		    const char **matched, char *err, size_t errcap)
{
	rbac_filter f = ENVOY__EXTENSIONS__FILTERS__HTTP__RBAC__V3__RBAC__INIT;
	const rbac_filter *chain[1] = { &f };
	struct rbac_eval *e = NULL;
	char scratch[RBAC_EVAL_HEADER_MAX];
	struct rbac__ev ev = { r, NULL, err, errcap, NULL, 0, scratch };
	const char *m = NULL;
	int rc;

	if (matched)
		*matched = NULL;
	if (err && errcap)
		err[0] = '\0';
	if (!rules || !r)
		return rbac__fail(&ev, -EINVAL, "no rules or no request");
	f.rules = (Envoy__Config__Rbac__V3__RBAC *)rules;
	rc = rbac_eval_compile(chain, 1, &e, err, errcap);
	if (rc < 0)
		return rc;
	ev.e = e;
	rc = rbac__rules_match(&ev, &e->f[0].rules, &m);
	if (rc > 0 && matched)
		*matched = m;
	rbac_eval_free(e);
	return rc;
}

const char *rbac_decision_format(const struct rbac_decision *d, char *buf, size_t cap)
{
	if (!cap)
		return buf;
	if (d->policy)
		snprintf(buf, cap, "%s (policy %s)", d->allowed ? "ALLOW" : "DENY", d->policy);
	else
		snprintf(buf, cap, "%s (%s)", d->allowed ? "ALLOW" : "DENY", d->reason ? d->reason : "");
	return buf;
}
