/*
 * test_sds.c - dataplane/sds.c and mtls.c's named SDS secrets (issue 13):
 * the store takes tls_certificate and validation_context Secrets, keeps a
 * generation that moves only with the content, refuses bad ones whole
 * (nothing changes), drops what is no longer held, and never dumps PEM;
 * the names listeners and clusters reference (identity names left out);
 * and a TLS policy naming "kubernetes://NAME" / "...-cacert" waits for its
 * secrets (-EAGAIN), makes its context once, and makes a new one when the
 * secret changes while a context already handed out stays usable.
 */
#include "dataplane/mtls.h"
#include "dataplane/sds.h"

#include "common/pem.h"
#include "common/str.h"
#include "envoy/extensions/transport_sockets/tls/v3/secret.pb-c.h"
#include "envoy/extensions/transport_sockets/tls/v3/tls.pb-c.h"
#include "tlsfix.h"

#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef Envoy__Extensions__TransportSockets__Tls__V3__Secret secret_msg;
typedef Envoy__Extensions__TransportSockets__Tls__V3__UpstreamTlsContext up_ctx;
typedef Envoy__Extensions__TransportSockets__Tls__V3__DownstreamTlsContext down_ctx;
typedef Envoy__Extensions__TransportSockets__Tls__V3__CommonTlsContext common_ctx;
typedef Envoy__Extensions__TransportSockets__Tls__V3__SdsSecretConfig sds_cfg;

#define UP_URL "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext"
#define DOWN_URL "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext"

/* A Secret resource as the xDS client holds it: a certificate (chain and
 * key) or, with key NULL, a validation context (chain is the CA). */
static struct px_resource *secret(const char *name, const char *chain, const char *key, int as_file)
{
	secret_msg m = ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__SECRET__INIT;
	Envoy__Extensions__TransportSockets__Tls__V3__TlsCertificate tc =
		ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__TLS_CERTIFICATE__INIT;
	Envoy__Extensions__TransportSockets__Tls__V3__CertificateValidationContext vc =
		ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__CERTIFICATE_VALIDATION_CONTEXT__INIT;
	Envoy__Config__Core__V3__DataSource d1 = ENVOY__CONFIG__CORE__V3__DATA_SOURCE__INIT, d2 = d1;
	struct px_resource *r = NULL;
	uint8_t *buf;
	size_t len;

	m.name = (char *)name;
	d1.specifier_case = as_file ? ENVOY__CONFIG__CORE__V3__DATA_SOURCE__SPECIFIER_FILENAME
				    : ENVOY__CONFIG__CORE__V3__DATA_SOURCE__SPECIFIER_INLINE_BYTES;
	if (as_file) {
		d1.filename = "/etc/hosts";
	} else if (chain) {
		d1.inline_bytes.data = (uint8_t *)chain;
		d1.inline_bytes.len = strlen(chain);
	}
	if (key) {
		d2.specifier_case = ENVOY__CONFIG__CORE__V3__DATA_SOURCE__SPECIFIER_INLINE_BYTES;
		d2.inline_bytes.data = (uint8_t *)key;
		d2.inline_bytes.len = strlen(key);
		tc.certificate_chain = &d1;
		tc.private_key = &d2;
		m.type_case = ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__SECRET__TYPE_TLS_CERTIFICATE;
		m.tls_certificate = &tc;
	} else if (chain) {
		vc.trusted_ca = &d1;
		m.type_case = ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__SECRET__TYPE_VALIDATION_CONTEXT;
		m.validation_context = &vc;
	}
	len = protobuf_c_message_get_packed_size(&m.base);
	buf = malloc(len ? len : 1);
	ck_assert_ptr_nonnull(buf);
	protobuf_c_message_pack(&m.base, buf);
	ck_assert_int_eq(px_resource_decode(XDS_SECRET, name, buf, len, &r), 0);
	free(buf);
	mesh_str_copy(r->version, sizeof(r->version), "v1");
	return r;
}

