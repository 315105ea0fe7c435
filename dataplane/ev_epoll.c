/*
 * ev_epoll.c - the event loop of ev.h over Linux epoll (level-triggered).
 *
 * The only file of meshproxy that includes <sys/epoll.h> (redis ae_epoll.c,
 * haproxy ev_epoll.c).  One iteration: wait (bounded by the nearest timer,
 * zero when deferred calls are queued), dispatch the collected readiness,
 * fire due timers, run deferred calls.
 *
 * The epoll_event's data is the struct ev_io pointer.  A callback may stop
 * (and free) any io, including one whose readiness sits later in the batch
 * just collected: ev_io_stop() scrubs the rest of the batch, so the
 * dispatcher never touches a stopped io.
 */
#include "dataplane/ev.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

/* readiness collected per epoll_wait; more stay queued in the kernel */
#define EV_BATCH 256

struct ev_loop {
	int epfd;
	int stop;
	uint64_t now;
	uint64_t seq;
	struct ev_timer *timers;       /* pairing heap root */
	struct ev_defer pending;       /* sentinel: queued deferred calls */
	struct ev_defer running;       /* sentinel: the batch being run */
	struct epoll_event events[EV_BATCH];
	int nready, cur;
	struct ev_stats stats;
};

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

struct ev_loop *ev_loop_new(void)
{
	struct ev_loop *loop = calloc(1, sizeof(*loop));

	if (!loop)
		return NULL;
	loop->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (loop->epfd < 0) {
		free(loop);
		return NULL;
	}
	loop->pending.next = loop->pending.prev = &loop->pending;
	loop->running.next = loop->running.prev = &loop->running;
	loop->now = mono_ms();
	return loop;
}

void ev_loop_free(struct ev_loop *loop)
{
	if (!loop)
		return;
	close(loop->epfd);
	free(loop);
}

void ev_stop(struct ev_loop *loop)
{
	loop->stop = 1;
}

uint64_t ev_now(const struct ev_loop *loop)
{
	return loop->now;
}

void ev_update_now(struct ev_loop *loop)
{
	loop->now = mono_ms();
}

void ev_get_stats(const struct ev_loop *loop, struct ev_stats *out)
{
	*out = loop->stats;
}

/* --- fds */

static uint32_t to_epoll(unsigned mask)
{
	return ((mask & EV_READ) ? EPOLLIN | EPOLLRDHUP : 0) | ((mask & EV_WRITE) ? EPOLLOUT : 0);
}

int ev_io_start(struct ev_loop *loop, struct ev_io *io, unsigned mask)
{
	struct epoll_event ev = { .events = to_epoll(mask), .data.ptr = io };

	if (io->active)
		return -EEXIST;
	if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, io->fd, &ev) < 0)
		return -errno;
	io->active = 1;
	io->mask = io->kmask = mask;
	loop->stats.fds++;
	return 0;
}

int ev_io_set(struct ev_loop *loop, struct ev_io *io, unsigned mask)
{
	struct epoll_event ev = { .events = to_epoll(mask), .data.ptr = io };

	if (!io->active)
		return -ENOENT;
	io->mask = mask;
	if (mask == io->kmask)
		return 0;
	if (epoll_ctl(loop->epfd, EPOLL_CTL_MOD, io->fd, &ev) < 0)
		return -errno;
	io->kmask = mask;
	return 0;
}

void ev_io_stop(struct ev_loop *loop, struct ev_io *io)
{
	int i;

	if (!io->active)
		return;
	/* the fd may already be closed by a careless owner; nothing to undo then */
	(void)epoll_ctl(loop->epfd, EPOLL_CTL_DEL, io->fd, NULL);
	io->active = 0;
	io->mask = io->kmask = 0;
	loop->stats.fds--;
	for (i = loop->cur + 1; i < loop->nready; i++)
		if (loop->events[i].data.ptr == io)
			loop->events[i].data.ptr = NULL;
}

/* --- timers: a pairing heap ordered by (when, seq) */

static int tless(const struct ev_timer *a, const struct ev_timer *b)
{
	return a->when < b->when || (a->when == b->when && a->seq < b->seq);
}

/* Two roots (either may be NULL, both with no siblings) into one. */
static struct ev_timer *meld(struct ev_timer *a, struct ev_timer *b)
{
	struct ev_timer *t;

	if (!a)
		return b;
	if (!b)
		return a;
	if (tless(b, a)) {
		t = a;
		a = b;
		b = t;
	}
	b->prev = a;
	b->next = a->child;
	if (a->child)
		a->child->prev = b;
	a->child = b;
	return a;
}

/* The standard two-pass merge of a sibling list into one heap. */
static struct ev_timer *merge_pairs(struct ev_timer *first)
{
	struct ev_timer *stack = NULL, *a, *b, *rest, *r;

