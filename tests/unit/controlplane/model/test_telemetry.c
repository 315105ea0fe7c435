/*
 * test_telemetry.c - the effective Telemetry of a workload
 * (model_telemetry_for): which objects apply (root, namespace, workload
 * selector; oldest first; targetRefs never on a sidecar) and the merge of
 * metrics, tracing and access logging as Istio's pilot/pkg/model/
 * telemetry.go does it.  The cases follow Istio's Telemetry API task pages
 * (customize metrics, tracing, access logging) and the Telemetry of
 * ../shared/samples/seed-yaml/003/11.yaml.  Each breaks if the rule it
 * names is broken.
 */
#include "common/buf.h"
#include "controlplane/model/model.h"
#include "controlplane/model/telemetry.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

#define TEST_JSON_MAX (1u << 20)

static struct model *m_cur;

static struct model_telemetry *eff(const char *yaml, const char *ns, const char *app,
				   const struct model_telemetry_defaults *d)
{
	struct cfg_kv kv = { "app", (char *)app };
	struct cfg_labels labels = { &kv, app ? 1 : 0 };
	struct model_telemetry *t = NULL;

	model_unref(m_cur);
	m_cur = testutil_model("t.yaml", yaml);
	ck_assert_ptr_nonnull(m_cur);
	ck_assert_int_eq(model_telemetry_for(m_cur, ns, &labels, d, &t), 0);
	ck_assert_ptr_nonnull(t);
	return t;
}

static void teardown(void)
{
	model_unref(m_cur);
	m_cur = NULL;
}

static const struct model_tel_metrics_provider *prov(const struct model_telemetry *t, const char *name)
{
	size_t i;

	for (i = 0; i < t->n_metrics; i++)
		if (strcmp(t->metrics[i].name, name) == 0)
			return &t->metrics[i];
	return NULL;
}

static const struct model_tel_metric *metric(const struct model_tel_metrics_mode *mm, const char *name)
{
	size_t i;

	for (i = 0; i < mm->n_overrides; i++)
		if (strcmp(mm->overrides[i].name, name) == 0)
			return &mm->overrides[i];
	return NULL;
}

/* "name=value,name=-" (REMOVE as "-") of a metric's tags, in order. */
static const char *tags(const struct model_tel_metric *e)
{
	static char buf[512];
	size_t i, n = 0;

	buf[0] = '\0';
	for (i = 0; e && i < e->n_tags; i++)
		n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%s%s=%s", i ? "," : "", e->tags[i].name,
				      e->tags[i].remove ? "-" : e->tags[i].value);
	return buf;
}

static char *json(const struct model_telemetry *t)
{
	struct mesh_buf b;

	mesh_buf_init(&b, TEST_JSON_MAX);
	model_telemetry_json(t, &b);
	ck_assert_int_eq(b.err, 0);
	return mesh_buf_take(&b, NULL);
}

/* ---------------------------------------------------------------- metrics */

/* Istio task "Customizing Istio Metrics": the mesh removes a tag from every
 * metric, the namespace adds tags to REQUEST_COUNT (one client only), a
 * workload disables REQUEST_COUNT on its client side. */
