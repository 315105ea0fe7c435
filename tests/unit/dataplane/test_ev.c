/*
 * test_ev.c - dataplane/ev.h: timers fire in deadline order (ties in arm
 * order), cancel and re-arm, a heap stress against a sorted reference, fd
 * readiness over a socketpair, interest changes, an io stopped by another
 * callback of the same batch never called, deferred calls, ev_stop.
 * Nothing here asserts on timing: deadlines are set in the past or the
 * loop is only asked to run until something happened.
 */
#include "dataplane/ev.h"

#include <check.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

static int order[2048];
static int norder;

static void rec_timer(struct ev_loop *loop, struct ev_timer *t)
{
	(void)loop;
	order[norder++] = (int)(intptr_t)t->data;
}

START_TEST(timers_in_order)
{
	struct ev_loop *loop = ev_loop_new();
	struct ev_timer t[5];
	uint64_t now;
	int i;

	ck_assert_ptr_nonnull(loop);
	now = ev_now(loop);
	norder = 0;
	for (i = 0; i < 5; i++)
		ev_timer_init(&t[i], rec_timer, (void *)(intptr_t)i);
	/* deadlines in the past: all due at the first iteration */
	ev_timer_arm_at(loop, &t[0], now - 3);
	ev_timer_arm_at(loop, &t[1], now - 5);
	ev_timer_arm_at(loop, &t[2], now - 3); /* same deadline as t[0], armed after */
	ev_timer_arm_at(loop, &t[3], now - 9);
	ev_timer_arm_at(loop, &t[4], now + 3600 * 1000); /* not due */
	ck_assert_int_eq(ev_run_once(loop, 0), 0);
	ck_assert_int_eq(norder, 4);
	ck_assert_int_eq(order[0], 3);
	ck_assert_int_eq(order[1], 1);
	ck_assert_int_eq(order[2], 0);
	ck_assert_int_eq(order[3], 2);
	ck_assert(!ev_timer_armed(&t[0]));
	ck_assert(ev_timer_armed(&t[4]));
	ev_timer_cancel(loop, &t[4]);
	ck_assert(!ev_timer_armed(&t[4]));
	ev_loop_free(loop);
}
END_TEST

static struct ev_timer *victim;

static void cancel_other(struct ev_loop *loop, struct ev_timer *t)
{
	rec_timer(loop, t);
	ev_timer_cancel(loop, victim);
}

START_TEST(timer_cancel_and_rearm)
{
	struct ev_loop *loop = ev_loop_new();
	struct ev_timer a, b, c, d;
	uint64_t now;

	ck_assert_ptr_nonnull(loop);
	now = ev_now(loop);
	norder = 0;
	ev_timer_init(&a, rec_timer, (void *)1);
	ev_timer_init(&b, rec_timer, (void *)2);
	ev_timer_init(&c, cancel_other, (void *)3);
	ev_timer_init(&d, rec_timer, (void *)4);
	ev_timer_arm_at(loop, &a, now - 10);
	ev_timer_arm_at(loop, &b, now - 9);
	ev_timer_cancel(loop, &b);
	ev_timer_cancel(loop, &b); /* twice: a no-op */
	/* c fires first and cancels d, due at the same iteration */
	ev_timer_arm_at(loop, &c, now - 20);
	ev_timer_arm_at(loop, &d, now - 5);
	victim = &d;
	/* a re-armed later than d would have been */
	ev_timer_arm_at(loop, &a, now - 1);
	ck_assert_int_eq(ev_run_once(loop, 0), 0);
	ck_assert_int_eq(norder, 2);
	ck_assert_int_eq(order[0], 3);
	ck_assert_int_eq(order[1], 1);
	ev_loop_free(loop);
}
END_TEST

static uint64_t last_when;
static int out_of_order;

static void check_order(struct ev_loop *loop, struct ev_timer *t)
{
	(void)loop;
	if (t->when < last_when)
		out_of_order++;
	last_when = t->when;
	norder++;
}

START_TEST(timer_heap_stress)
{
	enum { N = 2000 };
	struct ev_loop *loop = ev_loop_new();
	struct ev_timer *t = calloc(N, sizeof(*t));
	int armed = 0, i, round;
	uint64_t base;

	ck_assert_ptr_nonnull(loop);
	ck_assert_ptr_nonnull(t);
	srand(7);
	base = 0; /* every deadline below ev_now(): all due at once */
	for (i = 0; i < N; i++)
		ev_timer_init(&t[i], check_order, NULL);
	/* random arm, re-arm and cancel; then everything due fires in order */
	for (round = 0; round < 5 * N; round++) {
		i = rand() % N;
		if (rand() % 3 == 0)
			ev_timer_cancel(loop, &t[i]);
		else
			ev_timer_arm_at(loop, &t[i], base + (uint64_t)rand() % ev_now(loop));
	}
	for (i = 0; i < N; i++)
		armed += ev_timer_armed(&t[i]);
	norder = 0;
	last_when = 0;
	out_of_order = 0;
	ck_assert_int_eq(ev_run_once(loop, 0), 0);
	ck_assert_int_eq(norder, armed);
	ck_assert_int_eq(out_of_order, 0);
	for (i = 0; i < N; i++)
		ck_assert(!ev_timer_armed(&t[i]));
	free(t);
	ev_loop_free(loop);
}
END_TEST

static int reads, writes;

static void io_cb(struct ev_loop *loop, struct ev_io *io, unsigned events)
{
	char b[16];

	(void)loop;
	if (events & EV_READ) {
		reads++;
		while (read(io->fd, b, sizeof(b)) > 0)
			;
	}
	if (events & EV_WRITE)
		writes++;
}