static int update1(struct px_sds *s, struct px_resource *r, char *err, size_t cap)
{
	const struct px_resource *v[1] = { r };

	return px_sds_update(s, v, 1, err, cap);
}

START_TEST(store_generations_and_rejects)
{
	struct tf_ca ca, ca2;
	struct tf_leaf leaf, other;
	struct px_sds *s = NULL;
	struct px_resource *cert, *cacert, *same, *bad, *mismatch, *file, *empty, *cert2;
	const struct px_sds_secret *got;
	const struct px_resource *both[2];
	struct mesh_buf b;
	char err[300];
	unsigned g1, g2;

	tf_ca_make(&ca, "gateway root");
	tf_ca_make(&ca2, "second root");
	tf_leaf_make(&leaf, &ca, NULL, 3600);
	tf_leaf_make(&other, &ca, NULL, 3600);
	ck_assert_int_eq(px_sds_new(&s), 0);
	cert = secret("kubernetes://gw", leaf.chain, leaf.key, 0);
	cacert = secret("kubernetes://gw-cacert", ca.pem, NULL, 0);
	both[0] = cert;
	both[1] = cacert;
	ck_assert_int_eq(px_sds_update(s, both, 2, err, sizeof(err)), 0);
	ck_assert_uint_eq(px_sds_count(s), 2);
	got = px_sds_get(s, "kubernetes://gw");
	ck_assert_ptr_nonnull(got);
	ck_assert_str_eq(got->chain_pem, leaf.chain);
	ck_assert_str_eq(got->key_pem, leaf.key);
	ck_assert_ptr_null(got->ca_pem);
	got = px_sds_get(s, "kubernetes://gw-cacert");
	ck_assert_ptr_nonnull(got);
	ck_assert_str_eq(got->ca_pem, ca.pem);
	ck_assert_ptr_null(got->chain_pem);
	g1 = px_sds_generation(s, "kubernetes://gw");
	ck_assert_uint_gt(g1, 0);
	ck_assert_uint_eq(px_sds_generation(s, "kubernetes://nope"), 0);

	/* the same bytes again (meshd re-sending): the generation stays */
	same = secret("kubernetes://gw", leaf.chain, leaf.key, 0);
	ck_assert_int_eq(update1(s, same, err, sizeof(err)), 0);
	ck_assert_uint_eq(px_sds_generation(s, "kubernetes://gw"), g1);

	/* rejected whole, the store unchanged: a chain that is not PEM, a key
	 * of another certificate, a file, a Secret of neither kind */
	bad = secret("kubernetes://gw", "not a certificate", leaf.key, 0);
	ck_assert_int_eq(update1(s, bad, err, sizeof(err)), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "does not parse"));
	mismatch = secret("kubernetes://gw", leaf.chain, other.key, 0);
	ck_assert_int_eq(update1(s, mismatch, err, sizeof(err)), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "does not match"));
	file = secret("kubernetes://gw-cacert", "x", NULL, 1);
	ck_assert_int_eq(update1(s, file, err, sizeof(err)), -EINVAL);
	empty = secret("kubernetes://empty", NULL, NULL, 0);
	ck_assert_int_eq(update1(s, empty, err, sizeof(err)), -EINVAL);
	/* px_sds_check: the same verdicts, nothing stored (gwbrk) */
	ck_assert_int_eq(px_sds_check(s, bad, err, sizeof(err)), -EINVAL);
	ck_assert_int_eq(px_sds_check(s, mismatch, err, sizeof(err)), -EINVAL);
	ck_assert_int_eq(px_sds_check(s, same, err, sizeof(err)), 0);
	ck_assert_uint_eq(px_sds_generation(s, "kubernetes://gw"), g1);
	/* one bad among good ones: none is taken */
	cert2 = secret("kubernetes://gw", other.chain, other.key, 0);
	both[0] = cert2;
	both[1] = bad;
	ck_assert_int_eq(px_sds_update(s, both, 2, err, sizeof(err)), -EINVAL);
	ck_assert_uint_eq(px_sds_generation(s, "kubernetes://gw"), g1);
	ck_assert_str_eq(px_sds_get(s, "kubernetes://gw")->chain_pem, leaf.chain);
	ck_assert_ptr_null(px_sds_get(s, "kubernetes://empty"));

	/* new content: a new generation */
	ck_assert_int_eq(update1(s, cert2, err, sizeof(err)), 0);
	g2 = px_sds_generation(s, "kubernetes://gw");
	ck_assert_uint_gt(g2, g1);
	ck_assert_str_eq(px_sds_get(s, "kubernetes://gw")->chain_pem, other.chain);

	/* the dump: names and versions, never a PEM text or the key */
	mesh_buf_init(&b, 64 * 1024);
	ck_assert_uint_eq(px_sds_dump_entries(s, &b, 1), 2);
	ck_assert_int_eq(b.err, 0);
	mesh_buf_putc(&b, '\0');
	ck_assert_ptr_nonnull(strstr(b.data, "\"kubernetes://gw\""));
	ck_assert_ptr_nonnull(strstr(b.data, "[redacted]"));
	ck_assert_ptr_nonnull(strstr(b.data, "serial_number"));
	ck_assert_ptr_null(strstr(b.data, "BEGIN"));
	mesh_buf_cleanup(&b);

	/* what is no longer held goes */
	both[0] = cert2;
	px_sds_retain(s, both, 1);
	ck_assert_uint_eq(px_sds_count(s), 1);
	ck_assert_ptr_null(px_sds_get(s, "kubernetes://gw-cacert"));
	ck_assert_ptr_nonnull(px_sds_get(s, "kubernetes://gw"));
	/* and when it comes back it has a generation never seen before */
	ck_assert_int_eq(update1(s, cacert, err, sizeof(err)), 0);
	ck_assert_uint_gt(px_sds_generation(s, "kubernetes://gw-cacert"), g2);

	px_sds_free(s);
	px_resource_unref(cert);
	px_resource_unref(cacert);
	px_resource_unref(same);
	px_resource_unref(bad);
	px_resource_unref(mismatch);
	px_resource_unref(file);
	px_resource_unref(empty);
	px_resource_unref(cert2);
	tf_leaf_free(&leaf);
	tf_leaf_free(&other);
	tf_ca_free(&ca);
	tf_ca_free(&ca2);
}
END_TEST

