/*
 * gen_grpc.c - xDS for proxyless gRPC clients: the entry point, the shared
 * message helpers of gen_int.h, and LDS.
 *
 * gen_grpc_snapshot() walks the model's services (sorted by hostname) and,
 * for each, runs the LDS, RDS, CDS and EDS generators in an arena scoped to
 * that service; every resource is serialised into the snapshot before the
 * arena is dropped, so memory stays bounded by the largest service rather
 * than by the mesh.  Output depends on the model alone: no clocks, no
 * pointers, everything in a sorted order, so versions are content hashes.
 *
 * LDS follows Istio's grpcgen: one Listener "HOST:PORT" per service port
 * with an ApiListener holding an HttpConnectionManager that takes its
 * routes over ADS (RDS "HOST:PORT") and runs the fault filter, then the
 * router (gRPC 1.51 rejects an HCM whose last filter is not the router).
 */
#include "controlplane/gen/gen.h"
#include "controlplane/gen/gen_int.h"

#include "common/err.h"
#include "common/log.h"

#include "envoy/config/listener/v3/listener.pb-c.h"
#include "envoy/config/listener/v3/api_listener.pb-c.h"
#include "envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.pb-c.h"
#include "envoy/extensions/filters/http/router/v3/router.pb-c.h"
#include "envoy/extensions/filters/http/fault/v3/fault.pb-c.h"

#include <stdlib.h>
#include <string.h>

#define GEN_FAULT_FILTER  "envoy.filters.http.fault"
#define GEN_ROUTER_FILTER "envoy.filters.http.router"

/* ---------------------------------------------------------------- helpers */

void *gen__msg(struct arena *a, const ProtobufCMessageDescriptor *d)
{
	void *msg = arena_alloc(a, d->sizeof_message);

	if (msg)
		protobuf_c_message_init(d, msg);
	return msg;
}

Google__Protobuf__UInt32Value *gen__u32(struct arena *a, uint32_t v)
{
	Google__Protobuf__UInt32Value *w = arena_alloc(a, sizeof(*w));

	if (w) {
		google__protobuf__uint32_value__init(w);
		w->value = v;
	}
	return w;
}

Google__Protobuf__UInt64Value *gen__u64(struct arena *a, uint64_t v)
{
	Google__Protobuf__UInt64Value *w = arena_alloc(a, sizeof(*w));

	if (w) {
		google__protobuf__uint64_value__init(w);
		w->value = v;
	}
	return w;
}

Google__Protobuf__BoolValue *gen__bool(struct arena *a, bool v)
{
	Google__Protobuf__BoolValue *w = arena_alloc(a, sizeof(*w));

	if (w) {
		google__protobuf__bool_value__init(w);
		w->value = v;
	}
	return w;
}

Google__Protobuf__Duration *gen__duration(struct arena *a, int64_t ns)
{
	Google__Protobuf__Duration *d = arena_alloc(a, sizeof(*d));

	if (ns < 0)
		ns = 0;
	if (d) {
		google__protobuf__duration__init(d);
		d->seconds = ns / 1000000000;
		d->nanos = (int32_t)(ns % 1000000000);
	}
	return d;
}

uint32_t gen__clamp_u32(int64_t v)
{
	if (v < 0)
		return 0;
	if (v > (int64_t)UINT32_MAX)
		return UINT32_MAX;
	return (uint32_t)v;
}

Google__Protobuf__Any *gen__any(struct arena *a, const ProtobufCMessage *msg)
{
	Google__Protobuf__Any *any = arena_alloc(a, sizeof(*any));
	size_t len = protobuf_c_message_get_packed_size(msg);
	uint8_t *data;

	if (!any || len > GEN_RESOURCE_MAX)
		return NULL;
	google__protobuf__any__init(any);
	any->type_url = arena_printf(a, "%s%s", XDS_TYPE_URL_PREFIX, msg->descriptor->name);
	data = arena_alloc(a, len ? len : 1);
	if (!any->type_url || !data)
		return NULL;
	protobuf_c_message_pack(msg, data);
	any->value.data = data;
	any->value.len = len;
	return any;
}

char *gen__cluster_name(struct arena *a, uint32_t port, const char *subset, const char *host)
{
	return arena_printf(a, "outbound|%u|%s|%s", port, subset ? subset : "", host);
}

int gen__emit(struct xds_snapshot *s, enum xds_type t, const char *name, const ProtobufCMessage *msg)
{
	size_t len = protobuf_c_message_get_packed_size(msg);
	uint8_t *data;
	int rc;

	if (len > GEN_RESOURCE_MAX) {
		log_warn("xds", "%s resource %s is %zu bytes, over the %u limit; not served",
			 xds_type_short(t), name, len, GEN_RESOURCE_MAX);
		return -MESH_ETOOBIG;
	}
	data = malloc(len ? len : 1);
	if (!data)
		return -ENOMEM;
	protobuf_c_message_pack(msg, data);
	rc = xds_snapshot_add(s, t, name, data, len);
	free(data);
	return rc;
}

/* ---------------------------------------------------------------- LDS */

/* The HCM every proxyless listener carries; its bytes depend only on the
 * route name. */
