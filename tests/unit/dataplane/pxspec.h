/*
 * pxspec.h - builds a px_snapshot from a few lines of text, with the
 * protobuf-c messages made in C (the shapes meshd's sidecar generator
 * sends: tests/xds/NNNN/expected/sidecar/).  Used by the engine's unit tests
 * and by the integration/bench harness (tests/bench/proxy/pxserve.c), so
 * both drive the real engine_apply() path.  Header-only: each test is one
 * .c file.
 *
 * Lines (# comments):
 *   outbound [registry_only]      virtualOutbound (catch-all Passthrough, or BlackHole)
 *   inbound                       virtualInbound
 *   listener PORT [VIP] [key=value...]  0.0.0.0_PORT (or VIP_PORT), HCM over RDS "PORT";
 *                                 stream_idle=MS headers_timeout=MS idle=MS (common_http_protocol_options)
 *                                 proxy_100=0|1 (meshd sends 1)
 *   bind out NAME IP:PORT RC      a listener meshproxy binds itself (bind_to_port unset; captureMode
 *                                 NONE's 127.0.0.1_PORT): OUTBOUND, HCM over RDS RC, Passthrough default chain
 *   bind in NAME IP:PORT CLUSTER  the same INBOUND (0.0.0.0_PORT): a TLS chain (to BlackHoleCluster), then
 *                                 a plaintext chain whose HCM's inline route config sends / to CLUSTER
 *   vhost RC NAME DOMAIN[,DOMAIN] [require_tls=all|external]  a virtual host in route config RC
 *                                 (require_tls: Istio's Gateway httpsRedirect)
 *   gw NAME IP:PORT KIND ...      issue 13: a chain of gateway listener NAME (istiod's router shapes:
 *                                 bound, OUTBOUND, tls_inspector once a chain needs it), one line each:
 *     gw NAME IP:PORT http RC                     plaintext HCM over RDS RC, use_remote_address true
 *     gw NAME IP:PORT https SNIS RC cert=F key=F [ca=F] [mode=mutual|optional] [alpn=h2,http/1.1]
 *                                 [min=1.2] [max=1.3] [ciphers=A:B]   TLS terminated: server_names SNIS
 *                                 (comma list, "-" none), a DownstreamTlsContext with file certificates
 *                                 (require_client_certificate for mutual), the HCM as for http
 *                                 [san=NAME]... (match_subject_alt_names, exact)
 *     gw NAME IP:PORT pass SNIS CLUSTER           PASSTHROUGH: tcp_proxy to CLUSTER by SNI
 *     gw NAME IP:PORT tcps SNIS CLUSTER cert=F key=F ...   a TLS server proxying TCP: terminated, then
 *                                 tcp_proxy to CLUSTER (https's TLS options)
 *     gw NAME IP:PORT auto SNIS                   AUTO_PASSTHROUGH: sni_cluster then tcp_proxy
 *   route RC VHOST PREFIX key=value...   cluster=C timeout=MS retries=N retry_on=LIST
 *                                 per_try=MS per_try_idle=MS codes=503,409 direct=STATUS[:BODY] idle_timeout=MS
 *                                 redirect=HOST[/PATH] abort=STATUS delay=MS
 *                                 prefix_rewrite=P host_rewrite=H attempt_count=1
 *                                 weighted=C1:W1,C2:W2 mirror=C hash_header=H
 *                                 cors=ORIGIN (the virtual host's policy: that exact origin, GET,POST,
 *                                 allow x-custom, expose x-exposed, max age 600, credentials)
 *                                 req_add=K:V req_set=K:V req_remove=K resp_add=K:V resp_set=K:V resp_remove=K
 *   cluster NAME static|eds|original_dst|strict_dns|logical_dns [IP:PORT...] [max_connections=N]
 *                                 [max_pending=N] [max_requests=N] [max_requests_per_connection=N]
 *                                 [lb=round_robin|least_request|random|ring_hash|maglev]
 *                                 [outlier=CONSECUTIVE_5XX[:BASE_EJECTION_MS]] (interval 100 ms, base 30 s, 100%)
 *                                 strict_dns/logical_dns: endpoints NAME:PORT in load_assignment,
 *                                 [dns_refresh=MS] [family=auto|v4|v6|v4_preferred|all]
 */
#ifndef MESH_TESTS_PXSPEC_H
#define MESH_TESTS_PXSPEC_H

#include "dataplane/snapshot.h"
#include "envoy/config/cluster/v3/cluster.pb-c.h"
#include "envoy/config/endpoint/v3/endpoint.pb-c.h"
#include "envoy/config/listener/v3/listener.pb-c.h"
#include "envoy/config/route/v3/route.pb-c.h"
#include "envoy/extensions/filters/http/fault/v3/fault.pb-c.h"
#include "envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.pb-c.h"
#include "envoy/extensions/filters/network/tcp_proxy/v3/tcp_proxy.pb-c.h"
#include "envoy/extensions/transport_sockets/tls/v3/tls.pb-c.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PS_MAX 4096

struct pxspec {
	void **allocs;
	size_t n_allocs, cap_allocs;
	Envoy__Config__Listener__V3__Listener *ls[PS_MAX];
	size_t n_ls;
	Envoy__Config__Route__V3__RouteConfiguration *rcs[PS_MAX];
	size_t n_rcs;
	Envoy__Config__Cluster__V3__Cluster *cls[PS_MAX];
	size_t n_cls;
	Envoy__Config__Endpoint__V3__ClusterLoadAssignment *clas[PS_MAX];
	size_t n_clas;
};

static void *ps_alloc(struct pxspec *ps, size_t n)
{
	void *p = calloc(1, n);

	if (ps->n_allocs == ps->cap_allocs) {
		size_t nc = ps->cap_allocs ? ps->cap_allocs * 2 : 1024;
		void **nv = realloc(ps->allocs, nc * sizeof(*nv));

		if (!nv)
			abort(); /* a test helper: out of memory is fatal */
		ps->allocs = nv;
		ps->cap_allocs = nc;
	}
	if (!p)
		abort();
	ps->allocs[ps->n_allocs++] = p;
	return p;
}

static char *ps_str(struct pxspec *ps, const char *s)
{
	size_t n = strlen(s);
	char *p = ps_alloc(ps, n + 1);

	memcpy(p, s, n);
	return p;
}

#define PS_NEW(ps, T, init) ({ T *p_ = ps_alloc(ps, sizeof(T)); T t_ = init; *p_ = t_; p_; })

static void **ps_push(struct pxspec *ps, void **v, size_t *n, void *item)
{
	void **nv = ps_alloc(ps, (*n + 1) * sizeof(void *));

	size_t i;

	for (i = 0; i < *n; i++)
		nv[i] = v[i];
	nv[(*n)++] = item;
	return nv;
}

static Google__Protobuf__Any *ps_any(struct pxspec *ps, const char *url, const ProtobufCMessage *m)
{
	Google__Protobuf__Any *a = PS_NEW(ps, Google__Protobuf__Any, GOOGLE__PROTOBUF__ANY__INIT);

	a->type_url = ps_str(ps, url);
	a->value.len = protobuf_c_message_get_packed_size(m);
	a->value.data = ps_alloc(ps, a->value.len + 1);
	protobuf_c_message_pack(m, a->value.data);
	return a;
}

static Google__Protobuf__Duration *ps_ms(struct pxspec *ps, long ms)
{
	Google__Protobuf__Duration *d = PS_NEW(ps, Google__Protobuf__Duration, GOOGLE__PROTOBUF__DURATION__INIT);

	d->seconds = ms / 1000;
	d->nanos = (int32_t)(ms % 1000) * 1000000;
	return d;
}