/* An UpstreamTlsContext as meshd's gen builds DestinationRule SIMPLE with
 * credentialName (cert_name NULL) or MUTUAL (cert_name set). */
struct cred_up {
	up_ctx u;
	common_ctx c;
	sds_cfg cert, ca, *certs[1];
	Envoy__Extensions__TransportSockets__Tls__V3__CommonTlsContext__CombinedCertificateValidationContext cv;
	Envoy__Extensions__TransportSockets__Tls__V3__CertificateValidationContext dv;
	Envoy__Config__Cluster__V3__Cluster cl;
	Envoy__Config__Core__V3__TransportSocket ts;
	Google__Protobuf__Any any;
};

static void cred_up_init(struct cred_up *x, const char *cert_name, const char *ca_name)
{
	size_t n;

	envoy__extensions__transport_sockets__tls__v3__upstream_tls_context__init(&x->u);
	envoy__extensions__transport_sockets__tls__v3__common_tls_context__init(&x->c);
	envoy__extensions__transport_sockets__tls__v3__sds_secret_config__init(&x->cert);
	envoy__extensions__transport_sockets__tls__v3__sds_secret_config__init(&x->ca);
	envoy__extensions__transport_sockets__tls__v3__common_tls_context__combined_certificate_validation_context__init(
		&x->cv);
	envoy__extensions__transport_sockets__tls__v3__certificate_validation_context__init(&x->dv);
	if (cert_name) {
		x->cert.name = (char *)cert_name;
		x->certs[0] = &x->cert;
		x->c.n_tls_certificate_sds_secret_configs = 1;
		x->c.tls_certificate_sds_secret_configs = x->certs;
	}
	x->ca.name = (char *)ca_name;
	x->cv.default_validation_context = &x->dv;
	x->cv.validation_context_sds_secret_config = &x->ca;
	x->c.validation_context_type_case =
		ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__COMMON_TLS_CONTEXT__VALIDATION_CONTEXT_TYPE_COMBINED_VALIDATION_CONTEXT;
	x->c.combined_validation_context = &x->cv;
	x->u.common_tls_context = &x->c;
	envoy__config__cluster__v3__cluster__init(&x->cl);
	envoy__config__core__v3__transport_socket__init(&x->ts);
	x->cl.name = "outbound|443||tls-backend.demo.svc.cluster.local";
	n = protobuf_c_message_get_packed_size(&x->u.base);
	google__protobuf__any__init(&x->any);
	x->any.type_url = UP_URL;
	x->any.value.data = malloc(n ? n : 1);
	x->any.value.len = protobuf_c_message_pack(&x->u.base, x->any.value.data);
	x->ts.name = "envoy.transport_sockets.tls";
	x->ts.config_type_case = ENVOY__CONFIG__CORE__V3__TRANSPORT_SOCKET__CONFIG_TYPE_TYPED_CONFIG;
	x->ts.typed_config = &x->any;
	x->cl.transport_socket = &x->ts;
}

