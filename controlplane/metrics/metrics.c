/*
 * metrics.c - meshd's Prometheus metrics (see metrics.h).
 *
 * Every value is a C11 atomic in static storage, so any thread (the xDS
 * thread, the config thread, gRPC callbacks) updates it without a lock and
 * /metrics renders a lock-free, per-value consistent view.  Names follow
 * Istio's pilot metrics where one exists; meshd-specific ones start with
 * meshd_.  Process metrics follow the Prometheus client conventions.
 */
#include "controlplane/metrics/metrics.h"

#include "common/err.h"
#include "controlplane/config/config.h"

#include <dirent.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

static void metrics__sections_render(struct mesh_buf *out);

/*
 * A histogram with fixed bounds: per-bucket (not cumulative) counts, the
 * last one is +Inf, and the sum, a double kept as its bit pattern for CAS.
 */
#define METRICS_HIST_MAX_BOUNDS 9
struct metrics__hist {
	const double *bounds;
	size_t n;
	_Atomic uint64_t buckets[METRICS_HIST_MAX_BOUNDS + 1];
	_Atomic uint64_t sum_bits;
};

/* Istio's buckets (pilot/pkg/xds/monitoring.go, pkg/xds/monitoring.go):
 * push and debounce time gained a 0.5 s bucket in Istio #60442 (2026) */
static const double metrics__conv_bounds[] = { 0.1, 0.5, 1, 3, 5, 10, 20, 30 };
static const double metrics__push_bounds[] = { 0.01, 0.1, 0.5, 1, 3, 5, 10, 20, 30 };
static const double metrics__send_bounds[] = { 0.01, 0.1, 1, 3, 5, 10, 20, 30 };
static const double metrics__init_bounds[] = { 0.01, 0.1, 0.5, 1, 3, 5 };
/* 10K, 1M, 4M (gRPC's default limit), 10M, 40M */
static const double metrics__size_bounds[] = { 1, 10000, 1000000, 4000000, 10000000, 40000000 };
#define METRICS_NB(a) (sizeof(a) / sizeof((a)[0]))
#define METRICS_HIST(b) { (b), METRICS_NB(b), { 0 }, 0 }

static struct metrics__hist metrics__conv = METRICS_HIST(metrics__conv_bounds);
static struct metrics__hist metrics__queue = METRICS_HIST(metrics__conv_bounds);
static struct metrics__hist metrics__debounce = METRICS_HIST(metrics__push_bounds);
static struct metrics__hist metrics__init = METRICS_HIST(metrics__init_bounds);
static struct metrics__hist metrics__send = METRICS_HIST(metrics__send_bounds);
static struct metrics__hist metrics__push_time[XDS_TYPE_COUNT] = {
	METRICS_HIST(metrics__push_bounds), METRICS_HIST(metrics__push_bounds), METRICS_HIST(metrics__push_bounds),
	METRICS_HIST(metrics__push_bounds), METRICS_HIST(metrics__push_bounds),
};
static struct metrics__hist metrics__size[XDS_TYPE_COUNT] = {
	METRICS_HIST(metrics__size_bounds), METRICS_HIST(metrics__size_bounds), METRICS_HIST(metrics__size_bounds),
	METRICS_HIST(metrics__size_bounds), METRICS_HIST(metrics__size_bounds),
};
_Static_assert(XDS_TYPE_COUNT == 5, "metrics__push_time and metrics__size list one histogram per xDS type");

/* Cap on what is read from one /proc file. */
#define METRICS_PROC_READ_MAX 4096

/* Istio's type labels, indexed by enum xds_type. */
static const char *const metrics__type_label[XDS_TYPE_COUNT] = {
	[XDS_LISTENER] = "lds",
	[XDS_ROUTE] = "rds",
	[XDS_CLUSTER] = "cds",
	[XDS_ENDPOINT] = "eds",
	[XDS_SECRET] = "sds",
};

static _Atomic uint64_t metrics__pushes[XDS_TYPE_COUNT];
static _Atomic uint64_t metrics__rejects[XDS_TYPE_COUNT];
static _Atomic int64_t metrics__connected;
static _Atomic uint64_t metrics__config_rejected;
static _Atomic uint64_t metrics__config_objects[CFG_KIND_COUNT];
static _Atomic uint64_t metrics__config_reloads;
static _Atomic uint64_t metrics__config_read_failures;
static _Atomic uint64_t metrics__internal_errors, metrics__push_context_errors;
static _Atomic uint64_t metrics__triggers[METRICS_TRIGGER_COUNT];

