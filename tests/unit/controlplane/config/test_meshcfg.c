/*
 * test_meshcfg.c - Istio's MeshConfig (controlplane/config/meshcfg.h):
 * Istio's defaults, the fields meshd reads, errors naming source:line and
 * the field (a rejected input yields no config: the caller keeps its last
 * good one), fields accepted without effect named in one warning, and the
 * istio ConfigMap form.
 */
#include "controlplane/config/meshcfg.h"

#include <check.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"

static struct mesh_config *parse_ok(const char *yaml, char *warn)
{
	char err[MESHCFG_ERR_CAP];
	struct mesh_config *mc = NULL;
	int rc = meshcfg_parse(yaml, strlen(yaml), "mesh.yaml", &mc, err, sizeof(err), warn);

	ck_assert_msg(rc == 0, "rc %d: %s", rc, err);
	ck_assert_ptr_nonnull(mc);
	return mc;
}

static int parse_bad(const char *yaml, char *err)
{
	struct mesh_config *mc = (struct mesh_config *)1;
	int rc = meshcfg_parse(yaml, strlen(yaml), "mesh.yaml", &mc, err, MESHCFG_ERR_CAP, NULL);

	ck_assert_int_lt(rc, 0);
	ck_assert_ptr_null(mc);
	return rc;
}

/* Istio's DefaultMeshConfig values, and an empty file gives the same. */
START_TEST(meshcfg_defaults_are_istios)
{
	struct mesh_config *d = meshcfg_defaults(), *e;
	char warn[MESHCFG_ERR_CAP];

	ck_assert_ptr_nonnull(d);
	ck_assert_str_eq(d->root_namespace, "istio-system");
	ck_assert_str_eq(d->trust_domain, "cluster.local");
	ck_assert(!d->trust_domain_set && !d->root_namespace_set);
	ck_assert_int_eq(d->outbound, MESHCFG_ALLOW_ANY);
	ck_assert(d->enable_auto_mtls);
	ck_assert_uint_eq(d->service_export_to.n, 1);
	ck_assert_str_eq(d->service_export_to.v[0], "*");
	ck_assert_str_eq(d->vs_export_to.v[0], "*");
	ck_assert_str_eq(d->dr_export_to.v[0], "*");
	ck_assert_int_eq(d->connect_timeout, 10LL * 1000000000LL);
	ck_assert_int_eq(d->h2_upgrade, MESHCFG_H2_DO_NOT_UPGRADE);
	ck_assert_str_eq(d->access_log_file, "");
	ck_assert_int_eq(d->access_log_encoding, MESHCFG_LOG_TEXT);
	e = parse_ok("# nothing\n", warn);
	ck_assert_str_eq(warn, "");
	ck_assert_uint_eq(e->hash, d->hash);
	meshcfg_unref(e);
	meshcfg_unref(d);
}
END_TEST

