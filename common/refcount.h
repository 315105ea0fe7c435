/*
 * refcount.h - the one atomic reference count (models, config objects, store
 * and xDS snapshots, and later the proxy's shared buffers).
 *
 * Embed a struct mesh_refcount in the counted object, mesh_refcount_init()
 * it to 1 when the object is made, mesh_refcount_ref() for each new holder,
 * and free the object when mesh_refcount_unref() returns true.
 *
 * Memory order, as in the kernel's refcount_t and Boost's intrusive_ptr
 * notes: taking a reference needs no ordering (the taker already holds one,
 * so the object cannot go away under it): relaxed.  Dropping one is
 * acq_rel: the release publishes this holder's writes to the object, and
 * the acquire on the last drop makes every other holder's writes visible
 * to the thread that frees it.
 */
#ifndef MESH_REFCOUNT_H
#define MESH_REFCOUNT_H

#include "common/err.h"

#include <assert.h>
#include <stdatomic.h>
#include <stdbool.h>

struct mesh_refcount {
	atomic_uint n;
};

/* Static initialiser, e.g. for objects that must never be freed:
 * `.refs = MESH_REFCOUNT_INIT(1000000)`. */
#define MESH_REFCOUNT_INIT(count) { (count) }

/* Set the count (before the object is shared with any other thread). */
static inline void mesh_refcount_init(struct mesh_refcount *r, unsigned count)
{
	atomic_init(&r->n, count);
}

/* Take one more reference; the caller already holds one. */
static inline void mesh_refcount_ref(struct mesh_refcount *r)
{
	atomic_fetch_add_explicit(&r->n, 1, memory_order_relaxed);
}

/* Drop one reference.  Returns true when it was the last: the caller then
 * frees the object. */
MESH_MUST_CHECK static inline bool mesh_refcount_unref(struct mesh_refcount *r)
{
	unsigned old = atomic_fetch_sub_explicit(&r->n, 1, memory_order_acq_rel);

	assert(old > 0);
	return old == 1;
}

/* The current count, for tests and debug views only: another thread may
 * change it at once. */
static inline unsigned mesh_refcount_get(const struct mesh_refcount *r)
{
	return atomic_load_explicit((atomic_uint *)&r->n, memory_order_relaxed);
}

#endif