/* Istio's TriggerReason strings, indexed by enum metrics_trigger. */
static const char *const metrics__trigger_label[METRICS_TRIGGER_COUNT] = {
	[METRICS_TRIGGER_ENDPOINT] = "endpoint", [METRICS_TRIGGER_CONFIG] = "config",
	[METRICS_TRIGGER_SERVICE] = "service",   [METRICS_TRIGGER_PROXY] = "proxy",
	[METRICS_TRIGGER_GLOBAL] = "global",     [METRICS_TRIGGER_SECRET] = "secret",
	[METRICS_TRIGGER_NAMESPACE] = "namespace", [METRICS_TRIGGER_UNKNOWN] = "unknown",
};
static _Atomic uint64_t metrics__limits[METRICS_LIMIT_COUNT];
/* the label of each limit, indexed by enum metrics_limit */
static const char *const metrics__limit_label[METRICS_LIMIT_COUNT] = {
	[METRICS_LIMIT_OBJECTS_PER_SOURCE] = "objects_per_source",
	[METRICS_LIMIT_XDS_SUBSCRIBED_NAMES] = "xds_subscribed_names",
	[METRICS_LIMIT_XDS_PROXY_NAMES] = "xds_proxy_names",
	[METRICS_LIMIT_XDS_NODE_FIELD] = "xds_node_field",
	[METRICS_LIMIT_XDS_NODE_LABELS] = "xds_node_labels",
	[METRICS_LIMIT_XDS_ERROR_DETAIL] = "xds_error_detail",
	[METRICS_LIMIT_DEBUG_CONNECTIONS] = "debug_connections",
	[METRICS_LIMIT_DEBUG_RESPONSE_SIZE] = "debug_response_size",
	[METRICS_LIMIT_WEBHOOK_CONNECTIONS] = "webhook_connections",
	[METRICS_LIMIT_WEBHOOK_BODY] = "webhook_body",
	[METRICS_LIMIT_WEBHOOK_HEAD_TIMEOUT] = "webhook_head_timeout",
	[METRICS_LIMIT_CA_REQUEST_SIZE] = "ca_request_size",
	[METRICS_LIMIT_CA_TOKEN_FILE] = "ca_token_file",
};
static _Atomic uint64_t metrics__write_timeouts;
static _Atomic uint64_t metrics__services, metrics__virt_services;
static _Atomic uint64_t metrics__k8s_events[CFG_KIND_COUNT][METRICS_K8S_EVENT_COUNT];
static _Atomic uint64_t metrics__conflicts[METRICS_CONFLICT_COUNT];
static _Atomic uint64_t metrics__ca_events[METRICS_CA_EVENT_COUNT];
static _Atomic uint64_t metrics__injection[METRICS_INJECTION_COUNT];
/* istio_build's labels: written once at start, before /metrics serves */
#define METRICS_BUILD_LABEL_CAP 64
static char metrics__build_component[METRICS_BUILD_LABEL_CAP] = "pilot";
static char metrics__build_tag[METRICS_BUILD_LABEL_CAP] = "unknown";

static bool metrics__type_ok(enum xds_type t)
{
	return (int)t >= 0 && t < XDS_TYPE_COUNT;
}

void metrics_xds_push(enum xds_type t)
{
	if (metrics__type_ok(t))
		atomic_fetch_add_explicit(&metrics__pushes[t], 1, memory_order_relaxed);
}

void metrics_xds_reject(enum xds_type t)
{
	if (metrics__type_ok(t))
		atomic_fetch_add_explicit(&metrics__rejects[t], 1, memory_order_relaxed);
}

void metrics_xds_connected(int delta)
{
	atomic_fetch_add_explicit(&metrics__connected, delta, memory_order_relaxed);
}

static uint64_t metrics__dbits(double d)
{
	uint64_t u;

	memcpy(&u, &d, sizeof(u));
	return u;
}