static Google__Protobuf__Any *gen_hcm(struct arena *a, const char *route_name)
{
	Envoy__Extensions__Filters__Network__HttpConnectionManager__V3__HttpConnectionManager hcm =
		ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_CONNECTION_MANAGER__INIT;
	Envoy__Extensions__Filters__Network__HttpConnectionManager__V3__Rds rds =
		ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__RDS__INIT;
	Envoy__Extensions__Filters__Network__HttpConnectionManager__V3__HttpFilter fault_f =
		ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_FILTER__INIT;
	Envoy__Extensions__Filters__Network__HttpConnectionManager__V3__HttpFilter router_f =
		ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_FILTER__INIT;
	Envoy__Extensions__Filters__Network__HttpConnectionManager__V3__HttpFilter *filters[2];
	Envoy__Config__Core__V3__ConfigSource cs = ENVOY__CONFIG__CORE__V3__CONFIG_SOURCE__INIT;
	Envoy__Config__Core__V3__AggregatedConfigSource ads = ENVOY__CONFIG__CORE__V3__AGGREGATED_CONFIG_SOURCE__INIT;
	Envoy__Extensions__Filters__Http__Fault__V3__HTTPFault fault = ENVOY__EXTENSIONS__FILTERS__HTTP__FAULT__V3__HTTPFAULT__INIT;
	Envoy__Extensions__Filters__Http__Router__V3__Router router = ENVOY__EXTENSIONS__FILTERS__HTTP__ROUTER__V3__ROUTER__INIT;

	cs.config_source_specifier_case = ENVOY__CONFIG__CORE__V3__CONFIG_SOURCE__CONFIG_SOURCE_SPECIFIER_ADS;
	cs.ads = &ads;
	cs.resource_api_version = ENVOY__CONFIG__CORE__V3__API_VERSION__V3;
	rds.config_source = &cs;
	rds.route_config_name = (char *)route_name;

	fault_f.name = GEN_FAULT_FILTER;
	fault_f.config_type_case = ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_FILTER__CONFIG_TYPE_TYPED_CONFIG;
	fault_f.typed_config = gen__any(a, &fault.base);
	router_f.name = GEN_ROUTER_FILTER;
	router_f.config_type_case = ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_FILTER__CONFIG_TYPE_TYPED_CONFIG;
	router_f.typed_config = gen__any(a, &router.base);
	if (!fault_f.typed_config || !router_f.typed_config)
		return NULL;
	filters[0] = &fault_f;
	filters[1] = &router_f;        /* router last: gRPC 1.51 requires it */

	hcm.route_specifier_case =
		ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_CONNECTION_MANAGER__ROUTE_SPECIFIER_RDS;
	hcm.rds = &rds;
	hcm.n_http_filters = 2;
	hcm.http_filters = filters;
	return gen__any(a, &hcm.base);
}

int gen__grpc_listeners(const struct model *m, const struct model_service *svc,
			struct arena *a, struct xds_snapshot *snap)
{
	int rc = 0;
	size_t i;

	(void)m;
	for (i = 0; i < svc->n_ports; i++) {
		Envoy__Config__Listener__V3__Listener l = ENVOY__CONFIG__LISTENER__V3__LISTENER__INIT;
		Envoy__Config__Listener__V3__ApiListener api = ENVOY__CONFIG__LISTENER__V3__API_LISTENER__INIT;
		char *name = arena_printf(a, "%s:%u", svc->hostname, svc->ports[i].number);

		if (!name) {
			rc = -ENOMEM;
			goto out;
		}
		api.api_listener = gen_hcm(a, name);
		if (!api.api_listener) {
			rc = -ENOMEM;
			goto out;
		}
		l.name = name;
		l.api_listener = &api;
		rc = gen__emit(snap, XDS_LISTENER, name, &l.base);
		if (rc < 0)
			goto out;
	}
out:
	return rc;
}

/* ---------------------------------------------------------------- entry */

int gen_grpc_snapshot(const struct model *m, struct xds_snapshot **out)
{
	struct xds_snapshot *snap = xds_snapshot_new();
	struct arena *a = NULL;
	int rc = 0;
	size_t i;

	*out = NULL;
	if (!snap)
		return -ENOMEM;
	for (i = 0; i < m->n_services; i++) {
		const struct model_service *svc = &m->services[i];

		a = arena_new(GEN_ARENA_MAX);
		if (!a) {
			rc = -ENOMEM;
			goto out;
		}
		rc = gen__grpc_listeners(m, svc, a, snap);
		if (rc == 0)
			rc = gen__grpc_routes(m, svc, a, snap);
		if (rc == 0)
			rc = gen__grpc_clusters(m, svc, a, snap);
		if (rc == 0)
			rc = gen__grpc_endpoints(m, svc, a, snap);
		arena_free(a);
		a = NULL;
		if (rc < 0) {
			log_error("xds", "proxyless config for %s: %s", svc->hostname, mesh_strerror(rc));
			goto out;
		}
	}
	snap->model_generation = m->generation;
	xds_snapshot_seal(snap);
	*out = snap;
	snap = NULL;
out:
	arena_free(a);
	xds_snapshot_unref(snap);
	return rc;
}
