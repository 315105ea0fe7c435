/*
 * fcmatch.c - Envoy's filter chain selection (fcmatch.h).
 *
 * Each chain's FilterChainMatch is compiled into plain arrays (prefixes as
 * bytes and a length, ports as numbers); selection narrows a candidate
 * set step by step, each step giving every candidate a score: -1 the
 * chain names values and the connection's is not among them, 0 the chain
 * leaves the field empty (a wildcard), above 0 how specific the match is.
 * The candidates with the best score go on; a best of -1 leaves none.
 * Listeners have few chains (Istio: a handful per port), so a linear pass
 * per step costs less than Envoy's per-field maps would to build.
 */
#include "dataplane/fcmatch.h"

#include "envoy/config/core/v3/address.pb-c.h"
#include "envoy/config/listener/v3/listener_components.pb-c.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct fcm_cidr {
	int family;          /* AF_INET or AF_INET6 */
	unsigned len;        /* prefix length in bits */
	unsigned char a[16];
};

struct fcm_cidrs {
	struct fcm_cidr *v;
	size_t n;
};

struct fcm_chain {
	uint32_t dst_port;               /* 0: any */
	struct fcm_cidrs dst, direct_src, src;
	char **names;                    /* server_names, lower case, as given ("*.x.y" kept whole) */
	size_t n_names;
	char *transport;                 /* owned (the Listener's message is not kept); NULL: any */
	char **alpn;
	size_t n_alpn;
	int source_type;                 /* 0 ANY, 1 SAME_IP_OR_LOOPBACK, 2 EXTERNAL */
	uint32_t *src_ports;
	size_t n_src_ports;
};

/* An address of c as family + bytes; IPv4-mapped IPv6 folded to IPv4. */
static int sa_bytes(const struct sockaddr *sa, unsigned char out[16], uint16_t *port)
{
	if (!sa)
		return 0;
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;

		memcpy(out, &in->sin_addr, 4);
		if (port)
			*port = ntohs(in->sin_port);
		return AF_INET;
	}
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;

		if (port)
			*port = ntohs(in6->sin6_port);
		if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
			memcpy(out, in6->sin6_addr.s6_addr + 12, 4);
			return AF_INET;
		}
		memcpy(out, in6->sin6_addr.s6_addr, 16);
		return AF_INET6;
	}
	return 0;
}

static int cidrs_compile(struct fcm_cidrs *out, Envoy__Config__Core__V3__CidrRange **v, size_t n, char *err,
			 size_t cap)
{
	size_t i;

	if (!n)
		return 0;
	out->v = calloc(n, sizeof(*out->v));
	if (!out->v)
		return -ENOMEM;
	for (i = 0; i < n; i++) {
		struct fcm_cidr *c = &out->v[i];
		const char *p = v[i]->address_prefix ? v[i]->address_prefix : "";
		unsigned max;

		if (inet_pton(AF_INET, p, c->a) == 1) {
			c->family = AF_INET;
			max = 32;
		} else if (inet_pton(AF_INET6, p, c->a) == 1) {
			c->family = AF_INET6;
			max = 128;
		} else {
			snprintf(err, cap, "malformed IP address: %s", p);
			return -EINVAL;
		}
		/* Envoy: prefix_len unset is 0; past the address width it is refused */
		c->len = v[i]->prefix_len ? v[i]->prefix_len->value : 0;
		if (c->len > max) {
			snprintf(err, cap, "invalid prefix length %u for %s", c->len, p);
			return -EINVAL;
		}
		out->n++;
	}
	return 0;
}

static int strv_copy(char ***out, size_t *n_out, char **v, size_t n)
{
	size_t i, j;

	if (!n)
		return 0;
	*out = calloc(n, sizeof(**out));
	if (!*out)
		return -ENOMEM;
	for (i = 0; i < n; i++) {
		char *s = strdup(v[i] ? v[i] : "");

		if (!s)
			return -ENOMEM;
		for (j = 0; s[j]; j++)
			if (s[j] >= 'A' && s[j] <= 'Z')
				s[j] = (char)(s[j] - 'A' + 'a');
		(*out)[(*n_out)++] = s;
	}
	return 0;
}

static int chain_compile(struct fcm_chain *c, const Envoy__Config__Listener__V3__FilterChainMatch *m, char *err,
			 size_t cap)
{
	int rc;

	if (!m)
		return 0;
	c->dst_port = m->destination_port ? m->destination_port->value : 0;
	rc = cidrs_compile(&c->dst, m->prefix_ranges, m->n_prefix_ranges, err, cap);
	if (rc == 0)
		rc = cidrs_compile(&c->direct_src, m->direct_source_prefix_ranges, m->n_direct_source_prefix_ranges,
				   err, cap);
	if (rc == 0)
		rc = cidrs_compile(&c->src, m->source_prefix_ranges, m->n_source_prefix_ranges, err, cap);
	if (rc == 0)
		rc = strv_copy(&c->names, &c->n_names, m->server_names, m->n_server_names);
	if (rc == 0)
		rc = strv_copy(&c->alpn, &c->n_alpn, m->application_protocols, m->n_application_protocols);
	if (rc < 0)
		return rc;
	if (m->transport_protocol && *m->transport_protocol && !(c->transport = strdup(m->transport_protocol)))
		return -ENOMEM;
	c->source_type = (int)m->source_type;
	if (m->n_source_ports) {
		c->src_ports = calloc(m->n_source_ports, sizeof(*c->src_ports));
		if (!c->src_ports)
			return -ENOMEM;
		memcpy(c->src_ports, m->source_ports, m->n_source_ports * sizeof(*c->src_ports));
		c->n_src_ports = m->n_source_ports;
	}
	return 0;
}

