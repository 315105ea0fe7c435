/*
 * mesh.c - what the generators read of the mesh config (MeshConfig,
 * controlplane/config/meshcfg.h), in one place: a model without one
 * (tests, golden cases without mesh.yaml) gets Istio's defaults.
 */
#include "controlplane/gen/gen.h"
#include "controlplane/gen/gen_int.h"
#include "controlplane/model/model.h"

#include "common/arena.h"
#include "envoy/config/accesslog/v3/accesslog.pb-c.h"
#include "envoy/extensions/access_loggers/file/v3/file.pb-c.h"
#include "envoy/extensions/access_loggers/filters/cel/v3/cel.pb-c.h"
#include "controlplane/model/telemetry.h"
#include "envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.pb-c.h"
#include "google/protobuf/struct.pb-c.h"

#include <string.h>

enum gen_outbound_policy gen_mesh_outbound(const struct model *m)
{
	/* Istio's DefaultMeshConfig: ALLOW_ANY */
	return m && m->mesh && m->mesh->outbound == MESHCFG_REGISTRY_ONLY ? GEN_OUTBOUND_REGISTRY_ONLY :
									   GEN_OUTBOUND_ALLOW_ANY;
}

bool gen_mesh_auto_mtls(const struct model *m)
{
	/* Istio's DefaultMeshConfig: true */
	return !m || !m->mesh || m->mesh->enable_auto_mtls;
}

bool gen_mesh_h2_upgrade(const struct model *m)
{
	return m && m->mesh && m->mesh->h2_upgrade == MESHCFG_H2_UPGRADE;
}

int64_t gen_mesh_connect_timeout(const struct model *m)
{
	/* Istio's DefaultMeshConfig: 10s */
	return m && m->mesh && m->mesh->connect_timeout > 0 ? m->mesh->connect_timeout : 10LL * 1000000000LL;
}

int64_t gen_mesh_protocol_detection_timeout(const struct model *m)
{
	return m && m->mesh && m->mesh->protocol_detection_timeout > 0 ? m->mesh->protocol_detection_timeout : 0;
}

/* Istio's default text format (pilot/pkg/model/telemetry_logging.go
 * EnvoyTextLogFormat), used when accessLogFormat is empty. */
static const char gen__log_text[] =
	"[%START_TIME%] \"%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%\" %RESPONSE_CODE% "
	"%RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS% %CONNECTION_TERMINATION_DETAILS% "
	"\"%UPSTREAM_TRANSPORT_FAILURE_REASON%\" %BYTES_RECEIVED% %BYTES_SENT% %DURATION% "
	"%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% \"%REQ(X-FORWARDED-FOR)%\" \"%REQ(USER-AGENT)%\" "
	"\"%REQ(X-REQUEST-ID)%\" \"%REQ(:AUTHORITY)%\" \"%UPSTREAM_HOST%\" %UPSTREAM_CLUSTER_RAW% "
	"%UPSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_REMOTE_ADDRESS% "
	"%REQUESTED_SERVER_NAME% %ROUTE_NAME%\n";

/* Istio's default JSON dictionary (EnvoyJSONLogFormatIstio), sorted by key
 * as protobuf's Struct is rendered: keys and their values, index by index. */
static const char *const gen__log_json_keys[] = {
	"authority",
	"bytes_received",
	"bytes_sent",
	"connection_termination_details",
	"downstream_local_address",
	"downstream_remote_address",
	"duration",
	"method",
	"path",
	"protocol",
	"request_id",
	"requested_server_name",
	"response_code",
	"response_code_details",
	"response_flags",
	"route_name",
	"start_time",
	"upstream_cluster",
	"upstream_host",
	"upstream_local_address",
	"upstream_service_time",
	"upstream_transport_failure_reason",
	"user_agent",
	"x_forwarded_for",
};
static const char *const gen__log_json_values[] = {
	"%REQ(:AUTHORITY)%",
	"%BYTES_RECEIVED%",
	"%BYTES_SENT%",
	"%CONNECTION_TERMINATION_DETAILS%",
	"%DOWNSTREAM_LOCAL_ADDRESS%",
	"%DOWNSTREAM_REMOTE_ADDRESS%",
	"%DURATION%",
	"%REQ(:METHOD)%",
	"%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%",
	"%PROTOCOL%",
	"%REQ(X-REQUEST-ID)%",
	"%REQUESTED_SERVER_NAME%",
	"%RESPONSE_CODE%",
	"%RESPONSE_CODE_DETAILS%",
	"%RESPONSE_FLAGS%",
	"%ROUTE_NAME%",
	"%START_TIME%",
	"%UPSTREAM_CLUSTER_RAW%",
	"%UPSTREAM_HOST%",
	"%UPSTREAM_LOCAL_ADDRESS%",
	"%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)%",
	"%UPSTREAM_TRANSPORT_FAILURE_REASON%",
	"%REQ(USER-AGENT)%",
	"%REQ(X-FORWARDED-FOR)%",
};
#define GEN_LOG_JSON_N (sizeof(gen__log_json_keys) / sizeof(gen__log_json_keys[0]))
_Static_assert(sizeof(gen__log_json_values) == sizeof(gen__log_json_keys), "one value per key");

