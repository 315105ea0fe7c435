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
#include "common/duration.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define DEC__MS 1000000LL
#define DEC__REGEX_MAX 4096           /* translated regex text */

struct dec {
	struct cfg__ectx *e;
	struct arena *a;
	const char *ns;
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
		DEC_ERR_AT(d, n, key, "duration %s is shorter than 1ms", n->str);
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

/* a DNS label as host names use it: letters (any case), digits, '-' */
static bool dec__host_label(const char *s, size_t n)
{
	size_t i;

	if (n == 0 || n > 63)
		return false;
	for (i = 0; i < n; i++) {
		char c = s[i];
		bool an = isalnum((unsigned char)c);
		if (!an && c != '-')
			return false;
		if ((i == 0 || i == n - 1) && !an)
			return false;
	}
	return true;
}

/* "foo" of "*foo.example.com": letters, digits, '-', ending alphanumeric */
static bool dec__wild_rest(const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '-')
			return false;
	return isalnum((unsigned char)s[n - 1]);
}

/* Istio's wildcard domain: "*", "*.example.com", "*example.com" (a wildcard
 * in the first label only), or a plain host name, optionally ending with a
 * dot; at most 255 characters. */
static bool dec__wildcard_domain(const char *s, bool allow_wildcard)
{
	size_t n = strlen(s), i, start = 0;

	if (n == 0 || n > 255)
		return false;
	if (s[n - 1] == '.')
		n--;
	if (n == 0)
		return false;
	for (i = 0; i <= n; i++) {
		if (i < n && s[i] != '.')
			continue;
		if (start == 0 && i > 0 && s[0] == '*') {
			if (!allow_wildcard || (i > 1 && !dec__wild_rest(s + 1, i - 1)))
				return false;
		} else if (!dec__host_label(s + start, i - start)) {
			return false;
		}
		start = i + 1;
	}
	return true;
}

static bool dec__port_ok(int64_t p)
{
	return p >= 1 && p <= 65535;
}

/* ------------------------------------------------------------- regexes */

/* Check an RE2 regex the way Envoy will see it: reject what RE2 does not
 * support (backreferences, lookaround), translate the RE2-only syntax
 * POSIX ERE lacks ((?:, (?P<name>, (?i), \d \s \w, lazy quantifiers) and
 * let regcomp judge the rest.  Returns NULL when fine, or a message. */
static const char *dec__regex_check(const char *re, char *msg, size_t cap)
{
	char out[DEC__REGEX_MAX];
	size_t o = 0, i, n = strlen(re);
	bool in_class = false;
	regex_t rx;
	int rc;

	if (n >= sizeof(out) / 2)
		return "regex is longer than 2048 characters";
#define EMIT(s)                                                    \
	do {                                                       \
		const char *e__ = (s);                             \
		size_t l__ = strlen(e__);                          \
		if (o + l__ >= sizeof(out))                        \
			return "regex is too long";                \
		memcpy(out + o, e__, l__);                         \
		o += l__;                                          \
	} while (0)
	for (i = 0; i < n; i++) {
		char c = re[i];
		if (c == '\\' && i + 1 < n) {
			char x = re[++i];
			if (x >= '1' && x <= '9' && !in_class)
				return "backreferences (\\1 ...) are not supported by RE2";
			switch (x) {
			case 'd': EMIT(in_class ? "0-9" : "[0-9]"); break;
			case 'D': EMIT(in_class ? "" : "[^0-9]"); break;
			case 's': EMIT(in_class ? " \t\r\n\f\v" : "[[:space:]]"); break;
			case 'S': EMIT(in_class ? "" : "[^[:space:]]"); break;
			case 'w': EMIT(in_class ? "A-Za-z0-9_" : "[A-Za-z0-9_]"); break;
			case 'W': EMIT(in_class ? "" : "[^A-Za-z0-9_]"); break;
			case 'b': case 'B': case 'A': case 'z': break;
			case 'n': EMIT("\n"); break;
			case 't': EMIT("\t"); break;
			case 'r': EMIT("\r"); break;
			case 'f': EMIT("\f"); break;
			case 'v': EMIT("\v"); break;
			case 'p': case 'P':
				/* \pL, \p{Greek}: accept, check the braces */
				if (i + 1 < n && re[i + 1] == '{') {
					const char *close = strchr(re + i + 1, '}');
					if (!close)
						return "unterminated \\p{...}";
					i = (size_t)(close - re);
				} else {
					i++;
				}
				EMIT("a");
				break;
			default:
				if (isalnum((unsigned char)x) && x != 'x')
					return "unknown escape sequence";
				if (in_class && (x == ']' || x == '\\' || x == '^' || x == '-')) {
					/* ERE has no escapes in brackets; keep a placeholder character */
					EMIT("a");
				} else if (x == 'x') {
					EMIT("a");
					while (i + 1 < n && isxdigit((unsigned char)re[i + 1]))
						i++;
				} else {
					char two[3] = { '\\', x, '\0' };
					EMIT(in_class ? two + 1 : two);
				}
			}
			continue;
		}
		if (in_class) {
			if (c == ']' && !(o > 0 && (out[o - 1] == '[' || (out[o - 1] == '^' && o > 1 && out[o - 2] == '['))))
				in_class = false;
			else if (c == '[' && i + 1 < n && re[i + 1] == ':') {
				const char *close = strstr(re + i, ":]");
				if (close) {
					char tmp[32];
					size_t l = (size_t)(close - (re + i)) + 2;
					if (l >= sizeof(tmp))
						return "bad character class";
					memcpy(tmp, re + i, l);
					tmp[l] = '\0';
					EMIT(tmp);
					i += l - 1;
					continue;
				}
			}
			char one[2] = { c, '\0' };
			EMIT(one);
			continue;
		}
		if (c == '[') {
			in_class = true;
			EMIT("[");
			if (i + 1 < n && re[i + 1] == '^') {
				EMIT("^");
				i++;
			}
			continue;
		}
		if (c == '(' && i + 1 < n && re[i + 1] == '?') {
			const char *r = re + i + 2;
			if (r[0] == '=' || r[0] == '!' || (r[0] == '<' && (r[1] == '=' || r[1] == '!')))
				return "lookahead and lookbehind are not supported by RE2";
			if (r[0] == ':') {
				EMIT("(");
				i += 2;
				continue;
			}
			if (r[0] == 'P' || r[0] == '<') {
				const char *close = strchr(r, '>');
				if (!close)
					return "unterminated group name";
				EMIT("(");
				i = (size_t)(close - re);
				continue;
			}
			/* flags: (?i) (?s) (?m) (?U) or (?i:...) */
			{
				size_t j = 2;
				while (i + j < n && strchr("imsU-", re[i + j]))
					j++;
				if (j == 2 || i + j >= n)
					return "unknown group flag";
				if (re[i + j] == ')') {
					i += j;
					continue;
				}
				if (re[i + j] == ':') {
					EMIT("(");
					i += j;
					continue;
				}
				return "unknown group flag";
			}
		}
		if ((c == '?' || c == '+') && o > 0 && (out[o - 1] == '*' || out[o - 1] == '+' || out[o - 1] == '?' ||
							 out[o - 1] == '}') && i > 0 && re[i - 1] != '\\') {
			/* lazy (*?) or possessive-looking quantifier: RE2 takes *? +? ?? {n}? */
			if (c == '+')
				return "possessive quantifiers are not supported by RE2";
			continue;
		}
		if (c == '{') {
			/* RE2 caps counted repetition at 1000 */
			char *end;
			long a = strtol(re + i + 1, &end, 10);
			if (end != re + i + 1 && (a > 1000 || (*end == ',' && strtol(end + 1, NULL, 10) > 1000)))
				return "repetition count above 1000 is not supported by RE2";
		}
		{
			char one[2] = { c, '\0' };
			EMIT(one);
		}
	}
#undef EMIT
	out[o] = '\0';
	rc = regcomp(&rx, out, REG_EXTENDED | REG_NOSUB);
	if (rc != 0) {
		regerror(rc, &rx, msg, cap);
		return msg;
	}
	regfree(&rx);
	return NULL;
}

