/*
 * queue.c - see queue.h.  A mutex-protected singly linked list with a tail
 * pointer, and an eventfd the owner polls.
 *
 * Wake-ups are not lost: the owner resets the eventfd before it takes the
 * list, and a producer signals after it made the list non-empty.  Either the
 * take sees the producer's items, or the list was empty again after the take
 * and the producer's signal (written after its append) is still pending for
 * the next poll.  A signal for items a take already got costs one empty take.
 */
#include "common/queue.h"

#include <stdint.h>
#include <sys/eventfd.h>
#include <unistd.h>

int mesh_queue_init(struct mesh_queue *q)
{
	int rc;

	q->head = NULL;
	q->tail = &q->head;
	q->fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (q->fd < 0)
		return -errno;
	rc = -pthread_mutex_init(&q->lock, NULL);
	if (rc < 0) {
		close(q->fd);
		q->fd = -1;
	}
	return rc;
}

void mesh_queue_cleanup(struct mesh_queue *q)
{
	if (q->fd < 0)
		return;
	close(q->fd);
	q->fd = -1;
	pthread_mutex_destroy(&q->lock);
}

int mesh_queue_fd(const struct mesh_queue *q)
{
	return q->fd;
}

static void queue_signal(int fd)
{
	uint64_t one = 1;
	ssize_t n;

	/* Only EINTR can make this fail: the counter cannot reach its maximum
	 * with one write per empty-to-non-empty transition. */
	do
		n = write(fd, &one, sizeof(one));
	while (n < 0 && errno == EINTR);
}

void mesh_queue_push_chain(struct mesh_queue *q, struct mesh_queue_item *first, struct mesh_queue_item *last)
{
	int was_empty;

	if (!first)
		return;
	last->next = NULL;
	pthread_mutex_lock(&q->lock);
	was_empty = !q->head;
	*q->tail = first;
	q->tail = &last->next;
	pthread_mutex_unlock(&q->lock);
	if (was_empty)
		queue_signal(q->fd);
}

void mesh_queue_push(struct mesh_queue *q, struct mesh_queue_item *item)
{
	mesh_queue_push_chain(q, item, item);
}

struct mesh_queue_item *mesh_queue_take(struct mesh_queue *q)
{
	struct mesh_queue_item *head;
	uint64_t v;
	ssize_t n;

	/* EAGAIN: nothing was signalled since the last take */
	do
		n = read(q->fd, &v, sizeof(v));
	while (n < 0 && errno == EINTR);
	pthread_mutex_lock(&q->lock);
	head = q->head;
	q->head = NULL;
	q->tail = &q->head;
	pthread_mutex_unlock(&q->lock);
	return head;
}
