/*
 * test_queue.c - common/queue.h: FIFO order, chains, the eventfd's
 * readability, and several producer threads against one owner that polls
 * (nothing lost, nothing duplicated, each producer's items in order).
 */
#include "common/queue.h"

#include <check.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>

#define PRODUCERS 4
#define PER_PRODUCER 20000

struct rec {
	int producer, seq;
	struct mesh_queue_item qi;
};

static int readable(const struct mesh_queue *q)
{
	struct pollfd p = { mesh_queue_fd(q), POLLIN, 0 };

	return poll(&p, 1, 0) == 1 && (p.revents & POLLIN);
}

START_TEST(queue_order_and_fd)
{
	struct mesh_queue q;
	struct rec r[5];
	struct mesh_queue_item *it;
	int i;

	ck_assert_int_eq(mesh_queue_init(&q), 0);
	ck_assert(!readable(&q));
	ck_assert_ptr_null(mesh_queue_take(&q));
	for (i = 0; i < 5; i++)
		r[i].seq = i;
	mesh_queue_push(&q, &r[0].qi);
	ck_assert(readable(&q));
	/* a chain r1..r3, then r4 alone */
	r[1].qi.next = &r[2].qi;
	r[2].qi.next = &r[3].qi;
	mesh_queue_push_chain(&q, &r[1].qi, &r[3].qi);
	mesh_queue_push(&q, &r[4].qi);
	it = mesh_queue_take(&q);
	ck_assert(!readable(&q));
	for (i = 0; i < 5; i++, it = it->next) {
		ck_assert_ptr_nonnull(it);
		ck_assert_int_eq(mesh_container_of(it, struct rec, qi)->seq, i);
	}
	ck_assert_ptr_null(it);
	ck_assert_ptr_null(mesh_queue_take(&q));
	mesh_queue_cleanup(&q);
}
END_TEST

static struct mesh_queue mq;

static void *producer(void *arg)
{
	struct rec *v = arg;
	int i;

	for (i = 0; i < PER_PRODUCER; i++)
		mesh_queue_push(&mq, &v[i].qi);
	return NULL;
}

START_TEST(queue_threads)
{
	static struct rec recs[PRODUCERS][PER_PRODUCER];
	pthread_t t[PRODUCERS];
	int next[PRODUCERS] = { 0 };
	int p, i, got = 0;

	ck_assert_int_eq(mesh_queue_init(&mq), 0);
	for (p = 0; p < PRODUCERS; p++)
		for (i = 0; i < PER_PRODUCER; i++) {
			recs[p][i].producer = p;
			recs[p][i].seq = i;
		}
	for (p = 0; p < PRODUCERS; p++)
		ck_assert_int_eq(pthread_create(&t[p], NULL, producer, recs[p]), 0);
	/* the owner sleeps in poll() only: a lost wake-up hangs here and the
	 * test times out */
	while (got < PRODUCERS * PER_PRODUCER) {
		struct pollfd pfd = { mesh_queue_fd(&mq), POLLIN, 0 };
		struct mesh_queue_item *it;

		ck_assert_int_eq(poll(&pfd, 1, -1), 1);
		for (it = mesh_queue_take(&mq); it; it = it->next) {
			struct rec *r = mesh_container_of(it, struct rec, qi);
			ck_assert_int_eq(r->seq, next[r->producer]);
			next[r->producer]++;
			got++;
		}
	}
	for (p = 0; p < PRODUCERS; p++) {
		pthread_join(t[p], NULL);
		ck_assert_int_eq(next[p], PER_PRODUCER);
	}
	ck_assert_ptr_null(mesh_queue_take(&mq));
	mesh_queue_cleanup(&mq);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("queue");
	TCase *tc = tcase_create("core");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, queue_order_and_fd);
	tcase_add_test(tc, queue_threads);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