START_TEST(meshcfg_fields_read)
{
	static const char yaml[] = "rootNamespace: mesh-root\n"
				   "trustDomain: example.org\n"
				   "outboundTrafficPolicy:\n"
				   "  mode: REGISTRY_ONLY\n"
				   "enableAutoMtls: false\n"
				   "defaultServiceExportTo: [\".\"]\n"
				   "defaultVirtualServiceExportTo: [\".\", istio-system]\n"
				   "defaultDestinationRuleExportTo: [\"*\"]\n"
				   "connectTimeout: 2500ms\n"
				   "h2UpgradePolicy: UPGRADE\n"
				   "accessLogFile: /dev/stdout\n"
				   "accessLogEncoding: JSON\n"
				   "localityLbSetting:\n"
				   "  enabled: true\n"
				   "defaultConfig:\n"
				   "  holdApplicationUntilProxyStarts: true\n"
				   "  concurrency: 2\n";
	char warn[MESHCFG_ERR_CAP];
	struct mesh_config *mc = parse_ok(yaml, warn), *d = meshcfg_defaults();
	struct mesh_buf b;

	ck_assert_str_eq(mc->root_namespace, "mesh-root");
	ck_assert(mc->root_namespace_set);
	ck_assert_str_eq(mc->trust_domain, "example.org");
	ck_assert(mc->trust_domain_set);
	ck_assert_int_eq(mc->outbound, MESHCFG_REGISTRY_ONLY);
	ck_assert(!mc->enable_auto_mtls);
	ck_assert_uint_eq(mc->service_export_to.n, 1);
	ck_assert_str_eq(mc->service_export_to.v[0], ".");
	ck_assert_uint_eq(mc->vs_export_to.n, 2);
	ck_assert_str_eq(mc->vs_export_to.v[1], "istio-system");
	ck_assert_int_eq(mc->connect_timeout, 2500LL * 1000000LL);
	ck_assert_int_eq(mc->h2_upgrade, MESHCFG_H2_UPGRADE);
	ck_assert_str_eq(mc->access_log_file, "/dev/stdout");
	ck_assert_int_eq(mc->access_log_encoding, MESHCFG_LOG_JSON);
	ck_assert(mc->hold_application_until_proxy_starts);
	ck_assert_ptr_nonnull(mc->locality_lb_json);
	ck_assert_str_eq(warn, "");
	ck_assert_uint_ne(mc->hash, d->hash);
	mesh_buf_init(&b, 1 << 16);
	meshcfg_json(&b, mc);
	mesh_buf_putc(&b, '\0');
	ck_assert_int_eq(b.err, 0);
	ck_assert_ptr_nonnull(strstr(b.data, "\"outboundTrafficPolicy\":{\"mode\":\"REGISTRY_ONLY\"}"));
	ck_assert_ptr_nonnull(strstr(b.data, "\"connectTimeout\":\"2.500s\""));
	ck_assert_ptr_nonnull(strstr(b.data, "\"rootNamespace\":\"mesh-root\""));
	ck_assert_ptr_nonnull(strstr(b.data, "\"holdApplicationUntilProxyStarts\":true"));
	mesh_buf_cleanup(&b);
	meshcfg_unref(mc);
	meshcfg_unref(d);
}
END_TEST

/* Every error names mesh.yaml:LINE and the field; all are reported. */
START_TEST(meshcfg_errors_name_line_and_field)
{
	static const char yaml[] = "outboundTrafficPolicy:\n"
				   "  mode: REGISTRY\n"
				   "connectTimeout: 5\n"
				   "enableAutoMtls: maybe\n"
				   "rootNamespce: x\n"
				   "defaultServiceExportTo: [\"Not_A_Namespace\"]\n";
	char err[MESHCFG_ERR_CAP];

	ck_assert_int_eq(parse_bad(yaml, err), -EINVAL);
	ck_assert_msg(strstr(err, "mesh.yaml:2: field outboundTrafficPolicy.mode: \"REGISTRY\""), "%s", err);
	ck_assert_msg(strstr(err, "mesh.yaml:3: field connectTimeout:"), "%s", err);
	ck_assert_msg(strstr(err, "mesh.yaml:4: field enableAutoMtls:"), "%s", err);
	ck_assert_msg(strstr(err, "mesh.yaml:5: unknown field \"rootNamespce\""), "%s", err);
	ck_assert_msg(strstr(err, "mesh.yaml:6: field defaultServiceExportTo:"), "%s", err);
	/* a number or a boolean in a string field is an error, as in Istio's
	 * YAML -> JSON -> protobuf JSON reading; quoted, it is a string */
	ck_assert_int_eq(parse_bad("rootNamespace: true\ntrustDomain: 1e3\n", err), -EINVAL);
	ck_assert_msg(strstr(err, "mesh.yaml:1: field rootNamespace: must be a string, not a boolean"), "%s", err);
	ck_assert_msg(strstr(err, "mesh.yaml:2: field trustDomain: must be a string, not a number"), "%s", err);
}
END_TEST

START_TEST(meshcfg_malformed_yaml)
{
	char err[MESHCFG_ERR_CAP];

	ck_assert_int_eq(parse_bad("outboundTrafficPolicy:\n  mode: [ALLOW_ANY\n", err), -MESH_EPARSE);
	ck_assert_msg(strncmp(err, "mesh.yaml:", 10) == 0, "%s", err);
	ck_assert_int_eq(parse_bad("- a list\n", err), -EINVAL);
	ck_assert_int_eq(parse_bad("connectTimeout: 1s\n---\nconnectTimeout: 2s\n", err), -EINVAL);
	/* sub-millisecond: Istio's ValidateConnectTimeout refuses it */
	ck_assert_int_eq(parse_bad("connectTimeout: 500us\n", err), -EINVAL);
}
END_TEST

