/*
 * test_gateway.c - meshproxy's engine as an Istio gateway (issue 13),
 * driven with pxspec.h's "gw" lines (istiod's router shapes: listeners
 * bound by the proxy, one filter chain per server selected by SNI, file
 * certificates in DownstreamTlsContexts) over loopback: the engine's loop
 * runs on the test thread, a blocking OpenSSL client and a raw TCP
 * backend on their own threads.  Certificates are made at test time
 * (tlsfix.h) and written to a temporary directory.
 *
 * Covered: router mode (virtualOutbound never bound), the certificate of
 * the chain the SNI selects (exact and wildcard server_names), MUTUAL
 * refusing a client without a certificate, ALPN after termination, a
 * plaintext chain's require_tls 301, PASSTHROUGH forwarding the
 * ClientHello itself, AUTO_PASSTHROUGH's cluster names.
 */
#include "dataplane/engine.h"
#include "dataplane/engine-t.h"
#include "dataplane/tcpproxy.h"
#include "pxspec.h"
#include "tlsfix.h"

#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <unistd.h>

static struct ev_loop *loop;
static struct engine *eng;
static char dir[64];
static struct tf_ca ca, other_ca;
static struct tf_leaf leaf_a, leaf_b, client, stranger;

static void write_file(const char *name, const char *text)
{
	char path[128];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(fputs(text, f) >= 0, 1);
	fclose(f);
}

/* --- a blocking TLS client on its own thread */

struct tclient {
	int port;
	const char *sni, *alpn; /* alpn: one protocol or NULL */
	const struct tf_leaf *cert; /* client certificate or NULL */
	const char *req;
	int handshake_ok;
	char peer[4096];        /* the server certificate's PEM */
	char alpn_got[16];
	char resp[8192];
	size_t len;
	atomic_int done;
	pthread_t th;
};

static int use_pem(SSL_CTX *c, const struct tf_leaf *l)
{
	BIO *b = BIO_new_mem_buf(l->chain, -1), *k = BIO_new_mem_buf(l->key, -1);
	X509 *x = PEM_read_bio_X509(b, NULL, NULL, NULL);
	EVP_PKEY *p = PEM_read_bio_PrivateKey(k, NULL, NULL, NULL);
	int ok = x && p && SSL_CTX_use_certificate(c, x) == 1 && SSL_CTX_use_PrivateKey(c, p) == 1;

	X509_free(x);
	EVP_PKEY_free(p);
	BIO_free(b);
	BIO_free(k);
	return ok;
}

static void *tc_main(void *arg)
{
	struct tclient *c = arg;
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	SSL *ssl = NULL;
	struct sockaddr_in sa;
	int fd = socket(AF_INET, SOCK_STREAM, 0), r;

	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sa.sin_port = htons((uint16_t)c->port);
	if (c->cert && !use_pem(ctx, c->cert))
		goto out;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		goto out;
	ssl = SSL_new(ctx);
	SSL_set_fd(ssl, fd);
	if (c->sni)
		SSL_set_tlsext_host_name(ssl, c->sni);
	if (c->alpn) {
		unsigned char wire[32];
		size_t n = strlen(c->alpn);

		wire[0] = (unsigned char)n;
		memcpy(wire + 1, c->alpn, n);
		SSL_set_alpn_protos(ssl, wire, (unsigned)n + 1);
	}
	if (SSL_connect(ssl) != 1)
		goto out;
	c->handshake_ok = 1;
	{
		X509 *x = SSL_get1_peer_certificate(ssl);
		BIO *b = BIO_new(BIO_s_mem());
		const unsigned char *ap = NULL;
		unsigned al = 0;
		int n;

		PEM_write_bio_X509(b, x);
		n = BIO_read(b, c->peer, sizeof(c->peer) - 1);
		c->peer[n > 0 ? n : 0] = 0;
		BIO_free(b);
		X509_free(x);
		SSL_get0_alpn_selected(ssl, &ap, &al);
		snprintf(c->alpn_got, sizeof(c->alpn_got), "%.*s", (int)al, ap ? (const char *)ap : "");
	}
	if (SSL_write(ssl, c->req, (int)strlen(c->req)) <= 0)
		goto out;
	while ((r = SSL_read(ssl, c->resp + c->len, (int)(sizeof(c->resp) - c->len - 1))) > 0)
		c->len += (size_t)r;
out:
	c->resp[c->len] = 0;
	SSL_free(ssl);
	SSL_CTX_free(ctx);
	ERR_clear_error();
	close(fd);
	c->done = 1;
	return NULL;
}

