/*
 * pbjson.c - proto3 JSON for protobuf-c messages, for meshd's config dumps.
 *
 * A walk over the message's ProtobufCMessageDescriptor: each present field
 * is written under its lowerCamelCase JSON name; the well-known types get
 * their special JSON forms, and google.protobuf.Any is expanded through a
 * registry of descriptors keyed by full message name.  The registry starts
 * with the xDS resources and the typed configs meshd emits (a table below)
 * and can grow at run time (pbjson_register).  Output is bounded by the
 * mesh_buf's cap; nesting by PBJSON_MAX_DEPTH.  See pbjson.h.
 */
#include "common/xds/pbjson.h"

#include "common/err.h"
#include "common/json.h"

#include "envoy/config/cluster/v3/cluster.pb-c.h"
#include "envoy/extensions/access_loggers/file/v3/file.pb-c.h"
#include "envoy/extensions/access_loggers/filters/cel/v3/cel.pb-c.h"
#include "envoy/config/trace/v3/zipkin.pb-c.h"
#include "envoy/config/trace/v3/opentelemetry.pb-c.h"
#include "envoy/config/core/v3/extension.pb-c.h"
#include "envoy/config/endpoint/v3/endpoint.pb-c.h"
#include "envoy/config/listener/v3/api_listener.pb-c.h"
#include "envoy/config/listener/v3/listener.pb-c.h"
#include "envoy/config/rbac/v3/rbac.pb-c.h"
#include "envoy/config/route/v3/route.pb-c.h"
#include "envoy/extensions/filters/http/cors/v3/cors.pb-c.h"
#include "envoy/extensions/filters/http/fault/v3/fault.pb-c.h"
#include "envoy/extensions/filters/http/jwt_authn/v3/config.pb-c.h"
#include "envoy/extensions/filters/listener/http_inspector/v3/http_inspector.pb-c.h"
#include "envoy/extensions/filters/listener/original_dst/v3/original_dst.pb-c.h"
#include "envoy/extensions/filters/listener/original_src/v3/original_src.pb-c.h"
#include "istio/stats/config.pb-c.h"
#include "envoy/extensions/filters/listener/tls_inspector/v3/tls_inspector.pb-c.h"
#include "envoy/extensions/filters/network/rbac/v3/rbac.pb-c.h"
#include "envoy/extensions/filters/network/tcp_proxy/v3/tcp_proxy.pb-c.h"
#include "envoy/extensions/filters/http/rbac/v3/rbac.pb-c.h"
#include "envoy/extensions/filters/http/router/v3/router.pb-c.h"
#include "envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.pb-c.h"
#include "envoy/extensions/load_balancing_policies/least_request/v3/least_request.pb-c.h"
#include "envoy/extensions/load_balancing_policies/pick_first/v3/pick_first.pb-c.h"
#include "envoy/extensions/load_balancing_policies/random/v3/random.pb-c.h"
#include "envoy/extensions/load_balancing_policies/ring_hash/v3/ring_hash.pb-c.h"
#include "envoy/extensions/load_balancing_policies/round_robin/v3/round_robin.pb-c.h"
#include "envoy/extensions/load_balancing_policies/wrr_locality/v3/wrr_locality.pb-c.h"
#include "envoy/extensions/retry/host/previous_hosts/v3/previous_hosts.pb-c.h"
#include "envoy/extensions/retry/priority/previous_priorities/v3/previous_priorities_config.pb-c.h"
#include "envoy/extensions/transport_sockets/raw_buffer/v3/raw_buffer.pb-c.h"
#include "envoy/extensions/transport_sockets/tls/v3/secret.pb-c.h"
#include "envoy/extensions/transport_sockets/tls/v3/tls.pb-c.h"
#include "envoy/extensions/upstreams/http/v3/http_protocol_options.pb-c.h"
#include "google/protobuf/any.pb-c.h"
#include "google/protobuf/duration.pb-c.h"
#include "google/protobuf/empty.pb-c.h"
#include "google/protobuf/struct.pb-c.h"
#include "google/protobuf/timestamp.pb-c.h"
#include "google/protobuf/wrappers.pb-c.h"
#include "google/rpc/status.pb-c.h"