static int collect(void *ctx, const char *name)
{
	struct mesh_buf *b = ctx;

	mesh_buf_printf(b, "%s;", name);
	return 0;
}

START_TEST(names_listeners_and_clusters_reference)
{
	struct cred_up mutual, istio;
	down_ctx d = ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__DOWNSTREAM_TLS_CONTEXT__INIT;
	common_ctx dc = ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__COMMON_TLS_CONTEXT__INIT;
	sds_cfg gw = ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__SDS_SECRET_CONFIG__INIT, *gwv[1] = { &gw };
	Envoy__Config__Listener__V3__Listener l = ENVOY__CONFIG__LISTENER__V3__LISTENER__INIT;
	Envoy__Config__Listener__V3__FilterChain fc = ENVOY__CONFIG__LISTENER__V3__FILTER_CHAIN__INIT, *fcv[1] = { &fc };
	Envoy__Config__Core__V3__TransportSocket ts = ENVOY__CONFIG__CORE__V3__TRANSPORT_SOCKET__INIT;
	Google__Protobuf__Any any = GOOGLE__PROTOBUF__ANY__INIT;
	struct mesh_buf b;
	size_t n;

	mesh_buf_init(&b, 4096);
	cred_up_init(&mutual, "kubernetes://client", "kubernetes://client-cacert");
	ck_assert_int_eq(px_sds_cluster_names(&mutual.cl, collect, &b), 0);
	/* ISTIO_MUTUAL's names are the identity's: not asked for */
	cred_up_init(&istio, "default", "ROOTCA");
	ck_assert_int_eq(px_sds_cluster_names(&istio.cl, collect, &b), 0);
	/* a gateway's filter chain with credentialName */
	gw.name = "kubernetes://gw-cert";
	dc.n_tls_certificate_sds_secret_configs = 1;
	dc.tls_certificate_sds_secret_configs = gwv;
	d.common_tls_context = &dc;
	n = protobuf_c_message_get_packed_size(&d.base);
	any.type_url = DOWN_URL;
	any.value.data = malloc(n);
	any.value.len = protobuf_c_message_pack(&d.base, any.value.data);
	ts.name = "envoy.transport_sockets.tls";
	ts.config_type_case = ENVOY__CONFIG__CORE__V3__TRANSPORT_SOCKET__CONFIG_TYPE_TYPED_CONFIG;
	ts.typed_config = &any;
	fc.transport_socket = &ts;
	l.name = "0.0.0.0_443";
	l.n_filter_chains = 1;
	l.filter_chains = fcv;
	ck_assert_int_eq(px_sds_listener_names(&l, collect, &b), 0);
	mesh_buf_putc(&b, '\0');
	ck_assert_str_eq(b.data, "kubernetes://client;kubernetes://client-cacert;kubernetes://gw-cert;");
	/* the same read from the encoded resources, as the xDS client does:
	 * a socket match and the default chain too */
	{
		Envoy__Config__Cluster__V3__Cluster__TransportSocketMatch tm =
			ENVOY__CONFIG__CLUSTER__V3__CLUSTER__TRANSPORT_SOCKET_MATCH__INIT, *tmv[1] = { &tm };
		uint8_t *enc;
		size_t len;

		b.len = 0;
		mutual.cl.transport_socket = NULL;
		tm.name = "tlsMode-istio";
		tm.transport_socket = &mutual.ts;
		mutual.cl.n_transport_socket_matches = 1;
		mutual.cl.transport_socket_matches = tmv;
		mutual.cl.connect_timeout = NULL;
		len = protobuf_c_message_get_packed_size(&mutual.cl.base);
		enc = malloc(len);
		protobuf_c_message_pack(&mutual.cl.base, enc);
		ck_assert_int_eq(px_sds_cluster_names_bytes(enc, len, collect, &b), 0);
		free(enc);
		len = protobuf_c_message_get_packed_size(&istio.cl.base);
		enc = malloc(len);
		protobuf_c_message_pack(&istio.cl.base, enc);
		ck_assert_int_eq(px_sds_cluster_names_bytes(enc, len, collect, &b), 0);
		free(enc);
		l.n_filter_chains = 0;
		l.default_filter_chain = &fc;
		len = protobuf_c_message_get_packed_size(&l.base);
		enc = malloc(len);
		protobuf_c_message_pack(&l.base, enc);
		ck_assert_int_eq(px_sds_listener_names_bytes(enc, len, collect, &b), 0);
		/* truncated: not a message */
		ck_assert_int_eq(px_sds_listener_names_bytes(enc, len - 1, collect, &b), -MESH_EPARSE);
		free(enc);
		mesh_buf_putc(&b, '\0');
		ck_assert_str_eq(b.data, "kubernetes://client;kubernetes://client-cacert;kubernetes://gw-cert;");
		l.n_filter_chains = 1;
		l.default_filter_chain = NULL;
	}
	/* a context that does not decode */
	any.value.len = 3;
	any.value.data[0] = 0xff;
	ck_assert_int_eq(px_sds_listener_names(&l, collect, &b), -MESH_EPARSE);
	free(any.value.data);
	free(mutual.any.value.data);
	free(istio.any.value.data);
	mesh_buf_cleanup(&b);
}
END_TEST

