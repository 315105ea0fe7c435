/*
 * test_gen_sidecar.c - gen_sidecar_snapshot(), judged on decoded
 * resources: the listeners, route configs and clusters a sidecar gets,
 * what the Sidecar scope (egress hosts, outbound policy, capture mode)
 * changes, per-caller matches, and that the proxyless snapshot of the same
 * model is untouched by the sidecar profile.
 */
#include <check.h>

#include "controlplane/config/config.h"
#include "controlplane/model/model.h"
#include "controlplane/gen/gen.h"

#include "common/err.h"

#include "envoy/config/cluster/v3/cluster.pb-c.h"
#include "envoy/config/listener/v3/listener.pb-c.h"
#include "envoy/config/route/v3/route.pb-c.h"
#include "envoy/extensions/filters/network/tcp_proxy/v3/tcp_proxy.pb-c.h"

#include <stdlib.h>
#include <string.h>

#include "testutil.h"

static const char *const mesh_yaml =
	"apiVersion: networking.istio.io/v1\n"
	"kind: ServiceEntry\n"
	"metadata: {name: reviews, namespace: shop}\n"
	"spec:\n"
	"  hosts: [reviews.shop.svc.cluster.local]\n"
	"  location: MESH_INTERNAL\n"
	"  resolution: STATIC\n"
	"  ports: [{number: 9080, name: http, protocol: HTTP}]\n"
	"  endpoints:\n"
	"  - {address: 10.0.0.1, labels: {app: reviews, version: v1}, serviceAccount: reviews}\n"
	"  - {address: 10.0.0.2, labels: {app: reviews, version: v2}, serviceAccount: reviews}\n"
	"---\n"
	"apiVersion: networking.istio.io/v1\n"
	"kind: ServiceEntry\n"
	"metadata: {name: db, namespace: data}\n"
	"spec:\n"
	"  hosts: [db.data.svc.cluster.local]\n"
	"  location: MESH_INTERNAL\n"
	"  resolution: STATIC\n"
	"  ports: [{number: 5432, name: tcp, protocol: TCP}]\n"
	"  endpoints: [{address: 10.0.1.1}]\n"
	"---\n"
	"apiVersion: networking.istio.io/v1\n"
	"kind: DestinationRule\n"
	"metadata: {name: reviews, namespace: shop}\n"
	"spec:\n"
	"  host: reviews\n"
	"  subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]\n"
	"---\n"
	"apiVersion: networking.istio.io/v1\n"
	"kind: VirtualService\n"
	"metadata: {name: reviews, namespace: shop}\n"
	"spec:\n"
	"  hosts: [reviews]\n"
	"  http:\n"
	"  - name: canary\n"
	"    match: [{sourceLabels: {track: canary}}]\n"
	"    route: [{destination: {host: reviews, subset: v2}}]\n"
	"  - name: rest\n"
	"    route: [{destination: {host: reviews, subset: v1}}]\n";

static struct model *m;

static void setup(void)
{
	m = testutil_model("test.yaml", mesh_yaml);
	ck_assert_ptr_nonnull(m);
	m->trust_domain = "cluster.local";
}

static void teardown(void)
{
	model_unref(m);
	m = NULL;
}

static struct xds_snapshot *build(const struct cfg_labels *labels, const char *ip, const struct gen_sidecar_scope *scope)
{
	struct gen_workload w = { .ns = "shop", .labels = labels };
	struct gen_node node = { .ip = ip, .service_account = "client", .scope = scope };
	struct xds_snapshot *s = NULL;

	ck_assert_int_eq(gen_sidecar_snapshot(m, &gen_profile_sidecar, &w, &node, NULL, &s), 0);
	ck_assert_ptr_nonnull(s);
	return s;
}

static void *decode(const struct xds_snapshot *s, enum xds_type t, const char *name, const ProtobufCMessageDescriptor *d)
{
	const struct xds_resource *r = xds_snapshot_find(s, t, name);

	ck_assert_msg(r != NULL, "%s %s missing", xds_type_short(t), name);
	return protobuf_c_message_unpack(d, NULL, r->len, r->data);
}

static const char *catchall_cluster(const struct xds_snapshot *s)
{
	Envoy__Config__Listener__V3__Listener *l =
		decode(s, XDS_LISTENER, GEN_VIRTUAL_OUTBOUND, &envoy__config__listener__v3__listener__descriptor);
	Envoy__Extensions__Filters__Network__TcpProxy__V3__TcpProxy *tp;
	const Envoy__Config__Listener__V3__Filter *f;
	static char out[64];

	ck_assert_ptr_nonnull(l);
	ck_assert_uint_eq(l->n_filter_chains, 2);
	ck_assert_str_eq(l->filter_chains[1]->name, "virtualOutbound-catchall-tcp");
	/* the TCP proxy is last (issue 14: istio.stats before it) */
	f = l->filter_chains[1]->filters[l->filter_chains[1]->n_filters - 1];
	ck_assert_str_eq(f->name, "envoy.filters.network.tcp_proxy");
	tp = (void *)protobuf_c_message_unpack(&envoy__extensions__filters__network__tcp_proxy__v3__tcp_proxy__descriptor,
					       NULL, f->typed_config->value.len, f->typed_config->value.data);
	ck_assert_ptr_nonnull(tp);
	snprintf(out, sizeof(out), "%s", tp->cluster);
	protobuf_c_message_free_unpacked(&tp->base, NULL);
	protobuf_c_message_free_unpacked(&l->base, NULL);
	return out;
}