/* Known MeshConfig fields meshd does not act on: accepted, one warning. */
START_TEST(meshcfg_ignored_fields_warn)
{
	char warn[MESHCFG_ERR_CAP];
	struct mesh_config *mc = parse_ok("enablePrometheusMerge: true\ningressClass: istio\nconnectTimeout: 1s\n"
					  "protocolDetectionTimeout: 250ms\n", warn);

	ck_assert_msg(strstr(warn, "enablePrometheusMerge, ingressClass"), "%s", warn);
	ck_assert_ptr_nonnull(strstr(warn, "mesh.yaml"));
	ck_assert_int_eq(mc->connect_timeout, 1000000000LL);
	/* read now (sniffing listeners' listener_filters_timeout), not ignored */
	ck_assert_msg(!strstr(warn, "protocolDetectionTimeout"), "%s", warn);
	ck_assert_int_eq(mc->protocol_detection_timeout, 250000000LL);
	meshcfg_unref(mc);
}
END_TEST

/* Tracing: the zipkin provider that defaultProviders.tracing names,
 * defaultConfig.tracing.sampling (Istio's default 1), enableTracing;
 * a missing provider or a bad sampling is an error naming the field. */
START_TEST(meshcfg_tracing)
{
	static const char yaml[] = "extensionProviders:\n"
				   "- name: other\n"
				   "  envoyFileAccessLog: {path: /dev/stdout}\n"
				   "- name: zk\n"
				   "  zipkin: {service: istio-system/zipkin.istio-system.svc.cluster.local, port: 9411, maxTagLength: 99}\n"
				   "defaultProviders: {tracing: [zk]}\n"
				   "defaultConfig: {tracing: {sampling: 12.5}}\n";
	char err[MESHCFG_ERR_CAP];
	struct mesh_config *mc = meshcfg_defaults(), *mc2;

	ck_assert(mc->enable_tracing && mc->trace_sampling == 1.0 && !mc->trace_provider);
	meshcfg_unref(mc);
	mc = parse_ok(yaml, NULL);
	ck_assert_str_eq(mc->trace_provider, "zk");
	ck_assert_str_eq(mc->zipkin_service, "istio-system/zipkin.istio-system.svc.cluster.local");
	ck_assert_uint_eq(mc->zipkin_port, 9411);
	ck_assert_uint_eq(mc->zipkin_max_tag_len, 99);
	ck_assert(mc->trace_sampling == 12.5);
	mc2 = parse_ok("defaultConfig: {tracing: {sampling: 100}}\nenableTracing: false\n", NULL);
	ck_assert(mc2->trace_sampling == 100 && !mc2->enable_tracing);
	ck_assert_uint_ne(mc->hash, mc2->hash);
	meshcfg_unref(mc);
	meshcfg_unref(mc2);
	ck_assert_int_eq(parse_bad("defaultProviders: {tracing: [nope]}\n", err), -EINVAL);
	ck_assert_msg(strstr(err, "mesh.yaml:1: field defaultProviders.tracing: no extensionProviders entry named \"nope\""),
		      "%s", err);
	ck_assert_int_eq(parse_bad("defaultConfig:\n  tracing:\n    sampling: 101\n", err), -EINVAL);
	ck_assert_msg(strstr(err, "mesh.yaml:3: field defaultConfig.tracing.sampling"), "%s", err);
	ck_assert_int_eq(parse_bad("extensionProviders: [{name: z, zipkin: {service: a}}]\n"
				   "defaultProviders: {tracing: [z]}\n", err), -EINVAL);
	ck_assert_msg(strstr(err, "extensionProviders.zipkin.port"), "%s", err);
}
END_TEST

