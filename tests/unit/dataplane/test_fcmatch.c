/*
 * test_fcmatch.c - Envoy's filter chain selection (dataplane/fcmatch.h):
 * each criterion in its order, the most specific value winning (exact
 * port over none, the longest prefix, the exact server name over the
 * longest wildcard over none), no backtracking to a wildcard once a
 * specific value matched, the default chain or nothing when none is left,
 * and the listener filters' settings (inspectors, timeout).
 */
#include "dataplane/fcmatch.h"

#include "envoy/config/core/v3/address.pb-c.h"
#include "envoy/config/listener/v3/listener_components.pb-c.h"
#include "google/protobuf/duration.pb-c.h"
#include "google/protobuf/wrappers.pb-c.h"

#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#define MAXC 12

/* A listener under construction: chain i's match is m[i]. */
struct lb {
	Envoy__Config__Listener__V3__Listener l;
	Envoy__Config__Listener__V3__FilterChain fc[MAXC], *fcp[MAXC], def;
	Envoy__Config__Listener__V3__FilterChainMatch m[MAXC];
	Google__Protobuf__UInt32Value port[MAXC];
	Envoy__Config__Core__V3__CidrRange cidr[MAXC][4], *cidrp[MAXC][4];
	Google__Protobuf__UInt32Value plen[MAXC][4];
	struct fcm_table t;
};

static void lb_init(struct lb *b, size_t n)
{
	size_t i;

	memset(b, 0, sizeof(*b));
	envoy__config__listener__v3__listener__init(&b->l);
	b->l.name = "l";
	for (i = 0; i < n; i++) {
		envoy__config__listener__v3__filter_chain__init(&b->fc[i]);
		envoy__config__listener__v3__filter_chain_match__init(&b->m[i]);
		b->fc[i].filter_chain_match = &b->m[i];
		b->fcp[i] = &b->fc[i];
	}
	b->l.filter_chains = b->fcp;
	b->l.n_filter_chains = n;
}

static void set_port(struct lb *b, size_t i, uint32_t port)
{
	google__protobuf__uint32_value__init(&b->port[i]);
	b->port[i].value = port;
	b->m[i].destination_port = &b->port[i];
}

/* which: 0 prefix_ranges, 1 source_prefix_ranges, 2 direct_source_prefix_ranges */
static void set_cidrs(struct lb *b, size_t i, int which, const char *const *pfx, const uint32_t *len, size_t n)
{
	size_t k;

	for (k = 0; k < n; k++) {
		envoy__config__core__v3__cidr_range__init(&b->cidr[i][k]);
		google__protobuf__uint32_value__init(&b->plen[i][k]);
		b->cidr[i][k].address_prefix = (char *)pfx[k];
		b->plen[i][k].value = len[k];
		b->cidr[i][k].prefix_len = &b->plen[i][k];
		b->cidrp[i][k] = &b->cidr[i][k];
	}
	if (which == 0) {
		b->m[i].prefix_ranges = b->cidrp[i];
		b->m[i].n_prefix_ranges = n;
	} else if (which == 1) {
		b->m[i].source_prefix_ranges = b->cidrp[i];
		b->m[i].n_source_prefix_ranges = n;
	} else {
		b->m[i].direct_source_prefix_ranges = b->cidrp[i];
		b->m[i].n_direct_source_prefix_ranges = n;
	}
}

static void compile(struct lb *b)
{
	char err[256] = "";

	ck_assert_msg(fcm_table_init(&b->t, &b->l, err, sizeof(err)) == 0, "%s", err);
}

static struct sockaddr_in sin4(const char *ip, uint16_t port)
{
	struct sockaddr_in s;

	memset(&s, 0, sizeof(s));
	s.sin_family = AF_INET;
	s.sin_port = htons(port);
	ck_assert_int_eq(inet_pton(AF_INET, ip, &s.sin_addr), 1);
	return s;
}

static int pick(struct lb *b, const char *dst, uint16_t dport, const char *src, uint16_t sport, const char *sni,
		const char *transport, const char *const *alpn, size_t n_alpn)
{
	struct sockaddr_in d = sin4(dst, dport), s = sin4(src, sport);
	struct fcm_conn c = { (struct sockaddr *)&d, (struct sockaddr *)&s, NULL, sni, transport, alpn, n_alpn, 0 };

	return fcm_select(&b->t, &c);
}