START_TEST(shapes_and_names)
{
	struct xds_snapshot *s = build(NULL, "10.9.9.9", NULL);
	Envoy__Config__Listener__V3__Listener *l;
	Envoy__Config__Route__V3__RouteConfiguration *rc;
	Envoy__Config__Cluster__V3__Cluster *c;

	l = decode(s, XDS_LISTENER, "0.0.0.0_9080", &envoy__config__listener__v3__listener__descriptor);
	ck_assert_ptr_nonnull(l->bind_to_port);
	ck_assert(!l->bind_to_port->value);
	ck_assert_int_eq(l->traffic_direction, ENVOY__CONFIG__CORE__V3__TRAFFIC_DIRECTION__OUTBOUND);
	protobuf_c_message_free_unpacked(&l->base, NULL);
	/* the lone TCP service: its own wildcard listener */
	l = decode(s, XDS_LISTENER, "0.0.0.0_5432", &envoy__config__listener__v3__listener__descriptor);
	protobuf_c_message_free_unpacked(&l->base, NULL);
	l = decode(s, XDS_LISTENER, GEN_VIRTUAL_INBOUND, &envoy__config__listener__v3__listener__descriptor);
	ck_assert_uint_eq(l->address->socket_address->port_value, GEN_INBOUND_PORT);
	ck_assert_uint_eq(l->n_listener_filters, 3);
	protobuf_c_message_free_unpacked(&l->base, NULL);

	rc = decode(s, XDS_ROUTE, "9080", &envoy__config__route__v3__route_configuration__descriptor);
	ck_assert_uint_eq(rc->n_virtual_hosts, 2);
	ck_assert_str_eq(rc->virtual_hosts[0]->name, "reviews.shop.svc.cluster.local:9080");
	ck_assert_str_eq(rc->virtual_hosts[1]->name, "allow_any");
	ck_assert(rc->virtual_hosts[0]->include_request_attempt_count);
	/* no track=canary label: the sourceLabels route is left out */
	ck_assert_uint_eq(rc->virtual_hosts[0]->n_routes, 1);
	ck_assert_str_eq(rc->virtual_hosts[0]->routes[0]->name, "rest");
	ck_assert_uint_eq(rc->virtual_hosts[0]->routes[0]->route->retry_policy->host_selection_retry_max_attempts, 5);
	protobuf_c_message_free_unpacked(&rc->base, NULL);

	c = decode(s, XDS_CLUSTER, "outbound|9080|v1|reviews.shop.svc.cluster.local",
		   &envoy__config__cluster__v3__cluster__descriptor);
	ck_assert_int_eq(c->lb_policy, ENVOY__CONFIG__CLUSTER__V3__CLUSTER__LB_POLICY__LEAST_REQUEST);
	ck_assert_uint_eq(c->n_transport_socket_matches, 2);
	protobuf_c_message_free_unpacked(&c->base, NULL);
	ck_assert_ptr_nonnull(xds_snapshot_find(s, XDS_CLUSTER, GEN_BLACKHOLE_CLUSTER));
	ck_assert_ptr_nonnull(xds_snapshot_find(s, XDS_CLUSTER, GEN_PASSTHROUGH_CLUSTER));
	ck_assert_ptr_nonnull(xds_snapshot_find(s, XDS_ENDPOINT, "outbound|9080|v2|reviews.shop.svc.cluster.local"));
	/* not a service instance: no inbound cluster */
	ck_assert_ptr_null(xds_snapshot_find(s, XDS_CLUSTER, "inbound|9080||"));
	ck_assert_str_eq(catchall_cluster(s), GEN_PASSTHROUGH_CLUSTER);
	xds_snapshot_unref(s);
}
END_TEST

START_TEST(instance_by_labels_then_ip)
{
	struct cfg_kv kv[] = { { "app", "reviews" }, { "version", "v2" } };
	struct cfg_labels labels = { kv, 2 };
	struct xds_snapshot *s = build(&labels, NULL, NULL);

	ck_assert_ptr_nonnull(xds_snapshot_find(s, XDS_CLUSTER, "inbound|9080||"));
	xds_snapshot_unref(s);
	/* no labels, known IP */
	s = build(NULL, "10.0.1.1", NULL);
	ck_assert_ptr_nonnull(xds_snapshot_find(s, XDS_CLUSTER, "inbound|5432||"));
	ck_assert_ptr_null(xds_snapshot_find(s, XDS_CLUSTER, "inbound|9080||"));
	xds_snapshot_unref(s);
}
END_TEST

/* Labels that match no workload do not fall back to the IP: replicas with
 * the same labels share one build, keyed without their IPs, so the output
 * must not depend on the IP (and on a shared loopback the IP names other
 * workloads) */
START_TEST(labels_matching_nothing_ignore_ip)
{
	struct cfg_kv kv[] = { { "app", "client" } };
	struct cfg_labels labels = { kv, 1 };
	struct xds_snapshot *s = build(&labels, "10.0.1.1", NULL);

	ck_assert_ptr_null(xds_snapshot_find(s, XDS_CLUSTER, "inbound|5432||"));
	ck_assert_ptr_null(xds_snapshot_find(s, XDS_CLUSTER, "inbound|9080||"));
	ck_assert_ptr_nonnull(xds_snapshot_find(s, XDS_LISTENER, "virtualOutbound"));
	xds_snapshot_unref(s);
}
END_TEST

