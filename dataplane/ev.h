/*
 * ev.h - meshproxy's event loop: one thread, never blocks.
 *
 * The API is small and backend-neutral (as redis ae.h, haproxy's pollers):
 * only ev_epoll.c includes <sys/epoll.h>.  Everything a caller registers is
 * an object the caller embeds in its own struct (a connection holds its
 * struct ev_io and its struct ev_timer), so registering, re-arming and
 * cancelling never allocate and never fail for lack of memory.
 *
 * Readiness is level-triggered: a callback that stops reading before EAGAIN
 * (its buffer is full, a peer is slow) is called again on the next
 * iteration instead of being forgotten, which is what a proxy applying
 * back-pressure needs; the cost edge-triggering avoids is an epoll_ctl when
 * interest changes, and the loop skips that call when the mask is unchanged.
 *
 * Timers are a pairing heap threaded through the embedded timer structs:
 * arm O(1), cancel and fire O(log n) amortised, millisecond resolution
 * against a monotonic clock read once per iteration (ev_now()).  Timers with
 * the same deadline fire in the order they were armed.
 *
 * Deferred callbacks ("run soon") run after the I/O and timers of the
 * current iteration; one queued from a deferred callback runs on the next
 * iteration, so a callback that re-queues itself cannot starve I/O.
 *
 * Removing an fd, cancelling a timer or a deferred call is safe at any time,
 * including from inside any callback of the same iteration: a removed io
 * gets no further callback, even if its readiness was already collected.
 *
 * Functions return 0 or a negative errno-style code (common/err.h).
 */
#ifndef MESH_DATAPLANE_EV_H
#define MESH_DATAPLANE_EV_H

#include "common/err.h"

#include <stdint.h>

struct ev_loop;

enum {
	EV_READ = 1,
	EV_WRITE = 2,
	/* in events passed to a callback only: error or hang-up on the fd;
	 * the callback should read (to see EOF/the error) or close */
	EV_ERROR = 4,
};

struct ev_io;
typedef void (*ev_io_cb)(struct ev_loop *loop, struct ev_io *io, unsigned events);

/* An fd's registration; embed it, fill it with ev_io_init(). */
struct ev_io {
	int fd;
	unsigned mask;      /* current interest (EV_READ|EV_WRITE) */
	unsigned kmask;     /* interest as the kernel knows it */
	int active;         /* registered with the loop */
	ev_io_cb cb;
	void *data;
};

struct ev_timer;
typedef void (*ev_timer_cb)(struct ev_loop *loop, struct ev_timer *t);

/* A timer; embed it, ev_timer_init() once, then arm/cancel freely. */
struct ev_timer {
	uint64_t when;  /* deadline, ev_now() milliseconds */
	uint64_t seq;   /* arm order, breaks ties */
	struct ev_timer *child, *next, *prev; /* pairing heap links; prev is the parent for a first child */
	int armed;
	ev_timer_cb cb;
	void *data;
};

struct ev_defer;
typedef void (*ev_defer_cb)(struct ev_loop *loop, struct ev_defer *d);

/* A deferred call; embed it, ev_defer_init() once, queue as often as needed. */
struct ev_defer {
	struct ev_defer *next, *prev; /* circular list through the loop's sentinel */
	int queued;
	ev_defer_cb cb;
	void *data;
};

/* A new loop, or NULL on failure (errno set). */
MESH_MUST_CHECK struct ev_loop *ev_loop_new(void);
/* Frees the loop; registered fds are not closed (their owners close them). */
void ev_loop_free(struct ev_loop *loop);

/*
 * Runs until ev_stop(): wait for readiness (never longer than the nearest
 * timer, not at all when deferred calls are queued), dispatch I/O, fire due
 * timers, run deferred calls.  Returns 0 after ev_stop(), or a negative code
 * if the backend failed.
 */
MESH_MUST_CHECK int ev_run(struct ev_loop *loop);
/* One iteration, waiting at most timeout_ms (-1: until something happens). */
MESH_MUST_CHECK int ev_run_once(struct ev_loop *loop, int timeout_ms);
/* Makes ev_run() return at the end of the current iteration. */
void ev_stop(struct ev_loop *loop);

/* Monotonic milliseconds, cached: read once per iteration (and by ev_update_now()). */
uint64_t ev_now(const struct ev_loop *loop);
void ev_update_now(struct ev_loop *loop);

static inline void ev_io_init(struct ev_io *io, int fd, ev_io_cb cb, void *data)
{
	io->fd = fd;
	io->mask = 0;
	io->kmask = 0;
	io->active = 0;
	io->cb = cb;
	io->data = data;
}

/*
 * Registers io->fd with interest mask (EV_READ|EV_WRITE, 0 allowed).  The fd
 * should be non-blocking.  -EEXIST if already registered, or the backend's
 * error (-EBADF, -ENOMEM, -ENOSPC for the per-user epoll watch limit).
 */
MESH_MUST_CHECK int ev_io_start(struct ev_loop *loop, struct ev_io *io, unsigned mask);
/* Changes the interest of a registered io; a no-op when unchanged. */
MESH_MUST_CHECK int ev_io_set(struct ev_loop *loop, struct ev_io *io, unsigned mask);
/* Unregisters (before the fd is closed); a no-op when not registered. */
void ev_io_stop(struct ev_loop *loop, struct ev_io *io);

static inline void ev_timer_init(struct ev_timer *t, ev_timer_cb cb, void *data)
{
	t->armed = 0;
	t->child = t->next = t->prev = 0;
	t->when = t->seq = 0;
	t->cb = cb;
	t->data = data;
}

/* (Re-)arms t to fire once, after_ms from ev_now(); re-arming moves it. */
void ev_timer_arm(struct ev_loop *loop, struct ev_timer *t, uint64_t after_ms);
/* Same with an absolute deadline in ev_now() milliseconds. */
void ev_timer_arm_at(struct ev_loop *loop, struct ev_timer *t, uint64_t when_ms);
/* Disarms t; a no-op when not armed. */
void ev_timer_cancel(struct ev_loop *loop, struct ev_timer *t);
static inline int ev_timer_armed(const struct ev_timer *t)
{
	return t->armed;
}

static inline void ev_defer_init(struct ev_defer *d, ev_defer_cb cb, void *data)
{
	d->next = 0;
	d->prev = 0;
	d->queued = 0;
	d->cb = cb;
	d->data = data;
}

/* Queues d to run soon (once, however many times queued before it runs). */
void ev_defer(struct ev_loop *loop, struct ev_defer *d);
/* Unqueues d; a no-op when not queued. */
void ev_defer_cancel(struct ev_loop *loop, struct ev_defer *d);

/* Counters for /stats: iterations run, I/O callbacks, timers fired. */
struct ev_stats {
	uint64_t iterations, io_callbacks, timers_fired, defers_run;
	unsigned fds, timers;
};
void ev_get_stats(const struct ev_loop *loop, struct ev_stats *out);

#endif
