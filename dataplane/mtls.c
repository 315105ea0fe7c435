/*
 * mtls.c - the TLS policies of mtls.h: UpstreamTlsContext /
 * DownstreamTlsContext decoded once per configuration, a px_tls_ctx made
 * per policy on first use and remade when the workload certificate or a
 * named SDS secret (sds.h) moves.
 */
#include "dataplane/mtls.h"

#include "common/file.h"
#include "common/log.h"
#include "dataplane/engine-t.h"
#include "dataplane/sds.h"
#include "dataplane/upstream-t.h"
#include "envoy/extensions/transport_sockets/tls/v3/tls.pb-c.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TLS_SOCKET "envoy.transport_sockets.tls"
#define UP_URL "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext"
#define DOWN_URL "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext"
#define PEM_FILE_MAX (1u << 20) /* a certificate file or bundle */

typedef Envoy__Extensions__TransportSockets__Tls__V3__CommonTlsContext px_common_tls;
typedef Envoy__Extensions__TransportSockets__Tls__V3__CertificateValidationContext px_validation;

/* The ALPN names Istio's generator sets on its TLS contexts (Istio's
 * util.ALPNInMeshWithMxc and friends, ALPNH2Only, ALPNHttp): shared, not
 * copied into each of a sidecar's ~1,000 cluster policies. */
static const char *const alpn_known[] = {
	"istio-peer-exchange", "istio", "h2", "http/1.1", "istio-http/1.0", "istio-http/1.1", "istio-h2",
};

static const char *alpn_dup(const char *s)
{
	size_t i;

	for (i = 0; i < sizeof(alpn_known) / sizeof(alpn_known[0]); i++)
		if (!strcmp(s, alpn_known[i]))
			return alpn_known[i];
	return strdup(s);
}

static void alpn_free(const char *s)
{
	size_t i;

	for (i = 0; i < sizeof(alpn_known) / sizeof(alpn_known[0]); i++)
		if (s == alpn_known[i])
			return;
	free((char *)s);
}

void px_mtls_free(struct px_mtls *m)
{
	size_t i;

	if (!m)
		return;
	for (i = 0; i < m->n_sans; i++)
		free(m->sans[i]);
	free(m->sans);
	for (i = 0; i < m->n_alpn; i++)
		alpn_free(m->alpn[i]);
	free(m->alpn);
	free(m->sni);
	free(m->sds_cert);
	free(m->sds_ca);
	free(m->chain_pem);
	free(m->key_pem);
	free(m->roots_pem);
	free(m->ciphers);
	px_tls_ctx_unref(m->ctx);
	px_tls_ctx_unref(m->ctx_h2);
	free(m);
}

/* A DataSource's bytes: a file (read now, at compile time) or inline. */
static int data_source(const Envoy__Config__Core__V3__DataSource *d, char **out, char *err, size_t cap)
{
	size_t len;
	int rc;

	*out = NULL;
	switch (d->specifier_case) {
	case ENVOY__CONFIG__CORE__V3__DATA_SOURCE__SPECIFIER_FILENAME:
		rc = mesh_read_file(d->filename, PEM_FILE_MAX, out, &len);
		if (rc < 0)
			snprintf(err, cap, "%s: %s", d->filename, mesh_strerror(rc));
		return rc < 0 ? -EINVAL : 0;
	case ENVOY__CONFIG__CORE__V3__DATA_SOURCE__SPECIFIER_INLINE_STRING:
		*out = strdup(d->inline_string);
		return *out ? 0 : -ENOMEM;
	case ENVOY__CONFIG__CORE__V3__DATA_SOURCE__SPECIFIER_INLINE_BYTES:
		*out = strndup((const char *)d->inline_bytes.data, d->inline_bytes.len);
		return *out ? 0 : -ENOMEM;
	default:
		snprintf(err, cap, "a DataSource without a file or inline value");
		return -EINVAL;
	}
}

/* The validation context's SDS name: ROOTCA is the identity's root, any
 * other name the store's. */
static int sds_roots(struct px_mtls *m, const char *name)
{
	if (!strcmp(name, PX_SDS_ROOT_NAME)) {
		m->sds_roots = 1;
		return 0;
	}
	if (!*name)
		return 0;
	free(m->sds_ca);
	m->sds_ca = strdup(name);
	return m->sds_ca ? 0 : -ENOMEM;
}

