/*
 * test_proto.c - the C generated from proto/ packs and unpacks the xDS
 * messages meshd serves, and puts fields at upstream's wire positions.
 *
 * Round trips: a Listener whose ApiListener holds an HttpConnectionManager in
 * an Any (what a proxyless gRPC client receives), and a DiscoveryResponse
 * carrying Clusters. Wire checks: hand-encoded bytes for fields whose numbers
 * a client depends on (ApiListener = 19, HeaderMatcher.exact_match = 4,
 * DiscoveryRequest.error_detail = 6), so a renumbered field fails here even
 * without the upstream comparison in tests/proto/.
 */
#include "envoy/config/cluster/v3/cluster.pb-c.h"
#include "envoy/config/listener/v3/listener.pb-c.h"
#include "envoy/config/route/v3/route_components.pb-c.h"
#include "envoy/extensions/filters/http/router/v3/router.pb-c.h"
#include "envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.pb-c.h"
#include "envoy/service/discovery/v3/discovery.pb-c.h"
#include "security/v1alpha1/ca.pb-c.h"

#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Short names for the generated types used here. */
typedef Envoy__Config__Listener__V3__Listener listener_t;
typedef Envoy__Config__Listener__V3__ApiListener api_listener_t;
typedef Envoy__Extensions__Filters__Network__HttpConnectionManager__V3__HttpConnectionManager hcm_t;
typedef Envoy__Extensions__Filters__Network__HttpConnectionManager__V3__Rds rds_t;
typedef Envoy__Extensions__Filters__Network__HttpConnectionManager__V3__HttpFilter http_filter_t;
typedef Envoy__Extensions__Filters__Http__Router__V3__Router router_t;
typedef Envoy__Service__Discovery__V3__DiscoveryResponse dresp_t;
typedef Envoy__Service__Discovery__V3__DiscoveryRequest dreq_t;
typedef Envoy__Config__Cluster__V3__Cluster cluster_t;

#define TYPE_URL_PREFIX "type.googleapis.com/"
#define HCM_TYPE_URL \
	TYPE_URL_PREFIX "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
#define ROUTER_TYPE_URL TYPE_URL_PREFIX "envoy.extensions.filters.http.router.v3.Router"
#define CLUSTER_TYPE_URL TYPE_URL_PREFIX "envoy.config.cluster.v3.Cluster"
#define LISTENER_TYPE_URL TYPE_URL_PREFIX "envoy.config.listener.v3.Listener"

/* Pack any generated message into a fresh heap buffer (caller frees). */
static uint8_t *pack_msg(const ProtobufCMessage *m, size_t *len)
{
	size_t n = protobuf_c_message_get_packed_size(m);
	uint8_t *buf = malloc(n ? n : 1);

	ck_assert_ptr_nonnull(buf);
	ck_assert_uint_eq(protobuf_c_message_pack(m, buf), n);
	*len = n;
	return buf;
}

/* Fill an Any with the packed message; the Any owns value.data afterwards. */
static void any_set(Google__Protobuf__Any *any, const char *type_url, const ProtobufCMessage *m)
{
	size_t n;

	any->type_url = (char *)type_url;
	any->value.data = pack_msg(m, &n);
	any->value.len = n;
}

