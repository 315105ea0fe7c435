/*
 * rbac.c - compile AuthorizationPolicies into Envoy RBAC HTTP filter configs.
 *
 * The shape follows Istio's authz builder so that Envoy and proxyless gRPC
 * see what they would get from istiod:
 *  - one Envoy policy per rule, named "ns[NS]-policy[NAME]-rule[i]";
 *  - permissions: one entry per `to` (one when there is none), each an
 *    and_rules over the operation's fields (hosts, methods, paths, ports)
 *    followed by the permission-side `when` conditions (destination.ip,
 *    destination.port, connection.sni);
 *  - principals: one entry per `from` (one when there is none), each an
 *    and_ids over the source's fields (principals, namespaces,
 *    remoteIpBlocks, ipBlocks) followed by the principal-side `when`
 *    conditions (source.*, remote.ip, request.headers[...]);
 *  - inside each field: or_rules/or_ids over its values, then not_rule /
 *    not_id over an or of its not-values; an empty and gets `any`;
 *  - requestPrincipals and the request.auth.* keys are metadata matchers
 *    on filter "istio_authn" (Istio's MetadataStringMatcher for principal,
 *    audiences and presenter, MetadataListMatcher over the path
 *    [request.auth.claims, a, b] for claims), which meshproxy and
 *    rbac_eval answer from the request's verified JWT.
 * Where Istio uses HeaderMatcher.string_match (hosts, case-insensitive)
 * we use safe_regex_match with character classes instead, because gRPC
 * 1.51 rejects string_match.
 *
 * Errors are sticky in the compile context: builders return NULL once
 * anything failed and the caller checks ctx->err at the end of a rule.
 */
#include "controlplane/gen/rbac.h"
#include "controlplane/model/policy.h"
#include "controlplane/gen/gen_int.h"

#include "common/arena.h"
#include "common/buf.h"
#include "common/err.h"

#include "envoy/config/core/v3/address.pb-c.h"
#include "envoy/config/listener/v3/listener.pb-c.h"
#include "envoy/config/route/v3/route_components.pb-c.h"
#include "envoy/type/matcher/v3/metadata.pb-c.h"
#include "envoy/extensions/filters/network/rbac/v3/rbac.pb-c.h"
#include "envoy/type/matcher/v3/path.pb-c.h"
#include "envoy/type/matcher/v3/regex.pb-c.h"
#include "envoy/type/matcher/v3/string.pb-c.h"
#include "envoy/type/matcher/v3/value.pb-c.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

typedef Envoy__Config__Rbac__V3__RBAC rbac_rules;
typedef Envoy__Config__Rbac__V3__Policy rbac_policy;
typedef Envoy__Config__Rbac__V3__Permission rbac_perm;
typedef Envoy__Config__Rbac__V3__Principal rbac_id;
typedef Envoy__Type__Matcher__V3__StringMatcher rbac_sm;
typedef Envoy__Config__Route__V3__HeaderMatcher rbac_hdr;

#define RBAC_SPIFFE "spiffe://"

/* What one field of a rule turns into. */
enum rbac__gen {
	/* permissions */
	RBAC_G_HOST,
	RBAC_G_METHOD,
	RBAC_G_PATH,
	RBAC_G_PORT,
	RBAC_G_DEST_IP,
	RBAC_G_SNI,
	/* principals */
	RBAC_G_PRINCIPAL,
	RBAC_G_NAMESPACE,
	RBAC_G_SRC_IP,
	RBAC_G_REMOTE_IP,
	RBAC_G_HEADER,
	RBAC_G_SERVICE_ACCOUNT,
	RBAC_G_TRUST_DOMAIN,
	/* the request's JWT: filter "istio_authn" metadata, as Istio's authn
	 * filter sets it from jwt_authn's verified payload */
	RBAC_G_REQ_PRINCIPAL,        /* requestPrincipals, request.auth.principal */
	RBAC_G_REQ_AUDIENCE,         /* request.auth.audiences */
	RBAC_G_REQ_PRESENTER,        /* request.auth.presenter */
	RBAC_G_REQ_CLAIM,            /* request.auth.claims[a][b]: header holds "[a][b]" */
};

struct rbac__field {
	enum rbac__gen gen;
	const char *header;          /* RBAC_G_HEADER: the header name */
	const struct cfg_strs *values, *not_values;
};

struct rbac__fields {
	struct rbac__field *v;
	size_t n, cap;
};

/* A growable array of message pointers in the arena. */
struct rbac__list {
	void **v;
	size_t n, cap;
};

struct rbac__ctx {
	struct arena *a;
	const struct cfg_object *policy; /* the policy being compiled */
	int err;
	const struct gen_ctx *g;         /* where notes go (g->notes may be NULL) */
	bool tcp;                        /* for a TCP chain's network filter (rbac_opts.tcp) */
};

/* ------------------------------------------------------------- small helpers */

static void *rbac__msg(struct rbac__ctx *c, const ProtobufCMessageDescriptor *d)
{
	void *m;

	if (c->err)
		return NULL;
	m = gen__msg(c->a, d);
	if (!m)
		c->err = -ENOMEM;
	return m;
}

static char *rbac__str(struct rbac__ctx *c, const char *s)
{
	char *r;

	if (c->err)
		return NULL;
	r = arena_strdup(c->a, s);
	if (!r)
		c->err = -ENOMEM;
	return r;
}

static void rbac__push(struct rbac__ctx *c, struct rbac__list *l, void *p)
{
	if (c->err)
		return;
	if (!p) {
		c->err = c->err ? c->err : -ENOMEM;
		return;
	}
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 4;
		void **v = arena_calloc(c->a, cap, sizeof(*v));

		if (!v) {
			c->err = -ENOMEM;
			return;
		}
		if (l->n)
			memcpy(v, l->v, l->n * sizeof(*v));
		l->v = v;
		l->cap = cap;
	}
	l->v[l->n++] = p;
}

static void rbac__field_add(struct rbac__ctx *c, struct rbac__fields *f, enum rbac__gen g, const char *header,
			    const struct cfg_strs *values, const struct cfg_strs *not_values)
{
	if (c->err || ((!values || !values->n) && (!not_values || !not_values->n)))
		return;
	if (f->n == f->cap) {
		size_t cap = f->cap ? f->cap * 2 : 8;
		struct rbac__field *v = arena_calloc(c->a, cap, sizeof(*v));

		if (!v) {
			c->err = -ENOMEM;
			return;
		}
		if (f->n)
			memcpy(v, f->v, f->n * sizeof(*v));
		f->v = v;
		f->cap = cap;
	}
	f->v[f->n].gen = g;
	f->v[f->n].header = header;
	f->v[f->n].values = values;
	f->v[f->n].not_values = not_values;
	f->n++;
}

/* Append s to b with regex metacharacters escaped (valid for RE2 and POSIX ERE). */
static void rbac__re_quote(struct mesh_buf *b, const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (strchr(".[]{}()\\*+?^$|", s[i]) && s[i])
			mesh_buf_putc(b, '\\');
		mesh_buf_putc(b, s[i]);
	}
}

/* Like rbac__re_quote, with every ASCII letter as a two-case class. */
static void rbac__re_quote_nocase(struct mesh_buf *b, const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		char ch = s[i];

		if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z')) {
			char lo = (char)(ch | 0x20), up = (char)(lo & ~0x20);
			mesh_buf_printf(b, "[%c%c]", lo, up);
		} else {
			rbac__re_quote(b, &ch, 1);
		}
	}
}

