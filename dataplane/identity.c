/*
 * identity.c - the workload certificate of identity.h: one CreateCertificate
 * call at a time over grpc_client.c (TLS to meshd, bearer token), the answer
 * checked (the leaf carries our public key and chains to the root) before it
 * replaces the current one, a renewal timer at half the lifetime and
 * backoff after a failure.
 */
#include "dataplane/identity.h"

#include "common/file.h"
#include "common/json.h"
#include "common/log.h"
#include "common/pem.h"
#include "dataplane/grpc_client.h"
#include "dataplane/net.h"
#include "security/v1alpha1/ca.pb-c.h"

#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SCOPE "identity"
#define ID_PATH "/istio.v1.auth.IstioCertificateService/CreateCertificate"
#define ID_DEFAULT_SERVER "istiod.istio-system.svc"
#define ID_DEFAULT_TTL_S (24 * 3600)
#define ID_TOKEN_MAX 8192            /* the CA's own cap on a bearer token */
#define ID_BACKOFF_MIN_MS 1000
#define ID_BACKOFF_MAX_MS 30000
/* a chain or root PEM dumped by /config_dump (a mesh chain is a few KiB) */
#define ID_DUMP_PEM_MAX (256u * 1024)
#define ID_CALL_TIMEOUT_MS 10000     /* connect + TLS handshake */
#define ID_RENEW_MIN_MS 1000         /* never renew in a tighter loop than this */

struct px_identity {
	struct ev_loop *loop;
	struct sockaddr_storage ca;
	socklen_t ca_len;
	char *root_pem, *token_file, *server_name, *authority;
	uint64_t ttl_s;
	struct px_tls_ctx *ca_tls;       /* trusts the root; verifies meshd */
	/* the installed certificate */
	char *chain_pem, *key_pem;
	STACK_OF(X509) *chain;           /* as the CA sent it: leaf first, root last */
	unsigned gen;
	time_t not_before, not_after;
	time_t installed;                /* when gen last changed (config_dump's last_updated) */
	char last_error[200];
	/* the request in flight */
	struct grpc_client *g;
	EVP_PKEY *next_key;
	char *auth;                      /* "Bearer TOKEN", cleansed when done */
	STACK_OF(X509) *got;             /* the response's chain, checked */
	struct ev_timer renew;
	struct ev_defer reap;
	uint64_t backoff_ms;
};

static void id_schedule(struct px_identity *id, uint64_t ms)
{
	ev_timer_arm(id->loop, &id->renew, ms);
}

static void id_fail(struct px_identity *id, const char *why)
{
	snprintf(id->last_error, sizeof(id->last_error), "%s", why);
	id->backoff_ms = id->backoff_ms ? id->backoff_ms * 2 : ID_BACKOFF_MIN_MS;
	if (id->backoff_ms > ID_BACKOFF_MAX_MS)
		id->backoff_ms = ID_BACKOFF_MAX_MS;
	log_warn(SCOPE, "certificate request failed: %s; retrying in %llu ms", why,
		 (unsigned long long)id->backoff_ms);
	id_schedule(id, id->backoff_ms);
}

static time_t asn1_time(const ASN1_TIME *t)
{
	struct tm tm;

	if (ASN1_TIME_to_tm(t, &tm) != 1)
		return 0;
	return timegm(&tm);
}