START_TEST(listener_api_listener_hcm_round_trip)
{
	router_t router = ENVOY__EXTENSIONS__FILTERS__HTTP__ROUTER__V3__ROUTER__INIT;
	Google__Protobuf__Any router_any = GOOGLE__PROTOBUF__ANY__INIT;
	http_filter_t filter = ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_FILTER__INIT;
	http_filter_t *filters[1] = { &filter };
	Envoy__Config__Core__V3__AggregatedConfigSource ads = ENVOY__CONFIG__CORE__V3__AGGREGATED_CONFIG_SOURCE__INIT;
	Envoy__Config__Core__V3__ConfigSource cs = ENVOY__CONFIG__CORE__V3__CONFIG_SOURCE__INIT;
	rds_t rds = ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__RDS__INIT;
	hcm_t hcm = ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_CONNECTION_MANAGER__INIT;
	Google__Protobuf__Any hcm_any = GOOGLE__PROTOBUF__ANY__INIT;
	api_listener_t api = ENVOY__CONFIG__LISTENER__V3__API_LISTENER__INIT;
	Envoy__Config__Core__V3__SocketAddress sa = ENVOY__CONFIG__CORE__V3__SOCKET_ADDRESS__INIT;
	Envoy__Config__Core__V3__Address addr = ENVOY__CONFIG__CORE__V3__ADDRESS__INIT;
	listener_t l = ENVOY__CONFIG__LISTENER__V3__LISTENER__INIT;
	listener_t *back;
	hcm_t *hback;
	uint8_t *wire;
	size_t len;

	router.suppress_envoy_headers = 1;
	any_set(&router_any, ROUTER_TYPE_URL, &router.base);
	filter.name = "envoy.filters.http.router";
	filter.config_type_case =
		ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_FILTER__CONFIG_TYPE_TYPED_CONFIG;
	filter.typed_config = &router_any;

	cs.config_source_specifier_case = ENVOY__CONFIG__CORE__V3__CONFIG_SOURCE__CONFIG_SOURCE_SPECIFIER_ADS;
	cs.ads = &ads;
	cs.resource_api_version = ENVOY__CONFIG__CORE__V3__API_VERSION__V3;
	rds.config_source = &cs;
	rds.route_config_name = "reviews.default.svc.cluster.local:9080";

	hcm.stat_prefix = "outbound_0.0.0.0_9080";
	hcm.route_specifier_case =
		ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_CONNECTION_MANAGER__ROUTE_SPECIFIER_RDS;
	hcm.rds = &rds;
	hcm.n_http_filters = 1;
	hcm.http_filters = filters;
	any_set(&hcm_any, HCM_TYPE_URL, &hcm.base);
	api.api_listener = &hcm_any;

	sa.address = "10.96.1.7";
	sa.port_specifier_case = ENVOY__CONFIG__CORE__V3__SOCKET_ADDRESS__PORT_SPECIFIER_PORT_VALUE;
	sa.port_value = 9080;
	addr.address_case = ENVOY__CONFIG__CORE__V3__ADDRESS__ADDRESS_SOCKET_ADDRESS;
	addr.socket_address = &sa;

	l.name = "reviews.default.svc.cluster.local:9080";
	l.address = &addr;
	l.api_listener = &api;
	l.traffic_direction = ENVOY__CONFIG__CORE__V3__TRAFFIC_DIRECTION__OUTBOUND;

	wire = pack_msg(&l.base, &len);
	back = envoy__config__listener__v3__listener__unpack(NULL, len, wire);
	ck_assert_ptr_nonnull(back);
	ck_assert_str_eq(back->name, "reviews.default.svc.cluster.local:9080");
	ck_assert_int_eq(back->traffic_direction, ENVOY__CONFIG__CORE__V3__TRAFFIC_DIRECTION__OUTBOUND);
	ck_assert_ptr_nonnull(back->address);
	ck_assert_int_eq(back->address->address_case, ENVOY__CONFIG__CORE__V3__ADDRESS__ADDRESS_SOCKET_ADDRESS);
	ck_assert_str_eq(back->address->socket_address->address, "10.96.1.7");
	ck_assert_int_eq(back->address->socket_address->port_specifier_case,
			 ENVOY__CONFIG__CORE__V3__SOCKET_ADDRESS__PORT_SPECIFIER_PORT_VALUE);
	ck_assert_uint_eq(back->address->socket_address->port_value, 9080);
	ck_assert_uint_eq(back->n_filter_chains, 0);
	ck_assert_ptr_nonnull(back->api_listener);
	ck_assert_ptr_nonnull(back->api_listener->api_listener);
	ck_assert_str_eq(back->api_listener->api_listener->type_url, HCM_TYPE_URL);

	hback = envoy__extensions__filters__network__http_connection_manager__v3__http_connection_manager__unpack(
		NULL, back->api_listener->api_listener->value.len, back->api_listener->api_listener->value.data);
	ck_assert_ptr_nonnull(hback);
	ck_assert_str_eq(hback->stat_prefix, "outbound_0.0.0.0_9080");
	ck_assert_int_eq(hback->route_specifier_case,
			 ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_CONNECTION_MANAGER__ROUTE_SPECIFIER_RDS);
	ck_assert_str_eq(hback->rds->route_config_name, "reviews.default.svc.cluster.local:9080");
	ck_assert_int_eq(hback->rds->config_source->config_source_specifier_case,
			 ENVOY__CONFIG__CORE__V3__CONFIG_SOURCE__CONFIG_SOURCE_SPECIFIER_ADS);
	ck_assert_ptr_nonnull(hback->rds->config_source->ads);
	ck_assert_int_eq(hback->rds->config_source->resource_api_version, ENVOY__CONFIG__CORE__V3__API_VERSION__V3);
	ck_assert_uint_eq(hback->n_http_filters, 1);
	ck_assert_str_eq(hback->http_filters[0]->name, "envoy.filters.http.router");
	ck_assert_str_eq(hback->http_filters[0]->typed_config->type_url, ROUTER_TYPE_URL);
	{
		router_t *rb = envoy__extensions__filters__http__router__v3__router__unpack(
			NULL, hback->http_filters[0]->typed_config->value.len,
			hback->http_filters[0]->typed_config->value.data);

		ck_assert_ptr_nonnull(rb);
		ck_assert(rb->suppress_envoy_headers);
		envoy__extensions__filters__http__router__v3__router__free_unpacked(rb, NULL);
	}

	/* Re-packing what was unpacked gives the same bytes. */
	{
		size_t len2;
		uint8_t *wire2 = pack_msg(&back->base, &len2);

		ck_assert_uint_eq(len2, len);
		ck_assert_int_eq(memcmp(wire, wire2, len), 0);
		free(wire2);
	}

	envoy__extensions__filters__network__http_connection_manager__v3__http_connection_manager__free_unpacked(hback,
														   NULL);
	envoy__config__listener__v3__listener__free_unpacked(back, NULL);
	free(wire);
	free(hcm_any.value.data);
	free(router_any.value.data);
}
END_TEST

