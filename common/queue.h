/*
 * queue.h - the one thread-to-thread queue: many producers, one owner.
 *
 * Foreign loops (gRPC core's completion queue, curl's multi handle on the
 * kube watch thread) run on threads of their own and hand work to the thread
 * that owns the state over one of these (STYLE.md: foreign loops are adapted,
 * never nested; h2o's h2o_multithread_queue_t is the model).  The owner
 * polls mesh_queue_fd() (an eventfd, readable while items may be waiting)
 * beside its other fds and calls mesh_queue_take() when it is readable.
 *
 * Items are intrusive: the producer embeds a struct mesh_queue_item in its
 * own record and pushes that; nothing is allocated, so a push cannot fail
 * (a gRPC completion that was dropped would leak its call).  Find the record
 * back with mesh_container_of().  A record must not be pushed again before
 * the owner has taken it.  Order is FIFO across all producers.
 *
 * Cost: one mutex round per push (or per chain of items), and one eventfd
 * write only when the queue goes from empty to non-empty, so a busy
 * producer does not make a system call per item.
 */
#ifndef MESH_QUEUE_H
#define MESH_QUEUE_H

#include "common/err.h"

#include <pthread.h>
#include <stddef.h>

struct mesh_queue_item {
	struct mesh_queue_item *next;
};

struct mesh_queue {
	/* private */
	pthread_mutex_t lock;
	struct mesh_queue_item *head, **tail;
	int fd;
};

/* The record of type `type` whose member `member` is at ptr. */
#define mesh_container_of(ptr, type, member) ((type *)(void *)((char *)(ptr) - offsetof(type, member)))

/* Set up an empty queue and its eventfd (non-blocking, close-on-exec).
 * Returns 0 or -errno from eventfd(2); on failure nothing needs cleaning. */
MESH_MUST_CHECK int mesh_queue_init(struct mesh_queue *q);
/* Close the eventfd.  Items still queued are not touched: take them first
 * (after the producers have stopped) and free them as their owner does. */
void mesh_queue_cleanup(struct mesh_queue *q);

/* The fd the owner polls for POLLIN. */
int mesh_queue_fd(const struct mesh_queue *q);

/* Append one item (any thread).  Never fails, never blocks but on the lock. */
void mesh_queue_push(struct mesh_queue *q, struct mesh_queue_item *item);
/* Append a chain first..last already linked through ->next (any thread): one
 * lock round and at most one wake-up for a whole batch. */
void mesh_queue_push_chain(struct mesh_queue *q, struct mesh_queue_item *first, struct mesh_queue_item *last);

/* Owner thread: reset the eventfd and take every queued item, oldest first,
 * as a chain through ->next (NULL when empty; a wake-up may find nothing).
 * The caller owns the items. */
MESH_MUST_CHECK struct mesh_queue_item *mesh_queue_take(struct mesh_queue *q);

#endif
