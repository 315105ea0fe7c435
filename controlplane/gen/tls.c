/*
 * tls.c - mTLS pieces shared by the client side (clusters) and the server
 * side (inbound listeners): the TLS contexts, whether a server port
 * requires mTLS, and the UpstreamTlsContext of a cluster.
 *
 * Certificates come from the certificate provider instance "default" of
 * the client's bootstrap (Istio's agent writes the same): certificate
 * "default", roots "ROOTCA".  The messages use the CertificateProvider-
 * Instance fields Istio's grpcgen sends, which gRPC 1.51 accepts.
 */
#include "controlplane/gen/gen_int.h"
#include "controlplane/model/policy.h"

#include "common/err.h"

#include "envoy/type/matcher/v3/string.pb-c.h"

#include <stdlib.h>
#include <string.h>

typedef Envoy__Extensions__TransportSockets__Tls__V3__CommonTlsContext gen_common_tls;

const struct cfg_labels gen__no_labels;

/* ---------------------------------------------------------------- server mTLS */

static bool gen_tls_mode_istio(const struct cfg_labels *l)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		if (strcmp(l->v[i].key, GEN_TLS_MODE_LABEL) == 0)
			return strcmp(l->v[i].value, "istio") == 0;
	return false;
}

bool gen_server_mtls(const struct model *m, const struct gen_profile *p, const struct gen_workload *w, uint32_t port)
{
	switch (model_peer_authn(m, gen__workload_ns(w), gen__workload_labels(w), port)) {
	case CFG_MTLS_STRICT:
		return true;
	case CFG_MTLS_PERMISSIVE:
		/* A server that takes both serves plaintext callers too; one
		 * that cannot (gRPC) follows its clients: those of a
		 * tlsMode=istio workload use mTLS (auto mTLS). */
		if (p->mixed_tls_port)
			return false;
		return gen_mesh_auto_mtls(m) && gen_tls_mode_istio(gen__workload_labels(w));
	case CFG_MTLS_DISABLE:
	case CFG_MTLS_UNSET:
	default:
		return false;
	}
}

/* ---------------------------------------------------------------- TLS contexts */

const char *gen__trust_domain(const struct model *m)
{
	return m->trust_domain && m->trust_domain[0] ? m->trust_domain : "cluster.local";
}

Envoy__Config__Core__V3__TransportSocket *gen__tls_socket(struct arena *a, const ProtobufCMessage *ctx)
{
	Envoy__Config__Core__V3__TransportSocket *ts = gen__msg(a, &envoy__config__core__v3__transport_socket__descriptor);

	if (!ts)
		return NULL;
	ts->name = GEN_TLS_SOCKET_NAME;
	ts->config_type_case = ENVOY__CONFIG__CORE__V3__TRANSPORT_SOCKET__CONFIG_TYPE_TYPED_CONFIG;
	ts->typed_config = gen__any(a, ctx);
	return ts->typed_config ? ts : NULL;
}

static Envoy__Extensions__TransportSockets__Tls__V3__CommonTlsContext__CertificateProviderInstance *
gen_provider(struct arena *a, const char *cert_name)
{
	Envoy__Extensions__TransportSockets__Tls__V3__CommonTlsContext__CertificateProviderInstance *p = gen__msg(
		a, &envoy__extensions__transport_sockets__tls__v3__common_tls_context__certificate_provider_instance__descriptor);

	if (p) {
		p->instance_name = GEN_CERT_PROVIDER;
		p->certificate_name = (char *)cert_name;
	}
	return p;
}