#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* Longest field name turned into a JSON name; longer ones are cut. */
#define PBJSON_NAME_CAP 128
/* Descriptors the registry can hold (built-in table plus registrations). */
#define PBJSON_REGISTRY_CAP 256

static const ProtobufCMessageDescriptor *const pbjson__builtin[] = {
	/* xDS resources */
	&envoy__config__listener__v3__listener__descriptor,
	&envoy__config__route__v3__route_configuration__descriptor,
	&envoy__config__cluster__v3__cluster__descriptor,
	&envoy__config__endpoint__v3__cluster_load_assignment__descriptor,
	&envoy__extensions__transport_sockets__tls__v3__secret__descriptor,
	/* typed configs */
	&envoy__config__listener__v3__api_listener__descriptor,
	&envoy__config__core__v3__typed_extension_config__descriptor,
	&envoy__config__rbac__v3__rbac__descriptor,
	&envoy__extensions__filters__network__http_connection_manager__v3__http_connection_manager__descriptor,
	&envoy__extensions__filters__http__router__v3__router__descriptor,
	&envoy__extensions__filters__http__fault__v3__httpfault__descriptor,
	&envoy__extensions__filters__http__rbac__v3__rbac__descriptor,
	&envoy__extensions__filters__http__rbac__v3__rbacper_route__descriptor,
	&envoy__extensions__filters__http__jwt_authn__v3__jwt_authentication__descriptor,
	&envoy__extensions__transport_sockets__tls__v3__upstream_tls_context__descriptor,
	&envoy__extensions__transport_sockets__tls__v3__downstream_tls_context__descriptor,
	/* sidecar: listener filters, TCP proxy, CORS, retry predicate, upstream HTTP options */
	&envoy__extensions__filters__listener__original_dst__v3__original_dst__descriptor,
	&envoy__extensions__filters__listener__original_src__v3__original_src__descriptor,
	&envoy__extensions__filters__listener__tls_inspector__v3__tls_inspector__descriptor,
	&envoy__extensions__filters__listener__http_inspector__v3__http_inspector__descriptor,
	&envoy__extensions__filters__network__tcp_proxy__v3__tcp_proxy__descriptor,
	&envoy__extensions__filters__network__rbac__v3__rbac__descriptor,
	&envoy__extensions__filters__http__cors__v3__cors__descriptor,
	&envoy__extensions__filters__http__cors__v3__cors_policy__descriptor,
	&envoy__extensions__retry__host__previous_hosts__v3__previous_hosts_predicate__descriptor,
	&envoy__extensions__retry__priority__previous_priorities__v3__previous_priorities_config__descriptor,
	&envoy__extensions__transport_sockets__raw_buffer__v3__raw_buffer__descriptor,
	&envoy__extensions__upstreams__http__v3__http_protocol_options__descriptor,
	&envoy__extensions__access_loggers__file__v3__file_access_log__descriptor,
	&envoy__extensions__access_loggers__filters__cel__v3__expression_filter__descriptor, /* issue 14: Telemetry filter.expression */
	&envoy__config__trace__v3__zipkin_config__descriptor,
	/* issue 14: Istio's istio.stats filters */
	&stats__plugin_config__descriptor,
	&envoy__config__trace__v3__open_telemetry_config__descriptor, /* issue 14: OTLP tracer */
	&envoy__extensions__load_balancing_policies__round_robin__v3__round_robin__descriptor,
	&envoy__extensions__load_balancing_policies__ring_hash__v3__ring_hash__descriptor,
	&envoy__extensions__load_balancing_policies__least_request__v3__least_request__descriptor,
	&envoy__extensions__load_balancing_policies__wrr_locality__v3__wrr_locality__descriptor,
	&envoy__extensions__load_balancing_policies__pick_first__v3__pick_first__descriptor,
	&envoy__extensions__load_balancing_policies__random__v3__random__descriptor,
	/* well-known types that may sit in an Any */
	&google__protobuf__duration__descriptor,
	&google__protobuf__timestamp__descriptor,
	&google__protobuf__struct__descriptor,
	&google__protobuf__value__descriptor,
	&google__protobuf__list_value__descriptor,
	&google__protobuf__empty__descriptor,
	&google__protobuf__bool_value__descriptor,
	&google__protobuf__string_value__descriptor,
	&google__protobuf__bytes_value__descriptor,
	&google__protobuf__int32_value__descriptor,
	&google__protobuf__uint32_value__descriptor,
	&google__protobuf__int64_value__descriptor,
	&google__protobuf__uint64_value__descriptor,
	&google__protobuf__float_value__descriptor,
	&google__protobuf__double_value__descriptor,
	&google__rpc__status__descriptor,
};

