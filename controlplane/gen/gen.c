/*
 * gen.c - the generators' entry points and the message helpers of
 * gen_int.h.
 *
 * gen_snapshot() walks the model's services (sorted by hostname) and,
 * for each, runs the LDS, RDS, CDS and EDS builders in an arena scoped to
 * that service; every resource is serialised into the snapshot before the
 * arena is dropped, so memory stays bounded by the largest service rather
 * than by the mesh.  Output depends on the model and the profile alone:
 * no clocks, no pointers, everything in a sorted order, so versions are
 * content hashes.  Nothing here logs: notes go to the caller's gen_notes.
 */
#include "controlplane/gen/gen.h"
#include "controlplane/gen/gen_int.h"

#include "common/err.h"


#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

Envoy__Config__Core__V3__Address *gen__addr(struct arena *a, const char *ip, uint32_t port)
{
	Envoy__Config__Core__V3__Address *ad = gen__msg(a, &envoy__config__core__v3__address__descriptor);
	Envoy__Config__Core__V3__SocketAddress *sa = gen__msg(a, &envoy__config__core__v3__socket_address__descriptor);

	if (!ad || !sa || !(sa->address = arena_strdup(a, ip)))
		return NULL;
	sa->port_specifier_case = ENVOY__CONFIG__CORE__V3__SOCKET_ADDRESS__PORT_SPECIFIER_PORT_VALUE;
	sa->port_value = port;
	ad->address_case = ENVOY__CONFIG__CORE__V3__ADDRESS__ADDRESS_SOCKET_ADDRESS;
	ad->socket_address = sa;
	return ad;
}

Envoy__Config__Listener__V3__Filter *gen__net_filter(struct arena *a, const char *name, Google__Protobuf__Any *cfg)
{
	Envoy__Config__Listener__V3__Filter *f = gen__msg(a, &envoy__config__listener__v3__filter__descriptor);

	if (!f || !cfg)
		return NULL;
	f->name = (char *)name;
	f->config_type_case = ENVOY__CONFIG__LISTENER__V3__FILTER__CONFIG_TYPE_TYPED_CONFIG;
	f->typed_config = cfg;
	return f;
}

Envoy__Config__Listener__V3__ListenerFilter *gen__listener_filter(struct arena *a, const char *name,
								  const ProtobufCMessage *cfg)
{
	Envoy__Config__Listener__V3__ListenerFilter *lf =
		gen__msg(a, &envoy__config__listener__v3__listener_filter__descriptor);

	if (!lf || !(lf->typed_config = gen__any(a, cfg)))
		return NULL;
	lf->name = (char *)name;
	lf->config_type_case = ENVOY__CONFIG__LISTENER__V3__LISTENER_FILTER__CONFIG_TYPE_TYPED_CONFIG;
	return lf;
}

Envoy__Extensions__Filters__Network__HttpConnectionManager__V3__HttpFilter *gen__http_filter(struct arena *a,
											      const char *name,
											      const ProtobufCMessage *cfg)
{
	Envoy__Extensions__Filters__Network__HttpConnectionManager__V3__HttpFilter *f =
		gen__msg(a, &envoy__extensions__filters__network__http_connection_manager__v3__http_filter__descriptor);

	if (!f || !(f->typed_config = gen__any(a, cfg)))
		return NULL;
	f->name = (char *)name;
	f->config_type_case = ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_FILTER__CONFIG_TYPE_TYPED_CONFIG;
	return f;
}

char *gen__cluster_name(struct arena *a, uint32_t port, const char *subset, const char *host)
{
	return arena_printf(a, "outbound|%u|%s|%s", port, subset ? subset : "", host);
}

int gen__emit(const struct gen_ctx *g, struct xds_snapshot *s, enum xds_type t, const char *name,
	      const ProtobufCMessage *msg)
{
	size_t len = protobuf_c_message_get_packed_size(msg);
	uint8_t *data;
	int rc;

	if (len > GEN_RESOURCE_MAX) {
		gen__note(g, GEN_NOTE_WARN, "xds", "%s resource %s is %zu bytes, over the %u limit; not served",
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

void gen__note(const struct gen_ctx *g, enum gen_note_level level, const char *scope, const char *fmt, ...)
{
	char msg[GEN_NOTE_MAX];
	va_list ap;

	if (!g || !g->notes || !g->notes->fn)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	g->notes->fn(g->notes->ctx, level, scope, msg);
}

void gen__conflict(const struct gen_ctx *g, enum gen_conflict kind, const char *key)
{
	if (g && g->notes && g->notes->conflict)
		g->notes->conflict(g->notes->ctx, kind, key);
}

Envoy__Config__Core__V3__ConfigSource *gen__ads_source(struct arena *a)
{
	Envoy__Config__Core__V3__ConfigSource *cs = gen__msg(a, &envoy__config__core__v3__config_source__descriptor);
	Envoy__Config__Core__V3__AggregatedConfigSource *ads =
		gen__msg(a, &envoy__config__core__v3__aggregated_config_source__descriptor);

	if (!cs || !ads)
		return NULL;
	cs->config_source_specifier_case = ENVOY__CONFIG__CORE__V3__CONFIG_SOURCE__CONFIG_SOURCE_SPECIFIER_ADS;
	cs->ads = ads;
	cs->resource_api_version = ENVOY__CONFIG__CORE__V3__API_VERSION__V3;
	return cs;
}

/* ---------------------------------------------------------------- entry */

const gen_builder gen__builders[GEN_BUILDERS] = {
	[XDS_LISTENER] = gen__listeners,
	[XDS_ROUTE] = gen__routes,
	[XDS_CLUSTER] = gen__clusters,
	[XDS_ENDPOINT] = gen__endpoints,
};

int gen_snapshot(const struct model *m, const struct gen_profile *p, const struct gen_notes *notes,
		 struct xds_snapshot **out)
{
	struct gen_ctx g = { .m = m, .p = p, .notes = notes };
	struct xds_snapshot *snap = xds_snapshot_new();
	struct arena *a = NULL;
	int rc = 0, k;
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
		for (k = 0; k < GEN_BUILDERS && rc == 0; k++)
			rc = gen__builders[k](&g, svc, a, snap);
		arena_free(a);
		a = NULL;
		if (rc < 0) {
			gen__note(&g, GEN_NOTE_ERROR, "xds", "%s config for %s: %s", p->name, svc->hostname,
				  mesh_strerror(rc));
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

int gen_grpc_snapshot(const struct model *m, struct xds_snapshot **out)
{
	return gen_snapshot(m, &gen_profile_proxyless, NULL, out);
}
