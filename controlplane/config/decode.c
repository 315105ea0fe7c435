/*
 * decode.c - schema-valid node trees -> the typed structs of config.h, with
 * the semantic checks Istio's validation makes (and a few meshd adds where
 * it does not support a feature: such input is rejected, never ignored).
 *
 * Runs after schema.c, so types are already right; what is checked here is
 * meaning: host names, weights, durations, regexes, ports, enums with
 * conditions between fields.  Every error names the field path and the
 * line of the offending node.  All memory comes from the object's arena.
 */
#include "controlplane/config/config_int.h"

#include "common/arena.h"
#include "common/cel.h"
#include "common/duration.h"
#include "common/re.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define DEC__MS 1000000LL
#define DEC__ENVOY_MAX_RING_SIZE 8388608 /* Envoy's RingHash ring size cap */
#define DEC__REGEX_ERR 2048           /* a regex error: RE2's text quotes the pattern (<= 1024) */

struct dec {
	struct cfg__ectx *e;
	struct arena *a;
	const char *ns;
	const struct cfg_object *o;
	const struct cfg__node *jwt_claim_match; /* a header match on @request.auth.claims.* */
	long re_program;             /* RE2 program sizes of its regexes so far (CFG_MAX_REGEX_PROGRAM_PER_OBJECT) */
	bool re_over;                /* past it: reported once, nothing more compiled */
};

#define F(n, k) cfg__node_field((n), (k))

static size_t dec__push(struct dec *d, const char *key)
{
	return cfg__path_key(d->e, key);
}

static size_t dec__idx(struct dec *d, size_t i)
{
	return cfg__path_idx(d->e, i);
}

static void dec__pop(struct dec *d, size_t mark)
{
	cfg__path_pop(d->e, mark);
}

/* error at field key of map (path key pushed for the message) */
#define DEC_ERR_AT(d, node, key, ...)                                      \
	do {                                                               \
		size_t m__ = dec__push((d), (key));                       \
		cfg__error((d)->e, (node), __VA_ARGS__);                   \
		dec__pop((d), m__);                                        \
	} while (0)

/* warning at field key of map */
#define DEC_WARN_AT(d, node, key, ...)                                     \
	do {                                                               \
		size_t m__ = dec__push((d), (key));                       \
		cfg__warn((d)->e, (node), __VA_ARGS__);                    \
		dec__pop((d), m__);                                        \
	} while (0)

static void *dec__alloc(struct dec *d, size_t n, size_t size)
{
	void *p = arena_calloc(d->a, n ? n : 1, size);

	if (!p)
		d->e->oom = true;
	return p;
}

static char *dec__str(struct dec *d, const struct cfg__node *n)
{
	char *s;

	if (!n || !n->str || n->type == CFG__NULL)
		return NULL;
	s = arena_strndup(d->a, n->str, n->len);
	if (!s)
		d->e->oom = true;
	return s;
}

static int64_t dec__int(const struct cfg__node *n, int64_t def)
{
	if (!n)
		return def;
	if (n->type == CFG__INT)
		return n->i;
	if (n->type == CFG__FLOAT)
		return (int64_t)n->f;
	return def;
}

static double dec__num(const struct cfg__node *n, double def)
{
	if (!n || (n->type != CFG__INT && n->type != CFG__FLOAT))
		return def;
	return n->f;
}

static int dec__bool(const struct cfg__node *n)
{
	return n && n->type == CFG__BOOL ? n->b : -1;
}

static void dec__strs(struct dec *d, const struct cfg__node *n, struct cfg_strs *out)
{
	size_t i;

	if (!n || n->type != CFG__SEQ)
		return;
	out->v = dec__alloc(d, n->n, sizeof(char *));
	if (!out->v)
		return;
	for (i = 0; i < n->n; i++)
		if ((out->v[out->n] = dec__str(d, n->v[i])))
			out->n++;
}

static void dec__labels(struct dec *d, const struct cfg__node *n, struct cfg_labels *out)
{
	size_t i;

	if (!n || n->type != CFG__MAP)
		return;
	out->v = dec__alloc(d, n->n, sizeof(*out->v));
	if (!out->v)
		return;
	for (i = 0; i < n->n; i++) {
		out->v[i].key = dec__str(d, n->k[i]);
		out->v[i].value = n->v[i]->str ? dec__str(d, n->v[i]) : arena_strdup(d->a, "");
	}
	out->n = n->n;
}

/* A duration field: must parse and be >= 1ms.  *out stays as it was (-1) when absent. */
static void dec__duration(struct dec *d, const struct cfg__node *map, const char *key, int64_t *out)
{
	const struct cfg__node *n = F(map, key);
	int64_t ns;

	if (!n)
		return;
	if (!n->str || mesh_duration_parse(n->str, &ns) < 0) {
		DEC_ERR_AT(d, n, key, "\"%s\" is not a duration (examples: 100ms, 1.5s, 2m, 1h30m)",
			   n->str ? n->str : "");
		return;
	}
	if (ns < DEC__MS) {
		DEC_ERR_AT(d, n, key, "duration %s is shorter than 1ms (Istio: duration must be greater than 1ms)",
			   n->str);
		return;
	}
	if (ns % DEC__MS != 0) {
		DEC_ERR_AT(d, n, key, "duration %s is finer than a millisecond (Istio: only durations to ms "
			   "precision are supported)", n->str);
		return;
	}
	*out = ns;
}

/* ------------------------------------------------------------- names, addresses */

bool cfg__is_dns1123_label(const char *s)
{
	size_t n = strlen(s), i;

	if (n == 0 || n > 63)
		return false;
	for (i = 0; i < n; i++) {
		char c = s[i];
		bool an = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
		if (!an && c != '-')
			return false;
		if ((i == 0 || i == n - 1) && !an)
			return false;
	}
	return true;
}

bool cfg__is_ip(const char *s)
{
	unsigned char buf[16];

	return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

bool cfg__is_cidr(const char *s)
{
	const char *slash = strchr(s, '/');
	char ip[64];
	char *end;
	long bits;
	size_t n;

	if (!slash)
		return cfg__is_ip(s);
	n = (size_t)(slash - s);
	if (n == 0 || n >= sizeof(ip) || !slash[1])
		return false;
	memcpy(ip, s, n);
	ip[n] = '\0';
	bits = strtol(slash + 1, &end, 10);
	if (*end || !isdigit((unsigned char)slash[1]))
		return false;
	if (strchr(ip, ':'))
		return cfg__is_ip(ip) && bits >= 0 && bits <= 128;
	return cfg__is_ip(ip) && bits >= 0 && bits <= 32;
}

/* Istio's IsDNS1123Label: letters of either case, digits and '-', starting
 * and ending alphanumeric, at most 63 (subset and gateway names). */
static bool dec__istio_label(const char *s)
{
	size_t n = strlen(s), i;

	if (n == 0 || n > 63)
		return false;
	for (i = 0; i < n; i++) {
		bool an = isalnum((unsigned char)s[i]);
		if (!an && s[i] != '-')
			return false;
		if ((i == 0 || i == n - 1) && !an)
			return false;
	}
	return true;
}

/* Istio's ValidateWildcardDomain: at most 255 characters; the first label
 * "*", "*label", "*-label" or a label; the others labels, the last one may
 * be empty (a trailing dot) and the top-level one is not all digits (so an
 * IP address is not a domain). */
static bool dec__istio_wildcard_domain(const char *s)
{
	size_t n = strlen(s), i, start, first;
	const char *dot = strchr(s, '.');
	char label[64];

	if (n == 0 || n > 255)
		return false;
	first = dot ? (size_t)(dot - s) : n;
	if (first > 63)
		return false;
	memcpy(label, s, first);
	label[first] = '\0';
	if (strcmp(label, "*") != 0) {
		const char *l = label;
		if (l[0] == '*')
			l += l[1] == '-' ? 2 : 1;
		if (!dec__istio_label(l))
			return false;
	}
	if (!dot)
		return true;
	/* the rest: DNS labels, top-level not numeric */
	{
		const char *rest = dot + 1, *last = strrchr(rest, '.');
		const char *tld = last ? last + 1 : rest;
		bool numeric = *tld != '\0';
		for (i = 0; tld[i]; i++)
			if (!isdigit((unsigned char)tld[i]))
				numeric = false;
		if (numeric)
			return false;
		n = strlen(rest);
		for (start = 0, i = 0; i <= n; i++) {
			if (i < n && rest[i] != '.')
				continue;
			if (i == n && i == start && i > 0)
				break; /* trailing dot */
			if (i - start > 63)
				return false;
			memcpy(label, rest + start, i - start);
			label[i - start] = '\0';
			if (!dec__istio_label(label))
				return false;
			start = i + 1;
		}
	}
	return true;
}

/* RFC 7230 token: Istio's validHeaderNameRegex */
static bool dec__header_token(const char *s)
{
	size_t i;

	if (!s[0])
		return false;
	for (i = 0; s[i]; i++)
		if (!isalnum((unsigned char)s[i]) && !strchr("!#$%&'*+-.^_`|~", s[i]))
			return false;
	return true;
}

/* Istio's ValidateHTTPHeaderValue: no control characters but tab, and
 * Envoy's %VARIABLE% formatting well formed ("%%" is a literal %).
 * Returns NULL when fine, or why not. */
static const char *dec__header_value_check(const char *v)
{
	enum { LIT, VAR, ARR, STR_START, STR, ARR_NEXT, ARGS_END, VAR_END } st = LIT;
	size_t i, n = strlen(v);

	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)v[i];
		if ((c <= 8) || (c >= 0x0a && c <= 0x1f) || c == 0x7f)
			return "contains a control character";
	}
	for (i = 0; i < n; i++) {
		char c = v[i];
		bool next = i + 1 < n, sp = c == ' ' || c == '\t';
		switch (st) {
		case LIT:
			if (c != '%')
				break;
			if (!next)
				return "un-escaped % (write %% for a literal %)";
			if (v[i + 1] == '%') {
				i++;
				break;
			}
			st = VAR;
			break;
		case VAR:
			if (c == '%')
				st = LIT;
			else if (c == '(')
				st = ARR;
			break;
		case ARR:
			if (c == '[')
				st = STR_START;
			else if (!sp)
				st = STR;
			break;
		case ARR_NEXT:
			if (c == ',')
				st = STR_START;
			else if (c == ']')
				st = ARGS_END;
			else if (!sp)
				return "expecting ',', ']' or whitespace in %VAR([...])%";
			break;
		case STR_START:
			if (c == '"')
				st = STR;
			else if (!sp)
				return "expecting '\"' in %VAR([...])%";
			break;
		case STR:
			if (c == '\\') {
				if (!next)
					return "un-terminated backslash in a JSON string";
				i++;
			} else if (c == ')') {
				st = VAR_END;
			} else if (c == '"') {
				st = ARR_NEXT;
			}
			break;
		case ARGS_END:
			if (c == ')')
				st = VAR_END;
			else if (!sp)
				return "expecting ')' in %VAR(...)%";
			break;
		case VAR_END:
			if (c == '%')
				st = LIT;
			else if (!sp)
				return "expecting '%' after %VAR(...)";
			break;
		}
	}
	return st == LIT ? NULL : "un-terminated %VARIABLE% expression (write %% for a literal %)";
}

/* qualifiedName of Kubernetes label keys and values: alphanumerics, '-',
 * '_' and '.', starting and ending alphanumeric */
static bool dec__qualified_name(const char *s, size_t n)
{
	size_t i;

	if (n == 0)
		return false;
	for (i = 0; i < n; i++) {
		bool an = isalnum((unsigned char)s[i]);
		if (!an && !strchr("-_.", s[i]))
			return false;
		if ((i == 0 || i == n - 1) && !an)
			return false;
	}
	return true;
}

/* Istio's labels.Instance.Validate: keys [prefix/]name, values empty or a
 * qualified name. */
static bool dec__label_key_ok(const char *k)
{
	const char *slash = strchr(k, '/'), *name = slash ? slash + 1 : k;
	size_t i, start = 0, plen;
	char label[64];

	if (strlen(name) > 63 || !dec__qualified_name(name, strlen(name)))
		return false;
	if (!slash)
		return true;
	plen = (size_t)(slash - k);
	if (plen == 0 || plen > 253)
		return false;
	for (i = 0; i <= plen; i++) {
		if (i < plen && k[i] != '.')
			continue;
		if (i - start == 0 || i - start > 63)
			return false;
		memcpy(label, k + start, i - start);
		label[i - start] = '\0';
		if (!dec__istio_label(label))
			return false;
		start = i + 1;
	}
	return true;
}

static void dec__label_values(struct dec *d, const struct cfg__node *map, const char *key)
{
	size_t i, mark;

	if (!map || map->type != CFG__MAP)
		return;
	mark = dec__push(d, key);
	for (i = 0; i < map->n; i++) {
		const char *k = map->k[i]->str ? map->k[i]->str : "", *v = map->v[i]->str ? map->v[i]->str : "";
		if (!dec__label_key_ok(k))
			cfg__error(d->e, map->k[i], "invalid label key \"%s\"", k);
		else if (v[0] && !dec__qualified_name(v, strlen(v)))
			DEC_ERR_AT(d, map->v[i], k, "invalid label value \"%s\"", v);
	}
	dec__pop(d, mark);
}

static bool dec__istio_fqdn(const char *s)
{
	/* ValidateFQDN: every label checked like the first one of a wildcard domain without '*' */
	return s[0] != '*' && dec__istio_wildcard_domain(s);
}

/* Istio's validateGatewayNames: "mesh", "name" (a host name), "ns/name";
 * "name.ns" is the legacy form (warning). */
static void dec__gateway_names(struct dec *d, const struct cfg__node *seq)
{
	size_t i, mark;

	if (!seq || seq->type != CFG__SEQ)
		return;
	mark = dec__push(d, "gateways");
	for (i = 0; i < seq->n; i++) {
		const char *g = seq->v[i]->str ? seq->v[i]->str : "", *slash = strchr(g, '/');
		size_t m2 = dec__idx(d, i);

		if (!slash) {
			if (strchr(g, '.')) {
				const char *dot = strchr(g, '.');
				cfg__warn(d->e, seq->v[i], "using legacy gatewayName format \"%s\"; prefer the "
					  "<namespace>/<name> format: \"%s/%.*s\"", g, dot + 1, (int)(dot - g), g);
			}
			if (!dec__istio_fqdn(g))
				cfg__error(d->e, seq->v[i], "invalid gateway name \"%s\"", g);
		} else {
			char ns[64];
			size_t nl = (size_t)(slash - g);
			if (!nl || !slash[1])
				cfg__error(d->e, seq->v[i], "config namespace and gateway name cannot be empty");
			if (nl >= sizeof(ns) || (memcpy(ns, g, nl), ns[nl] = '\0', !dec__istio_label(ns)))
				cfg__error(d->e, seq->v[i], "invalid value for namespace: \"%.*s\"", (int)nl, g);
			if (!dec__istio_label(slash + 1))
				cfg__error(d->e, seq->v[i], "invalid value for gateway name: \"%s\"", slash + 1);
		}
		dec__pop(d, m2);
	}
	dec__pop(d, mark);
}

/* Istio's validateExportTo: ".", "*", "~" (ServiceEntry only) or a
 * namespace; no duplicates ("." and the own namespace are the same); "*"
 * and "~" alone. */
static void dec__export_to(struct dec *d, const struct cfg__node *seq, bool service_entry, bool dr_with_selector)
{
	size_t i, j, mark;
	bool has_public = false, has_none = false, has_own = false;

	if (!seq || seq->type != CFG__SEQ || !seq->n)
		return;
	mark = dec__push(d, "exportTo");
	for (i = 0; i < seq->n; i++) {
		const char *x = seq->v[i]->str ? seq->v[i]->str : "";
		const char *kx = strcmp(x, ".") == 0 ? d->ns : x;
		size_t m2 = dec__idx(d, i);
		bool dup = false;

		for (j = 0; j < i && !dup; j++) {
			const char *y = seq->v[j]->str ? seq->v[j]->str : "";
			const char *ky = strcmp(y, ".") == 0 ? d->ns : y;
			dup = strcmp(kx, ky) == 0;
		}
		if (dup && strcmp(kx, x) != 0)
			cfg__error(d->e, seq->v[i], "duplicate entries in exportTo: . and current namespace %s", d->ns);
		else if (dup)
			cfg__error(d->e, seq->v[i], "duplicate entries in exportTo for entry %s", x);
		else if (strcmp(x, "~") == 0 && !service_entry)
			cfg__error(d->e, seq->v[i], "exportTo ~ (no one) is allowed only for ServiceEntry");
		else if (strcmp(x, "*") && strcmp(x, "~") && strcmp(x, ".") && !cfg__is_dns1123_label(x))
			cfg__error(d->e, seq->v[i], "only .,*, or a valid DNS 1123 label is allowed as exportTo entry, "
				   "found \"%s\"", x);
		if (strcmp(x, "*") == 0)
			has_public = true;
		if (strcmp(x, "~") == 0)
			has_none = true;
		if (strcmp(kx, d->ns) == 0)
			has_own = true;
		dec__pop(d, m2);
	}
	if (dr_with_selector) {
		if (!has_own)
			cfg__error(d->e, seq, "destination rule with workload selector cannot have exportTo beyond "
				   "current namespace");
		else if (seq->n > 1)
			cfg__error(d->e, seq, "destination rule with workload selector cannot have multiple entries in "
				   "exportTo");
	}
	if (has_public && seq->n > 1)
		cfg__error(d->e, seq, "cannot have both public (*) and non-public exportTo values for a resource");
	if (has_none && seq->n > 1)
		cfg__error(d->e, seq, "cannot export service entry to no one (~) and someone");
	dec__pop(d, mark);
}

static bool dec__port_ok(int64_t p)
{
	return p >= 1 && p <= 65535;
}

/* ------------------------------------------------------------- regexes */

/* Compile an RE2 regex the way the proxies will: with RE2 itself (Istio's
 * validateStringRegexp compiles with Go's regexp, the same syntax) and the
 * program-size limit Envoy runs with under Istio (common/re.h,
 * MESH_RE_ISTIO_MAX_PROGRAM_SIZE), which meshproxy's router enforces too.
 * Istio's own cap of 1024 characters comes first.  With sub, also check the
 * substitution a regex rewrite uses (RE2::CheckRewriteString: what the
 * router refuses).  Reports an error at n/key; nothing when fine. */
static void dec__regex_x(struct dec *d, const struct cfg__node *n, const char *key, const struct cfg__node *sub,
			 const char *sub_key)
{
	char err[DEC__REGEX_ERR];
	struct mesh_re *re = NULL;
	int rc;

	if (!n || !n->str)
		return;
	if (strlen(n->str) != n->len) {
		DEC_ERR_AT(d, n, key, "regex contains a NUL byte");
		return;
	}
	if (n->len > 1024) {
		DEC_ERR_AT(d, n, key, "regex is too large, max length allowed is 1024");
		return;
	}
	if (d->re_over)
		return;
	rc = mesh_re_new(n->str, n->len, MESH_RE_ISTIO_MAX_PROGRAM_SIZE, &re, err, sizeof(err));
	if (rc == 0) {
		d->re_program += mesh_re_program_size(re);
		if (d->re_program > CFG_MAX_REGEX_PROGRAM_PER_OBJECT) {
			d->re_over = true;
			DEC_ERR_AT(d, n, key, "the object's regexes together are too large: RE2 program size %ld so far, "
				   "past the limit of %ld per object (CFG_MAX_REGEX_PROGRAM_PER_OBJECT); the regexes "
				   "after this one were not checked", d->re_program, CFG_MAX_REGEX_PROGRAM_PER_OBJECT);
			mesh_re_free(re);
			return;
		}
	}
	if (rc == -ENOMEM) {
		DEC_ERR_AT(d, n, key, "out of memory compiling the regex");
		return;
	}
	if (rc < 0) {
		if (strstr(err, "program size"))
			DEC_ERR_AT(d, n, key, "invalid regex: %s (the limit is Envoy's runtime "
				   "re2.max_program_size.error_level as Istio sets it, %d)", err,
				   MESH_RE_ISTIO_MAX_PROGRAM_SIZE);
		else
			DEC_ERR_AT(d, n, key, "invalid regex: %s; Istio uses RE2 style regex-based match "
				   "(https://github.com/google/re2/wiki/Syntax)", err);
		return;
	}
	if (sub && sub->str && mesh_re_check_rewrite(re, sub->str, err, sizeof(err)) < 0)
		DEC_ERR_AT(d, sub, sub_key, "invalid regex rewrite: %s", err);
	mesh_re_free(re);
}

static void dec__regex(struct dec *d, const struct cfg__node *n, const char *key)
{
	dec__regex_x(d, n, key, NULL, NULL);
}

/* ------------------------------------------------------------- VirtualService */

/* A StringMatch (Istio's validateStringMatch): an empty prefix is an
 * error except for uri (Envoy allows an empty path prefix), an empty regex
 * always.  Istio reads an empty object ({}) as "present, any value". */
static void dec__string_match_x(struct dec *d, const struct cfg__node *n, struct cfg_string_match *out,
				bool empty_prefix_ok)
{
	const struct cfg__node *v;

	out->type = CFG_MATCH_NONE;
	if (!n)
		return;
	if ((v = F(n, "exact"))) {
		out->type = CFG_MATCH_EXACT;
		out->value = dec__str(d, v);
	} else if ((v = F(n, "prefix"))) {
		out->type = CFG_MATCH_PREFIX;
		out->value = dec__str(d, v);
		if (!v->len && !empty_prefix_ok)
			DEC_ERR_AT(d, v, "prefix", "prefix string match should not be empty");
	} else if ((v = F(n, "regex"))) {
		out->type = CFG_MATCH_REGEX;
		out->value = dec__str(d, v);
		if (!v->len)
			DEC_ERR_AT(d, v, "regex", "regex string match should not be empty");
		else
			dec__regex(d, v, "regex");
	}
}

static void dec__string_match(struct dec *d, const struct cfg__node *n, struct cfg_string_match *out)
{
	dec__string_match_x(d, n, out, false);
}

/* Istio's ValidateHTTPHeaderNameOrJwtClaimRoute. */
static const char *dec__match_header_name_check(const char *name, bool *jwt_claim)
{
	static const char *const pseudo[] = { ":method", ":scheme", ":authority", ":path", ":status", NULL };
	size_t i;

	*jwt_claim = false;
	if (!name[0])
		return "header name cannot be empty";
	if (strncmp(name, "@request.auth.claims.", 21) == 0 && name[21]) {
		*jwt_claim = true;
		return NULL;
	}
	for (i = 0; pseudo[i]; i++)
		if (strcmp(name, pseudo[i]) == 0)
			return NULL;
	return dec__header_token(name) ? NULL : "is not a valid header name";
}

/* headers / withoutHeaders (lower: header names) or queryParams of a match.
 * A withoutHeaders regex "*" is not RE2: Istio reads it as "header
 * absent" (presence, inverted). */
static size_t dec__header_matches(struct dec *d, const struct cfg__node *map, bool invert, struct cfg_header_match *out,
				  bool lower)
{
	size_t i;

	if (!map || map->type != CFG__MAP)
		return 0;
	for (i = 0; i < map->n; i++) {
		size_t mark = dec__push(d, map->k[i]->str), j;
		char *name = dec__str(d, map->k[i]);
		const struct cfg__node *v = map->v[i], *re = F(v, "regex");
		const char *why;
		bool jwt;

		if (name && lower) {
			if ((why = dec__match_header_name_check(name, &jwt)))
				cfg__error(d->e, map->k[i], "header name \"%s\" %s", name,
					   strstr(why, "empty") ? "cannot be empty" : why);
			else if (jwt)
				d->jwt_claim_match = map->k[i];
			for (j = 0; name[j]; j++)
				name[j] = (char)tolower((unsigned char)name[j]);
		}
		out[i].name = name;
		out[i].invert = invert;
		if (lower && !invert && v->type == CFG__NULL)
			cfg__error(d->e, v, "header match %s cannot be null", name ? name : "");
		if (invert && re && re->str && strcmp(re->str, "*") == 0)
			out[i].match.type = CFG_MATCH_NONE; /* present_match, inverted */
		else
			dec__string_match(d, v->type == CFG__MAP ? v : NULL, &out[i].match);
		dec__pop(d, mark);
	}
	return map->n;
}

