/*
 * test_mtls.c - dataplane/mtls.c: Envoy's UpstreamTlsContext /
 * DownstreamTlsContext as meshd emits them (tests/xds/0001's cds.json and
 * lds.json: auto mTLS through transport_socket_matches with SDS "default"
 * and "ROOTCA", SNI outbound_.PORT_._.HOST, exact SPIFFE SANs, ALPN), a
 * raw_buffer-only cluster, a matcher that is not exact refused, a context
 * that needs the workload certificate before there is one (-EAGAIN), and a
 * DestinationRule SIMPLE/MUTUAL context from inline PEM made once and
 * reused, and the ALPN a client context offers being its codec's (h2 for
 * an HTTP/2 connection, never for an HTTP/1.1 one).
 */
#include "dataplane/mtls.h"

#include "envoy/extensions/transport_sockets/tls/v3/tls.pb-c.h"
#include "google/protobuf/struct.pb-c.h"
#include "tlsfix.h"

#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

typedef Envoy__Extensions__TransportSockets__Tls__V3__UpstreamTlsContext up_ctx;
typedef Envoy__Extensions__TransportSockets__Tls__V3__DownstreamTlsContext down_ctx;
typedef Envoy__Extensions__TransportSockets__Tls__V3__CommonTlsContext common_ctx;

#define UP_URL "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext"
#define DOWN_URL "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext"

/* An Any holding msg (the buffer is the caller's to free). */
static void any_of(Google__Protobuf__Any *any, const ProtobufCMessage *msg, const char *url)
{
	size_t n = protobuf_c_message_get_packed_size(msg);

	google__protobuf__any__init(any);
	any->type_url = (char *)url;
	any->value.data = malloc(n ? n : 1);
	any->value.len = protobuf_c_message_pack(msg, any->value.data);
}

/* meshd's tlsMode-istio UpstreamTlsContext (cds.json of tests/xds/0001). */
struct istio_up {
	up_ctx u;
	common_ctx c;
	Envoy__Extensions__TransportSockets__Tls__V3__SdsSecretConfig sds_cert, sds_root;
	Envoy__Extensions__TransportSockets__Tls__V3__SdsSecretConfig *certs[1];
	Envoy__Extensions__TransportSockets__Tls__V3__CommonTlsContext__CombinedCertificateValidationContext cv;
	Envoy__Extensions__TransportSockets__Tls__V3__CertificateValidationContext dv;
	Envoy__Type__Matcher__V3__StringMatcher san;
	Envoy__Type__Matcher__V3__StringMatcher *sans[1];
	char *alpn[3];
};

static void istio_up_init(struct istio_up *x, int exact)
{
	envoy__extensions__transport_sockets__tls__v3__upstream_tls_context__init(&x->u);
	envoy__extensions__transport_sockets__tls__v3__common_tls_context__init(&x->c);
	envoy__extensions__transport_sockets__tls__v3__sds_secret_config__init(&x->sds_cert);
	envoy__extensions__transport_sockets__tls__v3__sds_secret_config__init(&x->sds_root);
	envoy__extensions__transport_sockets__tls__v3__common_tls_context__combined_certificate_validation_context__init(
		&x->cv);
	envoy__extensions__transport_sockets__tls__v3__certificate_validation_context__init(&x->dv);
	envoy__type__matcher__v3__string_matcher__init(&x->san);
	x->sds_cert.name = "default";
	x->sds_root.name = "ROOTCA";
	x->certs[0] = &x->sds_cert;
	x->c.n_tls_certificate_sds_secret_configs = 1;
	x->c.tls_certificate_sds_secret_configs = x->certs;
	if (exact) {
		x->san.match_pattern_case = ENVOY__TYPE__MATCHER__V3__STRING_MATCHER__MATCH_PATTERN_EXACT;
		x->san.exact = "spiffe://cluster.local/ns/demo/sa/greeter";
	} else {
		x->san.match_pattern_case = ENVOY__TYPE__MATCHER__V3__STRING_MATCHER__MATCH_PATTERN_PREFIX;
		x->san.prefix = "spiffe://cluster.local/";
	}
	x->sans[0] = &x->san;
	x->dv.n_match_subject_alt_names = 1;
	x->dv.match_subject_alt_names = x->sans;
	x->cv.default_validation_context = &x->dv;
	x->cv.validation_context_sds_secret_config = &x->sds_root;
	x->c.validation_context_type_case =
		ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__COMMON_TLS_CONTEXT__VALIDATION_CONTEXT_TYPE_COMBINED_VALIDATION_CONTEXT;
	x->c.combined_validation_context = &x->cv;
	x->alpn[0] = "istio-peer-exchange";
	x->alpn[1] = "istio";
	x->alpn[2] = "h2";
	x->c.n_alpn_protocols = 3;
	x->c.alpn_protocols = x->alpn;
	x->u.common_tls_context = &x->c;
	x->u.sni = "outbound_.50051_._.greeter.demo.svc.cluster.local";
}