/* Take a finished regex buffer into the arena. */
static char *rbac__re_take(struct rbac__ctx *c, struct mesh_buf *b)
{
	char *r = NULL;

	if (b->err && !c->err)
		c->err = b->err;
	if (!c->err)
		r = rbac__str(c, b->data ? b->data : "");
	mesh_buf_cleanup(b);
	return r;
}

static Envoy__Type__Matcher__V3__RegexMatcher *rbac__regex(struct rbac__ctx *c, const char *re)
{
	Envoy__Type__Matcher__V3__RegexMatcher *m =
		rbac__msg(c, &envoy__type__matcher__v3__regex_matcher__descriptor);
	Envoy__Type__Matcher__V3__RegexMatcher__GoogleRE2 *g =
		rbac__msg(c, &envoy__type__matcher__v3__regex_matcher__google_re2__descriptor);

	if (!m || !g || !re)
		return NULL;
	/* Istio still sets the (deprecated) engine; Envoy and gRPC accept it. */
	m->engine_type_case = ENVOY__TYPE__MATCHER__V3__REGEX_MATCHER__ENGINE_TYPE_GOOGLE_RE2;
	m->google_re2 = g;
	m->regex = rbac__str(c, re);
	return m->regex ? m : NULL;
}

enum rbac__sm_kind { RBAC_SM_EXACT, RBAC_SM_PREFIX, RBAC_SM_SUFFIX, RBAC_SM_REGEX };

static rbac_sm *rbac__sm(struct rbac__ctx *c, enum rbac__sm_kind k, const char *s)
{
	rbac_sm *m = rbac__msg(c, &envoy__type__matcher__v3__string_matcher__descriptor);

	if (!m || !s)
		return NULL;
	switch (k) {
	case RBAC_SM_EXACT:
		m->match_pattern_case = ENVOY__TYPE__MATCHER__V3__STRING_MATCHER__MATCH_PATTERN_EXACT;
		m->exact = rbac__str(c, s);
		return m->exact ? m : NULL;
	case RBAC_SM_PREFIX:
		m->match_pattern_case = ENVOY__TYPE__MATCHER__V3__STRING_MATCHER__MATCH_PATTERN_PREFIX;
		m->prefix = rbac__str(c, s);
		return m->prefix ? m : NULL;
	case RBAC_SM_SUFFIX:
		m->match_pattern_case = ENVOY__TYPE__MATCHER__V3__STRING_MATCHER__MATCH_PATTERN_SUFFIX;
		m->suffix = rbac__str(c, s);
		return m->suffix ? m : NULL;
	case RBAC_SM_REGEX:
		m->match_pattern_case = ENVOY__TYPE__MATCHER__V3__STRING_MATCHER__MATCH_PATTERN_SAFE_REGEX;
		m->safe_regex = rbac__regex(c, s);
		return m->safe_regex ? m : NULL;
	}
	return NULL;
}

/* Istio's path templates: a path holding "{*}" or "{**}" is an Envoy URI
 * template (uri_template_match.proto), which istiod sends as
 * Permission.uri_template with "{*}" -> "*" and "{**}" -> "**". */
static bool rbac__path_template(const char *v)
{
	return strstr(v, "{*}") != NULL || strstr(v, "{**}") != NULL;
}

/* The regex Envoy's URI template library compiles the template to
 * (uri_template_internal.cc toRegexPattern()): "*" one path segment of
 * pchars (no '/', '*' or '='), "**" any pchars and '/' (zero or more),
 * literals quoted; matched against the path without its query, as
 * url_path is.  Sent as url_path safe_regex rather than uri_template,
 * which gRPC 1.51's RBAC filter does not know; Envoy, meshproxy and meshctl
 * then judge the same pattern. */
#define RBAC_TMPL_PCHAR "A-Za-z0-9._~%!$&'()+,;:@" /* and '-', last in each class */
static rbac_sm *rbac__sm_template(struct rbac__ctx *c, const char *v)
{
	struct mesh_buf b;
	const char *p = v;

	mesh_buf_init(&b, RBAC_REGEX_MAX);
	while (*p) {
		if (!strncmp(p, "{**}", 4)) {
			mesh_buf_puts(&b, "[" RBAC_TMPL_PCHAR "/-]*");
			p += 4;
		} else if (!strncmp(p, "{*}", 3)) {
			mesh_buf_puts(&b, "[" RBAC_TMPL_PCHAR "-]+");
			p += 3;
		} else {
			size_t n = strcspn(p, "{");

			if (!n)
				n = 1; /* a '{' that starts no operator: a literal */
			rbac__re_quote(&b, p, n);
			p += n;
		}
	}
	return rbac__sm(c, RBAC_SM_REGEX, rbac__re_take(c, &b));
}

/* Istio's wildcard rules for a value v, every match made against
 * `prefix` + the real value: "*" -> any non-empty value (regex ".+");
 * "*x" -> suffix x (a regex "prefix.*x" when prefix is not empty);
 * "x*" -> prefix "prefix"+x; anything else exact "prefix"+v. */
static rbac_sm *rbac__sm_istio(struct rbac__ctx *c, const char *v, const char *prefix)
{
	size_t n = strlen(v), pn = strlen(prefix);
	struct mesh_buf b;

	if (strcmp(v, "*") == 0)
		return rbac__sm(c, RBAC_SM_REGEX, ".+");
	if (v[0] == '*') {
		if (!pn)
			return rbac__sm(c, RBAC_SM_SUFFIX, v + 1);
		mesh_buf_init(&b, RBAC_REGEX_MAX);
		rbac__re_quote(&b, prefix, pn);
		mesh_buf_puts(&b, ".*");
		rbac__re_quote(&b, v + 1, n - 1);
		return rbac__sm(c, RBAC_SM_REGEX, rbac__re_take(c, &b));
	}
	mesh_buf_init(&b, RBAC_NAME_MAX);
	mesh_buf_puts(&b, prefix);
	if (n && v[n - 1] == '*') {
		mesh_buf_append(&b, v, n - 1);
		return rbac__sm(c, RBAC_SM_PREFIX, rbac__re_take(c, &b));
	}
	mesh_buf_puts(&b, v);
	return rbac__sm(c, RBAC_SM_EXACT, rbac__re_take(c, &b));
}

static rbac_hdr *rbac__hdr(struct rbac__ctx *c, const char *name)
{
	rbac_hdr *h = rbac__msg(c, &envoy__config__route__v3__header_matcher__descriptor);

	if (!h)
		return NULL;
	h->name = rbac__str(c, name);
	return h->name ? h : NULL;
}

static rbac_hdr *rbac__hdr_present(struct rbac__ctx *c, const char *name)
{
	rbac_hdr *h = rbac__hdr(c, name);

	if (!h)
		return NULL;
	h->header_match_specifier_case = ENVOY__CONFIG__ROUTE__V3__HEADER_MATCHER__HEADER_MATCH_SPECIFIER_PRESENT_MATCH;
	h->present_match = 1;
	return h;
}