START_TEST(port_then_default)
{
	struct lb *b = calloc(1, sizeof(*b));

	lb_init(b, 3);
	set_port(b, 0, 8080);
	set_port(b, 1, 9090);
	/* chain 2: no port (wildcard) */
	compile(b);
	ck_assert_int_eq(pick(b, "10.0.0.1", 8080, "10.0.0.2", 1000, NULL, NULL, NULL, 0), 0);
	ck_assert_int_eq(pick(b, "10.0.0.1", 9090, "10.0.0.2", 1000, NULL, NULL, NULL, 0), 1);
	ck_assert_int_eq(pick(b, "10.0.0.1", 7070, "10.0.0.2", 1000, NULL, NULL, NULL, 0), 2);
	ck_assert_uint_eq(fcm_chain_port(&b->t, 1), 9090);
	ck_assert_uint_eq(fcm_chain_port(&b->t, 2), 0);
	fcm_table_cleanup(&b->t);

	/* no wildcard chain: default chain, then nothing */
	b->l.n_filter_chains = 2;
	compile(b);
	ck_assert_int_eq(pick(b, "10.0.0.1", 7070, "10.0.0.2", 1000, NULL, NULL, NULL, 0), -ENOENT);
	fcm_table_cleanup(&b->t);
	envoy__config__listener__v3__filter_chain__init(&b->def);
	b->l.default_filter_chain = &b->def;
	compile(b);
	ck_assert_int_eq(pick(b, "10.0.0.1", 7070, "10.0.0.2", 1000, NULL, NULL, NULL, 0), FCM_DEFAULT);
	ck_assert_int_eq(pick(b, "10.0.0.1", 8080, "10.0.0.2", 1000, NULL, NULL, NULL, 0), 0);
	fcm_table_cleanup(&b->t);
	free(b);
}
END_TEST

START_TEST(longest_prefix)
{
	static const char *const p0[] = { "10.0.0.0" }, *const p1[] = { "10.1.0.0", "192.168.0.0" },
				  *const p2[] = { "10.1.2.0" };
	static const uint32_t l0[] = { 8 }, l1[] = { 16, 16 }, l2[] = { 24 };
	struct lb *b = calloc(1, sizeof(*b));

	lb_init(b, 4);
	set_cidrs(b, 0, 0, p0, l0, 1);
	set_cidrs(b, 1, 0, p1, l1, 2);
	set_cidrs(b, 2, 0, p2, l2, 1);
	compile(b);
	ck_assert_int_eq(pick(b, "10.9.9.9", 80, "1.1.1.1", 1, NULL, NULL, NULL, 0), 0);
	ck_assert_int_eq(pick(b, "10.1.9.9", 80, "1.1.1.1", 1, NULL, NULL, NULL, 0), 1);
	ck_assert_int_eq(pick(b, "192.168.3.3", 80, "1.1.1.1", 1, NULL, NULL, NULL, 0), 1);
	ck_assert_int_eq(pick(b, "10.1.2.3", 80, "1.1.1.1", 1, NULL, NULL, NULL, 0), 2);
	ck_assert_int_eq(pick(b, "11.0.0.1", 80, "1.1.1.1", 1, NULL, NULL, NULL, 0), 3);
	fcm_table_cleanup(&b->t);
	free(b);
}
END_TEST

START_TEST(server_names)
{
	static char *n0[] = { "api.example.com" }, *n1[] = { "*.example.com" }, *n2[] = { "*.b.example.com" },
		    *n3[] = { "Other.Test", "*.other.test" };
	struct lb *b = calloc(1, sizeof(*b));

	lb_init(b, 5);
	b->m[0].server_names = n0, b->m[0].n_server_names = 1;
	b->m[1].server_names = n1, b->m[1].n_server_names = 1;
	b->m[2].server_names = n2, b->m[2].n_server_names = 1;
	b->m[3].server_names = n3, b->m[3].n_server_names = 2;
	compile(b);
	ck_assert_uint_eq(b->t.uses & FCM_USES_SNI, FCM_USES_SNI);
	ck_assert_int_eq(pick(b, "10.0.0.1", 443, "1.1.1.1", 1, "api.example.com", "tls", NULL, 0), 0);
	ck_assert_int_eq(pick(b, "10.0.0.1", 443, "1.1.1.1", 1, "API.Example.COM", "tls", NULL, 0), 0);
	ck_assert_int_eq(pick(b, "10.0.0.1", 443, "1.1.1.1", 1, "x.example.com", "tls", NULL, 0), 1);
	ck_assert_int_eq(pick(b, "10.0.0.1", 443, "1.1.1.1", 1, "x.b.example.com", "tls", NULL, 0), 2);
	ck_assert_int_eq(pick(b, "10.0.0.1", 443, "1.1.1.1", 1, "a.x.b.example.com", "tls", NULL, 0), 2);
	/* the wildcard does not cover the bare suffix */
	ck_assert_int_eq(pick(b, "10.0.0.1", 443, "1.1.1.1", 1, "example.com", "tls", NULL, 0), 4);
	ck_assert_int_eq(pick(b, "10.0.0.1", 443, "1.1.1.1", 1, "other.test", "tls", NULL, 0), 3);
	ck_assert_int_eq(pick(b, "10.0.0.1", 443, "1.1.1.1", 1, "q.other.test", "tls", NULL, 0), 3);
	/* no SNI: only the chain without names */
	ck_assert_int_eq(pick(b, "10.0.0.1", 443, "1.1.1.1", 1, NULL, NULL, NULL, 0), 4);
	fcm_table_cleanup(&b->t);
	free(b);
}
END_TEST