static void dec__http_match(struct dec *d, const struct cfg__node *n, struct cfg_http_match *m)
{
	const struct cfg__node *h = F(n, "headers"), *wh = F(n, "withoutHeaders"), *q = F(n, "queryParams");
	size_t nh = (h ? h->n : 0) + (wh ? wh->n : 0), mark;
	const struct cfg__node *v;

	m->name = dec__str(d, F(n, "name"));
	mark = dec__push(d, "uri");
	dec__string_match_x(d, F(n, "uri"), &m->uri, true);
	dec__pop(d, mark);
	mark = dec__push(d, "scheme");
	dec__string_match(d, F(n, "scheme"), &m->scheme);
	dec__pop(d, mark);
	mark = dec__push(d, "method");
	dec__string_match(d, F(n, "method"), &m->method);
	dec__pop(d, mark);
	mark = dec__push(d, "authority");
	dec__string_match(d, F(n, "authority"), &m->authority);
	dec__pop(d, mark);
	if (nh) {
		m->headers = dec__alloc(d, nh, sizeof(*m->headers));
		if (!m->headers)
			return;
		mark = dec__push(d, "headers");
		m->n_headers = dec__header_matches(d, h, false, m->headers, true);
		dec__pop(d, mark);
		mark = dec__push(d, "withoutHeaders");
		m->n_headers += dec__header_matches(d, wh, true, m->headers + m->n_headers, true);
		dec__pop(d, mark);
	}
	if (q && q->n) {
		m->query_params = dec__alloc(d, q->n, sizeof(*m->query_params));
		if (!m->query_params)
			return;
		mark = dec__push(d, "queryParams");
		m->n_query_params = dec__header_matches(d, q, false, m->query_params, false);
		dec__pop(d, mark);
	}
	m->port = -1;
	if ((v = F(n, "port"))) {
		m->port = dec__int(v, -1);
		if (!dec__port_ok(m->port))
			DEC_ERR_AT(d, v, "port", "port %lld is not in range 1..65535", (long long)m->port);
	}
	dec__labels(d, F(n, "sourceLabels"), &m->source_labels);
	dec__label_values(d, F(n, "sourceLabels"), "sourceLabels");
	m->source_namespace = dec__str(d, F(n, "sourceNamespace"));
	if ((v = F(n, "sourceNamespace")) && !dec__istio_label(v->str))
		DEC_ERR_AT(d, v, "sourceNamespace", "sourceNamespace match %s is invalid", v->str);
	dec__strs(d, F(n, "gateways"), &m->gateways);
	dec__gateway_names(d, F(n, "gateways"));
	m->ignore_uri_case = dec__bool(F(n, "ignoreUriCase")) == 1;
}

static void dec__destination(struct dec *d, const struct cfg__node *n, struct cfg_destination *out)
{
	const struct cfg__node *host = F(n, "host"), *subset = F(n, "subset"), *port = F(cfg__node_field(n, "port"), "number");

	out->port = -1;
	out->host = dec__str(d, host);
	if (!host || !host->len) {
		DEC_ERR_AT(d, host ? host : n, "host", "destination host is required");
	} else if (strcmp(host->str, "*") == 0) {
		DEC_ERR_AT(d, host, "host", "invalid destination host *");
	} else if (!dec__istio_wildcard_domain(host->str)) {
		DEC_ERR_AT(d, host, "host", "\"%s\" is not a valid host name (a DNS name, optionally starting with a "
			   "wildcard; not an IP address)", host->str);
	}
	if (subset) {
		out->subset = dec__str(d, subset);
		if (!subset->len)
			DEC_ERR_AT(d, subset, "subset", "subset name cannot be empty");
		else if (!dec__istio_label(subset->str))
			DEC_ERR_AT(d, subset, "subset", "subset name is invalid: \"%s\" (a DNS label: letters, digits "
				   "and '-')", subset->str);
	}
	if (port) {
		size_t mark = dec__push(d, "port");
		out->port = dec__int(port, -1);
		if (!dec__port_ok(out->port))
			DEC_ERR_AT(d, port, "number", "port %lld is not in range 1..65535", (long long)out->port);
		dec__pop(d, mark);
	}
}

static bool dec__is_authority_header(const char *k)
{
	return strcasecmp(k, ":authority") == 0 || strcasecmp(k, "host") == 0;
}

/* Header edits (Istio's ValidateHTTPHeaderWithAuthorityOperationName for
 * request set/add, ValidateHTTPHeaderOperationName for the rest, and
 * ValidateHTTPHeaderValue for every value).  *authority counts the places
 * that rewrite the authority. */
static void dec__header_ops(struct dec *d, const struct cfg__node *n, struct cfg_header_ops *out, bool request,
			    const struct cfg__node **authority)
{
	static const char *const keys[] = { "set", "add", "remove" };
	size_t i, k, mark;

	dec__labels(d, F(n, "set"), &out->set);
	dec__labels(d, F(n, "add"), &out->add);
	dec__strs(d, F(n, "remove"), &out->remove);
	for (k = 0; k < 3; k++) {
		const struct cfg__node *m = F(n, keys[k]);
		if (!m || (m->type != CFG__MAP && m->type != CFG__SEQ))
			continue;
		mark = dec__push(d, keys[k]);
		for (i = 0; i < m->n; i++) {
			const struct cfg__node *kn = k < 2 ? m->k[i] : m->v[i], *vn = k < 2 ? m->v[i] : NULL;
			const char *name = kn->str ? kn->str : "", *why;
			size_t m2 = k < 2 ? dec__push(d, name) : dec__idx(d, i);

			if (!name[0]) {
				cfg__error(d->e, kn, "header name cannot be empty");
			} else if (request && k < 2) {
				if (name[0] == ':' && !dec__is_authority_header(name))
					cfg__error(d->e, kn, "invalid header \"%s\": header cannot have \":\" prefix", name);
				else if (dec__is_authority_header(name)) {
					if (*authority)
						cfg__error(d->e, kn, "authority header cannot be set multiple times");
					*authority = kn;
				}
			} else if (strcasecmp(name, "host") == 0) {
				cfg__error(d->e, kn, "invalid header \"%s\": cannot set Host header", name);
			} else if (name[0] == ':') {
				cfg__error(d->e, kn, "invalid header \"%s\": header cannot have \":\" prefix", name);
			}
			if (vn && vn->str && (why = dec__header_value_check(vn->str)))
				cfg__error(d->e, vn, "header value configuration \"%s\" is invalid: %s", vn->str, why);
			dec__pop(d, m2);
		}
		dec__pop(d, mark);
	}
}

static void dec__headers(struct dec *d, const struct cfg__node *n, struct cfg_headers *out,
			 const struct cfg__node **authority)
{
	const struct cfg__node *none = NULL;
	size_t mark;

	if (!n)
		return;
	mark = dec__push(d, "headers");
	{
		size_t m2 = dec__push(d, "request");
		dec__header_ops(d, F(n, "request"), &out->request, true, authority ? authority : &none);
		dec__pop(d, m2);
		m2 = dec__push(d, "response");
		dec__header_ops(d, F(n, "response"), &out->response, false, &none);
		dec__pop(d, m2);
	}
	dec__pop(d, mark);
}

/* route: [...] of an http, tcp or tls route.  Weights are relative (Istio
 * >= 1.15): each non-negative, and with several destinations the total must
 * not be 0 (Istio's validateHTTPRouteDestinations). */
static size_t dec__route_destinations(struct dec *d, const struct cfg__node *seq, struct cfg_route_destination **out,
				      bool http)
{
	int64_t total = 0;
	size_t i, mark;

	if (!seq || seq->type != CFG__SEQ || !seq->n)
		return 0;
	*out = dec__alloc(d, seq->n, sizeof(**out));
	if (!*out)
		return 0;
	mark = dec__push(d, "route");
	for (i = 0; i < seq->n; i++) {
		const struct cfg__node *rd = seq->v[i], *w = F(rd, "weight");
		struct cfg_route_destination *r = &(*out)[i];
		size_t m2 = dec__idx(d, i), m3;

		if (!F(rd, "destination"))
			DEC_ERR_AT(d, rd, "destination", "destination is required");
		m3 = dec__push(d, "destination");
		dec__destination(d, F(rd, "destination"), &r->destination);
		dec__pop(d, m3);
		r->weight = -1;
		if (w) {
			r->weight = dec__int(w, -1);
			if (r->weight < 0)
				DEC_ERR_AT(d, w, "weight", "weight %lld < 0", (long long)r->weight);
			else
				total += r->weight;
		}
		if (http)
			dec__headers(d, F(rd, "headers"), &r->headers, NULL);
		dec__pop(d, m2);
	}
	if (seq->n > 1 && total == 0)
		cfg__error(d->e, seq, "total destination weight = 0 (weights are relative: give at least one "
			   "destination a positive weight)");
	dec__pop(d, mark);
	return seq->n;
}

/* A Percent {value: double} (or a bare number): Istio's validatePercentage
 * when fine is true (0, or 0.0001..100), else 0..100. */
static bool dec__percent_x(struct dec *d, const struct cfg__node *n, const char *key, double *out, bool fine)
{
	const struct cfg__node *v = F(n, key);
	double p;

	if (!v)
		return false;
	p = dec__num(F(v, "value"), 0);
	if (v->type != CFG__MAP)
		p = dec__num(v, 0);
	if (!(p >= 0.0 && p <= 100.0)) {
		DEC_ERR_AT(d, v, key, "percentage %g is not in range 0..100", p);
		return false;
	}
	if (fine && p > 0.0 && p < 0.0001) {
		DEC_ERR_AT(d, v, key, "percentage %g is neither 0.0, nor in range [0.0001, 100.0]", p);
		return false;
	}
	*out = p;
	return true;
}


static bool dec__http_status_known(long code)
{
	static const short codes[] = {
		100, 101, 102, 103, 200, 201, 202, 203, 204, 205, 206, 207, 208, 226, 300, 301, 302, 303, 304, 305,
		307, 308, 400, 401, 402, 403, 404, 405, 406, 407, 408, 409, 410, 411, 412, 413, 414, 415, 416, 417,
		418, 421, 422, 423, 424, 425, 426, 428, 429, 431, 451, 500, 501, 502, 503, 504, 505, 506, 507, 508,
		510, 511,
	};
	size_t i;

	for (i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
		if (codes[i] == code)
			return true;
	return false;
}

/* Istio's retryOn policy: one of Envoy's x-envoy-retry-on / -grpc-on
 * names, or an HTTP status code Go knows.  Items are not trimmed (as in
 * Istio: "5xx, reset" is rejected). */
static bool dec__retry_on_ok(const char *tok, size_t n)
{
	static const char *const known[] = {
		"5xx", "gateway-error", "reset", "reset-before-request", "connect-failure", "envoy-ratelimited",
		"retriable-4xx", "refused-stream", "retriable-status-codes", "retriable-headers", "http3-post-connect-failure",
		"cancelled", "deadline-exceeded", "internal", "resource-exhausted", "unavailable", NULL,
	};
	size_t i;

	for (i = 0; known[i]; i++)
		if (strlen(known[i]) == n && strncmp(known[i], tok, n) == 0)
			return true;
	if (n == 3 && isdigit((unsigned char)tok[0]) && isdigit((unsigned char)tok[1]) && isdigit((unsigned char)tok[2]))
		return dec__http_status_known(strtol(tok, NULL, 10));
	return false;
}

/* Istio's ValidateHTTPRetry. */
static void dec__retries(struct dec *d, const struct cfg__node *n, struct cfg_retries *r)
{
	const struct cfg__node *v, *ptt = F(n, "perTryTimeout"), *ron = F(n, "retryOn");
	const struct cfg__node *rrl = F(n, "retryRemoteLocalities");

	r->per_try_timeout = -1;
	r->backoff = -1;
	r->ignore_previous_hosts = -1;
	if (!n)
		return;
	r->set = true;
	r->attempts = 0; /* as Istio: retries present without attempts disables them */
	if ((v = F(n, "attempts"))) {
		r->attempts = dec__int(v, 0);
		if (r->attempts < 0)
			DEC_ERR_AT(d, v, "attempts", "attempts cannot be negative (%lld)", (long long)r->attempts);
	}
	if (r->attempts == 0 && (ptt || (ron && ron->len) || rrl))
		cfg__error(d->e, n, "http retry policy configured when attempts are set to 0 (disabled): set attempts, "
			   "or remove %s", ptt ? "perTryTimeout" : ron && ron->len ? "retryOn" : "retryRemoteLocalities");
	dec__duration(d, n, "perTryTimeout", &r->per_try_timeout);
	r->backoff = -1;
	dec__duration(d, n, "backoff", &r->backoff);
	if ((v = F(n, "retryIgnorePreviousHosts")))
		r->ignore_previous_hosts = dec__bool(v);
	if (ron && ron->len) {
		const char *p = ron->str;
		r->retry_on = dec__str(d, ron);
		for (;;) {
			const char *c = strchr(p, ',');
			size_t len = c ? (size_t)(c - p) : strlen(p);
			if (!dec__retry_on_ok(p, len)) {
				DEC_ERR_AT(d, ron, "retryOn", "\"%.*s\" is not a valid retryOn policy%s", (int)len, p,
					   memchr(p, ' ', len) ? " (no spaces around the commas)" : "");
				break;
			}
			if (!c)
				break;
			p = c + 1;
		}
	}
	r->retry_remote_localities = dec__bool(rrl) == 1;
}

static bool dec__grpc_status_ok(const char *s)
{
	static const char *const codes[] = {
		"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS",
		"PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",
		"UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED", NULL,
	};
	size_t i;

	for (i = 0; codes[i]; i++)
		if (strcmp(codes[i], s) == 0)
			return true;
	return false;
}

/* Istio's validateHTTPFaultInjection.  A delay without fixedDelay and an
 * abort without an error type are accepted with a warning and, as istiod
 * does, not injected. */
static void dec__fault(struct dec *d, const struct cfg__node *n, struct cfg_fault *f)
{
	const struct cfg__node *delay = F(n, "delay"), *abort_ = F(n, "abort"), *v;
	size_t mark;

	f->http_status = -1;
	f->fixed_delay = -1;
	if (!n)
		return;
	mark = dec__push(d, "fault");
	if (!delay && !abort_)
		cfg__error(d->e, n, "HTTP fault injection must have an abort and/or a delay");
	if (delay) {
		size_t m2 = dec__push(d, "delay");
		f->has_delay = true;
		/* Istio's TranslateFault: without percentage (or the deprecated
		 * integer percent) the delay is sent with 0% -- never injected */
		f->delay_percent = -1;
		if ((v = F(delay, "exponentialDelay"))) {
			int64_t ed = -1;
			dec__duration(d, delay, "exponentialDelay", &ed);
			DEC_ERR_AT(d, v, "exponentialDelay", "exponentialDelay not supported yet");
		} else if (!F(delay, "fixedDelay")) {
			cfg__warn(d->e, delay, "delay configured without fixedDelay: not injected");
			f->has_delay = false;
		}
		dec__duration(d, delay, "fixedDelay", &f->fixed_delay);
		if (!dec__percent_x(d, delay, "percentage", &f->delay_percent, true) && (v = F(delay, "percent"))) {
			f->delay_percent = dec__num(v, 100);
			if (f->delay_percent < 0 || f->delay_percent > 100)
				DEC_ERR_AT(d, v, "percent", "percentage %s is not in range 0..100", v->str);
		}
		dec__pop(d, m2);
	}
	if (abort_) {
		size_t m2 = dec__push(d, "abort");
		f->has_abort = true;
		/* Istio's TranslateFault sends an abort without percentage as one
		 * with no percentage, which Envoy and gRPC read as 0%: not injected */
		f->abort_percent = -1;
		dec__percent_x(d, abort_, "percentage", &f->abort_percent, true);
		if ((v = F(abort_, "httpStatus"))) {
			f->http_status = dec__int(v, -1);
			if (f->http_status < 200 || f->http_status > 600)
				DEC_ERR_AT(d, v, "httpStatus", "HTTP status %lld is not in range 200-599",
					   (long long)f->http_status);
		} else if ((v = F(abort_, "grpcStatus"))) {
			f->grpc_status = dec__str(d, v);
			if (!dec__grpc_status_ok(v->str))
				DEC_ERR_AT(d, v, "grpcStatus", "gRPC status \"%s\" is not supported (e.g. UNAVAILABLE, "
					   "NOT_FOUND)", v->str);
		} else if ((v = F(abort_, "http2Error"))) {
			DEC_ERR_AT(d, v, "http2Error", "HTTP/2 abort fault injection not supported yet");
		} else {
			cfg__warn(d->e, abort_, "abort configured, but error type not set: not injected");
			f->has_abort = false;
		}
		dec__pop(d, m2);
	}
	dec__pop(d, mark);
}

static bool dec__cors_method_ok(const char *m)
{
	static const char *const ok[] = {
		"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "CONNECT", "OPTIONS", "TRACE", "*", NULL,
	};
	size_t i;

	for (i = 0; ok[i]; i++)
		if (strcmp(ok[i], m) == 0)
			return true;
	return false;
}

/* Istio's validateCORSPolicy. */
static void dec__cors(struct dec *d, const struct cfg__node *n, struct cfg_cors *c)
{
	const struct cfg__node *v;
	size_t i, mark, m2;
	static const char *const hdr_keys[] = { "allowHeaders", "exposeHeaders" };

	c->max_age = -1;
	c->allow_credentials = -1;
	if (!n)
		return;
	c->set = true;
	mark = dec__push(d, "corsPolicy");
	if ((v = F(n, "allowOrigins")) && v->type == CFG__SEQ && v->n) {
		m2 = dec__push(d, "allowOrigins");
		c->allow_origins = dec__alloc(d, v->n, sizeof(*c->allow_origins));
		for (i = 0; c->allow_origins && i < v->n; i++) {
			size_t m3 = dec__idx(d, i);
			dec__string_match_x(d, v->v[i], &c->allow_origins[i], true);
			if (c->allow_origins[i].type == CFG_MATCH_NONE || !c->allow_origins[i].value ||
			    !c->allow_origins[i].value[0])
				cfg__error(d->e, v->v[i], "'' is not a valid match type for CORS allow origins");
			dec__pop(d, m3);
		}
		c->n_allow_origins = c->allow_origins ? v->n : 0;
		dec__pop(d, m2);
	}
	dec__strs(d, F(n, "allowMethods"), &c->allow_methods);
	if ((v = F(n, "allowMethods"))) {
		m2 = dec__push(d, "allowMethods");
		for (i = 0; i < v->n; i++)
			if (!v->v[i]->str || !dec__cors_method_ok(v->v[i]->str)) {
				size_t m3 = dec__idx(d, i);
				cfg__error(d->e, v->v[i], "\"%s\" is not a supported HTTP method",
					   v->v[i]->str ? v->v[i]->str : "");
				dec__pop(d, m3);
			}
		dec__pop(d, m2);
	}
	dec__strs(d, F(n, "allowHeaders"), &c->allow_headers);
	dec__strs(d, F(n, "exposeHeaders"), &c->expose_headers);
	for (size_t k = 0; k < 2; k++) {
		if (!(v = F(n, hdr_keys[k])))
			continue;
		m2 = dec__push(d, hdr_keys[k]);
		for (i = 0; i < v->n; i++) {
			const char *h = v->v[i]->str ? v->v[i]->str : "";
			size_t m3 = dec__idx(d, i);
			if (!h[0])
				cfg__error(d->e, v->v[i], "header name cannot be empty");
			else if (strcmp(h, "*") != 0 && !dec__header_token(h))
				cfg__error(d->e, v->v[i], "header name %s is not a valid header name", h);
			dec__pop(d, m3);
		}
		dec__pop(d, m2);
	}
	dec__duration(d, n, "maxAge", &c->max_age);
	if (c->max_age > 0 && c->max_age % 1000000000LL != 0)
		DEC_ERR_AT(d, F(n, "maxAge"), "maxAge", "max_age duration is accurate only to seconds precision");
	c->allow_credentials = dec__bool(F(n, "allowCredentials"));
	dec__pop(d, mark);
}

static void dec__mirror_percentage(struct dec *d, const struct cfg__node *n, const char *key, double *out)
{
	const struct cfg__node *v = F(n, key), *val;
	double p;

	if (!v)
		return;
	val = v->type == CFG__MAP ? F(v, "value") : v;
	p = dec__num(val, 0);
	if (p > 100)
		DEC_ERR_AT(d, v, key, "mirror percentage must have a max value of 100 (it has %g)", p);
	else if (p < 0)
		DEC_ERR_AT(d, v, key, "mirror percentage must have a min value of 0 (it has %g)", p);
	else
		*out = p;
}

/* Istio's validateHTTPRedirect. */
static void dec__redirect(struct dec *d, const struct cfg__node *redirect, const struct cfg__node *match,
			  struct cfg_redirect *rd)
{
	const struct cfg__node *v;
	size_t mark = dec__push(d, "redirect"), i;

	rd->set = true;
	rd->uri = dec__str(d, F(redirect, "uri"));
	rd->authority = dec__str(d, F(redirect, "authority"));
	rd->scheme = dec__str(d, F(redirect, "scheme"));
	rd->prefix_rewrite = dec__str(d, F(redirect, "prefixRewrite"));
	rd->port = dec__int(F(redirect, "port"), -1);
	rd->redirect_code = -1;
	if (rd->uri && !rd->uri[0])
		rd->uri = NULL;
	if (rd->prefix_rewrite && !rd->prefix_rewrite[0])
		rd->prefix_rewrite = NULL;
	if (rd->uri && rd->prefix_rewrite)
		cfg__error(d->e, redirect, "redirect may only specify one of uri or prefixRewrite");
	if (rd->prefix_rewrite && match)
		for (i = 0; i < match->n; i++) {
			const struct cfg__node *uri = F(match->v[i], "uri");
			if (uri && !F(uri, "prefix")) {
				DEC_ERR_AT(d, F(redirect, "prefixRewrite"), "prefixRewrite",
					   "redirect prefixRewrite requires all URI matches to use prefix match type");
				break;
			}
		}
	if ((v = F(redirect, "derivePort"))) {
		if (v->str && strcmp(v->str, "FROM_PROTOCOL_DEFAULT") == 0)
			rd->derive_port = CFG_DERIVE_PORT_FROM_PROTOCOL_DEFAULT;
		else if (v->str && strcmp(v->str, "FROM_REQUEST_PORT") == 0)
			rd->derive_port = CFG_DERIVE_PORT_FROM_REQUEST_PORT;
	}
	if (!rd->uri && !rd->prefix_rewrite && !(rd->authority && rd->authority[0]) && !F(redirect, "port") &&
	    !F(redirect, "derivePort") && !(rd->scheme && rd->scheme[0]))
		cfg__error(d->e, redirect, "redirect must specify URI, authority, scheme, or port");
	if ((v = F(redirect, "redirectCode"))) {
		rd->redirect_code = dec__int(v, -1);
		if (rd->redirect_code == 0)
			rd->redirect_code = -1; /* 0: the default (301), as in Istio */
		else if (rd->redirect_code < 300 || rd->redirect_code > 399)
			DEC_ERR_AT(d, v, "redirectCode", "%lld is not a valid redirect code, must be 3xx",
				   (long long)rd->redirect_code);
	}
	if (rd->scheme && rd->scheme[0] && strcmp(rd->scheme, "http") != 0 && strcmp(rd->scheme, "https") != 0)
		DEC_ERR_AT(d, F(redirect, "scheme"), "scheme", "invalid redirect scheme, must be \"http\" or \"https\"");
	if ((v = F(redirect, "port")) && rd->port > 0 && !dec__port_ok(rd->port))
		DEC_ERR_AT(d, v, "port", "port number %lld must be in the range 1..65535", (long long)rd->port);
	dec__pop(d, mark);
}

static void dec__http_route(struct dec *d, const struct cfg__node *n, struct cfg_http_route *r, bool in_delegate)
{
	const struct cfg__node *v, *match = F(n, "match"), *route = F(n, "route"), *redirect = F(n, "redirect");
	const struct cfg__node *rewrite = F(n, "rewrite"), *dr = F(n, "directResponse"), *delegate = F(n, "delegate");
	const struct cfg__node *fault = F(n, "fault"), *authority = NULL;
	size_t i, mark;

	r->line = n->line;
	r->col = n->col;
	r->timeout = -1;
	r->name = dec__str(d, F(n, "name"));
	if (match && match->n) {
		r->match = dec__alloc(d, match->n, sizeof(*r->match));
		if (!r->match)
			return;
		mark = dec__push(d, "match");
		for (i = 0; i < match->n; i++) {
			size_t m2 = dec__idx(d, i);
			dec__http_match(d, match->v[i], &r->match[i]);
			dec__pop(d, m2);
		}
		dec__pop(d, mark);
		r->n_match = match->n;
	}
	r->n_route = dec__route_destinations(d, route, &r->route, true);
	/* conflicts (Istio's validateHTTPRouteConflict) */
	if (delegate && !in_delegate) {
		if (redirect)
			DEC_ERR_AT(d, redirect, "redirect", "root HTTP route %s must not specify redirect",
				   r->name ? r->name : "");
		if (route)
			DEC_ERR_AT(d, route, "route", "root HTTP route %s must not specify route", r->name ? r->name : "");
	} else {
		if (delegate)
			DEC_ERR_AT(d, delegate, "delegate", "delegate HTTP route cannot contain delegate");
		if (redirect) {
			if (r->n_route)
				DEC_ERR_AT(d, redirect, "redirect", "HTTP route cannot contain both route and redirect");
			if (fault)
				DEC_ERR_AT(d, redirect, "redirect", "HTTP route cannot contain both fault and redirect");
			if (rewrite)
				DEC_ERR_AT(d, rewrite, "rewrite", "HTTP route rule cannot contain both rewrite and redirect");
			if (dr)
				DEC_ERR_AT(d, dr, "directResponse",
					   "HTTP route rule cannot contain both directResponse and redirect");
		} else if (dr) {
			if (r->n_route)
				DEC_ERR_AT(d, dr, "directResponse", "HTTP route cannot contain both route and "
					   "directResponse");
			if (fault)
				DEC_ERR_AT(d, dr, "directResponse", "HTTP route cannot contain both fault and "
					   "directResponse");
			if (rewrite)
				DEC_ERR_AT(d, rewrite, "rewrite", "HTTP route rule cannot contain both rewrite and "
					   "directResponse");
		} else if (!r->n_route) {
			cfg__error(d->e, n, "HTTP route, redirect or directResponse is required");
		}
	}
	if (delegate) {
		r->delegate = dec__alloc(d, 1, sizeof(*r->delegate));
		if (r->delegate) {
			r->delegate->name = dec__str(d, F(delegate, "name"));
			r->delegate->ns = dec__str(d, F(delegate, "namespace"));
			if (!r->delegate->ns)
				r->delegate->ns = arena_strdup(d->a, d->ns);
		}
	}
	if (redirect)
		dec__redirect(d, redirect, match, &r->redirect);
	if (dr) {
		const struct cfg__node *body = F(dr, "body"), *b;
		size_t m2 = dec__push(d, "directResponse");
		r->direct_response.set = true;
		r->direct_response.status = dec__int(F(dr, "status"), -1);
		if (r->direct_response.status < 200 || r->direct_response.status > 600)
			DEC_ERR_AT(d, F(dr, "status") ? F(dr, "status") : dr, "status",
				   "HTTP status %lld is not in range 200-599", (long long)r->direct_response.status);
		if ((b = F(body, "string")) || (b = F(body, "bytes"))) {
			size_t size = b->len;
			r->direct_response.body = dec__str(d, b);
			r->direct_response.body_is_bytes = F(body, "bytes") != NULL;
			if (r->direct_response.body_is_bytes)
				size = size / 4 * 3;
			if (size > 1024 * 1024)
				DEC_ERR_AT(d, b, "body", "large direct_responses may impact control plane performance, "
					   "must be less than 1MB");
			else if (size > 100 * 1024)
				DEC_WARN_AT(d, b, "body", "large direct_responses may impact control plane performance");
		}
		dec__pop(d, m2);
	}
	if (rewrite) {
		const struct cfg__node *rr = F(rewrite, "uriRegexRewrite");
		mark = dec__push(d, "rewrite");
		r->rewrite.set = true;
		r->rewrite.uri = dec__str(d, F(rewrite, "uri"));
		r->rewrite.authority = dec__str(d, F(rewrite, "authority"));
		if (r->rewrite.uri && !r->rewrite.uri[0])
			r->rewrite.uri = NULL;
		if (r->rewrite.authority && !r->rewrite.authority[0])
			r->rewrite.authority = NULL;
		if (rr) {
			size_t m2 = dec__push(d, "uriRegexRewrite");
			const struct cfg__node *rm = F(rr, "match"), *rw = F(rr, "rewrite");
			r->rewrite.uri_regex_match = dec__str(d, rm);
			r->rewrite.uri_regex_rewrite = dec__str(d, rw);
			if (!rm || !rm->len || !rw || !rw->len)
				cfg__error(d->e, rr, "UriRegexRewrite requires both rewrite and match fields to be specified");
			else
				dec__regex_x(d, rm, "match", rw, "rewrite");
			dec__pop(d, m2);
		}
		if (r->rewrite.uri && rr)
			cfg__error(d->e, rewrite, "rewrite may only contain one of uri or uriRegexRewrite");
		if (!r->rewrite.uri && !rr && !r->rewrite.authority)
			cfg__error(d->e, rewrite, "rewrite must specify at least one of uri, uriRegexRewrite, or authority");
		if (r->rewrite.authority)
			authority = rewrite;
		dec__pop(d, mark);
	}
	dec__duration(d, n, "timeout", &r->timeout);
	mark = dec__push(d, "retries");
	dec__retries(d, F(n, "retries"), &r->retries);
	dec__pop(d, mark);
	dec__fault(d, fault, &r->fault);
	dec__cors(d, F(n, "corsPolicy"), &r->cors);
	/* mirrors: mirror + mirrorPercentage (or the deprecated mirrorPercent), and mirrors[] */
	{
		const struct cfg__node *mirror = F(n, "mirror"), *mirrors = F(n, "mirrors");
		if (mirror && mirrors)
			DEC_ERR_AT(d, mirrors, "mirrors", "HTTP route cannot contain both mirror and mirrors");
		r->mirror.percent = 100;
		if ((v = F(n, "mirrorPercent"))) {
			double p = dec__num(v, 0);
			if (p > 100)
				DEC_ERR_AT(d, v, "mirrorPercent", "mirror_percent must have a max value of 100 (it has %g)", p);
			else if (p >= 0)
				r->mirror.percent = p;
			DEC_WARN_AT(d, v, "mirrorPercent", "using deprecated setting \"mirrorPercent\", use "
				    "\"mirrorPercentage\" instead");
		}
		dec__mirror_percentage(d, n, "mirrorPercentage", &r->mirror.percent);
		if (mirror) {
			r->mirror.set = true;
			mark = dec__push(d, "mirror");
			dec__destination(d, mirror, &r->mirror.destination);
			dec__pop(d, mark);
		} else if (mirrors && mirrors->n) {
			r->mirrors = dec__alloc(d, mirrors->n, sizeof(*r->mirrors));
			mark = dec__push(d, "mirrors");
			for (i = 0; r->mirrors && i < mirrors->n; i++) {
				size_t m2 = dec__idx(d, i), m3;
				const struct cfg__node *md = F(mirrors->v[i], "destination");
				r->mirrors[i].set = true;
				r->mirrors[i].percent = 100;
				if (!md) {
					DEC_ERR_AT(d, mirrors->v[i], "destination", "destination is required for mirrors");
				} else {
					m3 = dec__push(d, "destination");
					dec__destination(d, md, &r->mirrors[i].destination);
					dec__pop(d, m3);
				}
				dec__mirror_percentage(d, mirrors->v[i], "percentage", &r->mirrors[i].percent);
				dec__pop(d, m2);
			}
			dec__pop(d, mark);
			r->n_mirrors = r->mirrors ? mirrors->n : 0;
			if (r->n_mirrors)
				r->mirror = r->mirrors[0];
		}
	}
	dec__headers(d, F(n, "headers"), &r->headers, &authority);
}

/* A VirtualService host (Istio's ValidateWildcardDomain, or the SNI-aware
 * variant for gateways; IP addresses are allowed). */
static bool dec__vs_host(struct dec *d, const struct cfg__node *h, bool mesh, bool gateway, bool sni)
{
	const char *s = h->str ? h->str : "";

	if (!h->len) {
		cfg__error(d->e, h, "empty domain name not allowed");
		return false;
	}
	if (gateway && sni && strncmp(s, "outbound_", 9) == 0)
		return true; /* outbound_.PORT_._.HOST, AUTO_PASSTHROUGH's SNI names */
	if (!dec__istio_wildcard_domain(s)) {
		if (cfg__is_ip(s))
			return true;
		cfg__error(d->e, h, "domain name \"%s\" invalid: DNS labels of letters, digits and '-', optionally "
			   "starting with a wildcard (*.example.com)", s);
		return false;
	}
	if (mesh && strcmp(s, "*") == 0) {
		cfg__error(d->e, h, "wildcard host * is not allowed for virtual services bound to the mesh gateway");
		return false;
	}
	return true;
}

/* Does host a match host b (Istio's host.Name.Matches: equal, or one a
 * wildcard covering the other)? */
static bool dec__host_matches(const char *a, const char *b)
{
	return cfg_host_covers(a, b, NULL) || cfg_host_covers(b, a, NULL);
}

/* Is SNI host a a subset of host b (Istio's SubsetOf)? */
static bool dec__host_subset(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);

	if (strcasecmp(a, b) == 0)
		return true;
	if (b[0] != '*')
		return false;
	if (a[0] == '*')
		return la >= lb && strcasecmp(a + la - (lb - 1), b + 1) == 0;
	return la >= lb - 1 && strcasecmp(a + la - (lb - 1), b + 1) == 0;
}