/* issue 14: envoyFileAccessLog providers, the built-in envoy, defaultProviders.accessLogging */
START_TEST(meshcfg_access_log_providers)
{
	static const char yaml[] = "extensionProviders:\n"
				   "- name: js\n"
				   "  envoyFileAccessLog:\n"
				   "    path: /var/log/a.json\n"
				   "    logFormat:\n"
				   "      labels: {zeta: \"%RESPONSE_CODE%\", alpha: \"%REQ(:PATH)%\"}\n"
				   "- name: tx\n"
				   "  envoyFileAccessLog:\n"
				   "    logFormat: {text: \"%RESPONSE_CODE%\"}\n"
				   "- name: dflt-json\n"
				   "  envoyFileAccessLog: {path: /tmp/x, logFormat: {labels: {}}}\n"
				   "defaultProviders: {accessLogging: [js, envoy]}\n";
	char err[MESHCFG_ERR_CAP];
	struct mesh_config *mc = parse_ok(yaml, NULL), *mc2;
	const struct meshcfg_log_provider *p;

	ck_assert_uint_eq(mc->n_log_providers, 3);
	ck_assert_uint_eq(mc->default_access_logging.n, 2);
	ck_assert_str_eq(mc->default_access_logging.v[0], "js");
	p = meshcfg_log_provider(mc, "js");
	ck_assert_ptr_nonnull(p);
	ck_assert_int_eq(p->format, MESHCFG_ALOG_JSON);
	ck_assert_str_eq(p->path, "/var/log/a.json");
	ck_assert_uint_eq(p->n_labels, 2);
	ck_assert_str_eq(p->keys[0], "alpha"); /* sorted by key */
	ck_assert_str_eq(p->values[0], "%REQ(:PATH)%");
	p = meshcfg_log_provider(mc, "tx");
	ck_assert_int_eq(p->format, MESHCFG_ALOG_TEXT);
	ck_assert_str_eq(p->text, "%RESPONSE_CODE%\n"); /* Istio appends the newline */
	ck_assert_str_eq(p->path, "");
	p = meshcfg_log_provider(mc, "dflt-json");
	ck_assert(p->format == MESHCFG_ALOG_JSON && p->n_labels == 0);
	p = meshcfg_log_provider(mc, "envoy"); /* built in */
	ck_assert_str_eq(p->path, "/dev/stdout");
	ck_assert_int_eq(p->format, MESHCFG_ALOG_DEFAULT);
	ck_assert_ptr_null(meshcfg_log_provider(mc, "nope"));
	mc2 = parse_ok("extensionProviders: [{name: js, envoyFileAccessLog: {path: /var/log/b.json}}]\n", NULL);
	ck_assert_uint_ne(mc->hash, mc2->hash);
	meshcfg_unref(mc);
	meshcfg_unref(mc2);
	ck_assert_int_eq(parse_bad("defaultProviders: {accessLogging: [nope]}\n", err), -EINVAL);
	ck_assert_msg(strstr(err, "defaultProviders.accessLogging: no envoyFileAccessLog extensionProviders entry named \"nope\""),
		      "%s", err);
	ck_assert_int_eq(parse_bad("extensionProviders: [{name: j, envoyFileAccessLog: {logFormat: {labels: {a: {b: c}}}}}]\n",
				   err), -EINVAL);
	ck_assert_msg(strstr(err, "only string values"), "%s", err);
}
END_TEST

/* issue 14: defaultProviders.metrics: unset = Istio's chart's
 * [prometheus]; an explicit list (empty too) replaces it; a provider is
 * of kind prometheus by its field, not its name; an unknown name is an
 * error, another kind (stackdriver) is accepted. */