START_TEST(per_caller_match)
{
	struct cfg_kv kv[] = { { "track", "canary" } };
	struct cfg_labels labels = { kv, 1 };
	struct xds_snapshot *s = build(&labels, NULL, NULL);
	Envoy__Config__Route__V3__RouteConfiguration *rc =
		decode(s, XDS_ROUTE, "9080", &envoy__config__route__v3__route_configuration__descriptor);

	ck_assert_uint_eq(rc->virtual_hosts[0]->n_routes, 1);
	ck_assert_str_eq(rc->virtual_hosts[0]->routes[0]->name, "canary");
	ck_assert_str_eq(rc->virtual_hosts[0]->routes[0]->route->cluster, "outbound|9080|v2|reviews.shop.svc.cluster.local");
	protobuf_c_message_free_unpacked(&rc->base, NULL);
	xds_snapshot_unref(s);
}
END_TEST

START_TEST(scope_registry_only_and_egress)
{
	char *hosts[] = { "./*" };
	struct cfg_strs eh = { hosts, 1 };
	struct gen_sidecar_scope scope = { .egress_hosts = &eh, .outbound = GEN_OUTBOUND_REGISTRY_ONLY };
	struct xds_snapshot *s = build(NULL, NULL, &scope);
	Envoy__Config__Route__V3__RouteConfiguration *rc =
		decode(s, XDS_ROUTE, "9080", &envoy__config__route__v3__route_configuration__descriptor);

	ck_assert_str_eq(rc->virtual_hosts[rc->n_virtual_hosts - 1]->name, "block_all");
	ck_assert_uint_eq(rc->virtual_hosts[rc->n_virtual_hosts - 1]->routes[0]->direct_response->status, 502);
	protobuf_c_message_free_unpacked(&rc->base, NULL);
	ck_assert_str_eq(catchall_cluster(s), GEN_BLACKHOLE_CLUSTER);
	/* db lives in namespace data: out of scope */
	ck_assert_ptr_null(xds_snapshot_find(s, XDS_LISTENER, "0.0.0.0_5432"));
	ck_assert_ptr_null(xds_snapshot_find(s, XDS_CLUSTER, "outbound|5432||db.data.svc.cluster.local"));
	xds_snapshot_unref(s);
}
END_TEST

START_TEST(capture_none)
{
	struct gen_sidecar_ingress in = { .port = 9080, .protocol = "HTTP", .default_endpoint = "127.0.0.1:8080" };
	struct gen_sidecar_scope scope = { .ingress = &in, .n_ingress = 1, .capture_none = true };
	struct xds_snapshot *s = build(NULL, NULL, &scope);
	Envoy__Config__Cluster__V3__Cluster *c;

	ck_assert_ptr_null(xds_snapshot_find(s, XDS_LISTENER, GEN_VIRTUAL_OUTBOUND));
	ck_assert_ptr_null(xds_snapshot_find(s, XDS_LISTENER, GEN_VIRTUAL_INBOUND));
	ck_assert_ptr_nonnull(xds_snapshot_find(s, XDS_LISTENER, "0.0.0.0_9080"));
	ck_assert_ptr_nonnull(xds_snapshot_find(s, XDS_LISTENER, "127.0.0.1_9080"));
	c = decode(s, XDS_CLUSTER, "inbound|9080||", &envoy__config__cluster__v3__cluster__descriptor);
	ck_assert_int_eq(c->type, ENVOY__CONFIG__CLUSTER__V3__CLUSTER__DISCOVERY_TYPE__STATIC);
	ck_assert_uint_eq(c->load_assignment->endpoints[0]->lb_endpoints[0]->endpoint->address->socket_address->port_value,
			  8080);
	protobuf_c_message_free_unpacked(&c->base, NULL);
	xds_snapshot_unref(s);
}
END_TEST

/* captureMode per listener (Istio's getBindToPort()): an ingress listener
 * saying NONE binds its port while the catch-all egress listener (DEFAULT)
 * stays captured, so virtualOutbound and virtualInbound stay, the
 * outbound listeners do not bind and the NONE port has no chain in
 * virtualInbound. */
START_TEST(capture_none_ingress_only)
{
	struct gen_sidecar_ingress in = { .port = 8000, .protocol = "HTTP", .default_endpoint = "127.0.0.1:8080",
					  .capture_none = true };
	struct gen_sidecar_scope scope = { .ingress = &in, .n_ingress = 1 };
	struct xds_snapshot *s = build(NULL, NULL, &scope);
	Envoy__Config__Listener__V3__Listener *l;
	size_t i;

	ck_assert_ptr_nonnull(xds_snapshot_find(s, XDS_LISTENER, GEN_VIRTUAL_OUTBOUND));
	l = decode(s, XDS_LISTENER, "0.0.0.0_8000", &envoy__config__listener__v3__listener__descriptor);
	ck_assert_int_eq(l->traffic_direction, ENVOY__CONFIG__CORE__V3__TRAFFIC_DIRECTION__INBOUND);
	ck_assert_ptr_null(l->bind_to_port); /* unset: Envoy binds it */
	ck_assert_uint_eq(l->address->socket_address->port_value, 8000);
	protobuf_c_message_free_unpacked(&l->base, NULL);
	l = decode(s, XDS_LISTENER, "0.0.0.0_9080", &envoy__config__listener__v3__listener__descriptor);
	ck_assert_int_eq(l->traffic_direction, ENVOY__CONFIG__CORE__V3__TRAFFIC_DIRECTION__OUTBOUND);
	ck_assert_ptr_nonnull(l->bind_to_port);
	ck_assert(!l->bind_to_port->value);
	protobuf_c_message_free_unpacked(&l->base, NULL);
	ck_assert_ptr_null(xds_snapshot_find(s, XDS_LISTENER, "127.0.0.1_9080"));
	l = decode(s, XDS_LISTENER, GEN_VIRTUAL_INBOUND, &envoy__config__listener__v3__listener__descriptor);
	for (i = 0; i < l->n_filter_chains; i++) {
		const Envoy__Config__Listener__V3__FilterChainMatch *fcm = l->filter_chains[i]->filter_chain_match;

		ck_assert(!fcm || !fcm->destination_port || fcm->destination_port->value != 8000);
	}
	protobuf_c_message_free_unpacked(&l->base, NULL);
	ck_assert_ptr_nonnull(xds_snapshot_find(s, XDS_CLUSTER, "inbound|8000||"));
	xds_snapshot_unref(s);
}
END_TEST