static Google__Protobuf__UInt32Value *ps_u32(struct pxspec *ps, uint32_t v)
{
	Google__Protobuf__UInt32Value *w = PS_NEW(ps, Google__Protobuf__UInt32Value, GOOGLE__PROTOBUF__UINT32_VALUE__INIT);

	w->value = v;
	return w;
}

static Envoy__Config__Core__V3__Address *ps_addr(struct pxspec *ps, const char *ip, uint32_t port)
{
	Envoy__Config__Core__V3__Address *a = PS_NEW(ps, Envoy__Config__Core__V3__Address, ENVOY__CONFIG__CORE__V3__ADDRESS__INIT);
	Envoy__Config__Core__V3__SocketAddress *sa =
		PS_NEW(ps, Envoy__Config__Core__V3__SocketAddress, ENVOY__CONFIG__CORE__V3__SOCKET_ADDRESS__INIT);

	sa->address = ps_str(ps, ip);
	sa->port_specifier_case = ENVOY__CONFIG__CORE__V3__SOCKET_ADDRESS__PORT_SPECIFIER_PORT_VALUE;
	sa->port_value = port;
	a->address_case = ENVOY__CONFIG__CORE__V3__ADDRESS__ADDRESS_SOCKET_ADDRESS;
	a->socket_address = sa;
	return a;
}

static Envoy__Config__Listener__V3__FilterChain *ps_tcp_chain(struct pxspec *ps, const char *cluster, int match_port)
{
	Envoy__Extensions__Filters__Network__TcpProxy__V3__TcpProxy tp =
		ENVOY__EXTENSIONS__FILTERS__NETWORK__TCP_PROXY__V3__TCP_PROXY__INIT;
	Envoy__Config__Listener__V3__FilterChain *fc =
		PS_NEW(ps, Envoy__Config__Listener__V3__FilterChain, ENVOY__CONFIG__LISTENER__V3__FILTER_CHAIN__INIT);
	Envoy__Config__Listener__V3__Filter *f =
		PS_NEW(ps, Envoy__Config__Listener__V3__Filter, ENVOY__CONFIG__LISTENER__V3__FILTER__INIT);

	tp.stat_prefix = (char *)cluster;
	tp.cluster_specifier_case = ENVOY__EXTENSIONS__FILTERS__NETWORK__TCP_PROXY__V3__TCP_PROXY__CLUSTER_SPECIFIER_CLUSTER;
	tp.cluster = (char *)cluster;
	f->name = ps_str(ps, "envoy.filters.network.tcp_proxy");
	f->config_type_case = ENVOY__CONFIG__LISTENER__V3__FILTER__CONFIG_TYPE_TYPED_CONFIG;
	f->typed_config = ps_any(ps, "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy", &tp.base);
	fc->filters = (void *)ps_push(ps, NULL, &fc->n_filters, f);
	if (match_port) {
		fc->filter_chain_match = PS_NEW(ps, Envoy__Config__Listener__V3__FilterChainMatch,
						ENVOY__CONFIG__LISTENER__V3__FILTER_CHAIN_MATCH__INIT);
		fc->filter_chain_match->destination_port = ps_u32(ps, (uint32_t)match_port);
	}
	return fc;
}

static void ps_listener_virtual(struct pxspec *ps, const char *name, uint32_t port, const char *catchall)
{
	Envoy__Config__Listener__V3__Listener *l =
		PS_NEW(ps, Envoy__Config__Listener__V3__Listener, ENVOY__CONFIG__LISTENER__V3__LISTENER__INIT);

	l->name = ps_str(ps, name);
	l->address = ps_addr(ps, "0.0.0.0", port);
	l->filter_chains = (void *)ps_push(ps, NULL, &l->n_filter_chains, ps_tcp_chain(ps, "BlackHoleCluster", (int)port));
	l->filter_chains = (void *)ps_push(ps, (void **)l->filter_chains, &l->n_filter_chains,
					   ps_tcp_chain(ps, catchall, 0));
	ps->ls[ps->n_ls++] = l;
}

static void ps_listener_port(struct pxspec *ps, uint32_t port, const char *vip, char *opts)
{
	Envoy__Extensions__Filters__Network__HttpConnectionManager__V3__HttpConnectionManager hcm =
		ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_CONNECTION_MANAGER__INIT;
	Envoy__Extensions__Filters__Network__HttpConnectionManager__V3__Rds rds =
		ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__RDS__INIT;
	Envoy__Config__Listener__V3__Listener *l =
		PS_NEW(ps, Envoy__Config__Listener__V3__Listener, ENVOY__CONFIG__LISTENER__V3__LISTENER__INIT);
	Envoy__Config__Listener__V3__FilterChain *fc =
		PS_NEW(ps, Envoy__Config__Listener__V3__FilterChain, ENVOY__CONFIG__LISTENER__V3__FILTER_CHAIN__INIT);
	Envoy__Config__Listener__V3__Filter *f =
		PS_NEW(ps, Envoy__Config__Listener__V3__Filter, ENVOY__CONFIG__LISTENER__V3__FILTER__INIT);
	char name[64], rc[16];

	snprintf(name, sizeof(name), "%s_%u", vip ? vip : "0.0.0.0", port);
	snprintf(rc, sizeof(rc), "%u", port);
	rds.route_config_name = rc;
	hcm.stat_prefix = name;
	hcm.route_specifier_case =
		ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_CONNECTION_MANAGER__ROUTE_SPECIFIER_RDS;
	hcm.rds = &rds;
	{
		char *tok, *sv = NULL, *v;

		for (tok = strtok_r(opts, " \t", &sv); tok; tok = strtok_r(NULL, " \t", &sv)) {
			v = strchr(tok, '=');
			if (!v)
				continue;
			*v++ = 0;
			if (!strcmp(tok, "stream_idle"))
				hcm.stream_idle_timeout = ps_ms(ps, atol(v));
			else if (!strcmp(tok, "headers_timeout"))
				hcm.request_headers_timeout = ps_ms(ps, atol(v));
			else if (!strcmp(tok, "request_timeout"))
				hcm.request_timeout = ps_ms(ps, atol(v));
			else if (!strcmp(tok, "proxy_100"))
				hcm.proxy_100_continue = atoi(v) != 0;
			else if (!strcmp(tok, "idle")) {
				hcm.common_http_protocol_options =
					PS_NEW(ps, Envoy__Config__Core__V3__HttpProtocolOptions,
					       ENVOY__CONFIG__CORE__V3__HTTP_PROTOCOL_OPTIONS__INIT);
				hcm.common_http_protocol_options->idle_timeout = ps_ms(ps, atol(v));
			}
		}
	}
	f->name = ps_str(ps, "envoy.filters.network.http_connection_manager");
	f->config_type_case = ENVOY__CONFIG__LISTENER__V3__FILTER__CONFIG_TYPE_TYPED_CONFIG;
	f->typed_config = ps_any(
		ps, "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
		&hcm.base);
	fc->filters = (void *)ps_push(ps, NULL, &fc->n_filters, f);
	l->name = ps_str(ps, name);
	l->address = ps_addr(ps, vip ? vip : "0.0.0.0", port);
	l->filter_chains = (void *)ps_push(ps, NULL, &l->n_filter_chains, fc);
	l->bind_to_port = PS_NEW(ps, Google__Protobuf__BoolValue, GOOGLE__PROTOBUF__BOOL_VALUE__INIT);
	ps->ls[ps->n_ls++] = l;
}

static Envoy__Config__Route__V3__RouteConfiguration *ps_rc(struct pxspec *ps, const char *name)
{
	size_t i;
	Envoy__Config__Route__V3__RouteConfiguration *rc;

	for (i = 0; i < ps->n_rcs; i++)
		if (!strcmp(ps->rcs[i]->name, name))
			return ps->rcs[i];
	rc = PS_NEW(ps, Envoy__Config__Route__V3__RouteConfiguration, ENVOY__CONFIG__ROUTE__V3__ROUTE_CONFIGURATION__INIT);
	rc->name = ps_str(ps, name);
	ps->rcs[ps->n_rcs++] = rc;
	return rc;
}