START_TEST(mtls_from_named_secrets_rotates)
{
	struct tf_ca ca, ca2;
	struct tf_leaf leaf, leaf2;
	struct cred_up simple, mutual, mixed;
	struct px_sds *s = NULL;
	struct px_mtls *m = NULL, *mm = NULL, *mx = NULL;
	struct px_tls_ctx *x1, *x2, *x3, *held;
	struct px_resource *r1, *r2, *r3, *r4;
	char err[300];

	tf_ca_make(&ca, "backend root");
	tf_ca_make(&ca2, "rotated root");
	tf_leaf_make(&leaf, &ca, NULL, 3600);
	tf_leaf_make(&leaf2, &ca2, NULL, 3600);
	ck_assert_int_eq(px_sds_new(&s), 0);
	px_sds_set_default(s);

	/* SIMPLE with credentialName: the CA from "...-cacert" */
	cred_up_init(&simple, NULL, "kubernetes://backend-cacert");
	ck_assert_int_eq(px_mtls_cluster(&simple.cl, &m, err, sizeof(err)), 0);
	ck_assert_ptr_nonnull(m);
	ck_assert_ptr_null(m->sds_cert);
	ck_assert_str_eq(m->sds_ca, "kubernetes://backend-cacert");
	ck_assert_int_eq(m->sds || m->sds_roots, 0);
	/* not received yet: no context, as with no workload certificate */
	ck_assert_int_eq(px_mtls_ctx(m, NULL, &x1), -EAGAIN);
	r1 = secret("kubernetes://backend-cacert", ca.pem, NULL, 0);
	ck_assert_int_eq(update1(s, r1, err, sizeof(err)), 0);
	ck_assert_int_eq(px_mtls_ctx(m, NULL, &x1), 0);
	ck_assert_ptr_nonnull(x1);
	ck_assert_int_eq(px_mtls_ctx(m, NULL, &x2), 0);
	ck_assert_ptr_eq(x1, x2); /* made once */
	held = px_tls_ctx_ref(x1); /* an open connection's */
	/* the Secret rewritten with another CA: new handshakes take it */
	r2 = secret("kubernetes://backend-cacert", ca2.pem, NULL, 0);
	ck_assert_int_eq(update1(s, r2, err, sizeof(err)), 0);
	ck_assert_int_eq(px_mtls_ctx(m, NULL, &x3), 0);
	ck_assert_ptr_ne(x3, held);
	ck_assert_int_eq(px_mtls_ctx(m, NULL, &x2), 0);
	ck_assert_ptr_eq(x2, x3);
	px_tls_ctx_unref(held); /* the connection closes: its context goes with it */

	/* MUTUAL: a certificate secret too; the wrong kind under a name fails */
	cred_up_init(&mutual, "kubernetes://client", "kubernetes://backend-cacert");
	ck_assert_int_eq(px_mtls_cluster(&mutual.cl, &mm, err, sizeof(err)), 0);
	ck_assert_str_eq(mm->sds_cert, "kubernetes://client");
	ck_assert_int_eq(px_mtls_ctx(mm, NULL, &x1), -EAGAIN);
	r3 = secret("kubernetes://client", ca.pem, NULL, 0); /* a CA where a certificate belongs */
	ck_assert_int_eq(update1(s, r3, err, sizeof(err)), 0);
	ck_assert_int_eq(px_mtls_ctx(mm, NULL, &x1), -EINVAL);
	r4 = secret("kubernetes://client", leaf.chain, leaf.key, 0);
	ck_assert_int_eq(update1(s, r4, err, sizeof(err)), 0);
	ck_assert_int_eq(px_mtls_ctx(mm, NULL, &x1), 0);

	/* the identity's certificate with a named CA: refused when compiled */
	cred_up_init(&mixed, "default", "kubernetes://backend-cacert");
	ck_assert_int_eq(px_mtls_cluster(&mixed.cl, &mx, err, sizeof(err)), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "not supported"));

	/* no store installed: nothing by name is ever found */
	px_sds_set_default(NULL);
	ck_assert_int_eq(px_mtls_ctx_h2(m, NULL, &x1), -EAGAIN);

	px_mtls_free(m);
	px_mtls_free(mm);
	px_sds_free(s);
	px_resource_unref(r1);
	px_resource_unref(r2);
	px_resource_unref(r3);
	px_resource_unref(r4);
	free(simple.any.value.data);
	free(mutual.any.value.data);
	free(mixed.any.value.data);
	tf_leaf_free(&leaf);
	tf_leaf_free(&leaf2);
	tf_ca_free(&ca);
	tf_ca_free(&ca2);
}
END_TEST