static const char *const metrics_yaml =
	"apiVersion: telemetry.istio.io/v1\n"
	"kind: Telemetry\n"
	"metadata: {name: remove-tags, namespace: istio-system}\n"
	"spec:\n"
	"  metrics:\n"
	"  - providers: [{name: prometheus}]\n"
	"    overrides:\n"
	"    - match: {mode: CLIENT_AND_SERVER, metric: ALL_METRICS}\n"
	"      tagOverrides:\n"
	"        grpc_response_status: {operation: REMOVE}\n"
	"---\n"
	"apiVersion: telemetry.istio.io/v1\n"
	"kind: Telemetry\n"
	"metadata: {name: custom-tags, namespace: bookinfo}\n"
	"spec:\n"
	"  metrics:\n"
	"  - overrides:\n"
	"    - match: {metric: REQUEST_COUNT, mode: CLIENT}\n"
	"      tagOverrides:\n"
	"        destination_x: {value: \"upstream_peer.labels['app'].value\"}\n"
	"    - match: {metric: REQUEST_COUNT}\n"
	"      tagOverrides:\n"
	"        source_x: {value: \"downstream_peer.labels['app'].value\"}\n"
	"---\n"
	"apiVersion: telemetry.istio.io/v1\n"
	"kind: Telemetry\n"
	"metadata: {name: reviews-client, namespace: bookinfo}\n"
	"spec:\n"
	"  selector: {matchLabels: {app: reviews}}\n"
	"  metrics:\n"
	"  - overrides:\n"
	"    - match: {metric: REQUEST_COUNT, mode: CLIENT}\n"
	"      disabled: true\n"
	"---\n"
	"apiVersion: telemetry.istio.io/v1\n"
	"kind: Telemetry\n"
	"metadata: {name: by-ref, namespace: bookinfo}\n"
	"spec:\n"
	"  targetRefs: [{kind: Service, name: reviews}]\n"
	"  metrics:\n"
	"  - overrides: [{disabled: true}]\n";

START_TEST(metrics_levels_merge)
{
	struct model_telemetry *t = eff(metrics_yaml, "bookinfo", "reviews", &model_telemetry_istio_defaults);
	const struct model_tel_metrics_provider *p;
	const struct model_tel_metric *e;

	ck_assert_str_eq(t->root->name, "remove-tags");
	ck_assert_str_eq(t->ns->name, "custom-tags");
	/* the targetRefs object is not a sidecar's */
	ck_assert_uint_eq(t->n_workload, 1);
	ck_assert_str_eq(t->workload[0]->name, "reviews-client");
	ck_assert_uint_eq(t->n_metrics, 1);
	p = prov(t, "prometheus");
	ck_assert_ptr_nonnull(p);
	ck_assert(!p->client.disabled && !p->server.disabled);
	/* ALL_METRICS expands to every metric: the removed tag on each */
	ck_assert_uint_eq(p->client.n_overrides, 10);
	ck_assert_uint_eq(p->server.n_overrides, 10);
	ck_assert_str_eq(p->client.overrides[0].name, "GRPC_REQUEST_MESSAGES"); /* sorted */
	ck_assert_str_eq(tags(metric(&p->server, "TCP_SENT_BYTES")), "grpc_response_status=-");
	e = metric(&p->client, "REQUEST_COUNT");
	ck_assert(e->disabled);
	ck_assert_str_eq(tags(e), "destination_x=upstream_peer.labels['app'].value,grpc_response_status=-,"
				  "source_x=downstream_peer.labels['app'].value");
	e = metric(&p->server, "REQUEST_COUNT");
	ck_assert(!e->disabled);
	ck_assert_str_eq(tags(e), "grpc_response_status=-,source_x=downstream_peer.labels['app'].value");
	model_telemetry_free(t);

	/* another workload of the namespace: not disabled */
	t = eff(metrics_yaml, "bookinfo", "ratings", &model_telemetry_istio_defaults);
	ck_assert_uint_eq(t->n_workload, 0);
	ck_assert(!metric(&prov(t, "prometheus")->client, "REQUEST_COUNT")->disabled);
	model_telemetry_free(t);

	/* another namespace: the mesh level only */
	t = eff(metrics_yaml, "other", "reviews", &model_telemetry_istio_defaults);
	ck_assert_ptr_null(t->ns);
	ck_assert_str_eq(tags(metric(&prov(t, "prometheus")->client, "REQUEST_COUNT")), "grpc_response_status=-");
	model_telemetry_free(t);
}
END_TEST

/* Disabling ALL_METRICS drops the mode's filter; a lower level that
 * overrides any metric of that mode brings it back (telemetry.go:
 * "root namespace disables all, but then enables them by namespace"). */
