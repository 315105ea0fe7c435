/*
 * test_metrics.c - metrics_render() output is Prometheus text format 0.0.4
 * and reflects the counters, gauges and the convergence histogram.
 */
#include "common/buf.h"
#include "controlplane/config/config.h"
#include "controlplane/metrics/metrics.h"

#include <check.h>
#include <ctype.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TEST_RENDER_MAX (1u << 20)

static char *render(void)
{
	struct mesh_buf b;

	mesh_buf_init(&b, TEST_RENDER_MAX);
	ck_assert_int_eq(metrics_render(&b), 0);
	return mesh_buf_take(&b, NULL);
}

/* Value of the sample whose name+labels is exactly `series`; NAN when absent. */
static double sample(const char *text, const char *series)
{
	size_t n = strlen(series);
	const char *p = text;

	while (p && *p) {
		if (strncmp(p, series, n) == 0 && p[n] == ' ')
			return strtod(p + n + 1, NULL);
		p = strchr(p, '\n');
		if (p)
			p++;
	}
	return NAN;
}

static bool is_name_start(char c)
{
	return isalpha((unsigned char)c) || c == '_' || c == ':';
}

static bool is_name_char(char c)
{
	return is_name_start(c) || isdigit((unsigned char)c);
}

/* Base metric name of a sample (strip histogram suffixes when the base is a histogram). */
static void family_of(const char *name, size_t n, char *out, size_t cap, const char *hist_names)
{
	static const char *const sfx[] = { "_bucket", "_sum", "_count" };
	size_t i;

	ck_assert_uint_lt(n, cap);
	memcpy(out, name, n);
	out[n] = '\0';
	for (i = 0; i < 3; i++) {
		size_t l = strlen(sfx[i]);
		char base[256];

		if (n > l && strcmp(out + n - l, sfx[i]) == 0) {
			ck_assert_uint_lt(n - l + 2, sizeof(base));
			base[0] = ' ';
			memcpy(base + 1, out, n - l);
			base[n - l + 1] = '\0';
			if (strstr(hist_names, base)) {
				out[n - l] = '\0';
				return;
			}
		}
	}
}

/*
 * A small checker of the text format: HELP then TYPE before the samples of
 * a family, valid names, label syntax, a float value, no duplicate TYPE.
 */