static void dec__tls_routes(struct dec *d, const struct cfg__node *tls, struct cfg_virtual_service *vs, bool gateway)
{
	size_t i, j, k, mark = dec__push(d, "tls");

	vs->tls = dec__alloc(d, tls->n, sizeof(*vs->tls));
	for (i = 0; vs->tls && i < tls->n; i++) {
		const struct cfg__node *t = tls->v[i], *m = F(t, "match");
		struct cfg_tls_route *tr = &vs->tls[i];
		size_t m2 = dec__idx(d, i);

		if (!m || !m->n)
			DEC_ERR_AT(d, m ? m : t, "match", "TLS route must have at least one match condition");
		if (m && m->n) {
			size_t m3 = dec__push(d, "match");
			tr->match = dec__alloc(d, m->n, sizeof(*tr->match));
			for (j = 0; tr->match && j < m->n; j++) {
				const struct cfg__node *mm = m->v[j], *sni = F(mm, "sniHosts"), *v;
				struct cfg_tls_match *tm = &tr->match[j];
				size_t m4 = dec__idx(d, j);

				tm->port = -1;
				dec__strs(d, sni, &tm->sni_hosts);
				dec__strs(d, F(mm, "destinationSubnets"), &tm->destination_subnets);
				dec__labels(d, F(mm, "sourceLabels"), &tm->source_labels);
				dec__label_values(d, F(mm, "sourceLabels"), "sourceLabels");
				tm->source_namespace = dec__str(d, F(mm, "sourceNamespace"));
				dec__strs(d, F(mm, "gateways"), &tm->gateways);
				dec__gateway_names(d, F(mm, "gateways"));
				if (!sni || !sni->n)
					DEC_ERR_AT(d, sni ? sni : mm, "sniHosts", "TLS match must have at least one SNI host");
				for (k = 0; sni && k < sni->n; k++) {
					const char *h = sni->v[k]->str ? sni->v[k]->str : "";
					size_t m5 = dec__push(d, "sniHosts"), m6 = dec__idx(d, k), x;
					bool ok = gateway && strncmp(h, "outbound_", 9) == 0;

					if (!ok && !dec__istio_wildcard_domain(h)) {
						if (cfg__is_ip(h))
							cfg__warn(d->e, sni->v[k], "using an IP address (\"%s\") goes against "
								  "SNI spec and most clients do not support this", h);
						else
							cfg__error(d->e, sni->v[k], "domain name \"%s\" invalid", h);
					} else if (!ok) {
						for (x = 0; x < vs->hosts.n; x++)
							if (dec__host_subset(h, vs->hosts.v[x]))
								break;
						if (x == vs->hosts.n)
							cfg__error(d->e, sni->v[k], "SNI host \"%s\" is not a compatible subset of "
								   "any of the virtual service hosts", h);
					}
					dec__pop(d, m6);
					dec__pop(d, m5);
				}
				for (k = 0; tm->destination_subnets.v && k < tm->destination_subnets.n; k++)
					if (!cfg__is_cidr(tm->destination_subnets.v[k])) {
						size_t m5 = dec__push(d, "destinationSubnets");
						cfg__error(d->e, F(mm, "destinationSubnets"), "%s is not a valid CIDR block",
							   tm->destination_subnets.v[k]);
						dec__pop(d, m5);
					}
				if ((v = F(mm, "port"))) {
					tm->port = dec__int(v, -1);
					if (tm->port != 0 && !dec__port_ok(tm->port))
						DEC_ERR_AT(d, v, "port", "port number %lld must be in the range 1..65535",
							   (long long)tm->port);
				}
				dec__pop(d, m4);
			}
			tr->n_match = tr->match ? m->n : 0;
			dec__pop(d, m3);
		}
		tr->n_route = dec__route_destinations(d, F(t, "route"), &tr->route, false);
		if (!tr->n_route)
			DEC_ERR_AT(d, t, "route", "TLS route is required");
		dec__pop(d, m2);
	}
	vs->n_tls = vs->tls ? tls->n : 0;
	dec__pop(d, mark);
}

/* Fields Istio accepts that no generator compiles yet: one warning per
 * object naming them, so that nothing is ignored in silence. */
static void dec__vs_not_applied(struct dec *d, const struct cfg__node *spec, const struct cfg_virtual_service *vs)
{
	char names[256] = "";
	size_t len = 0, i;
	bool seen[6] = { false };
	static const char *const what[] = {
		"delegate", "directResponse", "rewrite.uriRegexRewrite", "redirect.derivePort",
		"redirect.prefixRewrite", "tls routes on gateways (sidecars apply them)",
	};

	/* delegates (seen[0]) are merged into their root by the model now */
	for (i = 0; i < vs->n_http; i++) {
		const struct cfg_http_route *r = &vs->http[i];
		seen[1] |= r->direct_response.set;
		seen[2] |= r->rewrite.uri_regex_match != NULL;
		seen[3] |= r->redirect.derive_port != CFG_DERIVE_PORT_NONE;
		seen[4] |= r->redirect.prefix_rewrite != NULL;
	}
	/* seen[5]: tls routes are applied by sidecars and routers (gen/gateway.c) now */
	for (i = 0; i < sizeof(seen) / sizeof(seen[0]); i++) {
		int w;
		if (!seen[i])
			continue;
		w = snprintf(names + len, sizeof(names) - len, "%s%s", len ? ", " : "", what[i]);
		if (w > 0 && (size_t)w < sizeof(names) - len)
			len += (size_t)w;
	}
	if (len)
		cfg__warn(d->e, spec, "not implemented yet: %s (valid Istio, accepted and listed; no proxy "
			  "receives %s yet)", names, strchr(names, ',') ? "them" : "it");
}

static void dec__virtual_service(struct dec *d, const struct cfg__node *spec, struct cfg_virtual_service *vs)
{
	const struct cfg__node *hosts = F(spec, "hosts"), *http = F(spec, "http"), *tcp = F(spec, "tcp");
	const struct cfg__node *tls = F(spec, "tls"), *gws = F(spec, "gateways");
	bool mesh = true, gateway = false, sni = false, all_ok = true, delegate_vs;
	size_t i, j, mark;

	dec__strs(d, hosts, &vs->hosts);
	dec__strs(d, gws, &vs->gateways);
	dec__strs(d, F(spec, "exportTo"), &vs->export_to);
	dec__export_to(d, F(spec, "exportTo"), false, false);
	delegate_vs = !hosts || !hosts->n;
	if (delegate_vs) {
		/* a delegate VirtualService: only http routes, reached from a root's delegate */
		if (gws && gws->n)
			DEC_ERR_AT(d, gws, "gateways", "delegate virtual service must have no gateways specified");
		if (tls && tls->n)
			DEC_ERR_AT(d, tls, "tls", "delegate virtual service must have no tls route specified");
		if (tcp && tcp->n)
			DEC_ERR_AT(d, tcp, "tcp", "delegate virtual service must have no tcp route specified");
	}
	if (vs->gateways.n) {
		dec__gateway_names(d, gws);
		gateway = true;
		for (i = 0; i < vs->gateways.n; i++)
			if (strcmp(vs->gateways.v[i], "mesh") == 0)
				gateway = false;
		mesh = !gateway;
	}
	for (i = 0; tls && i < tls->n; i++) {
		const struct cfg__node *m = F(tls->v[i], "match");
		for (j = 0; m && j < m->n; j++)
			if (F(m->v[j], "sniHosts") && F(m->v[j], "sniHosts")->n)
				sni = true;
	}
	mark = dec__push(d, "hosts");
	for (i = 0; hosts && i < hosts->n; i++) {
		size_t m2 = dec__idx(d, i);
		if (!dec__vs_host(d, hosts->v[i], mesh, gateway, sni))
			all_ok = false;
		dec__pop(d, m2);
	}
	for (i = 0; all_ok && hosts && i < hosts->n; i++)
		for (j = i + 1; j < hosts->n; j++)
			if (hosts->v[i]->str && hosts->v[j]->str && dec__host_matches(hosts->v[i]->str, hosts->v[j]->str)) {
				size_t m2 = dec__idx(d, j);
				cfg__error(d->e, hosts->v[j], "duplicate hosts in virtual service: %s & %s", hosts->v[i]->str,
					   hosts->v[j]->str);
				dec__pop(d, m2);
			}
	dec__pop(d, mark);
	if ((!http || !http->n) && (!tcp || !tcp->n) && (!tls || !tls->n))
		cfg__error(d->e, spec, "http, tcp or tls must be provided in virtual service");
	if (http && http->n) {
		vs->http = dec__alloc(d, http->n, sizeof(*vs->http));
		if (!vs->http)
			return;
		mark = dec__push(d, "http");
		for (i = 0; i < http->n; i++) {
			size_t m2 = dec__idx(d, i);
			if (http->v[i]->type != CFG__MAP) {
				cfg__error(d->e, http->v[i], "http route may not be null");
			} else {
				d->jwt_claim_match = NULL;
				dec__http_route(d, http->v[i], &vs->http[i], delegate_vs);
				if (d->jwt_claim_match && !gateway)
					cfg__error(d->e, d->jwt_claim_match, "JWT claim based routing (key: %s) is only "
						   "supported for gateway, found no gateways", d->jwt_claim_match->str);
			}
			dec__pop(d, m2);
		}
		dec__pop(d, mark);
		vs->n_http = http->n;
	}
	if (tls && tls->n)
		dec__tls_routes(d, tls, vs, gateway);
	if (tcp && tcp->n) {
		vs->tcp = dec__alloc(d, tcp->n, sizeof(*vs->tcp));
		if (!vs->tcp)
			return;
		mark = dec__push(d, "tcp");
		for (i = 0; i < tcp->n; i++) {
			const struct cfg__node *t = tcp->v[i], *m = F(t, "match");
			size_t m2 = dec__idx(d, i);
			vs->tcp[i].match_port = -1;
			if (m && m->n)
				vs->tcp[i].match = dec__alloc(d, m->n, sizeof(*vs->tcp[i].match));
			for (j = 0; m && j < m->n; j++) {
				const struct cfg__node *mm = m->v[j], *p = F(mm, "port"), *subn = F(mm, "destinationSubnets");
				size_t m3 = dec__push(d, "match"), m4 = dec__idx(d, j), k;
				struct cfg_tcp_match *tm = vs->tcp[i].match ? &vs->tcp[i].match[j] : NULL;

				for (k = 0; subn && k < subn->n; k++)
					if (!subn->v[k]->str || !cfg__is_cidr(subn->v[k]->str))
						DEC_ERR_AT(d, subn->v[k], "destinationSubnets", "%s is not a valid CIDR block",
							   subn->v[k]->str ? subn->v[k]->str : "");
				dec__label_values(d, F(mm, "sourceLabels"), "sourceLabels");
				dec__gateway_names(d, F(mm, "gateways"));
				if (tm) {
					tm->port = -1;
					dec__strs(d, subn, &tm->destination_subnets);
					dec__labels(d, F(mm, "sourceLabels"), &tm->source_labels);
					tm->source_namespace = dec__str(d, F(mm, "sourceNamespace"));
					dec__strs(d, F(mm, "gateways"), &tm->gateways);
				}
				if (p) {
					int64_t port = dec__int(p, -1);
					if (port != 0 && !dec__port_ok(port))
						DEC_ERR_AT(d, p, "port", "port number %lld must be in the range 1..65535",
							   (long long)port);
					if (j == 0)
						vs->tcp[i].match_port = port;
					if (tm)
						tm->port = port;
				}
				dec__pop(d, m4);
				dec__pop(d, m3);
			}
			vs->tcp[i].n_match = vs->tcp[i].match ? m->n : 0;
			for (j = 0; m && j < m->n; j++)
				if (F(m->v[j], "sourceSubnet"))
					DEC_WARN_AT(d, m->v[j], "sourceSubnet",
						    "not applied to proxies yet: sourceSubnet in a tcp match");
			vs->tcp[i].n_route = dec__route_destinations(d, F(t, "route"), &vs->tcp[i].route, false);
			if (!vs->tcp[i].n_route)
				DEC_ERR_AT(d, t, "route", "TCP route is required");
			dec__pop(d, m2);
		}
		dec__pop(d, mark);
		vs->n_tcp = tcp->n;
	}
	dec__vs_not_applied(d, spec, vs);
}

/* ------------------------------------------------------------- DestinationRule */

static void dec__nonneg(struct dec *d, const struct cfg__node *map, const char *key, int64_t *out)
{
	const struct cfg__node *v = F(map, key);

	if (!v)
		return;
	*out = dec__int(v, -1);
	if (*out < 0)
		DEC_ERR_AT(d, v, key, "%s must be non-negative", key);
}

static bool dec__prime(uint64_t x)
{
	uint64_t f;

	if (x != 0 && x < 4)
		return true;
	if ((x & 1) == 0)
		return false;
	for (f = 3; f * f <= x; f += 2)
		if (x % f == 0)
			return false;
	return true;
}

/* Istio's validateLocalities: at most one '*', at the end; no empty
 * region/zone/subzone; no overlap between entries. */
static const char *dec__localities_check(const struct cfg__node *const *v, size_t n, const char **bad)
{
	size_t i, j;

	for (i = 0; i < n; i++) {
		const char *l = v[i]->str ? v[i]->str : "", *star = strchr(l, '*');
		size_t len = strlen(l), k;

		*bad = l;
		if (star && (strchr(star + 1, '*') || l[len - 1] != '*'))
			return "wildcard '*' number can not exceed 1 and must be in the end";
		if (!len || l[0] == '/' || l[len - 1] == '/' || strstr(l, "//"))
			return "must not contain empty region/zone/subzone info";
		for (k = 0, j = 0; l[k]; k++)
			j += l[k] == '/';
		if (j > 2)
			j = 2;
		for (j = 0; j < i; j++) {
			const char *o = v[j]->str ? v[j]->str : "";
			size_t lo = strlen(o);
			/* overlap: equal, "*" before anything, or one a "region"/"region/zone" prefix of the other */
			if (strcmp(o, "*") == 0 || strcmp(o, l) == 0)
				return "overlap with previous specified ones";
			if (o[lo - 1] == '*' && strncmp(o, l, lo - 1) == 0)
				return "overlap with previous specified ones";
			if (strncmp(o, l, lo) == 0 && l[lo] == '/' && !strchr(o, '*'))
				return "overlap with previous specified ones";
			if (strncmp(o, l, len) == 0 && o[len] == '/')
				return "overlap with previous specified ones";
		}
	}
	return NULL;
}