START_TEST(metrics_disable_all_and_reenable)
{
	static const char *const yaml =
		"apiVersion: telemetry.istio.io/v1\n"
		"kind: Telemetry\n"
		"metadata: {name: mesh-default, namespace: istio-system}\n"
		"spec:\n"
		"  metrics:\n"
		"  - providers: [{name: prometheus}]\n"
		"    overrides: [{disabled: true}]\n"
		"---\n"
		"apiVersion: telemetry.istio.io/v1\n"
		"kind: Telemetry\n"
		"metadata: {name: ns, namespace: shop}\n"
		"spec:\n"
		"  metrics:\n"
		"  - overrides: [{match: {metric: REQUEST_COUNT, mode: SERVER}, disabled: false}]\n";
	struct model_telemetry *t = eff(yaml, "shop", NULL, NULL);
	const struct model_tel_metrics_provider *p = prov(t, "prometheus");

	ck_assert_ptr_nonnull(p);
	ck_assert(p->client.disabled);
	ck_assert(!p->server.disabled);
	ck_assert_uint_eq(p->server.n_overrides, 1);
	ck_assert(!p->server.overrides[0].disabled);
	model_telemetry_free(t);

	t = eff(yaml, "web", NULL, NULL);
	p = prov(t, "prometheus");
	ck_assert(p->client.disabled && p->server.disabled);
	model_telemetry_free(t);
}
END_TEST

/* providers: the most specific list wins, not merged; an entry without
 * providers inherits its parent's; a provider a lower level dropped is
 * out even where a higher level configured it. */
START_TEST(metrics_providers_override)
{
	static const char *const yaml =
		"apiVersion: telemetry.istio.io/v1\n"
		"kind: Telemetry\n"
		"metadata: {name: mesh-default, namespace: istio-system}\n"
		"spec:\n"
		"  metrics:\n"
		"  - providers: [{name: prometheus}]\n"
		"    reportingInterval: 10s\n"
		"    overrides: [{match: {metric: REQUEST_SIZE}, disabled: true}]\n"
		"---\n"
		"apiVersion: telemetry.istio.io/v1\n"
		"kind: Telemetry\n"
		"metadata: {name: ns, namespace: shop}\n"
		"spec:\n"
		"  metrics:\n"
		"  - providers: [{name: stackdriver}]\n";
	struct model_telemetry *t = eff(yaml, "shop", NULL, &model_telemetry_istio_defaults);

	ck_assert_uint_eq(t->n_metrics, 1);
	ck_assert_str_eq(t->metrics[0].name, "stackdriver");
	ck_assert_uint_eq(t->metrics[0].client.n_overrides, 0);
	model_telemetry_free(t);

	t = eff(yaml, "web", NULL, &model_telemetry_istio_defaults);
	ck_assert_uint_eq(t->n_metrics, 1);
	ck_assert_str_eq(t->metrics[0].name, "prometheus");
	ck_assert_int_eq(t->metrics[0].reporting_interval, 10000000000LL);
	ck_assert(metric(&t->metrics[0].client, "REQUEST_SIZE")->disabled);
	model_telemetry_free(t);
}
END_TEST

/* No Telemetry: the default providers without overrides; tracing and
 * access logging fall back to the legacy settings (null). */
START_TEST(no_telemetry_defaults)
{
	static const char *const yaml = "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n";
	struct model_telemetry *t = eff(yaml, "shop", "a", &model_telemetry_istio_defaults);
	char *j = json(t);

	ck_assert_str_eq(j, "{\"telemetries\":{\"root\":null,\"namespace\":null,\"workload\":[]},\"metrics\":[{"
			    "\"provider\":\"prometheus\",\"client\":{\"disabled\":false,\"overrides\":[]},\"server\":{"
			    "\"disabled\":false,\"overrides\":[]}}],\"tracing\":null,\"accessLogging\":null}");
	free(j);
	model_telemetry_free(t);
	t = eff(yaml, "shop", "a", NULL);
	ck_assert_uint_eq(t->n_metrics, 0);
	model_telemetry_free(t);
}
END_TEST

/* ---------------------------------------------------------------- tracing */