/* Istio's inbound pair per port: TLS with istio ALPNs, and plaintext. */
START_TEST(transport_alpn)
{
	static char *istio[] = { "istio-peer-exchange", "istio", "istio-http/1.0", "istio-http/1.1", "istio-h2" },
		    *h2[] = { "h2c", "http/1.1" };
	static const char *const a_istio[] = { "istio-http/1.1", "istio" }, *const a_h2[] = { "http/1.1" },
			      *const a_none[] = { "x" };
	struct lb *b = calloc(1, sizeof(*b));

	lb_init(b, 4);
	b->m[0].transport_protocol = "tls";
	b->m[0].application_protocols = istio, b->m[0].n_application_protocols = 5;
	b->m[1].transport_protocol = "tls";
	b->m[2].transport_protocol = "raw_buffer";
	b->m[2].application_protocols = h2, b->m[2].n_application_protocols = 2;
	b->m[3].transport_protocol = "raw_buffer";
	compile(b);
	ck_assert_uint_eq(b->t.uses, FCM_USES_TRANSPORT | FCM_USES_ALPN);
	ck_assert_int_eq(pick(b, "10.0.0.1", 80, "1.1.1.1", 1, NULL, "tls", a_istio, 2), 0);
	ck_assert_int_eq(pick(b, "10.0.0.1", 80, "1.1.1.1", 1, NULL, "tls", a_none, 1), 1);
	ck_assert_int_eq(pick(b, "10.0.0.1", 80, "1.1.1.1", 1, NULL, "tls", NULL, 0), 1);
	ck_assert_int_eq(pick(b, "10.0.0.1", 80, "1.1.1.1", 1, NULL, "raw_buffer", a_h2, 1), 2);
	ck_assert_int_eq(pick(b, "10.0.0.1", 80, "1.1.1.1", 1, NULL, NULL, NULL, 0), 3);
	/* TLS terminated without the client's ALPN list: the ALPN step takes
	 * every chain, the first TLS one serves */
	{
		struct sockaddr_in d = sin4("10.0.0.1", 80), src = sin4("1.1.1.1", 1);
		struct fcm_conn c = { (struct sockaddr *)&d, (struct sockaddr *)&src, NULL, NULL, "tls", NULL, 0, 1 };

		ck_assert_int_eq(fcm_select(&b->t, &c), 0);
		c.alpn_unknown = 0;
		ck_assert_int_eq(fcm_select(&b->t, &c), 1);
	}
	fcm_table_cleanup(&b->t);
	free(b);
}
END_TEST

/* Envoy never falls back: a port matched exactly keeps only its chains,
 * even if their server names then exclude the connection. */
START_TEST(no_backtracking)
{
	static char *n0[] = { "a.test" };
	struct lb *b = calloc(1, sizeof(*b));

	lb_init(b, 2);
	set_port(b, 0, 443);
	b->m[0].server_names = n0, b->m[0].n_server_names = 1;
	/* chain 1: everything else (no port, no names) */
	compile(b);
	ck_assert_int_eq(pick(b, "10.0.0.1", 443, "1.1.1.1", 1, "a.test", "tls", NULL, 0), 0);
	ck_assert_int_eq(pick(b, "10.0.0.1", 443, "1.1.1.1", 1, "b.test", "tls", NULL, 0), -ENOENT);
	ck_assert_int_eq(pick(b, "10.0.0.1", 444, "1.1.1.1", 1, "b.test", "tls", NULL, 0), 1);
	fcm_table_cleanup(&b->t);
	free(b);
}
END_TEST