static int add_san(struct px_mtls *m, const Envoy__Type__Matcher__V3__StringMatcher *sm, char *err, size_t cap)
{
	if (!sm || sm->match_pattern_case != ENVOY__TYPE__MATCHER__V3__STRING_MATCHER__MATCH_PATTERN_EXACT) {
		snprintf(err, cap, "only exact subject alt name matchers are supported");
		return -EINVAL;
	}
	if (m->n_sans == PX_MTLS_MAX_SANS) {
		snprintf(err, cap, "more than %d subject alt names", PX_MTLS_MAX_SANS);
		return -EINVAL;
	}
	{
		char **v = realloc(m->sans, (m->n_sans + 1) * sizeof(*v));

		if (!v)
			return -ENOMEM;
		m->sans = v;
	}
	m->sans[m->n_sans] = strdup(sm->exact);
	return m->sans[m->n_sans++] ? 0 : -ENOMEM;
}

static int validation(struct px_mtls *m, const px_validation *v, char *err, size_t cap)
{
	size_t i;
	int rc;

	if (!v)
		return 0;
	for (i = 0; i < v->n_match_subject_alt_names; i++)
		if ((rc = add_san(m, v->match_subject_alt_names[i], err, cap)) < 0)
			return rc;
	for (i = 0; i < v->n_match_typed_subject_alt_names; i++)
		if ((rc = add_san(m, v->match_typed_subject_alt_names[i]->matcher, err, cap)) < 0)
			return rc;
	if (v->trusted_ca) {
		free(m->roots_pem);
		return data_source(v->trusted_ca, &m->roots_pem, err, cap);
	}
	return 0;
}

/* issue 13: tls_params (a Gateway's minProtocolVersion, maxProtocolVersion
 * and cipherSuites) into m.  Envoy's TlsProtocol enum (TLSv1_0 = 1 ...
 * TLSv1_3 = 4, TLS_AUTO 0) becomes PX_TLS_V1_x; Envoy's equal-preference
 * groups "[A|B]" are flattened into OpenSSL's colon list. */
static int tls_params(struct px_mtls *m, const Envoy__Extensions__TransportSockets__Tls__V3__TlsParameters *p)
{
	size_t i, n = 0, j;
	char *o;

	if (!p)
		return 0;
	m->min_version = p->tls_minimum_protocol_version ? PX_TLS_V1_0 + (int)p->tls_minimum_protocol_version - 1 : 0;
	m->max_version = p->tls_maximum_protocol_version ? PX_TLS_V1_0 + (int)p->tls_maximum_protocol_version - 1 : 0;
	if (!p->n_cipher_suites)
		return 0;
	for (i = 0; i < p->n_cipher_suites; i++)
		n += strlen(p->cipher_suites[i]) + 1;
	o = m->ciphers = calloc(1, n + 1);
	if (!o)
		return -ENOMEM;
	for (i = 0; i < p->n_cipher_suites; i++) {
		const char *cs = p->cipher_suites[i];

		if (i)
			*o++ = ':';
		for (j = 0; cs[j]; j++)
			if (cs[j] != '[' && cs[j] != ']')
				*o++ = cs[j] == '|' ? ':' : cs[j];
	}
	return 0;
}

