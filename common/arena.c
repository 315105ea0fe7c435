/*
 * arena.c - see arena.h.  Chunks are chained; the first is small
 * (ARENA_FIRST) and each next one doubles up to ARENA_CHUNK, so an arena
 * that holds a few strings (one per proxy cluster: meshproxy keeps
 * thousands alive) costs a few hundred bytes, not 4 KiB, while a big one
 * (a meshd push) still grows in 4 KiB steps after a handful of small ones.
 * A request larger than the next chunk gets a chunk of its own.
 */
#include "arena.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ARENA_FIRST 128
#define ARENA_CHUNK 4096
#define ARENA_ALIGN 16

struct arena_chunk {
	struct arena_chunk *next;
	size_t size;
	size_t used;
	_Alignas(16) unsigned char data[];
};

struct arena {
	struct arena_chunk *head;
	size_t max;
	size_t total;
	size_t held;    /* bytes of chunk data malloc'd */
	size_t next;    /* size of the next regular chunk: ARENA_FIRST doubling to ARENA_CHUNK */
};

struct arena *arena_new(size_t max)
{
	struct arena *a = calloc(1, sizeof(*a));
	if (a) {
		a->max = max;
		a->next = ARENA_FIRST;
	}
	return a;
}

void arena_free(struct arena *a)
{
	struct arena_chunk *c, *n;

	if (!a)
		return;
	for (c = a->head; c; c = n) {
		n = c->next;
		free(c);
	}
	free(a);
}

void *arena_alloc(struct arena *a, size_t size)
{
	struct arena_chunk *c = a->head;
	size_t rounded = (size + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
	void *p;

	if (rounded < size)
		return NULL;
	if (a->max && (a->total + rounded > a->max || rounded > a->max))
		return NULL;
	if (!c || c->size - c->used < rounded) {
		bool own = rounded > a->next;
		size_t csize = own ? rounded : a->next;

		c = malloc(sizeof(*c) + csize);
		if (!c)
			return NULL;
		c->size = csize;
		c->used = 0;
		a->held += csize;
		if (a->next < ARENA_CHUNK)
			a->next *= 2; /* every new chunk, own or not: a run of mid-sized requests stops costing a malloc each */
		if (a->head && own) {
			/* keep the partly used head chunk for small allocations */
			c->next = a->head->next;
			a->head->next = c;
		} else {
			c->next = a->head;
			a->head = c;
		}
	}
	p = c->data + c->used;
	c->used += rounded;
	a->total += rounded;
	memset(p, 0, size);
	return p;
}

void *arena_calloc(struct arena *a, size_t n, size_t size)
{
	if (size && n > SIZE_MAX / size)
		return NULL;
	return arena_alloc(a, n * size);
}

char *arena_strndup(struct arena *a, const char *s, size_t n)
{
	char *p = arena_alloc(a, n + 1);
	if (p) {
		memcpy(p, s, n);
		p[n] = '\0';
	}
	return p;
}

char *arena_strdup(struct arena *a, const char *s)
{
	return s ? arena_strndup(a, s, strlen(s)) : NULL;
}

char *arena_printf(struct arena *a, const char *fmt, ...)
{
	va_list ap;
	char *p;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return NULL;
	p = arena_alloc(a, (size_t)n + 1);
	if (!p)
		return NULL;
	va_start(ap, fmt);
	vsnprintf(p, (size_t)n + 1, fmt, ap);
	va_end(ap);
	return p;
}

size_t arena_used(const struct arena *a)
{
	return a->total;
}

size_t arena_held(const struct arena *a)
{
	return a->held;
}