static rbac_hdr *rbac__hdr_regex(struct rbac__ctx *c, const char *name, const char *re)
{
	rbac_hdr *h = rbac__hdr(c, name);

	if (!h || !re)
		return NULL;
	h->header_match_specifier_case = ENVOY__CONFIG__ROUTE__V3__HEADER_MATCHER__HEADER_MATCH_SPECIFIER_SAFE_REGEX_MATCH;
	h->safe_regex_match = rbac__regex(c, re);
	return h->safe_regex_match ? h : NULL;
}

/* ":method": exact, prefix, suffix or presence, as Istio's HeaderMatcher. */
static rbac_hdr *rbac__hdr_istio(struct rbac__ctx *c, const char *name, const char *v)
{
	size_t n = strlen(v);
	rbac_hdr *h;

	if (strcmp(v, "*") == 0)
		return rbac__hdr_present(c, name);
	h = rbac__hdr(c, name);
	if (!h)
		return NULL;
	if (n && v[0] == '*') {
		h->header_match_specifier_case = ENVOY__CONFIG__ROUTE__V3__HEADER_MATCHER__HEADER_MATCH_SPECIFIER_SUFFIX_MATCH;
		h->suffix_match = rbac__str(c, v + 1);
		return h->suffix_match ? h : NULL;
	}
	if (n && v[n - 1] == '*') {
		h->header_match_specifier_case = ENVOY__CONFIG__ROUTE__V3__HEADER_MATCHER__HEADER_MATCH_SPECIFIER_PREFIX_MATCH;
		h->prefix_match = c->err ? NULL : arena_strndup(c->a, v, n - 1);
		if (!h->prefix_match && !c->err)
			c->err = -ENOMEM;
		return h->prefix_match ? h : NULL;
	}
	h->header_match_specifier_case = ENVOY__CONFIG__ROUTE__V3__HEADER_MATCHER__HEADER_MATCH_SPECIFIER_EXACT_MATCH;
	h->exact_match = rbac__str(c, v);
	return h->exact_match ? h : NULL;
}

/* One value as a regex fragment: "x*" -> x.*, "*x" -> .*x, else x
 * (quoted; letters in both cases when nocase). */
static void rbac__re_value(struct mesh_buf *b, const char *v, bool nocase)
{
	size_t n = strlen(v);
	void (*quote)(struct mesh_buf *, const char *, size_t) = nocase ? rbac__re_quote_nocase : rbac__re_quote;

	if (v[0] == '*') {
		mesh_buf_puts(b, ".*");
		quote(b, v + 1, n - 1);
	} else if (n && v[n - 1] == '*') {
		quote(b, v, n - 1);
		mesh_buf_puts(b, ".*");
	} else {
		quote(b, v, n);
	}
}

/* Host (":authority"), case-insensitive: "*" -> present, else a regex. */
static rbac_hdr *rbac__hdr_host(struct rbac__ctx *c, const char *v)
{
	struct mesh_buf b;

	if (strcmp(v, "*") == 0)
		return rbac__hdr_present(c, ":authority");
	mesh_buf_init(&b, RBAC_REGEX_MAX);
	rbac__re_value(&b, v, true);
	return rbac__hdr_regex(c, ":authority", rbac__re_take(c, &b));
}

/* request.headers[X]: a value may be one of several comma-joined values,
 * as Istio matches it: ^p$|^p,.*|.*,p,.*|.*,p$ */
static rbac_hdr *rbac__hdr_request(struct rbac__ctx *c, const char *name, const char *v)
{
	struct mesh_buf p, b;

	if (strcmp(v, "*") == 0)
		return rbac__hdr_present(c, name);
	mesh_buf_init(&p, RBAC_REGEX_MAX);
	rbac__re_value(&p, v, false);
	mesh_buf_init(&b, RBAC_REGEX_MAX);
	if (p.err) {
		b.err = p.err;
	} else {
		const char *s = p.data;
		mesh_buf_printf(&b, "^%s$|^%s,.*|.*,%s,.*|.*,%s$", s, s, s, s);
	}
	mesh_buf_cleanup(&p);
	return rbac__hdr_regex(c, name, rbac__re_take(c, &b));
}

static Envoy__Config__Core__V3__CidrRange *rbac__cidr(struct rbac__ctx *c, const char *v)
{
	Envoy__Config__Core__V3__CidrRange *r = rbac__msg(c, &envoy__config__core__v3__cidr_range__descriptor);
	const char *slash = strchr(v, '/');
	unsigned long bits = strchr(v, ':') ? 128 : 32;
	char *end;

	if (!r)
		return NULL;
	if (slash) {
		bits = strtoul(slash + 1, &end, 10);
		if (*end || slash[1] == '\0' || bits > 128) {
			c->err = -EINVAL;
			return NULL;
		}
		r->address_prefix = c->err ? NULL : arena_strndup(c->a, v, (size_t)(slash - v));
		if (!r->address_prefix && !c->err)
			c->err = -ENOMEM;
	} else {
		r->address_prefix = rbac__str(c, v);
	}
	r->prefix_len = gen__u32(c->a, (uint32_t)bits);
	if (!r->prefix_len && !c->err)
		c->err = -ENOMEM;
	return c->err ? NULL : r;
}

static int rbac__port(const char *v, uint32_t *out)
{
	char *end;
	unsigned long p = strtoul(v, &end, 10);

	if (!v[0] || *end || p == 0 || p > 65535)
		return -EINVAL;
	*out = (uint32_t)p;
	return 0;
}

/* ------------------------------------------------------------- permissions */

static rbac_perm *rbac__perm(struct rbac__ctx *c, Envoy__Config__Rbac__V3__Permission__RuleCase k)
{
	rbac_perm *p = rbac__msg(c, &envoy__config__rbac__v3__permission__descriptor);

	if (p)
		p->rule_case = k;
	return p;
}

static rbac_perm *rbac__perm_set(struct rbac__ctx *c, bool and, struct rbac__list *l)
{
	rbac_perm *p = rbac__perm(c, and ? ENVOY__CONFIG__RBAC__V3__PERMISSION__RULE_AND_RULES
					  : ENVOY__CONFIG__RBAC__V3__PERMISSION__RULE_OR_RULES);
	Envoy__Config__Rbac__V3__Permission__Set *s = rbac__msg(c, &envoy__config__rbac__v3__permission__set__descriptor);

	if (!p || !s)
		return NULL;
	s->rules = (rbac_perm **)l->v;
	s->n_rules = l->n;
	if (and)
		p->and_rules = s;
	else
		p->or_rules = s;
	return p;
}

static rbac_perm *rbac__perm_any(struct rbac__ctx *c)
{
	rbac_perm *p = rbac__perm(c, ENVOY__CONFIG__RBAC__V3__PERMISSION__RULE_ANY);

	if (p)
		p->any = 1;
	return p;
}

static rbac_perm *rbac__perm_not(struct rbac__ctx *c, rbac_perm *inner)
{
	rbac_perm *p = rbac__perm(c, ENVOY__CONFIG__RBAC__V3__PERMISSION__RULE_NOT_RULE);

	if (!p || !inner)
		return NULL;
	p->not_rule = inner;
	return p;
}