static void check_exposition(const char *text)
{
	char typed[4096] = " ", hist[1024] = " ", helped[4096] = " ";
	const char *line = text, *end;
	int samples = 0;

	ck_assert_msg(text[0] && text[strlen(text) - 1] == '\n', "must end with a newline");
	for (; *line; line = end + 1) {
		char name[256], key[260];
		const char *p = line;
		size_t n;

		end = strchr(line, '\n');
		ck_assert_ptr_nonnull(end);
		ck_assert_msg(end > line, "empty line");
		if (strncmp(p, "# HELP ", 7) == 0 || strncmp(p, "# TYPE ", 7) == 0) {
			bool is_type = p[2] == 'T';
			const char *ns = p + 7, *ne = ns;

			ck_assert(is_name_start(*ne));
			while (is_name_char(*ne))
				ne++;
			ck_assert_msg(*ne == ' ', "HELP/TYPE needs text: %.*s", (int)(end - line), line);
			n = (size_t)(ne - ns);
			ck_assert_uint_lt(n, sizeof(name));
			memcpy(name, ns, n);
			name[n] = '\0';
			key[0] = ' ';
			memcpy(key + 1, name, n);
			key[n + 1] = ' ';
			key[n + 2] = '\0';
			if (is_type) {
				const char *t = ne + 1;
				size_t tl = (size_t)(end - t);

				ck_assert_msg(strstr(helped, key) != NULL, "TYPE before HELP for %s", name);
				ck_assert_msg(strstr(typed, key) == NULL, "duplicate TYPE for %s", name);
				ck_assert_msg((tl == 7 && !strncmp(t, "counter", 7)) || (tl == 5 && !strncmp(t, "gauge", 5)) ||
						      (tl == 9 && !strncmp(t, "histogram", 9)),
					      "bad type %.*s", (int)tl, t);
				ck_assert_uint_lt(strlen(typed) + n + 2, sizeof(typed));
				strncat(typed, key + 1, sizeof(typed) - strlen(typed) - 1);
				if (tl == 9) {
					ck_assert_uint_lt(strlen(hist) + n + 2, sizeof(hist));
					strncat(hist, key + 1, sizeof(hist) - strlen(hist) - 1);
				}
			} else {
				ck_assert_uint_lt(strlen(helped) + n + 2, sizeof(helped));
				strncat(helped, key + 1, sizeof(helped) - strlen(helped) - 1);
			}
			continue;
		}
		ck_assert_msg(*p != '#', "unknown comment line");
		/* sample: name{labels} value */
		ck_assert(is_name_start(*p));
		while (is_name_char(*p))
			p++;
		family_of(line, (size_t)(p - line), name, sizeof(name), hist);
		key[0] = ' ';
		n = strlen(name);
		memcpy(key + 1, name, n);
		key[n + 1] = ' ';
		key[n + 2] = '\0';
		ck_assert_msg(strstr(typed, key) != NULL, "sample of %s before its TYPE", name);
		if (*p == '{') {
			p++;
			while (*p != '}') {
				ck_assert(is_name_start(*p));
				while (is_name_char(*p))
					p++;
				ck_assert(*p == '=');
				p++;
				ck_assert(*p == '"');
				p++;
				while (*p != '"') {
					ck_assert(p < end);
					if (*p == '\\')
						p++;
					p++;
				}
				p++;
				if (*p == ',')
					p++;
			}
			p++;
		}
		ck_assert_msg(*p == ' ', "no value: %.*s", (int)(end - line), line);
		p++;
		{
			char *vend;

			if (strncmp(p, "+Inf", 4) == 0)
				vend = (char *)p + 4;
			else
				strtod(p, &vend);
			ck_assert_msg(vend == end && vend > p, "bad value: %.*s", (int)(end - line), line);
		}
		samples++;
	}
	ck_assert_int_gt(samples, 10);
}

START_TEST(render_is_prometheus_text)
{
	char *t;

	metrics_xds_push(XDS_CLUSTER);
	metrics_convergence(0.2);
	t = render();
	check_exposition(t);
	ck_assert_ptr_nonnull(strstr(t, "# TYPE pilot_xds_pushes counter\n"));
	ck_assert_ptr_nonnull(strstr(t, "# TYPE pilot_total_xds_rejects counter\n"));
	ck_assert_ptr_nonnull(strstr(t, "# TYPE pilot_xds gauge\n"));
	ck_assert_ptr_nonnull(strstr(t, "# TYPE pilot_proxy_convergence_time histogram\n"));
	ck_assert_ptr_nonnull(strstr(t, "# TYPE meshd_config_rejected_total counter\n"));
	ck_assert_ptr_nonnull(strstr(t, "# TYPE meshd_config_objects gauge\n"));
	ck_assert_ptr_nonnull(strstr(t, "# TYPE meshd_config_reloads_total counter\n"));
	ck_assert_ptr_nonnull(strstr(t, "# TYPE process_cpu_seconds_total counter\n"));
	ck_assert_ptr_nonnull(strstr(t, "# TYPE process_resident_memory_bytes gauge\n"));
	ck_assert_ptr_nonnull(strstr(t, "# TYPE process_start_time_seconds gauge\n"));
	free(t);
}
END_TEST