static void dec__load_balancer(struct dec *d, const struct cfg__node *n, struct cfg_load_balancer *lb,
			       const struct cfg__node *outlier)
{
	const struct cfg__node *v, *ch, *loc;
	size_t mark, i;

	lb->warmup_duration = -1;
	lb->locality.enabled = -1;
	if (!n)
		return;
	mark = dec__push(d, "loadBalancer");
	lb->set = true;
	if ((v = F(n, "simple"))) {
		if (!strcmp(v->str, "LEAST_CONN") || !strcmp(v->str, "LEAST_REQUEST"))
			lb->simple = CFG_LB_LEAST_REQUEST;
		else if (!strcmp(v->str, "ROUND_ROBIN"))
			lb->simple = CFG_LB_ROUND_ROBIN;
		else if (!strcmp(v->str, "RANDOM"))
			lb->simple = CFG_LB_RANDOM;
		else if (!strcmp(v->str, "PASSTHROUGH"))
			lb->simple = CFG_LB_PASSTHROUGH;
	}
	if ((v = F(n, "backendUtilization")))
		DEC_WARN_AT(d, v, "backendUtilization", "not implemented yet: backendUtilization (accepted; proxies "
			    "get the simple policy)");
	if ((ch = F(n, "consistentHash"))) {
		struct cfg_consistent_hash *h = &lb->consistent_hash;
		const struct cfg__node *mrs = F(ch, "minimumRingSize"), *ml = F(ch, "maglev"), *rh = F(ch, "ringHash");
		size_t m2 = dec__push(d, "consistentHash");
		lb->has_consistent_hash = true;
		h->cookie_ttl = -1;
		h->minimum_ring_size = -1;
		if ((v = F(ch, "httpHeaderName"))) {
			h->key = CFG_HASH_HEADER;
			h->header_name = dec__str(d, v);
		} else if ((v = F(ch, "httpCookie"))) {
			const struct cfg__node *attrs = F(v, "attributes");
			size_t m3 = dec__push(d, "httpCookie"), j;
			h->key = CFG_HASH_COOKIE;
			h->cookie_name = dec__str(d, F(v, "name"));
			h->cookie_path = dec__str(d, F(v, "path"));
			if (!h->cookie_name || !h->cookie_name[0])
				DEC_ERR_AT(d, v, "name", "name required for HttpCookie");
			for (i = 0; attrs && i < attrs->n; i++) {
				const struct cfg__node *an = F(attrs->v[i], "name");
				size_t m4 = dec__push(d, "attributes"), m5 = dec__idx(d, i);
				if (!an || !an->len)
					DEC_ERR_AT(d, attrs->v[i], "name", "cookie attribute name cannot be empty");
				for (j = 0; an && an->len && j < i; j++) {
					const struct cfg__node *bn = F(attrs->v[j], "name");
					if (bn && bn->str && strcmp(bn->str, an->str) == 0)
						DEC_ERR_AT(d, an, "name", "duplicate cookie attribute name: %s", an->str);
				}
				dec__pop(d, m5);
				dec__pop(d, m4);
			}
			if (F(v, "ttl")) {
				int64_t ttl;
				const struct cfg__node *t = F(v, "ttl");
				if (mesh_duration_parse(t->str, &ttl) < 0)
					DEC_ERR_AT(d, t, "ttl", "\"%s\" is not a duration", t->str);
				else
					h->cookie_ttl = ttl;
			}
			dec__pop(d, m3);
		} else if ((v = F(ch, "useSourceIp"))) {
			if (v->b)
				h->key = CFG_HASH_SOURCE_IP;
		} else if ((v = F(ch, "httpQueryParameterName"))) {
			h->key = CFG_HASH_QUERY_PARAM;
			h->query_param = dec__str(d, v);
		}
		if (h->key == CFG_HASH_NONE)
			cfg__error(d->e, ch, "consistentHash needs httpHeaderName, httpCookie, useSourceIp or "
				   "httpQueryParameterName");
		h->minimum_ring_size = dec__int(mrs, -1);
		if (mrs && mrs->i != 0) {
			DEC_WARN_AT(d, mrs, "minimumRingSize", "consistent hash MinimumRingSize is deprecated, use "
				    "ConsistentHashLB's RingHash configuration instead");
			if (ml || rh)
				DEC_ERR_AT(d, mrs, "minimumRingSize",
					   "only one of MinimumRingSize or Maglev/Ringhash can be specified");
		}
		if (rh)
			h->minimum_ring_size = dec__int(F(rh, "minimumRingSize"), h->minimum_ring_size);
		/* Istio passes any size on; Envoy's RingHash refuses a ring above
		 * 8M entries (minimum_ring_size lte 8388608), so every proxy would
		 * NACK the cluster: say so here, where the cause is */
		if (h->minimum_ring_size > DEC__ENVOY_MAX_RING_SIZE) {
			const struct cfg__node *at = rh ? F(rh, "minimumRingSize") : NULL;
			size_t m3 = at ? dec__push(d, "ringHash") : 0;

			DEC_WARN_AT(d, at ? at : mrs, "minimumRingSize", "minimumRingSize %lld is above Envoy's cap of "
				    "%d (RingHash.minimum_ring_size): Envoy and meshproxy will reject this cluster",
				    (long long)h->minimum_ring_size, DEC__ENVOY_MAX_RING_SIZE);
			if (at)
				dec__pop(d, m3);
		}
		if (ml) {
			int64_t ts = dec__int(F(ml, "tableSize"), 0);
			size_t m3 = dec__push(d, "maglev");
			h->maglev = true;
			h->maglev_table_size = ts > 0 ? ts : 0;
			if (ts == 0)
				DEC_ERR_AT(d, ml, "tableSize", "tableSize must be set for maglev");
			else if (ts >= 5000011)
				DEC_ERR_AT(d, F(ml, "tableSize"), "tableSize", "tableSize must be less than 5000011 for maglev");
			else if (!dec__prime((uint64_t)ts))
				DEC_ERR_AT(d, F(ml, "tableSize"), "tableSize", "tableSize must be a prime number for maglev");
			dec__pop(d, m3);
		}
		dec__pop(d, m2);
	}
	if ((v = F(n, "zoneAwareLbSetting"))) {
		if (F(n, "localityLbSetting"))
			cfg__error(d->e, v, "only one of localityLbSetting and zoneAwareLbSetting can be set");
		DEC_WARN_AT(d, v, "zoneAwareLbSetting", "not implemented yet: zoneAwareLbSetting");
	}
	if ((loc = F(n, "localityLbSetting"))) {
		struct cfg_locality_lb *l = &lb->locality;
		const struct cfg__node *dist = F(loc, "distribute"), *fo = F(loc, "failover");
		const struct cfg__node *fp = F(loc, "failoverPriority");
		const char *why, *bad;
		size_t m2 = dec__push(d, "localityLbSetting");
		bool stop = false;

		l->set = true;
		l->enabled = dec__bool(F(loc, "enabled"));
		if (dist && fo && dist->n && fo->n) {
			cfg__error(d->e, loc, "can not simultaneously specify 'distribute' and 'failover'");
			stop = true;
		}
		for (i = 0; !stop && fo && fo->n && fp && i < fp->n; i++) {
			const char *pl = fp->v[i]->str ? fp->v[i]->str : "";
			if (!strcmp(pl, "topology.kubernetes.io/region") || !strcmp(pl, "topology.kubernetes.io/zone") ||
			    !strcmp(pl, "topology.istio.io/subzone")) {
				DEC_ERR_AT(d, fp->v[i], "failoverPriority", "can not simultaneously set 'failover' and "
					   "topology label '%s' in 'failover_priority'", pl);
				stop = true;
			}
		}
		if (dist && dist->n) {
			size_t m3 = dec__push(d, "distribute");
			const struct cfg__node **from = dec__alloc(d, dist->n, sizeof(*from));
			l->distribute = dec__alloc(d, dist->n, sizeof(*l->distribute));
			for (i = 0; l->distribute && from && i < dist->n; i++) {
				const struct cfg__node *e = dist->v[i], *to = F(e, "to");
				size_t m4 = dec__idx(d, i), k;
				int64_t sum = 0;
				bool range_bad = false;
				l->distribute[i].from = dec__str(d, F(e, "from"));
				from[i] = F(e, "from") ? F(e, "from") : e;
				if (to && to->n) {
					l->distribute[i].to = dec__alloc(d, to->n, sizeof(struct cfg_kv));
					for (k = 0; l->distribute[i].to && k < to->n; k++) {
						int64_t w = dec__int(to->v[k], 0);
						l->distribute[i].to[k].key = dec__str(d, to->k[k]);
						l->distribute[i].to[k].value = arena_printf(d->a, "%lld", (long long)w);
						if (w <= 0 || w > 100)
							range_bad = true;
						sum += w;
					}
					l->distribute[i].n_to = to->n;
				}
				if (stop) {
					/* Istio stops at the first failing rule */
				} else if (range_bad) {
					DEC_ERR_AT(d, to, "to", "locality weight must be in range [1, 100]");
					stop = true;
				} else if (sum != 100) {
					DEC_ERR_AT(d, to ? to : e, "to", "total locality weight %lld != 100", (long long)sum);
					stop = true;
				} else if (to && (why = dec__localities_check((const struct cfg__node *const *)to->k, to->n,
									       &bad))) {
					DEC_ERR_AT(d, to, "to", "locality %s %s", bad, why);
				}
				dec__pop(d, m4);
			}
			if (!stop && from && (why = dec__localities_check(from, dist->n, &bad)))
				cfg__error(d->e, dist, "locality %s %s", bad, why);
			l->n_distribute = dist->n;
			dec__pop(d, m3);
		}
		if (((fo && fo->n) || (fp && fp->n)) && !outlier)
			cfg__warn(d->e, loc, "outlier detection policy must be provided for failover");
		if (fo && fo->n) {
			size_t m3 = dec__push(d, "failover");
			l->failover = dec__alloc(d, fo->n, sizeof(*l->failover));
			for (i = 0; l->failover && i < fo->n; i++) {
				size_t m4 = dec__idx(d, i);
				const char *f = dec__str(d, F(fo->v[i], "from")), *t = dec__str(d, F(fo->v[i], "to"));
				l->failover[i].from = (char *)f;
				l->failover[i].to = (char *)t;
				f = f ? f : "";
				t = t ? t : "";
				if (strcmp(f, t) == 0)
					cfg__error(d->e, fo->v[i], "locality lb failover settings must specify different regions");
				if (strchr(f, '/') || strchr(t, '/'))
					cfg__error(d->e, fo->v[i], "locality lb failover only specify region");
				if (strchr(f, '*') || strchr(t, '*'))
					cfg__error(d->e, fo->v[i], "locality lb failover region should not contain '*' wildcard");
				dec__pop(d, m4);
			}
			l->n_failover = fo->n;
			dec__pop(d, m3);
		}
		dec__strs(d, fp, &l->failover_priority);
		dec__pop(d, m2);
	}
	dec__duration(d, n, "warmupDurationSecs", &lb->warmup_duration);
	if ((v = F(n, "warmup"))) {
		const struct cfg__node *mp = F(v, "minimumPercent"), *ag = F(v, "aggression");
		size_t m2 = dec__push(d, "warmup");
		if (!F(v, "duration"))
			DEC_ERR_AT(d, v, "duration", "duration is required");
		dec__duration(d, v, "duration", &lb->warmup_duration);
		if (mp && dec__num(mp->type == CFG__MAP ? F(mp, "value") : mp, 0) > 100)
			DEC_ERR_AT(d, mp, "minimumPercent", "minimumPercent value should be less than or equal to 100");
		if (ag && dec__num(ag->type == CFG__MAP ? F(ag, "value") : ag, 0) <= 0)
			DEC_ERR_AT(d, ag, "aggression", "aggression should be greater than 0");
		lb->warmup_full = true;
		lb->warmup_aggression = ag ? dec__num(ag->type == CFG__MAP ? F(ag, "value") : ag, 1) : 1;
		lb->warmup_min_percent = mp ? dec__num(mp->type == CFG__MAP ? F(mp, "value") : mp, 10) : 10;
		dec__pop(d, m2);
	}
	dec__pop(d, mark);
}

/* Istio's validateConnectionPool. */
static void dec__connection_pool(struct dec *d, const struct cfg__node *n, struct cfg_connection_pool *cp)
{
	const struct cfg__node *tcp = F(n, "tcp"), *http = F(n, "http"), *v;
	size_t mark, m2;

	cp->max_connections = cp->connect_timeout = cp->max_connection_duration = -1;
	cp->tcp_idle_timeout = cp->keepalive_probes = cp->keepalive_time = cp->keepalive_interval = -1;
	cp->http1_max_pending_requests = cp->http2_max_requests = cp->max_requests_per_connection = -1;
	cp->max_retries = cp->idle_timeout = -1;
	cp->max_concurrent_streams = -1;
	if (!n)
		return;
	cp->set = true;
	mark = dec__push(d, "connectionPool");
	if (!tcp && !http)
		cfg__error(d->e, n, "connection pool must have at least one field (tcp or http)");
	if (tcp) {
		const struct cfg__node *ka = F(tcp, "tcpKeepalive"), *it = F(tcp, "idleTimeout");
		m2 = dec__push(d, "tcp");
		dec__nonneg(d, tcp, "maxConnections", &cp->max_connections);
		dec__duration(d, tcp, "connectTimeout", &cp->connect_timeout);
		dec__duration(d, tcp, "maxConnectionDuration", &cp->max_connection_duration);
		if (it) {
			int64_t ns = -1;
			/* under 1ms (0s) turns the idle timeout off: Istio skips the check */
			if (!it->str || mesh_duration_parse(it->str, &ns) < 0 || ns >= DEC__MS)
				dec__duration(d, tcp, "idleTimeout", &ns);
			else
				ns = 0;
			cp->tcp_idle_timeout = ns;
		}
		if (ka) {
			size_t m3 = dec__push(d, "tcpKeepalive");
			cp->has_tcp_keepalive = true;
			dec__nonneg(d, ka, "probes", &cp->keepalive_probes);
			dec__duration(d, ka, "time", &cp->keepalive_time);
			dec__duration(d, ka, "interval", &cp->keepalive_interval);
			dec__pop(d, m3);
		}
		dec__pop(d, m2);
	}
	if (http) {
		int64_t mcs = -1;
		const struct cfg__node *ka = F(http, "http2KeepAlive");
		m2 = dec__push(d, "http");
		dec__nonneg(d, http, "http1MaxPendingRequests", &cp->http1_max_pending_requests);
		dec__nonneg(d, http, "http2MaxRequests", &cp->http2_max_requests);
		dec__nonneg(d, http, "maxRequestsPerConnection", &cp->max_requests_per_connection);
		dec__nonneg(d, http, "maxRetries", &cp->max_retries);
		dec__nonneg(d, http, "maxConcurrentStreams", &mcs);
		cp->max_concurrent_streams = (int)mcs;
		dec__duration(d, http, "idleTimeout", &cp->idle_timeout);
		if ((v = F(http, "h2UpgradePolicy"))) {
			cp->h2_upgrade_policy = dec__str(d, v);
			if (v->str && strcmp(v->str, "UPGRADE") == 0 && dec__bool(F(http, "useClientProtocol")) == 1)
				DEC_ERR_AT(d, F(http, "useClientProtocol"), "useClientProtocol",
					   "use client protocol must not be true when H2UpgradePolicy is UPGRADE");
		}
		if (ka) {
			int64_t x = -1;
			size_t m3 = dec__push(d, "http2KeepAlive");
			if (!F(ka, "interval"))
				cfg__error(d->e, ka, "http2 keepalive interval is required");
			if (!F(ka, "timeout"))
				cfg__error(d->e, ka, "http2 keepalive timeout is required");
			dec__duration(d, ka, "interval", &x);
			dec__duration(d, ka, "timeout", &x);
			dec__pop(d, m3);
		}
		dec__pop(d, m2);
	}
	dec__pop(d, mark);
}

/* Istio's validateOutlierDetection. */
static void dec__outlier(struct dec *d, const struct cfg__node *n, struct cfg_outlier_detection *od)
{
	const struct cfg__node *v;
	size_t mark;

	od->consecutive_5xx_errors = od->consecutive_gateway_errors = od->consecutive_local_origin_failures = -1;
	od->interval = od->base_ejection_time = od->max_ejection_percent = od->min_health_percent = -1;
	if (!n)
		return;
	od->set = true;
	mark = dec__push(d, "outlierDetection");
	{
		/* validated, then dropped: istiod has ignored the deprecated field
		 * since 1.7 (istio/istio#24087), it maps to nothing */
		int64_t ignored = -1;
		dec__nonneg(d, n, "consecutiveErrors", &ignored);
	}
	if ((v = F(n, "consecutiveErrors")) && dec__int(v, 0) != 0)
		DEC_WARN_AT(d, v, "consecutiveErrors", "outlier detection consecutive errors is deprecated, use "
			    "consecutiveGatewayErrors or consecutive5xxErrors instead");
	dec__nonneg(d, n, "consecutive5xxErrors", &od->consecutive_5xx_errors);
	dec__nonneg(d, n, "consecutiveGatewayErrors", &od->consecutive_gateway_errors);
	dec__nonneg(d, n, "consecutiveLocalOriginFailures", &od->consecutive_local_origin_failures);
	od->split_external_local_origin_errors = dec__bool(F(n, "splitExternalLocalOriginErrors")) == 1;
	dec__duration(d, n, "interval", &od->interval);
	dec__duration(d, n, "baseEjectionTime", &od->base_ejection_time);
	if ((v = F(n, "maxEjectionPercent"))) {
		od->max_ejection_percent = dec__int(v, -1);
		if (od->max_ejection_percent < 0 || od->max_ejection_percent > 100)
			DEC_ERR_AT(d, v, "maxEjectionPercent", "percentage %s is not in range 0..100", v->str);
	}
	if ((v = F(n, "minHealthPercent"))) {
		od->min_health_percent = dec__int(v, -1);
		if (od->min_health_percent < 0 || od->min_health_percent > 100)
			DEC_ERR_AT(d, v, "minHealthPercent", "percentage %s is not in range 0..100", v->str);
	}
	if (od->consecutive_local_origin_failures > 0 && !od->split_external_local_origin_errors)
		DEC_ERR_AT(d, F(n, "consecutiveLocalOriginFailures"), "consecutiveLocalOriginFailures",
			   "outlier detection consecutive local origin failures is specified, but split external local "
			   "origin errors is set to false");
	dec__pop(d, mark);
}

/* Istio's ValidateTLS (client side). */
static void dec__client_tls(struct dec *d, const struct cfg__node *n, struct cfg_client_tls *t)
{
	const struct cfg__node *v;
	size_t mark;
	bool files, sans;

	t->insecure_skip_verify = -1;
	if (!n)
		return;
	t->set = true;
	mark = dec__push(d, "tls");
	if ((v = F(n, "mode"))) {
		if (!strcmp(v->str, "DISABLE"))
			t->mode = CFG_TLS_DISABLE;
		else if (!strcmp(v->str, "SIMPLE"))
			t->mode = CFG_TLS_SIMPLE;
		else if (!strcmp(v->str, "MUTUAL"))
			t->mode = CFG_TLS_MUTUAL;
		else if (!strcmp(v->str, "ISTIO_MUTUAL"))
			t->mode = CFG_TLS_ISTIO_MUTUAL;
	}
	t->client_certificate = dec__str(d, F(n, "clientCertificate"));
	t->private_key = dec__str(d, F(n, "privateKey"));
	t->ca_certificates = dec__str(d, F(n, "caCertificates"));
	t->credential_name = dec__str(d, F(n, "credentialName"));
	t->sni = dec__str(d, F(n, "sni"));
	dec__strs(d, F(n, "subjectAltNames"), &t->subject_alt_names);
	t->insecure_skip_verify = dec__bool(F(n, "insecureSkipVerify"));
	/* Istio reads "" as unset */
#define DEC__UNSET_EMPTY(x) do { if ((x) && !(x)[0]) (x) = NULL; } while (0)
	DEC__UNSET_EMPTY(t->client_certificate);
	DEC__UNSET_EMPTY(t->private_key);
	DEC__UNSET_EMPTY(t->ca_certificates);
	DEC__UNSET_EMPTY(t->credential_name);
#undef DEC__UNSET_EMPTY
	sans = t->subject_alt_names.n > 0;
	if (t->credential_name && strncmp(t->credential_name, "configmap://", 12) == 0) {
		const char *rest = t->credential_name + 12, *slash = strchr(rest, '/');
		if (slash && (size_t)(slash - rest) == strlen(d->ns) && strncmp(rest, d->ns, strlen(d->ns)) == 0 &&
		    slash[1] && !strchr(slash + 1, '/'))
			; /* configmap://NS/NAME in the object's own namespace */
		else if (!slash && rest[0])
			; /* configmap://NAME: the own namespace */
		else
			DEC_ERR_AT(d, F(n, "credentialName"), "credentialName", "invalid configmap:// credentialName: "
				   "namespace must match the configuration namespace \"%s\"", d->ns);
	}
	if (t->insecure_skip_verify == 1) {
		if (t->mode == CFG_TLS_SIMPLE && (t->ca_certificates || t->credential_name || sans))
			cfg__error(d->e, n, "cannot specify CaCertificates or CredentialName or SubjectAltNames when "
				   "InsecureSkipVerify is set true");
		if (t->mode == CFG_TLS_MUTUAL && (t->ca_certificates || sans))
			cfg__error(d->e, n, "cannot specify CaCertificates or SubjectAltNames when InsecureSkipVerify is "
				   "set true");
	}
	files = t->client_certificate || t->ca_certificates || t->private_key ||
		(F(n, "caCrl") && F(n, "caCrl")->len);
	if ((t->mode == CFG_TLS_SIMPLE || t->mode == CFG_TLS_MUTUAL) && t->credential_name) {
		if (files)
			cfg__error(d->e, n, "cannot specify client certificates or CA certificate or CA CRL If "
				   "credentialName is set");
	} else if (t->mode == CFG_TLS_MUTUAL) {
		if (!t->client_certificate)
			DEC_ERR_AT(d, n, "clientCertificate", "client certificate required for mutual tls");
		if (!t->private_key)
			DEC_ERR_AT(d, n, "privateKey", "private key required for mutual tls");
	}
	dec__pop(d, mark);
}

static void dec__traffic_policy_body(struct dec *d, const struct cfg__node *n, struct cfg_traffic_policy *p)
{
	dec__load_balancer(d, F(n, "loadBalancer"), &p->load_balancer, F(n, "outlierDetection"));
	dec__connection_pool(d, F(n, "connectionPool"), &p->connection_pool);
	dec__outlier(d, F(n, "outlierDetection"), &p->outlier_detection);
	dec__client_tls(d, F(n, "tls"), &p->tls);
}

/* Istio's validateTrafficPolicy and validatePortTrafficPolicies. */
static void dec__dr_policy(struct dec *d, const struct cfg__node *n, struct cfg_dr_policy *out)
{
	const struct cfg__node *pls, *v, *tun;
	size_t i, mark;

	if (!n) {
		dec__traffic_policy_body(d, NULL, &out->policy); /* defaults */
		return;
	}
	mark = dec__push(d, "trafficPolicy");
	out->set = true;
	if (!F(n, "loadBalancer") && !F(n, "connectionPool") && !F(n, "outlierDetection") && !F(n, "tls") &&
	    !F(n, "portLevelSettings") && !F(n, "tunnel") && !F(n, "proxyProtocol") && !F(n, "retryBudget")) {
		cfg__error(d->e, n, "traffic policy must have at least one field");
		dec__pop(d, mark);
		return;
	}
	if (F(n, "tunnel") && F(n, "proxyProtocol")) {
		cfg__error(d->e, n, "tunnel and proxyProtocol must not be set together");
		dec__pop(d, mark);
		return;
	}
	dec__traffic_policy_body(d, n, &out->policy);
	if ((tun = F(n, "tunnel"))) {
		const struct cfg__node *p = F(tun, "protocol"), *th = F(tun, "targetHost"), *tp = F(tun, "targetPort");
		size_t m2 = dec__push(d, "tunnel");
		if (p && p->len && strcmp(p->str, "CONNECT") && strcmp(p->str, "POST"))
			DEC_ERR_AT(d, p, "protocol", "tunnel protocol must be \"CONNECT\" or \"POST\"");
		if (!th || !th->str || (!dec__istio_fqdn(th->str) && !cfg__is_ip(th->str)))
			DEC_ERR_AT(d, th ? th : tun, "targetHost", "tunnel target host must be valid FQDN or IP address");
		if (!dec__port_ok(dec__int(tp, 0)))
			DEC_ERR_AT(d, tp ? tp : tun, "targetPort", "tunnel target port is invalid: port number %lld must "
				   "be in the range 1..65535", (long long)dec__int(tp, 0));
		dec__pop(d, m2);
		DEC_WARN_AT(d, tun, "tunnel", "not implemented yet: tunnel");
	}
	if ((v = F(n, "proxyProtocol"))) {
		int64_t ver = dec__int(F(v, "version"), 0);
		if (ver != 0 && ver != 1)
			DEC_ERR_AT(d, v, "proxyProtocol", "proxy protocol version is invalid: %lld", (long long)ver);
		DEC_WARN_AT(d, v, "proxyProtocol", "not implemented yet: proxyProtocol");
	}
	if ((v = F(n, "retryBudget"))) {
		/* ranges (percent 0..100) are the schema's */
		struct cfg_retry_budget *rb = &out->policy.retry_budget;

		rb->set = true;
		rb->percent = dec__num(F(v, "percent"), -1);
		rb->min_retry_concurrency = dec__int(F(v, "minRetryConcurrency"), 0);
		rb->budget_interval = -1;
		dec__duration(d, v, "budgetInterval", &rb->budget_interval);
	}
	pls = F(n, "portLevelSettings");
	if (pls && pls->n) {
		size_t m2 = dec__push(d, "portLevelSettings");
		out->port_level = dec__alloc(d, pls->n, sizeof(*out->port_level));
		for (i = 0; out->port_level && i < pls->n; i++) {
			const struct cfg__node *e = pls->v[i], *port = F(F(e, "port"), "number");
			size_t m3 = dec__idx(d, i);
			struct cfg_port_traffic_policy *pp = &out->port_level[i];

			pp->port = dec__int(port, -1);
			if (!F(e, "port"))
				DEC_ERR_AT(d, e, "port", "portTrafficPolicy must have valid port");
			else if (port && !dec__port_ok(pp->port))
				DEC_ERR_AT(d, port, "port", "port number %lld must be in the range 1..65535",
					   (long long)pp->port);
			if (!F(e, "loadBalancer") && !F(e, "connectionPool") && !F(e, "outlierDetection") && !F(e, "tls"))
				cfg__error(d->e, e, "port traffic policy must have at least one field");
			else
				dec__traffic_policy_body(d, e, &pp->policy);
			dec__pop(d, m3);
		}
		out->n_port_level = pls->n;
		dec__pop(d, m2);
	}
	dec__pop(d, mark);
}

/* Istio's validateWorkloadSelector (security kinds, matchLabels) and
 * ValidateAlphaWorkloadSelector (networking kinds, labels): no empty key,
 * no '*'; no labels at all is a warning. */
static void dec__selector_labels(struct dec *d, const struct cfg__node *sel, const char *key, struct cfg_labels *out,
				 bool *has)
{
	const struct cfg__node *ml = F(sel, key);
	size_t i, mark;

	if (!sel)
		return;
	*has = true;
	dec__labels(d, ml, out);
	if (!ml || !ml->n) {
		cfg__warn(d->e, sel, "workload selector specified without labels");
		return;
	}
	mark = dec__push(d, key);
	for (i = 0; i < ml->n; i++) {
		const char *k = ml->k[i]->str, *v = ml->v[i]->str ? ml->v[i]->str : "";
		if (!k[0])
			cfg__error(d->e, ml->k[i], "empty key is not supported in selector: \"=%s\"", v);
		else if (strchr(k, '*') || strchr(v, '*'))
			DEC_ERR_AT(d, ml->v[i], k, "wildcard is not supported in selector: \"%s=%s\"", k, v);
	}
	dec__pop(d, mark);
}

static void dec__destination_rule(struct dec *d, const struct cfg__node *spec, struct cfg_destination_rule *dr)
{
	const struct cfg__node *host = F(spec, "host"), *subsets = F(spec, "subsets"), *sel;
	size_t i, j, mark;

	dr->host = dec__str(d, host);
	if (!host || !host->len)
		DEC_ERR_AT(d, host ? host : spec, "host", "host is required (empty domain name not allowed)");
	else if (!dec__istio_wildcard_domain(host->str))
		DEC_ERR_AT(d, host, "host", "domain name \"%s\" invalid (a DNS name, optionally starting with a "
			   "wildcard; not an IP address)", host->str);
	dec__strs(d, F(spec, "exportTo"), &dr->export_to);
	dec__export_to(d, F(spec, "exportTo"), false, F(spec, "workloadSelector") != NULL);
	if ((sel = F(spec, "workloadSelector"))) {
		mark = dec__push(d, "workloadSelector");
		dec__selector_labels(d, sel, "matchLabels", &dr->workload_selector, &dr->has_workload_selector);
		dec__pop(d, mark);
	}
	dec__dr_policy(d, F(spec, "trafficPolicy"), &dr->traffic_policy);
	if (subsets && subsets->n) {
		dr->subsets = dec__alloc(d, subsets->n, sizeof(*dr->subsets));
		if (!dr->subsets)
			return;
		mark = dec__push(d, "subsets");
		for (i = 0; i < subsets->n; i++) {
			const struct cfg__node *s = subsets->v[i], *name = F(s, "name");
			size_t m2 = dec__idx(d, i);

			dr->subsets[i].name = dec__str(d, name);
			if (!name || !name->len)
				DEC_ERR_AT(d, name ? name : s, "name", "subset name cannot be empty");
			else if (!dec__istio_label(name->str))
				DEC_ERR_AT(d, name, "name", "subset name is invalid: \"%s\" (a DNS label: letters, digits "
					   "and '-', at most 63)", name->str);
			for (j = 0; name && j < i; j++)
				if (dr->subsets[j].name && strcmp(dr->subsets[j].name, name->str) == 0)
					DEC_ERR_AT(d, name, "name", "duplicate subset names: %s", name->str);
			dec__labels(d, F(s, "labels"), &dr->subsets[i].labels);
			dec__label_values(d, F(s, "labels"), "labels");
			dec__dr_policy(d, F(s, "trafficPolicy"), &dr->subsets[i].traffic_policy);
			dec__pop(d, m2);
		}
		dec__pop(d, mark);
		dr->n_subsets = subsets->n;
	}
}