START_TEST(meshcfg_metrics_providers)
{
	char err[MESHCFG_ERR_CAP];
	struct mesh_config *mc = parse_ok("enableTracing: true\n", NULL), *mc2, *mc3;

	ck_assert(!mc->default_metrics_set);
	ck_assert(meshcfg_metrics_provider_is_prometheus(mc, "prometheus"));
	ck_assert(!meshcfg_metrics_provider_is_prometheus(mc, "custom"));
	ck_assert(meshcfg_metrics_provider_is_prometheus(NULL, "prometheus"));
	mc2 = parse_ok("defaultProviders: {metrics: []}\n", NULL);
	ck_assert(mc2->default_metrics_set && mc2->default_metrics.n == 0);
	ck_assert_uint_ne(mc->hash, mc2->hash);
	mc3 = parse_ok("extensionProviders: [{name: custom, prometheus: {}}]\n"
		       "defaultProviders: {metrics: [custom, stackdriver]}\n", NULL);
	ck_assert_uint_eq(mc3->default_metrics.n, 2);
	ck_assert_str_eq(mc3->default_metrics.v[0], "custom");
	ck_assert(meshcfg_metrics_provider_is_prometheus(mc3, "custom"));
	ck_assert(!meshcfg_metrics_provider_is_prometheus(mc3, "stackdriver"));
	meshcfg_unref(mc);
	meshcfg_unref(mc2);
	meshcfg_unref(mc3);
	ck_assert_int_eq(parse_bad("defaultProviders: {metrics: [nope]}\n", err), -EINVAL);
	ck_assert_msg(strstr(err, "defaultProviders.metrics: no extensionProviders entry named \"nope\""), "%s", err);
	ck_assert_int_eq(parse_bad("defaultProviders: {metrics: prometheus}\n", err), -EINVAL);
	ck_assert_msg(strstr(err, "defaultProviders.metrics: must be a list"), "%s", err);
}
END_TEST

/* issue 14: every zipkin / opentelemetry extensionProvider is kept (a
 * Telemetry may name any), with OTLP/HTTP path, timeout and headers (value
 * or envName), OTLP/gRPC timeout and initial metadata, the environment
 * resource detector; defaultProviders.tracing kept whole; an opentelemetry
 * default fills no legacy zipkin field; a provider without service or
 * port is an error even when no default names it (Istio validates them
 * all); another kind named as default is a warning, not an error. */
