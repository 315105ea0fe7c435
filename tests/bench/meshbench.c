/*
 * meshbench.c - the scale benchmark's driver.
 *
 *   meshbench config --dir DIR [--services N]
 *       write the benchmark mesh (bench_mesh.h) for meshd --config-dir DIR
 *   meshbench run --xds HOST:PORT --dir DIR [--services N] [--proxies M] ...
 *       connect M simulated proxies (loadgen.h), wait until all are synced,
 *       then edit DIR at a set rate (churn.h) and print what it took, ending
 *       with one "RESULT key=value ..." line that tests/bench/run.sh reads;
 *       --delta makes the proxies speak Delta xDS (DeltaAggregatedResources);
 *       --steady leaves out the add-service changes, so that the mesh and
 *       what each proxy asks for keep their size; --replace-services keeps
 *       them but makes each replace the service the one before added (its
 *       subscribers move over, its file is deleted): bounded (the soak row).
 *
 * The mesh state is rebuilt from --services, so `run` must be given the
 * directory `config` wrote, unchanged since.
 */
#include "tests/bench/bench_mesh.h"
#include "tests/bench/churn.h"
#include "tests/bench/loadgen.h"

#include "common/err.h"
#include "common/log.h"

#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

/* The soak figure compares meshd's RSS after the last change with its RSS
 * after this one: by then every kind of change has run a few times, so
 * what one push allocates and keeps for good is in both samples, and only
 * what grows with the number of changes is in the difference. */
#define MESHBENCH_RSS_EARLY_CHANGE 20

struct opts {
	const char *dir;
	const char *xds;
	int services;
	int proxies;
	int channels;
	int targets;
	int sidecar_percent;
	int changes;
	int interval_ms;
	int change_timeout_ms;
	int sync_timeout_s;
	int add_subscribers;
	int meshd_pid;
	int delta;
	int steady;
	int replace_services;
	int sidecar;         /* sidecar proxies holding the whole mesh (steady changes only) */
	int workloads;
	long long seed;
	const char *log_level;
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: meshbench config --dir DIR [--services N]\n"
		"       meshbench run --xds HOST:PORT --dir DIR [--services N] [--proxies M] [--channels C]\n"
		"                     [--targets K] [--sidecar-percent P] [--changes X] [--interval-ms MS]\n"
		"                     [--change-timeout-ms MS] [--sync-timeout-s S] [--add-subscribers N]\n"
		"                     [--meshd-pid PID] [--seed S] [--log-level LEVEL] [--delta] [--steady]\n"
		"                     [--replace-services] [--sidecar [--workloads W]]\n");
}

static int int_arg(const char *name, const char *v, long lo, long hi, int *out)
{
	char *end;
	long n = strtol(v, &end, 10);

	if (!*v || *end || n < lo || n > hi) {
		fprintf(stderr, "meshbench: --%s: want an integer in [%ld, %ld], got \"%s\"\n", name, lo, hi, v);
		return -EINVAL;
	}
	*out = (int)n;
	return 0;
}