static int common(struct px_mtls *m, const px_common_tls *c, char *err, size_t cap)
{
	size_t i;
	int rc;

	if (!c)
		return 0;
	if ((rc = tls_params(m, c->tls_params)) < 0)
		return rc;
	if (c->n_alpn_protocols && !m->alpn) {
		size_t n = c->n_alpn_protocols < PX_MTLS_MAX_ALPN ? c->n_alpn_protocols : PX_MTLS_MAX_ALPN;

		if (!(m->alpn = calloc(n, sizeof(*m->alpn))))
			return -ENOMEM;
		for (i = 0; i < n; i++)
			if (!(m->alpn[m->n_alpn++] = alpn_dup(c->alpn_protocols[i])))
				return -ENOMEM;
	}
	/* Istio's SDS names: "default" is the workload's key and chain; any
	 * other name is a secret of the store (issue 13), the first one used */
	for (i = 0; i < c->n_tls_certificate_sds_secret_configs; i++) {
		const char *name = c->tls_certificate_sds_secret_configs[i]->name;

		if (!strcmp(name, PX_SDS_CERT_NAME))
			m->sds = 1;
		else if (*name && !m->sds_cert && !(m->sds_cert = strdup(name)))
			return -ENOMEM;
	}
	if (!m->sds && !m->sds_cert && c->n_tls_certificates) {
		const Envoy__Extensions__TransportSockets__Tls__V3__TlsCertificate *t = c->tls_certificates[0];

		if (!t->certificate_chain || !t->private_key) {
			snprintf(err, cap, "a tls_certificate without certificate_chain and private_key");
			return -EINVAL;
		}
		if ((rc = data_source(t->certificate_chain, &m->chain_pem, err, cap)) < 0 ||
		    (rc = data_source(t->private_key, &m->key_pem, err, cap)) < 0)
			return rc;
	}
	switch (c->validation_context_type_case) {
	case ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__COMMON_TLS_CONTEXT__VALIDATION_CONTEXT_TYPE_VALIDATION_CONTEXT:
		return validation(m, c->validation_context, err, cap);
	case ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__COMMON_TLS_CONTEXT__VALIDATION_CONTEXT_TYPE_VALIDATION_CONTEXT_SDS_SECRET_CONFIG:
		return sds_roots(m, c->validation_context_sds_secret_config->name);
	case ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__COMMON_TLS_CONTEXT__VALIDATION_CONTEXT_TYPE_COMBINED_VALIDATION_CONTEXT: {
		const Envoy__Extensions__TransportSockets__Tls__V3__CommonTlsContext__CombinedCertificateValidationContext
			*cv = c->combined_validation_context;

		if (cv->validation_context_sds_secret_config &&
		    (rc = sds_roots(m, cv->validation_context_sds_secret_config->name)) < 0)
			return rc;
		return validation(m, cv->default_validation_context, err, cap);
	}
	default:
		break;
	}
	return 0;
}

/* A TransportSocket: NULL out for raw_buffer (or no socket). */
static int socket_policy(const Envoy__Config__Core__V3__TransportSocket *ts, int server, struct px_mtls **out,
			 char *err, size_t cap)
{
	const Google__Protobuf__Any *any;
	struct px_mtls *m;
	int rc = -EINVAL;

	*out = NULL;
	if (!ts || strcmp(ts->name, TLS_SOCKET) ||
	    ts->config_type_case != ENVOY__CONFIG__CORE__V3__TRANSPORT_SOCKET__CONFIG_TYPE_TYPED_CONFIG || !ts->typed_config)
		return 0;
	any = ts->typed_config;
	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->server = server;
	if (!server && !strcmp(any->type_url, UP_URL)) {
		Envoy__Extensions__TransportSockets__Tls__V3__UpstreamTlsContext *u =
			envoy__extensions__transport_sockets__tls__v3__upstream_tls_context__unpack(NULL, any->value.len,
												    any->value.data);

		if (!u) {
			snprintf(err, cap, "UpstreamTlsContext does not decode");
			goto out;
		}
		rc = common(m, u->common_tls_context, err, cap);
		if (rc == 0 && u->sni && *u->sni && !(m->sni = strdup(u->sni)))
			rc = -ENOMEM;
		protobuf_c_message_free_unpacked(&u->base, NULL);
	} else if (server && !strcmp(any->type_url, DOWN_URL)) {
		Envoy__Extensions__TransportSockets__Tls__V3__DownstreamTlsContext *d =
			envoy__extensions__transport_sockets__tls__v3__downstream_tls_context__unpack(
				NULL, any->value.len, any->value.data);

		if (!d) {
			snprintf(err, cap, "DownstreamTlsContext does not decode");
			goto out;
		}
		rc = common(m, d->common_tls_context, err, cap);
		m->require_peer_cert = d->require_client_certificate && d->require_client_certificate->value;
		if (rc == 0 && !m->sds && !m->sds_cert && !m->chain_pem) {
			snprintf(err, cap, "DownstreamTlsContext without a certificate");
			rc = -EINVAL;
		}
		protobuf_c_message_free_unpacked(&d->base, NULL);
	} else {
		snprintf(err, cap, "transport socket %s: unexpected type %s", ts->name, any->type_url);
		goto out;
	}
	if (rc == 0 && m->key_pem && !m->chain_pem) {
		snprintf(err, cap, "a private key without a certificate");
		rc = -EINVAL;
	}
	if (rc == 0 && (m->sds || m->sds_roots) && (m->sds_cert || m->sds_ca)) {
		/* the identity's contexts come whole from identity.c */
		snprintf(err, cap, "SDS secret %.200s mixed with the workload identity's %s is not supported",
			 m->sds_cert ? m->sds_cert : m->sds_ca, m->sds ? PX_SDS_CERT_NAME : PX_SDS_ROOT_NAME);
		rc = -EINVAL;
	}
out:
	if (rc < 0)
		px_mtls_free(m);
	else
		*out = m;
	return rc;
}

