/*
 * rbac_eval.c - evaluate a request against Envoy RBAC HTTP filter configs.
 *
 * Used by `meshctl authz check` and the authorization tests to judge the
 * exact messages meshd serves.  Every matcher is implemented after Envoy's
 * RBAC filter (see rbac_eval.h); anything else fails with a message that
 * names the matcher, so a check never silently answers a question it
 * cannot.  Regexes run on POSIX extended regexes (<regex.h>): the compiler
 * only emits the common subset of RE2 and ERE (literals, escapes of
 * metacharacters, classes, ".*", anchors, alternation), and RE2-only
 * syntax is refused.
 */
#include "controlplane/xds/rbac_eval.h"

#include "common/buf.h"
#include "common/err.h"

#include "envoy/config/core/v3/address.pb-c.h"
#include "envoy/config/route/v3/route_components.pb-c.h"
#include "envoy/type/matcher/v3/path.pb-c.h"
#include "envoy/type/matcher/v3/regex.pb-c.h"
#include "envoy/type/matcher/v3/string.pb-c.h"
#include "envoy/type/v3/range.pb-c.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <regex.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef Envoy__Config__Rbac__V3__Permission rbac_perm;
typedef Envoy__Config__Rbac__V3__Principal rbac_id;
typedef Envoy__Type__Matcher__V3__StringMatcher rbac_sm;
typedef Envoy__Config__Route__V3__HeaderMatcher rbac_hdr;