static void ps_vhost(struct pxspec *ps, const char *rcname, const char *name, const char *domains, const char *opt)
{
	Envoy__Config__Route__V3__RouteConfiguration *rc = ps_rc(ps, rcname);
	Envoy__Config__Route__V3__VirtualHost *vh =
		PS_NEW(ps, Envoy__Config__Route__V3__VirtualHost, ENVOY__CONFIG__ROUTE__V3__VIRTUAL_HOST__INIT);
	char *d = ps_str(ps, domains), *save = NULL, *tok;

	vh->name = ps_str(ps, name);
	if (opt && !strcmp(opt, "require_tls=all"))
		vh->require_tls = ENVOY__CONFIG__ROUTE__V3__VIRTUAL_HOST__TLS_REQUIREMENT_TYPE__ALL;
	else if (opt && !strcmp(opt, "require_tls=external"))
		vh->require_tls = ENVOY__CONFIG__ROUTE__V3__VIRTUAL_HOST__TLS_REQUIREMENT_TYPE__EXTERNAL_ONLY;
	for (tok = strtok_r(d, ",", &save); tok; tok = strtok_r(NULL, ",", &save))
		vh->domains = (void *)ps_push(ps, (void **)vh->domains, &vh->n_domains, tok);
	rc->virtual_hosts = (void *)ps_push(ps, (void **)rc->virtual_hosts, &rc->n_virtual_hosts, vh);
}

static int ps_route(struct pxspec *ps, const char *rcname, const char *vhname, const char *prefix, char *opts);

static void ps_listener_bound(struct pxspec *ps, int in, const char *name, const char *addr, const char *arg)
{
	Envoy__Extensions__Filters__Network__HttpConnectionManager__V3__HttpConnectionManager hcm =
		ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_CONNECTION_MANAGER__INIT;
	Envoy__Extensions__Filters__Network__HttpConnectionManager__V3__Rds rds =
		ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__RDS__INIT;
	Envoy__Config__Listener__V3__Listener *l =
		PS_NEW(ps, Envoy__Config__Listener__V3__Listener, ENVOY__CONFIG__LISTENER__V3__LISTENER__INIT);
	Envoy__Config__Listener__V3__FilterChain *fc =
		PS_NEW(ps, Envoy__Config__Listener__V3__FilterChain, ENVOY__CONFIG__LISTENER__V3__FILTER_CHAIN__INIT);
	Envoy__Config__Listener__V3__Filter *f =
		PS_NEW(ps, Envoy__Config__Listener__V3__Filter, ENVOY__CONFIG__LISTENER__V3__FILTER__INIT);
	char ip[64] = "", rcname[160];
	const char *colon = strrchr(addr, ':');

	snprintf(ip, sizeof(ip), "%.*s", colon ? (int)(colon - addr) : 0, addr);
	hcm.stat_prefix = (char *)name;
	if (in) {
		/* the inline route config: built as an RDS one, then taken out of the RDS set */
		snprintf(rcname, sizeof(rcname), "inbound|%s", name);
		ps_vhost(ps, rcname, "inbound", "*", NULL);
		{
			char opts[300];

			snprintf(opts, sizeof(opts), " cluster=%s", arg);
			(void)ps_route(ps, rcname, "inbound", "/", ps_str(ps, opts));
		}
		hcm.route_specifier_case =
			ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_CONNECTION_MANAGER__ROUTE_SPECIFIER_ROUTE_CONFIG;
		hcm.route_config = ps->rcs[--ps->n_rcs];
		l->traffic_direction = ENVOY__CONFIG__CORE__V3__TRAFFIC_DIRECTION__INBOUND;
	} else {
		rds.route_config_name = (char *)arg;
		hcm.route_specifier_case =
			ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_CONNECTION_MANAGER__ROUTE_SPECIFIER_RDS;
		hcm.rds = &rds;
		l->traffic_direction = ENVOY__CONFIG__CORE__V3__TRAFFIC_DIRECTION__OUTBOUND;
		l->default_filter_chain = ps_tcp_chain(ps, "PassthroughCluster", 0);
	}
	f->name = ps_str(ps, "envoy.filters.network.http_connection_manager");
	f->config_type_case = ENVOY__CONFIG__LISTENER__V3__FILTER__CONFIG_TYPE_TYPED_CONFIG;
	f->typed_config = ps_any(
		ps, "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
		&hcm.base);
	fc->filters = (void *)ps_push(ps, NULL, &fc->n_filters, f);
	if (in) {
		Envoy__Config__Listener__V3__FilterChain *tls = ps_tcp_chain(ps, "BlackHoleCluster", 0);

		tls->filter_chain_match = PS_NEW(ps, Envoy__Config__Listener__V3__FilterChainMatch,
						 ENVOY__CONFIG__LISTENER__V3__FILTER_CHAIN_MATCH__INIT);
		tls->filter_chain_match->transport_protocol = ps_str(ps, "tls");
		l->filter_chains = (void *)ps_push(ps, NULL, &l->n_filter_chains, tls);
	}
	l->filter_chains = (void *)ps_push(ps, (void **)l->filter_chains, &l->n_filter_chains, fc);
	l->name = ps_str(ps, name);
	l->address = ps_addr(ps, ip, colon ? (uint32_t)atoi(colon + 1) : 0);
	ps->ls[ps->n_ls++] = l;
}

/* issue 13: the gateway listener NAME, made on first use. */
static Envoy__Config__Listener__V3__Listener *ps_gw_listener(struct pxspec *ps, const char *name, const char *addr)
{
	Envoy__Config__Listener__V3__Listener *l;
	const char *colon = strrchr(addr, ':');
	char ip[64];
	size_t i;

	for (i = 0; i < ps->n_ls; i++)
		if (!strcmp(ps->ls[i]->name, name))
			return ps->ls[i];
	l = PS_NEW(ps, Envoy__Config__Listener__V3__Listener, ENVOY__CONFIG__LISTENER__V3__LISTENER__INIT);
	snprintf(ip, sizeof(ip), "%.*s", colon ? (int)(colon - addr) : 0, addr);
	l->name = ps_str(ps, name);
	l->address = ps_addr(ps, ip, colon ? (uint32_t)atoi(colon + 1) : 0);
	l->traffic_direction = ENVOY__CONFIG__CORE__V3__TRAFFIC_DIRECTION__OUTBOUND;
	ps->ls[ps->n_ls++] = l;
	return l;
}

static Envoy__Config__Core__V3__DataSource *ps_file(struct pxspec *ps, const char *path)
{
	Envoy__Config__Core__V3__DataSource *d =
		PS_NEW(ps, Envoy__Config__Core__V3__DataSource, ENVOY__CONFIG__CORE__V3__DATA_SOURCE__INIT);

	d->specifier_case = ENVOY__CONFIG__CORE__V3__DATA_SOURCE__SPECIFIER_FILENAME;
	d->filename = ps_str(ps, path);
	return d;
}

static int ps_tls_version(const char *v)
{
	return !strcmp(v, "1.0") ? 1 : !strcmp(v, "1.1") ? 2 : !strcmp(v, "1.2") ? 3 : !strcmp(v, "1.3") ? 4 : 0;
}

