/*
 * test_pbjson.c - proto3 JSON of a hand-built Listener whose ApiListener
 * holds an HttpConnectionManager inside an Any, plus the well-known types,
 * maps, enums, 64-bit integers, bytes and the output cap.
 */
#include "common/xds/pbjson.h"

#include "common/err.h"
#include "envoy/config/core/v3/address.pb-c.h"
#include "envoy/config/core/v3/base.pb-c.h"
#include "envoy/config/core/v3/config_source.pb-c.h"
#include "envoy/config/listener/v3/api_listener.pb-c.h"
#include "envoy/config/listener/v3/listener.pb-c.h"
#include "envoy/extensions/filters/http/router/v3/router.pb-c.h"
#include "envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.pb-c.h"
#include "google/protobuf/any.pb-c.h"
#include "google/protobuf/duration.pb-c.h"
#include "google/protobuf/struct.pb-c.h"
#include "google/protobuf/wrappers.pb-c.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

#define HCM_URL "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
#define ROUTER_URL "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"

/* Pack msg into a heap buffer owned by the caller. */
static void pack_any(Google__Protobuf__Any *any, const char *url, const ProtobufCMessage *msg)
{
	size_t n = protobuf_c_message_get_packed_size(msg);
	uint8_t *p = malloc(n ? n : 1);

	ck_assert_ptr_nonnull(p);
	protobuf_c_message_pack(msg, p);
	google__protobuf__any__init(any);
	any->type_url = (char *)url;
	any->value.data = p;
	any->value.len = n;
}