/* The other way round: an egress listener with a port saying NONE binds
 * 127.0.0.1:PORT, the ingress listener (DEFAULT) is a chain of
 * virtualInbound, not a listener of its own. */
START_TEST(capture_none_egress_port_only)
{
	struct gen_sidecar_ingress in = { .port = 8000, .protocol = "HTTP", .default_endpoint = "127.0.0.1:8080" };
	struct gen_sidecar_egress_bind eb = { .port = 9080, .capture_none = true };
	struct gen_sidecar_scope scope = { .ingress = &in, .n_ingress = 1, .egress_binds = &eb, .n_egress_binds = 1 };
	struct xds_snapshot *s = build(NULL, NULL, &scope);
	Envoy__Config__Listener__V3__Listener *l;
	size_t i;
	bool found = false;

	ck_assert_ptr_nonnull(xds_snapshot_find(s, XDS_LISTENER, GEN_VIRTUAL_OUTBOUND));
	ck_assert_ptr_null(xds_snapshot_find(s, XDS_LISTENER, "0.0.0.0_9080"));
	ck_assert_ptr_null(xds_snapshot_find(s, XDS_LISTENER, "0.0.0.0_8000"));
	l = decode(s, XDS_LISTENER, "127.0.0.1_9080", &envoy__config__listener__v3__listener__descriptor);
	ck_assert_ptr_null(l->bind_to_port);
	ck_assert_str_eq(l->address->socket_address->address, "127.0.0.1");
	protobuf_c_message_free_unpacked(&l->base, NULL);
	l = decode(s, XDS_LISTENER, GEN_VIRTUAL_INBOUND, &envoy__config__listener__v3__listener__descriptor);
	for (i = 0; i < l->n_filter_chains; i++) {
		const Envoy__Config__Listener__V3__FilterChainMatch *fcm = l->filter_chains[i]->filter_chain_match;

		found |= fcm && fcm->destination_port && fcm->destination_port->value == 8000;
	}
	ck_assert(found);
	protobuf_c_message_free_unpacked(&l->base, NULL);
	xds_snapshot_unref(s);
}
END_TEST

/* gen notes into a buffer, to see the conflict warning */
static char note_buf[1024];
static int note_warns;

static void note_fn(void *ctx, enum gen_note_level level, const char *scope, const char *msg)
{
	(void)ctx;
	(void)scope;
	if (level == GEN_NOTE_WARN) {
		note_warns++;
		snprintf(note_buf, sizeof(note_buf), "%s", msg);
	}
}

/* A Telemetry naming a tracing provider meshConfig does not define: no
 * tracing, and the note says which workload and which Telemetry objects
 * (it once named only the provider, leaving the user to search). */
START_TEST(tracing_unknown_provider_named)
{
	static const char *const yaml =
		"apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: reviews, namespace: shop}\n"
		"spec:\n  hosts: [reviews.shop.svc.cluster.local]\n  location: MESH_INTERNAL\n  resolution: STATIC\n"
		"  ports: [{number: 9080, name: http, protocol: HTTP}]\n  endpoints: [{address: 10.0.0.1}]\n---\n"
		"apiVersion: telemetry.istio.io/v1\nkind: Telemetry\nmetadata: {name: shop-tracing, namespace: shop}\n"
		"spec:\n  tracing: [{providers: [{name: jaeger}]}]\n";
	static const struct gen_notes notes = { note_fn, NULL, NULL };
	struct model *tm = testutil_model("t.yaml", yaml);
	struct gen_workload w = { .ns = "shop" };
	struct gen_node node = { .service_account = "client" };
	struct xds_snapshot *s = NULL;

	ck_assert_ptr_nonnull(tm);
	note_warns = 0;
	note_buf[0] = 0;
	ck_assert_int_eq(gen_sidecar_snapshot(tm, &gen_profile_sidecar, &w, &node, &notes, &s), 0);
	ck_assert_int_gt(note_warns, 0);
	ck_assert_msg(strstr(note_buf, "\"jaeger\"") && strstr(note_buf, "namespace shop") &&
			      strstr(note_buf, "Telemetry: shop/shop-tracing"),
		      "note: %s", note_buf);
	xds_snapshot_unref(s);
	model_unref(tm);
}
END_TEST

/* captureMode NONE: the catch-all egress bind is where every outbound
 * listener binds; an ingress listener on the address of an outbound one
 * is not served (the outbound one is, as Envoy under istiod keeps it) and
 * a warning note names the conflict. */