/* A cluster with meshd's two transport_socket_matches around up. */
struct matches {
	Envoy__Config__Cluster__V3__Cluster c;
	Envoy__Config__Cluster__V3__Cluster__TransportSocketMatch m[2], *mv[2];
	Envoy__Config__Core__V3__TransportSocket ts[2];
	Google__Protobuf__Any any;
	Google__Protobuf__Struct st;
	Google__Protobuf__Struct__FieldsEntry fe, *fev[1];
	Google__Protobuf__Value v;
};

static void matches_init(struct matches *x, const ProtobufCMessage *up)
{
	int i;

	envoy__config__cluster__v3__cluster__init(&x->c);
	x->c.name = "outbound|50051||greeter.demo.svc.cluster.local";
	for (i = 0; i < 2; i++) {
		envoy__config__cluster__v3__cluster__transport_socket_match__init(&x->m[i]);
		envoy__config__core__v3__transport_socket__init(&x->ts[i]);
		x->m[i].transport_socket = &x->ts[i];
		x->mv[i] = &x->m[i];
	}
	any_of(&x->any, up, UP_URL);
	x->ts[0].name = "envoy.transport_sockets.tls";
	x->ts[0].config_type_case = ENVOY__CONFIG__CORE__V3__TRANSPORT_SOCKET__CONFIG_TYPE_TYPED_CONFIG;
	x->ts[0].typed_config = &x->any;
	x->ts[1].name = "envoy.transport_sockets.raw_buffer";
	google__protobuf__struct__init(&x->st);
	google__protobuf__struct__fields_entry__init(&x->fe);
	google__protobuf__value__init(&x->v);
	x->v.kind_case = GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE;
	x->v.string_value = "istio";
	x->fe.key = "tlsMode";
	x->fe.value = &x->v;
	x->fev[0] = &x->fe;
	x->st.n_fields = 1;
	x->st.fields = x->fev;
	x->m[0].name = "tlsMode-istio";
	x->m[0].match = &x->st;
	x->m[1].name = "tlsMode-disabled";
	x->c.n_transport_socket_matches = 2;
	x->c.transport_socket_matches = x->mv;
}

START_TEST(auto_mtls_as_meshd_sends_it)
{
	struct istio_up up;
	struct matches cl;
	struct px_mtls *m = NULL;
	struct px_tls_ctx *ctx;
	char err[200];

	istio_up_init(&up, 1);
	matches_init(&cl, &up.u.base);
	ck_assert_int_eq(px_mtls_cluster(&cl.c, &m, err, sizeof(err)), 0);
	ck_assert_ptr_nonnull(m);
	ck_assert(m->sds && m->sds_roots && m->only_tls_istio && !m->server);
	ck_assert_str_eq(m->sni, "outbound_.50051_._.greeter.demo.svc.cluster.local");
	ck_assert_uint_eq(m->n_sans, 1);
	ck_assert_str_eq(m->sans[0], "spiffe://cluster.local/ns/demo/sa/greeter");
	ck_assert_uint_eq(m->n_alpn, 3);
	ck_assert_str_eq(m->alpn[1], "istio");
	/* no workload certificate yet: the connection cannot be made */
	ck_assert_int_eq(px_mtls_ctx(m, NULL, &ctx), -EAGAIN);
	ck_assert_str_eq(px_mtls_waiting_for(m, NULL), "the workload certificate");
	/* a named SDS secret not received (a credentialName meshd did not
	 * send): the log line names it, not the workload certificate */
	m->sds = m->sds_roots = 0;
	m->sds_cert = strdup("kubernetes://gw-cred-not-sent");
	ck_assert_int_eq(px_mtls_ctx(m, NULL, &ctx), -EAGAIN);
	ck_assert_str_eq(px_mtls_waiting_for(m, NULL), "kubernetes://gw-cred-not-sent");
	px_mtls_free(m);
	free(cl.any.value.data);
}
END_TEST