START_TEST(discovery_response_round_trip)
{
	cluster_t c[2] = { ENVOY__CONFIG__CLUSTER__V3__CLUSTER__INIT, ENVOY__CONFIG__CLUSTER__V3__CLUSTER__INIT };
	Google__Protobuf__Any any[2] = { GOOGLE__PROTOBUF__ANY__INIT, GOOGLE__PROTOBUF__ANY__INIT };
	Google__Protobuf__Any *anys[2] = { &any[0], &any[1] };
	Envoy__Config__Core__V3__ControlPlane cp = ENVOY__CONFIG__CORE__V3__CONTROL_PLANE__INIT;
	dresp_t r = ENVOY__SERVICE__DISCOVERY__V3__DISCOVERY_RESPONSE__INIT;
	dresp_t *back;
	uint8_t *wire;
	size_t len;
	int i;

	c[0].name = "outbound|9080||reviews.default.svc.cluster.local";
	c[0].cluster_discovery_type_case = ENVOY__CONFIG__CLUSTER__V3__CLUSTER__CLUSTER_DISCOVERY_TYPE_TYPE;
	c[0].type = ENVOY__CONFIG__CLUSTER__V3__CLUSTER__DISCOVERY_TYPE__EDS;
	c[0].lb_policy = ENVOY__CONFIG__CLUSTER__V3__CLUSTER__LB_POLICY__ROUND_ROBIN;
	c[1].name = "BlackHoleCluster";
	c[1].cluster_discovery_type_case = ENVOY__CONFIG__CLUSTER__V3__CLUSTER__CLUSTER_DISCOVERY_TYPE_TYPE;
	c[1].type = ENVOY__CONFIG__CLUSTER__V3__CLUSTER__DISCOVERY_TYPE__STATIC;
	c[1].lb_policy = ENVOY__CONFIG__CLUSTER__V3__CLUSTER__LB_POLICY__MAGLEV;
	for (i = 0; i < 2; i++)
		any_set(&any[i], CLUSTER_TYPE_URL, &c[i].base);

	cp.identifier = "meshd-0";
	r.version_info = "3f2a9c";
	r.type_url = CLUSTER_TYPE_URL;
	r.nonce = "17";
	r.n_resources = 2;
	r.resources = anys;
	r.control_plane = &cp;

	wire = pack_msg(&r.base, &len);
	back = envoy__service__discovery__v3__discovery_response__unpack(NULL, len, wire);
	ck_assert_ptr_nonnull(back);
	ck_assert_str_eq(back->version_info, "3f2a9c");
	ck_assert_str_eq(back->type_url, CLUSTER_TYPE_URL);
	ck_assert_str_eq(back->nonce, "17");
	ck_assert(!back->canary);
	ck_assert_str_eq(back->control_plane->identifier, "meshd-0");
	ck_assert_uint_eq(back->n_resources, 2);
	for (i = 0; i < 2; i++) {
		cluster_t *cb;

		ck_assert_str_eq(back->resources[i]->type_url, CLUSTER_TYPE_URL);
		cb = envoy__config__cluster__v3__cluster__unpack(NULL, back->resources[i]->value.len,
								 back->resources[i]->value.data);
		ck_assert_ptr_nonnull(cb);
		ck_assert_str_eq(cb->name, c[i].name);
		ck_assert_int_eq(cb->cluster_discovery_type_case,
				 ENVOY__CONFIG__CLUSTER__V3__CLUSTER__CLUSTER_DISCOVERY_TYPE_TYPE);
		ck_assert_int_eq(cb->type, c[i].type);
		ck_assert_int_eq(cb->lb_policy, c[i].lb_policy);
		envoy__config__cluster__v3__cluster__free_unpacked(cb, NULL);
		free(any[i].value.data);
	}
	envoy__service__discovery__v3__discovery_response__free_unpacked(back, NULL);
	free(wire);
}
END_TEST