START_TEST(capture_none_binds_and_conflict)
{
	static const struct gen_notes notes = { note_fn, NULL, NULL };
	struct gen_sidecar_ingress in = { .port = 9080, .protocol = "HTTP", .bind = "127.0.0.8",
					  .default_endpoint = "127.0.0.1:8080" };
	struct gen_sidecar_scope scope = { .ingress = &in, .n_ingress = 1, .capture_none = true,
					   .catchall_bind = "127.0.0.8" };
	struct gen_workload w = { .ns = "shop" };
	struct gen_node node = { .service_account = "client", .scope = &scope };
	struct xds_snapshot *s = NULL;
	Envoy__Config__Listener__V3__Listener *l;

	note_warns = 0;
	note_buf[0] = 0;
	ck_assert_int_eq(gen_sidecar_snapshot(m, &gen_profile_sidecar, &w, &node, &notes, &s), 0);
	ck_assert_ptr_null(xds_snapshot_find(s, XDS_LISTENER, "127.0.0.1_9080"));
	l = decode(s, XDS_LISTENER, "127.0.0.8_9080", &envoy__config__listener__v3__listener__descriptor);
	/* the outbound listener, not the inbound one */
	ck_assert_int_eq(l->traffic_direction, ENVOY__CONFIG__CORE__V3__TRAFFIC_DIRECTION__OUTBOUND);
	ck_assert_str_eq(l->address->socket_address->address, "127.0.0.8");
	protobuf_c_message_free_unpacked(&l->base, NULL);
	ck_assert_int_eq(note_warns, 1);
	ck_assert_msg(strstr(note_buf, "conflicting listener 127.0.0.8_9080") != NULL, "note: %s", note_buf);
	/* the application still has its inbound cluster */
	ck_assert_ptr_nonnull(xds_snapshot_find(s, XDS_CLUSTER, "inbound|9080||"));
	xds_snapshot_unref(s);

	/* the ingress on 0.0.0.0: both listeners, no note */
	in.bind = NULL;
	note_warns = 0;
	ck_assert_int_eq(gen_sidecar_snapshot(m, &gen_profile_sidecar, &w, &node, &notes, &s), 0);
	ck_assert_ptr_nonnull(xds_snapshot_find(s, XDS_LISTENER, "127.0.0.8_9080"));
	ck_assert_ptr_nonnull(xds_snapshot_find(s, XDS_LISTENER, "0.0.0.0_9080"));
	ck_assert_int_eq(note_warns, 0);
	xds_snapshot_unref(s);
}
END_TEST

START_TEST(deterministic_and_proxyless_untouched)
{
	struct xds_snapshot *a = build(NULL, "10.9.9.9", NULL), *b = build(NULL, "10.9.9.9", NULL), *p = NULL;
	int t;
	size_t i;

	for (t = 0; t < XDS_TYPE_COUNT; t++) {
		ck_assert_uint_eq(a->sets[t].n, b->sets[t].n);
		for (i = 0; i < a->sets[t].n; i++) {
			ck_assert_uint_eq(a->sets[t].v[i]->len, b->sets[t].v[i]->len);
			ck_assert(memcmp(a->sets[t].v[i]->data, b->sets[t].v[i]->data, a->sets[t].v[i]->len) == 0);
		}
	}
	/* proxyless: HOST:PORT listeners only, none of the sidecar's */
	ck_assert_int_eq(gen_snapshot(m, &gen_profile_proxyless, NULL, &p), 0);
	ck_assert_ptr_nonnull(xds_snapshot_find(p, XDS_LISTENER, "reviews.shop.svc.cluster.local:9080"));
	ck_assert_ptr_null(xds_snapshot_find(p, XDS_LISTENER, GEN_VIRTUAL_OUTBOUND));
	ck_assert_ptr_null(xds_snapshot_find(p, XDS_CLUSTER, GEN_PASSTHROUGH_CLUSTER));
	xds_snapshot_unref(a);
	xds_snapshot_unref(b);
	xds_snapshot_unref(p);
}
END_TEST

static void assert_same_bytes(const struct xds_snapshot *a, const struct xds_snapshot *b)
{
	size_t i;
	int t;

	for (t = 0; t < XDS_TYPE_COUNT; t++) {
		ck_assert_uint_eq(a->sets[t].n, b->sets[t].n);
		for (i = 0; i < a->sets[t].n; i++) {
			ck_assert_str_eq(a->sets[t].v[i]->name, b->sets[t].v[i]->name);
			ck_assert_uint_eq(a->sets[t].v[i]->len, b->sets[t].v[i]->len);
			ck_assert(memcmp(a->sets[t].v[i]->data, b->sets[t].v[i]->data, a->sets[t].v[i]->len) == 0);
		}
	}
}

/* The shared-groups cache: byte-identical output per workload, one build
 * (the same resource objects) per namespace; a new model with the same
 * content keeps them (nothing to rebuild), one with other config does not. */