static pthread_mutex_t pbjson__lock = PTHREAD_MUTEX_INITIALIZER;
static const ProtobufCMessageDescriptor *pbjson__extra[PBJSON_REGISTRY_CAP];
static size_t pbjson__nextra;

#define NBUILTIN (sizeof(pbjson__builtin) / sizeof(pbjson__builtin[0]))

const ProtobufCMessageDescriptor *pbjson_lookup(const char *type_url)
{
	const ProtobufCMessageDescriptor *d = NULL;
	const char *name;
	size_t i;

	if (!type_url)
		return NULL;
	name = strrchr(type_url, '/');
	name = name ? name + 1 : type_url;
	for (i = 0; i < NBUILTIN; i++)
		if (strcmp(pbjson__builtin[i]->name, name) == 0)
			return pbjson__builtin[i];
	pthread_mutex_lock(&pbjson__lock);
	for (i = 0; i < pbjson__nextra && !d; i++)
		if (strcmp(pbjson__extra[i]->name, name) == 0)
			d = pbjson__extra[i];
	pthread_mutex_unlock(&pbjson__lock);
	return d;
}

int pbjson_register(const ProtobufCMessageDescriptor *d)
{
	int rc = 0;

	if (!d || d->magic != PROTOBUF_C__MESSAGE_DESCRIPTOR_MAGIC)
		return -EINVAL;
	if (pbjson_lookup(d->name))
		return 0;
	pthread_mutex_lock(&pbjson__lock);
	if (pbjson__nextra == PBJSON_REGISTRY_CAP)
		rc = -MESH_ETOOBIG;
	else
		pbjson__extra[pbjson__nextra++] = d;
	pthread_mutex_unlock(&pbjson__lock);
	return rc;
}

/* ------------------------------------------------------------------ */

struct pbjson_ctx {
	struct mesh_buf *out;
	int depth;
	int err;      /* first error of our own (depth); buffer errors live in out->err */
	unsigned flags; /* PBJSON_* */
};

static int render_message(struct pbjson_ctx *c, const ProtobufCMessage *m);

static int desc_is(const ProtobufCMessageDescriptor *d, const char *name)
{
	return strcmp(d->name, name) == 0;
}

static void put_json_name(struct mesh_buf *b, const char *name, unsigned flags)
{
	char out[PBJSON_NAME_CAP];
	size_t i, k = 0;
	int up = 0;

	if (flags & PBJSON_PROTO_NAMES) {
		json_put_string(b, name);
		return;
	}
	for (i = 0; name[i] && k + 1 < sizeof(out); i++) {
		if (name[i] == '_') {
			up = 1;
			continue;
		}
		out[k++] = (up && name[i] >= 'a' && name[i] <= 'z') ? (char)(name[i] - 'a' + 'A') : name[i];
		up = 0;
	}
	out[k] = '\0';
	json_put_string(b, out);
}