/* ------------------------------------------------------------- ServiceEntry, WorkloadEntry */

static bool dec__port_name_ok(const char *s)
{
	size_t n = strlen(s), i;

	if (n == 0 || n > 63)
		return false;
	for (i = 0; i < n; i++) {
		char c = s[i];
		if (!isalnum((unsigned char)c) && !(c == '-' && i > 0 && i < n - 1))
			return false;
	}
	return true;
}

/* The workload of a WorkloadEntry or a ServiceEntry endpoint.  ip_only: the
 * address must be an IP (STATIC resolution) rather than an IP or FQDN. */
static void dec__workload(struct dec *d, const struct cfg__node *n, struct cfg_workload *w, bool ip_only, bool fqdn_ok,
			  const struct cfg_service_entry *se)
{
	const struct cfg__node *addr = F(n, "address"), *ports = F(n, "ports"), *v;
	size_t i, k;

	w->weight = -1;
	w->address = dec__str(d, addr);
	w->network = dec__str(d, F(n, "network"));
	w->locality = dec__str(d, F(n, "locality"));
	w->service_account = dec__str(d, F(n, "serviceAccount"));
	dec__labels(d, F(n, "labels"), &w->labels);
	dec__label_values(d, F(n, "labels"), "labels");
	if ((v = F(n, "weight")))
		w->weight = dec__int(v, -1);
	if (!addr || !addr->len) {
		if (!w->network)
			DEC_ERR_AT(d, addr ? addr : n, "address", "address is required");
		else
			DEC_WARN_AT(d, addr ? addr : n, "address", "address is unset with network \"%s\"", w->network);
	} else if (strncmp(addr->str, "unix://", 7) == 0) {
		const char *path = addr->str + 7;
		size_t pl = strlen(path);
		/* Istio's ValidateUnixAddress: @abstract, or an absolute path to a file */
		if (!pl)
			DEC_ERR_AT(d, addr, "address", "unix address must not be empty");
		else if (path[0] != '@' && (path[0] != '/' || path[pl - 1] == '/'))
			DEC_ERR_AT(d, addr, "address", "%s is not an absolute path to a file", path);
		if (ports && ports->n)
			DEC_ERR_AT(d, ports, "ports", "unix endpoint %s must not include ports", addr->str);
		if (se && se->n_ports != 1)
			DEC_ERR_AT(d, addr, "address", "exactly 1 service port required for unix endpoints");
	} else if (!cfg__is_ip(addr->str)) {
		if (ip_only)
			DEC_ERR_AT(d, addr, "address", "\"%s\" is not an IP address (resolution STATIC needs IP "
				   "addresses)", addr->str);
		else if (!fqdn_ok || !dec__istio_fqdn(addr->str))
			DEC_ERR_AT(d, addr, "address", "endpoint address \"%s\" is not a valid FQDN or an IP address",
				   addr->str);
	}
	if (ports && ports->n) {
		size_t mark = dec__push(d, "ports");
		w->ports = dec__alloc(d, ports->n, sizeof(*w->ports));
		for (i = 0; w->ports && i < ports->n; i++) {
			const char *name = ports->k[i]->str;
			int64_t num = dec__int(ports->v[i], -1);
			w->ports[i].key = dec__str(d, ports->k[i]);
			w->ports[i].value = arena_printf(d->a, "%lld", (long long)num);
			if (!dec__port_name_ok(name))
				DEC_ERR_AT(d, ports->k[i], name, "\"%s\" is not a valid port name", name);
			if (!dec__port_ok(num))
				DEC_ERR_AT(d, ports->v[i], name, "port %lld is not in range 1..65535", (long long)num);
			if (se) {
				for (k = 0; k < se->n_ports; k++)
					if (se->ports[k].name && strcmp(se->ports[k].name, name) == 0)
						break;
				if (k == se->n_ports)
					DEC_ERR_AT(d, ports->k[i], name,
						   "endpoint port \"%s\" is not one of the service entry's port names", name);
			}
		}
		w->n_ports = ports->n;
		dec__pop(d, mark);
	}
}

static bool dec__protocol_ok(const char *p)
{
	static const char *const known[] = {
		"HTTP", "HTTPS", "HTTP2", "HTTP_PROXY", "GRPC", "GRPC-WEB", "TCP", "TLS", "UDP", "MONGO", "REDIS",
		"MYSQL", "THRIFT", NULL,
	};
	size_t i;

	for (i = 0; known[i]; i++)
		if (strcasecmp(known[i], p) == 0)
			return true;
	return false;
}

static void dec__service_entry(struct dec *d, const struct cfg__node *spec, struct cfg_service_entry *se)
{
	const struct cfg__node *hosts = F(spec, "hosts"), *ports = F(spec, "ports"), *eps = F(spec, "endpoints");
	const struct cfg__node *sel = F(spec, "workloadSelector"), *v, *addrs = F(spec, "addresses");
	size_t i, j, mark;

	dec__strs(d, hosts, &se->hosts);
	dec__strs(d, addrs, &se->addresses);
	dec__strs(d, F(spec, "exportTo"), &se->export_to);
	dec__strs(d, F(spec, "subjectAltNames"), &se->subject_alt_names);
	se->location = CFG_MESH_EXTERNAL;
	if ((v = F(spec, "location")) && strcmp(v->str, "MESH_INTERNAL") == 0)
		se->location = CFG_MESH_INTERNAL;
	se->resolution = CFG_RESOLUTION_NONE;
	if ((v = F(spec, "resolution"))) {
		if (!strcmp(v->str, "STATIC"))
			se->resolution = CFG_RESOLUTION_STATIC;
		else if (!strcmp(v->str, "DNS"))
			se->resolution = CFG_RESOLUTION_DNS;
		else if (!strcmp(v->str, "DNS_ROUND_ROBIN"))
			se->resolution = CFG_RESOLUTION_DNS_ROUND_ROBIN;
		else if (!strcmp(v->str, "DYNAMIC_DNS"))
			se->resolution = CFG_RESOLUTION_DYNAMIC_DNS;
	}
	dec__export_to(d, F(spec, "exportTo"), true, false);
	mark = dec__push(d, "hosts");
	if (!hosts || !hosts->n)
		cfg__error(d->e, hosts ? hosts : spec, "at least one host is required");
	for (i = 0; hosts && i < hosts->n; i++) {
		const struct cfg__node *h = hosts->v[i];
		size_t m2 = dec__idx(d, i);
		if (strcmp(h->str, "*") == 0)
			cfg__error(d->e, h, "invalid host * (a ServiceEntry cannot cover every host)");
		else if (!dec__istio_wildcard_domain(h->str))
			cfg__error(d->e, h, "domain name \"%s\" invalid", h->str);
		else if ((se->resolution == CFG_RESOLUTION_DNS || se->resolution == CFG_RESOLUTION_DNS_ROUND_ROBIN) &&
			 !(eps && eps->n) && h->str[0] == '*')
			cfg__error(d->e, h, "hosts must be FQDN or contain only prefix wildcards if no endpoints are "
				   "provided for resolution mode DNS: \"%s\"", h->str);
		else if (se->resolution == CFG_RESOLUTION_DYNAMIC_DNS && h->str[0] != '*')
			cfg__error(d->e, h, "host must be wildcarded for resolution mode DYNAMIC_DNS");
		if (se->resolution != CFG_RESOLUTION_DYNAMIC_DNS && strchr(h->str, '*') && h->len > 1 &&
		    strncmp(h->str, "*.", 2) != 0)
			cfg__warn(d->e, h, "partial wildcard \"%s\" not allowed", h->str);
		dec__pop(d, m2);
	}
	dec__pop(d, mark);
	mark = dec__push(d, "addresses");
	for (i = 0; addrs && i < addrs->n; i++) {
		const struct cfg__node *a = addrs->v[i];
		size_t m2 = dec__idx(d, i);
		if (!cfg__is_cidr(a->str))
			cfg__error(d->e, a, "\"%s\" is not an IP address or CIDR range", a->str);
		else if (strchr(a->str, '/') && se->resolution != CFG_RESOLUTION_NONE &&
			 se->resolution != CFG_RESOLUTION_STATIC)
			cfg__error(d->e, a, "CIDR addresses are allowed only for NONE/STATIC resolution types");
		else if (se->resolution == CFG_RESOLUTION_DYNAMIC_DNS)
			cfg__error(d->e, a, "addresses cannot be set for resolution type DYNAMIC_DNS");
		dec__pop(d, m2);
	}
	dec__pop(d, mark);
	if (ports && ports->n) {
		mark = dec__push(d, "ports");
		se->ports = dec__alloc(d, ports->n, sizeof(*se->ports));
		for (i = 0; se->ports && i < ports->n; i++) {
			const struct cfg__node *p = ports->v[i], *num = F(p, "number"), *name = F(p, "name");
			const struct cfg__node *proto = F(p, "protocol"), *tp = F(p, "targetPort");
			struct cfg_port *sp = &se->ports[i];
			size_t m2 = dec__idx(d, i), k;

			sp->number = dec__int(num, -1);
			sp->name = dec__str(d, name);
			sp->target_port = dec__int(tp, -1);
			sp->protocol = dec__str(d, proto);
			for (k = 0; sp->protocol && sp->protocol[k]; k++)
				sp->protocol[k] = (char)toupper((unsigned char)sp->protocol[k]);
			if (!dec__port_ok(sp->number))
				DEC_ERR_AT(d, num ? num : p, "number", "port %lld is not in range 1..65535",
					   (long long)sp->number);
			if (tp && !dec__port_ok(sp->target_port))
				DEC_ERR_AT(d, tp, "targetPort", "port %lld is not in range 1..65535",
					   (long long)sp->target_port);
			if (proto && !dec__protocol_ok(proto->str))
				DEC_ERR_AT(d, proto, "protocol", "unknown protocol \"%s\" (HTTP, HTTPS, HTTP2, GRPC, TCP, "
					   "TLS, ...)", proto->str);
			if (name && !dec__port_name_ok(name->str))
				DEC_ERR_AT(d, name, "name", "\"%s\" is not a valid port name", name->str);
			for (j = 0; j < i; j++) {
				if (se->ports[j].number == sp->number)
					DEC_ERR_AT(d, num, "number", "port %lld is defined twice", (long long)sp->number);
				if (sp->name && se->ports[j].name && strcmp(se->ports[j].name, sp->name) == 0)
					DEC_ERR_AT(d, name, "name", "port name \"%s\" is defined twice", sp->name);
			}
			dec__pop(d, m2);
		}
		se->n_ports = ports->n;
		for (i = 0; se->ports && i < se->n_ports; i++) {
			const char *pr = se->ports[i].protocol ? se->ports[i].protocol : "";
			bool http = !strcmp(pr, "HTTP") || !strcmp(pr, "HTTP2") || !strcmp(pr, "GRPC") ||
				    !strcmp(pr, "GRPC-WEB") || !strcmp(pr, "HTTP_PROXY");
			bool tls = !strcmp(pr, "HTTPS") || !strcmp(pr, "TLS");
			if (se->resolution == CFG_RESOLUTION_DYNAMIC_DNS && strcmp(pr, "HTTP") && strcmp(pr, "TLS") &&
			    strcmp(pr, "GRPC") && strcmp(pr, "HTTP2")) {
				size_t m2 = dec__idx(d, i);
				cfg__error(d->e, ports->v[i], "only HTTP, TLS, GRPC, and HTTP2 protocols are supported for "
					   "resolution type DYNAMIC_DNS");
				dec__pop(d, m2);
			}
			if (se->resolution != CFG_RESOLUTION_NONE && hosts && hosts->n > 1 && !http && !tls) {
				size_t m2 = dec__idx(d, i);
				cfg__error(d->e, ports->v[i], "multiple hosts provided with non-HTTP, non-TLS ports");
				dec__pop(d, m2);
				break;
			}
		}
		dec__pop(d, mark);
	}
	if (se->resolution == CFG_RESOLUTION_DYNAMIC_DNS) {
		if (eps)
			DEC_ERR_AT(d, eps, "endpoints", "endpoints cannot be set for resolution type DYNAMIC_DNS");
		DEC_WARN_AT(d, v, "resolution", "not implemented yet: resolution DYNAMIC_DNS (accepted and listed; "
			    "proxies get no cluster for these hosts yet)");
	}
	if (sel && se->resolution == CFG_RESOLUTION_NONE)
		DEC_WARN_AT(d, sel, "workloadSelector", "workloadSelector should not be set when resolution mode is NONE");
	if (sel) {
		size_t m2 = dec__push(d, "workloadSelector");
		dec__selector_labels(d, sel, "labels", &se->workload_selector, &se->has_workload_selector);
		dec__pop(d, m2);
		if (eps)
			DEC_ERR_AT(d, eps, "endpoints", "workloadSelector and endpoints cannot both be set");
	}
	if (eps && eps->n) {
		if (se->resolution == CFG_RESOLUTION_NONE)
			DEC_ERR_AT(d, eps, "endpoints", "no endpoints should be provided for resolution type none");
		if (se->resolution == CFG_RESOLUTION_DNS_ROUND_ROBIN && eps->n > 1)
			DEC_ERR_AT(d, eps, "endpoints", "there must only be 0 or 1 endpoint for resolution mode "
				   "DNS_ROUND_ROBIN, %zu are set", eps->n);
		mark = dec__push(d, "endpoints");
		se->endpoints = dec__alloc(d, eps->n, sizeof(*se->endpoints));
		for (i = 0; se->endpoints && i < eps->n; i++) {
			size_t m2 = dec__idx(d, i);
			dec__workload(d, eps->v[i], &se->endpoints[i], se->resolution == CFG_RESOLUTION_STATIC, true, se);
			dec__pop(d, m2);
		}
		se->n_endpoints = eps->n;
		dec__pop(d, mark);
	}
	/* every host gets a cluster per port, each with every endpoint: the
	 * CRD's own caps (256 hosts, 256 ports, 4096 endpoints) let a 200 KB
	 * object ask every sidecar for 268 million endpoints */
	{
		uint64_t n = (uint64_t)se->hosts.n * (se->n_ports ? se->n_ports : 1) *
			     (se->n_endpoints ? se->n_endpoints : 1);

		if (n > CFG_MAX_SE_HOST_PORT_ENDPOINTS)
			cfg__error(d->e, spec, "hosts x ports x endpoints is %llu, past the limit of %llu per "
				   "ServiceEntry (CFG_MAX_SE_HOST_PORT_ENDPOINTS): every sidecar would hold that many "
				   "endpoints", (unsigned long long)n, (unsigned long long)CFG_MAX_SE_HOST_PORT_ENDPOINTS);
	}
}

/* ------------------------------------------------------------- PeerAuthentication */

static enum cfg_mtls_mode dec__mtls_mode(const struct cfg__node *mtls)
{
	const struct cfg__node *m = F(mtls, "mode");

	if (!m)
		return CFG_MTLS_UNSET;
	if (!strcmp(m->str, "DISABLE"))
		return CFG_MTLS_DISABLE;
	if (!strcmp(m->str, "PERMISSIVE"))
		return CFG_MTLS_PERMISSIVE;
	if (!strcmp(m->str, "STRICT"))
		return CFG_MTLS_STRICT;
	return CFG_MTLS_UNSET;
}

static void dec__peer_authentication(struct dec *d, const struct cfg__node *spec, struct cfg_peer_authentication *pa)
{
	const struct cfg__node *sel = F(spec, "selector"), *pl = F(spec, "portLevelMtls");
	size_t i, mark;

	if (sel) {
		mark = dec__push(d, "selector");
		dec__selector_labels(d, sel, "matchLabels", &pa->selector, &pa->has_selector);
		dec__pop(d, mark);
		if (!pa->selector.n)
			pa->has_selector = false;
	}
	pa->mode = dec__mtls_mode(F(spec, "mtls"));
	if (!pl)
		return;
	mark = dec__push(d, "portLevelMtls");
	if (!pa->has_selector)
		cfg__error(d->e, pl, "portLevelMtls requires a selector with matchLabels (a mesh- or namespace-wide "
			   "policy cannot have port level mTLS)");
	if (!pl->n)
		cfg__error(d->e, pl, "portLevelMtls, if set, must have at least one port");
	pa->port_level = dec__alloc(d, pl->n, sizeof(*pa->port_level));
	for (i = 0; pa->port_level && i < pl->n; i++) {
		const struct cfg__node *k = pl->k[i];
		char *end;
		long long port = strtoll(k->str, &end, 10);

		if (*end || !k->len || !dec__port_ok(port))
			DEC_ERR_AT(d, k, k->str, "port \"%s\" is not a number in range 1..65535", k->str);
		pa->port_level[i].port = port;
		pa->port_level[i].mode = dec__mtls_mode(pl->v[i]);
	}
	pa->n_port_level = pl->n;
	dec__pop(d, mark);
}

/* ------------------------------------------------------------- AuthorizationPolicy */

static void dec__authz_strs(struct dec *d, const struct cfg__node *n, const char *key, struct cfg_strs *out,
			    int check /* 0 none, 1 ip/cidr, 2 port, 3 service account, 4 trust domain */)
{
	const struct cfg__node *v = F(n, key);
	size_t i, mark;

	if (!v)
		return;
	dec__strs(d, v, out);
	mark = dec__push(d, key);
	if (check == 3 && v->n > 16)
		cfg__error(d->e, v, "may not have more than 16 values");
	for (i = 0; i < v->n; i++) {
		const char *s = v->v[i]->str;
		size_t m2 = dec__idx(d, i);
		char *end;
		long long port;

		if (!s || !s[0]) {
			cfg__error(d->e, v->v[i], "empty value not allowed, found in %s", key);
		} else if (check == 1 && !cfg__is_cidr(s)) {
			cfg__error(d->e, v->v[i], "\"%s\" is not an IP address or CIDR range", s);
		} else if (check == 2) {
			port = strtoll(s, &end, 10);
			if (*end || port < 0 || port > 65535)
				cfg__error(d->e, v->v[i], "port \"%s\" is not a number in range 0..65535", s);
		} else if (check == 3) {
			const char *slash = strchr(s, '/');
			if (strchr(s, '*'))
				cfg__error(d->e, v->v[i], "wildcard not allowed, found in %s", key);
			else if ((slash && strchr(slash + 1, '/')) || (slash && (slash == s || !slash[1])))
				cfg__error(d->e, v->v[i], "expected format 'serviceAccount' or 'namespace/serviceAccount', "
					   "found \"%s\" in %s", s, key);
			else if (strlen(s) > 320)
				cfg__error(d->e, v->v[i], "value cannot exceed 320 characters, found in %s", key);
		} else if (check == 4) {
			const char *star = strchr(s, '*');
			if (star && strchr(star + 1, '*'))
				cfg__error(d->e, v->v[i], "at most one wildcard is allowed, found in %s: \"%s\"", key, s);
			else if (star && strcmp(s, "*") && s[0] != '*' && s[strlen(s) - 1] != '*')
				cfg__error(d->e, v->v[i], "wildcard is only allowed at the start or end, found in %s: \"%s\"",
					   key, s);
			else if (strchr(s, '/'))
				cfg__error(d->e, v->v[i], "trust domain must not contain '/', found in %s: \"%s\"", key, s);
		}
		dec__pop(d, m2);
	}
	dec__pop(d, mark);
}

/* Istio's security.ValidateAttribute for `when` keys.  *check is the value
 * check of dec__authz_strs. */
static const char *dec__authz_key_check(const char *key, int *check)
{
	static const char *const exact[] = {
		"source.namespace", "source.principal", "connection.sni", "request.auth.principal",
		"request.auth.audiences", "request.auth.presenter", NULL,
	};
	size_t i, n = strlen(key);

	*check = 0;
	for (i = 0; exact[i]; i++)
		if (strcmp(key, exact[i]) == 0)
			return NULL;
	if (!strcmp(key, "source.ip") || !strcmp(key, "remote.ip") || !strcmp(key, "destination.ip")) {
		*check = 1;
		return NULL;
	}
	if (!strcmp(key, "destination.port")) {
		*check = 2;
		return NULL;
	}
	if (!strcmp(key, "source.serviceAccount")) {
		*check = 3;
		return NULL;
	}
	if (!strcmp(key, "source.trustDomain")) {
		*check = 4;
		return NULL;
	}
	if (!strncmp(key, "request.auth.claims", 19)) {
		/* nested claims: request.auth.claims[a][b] (Istio 1.8+) */
		const char *q = key + 19;
		if (*q != '[')
			return "has an invalid map key: expected name[KEY]";
		while (*q == '[') {
			const char *e = strchr(q, ']');
			if (!e || e == q + 1 || memchr(q + 1, '[', (size_t)(e - q - 1)))
				return "has an invalid map key: expected name[KEY] or name[KEY1][KEY2]";
			q = e + 1;
		}
		return *q ? "has an invalid map key: expected name[KEY] or name[KEY1][KEY2]" : NULL;
	}
	if (!strncmp(key, "request.headers", 15) ||
	    !strncmp(key, "experimental.envoy.filters.", 27)) {
		const char *open = strchr(key, '[');
		if (!open || key[n - 1] != ']' || open + 1 == key + n - 1 || strchr(open + 1, '[') ||
		    strchr(open, ']') != key + n - 1)
			return "has an invalid map key: expected name[KEY]";
		return NULL;
	}
	if (!strcmp(key, "destination.namespace"))
		return "is replaced by the metadata.namespace";
	if (!strncmp(key, "destination.labels", 18))
		return "is replaced by the workload selector";
	if (!strcmp(key, "destination.name") || !strcmp(key, "destination.user"))
		return "is deprecated: only supported in v1alpha1";
	return "is unknown";
}

/* Add a `when` condition to rule ar (the source fields the RBAC generator
 * does not read are carried as the equivalent conditions, see below). */
static void dec__authz_add_when(struct dec *d, struct cfg_authz_rule *ar, const char *key, const struct cfg_strs *values,
				const struct cfg_strs *not_values)
{
	struct cfg_authz_condition *w = dec__alloc(d, ar->n_when + 1, sizeof(*w));

	if (!w)
		return;
	if (ar->n_when)
		memcpy(w, ar->when, ar->n_when * sizeof(*w));
	w[ar->n_when].key = arena_strdup(d->a, key);
	if (values)
		w[ar->n_when].values = *values;
	if (not_values)
		w[ar->n_when].not_values = *not_values;
	ar->when = w;
	ar->n_when++;
}

/* A selector no workload can carry (the key is not a valid label key):
 * the policy then applies to no sidecar.  Used for targetRef policies
 * (they attach to gateways and waypoints, not sidecars, as in Istio) and
 * (dry-run policies are selected as usual: they become shadow rules). */
static void dec__authz_match_no_workload(struct dec *d, struct cfg_authorization_policy *ap, const char *why)
{
	struct cfg_kv *kv = dec__alloc(d, 1, sizeof(*kv));

	if (!kv)
		return;
	kv->key = arena_strdup(d->a, "meshd:applies-to-no-sidecar");
	kv->value = arena_strdup(d->a, why);
	ap->selector.v = kv;
	ap->selector.n = 1;
	ap->has_selector = true;
}

static bool dec__parse_bool(const char *s, bool *out)
{
	static const char *const t[] = { "1", "t", "T", "TRUE", "true", "True", NULL };
	static const char *const f[] = { "0", "f", "F", "FALSE", "false", "False", NULL };
	size_t i;

	for (i = 0; t[i]; i++)
		if (!strcmp(s, t[i]))
			return *out = true, true;
	for (i = 0; f[i]; i++)
		if (!strcmp(s, f[i]))
			return *out = false, true;
	return false;
}

