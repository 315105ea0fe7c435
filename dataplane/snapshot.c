/*
 * snapshot.c - meshproxy's configuration: decoded xDS resources shared by
 * reference between successive snapshots (see snapshot.h).
 *
 * A candidate snapshot copies the base's pointer arrays (a few pointers per
 * resource) and takes a reference on every resource; the resources
 * themselves (bytes, and decoded messages while cached) are never copied, so a type's update costs the size of that
 * type's set, not of the whole configuration.
 */
#include "dataplane/snapshot.h"

#include "common/hash.h"
#include "common/xds/pbjson.h"
#include "envoy/config/cluster/v3/cluster.pb-c.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

/* ------------------------------------------------------------ decode regions
 *
 * Decoded messages are bump-allocated in regions of their own (mmap'd
 * pages), not in the malloc heap.  They are transient (decoded for a
 * compile, shed after it) while what the engine compiles in between is
 * not; in the malloc heap the two interleaved and, once the messages were
 * freed, left ~1.5 MB of partly used pages after a 1,000-service compile.
 * Successive decodes share the current region; a region is unmapped when
 * no message lives in it any more.  Loop thread only, like the decoded
 * messages themselves.
 */
#define PX_REGION_SIZE (128u << 10)
#define PX_REGION_ALIGN 16u

struct px_region {
	size_t size, used;            /* bytes of data[] */
	unsigned refs;                /* resources with a message in it, +1 while current */
	_Alignas(16) unsigned char data[];
};

static struct px_region *px_region_cur; /* the one being filled, or NULL */

static void region_unref(struct px_region *g)
{
	--g->refs;
	if (g == px_region_cur && g->refs <= 1) {
		/* only the current-region hold (or not even that) left: nothing
		 * lives in it any more, unmapped rather than kept resident */
		px_region_cur = NULL;
		g->refs = 0;
	}
	if (g->refs > 0)
		return;
	munmap(g, sizeof(*g) + g->size);
}

struct px_decode {
	struct px_resource *r;        /* records the regions it touches */
	bool failed;
};

static void *region_alloc(void *data, size_t size)
{
	struct px_decode *d = data;
	struct px_resource *r = d->r;
	struct px_region *g = px_region_cur, *old;
	size_t rounded = (size + PX_REGION_ALIGN - 1) & ~(size_t)(PX_REGION_ALIGN - 1);
	void *p;

	if (d->failed || rounded < size)
		goto fail;
	if (!g || g->size - g->used < rounded) {
		size_t need = sizeof(*g) + (rounded > PX_REGION_SIZE ? rounded : PX_REGION_SIZE);
		size_t page = 4096, len = (need + page - 1) & ~(page - 1);

		g = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (g == MAP_FAILED)
			goto fail;
		g->size = len - sizeof(*g);
		g->used = 0;
		g->refs = 1;
		old = px_region_cur;
		px_region_cur = g;
		if (old)
			region_unref(old); /* its current-region hold */
	}
	if (!r->n_regions || r->regions[r->n_regions - 1] != g) {
		struct px_region **v = realloc(r->regions, (r->n_regions + 1) * sizeof(*v));

		if (!v)
			goto fail;
		r->regions = v;
		r->regions[r->n_regions++] = g;
		g->refs++;
	}
	p = g->data + g->used;
	g->used += rounded;
	return p;
fail:
	d->failed = true;
	return NULL;
}

static void region_free(void *data, void *p)
{
	(void)data;
	(void)p; /* the whole region goes at once */
}

/* r->decoded from r->bytes, in decode regions; NULL when it does not
 * decode or memory ran out. */
static ProtobufCMessage *resource_unpack(struct px_resource *r)
{
	struct px_decode d = { r, false };
	ProtobufCAllocator al = { region_alloc, region_free, &d };

	r->decoded = protobuf_c_message_unpack(pbjson_lookup(xds_type_url(r->type)), &al, r->len, r->bytes);
	return r->decoded;
}

/* Drop r's decoded message and its hold on the regions. */
static void resource_shed(struct px_resource *r)
{
	size_t i;

	for (i = 0; i < r->n_regions; i++)
		region_unref(r->regions[i]);
	free(r->regions);
	r->regions = NULL;
	r->n_regions = 0;
	r->decoded = NULL;
}

/* Envoy's EDS name of a cluster: eds_cluster_config.service_name, else its
 * name; NULL when the cluster is not of type EDS. */
static const char *eds_name_of(const Envoy__Config__Cluster__V3__Cluster *cl)
{
	if (cl->cluster_discovery_type_case != ENVOY__CONFIG__CLUSTER__V3__CLUSTER__CLUSTER_DISCOVERY_TYPE_TYPE ||
	    cl->type != ENVOY__CONFIG__CLUSTER__V3__CLUSTER__DISCOVERY_TYPE__EDS)
		return NULL;
	if (cl->eds_cluster_config && cl->eds_cluster_config->service_name && *cl->eds_cluster_config->service_name)
		return cl->eds_cluster_config->service_name;
	return cl->name;
}

