/*
 * tls.c - the TLS transport of tls.h: OpenSSL over a non-blocking socket.
 *
 * The SSL object reads and writes the socket itself (SSL_set_fd); SIGPIPE
 * is ignored by meshproxy's main, so a peer gone is an error return, never
 * a signal.  read_ahead stays off: OpenSSL then reads one record at a time,
 * so decrypted bytes left inside it after a read exist only when the
 * caller's buffer was smaller than a record (px_tls_pending() tells the
 * owner to read again).  Session tickets are not sent (num_tickets 0):
 * sidecars hold long-lived pooled connections, and a ticket would be one
 * more post-handshake write for the server to schedule.
 */
#include "dataplane/tls.h"

#include "common/pem.h"
#include "common/refcount.h"
#include "dataplane/ev.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

struct px_tls_ctx {
	struct mesh_refcount refs;
	SSL_CTX *ssl;
	int server;
	unsigned char alpn[PX_TLS_MAX_ALPN]; /* wire format: length-prefixed names */
	unsigned alpn_len;
};

struct px_tls {
	struct px_tls_ctx *ctx;      /* a reference */
	SSL *ssl;
	unsigned want;               /* EV_READ / EV_WRITE after -EAGAIN */
	int done;                    /* handshake finished */
	char *peer_uri;              /* owned */
	char **peer_names;           /* the other URI SANs, then the DNS SANs (owned; px_tls_peer_names) */
	size_t n_peer_names;
	char alpn[32];   /* room for "istio-peer-exchange" (issue 14) */
	char err[160];
	struct pre_bio *pre;         /* px_tls_new_pre's bytes (owned by the read BIO), or NULL */
};

/* Bytes read off the socket before TLS started (px_tls_new_pre), handed to
 * OpenSSL first by a filter BIO in front of the socket BIO. */
struct pre_bio {
	unsigned char *p;
	size_t n, off;
};

/* Builds the wire-format ALPN list, skipping names that do not fit (and
 * "h2" in a build whose downstream codec cannot be HTTP/2 over TLS:
 * PX_TLS_OFFER_H2 0). */
static void alpn_wire(struct px_tls_ctx *c, const char *const *v, size_t n, int h2)
{
	size_t i, l;

	c->alpn_len = 0;
	for (i = 0; i < n; i++) {
		l = strlen(v[i]);
		if (!l || l > 255 || c->alpn_len + 1 + l > sizeof(c->alpn))
			continue;
		if (!PX_TLS_OFFER_H2 && !h2 && !strcmp(v[i], "h2"))
			continue;
		c->alpn[c->alpn_len++] = (unsigned char)l;
		memcpy(c->alpn + c->alpn_len, v[i], l);
		c->alpn_len += (unsigned)l;
	}
}

/* Server side: the first of our protocols the client offered (Envoy picks
 * by the server's order too); none in common: no ALPN, not a failure. */
static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen, const unsigned char *in,
		       unsigned inlen, void *arg)
{
	struct px_tls_ctx *c = arg;
	unsigned char *o;

	(void)ssl;
	if (!c->alpn_len)
		return SSL_TLSEXT_ERR_NOACK;
	if (SSL_select_next_proto(&o, outlen, c->alpn, c->alpn_len, in, inlen) != OPENSSL_NPN_NEGOTIATED)
		return SSL_TLSEXT_ERR_NOACK;
	*out = o;
	return SSL_TLSEXT_ERR_OK;
}

static int load_roots(SSL_CTX *ssl, const char *pem)
{
	STACK_OF(X509) *sk = NULL;
	X509_STORE *st = SSL_CTX_get_cert_store(ssl);
	int rc, i;

	rc = mesh_pem_read_certs(pem, strlen(pem), &sk);
	if (rc < 0)
		return rc;
	for (i = 0; i < sk_X509_num(sk); i++)
		if (X509_STORE_add_cert(st, sk_X509_value(sk, i)) != 1) {
			rc = -EINVAL;
			break;
		}
	sk_X509_pop_free(sk, X509_free);
	return rc;
}