static double metrics__bitsd(uint64_t u)
{
	double d;

	memcpy(&d, &u, sizeof(d));
	return d;
}

static void metrics__observe(struct metrics__hist *h, double v)
{
	uint64_t old, want;
	size_t i;

	/* NaN or negative (clock stepped back) counts as 0 */
	if (!(v >= 0))
		v = 0;
	for (i = 0; i < h->n; i++)
		if (v <= h->bounds[i])
			break;
	atomic_fetch_add_explicit(&h->buckets[i], 1, memory_order_relaxed);

	old = atomic_load_explicit(&h->sum_bits, memory_order_relaxed);
	do {
		want = metrics__dbits(metrics__bitsd(old) + v);
	} while (!atomic_compare_exchange_weak_explicit(&h->sum_bits, &old, want, memory_order_relaxed,
							memory_order_relaxed));
}

void metrics_convergence(double seconds)
{
	metrics__observe(&metrics__conv, seconds);
}

void metrics_xds_push_time(enum xds_type t, double seconds)
{
	if (metrics__type_ok(t))
		metrics__observe(&metrics__push_time[t], seconds);
}

void metrics_xds_send_time(double seconds)
{
	metrics__observe(&metrics__send, seconds);
}

void metrics_xds_config_size(enum xds_type t, size_t bytes)
{
	if (metrics__type_ok(t))
		metrics__observe(&metrics__size[t], (double)bytes);
}

void metrics_proxy_queue_time(double seconds)
{
	metrics__observe(&metrics__queue, seconds);
}

void metrics_debounce_time(double seconds)
{
	metrics__observe(&metrics__debounce, seconds);
}

void metrics_pushcontext_init(double seconds)
{
	metrics__observe(&metrics__init, seconds);
}

void metrics_xds_write_timeout(void)
{
	atomic_fetch_add_explicit(&metrics__write_timeouts, 1, memory_order_relaxed);
}

void metrics_services(uint64_t services, uint64_t virtual_services)
{
	atomic_store_explicit(&metrics__services, services, memory_order_relaxed);
	atomic_store_explicit(&metrics__virt_services, virtual_services, memory_order_relaxed);
}

void metrics_k8s_event(int cfg_kind, enum metrics_k8s_event ev)
{
	if (cfg_kind >= 0 && cfg_kind < CFG_KIND_COUNT && (int)ev >= 0 && ev < METRICS_K8S_EVENT_COUNT)
		atomic_fetch_add_explicit(&metrics__k8s_events[cfg_kind][ev], 1, memory_order_relaxed);
}

void metrics_conflicts_set(enum metrics_conflict c, uint64_t n)
{
	if ((int)c >= 0 && c < METRICS_CONFLICT_COUNT)
		atomic_store_explicit(&metrics__conflicts[c], n, memory_order_relaxed);
}

void metrics_xds_internal_error(void)
{
	atomic_fetch_add_explicit(&metrics__internal_errors, 1, memory_order_relaxed);
}

void metrics_push_context_error(void)
{
	atomic_fetch_add_explicit(&metrics__push_context_errors, 1, memory_order_relaxed);
}

void metrics_push_trigger(enum metrics_trigger r, uint64_t n)
{
	if ((int)r >= 0 && r < METRICS_TRIGGER_COUNT)
		atomic_fetch_add_explicit(&metrics__triggers[r], n, memory_order_relaxed);
}

void metrics_limit(enum metrics_limit l)
{
	if ((int)l >= 0 && l < METRICS_LIMIT_COUNT)
		atomic_fetch_add_explicit(&metrics__limits[l], 1, memory_order_relaxed);
}

void metrics_ca(enum metrics_ca_event e)
{
	if ((int)e >= 0 && e < METRICS_CA_EVENT_COUNT)
		atomic_fetch_add_explicit(&metrics__ca_events[e], 1, memory_order_relaxed);
}

void metrics_injection(enum metrics_injection e)
{
	if ((int)e >= 0 && e < METRICS_INJECTION_COUNT)
		atomic_fetch_add_explicit(&metrics__injection[e], 1, memory_order_relaxed);
}

void metrics_set_build(const char *component, const char *tag)
{
	if (component && *component)
		snprintf(metrics__build_component, sizeof(metrics__build_component), "%s", component);
	if (tag && *tag)
		snprintf(metrics__build_tag, sizeof(metrics__build_tag), "%s", tag);
}