START_TEST(source_fields)
{
	static const char *const s0[] = { "10.2.0.0" }, *const d1[] = { "127.0.0.0" };
	static const uint32_t l16[] = { 16 }, l8[] = { 8 }, ports[] = { 5555, 6666 };
	struct lb *b = calloc(1, sizeof(*b));

	lb_init(b, 6);
	set_cidrs(b, 0, 1, s0, l16, 1);                        /* source 10.2/16 */
	set_cidrs(b, 1, 2, d1, l8, 1);                         /* direct source 127/8 */
	b->m[2].source_type = ENVOY__CONFIG__LISTENER__V3__FILTER_CHAIN_MATCH__CONNECTION_SOURCE_TYPE__SAME_IP_OR_LOOPBACK;
	b->m[3].source_type = ENVOY__CONFIG__LISTENER__V3__FILTER_CHAIN_MATCH__CONNECTION_SOURCE_TYPE__EXTERNAL;
	b->m[3].source_ports = (uint32_t *)ports, b->m[3].n_source_ports = 2;
	b->m[4].source_type = ENVOY__CONFIG__LISTENER__V3__FILTER_CHAIN_MATCH__CONNECTION_SOURCE_TYPE__EXTERNAL;
	compile(b);
	/* direct source comes before source type and source prefix */
	ck_assert_int_eq(pick(b, "10.0.0.1", 80, "127.0.0.5", 1, NULL, NULL, NULL, 0), 1);
	/* same IP as the destination: SAME_IP_OR_LOOPBACK */
	ck_assert_int_eq(pick(b, "10.0.0.1", 80, "10.0.0.1", 1, NULL, NULL, NULL, 0), 2);
	/* external: the source port decides between 3 and 4 */
	ck_assert_int_eq(pick(b, "10.0.0.1", 80, "10.9.0.1", 6666, NULL, NULL, NULL, 0), 3);
	ck_assert_int_eq(pick(b, "10.0.0.1", 80, "10.9.0.1", 7777, NULL, NULL, NULL, 0), 4);
	/* EXTERNAL chains beat ANY ones (0, 5) at the source type step */
	ck_assert_int_eq(pick(b, "10.0.0.1", 80, "10.2.0.1", 7777, NULL, NULL, NULL, 0), 4);
	fcm_table_cleanup(&b->t);
	b->m[3].source_type = b->m[4].source_type = 0;
	compile(b);
	ck_assert_int_eq(pick(b, "10.0.0.1", 80, "10.2.0.1", 7777, NULL, NULL, NULL, 0), 0);
	ck_assert_int_eq(pick(b, "10.0.0.1", 80, "10.3.0.1", 6666, NULL, NULL, NULL, 0), 3);
	ck_assert_int_eq(pick(b, "10.0.0.1", 80, "10.3.0.1", 7777, NULL, NULL, NULL, 0), 4);
	fcm_table_cleanup(&b->t);
	free(b);
}
END_TEST

START_TEST(ipv6_and_mapped)
{
	static const char *const p0[] = { "fd00::" }, *const p1[] = { "10.0.0.0" };
	static const uint32_t l0[] = { 8 }, l1[] = { 8 };
	struct lb *b = calloc(1, sizeof(*b));
	struct sockaddr_in6 d6, s6;
	struct fcm_conn c = { (struct sockaddr *)&d6, (struct sockaddr *)&s6, NULL, NULL, NULL, NULL, 0, 0 };

	lb_init(b, 3);
	set_cidrs(b, 0, 0, p0, l0, 1);
	set_cidrs(b, 1, 0, p1, l1, 1);
	compile(b);
	memset(&d6, 0, sizeof(d6));
	memset(&s6, 0, sizeof(s6));
	d6.sin6_family = s6.sin6_family = AF_INET6;
	ck_assert_int_eq(inet_pton(AF_INET6, "fd12::1", &d6.sin6_addr), 1);
	ck_assert_int_eq(inet_pton(AF_INET6, "::1", &s6.sin6_addr), 1);
	ck_assert_int_eq(fcm_select(&b->t, &c), 0);
	ck_assert_int_eq(inet_pton(AF_INET6, "::ffff:10.1.2.3", &d6.sin6_addr), 1);
	ck_assert_int_eq(fcm_select(&b->t, &c), 1);
	ck_assert_int_eq(inet_pton(AF_INET6, "fe80::1", &d6.sin6_addr), 1);
	ck_assert_int_eq(fcm_select(&b->t, &c), 2);
	fcm_table_cleanup(&b->t);
	free(b);
}
END_TEST