START_TEST(listener_with_hcm_any)
{
	Envoy__Config__Listener__V3__Listener l = ENVOY__CONFIG__LISTENER__V3__LISTENER__INIT;
	Envoy__Config__Core__V3__Address addr = ENVOY__CONFIG__CORE__V3__ADDRESS__INIT;
	Envoy__Config__Core__V3__SocketAddress sa = ENVOY__CONFIG__CORE__V3__SOCKET_ADDRESS__INIT;
	Envoy__Config__Listener__V3__ApiListener al = ENVOY__CONFIG__LISTENER__V3__API_LISTENER__INIT;
	Envoy__Extensions__Filters__Network__HttpConnectionManager__V3__HttpConnectionManager hcm =
		ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_CONNECTION_MANAGER__INIT;
	Envoy__Extensions__Filters__Network__HttpConnectionManager__V3__Rds rds =
		ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__RDS__INIT;
	Envoy__Config__Core__V3__ConfigSource cs = ENVOY__CONFIG__CORE__V3__CONFIG_SOURCE__INIT;
	Envoy__Config__Core__V3__AggregatedConfigSource ads = ENVOY__CONFIG__CORE__V3__AGGREGATED_CONFIG_SOURCE__INIT;
	Envoy__Extensions__Filters__Network__HttpConnectionManager__V3__HttpFilter router_f =
		ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_FILTER__INIT;
	Envoy__Extensions__Filters__Network__HttpConnectionManager__V3__HttpFilter *filters[1] = { &router_f };
	Envoy__Extensions__Filters__Http__Router__V3__Router router = ENVOY__EXTENSIONS__FILTERS__HTTP__ROUTER__V3__ROUTER__INIT;
	Google__Protobuf__Duration idle = GOOGLE__PROTOBUF__DURATION__INIT;
	Google__Protobuf__UInt32Value limit = GOOGLE__PROTOBUF__UINT32_VALUE__INIT;
	Google__Protobuf__BoolValue orig = GOOGLE__PROTOBUF__BOOL_VALUE__INIT;
	Envoy__Config__Core__V3__Metadata md = ENVOY__CONFIG__CORE__V3__METADATA__INIT;
	Envoy__Config__Core__V3__Metadata__FilterMetadataEntry me = ENVOY__CONFIG__CORE__V3__METADATA__FILTER_METADATA_ENTRY__INIT;
	Envoy__Config__Core__V3__Metadata__FilterMetadataEntry *mes[1] = { &me };
	Google__Protobuf__Struct st = GOOGLE__PROTOBUF__STRUCT__INIT;
	Google__Protobuf__Struct__FieldsEntry fe[3] = { GOOGLE__PROTOBUF__STRUCT__FIELDS_ENTRY__INIT,
						       GOOGLE__PROTOBUF__STRUCT__FIELDS_ENTRY__INIT,
						       GOOGLE__PROTOBUF__STRUCT__FIELDS_ENTRY__INIT };
	Google__Protobuf__Struct__FieldsEntry *fes[3] = { &fe[0], &fe[1], &fe[2] };
	Google__Protobuf__Value vs = GOOGLE__PROTOBUF__VALUE__INIT, vn = GOOGLE__PROTOBUF__VALUE__INIT,
				vl = GOOGLE__PROTOBUF__VALUE__INIT, vnull = GOOGLE__PROTOBUF__VALUE__INIT;
	Google__Protobuf__ListValue lv = GOOGLE__PROTOBUF__LIST_VALUE__INIT;
	Google__Protobuf__Value *lvv[1] = { &vnull };
	Google__Protobuf__Any hcm_any, router_any;
	struct mesh_buf b;
	const char *expect;

	sa.address = "10.0.0.1";
	sa.port_specifier_case = ENVOY__CONFIG__CORE__V3__SOCKET_ADDRESS__PORT_SPECIFIER_PORT_VALUE;
	sa.port_value = 8080;
	addr.address_case = ENVOY__CONFIG__CORE__V3__ADDRESS__ADDRESS_SOCKET_ADDRESS;
	addr.socket_address = &sa;

	pack_any(&router_any, ROUTER_URL, &router.base);
	router_f.name = "envoy.filters.http.router";
	router_f.config_type_case = ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_FILTER__CONFIG_TYPE_TYPED_CONFIG;
	router_f.typed_config = &router_any;
	cs.config_source_specifier_case = ENVOY__CONFIG__CORE__V3__CONFIG_SOURCE__CONFIG_SOURCE_SPECIFIER_ADS;
	cs.ads = &ads;
	cs.resource_api_version = ENVOY__CONFIG__CORE__V3__API_VERSION__V3;
	rds.config_source = &cs;
	rds.route_config_name = "svc.ns.svc.cluster.local:8080";
	hcm.route_specifier_case = ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_CONNECTION_MANAGER__ROUTE_SPECIFIER_RDS;
	hcm.rds = &rds;
	hcm.n_http_filters = 1;
	hcm.http_filters = filters;
	idle.seconds = 1;
	idle.nanos = 500000000;
	hcm.stream_idle_timeout = &idle;
	pack_any(&hcm_any, HCM_URL, &hcm.base);
	al.api_listener = &hcm_any;

	vs.kind_case = GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE;
	vs.string_value = "grpc";
	vn.kind_case = GOOGLE__PROTOBUF__VALUE__KIND_NUMBER_VALUE;
	vn.number_value = 1.5;
	vnull.kind_case = GOOGLE__PROTOBUF__VALUE__KIND_NULL_VALUE;
	lv.n_values = 1;
	lv.values = lvv;
	vl.kind_case = GOOGLE__PROTOBUF__VALUE__KIND_LIST_VALUE;
	vl.list_value = &lv;
	fe[0].key = "GENERATOR";
	fe[0].value = &vs;
	fe[1].key = "n";
	fe[1].value = &vn;
	fe[2].key = "l";
	fe[2].value = &vl;
	st.n_fields = 3;
	st.fields = fes;
	me.key = "istio";
	me.value = &st;
	md.n_filter_metadata = 1;
	md.filter_metadata = mes;

	l.name = "svc.ns.svc.cluster.local:8080";
	l.address = &addr;
	l.api_listener = &al;
	limit.value = 32768;
	l.per_connection_buffer_limit_bytes = &limit;
	l.use_original_dst = &orig; /* a wrapper holding false is still present */
	l.metadata = &md;
	l.traffic_direction = ENVOY__CONFIG__CORE__V3__TRAFFIC_DIRECTION__OUTBOUND;

	mesh_buf_init(&b, 1 << 20);
	ck_assert_int_eq(pbjson_render(&l.base, &b), 0);
	expect = "{\"name\":\"svc.ns.svc.cluster.local:8080\","
		 "\"address\":{\"socketAddress\":{\"address\":\"10.0.0.1\",\"portValue\":8080}},"
		 "\"useOriginalDst\":false,"
		 "\"perConnectionBufferLimitBytes\":32768,"
		 "\"metadata\":{\"filterMetadata\":{\"istio\":{\"GENERATOR\":\"grpc\",\"n\":1.5,\"l\":[null]}}},"
		 "\"trafficDirection\":\"OUTBOUND\","
		 "\"apiListener\":{\"apiListener\":{\"@type\":\"" HCM_URL "\","
		 "\"rds\":{\"configSource\":{\"ads\":{},\"resourceApiVersion\":\"V3\"},"
		 "\"routeConfigName\":\"svc.ns.svc.cluster.local:8080\"},"
		 "\"httpFilters\":[{\"name\":\"envoy.filters.http.router\","
		 "\"typedConfig\":{\"@type\":\"" ROUTER_URL "\"}}],"
		 "\"streamIdleTimeout\":\"1.500s\"}}}";
	/* fields in field-number order, as protoc's JSON printer writes them */
	ck_assert_str_eq(b.data, expect);

	/* With the .proto names, as Envoy's /config_dump prints: inside Anys too,
	 * map keys and Struct keys as they are. */
	mesh_buf_reset(&b);
	ck_assert_int_eq(pbjson_render_opts(&l.base, &b, PBJSON_PROTO_NAMES), 0);
	expect = "{\"name\":\"svc.ns.svc.cluster.local:8080\","
		 "\"address\":{\"socket_address\":{\"address\":\"10.0.0.1\",\"port_value\":8080}},"
		 "\"use_original_dst\":false,"
		 "\"per_connection_buffer_limit_bytes\":32768,"
		 "\"metadata\":{\"filter_metadata\":{\"istio\":{\"GENERATOR\":\"grpc\",\"n\":1.5,\"l\":[null]}}},"
		 "\"traffic_direction\":\"OUTBOUND\","
		 "\"api_listener\":{\"api_listener\":{\"@type\":\"" HCM_URL "\","
		 "\"rds\":{\"config_source\":{\"ads\":{},\"resource_api_version\":\"V3\"},"
		 "\"route_config_name\":\"svc.ns.svc.cluster.local:8080\"},"
		 "\"http_filters\":[{\"name\":\"envoy.filters.http.router\","
		 "\"typed_config\":{\"@type\":\"" ROUTER_URL "\"}}],"
		 "\"stream_idle_timeout\":\"1.500s\"}}}";
	ck_assert_str_eq(b.data, expect);

	/* The same Listener through the Any entry point (as config dumps use it). */
	{
		size_t n = envoy__config__listener__v3__listener__get_packed_size(&l);
		uint8_t *wire = malloc(n);
		envoy__config__listener__v3__listener__pack(&l, wire);
		mesh_buf_reset(&b);
		ck_assert_int_eq(pbjson_render_any("type.googleapis.com/envoy.config.listener.v3.Listener", wire, n, &b), 0);
		ck_assert_ptr_nonnull(strstr(b.data, "{\"@type\":\"type.googleapis.com/envoy.config.listener.v3.Listener\","
						     "\"name\":\"svc.ns.svc.cluster.local:8080\""));
		ck_assert_ptr_nonnull(strstr(b.data, "\"streamIdleTimeout\":\"1.500s\""));
		/* garbage bytes and unknown types are errors, not output */
		mesh_buf_reset(&b);
		ck_assert_int_eq(pbjson_render_any("type.googleapis.com/envoy.config.listener.v3.Listener",
						   (const uint8_t *)"\xff\xff\xff", 3, &b), -MESH_EPARSE);
		ck_assert_int_eq(pbjson_render_any("type.googleapis.com/no.such.Type", wire, n, &b), -ENOENT);
		ck_assert_uint_eq(b.len, 0);
		/* the cap holds */
		mesh_buf_cleanup(&b);
		mesh_buf_init(&b, 64);
		ck_assert_int_eq(pbjson_render_any("type.googleapis.com/envoy.config.listener.v3.Listener", wire, n, &b),
				 -MESH_ETOOBIG);
		free(wire);
	}
	mesh_buf_cleanup(&b);
	free(hcm_any.value.data);
	free(router_any.value.data);
}
END_TEST