/* Istio task "Configure tracing using Telemetry API": a mesh default with
 * a provider and 1%, a namespace raising it to 100% with a custom tag, a
 * workload turning span reporting off on its server side. */
START_TEST(tracing_merge)
{
	static const char *const yaml =
		"apiVersion: telemetry.istio.io/v1\n"
		"kind: Telemetry\n"
		"metadata: {name: mesh-default, namespace: istio-system}\n"
		"spec:\n"
		"  tracing:\n"
		"  - providers: [{name: zipkin}]\n"
		"    randomSamplingPercentage: 1\n"
		"    customTags: {cluster: {environment: {name: CLUSTER_ID, defaultValue: unknown}}}\n"
		"---\n"
		"apiVersion: telemetry.istio.io/v1\n"
		"kind: Telemetry\n"
		"metadata: {name: ns, namespace: shop}\n"
		"spec:\n"
		"  tracing:\n"
		"  - randomSamplingPercentage: 100\n"
		"    customTags: {my_tag: {literal: {value: foo}}}\n"
		"---\n"
		"apiVersion: telemetry.istio.io/v1\n"
		"kind: Telemetry\n"
		"metadata: {name: quiet, namespace: shop}\n"
		"spec:\n"
		"  selector: {matchLabels: {app: cart}}\n"
		"  tracing:\n"
		"  - match: {mode: SERVER}\n"
		"    disableSpanReporting: true\n";
	struct model_telemetry *t = eff(yaml, "shop", "cart", NULL);

	ck_assert(t->has_tracing);
	ck_assert_str_eq(t->client_tracing.provider, "zipkin");
	ck_assert(!t->client_tracing.disabled);
	ck_assert_double_eq(t->client_tracing.random_sampling_percentage, 100);
	/* customTags replace the parent's (a shallow merge) */
	ck_assert_uint_eq(t->client_tracing.n_custom_tags, 1);
	ck_assert_str_eq(t->client_tracing.custom_tags[0].name, "my_tag");
	ck_assert_str_eq(t->client_tracing.custom_tags[0].value, "foo");
	ck_assert(t->server_tracing.disabled);
	ck_assert_double_eq(t->server_tracing.random_sampling_percentage, 100);
	model_telemetry_free(t);

	t = eff(yaml, "web", NULL, NULL);
	ck_assert_double_eq(t->server_tracing.random_sampling_percentage, 1);
	ck_assert(!t->server_tracing.disabled);
	ck_assert_int_eq(t->server_tracing.custom_tags[0].kind, CFG_TEL_TAG_ENVIRONMENT);
	ck_assert_str_eq(t->server_tracing.custom_tags[0].default_value, "unknown");
	model_telemetry_free(t);
}
END_TEST

/* Sampling set without any provider: nothing to report to (disabled);
 * no tracing anywhere and no default provider: null. */
START_TEST(tracing_without_provider)
{
	static const char *const yaml = "apiVersion: telemetry.istio.io/v1\n"
					"kind: Telemetry\n"
					"metadata: {name: t, namespace: shop}\n"
					"spec: {tracing: [{randomSamplingPercentage: 50}]}\n";
	static const char *const tr[] = { "otel" };
	struct model_telemetry_defaults d = { NULL, 0, tr, 1, NULL, 0 };
	struct model_telemetry *t = eff(yaml, "shop", NULL, NULL);

	ck_assert(t->has_tracing);
	ck_assert(t->client_tracing.disabled && t->server_tracing.disabled);
	model_telemetry_free(t);
	t = eff(yaml, "shop", NULL, &d);
	ck_assert_str_eq(t->client_tracing.provider, "otel");
	ck_assert(!t->client_tracing.disabled);
	ck_assert_double_eq(t->client_tracing.random_sampling_percentage, 50);
	model_telemetry_free(t);
	t = eff(yaml, "web", NULL, NULL);
	ck_assert(!t->has_tracing);
	model_telemetry_free(t);
}
END_TEST

/* ---------------------------------------------------------------- access logging */