static void dec__regex(struct dec *d, const struct cfg__node *n, const char *key)
{
	char msg[128];
	const char *why;

	if (!n || !n->str)
		return;
	if (strlen(n->str) != n->len) {
		DEC_ERR_AT(d, n, key, "regex contains a NUL byte");
		return;
	}
	why = dec__regex_check(n->str, msg, sizeof(msg));
	if (why)
		DEC_ERR_AT(d, n, key, "invalid regex \"%s\": %s", n->str, why);
}

/* ------------------------------------------------------------- VirtualService */

static void dec__string_match(struct dec *d, const struct cfg__node *n, struct cfg_string_match *out)
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
	} else if ((v = F(n, "regex"))) {
		out->type = CFG_MATCH_REGEX;
		out->value = dec__str(d, v);
		dec__regex(d, v, "regex");
	}
}

static size_t dec__header_matches(struct dec *d, const struct cfg__node *map, bool invert, struct cfg_header_match *out,
				  bool lower)
{
	size_t i;

	if (!map || map->type != CFG__MAP)
		return 0;
	for (i = 0; i < map->n; i++) {
		size_t mark = dec__push(d, map->k[i]->str), j;
		char *name = dec__str(d, map->k[i]);

		if (name && lower)
			for (j = 0; name[j]; j++)
				name[j] = (char)tolower((unsigned char)name[j]);
		if (name && !name[0])
			cfg__error(d->e, map->k[i], "header name may not be empty");
		out[i].name = name;
		out[i].invert = invert;
		dec__string_match(d, map->v[i]->type == CFG__MAP ? map->v[i] : NULL, &out[i].match);
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
	dec__string_match(d, F(n, "uri"), &m->uri);
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
	m->source_namespace = dec__str(d, F(n, "sourceNamespace"));
	dec__strs(d, F(n, "gateways"), &m->gateways);
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
		DEC_ERR_AT(d, host, "host", "destination host may not be \"*\"");
	} else if (!dec__wildcard_domain(host->str, true) && !cfg__is_ip(host->str)) {
		DEC_ERR_AT(d, host, "host", "\"%s\" is not a valid host name", host->str);
	}
	if (subset) {
		out->subset = dec__str(d, subset);
		if (!cfg__is_dns1123_label(subset->str))
			DEC_ERR_AT(d, subset, "subset", "\"%s\" is not a valid subset name (a DNS label: lower-case "
				   "letters, digits and '-')", subset->str);
	}
	if (port) {
		size_t mark = dec__push(d, "port");
		out->port = dec__int(port, -1);
		if (!dec__port_ok(out->port))
			DEC_ERR_AT(d, port, "number", "port %lld is not in range 1..65535", (long long)out->port);
		dec__pop(d, mark);
	}
}

static void dec__header_ops(struct dec *d, const struct cfg__node *n, struct cfg_header_ops *out)
{
	size_t i, mark;
	const struct cfg__node *rm = F(n, "remove");

	dec__labels(d, F(n, "set"), &out->set);
	dec__labels(d, F(n, "add"), &out->add);
	dec__strs(d, rm, &out->remove);
	for (i = 0; i < out->set.n + out->add.n; i++) {
		const struct cfg_kv *kv = i < out->set.n ? &out->set.v[i] : &out->add.v[i - out->set.n];
		if (kv->key && !kv->key[0]) {
			mark = dec__push(d, i < out->set.n ? "set" : "add");
			cfg__error(d->e, n, "header name may not be empty");
			dec__pop(d, mark);
		}
	}
}

static void dec__headers(struct dec *d, const struct cfg__node *n, struct cfg_headers *out)
{
	size_t mark;

	if (!n)
		return;
	mark = dec__push(d, "headers");
	{
		size_t m2 = dec__push(d, "request");
		dec__header_ops(d, F(n, "request"), &out->request);
		dec__pop(d, m2);
		m2 = dec__push(d, "response");
		dec__header_ops(d, F(n, "response"), &out->response);
		dec__pop(d, m2);
	}
	dec__pop(d, mark);
}

/* route: [...] of an http or tcp route; weights must add up to 100 when
 * there is more than one destination. */
static size_t dec__route_destinations(struct dec *d, const struct cfg__node *seq, struct cfg_route_destination **out,
				      bool http)
{
	int64_t total = 0;
	const struct cfg__node *last = NULL;
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

		m3 = dec__push(d, "destination");
		dec__destination(d, F(rd, "destination"), &r->destination);
		dec__pop(d, m3);
		r->weight = -1;
		if (w) {
			r->weight = dec__int(w, -1);
			if (r->weight < 0)
				DEC_ERR_AT(d, w, "weight", "weight %lld is negative", (long long)r->weight);
			else
				total += r->weight;
		}
		if (http)
			dec__headers(d, F(rd, "headers"), &r->headers);
		last = rd;
		dec__pop(d, m2);
	}
	if (seq->n > 1 && total != 100) {
		const struct cfg__node *w = F(last, "weight");
		size_t m2 = dec__idx(d, seq->n - 1);
		if (w)
			DEC_ERR_AT(d, w, "weight", "weights add up to %lld, must be 100", (long long)total);
		else
			DEC_ERR_AT(d, last, "weight",
				   "weights add up to %lld, must be 100 (a route with several destinations "
				   "needs a weight on each)", (long long)total);
		dec__pop(d, m2);
	}
	dec__pop(d, mark);
	return seq->n;
}

