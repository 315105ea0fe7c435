/*
 * test_tls.c - dataplane/tls.c with real OpenSSL over a non-blocking
 * socketpair, certificates made at test time (tlsfix.h): mutual TLS with
 * SPIFFE ids seen on both sides, ALPN and SNI, bytes both ways through the
 * transport ops with -EAGAIN, a client certificate from another CA
 * refused, a server that requires a client certificate refusing a client
 * without one, SAN matching, and a context replaced while a connection made
 * with the old one goes on (rotation).
 */
#include "dataplane/tls.h"

#include "dataplane/ev.h"
#include "tlsfix.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define ID_CLIENT "spiffe://cluster.local/ns/demo/sa/client"
#define ID_SERVER "spiffe://cluster.local/ns/demo/sa/web"

static struct tf_ca ca, other;
static struct tf_leaf lc, ls, lbad;

static void setup(void)
{
	tf_ca_make(&ca, "root");
	tf_ca_make(&other, "other root");
	tf_leaf_make(&lc, &ca, ID_CLIENT, 3600);
	tf_leaf_make(&ls, &ca, ID_SERVER, 3600);
	tf_leaf_make(&lbad, &other, ID_CLIENT, 3600);
}

static void teardown(void)
{
	tf_leaf_free(&lc);
	tf_leaf_free(&ls);
	tf_leaf_free(&lbad);
	tf_ca_free(&ca);
	tf_ca_free(&other);
}

static const char *const server_alpn[] = { "h2", "http/1.1" };
static const char *const client_alpn[] = { "istio-peer-exchange", "istio", "http/1.1" };

static struct px_tls_ctx *server_ctx(const struct tf_leaf *l, int require)
{
	struct px_tls_conf c = { .server = 1, .chain_pem = l->chain, .key_pem = l->key, .roots_pem = ca.pem,
				 .require_peer_cert = require, .alpn = server_alpn, .n_alpn = 2 };
	struct px_tls_ctx *x;
	char err[200];

	ck_assert_msg(px_tls_ctx_new(&c, &x, err, sizeof(err)) == 0, "%s", err);
	return x;
}

static struct px_tls_ctx *client_ctx(const struct tf_leaf *l)
{
	struct px_tls_conf c = { .chain_pem = l ? l->chain : NULL, .key_pem = l ? l->key : NULL, .roots_pem = ca.pem,
				 .alpn = client_alpn, .n_alpn = 3 };
	struct px_tls_ctx *x;
	char err[200];

	ck_assert_msg(px_tls_ctx_new(&c, &x, err, sizeof(err)) == 0, "%s", err);
	return x;
}

static void pair(int fds[2])
{
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds), 0);
}

/* Drives both handshakes until both finish or one fails; returns the
 * client's and server's results. */
static void handshake(struct px_tls *c, struct px_tls *s, int *rc_c, int *rc_s)
{
	int i;

	*rc_c = *rc_s = -EAGAIN;
	for (i = 0; i < 100 && (*rc_c == -EAGAIN || *rc_s == -EAGAIN); i++) {
		if (*rc_c == -EAGAIN)
			*rc_c = px_tls_handshake(c);
		if (*rc_s == -EAGAIN)
			*rc_s = px_tls_handshake(s);
	}
}

