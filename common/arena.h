/*
 * arena.h - a bump allocator scoped to one unit of work (a parsed config
 * object, a compile, a push).  Everything allocated from an arena is freed
 * at once by arena_free(); nothing is freed alone.
 *
 * Allocation functions return NULL on out-of-memory (or when the arena's
 * cap is reached); callers treat that as -ENOMEM.
 */
#ifndef MESH_ARENA_H
#define MESH_ARENA_H

#include <stddef.h>

struct arena;

/* max: total bytes the arena may hand out (0 = no cap). */
struct arena *arena_new(size_t max);
void arena_free(struct arena *a);
void *arena_alloc(struct arena *a, size_t size);   /* zeroed, 16-aligned */
void *arena_calloc(struct arena *a, size_t n, size_t size);
char *arena_strdup(struct arena *a, const char *s);
char *arena_strndup(struct arena *a, const char *s, size_t n);
char *arena_printf(struct arena *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
size_t arena_used(const struct arena *a);    /* bytes handed out (rounded to 16) */
/* Bytes of chunk space the arena holds from malloc (>= arena_used): what it
 * costs, for tests and memory accounting. */
size_t arena_held(const struct arena *a);

#endif