/* A DownstreamTlsContext transport socket from "key=value" options. */
static Envoy__Config__Core__V3__TransportSocket *ps_down_tls(struct pxspec *ps, char *opts)
{
	Envoy__Extensions__TransportSockets__Tls__V3__DownstreamTlsContext d =
		ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__DOWNSTREAM_TLS_CONTEXT__INIT;
	Envoy__Extensions__TransportSockets__Tls__V3__CommonTlsContext ct =
		ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__COMMON_TLS_CONTEXT__INIT;
	Envoy__Extensions__TransportSockets__Tls__V3__TlsCertificate cert =
		ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__TLS_CERTIFICATE__INIT;
	Envoy__Extensions__TransportSockets__Tls__V3__CertificateValidationContext vc =
		ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__CERTIFICATE_VALIDATION_CONTEXT__INIT;
	Envoy__Extensions__TransportSockets__Tls__V3__TlsParameters tp =
		ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__TLS_PARAMETERS__INIT;
	Google__Protobuf__BoolValue req = GOOGLE__PROTOBUF__BOOL_VALUE__INIT;
	Envoy__Config__Core__V3__TransportSocket *ts =
		PS_NEW(ps, Envoy__Config__Core__V3__TransportSocket, ENVOY__CONFIG__CORE__V3__TRANSPORT_SOCKET__INIT);
	Envoy__Extensions__TransportSockets__Tls__V3__TlsCertificate *certs[1] = { &cert };
	char *tok, *sv = NULL, *v, *s2 = NULL, *a;

	ct.tls_certificates = certs;
	ct.n_tls_certificates = 1;
	for (tok = strtok_r(opts, " \t\n", &sv); tok; tok = strtok_r(NULL, " \t\n", &sv)) {
		v = strchr(tok, '=');
		if (!v)
			continue;
		*v++ = 0;
		if (!strcmp(tok, "cert")) {
			cert.certificate_chain = ps_file(ps, v);
		} else if (!strcmp(tok, "key")) {
			cert.private_key = ps_file(ps, v);
		} else if (!strcmp(tok, "ca")) {
			vc.trusted_ca = ps_file(ps, v);
			ct.validation_context_type_case =
				ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__COMMON_TLS_CONTEXT__VALIDATION_CONTEXT_TYPE_VALIDATION_CONTEXT;
			ct.validation_context = &vc;
		} else if (!strcmp(tok, "san")) {
			Envoy__Type__Matcher__V3__StringMatcher *m = PS_NEW(
				ps, Envoy__Type__Matcher__V3__StringMatcher, ENVOY__TYPE__MATCHER__V3__STRING_MATCHER__INIT);

			m->match_pattern_case = ENVOY__TYPE__MATCHER__V3__STRING_MATCHER__MATCH_PATTERN_EXACT;
			m->exact = ps_str(ps, v);
			vc.match_subject_alt_names =
				(void *)ps_push(ps, (void **)vc.match_subject_alt_names, &vc.n_match_subject_alt_names, m);
		} else if (!strcmp(tok, "mode")) {
			req.value = !strcmp(v, "mutual");
			d.require_client_certificate = &req;
		} else if (!strcmp(tok, "alpn")) {
			for (a = strtok_r(ps_str(ps, v), ",", &s2); a; a = strtok_r(NULL, ",", &s2))
				ct.alpn_protocols = (void *)ps_push(ps, (void **)ct.alpn_protocols, &ct.n_alpn_protocols, a);
		} else if (!strcmp(tok, "min")) {
			tp.tls_minimum_protocol_version = ps_tls_version(v);
			ct.tls_params = &tp;
		} else if (!strcmp(tok, "max")) {
			tp.tls_maximum_protocol_version = ps_tls_version(v);
			ct.tls_params = &tp;
		} else if (!strcmp(tok, "ciphers")) {
			tp.cipher_suites = (void *)ps_push(ps, NULL, &tp.n_cipher_suites, ps_str(ps, v));
			ct.tls_params = &tp;
		}
	}
	if (vc.n_match_subject_alt_names && !ct.validation_context) {
		ct.validation_context_type_case =
			ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__COMMON_TLS_CONTEXT__VALIDATION_CONTEXT_TYPE_VALIDATION_CONTEXT;
		ct.validation_context = &vc;
	}
	d.common_tls_context = &ct;
	ts->name = ps_str(ps, "envoy.transport_sockets.tls");
	ts->config_type_case = ENVOY__CONFIG__CORE__V3__TRANSPORT_SOCKET__CONFIG_TYPE_TYPED_CONFIG;
	ts->typed_config =
		ps_any(ps, "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext", &d.base);
	return ts;
}

/* One "gw" line: a chain appended to the gateway listener (pxspec.h's
 * header says the forms).  Returns 0 or -EINVAL. */
static int ps_gateway(struct pxspec *ps, const char *name, const char *addr, const char *kind, const char *a1,
		      const char *a2, char *opts)
{
	Envoy__Config__Listener__V3__Listener *l = ps_gw_listener(ps, name, addr);
	Envoy__Config__Listener__V3__FilterChain *fc;
	int tls = !strcmp(kind, "https");
	const char *snis = !strcmp(kind, "http") ? "-" : a1;

	if (!strcmp(kind, "http") || tls) {
		Envoy__Extensions__Filters__Network__HttpConnectionManager__V3__HttpConnectionManager hcm =
			ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_CONNECTION_MANAGER__INIT;
		Envoy__Extensions__Filters__Network__HttpConnectionManager__V3__Rds rds =
			ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__RDS__INIT;
		Google__Protobuf__BoolValue remote = GOOGLE__PROTOBUF__BOOL_VALUE__INIT;
		Envoy__Config__Listener__V3__Filter *f =
			PS_NEW(ps, Envoy__Config__Listener__V3__Filter, ENVOY__CONFIG__LISTENER__V3__FILTER__INIT);

		fc = PS_NEW(ps, Envoy__Config__Listener__V3__FilterChain, ENVOY__CONFIG__LISTENER__V3__FILTER_CHAIN__INIT);
		rds.route_config_name = (char *)(tls ? a2 : a1);
		if (!rds.route_config_name || !*rds.route_config_name)
			return -EINVAL;
		remote.value = 1;
		hcm.stat_prefix = (char *)name;
		hcm.use_remote_address = &remote;
		hcm.route_specifier_case =
			ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_CONNECTION_MANAGER__ROUTE_SPECIFIER_RDS;
		hcm.rds = &rds;
		f->name = ps_str(ps, "envoy.filters.network.http_connection_manager");
		f->config_type_case = ENVOY__CONFIG__LISTENER__V3__FILTER__CONFIG_TYPE_TYPED_CONFIG;
		f->typed_config = ps_any(
			ps,
			"type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
			&hcm.base);
		fc->filters = (void *)ps_push(ps, NULL, &fc->n_filters, f);
		if (tls)
			fc->transport_socket = ps_down_tls(ps, opts);
	} else if ((!strcmp(kind, "pass") || !strcmp(kind, "tcps")) && a2 && *a2) {
		fc = ps_tcp_chain(ps, ps_str(ps, a2), 0);
		if (!strcmp(kind, "tcps"))
			fc->transport_socket = ps_down_tls(ps, opts);
	} else if (!strcmp(kind, "auto")) {
		Envoy__Config__Listener__V3__Filter *f =
			PS_NEW(ps, Envoy__Config__Listener__V3__Filter, ENVOY__CONFIG__LISTENER__V3__FILTER__INIT);

		Envoy__Config__Listener__V3__Filter *tcpf;

		fc = ps_tcp_chain(ps, "BlackHoleCluster", 0);
		tcpf = fc->filters[0];
		f->name = ps_str(ps, "envoy.filters.network.sni_cluster");
		/* sni_cluster first, then the TcpProxy (Istio's order) */
		fc->n_filters = 0;
		fc->filters = (void *)ps_push(ps, NULL, &fc->n_filters, f);
		fc->filters = (void *)ps_push(ps, (void **)fc->filters, &fc->n_filters, tcpf);
	} else {
		return -EINVAL;
	}
	if (!snis || !*snis)
		return -EINVAL;
	if (strcmp(snis, "-")) {
		char *d = ps_str(ps, snis), *save = NULL, *tok;

		fc->filter_chain_match = PS_NEW(ps, Envoy__Config__Listener__V3__FilterChainMatch,
						ENVOY__CONFIG__LISTENER__V3__FILTER_CHAIN_MATCH__INIT);
		for (tok = strtok_r(d, ",", &save); tok; tok = strtok_r(NULL, ",", &save))
			fc->filter_chain_match->server_names = (void *)ps_push(
				ps, (void **)fc->filter_chain_match->server_names, &fc->filter_chain_match->n_server_names,
				tok);
	}
	if ((tls || strcmp(snis, "-")) && !l->n_listener_filters) {
		Envoy__Config__Listener__V3__ListenerFilter *lf = PS_NEW(
			ps, Envoy__Config__Listener__V3__ListenerFilter, ENVOY__CONFIG__LISTENER__V3__LISTENER_FILTER__INIT);

		lf->name = ps_str(ps, "envoy.filters.listener.tls_inspector");
		l->listener_filters = (void *)ps_push(ps, NULL, &l->n_listener_filters, lf);
	}
	l->filter_chains = (void *)ps_push(ps, (void **)l->filter_chains, &l->n_filter_chains, fc);
	return 0;
}