START_TEST(mutual_tls_ids_alpn_sni)
{
	struct px_tls_ctx *sc = server_ctx(&ls, 1), *cc = client_ctx(&lc);
	struct px_tls *c, *s;
	int fds[2], rc, rs;
	const char *want_sans[] = { "spiffe://cluster.local/ns/x/sa/y", ID_SERVER };
	const char *bad_sans[] = { "spiffe://cluster.local/ns/demo/sa/other" };

	pair(fds);
	ck_assert_int_eq(px_tls_new(cc, fds[0], "outbound_.8080_._.web.demo.svc.cluster.local", &c), 0);
	ck_assert_int_eq(px_tls_new(sc, fds[1], NULL, &s), 0);
	/* nothing from the peer yet: the client waits for the server's reply */
	ck_assert_int_eq(px_tls_handshake(c), -EAGAIN);
	ck_assert_uint_eq(px_tls_want(c), EV_READ);
	handshake(c, s, &rc, &rs);
	ck_assert_msg(rc == 0 && rs == 0, "client %d (%s) server %d (%s)", rc, px_tls_error(c), rs, px_tls_error(s));
	ck_assert_str_eq(px_tls_peer_uri(s), ID_CLIENT);
	ck_assert_str_eq(px_tls_peer_uri(c), ID_SERVER);
	/* h2 is not offered while the codecs are HTTP/1.1 only: the common one is http/1.1 */
	ck_assert_str_eq(px_tls_alpn(c), "http/1.1");
	ck_assert_str_eq(px_tls_alpn(s), "http/1.1");
	ck_assert_str_eq(px_tls_sni(s), "outbound_.8080_._.web.demo.svc.cluster.local");
	ck_assert_int_eq(px_tls_check_sans(c, want_sans, 2), 0);
	ck_assert_int_eq(px_tls_check_sans(c, bad_sans, 1), -EACCES);
	ck_assert_int_eq(px_tls_check_sans(c, NULL, 0), 0);
	px_tls_free(c);
	px_tls_free(s);
	px_tls_ctx_unref(sc);
	px_tls_ctx_unref(cc);
	close(fds[0]);
	close(fds[1]);
}
END_TEST

/* Moves n bytes from a to b through the ops, both non-blocking. */
static void pump(struct px_tls *a, struct px_tls *b, int fa, int fb, size_t n)
{
	char *src = malloc(n), *dst = malloc(n), tmp[3000];
	size_t off = 0, got = 0, i;
	int rounds = 0;

	for (i = 0; i < n; i++)
		src[i] = (char)(i * 7 + 3);
	while (got < n && rounds++ < 100000) {
		if (off < n) {
			ssize_t w = px_transport_tls.write(a, fa, src + off, n - off);

			ck_assert_msg(w > 0 || w == -EAGAIN, "write %zd", w);
			if (w > 0)
				off += (size_t)w;
		}
		for (;;) {
			/* a small buffer: records bigger than it stay pending inside OpenSSL */
			ssize_t r = px_transport_tls.read(b, fb, tmp, sizeof(tmp));

			if (r == -EAGAIN)
				break;
			ck_assert_msg(r > 0, "read %zd", r);
			ck_assert_uint_le(got + (size_t)r, n);
			memcpy(dst + got, tmp, (size_t)r);
			got += (size_t)r;
			if (!px_tls_pending(b))
				break;
		}
	}
	ck_assert_uint_eq(got, n);
	ck_assert(memcmp(src, dst, n) == 0);
	free(src);
	free(dst);
}

START_TEST(bytes_both_ways_and_close_notify)
{
	struct px_tls_ctx *sc = server_ctx(&ls, 1), *cc = client_ctx(&lc);
	struct px_tls *c, *s;
	int fds[2], rc, rs;
	char buf[16];

	pair(fds);
	ck_assert_int_eq(px_tls_new(cc, fds[0], NULL, &c), 0);
	ck_assert_int_eq(px_tls_new(sc, fds[1], NULL, &s), 0);
	handshake(c, s, &rc, &rs);
	ck_assert(rc == 0 && rs == 0);
	/* nothing to read: -EAGAIN, as a raw socket says */
	ck_assert_int_eq(px_transport_tls.read(s, fds[1], buf, sizeof(buf)), -EAGAIN);
	pump(c, s, fds[0], fds[1], 300000);
	pump(s, c, fds[1], fds[0], 70000);
	/* the client's close_notify is EOF (0) for the server */
	px_transport_tls.shutdown_write(c, fds[0]);
	ck_assert_int_eq(px_transport_tls.read(s, fds[1], buf, sizeof(buf)), 0);
	px_tls_free(c);
	px_tls_free(s);
	px_tls_ctx_unref(sc);
	px_tls_ctx_unref(cc);
	close(fds[0]);
	close(fds[1]);
}
END_TEST