START_TEST(raw_only_and_bad_matchers)
{
	struct istio_up up;
	struct matches cl;
	struct px_mtls *m = (void *)1;
	char err[200];
	Envoy__Config__Cluster__V3__Cluster plain = ENVOY__CONFIG__CLUSTER__V3__CLUSTER__INIT;

	ck_assert_int_eq(px_mtls_cluster(&plain, &m, err, sizeof(err)), 0);
	ck_assert_ptr_null(m);
	/* a prefix SAN matcher is not implemented: refused (a NACK), not ignored */
	istio_up_init(&up, 0);
	matches_init(&cl, &up.u.base);
	ck_assert_int_eq(px_mtls_cluster(&cl.c, &m, err, sizeof(err)), -EINVAL);
	ck_assert_ptr_null(m);
	ck_assert(strstr(err, "exact") != NULL);
	free(cl.any.value.data);
	/* a TLS socket whose Any does not decode */
	cl.any.type_url = UP_URL;
	cl.any.value.data = (uint8_t *)"\xff\xff\xff";
	cl.any.value.len = 3;
	ck_assert_int_eq(px_mtls_cluster(&cl.c, &m, err, sizeof(err)), -EINVAL);
}
END_TEST

START_TEST(downstream_chain_strict)
{
	down_ctx d = ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__DOWNSTREAM_TLS_CONTEXT__INIT;
	struct istio_up up;
	Google__Protobuf__BoolValue yes = GOOGLE__PROTOBUF__BOOL_VALUE__INIT;
	Envoy__Config__Listener__V3__FilterChain fc = ENVOY__CONFIG__LISTENER__V3__FILTER_CHAIN__INIT;
	Envoy__Config__Core__V3__TransportSocket ts = ENVOY__CONFIG__CORE__V3__TRANSPORT_SOCKET__INIT;
	Google__Protobuf__Any any;
	struct px_mtls *m = NULL;
	char err[200];

	istio_up_init(&up, 1);
	up.dv.n_match_subject_alt_names = 0; /* inbound: any SPIFFE id of the mesh */
	yes.value = 1;
	d.common_tls_context = &up.c;
	d.require_client_certificate = &yes;
	any_of(&any, &d.base, DOWN_URL);
	ts.name = "envoy.transport_sockets.tls";
	ts.config_type_case = ENVOY__CONFIG__CORE__V3__TRANSPORT_SOCKET__CONFIG_TYPE_TYPED_CONFIG;
	ts.typed_config = &any;
	fc.transport_socket = &ts;
	fc.name = "0.0.0.0_50061";
	ck_assert_int_eq(px_mtls_chain(&fc, &m, err, sizeof(err)), 0);
	ck_assert_ptr_nonnull(m);
	ck_assert(m->server && m->require_peer_cert && m->sds && m->sds_roots);
	ck_assert_uint_eq(m->n_sans, 0);
	px_mtls_free(m);
	/* an UpstreamTlsContext on a listener is a mistake */
	free(any.value.data);
	any_of(&any, &up.u.base, UP_URL);
	ck_assert_int_eq(px_mtls_chain(&fc, &m, err, sizeof(err)), -EINVAL);
	free(any.value.data);
}
END_TEST