/* The response's chain: our key in the leaf, a path to the root. */
static int id_check(struct px_identity *id, const Istio__V1__Auth__IstioCertificateResponse *r, char *why,
		    size_t cap)
{
	STACK_OF(X509) *sk = NULL, *roots = NULL;
	X509_STORE *st = NULL;
	X509_STORE_CTX *vc = NULL;
	size_t i;
	int rc = -EINVAL, j;

	for (i = 0; i < r->n_cert_chain; i++)
		if (mesh_pem_read_certs(r->cert_chain[i], strlen(r->cert_chain[i]), &sk) < 0) {
			snprintf(why, cap, "certificate %zu of the answer is not PEM", i);
			goto out;
		}
	if (!sk || sk_X509_num(sk) < 1) {
		snprintf(why, cap, "empty certificate chain");
		goto out;
	}
	if (EVP_PKEY_eq(X509_get0_pubkey(sk_X509_value(sk, 0)), id->next_key) != 1) {
		snprintf(why, cap, "the leaf does not carry our key");
		goto out;
	}
	if (mesh_pem_read_certs(id->root_pem, strlen(id->root_pem), &roots) < 0 || !(st = X509_STORE_new()) ||
	    !(vc = X509_STORE_CTX_new())) {
		rc = -ENOMEM;
		snprintf(why, cap, "out of memory");
		goto out;
	}
	for (j = 0; j < sk_X509_num(roots); j++)
		X509_STORE_add_cert(st, sk_X509_value(roots, j));
	if (X509_STORE_CTX_init(vc, st, sk_X509_value(sk, 0), sk) != 1 || X509_verify_cert(vc) != 1) {
		snprintf(why, cap, "the chain does not verify against the root: %s",
			 X509_verify_cert_error_string(X509_STORE_CTX_get_error(vc)));
		goto out;
	}
	id->got = sk;
	sk = NULL;
	rc = 0;
out:
	X509_STORE_CTX_free(vc);
	X509_STORE_free(st);
	sk_X509_pop_free(roots, X509_free);
	sk_X509_pop_free(sk, X509_free);
	return rc;
}

static void id_on_message(void *ctx, const uint8_t *msg, size_t len)
{
	struct px_identity *id = ctx;
	Istio__V1__Auth__IstioCertificateResponse *r;
	char why[160];

	if (id->got)
		return;
	r = istio__v1__auth__istio_certificate_response__unpack(NULL, len, msg);
	if (!r) {
		snprintf(id->last_error, sizeof(id->last_error), "malformed IstioCertificateResponse");
		return;
	}
	if (id_check(id, r, why, sizeof(why)) < 0)
		snprintf(id->last_error, sizeof(id->last_error), "%s", why);
	istio__v1__auth__istio_certificate_response__free_unpacked(r, NULL);
}

/* The checked answer becomes the current certificate. */
static int id_install(struct px_identity *id)
{
	int n = sk_X509_num(id->got), last = n;
	X509 *leaf = sk_X509_value(id->got, 0), *top = sk_X509_value(id->got, n - 1);
	char *chain, *key;

	/* the root itself is not sent in handshakes (the peer has it) */
	if (n > 1 && X509_check_issued(top, top) == X509_V_OK)
		last = n - 1;
	chain = mesh_pem_from_certs(id->got, 0, last);
	key = mesh_pem_from_key(id->next_key);
	if (!chain || !key) {
		free(chain);
		free(key);
		return -ENOMEM;
	}
	free(id->chain_pem);
	if (id->key_pem) {
		OPENSSL_cleanse(id->key_pem, strlen(id->key_pem));
		free(id->key_pem);
	}
	id->chain_pem = chain;
	id->key_pem = key;
	sk_X509_pop_free(id->chain, X509_free);
	id->chain = id->got;
	id->got = NULL;
	id->not_before = asn1_time(X509_get0_notBefore(leaf));
	id->not_after = asn1_time(X509_get0_notAfter(leaf));
	id->installed = time(NULL);
	id->gen++;
	return 0;
}

static void id_call_done(struct px_identity *id)
{
	if (id->auth) {
		OPENSSL_cleanse(id->auth, strlen(id->auth));
		free(id->auth);
		id->auth = NULL;
	}
	EVP_PKEY_free(id->next_key);
	id->next_key = NULL;
	sk_X509_pop_free(id->got, X509_free);
	id->got = NULL;
}

static void id_reap(struct ev_loop *loop, struct ev_defer *d)
{
	struct px_identity *id = d->data;

	(void)loop;
	grpc_client_free(id->g);
	id->g = NULL;
	id_call_done(id);
}