START_TEST(client_cert_from_another_ca_refused)
{
	struct px_tls_ctx *sc = server_ctx(&ls, 1), *cc = client_ctx(&lbad);
	struct px_tls *c, *s;
	int fds[2], rc, rs;

	pair(fds);
	ck_assert_int_eq(px_tls_new(cc, fds[0], NULL, &c), 0);
	ck_assert_int_eq(px_tls_new(sc, fds[1], NULL, &s), 0);
	handshake(c, s, &rc, &rs);
	ck_assert_int_eq(rs, -EPROTO);
	ck_assert_msg(strstr(px_tls_error(s), "certificate verify failed") != NULL, "%s", px_tls_error(s));
	ck_assert_ptr_null(px_tls_peer_uri(s));
	px_tls_free(c);
	px_tls_free(s);
	px_tls_ctx_unref(sc);
	px_tls_ctx_unref(cc);
	close(fds[0]);
	close(fds[1]);
}
END_TEST

START_TEST(no_client_cert_refused_when_required)
{
	struct px_tls_ctx *sc = server_ctx(&ls, 1), *cc = client_ctx(NULL), *sc2 = server_ctx(&ls, 0);
	struct px_tls *c, *s;
	int fds[2], rc, rs;

	pair(fds);
	ck_assert_int_eq(px_tls_new(cc, fds[0], NULL, &c), 0);
	ck_assert_int_eq(px_tls_new(sc, fds[1], NULL, &s), 0);
	handshake(c, s, &rc, &rs);
	ck_assert_int_eq(rs, -EPROTO);
	px_tls_free(c);
	px_tls_free(s);
	close(fds[0]);
	close(fds[1]);
	/* SIMPLE: the same client is fine when the server does not ask */
	pair(fds);
	ck_assert_int_eq(px_tls_new(cc, fds[0], NULL, &c), 0);
	ck_assert_int_eq(px_tls_new(sc2, fds[1], NULL, &s), 0);
	handshake(c, s, &rc, &rs);
	ck_assert(rc == 0 && rs == 0);
	ck_assert_ptr_null(px_tls_peer_uri(s));
	ck_assert_int_eq(px_tls_check_sans(s, (const char *const[]){ ID_CLIENT }, 1), -EACCES);
	px_tls_free(c);
	px_tls_free(s);
	px_tls_ctx_unref(sc);
	px_tls_ctx_unref(sc2);
	px_tls_ctx_unref(cc);
	close(fds[0]);
	close(fds[1]);
}
END_TEST

START_TEST(server_cert_from_another_ca_refused_by_client)
{
	struct tf_leaf bad;
	struct px_tls_ctx *sc, *cc = client_ctx(&lc);
	struct px_tls *c, *s;
	int fds[2], rc, rs;

	tf_leaf_make(&bad, &other, ID_SERVER, 3600);
	sc = server_ctx(&bad, 0);
	pair(fds);
	ck_assert_int_eq(px_tls_new(cc, fds[0], NULL, &c), 0);
	ck_assert_int_eq(px_tls_new(sc, fds[1], NULL, &s), 0);
	handshake(c, s, &rc, &rs);
	ck_assert_int_eq(rc, -EPROTO);
	px_tls_free(c);
	px_tls_free(s);
	px_tls_ctx_unref(sc);
	px_tls_ctx_unref(cc);
	tf_leaf_free(&bad);
	close(fds[0]);
	close(fds[1]);
}
END_TEST

START_TEST(context_swap_keeps_old_connections)
{
	struct px_tls_ctx *sc = server_ctx(&ls, 1), *cc = client_ctx(&lc), *cc2;
	struct tf_leaf lc2;
	struct px_tls *c, *s, *c2, *s2;
	int fds[2], fds2[2], rc, rs;

	pair(fds);
	ck_assert_int_eq(px_tls_new(cc, fds[0], NULL, &c), 0);
	ck_assert_int_eq(px_tls_new(sc, fds[1], NULL, &s), 0);
	handshake(c, s, &rc, &rs);
	ck_assert(rc == 0 && rs == 0);
	/* rotation: the owner drops its reference to the old context and makes a new one */
	px_tls_ctx_unref(cc);
	tf_leaf_make(&lc2, &ca, "spiffe://cluster.local/ns/demo/sa/client2", 3600);
	cc2 = client_ctx(&lc2);
	pair(fds2);
	ck_assert_int_eq(px_tls_new(cc2, fds2[0], NULL, &c2), 0);
	ck_assert_int_eq(px_tls_new(sc, fds2[1], NULL, &s2), 0);
	handshake(c2, s2, &rc, &rs);
	ck_assert(rc == 0 && rs == 0);
	ck_assert_str_eq(px_tls_peer_uri(s2), "spiffe://cluster.local/ns/demo/sa/client2");
	/* the first connection still carries bytes with its own (old) context */
	pump(c, s, fds[0], fds[1], 5000);
	ck_assert_str_eq(px_tls_peer_uri(s), ID_CLIENT);
	px_tls_free(c);
	px_tls_free(s);
	px_tls_free(c2);
	px_tls_free(s2);
	px_tls_ctx_unref(sc);
	px_tls_ctx_unref(cc2);
	tf_leaf_free(&lc2);
	close(fds[0]);
	close(fds[1]);
	close(fds2[0]);
	close(fds2[1]);
}
END_TEST

