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

#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

/* Istio's pilot_proxy_convergence_time buckets, in seconds. */
static const double metrics__conv_bounds[] = { 0.1, 0.5, 1, 3, 5, 10, 20, 30 };
#define METRICS_CONV_BOUNDS (sizeof(metrics__conv_bounds) / sizeof(metrics__conv_bounds[0]))

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
/* per-bucket (not cumulative) counts; the last one is +Inf */
static _Atomic uint64_t metrics__conv_buckets[METRICS_CONV_BOUNDS + 1];
/* the histogram sum, a double kept as its bit pattern for CAS */
static _Atomic uint64_t metrics__conv_sum_bits;
static _Atomic uint64_t metrics__config_rejected;
static _Atomic uint64_t metrics__config_objects[CFG_KIND_COUNT];
static _Atomic uint64_t metrics__config_reloads;
static _Atomic uint64_t metrics__config_read_failures;

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

void metrics_convergence(double seconds)
{
	uint64_t old, want;
	size_t i;

	/* NaN or negative (clock stepped back) counts as 0 */
	if (!(seconds >= 0))
		seconds = 0;
	for (i = 0; i < METRICS_CONV_BOUNDS; i++)
		if (seconds <= metrics__conv_bounds[i])
			break;
	atomic_fetch_add_explicit(&metrics__conv_buckets[i], 1, memory_order_relaxed);

	old = atomic_load_explicit(&metrics__conv_sum_bits, memory_order_relaxed);
	do {
		want = metrics__dbits(metrics__bitsd(old) + seconds);
	} while (!atomic_compare_exchange_weak_explicit(&metrics__conv_sum_bits, &old, want,
							memory_order_relaxed, memory_order_relaxed));
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

/*
 * Returns 0, or -MESH_ETOOBIG / -ENOMEM when out could not hold it all
 * (the buffer's sticky error).
 */
int metrics_render(struct mesh_buf *out)
{
	uint64_t cum = 0;
	double v;
	size_t i;
	int k;

	metrics__head(out, "pilot_xds_pushes", "counter", "xDS responses sent to proxies, per type.");
	metrics__per_type(out, "pilot_xds_pushes", metrics__pushes);

	metrics__head(out, "pilot_total_xds_rejects", "counter", "Total number of XDS responses from pilot rejected by proxy.");
	metrics__per_type(out, "pilot_total_xds_rejects", metrics__rejects);

	metrics__head(out, "pilot_xds", "gauge", "Number of endpoints connected to this pilot using XDS.");
	mesh_buf_printf(out, "pilot_xds %lld\n",
			(long long)atomic_load_explicit(&metrics__connected, memory_order_relaxed));

	metrics__head(out, "pilot_proxy_convergence_time", "histogram",
		      "Delays in seconds between config change and a proxy receiving all required configuration.");
	for (i = 0; i <= METRICS_CONV_BOUNDS; i++) {
		cum += atomic_load_explicit(&metrics__conv_buckets[i], memory_order_relaxed);
		if (i < METRICS_CONV_BOUNDS)
			mesh_buf_printf(out, "pilot_proxy_convergence_time_bucket{le=\"%g\"} %llu\n",
					metrics__conv_bounds[i], (unsigned long long)cum);
		else
			mesh_buf_printf(out, "pilot_proxy_convergence_time_bucket{le=\"+Inf\"} %llu\n",
					(unsigned long long)cum);
	}
	v = metrics__bitsd(atomic_load_explicit(&metrics__conv_sum_bits, memory_order_relaxed));
	mesh_buf_puts(out, "pilot_proxy_convergence_time_sum ");
	metrics__put_double(out, v);
	mesh_buf_putc(out, '\n');
	/* the count is the +Inf bucket, so the two always agree */
	mesh_buf_printf(out, "pilot_proxy_convergence_time_count %llu\n", (unsigned long long)cum);

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

	v = metrics__cpu_seconds();
	if (v >= 0) {
		metrics__head(out, "process_cpu_seconds_total", "counter", "Total user and system CPU time spent in seconds.");
		mesh_buf_printf(out, "process_cpu_seconds_total %.6f\n", v);
	}
	metrics__gauge_double(out, "process_resident_memory_bytes", "Resident memory size in bytes.",
			      metrics__rss_bytes());
	metrics__gauge_double(out, "process_virtual_memory_bytes", "Virtual memory size in bytes.",
			      metrics__vsize_bytes());
	metrics__gauge_double(out, "process_start_time_seconds",
			      "Start time of the process since unix epoch in seconds.", metrics__start_time());

	return out->err;
}
