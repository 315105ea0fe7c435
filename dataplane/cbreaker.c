/*
 * cbreaker.c - circuit-breaker limits and counters (see cbreaker.h).
 */
#include "dataplane/cbreaker.h"

#include "envoy/config/cluster/v3/circuit_breaker.pb-c.h"
#include "envoy/type/v3/percent.pb-c.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static void cb_defaults(struct cb_thresholds *t)
{
	memset(t, 0, sizeof(*t));
	t->max[CB_CONNECTIONS] = CB_DEFAULT_MAX_CONNECTIONS;
	t->max[CB_PENDING] = CB_DEFAULT_MAX_PENDING;
	t->max[CB_REQUESTS] = CB_DEFAULT_MAX_REQUESTS;
	t->max[CB_RETRIES] = CB_DEFAULT_MAX_RETRIES;
	t->max[CB_POOLS] = UINT64_MAX;
}

int cb_init(struct cbreaker *cb, const Envoy__Config__Cluster__V3__CircuitBreakers *m, char *err, size_t cap)
{
	bool seen[CB_PRIO_COUNT] = { false, false };
	size_t i;
	int rc = 0;

	memset(cb, 0, sizeof(*cb));
	cb_defaults(&cb->t[CB_PRIO_DEFAULT]);
	cb_defaults(&cb->t[CB_PRIO_HIGH]);
	for (i = 0; m && i < m->n_thresholds; i++) {
		const Envoy__Config__Cluster__V3__CircuitBreakers__Thresholds *th = m->thresholds[i];
		struct cb_thresholds *t;
		unsigned p = (unsigned)th->priority;

		if (p >= CB_PRIO_COUNT) {
			snprintf(err, cap, "circuit_breakers.thresholds[%zu]: unknown priority %u", i, p);
			rc = -EINVAL;
			goto out;
		}
		if (seen[p]) {
			snprintf(err, cap, "circuit_breakers.thresholds[%zu]: priority %s listed twice", i,
				 p ? "HIGH" : "DEFAULT");
			rc = -EINVAL;
			goto out;
		}
		seen[p] = true;
		t = &cb->t[p];
		if (th->max_connections)
			t->max[CB_CONNECTIONS] = th->max_connections->value;
		if (th->max_pending_requests)
			t->max[CB_PENDING] = th->max_pending_requests->value;
		if (th->max_requests)
			t->max[CB_REQUESTS] = th->max_requests->value;
		if (th->max_retries)
			t->max[CB_RETRIES] = th->max_retries->value;
		if (th->max_connection_pools)
			t->max[CB_POOLS] = th->max_connection_pools->value;
		t->track_remaining = th->track_remaining;
		if (th->retry_budget) {
			t->has_budget = true;
			t->budget_percent = th->retry_budget->budget_percent ? th->retry_budget->budget_percent->value
									     : CB_DEFAULT_BUDGET_PERCENT;
			t->min_retry_concurrency = th->retry_budget->min_retry_concurrency
							   ? th->retry_budget->min_retry_concurrency->value
							   : CB_DEFAULT_MIN_RETRY_CONCURRENCY;
			if (t->budget_percent < 0 || t->budget_percent > 100) {
				snprintf(err, cap, "circuit_breakers.thresholds[%zu]: retry_budget.budget_percent %g not in [0, 100]",
					 i, t->budget_percent);
				rc = -EINVAL;
				goto out;
			}
		}
	}
out:
	return rc;
}

uint64_t cb_retry_budget(const struct cb_thresholds *t, uint64_t requests, uint64_t pending)
{
	/* Envoy's RetryBudgetImpl: a share of what is in flight, never below
	 * the minimum concurrency */
	uint64_t lim = (uint64_t)((double)(requests + pending) * t->budget_percent / 100.0);

	return lim > t->min_retry_concurrency ? lim : t->min_retry_concurrency;
}

uint64_t cb_limit(const struct cbreaker *cb, enum cb_priority p, enum cb_resource r)
{
	const struct cb_thresholds *t = &cb->t[p];

	if (r == CB_RETRIES && t->has_budget)
		return cb_retry_budget(t, cb->active[p][CB_REQUESTS], cb->active[p][CB_PENDING]);
	return t->max[r];
}

int cb_acquire(struct cbreaker *cb, enum cb_priority p, enum cb_resource r)
{
	if (cb_would_overflow(cb, p, r)) {
		cb->overflow[p][r]++;
		return -EBUSY;
	}
	cb->active[p][r]++;
	return 0;
}

void cb_release(struct cbreaker *cb, enum cb_priority p, enum cb_resource r)
{
	if (cb->active[p][r] > 0)
		cb->active[p][r]--;
}

uint64_t cb_remaining(const struct cbreaker *cb, enum cb_priority p, enum cb_resource r)
{
	uint64_t lim = cb_limit(cb, p, r);

	return cb->active[p][r] >= lim ? 0 : lim - cb->active[p][r];
}
