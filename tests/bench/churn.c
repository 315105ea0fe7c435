/*
 * churn.c - the churn driver: edits the config directory through
 * bench_mesh, arms a loadgen watch for each edit, and measures write ->
 * every concerned proxy ACKed, plus meshd's CPU and the bytes pushed per
 * change.  See churn.h.
 */
#include "tests/bench/churn.h"

#include "common/err.h"
#include "common/log.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SCOPE "churn"
/* /proc/PID/status and /proc/PID/stat are a few KiB */
#define CHURN_PROC_READ_CAP 8192
/* how long a new service's subscribers get to ask before it is written */
#define CHURN_SUBSCRIBE_MS 200

static int read_small(const char *path, char *buf, size_t cap)
{
	FILE *f = fopen(path, "re");
	size_t n;

	if (!f)
		return -errno;
	n = fread(buf, 1, cap - 1, f);
	buf[n] = '\0';
	fclose(f);
	return 0;
}

/* Sum of the first schedstat field (ns on CPU) over the live threads:
 * finer than the clock ticks of /proc/PID/stat, which a change that
 * costs a few milliseconds would not register. */
static double run_time(pid_t pid)
{
	char path[64], buf[256];
	struct dirent *e;
	unsigned long long ns, total = 0;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	d = opendir(path);
	if (!d)
		return 0;
	while ((e = readdir(d))) {
		char p[300];
		if (e->d_name[0] == '.')
			continue;
		snprintf(p, sizeof(p), "/proc/%d/task/%s/schedstat", (int)pid, e->d_name);
		if (read_small(p, buf, sizeof(buf)) == 0 && sscanf(buf, "%llu", &ns) == 1)
			total += ns;
	}
	closedir(d);
	return (double)total / 1e9;
}

int churn_proc_sample(pid_t pid, struct churn_proc *out)
{
	char path[64], buf[CHURN_PROC_READ_CAP];
	const char *p;
	unsigned long utime = 0, stime = 0;
	long tck = sysconf(_SC_CLK_TCK);
	int rc;

	memset(out, 0, sizeof(*out));
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	rc = read_small(path, buf, sizeof(buf));
	if (rc < 0)
		return rc;
	if ((p = strstr(buf, "VmRSS:")))
		out->rss_kb = strtol(p + 6, NULL, 10);
	if ((p = strstr(buf, "VmHWM:")))
		out->hwm_kb = strtol(p + 6, NULL, 10);
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	rc = read_small(path, buf, sizeof(buf));
	if (rc < 0)
		return rc;
	/* after "pid (comm) ": state is field 3, utime 14, stime 15 */
	p = strrchr(buf, ')');
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &utime, &stime) != 2)
		return -MESH_EPARSE;
	out->cpu_s = (double)(utime + stime) / (double)(tck > 0 ? tck : 100);
	out->run_s = run_time(pid);
	return 0;
}

const char *churn_kind_name(enum churn_kind k)
{
	static const char *const names[CHURN_KINDS] = {
		[CHURN_ENDPOINT] = "endpoint",
		[CHURN_WEIGHT] = "weight",
		[CHURN_FULL_ENDPOINT] = "full-endpoint",
		[CHURN_FULL_WEIGHT] = "full-weight",
		[CHURN_ADD_SERVICE] = "add-service",
	};

	return (unsigned)k < CHURN_KINDS ? names[k] : "?";
}