/* Upstream wire positions checked byte by byte. */
START_TEST(wire_positions_match_upstream)
{
	/* Listener.api_listener is field 19: tag (19 << 3) | 2 = 154 = varint 9a 01. */
	static const uint8_t listener_wire[] = { 0x0a, 0x01, 'a', 0x9a, 0x01, 0x00 };
	/* HeaderMatcher{name: "x", exact_match: "y"}: exact_match is field 4 (tag 0x22). */
	static const uint8_t header_wire[] = { 0x0a, 0x01, 'x', 0x22, 0x01, 'y' };
	/* DiscoveryRequest{type_url: "t" (4), response_nonce: "n" (5), error_detail (6) {code 3, message "m"}}. */
	static const uint8_t nack_wire[] = { 0x22, 0x01, 't', 0x2a, 0x01, 'n', 0x32, 0x05, 0x08, 0x03, 0x12, 0x01, 'm' };
	listener_t l = ENVOY__CONFIG__LISTENER__V3__LISTENER__INIT;
	api_listener_t api = ENVOY__CONFIG__LISTENER__V3__API_LISTENER__INIT;
	Envoy__Config__Route__V3__HeaderMatcher *hm;
	dreq_t *req;
	uint8_t buf[32];

	l.name = "a";
	l.api_listener = &api;
	ck_assert_uint_eq(envoy__config__listener__v3__listener__get_packed_size(&l), sizeof(listener_wire));
	ck_assert_uint_eq(envoy__config__listener__v3__listener__pack(&l, buf), sizeof(listener_wire));
	ck_assert_int_eq(memcmp(buf, listener_wire, sizeof(listener_wire)), 0);

	hm = envoy__config__route__v3__header_matcher__unpack(NULL, sizeof(header_wire), header_wire);
	ck_assert_ptr_nonnull(hm);
	ck_assert_str_eq(hm->name, "x");
	ck_assert_int_eq(hm->header_match_specifier_case,
			 ENVOY__CONFIG__ROUTE__V3__HEADER_MATCHER__HEADER_MATCH_SPECIFIER_EXACT_MATCH);
	ck_assert_str_eq(hm->exact_match, "y");
	envoy__config__route__v3__header_matcher__free_unpacked(hm, NULL);

	req = envoy__service__discovery__v3__discovery_request__unpack(NULL, sizeof(nack_wire), nack_wire);
	ck_assert_ptr_nonnull(req);
	ck_assert_str_eq(req->type_url, "t");
	ck_assert_str_eq(req->response_nonce, "n");
	ck_assert_ptr_nonnull(req->error_detail);
	ck_assert_int_eq(req->error_detail->code, 3);
	ck_assert_str_eq(req->error_detail->message, "m");
	ck_assert_ptr_null(req->node);
	envoy__service__discovery__v3__discovery_request__free_unpacked(req, NULL);
}
END_TEST