START_TEST(counters_count)
{
	static const char *const types[] = { "lds", "rds", "cds", "eds", "sds" };
	double before[5], rej, conn, crej, reloads;
	char series[128];
	char *t;
	int i;

	t = render();
	for (i = 0; i < 5; i++) {
		snprintf(series, sizeof(series), "pilot_xds_pushes{type=\"%s\"}", types[i]);
		before[i] = sample(t, series);
		ck_assert(!isnan(before[i]));
	}
	rej = sample(t, "pilot_total_xds_rejects{type=\"eds\"}");
	conn = sample(t, "pilot_xds");
	crej = sample(t, "meshd_config_rejected_total");
	reloads = sample(t, "meshd_config_reloads_total");
	free(t);

	metrics_xds_push(XDS_LISTENER);
	metrics_xds_push(XDS_CLUSTER);
	metrics_xds_push(XDS_CLUSTER);
	metrics_xds_push(XDS_SECRET);
	metrics_xds_push((enum xds_type)99); /* ignored */
	metrics_xds_reject(XDS_ENDPOINT);
	metrics_xds_connected(3);
	metrics_xds_connected(-1);
	metrics_config_rejected(4);
	metrics_config_reload();
	metrics_config_objects(CFG_VIRTUAL_SERVICE, 7);
	metrics_config_objects(CFG_KIND_COUNT, 9); /* ignored */

	t = render();
	ck_assert_double_eq(sample(t, "pilot_xds_pushes{type=\"lds\"}"), before[0] + 1);
	ck_assert_double_eq(sample(t, "pilot_xds_pushes{type=\"rds\"}"), before[1]);
	ck_assert_double_eq(sample(t, "pilot_xds_pushes{type=\"cds\"}"), before[2] + 2);
	ck_assert_double_eq(sample(t, "pilot_xds_pushes{type=\"eds\"}"), before[3]);
	ck_assert_double_eq(sample(t, "pilot_xds_pushes{type=\"sds\"}"), before[4] + 1);
	ck_assert_double_eq(sample(t, "pilot_total_xds_rejects{type=\"eds\"}"), rej + 1);
	ck_assert_double_eq(sample(t, "pilot_xds"), conn + 2);
	ck_assert_double_eq(sample(t, "meshd_config_rejected_total"), crej + 4);
	ck_assert_double_eq(sample(t, "meshd_config_reloads_total"), reloads + 1);
	ck_assert_double_eq(sample(t, "meshd_config_objects{kind=\"VirtualService\"}"), 7);
	ck_assert(!isnan(sample(t, "meshd_config_objects{kind=\"AuthorizationPolicy\"}")));
	free(t);
}
END_TEST

/* meshd_limit_exceeded_total: one series per named limit, each counting. */
START_TEST(limit_counters)
{
	double of, ca;
	char *t = render();

	ck_assert(!isnan(sample(t, "meshd_limit_exceeded_total{limit=\"xds_node_labels\"}")));
	ck_assert(!isnan(sample(t, "meshd_limit_exceeded_total{limit=\"webhook_connections\"}")));
	of = sample(t, "meshd_limit_exceeded_total{limit=\"objects_per_source\"}");
	ca = sample(t, "meshd_limit_exceeded_total{limit=\"ca_token_file\"}");
	ck_assert(!isnan(of) && !isnan(ca));
	/* gRPC core refuses an oversized request before meshd sees it: no
	 * series that could only ever read 0 (README "Limits" says "-") */
	ck_assert(strstr(t, "xds_request_size") == NULL);
	free(t);
	metrics_limit(METRICS_LIMIT_OBJECTS_PER_SOURCE);
	metrics_limit(METRICS_LIMIT_OBJECTS_PER_SOURCE);
	metrics_limit(METRICS_LIMIT_CA_TOKEN_FILE);
	metrics_limit(METRICS_LIMIT_COUNT); /* ignored */
	t = render();
	ck_assert_double_eq(sample(t, "meshd_limit_exceeded_total{limit=\"objects_per_source\"}"), of + 2);
	ck_assert_double_eq(sample(t, "meshd_limit_exceeded_total{limit=\"ca_token_file\"}"), ca + 1);
	free(t);
}
END_TEST