static uint64_t dur_ms(const Google__Protobuf__Duration *d)
{
	if (d->seconds < 0 || d->nanos < 0)
		return 0;
	return (uint64_t)d->seconds * 1000 + (uint64_t)d->nanos / 1000000 + (d->nanos % 1000000 ? 1 : 0);
}

int fcm_table_init(struct fcm_table *t, const Envoy__Config__Listener__V3__Listener *l, char *err, size_t cap)
{
	size_t i;
	int rc = 0;

	memset(t, 0, sizeof(*t));
	t->has_default = l->default_filter_chain != NULL;
	for (i = 0; i < l->n_listener_filters; i++) {
		const char *name = l->listener_filters[i]->name ? l->listener_filters[i]->name : "";

		if (!strcmp(name, "envoy.filters.listener.tls_inspector"))
			t->inspect |= FCM_INSPECT_TLS;
		else if (!strcmp(name, "envoy.filters.listener.http_inspector"))
			t->inspect |= FCM_INSPECT_HTTP;
	}
	/* Envoy: unset is 15 s; an explicit 0 turns the timeout off (what
	 * Istio's default protocolDetectionTimeout of 0s gives) */
	t->filters_timeout_ms = l->listener_filters_timeout ? dur_ms(l->listener_filters_timeout)
							    : FCM_LISTENER_FILTERS_TIMEOUT_DEFAULT_MS;
	t->continue_on_timeout = l->continue_on_listener_filters_timeout;
	if (!l->n_filter_chains)
		return 0;
	t->chains = calloc(l->n_filter_chains, sizeof(*t->chains));
	if (!t->chains)
		return -ENOMEM;
	t->n_chains = l->n_filter_chains;
	for (i = 0; i < l->n_filter_chains; i++) {
		char why[192] = "";

		rc = chain_compile(&t->chains[i], l->filter_chains[i]->filter_chain_match, why, sizeof(why));
		if (rc == -EINVAL)
			snprintf(err, cap, "listener %s: filter chain %zu: %s", l->name, i, why);
		if (rc < 0)
			return rc;
		if (t->chains[i].n_names)
			t->uses |= FCM_USES_SNI;
		if (t->chains[i].transport && t->chains[i].transport[0])
			t->uses |= FCM_USES_TRANSPORT;
		if (t->chains[i].n_alpn)
			t->uses |= FCM_USES_ALPN;
	}
	return 0;
}

void fcm_table_cleanup(struct fcm_table *t)
{
	size_t i, j;

	for (i = 0; i < t->n_chains; i++) {
		struct fcm_chain *c = &t->chains[i];

		free(c->dst.v);
		free(c->direct_src.v);
		free(c->src.v);
		for (j = 0; j < c->n_names; j++)
			free(c->names[j]);
		free(c->names);
		for (j = 0; j < c->n_alpn; j++)
			free(c->alpn[j]);
		free(c->alpn);
		free(c->src_ports);
		free(c->transport);
	}
	free(t->chains);
	memset(t, 0, sizeof(*t));
}

uint32_t fcm_chain_port(const struct fcm_table *t, size_t i)
{
	return i < t->n_chains ? t->chains[i].dst_port : 0;
}

/* ---------------------------------------------------------------- scores */

static int prefix_in(const struct fcm_cidr *c, int family, const unsigned char *a)
{
	unsigned full = c->len / 8, rest = c->len % 8;

	if (c->family != family)
		return 0;
	if (memcmp(c->a, a, full))
		return 0;
	if (rest && ((c->a[full] ^ a[full]) & (unsigned char)(0xff00u >> rest)))
		return 0;
	return 1;
}

/* Longest matching prefix + 1 (so /0 beats the empty list), 0 when the
 * list is empty, -1 when no prefix holds the address. */
static int score_cidrs(const struct fcm_cidrs *v, const struct sockaddr *sa)
{
	unsigned char a[16];
	int fam, best = -1;
	size_t i;

	if (!v->n)
		return 0;
	fam = sa_bytes(sa, a, NULL);
	for (i = 0; fam && i < v->n; i++)
		if (prefix_in(&v->v[i], fam, a) && (int)v->v[i].len + 1 > best)
			best = (int)v->v[i].len + 1;
	return best;
}