static rbac_perm *rbac__perm_value(struct rbac__ctx *c, enum rbac__gen g, const char *v)
{
	rbac_perm *p;
	uint32_t port;

	switch (g) {
	case RBAC_G_HOST:
		p = rbac__perm(c, ENVOY__CONFIG__RBAC__V3__PERMISSION__RULE_HEADER);
		if (p)
			p->header = rbac__hdr_host(c, v);
		return p && p->header ? p : NULL;
	case RBAC_G_METHOD:
		p = rbac__perm(c, ENVOY__CONFIG__RBAC__V3__PERMISSION__RULE_HEADER);
		if (p)
			p->header = rbac__hdr_istio(c, ":method", v);
		return p && p->header ? p : NULL;
	case RBAC_G_PATH: {
		Envoy__Type__Matcher__V3__PathMatcher *pm =
			rbac__msg(c, &envoy__type__matcher__v3__path_matcher__descriptor);

		p = rbac__perm(c, ENVOY__CONFIG__RBAC__V3__PERMISSION__RULE_URL_PATH);
		if (!p || !pm)
			return NULL;
		pm->rule_case = ENVOY__TYPE__MATCHER__V3__PATH_MATCHER__RULE_PATH;
		pm->path = rbac__path_template(v) ? rbac__sm_template(c, v) : rbac__sm_istio(c, v, "");
		p->url_path = pm;
		return pm->path ? p : NULL;
	}
	case RBAC_G_PORT:
		if (rbac__port(v, &port) < 0) {
			c->err = c->err ? c->err : -EINVAL;
			return NULL;
		}
		p = rbac__perm(c, ENVOY__CONFIG__RBAC__V3__PERMISSION__RULE_DESTINATION_PORT);
		if (p)
			p->destination_port = port;
		return p;
	case RBAC_G_DEST_IP:
		p = rbac__perm(c, ENVOY__CONFIG__RBAC__V3__PERMISSION__RULE_DESTINATION_IP);
		if (p)
			p->destination_ip = rbac__cidr(c, v);
		return p && p->destination_ip ? p : NULL;
	case RBAC_G_SNI:
		p = rbac__perm(c, ENVOY__CONFIG__RBAC__V3__PERMISSION__RULE_REQUESTED_SERVER_NAME);
		if (p)
			p->requested_server_name = rbac__sm_istio(c, v, "");
		return p && p->requested_server_name ? p : NULL;
	default:
		break;
	}
	c->err = c->err ? c->err : -EINVAL;
	return NULL;
}

/* and_rules over the fields' or/not-or groups; [any] when there are none. */
static rbac_perm *rbac__perm_fields(struct rbac__ctx *c, const struct rbac__fields *f)
{
	struct rbac__list and = { 0 };
	size_t i, j;

	for (i = 0; i < f->n && !c->err; i++) {
		const struct rbac__field *fd = &f->v[i];
		struct rbac__list or = { 0 }, nor = { 0 };

		for (j = 0; fd->values && j < fd->values->n; j++)
			rbac__push(c, &or, rbac__perm_value(c, fd->gen, fd->values->v[j]));
		if (or.n)
			rbac__push(c, &and, rbac__perm_set(c, false, &or));
		for (j = 0; fd->not_values && j < fd->not_values->n; j++)
			rbac__push(c, &nor, rbac__perm_value(c, fd->gen, fd->not_values->v[j]));
		if (nor.n)
			rbac__push(c, &and, rbac__perm_not(c, rbac__perm_set(c, false, &nor)));
	}
	if (!and.n)
		rbac__push(c, &and, rbac__perm_any(c));
	return rbac__perm_set(c, true, &and);
}

/* ------------------------------------------------------------- principals */

static rbac_id *rbac__id(struct rbac__ctx *c, Envoy__Config__Rbac__V3__Principal__IdentifierCase k)
{
	rbac_id *p = rbac__msg(c, &envoy__config__rbac__v3__principal__descriptor);

	if (p)
		p->identifier_case = k;
	return p;
}

static rbac_id *rbac__id_set(struct rbac__ctx *c, bool and, struct rbac__list *l)
{
	rbac_id *p = rbac__id(c, and ? ENVOY__CONFIG__RBAC__V3__PRINCIPAL__IDENTIFIER_AND_IDS
				      : ENVOY__CONFIG__RBAC__V3__PRINCIPAL__IDENTIFIER_OR_IDS);
	Envoy__Config__Rbac__V3__Principal__Set *s = rbac__msg(c, &envoy__config__rbac__v3__principal__set__descriptor);

	if (!p || !s)
		return NULL;
	s->ids = (rbac_id **)l->v;
	s->n_ids = l->n;
	if (and)
		p->and_ids = s;
	else
		p->or_ids = s;
	return p;
}

static rbac_id *rbac__id_any(struct rbac__ctx *c)
{
	rbac_id *p = rbac__id(c, ENVOY__CONFIG__RBAC__V3__PRINCIPAL__IDENTIFIER_ANY);

	if (p)
		p->any = 1;
	return p;
}

static rbac_id *rbac__id_not(struct rbac__ctx *c, rbac_id *inner)
{
	rbac_id *p = rbac__id(c, ENVOY__CONFIG__RBAC__V3__PRINCIPAL__IDENTIFIER_NOT_ID);

	if (!p || !inner)
		return NULL;
	p->not_id = inner;
	return p;
}

static rbac_id *rbac__id_authn(struct rbac__ctx *c, rbac_sm *m)
{
	rbac_id *p = rbac__id(c, ENVOY__CONFIG__RBAC__V3__PRINCIPAL__IDENTIFIER_AUTHENTICATED);
	Envoy__Config__Rbac__V3__Principal__Authenticated *au =
		rbac__msg(c, &envoy__config__rbac__v3__principal__authenticated__descriptor);

	if (!p || !au || !m)
		return NULL;
	au->principal_name = m;
	p->authenticated = au;
	return p;
}

/* source.namespace / namespaces: a regex over the SPIFFE ID, as Istio. */
static rbac_sm *rbac__sm_namespace(struct rbac__ctx *c, const char *v)
{
	struct mesh_buf b;

	mesh_buf_init(&b, RBAC_REGEX_MAX);
	mesh_buf_puts(&b, ".*/ns/");
	if (strcmp(v, "*") == 0)
		mesh_buf_puts(&b, ".*");
	else
		rbac__re_value(&b, v, false);
	mesh_buf_puts(&b, "/.*");
	return rbac__sm(c, RBAC_SM_REGEX, rbac__re_take(c, &b));
}

/* source.serviceAccount: "ns/sa", or "sa" in the policy's namespace. */
static rbac_sm *rbac__sm_service_account(struct rbac__ctx *c, const char *v)
{
	struct mesh_buf b;

	mesh_buf_init(&b, RBAC_NAME_MAX);
	if (strchr(v, '/'))
		mesh_buf_printf(&b, "/ns/%.*s/sa/%s", (int)(strchr(v, '/') - v), v, strchr(v, '/') + 1);
	else
		mesh_buf_printf(&b, "/ns/%s/sa/%s", c->policy->ns, v);
	return rbac__sm(c, RBAC_SM_SUFFIX, rbac__re_take(c, &b));
}

static rbac_sm *rbac__sm_trust_domain(struct rbac__ctx *c, const char *v)
{
	struct mesh_buf b;

	if (strcmp(v, "*") == 0)
		return rbac__sm(c, RBAC_SM_REGEX, ".+");
	mesh_buf_init(&b, RBAC_NAME_MAX);
	mesh_buf_printf(&b, RBAC_SPIFFE "%s/", v);
	return rbac__sm(c, RBAC_SM_PREFIX, rbac__re_take(c, &b));
}