	while (first) {
		a = first;
		b = a->next;
		rest = b ? b->next : NULL;
		a->next = a->prev = NULL;
		if (b)
			b->next = b->prev = NULL;
		r = meld(a, b);
		r->next = stack; /* next doubles as the stack link until the second pass */
		stack = r;
		first = rest;
	}
	r = NULL;
	while (stack) {
		a = stack;
		stack = a->next;
		a->next = NULL;
		r = meld(r, a);
	}
	return r;
}

void ev_timer_cancel(struct ev_loop *loop, struct ev_timer *t)
{
	struct ev_timer *sub;

	if (!t->armed)
		return;
	if (t == loop->timers) {
		loop->timers = merge_pairs(t->child);
	} else {
		if (t->prev->child == t)
			t->prev->child = t->next; /* first child: prev is the parent */
		else
			t->prev->next = t->next;
		if (t->next)
			t->next->prev = t->prev;
		sub = merge_pairs(t->child);
		loop->timers = meld(loop->timers, sub);
	}
	if (loop->timers)
		loop->timers->prev = loop->timers->next = NULL;
	t->child = t->next = t->prev = NULL;
	t->armed = 0;
	loop->stats.timers--;
}

void ev_timer_arm_at(struct ev_loop *loop, struct ev_timer *t, uint64_t when_ms)
{
	ev_timer_cancel(loop, t);
	t->when = when_ms;
	t->seq = loop->seq++;
	t->child = t->next = t->prev = NULL;
	t->armed = 1;
	loop->timers = meld(loop->timers, t);
	loop->stats.timers++;
}

void ev_timer_arm(struct ev_loop *loop, struct ev_timer *t, uint64_t after_ms)
{
	ev_timer_arm_at(loop, t, loop->now + after_ms);
}

/* Fires the timers due now that were armed before this call: one re-armed
 * for 0 ms from its own callback waits for the next iteration. */
static void fire_timers(struct ev_loop *loop)
{
	uint64_t seq_limit = loop->seq;
	struct ev_timer *t;

	while ((t = loop->timers) && t->when <= loop->now && t->seq < seq_limit) {
		ev_timer_cancel(loop, t);
		loop->stats.timers_fired++;
		t->cb(loop, t);
	}
}

/* --- deferred calls */

static void defer_unlink(struct ev_defer *d)
{
	d->prev->next = d->next;
	d->next->prev = d->prev;
	d->next = d->prev = NULL;
	d->queued = 0;
}

void ev_defer(struct ev_loop *loop, struct ev_defer *d)
{
	if (d->queued)
		return;
	d->prev = loop->pending.prev;
	d->next = &loop->pending;
	loop->pending.prev->next = d;
	loop->pending.prev = d;
	d->queued = 1;
}

void ev_defer_cancel(struct ev_loop *loop, struct ev_defer *d)
{
	(void)loop;
	if (d->queued)
		defer_unlink(d);
}

static void run_defers(struct ev_loop *loop)
{
	struct ev_defer *r = &loop->running, *p = &loop->pending, *d;

	if (p->next == p)
		return;
	/* splice pending into running; what gets queued meanwhile waits a turn */
	r->next = p->next;
	r->prev = p->prev;
	r->next->prev = r;
	r->prev->next = r;
	p->next = p->prev = p;
	while ((d = r->next) != r) {
		defer_unlink(d);
		loop->stats.defers_run++;
		d->cb(loop, d);
	}
}

/* --- the loop */

int ev_run_once(struct ev_loop *loop, int timeout_ms)
{
	struct ev_io *io;
	uint32_t e;
	unsigned events;
	int n, i;

	if (loop->pending.next != &loop->pending) {
		timeout_ms = 0;
	} else if (loop->timers) {
		uint64_t due = loop->timers->when;
		uint64_t wait = due > loop->now ? due - loop->now : 0;

		if (timeout_ms < 0 || wait < (uint64_t)timeout_ms)
			timeout_ms = wait > 24u * 3600 * 1000 ? 24 * 3600 * 1000 : (int)wait;
	}
	loop->stats.iterations++;
	n = epoll_wait(loop->epfd, loop->events, EV_BATCH, timeout_ms);
	if (n < 0 && errno != EINTR)
		return -errno;
	ev_update_now(loop);
	loop->nready = n > 0 ? n : 0;
	for (i = 0; i < loop->nready; i++) {
		loop->cur = i;
		io = loop->events[i].data.ptr;
		if (!io)
			continue; /* stopped by an earlier callback of this batch */
		e = loop->events[i].events;
		events = 0;
		if (e & (EPOLLIN | EPOLLRDHUP))
			events |= EV_READ;
		if (e & EPOLLOUT)
			events |= EV_WRITE;
		if (e & (EPOLLERR | EPOLLHUP))
			events |= EV_ERROR;
		loop->stats.io_callbacks++;
		io->cb(loop, io, events);
	}
	loop->nready = 0;
	loop->cur = 0;
	fire_timers(loop);
	run_defers(loop);
	return 0;
}

int ev_run(struct ev_loop *loop)
{
	int rc = 0;

	loop->stop = 0;
	while (!loop->stop) {
		rc = ev_run_once(loop, -1);
		if (rc < 0)
			break;
	}
	return rc;
}