START_TEST(wkt_int64_bytes_unknown_any)
{
	Google__Protobuf__UInt64Value u = GOOGLE__PROTOBUF__UINT64_VALUE__INIT;
	Google__Protobuf__Int64Value i = GOOGLE__PROTOBUF__INT64_VALUE__INIT;
	Google__Protobuf__BytesValue by = GOOGLE__PROTOBUF__BYTES_VALUE__INIT;
	Google__Protobuf__Duration d = GOOGLE__PROTOBUF__DURATION__INIT;
	Google__Protobuf__Any any = GOOGLE__PROTOBUF__ANY__INIT;
	struct mesh_buf b;

	mesh_buf_init(&b, 4096);
	u.value = 18446744073709551615ULL;
	ck_assert_int_eq(pbjson_render(&u.base, &b), 0);
	ck_assert_str_eq(b.data, "\"18446744073709551615\"");
	mesh_buf_reset(&b);
	i.value = -42;
	ck_assert_int_eq(pbjson_render(&i.base, &b), 0);
	ck_assert_str_eq(b.data, "\"-42\"");
	mesh_buf_reset(&b);
	by.value.data = (uint8_t *)"hello";
	by.value.len = 5;
	ck_assert_int_eq(pbjson_render(&by.base, &b), 0);
	ck_assert_str_eq(b.data, "\"aGVsbG8=\"");
	mesh_buf_reset(&b);
	d.seconds = 10;
	ck_assert_int_eq(pbjson_render(&d.base, &b), 0);
	ck_assert_str_eq(b.data, "\"10s\"");
	mesh_buf_reset(&b);
	d.seconds = 0;
	d.nanos = 250000;
	ck_assert_int_eq(pbjson_render(&d.base, &b), 0);
	ck_assert_str_eq(b.data, "\"0.000250s\"");
	mesh_buf_reset(&b);
	d.seconds = -1;
	d.nanos = -500000000;
	ck_assert_int_eq(pbjson_render(&d.base, &b), 0);
	ck_assert_str_eq(b.data, "\"-1.500s\"");

	/* a WKT inside an Any: {"@type", "value"} */
	mesh_buf_reset(&b);
	pack_any(&any, "type.googleapis.com/google.protobuf.UInt64Value", &u.base);
	ck_assert_int_eq(pbjson_render(&any.base, &b), 0);
	ck_assert_str_eq(b.data, "{\"@type\":\"type.googleapis.com/google.protobuf.UInt64Value\","
				 "\"value\":\"18446744073709551615\"}");
	free(any.value.data);

	/* an unregistered type keeps its bytes */
	mesh_buf_reset(&b);
	google__protobuf__any__init(&any);
	any.type_url = "type.googleapis.com/example.Unknown";
	any.value.data = (uint8_t *)"\x08\x01";
	any.value.len = 2;
	ck_assert_int_eq(pbjson_render(&any.base, &b), 0);
	ck_assert_str_eq(b.data, "{\"@type\":\"type.googleapis.com/example.Unknown\",\"value\":\"CAE=\"}");

	/* registering makes it expand */
	ck_assert_ptr_null(pbjson_lookup("type.googleapis.com/envoy.config.core.v3.Locality"));
	ck_assert_int_eq(pbjson_register(&envoy__config__core__v3__locality__descriptor), 0);
	ck_assert_ptr_eq(pbjson_lookup("type.googleapis.com/envoy.config.core.v3.Locality"),
			 &envoy__config__core__v3__locality__descriptor);
	ck_assert_ptr_nonnull(pbjson_lookup("type.googleapis.com/envoy.config.cluster.v3.Cluster"));
	mesh_buf_cleanup(&b);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("pbjson");
	TCase *tc = tcase_create("core");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, listener_with_hcm_any);
	tcase_add_test(tc, wkt_int64_bytes_unknown_any);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