gen_common_tls *gen__common_tls(struct arena *a, char *const *sans, size_t n_sans)
{
	gen_common_tls *c = gen__msg(a, &envoy__extensions__transport_sockets__tls__v3__common_tls_context__descriptor);
	Envoy__Extensions__TransportSockets__Tls__V3__CommonTlsContext__CombinedCertificateValidationContext *cv = gen__msg(
		a, &envoy__extensions__transport_sockets__tls__v3__common_tls_context__combined_certificate_validation_context__descriptor);
	Envoy__Extensions__TransportSockets__Tls__V3__CertificateValidationContext *vc =
		gen__msg(a, &envoy__extensions__transport_sockets__tls__v3__certificate_validation_context__descriptor);
	size_t i;

	if (!c || !cv || !vc)
		return NULL;
	c->tls_certificate_certificate_provider_instance = gen_provider(a, GEN_CERT_NAME);
	cv->validation_context_certificate_provider_instance = gen_provider(a, GEN_ROOT_CERT_NAME);
	if (!c->tls_certificate_certificate_provider_instance || !cv->validation_context_certificate_provider_instance)
		return NULL;
	if (n_sans) {
		vc->match_subject_alt_names = arena_calloc(a, n_sans, sizeof(*vc->match_subject_alt_names));
		if (!vc->match_subject_alt_names)
			return NULL;
		for (i = 0; i < n_sans; i++) {
			Envoy__Type__Matcher__V3__StringMatcher *sm =
				gen__msg(a, &envoy__type__matcher__v3__string_matcher__descriptor);

			if (!sm)
				return NULL;
			sm->match_pattern_case = ENVOY__TYPE__MATCHER__V3__STRING_MATCHER__MATCH_PATTERN_EXACT;
			sm->exact = sans[i];
			vc->match_subject_alt_names[i] = sm;
		}
		vc->n_match_subject_alt_names = n_sans;
	}
	cv->default_validation_context = vc;
	c->validation_context_type_case =
		ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__COMMON_TLS_CONTEXT__VALIDATION_CONTEXT_TYPE_COMBINED_VALIDATION_CONTEXT;
	c->combined_validation_context = cv;
	return c;
}

/* A reference to SDS secret name over ADS. */
static Envoy__Extensions__TransportSockets__Tls__V3__SdsSecretConfig *gen_sds(struct arena *a, const char *name)
{
	Envoy__Extensions__TransportSockets__Tls__V3__SdsSecretConfig *sc =
		gen__msg(a, &envoy__extensions__transport_sockets__tls__v3__sds_secret_config__descriptor);

	if (!sc || !(sc->sds_config = gen__ads_source(a)))
		return NULL;
	sc->name = (char *)name;
	return sc;
}

gen_common_tls *gen__common_tls_sds(struct arena *a, char *const *sans, size_t n_sans, const char *const *alpn,
				    size_t n_alpn)
{
	gen_common_tls *c = gen__common_tls(a, sans, n_sans);
	size_t i;

	if (!c)
		return NULL;
	c->tls_certificate_certificate_provider_instance = NULL;
	c->combined_validation_context->validation_context_certificate_provider_instance = NULL;
	if (!(c->tls_certificate_sds_secret_configs = arena_calloc(a, 1, sizeof(*c->tls_certificate_sds_secret_configs))) ||
	    !(c->tls_certificate_sds_secret_configs[0] = gen_sds(a, GEN_CERT_NAME)) ||
	    !(c->combined_validation_context->validation_context_sds_secret_config = gen_sds(a, GEN_ROOT_CERT_NAME)))
		return NULL;
	c->n_tls_certificate_sds_secret_configs = 1;
	if (n_alpn) {
		if (!(c->alpn_protocols = arena_calloc(a, n_alpn, sizeof(*c->alpn_protocols))))
			return NULL;
		for (i = 0; i < n_alpn; i++)
			c->alpn_protocols[i] = (char *)alpn[i];
		c->n_alpn_protocols = n_alpn;
	}
	return c;
}

Envoy__Config__Core__V3__TransportSocket *gen__downstream_tls(struct arena *a)
{
	Envoy__Extensions__TransportSockets__Tls__V3__DownstreamTlsContext *d =
		gen__msg(a, &envoy__extensions__transport_sockets__tls__v3__downstream_tls_context__descriptor);

	if (!d)
		return NULL;
	/* no SAN matching: gRPC servers reject match_subject_alt_names;
	 * who may call is AuthorizationPolicy's business */
	d->common_tls_context = gen__common_tls(a, NULL, 0);
	d->require_client_certificate = gen__bool(a, true);
	if (!d->common_tls_context || !d->require_client_certificate)
		return NULL;
	return gen__tls_socket(a, &d->base);
}


/* ---------------------------------------------------------------- client side */

static int gen_str_cmp(const void *x, const void *y)
{
	return strcmp(*(char *const *)x, *(char *const *)y);
}