/* Istio's MetadataStringMatcher / MetadataListMatcher on filter
 * "istio_authn": path `key` (then the claim names of "[a][b]" when claims
 * is not NULL), the value matched as a string, or as a list one_of. */
static rbac_id *rbac__id_jwt(struct rbac__ctx *c, const char *key, const char *claims, const char *v)
{
	rbac_id *p = rbac__id(c, ENVOY__CONFIG__RBAC__V3__PRINCIPAL__IDENTIFIER_METADATA);
	Envoy__Type__Matcher__V3__MetadataMatcher *m = rbac__msg(c, &envoy__type__matcher__v3__metadata_matcher__descriptor);
	Envoy__Type__Matcher__V3__ValueMatcher *vm = rbac__msg(c, &envoy__type__matcher__v3__value_matcher__descriptor);
	struct rbac__list path = { 0 };
	const char *q = claims;

	if (!p || !m || !vm)
		return NULL;
	m->filter = rbac__str(c, "istio_authn");
	for (;;) {
		Envoy__Type__Matcher__V3__MetadataMatcher__PathSegment *seg =
			rbac__msg(c, &envoy__type__matcher__v3__metadata_matcher__path_segment__descriptor);
		const char *e;

		if (!seg)
			return NULL;
		seg->segment_case = ENVOY__TYPE__MATCHER__V3__METADATA_MATCHER__PATH_SEGMENT__SEGMENT_KEY;
		if (path.n == 0) {
			seg->key = rbac__str(c, key);
		} else {
			e = strchr(q, ']');
			seg->key = c->err ? NULL : arena_strndup(c->a, q + 1, (size_t)(e - q - 1));
			q = e + 1;
		}
		if (!seg->key) {
			c->err = c->err ? c->err : -ENOMEM;
			return NULL;
		}
		rbac__push(c, &path, seg);
		if (!q || q[0] != '[' || !strchr(q, ']'))
			break;
	}
	m->path = (Envoy__Type__Matcher__V3__MetadataMatcher__PathSegment **)path.v;
	m->n_path = path.n;
	if (claims) {
		Envoy__Type__Matcher__V3__ListMatcher *lm = rbac__msg(c, &envoy__type__matcher__v3__list_matcher__descriptor);
		Envoy__Type__Matcher__V3__ValueMatcher *one = rbac__msg(c, &envoy__type__matcher__v3__value_matcher__descriptor);

		if (!lm || !one)
			return NULL;
		one->match_pattern_case = ENVOY__TYPE__MATCHER__V3__VALUE_MATCHER__MATCH_PATTERN_STRING_MATCH;
		one->string_match = rbac__sm_istio(c, v, "");
		lm->match_pattern_case = ENVOY__TYPE__MATCHER__V3__LIST_MATCHER__MATCH_PATTERN_ONE_OF;
		lm->one_of = one;
		vm->match_pattern_case = ENVOY__TYPE__MATCHER__V3__VALUE_MATCHER__MATCH_PATTERN_LIST_MATCH;
		vm->list_match = lm;
		if (!one->string_match)
			return NULL;
	} else {
		vm->match_pattern_case = ENVOY__TYPE__MATCHER__V3__VALUE_MATCHER__MATCH_PATTERN_STRING_MATCH;
		vm->string_match = rbac__sm_istio(c, v, "");
		if (!vm->string_match)
			return NULL;
	}
	m->value = vm;
	p->metadata = m;
	return c->err ? NULL : p;
}

static rbac_id *rbac__id_value(struct rbac__ctx *c, const struct rbac__field *fd, const char *v)
{
	rbac_id *p;

	switch (fd->gen) {
	case RBAC_G_PRINCIPAL:
		/* a value already in URI form is taken as written */
		return rbac__id_authn(c, rbac__sm_istio(c, strncmp(v, RBAC_SPIFFE, strlen(RBAC_SPIFFE)) == 0
						       ? v + strlen(RBAC_SPIFFE) : v, RBAC_SPIFFE));
	case RBAC_G_NAMESPACE:
		return rbac__id_authn(c, rbac__sm_namespace(c, v));
	case RBAC_G_SERVICE_ACCOUNT:
		return rbac__id_authn(c, rbac__sm_service_account(c, v));
	case RBAC_G_TRUST_DOMAIN:
		return rbac__id_authn(c, rbac__sm_trust_domain(c, v));
	case RBAC_G_SRC_IP:
		p = rbac__id(c, ENVOY__CONFIG__RBAC__V3__PRINCIPAL__IDENTIFIER_DIRECT_REMOTE_IP);
		if (p)
			p->direct_remote_ip = rbac__cidr(c, v);
		return p && p->direct_remote_ip ? p : NULL;
	case RBAC_G_REMOTE_IP:
		p = rbac__id(c, ENVOY__CONFIG__RBAC__V3__PRINCIPAL__IDENTIFIER_REMOTE_IP);
		if (p)
			p->remote_ip = rbac__cidr(c, v);
		return p && p->remote_ip ? p : NULL;
	case RBAC_G_REQ_PRINCIPAL:
		return rbac__id_jwt(c, "request.auth.principal", NULL, v);
	case RBAC_G_REQ_AUDIENCE:
		return rbac__id_jwt(c, "request.auth.audiences", NULL, v);
	case RBAC_G_REQ_PRESENTER:
		return rbac__id_jwt(c, "request.auth.presenter", NULL, v);
	case RBAC_G_REQ_CLAIM:
		return rbac__id_jwt(c, "request.auth.claims", fd->header, v);
	case RBAC_G_HEADER:
		p = rbac__id(c, ENVOY__CONFIG__RBAC__V3__PRINCIPAL__IDENTIFIER_HEADER);
		if (p)
			p->header = rbac__hdr_request(c, fd->header, v);
		return p && p->header ? p : NULL;
	default:
		break;
	}
	c->err = c->err ? c->err : -EINVAL;
	return NULL;
}

static rbac_id *rbac__id_fields(struct rbac__ctx *c, const struct rbac__fields *f)
{
	struct rbac__list and = { 0 };
	size_t i, j;

	for (i = 0; i < f->n && !c->err; i++) {
		const struct rbac__field *fd = &f->v[i];
		struct rbac__list or = { 0 }, nor = { 0 };

		for (j = 0; fd->values && j < fd->values->n; j++)
			rbac__push(c, &or, rbac__id_value(c, fd, fd->values->v[j]));
		if (or.n)
			rbac__push(c, &and, rbac__id_set(c, false, &or));
		for (j = 0; fd->not_values && j < fd->not_values->n; j++)
			rbac__push(c, &nor, rbac__id_value(c, fd, fd->not_values->v[j]));
		if (nor.n)
			rbac__push(c, &and, rbac__id_not(c, rbac__id_set(c, false, &nor)));
	}
	if (!and.n)
		rbac__push(c, &and, rbac__id_any(c));
	return rbac__id_set(c, true, &and);
}

/* ------------------------------------------------------------- rules */

/* A `when` key only an HTTP request has (request.headers[...],
 * request.auth.*, ...): Istio's TCP rules cannot use it. */