static bool dec__percent(struct dec *d, const struct cfg__node *n, const char *key, double *out)
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
	*out = p;
	return true;
}

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
	/* HTTP status codes are allowed too */
	if (n == 3 && isdigit((unsigned char)tok[0]) && isdigit((unsigned char)tok[1]) && isdigit((unsigned char)tok[2]))
		return tok[0] >= '1' && tok[0] <= '5';
	return false;
}

static void dec__retries(struct dec *d, const struct cfg__node *n, struct cfg_retries *r)
{
	const struct cfg__node *v;

	r->per_try_timeout = -1;
	if (!n)
		return;
	r->set = true;
	r->attempts = 0; /* as Istio: retries present without attempts disables them */
	if ((v = F(n, "attempts"))) {
		r->attempts = dec__int(v, 0);
		if (r->attempts < 0)
			DEC_ERR_AT(d, v, "attempts", "attempts %lld is negative", (long long)r->attempts);
	}
	dec__duration(d, n, "perTryTimeout", &r->per_try_timeout);
	{
		int64_t backoff = -1;
		dec__duration(d, n, "backoff", &backoff);
	}
	if ((v = F(n, "retryOn"))) {
		const char *p = v->str;
		r->retry_on = dec__str(d, v);
		while (p && *p) {
			const char *c = strchr(p, ',');
			size_t len = c ? (size_t)(c - p) : strlen(p);
			while (len && *p == ' ') {
				p++;
				len--;
			}
			while (len && p[len - 1] == ' ')
				len--;
			if (!dec__retry_on_ok(p, len)) {
				DEC_ERR_AT(d, v, "retryOn", "unknown retry condition \"%.*s\"", (int)len, p);
				break;
			}
			p = c ? c + 1 : p + strlen(p);
		}
	}
	r->retry_remote_localities = dec__bool(F(n, "retryRemoteLocalities")) == 1;
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
		cfg__error(d->e, n, "fault needs a delay or an abort");
	if (delay) {
		size_t m2 = dec__push(d, "delay");
		f->has_delay = true;
		f->delay_percent = 100;
		if (F(delay, "exponentialDelay"))
			DEC_ERR_AT(d, F(delay, "exponentialDelay"), "exponentialDelay", "exponentialDelay is not supported");
		else if (!F(delay, "fixedDelay"))
			DEC_ERR_AT(d, delay, "fixedDelay", "a delay needs fixedDelay");
		dec__duration(d, delay, "fixedDelay", &f->fixed_delay);
		if (!dec__percent(d, delay, "percentage", &f->delay_percent) && (v = F(delay, "percent"))) {
			f->delay_percent = dec__num(v, 100);
			if (f->delay_percent < 0 || f->delay_percent > 100)
				DEC_ERR_AT(d, v, "percent", "percent %s is not in range 0..100", v->str);
		}
		dec__pop(d, m2);
	}
	if (abort_) {
		size_t m2 = dec__push(d, "abort");
		f->has_abort = true;
		f->abort_percent = 100;
		dec__percent(d, abort_, "percentage", &f->abort_percent);
		if ((v = F(abort_, "httpStatus"))) {
			f->http_status = dec__int(v, -1);
			if (f->http_status < 200 || f->http_status > 599)
				DEC_ERR_AT(d, v, "httpStatus", "HTTP status %lld is not in range 200..599",
					   (long long)f->http_status);
		} else if ((v = F(abort_, "grpcStatus"))) {
			f->grpc_status = dec__str(d, v);
			if (!dec__grpc_status_ok(v->str))
				DEC_ERR_AT(d, v, "grpcStatus", "\"%s\" is not a gRPC status name (e.g. UNAVAILABLE)", v->str);
		} else if ((v = F(abort_, "http2Error"))) {
			DEC_ERR_AT(d, v, "http2Error", "HTTP/2 abort fault injection is not supported");
		} else {
			DEC_ERR_AT(d, abort_, "httpStatus", "an abort needs httpStatus or grpcStatus");
		}
		dec__pop(d, m2);
	}
	dec__pop(d, mark);
}

static void dec__http_route(struct dec *d, const struct cfg__node *n, struct cfg_http_route *r)
{
	const struct cfg__node *v, *match = F(n, "match"), *route = F(n, "route"), *redirect = F(n, "redirect");
	const struct cfg__node *rewrite = F(n, "rewrite");
	size_t i, mark;

	r->line = n->line;
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
	if ((v = F(n, "delegate")))
		DEC_ERR_AT(d, v, "delegate", "delegate is not supported by meshd");
	if ((v = F(n, "directResponse")))
		DEC_ERR_AT(d, v, "directResponse", "directResponse is not supported by meshd");
	if (redirect) {
		mark = dec__push(d, "redirect");
		r->redirect.set = true;
		r->redirect.uri = dec__str(d, F(redirect, "uri"));
		r->redirect.authority = dec__str(d, F(redirect, "authority"));
		r->redirect.scheme = dec__str(d, F(redirect, "scheme"));
		r->redirect.port = dec__int(F(redirect, "port"), -1);
		r->redirect.redirect_code = -1;
		if ((v = F(redirect, "port")) && !dec__port_ok(r->redirect.port))
			DEC_ERR_AT(d, v, "port", "port %lld is not in range 1..65535", (long long)r->redirect.port);
		if ((v = F(redirect, "redirectCode"))) {
			r->redirect.redirect_code = dec__int(v, -1);
			if (r->redirect.redirect_code < 300 || r->redirect.redirect_code > 399)
				DEC_ERR_AT(d, v, "redirectCode", "%lld is not a valid redirect code, must be 3xx",
					   (long long)r->redirect.redirect_code);
		}
		if ((v = F(redirect, "derivePort")))
			DEC_ERR_AT(d, v, "derivePort", "derivePort is not supported by meshd");
		if ((v = F(redirect, "prefixRewrite")))
			DEC_ERR_AT(d, v, "prefixRewrite", "prefixRewrite is not supported by meshd");
		dec__pop(d, mark);
	}
	if (r->n_route && redirect)
		DEC_ERR_AT(d, redirect, "redirect", "a route cannot have both route and redirect");
	if (!r->n_route && !redirect && !F(n, "delegate") && !F(n, "directResponse"))
		cfg__error(d->e, n, "an http route needs route (destinations) or redirect");
	if (rewrite) {
		mark = dec__push(d, "rewrite");
		r->rewrite.set = true;
		r->rewrite.uri = dec__str(d, F(rewrite, "uri"));
		r->rewrite.authority = dec__str(d, F(rewrite, "authority"));
		if ((v = F(rewrite, "uriRegexRewrite")))
			DEC_ERR_AT(d, v, "uriRegexRewrite", "uriRegexRewrite is not supported by meshd");
		dec__pop(d, mark);
		if (redirect)
			DEC_ERR_AT(d, rewrite, "rewrite", "a route cannot have both rewrite and redirect");
	}
	dec__duration(d, n, "timeout", &r->timeout);
	mark = dec__push(d, "retries");
	dec__retries(d, F(n, "retries"), &r->retries);
	dec__pop(d, mark);
	dec__fault(d, F(n, "fault"), &r->fault);
	/* mirror: mirror + mirrorPercentage (or the deprecated integer forms), or mirrors[0] */
	{
		const struct cfg__node *mirror = F(n, "mirror"), *mirrors = F(n, "mirrors");
		if (mirror && mirrors)
			DEC_ERR_AT(d, mirrors, "mirrors", "mirror and mirrors cannot both be set");
		if (mirrors && mirrors->n > 1)
			DEC_ERR_AT(d, mirrors, "mirrors", "meshd supports one mirror per route, %zu are set", mirrors->n);
		r->mirror.percent = 100;
		if (mirror) {
			r->mirror.set = true;
			mark = dec__push(d, "mirror");
			dec__destination(d, mirror, &r->mirror.destination);
			dec__pop(d, mark);
			if (!dec__percent(d, n, "mirrorPercentage", &r->mirror.percent)) {
				if (!dec__percent(d, n, "mirrorPercent", &r->mirror.percent))
					dec__percent(d, n, "mirror_percent", &r->mirror.percent);
			}
		} else if (mirrors && mirrors->n) {
			r->mirror.set = true;
			mark = dec__push(d, "mirrors");
			{
				size_t m2 = dec__idx(d, 0), m3 = dec__push(d, "destination");
				dec__destination(d, F(mirrors->v[0], "destination"), &r->mirror.destination);
				dec__pop(d, m3);
				dec__percent(d, mirrors->v[0], "percentage", &r->mirror.percent);
				dec__pop(d, m2);
			}
			dec__pop(d, mark);
		} else if ((v = F(n, "mirrorPercentage"))) {
			DEC_ERR_AT(d, v, "mirrorPercentage", "mirrorPercentage needs mirror");
		}
	}
	dec__headers(d, F(n, "headers"), &r->headers);
}