struct rbac__ev {
	const struct rbac_request *r;
	char *err;
	size_t errcap;
	const char *policy;          /* policy being evaluated, for messages */
	int depth;
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

/* RE2 syntax that POSIX ERE would read differently or not at all. */
static const char *rbac__re2_only(const char *re)
{
	size_t i;

	for (i = 0; re[i]; i++) {
		if (re[i] == '\\') {
			if (!re[i + 1])
				return "trailing backslash";
			if (isalnum((unsigned char)re[i + 1]))
				return "escape class (\\d, \\w, \\b, ...)";
			i++;
			continue;
		}
		if (re[i] == '(' && re[i + 1] == '?')
			return "group flags or non-capturing group \"(?\"";
		if (strchr("*+?}", re[i]) && re[i + 1] == '?' && i > 0)
			return "lazy quantifier";
	}
	return NULL;
}

/* Full match of value against an RE2 pattern.  1, 0 or < 0. */
static int rbac__regex_match(struct rbac__ev *ev, const char *re, const char *value)
{
	struct mesh_buf b;
	regex_t rx;
	const char *why;
	int rc;

	if (!re)
		return rbac__fail(ev, -EINVAL, "regex matcher without a pattern");
	if ((why = rbac__re2_only(re)))
		return rbac__fail(ev, -ENOTSUP, "regex \"%s\" uses RE2 syntax the evaluator cannot run (%s)", re, why);
	mesh_buf_init(&b, RBAC_REGEX_MAX + 8);
	mesh_buf_printf(&b, "^(%s)$", re);
	if (b.err) {
		rc = rbac__fail(ev, -MESH_ETOOBIG, "regex longer than %u bytes", (unsigned)RBAC_REGEX_MAX);
		goto out;
	}
	if (regcomp(&rx, b.data, REG_EXTENDED | REG_NOSUB) != 0) {
		rc = rbac__fail(ev, -EINVAL, "regex \"%s\" does not compile", re);
		goto out;
	}
	rc = regexec(&rx, value, 0, NULL, 0) == 0;
	regfree(&rx);
out:
	mesh_buf_cleanup(&b);
	return rc;
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
		if (m->ignore_case)
			return rbac__fail(ev, -ENOTSUP, "string matcher: ignore_case with safe_regex is not supported");
		return rbac__regex_match(ev, m->safe_regex ? m->safe_regex->regex : NULL, value);
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

/* The value of header `name` as Envoy's RBAC sees it (repeated headers
 * joined by ","), into b; *present says whether it exists. */
static int rbac__header_value(struct rbac__ev *ev, const char *name, struct mesh_buf *b, bool *present)
{
	const struct rbac_request *r = ev->r;
	const char *pseudo = NULL;
	size_t i;

	*present = false;
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
		return mesh_buf_puts(b, pseudo) < 0 ? rbac__fail(ev, -MESH_ETOOBIG, "header %s too long", name) : 0;
	}
	if (name[0] == ':' || rbac__hdr_name_eq(name, "host"))
		return 0;
	if (r->n_headers > RBAC_EVAL_MAX_HEADERS)
		return rbac__fail(ev, -MESH_ETOOBIG, "more than %d request headers", RBAC_EVAL_MAX_HEADERS);
	for (i = 0; i < r->n_headers; i++) {
		if (!r->headers[i].name || !rbac__hdr_name_eq(r->headers[i].name, name))
			continue;
		if (*present)
			mesh_buf_putc(b, ',');
		mesh_buf_puts(b, r->headers[i].value ? r->headers[i].value : "");
		*present = true;
	}
	if (b->err)
		return rbac__fail(ev, -MESH_ETOOBIG, "header %s longer than %d bytes", name, RBAC_EVAL_HEADER_MAX);
	return 0;
}

static int rbac__hdr_match(struct rbac__ev *ev, const rbac_hdr *h)
{
	struct mesh_buf b;
	bool present;
	const char *v;
	char *end;
	long long num;
	int rc;

	if (!h || !h->name || !h->name[0])
		return rbac__fail(ev, -EINVAL, "header matcher without a name");
	mesh_buf_init(&b, RBAC_EVAL_HEADER_MAX);
	rc = rbac__header_value(ev, h->name, &b, &present);
	if (rc < 0)
		goto out;
	if (!present && !h->treat_missing_header_as_empty) {
		/* Envoy: a missing header only satisfies present_match: false
		 * (or, inverted, present_match: true) */
		bool is_present = h->header_match_specifier_case ==
				  ENVOY__CONFIG__ROUTE__V3__HEADER_MATCHER__HEADER_MATCH_SPECIFIER_PRESENT_MATCH;
		rc = h->invert_match ? (is_present && h->present_match) : (is_present && !h->present_match);
		goto out;
	}
	v = b.data ? b.data : "";
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
		rc = rbac__regex_match(ev, h->safe_regex_match ? h->safe_regex_match->regex : NULL, v);
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
out:
	mesh_buf_cleanup(&b);
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

/* ------------------------------------------------------------- permissions, principals */

static int rbac__path_match(struct rbac__ev *ev, const Envoy__Type__Matcher__V3__PathMatcher *pm)
{
	char path[RBAC_EVAL_HEADER_MAX];
	const char *p = ev->r->path;
	size_t n;

	if (!pm || pm->rule_case != ENVOY__TYPE__MATCHER__V3__PATH_MATCHER__RULE_PATH)
		return rbac__fail(ev, -ENOTSUP, "url_path matcher without a path rule");
	if (!p)
		return 0;
	n = strcspn(p, "?");
	if (n >= sizeof(path))
		return rbac__fail(ev, -MESH_ETOOBIG, "request path longer than %zu bytes", sizeof(path) - 1);
	memcpy(path, p, n);
	path[n] = '\0';
	return rbac__sm_match(ev, pm->path, path);
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
		rc = rbac__fail(ev, -ENOTSUP, "permission matcher \"metadata\" is not supported by the evaluator");
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
		else if (!r->principal)
			rc = 0; /* plaintext peer: nothing authenticated */
		else if (!p->authenticated->principal_name)
			rc = 1; /* any authenticated peer */
		else
			rc = rbac__sm_match(ev, p->authenticated->principal_name, r->principal);
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
		rc = rbac__fail(ev, -ENOTSUP, "principal matcher \"metadata\" is not supported by the evaluator");
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

static int rbac__entry_cmp(const void *a, const void *b)
{
	const Envoy__Config__Rbac__V3__RBAC__PoliciesEntry *x = *(const Envoy__Config__Rbac__V3__RBAC__PoliciesEntry *const *)a;
	const Envoy__Config__Rbac__V3__RBAC__PoliciesEntry *y = *(const Envoy__Config__Rbac__V3__RBAC__PoliciesEntry *const *)b;

	return strcmp(x->key ? x->key : "", y->key ? y->key : "");
}

int rbac_eval_rules(const Envoy__Config__Rbac__V3__RBAC *rules, const struct rbac_request *r,
		    const char **matched, char *err, size_t errcap)
{
	struct rbac__ev ev = { r, err, errcap, NULL, 0 };
	Envoy__Config__Rbac__V3__RBAC__PoliciesEntry **sorted = NULL;
	size_t i;
	int rc = 0;

	if (matched)
		*matched = NULL;
	if (err && errcap)
		err[0] = '\0';
	if (!rules || !r) {
		rc = rbac__fail(&ev, -EINVAL, "no rules or no request");
		goto out;
	}
	if (rules->n_policies > RBAC_MAX_RULES) {
		rc = rbac__fail(&ev, -MESH_ETOOBIG, "more than %d policies in one filter", RBAC_MAX_RULES);
		goto out;
	}
	if (!rules->n_policies)
		goto out;
	sorted = malloc(rules->n_policies * sizeof(*sorted));
	if (!sorted) {
		rc = rbac__fail(&ev, -ENOMEM, "out of memory");
		goto out;
	}
	memcpy(sorted, rules->policies, rules->n_policies * sizeof(*sorted));
	qsort(sorted, rules->n_policies, sizeof(*sorted), rbac__entry_cmp);
	for (i = 0; i < rules->n_policies; i++) {
		ev.policy = sorted[i]->key;
		rc = rbac__policy_match(&ev, sorted[i]->value);
		if (rc < 0)
			goto out;
		if (rc) {
			if (matched)
				*matched = sorted[i]->key;
			goto out;
		}
	}
out:
	free(sorted);
	return rc;
}

int rbac_eval_chain(const rbac_filter *const *chain, size_t n, const struct rbac_request *r,
		    struct rbac_decision *out, char *err, size_t errcap)
{
	const char *allowed_by = NULL, *m;
	size_t i;
	int rc = 0;

	if (err && errcap)
		err[0] = '\0';
	if (!out || !r || (n && !chain)) {
		if (err && errcap)
			snprintf(err, errcap, "no request or no decision to fill");
		return -EINVAL;
	}
	memset(out, 0, sizeof(*out));
	out->allowed = true;
	for (i = 0; i < n; i++) {
		const rbac_filter *f = chain[i];

		if (!f)
			continue;
		if (f->shadow_rules) {
			rc = rbac_eval_rules(f->shadow_rules, r, &m, err, errcap);
			if (rc < 0)
				goto out;
			if (rc && !out->audit_policy)
				out->audit_policy = m;
		}
		if (!f->rules)
			continue; /* shadow only: allows everything */
		rc = rbac_eval_rules(f->rules, r, &m, err, errcap);
		if (rc < 0)
			goto out;
		switch (f->rules->action) {
		case ENVOY__CONFIG__RBAC__V3__RBAC__ACTION__ALLOW:
			if (!rc) {
				out->allowed = false;
				out->reason = RBAC_REASON_NO_ALLOW;
				rc = 0;
				goto out;
			}
			allowed_by = m;
			break;
		case ENVOY__CONFIG__RBAC__V3__RBAC__ACTION__DENY:
			if (rc) {
				out->allowed = false;
				out->policy = m;
				rc = 0;
				goto out;
			}
			break;
		case ENVOY__CONFIG__RBAC__V3__RBAC__ACTION__LOG:
			if (rc && !out->audit_policy)
				out->audit_policy = m;
			break;
		default:
			if (err && errcap)
				snprintf(err, errcap, "RBAC filter with unknown action %d", (int)f->rules->action);
			rc = -ENOTSUP;
			goto out;
		}
	}
	rc = 0;
	out->policy = allowed_by;
	if (!allowed_by)
		out->reason = RBAC_REASON_NO_POLICY;
out:
	return rc < 0 ? rc : 0;
}

int rbac_eval(const rbac_filter *deny, const rbac_filter *allow, const rbac_filter *audit,
	      const struct rbac_request *r, struct rbac_decision *out, char *err, size_t errcap)
{
	const rbac_filter *chain[3] = { audit, deny, allow };

	return rbac_eval_chain(chain, 3, r, out, err, errcap);
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