static void run_until(atomic_int *done)
{
	while (!*done)
		ck_assert_int_ge(ev_run_once(loop, 5), 0);
	ck_assert_int_ge(ev_run_once(loop, 0), 0);
}

static void tls_call(struct tclient *c)
{
	ck_assert_int_eq(pthread_create(&c->th, NULL, tc_main, c), 0);
	run_until(&c->done);
	pthread_join(c->th, NULL);
}

/* --- a plaintext client */

struct pclient {
	int port;
	const char *ip;         /* NULL: 127.0.0.1 */
	const char *req;
	char resp[4096];
	size_t len;
	atomic_int done;
	pthread_t th;
};

static void *pc_main(void *arg)
{
	struct pclient *c = arg;
	struct sockaddr_in sa;
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	ssize_t r;

	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	inet_pton(AF_INET, c->ip ? c->ip : "127.0.0.1", &sa.sin_addr);
	sa.sin_port = htons((uint16_t)c->port);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
		(void)!write(fd, c->req, strlen(c->req));
		while ((r = read(fd, c->resp + c->len, sizeof(c->resp) - c->len - 1)) > 0)
			c->len += (size_t)r;
	}
	c->resp[c->len] = 0;
	close(fd);
	c->done = 1;
	return NULL;
}

/* --- a raw TCP backend: keeps what the first connection sends */

struct rawbe {
	int lfd, port;
	unsigned char got[4096];
	size_t len;
	atomic_int done;
	pthread_t th;
};

static void *rb_main(void *arg)
{
	struct rawbe *b = arg;
	int fd = accept(b->lfd, NULL, NULL);
	ssize_t r;

	if (fd >= 0) {
		r = read(fd, b->got, sizeof(b->got));
		b->len = r > 0 ? (size_t)r : 0;
		close(fd); /* the client's handshake then fails: it reached us */
	}
	b->done = 1;
	return NULL;
}

