/*
 * resource.c - xDS resource sets and reference-counted snapshots (the type
 * table is in common/xds/types.c).
 *
 * A resource is one immutable, reference-counted allocation; a snapshot
 * holds a reference to each of its resources.  A snapshot is filled by one
 * thread (a generator), sealed, and from then on only read, by any number
 * of threads, each holding a reference.  Resources
 * are kept sorted by name so lookups are binary searches and version hashes
 * over a set do not depend on insertion order.  See resource.h.
 */
#include "controlplane/xds/resource.h"

#include "common/err.h"
#include "common/hash.h"

#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- resources */

static uint64_t resource_hash(enum xds_type t, const char *name, const uint8_t *data, size_t len)
{
	uint64_t h = MESH_HASH_INIT;

	h = mesh_hash_str(h, xds_type_url(t));
	h = mesh_hash_str(h, name);
	return mesh_hash_update(h, data, len);
}

int xds_resource_new(enum xds_type t, const char *name, const uint8_t *data, size_t len, struct xds_resource **out)
{
	struct xds_resource *r;
	size_t nlen;
	uint8_t *p;

	*out = NULL;
	if ((unsigned)t >= XDS_TYPE_COUNT || !name || (len && !data))
		return -EINVAL;
	nlen = strlen(name);
	if (len > SIZE_MAX - sizeof(*r) - nlen - 1)
		return -ENOMEM;
	/* one allocation: header, bytes, name */
	r = malloc(sizeof(*r) + len + nlen + 1);
	if (!r)
		return -ENOMEM;
	p = (uint8_t *)(r + 1);
	if (len)
		memcpy(p, data, len);
	memcpy(p + len, name, nlen + 1);
	r->data = p;
	r->len = len;
	r->name = (const char *)(p + len);
	r->hash = resource_hash(t, name, data, len);
	mesh_refcount_init(&r->refs, 1);
	*out = r;
	return 0;
}

struct xds_resource *xds_resource_ref(const struct xds_resource *r)
{
	/* the count is the one mutable part of an immutable resource */
	struct xds_resource *m = (struct xds_resource *)r;

	if (m)
		mesh_refcount_ref(&m->refs);
	return m;
}

void xds_resource_unref(const struct xds_resource *r)
{
	struct xds_resource *m = (struct xds_resource *)r;

	if (m && mesh_refcount_unref(&m->refs))
		free(m);
}

void xds_resource_array_unref(const struct xds_resource **v, size_t n)
{
	size_t i;

	for (i = 0; v && i < n; i++)
		xds_resource_unref(v[i]);
	free(v);
}

/* ---------------------------------------------------------------- snapshots */

struct xds_snapshot *xds_snapshot_new(void)
{
	struct xds_snapshot *s = calloc(1, sizeof(*s));

	if (s)
		mesh_refcount_init(&s->refs, 1);
	return s;
}

struct xds_snapshot *xds_snapshot_ref(struct xds_snapshot *s)
{
	if (s)
		mesh_refcount_ref(&s->refs);
	return s;
}

void xds_snapshot_unref(struct xds_snapshot *s)
{
	int t;

	if (!s || !mesh_refcount_unref(&s->refs))
		return;
	for (t = 0; t < XDS_TYPE_COUNT; t++)
		xds_resource_array_unref((const struct xds_resource **)s->sets[t].v, s->sets[t].n);
	free(s);
}

/* Append r to set t, taking over the caller's reference.  Returns 0,
 * -EINVAL or -ENOMEM (then the reference is still the caller's). */
static int snapshot_append(struct xds_snapshot *s, enum xds_type t, struct xds_resource *r)
{
	struct xds_resource_set *set;

	if (!s || (unsigned)t >= XDS_TYPE_COUNT || !r)
		return -EINVAL;
	set = &s->sets[t];
	if (set->n == set->cap) {
		size_t cap = set->cap ? set->cap * 2 : 8;
		struct xds_resource **v = realloc(set->v, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		set->v = v;
		set->cap = cap;
	}
	/* Appended in O(1); duplicates are resolved by xds_snapshot_seal(). */
	set->v[set->n++] = r;
	return 0;
}

int xds_snapshot_add(struct xds_snapshot *s, enum xds_type t, const char *name, const uint8_t *data, size_t len)
{
	struct xds_resource *r = NULL;
	int rc;

	if (!s)
		return -EINVAL;
	rc = xds_resource_new(t, name, data, len, &r);
	if (rc < 0)
		goto out;
	rc = snapshot_append(s, t, r);
	if (rc == 0)
		r = NULL;
out:
	xds_resource_unref(r);
	return rc;
}

int xds_snapshot_add_ref(struct xds_snapshot *s, enum xds_type t, const struct xds_resource *r)
{
	int rc;

	if (!r)
		return -EINVAL;
	rc = snapshot_append(s, t, xds_resource_ref(r));
	if (rc < 0)
		xds_resource_unref(r);
	return rc;
}

/* Stable merge sort by name, so that of two equal names the one added
 * last stays last and wins in set_dedup(). */
static void set_merge_sort(struct xds_resource **v, struct xds_resource **tmp, size_t n)
{
	size_t mid = n / 2, i = 0, j = mid, k = 0;

	if (n < 2)
		return;
	set_merge_sort(v, tmp, mid);
	set_merge_sort(v + mid, tmp, n - mid);
	while (i < mid && j < n) {
		if (strcmp(v[j]->name, v[i]->name) < 0)
			tmp[k++] = v[j++];
		else
			tmp[k++] = v[i++];
	}
	while (i < mid)
		tmp[k++] = v[i++];
	while (j < n)
		tmp[k++] = v[j++];
	memcpy(v, tmp, n * sizeof(*v));
}

/* On a sorted set: keep the last of each run of equal names. */
static void set_dedup(struct xds_resource_set *set)
{
	size_t i, w = 0;

	for (i = 0; i < set->n; i++) {
		if (i + 1 < set->n && strcmp(set->v[i]->name, set->v[i + 1]->name) == 0) {
			xds_resource_unref(set->v[i]);
			continue;
		}
		set->v[w++] = set->v[i];
	}
	set->n = w;
}

void xds_snapshot_seal(struct xds_snapshot *s)
{
	int t;

	if (!s)
		return;
	for (t = 0; t < XDS_TYPE_COUNT; t++) {
		struct xds_resource_set *set = &s->sets[t];
		struct xds_resource **tmp;
		size_t i;
		int sorted = 1;

		for (i = 1; i < set->n && sorted; i++)
			sorted = strcmp(set->v[i - 1]->name, set->v[i]->name) < 0;
		if (sorted)
			continue;
		tmp = malloc(set->n * sizeof(*tmp));
		if (tmp) {
			set_merge_sort(set->v, tmp, set->n);
			free(tmp);
		} else {
			/* No memory for the merge buffer: insertion sort is stable too. */
			for (i = 1; i < set->n; i++) {
				struct xds_resource *r = set->v[i];
				size_t j = i;
				while (j > 0 && strcmp(set->v[j - 1]->name, r->name) > 0) {
					set->v[j] = set->v[j - 1];
					j--;
				}
				set->v[j] = r;
			}
		}
		set_dedup(set);
	}
}

const struct xds_resource *xds_snapshot_find(const struct xds_snapshot *s, enum xds_type t, const char *name)
{
	const struct xds_resource_set *set;
	size_t lo = 0, hi;

	if (!s || (unsigned)t >= XDS_TYPE_COUNT || !name)
		return NULL;
	set = &s->sets[t];
	hi = set->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(name, set->v[mid]->name);
		if (c == 0)
			return set->v[mid];
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}