static void id_on_close(void *ctx, int status, const char *message)
{
	struct px_identity *id = ctx;
	char why[200];
	time_t now = time(NULL), life, at;
	uint64_t ms;

	/* the client is freed outside its own callback */
	ev_defer(id->loop, &id->reap);
	if (status != GRPC_STATUS_OK || !id->got) {
		if (status != GRPC_STATUS_OK)
			snprintf(why, sizeof(why), "CreateCertificate: status %d: %.150s", status, message ? message : "");
		else
			snprintf(why, sizeof(why), "CreateCertificate: %.170s",
				 id->last_error[0] ? id->last_error : "no certificate in the answer");
		id_fail(id, why);
		return;
	}
	if (id_install(id) < 0) {
		id_fail(id, "out of memory installing the certificate");
		return;
	}
	id->backoff_ms = 0;
	id->last_error[0] = '\0';
	/* Istio's SECRET_GRACE_PERIOD_RATIO 0.5: renew at half the lifetime,
	 * counted from when it was received (Istio's secret CreatedTime): CAs
	 * backdate notBefore for clock skew (meshd's by minutes) */
	life = id->not_after - (id->not_before > now ? id->not_before : now);
	at = now + life / 2;
	ms = at > now ? (uint64_t)(at - now) * 1000 : 0;
	if (ms < ID_RENEW_MIN_MS)
		ms = ID_RENEW_MIN_MS;
	log_info(SCOPE, "workload certificate %u installed (valid %lld s; renewing in %llu ms)", id->gen,
		 (long long)life, (unsigned long long)ms);
	id_schedule(id, ms);
}

static void id_request(struct px_identity *id)
{
	static const struct grpc_call_cbs cbs = { id_on_message, id_on_close };
	Istio__V1__Auth__IstioCertificateRequest req = ISTIO__V1__AUTH__ISTIO_CERTIFICATE_REQUEST__INIT;
	struct grpc_client_opts go;
	char *token = NULL, *csr = NULL, why[200];
	uint8_t *wire = NULL;
	size_t len, tl;
	int rc;

	if (id->g)
		return; /* one at a time */
	rc = mesh_read_file(id->token_file, ID_TOKEN_MAX, &token, &tl);
	if (rc < 0) {
		snprintf(why, sizeof(why), "token file %s: %s", id->token_file, mesh_strerror(rc));
		goto out;
	}
	tl = strlen(token);
	while (tl && (token[tl - 1] == '\n' || token[tl - 1] == '\r' || token[tl - 1] == ' '))
		token[--tl] = '\0';
	len = tl + sizeof("Bearer ");
	id->auth = malloc(len);
	rc = -ENOMEM;
	if (!id->auth || mesh_pem_key_and_csr(&id->next_key, &csr) < 0) {
		snprintf(why, sizeof(why), "cannot make a key and CSR");
		goto out;
	}
	snprintf(id->auth, len, "Bearer %s", token);
	req.csr = csr;
	req.validity_duration = (int64_t)id->ttl_s;
	len = istio__v1__auth__istio_certificate_request__get_packed_size(&req);
	wire = malloc(len ? len : 1);
	if (!wire) {
		snprintf(why, sizeof(why), "out of memory");
		goto out;
	}
	istio__v1__auth__istio_certificate_request__pack(&req, wire);
	memset(&go, 0, sizeof(go));
	go.tls = id->ca_tls;
	go.tls_sni = id->server_name;
	go.authorization = id->auth;
	go.connect_timeout_ms = ID_CALL_TIMEOUT_MS;
	id->last_error[0] = '\0';
	rc = grpc_client_new(id->loop, (struct sockaddr *)&id->ca, id->ca_len, id->authority, ID_PATH, &go, &cbs, id,
			     &id->g);
	if (rc < 0) {
		snprintf(why, sizeof(why), "connect to %s: %s", id->authority, mesh_strerror(rc));
		goto out;
	}
	rc = grpc_client_send(id->g, wire, len);
	if (rc < 0) {
		/* the client reports nothing for this: end it here */
		grpc_client_free(id->g);
		id->g = NULL;
		snprintf(why, sizeof(why), "send: %s", mesh_strerror(rc));
		goto out;
	}
	rc = 0;
out:
	if (token) {
		OPENSSL_cleanse(token, strlen(token));
		free(token);
	}
	free(csr);
	free(wire);
	if (rc < 0) {
		id_call_done(id);
		id_fail(id, why);
	}
}

