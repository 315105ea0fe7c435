/*
 * kube_map.c - string-keyed hash map (see kube_map.h).
 */
#include "controlplane/kube/kube_map.h"

#include "common/hash.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void kube_map_init(struct kube_map *m)
{
	memset(m, 0, sizeof(*m));
}

void kube_map_cleanup(struct kube_map *m)
{
	size_t i;

	for (i = 0; i < m->nb; i++) {
		struct kube_map_entry *e = m->b[i], *n;
		for (; e; e = n) {
			n = e->next;
			free(e->key);
			free(e);
		}
	}
	free(m->b);
	memset(m, 0, sizeof(*m));
}

static struct kube_map_entry **kube__slot(const struct kube_map *m, const char *key, uint64_t h)
{
	struct kube_map_entry **p;

	if (!m->nb)
		return NULL;
	for (p = &m->b[h & (m->nb - 1)]; *p; p = &(*p)->next)
		if ((*p)->hash == h && strcmp((*p)->key, key) == 0)
			return p;
	return p;
}

void *kube_map_get(const struct kube_map *m, const char *key)
{
	struct kube_map_entry **p = kube__slot(m, key, mesh_hash_str(MESH_HASH_INIT, key));

	return p && *p ? (*p)->val : NULL;
}

static int kube__grow(struct kube_map *m)
{
	size_t nb = m->nb ? m->nb * 2 : 64, i;
	struct kube_map_entry **b = calloc(nb, sizeof(*b));

	if (!b)
		return -ENOMEM;
	for (i = 0; i < m->nb; i++) {
		struct kube_map_entry *e = m->b[i], *n;
		for (; e; e = n) {
			n = e->next;
			e->next = b[e->hash & (nb - 1)];
			b[e->hash & (nb - 1)] = e;
		}
	}
	free(m->b);
	m->b = b;
	m->nb = nb;
	return 0;
}

int kube_map_put(struct kube_map *m, const char *key, void *val, void **old)
{
	uint64_t h = mesh_hash_str(MESH_HASH_INIT, key);
	struct kube_map_entry **p, *e;

	if (old)
		*old = NULL;
	if (m->n + 1 > m->nb * 2 && kube__grow(m) < 0)
		return -ENOMEM;
	p = kube__slot(m, key, h);
	if (*p) {
		if (old)
			*old = (*p)->val;
		(*p)->val = val;
		return 0;
	}
	e = calloc(1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	e->key = strdup(key);
	if (!e->key) {
		free(e);
		return -ENOMEM;
	}
	e->val = val;
	e->hash = h;
	*p = e;
	m->n++;
	return 0;
}

void *kube_map_del(struct kube_map *m, const char *key)
{
	struct kube_map_entry **p = kube__slot(m, key, mesh_hash_str(MESH_HASH_INIT, key)), *e;
	void *v;

	if (!p || !*p)
		return NULL;
	e = *p;
	*p = e->next;
	v = e->val;
	free(e->key);
	free(e);
	m->n--;
	return v;
}

struct kube_map_entry *kube_map_next(const struct kube_map *m, struct kube_map_entry *it)
{
	size_t i = 0;

	if (it) {
		if (it->next)
			return it->next;
		i = (it->hash & (m->nb - 1)) + 1;
	}
	for (; i < m->nb; i++)
		if (m->b[i])
			return m->b[i];
	return NULL;
}