/* Fields we left out of proto/ are kept as unknown, not fatal; broken input is rejected. */
START_TEST(unknown_fields_kept_and_truncation_rejected)
{
	/* DiscoveryRequest{version_info: "v"} plus field 100 = 1 (tag 800 = varint a0 06). */
	static const uint8_t with_unknown[] = { 0x0a, 0x01, 'v', 0xa0, 0x06, 0x01 };
	/* version_info claims 5 bytes, only 1 follows. */
	static const uint8_t truncated[] = { 0x0a, 0x05, 'v' };
	dreq_t *req;

	req = envoy__service__discovery__v3__discovery_request__unpack(NULL, sizeof(with_unknown), with_unknown);
	ck_assert_ptr_nonnull(req);
	ck_assert_str_eq(req->version_info, "v");
	ck_assert_uint_eq(req->base.n_unknown_fields, 1);
	ck_assert_uint_eq(req->base.unknown_fields[0].tag, 100);
	envoy__service__discovery__v3__discovery_request__free_unpacked(req, NULL);

	req = envoy__service__discovery__v3__discovery_request__unpack(NULL, sizeof(truncated), truncated);
	ck_assert_ptr_null(req);
}
END_TEST

START_TEST(istio_ca_request_round_trip)
{
	Istio__V1__Auth__IstioCertificateRequest rq = ISTIO__V1__AUTH__ISTIO_CERTIFICATE_REQUEST__INIT;
	Istio__V1__Auth__IstioCertificateRequest *back;
	/* csr (1) "c", validity_duration (3) 86400 = varint 80 a3 05. */
	static const uint8_t want[] = { 0x0a, 0x01, 'c', 0x18, 0x80, 0xa3, 0x05 };
	uint8_t buf[16];
	size_t n;

	rq.csr = "c";
	rq.validity_duration = 86400;
	n = istio__v1__auth__istio_certificate_request__pack(&rq, buf);
	ck_assert_uint_eq(n, sizeof(want));
	ck_assert_int_eq(memcmp(buf, want, n), 0);
	back = istio__v1__auth__istio_certificate_request__unpack(NULL, n, buf);
	ck_assert_ptr_nonnull(back);
	ck_assert_str_eq(back->csr, "c");
	ck_assert_int_eq(back->validity_duration, 86400);
	ck_assert_ptr_null(back->metadata);
	istio__v1__auth__istio_certificate_request__free_unpacked(back, NULL);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("proto");
	TCase *tc = tcase_create("wire");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, listener_api_listener_hcm_round_trip);
	tcase_add_test(tc, discovery_response_round_trip);
	tcase_add_test(tc, wire_positions_match_upstream);
	tcase_add_test(tc, unknown_fields_kept_and_truncation_rejected);
	tcase_add_test(tc, istio_ca_request_round_trip);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