static bool rbac__when_http(const char *k)
{
	return k && !strncmp(k, "request.", 8);
}

static bool rbac__strs_any(const struct cfg_strs *a, const struct cfg_strs *b)
{
	return a->n || b->n;
}

/* Does the rule use an attribute only HTTP requests have (hosts, methods,
 * paths, request principals, request.* conditions)? */
static bool rbac__http_only(const struct cfg_authz_rule *r)
{
	size_t i;

	for (i = 0; i < r->n_to; i++) {
		const struct cfg_authz_operation *o = &r->to[i];

		if (rbac__strs_any(&o->hosts, &o->not_hosts) || rbac__strs_any(&o->methods, &o->not_methods) ||
		    rbac__strs_any(&o->paths, &o->not_paths))
			return true;
	}
	for (i = 0; i < r->n_from; i++)
		if (rbac__strs_any(&r->from[i].request_principals, &r->from[i].not_request_principals))
			return true;
	for (i = 0; i < r->n_when; i++)
		if (rbac__when_http(r->when[i].key))
			return true;
	return false;
}

/* Sort one `when` condition into the permission or principal side.
 * Returns false for a key the RBAC filter cannot express for every
 * client: experimental.* (Envoy metadata, which gRPC never matches) and
 * request.headers[] on grpc-* or :scheme (gRPC NACKs those). */
static bool rbac__when(struct rbac__ctx *c, const struct cfg_authz_condition *w, struct rbac__fields *perm,
		       struct rbac__fields *id)
{
	const char *k = w->key ? w->key : "";
	size_t n = strlen(k);

	if (!strcmp(k, "destination.ip"))
		rbac__field_add(c, perm, RBAC_G_DEST_IP, NULL, &w->values, &w->not_values);
	else if (!strcmp(k, "destination.port"))
		rbac__field_add(c, perm, RBAC_G_PORT, NULL, &w->values, &w->not_values);
	else if (!strcmp(k, "connection.sni"))
		rbac__field_add(c, perm, RBAC_G_SNI, NULL, &w->values, &w->not_values);
	else if (!strcmp(k, "source.ip"))
		rbac__field_add(c, id, RBAC_G_SRC_IP, NULL, &w->values, &w->not_values);
	else if (!strcmp(k, "remote.ip"))
		rbac__field_add(c, id, RBAC_G_REMOTE_IP, NULL, &w->values, &w->not_values);
	else if (!strcmp(k, "source.namespace"))
		rbac__field_add(c, id, RBAC_G_NAMESPACE, NULL, &w->values, &w->not_values);
	else if (!strcmp(k, "source.principal"))
		rbac__field_add(c, id, RBAC_G_PRINCIPAL, NULL, &w->values, &w->not_values);
	else if (!strcmp(k, "source.serviceAccount"))
		rbac__field_add(c, id, RBAC_G_SERVICE_ACCOUNT, NULL, &w->values, &w->not_values);
	else if (!strcmp(k, "source.trustDomain"))
		rbac__field_add(c, id, RBAC_G_TRUST_DOMAIN, NULL, &w->values, &w->not_values);
	else if (!strcmp(k, "request.auth.principal"))
		rbac__field_add(c, id, RBAC_G_REQ_PRINCIPAL, NULL, &w->values, &w->not_values);
	else if (!strcmp(k, "request.auth.audiences"))
		rbac__field_add(c, id, RBAC_G_REQ_AUDIENCE, NULL, &w->values, &w->not_values);
	else if (!strcmp(k, "request.auth.presenter"))
		rbac__field_add(c, id, RBAC_G_REQ_PRESENTER, NULL, &w->values, &w->not_values);
	else if (!strncmp(k, "request.auth.claims[", 20) && n > 21 && k[n - 1] == ']')
		/* "[a][b]": the claim path (decode.c checked the brackets) */
		rbac__field_add(c, id, RBAC_G_REQ_CLAIM, k + 19, &w->values, &w->not_values);
	else if (!strncmp(k, "request.headers[", 16) && n > 17 && k[n - 1] == ']') {
		char *h = c->err ? NULL : arena_strndup(c->a, k + 16, n - 17);
		size_t i;

		if (!h) {
			c->err = c->err ? c->err : -ENOMEM;
			return true;
		}
		/* header names are case-insensitive (Envoy lower-cases them,
		 * gRPC metadata keys are lower case); gRPC rejects the whole
		 * listener for a matcher on grpc-* or :scheme */
		for (i = 0; h[i]; i++)
			h[i] = (char)tolower((unsigned char)h[i]);
		if (!strncmp(h, "grpc-", 5) || !strcmp(h, ":scheme"))
			return false;
		rbac__field_add(c, id, RBAC_G_HEADER, h, &w->values, &w->not_values);
	} else
		return false;
	return true;
}

/* One rule -> one Envoy policy; *out NULL when the rule is dropped. */
static void rbac__rule(struct rbac__ctx *c, const struct cfg_authz_rule *r, enum cfg_authz_action action,
		       size_t idx, rbac_policy **out)
{
	struct rbac__fields perm_base = { 0 }, id_base = { 0 };
	struct rbac__list perms = { 0 }, ids = { 0 };
	rbac_policy *pol;
	size_t i, j;

	*out = NULL;
	if (c->tcp && rbac__http_only(r)) {
		/* Istio's TCP rules: an HTTP attribute cannot match a connection,
		 * so an ALLOW (or AUDIT) rule using one matches nothing, and a
		 * DENY rule drops those attributes and so denies more */
		if (action != CFG_AUTHZ_DENY) {
			gen__note(c->g, GEN_NOTE_WARN, "rbac",
				  "%s/%s rule %zu: HTTP attributes on a TCP port: the rule matches no connection there",
				  c->policy->ns, c->policy->name, idx);
			return;
		}
	}
	for (i = 0; i < r->n_when && !c->err; i++) {
		if (c->tcp && rbac__when_http(r->when[i].key))
			continue; /* DENY on TCP: the HTTP condition is dropped (above) */
		if (rbac__when(c, &r->when[i], &perm_base, &id_base))
			continue;
		if (action == CFG_AUTHZ_DENY) {
			gen__note(c->g, GEN_NOTE_WARN, "rbac",
				  "%s/%s rule %zu: condition %s cannot be matched by the RBAC filter; "
				  "ignored, so the DENY rule applies more widely", c->policy->ns, c->policy->name, idx,
				  r->when[i].key ? r->when[i].key : "");
			continue;
		}
		gen__note(c->g, GEN_NOTE_WARN, "rbac",
			  "%s/%s rule %zu: condition %s cannot be matched by the RBAC filter; rule dropped",
			  c->policy->ns, c->policy->name, idx, r->when[i].key ? r->when[i].key : "");
		return;
	}
	for (i = 0; i < (r->n_to ? r->n_to : 1) && !c->err; i++) {
		struct rbac__fields f = { 0 };

		if (r->n_to) {
			const struct cfg_authz_operation *o = &r->to[i];

			if (!c->tcp) {
				rbac__field_add(c, &f, RBAC_G_HOST, NULL, &o->hosts, &o->not_hosts);
				rbac__field_add(c, &f, RBAC_G_METHOD, NULL, &o->methods, &o->not_methods);
				rbac__field_add(c, &f, RBAC_G_PATH, NULL, &o->paths, &o->not_paths);
			}
			rbac__field_add(c, &f, RBAC_G_PORT, NULL, &o->ports, &o->not_ports);
		}
		for (j = 0; j < perm_base.n; j++)
			rbac__field_add(c, &f, perm_base.v[j].gen, perm_base.v[j].header, perm_base.v[j].values,
					perm_base.v[j].not_values);
		rbac__push(c, &perms, rbac__perm_fields(c, &f));
	}
	for (i = 0; i < (r->n_from ? r->n_from : 1) && !c->err; i++) {
		struct rbac__fields f = { 0 };

		if (r->n_from) {
			const struct cfg_authz_source *s = &r->from[i];

			rbac__field_add(c, &f, RBAC_G_PRINCIPAL, NULL, &s->principals, &s->not_principals);
			rbac__field_add(c, &f, RBAC_G_REQ_PRINCIPAL, NULL, &s->request_principals,
					&s->not_request_principals);
			rbac__field_add(c, &f, RBAC_G_NAMESPACE, NULL, &s->namespaces, &s->not_namespaces);
			rbac__field_add(c, &f, RBAC_G_REMOTE_IP, NULL, &s->remote_ip_blocks, &s->not_remote_ip_blocks);
			rbac__field_add(c, &f, RBAC_G_SRC_IP, NULL, &s->ip_blocks, &s->not_ip_blocks);
		}
		for (j = 0; j < id_base.n; j++)
			rbac__field_add(c, &f, id_base.v[j].gen, id_base.v[j].header, id_base.v[j].values,
					id_base.v[j].not_values);
		rbac__push(c, &ids, rbac__id_fields(c, &f));
	}
	pol = rbac__msg(c, &envoy__config__rbac__v3__policy__descriptor);
	if (!pol || c->err)
		return;
	pol->permissions = (rbac_perm **)perms.v;
	pol->n_permissions = perms.n;
	pol->principals = (rbac_id **)ids.v;
	pol->n_principals = ids.n;
	*out = pol;
}