static void put_base64(struct mesh_buf *b, const uint8_t *p, size_t n)
{
	static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	char q[4];
	size_t i;

	mesh_buf_putc(b, '"');
	for (i = 0; i + 2 < n; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
		q[0] = tbl[v >> 18 & 63];
		q[1] = tbl[v >> 12 & 63];
		q[2] = tbl[v >> 6 & 63];
		q[3] = tbl[v & 63];
		mesh_buf_append(b, q, 4);
	}
	if (n - i == 1) {
		uint32_t v = (uint32_t)p[i] << 16;
		q[0] = tbl[v >> 18 & 63];
		q[1] = tbl[v >> 12 & 63];
		q[2] = q[3] = '=';
		mesh_buf_append(b, q, 4);
	} else if (n - i == 2) {
		uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
		q[0] = tbl[v >> 18 & 63];
		q[1] = tbl[v >> 12 & 63];
		q[2] = tbl[v >> 6 & 63];
		q[3] = '=';
		mesh_buf_append(b, q, 4);
	}
	mesh_buf_putc(b, '"');
}

static void put_double(struct mesh_buf *b, double v, int is_float)
{
	if (isnan(v))
		mesh_buf_puts(b, "\"NaN\"");
	else if (isinf(v))
		mesh_buf_puts(b, v > 0 ? "\"Infinity\"" : "\"-Infinity\"");
	else if (v == floor(v) && fabs(v) < 1e15)
		mesh_buf_printf(b, "%.0f", v);
	else
		mesh_buf_printf(b, is_float ? "%.9g" : "%.17g", v);
}

static void put_enum(struct mesh_buf *b, const ProtobufCEnumDescriptor *ed, int v)
{
	const ProtobufCEnumValue *ev = ed ? protobuf_c_enum_descriptor_get_value(ed, v) : NULL;

	if (ev)
		json_put_string(b, ev->name);
	else
		mesh_buf_printf(b, "%d", v);
}

/* One value of a field (an element when the field is repeated). */
static void put_value(struct pbjson_ctx *c, const ProtobufCFieldDescriptor *f, const void *p)
{
	struct mesh_buf *b = c->out;

	switch (f->type) {
	case PROTOBUF_C_TYPE_INT32:
	case PROTOBUF_C_TYPE_SINT32:
	case PROTOBUF_C_TYPE_SFIXED32:
		mesh_buf_printf(b, "%" PRId32, *(const int32_t *)p);
		break;
	case PROTOBUF_C_TYPE_UINT32:
	case PROTOBUF_C_TYPE_FIXED32:
		mesh_buf_printf(b, "%" PRIu32, *(const uint32_t *)p);
		break;
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
		mesh_buf_printf(b, "\"%" PRId64 "\"", *(const int64_t *)p);
		break;
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64:
		mesh_buf_printf(b, "\"%" PRIu64 "\"", *(const uint64_t *)p);
		break;
	case PROTOBUF_C_TYPE_FLOAT:
		put_double(b, *(const float *)p, 1);
		break;
	case PROTOBUF_C_TYPE_DOUBLE:
		put_double(b, *(const double *)p, 0);
		break;
	case PROTOBUF_C_TYPE_BOOL:
		mesh_buf_puts(b, *(const protobuf_c_boolean *)p ? "true" : "false");
		break;
	case PROTOBUF_C_TYPE_ENUM:
		if (f->descriptor && strcmp(((const ProtobufCEnumDescriptor *)f->descriptor)->name,
					    "google.protobuf.NullValue") == 0)
			mesh_buf_puts(b, "null");
		else
			put_enum(b, f->descriptor, *(const int *)p);
		break;
	case PROTOBUF_C_TYPE_STRING:
		json_put_string(b, *(char *const *)p ? *(char *const *)p : "");
		break;
	case PROTOBUF_C_TYPE_BYTES: {
		const ProtobufCBinaryData *bd = p;
		put_base64(b, bd->data, bd->len);
		break;
	}
	case PROTOBUF_C_TYPE_MESSAGE: {
		const ProtobufCMessage *m = *(ProtobufCMessage *const *)p;
		if (m)
			render_message(c, m);
		else
			mesh_buf_puts(b, "null");
		break;
	}
	}
}