static void rawbe_start(struct rawbe *b)
{
	struct sockaddr_in sa;
	socklen_t len = sizeof(sa);

	memset(b, 0, sizeof(*b));
	b->lfd = socket(AF_INET, SOCK_STREAM, 0);
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(b->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(listen(b->lfd, 8), 0);
	getsockname(b->lfd, (struct sockaddr *)&sa, &len);
	b->port = ntohs(sa.sin_port);
	ck_assert_int_eq(pthread_create(&b->th, NULL, rb_main, b), 0);
}

static struct rawbe raw;

static const char *SPEC =
	"outbound\n" /* a virtual listener a router never binds */
	"gw gw80 127.0.0.3:0 http http.80\n" /* another address: "127.0.0.1:0" twice is one address */
	"gw gw443 127.0.0.1:0 https a.example.com https.a cert=%1$s/a.pem key=%1$s/a.key alpn=h2,http/1.1\n"
	"gw gw443 127.0.0.1:0 https b.example.com,*.b.example.com https.b cert=%1$s/b.pem key=%1$s/b.key "
	"ca=%1$s/ca.pem mode=mutual\n"
	"gw gw443 127.0.0.1:0 pass c.example.com outbound|443||c.example.com\n"
	"gw gw443 127.0.0.1:0 auto *.svc.cluster.local\n"
	"vhost http.80 r a.example.com require_tls=all\n"
	"route http.80 r / direct=200:plain\n"
	"vhost https.a r *\n"
	"route https.a r / direct=200:from-a\n"
	"vhost https.b r *\n"
	"route https.b r / direct=200:from-b\n"
	"cluster outbound|443||c.example.com static 127.0.0.1:%2$d\n"
	"cluster outbound|9443||s.ns.svc.cluster.local static 127.0.0.1:%2$d\n";

static void setup(void)
{
	struct engine_opts o = { .outbound_addr = "127.0.0.1:0", .inbound_addr = "127.0.0.1:0", .router = 1 };
	char spec[4096], err[256] = "";
	struct px_snapshot *s = NULL;

	snprintf(dir, sizeof(dir), "/tmp/pxgw-unit-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	tf_ca_make(&ca, "gw-root");
	tf_ca_make(&other_ca, "other-root");
	tf_leaf_make(&leaf_a, &ca, "spiffe://gw/a", 3600);
	tf_leaf_make(&leaf_b, &ca, "spiffe://gw/b", 3600);
	tf_leaf_make(&client, &ca, "spiffe://gw/client", 3600);
	tf_leaf_make(&stranger, &other_ca, "spiffe://gw/stranger", 3600);
	write_file("a.pem", leaf_a.chain);
	write_file("a.key", leaf_a.key);
	write_file("b.pem", leaf_b.chain);
	write_file("b.key", leaf_b.key);
	write_file("ca.pem", ca.pem);
	rawbe_start(&raw);
	loop = ev_loop_new();
	ck_assert_ptr_nonnull(loop);
	ck_assert_int_eq(engine_new(loop, &o, &eng), 0);
	snprintf(spec, sizeof(spec), SPEC, dir, raw.port);
	ck_assert_msg(pxspec_build(spec, &s, err, sizeof(err)) == 0, "%s", err);
	ck_assert_msg(engine_apply(eng, s, err, sizeof(err)) == 0, "%s", err);
	px_snapshot_unref(s);
}

static void teardown(void)
{
	const char *names[] = { "a.pem", "a.key", "b.pem", "b.key", "ca.pem" };
	char path[128];
	size_t i;

	engine_free(eng);
	ev_loop_free(loop);
	if (!raw.done) {
		shutdown(raw.lfd, SHUT_RDWR);
		/* the accept may not wake on shutdown: connect once */
		{
			struct pclient c = { .port = raw.port, .req = "" };

			pc_main(&c);
		}
	}
	pthread_join(raw.th, NULL);
	close(raw.lfd);
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		unlink(path);
	}
	rmdir(dir);
	tf_leaf_free(&leaf_a);
	tf_leaf_free(&leaf_b);
	tf_leaf_free(&client);
	tf_leaf_free(&stranger);
	tf_ca_free(&ca);
	tf_ca_free(&other_ca);
}

static int gw443(void)
{
	int p = engine_listener_port(eng, "gw443");

	ck_assert_int_gt(p, 0);
	return p;
}

#define REQ "GET /x HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n"

START_TEST(router_mode_binds_only_gateway_listeners)
{
	ck_assert_int_eq(engine_outbound_port(eng), -ENOTCONN);
	ck_assert_int_gt(engine_listener_port(eng, "gw80"), 0);
	ck_assert_int_gt(engine_listener_port(eng, "gw443"), 0);
}
END_TEST

START_TEST(sni_selects_the_chain_and_its_certificate)
{
	struct tclient c;

	memset(&c, 0, sizeof(c));
	c.port = gw443();
	c.sni = "a.example.com";
	c.alpn = "http/1.1";
	c.req = REQ;
	tls_call(&c);
	ck_assert_int_eq(c.handshake_ok, 1);
	ck_assert_str_eq(c.peer, leaf_a.chain);
	ck_assert_str_eq(c.alpn_got, "http/1.1");
	ck_assert_msg(!strncmp(c.resp, "HTTP/1.1 200", 12) && strstr(c.resp, "from-a"), "%s", c.resp);

	/* the wildcard server name, MUTUAL with a trusted client certificate */
	memset(&c, 0, sizeof(c));
	c.port = gw443();
	c.sni = "x.b.example.com";
	c.cert = &client;
	c.req = REQ;
	tls_call(&c);
	ck_assert_int_eq(c.handshake_ok, 1);
	ck_assert_str_eq(c.peer, leaf_b.chain);
	ck_assert_msg(!strncmp(c.resp, "HTTP/1.1 200", 12) && strstr(c.resp, "from-b"), "%s", c.resp);
}
END_TEST

START_TEST(mutual_refuses_without_a_trusted_certificate)
{
	struct tclient c;

	memset(&c, 0, sizeof(c));
	c.port = gw443();
	c.sni = "b.example.com";
	c.req = REQ;
	tls_call(&c);
	/* TLS 1.3: the client's side may finish before the server refuses;
	 * no request is ever answered */
	ck_assert_msg(c.len == 0, "%s", c.resp);
	ck_assert_uint_ge(eng->tls_handshake_fail, 1);

	memset(&c, 0, sizeof(c));
	c.port = gw443();
	c.sni = "b.example.com";
	c.cert = &stranger;
	c.req = REQ;
	tls_call(&c);
	ck_assert_msg(c.len == 0, "%s", c.resp);
}
END_TEST

START_TEST(no_chain_for_the_sni_closes)
{
	struct tclient c;

	memset(&c, 0, sizeof(c));
	c.port = gw443();
	c.sni = "nosuch.example.com";
	c.req = REQ;
	tls_call(&c);
	ck_assert_int_eq(c.handshake_ok, 0);
	ck_assert_uint_eq(c.len, 0);
}
END_TEST

START_TEST(require_tls_redirects_plaintext)
{
	struct pclient c;

	memset(&c, 0, sizeof(c));
	c.port = engine_listener_port(eng, "gw80");
	c.ip = "127.0.0.3";
	c.req = "GET /p/q?x=1 HTTP/1.1\r\nHost: a.example.com\r\nConnection: close\r\n\r\n";
	ck_assert_int_eq(pthread_create(&c.th, NULL, pc_main, &c), 0);
	run_until(&c.done);
	pthread_join(c.th, NULL);
	ck_assert_msg(!strncmp(c.resp, "HTTP/1.1 301 Moved Permanently\r\n", 32), "%s", c.resp);
	ck_assert_msg(strstr(c.resp, "\r\nlocation: https://a.example.com/p/q?x=1\r\n") != NULL, "%s", c.resp);
}
END_TEST

START_TEST(passthrough_forwards_the_client_hello)
{
	struct tclient c;
	size_t i;
	int seen = 0;

	memset(&c, 0, sizeof(c));
	c.port = gw443();
	c.sni = "c.example.com";
	c.req = REQ;
	tls_call(&c);
	while (!raw.done)
		ck_assert_int_ge(ev_run_once(loop, 5), 0);
	/* a TLS handshake record, the SNI in it: the bytes as the client sent them */
	ck_assert_uint_gt(raw.len, 5);
	ck_assert_int_eq(raw.got[0], 0x16);
	for (i = 0; i + 13 <= raw.len; i++)
		seen |= !memcmp(raw.got + i, "c.example.com", 13);
	ck_assert_int_eq(seen, 1);
	ck_assert_int_eq(c.handshake_ok, 0);
}
END_TEST

START_TEST(auto_passthrough_cluster_from_the_sni)
{
	struct tclient c;

	memset(&c, 0, sizeof(c));
	c.port = gw443();
	c.sni = "outbound_.9443_._.s.ns.svc.cluster.local";
	c.req = REQ;
	tls_call(&c);
	while (!raw.done)
		ck_assert_int_ge(ev_run_once(loop, 5), 0);
	ck_assert_uint_gt(raw.len, 5);
	ck_assert_int_eq(raw.got[0], 0x16);
}
END_TEST

START_TEST(sni_cluster_names)
{
	char alt[128];

	tcpp_sni_cluster_names("outbound_.9080_.v1_.reviews.ns.svc.cluster.local", alt, sizeof(alt));
	ck_assert_str_eq(alt, "outbound|9080|v1|reviews.ns.svc.cluster.local");
	/* Istio's BuildDNSSrvSubsetKey ("%s_.%d_.%s_.%s"): no subset is "_._." */
	tcpp_sni_cluster_names("outbound_.9080_._.reviews.ns.svc.cluster.local", alt, sizeof(alt));
	ck_assert_str_eq(alt, "outbound|9080||reviews.ns.svc.cluster.local");
	tcpp_sni_cluster_names("reviews.example.com", alt, sizeof(alt));
	ck_assert_str_eq(alt, "");
	tcpp_sni_cluster_names("outbound_.9080_.v1", alt, sizeof(alt));
	ck_assert_str_eq(alt, "");
	tcpp_sni_cluster_names("outbound_.9080_.v1_.reviews.ns.svc.cluster.local", alt, 10);
	ck_assert_str_eq(alt, "");
}
END_TEST

int main(void)
{
	Suite *s = suite_create("gateway");
	TCase *tc = tcase_create("gateway");
	SRunner *sr;
	int failed;

	signal(SIGPIPE, SIG_IGN);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, router_mode_binds_only_gateway_listeners);
	tcase_add_test(tc, sni_selects_the_chain_and_its_certificate);
	tcase_add_test(tc, mutual_refuses_without_a_trusted_certificate);
	tcase_add_test(tc, no_chain_for_the_sni_closes);
	tcase_add_test(tc, require_tls_redirects_plaintext);
	tcase_add_test(tc, passthrough_forwards_the_client_hello);
	tcase_add_test(tc, auto_passthrough_cluster_from_the_sni);
	tcase_add_test(tc, sni_cluster_names);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