/* targetRef / targetRefs (Istio's validatePolicyTargetReference) */
static void dec__target_refs(struct dec *d, const struct cfg__node *spec, bool *has)
{
	const struct cfg__node *one = F(spec, "targetRef"), *many = F(spec, "targetRefs");
	size_t i, n = (one ? 1 : 0) + (many ? many->n : 0), mark;

	if (one && many && many->n)
		cfg__error(d->e, many, "only one of targetRefs or targetRef can be set");
	for (i = 0; i < n; i++) {
		const struct cfg__node *r = one && i == 0 ? one : many->v[i - (one ? 1 : 0)];
		const char *g = F(r, "group") && F(r, "group")->str ? F(r, "group")->str : "";
		const char *k = F(r, "kind") && F(r, "kind")->str ? F(r, "kind")->str : "";
		bool ok = (!g[0] && !strcmp(k, "Service")) ||
			  (!strcmp(g, "networking.istio.io") && !strcmp(k, "ServiceEntry")) ||
			  (!strcmp(g, "gateway.networking.k8s.io") && (!strcmp(k, "Gateway") || !strcmp(k, "GatewayClass")));

		if (one && i == 0) {
			mark = dec__push(d, "targetRef");
		} else {
			mark = dec__push(d, "targetRefs");
			dec__idx(d, i - (one ? 1 : 0));
		}
		if (!F(r, "name") || !F(r, "name")->len)
			cfg__error(d->e, r, "targetRef name must be set");
		if (F(r, "namespace") && F(r, "namespace")->len)
			cfg__error(d->e, F(r, "namespace"), "targetRef namespace must not be set; cross namespace "
				   "referencing is not supported");
		if (!ok)
			cfg__error(d->e, r, "targetRef must be to one of Service, networking.istio.io/ServiceEntry, "
				   "gateway.networking.k8s.io/Gateway or GatewayClass, but was %s/%s", g, k);
		dec__pop(d, mark);
	}
	*has = n > 0;
}

static void dec__authorization_policy(struct dec *d, const struct cfg__node *spec, struct cfg_authorization_policy *ap)
{
	const struct cfg__node *action = F(spec, "action"), *provider = F(spec, "provider"), *rules, *sel;
	const struct cfg_labels *ann = &d->o->annotations;
	size_t i, j, k, mark;
	bool custom;

	ap->action = CFG_AUTHZ_ALLOW;
	ap->dry_run = -1;
	if (action) {
		if (!strcmp(action->str, "DENY"))
			ap->action = CFG_AUTHZ_DENY;
		else if (!strcmp(action->str, "AUDIT"))
			ap->action = CFG_AUTHZ_AUDIT;
		else if (!strcmp(action->str, "CUSTOM"))
			ap->action = CFG_AUTHZ_CUSTOM;
	}
	custom = ap->action == CFG_AUTHZ_CUSTOM;
	ap->provider = dec__str(d, F(provider, "name"));
	rules = cfg__node_get(spec, "rules");
	if (rules && rules->type == CFG__NULL)
		rules = NULL;
	ap->rules_present = rules != NULL;
	if (custom) {
		if (!rules)
			cfg__error(d->e, spec, "CUSTOM action without `rules` is meaningless as it will never be triggered, "
				   "add an empty rule `{}` if you want it be triggered for every request");
		else if (!ap->provider || !ap->provider[0])
			DEC_ERR_AT(d, provider ? provider : spec, "provider", "`provider.name` must not be empty");
	} else if (provider) {
		DEC_ERR_AT(d, provider, "provider", "`provider` must not be with non CUSTOM action, found %s",
			   action ? action->str : "ALLOW");
	}
	if (ap->action == CFG_AUTHZ_DENY && !rules)
		cfg__error(d->e, spec, "DENY action without `rules` is meaningless as it will never be triggered, add "
			   "an empty rule `{}` if you want it be triggered for every request");
	if ((sel = F(spec, "selector"))) {
		mark = dec__push(d, "selector");
		dec__selector_labels(d, sel, "matchLabels", &ap->selector, &ap->has_selector);
		dec__pop(d, mark);
	}
	if (F(spec, "targetRef") || F(spec, "targetRefs")) {
		dec__target_refs(d, spec, &ap->has_target_refs);
		if (sel)
			cfg__error(d->e, sel, "only one of targetRefs or workloadSelector can be set");
	}
	/* istio.io/dry-run (Istio's checkDryRunAnnotation) */
	for (i = 0; i < ann->n; i++) {
		bool b;
		if (strcmp(ann->v[i].key, "istio.io/dry-run") != 0)
			continue;
		if (ap->action != CFG_AUTHZ_ALLOW && ap->action != CFG_AUTHZ_DENY)
			cfg__error(d->e, spec, "the annotation istio.io/dry-run currently only supports action ALLOW/DENY, "
				   "found action %s", action ? action->str : "ALLOW");
		else if (!dec__parse_bool(ann->v[i].value, &b))
			cfg__error(d->e, spec, "annotation istio.io/dry-run with invalid value (%s): not a boolean",
				   ann->v[i].value);
		else
			ap->dry_run = b;
	}
	if (rules && rules->type == CFG__SEQ && rules->n) {
		ap->rules = dec__alloc(d, rules->n, sizeof(*ap->rules));
		if (!ap->rules)
			return;
		ap->n_rules = rules->n;
	}
	mark = dec__push(d, "rules");
	for (i = 0; ap->rules && i < ap->n_rules; i++) {
		const struct cfg__node *r = rules->v[i], *from = cfg__node_get(r, "from"), *to = cfg__node_get(r, "to");
		const struct cfg__node *when = F(r, "when");
		struct cfg_authz_rule *ar = &ap->rules[i];
		size_t m2 = dec__idx(d, i);
		bool jwt_fields = false, sa_fields = false;

		if (r->type != CFG__MAP) {
			cfg__error(d->e, r, "`rule` must not be nil, found at rule %zu", i);
			dec__pop(d, m2);
			continue;
		}
		if (from && from->type == CFG__SEQ) {
			size_t m3 = dec__push(d, "from");
			if (!from->n)
				cfg__error(d->e, from, "`from` must not be empty, found at rule %zu", i);
			ar->from = dec__alloc(d, from->n, sizeof(*ar->from));
			for (j = 0; ar->from && j < from->n; j++) {
				const struct cfg__node *src = F(from->v[j], "source");
				struct cfg_authz_source *s = &ar->from[j];
				size_t m4 = dec__idx(d, j), m5;

				if (!src || src->type != CFG__MAP || !src->n) {
					DEC_ERR_AT(d, src ? src : from->v[j], "source", "`from.source` must not be %s, found at "
						   "rule %zu", src ? "empty" : "nil", i);
					dec__pop(d, m4);
					continue;
				}
				m5 = dec__push(d, "source");
				dec__authz_strs(d, src, "principals", &s->principals, 0);
				dec__authz_strs(d, src, "notPrincipals", &s->not_principals, 0);
				dec__authz_strs(d, src, "requestPrincipals", &s->request_principals, 0);
				dec__authz_strs(d, src, "notRequestPrincipals", &s->not_request_principals, 0);
				dec__authz_strs(d, src, "namespaces", &s->namespaces, 0);
				dec__authz_strs(d, src, "notNamespaces", &s->not_namespaces, 0);
				dec__authz_strs(d, src, "ipBlocks", &s->ip_blocks, 1);
				dec__authz_strs(d, src, "notIpBlocks", &s->not_ip_blocks, 1);
				dec__authz_strs(d, src, "remoteIpBlocks", &s->remote_ip_blocks, 1);
				dec__authz_strs(d, src, "notRemoteIpBlocks", &s->not_remote_ip_blocks, 1);
				dec__authz_strs(d, src, "serviceAccounts", &s->service_accounts, 3);
				dec__authz_strs(d, src, "notServiceAccounts", &s->not_service_accounts, 3);
				dec__authz_strs(d, src, "trustDomains", &s->trust_domains, 4);
				dec__authz_strs(d, src, "notTrustDomains", &s->not_trust_domains, 4);
				if ((s->principals.n + s->not_principals.n + s->namespaces.n + s->not_namespaces.n) &&
				    (s->service_accounts.n + s->not_service_accounts.n))
					cfg__error(d->e, src, "cannot set serviceAccounts with namespaces or principals, found "
						   "at rule %zu", i);
				if (custom) {
					static const char *const no[] = {
						"namespaces", "notNamespaces", "serviceAccounts", "notServiceAccounts",
						"trustDomains", "notTrustDomains", "principals", "notPrincipals",
						"requestPrincipals", "notRequestPrincipals", NULL,
					};
					for (k = 0; no[k]; k++)
						if (F(src, no[k]) && F(src, no[k])->n)
							DEC_ERR_AT(d, F(src, no[k]), no[k], "From.%c%s is currently not "
								   "supported with CUSTOM action", toupper((unsigned char)no[k][0]),
								   no[k] + 1);
				}
				jwt_fields |= s->request_principals.n + s->not_request_principals.n > 0;
				sa_fields |= s->service_accounts.n + s->not_service_accounts.n + s->trust_domains.n +
					     s->not_trust_domains.n > 0;
				dec__pop(d, m5);
				dec__pop(d, m4);
			}
			ar->n_from = ar->from ? from->n : 0;
			dec__pop(d, m3);
		}
		if (to && to->type == CFG__SEQ) {
			size_t m3 = dec__push(d, "to");
			if (!to->n)
				cfg__error(d->e, to, "`to` must not be empty, found at rule %zu", i);
			ar->to = dec__alloc(d, to->n, sizeof(*ar->to));
			for (j = 0; ar->to && j < to->n; j++) {
				const struct cfg__node *op = F(to->v[j], "operation");
				struct cfg_authz_operation *o = &ar->to[j];
				size_t m4 = dec__idx(d, j), m5;

				if (!op || op->type != CFG__MAP || !op->n) {
					DEC_ERR_AT(d, op ? op : to->v[j], "operation", "`to.operation` must not be %s, found at "
						   "rule %zu", op ? "empty" : "nil", i);
					dec__pop(d, m4);
					continue;
				}
				m5 = dec__push(d, "operation");
				dec__authz_strs(d, op, "hosts", &o->hosts, 0);
				dec__authz_strs(d, op, "notHosts", &o->not_hosts, 0);
				dec__authz_strs(d, op, "ports", &o->ports, 2);
				dec__authz_strs(d, op, "notPorts", &o->not_ports, 2);
				dec__authz_strs(d, op, "methods", &o->methods, 0);
				dec__authz_strs(d, op, "notMethods", &o->not_methods, 0);
				dec__authz_strs(d, op, "paths", &o->paths, 0);
				dec__authz_strs(d, op, "notPaths", &o->not_paths, 0);
				dec__pop(d, m5);
				dec__pop(d, m4);
			}
			ar->n_to = ar->to ? to->n : 0;
			dec__pop(d, m3);
		}
		if (when && when->n) {
			size_t m3 = dec__push(d, "when");
			ar->when = dec__alloc(d, when->n, sizeof(*ar->when));
			for (j = 0; ar->when && j < when->n; j++) {
				const struct cfg__node *c = when->v[j], *key = F(c, "key");
				struct cfg_authz_condition *cond = &ar->when[j];
				size_t m4 = dec__idx(d, j);
				const char *why;
				int check = 0;

				cond->key = dec__str(d, key);
				if (!key || !key->len) {
					DEC_ERR_AT(d, key ? key : c, "key", "`key` must not be empty");
				} else if ((why = dec__authz_key_check(key->str, &check))) {
					DEC_ERR_AT(d, key, "key", "attribute %s %s", key->str, why);
				} else {
					if (!strncmp(key->str, "request.auth.", 13))
						jwt_fields = true;
					if (custom && (!strcmp(key->str, "source.namespace") ||
						       !strcmp(key->str, "source.serviceAccount") ||
						       !strcmp(key->str, "source.trustDomain") ||
						       !strcmp(key->str, "source.principal") ||
						       !strncmp(key->str, "request.auth.", 13)))
						DEC_ERR_AT(d, key, "key", "%s is currently not supported with CUSTOM action",
							   key->str);
				}
				if ((!F(c, "values") || !F(c, "values")->n) && (!F(c, "notValues") || !F(c, "notValues")->n))
					cfg__error(d->e, c, "at least one of `values` or `notValues` must be set for key %s",
						   key && key->str ? key->str : "");
				dec__authz_strs(d, c, "values", &cond->values, check);
				dec__authz_strs(d, c, "notValues", &cond->not_values, check);
				dec__pop(d, m4);
			}
			ar->n_when = ar->when ? when->n : 0;
			dec__pop(d, m3);
		}
		/*
		 * The RBAC generator reads principals, request principals,
		 * namespaces and IP blocks of a source, and the `when` keys.
		 * Source fields it does not read are carried as the `when` keys
		 * Istio defines for them, so that no rule matches more than it
		 * says: with one `from`, serviceAccounts and trustDomains are
		 * exactly source.serviceAccount and source.trustDomain.  With
		 * several `from`s they would change meaning as conditions, so the
		 * rule gets a condition the generator cannot match (an ALLOW rule
		 * is dropped, a DENY rule widened: fail closed).
		 */
		if (sa_fields && ar->n_from == 1) {
			struct cfg_authz_source *s = &ar->from[0];
			if (s->service_accounts.n || s->not_service_accounts.n)
				dec__authz_add_when(d, ar, "source.serviceAccount", &s->service_accounts,
						    &s->not_service_accounts);
			if (s->trust_domains.n || s->not_trust_domains.n)
				dec__authz_add_when(d, ar, "source.trustDomain", &s->trust_domains, &s->not_trust_domains);
		} else if (sa_fields) {
			struct cfg_strs any = { NULL, 0 };
			static char star[] = "*";
			static char *starv[] = { star };
			any.v = starv;
			any.n = 1;
			dec__authz_add_when(d, ar, "experimental.meshd.unsupported", &any, NULL);
			cfg__warn(d->e, r, "not implemented yet: serviceAccounts/trustDomains across several from: this "
				  "rule never matches (%s)", ap->action == CFG_AUTHZ_DENY ? "a DENY rule is widened to every "
				  "request its other fields match" : "the rule is dropped");
		}
		(void)jwt_fields; /* request principals and request.auth.* are compiled (gen/rbac.c) */
		dec__pop(d, m2);
	}
	dec__pop(d, mark);
	if (custom)
		DEC_WARN_AT(d, action, "action", "not implemented yet: action CUSTOM (provider %s): meshd has no external "
			  "authorization, this policy is NOT enforced", ap->provider ? ap->provider : "?");
	if (ap->has_target_refs) {
		dec__authz_match_no_workload(d, ap, "targetRef");
		cfg__warn(d->e, spec, "targetRef policies attach to gateways and waypoints, not sidecars: applied to no "
			  "workload meshd serves (not implemented yet for gateways)");
	}
	/* istio.io/dry-run: selected as usual, compiled into shadow rules
	 * (controlplane/gen/rbac.h rbac_opts.shadow), never enforced */
	if (ap->dry_run == 1)
		cfg__warn(d->e, spec, "istio.io/dry-run: the policy is not enforced (as in Istio); sidecars evaluate it "
			  "as shadow rules (counted as rbac.istio_dry_run_*shadow_allowed/shadow_denied and logged), "
			  "proxyless gRPC leaves it out");
	/* Istio's warning on DENY rules made only of HTTP attributes */
	for (i = 0; ap->action == CFG_AUTHZ_DENY && i < ap->n_rules; i++) {
		const struct cfg_authz_rule *ar = &ap->rules[i];
		bool tcp_from = false, tcp_to = false;
		for (j = 0; j < ar->n_from; j++) {
			const struct cfg_authz_source *s = &ar->from[j];
			tcp_from |= s->principals.n + s->not_principals.n + s->ip_blocks.n + s->not_ip_blocks.n +
					    s->namespaces.n + s->not_namespaces.n + s->remote_ip_blocks.n +
					    s->not_remote_ip_blocks.n + s->service_accounts.n + s->not_service_accounts.n > 0;
		}
		for (j = 0; j < ar->n_to; j++)
			tcp_to |= ar->to[j].ports.n + ar->to[j].not_ports.n > 0;
		if ((ar->n_from && !ar->n_to && !tcp_from) || (ar->n_to && !tcp_to)) {
			size_t m1 = dec__push(d, "rules");
			dec__idx(d, i);
			cfg__warn(d->e, rules->v[i], "configured AuthorizationPolicy will deny all traffic to TCP ports "
				  "under its scope due to the use of only HTTP attributes in a DENY rule; it is "
				  "recommended to explicitly specify the port");
			dec__pop(d, m1);
			break;
		}
	}
}

/* ------------------------------------------------------------- Gateway, Sidecar, RequestAuthentication, Telemetry */

/* Istio's ValidateNamespaceSlashWildcardHostname: "ns/host" (Sidecar
 * egress, Gateway) or, in a Gateway, a bare host. */
static void dec__ns_host(struct dec *d, const struct cfg__node *h, bool gateway)
{
	const char *s = h->str ? h->str : "", *slash = strchr(s, '/'), *host = slash ? slash + 1 : s;
	char ns[128];

	if (!slash && !gateway) {
		cfg__error(d->e, h, "host must be of form namespace/dnsName");
		return;
	}
	if (slash) {
		size_t nl = (size_t)(slash - s);
		const char *n = ns;
		if (!nl || !slash[1])
			cfg__error(d->e, h, "config namespace and dnsName in host entry cannot be empty");
		if (nl >= sizeof(ns))
			nl = sizeof(ns) - 1;
		memcpy(ns, s, nl);
		ns[nl] = '\0';
		if (!gateway && n[0] == '~')
			n++;
		/* a gateway's namespace part is never empty (Istio checks it as
		 * a label: an empty one is invalid too) */
		if ((gateway || n[0]) && strcmp(n, "*") && strcmp(n, ".") && !dec__istio_label(n))
			cfg__error(d->e, h, "invalid namespace value \"%s\" in %s", ns, gateway ? "gateway" : "sidecar");
	}
	if (!host[0])
		return;
	if (strcmp(host, "*") != 0 && !strchr(host, '.'))
		cfg__error(d->e, h, "short names (non FQDN) are not allowed: \"%s\"", host);
	if (!dec__istio_wildcard_domain(host) && !(gateway && cfg__is_ip(host)))
		cfg__error(d->e, h, "domain name \"%s\" invalid", host);
	if (strchr(host, '*') && strlen(host) != 1 && strncmp(host, "*.", 2) != 0)
		cfg__error(d->e, h, "partial wildcard \"%s\" not allowed", host);
}

static bool dec__protocol_ok(const char *p);

static bool dec__proto_is(const char *p, const char *const *set)
{
	size_t i;

	for (i = 0; set[i]; i++)
		if (strcasecmp(p, set[i]) == 0)
			return true;
	return false;
}

static const char *const dec__tls_protos[] = { "HTTPS", "TLS", NULL };
static const char *const dec__http_protos[] = { "HTTP", "HTTP2", "GRPC", "GRPC-WEB", "HTTP_PROXY", NULL };

/* An upper-cased copy of a protocol name (NULL when not set). */
static char *dec__upper(struct dec *d, const struct cfg__node *n)
{
	char *s = dec__str(d, n);
	size_t k;

	for (k = 0; s && s[k]; k++)
		s[k] = (char)toupper((unsigned char)s[k]);
	return s;
}

/* A string field that Istio treats as unset when empty: NULL then. */
static char *dec__str_set(struct dec *d, const struct cfg__node *n)
{
	return n && n->str && n->len ? dec__str(d, n) : NULL;
}

static enum cfg_gw_tls_version dec__gw_tls_version(const struct cfg__node *n)
{
	static const char *const names[] = { "TLS_AUTO", "TLSV1_0", "TLSV1_1", "TLSV1_2", "TLSV1_3" };
	size_t i;

	for (i = 0; n && n->str && i < sizeof(names) / sizeof(names[0]); i++)
		if (strcmp(n->str, names[i]) == 0)
			return (enum cfg_gw_tls_version)i;
	return CFG_GW_TLS_AUTO;
}

/* ServerTLSSettings.mode; a tls block without one is Istio's zero value
 * PASSTHROUGH on HTTPS/TLS ports and CFG_GW_TLS_NONE elsewhere (a plain
 * HTTP server whose tls block only says httpsRedirect). */
static enum cfg_gw_tls_mode dec__gw_tls_mode(const struct cfg__node *n, const char *proto)
{
	static const struct {
		const char *name;
		enum cfg_gw_tls_mode mode;
	} modes[] = {
		{ "PASSTHROUGH", CFG_GW_TLS_PASSTHROUGH },   { "SIMPLE", CFG_GW_TLS_SIMPLE },
		{ "MUTUAL", CFG_GW_TLS_MUTUAL },             { "AUTO_PASSTHROUGH", CFG_GW_TLS_AUTO_PASSTHROUGH },
		{ "ISTIO_MUTUAL", CFG_GW_TLS_ISTIO_MUTUAL }, { "OPTIONAL_MUTUAL", CFG_GW_TLS_OPTIONAL_MUTUAL },
	};
	size_t i;

	for (i = 0; n && n->str && i < sizeof(modes) / sizeof(modes[0]); i++)
		if (strcmp(n->str, modes[i].name) == 0)
			return modes[i].mode;
	if (proto && (strcasecmp(proto, "HTTPS") == 0 || strcasecmp(proto, "TLS") == 0))
		return CFG_GW_TLS_PASSTHROUGH;
	return CFG_GW_TLS_NONE;
}

static void dec__gw_tls_certs(struct dec *d, const struct cfg__node *seq, struct cfg_gw_tls *t)
{
	size_t i;

	if (!seq || seq->type != CFG__SEQ || !seq->n)
		return;
	t->tls_certificates = dec__alloc(d, seq->n, sizeof(*t->tls_certificates));
	if (!t->tls_certificates)
		return;
	t->n_tls_certificates = seq->n;
	for (i = 0; i < seq->n; i++) {
		t->tls_certificates[i].server_certificate = dec__str_set(d, F(seq->v[i], "serverCertificate"));
		t->tls_certificates[i].private_key = dec__str_set(d, F(seq->v[i], "privateKey"));
		t->tls_certificates[i].ca_certificates = dec__str_set(d, F(seq->v[i], "caCertificates"));
	}
}

/* The fields the gateway generator acts on (struct cfg_gateway), every
 * field of networking.istio.io Gateway; validation is dec__gateway's. */
static void dec__gateway_spec(struct dec *d, const struct cfg__node *spec, struct cfg_gateway *gw)
{
	const struct cfg__node *servers = F(spec, "servers");
	size_t i;

	dec__labels(d, F(spec, "selector"), &gw->selector);
	if (!servers || servers->type != CFG__SEQ || !servers->n)
		return;
	gw->servers = dec__alloc(d, servers->n, sizeof(*gw->servers));
	if (!gw->servers)
		return;
	gw->n_servers = servers->n;
	for (i = 0; i < servers->n; i++) {
		const struct cfg__node *s = servers->v[i], *port = F(s, "port"), *tls = F(s, "tls");
		struct cfg_gw_server *sv = &gw->servers[i];
		int64_t num = dec__int(F(port, "number"), 0), tp = dec__int(F(port, "targetPort"), 0);

		sv->line = s->line;
		sv->col = s->col;
		sv->port = num > 0 && num <= UINT32_MAX ? (uint32_t)num : 0;
		sv->target_port = tp > 0 && tp <= UINT32_MAX ? (uint32_t)tp : 0;
		sv->port_name = dec__str(d, F(port, "name"));
		sv->protocol = dec__upper(d, F(port, "protocol"));
		sv->bind = dec__str(d, F(s, "bind"));
		sv->default_endpoint = dec__str(d, F(s, "defaultEndpoint"));
		sv->name = dec__str(d, F(s, "name"));
		dec__strs(d, F(s, "hosts"), &sv->hosts);
		if (!tls || tls->type != CFG__MAP)
			continue;
		sv->has_tls = true;
		sv->tls.https_redirect = dec__bool(F(tls, "httpsRedirect")) == 1;
		sv->tls.mode = dec__gw_tls_mode(F(tls, "mode"), sv->protocol);
		sv->tls.credential_name = dec__str_set(d, F(tls, "credentialName"));
		sv->tls.server_certificate = dec__str_set(d, F(tls, "serverCertificate"));
		sv->tls.private_key = dec__str_set(d, F(tls, "privateKey"));
		sv->tls.ca_certificates = dec__str_set(d, F(tls, "caCertificates"));
		dec__strs(d, F(tls, "subjectAltNames"), &sv->tls.subject_alt_names);
		dec__strs(d, F(tls, "verifyCertificateSpki"), &sv->tls.verify_certificate_spki);
		dec__strs(d, F(tls, "verifyCertificateHash"), &sv->tls.verify_certificate_hash);
		sv->tls.min_version = dec__gw_tls_version(F(tls, "minProtocolVersion"));
		sv->tls.max_version = dec__gw_tls_version(F(tls, "maxProtocolVersion"));
		dec__strs(d, F(tls, "cipherSuites"), &sv->tls.cipher_suites);
		dec__strs(d, F(tls, "credentialNames"), &sv->tls.credential_names);
		sv->tls.ca_crl = dec__str_set(d, F(tls, "caCrl"));
		dec__gw_tls_certs(d, F(tls, "tlsCertificates"), &sv->tls);
	}
}

/* Istio's security.ValidCipherSuites (BoringSSL's names, `bssl ciphers
 * -openssl-name ALL` without PSK): what Gateway cipherSuites may name. */
static bool dec__cipher_ok(const char *cs)
{
	static const char *const known[] = {
		"ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-GCM-SHA384",
		"ECDHE-RSA-AES256-GCM-SHA384",   "ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-RSA-CHACHA20-POLY1305",
		"ECDHE-ECDSA-AES128-SHA",        "ECDHE-RSA-AES128-SHA",          "ECDHE-ECDSA-AES256-SHA",
		"ECDHE-RSA-AES256-SHA",          "AES128-GCM-SHA256",             "AES256-GCM-SHA384",
		"AES128-SHA",                    "AES256-SHA",                    "DES-CBC3-SHA",
	};
	size_t i;

	/* IsValidCipherSuite: "", "ALL" and expressions not starting with a
	 * letter or digit ("-", "+", "!" operators) pass unparsed */
	if (!cs[0] || !strcmp(cs, "ALL") || !isalnum((unsigned char)cs[0]))
		return true;
	for (i = 0; i < sizeof(known) / sizeof(known[0]); i++)
		if (!strcmp(cs, known[i]))
			return true;
	return false;
}