static void dec__vs_host(struct dec *d, const struct cfg__node *h, bool mesh)
{
	if (!h->len)
		cfg__error(d->e, h, "host may not be empty");
	else if (strcmp(h->str, "*") == 0 && mesh)
		cfg__error(d->e, h, "wildcard host * is not allowed for virtual services bound to the mesh gateway");
	else if (!dec__wildcard_domain(h->str, true) && !cfg__is_ip(h->str))
		cfg__error(d->e, h, "\"%s\" is not a valid host: DNS labels of letters, digits and '-', "
			   "optionally starting with a wildcard (*.example.com)", h->str);
}

static void dec__virtual_service(struct dec *d, const struct cfg__node *spec, struct cfg_virtual_service *vs)
{
	const struct cfg__node *hosts = F(spec, "hosts"), *http = F(spec, "http"), *tcp = F(spec, "tcp");
	const struct cfg__node *tls = F(spec, "tls");
	bool mesh = true;
	size_t i, j, mark;

	dec__strs(d, hosts, &vs->hosts);
	dec__strs(d, F(spec, "gateways"), &vs->gateways);
	dec__strs(d, F(spec, "exportTo"), &vs->export_to);
	if (vs->gateways.n) {
		mesh = false;
		for (i = 0; i < vs->gateways.n; i++)
			if (strcmp(vs->gateways.v[i], "mesh") == 0)
				mesh = true;
	}
	mark = dec__push(d, "hosts");
	if (!hosts || !hosts->n) {
		cfg__error(d->e, hosts ? hosts : spec, "at least one host is required");
	} else {
		for (i = 0; i < hosts->n; i++) {
			size_t m2 = dec__idx(d, i);
			dec__vs_host(d, hosts->v[i], mesh);
			for (j = 0; j < i; j++)
				if (hosts->v[j]->str && hosts->v[i]->str && strcasecmp(hosts->v[j]->str, hosts->v[i]->str) == 0)
					cfg__error(d->e, hosts->v[i], "duplicate host \"%s\"", hosts->v[i]->str);
			dec__pop(d, m2);
		}
	}
	dec__pop(d, mark);
	if ((!http || !http->n) && (!tcp || !tcp->n) && (!tls || !tls->n))
		cfg__error(d->e, spec, "http, tcp or tls routes are required");
	if (http && http->n) {
		vs->http = dec__alloc(d, http->n, sizeof(*vs->http));
		if (!vs->http)
			return;
		mark = dec__push(d, "http");
		for (i = 0; i < http->n; i++) {
			size_t m2 = dec__idx(d, i);
			dec__http_route(d, http->v[i], &vs->http[i]);
			dec__pop(d, m2);
		}
		dec__pop(d, mark);
		vs->n_http = http->n;
	}
	if (tcp && tcp->n) {
		vs->tcp = dec__alloc(d, tcp->n, sizeof(*vs->tcp));
		if (!vs->tcp)
			return;
		mark = dec__push(d, "tcp");
		for (i = 0; i < tcp->n; i++) {
			const struct cfg__node *t = tcp->v[i], *m = F(t, "match");
			size_t m2 = dec__idx(d, i);
			vs->tcp[i].match_port = -1;
			if (m && m->n) {
				const struct cfg__node *p = F(m->v[0], "port");
				if (m->n > 1 || F(m->v[0], "destinationSubnets") || F(m->v[0], "sourceLabels") ||
				    F(m->v[0], "sourceSubnet") || F(m->v[0], "sourceNamespace") || F(m->v[0], "gateways"))
					DEC_ERR_AT(d, m, "match", "meshd matches tcp routes on port only (one match with a port)");
				if (p) {
					size_t m3 = dec__push(d, "match"), m4 = dec__idx(d, 0);
					vs->tcp[i].match_port = dec__int(p, -1);
					if (!dec__port_ok(vs->tcp[i].match_port))
						DEC_ERR_AT(d, p, "port", "port %lld is not in range 1..65535",
							   (long long)vs->tcp[i].match_port);
					dec__pop(d, m4);
					dec__pop(d, m3);
				}
			}
			vs->tcp[i].n_route = dec__route_destinations(d, F(t, "route"), &vs->tcp[i].route, false);
			if (!vs->tcp[i].n_route)
				DEC_ERR_AT(d, t, "route", "a tcp route needs at least one destination");
			dec__pop(d, m2);
		}
		dec__pop(d, mark);
		vs->n_tcp = tcp->n;
	}
	if (tls && tls->n)
		DEC_ERR_AT(d, tls, "tls", "tls routes are not supported by meshd");
}