static size_t value_size(ProtobufCType t)
{
	switch (t) {
	case PROTOBUF_C_TYPE_INT32:
	case PROTOBUF_C_TYPE_SINT32:
	case PROTOBUF_C_TYPE_SFIXED32:
	case PROTOBUF_C_TYPE_UINT32:
	case PROTOBUF_C_TYPE_FIXED32:
		return 4;
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64:
		return 8;
	case PROTOBUF_C_TYPE_FLOAT:
		return sizeof(float);
	case PROTOBUF_C_TYPE_DOUBLE:
		return sizeof(double);
	case PROTOBUF_C_TYPE_BOOL:
		return sizeof(protobuf_c_boolean);
	case PROTOBUF_C_TYPE_ENUM:
		return sizeof(int);
	case PROTOBUF_C_TYPE_STRING:
		return sizeof(char *);
	case PROTOBUF_C_TYPE_BYTES:
		return sizeof(ProtobufCBinaryData);
	case PROTOBUF_C_TYPE_MESSAGE:
	default:
		return sizeof(ProtobufCMessage *);
	}
}

/* A zero value is omitted from proto3 JSON for fields without presence. */
static int value_is_default(ProtobufCType t, const void *p)
{
	switch (t) {
	case PROTOBUF_C_TYPE_FLOAT:
		return *(const float *)p == 0;
	case PROTOBUF_C_TYPE_DOUBLE:
		return *(const double *)p == 0;
	case PROTOBUF_C_TYPE_STRING:
		return !*(char *const *)p || !**(char *const *)p;
	case PROTOBUF_C_TYPE_BYTES:
		return ((const ProtobufCBinaryData *)p)->len == 0;
	case PROTOBUF_C_TYPE_MESSAGE:
		return !*(ProtobufCMessage *const *)p;
	default: {
		static const uint8_t zero[8];
		return memcmp(p, zero, value_size(t)) == 0;
	}
	}
}

static int field_present(const ProtobufCMessage *m, const ProtobufCFieldDescriptor *f)
{
	const char *base = (const char *)m;
	const void *p = base + f->offset;

	if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
		return *(const uint32_t *)(base + f->quantifier_offset) == f->id;
	switch (f->label) {
	case PROTOBUF_C_LABEL_REQUIRED:
		return 1;
	case PROTOBUF_C_LABEL_REPEATED:
		return *(const size_t *)(base + f->quantifier_offset) > 0;
	case PROTOBUF_C_LABEL_OPTIONAL:
		if (f->type == PROTOBUF_C_TYPE_MESSAGE || f->type == PROTOBUF_C_TYPE_STRING)
			return *(void *const *)p != NULL;
		return *(const protobuf_c_boolean *)(base + f->quantifier_offset);
	case PROTOBUF_C_LABEL_NONE:
	default:
		return !value_is_default(f->type, p);
	}
}

/* A map field: repeated FooEntry {key = 1; value = 2;} nested in the parent. */
static int field_is_map(const ProtobufCMessageDescriptor *parent, const ProtobufCFieldDescriptor *f)
{
	const ProtobufCMessageDescriptor *e = f->descriptor;
	size_t pl, sl;

	if (f->label != PROTOBUF_C_LABEL_REPEATED || f->type != PROTOBUF_C_TYPE_MESSAGE || !e || e->n_fields != 2)
		return 0;
	sl = strlen(e->short_name);
	pl = strlen(parent->name);
	if (sl < 5 || strcmp(e->short_name + sl - 5, "Entry") != 0)
		return 0;
	if (strncmp(e->name, parent->name, pl) != 0 || e->name[pl] != '.')
		return 0;
	return strcmp(e->fields[0].name, "key") == 0 && e->fields[0].id == 1 &&
	       strcmp(e->fields[1].name, "value") == 0 && e->fields[1].id == 2;
}