/* An exact name beats every wildcard; among wildcards "*.suffix" the
 * longest suffix wins (Envoy tries *.b.c.d, then *.c.d, ...); a wildcard
 * never matches the bare suffix ("*.example.com" is not "example.com"). */
static int score_names(const struct fcm_chain *c, const char *sni)
{
	size_t i, slen;
	int best = -1;

	if (!c->n_names)
		return 0;
	if (!sni || !*sni)
		return -1;
	slen = strlen(sni);
	for (i = 0; i < c->n_names; i++) {
		const char *n = c->names[i];
		size_t nlen = strlen(n);

		if (nlen == slen && !strcasecmp(n, sni))
			return 1 << 20;
		if (nlen >= 2 && n[0] == '*' && n[1] == '.' && slen > nlen - 1 &&
		    !strcasecmp(sni + slen - (nlen - 1), n + 1) && (int)nlen > best)
			best = (int)nlen;
	}
	return best;
}

/* The connection's first ALPN (in its order) that any chain names wins,
 * as Envoy looks them up one by one. */
static int score_alpn(const struct fcm_chain *c, const struct fcm_conn *cn)
{
	size_t i, j;

	if (!c->n_alpn)
		return 0;
	for (i = 0; i < cn->n_alpn; i++)
		for (j = 0; j < c->n_alpn; j++)
			if (!strcasecmp(c->alpn[j], cn->alpn[i]))
				return (int)(cn->n_alpn - i);
	return -1;
}

/* Envoy's SAME_IP_OR_LOOPBACK: the source is a loopback address or the
 * destination's own address; anything else is EXTERNAL. */
static int conn_local(const struct fcm_conn *cn)
{
	unsigned char s[16], d[16];
	int fs = sa_bytes(cn->src, s, NULL), fd = sa_bytes(cn->dst, d, NULL);
	static const unsigned char lo6[16] = { [15] = 1 };

	if (fs == AF_INET && s[0] == 127)
		return 1;
	if (fs == AF_INET6 && !memcmp(s, lo6, 16))
		return 1;
	return fs && fs == fd && !memcmp(s, d, fs == AF_INET ? 4 : 16);
}

enum { ST_PORT, ST_DST, ST_SNI, ST_TRANSPORT, ST_ALPN, ST_DIRECT, ST_TYPE, ST_SRC, ST_SPORT, ST_N };

static int score(const struct fcm_chain *c, int step, const struct fcm_conn *cn)
{
	uint16_t port = 0;
	unsigned char tmp[16];
	size_t i;

	switch (step) {
	case ST_PORT:
		if (!c->dst_port)
			return 0;
		return sa_bytes(cn->dst, tmp, &port) && port == c->dst_port ? 1 : -1;
	case ST_DST:
		return score_cidrs(&c->dst, cn->dst);
	case ST_SNI:
		return score_names(c, cn->sni);
	case ST_TRANSPORT:
		if (!c->transport || !*c->transport)
			return 0;
		return !strcmp(c->transport, cn->transport ? cn->transport : "raw_buffer") ? 1 : -1;
	case ST_ALPN:
		return cn->alpn_unknown ? 0 : score_alpn(c, cn);
	case ST_DIRECT:
		return score_cidrs(&c->direct_src, cn->direct_src ? cn->direct_src : cn->src);
	case ST_TYPE:
		if (!c->source_type)
			return 0;
		return c->source_type == (conn_local(cn) ? 1 : 2) ? 1 : -1;
	case ST_SRC:
		return score_cidrs(&c->src, cn->src);
	default:
		if (!c->n_src_ports)
			return 0;
		if (!sa_bytes(cn->src, tmp, &port))
			return -1;
		for (i = 0; i < c->n_src_ports; i++)
			if (c->src_ports[i] == port)
				return 1;
		return -1;
	}
}

#define FCM_SELECT_STACK 64

int fcm_select(const struct fcm_table *t, const struct fcm_conn *c)
{
	size_t stack[FCM_SELECT_STACK], *cand = stack, n = 0, i, k;
	int step, rc;

	if (t->n_chains > FCM_SELECT_STACK) {
		cand = malloc(t->n_chains * sizeof(*cand));
		if (!cand)
			return -ENOMEM;
	}
	for (i = 0; i < t->n_chains; i++)
		cand[n++] = i;
	for (step = 0; step < ST_N && n; step++) {
		int best = -1;

		for (i = 0; i < n; i++) {
			int s = score(&t->chains[cand[i]], step, c);

			if (s > best)
				best = s;
		}
		if (best < 0) {
			n = 0;
			break;
		}
		for (i = 0, k = 0; i < n; i++)
			if (score(&t->chains[cand[i]], step, c) == best)
				cand[k++] = cand[i];
		n = k;
	}
	/* Envoy refuses Listeners whose chains have identical matches; with
	 * several left the first in order serves (meshd never sends such) */
	if (n)
		rc = (int)cand[0];
	else
		rc = t->has_default ? FCM_DEFAULT : -ENOENT;
	if (cand != stack)
		free(cand);
	return rc;
}