START_TEST(fd_readiness)
{
	struct ev_loop *loop = ev_loop_new();
	struct ev_io io;
	int sv[2], i;

	ck_assert_ptr_nonnull(loop);
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
	ev_io_init(&io, sv[0], io_cb, NULL);
	ck_assert_int_eq(ev_io_start(loop, &io, EV_READ), 0);
	ck_assert_int_eq(ev_io_start(loop, &io, EV_READ), -EEXIST);
	reads = writes = 0;
	ck_assert_int_eq(ev_run_once(loop, 0), 0);
	ck_assert_int_eq(reads, 0);
	ck_assert_int_eq(write(sv[1], "x", 1), 1);
	for (i = 0; i < 100 && reads == 0; i++)
		ck_assert_int_eq(ev_run_once(loop, 1000), 0);
	ck_assert_int_eq(reads, 1);
	ck_assert_int_eq(writes, 0);
	/* write interest on a writable socket */
	ck_assert_int_eq(ev_io_set(loop, &io, EV_READ | EV_WRITE), 0);
	ck_assert_int_eq(ev_run_once(loop, 1000), 0);
	ck_assert_int_eq(writes, 1);
	ck_assert_int_eq(ev_io_set(loop, &io, EV_READ), 0);
	ck_assert_int_eq(ev_run_once(loop, 0), 0);
	ck_assert_int_eq(writes, 1);
	/* level-triggered: unread data is reported again */
	ev_io_stop(loop, &io);
	ck_assert_int_eq(write(sv[1], "y", 1), 1);
	ck_assert_int_eq(ev_run_once(loop, 0), 0);
	ck_assert_int_eq(reads, 1);
	close(sv[0]);
	close(sv[1]);
	ev_loop_free(loop);
}
END_TEST

struct pair {
	struct ev_io io;
	struct pair *other;
	int calls;
};

static void stop_other(struct ev_loop *loop, struct ev_io *io, unsigned events)
{
	struct pair *p = io->data;

	(void)events;
	p->calls++;
	ev_io_stop(loop, &p->other->io);
	ev_io_stop(loop, io);
}

START_TEST(removal_during_callback)
{
	struct ev_loop *loop = ev_loop_new();
	struct pair a, b;
	int s1[2], s2[2];

	ck_assert_ptr_nonnull(loop);
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, s1), 0);
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, s2), 0);
	a.other = &b;
	b.other = &a;
	a.calls = b.calls = 0;
	ev_io_init(&a.io, s1[0], stop_other, &a);
	ev_io_init(&b.io, s2[0], stop_other, &b);
	ck_assert_int_eq(ev_io_start(loop, &a.io, EV_READ), 0);
	ck_assert_int_eq(ev_io_start(loop, &b.io, EV_READ), 0);
	/* both readable before the wait: both land in one batch */
	ck_assert_int_eq(write(s1[1], "x", 1), 1);
	ck_assert_int_eq(write(s2[1], "x", 1), 1);
	ck_assert_int_eq(ev_run_once(loop, 1000), 0);
	ck_assert_int_eq(a.calls + b.calls, 1);
	ck_assert_int_eq(ev_run_once(loop, 0), 0);
	ck_assert_int_eq(a.calls + b.calls, 1);
	close(s1[0]);
	close(s1[1]);
	close(s2[0]);
	close(s2[1]);
	ev_loop_free(loop);
}
END_TEST

static int defers;

static void defer_cb(struct ev_loop *loop, struct ev_defer *d)
{
	defers++;
	if (d->data)
		ev_defer(loop, d); /* re-queued: runs on the next iteration, not now */
}

START_TEST(deferred_calls)
{
	struct ev_loop *loop = ev_loop_new();
	struct ev_defer a, b, c;

	ck_assert_ptr_nonnull(loop);
	defers = 0;
	ev_defer_init(&a, defer_cb, NULL);
	ev_defer_init(&b, defer_cb, (void *)1);
	ev_defer_init(&c, defer_cb, NULL);
	ev_defer(loop, &a);
	ev_defer(loop, &a);
	ev_defer(loop, &b);
	ev_defer(loop, &c);
	ev_defer_cancel(loop, &c);
	/* queued calls make the wait zero: this returns at once */
	ck_assert_int_eq(ev_run_once(loop, -1), 0);
	ck_assert_int_eq(defers, 2);
	ck_assert_int_eq(ev_run_once(loop, -1), 0);
	ck_assert_int_eq(defers, 3);
	ev_defer_cancel(loop, &b);
	ck_assert_int_eq(ev_run_once(loop, 0), 0);
	ck_assert_int_eq(defers, 3);
	ev_loop_free(loop);
}
END_TEST

static void stop_cb(struct ev_loop *loop, struct ev_timer *t)
{
	(void)t;
	ev_stop(loop);
}

START_TEST(run_until_stop)
{
	struct ev_loop *loop = ev_loop_new();
	struct ev_timer t;

	ck_assert_ptr_nonnull(loop);
	ev_timer_init(&t, stop_cb, NULL);
	ev_timer_arm(loop, &t, 1);
	ck_assert_int_eq(ev_run(loop), 0);
	ck_assert(!ev_timer_armed(&t));
	ev_loop_free(loop);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("ev");
	TCase *tc = tcase_create("core");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, timers_in_order);
	tcase_add_test(tc, timer_cancel_and_rearm);
	tcase_add_test(tc, timer_heap_stress);
	tcase_add_test(tc, fd_readiness);
	tcase_add_test(tc, removal_during_callback);
	tcase_add_test(tc, deferred_calls);
	tcase_add_test(tc, run_until_stop);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