static int load_chain(SSL_CTX *ssl, const char *chain_pem, const char *key_pem)
{
	STACK_OF(X509) *sk = NULL;
	EVP_PKEY *key = NULL;
	int rc, i;

	rc = mesh_pem_read_certs(chain_pem, strlen(chain_pem), &sk);
	if (rc < 0)
		goto out;
	rc = mesh_pem_read_key(key_pem, strlen(key_pem), &key);
	if (rc < 0)
		goto out;
	rc = -EINVAL;
	if (SSL_CTX_use_certificate(ssl, sk_X509_value(sk, 0)) != 1 || SSL_CTX_use_PrivateKey(ssl, key) != 1 ||
	    SSL_CTX_check_private_key(ssl) != 1)
		goto out;
	/* the rest of the chain (intermediates; a root sent along is harmless) */
	for (i = 1; i < sk_X509_num(sk); i++) {
		X509 *x = sk_X509_value(sk, i);

		if (SSL_CTX_add1_chain_cert(ssl, x) != 1)
			goto out;
	}
	rc = 0;
out:
	EVP_PKEY_free(key);
	sk_X509_pop_free(sk, X509_free);
	return rc;
}

/* PX_TLS_V1_x as OpenSSL spells it. */
static int tls_version(int v)
{
	switch (v) {
	case PX_TLS_V1_0: return TLS1_VERSION;
	case PX_TLS_V1_1: return TLS1_1_VERSION;
	case PX_TLS_V1_2: return TLS1_2_VERSION;
	case PX_TLS_V1_3: return TLS1_3_VERSION;
	default: return -1;
	}
}