/* Istio's default JSON dictionary, or the provider's labels, as a Struct. */
static Google__Protobuf__Struct *gen__log_labels_struct(struct arena *a, const char *const *keys,
							const char *const *values, size_t n)
{
	Google__Protobuf__Struct *st = gen__msg(a, &google__protobuf__struct__descriptor);
	size_t i;

	if (!st || !(st->fields = arena_calloc(a, n ? n : 1, sizeof(*st->fields))))
		return NULL;
	for (i = 0; i < n; i++) {
		Google__Protobuf__Struct__FieldsEntry *f = gen__msg(a, &google__protobuf__struct__fields_entry__descriptor);
		Google__Protobuf__Value *v = gen__msg(a, &google__protobuf__value__descriptor);

		if (!f || !v)
			return NULL;
		v->kind_case = GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE;
		v->string_value = (char *)values[i];
		f->key = (char *)keys[i];
		f->value = v;
		st->fields[i] = f;
	}
	st->n_fields = n;
	return st;
}

/* One envoy.access_loggers.file entry: path, a text format (text NULL:
 * Istio's default) or a JSON dictionary (json true; n_labels 0: Istio's
 * default keys), and filter (a CEL expression, NULL: none) as istiod's
 * ExtensionFilter envoy.access_loggers.extension_filters.cel. */
static Envoy__Config__Accesslog__V3__AccessLog *gen__file_log(struct arena *a, const char *path, bool json,
							      const char *text, const char *const *keys,
							      const char *const *values, size_t n_labels,
							      const char *filter)
{
	Envoy__Config__Accesslog__V3__AccessLog *al = gen__msg(a, &envoy__config__accesslog__v3__access_log__descriptor);
	Envoy__Extensions__AccessLoggers__File__V3__FileAccessLog *file =
		gen__msg(a, &envoy__extensions__access_loggers__file__v3__file_access_log__descriptor);
	Envoy__Config__Core__V3__SubstitutionFormatString *fmt =
		gen__msg(a, &envoy__config__core__v3__substitution_format_string__descriptor);

	if (!al || !file || !fmt)
		return NULL;
	if (json) {
		fmt->format_case = ENVOY__CONFIG__CORE__V3__SUBSTITUTION_FORMAT_STRING__FORMAT_JSON_FORMAT;
		fmt->json_format = n_labels ? gen__log_labels_struct(a, keys, values, n_labels) :
					   gen__log_labels_struct(a, gen__log_json_keys, gen__log_json_values, GEN_LOG_JSON_N);
		if (!fmt->json_format)
			return NULL;
	} else {
		Envoy__Config__Core__V3__DataSource *ds = gen__msg(a, &envoy__config__core__v3__data_source__descriptor);

		if (!ds)
			return NULL;
		ds->specifier_case = ENVOY__CONFIG__CORE__V3__DATA_SOURCE__SPECIFIER_INLINE_STRING;
		ds->inline_string = (char *)(text ? text : gen__log_text);
		fmt->format_case = ENVOY__CONFIG__CORE__V3__SUBSTITUTION_FORMAT_STRING__FORMAT_TEXT_FORMAT_SOURCE;
		fmt->text_format_source = ds;
	}
	file->path = (char *)(path && path[0] ? path : "/dev/stdout");
	file->access_log_format_case =
		ENVOY__EXTENSIONS__ACCESS_LOGGERS__FILE__V3__FILE_ACCESS_LOG__ACCESS_LOG_FORMAT_LOG_FORMAT;
	file->log_format = fmt;
	al->name = "envoy.access_loggers.file";
	al->config_type_case = ENVOY__CONFIG__ACCESSLOG__V3__ACCESS_LOG__CONFIG_TYPE_TYPED_CONFIG;
	if (!(al->typed_config = gen__any(a, &file->base)))
		return NULL;
	if (filter && filter[0]) {
		Envoy__Config__Accesslog__V3__AccessLogFilter *af =
			gen__msg(a, &envoy__config__accesslog__v3__access_log_filter__descriptor);
		Envoy__Config__Accesslog__V3__ExtensionFilter *ef =
			gen__msg(a, &envoy__config__accesslog__v3__extension_filter__descriptor);
		Envoy__Extensions__AccessLoggers__Filters__Cel__V3__ExpressionFilter *cel =
			gen__msg(a, &envoy__extensions__access_loggers__filters__cel__v3__expression_filter__descriptor);

		if (!af || !ef || !cel)
			return NULL;
		cel->expression = (char *)filter;
		ef->name = "envoy.access_loggers.extension_filters.cel";
		ef->config_type_case = ENVOY__CONFIG__ACCESSLOG__V3__EXTENSION_FILTER__CONFIG_TYPE_TYPED_CONFIG;
		if (!(ef->typed_config = gen__any(a, &cel->base)))
			return NULL;
		af->filter_specifier_case = ENVOY__CONFIG__ACCESSLOG__V3__ACCESS_LOG_FILTER__FILTER_SPECIFIER_EXTENSION_FILTER;
		af->extension_filter = ef;
		al->filter = af;
	}
	return al;
}