/* ------------------------------------------------------------- DestinationRule */

static void dec__nonneg(struct dec *d, const struct cfg__node *map, const char *key, int64_t *out)
{
	const struct cfg__node *v = F(map, key);

	if (!v)
		return;
	*out = dec__int(v, -1);
	if (*out < 0)
		DEC_ERR_AT(d, v, key, "%s must not be negative", key);
}

static void dec__load_balancer(struct dec *d, const struct cfg__node *n, struct cfg_load_balancer *lb)
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
		DEC_ERR_AT(d, v, "backendUtilization", "backendUtilization is not supported by meshd");
	if ((ch = F(n, "consistentHash"))) {
		struct cfg_consistent_hash *h = &lb->consistent_hash;
		size_t m2 = dec__push(d, "consistentHash");
		lb->has_consistent_hash = true;
		h->cookie_ttl = -1;
		h->minimum_ring_size = -1;
		if ((v = F(ch, "httpHeaderName"))) {
			h->key = CFG_HASH_HEADER;
			h->header_name = dec__str(d, v);
		} else if ((v = F(ch, "httpCookie"))) {
			size_t m3 = dec__push(d, "httpCookie");
			h->key = CFG_HASH_COOKIE;
			h->cookie_name = dec__str(d, F(v, "name"));
			h->cookie_path = dec__str(d, F(v, "path"));
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
		h->minimum_ring_size = dec__int(F(ch, "minimumRingSize"), -1);
		if ((v = F(ch, "ringHash")))
			h->minimum_ring_size = dec__int(F(v, "minimumRingSize"), h->minimum_ring_size);
		if (F(ch, "maglev"))
			h->maglev = true;
		dec__pop(d, m2);
	}
	if ((loc = F(n, "localityLbSetting"))) {
		struct cfg_locality_lb *l = &lb->locality;
		const struct cfg__node *dist = F(loc, "distribute"), *fo = F(loc, "failover");
		size_t m2 = dec__push(d, "localityLbSetting");
		l->set = true;
		l->enabled = dec__bool(F(loc, "enabled"));
		if (dist && fo && dist->n && fo->n)
			cfg__error(d->e, loc, "distribute and failover cannot both be set");
		if (dist && dist->n) {
			size_t m3 = dec__push(d, "distribute");
			l->distribute = dec__alloc(d, dist->n, sizeof(*l->distribute));
			for (i = 0; l->distribute && i < dist->n; i++) {
				const struct cfg__node *e = dist->v[i], *to = F(e, "to");
				size_t m4 = dec__idx(d, i), k;
				int64_t sum = 0;
				l->distribute[i].from = dec__str(d, F(e, "from"));
				if (to && to->n) {
					l->distribute[i].to = dec__alloc(d, to->n, sizeof(struct cfg_kv));
					for (k = 0; l->distribute[i].to && k < to->n; k++) {
						l->distribute[i].to[k].key = dec__str(d, to->k[k]);
						l->distribute[i].to[k].value = arena_printf(d->a, "%lld",
							(long long)dec__int(to->v[k], 0));
						sum += dec__int(to->v[k], 0);
					}
					l->distribute[i].n_to = to->n;
				}
				if (sum != 100)
					DEC_ERR_AT(d, to ? to : e, "to", "weights add up to %lld, must be 100", (long long)sum);
				dec__pop(d, m4);
			}
			l->n_distribute = dist->n;
			dec__pop(d, m3);
		}
		if (fo && fo->n) {
			l->failover = dec__alloc(d, fo->n, sizeof(*l->failover));
			for (i = 0; l->failover && i < fo->n; i++) {
				l->failover[i].from = dec__str(d, F(fo->v[i], "from"));
				l->failover[i].to = dec__str(d, F(fo->v[i], "to"));
				if (l->failover[i].from && l->failover[i].to &&
				    strcmp(l->failover[i].from, l->failover[i].to) == 0) {
					size_t m3 = dec__push(d, "failover"), m4 = dec__idx(d, i);
					DEC_ERR_AT(d, F(fo->v[i], "to"), "to", "failover from and to are the same region");
					dec__pop(d, m4);
					dec__pop(d, m3);
				}
			}
			l->n_failover = fo->n;
		}
		dec__strs(d, F(loc, "failoverPriority"), &l->failover_priority);
		dec__pop(d, m2);
	}
	dec__duration(d, n, "warmupDurationSecs", &lb->warmup_duration);
	if ((v = F(n, "warmup"))) {
		size_t m2 = dec__push(d, "warmup");
		dec__duration(d, v, "duration", &lb->warmup_duration);
		dec__pop(d, m2);
	}
	dec__pop(d, mark);
}

static void dec__connection_pool(struct dec *d, const struct cfg__node *n, struct cfg_connection_pool *cp)
{
	const struct cfg__node *tcp = F(n, "tcp"), *http = F(n, "http"), *v;
	size_t mark, m2;

	cp->max_connections = cp->connect_timeout = cp->max_connection_duration = -1;
	cp->http1_max_pending_requests = cp->http2_max_requests = cp->max_requests_per_connection = -1;
	cp->max_retries = cp->idle_timeout = -1;
	cp->max_concurrent_streams = -1;
	if (!n)
		return;
	cp->set = true;
	mark = dec__push(d, "connectionPool");
	if (tcp) {
		m2 = dec__push(d, "tcp");
		dec__nonneg(d, tcp, "maxConnections", &cp->max_connections);
		dec__duration(d, tcp, "connectTimeout", &cp->connect_timeout);
		dec__duration(d, tcp, "maxConnectionDuration", &cp->max_connection_duration);
		dec__pop(d, m2);
	}
	if (http) {
		int64_t mcs = -1;
		m2 = dec__push(d, "http");
		dec__nonneg(d, http, "http1MaxPendingRequests", &cp->http1_max_pending_requests);
		dec__nonneg(d, http, "http2MaxRequests", &cp->http2_max_requests);
		dec__nonneg(d, http, "maxRequestsPerConnection", &cp->max_requests_per_connection);
		dec__nonneg(d, http, "maxRetries", &cp->max_retries);
		dec__nonneg(d, http, "maxConcurrentStreams", &mcs);
		cp->max_concurrent_streams = (int)mcs;
		dec__duration(d, http, "idleTimeout", &cp->idle_timeout);
		if ((v = F(http, "h2UpgradePolicy")))
			cp->h2_upgrade_policy = dec__str(d, v);
		dec__pop(d, m2);
	}
	dec__pop(d, mark);
}

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
	dec__nonneg(d, n, "consecutiveErrors", &od->consecutive_5xx_errors);
	dec__nonneg(d, n, "consecutive5xxErrors", &od->consecutive_5xx_errors);
	dec__nonneg(d, n, "consecutiveGatewayErrors", &od->consecutive_gateway_errors);
	dec__nonneg(d, n, "consecutiveLocalOriginFailures", &od->consecutive_local_origin_failures);
	od->split_external_local_origin_errors = dec__bool(F(n, "splitExternalLocalOriginErrors")) == 1;
	dec__duration(d, n, "interval", &od->interval);
	dec__duration(d, n, "baseEjectionTime", &od->base_ejection_time);
	if ((v = F(n, "maxEjectionPercent"))) {
		od->max_ejection_percent = dec__int(v, -1);
		if (od->max_ejection_percent < 0 || od->max_ejection_percent > 100)
			DEC_ERR_AT(d, v, "maxEjectionPercent", "maxEjectionPercent %s is not in range 0..100", v->str);
	}
	if ((v = F(n, "minHealthPercent"))) {
		od->min_health_percent = dec__int(v, -1);
		if (od->min_health_percent < 0 || od->min_health_percent > 100)
			DEC_ERR_AT(d, v, "minHealthPercent", "minHealthPercent %s is not in range 0..100", v->str);
	}
	if (od->consecutive_local_origin_failures >= 0 && !od->split_external_local_origin_errors)
		DEC_ERR_AT(d, F(n, "consecutiveLocalOriginFailures"), "consecutiveLocalOriginFailures",
			   "consecutiveLocalOriginFailures needs splitExternalLocalOriginErrors: true");
	dec__pop(d, mark);
}