static int ps_route(struct pxspec *ps, const char *rcname, const char *vhname, const char *prefix, char *opts)
{
	Envoy__Config__Route__V3__RouteConfiguration *rc = ps_rc(ps, rcname);
	Envoy__Config__Route__V3__VirtualHost *vh = NULL;
	Envoy__Config__Route__V3__Route *r = PS_NEW(ps, Envoy__Config__Route__V3__Route, ENVOY__CONFIG__ROUTE__V3__ROUTE__INIT);
	Envoy__Config__Route__V3__RouteAction *a =
		PS_NEW(ps, Envoy__Config__Route__V3__RouteAction, ENVOY__CONFIG__ROUTE__V3__ROUTE_ACTION__INIT);
	Envoy__Config__Route__V3__RetryPolicy *rp = NULL;
	Envoy__Extensions__Filters__Http__Fault__V3__HTTPFault fault = ENVOY__EXTENSIONS__FILTERS__HTTP__FAULT__V3__HTTPFAULT__INIT;
	Envoy__Extensions__Filters__Common__Fault__V3__FaultDelay delay = ENVOY__EXTENSIONS__FILTERS__COMMON__FAULT__V3__FAULT_DELAY__INIT;
	Envoy__Extensions__Filters__Http__Fault__V3__FaultAbort abort_ = ENVOY__EXTENSIONS__FILTERS__HTTP__FAULT__V3__FAULT_ABORT__INIT;
	char *save = NULL, *tok;
	size_t i;

	for (i = 0; i < rc->n_virtual_hosts; i++)
		if (!strcmp(rc->virtual_hosts[i]->name, vhname))
			vh = rc->virtual_hosts[i];
	if (!vh)
		return -ENOENT;
	r->match = PS_NEW(ps, Envoy__Config__Route__V3__RouteMatch, ENVOY__CONFIG__ROUTE__V3__ROUTE_MATCH__INIT);
	r->match->path_specifier_case = ENVOY__CONFIG__ROUTE__V3__ROUTE_MATCH__PATH_SPECIFIER_PREFIX;
	r->match->prefix = ps_str(ps, prefix);
	r->action_case = ENVOY__CONFIG__ROUTE__V3__ROUTE__ACTION_ROUTE;
	r->route = a;
	a->timeout = ps_ms(ps, 0);
	for (tok = strtok_r(opts, " \t\n", &save); tok; tok = strtok_r(NULL, " \t\n", &save)) {
		char *v = strchr(tok, '=');

		if (!v)
			continue;
		*v++ = 0;
		if (!rp && (!strcmp(tok, "retries") || !strcmp(tok, "retry_on") || !strcmp(tok, "per_try") ||
			    !strcmp(tok, "per_try_idle") || !strcmp(tok, "codes"))) {
			Envoy__Config__Route__V3__RetryPolicy__RetryHostPredicate *hp = PS_NEW(
				ps, Envoy__Config__Route__V3__RetryPolicy__RetryHostPredicate,
				ENVOY__CONFIG__ROUTE__V3__RETRY_POLICY__RETRY_HOST_PREDICATE__INIT);

			rp = PS_NEW(ps, Envoy__Config__Route__V3__RetryPolicy, ENVOY__CONFIG__ROUTE__V3__RETRY_POLICY__INIT);
			rp->retry_back_off = PS_NEW(ps, Envoy__Config__Route__V3__RetryPolicy__RetryBackOff,
						    ENVOY__CONFIG__ROUTE__V3__RETRY_POLICY__RETRY_BACK_OFF__INIT);
			rp->retry_back_off->base_interval = ps_ms(ps, 1);
			rp->retry_back_off->max_interval = ps_ms(ps, 5);
			hp->name = ps_str(ps, "envoy.retry_host_predicates.previous_hosts");
			rp->retry_host_predicate = (void *)ps_push(ps, NULL, &rp->n_retry_host_predicate, hp);
			a->retry_policy = rp;
		}
		if (!strcmp(tok, "cluster")) {
			a->cluster_specifier_case = ENVOY__CONFIG__ROUTE__V3__ROUTE_ACTION__CLUSTER_SPECIFIER_CLUSTER;
			a->cluster = ps_str(ps, v);
		} else if (!strcmp(tok, "weighted")) {
			char *s2 = NULL, *w;

			a->cluster_specifier_case = ENVOY__CONFIG__ROUTE__V3__ROUTE_ACTION__CLUSTER_SPECIFIER_WEIGHTED_CLUSTERS;
			a->weighted_clusters = PS_NEW(ps, Envoy__Config__Route__V3__WeightedCluster,
						      ENVOY__CONFIG__ROUTE__V3__WEIGHTED_CLUSTER__INIT);
			for (w = strtok_r(ps_str(ps, v), ",", &s2); w; w = strtok_r(NULL, ",", &s2)) {
				Envoy__Config__Route__V3__WeightedCluster__ClusterWeight *cw =
					PS_NEW(ps, Envoy__Config__Route__V3__WeightedCluster__ClusterWeight,
					       ENVOY__CONFIG__ROUTE__V3__WEIGHTED_CLUSTER__CLUSTER_WEIGHT__INIT);
				char *c = strchr(w, ':');

				if (c)
					*c++ = 0;
				cw->name = w;
				cw->weight = ps_u32(ps, c ? (uint32_t)atoi(c) : 1);
				a->weighted_clusters->clusters = (void *)ps_push(
					ps, (void **)a->weighted_clusters->clusters, &a->weighted_clusters->n_clusters, cw);
			}
		} else if (!strcmp(tok, "timeout")) {
			a->timeout = ps_ms(ps, atol(v));
		} else if (!strcmp(tok, "idle_timeout")) {
			a->idle_timeout = ps_ms(ps, atol(v));
		} else if (!strcmp(tok, "retries")) {
			rp->num_retries = ps_u32(ps, (uint32_t)atoi(v));
		} else if (!strcmp(tok, "retry_on")) {
			rp->retry_on = ps_str(ps, v);
		} else if (!strcmp(tok, "per_try")) {
			rp->per_try_timeout = ps_ms(ps, atol(v));
		} else if (!strcmp(tok, "per_try_idle")) {
			rp->per_try_idle_timeout = ps_ms(ps, atol(v));
		} else if (!strcmp(tok, "codes")) {
			char *s2 = NULL, *c;

			for (c = strtok_r(v, ",", &s2); c; c = strtok_r(NULL, ",", &s2)) {
				uint32_t *nv = ps_alloc(ps, (rp->n_retriable_status_codes + 1) * sizeof(*nv));

				if (rp->n_retriable_status_codes)
					memcpy(nv, rp->retriable_status_codes, rp->n_retriable_status_codes * sizeof(*nv));
				nv[rp->n_retriable_status_codes++] = (uint32_t)atoi(c);
				rp->retriable_status_codes = nv;
			}
		} else if (!strcmp(tok, "direct")) {
			char *b = strchr(v, ':');

			if (b)
				*b++ = 0;
			r->action_case = ENVOY__CONFIG__ROUTE__V3__ROUTE__ACTION_DIRECT_RESPONSE;
			r->direct_response = PS_NEW(ps, Envoy__Config__Route__V3__DirectResponseAction,
						    ENVOY__CONFIG__ROUTE__V3__DIRECT_RESPONSE_ACTION__INIT);
			r->direct_response->status = (uint32_t)atoi(v);
			if (b) {
				r->direct_response->body = PS_NEW(ps, Envoy__Config__Core__V3__DataSource,
								  ENVOY__CONFIG__CORE__V3__DATA_SOURCE__INIT);
				r->direct_response->body->specifier_case = ENVOY__CONFIG__CORE__V3__DATA_SOURCE__SPECIFIER_INLINE_STRING;
				r->direct_response->body->inline_string = ps_str(ps, b);
			}
		} else if (!strcmp(tok, "redirect")) {
			char *p = strchr(v, '/');

			r->action_case = ENVOY__CONFIG__ROUTE__V3__ROUTE__ACTION_REDIRECT;
			r->redirect = PS_NEW(ps, Envoy__Config__Route__V3__RedirectAction,
					     ENVOY__CONFIG__ROUTE__V3__REDIRECT_ACTION__INIT);
			if (p) {
				r->redirect->path_rewrite_specifier_case =
					ENVOY__CONFIG__ROUTE__V3__REDIRECT_ACTION__PATH_REWRITE_SPECIFIER_PATH_REDIRECT;
				r->redirect->path_redirect = ps_str(ps, p);
				*p = 0;
			}
			r->redirect->host_redirect = ps_str(ps, v);
		} else if (!strcmp(tok, "abort")) {
			abort_.error_type_case = ENVOY__EXTENSIONS__FILTERS__HTTP__FAULT__V3__FAULT_ABORT__ERROR_TYPE_HTTP_STATUS;
			abort_.http_status = (uint32_t)atoi(v);
			fault.abort = &abort_;
		} else if (!strcmp(tok, "delay")) {
			delay.fault_delay_secifier_case =
				ENVOY__EXTENSIONS__FILTERS__COMMON__FAULT__V3__FAULT_DELAY__FAULT_DELAY_SECIFIER_FIXED_DELAY;
			delay.fixed_delay = ps_ms(ps, atol(v));
			fault.delay = &delay;
		} else if (!strcmp(tok, "prefix_rewrite")) {
			a->prefix_rewrite = ps_str(ps, v);
		} else if (!strcmp(tok, "host_rewrite")) {
			a->host_rewrite_specifier_case =
				ENVOY__CONFIG__ROUTE__V3__ROUTE_ACTION__HOST_REWRITE_SPECIFIER_HOST_REWRITE_LITERAL;
			a->host_rewrite_literal = ps_str(ps, v);
		} else if (!strcmp(tok, "attempt_count")) {
			vh->include_request_attempt_count = atoi(v) != 0;
		} else if (!strcmp(tok, "hash_header")) {
			Envoy__Config__Route__V3__RouteAction__HashPolicy *hp = PS_NEW(
				ps, Envoy__Config__Route__V3__RouteAction__HashPolicy, ENVOY__CONFIG__ROUTE__V3__ROUTE_ACTION__HASH_POLICY__INIT);

			hp->policy_specifier_case = ENVOY__CONFIG__ROUTE__V3__ROUTE_ACTION__HASH_POLICY__POLICY_SPECIFIER_HEADER;
			hp->header = PS_NEW(ps, Envoy__Config__Route__V3__RouteAction__HashPolicy__Header,
					    ENVOY__CONFIG__ROUTE__V3__ROUTE_ACTION__HASH_POLICY__HEADER__INIT);
			hp->header->header_name = ps_str(ps, v);
			a->hash_policy = (void *)ps_push(ps, (void **)a->hash_policy, &a->n_hash_policy, hp);
		} else if (!strcmp(tok, "cors")) {
			Envoy__Type__Matcher__V3__StringMatcher *sm =
				PS_NEW(ps, Envoy__Type__Matcher__V3__StringMatcher, ENVOY__TYPE__MATCHER__V3__STRING_MATCHER__INIT);

			vh->cors = PS_NEW(ps, Envoy__Config__Route__V3__CorsPolicy, ENVOY__CONFIG__ROUTE__V3__CORS_POLICY__INIT);
			sm->match_pattern_case = ENVOY__TYPE__MATCHER__V3__STRING_MATCHER__MATCH_PATTERN_EXACT;
			sm->exact = ps_str(ps, v);
			vh->cors->allow_origin_string_match = (void *)ps_push(ps, NULL, &vh->cors->n_allow_origin_string_match, sm);
			vh->cors->allow_methods = ps_str(ps, "GET,POST");
			vh->cors->allow_headers = ps_str(ps, "x-custom");
			vh->cors->expose_headers = ps_str(ps, "x-exposed");
			vh->cors->max_age = ps_str(ps, "600");
			vh->cors->allow_credentials = PS_NEW(ps, Google__Protobuf__BoolValue, GOOGLE__PROTOBUF__BOOL_VALUE__INIT);
			vh->cors->allow_credentials->value = 1;
		} else if (!strcmp(tok, "mirror")) {
			Envoy__Config__Route__V3__RouteAction__RequestMirrorPolicy *mp =
				PS_NEW(ps, Envoy__Config__Route__V3__RouteAction__RequestMirrorPolicy,
				       ENVOY__CONFIG__ROUTE__V3__ROUTE_ACTION__REQUEST_MIRROR_POLICY__INIT);

			mp->cluster = ps_str(ps, v);
			a->request_mirror_policies = (void *)ps_push(ps, NULL, &a->n_request_mirror_policies, mp);
		} else if (!strcmp(tok, "req_remove")) {
			r->request_headers_to_remove = (void *)ps_push(ps, (void **)r->request_headers_to_remove,
								       &r->n_request_headers_to_remove, ps_str(ps, v));
		} else if (!strcmp(tok, "resp_remove")) {
			r->response_headers_to_remove = (void *)ps_push(ps, (void **)r->response_headers_to_remove,
									&r->n_response_headers_to_remove, ps_str(ps, v));
		} else if (!strncmp(tok, "req_", 4) || !strncmp(tok, "resp_", 5)) {
			Envoy__Config__Core__V3__HeaderValueOption *o = PS_NEW(
				ps, Envoy__Config__Core__V3__HeaderValueOption, ENVOY__CONFIG__CORE__V3__HEADER_VALUE_OPTION__INIT);
			char *c = strchr(v, ':');

			o->header = PS_NEW(ps, Envoy__Config__Core__V3__HeaderValue, ENVOY__CONFIG__CORE__V3__HEADER_VALUE__INIT);
			if (c)
				*c++ = 0;
			o->header->key = ps_str(ps, v);
			o->header->value = ps_str(ps, c ? c : "");
			if (strstr(tok, "_set"))
				o->append_action =
					ENVOY__CONFIG__CORE__V3__HEADER_VALUE_OPTION__HEADER_APPEND_ACTION__OVERWRITE_IF_EXISTS_OR_ADD;
			if (tok[2] == 'q')
				r->request_headers_to_add = (void *)ps_push(ps, (void **)r->request_headers_to_add,
									    &r->n_request_headers_to_add, o);
			else
				r->response_headers_to_add = (void *)ps_push(ps, (void **)r->response_headers_to_add,
									     &r->n_response_headers_to_add, o);
		}
	}
	if (fault.abort || fault.delay) {
		Envoy__Config__Route__V3__Route__TypedPerFilterConfigEntry *e =
			PS_NEW(ps, Envoy__Config__Route__V3__Route__TypedPerFilterConfigEntry,
			       ENVOY__CONFIG__ROUTE__V3__ROUTE__TYPED_PER_FILTER_CONFIG_ENTRY__INIT);

		e->key = ps_str(ps, "envoy.filters.http.fault");
		e->value = ps_any(ps, "type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault", &fault.base);
		r->typed_per_filter_config = (void *)ps_push(ps, NULL, &r->n_typed_per_filter_config, e);
	}
	vh->routes = (void *)ps_push(ps, (void **)vh->routes, &vh->n_routes, r);
	return 0;
}