/* The policy an ALLOW (or AUDIT) AuthorizationPolicy without rules gets:
 * it matches no request. */
static rbac_policy *rbac__match_nothing(struct rbac__ctx *c)
{
	rbac_policy *pol = rbac__msg(c, &envoy__config__rbac__v3__policy__descriptor);
	rbac_perm *p = rbac__perm_not(c, rbac__perm_any(c));
	rbac_id *id = rbac__id_not(c, rbac__id_any(c));
	rbac_perm **pv = c->err ? NULL : arena_calloc(c->a, 1, sizeof(*pv));
	rbac_id **iv = c->err ? NULL : arena_calloc(c->a, 1, sizeof(*iv));

	if (!pol || !p || !id || !pv || !iv) {
		c->err = c->err ? c->err : -ENOMEM;
		return NULL;
	}
	pv[0] = p;
	iv[0] = id;
	pol->permissions = pv;
	pol->n_permissions = 1;
	pol->principals = iv;
	pol->n_principals = 1;
	return pol;
}

struct rbac__filter {
	bool used;                   /* some policy of this action applies */
	struct rbac__list entries;   /* RBAC__PoliciesEntry */
};

static void rbac__add_entry(struct rbac__ctx *c, struct rbac__filter *f, const struct cfg_object *o, size_t idx,
			    rbac_policy *pol)
{
	Envoy__Config__Rbac__V3__RBAC__PoliciesEntry *e;

	if (c->err || !pol)
		return;
	if (f->entries.n >= RBAC_MAX_RULES) {
		c->err = -MESH_ETOOBIG;
		return;
	}
	e = rbac__msg(c, &envoy__config__rbac__v3__rbac__policies_entry__descriptor);
	if (!e)
		return;
	e->key = c->err ? NULL : arena_printf(c->a, "ns[%s]-policy[%s]-rule[%zu]", o->ns, o->name, idx);
	if (!e->key) {
		c->err = c->err ? c->err : -ENOMEM;
		return;
	}
	e->value = pol;
	rbac__push(c, &f->entries, e);
}

/* One filter: the enforced rules of f (when some policy of the action
 * applies) and the dry-run ones of sf as shadow rules, with Istio's stat
 * prefix for them (istio_dry_run_allow_ / istio_dry_run_deny_). */
static rbac_filter *rbac__finish(struct rbac__ctx *c, struct rbac__filter *f, struct rbac__filter *sf,
				 Envoy__Config__Rbac__V3__RBAC__Action action)
{
	rbac_filter *hf;
	rbac_rules *rules, *shadow;

	if ((!f->used && (!sf || !sf->used)) || c->err)
		return NULL;
	hf = rbac__msg(c, &envoy__extensions__filters__http__rbac__v3__rbac__descriptor);
	rules = rbac__msg(c, &envoy__config__rbac__v3__rbac__descriptor);
	shadow = rbac__msg(c, &envoy__config__rbac__v3__rbac__descriptor);
	if (!hf || !rules || !shadow)
		return NULL;
	if (f->used) {
		rules->action = action;
		rules->policies = (Envoy__Config__Rbac__V3__RBAC__PoliciesEntry **)f->entries.v;
		rules->n_policies = f->entries.n;
		hf->rules = rules;
	}
	if (sf && sf->used) {
		shadow->action = action;
		shadow->policies = (Envoy__Config__Rbac__V3__RBAC__PoliciesEntry **)sf->entries.v;
		shadow->n_policies = sf->entries.n;
		hf->shadow_rules = shadow;
		hf->shadow_rules_stat_prefix = (char *)(action == ENVOY__CONFIG__RBAC__V3__RBAC__ACTION__DENY
								? RBAC_DRY_RUN_DENY_PREFIX
								: RBAC_DRY_RUN_ALLOW_PREFIX);
	}
	return hf;
}

int rbac_compile_policies(const struct cfg_object *const *policies, size_t n, struct arena *a,
			  rbac_filter **deny_out, rbac_filter **allow_out, rbac_filter **audit_out)
{
	return rbac_compile_policies_noted(policies, n, NULL, a, deny_out, allow_out, audit_out);
}

int rbac_compile_policies_noted(const struct cfg_object *const *policies, size_t n, const struct gen_notes *notes,
				struct arena *a, rbac_filter **deny_out, rbac_filter **allow_out,
				rbac_filter **audit_out)
{
	return rbac_compile_policies_opts(policies, n, notes, NULL, a, deny_out, allow_out, audit_out);
}