/* A gateway's filter chain (px-gw builds on px_mtls_chain): its server
 * certificate from "kubernetes://gw", rotated for new handshakes. */
START_TEST(gateway_chain_certificate_rotates)
{
	struct tf_ca ca;
	struct tf_leaf leaf, leaf2;
	down_ctx d = ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__DOWNSTREAM_TLS_CONTEXT__INIT;
	common_ctx dc = ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__COMMON_TLS_CONTEXT__INIT;
	sds_cfg gw = ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__SDS_SECRET_CONFIG__INIT, *gwv[1] = { &gw };
	Envoy__Config__Listener__V3__FilterChain fc = ENVOY__CONFIG__LISTENER__V3__FILTER_CHAIN__INIT;
	Envoy__Config__Core__V3__TransportSocket ts = ENVOY__CONFIG__CORE__V3__TRANSPORT_SOCKET__INIT;
	Google__Protobuf__Any any = GOOGLE__PROTOBUF__ANY__INIT;
	struct px_sds *s = NULL;
	struct px_mtls *m = NULL;
	struct px_tls_ctx *x1, *x2, *held;
	struct px_resource *r1, *r2;
	char err[300];
	size_t n;

	tf_ca_make(&ca, "gateway root");
	tf_leaf_make(&leaf, &ca, NULL, 3600);
	tf_leaf_make(&leaf2, &ca, NULL, 3600);
	ck_assert_int_eq(px_sds_new(&s), 0);
	px_sds_set_default(s);
	gw.name = "kubernetes://gw";
	dc.n_tls_certificate_sds_secret_configs = 1;
	dc.tls_certificate_sds_secret_configs = gwv;
	d.common_tls_context = &dc;
	n = protobuf_c_message_get_packed_size(&d.base);
	any.type_url = DOWN_URL;
	any.value.data = malloc(n ? n : 1);
	any.value.len = protobuf_c_message_pack(&d.base, any.value.data);
	ts.name = "envoy.transport_sockets.tls";
	ts.config_type_case = ENVOY__CONFIG__CORE__V3__TRANSPORT_SOCKET__CONFIG_TYPE_TYPED_CONFIG;
	ts.typed_config = &any;
	fc.transport_socket = &ts;
	/* a chain whose only certificate is a named secret compiles (it used
	 * to be "without a certificate") */
	ck_assert_int_eq(px_mtls_chain(&fc, &m, err, sizeof(err)), 0);
	ck_assert_ptr_nonnull(m);
	ck_assert_int_eq(m->server, 1);
	ck_assert_str_eq(m->sds_cert, "kubernetes://gw");
	ck_assert_int_eq(px_mtls_ctx(m, NULL, &x1), -EAGAIN);
	r1 = secret("kubernetes://gw", leaf.chain, leaf.key, 0);
	ck_assert_int_eq(update1(s, r1, err, sizeof(err)), 0);
	ck_assert_int_eq(px_mtls_ctx(m, NULL, &x1), 0);
	held = px_tls_ctx_ref(x1);
	r2 = secret("kubernetes://gw", leaf2.chain, leaf2.key, 0);
	ck_assert_int_eq(update1(s, r2, err, sizeof(err)), 0);
	ck_assert_int_eq(px_mtls_ctx(m, NULL, &x2), 0);
	ck_assert_ptr_ne(x2, held);
	px_tls_ctx_unref(held);
	px_mtls_free(m);
	px_sds_free(s);
	px_resource_unref(r1);
	px_resource_unref(r2);
	free(any.value.data);
	tf_leaf_free(&leaf);
	tf_leaf_free(&leaf2);
	tf_ca_free(&ca);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("sds");
	TCase *tc = tcase_create("sds");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, store_generations_and_rejects);
	tcase_add_test(tc, names_listeners_and_clusters_reference);
	tcase_add_test(tc, mtls_from_named_secrets_rotates);
	tcase_add_test(tc, gateway_chain_certificate_rotates);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