START_TEST(listener_filters_and_errors)
{
	Envoy__Config__Listener__V3__ListenerFilter f1 = ENVOY__CONFIG__LISTENER__V3__LISTENER_FILTER__INIT,
						    f2 = ENVOY__CONFIG__LISTENER__V3__LISTENER_FILTER__INIT,
						    *fv[2] = { &f1, &f2 };
	Google__Protobuf__Duration to = GOOGLE__PROTOBUF__DURATION__INIT;
	static const char *const bad[] = { "10.0.0.300" }, *const badlen[] = { "10.0.0.0" };
	static const uint32_t l8[] = { 8 }, l33[] = { 33 };
	struct lb *b = calloc(1, sizeof(*b));
	char err[256] = "";

	lb_init(b, 1);
	compile(b);
	ck_assert_uint_eq(b->t.inspect, 0);
	ck_assert_uint_eq(b->t.filters_timeout_ms, FCM_LISTENER_FILTERS_TIMEOUT_DEFAULT_MS);
	fcm_table_cleanup(&b->t);

	f1.name = "envoy.filters.listener.tls_inspector";
	f2.name = "envoy.filters.listener.http_inspector";
	b->l.listener_filters = fv;
	b->l.n_listener_filters = 2;
	b->l.listener_filters_timeout = &to; /* 0s: Istio's default protocolDetectionTimeout, no timeout */
	b->l.continue_on_listener_filters_timeout = 1;
	compile(b);
	ck_assert_uint_eq(b->t.inspect, FCM_INSPECT_TLS | FCM_INSPECT_HTTP);
	ck_assert_uint_eq(b->t.filters_timeout_ms, 0);
	ck_assert_int_eq(b->t.continue_on_timeout, 1);
	fcm_table_cleanup(&b->t);
	to.nanos = 100000000;
	compile(b);
	ck_assert_uint_eq(b->t.filters_timeout_ms, 100);
	fcm_table_cleanup(&b->t);

	set_cidrs(b, 0, 0, bad, l8, 1);
	ck_assert_int_eq(fcm_table_init(&b->t, &b->l, err, sizeof(err)), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "10.0.0.300"));
	fcm_table_cleanup(&b->t);
	set_cidrs(b, 0, 0, badlen, l33, 1);
	ck_assert_int_eq(fcm_table_init(&b->t, &b->l, err, sizeof(err)), -EINVAL);
	fcm_table_cleanup(&b->t);
	free(b);
}
END_TEST

/* More chains than the selection's stack array holds. */
START_TEST(many_chains)
{
	size_t n = 200, i;
	Envoy__Config__Listener__V3__Listener l = ENVOY__CONFIG__LISTENER__V3__LISTENER__INIT;
	Envoy__Config__Listener__V3__FilterChain *fc = calloc(n, sizeof(*fc)), **fcp = calloc(n, sizeof(*fcp));
	Envoy__Config__Listener__V3__FilterChainMatch *m = calloc(n, sizeof(*m));
	Google__Protobuf__UInt32Value *pv = calloc(n, sizeof(*pv));
	struct fcm_table t;
	struct sockaddr_in d = sin4("10.0.0.1", 1150), s = sin4("10.0.0.2", 1);
	struct fcm_conn c = { (struct sockaddr *)&d, (struct sockaddr *)&s, NULL, NULL, NULL, NULL, 0, 0 };
	char err[64];

	for (i = 0; i < n; i++) {
		envoy__config__listener__v3__filter_chain__init(&fc[i]);
		envoy__config__listener__v3__filter_chain_match__init(&m[i]);
		google__protobuf__uint32_value__init(&pv[i]);
		pv[i].value = (uint32_t)(1000 + i);
		m[i].destination_port = &pv[i];
		fc[i].filter_chain_match = &m[i];
		fcp[i] = &fc[i];
	}
	l.name = "many";
	l.filter_chains = fcp;
	l.n_filter_chains = n;
	ck_assert_int_eq(fcm_table_init(&t, &l, err, sizeof(err)), 0);
	ck_assert_int_eq(fcm_select(&t, &c), 150);
	fcm_table_cleanup(&t);
	free(fc);
	free(fcp);
	free(m);
	free(pv);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("fcmatch");
	TCase *tc = tcase_create("core");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, port_then_default);
	tcase_add_test(tc, longest_prefix);
	tcase_add_test(tc, server_names);
	tcase_add_test(tc, transport_alpn);
	tcase_add_test(tc, no_backtracking);
	tcase_add_test(tc, source_fields);
	tcase_add_test(tc, ipv6_and_mapped);
	tcase_add_test(tc, listener_filters_and_errors);
	tcase_add_test(tc, many_chains);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