START_TEST(cache_shares_per_namespace_byte_identical)
{
	struct cfg_kv kv = { .key = "track", .value = "canary" };
	struct cfg_labels canary = { .v = &kv, .n = 1 };
	struct gen_workload ws[] = { { "shop", &canary }, { "shop", NULL }, { "data", NULL }, { "shop", &canary } };
	struct xds_snapshot *cached[4], *plain[4];
	struct gen_sidecar_cache *c = gen_sidecar_cache_new();
	struct gen_node node = { .ip = "10.9.9.9", .service_account = "client" };
	const char *cl = "outbound|9080|v1|reviews.shop.svc.cluster.local";
	struct model *m2;
	struct xds_snapshot *again = NULL;
	size_t i;

	ck_assert_ptr_nonnull(c);
	for (i = 0; i < 4; i++) {
		ck_assert_int_eq(gen_sidecar_snapshot_cached(c, m, &gen_profile_sidecar, &ws[i], &node, NULL, &cached[i]), 0);
		ck_assert_int_eq(gen_sidecar_snapshot(m, &gen_profile_sidecar, &ws[i], &node, NULL, &plain[i]), 0);
		assert_same_bytes(cached[i], plain[i]);
	}
	/* the per-caller route differs, the clusters are one object per namespace */
	ck_assert_ptr_eq(xds_snapshot_find(cached[0], XDS_CLUSTER, cl), xds_snapshot_find(cached[1], XDS_CLUSTER, cl));
	ck_assert_ptr_eq(xds_snapshot_find(cached[0], XDS_ENDPOINT, cl), xds_snapshot_find(cached[1], XDS_ENDPOINT, cl));
	ck_assert_ptr_ne(xds_snapshot_find(cached[0], XDS_CLUSTER, cl), xds_snapshot_find(cached[2], XDS_CLUSTER, cl));
	ck_assert_ptr_ne(xds_snapshot_find(plain[0], XDS_CLUSTER, cl), xds_snapshot_find(plain[1], XDS_CLUSTER, cl));
	/* another model of the same config: nothing changed, all reused */
	m2 = testutil_model("test.yaml", mesh_yaml);
	ck_assert_ptr_nonnull(m2);
	m2->trust_domain = "cluster.local";
	ck_assert_int_eq(gen_sidecar_snapshot_cached(c, m2, &gen_profile_sidecar, &ws[1], &node, NULL, &again), 0);
	assert_same_bytes(again, plain[1]);
	ck_assert_ptr_eq(xds_snapshot_find(again, XDS_CLUSTER, cl), xds_snapshot_find(cached[1], XDS_CLUSTER, cl));
	xds_snapshot_unref(again);
	model_unref(m2);
	/* another trust domain (not an endpoint change): rebuilt, not reused */
	m2 = testutil_model("test.yaml", mesh_yaml);
	ck_assert_ptr_nonnull(m2);
	m2->trust_domain = "example.org";
	ck_assert_int_eq(gen_sidecar_snapshot_cached(c, m2, &gen_profile_sidecar, &ws[1], &node, NULL, &again), 0);
	ck_assert_ptr_ne(xds_snapshot_find(again, XDS_CLUSTER, cl), xds_snapshot_find(cached[1], XDS_CLUSTER, cl));
	xds_snapshot_unref(again);
	model_unref(m2);
	for (i = 0; i < 4; i++) {
		xds_snapshot_unref(cached[i]);
		xds_snapshot_unref(plain[i]);
	}
	gen_sidecar_cache_free(c);
}
END_TEST

/* Build ws[0..n) of model yaml cached (one cache) and uncached: the bytes
 * must be the same.  The snapshots go to cached[] (the caller unrefs). */
static struct model *build_both(const char *yaml, const struct gen_workload *ws, size_t n, struct xds_snapshot **cached,
				struct gen_sidecar_cache *c)
{
	struct gen_node node = { .ip = "10.9.9.9", .service_account = "client" };
	struct model *mm = testutil_model("test.yaml", yaml);
	size_t i;

	ck_assert_ptr_nonnull(mm);
	mm->trust_domain = "cluster.local";
	for (i = 0; i < n; i++) {
		struct xds_snapshot *plain = NULL;

		ck_assert_int_eq(gen_sidecar_snapshot_cached(c, mm, &gen_profile_sidecar, &ws[i], &node, NULL, &cached[i]), 0);
		ck_assert_int_eq(gen_sidecar_snapshot(mm, &gen_profile_sidecar, &ws[i], &node, NULL, &plain), 0);
		assert_same_bytes(cached[i], plain);
		xds_snapshot_unref(plain);
	}
	return mm;
}

/* The mesh of mesh_yaml with the canary route matching a header, not the
 * caller's labels: its route configs do not depend on the labels. */
static char *yaml_without_source_labels(void)
{
	const char *at = strstr(mesh_yaml, "{sourceLabels: {track: canary}}");
	const char *repl = "{headers: {track: {exact: canary}}}";
	size_t pre, len;
	char *y;

	ck_assert_ptr_nonnull(at);
	pre = (size_t)(at - mesh_yaml);
	len = strlen(mesh_yaml) - strlen("{sourceLabels: {track: canary}}") + strlen(repl);
	y = malloc(len + 1);
	ck_assert_ptr_nonnull(y);
	memcpy(y, mesh_yaml, pre);
	memcpy(y + pre, repl, strlen(repl));
	memcpy(y + pre + strlen(repl), at + strlen("{sourceLabels: {track: canary}}"),
	       len - pre - strlen(repl) + 1); /* with the NUL */
	return y;
}

/* Route configs: one build per namespace (and scope) when no input reads
 * the caller's labels, one per workload when a sourceLabels match does;
 * byte-identical to the uncached build either way. */
START_TEST(cache_shares_routes_unless_labels_read)
{
	struct cfg_kv kv = { .key = "track", .value = "canary" };
	struct cfg_labels canary = { .v = &kv, .n = 1 };
	struct gen_workload ws[] = { { "shop", &canary }, { "shop", NULL }, { "data", NULL } };
	struct xds_snapshot *s[3];
	struct gen_sidecar_cache *c = gen_sidecar_cache_new();
	char *y = yaml_without_source_labels();
	struct model *mm, *first;
	size_t i;

	ck_assert_ptr_nonnull(c);
	mm = build_both(y, ws, 3, s, c);
	ck_assert_ptr_nonnull(xds_snapshot_find(s[0], XDS_ROUTE, "9080"));
	ck_assert_ptr_eq(xds_snapshot_find(s[0], XDS_ROUTE, "9080"), xds_snapshot_find(s[1], XDS_ROUTE, "9080"));
	/* another namespace: other short-name domains, its own build */
	ck_assert_ptr_ne(xds_snapshot_find(s[0], XDS_ROUTE, "9080"), xds_snapshot_find(s[2], XDS_ROUTE, "9080"));
	for (i = 0; i < 3; i++)
		xds_snapshot_unref(s[i]);
	/* sourceLabels: the canary workload's route differs, nothing shared.
	 * The first model stays alive meanwhile, as meshd's push stage keeps
	 * the last model while it builds the next: the cache tells models
	 * apart by address and generation, and both test models have
	 * generation 1, so a freed one's address reused would look the same */
	first = mm;
	mm = build_both(mesh_yaml, ws, 2, s, c);
	model_unref(first);
	ck_assert_ptr_ne(xds_snapshot_find(s[0], XDS_ROUTE, "9080"), xds_snapshot_find(s[1], XDS_ROUTE, "9080"));
	for (i = 0; i < 2; i++)
		xds_snapshot_unref(s[i]);
	model_unref(mm);
	gen_sidecar_cache_free(c);
	free(y);
}
END_TEST