int px_tls_ctx_new(const struct px_tls_conf *conf, struct px_tls_ctx **out, char *err, size_t cap)
{
	struct px_tls_ctx *c;
	char why[128];
	int rc = -ENOMEM;

	*out = NULL;
	if (cap)
		err[0] = '\0';
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	mesh_refcount_init(&c->refs, 1);
	c->server = conf->server;
	c->ssl = SSL_CTX_new(conf->server ? TLS_server_method() : TLS_client_method());
	if (!c->ssl)
		goto out;
	/* Istio's minimum for mesh traffic is TLS 1.2; a Gateway's
	 * minProtocolVersion / maxProtocolVersion (issue 13) */
	if (SSL_CTX_set_min_proto_version(c->ssl, conf->min_version ? tls_version(conf->min_version)
								  : TLS1_2_VERSION) != 1 ||
	    (conf->max_version && SSL_CTX_set_max_proto_version(c->ssl, tls_version(conf->max_version)) != 1)) {
		snprintf(err, cap, "TLS protocol versions %d..%d not supported", conf->min_version, conf->max_version);
		rc = -EINVAL;
		goto out;
	}
	if (conf->ciphers && *conf->ciphers && SSL_CTX_set_cipher_list(c->ssl, conf->ciphers) != 1) {
		snprintf(err, cap, "cipher suites '%s': none is known", conf->ciphers);
		rc = -EINVAL;
		goto out;
	}
	SSL_CTX_set_mode(c->ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	SSL_CTX_set_session_cache_mode(c->ssl, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_num_tickets(c->ssl, 0);
	/* a peer that closes without close_notify is EOF, as on a raw socket */
	SSL_CTX_set_options(c->ssl, SSL_OP_IGNORE_UNEXPECTED_EOF);
	rc = -EINVAL;
	if (conf->chain_pem && conf->key_pem) {
		rc = load_chain(c->ssl, conf->chain_pem, conf->key_pem);
		if (rc < 0) {
			snprintf(err, cap, "certificate or key: %s", mesh_pem_ssl_reason(why, sizeof(why)));
			goto out;
		}
	}
	if (conf->roots_pem) {
		rc = load_roots(c->ssl, conf->roots_pem);
		if (rc < 0) {
			snprintf(err, cap, "trusted roots: %s", mesh_pem_ssl_reason(why, sizeof(why)));
			goto out;
		}
		SSL_CTX_set_verify(c->ssl,
				   SSL_VERIFY_PEER | (conf->require_peer_cert ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0),
				   NULL);
	} else if (conf->server && conf->require_peer_cert) {
		snprintf(err, cap, "require_client_certificate without trusted roots");
		rc = -EINVAL;
		goto out;
	}
	alpn_wire(c, conf->alpn, conf->n_alpn, conf->h2);
	if (conf->server)
		SSL_CTX_set_alpn_select_cb(c->ssl, alpn_select, c);
	rc = 0;
	*out = c;
out:
	if (rc < 0)
		px_tls_ctx_unref(c);
	return rc;
}

struct px_tls_ctx *px_tls_ctx_ref(struct px_tls_ctx *c)
{
	mesh_refcount_ref(&c->refs);
	return c;
}

void px_tls_ctx_unref(struct px_tls_ctx *c)
{
	if (!c || !mesh_refcount_unref(&c->refs))
		return;
	SSL_CTX_free(c->ssl);
	free(c);
}

static int pre_read(BIO *b, char *out, int len)
{
	struct pre_bio *x = BIO_get_data(b);
	int r;

	BIO_clear_retry_flags(b);
	if (x && x->off < x->n && len > 0) {
		size_t k = x->n - x->off < (size_t)len ? x->n - x->off : (size_t)len;

		memcpy(out, x->p + x->off, k);
		x->off += k;
		return (int)k;
	}
	if (!BIO_next(b))
		return 0;
	r = BIO_read(BIO_next(b), out, len);
	BIO_copy_next_retry(b);
	return r;
}

static int pre_write(BIO *b, const char *in, int len)
{
	int r;

	BIO_clear_retry_flags(b);
	if (!BIO_next(b))
		return 0;
	r = BIO_write(BIO_next(b), in, len);
	BIO_copy_next_retry(b);
	return r;
}

static long pre_ctrl(BIO *b, int cmd, long num, void *ptr)
{
	struct pre_bio *x = BIO_get_data(b);
	long more = cmd == BIO_CTRL_PENDING && x ? (long)(x->n - x->off) : 0;

	return BIO_next(b) ? BIO_ctrl(BIO_next(b), cmd, num, ptr) + more : more;
}

static int pre_create(BIO *b)
{
	BIO_set_init(b, 1);
	return 1;
}

static int pre_destroy(BIO *b)
{
	struct pre_bio *x = BIO_get_data(b);

	if (x)
		free(x->p);
	free(x);
	BIO_set_data(b, NULL);
	return 1;
}

/* The filter's method, made once (the proxy's loop thread is the only
 * caller; kept for the process's life). */
static BIO_METHOD *pre_method(void)
{
	static BIO_METHOD *m;

	if (m)
		return m;
	m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_FILTER, "meshproxy prefix");
	if (m && (!BIO_meth_set_read(m, pre_read) || !BIO_meth_set_write(m, pre_write) ||
		  !BIO_meth_set_ctrl(m, pre_ctrl) || !BIO_meth_set_create(m, pre_create) ||
		  !BIO_meth_set_destroy(m, pre_destroy))) {
		BIO_meth_free(m);
		m = NULL;
	}
	return m;
}

int px_tls_new_pre(struct px_tls_ctx *ctx, int fd, const void *pre, size_t n, struct px_tls **out)
{
	BIO *sock = NULL, *f = NULL;
	struct pre_bio *x = NULL;
	BIO_METHOD *m = pre_method();
	int rc;

	rc = px_tls_new(ctx, fd, NULL, out);
	if (rc < 0 || !n)
		return rc;
	rc = -ENOMEM;
	x = calloc(1, sizeof(*x));
	if (!m || !x || !(x->p = malloc(n)))
		goto out;
	memcpy(x->p, pre, n);
	x->n = n;
	sock = BIO_new_socket(fd, BIO_NOCLOSE);
	f = BIO_new(m);
	if (!sock || !f || !BIO_up_ref(sock))
		goto out;
	BIO_set_data(f, x);
	(*out)->pre = x;
	x = NULL;
	BIO_push(f, sock);
	/* the read side is the filter chain, the write side the socket
	 * itself (one reference each, SSL frees both) */
	SSL_set_bio((*out)->ssl, f, sock);
	f = sock = NULL;
	rc = 0;
out:
	if (x)
		free(x->p);
	free(x);
	BIO_free(f);
	BIO_free(sock);
	if (rc < 0) {
		px_tls_free(*out);
		*out = NULL;
	}
	return rc;
}

int px_tls_new(struct px_tls_ctx *ctx, int fd, const char *sni, struct px_tls **out)
{
	struct px_tls *t;
	int rc = -ENOMEM;

	*out = NULL;
	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->ssl = SSL_new(ctx->ssl);
	if (!t->ssl || SSL_set_fd(t->ssl, fd) != 1)
		goto out;
	if (ctx->server) {
		SSL_set_accept_state(t->ssl);
	} else {
		SSL_set_connect_state(t->ssl);
		if (sni && *sni && SSL_set_tlsext_host_name(t->ssl, sni) != 1)
			goto out;
		if (ctx->alpn_len && SSL_set_alpn_protos(t->ssl, ctx->alpn, ctx->alpn_len) != 0)
			goto out;
	}
	t->ctx = px_tls_ctx_ref(ctx);
	t->want = EV_READ;
	rc = 0;
	*out = t;
out:
	if (rc < 0) {
		SSL_free(t->ssl);
		free(t);
	}
	return rc;
}

void px_tls_free(struct px_tls *t)
{
	if (!t)
		return;
	if (t->done) {
		/* close_notify, once; a full socket buffer just loses it */
		(void)SSL_shutdown(t->ssl);
	}
	ERR_clear_error();
	SSL_free(t->ssl);
	px_tls_ctx_unref(t->ctx);
	free(t->peer_uri);
	while (t->n_peer_names)
		free(t->peer_names[--t->n_peer_names]);
	free(t->peer_names);
	free(t);
}

/* The outcome of an SSL call that returned r <= 0: -EAGAIN (want set),
 * 0 for a clean close_notify, or a negative code (reason in t->err). */
static int ssl_result(struct px_tls *t, int r)
{
	int sys = errno, e = SSL_get_error(t->ssl, r);
	unsigned long q;

	switch (e) {
	case SSL_ERROR_WANT_READ:
		t->want = EV_READ;
		return -EAGAIN;
	case SSL_ERROR_WANT_WRITE:
		t->want = EV_WRITE;
		return -EAGAIN;
	case SSL_ERROR_ZERO_RETURN:
		return 0;
	case SSL_ERROR_SYSCALL:
		ERR_clear_error();
		if (r == 0 || !sys) {
			snprintf(t->err, sizeof(t->err), "connection closed during TLS");
			return -ECONNRESET;
		}
		snprintf(t->err, sizeof(t->err), "%s", strerror(sys));
		return sys == EAGAIN ? -EAGAIN : -sys;
	default:
		q = ERR_peek_last_error();
		if (q) {
			char buf[120];

			ERR_error_string_n(q, buf, sizeof(buf));
			snprintf(t->err, sizeof(t->err), "%s", buf);
		} else {
			snprintf(t->err, sizeof(t->err), "TLS error %d", e);
		}
		if (SSL_get_verify_result(t->ssl) != X509_V_OK)
			snprintf(t->err, sizeof(t->err), "certificate verify failed: %s",
				 X509_verify_cert_error_string(SSL_get_verify_result(t->ssl)));
		ERR_clear_error();
		return -EPROTO;
	}
}

/* The peer's first URI SAN, or NULL. */
static char *peer_uri_of(X509 *x)
{
	GENERAL_NAMES *names = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	char *uri = NULL;
	int i;

	for (i = 0; names && i < sk_GENERAL_NAME_num(names) && !uri; i++) {
		const GENERAL_NAME *g = sk_GENERAL_NAME_value(names, i);

		if (g->type == GEN_URI)
			uri = strndup((const char *)ASN1_STRING_get0_data(g->d.uniformResourceIdentifier),
				      (size_t)ASN1_STRING_length(g->d.uniformResourceIdentifier));
	}
	GENERAL_NAMES_free(names);
	return uri;
}

/* Into t->peer_names: x's URI SANs but the first (peer_uri), then its DNS
 * SANs, as Envoy's RBAC authenticated matcher tries them.  A name that
 * cannot be kept (memory, more than PX_TLS_MAX_PEER_NAMES) fails the
 * handshake rather than be skipped: a DENY could hang on it. */
static int peer_names_of(struct px_tls *t, X509 *x)
{
	GENERAL_NAMES *names = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	int i, pass, first = 1, rc = 0;

	for (pass = 0; pass < 2 && rc == 0; pass++) {
		for (i = 0; names && i < sk_GENERAL_NAME_num(names) && rc == 0; i++) {
			const GENERAL_NAME *g = sk_GENERAL_NAME_value(names, i);
			const ASN1_STRING *s;
			char **v;

			if (pass == 0 && g->type == GEN_URI)
				s = g->d.uniformResourceIdentifier;
			else if (pass == 1 && g->type == GEN_DNS)
				s = g->d.dNSName;
			else
				continue;
			if (pass == 0 && first) {
				first = 0; /* peer_uri */
				continue;
			}
			if (t->n_peer_names >= PX_TLS_MAX_PEER_NAMES) {
				rc = -E2BIG;
				break;
			}
			v = realloc(t->peer_names, (t->n_peer_names + 1) * sizeof(*v));
			if (!v) {
				rc = -ENOMEM;
				break;
			}
			t->peer_names = v;
			v[t->n_peer_names] = strndup((const char *)ASN1_STRING_get0_data(s), (size_t)ASN1_STRING_length(s));
			if (!v[t->n_peer_names])
				rc = -ENOMEM;
			else
				t->n_peer_names++;
		}
	}
	GENERAL_NAMES_free(names);
	return rc;
}

int px_tls_handshake(struct px_tls *t)
{
	const unsigned char *p;
	unsigned len;
	X509 *peer;
	int r;

	if (t->done)
		return 0;
	ERR_clear_error();
	r = SSL_do_handshake(t->ssl);
	if (r != 1) {
		r = ssl_result(t, r);
		if (r == 0) {
			snprintf(t->err, sizeof(t->err), "peer closed the connection during the TLS handshake");
			r = -EPROTO;
		}
		return r == -EAGAIN ? r : -EPROTO;
	}
	t->done = 1;
	SSL_get0_alpn_selected(t->ssl, &p, &len);
	if (len && len < sizeof(t->alpn)) {
		memcpy(t->alpn, p, len);
		t->alpn[len] = '\0';
	}
	peer = SSL_get1_peer_certificate(t->ssl);
	if (peer) {
		t->peer_uri = peer_uri_of(peer);
		/* a client's certificate only: RBAC judges clients (a server's may
		 * carry hundreds of DNS names, none of them judged) */
		r = t->ctx->server ? peer_names_of(t, peer) : 0;
		X509_free(peer);
		if (r < 0) {
			snprintf(t->err, sizeof(t->err), "peer certificate: %s",
				 r == -E2BIG ? "too many subject alternative names" : "out of memory");
			return -EPROTO;
		}
	}
	return 0;
}

unsigned px_tls_want(const struct px_tls *t)
{
	return t->want;
}

const char *px_tls_error(const struct px_tls *t)
{
	return t->err[0] ? t->err : "TLS error";
}

int px_tls_pending(const struct px_tls *t)
{
	return SSL_pending(t->ssl) > 0 || (t->pre && t->pre->off < t->pre->n);
}

const char *px_tls_peer_uri(const struct px_tls *t)
{
	return t->peer_uri;
}

const char *const *px_tls_peer_names(const struct px_tls *t, size_t *n)
{
	*n = t->n_peer_names;
	return (const char *const *)t->peer_names;
}

const char *px_tls_alpn(const struct px_tls *t)
{
	return t->alpn;
}

const char *px_tls_sni(const struct px_tls *t)
{
	return SSL_get_servername(t->ssl, TLSEXT_NAMETYPE_host_name);
}

int px_tls_check_sans(const struct px_tls *t, const char *const *sans, size_t n)
{
	GENERAL_NAMES *names;
	X509 *peer;
	int i, ok = 0;
	size_t j;

	if (!n)
		return 0;
	peer = SSL_get1_peer_certificate(t->ssl);
	if (!peer)
		return -EACCES;
	names = X509_get_ext_d2i(peer, NID_subject_alt_name, NULL, NULL);
	for (i = 0; names && i < sk_GENERAL_NAME_num(names) && !ok; i++) {
		const GENERAL_NAME *g = sk_GENERAL_NAME_value(names, i);
		const ASN1_STRING *s;

		if (g->type == GEN_URI)
			s = g->d.uniformResourceIdentifier;
		else if (g->type == GEN_DNS)
			s = g->d.dNSName;
		else
			continue;
		for (j = 0; j < n && !ok; j++)
			ok = strlen(sans[j]) == (size_t)ASN1_STRING_length(s) &&
			     !memcmp(sans[j], ASN1_STRING_get0_data(s), (size_t)ASN1_STRING_length(s));
	}
	GENERAL_NAMES_free(names);
	X509_free(peer);
	return ok ? 0 : -EACCES;
}

int px_tls_xfcc(const struct px_tls *t, char *out, size_t cap)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	char hash[2 * EVP_MAX_MD_SIZE + 1], subj[256] = "";
	X509 *peer = SSL_get1_peer_certificate(t->ssl), *self = SSL_get_certificate(t->ssl);
	char *by = self ? peer_uri_of(self) : NULL;
	unsigned mdlen = 0, i;
	BIO *bio;
	int n, rc = -ENOENT;

	if (!peer)
		goto out;
	if (X509_digest(peer, EVP_sha256(), md, &mdlen) != 1)
		mdlen = 0;
	for (i = 0; i < mdlen; i++)
		snprintf(hash + 2 * i, 3, "%02x", md[i]);
	hash[2 * mdlen] = '\0';
	bio = BIO_new(BIO_s_mem());
	if (bio) {
		X509_NAME_print_ex(bio, X509_get_subject_name(peer), 0, XN_FLAG_RFC2253);
		n = BIO_read(bio, subj, (int)sizeof(subj) - 1);
		subj[n > 0 ? n : 0] = '\0';
		BIO_free(bio);
	}
	n = snprintf(out, cap, "%s%s%sHash=%s;Subject=\"%s\"%s%s", by ? "By=" : "", by ? by : "", by ? ";" : "", hash,
		     subj, t->peer_uri ? ";URI=" : "", t->peer_uri ? t->peer_uri : "");
	rc = n < 0 || (size_t)n >= cap ? -ENOSPC : 0;
out:
	free(by);
	X509_free(peer);
	return rc;
}