START_TEST(histogram_buckets)
{
	static const char *const les[] = { "0.1", "0.5", "1", "3", "5", "10", "20", "30", "+Inf" };
	/* observations 0.05, 0.7, 4, 100, and 0.1 (on a bound: le is inclusive) */
	static const double want_delta[] = { 2, 2, 3, 3, 4, 4, 4, 4, 5 };
	double before[9], sum0, count0, prev = -1;
	char series[128];
	char *t;
	int i;

	t = render();
	for (i = 0; i < 9; i++) {
		snprintf(series, sizeof(series), "pilot_proxy_convergence_time_bucket{le=\"%s\"}", les[i]);
		before[i] = sample(t, series);
		ck_assert_msg(!isnan(before[i]), "missing %s", series);
	}
	sum0 = sample(t, "pilot_proxy_convergence_time_sum");
	count0 = sample(t, "pilot_proxy_convergence_time_count");
	free(t);

	metrics_convergence(0.05);
	metrics_convergence(0.7);
	metrics_convergence(4);
	metrics_convergence(100);
	metrics_convergence(0.1);

	t = render();
	for (i = 0; i < 9; i++) {
		double v;

		snprintf(series, sizeof(series), "pilot_proxy_convergence_time_bucket{le=\"%s\"}", les[i]);
		v = sample(t, series);
		ck_assert_msg(v - before[i] == want_delta[i], "%s: %g -> %g", series, before[i], v);
		ck_assert(v >= prev); /* cumulative */
		prev = v;
	}
	ck_assert_double_eq(sample(t, "pilot_proxy_convergence_time_count"), count0 + 5);
	ck_assert_double_eq(sample(t, "pilot_proxy_convergence_time_count"),
			    sample(t, "pilot_proxy_convergence_time_bucket{le=\"+Inf\"}"));
	ck_assert_double_eq_tol(sample(t, "pilot_proxy_convergence_time_sum") - sum0, 104.85, 1e-9);
	free(t);
}
END_TEST

START_TEST(process_metrics_plausible)
{
	char *t = render();
	double rss = sample(t, "process_resident_memory_bytes");
	double start = sample(t, "process_start_time_seconds");
	double cpu = sample(t, "process_cpu_seconds_total");

	/* wide bands: a live process has some resident pages, started after 2001 */
	ck_assert(rss > 4096);
	ck_assert(start > 1e9);
	ck_assert(cpu >= 0);
	free(t);
}
END_TEST

/* Istio's control-plane families: each with Istio's TYPE. */
START_TEST(istio_families_and_types)
{
	static const char *const want[][2] = {
		{ "pilot_xds_push_time", "histogram" },
		{ "pilot_xds_send_time", "histogram" },
		{ "pilot_xds_config_size_bytes", "histogram" },
		{ "pilot_proxy_queue_time", "histogram" },
		{ "pilot_debounce_time", "histogram" },
		{ "pilot_pushcontext_init_seconds", "histogram" },
		{ "pilot_xds_write_timeout", "counter" },
		{ "pilot_xds_cds_reject", "gauge" },
		{ "pilot_xds_eds_reject", "gauge" },
		{ "pilot_xds_lds_reject", "gauge" },
		{ "pilot_xds_rds_reject", "gauge" },
		{ "pilot_services", "gauge" },
		{ "pilot_virt_services", "gauge" },
		{ "pilot_conflict_inbound_listener", "gauge" },
		{ "pilot_conflict_outbound_listener_tcp_over_current_tcp", "gauge" },
		{ "pilot_conflict_outbound_listener_tcp_over_current_http", "gauge" },
		{ "pilot_conflict_outbound_listener_http_over_current_tcp", "gauge" },
		{ "pilot_k8s_reg_events", "counter" },
		{ "pilot_k8s_cfg_events", "counter" },
		{ "citadel_server_csr_count", "counter" },
		{ "citadel_server_success_cert_issuance_count", "counter" },
		{ "citadel_server_authentication_failure_count", "counter" },
		{ "citadel_server_csr_parsing_err_count", "counter" },
		{ "citadel_server_csr_sign_err_count", "counter" },
		{ "istio_build", "gauge" },
		{ "pilot_total_xds_internal_errors", "counter" },
		{ "pilot_xds_push_context_errors", "counter" },
		{ "pilot_push_triggers", "counter" },
		{ "sidecar_injection_requests_total", "counter" },
		{ "sidecar_injection_success_total", "counter" },
		{ "sidecar_injection_skip_total", "counter" },
		{ "sidecar_injection_failure_total", "counter" },
		{ "process_open_fds", "gauge" },
		{ "process_max_fds", "gauge" },
	};
	char line[160];
	char *t = render();
	size_t i;

	check_exposition(t);
	for (i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		snprintf(line, sizeof(line), "# TYPE %s %s\n", want[i][0], want[i][1]);
		ck_assert_msg(strstr(t, line) != NULL, "missing %s", line);
	}
	/* Istio's help text, as its dashboards' tooltips show it */
	ck_assert_ptr_nonnull(strstr(t, "# HELP pilot_xds_push_time Total time in seconds Pilot takes to push lds, rds, "
					"cds and eds.\n"));
	ck_assert_ptr_nonnull(strstr(t, "# HELP citadel_server_csr_count The number of CSRs received by Citadel server.\n"));
	free(t);
}
END_TEST