static void id_timer(struct ev_loop *loop, struct ev_timer *t)
{
	(void)loop;
	id_request(t->data);
}

int px_identity_new(struct ev_loop *loop, const struct px_identity_opts *o, struct px_identity **out)
{
	struct px_tls_conf tc = { 0 };
	struct px_identity *id;
	char err[200];
	size_t alen;
	int rc = -ENOMEM;

	*out = NULL;
	id = calloc(1, sizeof(*id));
	if (!id)
		return -ENOMEM;
	id->loop = loop;
	ev_timer_init(&id->renew, id_timer, id);
	ev_defer_init(&id->reap, id_reap, id);
	id->ttl_s = o->ttl_s ? o->ttl_s : ID_DEFAULT_TTL_S;
	id->root_pem = strdup(o->root_pem);
	id->token_file = strdup(o->token_file);
	id->server_name = strdup(o->server_name ? o->server_name : ID_DEFAULT_SERVER);
	if (!id->root_pem || !id->token_file || !id->server_name)
		goto out;
	rc = net_parse_addr(o->ca_addr, &id->ca, &id->ca_len);
	if (rc < 0)
		goto out;
	/* :authority as Istio's agent sends it: the CA's name and port */
	alen = strlen(id->server_name) + 8;
	id->authority = malloc(alen);
	rc = -ENOMEM;
	if (!id->authority)
		goto out;
	snprintf(id->authority, alen, "%s:%u", id->server_name,
		 ntohs(((struct sockaddr_in *)&id->ca)->sin_port));
	static const char *const h2[] = { "h2" };

	/* gRPC over TLS: gRPC core servers require ALPN h2 */
	tc.roots_pem = id->root_pem;
	tc.alpn = h2;
	tc.n_alpn = 1;
	tc.h2 = 1;
	rc = px_tls_ctx_new(&tc, &id->ca_tls, err, sizeof(err));
	if (rc < 0) {
		log_error(SCOPE, "--root-cert: %s", err);
		goto out;
	}
	id_schedule(id, 0);
	*out = id;
	rc = 0;
out:
	if (rc < 0)
		px_identity_free(id);
	return rc;
}

void px_identity_free(struct px_identity *id)
{
	if (!id)
		return;
	ev_timer_cancel(id->loop, &id->renew);
	ev_defer_cancel(id->loop, &id->reap);
	grpc_client_free(id->g);
	id_call_done(id);
	px_tls_ctx_unref(id->ca_tls);
	if (id->key_pem) {
		OPENSSL_cleanse(id->key_pem, strlen(id->key_pem));
		free(id->key_pem);
	}
	free(id->chain_pem);
	sk_X509_pop_free(id->chain, X509_free);
	free(id->root_pem);
	free(id->token_file);
	free(id->server_name);
	free(id->authority);
	free(id);
}

unsigned px_identity_generation(const struct px_identity *id)
{
	return id ? id->gen : 0;
}

int px_identity_tls_ctx(const struct px_identity *id, int server, int require_peer_cert, const char *const *alpn,
			size_t n_alpn, struct px_tls_ctx **out)
{
	struct px_tls_conf c = { .server = server, .require_peer_cert = require_peer_cert, .alpn = alpn,
				 .n_alpn = n_alpn };
	char err[200];
	int rc;

	*out = NULL;
	if (!id || !id->gen)
		return -EAGAIN;
	c.chain_pem = id->chain_pem;
	c.key_pem = id->key_pem;
	c.roots_pem = id->root_pem;
	rc = px_tls_ctx_new(&c, out, err, sizeof(err));
	if (rc < 0)
		log_warn(SCOPE, "TLS context from the workload certificate: %s", err);
	return rc;
}