static int parse(int argc, char **argv, struct opts *o)
{
	enum { O_DIR = 256, O_XDS, O_SERVICES, O_PROXIES, O_CHANNELS, O_TARGETS, O_SIDECAR, O_CHANGES, O_INTERVAL,
	       O_CTIMEOUT, O_STIMEOUT, O_ADDSUB, O_PID, O_SEED, O_LOG, O_DELTA, O_STEADY,
	       O_REPLACE, O_SIDECAR_MODE, O_WORKLOADS };
	static const struct option lo[] = {
		{ "dir", required_argument, NULL, O_DIR },
		{ "xds", required_argument, NULL, O_XDS },
		{ "services", required_argument, NULL, O_SERVICES },
		{ "proxies", required_argument, NULL, O_PROXIES },
		{ "channels", required_argument, NULL, O_CHANNELS },
		{ "targets", required_argument, NULL, O_TARGETS },
		{ "sidecar-percent", required_argument, NULL, O_SIDECAR },
		{ "changes", required_argument, NULL, O_CHANGES },
		{ "interval-ms", required_argument, NULL, O_INTERVAL },
		{ "change-timeout-ms", required_argument, NULL, O_CTIMEOUT },
		{ "sync-timeout-s", required_argument, NULL, O_STIMEOUT },
		{ "add-subscribers", required_argument, NULL, O_ADDSUB },
		{ "meshd-pid", required_argument, NULL, O_PID },
		{ "seed", required_argument, NULL, O_SEED },
		{ "log-level", required_argument, NULL, O_LOG },
		{ "delta", no_argument, NULL, O_DELTA },
		{ "steady", no_argument, NULL, O_STEADY },
		{ "replace-services", no_argument, NULL, O_REPLACE },
		{ "sidecar", no_argument, NULL, O_SIDECAR_MODE },
		{ "workloads", required_argument, NULL, O_WORKLOADS },
		{ NULL, 0, NULL, 0 },
	};
	int c, rc = 0, seed = 1;

	o->services = 1000;
	o->proxies = 2000;
	o->channels = 16;
	o->targets = 5;
	o->sidecar_percent = 50;
	o->changes = 20;
	o->interval_ms = 1000;
	o->change_timeout_ms = 10000;
	o->sync_timeout_s = 120;
	o->add_subscribers = 20;
	o->log_level = "info";
	while (rc == 0 && (c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case O_DIR: o->dir = optarg; break;
		case O_XDS: o->xds = optarg; break;
		case O_SERVICES: rc = int_arg("services", optarg, 1, BENCH_MESH_MAX_SERVICES - CHURN_MAX_CHANGES, &o->services); break;
		case O_PROXIES: rc = int_arg("proxies", optarg, 1, LOADGEN_MAX_PROXIES, &o->proxies); break;
		case O_CHANNELS: rc = int_arg("channels", optarg, 1, LOADGEN_MAX_CHANNELS, &o->channels); break;
		case O_TARGETS: rc = int_arg("targets", optarg, 1, LOADGEN_MAX_TARGETS, &o->targets); break;
		case O_SIDECAR: rc = int_arg("sidecar-percent", optarg, 0, 100, &o->sidecar_percent); break;
		case O_CHANGES: rc = int_arg("changes", optarg, 0, CHURN_MAX_CHANGES, &o->changes); break;
		case O_INTERVAL: rc = int_arg("interval-ms", optarg, 1, 3600000, &o->interval_ms); break;
		case O_CTIMEOUT: rc = int_arg("change-timeout-ms", optarg, 1, 3600000, &o->change_timeout_ms); break;
		case O_STIMEOUT: rc = int_arg("sync-timeout-s", optarg, 1, 86400, &o->sync_timeout_s); break;
		case O_ADDSUB: rc = int_arg("add-subscribers", optarg, 1, LOADGEN_MAX_PROXIES, &o->add_subscribers); break;
		case O_PID: rc = int_arg("meshd-pid", optarg, 1, 1 << 30, &o->meshd_pid); break;
		case O_SEED: rc = int_arg("seed", optarg, 0, 1 << 30, &seed); break;
		case O_LOG: o->log_level = optarg; break;
		case O_DELTA: o->delta = 1; break;
		case O_STEADY: o->steady = 1; break;
		case O_REPLACE: o->replace_services = 1; break;
		case O_SIDECAR_MODE: o->sidecar = 1; break;
		case O_WORKLOADS: rc = int_arg("workloads", optarg, 1, LOADGEN_MAX_PROXIES, &o->workloads); break;
		default: rc = -EINVAL; break;
		}
	}
	o->seed = seed;
	if (o->sidecar) {
		/* every change concerns every sidecar; a new service is no new
		 * listener for one (the port's route config grows): steady kinds */
		o->steady = 1;
		o->replace_services = 0;
	}
	if (rc == 0 && mesh_log_setup(o->log_level, "text") < 0)
		rc = -EINVAL;
	if (rc == 0 && !o->dir) {
		fprintf(stderr, "meshbench: --dir is required\n");
		rc = -EINVAL;
	}
	if (rc < 0)
		usage(stderr);
	return rc;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of v (sorted in place); 0 when n is 0. */
static double percentile(double *v, int n, double p)
{
	int k;

	if (n <= 0)
		return 0;
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	k = (int)ceil(p * n) - 1;
	if (k < 0)
		k = 0;
	if (k >= n)
		k = n - 1;
	return v[k];
}

static double self_cpu(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
	       (double)ru.ru_stime.tv_usec / 1e6;
}

static int cmd_config(const struct opts *o)
{
	struct bench_mesh *m = NULL;
	int rc = bench_mesh_new(o->dir, o->services, &m);

	if (rc == 0)
		rc = bench_mesh_write_all(m);
	if (rc < 0)
		fprintf(stderr, "meshbench: writing %d services to %s: %s\n", o->services, o->dir, mesh_strerror(rc));
	bench_mesh_free(m);
	return rc;
}

static void print_sample(const char *what, const struct churn_proc *p)
{
	printf("meshd %-16s RSS %7.1f MB  peak %7.1f MB  CPU %7.2f s\n", what, p->rss_kb / 1024.0,
	       p->hwm_kb / 1024.0, p->cpu_s);
}

static int cmd_run(const struct opts *o)
{
	struct loadgen_config lc = { 0 };
	struct churn_config cc = { 0 };
	struct churn_proc p0 = { 0 }, p1 = { 0 }, p2 = { 0 };
	struct churn_change *ch = NULL;
	struct loadgen_stats st, st_sync;
	struct bench_mesh *mesh = NULL;
	struct loadgen *lg = NULL;
	double t_start, lg_cpu0 = self_cpu(), *lat = NULL, *flat = NULL, *elat = NULL, *wlat = NULL;
	int nel = 0, nwl = 0;
	double full_cpu = 0, any_cpu = 0, full_bytes = 0, full_resp = 0, ep_bytes = 0;
	int nch = 0, nfull = 0, nep = 0, timeouts = 0, early = 0, i, rc;
	long rss_early_kb = 0, rss_last_kb = 0;
	pid_t pid = (pid_t)o->meshd_pid;

	if (!o->xds) {
		fprintf(stderr, "meshbench: --xds is required\n");
		return -EINVAL;
	}
	rc = bench_mesh_new(o->dir, o->services, &mesh);
	if (rc < 0)
		goto out;
	ch = calloc((size_t)(o->changes ? o->changes : 1), sizeof(*ch));
	lat = calloc((size_t)(o->changes ? o->changes : 1), sizeof(*lat));
	flat = calloc((size_t)(o->changes ? o->changes : 1), sizeof(*flat));
	elat = calloc((size_t)(o->changes ? o->changes : 1), sizeof(*elat));
	wlat = calloc((size_t)(o->changes ? o->changes : 1), sizeof(*wlat));
	if (!ch || !lat || !flat || !elat || !wlat) {
		rc = -ENOMEM;
		goto out;
	}
	if (pid)
		churn_proc_sample(pid, &p0);

	lc.target = o->xds;
	lc.proxies = o->proxies;
	lc.channels = o->channels < o->proxies ? o->channels : o->proxies;
	lc.targets = o->targets;
	lc.services = o->services;
	lc.sidecar_percent = o->sidecar_percent;
	lc.delta = o->delta;
	lc.sidecar = o->sidecar;
	lc.workloads = o->workloads;
	lc.seed = (uint64_t)o->seed * 2654435761ULL + 1;
	t_start = loadgen_now();
	rc = loadgen_new(&lc, &lg);
	if (rc < 0) {
		fprintf(stderr, "meshbench: cannot start the proxies: %s\n", mesh_strerror(rc));
		goto out;
	}
	for (;;) {
		loadgen_stats(lg, &st);
		if (st.synced == st.proxies || st.failed > 0 || loadgen_now() - t_start > o->sync_timeout_s)
			break;
		loadgen_run(lg, 20);
	}
	if (st.synced != st.proxies) {
		fprintf(stderr, "meshbench: %d of %d proxies synced after %.1f s (%d streams failed)\n", st.synced,
			st.proxies, loadgen_now() - t_start, st.failed);
		rc = -ETIMEDOUT;
		goto out;
	}
	st_sync = st;
	/* let the last ACKs land before sampling */
	loadgen_run(lg, 500);
	if (pid)
		churn_proc_sample(pid, &p1);
	if (o->sidecar)
		printf("%d sidecars (%s, %d workloads, the whole mesh each) on %d connections, "
		       "%d services\n",
		       st.proxies, o->delta ? "Delta xDS" : "state of the world", o->workloads > 0 ? o->workloads : 20,
		       lc.channels, o->services);
	else
		printf("%d proxies (%s, %d%% sidecar metadata, %d listeners each) on %d connections, %d services\n",
		       st.proxies, o->delta ? "Delta xDS" : "state of the world", o->sidecar_percent, o->targets,
		       lc.channels, o->services);
	printf("all synced in %.3f s: %llu responses, %llu resources, %.1f MB received, %llu requests\n",
	       st.all_synced_at - t_start, (unsigned long long)st.responses, (unsigned long long)st.resources,
	       st.bytes / 1e6, (unsigned long long)st.requests);
	if (pid) {
		print_sample("before", &p0);
		print_sample("synced", &p1);
	}

	cc.changes = o->changes;
	cc.interval_ms = o->interval_ms;
	cc.timeout_ms = o->change_timeout_ms;
	cc.add_subscribers = o->add_subscribers < o->proxies ? o->add_subscribers : o->proxies;
	cc.meshd_pid = pid;
	cc.steady = o->steady;
	cc.replace_services = o->replace_services;
	cc.seed = (uint64_t)o->seed + 7;
	rc = churn_run(&cc, mesh, lg, ch, o->changes, &nch);
	if (rc < 0)
		goto out;
	if (pid)
		churn_proc_sample(pid, &p2);
	loadgen_stats(lg, &st);

	for (i = 0; i < nch; i++) {
		lat[i] = ch[i].latency;
		timeouts += ch[i].timed_out;
		any_cpu += ch[i].meshd_cpu;
		if (ch[i].kind == CHURN_FULL_ENDPOINT || ch[i].kind == CHURN_FULL_WEIGHT) {
			flat[nfull++] = ch[i].latency;
			full_cpu += ch[i].meshd_cpu;
			full_bytes += (double)ch[i].bytes;
			full_resp += (double)ch[i].responses;
		}
		if (ch[i].kind == CHURN_FULL_ENDPOINT) {
			ep_bytes += (double)ch[i].bytes;
			nep++;
		}
		if (ch[i].kind == CHURN_ENDPOINT || ch[i].kind == CHURN_FULL_ENDPOINT)
			elat[nel++] = ch[i].latency;
		if (ch[i].kind == CHURN_WEIGHT || ch[i].kind == CHURN_FULL_WEIGHT)
			wlat[nwl++] = ch[i].latency;
	}
	if (nch > 0) {
		early = nch < MESHBENCH_RSS_EARLY_CHANGE ? nch : MESHBENCH_RSS_EARLY_CHANGE;
		rss_early_kb = ch[early - 1].meshd_rss_kb;
		rss_last_kb = ch[nch - 1].meshd_rss_kb;
	}
	if (pid) {
		print_sample("after churn", &p2);
		printf("meshd RSS after change %d %.1f MB, after change %d %.1f MB (%+.1f%%)\n", early,
		       rss_early_kb / 1024.0, nch, rss_last_kb / 1024.0,
		       rss_early_kb ? 100.0 * (double)(rss_last_kb - rss_early_kb) / (double)rss_early_kb : 0);
	}
	printf("%d changes: change -> all ACKed p50 %.1f ms, p99 %.1f ms, max %.1f ms; %d timed out\n", nch,
	       percentile(lat, nch, 0.5) * 1000, percentile(lat, nch, 0.99) * 1000, percentile(lat, nch, 1.0) * 1000,
	       timeouts);
	printf("%d full pushes (%d proxies each): p50 %.1f ms, p99 %.1f ms, max %.1f ms; meshd CPU %.3f s and "
	       "%.0f bytes in %.0f responses per push\n",
	       nfull, st.proxies, percentile(flat, nfull, 0.5) * 1000, percentile(flat, nfull, 0.99) * 1000,
	       percentile(flat, nfull, 1.0) * 1000, nfull ? full_cpu / nfull : 0, nfull ? full_bytes / nfull : 0,
	       nfull ? full_resp / nfull : 0);
	printf("%d endpoint changes: %.0f bytes per push\n", nep, nep ? ep_bytes / nep : 0);
	printf("endpoint changes -> all ACKed p50 %.1f ms, p99 %.1f ms (%d); VirtualService changes p50 %.1f ms, "
	       "p99 %.1f ms (%d)\n",
	       percentile(elat, nel, 0.5) * 1000, percentile(elat, nel, 0.99) * 1000, nel,
	       percentile(wlat, nwl, 0.5) * 1000, percentile(wlat, nwl, 0.99) * 1000, nwl);
	printf("streams failed: %d; decode errors: %llu; load generator CPU %.2f s\n", st.failed,
	       (unsigned long long)st.decode_errors, self_cpu() - lg_cpu0);
	printf("RESULT delta=%d proxies=%d services=%d sync_s=%.3f sync_bytes=%llu rss_synced_kb=%ld rss_after_kb=%ld "
	       "hwm_kb=%ld cpu_sync_s=%.3f changes=%d timeouts=%d p50_ms=%.1f p99_ms=%.1f max_ms=%.1f "
	       "full_pushes=%d full_p50_ms=%.1f full_p99_ms=%.1f full_max_ms=%.1f full_cpu_s=%.4f "
	       "change_cpu_s=%.4f full_bytes=%.0f ep_bytes=%.0f failed=%d decode_errors=%llu lg_cpu_s=%.2f "
	       "rss_early_change=%d rss_early_kb=%ld rss_last_kb=%ld sidecar=%d ep_p50_ms=%.1f ep_p99_ms=%.1f "
	       "vs_p50_ms=%.1f vs_p99_ms=%.1f\n",
	       o->delta, st.proxies, o->services, st_sync.all_synced_at - t_start, (unsigned long long)st_sync.bytes,
	       p1.rss_kb, p2.rss_kb, p2.hwm_kb, p1.cpu_s - p0.cpu_s, nch, timeouts, percentile(lat, nch, 0.5) * 1000,
	       percentile(lat, nch, 0.99) * 1000, percentile(lat, nch, 1.0) * 1000, nfull,
	       percentile(flat, nfull, 0.5) * 1000, percentile(flat, nfull, 0.99) * 1000,
	       percentile(flat, nfull, 1.0) * 1000, nfull ? full_cpu / nfull : 0, nch ? any_cpu / nch : 0,
	       nfull ? full_bytes / nfull : 0, nep ? ep_bytes / nep : 0, st.failed, (unsigned long long)st.decode_errors,
	       self_cpu() - lg_cpu0, early, rss_early_kb, rss_last_kb, o->sidecar, percentile(elat, nel, 0.5) * 1000,
	       percentile(elat, nel, 0.99) * 1000, percentile(wlat, nwl, 0.5) * 1000, percentile(wlat, nwl, 0.99) * 1000);
	if (st.failed > 0 || st.decode_errors > 0 || timeouts > 0)
		rc = -EIO;
out:
	loadgen_free(lg);
	bench_mesh_free(mesh);
	free(ch);
	free(lat);
	free(flat);
	free(elat);
	free(wlat);
	return rc;
}

int main(int argc, char **argv)
{
	struct opts o;
	const char *cmd;
	int rc;

	memset(&o, 0, sizeof(o));
	signal(SIGPIPE, SIG_IGN);
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	cmd = argv[1];
	if (parse(argc - 1, argv + 1, &o) < 0)
		return 2;
	if (strcmp(cmd, "config") == 0)
		rc = cmd_config(&o);
	else if (strcmp(cmd, "run") == 0)
		rc = cmd_run(&o);
	else {
		usage(stderr);
		return 2;
	}
	return rc < 0 ? 1 : 0;
}