static void put_map(struct pbjson_ctx *c, const ProtobufCFieldDescriptor *f, ProtobufCMessage *const *entries, size_t n)
{
	const ProtobufCMessageDescriptor *e = f->descriptor;
	const ProtobufCFieldDescriptor *kf = &e->fields[0], *vf = &e->fields[1];
	size_t i;

	mesh_buf_putc(c->out, '{');
	for (i = 0; i < n; i++) {
		const char *eb = (const char *)entries[i];
		if (i)
			mesh_buf_putc(c->out, ',');
		if (kf->type == PROTOBUF_C_TYPE_STRING) {
			put_value(c, kf, eb + kf->offset);
		} else {
			/* non-string keys are quoted numbers or booleans */
			mesh_buf_putc(c->out, '"');
			if (kf->type == PROTOBUF_C_TYPE_INT64 || kf->type == PROTOBUF_C_TYPE_SINT64 ||
			    kf->type == PROTOBUF_C_TYPE_SFIXED64)
				mesh_buf_printf(c->out, "%" PRId64, *(const int64_t *)(eb + kf->offset));
			else if (kf->type == PROTOBUF_C_TYPE_UINT64 || kf->type == PROTOBUF_C_TYPE_FIXED64)
				mesh_buf_printf(c->out, "%" PRIu64, *(const uint64_t *)(eb + kf->offset));
			else
				put_value(c, kf, eb + kf->offset);
			mesh_buf_putc(c->out, '"');
		}
		mesh_buf_putc(c->out, ':');
		if (vf->type == PROTOBUF_C_TYPE_MESSAGE && !*(ProtobufCMessage *const *)(eb + vf->offset))
			mesh_buf_puts(c->out, "{}");
		else
			put_value(c, vf, eb + vf->offset);
	}
	mesh_buf_putc(c->out, '}');
}

static void render_fields(struct pbjson_ctx *c, const ProtobufCMessage *m, int first)
{
	const ProtobufCMessageDescriptor *d = m->descriptor;
	const char *base = (const char *)m;
	unsigned i;

	for (i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];
		const void *p = base + f->offset;

		if (!field_present(m, f))
			continue;
		if (!first)
			mesh_buf_putc(c->out, ',');
		first = 0;
		put_json_name(c->out, f->name, c->flags);
		mesh_buf_putc(c->out, ':');
		if (f->label == PROTOBUF_C_LABEL_REPEATED) {
			size_t n = *(const size_t *)(base + f->quantifier_offset), k;
			const char *arr = *(char *const *)p;
			if (field_is_map(d, f)) {
				put_map(c, f, (ProtobufCMessage *const *)arr, n);
				continue;
			}
			mesh_buf_putc(c->out, '[');
			for (k = 0; k < n; k++) {
				if (k)
					mesh_buf_putc(c->out, ',');
				put_value(c, f, arr + k * value_size(f->type));
			}
			mesh_buf_putc(c->out, ']');
		} else {
			put_value(c, f, p);
		}
		if (c->out->err || c->err)
			return;
	}
}

static void render_duration(struct mesh_buf *b, int64_t sec, int32_t nanos)
{
	const char *sign = "";
	uint64_t s, n;

	if (sec < 0 || nanos < 0) {
		sign = "-";
		s = sec < 0 ? (uint64_t)0 - (uint64_t)sec : (uint64_t)sec;
		n = nanos < 0 ? (uint64_t)(-(int64_t)nanos) : (uint64_t)nanos;
	} else {
		s = (uint64_t)sec;
		n = (uint64_t)nanos;
	}
	if (n == 0)
		mesh_buf_printf(b, "\"%s%" PRIu64 "s\"", sign, s);
	else if (n % 1000000 == 0)
		mesh_buf_printf(b, "\"%s%" PRIu64 ".%03" PRIu64 "s\"", sign, s, n / 1000000);
	else if (n % 1000 == 0)
		mesh_buf_printf(b, "\"%s%" PRIu64 ".%06" PRIu64 "s\"", sign, s, n / 1000);
	else
		mesh_buf_printf(b, "\"%s%" PRIu64 ".%09" PRIu64 "s\"", sign, s, n);
}