/* Every name of a client certificate reaches RBAC (Envoy's authenticated
 * matcher tries all URI SANs, then DNS SANs): the first URI is the peer's
 * id, the rest px_tls_peer_names; a server's names are not collected. */
START_TEST(client_cert_every_name)
{
	struct px_tls_ctx *sc = server_ctx(&ls, 1), *cc;
	struct tf_leaf lm;
	struct px_tls *c, *s;
	const char *const *names;
	size_t n = 9;
	int fds[2], rc, rs;

	tf_leaf_make(&lm, &ca, "spiffe://cluster.local/ns/demo/sa/client,URI:spiffe://cluster.local/ns/demo/sa/admin,"
			       "DNS:admin.demo", 3600);
	cc = client_ctx(&lm);
	pair(fds);
	ck_assert_int_eq(px_tls_new(cc, fds[0], NULL, &c), 0);
	ck_assert_int_eq(px_tls_new(sc, fds[1], NULL, &s), 0);
	handshake(c, s, &rc, &rs);
	ck_assert_msg(rc == 0 && rs == 0, "client %d (%s) server %d (%s)", rc, px_tls_error(c), rs, px_tls_error(s));
	ck_assert_str_eq(px_tls_peer_uri(s), ID_CLIENT);
	names = px_tls_peer_names(s, &n);
	ck_assert_uint_eq(n, 2);
	ck_assert_str_eq(names[0], "spiffe://cluster.local/ns/demo/sa/admin");
	ck_assert_str_eq(names[1], "admin.demo");
	(void)px_tls_peer_names(c, &n);
	ck_assert_uint_eq(n, 0);
	px_tls_free(c);
	px_tls_free(s);
	px_tls_ctx_unref(sc);
	px_tls_ctx_unref(cc);
	tf_leaf_free(&lm);
	close(fds[0]);
	close(fds[1]);
}
END_TEST

START_TEST(bad_pem_refused)
{
	struct px_tls_conf c = { .chain_pem = "not a pem", .key_pem = "nope" };
	struct px_tls_conf r = { .server = 1, .chain_pem = ls.chain, .key_pem = lc.key };
	struct px_tls_conf q = { .server = 1, .chain_pem = ls.chain, .key_pem = ls.key, .require_peer_cert = 1 };
	struct px_tls_ctx *x = NULL;
	char err[200];

	ck_assert_int_lt(px_tls_ctx_new(&c, &x, err, sizeof(err)), 0);
	ck_assert_ptr_null(x);
	ck_assert(err[0] != '\0');
	/* a key that is not the certificate's */
	ck_assert_int_eq(px_tls_ctx_new(&r, &x, err, sizeof(err)), -EINVAL);
	/* a client certificate required with nothing to verify it against */
	ck_assert_int_eq(px_tls_ctx_new(&q, &x, err, sizeof(err)), -EINVAL);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("tls");
	TCase *tc = tcase_create("tls");
	SRunner *sr;
	int failed;

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, mutual_tls_ids_alpn_sni);
	tcase_add_test(tc, bytes_both_ways_and_close_notify);
	tcase_add_test(tc, client_cert_from_another_ca_refused);
	tcase_add_test(tc, no_client_cert_refused_when_required);
	tcase_add_test(tc, server_cert_from_another_ca_refused_by_client);
	tcase_add_test(tc, context_swap_keeps_old_connections);
	tcase_add_test(tc, bad_pem_refused);
	tcase_add_test(tc, client_cert_every_name);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