static void dec__client_tls(struct dec *d, const struct cfg__node *n, struct cfg_client_tls *t)
{
	const struct cfg__node *v;
	size_t mark;

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
	if (t->mode == CFG_TLS_MUTUAL && !t->credential_name) {
		if (!t->client_certificate)
			DEC_ERR_AT(d, n, "clientCertificate", "MUTUAL tls needs clientCertificate (or credentialName)");
		if (!t->private_key)
			DEC_ERR_AT(d, n, "privateKey", "MUTUAL tls needs privateKey (or credentialName)");
	}
	if (t->mode == CFG_TLS_ISTIO_MUTUAL && (t->client_certificate || t->private_key || t->ca_certificates ||
						t->credential_name))
		cfg__error(d->e, n, "ISTIO_MUTUAL uses the mesh's certificates; clientCertificate, privateKey, "
			   "caCertificates and credentialName must not be set");
	dec__pop(d, mark);
}

static void dec__traffic_policy_body(struct dec *d, const struct cfg__node *n, struct cfg_traffic_policy *p)
{
	dec__load_balancer(d, F(n, "loadBalancer"), &p->load_balancer);
	dec__connection_pool(d, F(n, "connectionPool"), &p->connection_pool);
	dec__outlier(d, F(n, "outlierDetection"), &p->outlier_detection);
	dec__client_tls(d, F(n, "tls"), &p->tls);
}

static void dec__dr_policy(struct dec *d, const struct cfg__node *n, struct cfg_dr_policy *out)
{
	const struct cfg__node *pls, *v;
	size_t i, j, mark;

	if (!n) {
		dec__traffic_policy_body(d, NULL, &out->policy); /* defaults */
		return;
	}
	mark = dec__push(d, "trafficPolicy");
	out->set = true;
	dec__traffic_policy_body(d, n, &out->policy);
	if ((v = F(n, "tunnel")))
		DEC_ERR_AT(d, v, "tunnel", "tunnel is not supported by meshd");
	if ((v = F(n, "proxyProtocol")))
		DEC_ERR_AT(d, v, "proxyProtocol", "proxyProtocol is not supported by meshd");
	pls = F(n, "portLevelSettings");
	if (pls && pls->n) {
		size_t m2 = dec__push(d, "portLevelSettings");
		out->port_level = dec__alloc(d, pls->n, sizeof(*out->port_level));
		for (i = 0; out->port_level && i < pls->n; i++) {
			const struct cfg__node *e = pls->v[i], *port = F(F(e, "port"), "number");
			size_t m3 = dec__idx(d, i);
			struct cfg_port_traffic_policy *pp = &out->port_level[i];

			pp->port = dec__int(port, -1);
			if (!port)
				DEC_ERR_AT(d, e, "port", "port.number is required");
			else if (!dec__port_ok(pp->port))
				DEC_ERR_AT(d, port, "port", "port %lld is not in range 1..65535", (long long)pp->port);
			for (j = 0; port && j < i; j++)
				if (out->port_level[j].port == pp->port)
					DEC_ERR_AT(d, port, "port", "port %lld has settings twice", (long long)pp->port);
			if (!F(e, "loadBalancer") && !F(e, "connectionPool") && !F(e, "outlierDetection") && !F(e, "tls"))
				cfg__error(d->e, e, "port traffic policy must have at least one field");
			dec__traffic_policy_body(d, e, &pp->policy);
			dec__pop(d, m3);
		}
		out->n_port_level = pls->n;
		dec__pop(d, m2);
	}
	dec__pop(d, mark);
}

static void dec__selector_labels(struct dec *d, const struct cfg__node *sel, const char *key, struct cfg_labels *out,
				 bool *has)
{
	const struct cfg__node *ml = F(sel, key);
	size_t i, mark;

	if (!sel)
		return;
	*has = true;
	dec__labels(d, ml, out);
	if (!ml)
		return;
	mark = dec__push(d, key);
	for (i = 0; i < ml->n; i++) {
		const char *k = ml->k[i]->str, *v = ml->v[i]->str ? ml->v[i]->str : "";
		if (!k[0])
			cfg__error(d->e, ml->k[i], "label key may not be empty");
		else if (strchr(k, '*') || strchr(v, '*'))
			DEC_ERR_AT(d, ml->v[i], k, "wildcards are not allowed in selector labels");
	}
	dec__pop(d, mark);
}