int px_resource_decode(enum xds_type t, const char *name, const uint8_t *data, size_t len,
		       struct px_resource **out)
{
	const ProtobufCMessageDescriptor *d;
	struct px_resource *r = NULL;
	const char *eds;
	int rc = -EINVAL;

	*out = NULL;
	if ((unsigned)t >= XDS_TYPE_COUNT || !name)
		goto out;
	d = pbjson_lookup(xds_type_url(t));
	if (!d)
		goto out;
	rc = -ENOMEM;
	r = calloc(1, sizeof(*r));
	if (!r)
		goto out;
	mesh_refcount_init(&r->refs, 1);
	r->type = t;
	r->name = strdup(name);
	r->bytes = malloc(len ? len : 1);
	if (!r->name || !r->bytes)
		goto out;
	/* an empty resource (an Any with no value) comes with data NULL:
	 * memcpy must not see it (found by tests/fuzz/fuzz_snapshot.c) */
	if (len)
		memcpy(r->bytes, data, len);
	r->len = len;
	if (!resource_unpack(r)) {
		rc = -MESH_EPARSE;
		goto out;
	}
	eds = t == XDS_CLUSTER ? eds_name_of((const void *)r->decoded) : NULL;
	if (eds && !strcmp(eds, r->name))
		r->eds_name = r->name;
	else if (eds && !(r->eds_name = strdup(eds)))
		goto out;
	r->hash = mesh_hash(data, len);
	*out = r;
	r = NULL;
	rc = 0;
out:
	px_resource_unref(r);
	return rc;
}

int px_resource_set_name(struct px_resource *r, const char *name)
{
	char *n = strdup(name), *old = r->name;

	if (!n)
		return -ENOMEM;
	r->name = n;
	if (r->eds_name && !strcmp(r->eds_name, n)) {
		if (r->eds_name != old)
			free(r->eds_name);
		r->eds_name = n;
	} else if (r->eds_name == old) {
		old = NULL; /* it stays, as the EDS name */
	}
	free(old);
	return 0;
}

const ProtobufCMessage *px_resource_msg(const struct px_resource *r)
{
	struct px_resource *w = (struct px_resource *)r; /* the cache is not the resource's value */

	if (!w->decoded && !resource_unpack(w))
		resource_shed(w); /* out of memory: give back what it got */
	return w->decoded;
}

struct px_resource *px_resource_ref(struct px_resource *r)
{
	if (r)
		mesh_refcount_ref(&r->refs);
	return r;
}

void px_resource_unref(struct px_resource *r)
{
	if (!r || !mesh_refcount_unref(&r->refs))
		return;
	resource_shed(r);
	if (r->eds_name != r->name)
		free(r->eds_name);
	free(r->bytes);
	free(r->name);
	free(r);
}

void px_snapshot_shed(const struct px_snapshot *s)
{
	size_t t, i;

	for (t = 0; s && t < XDS_TYPE_COUNT; t++)
		for (i = 0; i < s->sets[t].n; i++) {
			struct px_resource *r = s->sets[t].v[i];

			resource_shed(r);
		}
}

static void set_cleanup(struct px_resource_set *set)
{
	size_t i;

	for (i = 0; i < set->n; i++)
		px_resource_unref(set->v[i]);
	free(set->v);
	set->v = NULL;
	set->n = 0;
}

int px_snapshot_new(struct px_snapshot **out)
{
	struct px_snapshot *s = calloc(1, sizeof(*s));

	*out = NULL;
	if (!s)
		return -ENOMEM;
	mesh_refcount_init(&s->refs, 1);
	*out = s;
	return 0;
}

struct px_snapshot *px_snapshot_ref(struct px_snapshot *s)
{
	if (s)
		mesh_refcount_ref(&s->refs);
	return s;
}

void px_snapshot_unref(struct px_snapshot *s)
{
	int t;

	if (!s || !mesh_refcount_unref(&s->refs))
		return;
	for (t = 0; t < XDS_TYPE_COUNT; t++)
		set_cleanup(&s->sets[t]);
	free(s);
}

/* dst = src, one new reference per resource. */
static int set_copy(struct px_resource_set *dst, const struct px_resource *const *v, size_t n)
{
	size_t i;

	dst->v = NULL;
	dst->n = 0;
	if (!n)
		return 0;
	dst->v = malloc(n * sizeof(*dst->v));
	if (!dst->v)
		return -ENOMEM;
	for (i = 0; i < n; i++)
		dst->v[i] = px_resource_ref((struct px_resource *)v[i]);
	dst->n = n;
	return 0;
}