/* The bucket boundaries of each new histogram are Istio's, in order. */
START_TEST(istio_bucket_boundaries)
{
	static const struct {
		const char *series; /* up to and including the labels before le */
		const char *les[11];
	} want[] = {
		{ "pilot_xds_push_time_bucket{type=\"cds\",",
		  { "0.01", "0.1", "0.5", "1", "3", "5", "10", "20", "30", "+Inf" } },
		{ "pilot_xds_config_size_bytes_bucket{type=\"lds\",",
		  { "1", "10000", "1e+06", "4e+06", "1e+07", "4e+07", "+Inf" } },
		{ "pilot_proxy_queue_time_bucket{", { "0.1", "0.5", "1", "3", "5", "10", "20", "30", "+Inf" } },
		{ "pilot_debounce_time_bucket{", { "0.01", "0.1", "0.5", "1", "3", "5", "10", "20", "30", "+Inf" } },
		{ "pilot_pushcontext_init_seconds_bucket{", { "0.01", "0.1", "0.5", "1", "3", "5", "+Inf" } },
		{ "pilot_xds_send_time_bucket{", { "0.01", "0.1", "1", "3", "5", "10", "20", "30", "+Inf" } },
	};
	char series[160], prefix[160];
	char *t = render();
	const char *p;
	size_t i, j, n;

	for (i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		for (j = 0; want[i].les[j]; j++) {
			snprintf(series, sizeof(series), "%sle=\"%s\"}", want[i].series, want[i].les[j]);
			ck_assert_msg(!isnan(sample(t, series)), "missing %s", series);
		}
		/* and no other boundary */
		snprintf(prefix, sizeof(prefix), "\n%sle=", want[i].series);
		for (n = 0, p = t; (p = strstr(p, prefix)); p++)
			n++;
		ck_assert_msg(n == j, "%s: %zu buckets, want %zu", want[i].series, n, j);
	}
	free(t);
}
END_TEST