/* Sort and drop duplicates; returns the new count. */
static size_t gen_sort_unique(char **v, size_t n)
{
	size_t i, w = 0;

	if (n == 0)
		return 0;
	qsort(v, n, sizeof(*v), gen_str_cmp);
	for (i = 0; i < n; i++)
		if (w == 0 || strcmp(v[w - 1], v[i]) != 0)
			v[w++] = v[i];
	return w;
}

/*
 * issue 13: DestinationRule tls SIMPLE / MUTUAL with credentialName, as
 * istiod builds it (cluster_builder's SIMPLE/MUTUAL case with
 * ApplyCustomSDSToClientCommonTLSContext): the certificate (MUTUAL only)
 * is SDS "kubernetes://NAME", the validation context a combined one with
 * the exact subjectAltNames and SDS "kubernetes://NAME-cacert"; SNI as
 * given; ALPN h2 to HTTP/2 ports only.  The proxy fetches both over its
 * ADS stream (meshd's ca_sds.c serves them from the Secret of the
 * proxy's namespace).
 */
static int gen_credential_tls(const struct model_port *mp, const struct cfg_client_tls *tls, struct arena *a,
			      Envoy__Config__Core__V3__TransportSocket **out)
{
	static const char *const h2[] = { "h2" };
	Envoy__Extensions__TransportSockets__Tls__V3__UpstreamTlsContext *u;
	const char *name = tls->credential_name;
	bool http2 = strcmp(mp->protocol, "HTTP2") == 0 || strcmp(mp->protocol, "GRPC") == 0;
	/* credentials.ToResourceName: a bare name is a Kubernetes Secret */
	const char *pre = strstr(name, "://") ? "" : "kubernetes://";
	char *cert = arena_printf(a, "%s%s", pre, name), *ca = arena_printf(a, "%s%s-cacert", pre, name);
	gen_common_tls *c;

	*out = NULL;
	u = gen__msg(a, &envoy__extensions__transport_sockets__tls__v3__upstream_tls_context__descriptor);
	if (!u || !cert || !ca ||
	    !(c = gen__common_tls_sds(a, tls->subject_alt_names.v, tls->subject_alt_names.n, h2, http2 ? 1 : 0)))
		return -ENOMEM;
	if (tls->mode == CFG_TLS_MUTUAL) {
		c->tls_certificate_sds_secret_configs[0]->name = cert;
	} else {
		c->tls_certificate_sds_secret_configs = NULL;
		c->n_tls_certificate_sds_secret_configs = 0;
	}
	c->combined_validation_context->validation_context_sds_secret_config->name = ca;
	u->common_tls_context = c;
	if (tls->sni && tls->sni[0])
		u->sni = tls->sni;
	*out = gen__tls_socket(a, &u->base);
	return *out ? 0 : -ENOMEM;
}