/* A DestinationRule with a workloadSelector gives the workloads it
 * selects other clusters: a cache keyed by namespace alone would serve
 * the first workload's clusters to the next. */
START_TEST(cache_workload_selector_dr_not_shared)
{
	static const char *const dr_yaml =
		"---\n"
		"apiVersion: networking.istio.io/v1\n"
		"kind: DestinationRule\n"
		"metadata: {name: reviews-canary, namespace: shop}\n"
		"spec:\n"
		"  host: reviews\n"
		"  workloadSelector: {matchLabels: {track: canary}}\n"
		"  trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}\n"
		"  subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]\n";
	struct cfg_kv kv = { .key = "track", .value = "canary" };
	struct cfg_labels canary = { .v = &kv, .n = 1 };
	struct gen_workload ws[] = { { "shop", &canary }, { "shop", NULL } };
	struct xds_snapshot *s[2];
	struct gen_sidecar_cache *c = gen_sidecar_cache_new();
	const char *cl = "outbound|9080|v1|reviews.shop.svc.cluster.local";
	size_t n = strlen(mesh_yaml) + strlen(dr_yaml) + 1;
	char *y = malloc(n);
	struct model *mm;
	const struct xds_resource *a, *b;

	ck_assert_ptr_nonnull(c);
	ck_assert_ptr_nonnull(y);
	snprintf(y, n, "%s%s", mesh_yaml, dr_yaml);
	mm = build_both(y, ws, 2, s, c);
	a = xds_snapshot_find(s[0], XDS_CLUSTER, cl);
	b = xds_snapshot_find(s[1], XDS_CLUSTER, cl);
	ck_assert_ptr_nonnull(a);
	ck_assert_ptr_nonnull(b);
	ck_assert(a->len != b->len || memcmp(a->data, b->data, a->len) != 0);
	xds_snapshot_unref(s[0]);
	xds_snapshot_unref(s[1]);
	model_unref(mm);
	gen_sidecar_cache_free(c);
	free(y);
}
END_TEST

/* mesh_yaml (headers, not sourceLabels: routes shared) with the string
 * from replaced by to. */
static char *yaml_edit(const char *from, const char *to)
{
	char *base = yaml_without_source_labels();
	const char *at = strstr(base, from);
	size_t pre, len;
	char *y;

	ck_assert_ptr_nonnull(at);
	pre = (size_t)(at - base);
	len = strlen(base) - strlen(from) + strlen(to);
	y = malloc(len + 1);
	ck_assert_ptr_nonnull(y);
	memcpy(y, base, pre);
	memcpy(y + pre, to, strlen(to));
	memcpy(y + pre + strlen(to), at + strlen(from), len - pre - strlen(to) + 1);
	free(base);
	return y;
}

/* Build ws[0..n) (scopes[i] NULL: none) of mm through c, comparing each
 * with the uncached build; snapshots into out[]. */
static void build_scoped(struct gen_sidecar_cache *c, struct model *mm, const struct gen_workload *ws,
			 const struct gen_sidecar_scope *const *scopes, size_t n, struct xds_snapshot **out)
{
	size_t i;

	for (i = 0; i < n; i++) {
		struct gen_node node = { .ip = "10.9.9.9", .service_account = "client", .scope = scopes[i] };
		struct xds_snapshot *plain = NULL;

		ck_assert_int_eq(gen_sidecar_snapshot_cached(c, mm, &gen_profile_sidecar, &ws[i], &node, NULL, &out[i]), 0);
		ck_assert_int_eq(gen_sidecar_snapshot(mm, &gen_profile_sidecar, &ws[i], &node, NULL, &plain), 0);
		assert_same_bytes(out[i], plain);
		xds_snapshot_unref(plain);
	}
}

/* An endpoint change (a ServiceEntry's inline endpoint moved) rebuilds
 * the clusters and assignments of that service only, and only for the
 * workloads that see it: every other group and the route configs are
 * the previous model's objects, and the output is still byte for byte
 * the uncached build's.  Any other change starts afresh. */