int px_mtls_cluster(const Envoy__Config__Cluster__V3__Cluster *c, struct px_mtls **out, char *err, size_t cap)
{
	size_t i;
	int rc;

	*out = NULL;
	if (c->transport_socket)
		return socket_policy(c->transport_socket, 0, out, err, cap);
	/* auto mTLS as meshd emits it: the first match with a TLS socket serves
	 * the hosts whose metadata matches (tlsMode istio), the rest are raw */
	for (i = 0; i < c->n_transport_socket_matches; i++) {
		const Envoy__Config__Cluster__V3__Cluster__TransportSocketMatch *tm = c->transport_socket_matches[i];

		rc = socket_policy(tm->transport_socket, 0, out, err, cap);
		if (rc < 0 || *out) {
			if (*out)
				(*out)->only_tls_istio = tm->match && tm->match->n_fields > 0;
			return rc;
		}
	}
	return 0;
}

int px_mtls_chain(const Envoy__Config__Listener__V3__FilterChain *fc, struct px_mtls **out, char *err, size_t cap)
{
	*out = NULL;
	return fc ? socket_policy(fc->transport_socket, 1, out, err, cap) : 0;
}

/* The ALPN list a context offers: the policy's as configured on a server
 * (it selects h2 or http/1.1 for the client: px_dconn_use_h2); on a client
 * the connection's codec's: without "h2" for HTTP/1.1, with it for HTTP/2.
 * v has room for PX_MTLS_MAX_ALPN + 1 names; returns their count. */
static size_t codec_alpn(const struct px_mtls *m, int h2, const char **v)
{
	size_t i, n = 0;
	int seen = 0;

	for (i = 0; i < m->n_alpn; i++) {
		if (!m->server && !strcmp(m->alpn[i], "h2")) {
			if (!h2)
				continue;
			seen = 1;
		}
		v[n++] = m->alpn[i];
	}
	if (h2 && !seen)
		v[n++] = "h2";
	return n;
}

const char *px_mtls_waiting_for(const struct px_mtls *m, const struct px_identity *id)
{
	const struct px_sds *store = px_sds_default();

	if ((m->sds || m->sds_roots) && !px_identity_generation(id))
		return "the workload certificate";
	if (m->sds_cert && !px_sds_get(store, m->sds_cert))
		return m->sds_cert;
	if (m->sds_ca && !px_sds_get(store, m->sds_ca))
		return m->sds_ca;
	return "the workload certificate";
}