START_TEST(istio_histograms_observe)
{
	double c0, q0, s0, big0;
	char *t = render();

	c0 = sample(t, "pilot_xds_push_time_count{type=\"eds\"}");
	q0 = sample(t, "pilot_proxy_queue_time_bucket{le=\"0.1\"}");
	s0 = sample(t, "pilot_xds_config_size_bytes_bucket{type=\"cds\",le=\"10000\"}");
	big0 = sample(t, "pilot_xds_config_size_bytes_bucket{type=\"cds\",le=\"4e+06\"}");
	free(t);
	metrics_xds_push_time(XDS_ENDPOINT, 0.02);
	metrics_xds_push_time((enum xds_type)-1, 1); /* ignored */
	metrics_proxy_queue_time(-3);                 /* clock stepped back: 0 */
	metrics_xds_config_size(XDS_CLUSTER, 20000);
	metrics_debounce_time(0.15);
	metrics_pushcontext_init(0.002);
	metrics_xds_send_time(0.001);
	t = render();
	check_exposition(t);
	ck_assert_double_eq(sample(t, "pilot_xds_push_time_count{type=\"eds\"}"), c0 + 1);
	ck_assert_double_eq(sample(t, "pilot_proxy_queue_time_bucket{le=\"0.1\"}"), q0 + 1);
	ck_assert_double_eq(sample(t, "pilot_xds_config_size_bytes_bucket{type=\"cds\",le=\"10000\"}"), s0);
	ck_assert_double_eq(sample(t, "pilot_xds_config_size_bytes_bucket{type=\"cds\",le=\"4e+06\"}"), big0 + 1);
	ck_assert_double_eq(sample(t, "pilot_xds_push_time_count{type=\"eds\"}"),
			    sample(t, "pilot_xds_push_time_bucket{type=\"eds\",le=\"+Inf\"}"));
	free(t);
}
END_TEST

START_TEST(ca_k8s_build_counters)
{
	double csr, ok, authn, parse, sign, svc_add, vs_del;
	char *t = render();

	csr = sample(t, "citadel_server_csr_count");
	ok = sample(t, "citadel_server_success_cert_issuance_count");
	authn = sample(t, "citadel_server_authentication_failure_count");
	parse = sample(t, "citadel_server_csr_parsing_err_count");
	sign = sample(t, "citadel_server_csr_sign_err_count");
	svc_add = sample(t, "pilot_k8s_reg_events{event=\"add\",type=\"Services\"}");
	vs_del = sample(t, "pilot_k8s_cfg_events{event=\"delete\",type=\"VirtualService\"}");
	free(t);
	metrics_ca(METRICS_CA_CSR);
	metrics_ca(METRICS_CA_CSR);
	metrics_ca(METRICS_CA_SUCCESS);
	metrics_ca(METRICS_CA_AUTHN_FAILURE);
	metrics_ca(METRICS_CA_PARSING_ERR);
	metrics_ca(METRICS_CA_EVENT_COUNT); /* ignored */
	metrics_k8s_event(CFG_K8S_SERVICE, METRICS_K8S_ADD);
	metrics_k8s_event(CFG_VIRTUAL_SERVICE, METRICS_K8S_DELETE);
	metrics_k8s_event(CFG_KIND_COUNT, METRICS_K8S_ADD); /* ignored */
	metrics_set_build("pilot", "1.2\"3");
	metrics_services(5, 2);
	t = render();
	check_exposition(t);
	ck_assert_double_eq(sample(t, "citadel_server_csr_count"), csr + 2);
	ck_assert_double_eq(sample(t, "citadel_server_success_cert_issuance_count"), ok + 1);
	ck_assert_double_eq(sample(t, "citadel_server_authentication_failure_count"), authn + 1);
	ck_assert_double_eq(sample(t, "citadel_server_csr_parsing_err_count"), parse + 1);
	ck_assert_double_eq(sample(t, "citadel_server_csr_sign_err_count"), sign);
	/* a series appears with its first event (NaN before) */
	ck_assert_double_eq(sample(t, "pilot_k8s_reg_events{event=\"add\",type=\"Services\"}"),
			    (isnan(svc_add) ? 0 : svc_add) + 1);
	ck_assert_double_eq(sample(t, "pilot_k8s_cfg_events{event=\"delete\",type=\"VirtualService\"}"),
			    (isnan(vs_del) ? 0 : vs_del) + 1);
	/* registry kinds are not config events and back */
	ck_assert(isnan(sample(t, "pilot_k8s_cfg_events{event=\"add\",type=\"Services\"}")));
	ck_assert(isnan(sample(t, "pilot_k8s_reg_events{event=\"delete\",type=\"VirtualService\"}")));
	ck_assert_double_eq(sample(t, "istio_build{component=\"pilot\",tag=\"1.2\\\"3\"}"), 1);
	ck_assert_double_eq(sample(t, "pilot_services"), 5);
	ck_assert_double_eq(sample(t, "pilot_virt_services"), 2);
	ck_assert(sample(t, "process_open_fds") >= 3);
	free(t);
}
END_TEST