START_TEST(simple_with_inline_files_made_once)
{
	struct tf_ca ca;
	struct tf_leaf leaf;
	up_ctx u = ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__UPSTREAM_TLS_CONTEXT__INIT;
	common_ctx c = ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__COMMON_TLS_CONTEXT__INIT;
	Envoy__Extensions__TransportSockets__Tls__V3__CertificateValidationContext v =
		ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__CERTIFICATE_VALIDATION_CONTEXT__INIT;
	Envoy__Extensions__TransportSockets__Tls__V3__TlsCertificate tc =
		ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__TLS_CERTIFICATE__INIT, *tcv[1] = { &tc };
	Envoy__Config__Core__V3__DataSource chain = ENVOY__CONFIG__CORE__V3__DATA_SOURCE__INIT, key = chain,
					     roots = chain;
	Envoy__Config__Cluster__V3__Cluster cl = ENVOY__CONFIG__CLUSTER__V3__CLUSTER__INIT;
	Envoy__Config__Core__V3__TransportSocket ts = ENVOY__CONFIG__CORE__V3__TRANSPORT_SOCKET__INIT;
	Google__Protobuf__Any any;
	struct px_mtls *m = NULL;
	struct px_tls_ctx *x1, *x2;
	char err[200];

	tf_ca_make(&ca, "files root");
	tf_leaf_make(&leaf, &ca, "spiffe://example.org/client", 3600);
	roots.specifier_case = chain.specifier_case = key.specifier_case =
		ENVOY__CONFIG__CORE__V3__DATA_SOURCE__SPECIFIER_INLINE_STRING;
	roots.inline_string = ca.pem;
	chain.inline_string = leaf.chain;
	key.inline_string = leaf.key;
	tc.certificate_chain = &chain;
	tc.private_key = &key;
	c.n_tls_certificates = 1;
	c.tls_certificates = tcv;
	v.trusted_ca = &roots;
	c.validation_context_type_case =
		ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__COMMON_TLS_CONTEXT__VALIDATION_CONTEXT_TYPE_VALIDATION_CONTEXT;
	c.validation_context = &v;
	u.common_tls_context = &c;
	u.sni = "api.example.org";
	any_of(&any, &u.base, UP_URL);
	ts.name = "envoy.transport_sockets.tls";
	ts.config_type_case = ENVOY__CONFIG__CORE__V3__TRANSPORT_SOCKET__CONFIG_TYPE_TYPED_CONFIG;
	ts.typed_config = &any;
	cl.transport_socket = &ts;
	ck_assert_int_eq(px_mtls_cluster(&cl, &m, err, sizeof(err)), 0);
	ck_assert(!m->sds && !m->sds_roots && !m->only_tls_istio);
	ck_assert_ptr_nonnull(m->chain_pem);
	/* files need no workload identity; the context is made once */
	ck_assert_int_eq(px_mtls_ctx(m, NULL, &x1), 0);
	ck_assert_int_eq(px_mtls_ctx(m, NULL, &x2), 0);
	ck_assert_ptr_eq(x1, x2);
	px_mtls_free(m);
	free(any.value.data);
	tf_leaf_free(&leaf);
	tf_ca_free(&ca);
}
END_TEST

/* A SIMPLE upstream policy with alpn and a server policy ([h2,
 * http/1.1], meshd's inbound list) from inline PEM, a handshake over a
 * socketpair: the ALPN the server selected. */