START_TEST(meshcfg_trace_providers)
{
	static const char yaml[] = "extensionProviders:\n"
				   "- name: zk\n"
				   "  zipkin: {service: zipkin.istio-system.svc.cluster.local, port: 9411}\n"
				   "- name: otel\n"
				   "  opentelemetry:\n"
				   "    service: observability/otel.observability.svc.cluster.local\n"
				   "    port: 4318\n"
				   "    http:\n"
				   "      path: /v1/traces\n"
				   "      timeout: 2s\n"
				   "      headers:\n"
				   "      - {name: x-a, value: one}\n"
				   "      - {name: x-b, envName: MESHCFG_TEST_TRACE_ENV}\n"
				   "- name: og\n"
				   "  opentelemetry:\n"
				   "    service: og.istio-system.svc.cluster.local\n"
				   "    port: 4317\n"
				   "    grpc: {timeout: 3s, initialMetadata: [{name: authorization, value: t}]}\n"
				   "    resourceDetectors: {environment: {}}\n"
				   "defaultProviders: {tracing: [og, zk]}\n";
	const struct meshcfg_trace_provider *p;
	char err[MESHCFG_ERR_CAP], warn[MESHCFG_ERR_CAP];
	struct mesh_config *mc, *mc2;

	setenv("MESHCFG_TEST_TRACE_ENV", "from-env", 1);
	mc = parse_ok(yaml, NULL);
	ck_assert_uint_eq(mc->n_trace_providers, 3);
	ck_assert_uint_eq(mc->default_tracing.n, 2);
	ck_assert_str_eq(mc->default_tracing.v[0], "og");
	ck_assert_ptr_null(mc->trace_provider); /* the default is not a zipkin one */
	ck_assert_ptr_nonnull(p = meshcfg_trace_provider(mc, "otel"));
	ck_assert_int_eq(p->kind, MESHCFG_TRACER_OTEL);
	ck_assert(p->http);
	ck_assert_str_eq(p->service, "observability/otel.observability.svc.cluster.local");
	ck_assert_uint_eq(p->port, 4318);
	ck_assert_str_eq(p->http_path, "/v1/traces");
	ck_assert_int_eq(p->timeout, 2000000000LL);
	ck_assert_uint_eq(p->n_headers, 2);
	ck_assert_str_eq(p->headers[0].name, "x-a");
	ck_assert_str_eq(p->headers[0].value, "one");
	ck_assert_str_eq(p->headers[1].value, "from-env");
	ck_assert_ptr_nonnull(p = meshcfg_trace_provider(mc, "og"));
	ck_assert(!p->http && p->env_detector);
	ck_assert_int_eq(p->timeout, 3000000000LL);
	ck_assert_str_eq(p->headers[0].name, "authorization");
	ck_assert_ptr_nonnull(p = meshcfg_trace_provider(mc, "zk"));
	ck_assert_int_eq(p->kind, MESHCFG_TRACER_ZIPKIN);
	ck_assert_ptr_null(meshcfg_trace_provider(mc, "nope"));
	ck_assert_ptr_null(meshcfg_trace_provider(NULL, "zk"));
	{
		/* /debug/mesh shows every tracing provider, header values left out */
		struct mesh_buf b;

		mesh_buf_init(&b, 1 << 16);
		meshcfg_json(&b, mc);
		mesh_buf_putc(&b, '\0');
		ck_assert_int_eq(b.err, 0);
		ck_assert_ptr_nonnull(strstr(b.data, "\"defaultProviders\":{\"tracing\":[\"og\",\"zk\"]}"));
		ck_assert_ptr_nonnull(strstr(b.data, "{\"name\":\"otel\",\"opentelemetry\":{\"service\":"
						     "\"observability/otel.observability.svc.cluster.local\",\"port\":4318,"
						     "\"http\":{\"path\":\"/v1/traces\",\"headers\":[{\"name\":\"x-a\"},{\"name\":\"x-b\"}]}}}"));
		ck_assert_ptr_nonnull(strstr(b.data, "\"grpc\":{\"initialMetadata\":[{\"name\":\"authorization\"}]}"));
		ck_assert_ptr_null(strstr(b.data, "from-env"));
		mesh_buf_cleanup(&b);
	}
	/* a header value changed: another config */
	setenv("MESHCFG_TEST_TRACE_ENV", "other", 1);
	mc2 = parse_ok(yaml, NULL);
	ck_assert_uint_ne(mc->hash, mc2->hash);
	meshcfg_unref(mc2);
	meshcfg_unref(mc);
	unsetenv("MESHCFG_TEST_TRACE_ENV");
	ck_assert_int_eq(parse_bad("extensionProviders: [{name: o, opentelemetry: {port: 4317}}]\n", err), -EINVAL);
	ck_assert_msg(strstr(err, "extensionProviders.opentelemetry.service"), "%s", err);
	ck_assert_int_eq(parse_bad("extensionProviders: [{name: o, opentelemetry: {service: a, port: 4318, "
				   "http: {timeout: soon}}}]\n", err), -EINVAL);
	ck_assert_msg(strstr(err, "extensionProviders.opentelemetry.http.timeout"), "%s", err);
	/* defaultConfig.tracing's custom tags and path tag length, snake or camel case */
	mc = parse_ok("defaultConfig:\n  tracing:\n    maxPathTagLength: 300\n    custom_tags:\n"
		      "      a: {literal: {value: x}}\n      b: {environment: {name: E, defaultValue: d}}\n"
		      "      c: {header: {name: x-c}}\n", NULL);
	ck_assert_uint_eq(mc->trace_max_path_tag_len, 300);
	ck_assert_uint_eq(mc->n_trace_custom_tags, 3);
	ck_assert_str_eq(mc->trace_custom_tags[0].name, "a");
	ck_assert_int_eq(mc->trace_custom_tags[0].kind, CFG_TEL_TAG_LITERAL);
	ck_assert_str_eq(mc->trace_custom_tags[0].value, "x");
	ck_assert_int_eq(mc->trace_custom_tags[1].kind, CFG_TEL_TAG_ENVIRONMENT);
	ck_assert_str_eq(mc->trace_custom_tags[1].default_value, "d");
	ck_assert_int_eq(mc->trace_custom_tags[2].kind, CFG_TEL_TAG_HEADER);
	ck_assert_ptr_null(mc->trace_custom_tags[2].default_value);
	meshcfg_unref(mc);
	ck_assert_int_eq(parse_bad("defaultConfig: {tracing: {custom_tags: {a: {literal: {value: x}, header: {name: h}}}}}\n",
				   err), -EINVAL);
	ck_assert_msg(strstr(err, "defaultConfig.tracing.custom_tags: tag a: exactly one of"), "%s", err);
	ck_assert_int_eq(parse_bad("defaultConfig: {tracing: {max_path_tag_length: 0}}\n", err), -EINVAL);
	ck_assert_msg(strstr(err, "defaultConfig.tracing.max_path_tag_length"), "%s", err);
	mc = parse_ok("extensionProviders: [{name: sw, skywalking: {service: s, port: 11800}}]\n"
		      "defaultProviders: {tracing: [sw]}\n", warn);
	ck_assert_msg(strstr(warn, "tracing kinds other than zipkin and opentelemetry"), "%s", warn);
	meshcfg_unref(mc);
}
END_TEST