static void render_timestamp(struct mesh_buf *b, int64_t sec, int32_t nanos)
{
	char when[64];
	time_t t = (time_t)sec;
	struct tm tm;

	if (!gmtime_r(&t, &tm) || !strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm)) {
		mesh_buf_puts(b, "null");
		return;
	}
	if (nanos <= 0)
		mesh_buf_printf(b, "\"%sZ\"", when);
	else if (nanos % 1000000 == 0)
		mesh_buf_printf(b, "\"%s.%03dZ\"", when, (int)(nanos / 1000000));
	else if (nanos % 1000 == 0)
		mesh_buf_printf(b, "\"%s.%06dZ\"", when, (int)(nanos / 1000));
	else
		mesh_buf_printf(b, "\"%s.%09dZ\"", when, (int)nanos);
}

static void render_value(struct pbjson_ctx *c, const Google__Protobuf__Value *v);

static void render_struct(struct pbjson_ctx *c, const Google__Protobuf__Struct *s)
{
	size_t i;

	mesh_buf_putc(c->out, '{');
	for (i = 0; i < s->n_fields; i++) {
		if (i)
			mesh_buf_putc(c->out, ',');
		json_put_string(c->out, s->fields[i]->key ? s->fields[i]->key : "");
		mesh_buf_putc(c->out, ':');
		render_value(c, s->fields[i]->value);
	}
	mesh_buf_putc(c->out, '}');
}

static void render_list(struct pbjson_ctx *c, const Google__Protobuf__ListValue *l)
{
	size_t i;

	mesh_buf_putc(c->out, '[');
	for (i = 0; i < l->n_values; i++) {
		if (i)
			mesh_buf_putc(c->out, ',');
		render_value(c, l->values[i]);
	}
	mesh_buf_putc(c->out, ']');
}

static void render_value(struct pbjson_ctx *c, const Google__Protobuf__Value *v)
{
	if (!v) {
		mesh_buf_puts(c->out, "null");
		return;
	}
	if (++c->depth > PBJSON_MAX_DEPTH) {
		c->err = -MESH_ETOOBIG;
		goto out;
	}
	switch (v->kind_case) {
	case GOOGLE__PROTOBUF__VALUE__KIND_NUMBER_VALUE:
		put_double(c->out, v->number_value, 0);
		break;
	case GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE:
		json_put_string(c->out, v->string_value ? v->string_value : "");
		break;
	case GOOGLE__PROTOBUF__VALUE__KIND_BOOL_VALUE:
		mesh_buf_puts(c->out, v->bool_value ? "true" : "false");
		break;
	case GOOGLE__PROTOBUF__VALUE__KIND_STRUCT_VALUE:
		if (v->struct_value)
			render_struct(c, v->struct_value);
		else
			mesh_buf_puts(c->out, "{}");
		break;
	case GOOGLE__PROTOBUF__VALUE__KIND_LIST_VALUE:
		if (v->list_value)
			render_list(c, v->list_value);
		else
			mesh_buf_puts(c->out, "[]");
		break;
	case GOOGLE__PROTOBUF__VALUE__KIND_NULL_VALUE:
	default:
		mesh_buf_puts(c->out, "null");
		break;
	}
out:
	c->depth--;
}

/* The well-known types whose JSON is not an object of fields. */
static int is_special_wkt(const ProtobufCMessageDescriptor *d)
{
	return strncmp(d->name, "google.protobuf.", 16) == 0 && !desc_is(d, "google.protobuf.Any") &&
	       !desc_is(d, "google.protobuf.Empty");
}

/* Render the message's JSON; for special WKTs a non-object value. */
static void render_special(struct pbjson_ctx *c, const ProtobufCMessage *m)
{
	const ProtobufCMessageDescriptor *d = m->descriptor;

	if (desc_is(d, "google.protobuf.Duration")) {
		const Google__Protobuf__Duration *du = (const void *)m;
		render_duration(c->out, du->seconds, du->nanos);
	} else if (desc_is(d, "google.protobuf.Timestamp")) {
		const Google__Protobuf__Timestamp *ts = (const void *)m;
		render_timestamp(c->out, ts->seconds, ts->nanos);
	} else if (desc_is(d, "google.protobuf.Struct")) {
		render_struct(c, (const void *)m);
	} else if (desc_is(d, "google.protobuf.Value")) {
		render_value(c, (const void *)m);
	} else if (desc_is(d, "google.protobuf.ListValue")) {
		render_list(c, (const void *)m);
	} else if (d->n_fields == 1 && strcmp(d->fields[0].name, "value") == 0) {
		/* wrappers (BoolValue, UInt32Value, ...): the bare value */
		put_value(c, &d->fields[0], (const char *)m + d->fields[0].offset);
	} else {
		/* another google.protobuf message: as an ordinary message */
		mesh_buf_putc(c->out, '{');
		render_fields(c, m, 1);
		mesh_buf_putc(c->out, '}');
	}
}