int gen__upstream_tls(const struct gen_ctx *g, const struct model_service *svc, uint32_t port, const char *subset,
		      const struct cfg_object *dr, const struct cfg_client_tls *tls, struct arena *a,
		      Envoy__Config__Core__V3__TransportSocket **out, bool *auto_match)
{
	/* Istio's ALPN inside the mesh (with metadata exchange); "h2" first
	 * to HTTP/2 ports */
	static const char *const alpn[] = { "istio-peer-exchange", "istio" };
	static const char *const alpn_h2[] = { "istio-peer-exchange", "istio", "h2" };
	const struct model *m = g->m;
	Envoy__Extensions__TransportSockets__Tls__V3__UpstreamTlsContext *u;
	const struct cfg_subset *ss = subset && dr ? model_subset(dr, subset) : NULL;
	const struct model_port *mp = NULL;
	char **sans = NULL;
	size_t i, pi = 0, n = 0, n_eps = 0, cap;
	bool istio_mutual, all_mtls = true;
	int rc = -ENOMEM;

	*out = NULL;
	*auto_match = false;
	for (i = 0; i < svc->n_ports; i++) {
		if (svc->ports[i].number == port) {
			mp = &svc->ports[i];
			pi = i;
			break;
		}
	}
	if (!mp)
		return 0;
	if (g->p->sds_tls && tls && tls->set && (tls->mode == CFG_TLS_SIMPLE || tls->mode == CFG_TLS_MUTUAL) &&
	    tls->credential_name && tls->credential_name[0])
		return gen_credential_tls(mp, tls, a, out);
	/* Istio's grpcgen maps ISTIO_MUTUAL and leaves DISABLE, SIMPLE and
	 * MUTUAL in plaintext: gRPC takes certificates only from bootstrap
	 * provider instances, not the files a DestinationRule names.  (Slot:
	 * a profile with tls_files builds SIMPLE and MUTUAL here.) */
	if (tls && tls->set && tls->mode != CFG_TLS_UNSET && tls->mode != CFG_TLS_ISTIO_MUTUAL)
		return 0;
	istio_mutual = tls && tls->set && tls->mode == CFG_TLS_ISTIO_MUTUAL;
	if (!istio_mutual && svc->mesh_external)
		return 0;
	/* MeshConfig enableAutoMtls false: only a DestinationRule's ISTIO_MUTUAL */
	if (!istio_mutual && !gen_mesh_auto_mtls(m))
		return 0;

	cap = svc->n_endpoints + (svc->origin && svc->origin->kind == CFG_SERVICE_ENTRY ?
				  svc->origin->spec.se.subject_alt_names.n : 0);
	if (istio_mutual && tls->subject_alt_names.n)
		cap = tls->subject_alt_names.n;
	if (cap > GEN_MAX_SANS)
		return -MESH_ETOOBIG;
	if (cap && !(sans = arena_calloc(a, cap, sizeof(*sans))))
		goto out;

	for (i = 0; i < svc->n_endpoints; i++) {
		const struct model_endpoint *e = &svc->endpoints[i];
		const struct cfg_labels *el = e->labels ? e->labels : &gen__no_labels;
		struct gen_workload w = { e->ns ? e->ns : svc->ns, el };
		uint32_t eport = e->ports ? e->ports[pi] : 0;

		if (ss && !model_labels_match(&ss->labels, el))
			continue;
		n_eps++;
		if (eport == 0)
			eport = mp->target_port ? mp->target_port : mp->number;
		if (!e->service_account || !e->service_account[0]) {
			all_mtls = false;
			continue;
		}
		if (!gen_server_mtls(m, g->p, &w, eport))
			all_mtls = false;
		if (istio_mutual && tls->subject_alt_names.n)
			continue;
		sans[n] = arena_printf(a, "spiffe://%s/ns/%s/sa/%s", gen__trust_domain(m), w.ns, e->service_account);
		if (!sans[n++])
			goto out;
	}
	/* auto mTLS the sidecar way: TLS to the endpoints labelled
	 * tlsMode=istio, chosen per endpoint by transport_socket_matches */
	if (!istio_mutual && g->p->tls_mode_match) {
		*auto_match = true;
	} else if (!istio_mutual && (n_eps == 0 || !all_mtls)) {
		/* auto mTLS: every endpoint has an identity and requires mTLS there */
		rc = 0;
		goto out;
	}
	if (istio_mutual && tls->subject_alt_names.n) {
		for (i = 0; i < tls->subject_alt_names.n; i++)
			sans[n++] = tls->subject_alt_names.v[i];
	} else if (svc->origin && svc->origin->kind == CFG_SERVICE_ENTRY) {
		for (i = 0; i < svc->origin->spec.se.subject_alt_names.n; i++)
			sans[n++] = svc->origin->spec.se.subject_alt_names.v[i];
	}
	n = gen_sort_unique(sans, n);

	u = gen__msg(a, &envoy__extensions__transport_sockets__tls__v3__upstream_tls_context__descriptor);
	if (!u)
		goto out;
	if (g->p->sds_tls) {
		bool h2 = strcmp(mp->protocol, "HTTP2") == 0 || strcmp(mp->protocol, "GRPC") == 0;

		u->common_tls_context = gen__common_tls_sds(a, sans, n, h2 ? alpn_h2 : alpn, h2 ? 3 : 2);
	} else {
		u->common_tls_context = gen__common_tls(a, sans, n);
	}
	if (!u->common_tls_context)
		goto out;
	if (tls && tls->set && tls->sni && tls->sni[0])
		u->sni = tls->sni;
	else if (!(u->sni = arena_printf(a, "outbound_.%u_.%s_.%s", port, subset ? subset : "", svc->hostname)))
		goto out;
	*out = gen__tls_socket(a, &u->base);
	rc = *out ? 0 : -ENOMEM;
out:
	return rc;
}