static void negotiated(const struct tf_ca *ca, const struct tf_leaf *leaf, char **alpn, size_t n_alpn, int h2,
		       char *out, size_t cap)
{
	up_ctx u = ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__UPSTREAM_TLS_CONTEXT__INIT;
	down_ctx d = ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__DOWNSTREAM_TLS_CONTEXT__INIT;
	common_ctx cc = ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__COMMON_TLS_CONTEXT__INIT, sc = cc;
	Envoy__Extensions__TransportSockets__Tls__V3__CertificateValidationContext v =
		ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__CERTIFICATE_VALIDATION_CONTEXT__INIT;
	Envoy__Extensions__TransportSockets__Tls__V3__TlsCertificate tc =
		ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__TLS_CERTIFICATE__INIT, *tcv[1] = { &tc };
	Envoy__Config__Core__V3__DataSource chain = ENVOY__CONFIG__CORE__V3__DATA_SOURCE__INIT, key = chain,
					     roots = chain;
	Envoy__Config__Cluster__V3__Cluster cl = ENVOY__CONFIG__CLUSTER__V3__CLUSTER__INIT;
	Envoy__Config__Listener__V3__FilterChain fc = ENVOY__CONFIG__LISTENER__V3__FILTER_CHAIN__INIT;
	Envoy__Config__Core__V3__TransportSocket uts = ENVOY__CONFIG__CORE__V3__TRANSPORT_SOCKET__INIT, dts = uts;
	static char *server_alpn[] = { "h2", "http/1.1" };
	Google__Protobuf__Any uany, dany;
	struct px_mtls *um = NULL, *dm = NULL;
	struct px_tls_ctx *cx, *sx;
	struct px_tls *c, *s;
	char err[200];
	int fds[2], rc_c = -EAGAIN, rc_s = -EAGAIN, i;

	roots.specifier_case = chain.specifier_case = key.specifier_case =
		ENVOY__CONFIG__CORE__V3__DATA_SOURCE__SPECIFIER_INLINE_STRING;
	roots.inline_string = ca->pem;
	chain.inline_string = leaf->chain;
	key.inline_string = leaf->key;
	tc.certificate_chain = &chain;
	tc.private_key = &key;
	v.trusted_ca = &roots;
	cc.validation_context_type_case =
		ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__COMMON_TLS_CONTEXT__VALIDATION_CONTEXT_TYPE_VALIDATION_CONTEXT;
	cc.validation_context = &v;
	cc.alpn_protocols = alpn;
	cc.n_alpn_protocols = n_alpn;
	u.common_tls_context = &cc;
	sc.n_tls_certificates = 1;
	sc.tls_certificates = tcv;
	sc.alpn_protocols = server_alpn;
	sc.n_alpn_protocols = 2;
	d.common_tls_context = &sc;
	any_of(&uany, &u.base, UP_URL);
	any_of(&dany, &d.base, DOWN_URL);
	uts.name = dts.name = "envoy.transport_sockets.tls";
	uts.config_type_case = dts.config_type_case = ENVOY__CONFIG__CORE__V3__TRANSPORT_SOCKET__CONFIG_TYPE_TYPED_CONFIG;
	uts.typed_config = &uany;
	dts.typed_config = &dany;
	cl.transport_socket = &uts;
	fc.transport_socket = &dts;
	ck_assert_int_eq(px_mtls_cluster(&cl, &um, err, sizeof(err)), 0);
	ck_assert_int_eq(px_mtls_chain(&fc, &dm, err, sizeof(err)), 0);
	ck_assert_int_eq(h2 ? px_mtls_ctx_h2(um, NULL, &cx) : px_mtls_ctx(um, NULL, &cx), 0);
	/* a server context is the same for both codecs (it offers what it has) */
	ck_assert_int_eq(px_mtls_ctx_h2(dm, NULL, &sx), 0);
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds), 0);
	ck_assert_int_eq(px_tls_new(cx, fds[0], "web", &c), 0);
	ck_assert_int_eq(px_tls_new(sx, fds[1], NULL, &s), 0);
	for (i = 0; i < 100 && (rc_c == -EAGAIN || rc_s == -EAGAIN); i++) {
		if (rc_c == -EAGAIN)
			rc_c = px_tls_handshake(c);
		if (rc_s == -EAGAIN)
			rc_s = px_tls_handshake(s);
	}
	ck_assert_int_eq(rc_c, 0);
	ck_assert_int_eq(rc_s, 0);
	ck_assert_str_eq(px_tls_alpn(c), px_tls_alpn(s));
	snprintf(out, cap, "%s", px_tls_alpn(s));
	px_tls_free(c);
	px_tls_free(s);
	close(fds[0]);
	close(fds[1]);
	px_mtls_free(um);
	px_mtls_free(dm);
	free(uany.value.data);
	free(dany.value.data);
}

START_TEST(alpn_is_the_codecs)
{
	struct tf_ca ca;
	struct tf_leaf leaf;
	char *istio_h2[] = { "istio-peer-exchange", "istio", "h2" }, *istio[] = { "istio-peer-exchange", "istio" };
	char got[16];

	tf_ca_make(&ca, "alpn root");
	tf_leaf_make(&leaf, &ca, "spiffe://cluster.local/ns/demo/sa/web", 3600);
	/* meshd's list for a gRPC port: an HTTP/2 connection gets h2 ... */
	negotiated(&ca, &leaf, istio_h2, 3, 1, got, sizeof(got));
	ck_assert_str_eq(got, "h2");
	/* ... an HTTP/1.1 one to the same cluster must not let the server pick it */
	negotiated(&ca, &leaf, istio_h2, 3, 0, got, sizeof(got));
	ck_assert_str_eq(got, "");
	/* an HTTP port's list (no h2) upgraded to HTTP/2 (h2UpgradePolicy) offers h2 */
	negotiated(&ca, &leaf, istio, 2, 1, got, sizeof(got));
	ck_assert_str_eq(got, "h2");
	negotiated(&ca, &leaf, istio, 2, 0, got, sizeof(got));
	ck_assert_str_eq(got, "");
	tf_leaf_free(&leaf);
	tf_ca_free(&ca);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("mtls");
	TCase *tc = tcase_create("mtls");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, auto_mtls_as_meshd_sends_it);
	tcase_add_test(tc, raw_only_and_bad_matchers);
	tcase_add_test(tc, downstream_chain_strict);
	tcase_add_test(tc, simple_with_inline_files_made_once);
	tcase_add_test(tc, alpn_is_the_codecs);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