static int mtls_ctx(struct px_mtls *m, const struct px_identity *id, int h2, struct px_tls_ctx **out)
{
	const char *alpn[PX_MTLS_MAX_ALPN + 1];
	struct px_tls_conf c = { .server = m->server, .require_peer_cert = m->require_peer_cert, .alpn = alpn,
				 .h2 = h2, .min_version = m->min_version, .max_version = m->max_version,
				 .ciphers = m->ciphers };
	unsigned gen = px_identity_generation(id);
	struct px_tls_ctx *x = NULL, **slot = h2 ? &m->ctx_h2 : &m->ctx;
	unsigned *slot_gen = h2 ? &m->ctx_h2_gen : &m->ctx_gen;
	uint64_t *slot_named = h2 ? &m->ctx_h2_named : &m->ctx_named;
	const struct px_sds *store = px_sds_default();
	const struct px_sds_secret *cert = NULL, *ca = NULL;
	uint64_t named = 0;
	char err[200];
	int rc;

	*out = NULL;
	if ((m->sds || m->sds_roots) && !gen)
		return -EAGAIN;
	/* issue 13: named secrets; their generations say whether the context
	 * in hand is still theirs */
	if (m->sds_cert) {
		cert = px_sds_get(store, m->sds_cert);
		if (!cert)
			return -EAGAIN;
		named |= (uint64_t)cert->generation << 32;
	}
	if (m->sds_ca) {
		ca = px_sds_get(store, m->sds_ca);
		if (!ca)
			return -EAGAIN;
		named |= ca->generation;
	}
	if (*slot && (!(m->sds || m->sds_roots) || *slot_gen == gen) && *slot_named == named) {
		*out = *slot;
		return 0;
	}
	c.n_alpn = codec_alpn(m, h2, alpn);
	if (m->sds || m->sds_roots) {
		/* ISTIO_MUTUAL / inbound mTLS: key, chain and root from the
		 * identity (a mix of SDS and files is not supported yet: the
		 * identity serves both) */
		rc = px_identity_tls_ctx(id, m->server, m->require_peer_cert, c.alpn, c.n_alpn, &x);
	} else {
		/* DestinationRule SIMPLE / MUTUAL with files, or named SDS
		 * secrets (credentialName) from the store */
		c.chain_pem = cert ? cert->chain_pem : m->chain_pem;
		c.key_pem = cert ? cert->key_pem : m->key_pem;
		c.roots_pem = ca ? ca->ca_pem : m->roots_pem;
		if ((cert && !cert->chain_pem) || (ca && !ca->ca_pem)) {
			log_warn("meshproxy", "TLS context: SDS secret %s is not a %s", cert && !cert->chain_pem ?
				 cert->name : ca->name, cert && !cert->chain_pem ? "tls_certificate" : "validation_context");
			return -EINVAL;
		}
		rc = px_tls_ctx_new(&c, &x, err, sizeof(err));
		if (rc < 0)
			log_warn("meshproxy", "TLS context: %s", err);
		else if (cert || ca)
			log_info("meshproxy", "TLS context from SDS %s%s%s (generation %u/%u)", cert ? cert->name : "",
				 cert && ca ? " and " : "", ca ? ca->name : "", cert ? cert->generation : 0,
				 ca ? ca->generation : 0);
	}
	if (rc < 0)
		return rc;
	px_tls_ctx_unref(*slot);
	*slot = x;
	*slot_gen = gen;
	*slot_named = named;
	*out = x;
	return 0;
}

int px_mtls_ctx(struct px_mtls *m, const struct px_identity *id, struct px_tls_ctx **out)
{
	return mtls_ctx(m, id, 0, out);
}

int px_mtls_ctx_h2(struct px_mtls *m, const struct px_identity *id, struct px_tls_ctx **out)
{
	return mtls_ctx(m, id, !m->server, out);
}

int px_mtls_upstream_new(struct px_host *h, const struct px_identity *id, int fd, int h2, struct px_tls **out)
{
	struct px_mtls *m = h->cl->tls;
	struct px_tls_ctx *ctx;
	int rc;

	*out = NULL;
	if (!m || (m->only_tls_istio && !(h->up && h->up->tls_istio)))
		return 0;
	rc = h2 ? px_mtls_ctx_h2(m, id, &ctx) : px_mtls_ctx(m, id, &ctx);
	if (rc == 0)
		rc = px_tls_new(ctx, fd, m->sni, out);
	if (rc < 0)
		log_warn("meshproxy", "upstream %s (%s): no TLS context: %s", h->name, h->cl->name,
			 rc == -EAGAIN ? "no workload certificate or SDS secret yet" : mesh_strerror(rc));
	return rc;
}

int px_mtls_upstream_step(const struct px_host *h, struct px_tls *t)
{
	struct px_mtls *m = h->cl->tls;
	int rc = px_tls_handshake(t);

	if (rc == -EAGAIN)
		return rc;
	if (rc == 0 && m && px_tls_check_sans(t, (const char *const *)m->sans, m->n_sans) < 0) {
		log_warn("meshproxy", "upstream %s (%s): TLS peer %s is not one of the expected identities", h->name,
			 h->cl->name, px_tls_peer_uri(t) ? px_tls_peer_uri(t) : "(none)");
		return -EACCES;
	}
	if (rc < 0)
		log_warn("meshproxy", "upstream %s (%s): TLS handshake failed: %s", h->name, h->cl->name,
			 px_tls_error(t));
	return rc;
}