void metrics_config_rejected(uint64_t n)
{
	atomic_fetch_add_explicit(&metrics__config_rejected, n, memory_order_relaxed);
}

void metrics_config_objects(int kind, uint64_t n)
{
	if (kind >= 0 && kind < CFG_KIND_COUNT)
		atomic_store_explicit(&metrics__config_objects[kind], n, memory_order_relaxed);
}

void metrics_config_reload(void)
{
	atomic_fetch_add_explicit(&metrics__config_reloads, 1, memory_order_relaxed);
}

void metrics_config_read_failure(void)
{
	atomic_fetch_add_explicit(&metrics__config_read_failures, 1, memory_order_relaxed);
}

/* ---------------------------------------------------------------- process */

/* Read a small /proc file into buf (NUL-terminated).  0 or -errno. */
static int metrics__read_proc(const char *path, char *buf, size_t cap)
{
	FILE *f;
	size_t n;
	int rc = 0;

	f = fopen(path, "re");
	if (!f)
		return -errno;
	n = fread(buf, 1, cap - 1, f);
	if (ferror(f))
		rc = -EIO;
	buf[n] = '\0';
	fclose(f);
	return rc;
}

/* Resident set size in bytes from /proc/self/statm; -1 when unknown. */
static double metrics__rss_bytes(void)
{
	char buf[METRICS_PROC_READ_MAX];
	unsigned long long size, resident;
	long page = sysconf(_SC_PAGESIZE);

	if (page <= 0 || metrics__read_proc("/proc/self/statm", buf, sizeof(buf)) < 0)
		return -1;
	if (sscanf(buf, "%llu %llu", &size, &resident) != 2)
		return -1;
	return (double)resident * (double)page;
}

static double metrics__vsize_bytes(void)
{
	char buf[METRICS_PROC_READ_MAX];
	unsigned long long size;
	long page = sysconf(_SC_PAGESIZE);

	if (page <= 0 || metrics__read_proc("/proc/self/statm", buf, sizeof(buf)) < 0)
		return -1;
	if (sscanf(buf, "%llu", &size) != 1)
		return -1;
	return (double)size * (double)page;
}

static double metrics__cpu_seconds(void)
{
	struct rusage ru;

	if (getrusage(RUSAGE_SELF, &ru) < 0)
		return -1;
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
	       (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* Open descriptors: entries of /proc/self/fd (less the one opendir holds);
 * -1 when unknown. */
static double metrics__open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	double n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n > 0 ? n - 1 : 0;
}

static double metrics__max_fds(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur == RLIM_INFINITY)
		return -1;
	return (double)rl.rlim_cur;
}

/*
 * Start time in seconds since the epoch: field 22 of /proc/self/stat (clock
 * ticks after boot) plus btime from /proc/stat, as Prometheus clients do.
 * Computed once.  -1 when unknown.
 */
static double metrics__start_time(void)
{
	static _Atomic uint64_t cached_bits; /* 0: not computed yet */
	char buf[METRICS_PROC_READ_MAX];
	unsigned long long start_ticks = 0, btime = 0;
	const char *p;
	long hz = sysconf(_SC_CLK_TCK);
	uint64_t bits;
	double t;
	int field;

	bits = atomic_load_explicit(&cached_bits, memory_order_relaxed);
	if (bits)
		return metrics__bitsd(bits);
	if (hz <= 0 || metrics__read_proc("/proc/self/stat", buf, sizeof(buf)) < 0)
		return -1;
	/* the command name (field 2) may hold spaces: count from its ')' */
	p = strrchr(buf, ')');
	if (!p)
		return -1;
	p++;
	/* p is on the space before field 3: count spaces up to field 22 */
	for (field = 2; field < 22 && *p; p++)
		if (*p == ' ')
			field++;
	if (field != 22 || sscanf(p, "%llu", &start_ticks) != 1)
		return -1;
	if (metrics__read_proc("/proc/stat", buf, sizeof(buf)) < 0)
		return -1;
	p = strstr(buf, "\nbtime ");
	if (!p || sscanf(p + 7, "%llu", &btime) != 1)
		return -1;
	t = (double)btime + (double)start_ticks / (double)hz;
	atomic_store_explicit(&cached_bits, metrics__dbits(t), memory_order_relaxed);
	return t;
}