/* The entries of one mode's providers (Telemetry merged), in provider order. */
static int gen__tel_logs(struct arena *a, const struct mesh_config *mc, const struct model_tel_log *logs, size_t n,
			 struct gen__alogs *out)
{
	size_t i;

	out->v = NULL;
	out->n = 0;
	if (!n)
		return 0;
	if (!(out->v = arena_calloc(a, n, sizeof(*out->v))))
		return -ENOMEM;
	for (i = 0; i < n; i++) {
		const struct meshcfg_log_provider *p = logs[i].disabled ? NULL : meshcfg_log_provider(mc, logs[i].provider);
		Envoy__Config__Accesslog__V3__AccessLog *al;

		if (!p)
			continue; /* disabled, or no such envoyFileAccessLog provider */
		al = gen__file_log(a, p->path, p->format == MESHCFG_ALOG_JSON, p->format == MESHCFG_ALOG_TEXT ? p->text : NULL,
				   p->keys, p->values, p->n_labels, logs[i].filter);
		if (!al)
			return -ENOMEM;
		out->v[out->n++] = al;
	}
	return 0;
}

int gen__workload_access_logs(struct arena *a, const struct model *m, const struct model_telemetry *t,
			      struct gen__alogs *client, struct gen__alogs *server)
{
	const struct mesh_config *mc = m ? m->mesh : NULL;
	int rc;

	memset(client, 0, sizeof(*client));
	memset(server, 0, sizeof(*server));
	if (!t->has_access_logging) {
		/* no Telemetry access logging: MeshConfig accessLogFile, both ways */
		rc = gen__mesh_access_logs(a, m, &client->v, &client->n);
		server->v = client->v;
		server->n = client->n;
		return rc;
	}
	rc = gen__tel_logs(a, mc, t->client_logs, t->n_client_logs, client);
	if (rc == 0)
		rc = gen__tel_logs(a, mc, t->server_logs, t->n_server_logs, server);
	return rc;
}

int gen__mesh_access_logs(struct arena *a, const struct model *m, Envoy__Config__Accesslog__V3__AccessLog ***out,
			  size_t *n)
{
	const struct mesh_config *mc = m ? m->mesh : NULL;
	bool json;
	const char *text = NULL;
	size_t len;

	*out = NULL;
	*n = 0;
	if (!mc || !mc->access_log_file || !mc->access_log_file[0])
		return 0;
	/* Istio: JSON encoding takes the default dictionary (a custom
	 * accessLogFormat there is a JSON object, not handled yet); a custom
	 * text format gets the newline Istio appends when missing */
	json = mc->access_log_encoding == MESHCFG_LOG_JSON;
	if (!json && mc->access_log_format && mc->access_log_format[0]) {
		len = strlen(mc->access_log_format);
		text = mc->access_log_format[len - 1] == '\n' ? mc->access_log_format :
								 arena_printf(a, "%s\n", mc->access_log_format);
		if (!text)
			return -ENOMEM;
	}
	if (!(*out = arena_calloc(a, 1, sizeof(**out))) ||
	    !((*out)[0] = gen__file_log(a, mc->access_log_file, json, text, NULL, NULL, 0, NULL)))
		return -ENOMEM;
	*n = 1;
	return 0;
}