/* Istio task "Configure access logs with Telemetry API": mesh-wide envoy
 * logs, a workload logging only errors, a namespace turning logs off. */
START_TEST(access_logging_merge)
{
	static const char *const yaml =
		"apiVersion: telemetry.istio.io/v1\n"
		"kind: Telemetry\n"
		"metadata: {name: mesh-default, namespace: istio-system}\n"
		"spec:\n"
		"  accessLogging: [{providers: [{name: envoy}]}]\n"
		"---\n"
		"apiVersion: telemetry.istio.io/v1\n"
		"kind: Telemetry\n"
		"metadata: {name: errors-only, namespace: shop}\n"
		"spec:\n"
		"  selector: {matchLabels: {app: cart}}\n"
		"  accessLogging:\n"
		"  - providers: [{name: envoy}]\n"
		"    filter: {expression: \"response.code >= 400\"}\n"
		"---\n"
		"apiVersion: telemetry.istio.io/v1\n"
		"kind: Telemetry\n"
		"metadata: {name: logs-off, namespace: quiet}\n"
		"spec:\n"
		"  accessLogging: [{disabled: true}]\n"
		"---\n"
		"apiVersion: telemetry.istio.io/v1\n"
		"kind: Telemetry\n"
		"metadata: {name: client-off, namespace: half}\n"
		"spec:\n"
		"  accessLogging: [{match: {mode: CLIENT}, disabled: true}]\n";
	struct model_telemetry *t = eff(yaml, "shop", "cart", NULL);

	ck_assert(t->has_access_logging);
	ck_assert_uint_eq(t->n_server_logs, 1);
	ck_assert_str_eq(t->server_logs[0].provider, "envoy");
	ck_assert_str_eq(t->server_logs[0].filter, "response.code >= 400");
	ck_assert(!t->server_logs[0].disabled);
	model_telemetry_free(t);

	t = eff(yaml, "shop", "web", NULL);
	ck_assert_uint_eq(t->n_client_logs, 1);
	ck_assert_ptr_null(t->client_logs[0].filter);
	model_telemetry_free(t);

	t = eff(yaml, "quiet", NULL, NULL);
	ck_assert(t->client_logs[0].disabled && t->server_logs[0].disabled);
	model_telemetry_free(t);

	t = eff(yaml, "half", NULL, NULL);
	ck_assert(t->client_logs[0].disabled);
	ck_assert(!t->server_logs[0].disabled);
	model_telemetry_free(t);
}
END_TEST

/* ---------------------------------------------------------------- selection */

/* Several namespace-wide objects: the oldest applies, as Istio's sort by
 * creation time; a selector in the root namespace selects only its own
 * namespace's workloads. */
START_TEST(selection_oldest_and_root_selector)
{
	static const char *const yaml =
		"apiVersion: telemetry.istio.io/v1\n"
		"kind: Telemetry\n"
		"metadata: {name: a-newer, namespace: shop, creationTimestamp: \"2024-02-01T00:00:00Z\"}\n"
		"spec: {tracing: [{providers: [{name: newer}]}]}\n"
		"---\n"
		"apiVersion: telemetry.istio.io/v1\n"
		"kind: Telemetry\n"
		"metadata: {name: z-older, namespace: shop, creationTimestamp: \"2024-01-01T00:00:00Z\"}\n"
		"spec: {tracing: [{providers: [{name: older}]}]}\n"
		"---\n"
		"apiVersion: telemetry.istio.io/v1\n"
		"kind: Telemetry\n"
		"metadata: {name: root-sel, namespace: istio-system}\n"
		"spec:\n"
		"  selector: {matchLabels: {app: cart}}\n"
		"  tracing: [{providers: [{name: rootsel}]}]\n";
	struct model_telemetry *t = eff(yaml, "shop", "cart", NULL);

	ck_assert_str_eq(t->ns->name, "z-older");
	ck_assert_str_eq(t->client_tracing.provider, "older");
	ck_assert_uint_eq(t->n_workload, 0);
	model_telemetry_free(t);

	t = eff(yaml, "istio-system", "cart", NULL);
	ck_assert_ptr_null(t->root);
	ck_assert_uint_eq(t->n_workload, 1);
	ck_assert_str_eq(t->client_tracing.provider, "rootsel");
	model_telemetry_free(t);
}
END_TEST