static Envoy__Config__Endpoint__V3__ClusterLoadAssignment *ps_cla(struct pxspec *ps, const char *name, char **eps,
								   size_t n)
{
	Envoy__Config__Endpoint__V3__ClusterLoadAssignment *cla = PS_NEW(
		ps, Envoy__Config__Endpoint__V3__ClusterLoadAssignment, ENVOY__CONFIG__ENDPOINT__V3__CLUSTER_LOAD_ASSIGNMENT__INIT);
	Envoy__Config__Endpoint__V3__LocalityLbEndpoints *le = PS_NEW(
		ps, Envoy__Config__Endpoint__V3__LocalityLbEndpoints, ENVOY__CONFIG__ENDPOINT__V3__LOCALITY_LB_ENDPOINTS__INIT);
	size_t i;

	cla->cluster_name = ps_str(ps, name);
	for (i = 0; i < n; i++) {
		Envoy__Config__Endpoint__V3__LbEndpoint *lb =
			PS_NEW(ps, Envoy__Config__Endpoint__V3__LbEndpoint, ENVOY__CONFIG__ENDPOINT__V3__LB_ENDPOINT__INIT);
		char *ip = ps_str(ps, eps[i]), *c = strrchr(ip, ':');

		if (!c)
			continue;
		*c = 0;
		lb->host_identifier_case = ENVOY__CONFIG__ENDPOINT__V3__LB_ENDPOINT__HOST_IDENTIFIER_ENDPOINT;
		lb->endpoint = PS_NEW(ps, Envoy__Config__Endpoint__V3__Endpoint, ENVOY__CONFIG__ENDPOINT__V3__ENDPOINT__INIT);
		lb->endpoint->address = ps_addr(ps, ip, (uint32_t)atoi(c + 1));
		lb->health_status = ENVOY__CONFIG__CORE__V3__HEALTH_STATUS__HEALTHY;
		le->lb_endpoints = (void *)ps_push(ps, (void **)le->lb_endpoints, &le->n_lb_endpoints, lb);
	}
	cla->endpoints = (void *)ps_push(ps, NULL, &cla->n_endpoints, le);
	return cla;
}