int rbac_compile_policies_opts(const struct cfg_object *const *policies, size_t n, const struct gen_notes *notes,
			       const struct rbac_opts *opts, struct arena *a, rbac_filter **deny_out,
			       rbac_filter **allow_out, rbac_filter **audit_out)
{
	struct gen_ctx g = { .notes = notes };
	struct rbac__ctx c = { a, NULL, 0, &g, opts && opts->tcp };
	struct rbac__filter deny = { 0 }, allow = { 0 }, audit = { 0 }, sdeny = { 0 }, sallow = { 0 };
	rbac_filter *d = NULL, *al = NULL, *au = NULL;
	size_t i, j;
	int rc = 0;

	if (deny_out)
		*deny_out = NULL;
	if (allow_out)
		*allow_out = NULL;
	if (audit_out)
		*audit_out = NULL;
	if (!a || (n && !policies)) {
		rc = -EINVAL;
		goto out;
	}
	for (i = 0; i < n && !c.err; i++) {
		const struct cfg_object *o = policies[i];
		const struct cfg_authorization_policy *ap;
		struct rbac__filter *f;

		if (!o || o->kind != CFG_AUTHORIZATION_POLICY)
			continue;
		ap = &o->spec.ap;
		switch (ap->action) {
		case CFG_AUTHZ_ALLOW: f = &allow; break;
		case CFG_AUTHZ_DENY: f = &deny; break;
		case CFG_AUTHZ_AUDIT: f = &audit; break;
		default: continue; /* CUSTOM is rejected by validation */
		}
		if (ap->dry_run == 1) {
			/* istio.io/dry-run: never enforced; shadow rules where the
			 * client runs them (Envoy, meshproxy), else left out */
			if (!opts || !opts->shadow || ap->action == CFG_AUTHZ_AUDIT)
				continue;
			f = ap->action == CFG_AUTHZ_DENY ? &sdeny : &sallow;
		}
		c.policy = o;
		if (!ap->n_rules) {
			/* ALLOW/AUDIT with no rules matches nothing; DENY with no
			 * rules never matches (validation rejects it anyway). */
			if (ap->action != CFG_AUTHZ_DENY) {
				f->used = true;
				rbac__add_entry(&c, f, o, 0, rbac__match_nothing(&c));
			}
			continue;
		}
		f->used = true;
		for (j = 0; j < ap->n_rules && !c.err; j++) {
			rbac_policy *pol;

			rbac__rule(&c, &ap->rules[j], ap->action, j, &pol);
			rbac__add_entry(&c, f, o, j, pol);
		}
	}
	d = rbac__finish(&c, &deny, &sdeny, ENVOY__CONFIG__RBAC__V3__RBAC__ACTION__DENY);
	al = rbac__finish(&c, &allow, &sallow, ENVOY__CONFIG__RBAC__V3__RBAC__ACTION__ALLOW);
	au = rbac__finish(&c, &audit, NULL, ENVOY__CONFIG__RBAC__V3__RBAC__ACTION__LOG);
	if (c.err) {
		rc = c.err;
		goto out;
	}
	if (deny_out)
		*deny_out = d;
	if (allow_out)
		*allow_out = al;
	if (audit_out)
		*audit_out = au;
out:
	return rc;
}

int rbac_http_filters(rbac_filter *deny, rbac_filter *allow, rbac_filter *audit, bool with_audit,
		      struct arena *a, rbac_http_filter ***out, size_t *n)
{
	rbac_filter *cfg[3] = { with_audit ? audit : NULL, deny, allow };
	static const char *const names[3] = { RBAC_FILTER_NAME_AUDIT, RBAC_FILTER_NAME_DENY, RBAC_FILTER_NAME };
	rbac_http_filter **v;
	size_t i, k = 0;
	int rc = 0;

	*out = NULL;
	*n = 0;
	v = arena_calloc(a, 3, sizeof(*v));
	if (!v) {
		rc = -ENOMEM;
		goto out;
	}
	for (i = 0; i < 3; i++) {
		rbac_http_filter *f;

		if (!cfg[i])
			continue;
		f = gen__msg(a, &envoy__extensions__filters__network__http_connection_manager__v3__http_filter__descriptor);
		if (!f) {
			rc = -ENOMEM;
			goto out;
		}
		f->name = (char *)names[i];
		f->config_type_case =
			ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_FILTER__CONFIG_TYPE_TYPED_CONFIG;
		f->typed_config = gen__any(a, &cfg[i]->base);
		if (!f->typed_config) {
			rc = -ENOMEM;
			goto out;
		}
		v[k++] = f;
	}
	*out = v;
	*n = k;
out:
	return rc;
}

int rbac_network_filters(rbac_filter *deny, rbac_filter *allow, rbac_filter *audit, struct arena *a,
			 rbac_net_filter ***out, size_t *n)
{
	rbac_filter *cfg[3] = { audit, deny, allow };
	rbac_net_filter **v;
	size_t i, k = 0;
	int rc = 0;

	*out = NULL;
	*n = 0;
	v = arena_calloc(a, 3, sizeof(*v));
	if (!v) {
		rc = -ENOMEM;
		goto out;
	}
	for (i = 0; i < 3; i++) {
		Envoy__Extensions__Filters__Network__Rbac__V3__RBAC *nr;
		rbac_net_filter *f;

		if (!cfg[i])
			continue;
		nr = gen__msg(a, &envoy__extensions__filters__network__rbac__v3__rbac__descriptor);
		f = gen__msg(a, &envoy__config__listener__v3__filter__descriptor);
		if (!nr || !f) {
			rc = -ENOMEM;
			goto out;
		}
		/* the same rules as the HTTP filter's (compiled for TCP), Istio's stat prefix */
		nr->rules = cfg[i]->rules;
		nr->shadow_rules = cfg[i]->shadow_rules;
		nr->shadow_rules_stat_prefix = cfg[i]->shadow_rules_stat_prefix;
		nr->stat_prefix = (char *)RBAC_TCP_STAT_PREFIX;
		f->name = (char *)RBAC_NET_FILTER_NAME;
		f->config_type_case = ENVOY__CONFIG__LISTENER__V3__FILTER__CONFIG_TYPE_TYPED_CONFIG;
		f->typed_config = gen__any(a, &nr->base);
		if (!f->typed_config) {
			rc = -ENOMEM;
			goto out;
		}
		v[k++] = f;
	}
	*out = v;
	*n = k;
out:
	return rc;
}

/* ------------------------------------------------------------- selection */

size_t rbac_select(const struct model *m, const char *ns, const struct cfg_labels *labels,
		   const struct cfg_object **out, size_t cap)
{
	return model_authz_select(m, ns, labels, out, cap);
}

int rbac_compile(const struct model *m, const char *ns, const struct cfg_labels *labels, const struct gen_notes *notes,
		 struct arena *a, rbac_filter **deny_out, rbac_filter **allow_out, rbac_filter **audit_out)
{
	return rbac_compile_opts(m, ns, labels, notes, NULL, a, deny_out, allow_out, audit_out);
}

int rbac_compile_opts(const struct model *m, const char *ns, const struct cfg_labels *labels,
		      const struct gen_notes *notes, const struct rbac_opts *opts, struct arena *a,
		      rbac_filter **deny_out, rbac_filter **allow_out, rbac_filter **audit_out)
{
	const struct cfg_object **sel = NULL;
	size_t n;
	int rc;

	if (deny_out)
		*deny_out = NULL;
	if (allow_out)
		*allow_out = NULL;
	if (audit_out)
		*audit_out = NULL;
	if (!m || !ns || !a) {
		rc = -EINVAL;
		goto out;
	}
	n = model_authz_select(m, ns, labels, NULL, 0);
	if (n > RBAC_MAX_POLICIES) {
		rc = -MESH_ETOOBIG;
		goto out;
	}
	if (n) {
		sel = arena_calloc(a, n, sizeof(*sel));
		if (!sel) {
			rc = -ENOMEM;
			goto out;
		}
		model_authz_select(m, ns, labels, sel, n);
	}
	rc = rbac_compile_policies_opts(sel, n, notes, opts, a, deny_out, allow_out, audit_out);
out:
	return rc;
}