/* The seed sample (v1alpha1): all three signals from one mesh-wide object. */
START_TEST(seed_sample_v1alpha1)
{
	static const char *const yaml = "apiVersion: telemetry.istio.io/v1alpha1\n"
					"kind: Telemetry\n"
					"metadata: {name: mesh-telemetry, namespace: istio-system}\n"
					"spec:\n"
					"  tracing:\n"
					"  - providers: [{name: jaeger}]\n"
					"    randomSamplingPercentage: 100.0\n"
					"    customTags: {environment: {literal: {value: production}}}\n"
					"  metrics:\n"
					"  - providers: [{name: prometheus}]\n"
					"    overrides:\n"
					"    - match: {metric: ALL_METRICS}\n"
					"      tagOverrides: {source_cluster: {value: a4co-cluster}}\n"
					"  accessLogging: [{providers: [{name: envoy}]}]\n";
	struct model_telemetry *t = eff(yaml, "app", "web", &model_telemetry_istio_defaults);
	char *j = json(t);

	ck_assert_str_eq(t->root->name, "mesh-telemetry");
	ck_assert_str_eq(tags(metric(&prov(t, "prometheus")->server, "TCP_OPENED_CONNECTIONS")),
			 "source_cluster=a4co-cluster");
	ck_assert_str_eq(t->server_tracing.provider, "jaeger");
	ck_assert_double_eq(t->server_tracing.random_sampling_percentage, 100);
	ck_assert_str_eq(t->client_logs[0].provider, "envoy");
	ck_assert_ptr_nonnull(strstr(j, "\"telemetries\":{\"root\":\"istio-system/mesh-telemetry\""));
	ck_assert_ptr_nonnull(strstr(j, "\"customTags\":{\"environment\":{\"literal\":{\"value\":\"production\"}}}"));
	ck_assert_ptr_nonnull(strstr(j, "\"accessLogging\":{\"client\":[{\"provider\":\"envoy\",\"disabled\":false,"
					"\"filter\":null}]"));
	free(j);
	model_telemetry_free(t);
}
END_TEST

/* Validation still refuses what Istio refuses, now while decoding. */
START_TEST(decode_rejects)
{
	static const char *const bad = "apiVersion: telemetry.istio.io/v1\n"
				       "kind: Telemetry\n"
				       "metadata: {name: t, namespace: shop}\n"
				       "spec:\n"
				       "  metrics: [{overrides: [{tagOverrides: {a: {operation: UPSERT}}}]}]\n";
	struct cfg_parse_result res;
	size_t i;
	bool rejected = false;

	memset(&res, 0, sizeof(res));
	ck_assert_int_eq(cfg_parse_buffer("t.yaml", bad, strlen(bad), &res), 0);
	for (i = 0; i < res.n_errors; i++)
		if (!res.errors[i].warning && strstr(res.errors[i].message, "must specify a value for UPSERT"))
			rejected = true;
	ck_assert(rejected);
	ck_assert_uint_eq(res.n_objects, 0);
	cfg_parse_result_cleanup(&res);
}
END_TEST

/* A valid Telemetry is served (gen puts it in istio.stats, access logs and
 * tracing): parsing it gives no finding at all, in particular not the
 * "not implemented yet: Telemetry ... no proxy receives it" warning meshd
 * used to log and meshctl validate used to print for every Telemetry. */