static void ps_cluster(struct pxspec *ps, const char *name, const char *type, char *rest)
{
	Envoy__Config__Cluster__V3__Cluster *c =
		PS_NEW(ps, Envoy__Config__Cluster__V3__Cluster, ENVOY__CONFIG__CLUSTER__V3__CLUSTER__INIT);
	Envoy__Config__Cluster__V3__CircuitBreakers__Thresholds *t = NULL;
	char *eps[64], *save = NULL, *tok;
	size_t n = 0;

	c->name = ps_str(ps, name);
	c->connect_timeout = ps_ms(ps, 1000);
	c->cluster_discovery_type_case = ENVOY__CONFIG__CLUSTER__V3__CLUSTER__CLUSTER_DISCOVERY_TYPE_TYPE;
	for (tok = strtok_r(rest, " \t\n", &save); tok; tok = strtok_r(NULL, " \t\n", &save)) {
		char *v = strchr(tok, '=');

		if (!v) {
			if (n < 64)
				eps[n++] = tok;
			continue;
		}
		*v++ = 0;
		if (!strcmp(tok, "lb")) {
			static const char *const names[] = { "round_robin", "least_request", "ring_hash", "random", "", "maglev" };
			size_t k;

			for (k = 0; k < sizeof(names) / sizeof(names[0]); k++)
				if (!strcmp(v, names[k]))
					c->lb_policy = (Envoy__Config__Cluster__V3__Cluster__LbPolicy)k;
			continue;
		}
		if (!strcmp(tok, "dns_refresh")) {
			c->dns_refresh_rate = ps_ms(ps, atol(v));
			continue;
		}
		if (!strcmp(tok, "family")) {
			static const char *const fams[] = { "auto", "v4", "v6", "v4_preferred", "all" };
			size_t k;

			for (k = 0; k < sizeof(fams) / sizeof(fams[0]); k++)
				if (!strcmp(v, fams[k]))
					c->dns_lookup_family = (Envoy__Config__Cluster__V3__Cluster__DnsLookupFamily)k;
			continue;
		}
		if (!strcmp(tok, "outlier")) {
			c->outlier_detection = PS_NEW(ps, Envoy__Config__Cluster__V3__OutlierDetection,
						      ENVOY__CONFIG__CLUSTER__V3__OUTLIER_DETECTION__INIT);
			c->outlier_detection->consecutive_5xx = ps_u32(ps, (uint32_t)atoi(v));
			c->outlier_detection->interval = ps_ms(ps, 100);
			c->outlier_detection->base_ejection_time = ps_ms(ps, strchr(v, ':') ? atol(strchr(v, ':') + 1) : 30000);
			c->outlier_detection->max_ejection_percent = ps_u32(ps, 100);
			c->outlier_detection->enforcing_success_rate = ps_u32(ps, 0); /* as Istio sends it */
			continue;
		}
		if (!t && strcmp(tok, "max_requests_per_connection")) {
			c->circuit_breakers = PS_NEW(ps, Envoy__Config__Cluster__V3__CircuitBreakers,
						     ENVOY__CONFIG__CLUSTER__V3__CIRCUIT_BREAKERS__INIT);
			t = PS_NEW(ps, Envoy__Config__Cluster__V3__CircuitBreakers__Thresholds,
				   ENVOY__CONFIG__CLUSTER__V3__CIRCUIT_BREAKERS__THRESHOLDS__INIT);
			c->circuit_breakers->thresholds = (void *)ps_push(ps, NULL, &c->circuit_breakers->n_thresholds, t);
		}
		if (!strcmp(tok, "max_connections"))
			t->max_connections = ps_u32(ps, (uint32_t)atoi(v));
		else if (!strcmp(tok, "max_pending"))
			t->max_pending_requests = ps_u32(ps, (uint32_t)atoi(v));
		else if (!strcmp(tok, "max_requests"))
			t->max_requests = ps_u32(ps, (uint32_t)atoi(v));
		else if (!strcmp(tok, "max_requests_per_connection"))
			c->max_requests_per_connection = ps_u32(ps, (uint32_t)atoi(v));
	}
	if (!strcmp(type, "eds")) {
		c->type = ENVOY__CONFIG__CLUSTER__V3__CLUSTER__DISCOVERY_TYPE__EDS;
		c->eds_cluster_config = PS_NEW(ps, Envoy__Config__Cluster__V3__Cluster__EdsClusterConfig,
					       ENVOY__CONFIG__CLUSTER__V3__CLUSTER__EDS_CLUSTER_CONFIG__INIT);
		c->eds_cluster_config->service_name = c->name;
		ps->clas[ps->n_clas++] = ps_cla(ps, name, eps, n);
	} else if (!strcmp(type, "original_dst")) {
		c->type = ENVOY__CONFIG__CLUSTER__V3__CLUSTER__DISCOVERY_TYPE__ORIGINAL_DST;
		c->lb_policy = ENVOY__CONFIG__CLUSTER__V3__CLUSTER__LB_POLICY__CLUSTER_PROVIDED;
	} else {
		c->type = !strcmp(type, "strict_dns")	 ? ENVOY__CONFIG__CLUSTER__V3__CLUSTER__DISCOVERY_TYPE__STRICT_DNS
			  : !strcmp(type, "logical_dns") ? ENVOY__CONFIG__CLUSTER__V3__CLUSTER__DISCOVERY_TYPE__LOGICAL_DNS
							 : ENVOY__CONFIG__CLUSTER__V3__CLUSTER__DISCOVERY_TYPE__STATIC;
		c->load_assignment = ps_cla(ps, name, eps, n);
	}
	ps->cls[ps->n_cls++] = c;
}