/* ---- /certs */

static void put_time(struct mesh_buf *b, const char *name, time_t t)
{
	struct tm tm;
	char s[32];

	gmtime_r(&t, &tm);
	strftime(s, sizeof(s), "%Y-%m-%dT%H:%M:%SZ", &tm);
	mesh_buf_puts(b, ", ");
	json_put_string(b, name);
	mesh_buf_puts(b, ": ");
	json_put_string(b, s);
}

static void put_cert(struct mesh_buf *b, X509 *x, const char *path)
{
	GENERAL_NAMES *names = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
	char *hex = bn ? BN_bn2hex(bn) : NULL;
	time_t na = asn1_time(X509_get0_notAfter(x)), now = time(NULL);
	int i, first = 1;

	mesh_buf_puts(b, "{\"path\": ");
	json_put_string(b, path);
	mesh_buf_puts(b, ", \"serial_number\": ");
	json_put_string(b, hex ? hex : "");
	mesh_buf_puts(b, ", \"subject_alt_names\": [");
	for (i = 0; names && i < sk_GENERAL_NAME_num(names); i++) {
		const GENERAL_NAME *g = sk_GENERAL_NAME_value(names, i);
		const char *kind = g->type == GEN_URI ? "uri" : g->type == GEN_DNS ? "dns" : NULL;
		const ASN1_STRING *s = g->type == GEN_URI ? g->d.uniformResourceIdentifier : g->d.dNSName;

		if (!kind)
			continue;
		mesh_buf_printf(b, "%s{\"%s\": ", first ? "" : ", ", kind);
		json_put_stringn(b, (const char *)ASN1_STRING_get0_data(s), (size_t)ASN1_STRING_length(s));
		mesh_buf_putc(b, '}');
		first = 0;
	}
	mesh_buf_printf(b, "], \"days_until_expiration\": \"%lld\"", (long long)((na - now) / 86400));
	mesh_buf_printf(b, ", \"seconds_until_expiration\": %lld", (long long)(na - now));
	put_time(b, "valid_from", asn1_time(X509_get0_notBefore(x)));
	put_time(b, "expiration_time", na);
	mesh_buf_putc(b, '}');
	GENERAL_NAMES_free(names);
	OPENSSL_free(hex);
	BN_free(bn);
}

/* pem as a DataSource's inline_bytes (protobuf JSON: base64) */
static void put_inline_bytes(struct mesh_buf *b, const char *pem)
{
	size_t n = strlen(pem);
	unsigned char *out;

	mesh_buf_puts(b, "{\"inline_bytes\": \"");
	if (n > ID_DUMP_PEM_MAX || !(out = malloc(4 * ((n + 2) / 3) + 1))) {
		b->err = b->err ? b->err : -ENOMEM;
		return;
	}
	EVP_EncodeBlock(out, (const unsigned char *)pem, (int)n);
	mesh_buf_puts(b, (const char *)out);
	free(out);
	mesh_buf_puts(b, "\"}");
}

static void put_secret(struct mesh_buf *b, const struct px_identity *id, const char *name, int root)
{
	mesh_buf_puts(b, "{\"name\": ");
	json_put_string(b, name);
	mesh_buf_printf(b, ", \"version_info\": \"%u\"", id->gen);
	put_time(b, "last_updated", id->installed);
	mesh_buf_puts(b, ", \"secret\": {\"@type\": \"type.googleapis.com/envoy.extensions.transport_sockets.tls.v3."
		      "Secret\", \"name\": ");
	json_put_string(b, name);
	if (root) {
		mesh_buf_puts(b, ", \"validation_context\": {\"trusted_ca\": ");
		put_inline_bytes(b, id->root_pem);
		mesh_buf_puts(b, "}}}");
	} else {
		mesh_buf_puts(b, ", \"tls_certificate\": {\"certificate_chain\": ");
		put_inline_bytes(b, id->chain_pem);
		/* base64 of "[redacted]": Envoy never dumps a private key */
		mesh_buf_puts(b, ", \"private_key\": {\"inline_bytes\": \"W3JlZGFjdGVkXQ==\"}}}}");
	}
}

