/*
 * debounce.c - coalescing bursts of changes into one push (see debounce.h).
 */
#include "controlplane/debounce/debounce.h"

#include <time.h>

void debounce_init(struct debounce *d, int64_t after, int64_t max)
{
	d->after = after > 0 ? after : 100000000LL;
	d->max = max > 0 ? max : 10000000000LL;
	d->first = d->last = 0;
	d->pending = false;
}

void debounce_change(struct debounce *d, int64_t now)
{
	if (!d->pending) {
		d->pending = true;
		d->first = now;
	}
	d->last = now;
}

static int64_t debounce__due(const struct debounce *d)
{
	int64_t quiet = d->last + d->after, cap = d->first + d->max;

	return quiet < cap ? quiet : cap;
}

int debounce_timeout_ms(const struct debounce *d, int64_t now)
{
	int64_t left;

	if (!d->pending)
		return -1;
	left = debounce__due(d) - now;
	if (left <= 0)
		return 0;
	return (int)((left + 999999) / 1000000); /* round up: never wake before due */
}

bool debounce_take(struct debounce *d, int64_t now)
{
	if (!d->pending || now < debounce__due(d))
		return false;
	d->pending = false;
	return true;
}

int64_t debounce_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}