static uint64_t rng_next(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* meshd's CPU seconds so far; *rss_kb (when not NULL) its VmRSS now. */
static double meshd_cpu(pid_t pid, long *rss_kb)
{
	struct churn_proc pr;

	if (rss_kb)
		*rss_kb = 0;
	if (pid <= 0 || churn_proc_sample(pid, &pr) < 0)
		return 0;
	if (rss_kb)
		*rss_kb = pr.rss_kb;
	return pr.run_s;
}

/* Arm the watch and write the change.  *t0 is the write time. */
/* base: the services of the mesh as written (replace_services picks
 * endpoint and weight changes among them); *extra: the service the last
 * add-service change added (-1: none). */
static int churn_apply(const struct churn_config *cfg, struct bench_mesh *mesh, struct loadgen *lg, uint64_t *rng,
		       int base, int *extra, struct churn_change *c, double *t0)
{
	struct loadgen_watch w;
	int nsvc = cfg->replace_services ? base : bench_mesh_services(mesh), rc = 0;

	memset(&w, 0, sizeof(w));
	switch (c->kind) {
	case CHURN_ENDPOINT:
	case CHURN_WEIGHT:
		/* any service but svc-0 (that one is the full-push case) */
		c->svc = nsvc > 1 ? 1 + (int)(rng_next(rng) % (uint64_t)(nsvc - 1)) : 0;
		break;
	case CHURN_FULL_ENDPOINT:
	case CHURN_FULL_WEIGHT:
		c->svc = 0;
		break;
	case CHURN_ADD_SERVICE:
		c->svc = bench_mesh_services(mesh);
		break;
	default:
		return -EINVAL;
	}
	w.svc = c->svc;
	*t0 = loadgen_now();
	if (c->kind == CHURN_ENDPOINT || c->kind == CHURN_FULL_ENDPOINT) {
		/* the address is chosen by the edit: edit first, arm, then write */
		w.kind = LOADGEN_WATCH_ENDPOINT;
		rc = bench_mesh_move_endpoint(mesh, c->svc, w.address, sizeof(w.address));
	} else if (c->kind == CHURN_WEIGHT || c->kind == CHURN_FULL_WEIGHT) {
		w.kind = LOADGEN_WATCH_WEIGHT;
		rc = bench_mesh_shift_weight(mesh, c->svc, &w.weight);
	} else {
		w.kind = LOADGEN_WATCH_LISTENER;
		w.subscribers = cfg->add_subscribers;
		if (cfg->replace_services && *extra >= 0) {
			w.replace = 1;
			w.replaced_svc = *extra;
		}
		rc = loadgen_watch_arm(lg, 0, &w);
		if (rc < 0)
			return rc;
		c->proxies = rc;
		/* let the subscriptions reach meshd before the service exists */
		loadgen_run(lg, CHURN_SUBSCRIBE_MS);
		*t0 = loadgen_now();
		rc = bench_mesh_add_service(mesh, &c->svc);
		if (rc == 0 && w.replace)
			rc = bench_mesh_remove_service(mesh, w.replaced_svc);
		if (rc == 0 && cfg->replace_services)
			*extra = c->svc;
		return rc < 0 ? rc : 0;
	}
	/* bench_mesh wrote the file already; no completion has been handled
	 * since, so arming now misses nothing */
	if (rc < 0)
		return rc;
	rc = loadgen_watch_arm(lg, 0, &w);
	if (rc < 0)
		return rc;
	c->proxies = rc;
	return 0;
}

int churn_run(const struct churn_config *cfg, struct bench_mesh *mesh, struct loadgen *lg,
	      struct churn_change *out, int cap, int *n_out)
{
	struct loadgen_stats before, after;
	int i, rc = 0, base = bench_mesh_services(mesh), extra = -1;
	uint64_t rng = cfg->seed ? cfg->seed : 1;

	*n_out = 0;
	for (i = 0; i < cfg->changes && i < cap; i++) {
		struct churn_change *c = &out[i];
		double t0 = 0, start = loadgen_now(), last = 0, cpu0 = meshd_cpu(cfg->meshd_pid, NULL);
		int pending;

		memset(c, 0, sizeof(*c));
		c->kind = (enum churn_kind)(i % (cfg->steady ? CHURN_ADD_SERVICE : CHURN_KINDS));
		loadgen_stats(lg, &before);
		rc = churn_apply(cfg, mesh, lg, &rng, base, &extra, c, &t0);
		if (rc < 0) {
			log_error(SCOPE, "change %d (%s): %s", i, churn_kind_name(c->kind), mesh_strerror(rc));
			goto out;
		}
		for (;;) {
			pending = loadgen_watch_pending(lg, 0, &last);
			if (pending <= 0 || loadgen_now() - t0 > cfg->timeout_ms / 1000.0)
				break;
			loadgen_run(lg, 2);
		}
		if (pending > 0) {
			c->timed_out = 1;
			c->latency = cfg->timeout_ms / 1000.0;
			log_warn(SCOPE, "change %d (%s svc-%d): %d of %d proxies still waiting after %d ms", i,
				 churn_kind_name(c->kind), c->svc, pending, c->proxies, cfg->timeout_ms);
		} else {
			c->latency = c->proxies ? last - t0 : 0;
		}
		loadgen_watch_disarm(lg, 0);
		/* the rest of the interval: ACKs settle, meshd goes idle */
		while (loadgen_now() - start < cfg->interval_ms / 1000.0)
			loadgen_run(lg, 10);
		loadgen_stats(lg, &after);
		c->bytes = after.bytes - before.bytes;
		c->responses = after.responses - before.responses;
		c->meshd_cpu = meshd_cpu(cfg->meshd_pid, &c->meshd_rss_kb) - cpu0;
		log_info(SCOPE, "change %d %-13s svc-%-5d %5d proxies  %7.1f ms%s  %6.3f s meshd CPU  %8llu bytes  "
			 "%7.1f MB meshd RSS", i, churn_kind_name(c->kind), c->svc, c->proxies, c->latency * 1000,
			 c->timed_out ? " (timeout)" : "", c->meshd_cpu, (unsigned long long)c->bytes,
			 c->meshd_rss_kb / 1024.0);
		(*n_out)++;
	}
out:
	return rc;
}