/* ---------------------------------------------------------------- render */

static void metrics__head(struct mesh_buf *out, const char *name, const char *type, const char *help)
{
	mesh_buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void metrics__per_type(struct mesh_buf *out, const char *name, _Atomic uint64_t *v)
{
	int t;

	for (t = 0; t < XDS_TYPE_COUNT; t++)
		mesh_buf_printf(out, "%s{type=\"%s\"} %llu\n", name, metrics__type_label[t],
				(unsigned long long)atomic_load_explicit(&v[t], memory_order_relaxed));
}

/* Shortest of %.15g / %.17g that reads back as the same double. */
static void metrics__put_double(struct mesh_buf *out, double v)
{
	char tmp[64];

	snprintf(tmp, sizeof(tmp), "%.15g", v);
	if (strtod(tmp, NULL) != v)
		snprintf(tmp, sizeof(tmp), "%.17g", v);
	mesh_buf_puts(out, tmp);
}

static void metrics__gauge_double(struct mesh_buf *out, const char *name, const char *help, double v)
{
	if (v < 0)
		return;
	metrics__head(out, name, "gauge", help);
	mesh_buf_printf(out, "%s ", name);
	metrics__put_double(out, v);
	mesh_buf_putc(out, '\n');
}

/* A label value escaped as the text format asks (\\, \", \n). */
static void metrics__put_label(struct mesh_buf *out, const char *v)
{
	for (; *v; v++) {
		if (*v == '\\' || *v == '"')
			mesh_buf_putc(out, '\\');
		if (*v == '\n') {
			mesh_buf_puts(out, "\\n");
			continue;
		}
		mesh_buf_putc(out, *v);
	}
}

/* The samples of one histogram; labels is "" or `type="cds",` (with the
 * trailing comma, it comes before le). */
static void metrics__hist_samples(struct mesh_buf *out, const char *name, const char *labels,
				  struct metrics__hist *h)
{
	uint64_t cum = 0;
	size_t i, ll = strlen(labels);

	for (i = 0; i <= h->n; i++) {
		cum += atomic_load_explicit(&h->buckets[i], memory_order_relaxed);
		if (i < h->n)
			mesh_buf_printf(out, "%s_bucket{%sle=\"%g\"} %llu\n", name, labels, h->bounds[i],
					(unsigned long long)cum);
		else
			mesh_buf_printf(out, "%s_bucket{%sle=\"+Inf\"} %llu\n", name, labels, (unsigned long long)cum);
	}
	/* the sum and count carry the labels without the trailing comma */
	if (ll)
		mesh_buf_printf(out, "%s_sum{%.*s} ", name, (int)(ll - 1), labels);
	else
		mesh_buf_printf(out, "%s_sum ", name);
	metrics__put_double(out, metrics__bitsd(atomic_load_explicit(&h->sum_bits, memory_order_relaxed)));
	mesh_buf_putc(out, '\n');
	/* the count is the +Inf bucket, so the two always agree */
	if (ll)
		mesh_buf_printf(out, "%s_count{%.*s} %llu\n", name, (int)(ll - 1), labels, (unsigned long long)cum);
	else
		mesh_buf_printf(out, "%s_count %llu\n", name, (unsigned long long)cum);
}

static void metrics__hist_render(struct mesh_buf *out, const char *name, const char *help, struct metrics__hist *h)
{
	metrics__head(out, name, "histogram", help);
	metrics__hist_samples(out, name, "", h);
}

static void metrics__hist_per_type(struct mesh_buf *out, const char *name, const char *help,
				   struct metrics__hist *h)
{
	char labels[32];
	int t;

	metrics__head(out, name, "histogram", help);
	for (t = 0; t < XDS_TYPE_COUNT; t++) {
		snprintf(labels, sizeof(labels), "type=\"%s\",", metrics__type_label[t]);
		metrics__hist_samples(out, name, labels, &h[t]);
	}
}

static void metrics__counter(struct mesh_buf *out, const char *name, const char *type, const char *help,
			     _Atomic uint64_t *v)
{
	metrics__head(out, name, type, help);
	mesh_buf_printf(out, "%s %llu\n", name,
			(unsigned long long)atomic_load_explicit(v, memory_order_relaxed));
}

/* Istio's type label of a watched kind: the registry's names for the core
 * kinds (pilot/pkg/serviceregistry/kube/controller), the kind otherwise. */
static const char *metrics__k8s_type(int kind)
{
	switch (kind) {
	case CFG_K8S_SERVICE:
		return "Services";
	case CFG_K8S_ENDPOINT_SLICE:
		return "EndpointSlice";
	case CFG_K8S_POD:
		return "Pods";
	case CFG_K8S_NAMESPACE:
		return "Namespaces";
	case CFG_K8S_SECRET:
		return "Secrets";
	default:
		return cfg_kind_name((enum cfg_kind)kind);
	}
}

static bool metrics__k8s_is_reg(int kind)
{
	return kind >= CFG_K8S_SERVICE;
}

static void metrics__k8s_render(struct mesh_buf *out, const char *name, const char *help, bool reg)
{
	static const char *const ev[METRICS_K8S_EVENT_COUNT] = { "add", "update", "delete" };
	int k, e;

	metrics__head(out, name, "counter", help);
	for (k = 0; k < CFG_KIND_COUNT; k++) {
		if (metrics__k8s_is_reg(k) != reg)
			continue;
		for (e = 0; e < METRICS_K8S_EVENT_COUNT; e++) {
			uint64_t n = atomic_load_explicit(&metrics__k8s_events[k][e], memory_order_relaxed);

			/* as Istio: a series appears with its first event */
			if (n)
				mesh_buf_printf(out, "%s{event=\"%s\",type=\"%s\"} %llu\n", name, ev[e],
						metrics__k8s_type(k), (unsigned long long)n);
		}
	}
}

/*
 * Returns 0, or -MESH_ETOOBIG / -ENOMEM when out could not hold it all
 * (the buffer's sticky error).
 */
int metrics_render(struct mesh_buf *out)
{
	double v;
	int k;

	metrics__head(out, "pilot_xds_pushes", "counter", "xDS responses sent to proxies, per type.");
	metrics__per_type(out, "pilot_xds_pushes", metrics__pushes);

	metrics__head(out, "pilot_total_xds_rejects", "counter", "Total number of XDS responses from pilot rejected by proxy.");
	metrics__per_type(out, "pilot_total_xds_rejects", metrics__rejects);

	metrics__head(out, "pilot_xds", "gauge", "Number of endpoints connected to this pilot using XDS.");
	mesh_buf_printf(out, "pilot_xds %lld\n",
			(long long)atomic_load_explicit(&metrics__connected, memory_order_relaxed));

	metrics__hist_render(out, "pilot_proxy_convergence_time",
			     "Delays in seconds between config change and a proxy receiving all required configuration.",
			     &metrics__conv);
	metrics__hist_per_type(out, "pilot_xds_push_time", "Total time in seconds Pilot takes to push lds, rds, cds and eds.",
			       metrics__push_time);
	metrics__hist_render(out, "pilot_xds_send_time",
			     "Total time in seconds Pilot takes to send generated configuration.", &metrics__send);
	metrics__hist_per_type(out, "pilot_xds_config_size_bytes", "Distribution of configuration sizes pushed to clients",
			       metrics__size);
	metrics__hist_render(out, "pilot_proxy_queue_time",
			     "Time in seconds, a proxy is in the push queue before being dequeued.", &metrics__queue);
	metrics__hist_render(out, "pilot_debounce_time",
			     "Delay in seconds between the first config enters debouncing and the merged push request "
			     "is pushed into the push queue.",
			     &metrics__debounce);
	metrics__hist_render(out, "pilot_pushcontext_init_seconds",
			     "Total time in seconds Pilot takes to init pushContext.", &metrics__init);
	metrics__counter(out, "pilot_xds_write_timeout", "counter", "Pilot XDS response write timeouts.",
			 &metrics__write_timeouts);
	for (k = 0; k < XDS_TYPE_COUNT; k++) {
		char name[32], help[48];

		/* Istio labels these by node and error; a total per type keeps
		 * the cardinality fixed (pilot_total_xds_rejects has the same) */
		if (k == XDS_SECRET)
			continue;
		snprintf(name, sizeof(name), "pilot_xds_%s_reject", metrics__type_label[k]);
		snprintf(help, sizeof(help), "Pilot rejected %s configs.", k == XDS_LISTENER ? "LDS" :
			 k == XDS_ROUTE ? "RDS" : k == XDS_CLUSTER ? "CDS" : "EDS");
		metrics__counter(out, name, "gauge", help, &metrics__rejects[k]);
	}
	metrics__counter(out, "pilot_services", "gauge", "Total services known to pilot.", &metrics__services);
	metrics__counter(out, "pilot_virt_services", "gauge", "Total virtual services known to pilot.",
			 &metrics__virt_services);
	metrics__counter(out, "pilot_conflict_inbound_listener", "gauge", "Number of conflicting inbound listeners.",
			 &metrics__conflicts[METRICS_CONFLICT_INBOUND]);
	metrics__counter(out, "pilot_conflict_outbound_listener_tcp_over_current_tcp", "gauge",
			 "Number of conflicting tcp listeners with current tcp listener.",
			 &metrics__conflicts[METRICS_CONFLICT_OUTBOUND_TCP_OVER_TCP]);
	metrics__counter(out, "pilot_conflict_outbound_listener_tcp_over_current_http", "gauge",
			 "Number of conflicting wildcard tcp listeners with current wildcard http listener.",
			 &metrics__conflicts[METRICS_CONFLICT_OUTBOUND_TCP_OVER_HTTP]);
	metrics__counter(out, "pilot_conflict_outbound_listener_http_over_current_tcp", "gauge",
			 "Number of conflicting wildcard http listeners with current wildcard tcp listener.",
			 &metrics__conflicts[METRICS_CONFLICT_OUTBOUND_HTTP_OVER_TCP]);
	metrics__counter(out, "pilot_total_xds_internal_errors", "counter",
			 "Total number of internal XDS errors in pilot.", &metrics__internal_errors);
	metrics__counter(out, "pilot_xds_push_context_errors", "counter",
			 "Number of errors (timeouts) initiating push context.", &metrics__push_context_errors);
	metrics__head(out, "pilot_push_triggers", "counter",
		      "Total number of times a push was triggered, labeled by reason for the push.");
	for (k = 0; k < METRICS_TRIGGER_COUNT; k++) {
		uint64_t n = atomic_load_explicit(&metrics__triggers[k], memory_order_relaxed);

		if (n)
			mesh_buf_printf(out, "pilot_push_triggers{type=\"%s\"} %llu\n", metrics__trigger_label[k],
					(unsigned long long)n);
	}
	metrics__k8s_render(out, "pilot_k8s_reg_events", "Events from k8s registry.", true);
	metrics__k8s_render(out, "pilot_k8s_cfg_events", "Events from k8s config.", false);
	metrics__counter(out, "citadel_server_csr_count", "counter", "The number of CSRs received by Citadel server.",
			 &metrics__ca_events[METRICS_CA_CSR]);
	metrics__counter(out, "citadel_server_success_cert_issuance_count", "counter",
			 "The number of certificates issuances that have succeeded.",
			 &metrics__ca_events[METRICS_CA_SUCCESS]);
	metrics__counter(out, "citadel_server_authentication_failure_count", "counter",
			 "The number of authentication failures.", &metrics__ca_events[METRICS_CA_AUTHN_FAILURE]);
	metrics__counter(out, "citadel_server_csr_parsing_err_count", "counter",
			 "The number of errors occurred when parsing the CSR.",
			 &metrics__ca_events[METRICS_CA_PARSING_ERR]);
	metrics__counter(out, "citadel_server_csr_sign_err_count", "counter",
			 "The number of errors occurred when signing the CSR.", &metrics__ca_events[METRICS_CA_SIGN_ERR]);
	metrics__counter(out, "sidecar_injection_requests_total", "counter",
			 "Total number of sidecar injection requests.", &metrics__injection[METRICS_INJECTION_REQUEST]);
	metrics__counter(out, "sidecar_injection_success_total", "counter",
			 "Total number of successful sidecar injection requests.",
			 &metrics__injection[METRICS_INJECTION_SUCCESS]);
	metrics__counter(out, "sidecar_injection_skip_total", "counter",
			 "Total number of skipped sidecar injection requests.",
			 &metrics__injection[METRICS_INJECTION_SKIP]);
	metrics__counter(out, "sidecar_injection_failure_total", "counter",
			 "Total number of failed sidecar injection requests.",
			 &metrics__injection[METRICS_INJECTION_FAILURE]);
	metrics__head(out, "istio_build", "gauge", "Istio component build info");
	mesh_buf_puts(out, "istio_build{component=\"");
	metrics__put_label(out, metrics__build_component);
	mesh_buf_puts(out, "\",tag=\"");
	metrics__put_label(out, metrics__build_tag);
	mesh_buf_puts(out, "\"} 1\n");

	metrics__head(out, "meshd_config_rejected_total", "counter",
		      "Configuration objects rejected by validation.");
	mesh_buf_printf(out, "meshd_config_rejected_total %llu\n",
			(unsigned long long)atomic_load_explicit(&metrics__config_rejected, memory_order_relaxed));

	metrics__head(out, "meshd_config_objects", "gauge", "Valid configuration objects served, per kind.");
	for (k = 0; k < CFG_KIND_COUNT; k++)
		mesh_buf_printf(out, "meshd_config_objects{kind=\"%s\"} %llu\n", cfg_kind_name((enum cfg_kind)k),
				(unsigned long long)atomic_load_explicit(&metrics__config_objects[k],
									 memory_order_relaxed));

	metrics__head(out, "meshd_config_reloads_total", "counter", "Configuration changes applied.");
	mesh_buf_printf(out, "meshd_config_reloads_total %llu\n",
			(unsigned long long)atomic_load_explicit(&metrics__config_reloads, memory_order_relaxed));

	metrics__head(out, "meshd_config_read_failures_total", "counter",
		      "Reads of the configuration source that failed; the last good configuration was kept.");
	mesh_buf_printf(out, "meshd_config_read_failures_total %llu\n",
			(unsigned long long)atomic_load_explicit(&metrics__config_read_failures,
								 memory_order_relaxed));

	metrics__head(out, "meshd_limit_exceeded_total", "counter",
		      "Inputs refused, cut or ignored past one of meshd's named limits.");
	for (k = 0; k < METRICS_LIMIT_COUNT; k++)
		mesh_buf_printf(out, "meshd_limit_exceeded_total{limit=\"%s\"} %llu\n", metrics__limit_label[k],
				(unsigned long long)atomic_load_explicit(&metrics__limits[k], memory_order_relaxed));

	v = metrics__cpu_seconds();
	if (v >= 0) {
		metrics__head(out, "process_cpu_seconds_total", "counter", "Total user and system CPU time spent in seconds.");
		mesh_buf_printf(out, "process_cpu_seconds_total %.6f\n", v);
	}
	metrics__gauge_double(out, "process_resident_memory_bytes", "Resident memory size in bytes.",
			      metrics__rss_bytes());
	metrics__gauge_double(out, "process_virtual_memory_bytes", "Virtual memory size in bytes.",
			      metrics__vsize_bytes());
	metrics__gauge_double(out, "process_open_fds", "Number of open file descriptors.", metrics__open_fds());
	metrics__gauge_double(out, "process_max_fds", "Maximum number of open file descriptors.", metrics__max_fds());
	metrics__gauge_double(out, "process_start_time_seconds",
			      "Start time of the process since unix epoch in seconds.", metrics__start_time());

	metrics__sections_render(out);
	return out->err;
}

/* ------------------------------------------------------------- sections */

/* Registered once at start (main), read by every scrape: set before any
 * thread renders, so no lock. */
static int (*metrics__sections[METRICS_MAX_SECTIONS])(struct mesh_buf *out);
static size_t metrics__n_sections;

int metrics_add_section(int (*render)(struct mesh_buf *out))
{
	if (!render)
		return -EINVAL;
	if (metrics__n_sections == METRICS_MAX_SECTIONS)
		return -ENOSPC;
	metrics__sections[metrics__n_sections++] = render;
	return 0;
}

static void metrics__sections_render(struct mesh_buf *out)
{
	size_t i;

	for (i = 0; i < metrics__n_sections; i++)
		metrics__sections[i](out);
}