START_TEST(decode_valid_no_warning)
{
	static const char *const ok = "apiVersion: telemetry.istio.io/v1\n"
				      "kind: Telemetry\n"
				      "metadata: {name: remove-request-count, namespace: istio-system}\n"
				      "spec:\n"
				      "  metrics:\n"
				      "  - providers: [{name: prometheus}]\n"
				      "    overrides:\n"
				      "    - match: {metric: REQUEST_COUNT, mode: CLIENT_AND_SERVER}\n"
				      "      disabled: true\n";
	struct cfg_parse_result res;

	memset(&res, 0, sizeof(res));
	ck_assert_int_eq(cfg_parse_buffer("t.yaml", ok, strlen(ok), &res), 0);
	ck_assert_uint_eq(res.n_objects, 1);
	ck_assert_msg(res.n_errors == 0, "%zu findings, the first: %s", res.n_errors,
		      res.n_errors ? res.errors[0].message : "");
	cfg_parse_result_cleanup(&res);
}
END_TEST

/* issue 14: a tagOverrides value meshproxy will not evaluate is a warning
 * naming the Telemetry's field and what happens: valid CEL reads
 * "unknown", an unparseable one is left out, an unknown function makes
 * proxies reject the listener; the object is kept; a supported one (or a
 * literal) says nothing. */
START_TEST(decode_warns_tag_expressions)
{
	static const char *const y = "apiVersion: telemetry.istio.io/v1\n"
				     "kind: Telemetry\n"
				     "metadata: {name: t, namespace: shop}\n"
				     "spec:\n"
				     "  metrics:\n"
				     "  - overrides:\n"
				     "    - match: {metric: REQUEST_COUNT}\n"
				     "      tagOverrides:\n"
				     "        source_cluster: {value: a4co-cluster}\n"
				     "        a: {value: 'a b'}\n"
				     "        b: {value: 'foo(request.path)'}\n"
				     "        c: {value: \"request.headers['x-user']\"}\n"
				     "        d: {value: \"'lit'\"}\n"
				     "        e: {value: 'string(destination.port)'}\n";
	static const char *const want[] = {
		"spec.metrics[0].overrides[0].tagOverrides.source_cluster.value",
		"expression \"a4co-cluster\" is not one meshproxy evaluates; the tag reads \"unknown\"",
		"tagOverrides.a.value", "failed to parse expression \"a b\"",
		"tagOverrides.b.value", "no such function 'foo'; proxies reject the listeners",
	};
	struct cfg_parse_result res;
	size_t i, k;

	memset(&res, 0, sizeof(res));
	ck_assert_int_eq(cfg_parse_buffer("t.yaml", y, strlen(y), &res), 0);
	ck_assert_uint_eq(res.n_objects, 1);
	ck_assert_uint_eq(res.n_errors, 3);
	for (i = 0; i < res.n_errors; i++)
		ck_assert(res.errors[i].warning);
	for (k = 0; k < sizeof(want) / sizeof(want[0]); k++) {
		bool found = false;

		for (i = 0; i < res.n_errors; i++) {
			char full[1024];

			snprintf(full, sizeof(full), "%s: %s", res.errors[i].field ? res.errors[i].field : "",
				 res.errors[i].message);
			found = found || strstr(full, want[k]);
		}
		ck_assert_msg(found, "no finding with %s", want[k]);
	}
	cfg_parse_result_cleanup(&res);
}
END_TEST

static Suite *telemetry_suite(void)
{
	Suite *s = suite_create("telemetry");
	TCase *tc = tcase_create("merge");

	tcase_add_checked_fixture(tc, NULL, teardown);
	tcase_add_test(tc, metrics_levels_merge);
	tcase_add_test(tc, metrics_disable_all_and_reenable);
	tcase_add_test(tc, metrics_providers_override);
	tcase_add_test(tc, no_telemetry_defaults);
	tcase_add_test(tc, tracing_merge);
	tcase_add_test(tc, tracing_without_provider);
	tcase_add_test(tc, access_logging_merge);
	tcase_add_test(tc, selection_oldest_and_root_selector);
	tcase_add_test(tc, seed_sample_v1alpha1);
	tcase_add_test(tc, decode_rejects);
	tcase_add_test(tc, decode_valid_no_warning);
	tcase_add_test(tc, decode_warns_tag_expressions);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return testutil_run(telemetry_suite()) ? 1 : 0;
}