static int dec__strcmp_p(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Istio's validateTLSOptions cipher part: one warning listing the unknown
 * names and one the repeated ones, each sorted ("[a b]", Go's %v of a
 * sorted set). */
static void dec__cipher_suites(struct dec *d, const struct cfg__node *cs)
{
	const char **bad, **dup;
	size_t i, j, nb = 0, nd = 0;
	char text[1024];

	if (!cs || cs->type != CFG__SEQ || !cs->n)
		return;
	bad = dec__alloc(d, cs->n, sizeof(*bad));
	dup = dec__alloc(d, cs->n, sizeof(*dup));
	if (!bad || !dup)
		return;
	for (i = 0; i < cs->n; i++) {
		const char *s = cs->v[i]->str ? cs->v[i]->str : "";
		const char **set = dec__cipher_ok(s) ? dup : bad;
		size_t *n = set == dup ? &nd : &nb;
		bool seen = false, listed = false;

		for (j = 0; j < i; j++)
			seen = seen || !strcmp(cs->v[j]->str ? cs->v[j]->str : "", s);
		for (j = 0; j < *n; j++)
			listed = listed || !strcmp(set[j], s);
		/* an unknown name once however often; a known one when seen again */
		if (!listed && (set == bad || seen))
			set[(*n)++] = s;
	}
	for (j = 0; j < 2; j++) {
		const char **set = j ? dup : bad;
		size_t n = j ? nd : nb, len = 0;

		if (!n)
			continue;
		qsort(set, n, sizeof(*set), dec__strcmp_p);
		text[0] = '\0';
		for (i = 0; i < n && len < sizeof(text); i++) {
			int w = snprintf(text + len, sizeof(text) - len, "%s%s", i ? " " : "", set[i]);
			if (w < 0)
				break;
			len += (size_t)w;
		}
		DEC_WARN_AT(d, cs, "cipherSuites", "ignoring %s cipher suites: [%s]", j ? "duplicate" : "invalid", text);
	}
}

/* Istio's validateTLSOptions for a Gateway server's tls block (errors at
 * the field they are about, under spec.servers[i].tls), plus one check
 * meshd adds: minProtocolVersion above maxProtocolVersion leaves no TLS
 * version to negotiate, so no handshake could succeed. */
static void dec__server_tls(struct dec *d, const struct cfg__node *tls)
{
	const char *mode = F(tls, "mode") && F(tls, "mode")->str ? F(tls, "mode")->str : "PASSTHROUGH";
	const struct cfg__node *sc = F(tls, "serverCertificate"), *pk = F(tls, "privateKey");
	const struct cfg__node *ca = F(tls, "caCertificates"), *cn = F(tls, "credentialName");
	const struct cfg__node *cns = F(tls, "credentialNames"), *tc = F(tls, "tlsCertificates"), *crl = F(tls, "caCrl");
	const struct cfg__node *mv = F(tls, "minProtocolVersion"), *xv = F(tls, "maxProtocolVersion");
	bool has_sc = sc && sc->len, has_pk = pk && pk->len, has_ca = ca && ca->len, has_cn = cn && cn->len;
	bool has_cns = cns && cns->n, has_tc = tc && tc->n, has_crl = crl && crl->len;
	bool simple = !strcmp(mode, "SIMPLE"), mutual = !strcmp(mode, "MUTUAL") || !strcmp(mode, "OPTIONAL_MUTUAL");
	int sources = (has_sc && has_pk) + has_cn + has_cns + has_tc;
	enum cfg_gw_tls_version vmin = dec__gw_tls_version(mv), vmax = dec__gw_tls_version(xv);
	size_t mark = dec__push(d, "tls"), i;

	if (mv && mv->str && (!strcmp(mv->str, "TLSV1_0") || !strcmp(mv->str, "TLSV1_1")) &&
	    !(F(tls, "cipherSuites") && F(tls, "cipherSuites")->n))
		DEC_WARN_AT(d, mv, "minProtocolVersion", "TLS version below TLSV1_2 require setting compatible ciphers as "
			    "by default they no longer include compatible ciphers.");
	if (vmin != CFG_GW_TLS_AUTO && vmax != CFG_GW_TLS_AUTO && vmin > vmax)
		DEC_ERR_AT(d, xv, "maxProtocolVersion", "maxProtocolVersion %s is below minProtocolVersion %s: no TLS "
			   "version is left to negotiate (Istio does not check this; meshd rejects it)",
			   xv->str, mv->str);
	dec__cipher_suites(d, F(tls, "cipherSuites"));
	if (!strcmp(mode, "ISTIO_MUTUAL")) {
		/* ISTIO_MUTUAL takes the workload certificate: no other source */
		if (has_sc)
			DEC_ERR_AT(d, sc, "serverCertificate", "ISTIO_MUTUAL TLS cannot have associated server certificate");
		if (has_pk)
			DEC_ERR_AT(d, pk, "privateKey", "ISTIO_MUTUAL TLS cannot have associated private key");
		if (has_ca)
			DEC_ERR_AT(d, ca, "caCertificates", "ISTIO_MUTUAL TLS cannot have associated CA bundle");
		if (has_tc)
			DEC_ERR_AT(d, tc, "tlsCertificates", "ISTIO_MUTUAL TLS cannot have associated tlsCertificates");
		if (has_cn)
			DEC_ERR_AT(d, cn, "credentialName", "ISTIO_MUTUAL TLS cannot have associated credentialName");
		if (has_cns)
			DEC_ERR_AT(d, cns, "credentialNames", "ISTIO_MUTUAL TLS cannot have associated credentialNames");
		goto out;
	}
	if ((!strcmp(mode, "PASSTHROUGH") || !strcmp(mode, "AUTO_PASSTHROUGH")) &&
	    (has_crl || has_sc || has_pk || has_ca || has_tc || has_cn || has_cns))
		cfg__warn(d->e, tls, "%s mode does not use certificates, they will be ignored", mode);
	if (sources > 1)
		cfg__error(d->e, tls, "only one of credential_name, credential_names, server_certificate/private_key, "
			   "tls_certificates should be specified");
	/* with credentialName(s) the certificates come from a Secret: nothing
	 * else is required (nor is the CRL checked, as in Istio) */
	if ((simple || mutual) && (has_cn || has_cns))
		goto out;
	if (simple || mutual) {
		const char *pfx = simple ? "SIMPLE TLS" : "MUTUAL TLS";

		if (mutual && !has_ca)
			DEC_ERR_AT(d, ca ? ca : tls, "caCertificates", "%s requires a client CA bundle", pfx);
		if (has_tc) {
			size_t m2 = dec__push(d, "tlsCertificates");
			for (i = 0; i < tc->n; i++) {
				const struct cfg__node *a = F(tc->v[i], "serverCertificate"), *b = F(tc->v[i], "privateKey");
				size_t m3 = dec__idx(d, i);
				if (!a || !a->len)
					cfg__error(d->e, tc->v[i], "%s requires a server certificate", pfx);
				if (!b || !b->len)
					cfg__error(d->e, tc->v[i], "%s requires a private key", pfx);
				dec__pop(d, m3);
			}
			dec__pop(d, m2);
		} else {
			if (!has_sc)
				DEC_ERR_AT(d, sc ? sc : tls, "serverCertificate", "%s requires a server certificate", pfx);
			if (!has_pk)
				DEC_ERR_AT(d, pk ? pk : tls, "privateKey", "%s requires a private key", pfx);
		}
	}
	if (has_crl) {
		if (has_cn)
			DEC_ERR_AT(d, crl, "caCrl", "CRL is not supported with credentialName. CRL has to be specified in "
				   "the credential");
		if (simple)
			DEC_ERR_AT(d, crl, "caCrl", "CRL is not supported with SIMPLE TLS");
	}
out:
	dec__pop(d, mark);
}

/* Istio's protocol.Parse for a Gateway server port: the protocols it
 * knows, any case (THRIFT, which ServiceEntry ports take, is not one). */
static bool dec__gw_protocol_ok(const char *p)
{
	static const char *const known[] = {
		"TCP", "UDP", "GRPC", "GRPC-WEB", "HTTP", "HTTP_PROXY", "HTTP2", "HTTPS", "TLS", "MONGO", "REDIS", "MYSQL",
		NULL,
	};

	return dec__proto_is(p, known);
}

/* Istio's validateServerPort; true when the port has no error (only then
 * does validateServer look at protocol and tls together). */
static bool dec__gw_port(struct dec *d, const struct cfg__node *port, bool unix_bind)
{
	const struct cfg__node *pn = F(port, "name"), *pp = F(port, "protocol"), *num_n = F(port, "number");
	const char *proto = pp && pp->str ? pp->str : "", *pname = pn && pn->str ? pn->str : "";
	int64_t num = dec__int(num_n, 0);
	bool ok = true;
	size_t m = dec__push(d, "port");

	if (!dec__gw_protocol_ok(proto)) {
		DEC_ERR_AT(d, pp ? pp : port, "protocol", "invalid protocol \"%s\", supported protocols are HTTP, HTTP2, "
			   "GRPC, GRPC-WEB, MONGO, REDIS, MYSQL, TCP", proto);
		ok = false;
	}
	if ((num > 0 || !unix_bind) && !dec__port_ok(num)) {
		DEC_ERR_AT(d, num_n ? num_n : port, "number", "port number %lld must be in the range 1..65535",
			   (long long)num);
		ok = false;
	}
	if (dec__int(F(port, "targetPort"), 0) > 0) {
		DEC_ERR_AT(d, F(port, "targetPort"), "targetPort", "targetPort has no impact on Gateways");
		ok = false;
	}
	if (!pname[0]) {
		DEC_ERR_AT(d, pn ? pn : port, "name", "port name must be set");
		ok = false;
	}
	dec__pop(d, m);
	return ok;
}

/* Istio's validateServerBind: "unix://" + an absolute path or an abstract
 * "@name" with port number 0, else an IP address. */
static void dec__gw_bind(struct dec *d, const struct cfg__node *bind, const struct cfg__node *port)
{
	const char *b = bind && bind->str ? bind->str : "";

	if (!strncmp(b, "unix://", 7)) {
		const char *p = b + 7;
		if (!p[0])
			DEC_ERR_AT(d, bind, "bind", "unix address must not be empty");
		else if (p[0] != '@' && (p[0] != '/' || p[strlen(p) - 1] == '/'))
			DEC_ERR_AT(d, bind, "bind", "%s is not an absolute path to a file", p);
		if (dec__int(F(port, "number"), 0) != 0)
			DEC_ERR_AT(d, bind, "bind", "port number must be 0 for unix domain socket");
	} else if (b[0] && !cfg__is_ip(b)) {
		DEC_ERR_AT(d, bind, "bind", "%s is not a valid IP", b);
	}
}

/* Istio's validateServer: hosts, port, bind, tls, and tls against the
 * port's protocol. */
static void dec__gw_server(struct dec *d, const struct cfg__node *s)
{
	const struct cfg__node *hosts = F(s, "hosts"), *port = F(s, "port"), *tls = F(s, "tls"), *bind = F(s, "bind");
	const char *proto = F(port, "protocol") && F(port, "protocol")->str ? F(port, "protocol")->str : "";
	bool unix_bind = bind && bind->str && !strncmp(bind->str, "unix://", 7), port_ok;
	size_t j, m;

	if (!hosts || !hosts->n)
		DEC_ERR_AT(d, hosts ? hosts : s, "hosts", "server config must contain at least one host");
	m = dec__push(d, "hosts");
	for (j = 0; hosts && j < hosts->n; j++) {
		size_t m2 = dec__idx(d, j);
		dec__ns_host(d, hosts->v[j], true);
		dec__pop(d, m2);
	}
	dec__pop(d, m);
	if (!port) {
		DEC_ERR_AT(d, s, "port", "port is required");
		port_ok = false;
	} else {
		port_ok = dec__gw_port(d, port, unix_bind);
	}
	dec__gw_bind(d, bind, port);
	if (tls)
		dec__server_tls(d, tls);
	if (!port_ok)
		return;
	if (dec__proto_is(proto, dec__tls_protos) && !tls) {
		cfg__error(d->e, s, "server must have TLS settings for HTTPS/TLS protocols");
	} else if (!dec__proto_is(proto, dec__tls_protos) && tls) {
		/* an HTTP server may carry a tls block only for httpsRedirect:
		 * a PASSTHROUGH one (the mode a block without one has) without
		 * certificate files, as gateway.IsPassThroughServer says */
		const char *mode = F(tls, "mode") && F(tls, "mode")->str ? F(tls, "mode")->str : "PASSTHROUGH";
		bool pass = !strcmp(mode, "PASSTHROUGH") || !strcmp(mode, "AUTO_PASSTHROUGH");
		bool files = (F(tls, "caCertificates") && F(tls, "caCertificates")->len) ||
			     (F(tls, "privateKey") && F(tls, "privateKey")->len) ||
			     (F(tls, "serverCertificate") && F(tls, "serverCertificate")->len);

		if (!dec__proto_is(proto, dec__http_protos))
			DEC_ERR_AT(d, tls, "tls", "server cannot have TLS settings for non HTTPS/TLS ports");
		else if (!pass || files)
			DEC_ERR_AT(d, tls, "tls", "server cannot have TLS settings for plain text HTTP ports");
	}
}

/* Istio does not validate a Gateway's selector; a key or value that is
 * not a valid Kubernetes label can be on no pod, so the Gateway selects
 * no gateway proxy: a warning says so (it rejects nothing). */
static void dec__gw_selector(struct dec *d, const struct cfg__node *map)
{
	size_t i, mark;

	if (!map || map->type != CFG__MAP)
		return;
	mark = dec__push(d, "selector");
	for (i = 0; i < map->n; i++) {
		const char *k = map->k[i]->str ? map->k[i]->str : "", *v = map->v[i]->str ? map->v[i]->str : "";
		if (!dec__label_key_ok(k))
			cfg__warn(d->e, map->k[i], "selector label key \"%s\" is not a valid Kubernetes label key: no "
				  "gateway pod can carry it, the Gateway selects no gateway proxy", k);
		else if ((v[0] && !dec__qualified_name(v, strlen(v))) || strlen(v) > 63)
			DEC_WARN_AT(d, map->v[i], k, "selector label value \"%s\" is not a valid Kubernetes label value: no "
				    "gateway pod can carry it, the Gateway selects no gateway proxy", v);
	}
	dec__pop(d, mark);
}

/* Istio's ValidateGateway: a DNS-label name, at least one server, each
 * server valid, port names unique; a warning for httpsRedirect on a
 * server that is not HTTP, and one for a server name used twice (istiod
 * logs it: the servers' stat prefixes collide). */
static void dec__gateway(struct dec *d, const struct cfg__node *spec, struct cfg_gateway *gw)
{
	const struct cfg__node *servers = F(spec, "servers");
	size_t i, j, mark;

	if (!dec__istio_label(d->o->name))
		cfg__error(d->e, spec, "invalid gateway name: \"%s\" (a DNS label, no dots)", d->o->name);
	dec__gateway_spec(d, spec, gw);
	dec__gw_selector(d, F(spec, "selector"));
	if (!servers || !servers->n) {
		cfg__error(d->e, servers ? servers : spec, "gateway must have at least one server");
		return;
	}
	mark = dec__push(d, "servers");
	for (i = 0; i < servers->n; i++) {
		const struct cfg__node *s = servers->v[i], *port = F(s, "port"), *tls = F(s, "tls");
		const struct cfg__node *pn = F(port, "name"), *sn = F(s, "name");
		const char *proto = F(port, "protocol") && F(port, "protocol")->str ? F(port, "protocol")->str : "";
		const char *pname = pn && pn->str ? pn->str : "";
		size_t m2 = dec__idx(d, i);

		dec__gw_server(d, s);
		for (j = 0; port && j < i; j++) {
			const struct cfg__node *op = F(F(servers->v[j], "port"), "name");
			if (F(servers->v[j], "port") && !strcmp(op && op->str ? op->str : "", pname)) {
				size_t m3 = dec__push(d, "port");
				DEC_ERR_AT(d, pn ? pn : port, "name", "port names in servers must be unique: duplicate name %s",
					   pname);
				dec__pop(d, m3);
				break;
			}
		}
		for (j = 0; sn && sn->len && j < i; j++) {
			const struct cfg__node *on = F(servers->v[j], "name");
			if (on && on->str && !strcmp(on->str, sn->str)) {
				DEC_WARN_AT(d, sn, "name", "Server name %s is not unique in gateway %s/%s and may create "
					    "possible issues like stat prefix collision", sn->str, d->o->ns, d->o->name);
				break;
			}
		}
		if (port && tls && dec__bool(F(tls, "httpsRedirect")) == 1 && !dec__proto_is(proto, dec__http_protos))
			DEC_WARN_AT(d, tls, "tls", "tls.httpsRedirect should only be used with http servers");
		dec__pop(d, m2);
	}
	dec__pop(d, mark);
}

/* Istio's ValidateSidecar (the checks that need no other object). */
static enum cfg_capture_mode dec__capture_mode(const struct cfg__node *n)
{
	if (n && n->str && strcmp(n->str, "NONE") == 0)
		return CFG_CAPTURE_NONE;
	if (n && n->str && strcmp(n->str, "IPTABLES") == 0)
		return CFG_CAPTURE_IPTABLES;
	return CFG_CAPTURE_DEFAULT;
}

/* The fields the sidecar generator acts on (struct cfg_sidecar);
 * validation is dec__sidecar's. */
static void dec__sidecar_spec(struct dec *d, const struct cfg__node *spec, struct cfg_sidecar *sc)
{
	const struct cfg__node *in = F(spec, "ingress"), *eg = F(spec, "egress"), *otp = F(spec, "outboundTrafficPolicy");
	const struct cfg__node *mode = F(otp, "mode");
	size_t i, j, nh = 0;

	if (in && in->type == CFG__SEQ && in->n && (sc->ingress = dec__alloc(d, in->n, sizeof(*sc->ingress)))) {
		for (i = 0; i < in->n; i++) {
			const struct cfg__node *ing = in->v[i], *port = F(ing, "port");
			struct cfg_sidecar_ingress *v = &sc->ingress[sc->n_ingress++];

			v->port = dec__int(F(port, "number"), 0);
			v->protocol = dec__upper(d, F(port, "protocol"));
			v->port_name = dec__str(d, F(port, "name"));
			v->bind = dec__str(d, F(ing, "bind"));
			v->default_endpoint = dec__str(d, F(ing, "defaultEndpoint"));
			v->capture_mode = dec__capture_mode(F(ing, "captureMode"));
		}
	}
	if (eg && eg->type == CFG__SEQ && eg->n && (sc->egress = dec__alloc(d, eg->n, sizeof(*sc->egress)))) {
		for (i = 0; i < eg->n; i++) {
			const struct cfg__node *e = eg->v[i], *port = F(e, "port");
			struct cfg_sidecar_egress *v = &sc->egress[sc->n_egress++];

			v->port = port ? dec__int(F(port, "number"), 0) : -1;
			v->protocol = dec__upper(d, F(port, "protocol"));
			v->port_name = dec__str(d, F(port, "name"));
			v->bind = dec__str(d, F(e, "bind"));
			v->capture_mode = dec__capture_mode(F(e, "captureMode"));
			dec__strs(d, F(e, "hosts"), &v->hosts);
			nh += v->hosts.n;
		}
	}
	if (nh && (sc->egress_hosts.v = dec__alloc(d, nh, sizeof(char *))))
		for (i = 0; i < sc->n_egress; i++)
			for (j = 0; j < sc->egress[i].hosts.n; j++)
				sc->egress_hosts.v[sc->egress_hosts.n++] = sc->egress[i].hosts.v[j];
	if (mode && mode->str && strcmp(mode->str, "REGISTRY_ONLY") == 0)
		sc->outbound = CFG_OUTBOUND_REGISTRY_ONLY;
	else if (mode && mode->str && strcmp(mode->str, "ALLOW_ANY") == 0)
		sc->outbound = CFG_OUTBOUND_ALLOW_ANY;
	else if (otp)
		sc->outbound = CFG_OUTBOUND_REGISTRY_ONLY; /* the proto's default value (0) */
}

/* Istio's ValidateUnixAddress on the path after "unix://": an abstract
 * name (@...) or an absolute path to a file.  Errors at n's field key. */
static void dec__unix_path(struct dec *d, const struct cfg__node *n, const char *key, const char *path)
{
	size_t pl = strlen(path);

	if (!pl)
		DEC_ERR_AT(d, n, key, "unix address must not be empty");
	else if (path[0] != '@' && (path[0] != '/' || path[pl - 1] == '/'))
		DEC_ERR_AT(d, n, key, "%s is not an absolute path to a file", path);
}

/* Go's net.SplitHostPort: "host:port" or "[host]:port" (brackets for
 * IPv6), exactly one colon outside brackets, host may be empty.  The
 * host into host[cap] and *port (may be ""); false with *why set when s
 * has no such form. */
static bool dec__split_host_port(const char *s, char *host, size_t cap, const char **port, const char **why)
{
	const char *colon = strrchr(s, ':'), *h = s, *he;

	if (!colon) {
		*why = "missing port in address";
		return false;
	}
	if (s[0] == '[') {
		const char *end = strchr(s, ']');
		if (!end) {
			*why = "missing ']' in address";
			return false;
		}
		if (end + 1 != colon) {
			*why = end[1] == ':' ? "too many colons in address" : "missing port in address";
			return false;
		}
		h = s + 1;
		he = end;
		if (memchr(h, '[', (size_t)(he - h))) {
			*why = "unexpected '[' in address";
			return false;
		}
	} else {
		he = colon;
		if (memchr(s, ':', (size_t)(he - s))) {
			*why = "too many colons in address";
			return false;
		}
		if (memchr(s, '[', (size_t)(he - s)) || memchr(s, ']', (size_t)(he - s))) {
			*why = "unexpected '[' or ']' in address";
			return false;
		}
	}
	if (strchr(colon + 1, '[') || strchr(colon + 1, ']')) {
		*why = "unexpected '[' or ']' in address";
		return false;
	}
	if ((size_t)(he - h) >= cap) {
		*why = "address too long";
		return false;
	}
	memcpy(host, h, (size_t)(he - h));
	host[he - h] = 0;
	*port = colon + 1;
	return true;
}

/* Istio's ValidateSidecar rule on ingress[].defaultEndpoint: unix://PATH
 * (ValidateUnixAddress), or HOST:PORT with HOST one of 127.0.0.1,
 * 0.0.0.0, ::1, :: or empty (net.SplitHostPort) and PORT a number in
 * 1..65535 (strconv.Atoi, ValidatePort). */
static void dec__sidecar_default_endpoint(struct dec *d, const struct cfg__node *de)
{
	const char *s = de->str, *port = "", *why = NULL, *q;
	char host[64];
	long long num = 0;
	bool digits = true;

	if (!strncmp(s, "unix://", 7)) {
		dec__unix_path(d, de, "defaultEndpoint", s + 7);
		/* Istio sends a pipe endpoint, which Envoy takes; meshproxy's
		 * upstreams are IP only, so meshd leaves the port out (sidecar.c) */
		DEC_WARN_AT(d, de, "defaultEndpoint", "sidecar: defaultEndpoint %s is a unix domain socket: meshproxy "
			    "connects to IP endpoints only, so meshd does not serve this ingress listener", s);
		return;
	}
	if (!dec__split_host_port(s, host, sizeof(host), &port, &why)) {
		DEC_ERR_AT(d, de, "defaultEndpoint", "address %s: %s", s, why);
		host[0] = 0;
	}
	if (host[0] && strcmp(host, "127.0.0.1") && strcmp(host, "0.0.0.0") && strcmp(host, "::1") && strcmp(host, "::"))
		DEC_ERR_AT(d, de, "defaultEndpoint", "sidecar: defaultEndpoint must be of form 127.0.0.1:<port>,"
			   "0.0.0.0:<port>,[::1]:port,[::]:port,unix://filepath or unset");
	if (!why) {
		/* strconv.Atoi: optional sign, then decimal digits */
		q = port + (port[0] == '+' || port[0] == '-');
		for (; *q && digits; q++) {
			digits = *q >= '0' && *q <= '9';
			if (digits && num < 1000000)
				num = num * 10 + (*q - '0');
		}
		digits = digits && port[(port[0] == '+' || port[0] == '-')];
		if (!digits)
			DEC_ERR_AT(d, de, "defaultEndpoint", "sidecar: defaultEndpoint port (%s) is not a number", port);
		else if (port[0] == '-' || num < 1 || num > 65535)
			DEC_ERR_AT(d, de, "defaultEndpoint", "port number %s%lld must be in the range 1..65535",
				   port[0] == '-' ? "-" : "", num);
	}
}

/* Istio's ValidateIPAddress (net.ParseIP) on a listener's bind. */
static void dec__sidecar_bind_ip(struct dec *d, const struct cfg__node *bind)
{
	if (bind && bind->str && bind->len && !cfg__is_ip(bind->str))
		DEC_ERR_AT(d, bind, "bind", "%s is not a valid IP", bind->str);
}

static void dec__sidecar(struct dec *d, const struct cfg__node *spec, struct cfg_sidecar *sc)
{
	const struct cfg__node *in = F(spec, "ingress"), *eg = F(spec, "egress"), *otp = F(spec, "outboundTrafficPolicy");
	const struct cfg__node *sel = F(spec, "workloadSelector");
	size_t i, j, mark;
	bool catch_all = false;

	if (sel) {
		bool has = false;
		mark = dec__push(d, "workloadSelector");
		dec__selector_labels(d, sel, "labels", &sc->workload_selector, &has);
		dec__pop(d, mark);
		sc->has_workload_selector = has;
	}
	dec__sidecar_spec(d, spec, sc);
	if ((!in || !in->n) && (!eg || !eg->n) && !otp && !F(spec, "inboundConnectionPool")) {
		cfg__error(d->e, spec, "sidecar: empty configuration provided");
		return;
	}
	mark = dec__push(d, "ingress");
	for (i = 0; in && i < in->n; i++) {
		const struct cfg__node *ing = in->v[i], *port = F(ing, "port"), *tls = F(ing, "tls");
		const char *proto = F(port, "protocol") && F(port, "protocol")->str ? F(port, "protocol")->str : "";
		size_t m2 = dec__idx(d, i);
		int64_t num = dec__int(F(port, "number"), 0);

		if (dec__int(F(port, "targetPort"), 0) > 0)
			cfg__error(d->e, port, "targetPort has no impact on Sidecars");
		if (!dec__port_ok(num))
			cfg__error(d->e, port, "port number %lld must be in the range 1..65535", (long long)num);
		/* validateSidecarIngressPortAndBind: an ingress bind is an IP */
		dec__sidecar_bind_ip(d, F(ing, "bind"));
		if (F(ing, "defaultEndpoint") && F(ing, "defaultEndpoint")->str && F(ing, "defaultEndpoint")->len)
			dec__sidecar_default_endpoint(d, F(ing, "defaultEndpoint"));
		if (proto[0] && !dec__protocol_ok(proto))
			cfg__error(d->e, port, "invalid protocol \"%s\"", proto);
		for (j = 0; j < i; j++)
			if (dec__int(F(F(in->v[j], "port"), "number"), -1) == num)
				cfg__error(d->e, port, "sidecar: ports on IP bound listeners must be unique");
		if (tls) {
			const char *mode = F(tls, "mode") && F(tls, "mode")->str ? F(tls, "mode")->str : "";
			if (F(tls, "subjectAltNames") && F(tls, "subjectAltNames")->n)
				cfg__error(d->e, tls, "sidecar: subjectAltNames is not supported in ingress tls");
			if (dec__bool(F(tls, "httpsRedirect")) == 1)
				cfg__error(d->e, tls, "sidecar: httpsRedirect is not supported");
			if (F(tls, "credentialName") && F(tls, "credentialName")->len)
				cfg__error(d->e, tls, "sidecar: credentialName is not currently supported");
			if (!strcmp(mode, "ISTIO_MUTUAL") || !strcmp(mode, "AUTO_PASSTHROUGH"))
				cfg__error(d->e, tls, "configuration is invalid: cannot set mode to %s in sidecar ingress tls",
					   mode);
			if (!dec__proto_is(proto, dec__tls_protos))
				cfg__error(d->e, tls, "server cannot have TLS settings for non HTTPS/TLS ports");
		}
		dec__pop(d, m2);
	}
	dec__pop(d, mark);
	mark = dec__push(d, "egress");
	for (i = 0; eg && i < eg->n; i++) {
		const struct cfg__node *e = eg->v[i], *port = F(e, "port"), *hosts = F(e, "hosts");
		size_t m2 = dec__idx(d, i);

		if (!port) {
			const struct cfg__node *bind = F(e, "bind");
			if (catch_all)
				cfg__error(d->e, e, "sidecar: egress can have only one listener with empty port");
			else if (i != eg->n - 1)
				cfg__error(d->e, e, "sidecar: the egress listener with empty port should be the last listener "
					   "in the list");
			catch_all = true;
			/* Istio checks no bind here, but its listeners bind there
			 * for every port (listener.go) and Envoy refuses an address
			 * that is not an IP: refused here rather than NACKed */
			if (bind && bind->str && !strncmp(bind->str, "unix://", 7))
				DEC_ERR_AT(d, bind, "bind", "sidecar: a unix domain socket bind needs a port with number 0");
			else
				dec__sidecar_bind_ip(d, bind);
		} else {
			int64_t num = dec__int(F(port, "number"), 0);
			const struct cfg__node *bind = F(e, "bind");
			if (dec__int(F(port, "targetPort"), 0) > 0)
				cfg__error(d->e, port, "targetPort has no impact on Sidecars");
			if (num == 0 && !(bind && bind->str && !strncmp(bind->str, "unix://", 7)))
				cfg__error(d->e, port, "sidecar: ports with 0 value must have a unix domain socket bind address");
			else if (num != 0 && !dec__port_ok(num))
				cfg__error(d->e, port, "port number %lld must be in the range 1..65535", (long long)num);
			/* validateSidecarEgressPortBindAndCaptureMode */
			if (num == 0 && bind && bind->str && !strncmp(bind->str, "unix://", 7)) {
				const struct cfg__node *cm = F(e, "captureMode");
				dec__unix_path(d, bind, "bind", bind->str + 7);
				if (cm && cm->str && strcmp(cm->str, "DEFAULT") && strcmp(cm->str, "NONE"))
					DEC_ERR_AT(d, cm, "captureMode", "sidecar: captureMode must be DEFAULT/NONE for unix "
						   "domain socket listeners");
			} else if (num != 0) {
				dec__sidecar_bind_ip(d, bind);
			}
			for (j = 0; num && j < i; j++)
				if (dec__int(F(F(eg->v[j], "port"), "number"), -1) == num)
					cfg__error(d->e, port, "sidecar: ports on IP bound listeners must be unique");
		}
		if (!hosts || !hosts->n)
			DEC_ERR_AT(d, e, "hosts", "sidecar: egress listener must contain at least one host");
		for (j = 0; hosts && j < hosts->n; j++) {
			size_t m3 = dec__push(d, "hosts"), m4 = dec__idx(d, j);
			dec__ns_host(d, hosts->v[j], false);
			dec__pop(d, m4);
			dec__pop(d, m3);
		}
		dec__pop(d, m2);
	}
	dec__pop(d, mark);
	if (otp && F(otp, "egressProxy")) {
		const struct cfg__node *ep = F(otp, "egressProxy");
		const char *m = F(otp, "mode") && F(otp, "mode")->str ? F(otp, "mode")->str : "REGISTRY_ONLY";
		mark = dec__push(d, "outboundTrafficPolicy");
		if (strcmp(m, "ALLOW_ANY") != 0)
			cfg__error(d->e, ep, "sidecar: egress_proxy must be set only with ALLOW_ANY outbound_traffic_policy "
				   "mode");
		if (!F(ep, "port"))
			cfg__error(d->e, ep, "sidecar: egress_proxy port must be non-nil");
		{
			struct cfg_destination dst;
			size_t m2 = dec__push(d, "egressProxy");
			memset(&dst, 0, sizeof(dst));
			dec__destination(d, ep, &dst);
			dec__pop(d, m2);
		}
		dec__pop(d, mark);
	}
}

/* Istio's ValidateRequestAuthentication and validateJwtRule (the JWKS is
 * not parsed here: a JWKS the proxy cannot read leaves it without keys, so
 * tokens fail), and the rules kept for the jwt_authn generator. */
static void dec__request_authentication(struct dec *d, const struct cfg__node *spec,
					struct cfg_request_authentication *ra)
{
	const struct cfg__node *sel = F(spec, "selector"), *rules = F(spec, "jwtRules");
	size_t i, j, mark;

	if (sel) {
		mark = dec__push(d, "selector");
		dec__selector_labels(d, sel, "matchLabels", &ra->selector, &ra->has_selector);
		dec__pop(d, mark);
	}
	if (F(spec, "targetRef") || F(spec, "targetRefs")) {
		bool t;
		dec__target_refs(d, spec, &t);
		ra->has_target_refs = true;
		if (sel)
			cfg__error(d->e, sel, "only one of targetRefs or workloadSelector can be set");
		else
			cfg__warn(d->e, spec, "targetRef policies attach to gateways and waypoints, not sidecars: applied "
				  "to no workload meshd serves (not implemented yet for gateways)");
	}
	if (rules && rules->type == CFG__SEQ && rules->n) {
		ra->rules = dec__alloc(d, rules->n, sizeof(*ra->rules));
		if (!ra->rules)
			return;
		ra->n_rules = rules->n;
	}
	mark = dec__push(d, "jwtRules");
	for (i = 0; rules && i < rules->n; i++) {
		const struct cfg__node *r = rules->v[i], *v;
		size_t m2 = dec__idx(d, i);
		const char *uri = F(r, "jwksUri") && F(r, "jwksUri")->str ? F(r, "jwksUri")->str : "";
		struct cfg_jwt_rule *jr = ra->rules ? &ra->rules[i] : NULL;

		for (j = 0; (v = F(r, "audiences")) && j < v->n; j++)
			if (!v->v[j]->len)
				DEC_ERR_AT(d, v->v[j], "audiences", "audience must be non-empty string");
		if ((!F(r, "issuer") || !F(r, "issuer")->len) && !uri[0])
			cfg__error(d->e, r, "issuer or jwksUri must be non-empty string");
		if (uri[0] && strncmp(uri, "http://", 7) && strncmp(uri, "https://", 8))
			DEC_ERR_AT(d, F(r, "jwksUri"), "jwksUri", "'%s' has invalid scheme, must be http or https", uri);
		if ((v = F(r, "jwks")) && v->len && v->str[0] != '{')
			DEC_ERR_AT(d, v, "jwks", "jwks parse error: not a JSON Web Key Set");
		for (j = 0; (v = F(r, "fromHeaders")) && j < v->n; j++)
			if (!F(v->v[j], "name") || !F(v->v[j], "name")->len)
				DEC_ERR_AT(d, v->v[j], "fromHeaders", "location header name must be non-empty string");
		for (j = 0; (v = F(r, "fromParams")) && j < v->n; j++)
			if (!v->v[j]->len)
				DEC_ERR_AT(d, v->v[j], "fromParams", "location query must be non-empty string");
		for (j = 0; (v = F(r, "fromCookies")) && j < v->n; j++)
			if (!v->v[j]->len)
				DEC_ERR_AT(d, v->v[j], "fromCookies", "cookie name must be non-empty string");
		for (j = 0; (v = F(r, "outputClaimToHeaders")) && j < v->n; j++) {
			const struct cfg__node *h = F(v->v[j], "header"), *c = F(v->v[j], "claim");
			size_t k;
			bool strict = h && h->len;
			for (k = 0; h && h->str && k < h->len; k++)
				if (!isalnum((unsigned char)h->str[k]) && h->str[k] != '-' && h->str[k] != '_')
					strict = false;
			if (!h || !h->len || !c || !c->len)
				DEC_ERR_AT(d, v->v[j], "outputClaimToHeaders", "outputClaimToHeaders header and claim value "
					   "must be non-empty string");
			else if (!strict)
				DEC_ERR_AT(d, h, "outputClaimToHeaders", "header name %s is not a valid header name", h->str);
		}
		if (F(r, "timeout")) {
			int64_t t = -1;
			dec__duration(d, r, "timeout", &t);
		}
		if (jr) {
			jr->issuer = dec__str(d, F(r, "issuer"));
			dec__strs(d, F(r, "audiences"), &jr->audiences);
			jr->jwks_uri = uri[0] ? dec__str(d, F(r, "jwksUri")) : NULL;
			jr->jwks = dec__str(d, F(r, "jwks"));
			if ((v = F(r, "fromHeaders")) && v->type == CFG__SEQ && v->n &&
			    (jr->from_headers = dec__alloc(d, v->n, sizeof(*jr->from_headers)))) {
				for (j = 0; j < v->n; j++) {
					jr->from_headers[j].name = dec__str(d, F(v->v[j], "name"));
					jr->from_headers[j].prefix = dec__str(d, F(v->v[j], "prefix"));
				}
				jr->n_from_headers = v->n;
			}
			dec__strs(d, F(r, "fromParams"), &jr->from_params);
			dec__strs(d, F(r, "fromCookies"), &jr->from_cookies);
			jr->output_payload_to_header = dec__str(d, F(r, "outputPayloadToHeader"));
			if ((v = F(r, "outputClaimToHeaders")) && v->type == CFG__SEQ && v->n &&
			    (jr->output_claim_to_headers = dec__alloc(d, v->n, sizeof(*jr->output_claim_to_headers)))) {
				for (j = 0; j < v->n; j++) {
					jr->output_claim_to_headers[j].header = dec__str(d, F(v->v[j], "header"));
					jr->output_claim_to_headers[j].claim = dec__str(d, F(v->v[j], "claim"));
				}
				jr->n_output_claim_to_headers = v->n;
			}
			jr->forward_original_token = dec__bool(F(r, "forwardOriginalToken")) == 1;
		}
		dec__pop(d, m2);
	}
	dec__pop(d, mark);
}

/* match.mode of a metrics override, tracing or access log entry. */
static enum cfg_tel_mode dec__tel_mode(const struct cfg__node *e)
{
	const struct cfg__node *m = F(F(e, "match"), "mode");

	if (m && m->str && !strcmp(m->str, "CLIENT"))
		return CFG_TEL_CLIENT;
	if (m && m->str && !strcmp(m->str, "SERVER"))
		return CFG_TEL_SERVER;
	return CFG_TEL_CLIENT_AND_SERVER;
}

/* A BoolValue: a bool, or {value: bool} as protobuf's JSON of a wrapper
 * never is but hand-written objects sometimes are.  -1 when unset. */
static int dec__bool_value(const struct cfg__node *n)
{
	if (n && n->type == CFG__MAP)
		return dec__bool(F(n, "value"));
	return dec__bool(n);
}

static void dec__tel_providers(struct dec *d, const struct cfg__node *p, struct cfg_strs *out)
{
	size_t j;

	if (!p || p->type != CFG__SEQ || !p->n)
		return;
	out->v = dec__alloc(d, p->n, sizeof(char *));
	for (j = 0; out->v && j < p->n; j++)
		if ((out->v[out->n] = dec__str(d, F(p->v[j], "name"))))
			out->n++;
}

/* issue 14: a tagOverrides value meshproxy will not evaluate, said at
 * validation (meshctl validate, /debug/configz, the log); what meshproxy
 * then does is what Istio's stats filter does (common/cel.h). */
static void dec__tel_tag_expr(struct dec *d, const struct cfg__node *n, size_t ov, const char *tag,
			      const char *expr)
{
	char why[96];
	size_t mark;

	if (cel_istio_tag_evaluated(expr))
		return;
	/* spec.metrics[i].overrides[ov].tagOverrides.TAG.value */
	mark = dec__push(d, "overrides");
	dec__idx(d, ov);
	dec__push(d, "tagOverrides");
	dec__push(d, tag);
	switch (cel_check(expr, why, sizeof(why))) {
	case CEL_OK:
		DEC_WARN_AT(d, n, "value", "tag %s: expression \"%s\" is not one meshproxy evaluates; the tag "
			    "reads \"unknown\" (as a failed evaluation in Istio)", tag, expr);
		break;
	case CEL_PARSE:
		DEC_WARN_AT(d, n, "value", "tag %s: failed to parse expression \"%s\" (%s); the tag is left "
			    "out of the metrics", tag, expr, why);
		break;
	default:
		DEC_WARN_AT(d, n, "value", "tag %s: expression \"%s\": %s; proxies reject the listeners "
			    "(Envoy: failed to create an expression)", tag, expr, why);
		break;
	}
	dec__pop(d, mark);
}

static void dec__tel_metrics(struct dec *d, const struct cfg__node *e, struct cfg_tel_metrics *m)
{
	const struct cfg__node *ov = F(e, "overrides");
	size_t j, x;

	m->reporting_interval = -1;
	if (F(e, "reportingInterval"))
		dec__duration(d, e, "reportingInterval", &m->reporting_interval);
	if (!ov || ov->type != CFG__SEQ || !ov->n)
		return;
	m->overrides = dec__alloc(d, ov->n, sizeof(*m->overrides));
	if (!m->overrides)
		return;
	m->n_overrides = ov->n;
	for (j = 0; j < ov->n; j++) {
		struct cfg_tel_metric_override *o = &m->overrides[j];
		const struct cfg__node *match = F(ov->v[j], "match"), *to = F(ov->v[j], "tagOverrides");

		o->mode = dec__tel_mode(ov->v[j]);
		o->metric = dec__str(d, F(match, "metric"));
		o->custom_metric = dec__str(d, F(match, "customMetric"));
		if (o->metric && o->custom_metric)
			DEC_ERR_AT(d, match, "match", "only one of metric or customMetric can be set");
		o->disabled = dec__bool_value(F(ov->v[j], "disabled"));
		if (to && to->type == CFG__MAP && to->n && (o->tags = dec__alloc(d, to->n, sizeof(*o->tags)))) {
			for (x = 0; x < to->n; x++) {
				const struct cfg__node *op = F(to->v[x], "operation"), *val = F(to->v[x], "value");
				struct cfg_tel_tag_override *t = &o->tags[x];

				t->tag = dec__str(d, to->k[x]);
				t->remove = op && op->str && !strcmp(op->str, "REMOVE");
				if (t->remove && val && val->len)
					DEC_ERR_AT(d, to->v[x], "overrides", "value may only be set when operation is "
						   "UPSERT");
				else if (!t->remove && (!val || !val->len))
					DEC_ERR_AT(d, to->v[x], "overrides", "must specify a value for UPSERT operation "
						   "(tag %s)", to->k[x]->str);
				if (!t->remove)
					t->value = dec__str(d, val);
				if (t->value)
					dec__tel_tag_expr(d, to->v[x], j, to->k[x]->str, t->value);
			}
			o->n_tags = to->n;
		}
	}
}

static void dec__tel_tracing(struct dec *d, const struct cfg__node *e, struct cfg_tel_tracing *t)
{
	const struct cfg__node *ct = F(e, "customTags"), *rsp = F(e, "randomSamplingPercentage");
	size_t j;

	t->mode = dec__tel_mode(e);
	t->random_sampling_percentage = -1;
	if (rsp) {
		/* a DoubleValue: a number, or {value: n} */
		double v = dec__num(rsp->type == CFG__MAP ? F(rsp, "value") : rsp, -1);

		/* out of range is the schema's error (schema.c): left unset here */
		if (v >= 0 && v <= 100)
			t->random_sampling_percentage = v;
	}
	t->disable_span_reporting = dec__bool_value(F(e, "disableSpanReporting"));
	t->use_request_id_for_trace_sampling = dec__bool_value(F(e, "useRequestIdForTraceSampling"));
	if (!ct || ct->type != CFG__MAP)
		return;
	t->has_custom_tags = true;
	if (!ct->n || !(t->custom_tags = dec__alloc(d, ct->n, sizeof(*t->custom_tags))))
		return;
	for (j = 0; j < ct->n; j++) {
		const struct cfg__node *v = ct->v[j], *lit = F(v, "literal"), *env = F(v, "environment"),
				       *hdr = F(v, "header");
		struct cfg_tel_custom_tag *c = &t->custom_tags[t->n_custom_tags];

		c->name = dec__str(d, ct->k[j]);
		if ((lit ? 1 : 0) + (env ? 1 : 0) + (hdr ? 1 : 0) != 1) {
			DEC_ERR_AT(d, v, "customTags", "tag %s: exactly one of literal, environment or header must be "
				   "set", ct->k[j]->str ? ct->k[j]->str : "");
			continue;
		}
		if (lit) {
			c->kind = CFG_TEL_TAG_LITERAL;
			c->value = dec__str(d, F(lit, "value"));
		} else {
			const struct cfg__node *src = env ? env : hdr;

			c->kind = env ? CFG_TEL_TAG_ENVIRONMENT : CFG_TEL_TAG_HEADER;
			c->value = dec__str(d, F(src, "name"));
			c->default_value = dec__str(d, F(src, "defaultValue"));
			if (!c->value || !*c->value)
				DEC_ERR_AT(d, src, "customTags", "tag %s: name must be set",
					   ct->k[j]->str ? ct->k[j]->str : "");
		}
		t->n_custom_tags++;
	}
}

/* Istio's ValidateTelemetry (providers, sampling, tag overrides), decoding
 * into t as it goes. */
static void dec__telemetry(struct dec *d, const struct cfg__node *spec, struct cfg_telemetry *tm)
{
	static const char *const lists[] = { "tracing", "metrics", "accessLogging" };
	const struct cfg__node *sel = F(spec, "selector");
	size_t k, i, j, mark;

	if (sel) {
		mark = dec__push(d, "selector");
		dec__selector_labels(d, sel, "matchLabels", &tm->selector, &tm->has_selector);
		dec__pop(d, mark);
	}
	if (F(spec, "targetRef") || F(spec, "targetRefs")) {
		dec__target_refs(d, spec, &tm->has_target_refs);
		if (sel)
			cfg__error(d->e, sel, "only one of targetRefs or workloadSelector can be set");
	}
	for (k = 0; k < 3; k++) {
		const struct cfg__node *l = F(spec, lists[k]);
		if (!l || l->type != CFG__SEQ)
			continue;
		mark = dec__push(d, lists[k]);
		if (k == 0 && l->n > 1)
			cfg__error(d->e, l, "multiple tracing is not currently supported");
		if (l->n) {
			if (k == 0 && (tm->tracing = dec__alloc(d, l->n, sizeof(*tm->tracing))))
				tm->n_tracing = l->n;
			if (k == 1 && (tm->metrics = dec__alloc(d, l->n, sizeof(*tm->metrics))))
				tm->n_metrics = l->n;
			if (k == 2 && (tm->access_logging = dec__alloc(d, l->n, sizeof(*tm->access_logging))))
				tm->n_access_logging = l->n;
		}
		for (i = 0; i < l->n; i++) {
			const struct cfg__node *e = l->v[i], *p = F(e, "providers");
			size_t m2 = dec__idx(d, i);
			if (p && p->n > 1 && k != 2)
				DEC_ERR_AT(d, p, "providers", "multiple providers is not currently supported");
			for (j = 0; p && j < p->n; j++)
				if (!F(p->v[j], "name") || !F(p->v[j], "name")->len)
					DEC_ERR_AT(d, p->v[j], "providers", "empty provider name");
			if (k == 0 && tm->tracing) {
				dec__tel_providers(d, p, &tm->tracing[i].providers);
				dec__tel_tracing(d, e, &tm->tracing[i]);
			} else if (k == 1 && tm->metrics) {
				dec__tel_providers(d, p, &tm->metrics[i].providers);
				dec__tel_metrics(d, e, &tm->metrics[i]);
			} else if (k == 2 && tm->access_logging) {
				struct cfg_tel_access_logging *al = &tm->access_logging[i];

				dec__tel_providers(d, p, &al->providers);
				al->mode = dec__tel_mode(e);
				al->disabled = dec__bool_value(F(e, "disabled"));
				al->filter = dec__str(d, F(F(e, "filter"), "expression"));
			}
			dec__pop(d, m2);
		}
		dec__pop(d, mark);
	}
}

/* ------------------------------------------------------------- entry */

void cfg__decode(struct cfg__ectx *e, struct cfg_object *o, const struct cfg__node *root)
{
	struct dec d = { e, o->arena, o->ns, o, NULL, 0, false };
	const struct cfg__node *spec = cfg__node_field(root, "spec");
	size_t mark, i;
	struct cfg__node empty = { .type = CFG__MAP, .line = root->line, .col = root->col };

	if (o->kind >= CFG_ISTIO_KIND_COUNT) {
		cfg__decode_k8s(e, o, root);
		return;
	}
	/* Istio's validateMetadata: only AuthorizationPolicy takes istio.io/dry-run */
	for (i = 0; o->kind != CFG_AUTHORIZATION_POLICY && i < o->annotations.n; i++)
		if (strcmp(o->annotations.v[i].key, "istio.io/dry-run") == 0) {
			size_t m = cfg__path_key(e, "metadata");
			cfg__path_key(e, "annotations");
			cfg__error(e, cfg__node_field(cfg__node_field(root, "metadata"), "annotations"),
				   "%s/%s has unsupported annotation istio.io/dry-run, please remove the annotation", o->ns,
				   o->name);
			cfg__path_pop(e, m);
		}
	mark = cfg__path_key(e, "spec");
	if (!spec)
		spec = &empty;
	switch (o->kind) {
	case CFG_VIRTUAL_SERVICE:
		dec__virtual_service(&d, spec, &o->spec.vs);
		break;
	case CFG_DESTINATION_RULE:
		dec__destination_rule(&d, spec, &o->spec.dr);
		break;
	case CFG_SERVICE_ENTRY:
		dec__service_entry(&d, spec, &o->spec.se);
		break;
	case CFG_WORKLOAD_ENTRY:
		dec__workload(&d, spec, &o->spec.we, false, true, NULL);
		break;
	case CFG_PEER_AUTHENTICATION:
		dec__peer_authentication(&d, spec, &o->spec.pa);
		break;
	case CFG_AUTHORIZATION_POLICY:
		dec__authorization_policy(&d, spec, &o->spec.ap);
		break;
	case CFG_GATEWAY:
		dec__gateway(&d, spec, &o->spec.gw);
		break;
	case CFG_SIDECAR:
		dec__sidecar(&d, spec, &o->spec.sc);
		break;
	case CFG_REQUEST_AUTHENTICATION:
		dec__request_authentication(&d, spec, &o->spec.ra);
		break;
	case CFG_TELEMETRY:
		dec__telemetry(&d, spec, &o->spec.tm);
		break;
	default:
		break;
	}
	cfg__path_pop(e, mark);
}