void px_identity_secrets_dump(const struct px_identity *id, struct mesh_buf *b)
{
	px_identity_secrets_dump_with(id, b, NULL, NULL);
}

void px_identity_secrets_dump_with(const struct px_identity *id, struct mesh_buf *b,
				   size_t (*more)(void *ctx, struct mesh_buf *b, int first), void *ctx)
{
	size_t n = 0;

	mesh_buf_puts(b, "{\n   \"@type\": \"type.googleapis.com/envoy.admin.v3.SecretsConfigDump\",\n"
		      "   \"dynamic_active_secrets\": [");
	if (id && id->gen) {
		mesh_buf_puts(b, "\n    ");
		put_secret(b, id, "default", 0);
		mesh_buf_puts(b, ",\n    ");
		put_secret(b, id, "ROOTCA", 1);
		n = 2;
	}
	if (more)
		n += more(ctx, b, n == 0);
	mesh_buf_puts(b, n ? "\n   ]\n  }" : "]\n  }");
}

int px_identity_xds_tls(const struct px_identity *id, struct px_tls_ctx **tls, char **auth)
{
	static const char *const h2[] = { "h2" };
	struct px_tls_conf c = { .alpn = h2, .n_alpn = 1, .h2 = 1 };
	char *token = NULL, err[200];
	size_t tl;
	int rc;

	*tls = NULL;
	*auth = NULL;
	if (!id)
		return -EINVAL;
	/* the token too, as Istio's agent adds its token provider to the
	 * xDS connection: meshd takes either; unreadable, the certificate
	 * alone speaks (it says so when it is missing too) */
	if (mesh_read_file(id->token_file, ID_TOKEN_MAX, &token, &tl) == 0) {
		tl = strlen(token);
		while (tl && (token[tl - 1] == '\n' || token[tl - 1] == '\r' || token[tl - 1] == ' '))
			token[--tl] = '\0';
		if (tl && (*auth = malloc(tl + sizeof("Bearer "))))
			snprintf(*auth, tl + sizeof("Bearer "), "Bearer %s", token);
		OPENSSL_cleanse(token, strlen(token));
		free(token);
	}
	if (!id->gen) {
		/* no certificate yet: the root-only context of the CA calls */
		*tls = px_tls_ctx_ref(id->ca_tls);
		return 0;
	}
	c.chain_pem = id->chain_pem;
	c.key_pem = id->key_pem;
	c.roots_pem = id->root_pem;
	rc = px_tls_ctx_new(&c, tls, err, sizeof(err));
	if (rc < 0) {
		log_warn(SCOPE, "xDS TLS context from the workload certificate: %s", err);
		free(*auth);
		*auth = NULL;
	}
	return rc;
}

void px_identity_certs_json(const struct px_identity *id, struct mesh_buf *b)
{
	int i, n;

	mesh_buf_puts(b, "{\"certificates\": [");
	if (id && id->chain) {
		n = sk_X509_num(id->chain);
		mesh_buf_puts(b, "{\"ca_cert\": [");
		put_cert(b, sk_X509_value(id->chain, n - 1), "SDS ROOTCA");
		mesh_buf_puts(b, "], \"cert_chain\": [");
		for (i = 0; i < (n > 1 ? n - 1 : n); i++) {
			if (i)
				mesh_buf_puts(b, ", ");
			put_cert(b, sk_X509_value(id->chain, i), "SDS default");
		}
		mesh_buf_puts(b, "]}");
	}
	mesh_buf_printf(b, "], \"generation\": %u, \"last_error\": ", id ? id->gen : 0);
	json_put_string(b, id ? id->last_error : "");
	mesh_buf_puts(b, "}\n");
}