static int res_cmp(const void *a, const void *b)
{
	const struct px_resource *x = *(const struct px_resource *const *)a;
	const struct px_resource *y = *(const struct px_resource *const *)b;

	return strcmp(x->name, y->name);
}

/* A snapshot with base's sets; type t left empty for the caller to fill. */
static int snapshot_from(const struct px_snapshot *base, enum xds_type t, struct px_snapshot **out)
{
	struct px_snapshot *s;
	int k, rc;

	rc = px_snapshot_new(&s);
	if (rc < 0)
		return rc;
	s->generation = base ? base->generation + 1 : 1;
	for (k = 0; base && k < XDS_TYPE_COUNT; k++) {
		if (k == (int)t)
			continue;
		rc = set_copy(&s->sets[k], (const struct px_resource *const *)base->sets[k].v, base->sets[k].n);
		if (rc < 0) {
			px_snapshot_unref(s);
			return rc;
		}
	}
	*out = s;
	return 0;
}

/* Sort set t and refuse duplicate names. */
static int set_seal(struct px_resource_set *set)
{
	size_t i;

	if (set->n > 1)
		qsort(set->v, set->n, sizeof(*set->v), res_cmp);
	for (i = 1; i < set->n; i++)
		if (strcmp(set->v[i - 1]->name, set->v[i]->name) == 0)
			return -EINVAL;
	return 0;
}

int px_snapshot_replace(const struct px_snapshot *base, enum xds_type t, const struct px_resource *const *set,
			size_t n, struct px_snapshot **out)
{
	struct px_snapshot *s;
	int rc;

	*out = NULL;
	if ((unsigned)t >= XDS_TYPE_COUNT)
		return -EINVAL;
	rc = snapshot_from(base, t, &s);
	if (rc < 0)
		return rc;
	rc = set_copy(&s->sets[t], set, n);
	if (rc == 0)
		rc = set_seal(&s->sets[t]);
	if (rc < 0) {
		px_snapshot_unref(s);
		return rc;
	}
	*out = s;
	return 0;
}

static int name_res_cmp(const void *key, const void *elem);

static int str_cmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

int px_snapshot_update(const struct px_snapshot *base, enum xds_type t, const struct px_resource *const *set,
		       size_t n, const char *const *removed, size_t n_removed, struct px_snapshot **out)
{
	const struct px_resource_set *old = base ? &base->sets[t] : NULL;
	struct px_resource_set *dst;
	struct px_snapshot *s;
	const char **gone = NULL;
	size_t i, cap;
	int rc;

	*out = NULL;
	if ((unsigned)t >= XDS_TYPE_COUNT)
		return -EINVAL;
	rc = snapshot_from(base, t, &s);
	if (rc < 0)
		return rc;
	dst = &s->sets[t];
	cap = n + (old ? old->n : 0);
	dst->v = cap ? malloc(cap * sizeof(*dst->v)) : NULL;
	if (cap && !dst->v) {
		px_snapshot_unref(s);
		return -ENOMEM;
	}
	/* the new ones, sorted, then the old ones neither replaced nor
	 * removed (binary searches: an EDS update of a thousand clusters
	 * must not cost a million comparisons) */
	for (i = 0; i < n; i++)
		dst->v[dst->n++] = px_resource_ref((struct px_resource *)set[i]);
	rc = set_seal(dst);
	if (rc == 0 && n_removed) {
		gone = malloc(n_removed * sizeof(*gone));
		if (!gone)
			rc = -ENOMEM;
		else {
			memcpy(gone, removed, n_removed * sizeof(*gone));
			qsort(gone, n_removed, sizeof(*gone), str_cmp);
		}
	}
	for (i = 0; rc == 0 && old && i < old->n; i++) {
		const struct px_resource *r = old->v[i];
		if (n_removed && bsearch(&r->name, gone, n_removed, sizeof(*gone), str_cmp))
			continue;
		if (n && bsearch(r->name, dst->v, n, sizeof(*dst->v), name_res_cmp))
			continue;
		dst->v[dst->n++] = px_resource_ref((struct px_resource *)r);
	}
	free(gone);
	if (rc == 0)
		rc = set_seal(dst);
	if (rc < 0) {
		px_snapshot_unref(s);
		return rc;
	}
	*out = s;
	return 0;
}

/* bsearch() key: a name against a set entry. */
static int name_res_cmp(const void *key, const void *elem)
{
	return strcmp(key, (*(const struct px_resource *const *)elem)->name);
}

const struct px_resource *px_snapshot_find(const struct px_snapshot *s, enum xds_type t, const char *name)
{
	struct px_resource *const *r;

	if (!s || (unsigned)t >= XDS_TYPE_COUNT || !name || !s->sets[t].n)
		return NULL;
	r = bsearch(name, s->sets[t].v, s->sets[t].n, sizeof(*s->sets[t].v), name_res_cmp);
	return r ? *r : NULL;
}