/* ---- the transport ops */

static ssize_t tls_read(void *ctx, int fd, void *buf, size_t len)
{
	struct px_tls *t = ctx;
	size_t got = 0;
	int r;

	(void)fd;
	ERR_clear_error();
	r = SSL_read_ex(t->ssl, buf, len, &got);
	if (r == 1)
		return (ssize_t)got;
	return ssl_result(t, 0);
}

static ssize_t tls_write(void *ctx, int fd, const void *buf, size_t len)
{
	struct px_tls *t = ctx;
	size_t put = 0;
	int r;

	(void)fd;
	if (!len)
		return 0;
	ERR_clear_error();
	r = SSL_write_ex(t->ssl, buf, len, &put);
	if (r == 1)
		return (ssize_t)put;
	r = ssl_result(t, 0);
	return r == 0 ? -EPIPE : r;
}

static void tls_shutdown_write(void *ctx, int fd)
{
	struct px_tls *t = ctx;

	/* close_notify is TLS's half-close; the socket's write side follows */
	(void)SSL_shutdown(t->ssl);
	ERR_clear_error();
	shutdown(fd, SHUT_WR);
}

const struct px_transport_ops px_transport_tls = {
	.name = "tls",
	.read = tls_read,
	.write = tls_write,
	.shutdown_write = tls_shutdown_write,
};