START_TEST(cache_endpoint_change_rebuilds_only_its_service)
{
	char *hosts[] = { "data/*" };
	struct cfg_strs eh = { hosts, 1 };
	struct gen_sidecar_scope data_only = { .egress_hosts = &eh };
	/* shop sees every service; the second shop workload sees only db */
	struct cfg_kv kv = { .key = "app", .value = "batch" };
	struct cfg_labels batch = { .v = &kv, .n = 1 };
	struct gen_workload ws[] = { { "shop", NULL }, { "shop", &batch } };
	const struct gen_sidecar_scope *scopes[] = { NULL, &data_only };
	const char *rv = "outbound|9080|v1|reviews.shop.svc.cluster.local";
	const char *db = "outbound|5432||db.data.svc.cluster.local";
	char *y1 = yaml_edit("10.0.0.2", "10.0.0.2"), *y2 = yaml_edit("10.0.0.2", "10.0.0.3");
	char *y3 = yaml_edit("subsets: [{name: v1", "trafficPolicy: {loadBalancer: {simple: RANDOM}}\n  subsets: [{name: v1");
	struct gen_sidecar_cache *c = gen_sidecar_cache_new();
	struct gen_sidecar_cache_stats st;
	struct xds_snapshot *a[2], *b[2], *d[2];
	struct model *m1 = testutil_model("test.yaml", y1), *m2 = testutil_model("test.yaml", y2);
	char *y4 = yaml_edit("location: MESH_INTERNAL", "location: MESH_EXTERNAL");
	struct model *m3 = testutil_model("test.yaml", y3), *m4 = testutil_model("test.yaml", y4);
	size_t i;

	ck_assert_ptr_nonnull(c);
	ck_assert_ptr_nonnull(m1);
	ck_assert_ptr_nonnull(m2);
	ck_assert_ptr_nonnull(m3);
	ck_assert_ptr_nonnull(m4);
	m1->trust_domain = m2->trust_domain = m3->trust_domain = m4->trust_domain = "cluster.local";
	build_scoped(c, m1, ws, scopes, 2, a);
	gen_sidecar_cache_get_stats(c, &st);
	ck_assert(!st.carried);
	ck_assert_uint_eq(st.built[XDS_CLUSTER], 2);   /* reviews and db, one namespace row */
	ck_assert_uint_eq(st.built[XDS_ENDPOINT], 2);
	ck_assert_uint_eq(st.built[XDS_ROUTE], 1);     /* "9080" (db is TCP: no route config) */

	/* reviews' endpoint 10.0.0.2 moves to 10.0.0.3 */
	build_scoped(c, m2, ws, scopes, 2, b);
	gen_sidecar_cache_get_stats(c, &st);
	ck_assert(st.carried);
	ck_assert_uint_eq(st.services_changed, 1);
	ck_assert_uint_eq(st.built[XDS_CLUSTER], 1);   /* reviews, for the workload that sees it */
	ck_assert_uint_eq(st.built[XDS_ENDPOINT], 1);
	ck_assert_uint_eq(st.built[XDS_ROUTE], 0);     /* route configs read no endpoint */
	ck_assert_uint_eq(st.reused[XDS_CLUSTER], 2);  /* db, for both workloads */
	ck_assert_ptr_eq(xds_snapshot_find(b[0], XDS_CLUSTER, db), xds_snapshot_find(a[0], XDS_CLUSTER, db));
	ck_assert_ptr_eq(xds_snapshot_find(b[1], XDS_ENDPOINT, db), xds_snapshot_find(a[1], XDS_ENDPOINT, db));
	ck_assert_ptr_eq(xds_snapshot_find(b[0], XDS_ROUTE, "9080"), xds_snapshot_find(a[0], XDS_ROUTE, "9080"));
	ck_assert_ptr_ne(xds_snapshot_find(b[0], XDS_ENDPOINT, rv), xds_snapshot_find(a[0], XDS_ENDPOINT, rv));
	ck_assert_ptr_null(xds_snapshot_find(b[1], XDS_ENDPOINT, rv));

	/* a DestinationRule change is not an endpoint change: all rebuilt */
	build_scoped(c, m3, ws, scopes, 2, d);
	gen_sidecar_cache_get_stats(c, &st);
	ck_assert(!st.carried);
	ck_assert_uint_eq(st.built[XDS_CLUSTER], 2);
	ck_assert_ptr_ne(xds_snapshot_find(d[0], XDS_CLUSTER, db), xds_snapshot_find(b[0], XDS_CLUSTER, db));
	for (i = 0; i < 2; i++)
		xds_snapshot_unref(d[i]);
	/* nor is a change to a ServiceEntry beside its endpoints */
	build_scoped(c, m4, ws, scopes, 2, d);
	gen_sidecar_cache_get_stats(c, &st);
	ck_assert(!st.carried);
	ck_assert_uint_eq(st.built[XDS_CLUSTER], 2);

	for (i = 0; i < 2; i++) {
		xds_snapshot_unref(a[i]);
		xds_snapshot_unref(b[i]);
		xds_snapshot_unref(d[i]);
	}
	model_unref(m1);
	model_unref(m2);
	model_unref(m3);
	model_unref(m4);
	gen_sidecar_cache_free(c);
	free(y1);
	free(y2);
	free(y3);
	free(y4);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("gen_sidecar");
	TCase *tc = tcase_create("sidecar");
	SRunner *sr;
	int failed;

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, shapes_and_names);
	tcase_add_test(tc, instance_by_labels_then_ip);
	tcase_add_test(tc, labels_matching_nothing_ignore_ip);
	tcase_add_test(tc, per_caller_match);
	tcase_add_test(tc, scope_registry_only_and_egress);
	tcase_add_test(tc, capture_none);
	tcase_add_test(tc, capture_none_ingress_only);
	tcase_add_test(tc, capture_none_egress_port_only);
	tcase_add_test(tc, capture_none_binds_and_conflict);
	tcase_add_test(tc, tracing_unknown_provider_named);
	tcase_add_test(tc, deterministic_and_proxyless_untouched);
	tcase_add_test(tc, cache_shares_per_namespace_byte_identical);
	tcase_add_test(tc, cache_shares_routes_unless_labels_read);
	tcase_add_test(tc, cache_workload_selector_dr_not_shared);
	tcase_add_test(tc, cache_endpoint_change_rebuilds_only_its_service);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