/* The istio ConfigMap itself: its data.mesh, lines counted in the file. */
START_TEST(meshcfg_configmap_form)
{
	static const char cm[] = "apiVersion: v1\n"
				 "kind: ConfigMap\n"
				 "metadata:\n"
				 "  name: istio\n"
				 "  namespace: istio-system\n"
				 "data:\n"
				 "  mesh: |\n"
				 "    outboundTrafficPolicy:\n"
				 "      mode: REGISTRY_ONLY\n"
				 "    connectTimeout: nope\n";
	static const char good[] = "kind: ConfigMap\ndata:\n  mesh: |\n    connectTimeout: 3s\n";
	char err[MESHCFG_ERR_CAP];
	struct mesh_config *mc;

	parse_bad(cm, err);
	ck_assert_msg(strstr(err, "mesh.yaml:10: field connectTimeout"), "%s", err);
	mc = parse_ok(good, NULL);
	ck_assert_int_eq(mc->connect_timeout, 3000000000LL);
	meshcfg_unref(mc);
	/* a ConfigMap without the mesh key says so, not "unknown field kind" */
	ck_assert_int_eq(parse_bad("kind: ConfigMap\ndata:\n  meshNetworks: x\n", err), -EINVAL);
	ck_assert_msg(strstr(err, "a ConfigMap without a `mesh` key"), "%s", err);
	ck_assert_msg(!strstr(err, "unknown field"), "%s", err);
}
END_TEST

/* meshctl validate --mesh-config: the same verdict and messages as meshd. */
START_TEST(meshcfg_meshctl_validate)
{
	char dir[] = "/tmp/test_meshcfg.XXXXXX", path[PATH_MAX], args[PATH_MAX + 32], out[8192];
	FILE *f;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/mesh", dir);
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fputs("outboundTrafficPolicy:\n  mode: NOPE\n", f);
	fclose(f);
	snprintf(args, sizeof(args), "--mesh-config %s", path);
	ck_assert_int_eq(testutil_meshctl(out, sizeof(out), "validate", args, "2>&1"), 1);
	ck_assert_msg(strstr(out, ":2: field outboundTrafficPolicy.mode"), "%s", out);
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fputs("outboundTrafficPolicy:\n  mode: REGISTRY_ONLY\nenablePrometheusMerge: true\n", f);
	fclose(f);
	ck_assert_int_eq(testutil_meshctl(out, sizeof(out), "validate", args, "2>&1"), 0);
	ck_assert_msg(strstr(out, "not acted on by meshd: enablePrometheusMerge"), "%s", out);
	unlink(path);
	rmdir(dir);
}
END_TEST

static Suite *meshcfg_suite(void)
{
	Suite *s = suite_create("meshcfg");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, meshcfg_defaults_are_istios);
	tcase_add_test(tc, meshcfg_fields_read);
	tcase_add_test(tc, meshcfg_errors_name_line_and_field);
	tcase_add_test(tc, meshcfg_malformed_yaml);
	tcase_add_test(tc, meshcfg_ignored_fields_warn);
	tcase_add_test(tc, meshcfg_configmap_form);
	tcase_add_test(tc, meshcfg_tracing);
	tcase_add_test(tc, meshcfg_access_log_providers);
	tcase_add_test(tc, meshcfg_metrics_providers);
	tcase_add_test(tc, meshcfg_trace_providers);
	tcase_add_test(tc, meshcfg_meshctl_validate);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return testutil_run(meshcfg_suite()) ? 1 : 0;
}