/* {"@type": url, ...} around an already decoded payload (inner may be
 * NULL when the type is unknown or the bytes do not decode). */
static void render_any_decoded(struct pbjson_ctx *c, const char *type_url, const ProtobufCMessage *inner,
			       const uint8_t *data, size_t len)
{
	mesh_buf_puts(c->out, "{\"@type\":");
	json_put_string(c->out, type_url ? type_url : "");
	if (!inner) {
		/* keep the bytes */
		if (len) {
			mesh_buf_puts(c->out, ",\"value\":");
			put_base64(c->out, data, len);
		}
	} else if (is_special_wkt(inner->descriptor)) {
		mesh_buf_puts(c->out, ",\"value\":");
		render_special(c, inner);
	} else {
		render_fields(c, inner, 0);
	}
	mesh_buf_putc(c->out, '}');
}

static void render_any(struct pbjson_ctx *c, const Google__Protobuf__Any *any)
{
	const ProtobufCMessageDescriptor *d = pbjson_lookup(any->type_url);
	ProtobufCMessage *inner = NULL;

	if (d)
		inner = protobuf_c_message_unpack(d, NULL, any->value.len, any->value.data);
	render_any_decoded(c, any->type_url, inner, any->value.data, any->value.len);
	if (inner)
		protobuf_c_message_free_unpacked(inner, NULL);
}

static int render_message(struct pbjson_ctx *c, const ProtobufCMessage *m)
{
	const ProtobufCMessageDescriptor *d = m->descriptor;

	if (++c->depth > PBJSON_MAX_DEPTH) {
		c->err = -MESH_ETOOBIG;
		goto out;
	}
	if (desc_is(d, "google.protobuf.Any")) {
		render_any(c, (const Google__Protobuf__Any *)m);
	} else if (is_special_wkt(d)) {
		render_special(c, m);
	} else {
		mesh_buf_putc(c->out, '{');
		render_fields(c, m, 1);
		mesh_buf_putc(c->out, '}');
	}
out:
	c->depth--;
	return c->err ? c->err : c->out->err;
}

int pbjson_render(const ProtobufCMessage *msg, struct mesh_buf *out)
{
	return pbjson_render_opts(msg, out, 0);
}

int pbjson_render_opts(const ProtobufCMessage *msg, struct mesh_buf *out, unsigned flags)
{
	struct pbjson_ctx c = { out, 0, 0, flags };

	if (!msg || !out)
		return -EINVAL;
	return render_message(&c, msg);
}

int pbjson_render_any(const char *type_url, const uint8_t *data, size_t len, struct mesh_buf *out)
{
	const ProtobufCMessageDescriptor *d;
	ProtobufCMessage *inner = NULL;
	struct pbjson_ctx c = { out, 0, 0, 0 };
	int rc;

	if (!type_url || !out || (len && !data))
		return -EINVAL;
	d = pbjson_lookup(type_url);
	if (!d) {
		rc = -ENOENT;
		goto out;
	}
	inner = protobuf_c_message_unpack(d, NULL, len, data);
	if (!inner) {
		rc = -MESH_EPARSE;
		goto out;
	}
	c.depth = 1;
	render_any_decoded(&c, type_url, inner, data, len);
	rc = c.err ? c.err : out->err;
out:
	if (inner)
		protobuf_c_message_free_unpacked(inner, NULL);
	return rc;
}
