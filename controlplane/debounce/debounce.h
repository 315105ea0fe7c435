/*
 * debounce.h - coalescing bursts of changes into one push.
 *
 * A change starts a window; the push is due once changes have been quiet
 * for `after`, or `max` after the first change of the window at the
 * latest, so a steady stream of changes cannot hold pushes back forever.
 * Plain state, no clock of its own: callers pass CLOCK_MONOTONIC ns.  Not
 * thread-safe (the config thread owns it).
 */
#ifndef MESH_DEBOUNCE_H
#define MESH_DEBOUNCE_H

#include <stdbool.h>
#include <stdint.h>

struct debounce {
	int64_t after, max;          /* ns */
	int64_t first, last;         /* the window's first and latest change */
	bool pending;
};

/* after <= 0: 100ms; max <= 0: 10s. */
void debounce_init(struct debounce *d, int64_t after, int64_t max);
/* A change happened at now. */
void debounce_change(struct debounce *d, int64_t now);
/* Milliseconds until the push is due (0: due now), -1 when none pending. */
int debounce_timeout_ms(const struct debounce *d, int64_t now);
/* True (once per window, which it closes) when the push is due at now. */
bool debounce_take(struct debounce *d, int64_t now);
/* CLOCK_MONOTONIC in ns. */
int64_t debounce_now(void);

#endif