/* The injection and push counters of Istio's control-plane dashboard; the
 * conflict gauges take the value the push stage sets. */
START_TEST(webhook_push_counters)
{
	double inj_ok, inj_req, ierr, pcerr;
	char *t = render();

	inj_ok = sample(t, "sidecar_injection_success_total");
	inj_req = sample(t, "sidecar_injection_requests_total");
	ierr = sample(t, "pilot_total_xds_internal_errors");
	pcerr = sample(t, "pilot_xds_push_context_errors");
	free(t);
	metrics_injection(METRICS_INJECTION_REQUEST);
	metrics_injection(METRICS_INJECTION_SUCCESS);
	metrics_injection(METRICS_INJECTION_COUNT); /* ignored */
	metrics_xds_internal_error();
	metrics_push_context_error();
	metrics_push_trigger(METRICS_TRIGGER_ENDPOINT, 3);
	metrics_push_trigger(METRICS_TRIGGER_COUNT, 1); /* ignored */
	metrics_conflicts_set(METRICS_CONFLICT_INBOUND, 4);
	metrics_conflicts_set(METRICS_CONFLICT_OUTBOUND_TCP_OVER_TCP, 2);
	t = render();
	check_exposition(t);
	ck_assert_double_eq(sample(t, "sidecar_injection_success_total"), inj_ok + 1);
	ck_assert_double_eq(sample(t, "sidecar_injection_requests_total"), inj_req + 1);
	ck_assert_double_eq(sample(t, "pilot_total_xds_internal_errors"), ierr + 1);
	ck_assert_double_eq(sample(t, "pilot_xds_push_context_errors"), pcerr + 1);
	ck_assert_double_eq(sample(t, "pilot_push_triggers{type=\"endpoint\"}"), 3);
	ck_assert(isnan(sample(t, "pilot_push_triggers{type=\"unknown\"}"))); /* no trigger yet: no series */
	ck_assert_double_eq(sample(t, "pilot_conflict_inbound_listener"), 4);
	ck_assert_double_eq(sample(t, "pilot_conflict_outbound_listener_tcp_over_current_tcp"), 2);
	free(t);
	metrics_conflicts_set(METRICS_CONFLICT_INBOUND, 0);
	metrics_conflicts_set(METRICS_CONFLICT_OUTBOUND_TCP_OVER_TCP, 0);
}
END_TEST

START_TEST(render_respects_cap)
{
	struct mesh_buf b;

	mesh_buf_init(&b, 64);
	ck_assert_int_lt(metrics_render(&b), 0);
	ck_assert_uint_le(b.len, 64);
	mesh_buf_cleanup(&b);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("metrics");
	TCase *tc = tcase_create("render");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, render_is_prometheus_text);
	tcase_add_test(tc, counters_count);
	tcase_add_test(tc, histogram_buckets);
	tcase_add_test(tc, process_metrics_plausible);
	tcase_add_test(tc, istio_families_and_types);
	tcase_add_test(tc, istio_bucket_boundaries);
	tcase_add_test(tc, istio_histograms_observe);
	tcase_add_test(tc, ca_k8s_build_counters);
	tcase_add_test(tc, webhook_push_counters);
	tcase_add_test(tc, render_respects_cap);
	tcase_add_test(tc, limit_counters);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
