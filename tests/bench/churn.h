/*
 * churn.h - config changes at a set rate, and how long each takes to reach
 * every proxy it concerns.
 *
 * Changes cycle through five kinds: an endpoint of a random service moves,
 * the weight split of a random service shifts, an endpoint of svc-0 moves
 * and svc-0's split shifts (every proxy targets svc-0: full pushes), and a
 * new service appears that a few proxies already ask for (with
 * replace_services, it replaces the one added before: those proxies move
 * to it and the older one is deleted).  One change is
 * written per interval; the next waits until the previous one reached every
 * proxy it concerns or timed out, so meshd's CPU time and the bytes
 * received over an interval belong to one change.
 *
 * Functions return 0 or a negative code (common/err.h).
 */
#ifndef MESH_BENCH_CHURN_H
#define MESH_BENCH_CHURN_H

#include "tests/bench/bench_mesh.h"
#include "tests/bench/loadgen.h"

#include <sys/types.h>

#define CHURN_MAX_CHANGES 10000

enum churn_kind {
	CHURN_ENDPOINT,
	CHURN_WEIGHT,
	CHURN_FULL_ENDPOINT,
	CHURN_FULL_WEIGHT,
	CHURN_ADD_SERVICE,
	CHURN_KINDS
};

struct churn_config {
	int changes;
	int interval_ms;
	int timeout_ms;          /* a change not everywhere by then counts as timed out */
	int add_subscribers;     /* proxies asking for a service before it exists */
	pid_t meshd_pid;         /* 0: no process figures */
	int steady;              /* no CHURN_ADD_SERVICE: the mesh and what each proxy asks for keep their size */
	int replace_services;    /* CHURN_ADD_SERVICE replaces the service the previous one added: the
				    proxies asking for that one move to the new one, its file is deleted,
				    so the mesh and the subscriptions stay bounded (the soak row) */
	uint64_t seed;
};

struct churn_change {
	enum churn_kind kind;
	int svc;
	int proxies;             /* concerned */
	int timed_out;
	double latency;          /* write -> last ACK, seconds */
	double meshd_cpu;        /* meshd CPU seconds over the interval */
	uint64_t bytes;          /* response bytes received over the interval */
	uint64_t responses;
	long meshd_rss_kb;       /* meshd's VmRSS at the end of the interval; 0 without a pid */
};

/* A process's memory and CPU from /proc. */
struct churn_proc {
	long rss_kb, hwm_kb;
	double cpu_s;            /* utime + stime (clock ticks) */
	double run_s;            /* time on CPU of its live threads (schedstat, ns) */
};
int churn_proc_sample(pid_t pid, struct churn_proc *out);

const char *churn_kind_name(enum churn_kind k);

/* Run cfg->changes changes; out gets one entry per change (cap entries). */
int churn_run(const struct churn_config *cfg, struct bench_mesh *mesh, struct loadgen *lg,
	      struct churn_change *out, int cap, int *n_out);

#endif