/* Parses spec text into ps (which the caller zeroes first). */
static int pxspec_parse(struct pxspec *ps, const char *text, char *err, size_t cap)
{
	char *copy = ps_str(ps, text), *save = NULL, *line;
	int lineno = 0;

	for (line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char w[5][256];
		int n, off = 0;

		lineno++;
		while (*line == ' ' || *line == '\t')
			line++;
		if (!*line || *line == '#')
			continue;
		memset(w, 0, sizeof(w));
		n = sscanf(line, "%255s %255s %255s %255s %255s%n", w[0], w[1], w[2], w[3], w[4], &off);
		if (!strcmp(w[0], "outbound")) {
			ps_listener_virtual(ps, "virtualOutbound", 15001,
					    !strcmp(w[1], "registry_only") ? "BlackHoleCluster" : "PassthroughCluster");
		} else if (!strcmp(w[0], "inbound")) {
			ps_listener_virtual(ps, "virtualInbound", 15006, "InboundPassthroughCluster");
		} else if (!strcmp(w[0], "listener") && n >= 2) {
			char *p = strstr(line, w[1]) + strlen(w[1]);
			int vip = n >= 3 && !strchr(w[2], '=');

			if (vip)
				p = strstr(p, w[2]) + strlen(w[2]);
			ps_listener_port(ps, (uint32_t)atoi(w[1]), vip ? ps_str(ps, w[2]) : NULL, ps_str(ps, p));
		} else if (!strcmp(w[0], "bind") && n >= 5 && (!strcmp(w[1], "in") || !strcmp(w[1], "out"))) {
			ps_listener_bound(ps, !strcmp(w[1], "in"), ps_str(ps, w[2]), w[3], ps_str(ps, w[4]));
		} else if (!strcmp(w[0], "gw") && n >= 5) {
			const char *p = line + off; /* after the fifth word */
			char a2[256] = "";
			int k = 0;

			/* the chain's second argument (RC, CLUSTER), then options */
			if (sscanf(p, "%255s%n", a2, &k) != 1 || strchr(a2, '='))
				a2[0] = 0, k = 0;
			if (ps_gateway(ps, w[1], w[2], w[3], w[4], a2, ps_str(ps, p + k)) < 0) {
				snprintf(err, cap, "line %d: cannot parse: %s", lineno, line);
				return -EINVAL;
			}
		} else if (!strcmp(w[0], "vhost") && n >= 4) {
			ps_vhost(ps, w[1], w[2], w[3], n >= 5 ? w[4] : NULL);
		} else if (!strcmp(w[0], "route") && n >= 4) {
			char *p = strstr(line, w[3]);
			char *opts = ps_str(ps, p ? p + strlen(w[3]) : "");

			if (ps_route(ps, w[1], w[2], w[3], opts) < 0) {
				snprintf(err, cap, "line %d: no virtual host %.64s in %.64s", lineno, w[2], w[1]);
				return -EINVAL;
			}
		} else if (!strcmp(w[0], "cluster") && n >= 3) {
			char *p = strstr(line, w[2]);

			ps_cluster(ps, w[1], w[2], ps_str(ps, p ? p + strlen(w[2]) : ""));
		} else {
			snprintf(err, cap, "line %d: cannot parse: %s", lineno, line);
			return -EINVAL;
		}
	}
	return 0;
}

static int ps_cmp_res(const void *a, const void *b)
{
	return strcmp((*(struct px_resource *const *)a)->name, (*(struct px_resource *const *)b)->name);
}

static int ps_set(struct px_snapshot **snap, enum xds_type t, ProtobufCMessage **msgs, size_t n, const char *(*name)(ProtobufCMessage *))
{
	struct px_resource **rs = calloc(n + 1, sizeof(*rs));
	struct px_snapshot *next = NULL;
	size_t i;
	int rc = 0;

	for (i = 0; i < n; i++) {
		size_t len = protobuf_c_message_get_packed_size(msgs[i]);
		uint8_t *buf = malloc(len + 1);

		protobuf_c_message_pack(msgs[i], buf);
		rc = px_resource_decode(t, name(msgs[i]), buf, len, &rs[i]);
		free(buf);
		if (rc < 0) {
			n = i;
			goto out;
		}
	}
	qsort(rs, n, sizeof(rs[0]), ps_cmp_res);
	rc = px_snapshot_replace(*snap, t, (const struct px_resource *const *)rs, n, &next);
	if (rc == 0) {
		px_snapshot_unref(*snap);
		*snap = next;
	}
out:
	for (i = 0; i < n; i++)
		px_resource_unref(rs[i]);
	free(rs);
	return rc;
}

static const char *ps_name_l(ProtobufCMessage *m) { return ((Envoy__Config__Listener__V3__Listener *)m)->name; }
static const char *ps_name_r(ProtobufCMessage *m) { return ((Envoy__Config__Route__V3__RouteConfiguration *)m)->name; }
static const char *ps_name_c(ProtobufCMessage *m) { return ((Envoy__Config__Cluster__V3__Cluster *)m)->name; }
static const char *ps_name_e(ProtobufCMessage *m) { return ((Envoy__Config__Endpoint__V3__ClusterLoadAssignment *)m)->cluster_name; }

/* A snapshot (one reference) holding everything ps describes. */
static int pxspec_snapshot(struct pxspec *ps, struct px_snapshot **out)
{
	struct px_snapshot *s = NULL;
	int rc = px_snapshot_new(&s);

	if (!rc)
		rc = ps_set(&s, XDS_LISTENER, (ProtobufCMessage **)ps->ls, ps->n_ls, ps_name_l);
	if (!rc)
		rc = ps_set(&s, XDS_ROUTE, (ProtobufCMessage **)ps->rcs, ps->n_rcs, ps_name_r);
	if (!rc)
		rc = ps_set(&s, XDS_CLUSTER, (ProtobufCMessage **)ps->cls, ps->n_cls, ps_name_c);
	if (!rc)
		rc = ps_set(&s, XDS_ENDPOINT, (ProtobufCMessage **)ps->clas, ps->n_clas, ps_name_e);
	if (rc < 0) {
		px_snapshot_unref(s);
		s = NULL;
	}
	*out = s;
	return rc;
}

static void pxspec_cleanup(struct pxspec *ps)
{
	size_t i;

	for (i = 0; i < ps->n_allocs; i++)
		free(ps->allocs[i]);
	free(ps->allocs);
	ps->allocs = NULL;
	ps->n_allocs = ps->cap_allocs = 0;
}

/* One call: text -> snapshot. */
static int pxspec_build(const char *text, struct px_snapshot **out, char *err, size_t cap)
{
	struct pxspec *ps = calloc(1, sizeof(*ps));
	int rc;

	if (!ps)
		return -ENOMEM;
	rc = pxspec_parse(ps, text, err, cap);
	if (!rc)
		rc = pxspec_snapshot(ps, out);
	pxspec_cleanup(ps);
	free(ps);
	return rc;
}

#endif