static void dec__destination_rule(struct dec *d, const struct cfg__node *spec, struct cfg_destination_rule *dr)
{
	const struct cfg__node *host = F(spec, "host"), *subsets = F(spec, "subsets"), *sel;
	size_t i, j, mark;

	dr->host = dec__str(d, host);
	if (!host || !host->len)
		DEC_ERR_AT(d, host ? host : spec, "host", "host is required");
	else if (!dec__wildcard_domain(host->str, true) || strcmp(host->str, "*") == 0)
		DEC_ERR_AT(d, host, "host", "\"%s\" is not a valid host name", host->str);
	dec__strs(d, F(spec, "exportTo"), &dr->export_to);
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
			else if (!cfg__is_dns1123_label(name->str))
				DEC_ERR_AT(d, name, "name", "\"%s\" is not a valid subset name (a DNS label: lower-case "
					   "letters, digits and '-', at most 63)", name->str);
			for (j = 0; name && j < i; j++)
				if (dr->subsets[j].name && strcmp(dr->subsets[j].name, name->str) == 0)
					DEC_ERR_AT(d, name, "name", "duplicate subset name \"%s\"", name->str);
			dec__labels(d, F(s, "labels"), &dr->subsets[i].labels);
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
	if ((v = F(n, "weight")))
		w->weight = dec__int(v, -1);
	if (!addr || !addr->len) {
		if (!w->network)
			DEC_ERR_AT(d, addr ? addr : n, "address", "address is required");
	} else if (strncmp(addr->str, "unix://", 7) == 0) {
		const char *path = addr->str + 7;
		if ((path[0] != '/' && path[0] != '@') || path[strlen(path) - 1] == '/')
			DEC_ERR_AT(d, addr, "address", "\"%s\" is not a valid unix socket address (an absolute path or @name)",
				   addr->str);
		if (ports && ports->n)
			DEC_ERR_AT(d, ports, "ports", "a unix socket endpoint must not have ports");
	} else if (!cfg__is_ip(addr->str)) {
		if (ip_only)
			DEC_ERR_AT(d, addr, "address", "\"%s\" is not an IP address (resolution STATIC needs IP "
				   "addresses)", addr->str);
		else if (!fqdn_ok || !dec__wildcard_domain(addr->str, false))
			DEC_ERR_AT(d, addr, "address", "\"%s\" is not a valid IP address or host name", addr->str);
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
			DEC_ERR_AT(d, v, "resolution", "DYNAMIC_DNS resolution is not supported by meshd");
	}
	mark = dec__push(d, "hosts");
	if (!hosts || !hosts->n)
		cfg__error(d->e, hosts ? hosts : spec, "at least one host is required");
	for (i = 0; hosts && i < hosts->n; i++) {
		const struct cfg__node *h = hosts->v[i];
		size_t m2 = dec__idx(d, i);
		if (!h->len || strcmp(h->str, "*") == 0 || !dec__wildcard_domain(h->str, true))
			cfg__error(d->e, h, "\"%s\" is not a valid host (wildcard \"*\" alone is not allowed)", h->str);
		else if ((se->resolution == CFG_RESOLUTION_DNS || se->resolution == CFG_RESOLUTION_DNS_ROUND_ROBIN) &&
			 !(eps && eps->n) && h->str[0] == '*')
			cfg__error(d->e, h, "resolution DNS without endpoints needs host names that resolve, not "
				   "wildcards like \"%s\"", h->str);
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
		dec__pop(d, mark);
	}
	if (sel) {
		size_t m2 = dec__push(d, "workloadSelector");
		dec__selector_labels(d, sel, "labels", &se->workload_selector, &se->has_workload_selector);
		dec__pop(d, m2);
		if (eps)
			DEC_ERR_AT(d, eps, "endpoints", "workloadSelector and endpoints cannot both be set");
	}
	if (eps && eps->n) {
		if (se->resolution == CFG_RESOLUTION_NONE)
			DEC_ERR_AT(d, eps, "endpoints", "resolution NONE cannot have endpoints (use STATIC or DNS)");
		if (se->resolution == CFG_RESOLUTION_DNS_ROUND_ROBIN && eps->n > 1)
			DEC_ERR_AT(d, eps, "endpoints", "resolution DNS_ROUND_ROBIN allows at most one endpoint, %zu are set",
				   eps->n);
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

static const char dec__reqauth_msg[] =
	"request authentication (RequestAuthentication, JWT) is not supported by meshd, so %s can never match";

static void dec__authz_strs(struct dec *d, const struct cfg__node *n, const char *key, struct cfg_strs *out,
			    int check /* 0 none, 1 ip/cidr, 2 port, 3 reqauth */)
{
	const struct cfg__node *v = F(n, key);
	size_t i, mark;

	if (!v)
		return;
	dec__strs(d, v, out);
	mark = dec__push(d, key);
	if (check == 3)
		cfg__error(d->e, v, dec__reqauth_msg, key);
	for (i = 0; i < v->n; i++) {
		const char *s = v->v[i]->str;
		size_t m2 = dec__idx(d, i);
		char *end;
		long long port;

		if (!s || !s[0]) {
			cfg__error(d->e, v->v[i], "empty value not allowed");
		} else if (check == 1 && !cfg__is_cidr(s)) {
			cfg__error(d->e, v->v[i], "\"%s\" is not an IP address or CIDR range", s);
		} else if (check == 2) {
			port = strtoll(s, &end, 10);
			if (*end || !dec__port_ok(port))
				cfg__error(d->e, v->v[i], "port \"%s\" is not a number in range 1..65535", s);
		}
		dec__pop(d, m2);
	}
	dec__pop(d, mark);
}

static bool dec__authz_key_ok(const char *key, const char **why)
{
	static const char *const exact[] = {
		"source.ip", "remote.ip", "source.namespace", "source.principal", "source.serviceAccount",
		"source.trustDomain", "destination.ip", "destination.port", "connection.sni", NULL,
	};
	size_t i, n;

	*why = NULL;
	for (i = 0; exact[i]; i++)
		if (strcmp(key, exact[i]) == 0)
			return true;
	if (strncmp(key, "request.auth.", 13) == 0) {
		*why = "reqauth";
		return false;
	}
	n = strlen(key);
	if ((strncmp(key, "request.headers[", 16) == 0 && n > 17) ||
	    (strncmp(key, "experimental.", 13) == 0 && strchr(key, '[') && n > 14))
		return key[n - 1] == ']';
	if (strcmp(key, "destination.namespace") == 0)
		*why = "replaced by the policy's metadata.namespace";
	else if (strncmp(key, "destination.labels", 18) == 0)
		*why = "replaced by the policy's selector";
	return false;
}

static void dec__authorization_policy(struct dec *d, const struct cfg__node *spec, struct cfg_authorization_policy *ap)
{
	const struct cfg__node *action = F(spec, "action"), *provider = F(spec, "provider"), *rules, *sel, *v;
	size_t i, j, mark;

	ap->action = CFG_AUTHZ_ALLOW;
	if (action) {
		if (!strcmp(action->str, "DENY"))
			ap->action = CFG_AUTHZ_DENY;
		else if (!strcmp(action->str, "AUDIT"))
			ap->action = CFG_AUTHZ_AUDIT;
		else if (!strcmp(action->str, "CUSTOM"))
			ap->action = CFG_AUTHZ_CUSTOM;
	}
	ap->provider = dec__str(d, F(provider, "name"));
	if (ap->action == CFG_AUTHZ_CUSTOM) {
		if (!ap->provider)
			DEC_ERR_AT(d, provider ? provider : action, provider ? "provider" : "action",
				   "CUSTOM action needs provider.name");
		DEC_ERR_AT(d, action, "action", "CUSTOM action is not supported by meshd");
	} else if (provider) {
		DEC_ERR_AT(d, provider, "provider", "provider may only be set with action CUSTOM, found %s",
			   action ? action->str : "ALLOW");
	}
	if ((sel = F(spec, "selector"))) {
		mark = dec__push(d, "selector");
		dec__selector_labels(d, sel, "matchLabels", &ap->selector, &ap->has_selector);
		dec__pop(d, mark);
	}
	if ((v = F(spec, "targetRef")) || (v = F(spec, "targetRefs")))
		DEC_ERR_AT(d, v, F(spec, "targetRef") ? "targetRef" : "targetRefs",
			   "targetRef (Gateway API policy attachment) is not supported by meshd; use selector");
	rules = cfg__node_get(spec, "rules");
	ap->rules_present = rules != NULL;
	if (ap->action == CFG_AUTHZ_DENY && (!rules || rules->type != CFG__SEQ || !rules->n))
		cfg__error(d->e, spec, "DENY action without rules never matches; add an empty rule {} to deny "
			   "every request");
	if (!rules || rules->type != CFG__SEQ || !rules->n)
		return;
	ap->rules = dec__alloc(d, rules->n, sizeof(*ap->rules));
	if (!ap->rules)
		return;
	ap->n_rules = rules->n;
	mark = dec__push(d, "rules");
	for (i = 0; i < rules->n; i++) {
		const struct cfg__node *r = rules->v[i], *from = cfg__node_get(r, "from"), *to = cfg__node_get(r, "to");
		const struct cfg__node *when = F(r, "when");
		struct cfg_authz_rule *ar = &ap->rules[i];
		size_t m2 = dec__idx(d, i);

		if (from && from->type == CFG__SEQ) {
			size_t m3 = dec__push(d, "from");
			if (!from->n)
				cfg__error(d->e, from, "from, if set, must not be empty");
			ar->from = dec__alloc(d, from->n, sizeof(*ar->from));
			for (j = 0; ar->from && j < from->n; j++) {
				const struct cfg__node *src = F(from->v[j], "source");
				struct cfg_authz_source *s = &ar->from[j];
				size_t m4 = dec__idx(d, j), m5;

				if (!src || src->type != CFG__MAP || !src->n) {
					DEC_ERR_AT(d, src ? src : from->v[j], "source", "from.source must not be empty");
					dec__pop(d, m4);
					continue;
				}
				m5 = dec__push(d, "source");
				dec__authz_strs(d, src, "principals", &s->principals, 0);
				dec__authz_strs(d, src, "notPrincipals", &s->not_principals, 0);
				dec__authz_strs(d, src, "requestPrincipals", &s->request_principals, 3);
				dec__authz_strs(d, src, "notRequestPrincipals", &s->not_request_principals, 3);
				dec__authz_strs(d, src, "namespaces", &s->namespaces, 0);
				dec__authz_strs(d, src, "notNamespaces", &s->not_namespaces, 0);
				dec__authz_strs(d, src, "ipBlocks", &s->ip_blocks, 1);
				dec__authz_strs(d, src, "notIpBlocks", &s->not_ip_blocks, 1);
				dec__authz_strs(d, src, "remoteIpBlocks", &s->remote_ip_blocks, 1);
				dec__authz_strs(d, src, "notRemoteIpBlocks", &s->not_remote_ip_blocks, 1);
				if ((v = F(src, "serviceAccounts")) || (v = F(src, "notServiceAccounts")) ||
				    (v = F(src, "trustDomains")) || (v = F(src, "notTrustDomains")))
					cfg__error(d->e, v, "serviceAccounts and trustDomains are not supported by meshd; "
						   "use principals");
				dec__pop(d, m5);
				dec__pop(d, m4);
			}
			ar->n_from = ar->from ? from->n : 0;
			dec__pop(d, m3);
		}
		if (to && to->type == CFG__SEQ) {
			size_t m3 = dec__push(d, "to");
			if (!to->n)
				cfg__error(d->e, to, "to, if set, must not be empty");
			ar->to = dec__alloc(d, to->n, sizeof(*ar->to));
			for (j = 0; ar->to && j < to->n; j++) {
				const struct cfg__node *op = F(to->v[j], "operation");
				struct cfg_authz_operation *o = &ar->to[j];
				size_t m4 = dec__idx(d, j), m5;

				if (!op || op->type != CFG__MAP || !op->n) {
					DEC_ERR_AT(d, op ? op : to->v[j], "operation", "to.operation must not be empty");
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
					DEC_ERR_AT(d, key ? key : c, "key", "key must not be empty");
				} else if (!dec__authz_key_ok(key->str, &why)) {
					if (why && strcmp(why, "reqauth") == 0)
						DEC_ERR_AT(d, key, "key", dec__reqauth_msg, key->str);
					else if (why)
						DEC_ERR_AT(d, key, "key", "attribute %s is %s", key->str, why);
					else
						DEC_ERR_AT(d, key, "key", "unknown attribute \"%s\"", key->str);
				} else if (!strcmp(key->str, "source.ip") || !strcmp(key->str, "remote.ip") ||
					   !strcmp(key->str, "destination.ip")) {
					check = 1;
				} else if (!strcmp(key->str, "destination.port")) {
					check = 2;
				}
				if (!F(c, "values") && !F(c, "notValues"))
					cfg__error(d->e, c, "at least one of values or notValues must be set for key %s",
						   key && key->str ? key->str : "");
				dec__authz_strs(d, c, "values", &cond->values, check);
				dec__authz_strs(d, c, "notValues", &cond->not_values, check);
				dec__pop(d, m4);
			}
			ar->n_when = ar->when ? when->n : 0;
			dec__pop(d, m3);
		}
		dec__pop(d, m2);
	}
	dec__pop(d, mark);
}

/* ------------------------------------------------------------- entry */

void cfg__decode(struct cfg__ectx *e, struct cfg_object *o, const struct cfg__node *root)
{
	struct dec d = { e, o->arena, o->ns };
	const struct cfg__node *spec = cfg__node_field(root, "spec");
	size_t mark;
	static const struct cfg__node empty = { .type = CFG__MAP };

	if (o->kind >= CFG_ISTIO_KIND_COUNT) {
		cfg__decode_k8s(e, o, root);
		return;
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
	default:
		break;
	}
	cfg__path_pop(e, mark);
}
