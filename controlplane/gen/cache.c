/*
 * cache.c - incremental generation: unchanged resources are not rebuilt
 * or re-serialised from one push to the next.
 *
 * The cache keeps, per service (hostname) and per xDS type, the encoded
 * resources the generator emitted last time (in emission order) and a key:
 * a content hash of every model input that generator reads for that
 * service.  On the next push, a group whose key is unchanged is reused
 * as is; otherwise only that group is rebuilt.  The keys are split by type
 * so that an endpoint change rebuilds that service's ClusterLoadAssignments
 * (and its clusters only when an endpoint's identity, labels or ports
 * changed, since auto mTLS reads them), and leaves listeners and routes
 * alone.
 *
 * A cache serves one profile at a time; the keys cover what the builders
 * read for that profile (see listener.c, route.c, cluster.c, endpoint.c
 * and tls.c), which the profile does not change: it changes what is built
 * from those inputs, and a profile change empties the cache.
 * What each key covers:
 *  - LDS: hostname, port numbers;
 *  - RDS: hostname, port numbers, the DNS domain, the VirtualServices of
 *    the host (kind, namespace, name, content hash, in order), and for
 *    every destination they name (and the default route's own host): the
 *    resolved host, that service's namespace and ports, and the
 *    DestinationRule that applies;
 *  - CDS: hostname, namespace, ports, the DestinationRule, the kind and
 *    subjectAltNames of its ServiceEntry, mesh_external, the trust domain, the set of
 *    endpoint identities (namespace, labels, service account, ports), the
 *    SAN-count limit, and every PeerAuthentication when an endpoint has a
 *    service account;
 *  - EDS: hostname, ports, the DestinationRule (subsets), every endpoint
 *    field the assignment reads.
 * Output is byte-identical to gen_snapshot(): groups are added to the
 * snapshot in the same order (service by service: LDS, RDS, CDS, EDS), so
 * sealing sorts and de-duplicates them the same way.
 *
 * Keys are 64-bit FNV-1a over length-prefixed fields; a collision would
 * serve a stale group, which for non-adversarial config is negligible.
 *
 * The keys are proven, not trusted: in verify mode (gen_cache_set_verify,
 * on in the unit tests and the golden runner) a reused group is rebuilt
 * too and the bytes compared, so a key that forgot an input fails a test.
 * test_gen_cache_planted.c builds this file with GEN_CACHE_PLANTED_OMISSION
 * (the EDS key then forgets endpoint weights) to show that it does.
 *
 * Encoded resources are refcounted (controlplane/xds/resource.h): a group
 * holds a reference to each, and each snapshot built from the cache takes
 * its own (xds_snapshot_add_ref), so the bytes are never copied per push.
 * The cache keeps only the services of the last model: an entry for a
 * service no longer in the model, or a group no longer emitted, is
 * dropped at the end of the push.
 */
#include "controlplane/gen/gen.h"
#include "controlplane/gen/gen_int.h"

#include "common/err.h"
#include "common/hash.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* The generator kinds cached per service: LDS, RDS, CDS, EDS (their
 * xds_type values are 0..3). */
#define GEN_CACHE_KINDS 4
/* Bumped when what a key covers changes, so old keys never match. */
#define GEN_CACHE_KEY_SALT 1u

struct gen_cache_group {
	bool valid;
	uint64_t key;
	struct xds_resource **v;     /* emission order; one reference each */
	size_t n;
};

struct gen_cache_entry {
	char *hostname;              /* owned */
	struct gen_cache_group g[GEN_CACHE_KINDS];
};

struct gen_cache {
	struct gen_cache_entry *v;   /* sorted by hostname (strcmp) */
	size_t n;
	struct gen_cache_stats stats;
	const struct gen_profile *p; /* the profile the entries were built for */
	bool verify;                 /* gen_cache_set_verify() */
	/* per-push scratch: two hashes per endpoint of one service */
	uint64_t *scratch;
	size_t scratch_cap;
	/* the last model's gen__model_shape() and gen__endpoints_hash() per
	 * service (NULL: unknown): a model of the same shape changed only the
	 * endpoints of the services whose hash moved, and every other
	 * service's keys are its entry's, not computed again */
	uint64_t shape;
	uint64_t *ep;
	size_t n_ep;
};

_Static_assert(GEN_CACHE_KINDS == GEN_BUILDERS, "one cached group per builder");

/* ---------------------------------------------------------------- lifetime */

static void gen_cache_group_cleanup(struct gen_cache_group *g)
{
	xds_resource_array_unref((const struct xds_resource **)g->v, g->n);
	memset(g, 0, sizeof(*g));
}

static void gen_cache_entries_free(struct gen_cache_entry *v, size_t n)
{
	size_t i;
	int k;

	for (i = 0; i < n; i++) {
		for (k = 0; k < GEN_CACHE_KINDS; k++)
			gen_cache_group_cleanup(&v[i].g[k]);
		free(v[i].hostname);
	}
	free(v);
}

struct gen_cache *gen_cache_new(void)
{
	return calloc(1, sizeof(struct gen_cache));
}

void gen_cache_free(struct gen_cache *c)
{
	if (!c)
		return;
	gen_cache_entries_free(c->v, c->n);
	free(c->scratch);
	free(c->ep);
	free(c);
}

void gen_cache_set_verify(struct gen_cache *c, bool on)
{
	if (c)
		c->verify = on;
}

size_t gen_cache_orphans(const struct gen_cache *c, const struct xds_snapshot *snap, size_t *services,
			 size_t *resources)
{
	size_t i, j, n = 0, orphans = 0;
	int k;

	for (i = 0; c && i < c->n; i++) {
		for (k = 0; k < GEN_CACHE_KINDS; k++) {
			const struct gen_cache_group *g = &c->v[i].g[k];

			for (j = 0; j < g->n; j++) {
				n++;
				if (xds_snapshot_find(snap, (enum xds_type)k, g->v[j]->name) != g->v[j])
					orphans++;
			}
		}
	}
	if (services)
		*services = c ? c->n : 0;
	if (resources)
		*resources = n;
	return orphans;
}

void gen_cache_get_stats(const struct gen_cache *c, struct gen_cache_stats *out)
{
	if (c)
		*out = c->stats;
	else
		memset(out, 0, sizeof(*out));
}

/* ---------------------------------------------------------------- key hashing */

/* The shared key helpers (gen_int.h) under short names. */
#define h_u64    gen__h_u64
#define h_str    gen__h_str
#define h_labels gen__h_labels

/* A config object by identity and content. */
static uint64_t h_obj(uint64_t h, const struct cfg_object *o)
{
	h = h_u64(h, o != NULL);
	if (!o)
		return h;
	h = h_u64(h, (uint64_t)o->kind);
	h = h_str(h, o->ns);
	h = h_str(h, o->name);
	return h_u64(h, o->hash);
}

static uint64_t h_ports(uint64_t h, const struct model_service *svc)
{
	size_t i;

	h = h_u64(h, svc->n_ports);
	for (i = 0; i < svc->n_ports; i++) {
		h = h_u64(h, svc->ports[i].number);
		h = h_u64(h, svc->ports[i].target_port);
	}
	return h;
}

static uint64_t h_ep_ports(uint64_t h, const struct model_service *svc, const struct model_endpoint *e)
{
	size_t i;

	h = h_u64(h, e->ports != NULL);
	for (i = 0; e->ports && i < svc->n_ports; i++)
		h = h_u64(h, e->ports[i]);
	return h;
}

static uint64_t gen_cache_key_init(enum xds_type t, const struct model_service *svc)
{
	uint64_t h = h_u64(MESH_HASH_INIT, GEN_CACHE_KEY_SALT);

	h = h_u64(h, (uint64_t)t);
	return h_str(h, svc->hostname);
}

static uint64_t gen_key_lds(const struct model_service *svc)
{
	uint64_t h = gen_cache_key_init(XDS_LISTENER, svc);
	size_t i;

	h = h_u64(h, svc->n_ports);
	for (i = 0; i < svc->n_ports; i++)
		h = h_u64(h, svc->ports[i].number);
	return h;
}

/* One route destination as gen_resolve_dest()/gen_dest_hash() see it. */
static uint64_t h_dest(uint64_t h, const struct model *m, const char *host, const char *ns)
{
	char buf[GEN_NAME_MAX];
	const struct model_service *ds;
	size_t i;

	if (ns)
		model_resolve_host(m, host, ns, buf, sizeof(buf));
	else
		mesh_str_copy(buf, sizeof(buf), host); /* the default route: verbatim */
	ds = model_find_service(m, buf);
	h = h_str(h, buf);
	h = h_u64(h, ds != NULL);
	if (ds) {
		h = h_str(h, ds->ns);
		h = h_u64(h, ds->n_ports);
		for (i = 0; i < ds->n_ports; i++)
			h = h_u64(h, ds->ports[i].number);
	}
	(void)ns;
	return h_obj(h, model_destination_rule(m, buf, NULL));
}

/* vss: scratch, GEN_MAX_VS slots. */
static uint64_t gen_key_rds(const struct model *m, const struct model_service *svc, const struct cfg_object **vss)
{
	uint64_t h = gen_cache_key_init(XDS_ROUTE, svc);
	size_t n_vs, i, j, k;

	h = h_str(h, m->domain);
	h = h_str(h, svc->ns);
	h = h_u64(h, svc->n_ports);
	for (i = 0; i < svc->n_ports; i++)
		h = h_u64(h, svc->ports[i].number);
	/* the shared (proxyless) snapshot: the mesh-wide VirtualService */
	vss[0] = model_virtual_service(m, svc->hostname, NULL);
	n_vs = vss[0] != NULL;
	h = h_u64(h, n_vs);
	for (i = 0; i < n_vs; i++) {
		const struct cfg_object *vs = vss[i];

		h = h_obj(h, vs);
		if (vs->kind != CFG_VIRTUAL_SERVICE)
			continue;
		for (j = 0; j < vs->spec.vs.n_http; j++) {
			const struct cfg_http_route *hr = &vs->spec.vs.http[j];

			for (k = 0; k < hr->n_route; k++)
				h = h_dest(h, m, hr->route[k].destination.host, vs->ns);
		}
	}
	/* the default route */
	return h_dest(h, m, svc->hostname, NULL);
}

static int gen_u64_cmp(const void *x, const void *y)
{
	uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;

	return a < b ? -1 : a > b;
}

/* common[i]: endpoint i's labels and ports (h_ep_common); ids: scratch,
 * one slot per endpoint. */
static uint64_t gen_key_cds(const struct model *m, const struct model_service *svc, uint64_t pa_hash,
			    const uint64_t *common, uint64_t *ids)
{
	uint64_t h = gen_cache_key_init(XDS_CLUSTER, svc);
	size_t i, n = 0, se_sans = 0;
	bool any_sa = false;

	h = h_str(h, svc->ns);
	h = h_ports(h, svc);
	h = h_obj(h, model_destination_rule(m, svc->hostname, NULL));
	/* of the ServiceEntry or Service, only its kind and SANs are read (its
	 * inline endpoints are hashed below, as endpoints) */
	h = h_u64(h, svc->origin ? (uint64_t)svc->origin->kind + 1 : 0);
	if (svc->origin && svc->origin->kind == CFG_SERVICE_ENTRY) {
		se_sans = svc->origin->spec.se.subject_alt_names.n;
		h = h_u64(h, se_sans);
		for (i = 0; i < se_sans; i++)
			h = h_str(h, svc->origin->spec.se.subject_alt_names.v[i]);
	}
	h = h_u64(h, svc->mesh_external);
	h = h_str(h, gen__trust_domain(m));
	h = h_u64(h, (uint64_t)gen_mesh_connect_timeout(m)); /* MeshConfig connectTimeout */
	h = h_u64(h, (uint64_t)gen_mesh_protocol_detection_timeout(m)); /* protocolDetectionTimeout */
	h = h_u64(h, gen_mesh_auto_mtls(m));                 /* enableAutoMtls */
	h = h_u64(h, gen_mesh_h2_upgrade(m));                /* h2UpgradePolicy */
	/* gen__upstream_tls() refuses past this many candidate SANs */
	h = h_u64(h, svc->n_endpoints + se_sans > GEN_MAX_SANS);
	/* Auto mTLS reads the set of endpoint identities, not their count
	 * or addresses: scaling a workload leaves the clusters alone. */
	for (i = 0; i < svc->n_endpoints; i++) {
		const struct model_endpoint *e = &svc->endpoints[i];
		uint64_t eh = h_u64(MESH_HASH_INIT, common[i]);

		eh = h_str(eh, e->ns ? e->ns : svc->ns);
		eh = h_str(eh, e->service_account);
		ids[i] = eh;
		if (e->service_account && e->service_account[0])
			any_sa = true;
	}
	if (svc->n_endpoints)
		qsort(ids, svc->n_endpoints, sizeof(*ids), gen_u64_cmp);
	for (i = 0; i < svc->n_endpoints; i++)
		if (i == 0 || ids[i] != ids[i - 1])
			ids[n++] = ids[i];
	h = h_u64(h, n);
	for (i = 0; i < n; i++)
		h = h_u64(h, ids[i]);
	h = h_u64(h, any_sa);
	if (any_sa)
		h = h_u64(h, pa_hash);
	return h;
}

/* What the CDS and EDS keys both read of each endpoint: labels, ports. */
static void gen_ep_common(const struct model_service *svc, uint64_t *out)
{
	size_t i;

	for (i = 0; i < svc->n_endpoints; i++) {
		const struct model_endpoint *e = &svc->endpoints[i];

		out[i] = h_ep_ports(h_labels(MESH_HASH_INIT, e->labels), svc, e);
	}
}

static uint64_t gen_key_eds(const struct model *m, const struct model_service *svc, const uint64_t *common)
{
	uint64_t h = gen_cache_key_init(XDS_ENDPOINT, svc);
	size_t i;

	h = h_ports(h, svc);
	h = h_obj(h, model_destination_rule(m, svc->hostname, NULL));
	h = h_u64(h, svc->n_endpoints);
	for (i = 0; i < svc->n_endpoints; i++) {
		const struct model_endpoint *e = &svc->endpoints[i];

		h = h_str(h, e->address);
		h = h_u64(h, e->not_ready);
		h = h_u64(h, common[i]);
		h = h_str(h, e->locality);
#ifndef GEN_CACHE_PLANTED_OMISSION
		h = h_u64(h, e->weight);
#endif
	}
	return h;
}

/* Every PeerAuthentication (they are few) and the root namespace. */
static uint64_t gen_key_pa(const struct model *m)
{
	uint64_t h = h_str(MESH_HASH_INIT, m->root_namespace);
	size_t i, n = m->cfg ? m->cfg->n_objects[CFG_PEER_AUTHENTICATION] : 0;

	h = h_u64(h, n);
	for (i = 0; i < n; i++)
		h = h_obj(h, m->cfg->objects[CFG_PEER_AUTHENTICATION][i]);
	return h;
}

/* ---------------------------------------------------------------- model shape */

/* Bumped when what gen__model_shape() or gen__endpoints_hash() covers changes. */
#define GEN_SHAPE_SALT 1u

/* Shared with sidecar.c (gen_int.h).  What the generators read of m
 * apart from endpoints: every config object (kind, namespace, name,
 * shape_hash: a ServiceEntry without its inline endpoints) but
 * WorkloadEntries, EndpointSlices and Pods, which
 * the model reads only to make endpoints (model.c), the mesh config, the
 * DNS domain, root namespace and trust domain, and the services in order
 * with the object each comes from (which object wins a host). */
uint64_t gen__model_shape(const struct model *m)
{
	const struct cfg_snapshot *cfg = m->cfg;
	uint64_t h = gen__h_u64(MESH_HASH_INIT, GEN_SHAPE_SALT);
	size_t i;
	int k;

	h = gen__h_str(h, m->domain);
	h = gen__h_str(h, m->root_namespace);
	h = gen__h_str(h, gen__trust_domain(m));
	h = gen__h_u64(h, m->mesh != NULL);
	if (m->mesh)
		h = gen__h_u64(h, m->mesh->hash);
	for (k = 0; cfg && k < CFG_KIND_COUNT; k++) {
		if (k == CFG_WORKLOAD_ENTRY || k == CFG_K8S_ENDPOINT_SLICE || k == CFG_K8S_POD)
			continue;
		h = gen__h_u64(h, cfg->n_objects[k]);
		for (i = 0; i < cfg->n_objects[k]; i++) {
			const struct cfg_object *o = cfg->objects[k][i];

			h = gen__h_str(h, o->ns);
			h = gen__h_str(h, o->name);
			h = gen__h_u64(h, o->shape_hash);
		}
	}
	h = gen__h_u64(h, m->n_services);
	for (i = 0; i < m->n_services; i++) {
		const struct model_service *svc = &m->services[i];

		h = gen__h_str(h, svc->hostname);
		h = gen__h_u64(h, svc->origin ? (uint64_t)svc->origin->kind : UINT64_MAX);
		h = gen__h_str(h, svc->origin ? svc->origin->ns : NULL);
		h = gen__h_str(h, svc->origin ? svc->origin->name : NULL);
	}
	return h;
}

/* Every field of svc's endpoints (struct model_endpoint). */
uint64_t gen__endpoints_hash(const struct model_service *svc)
{
	uint64_t h = gen__h_u64(MESH_HASH_INIT, svc->n_endpoints);
	size_t i, j;

	for (i = 0; i < svc->n_endpoints; i++) {
		const struct model_endpoint *e = &svc->endpoints[i];

		h = gen__h_str(h, e->address);
		h = gen__h_labels(h, e->labels);
		h = gen__h_str(h, e->locality);
		h = gen__h_str(h, e->network);
		h = gen__h_u64(h, e->weight);
		h = gen__h_str(h, e->service_account);
		h = gen__h_str(h, e->ns);
		h = gen__h_u64(h, e->not_ready);
		h = gen__h_u64(h, e->ports != NULL);
		for (j = 0; e->ports && j < svc->n_ports; j++)
			h = gen__h_u64(h, e->ports[j]);
	}
	return h;
}

/* ---------------------------------------------------------------- build */

static int gen_cache_entry_cmp(const void *x, const void *y)
{
	return strcmp(((const struct gen_cache_entry *)x)->hostname, ((const struct gen_cache_entry *)y)->hostname);
}

static struct gen_cache_entry *gen_cache_find(struct gen_cache *c, const char *hostname)
{
	size_t lo = 0, hi = c->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int r = strcmp(hostname, c->v[mid].hostname);

		if (r == 0)
			return &c->v[mid];
		if (r < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

/* Run generator k for svc and keep what it emitted, in order, in g. */
static int gen_cache_build(const struct gen_ctx *gc, const struct model_service *svc, int k, uint64_t key,
			   struct gen_cache_group *g)
{
	struct xds_snapshot *tmp = xds_snapshot_new();
	struct arena *a = arena_new(GEN_ARENA_MAX);
	struct xds_resource_set *set;
	int rc = -ENOMEM;

	if (!tmp || !a)
		goto out;
	rc = gen__builders[k](gc, svc, a, tmp);
	if (rc < 0)
		goto out;
	/* take the unsealed set: the emission order is kept */
	set = &tmp->sets[k];
	g->v = set->v;
	g->n = set->n;
	g->key = key;
	g->valid = true;
	memset(set, 0, sizeof(*set));
out:
	arena_free(a);
	xds_snapshot_unref(tmp);
	return rc;
}

/* Two groups hold the same resources, byte for byte, in the same order. */
static bool gen_cache_group_same(const struct gen_cache_group *a, const struct gen_cache_group *b)
{
	size_t i;

	if (a->n != b->n)
		return false;
	for (i = 0; i < a->n; i++) {
		const struct xds_resource *x = a->v[i], *y = b->v[i];

		if (x->hash != y->hash || x->len != y->len || strcmp(x->name, y->name) != 0 ||
		    (x->len && memcmp(x->data, y->data, x->len) != 0))
			return false;
	}
	return true;
}

/* Verify mode: rebuild group k of svc, which the cache would reuse as
 * *old, and compare.  On a difference the rebuilt group replaces *old
 * (what it should have been) and it is noted.  Returns 0 or a negative
 * code from the builder. */
static int gen_cache_verify(const struct gen_ctx *gc, const struct model_service *svc, int k,
			    struct gen_cache_group *old, struct gen_cache_stats *st)
{
	struct gen_cache_group fresh = { 0 };
	int rc = gen_cache_build(gc, svc, k, old->key, &fresh);

	if (rc < 0)
		goto out;
	st->verified[k]++;
	if (gen_cache_group_same(old, &fresh))
		goto out;
	st->mismatched[k]++;
	gen__note(gc, GEN_NOTE_ERROR, "xds",
		  "gen cache: the %s key of %s misses an input (the reused resources differ from a rebuild)",
		  xds_type_short((enum xds_type)k), svc->hostname);
	gen_cache_group_cleanup(old);
	*old = fresh;
	memset(&fresh, 0, sizeof(fresh));
out:
	gen_cache_group_cleanup(&fresh);
	return rc;
}

int gen_snapshot_cached(struct gen_cache *c, const struct model *m, const struct gen_profile *p,
			const struct gen_notes *notes, struct xds_snapshot **out)
{
	struct gen_ctx g = { .m = m, .p = p, .notes = notes };
	struct xds_snapshot *snap = xds_snapshot_new();
	struct gen_cache_entry *nv = NULL;
	const struct cfg_object **vss = NULL;
	struct gen_cache_stats st;
	uint64_t pa_hash, shape = gen__model_shape(m), *ep = NULL;
	bool same_shape;
	size_t i, j, nn = 0;
	int rc = -ENOMEM, k;

	*out = NULL;
	memset(&st, 0, sizeof(st));
	if (!snap)
		goto out;
	vss = calloc(GEN_MAX_VS, sizeof(*vss));
	ep = malloc((m->n_services ? m->n_services : 1) * sizeof(*ep));
	if (!vss || !ep || (m->n_services && !(nv = calloc(m->n_services, sizeof(*nv)))))
		goto out;
	for (i = 0; i < m->n_services; i++)
		ep[i] = gen__endpoints_hash(&m->services[i]);
	if (c->p != p) {
		/* built for another profile: nothing can be reused */
		gen_cache_entries_free(c->v, c->n);
		c->v = NULL;
		c->n = 0;
		c->p = p;
		free(c->ep);
		c->ep = NULL;
	}
	same_shape = c->ep && c->shape == shape && c->n_ep == m->n_services;
	pa_hash = gen_key_pa(m);
	for (i = 0; i < m->n_services; i++) {
		const struct model_service *svc = &m->services[i];
		struct gen_cache_entry *old = gen_cache_find(c, svc->hostname);
		struct gen_cache_entry *e = &nv[nn];
		uint64_t keys[GEN_CACHE_KINDS];

		if (!(e->hostname = strdup(svc->hostname))) {
			rc = -ENOMEM;
			goto out;
		}
		nn++;
		if (svc->n_endpoints > c->scratch_cap / 2) {
			uint64_t *v = realloc(c->scratch, 2 * svc->n_endpoints * sizeof(*v));

			if (!v) {
				rc = -ENOMEM;
				goto out;
			}
			c->scratch = v;
			c->scratch_cap = 2 * svc->n_endpoints;
		}
		if (same_shape && old && ep[i] == c->ep[i] && old->g[XDS_LISTENER].valid && old->g[XDS_ROUTE].valid &&
		    old->g[XDS_CLUSTER].valid && old->g[XDS_ENDPOINT].valid) {
			/* nothing a key covers changed for this service (the
			 * shape covers every input but endpoints): its groups
			 * stand, and verify mode still rebuilds them */
			for (k = 0; k < GEN_CACHE_KINDS; k++)
				keys[k] = old->g[k].key;
			st.keys_carried++;
		} else {
			gen_ep_common(svc, c->scratch);
			keys[XDS_LISTENER] = gen_key_lds(svc);
			keys[XDS_ROUTE] = gen_key_rds(m, svc, vss);
			keys[XDS_CLUSTER] = gen_key_cds(m, svc, pa_hash, c->scratch, c->scratch + svc->n_endpoints);
			keys[XDS_ENDPOINT] = gen_key_eds(m, svc, c->scratch);
		}
		for (k = 0; k < GEN_CACHE_KINDS; k++) {
			if (old && old->g[k].valid && old->g[k].key == keys[k]) {
				if (c->verify) {
					rc = gen_cache_verify(&g, svc, k, &old->g[k], &st);
					if (rc < 0) {
						gen__note(&g, GEN_NOTE_ERROR, "xds", "%s config for %s: %s", p->name,
							  svc->hostname, mesh_strerror(rc));
						goto out;
					}
				}
				/* unchanged: move the encoded group over */
				e->g[k] = old->g[k];
				memset(&old->g[k], 0, sizeof(old->g[k]));
				st.reused[k]++;
				continue;
			}
			rc = gen_cache_build(&g, svc, k, keys[k], &e->g[k]);
			if (rc < 0) {
				gen__note(&g, GEN_NOTE_ERROR, "xds", "%s config for %s: %s", p->name, svc->hostname,
					  mesh_strerror(rc));
				goto out;
			}
			st.built[k]++;
		}
		for (k = 0; k < GEN_CACHE_KINDS; k++) {
			for (j = 0; j < e->g[k].n; j++) {
				/* by reference: the bytes are shared, never copied */
				rc = xds_snapshot_add_ref(snap, (enum xds_type)k, e->g[k].v[j]);
				if (rc < 0)
					goto out;
			}
		}
	}
	snap->model_generation = m->generation;
	xds_snapshot_seal(snap);
	if (nn)
		qsort(nv, nn, sizeof(*nv), gen_cache_entry_cmp);
	gen_cache_entries_free(c->v, c->n);
	c->v = nv;
	c->n = nn;
	nv = NULL;
	nn = 0;
	free(c->ep);
	c->ep = ep;
	c->n_ep = m->n_services;
	c->shape = shape;
	ep = NULL;
	c->stats = st;
	*out = snap;
	snap = NULL;
	rc = 0;
out:
	if (rc < 0) {
		/* groups may have moved out of the old entries: start afresh */
		gen_cache_entries_free(c->v, c->n);
		c->v = NULL;
		c->n = 0;
		free(c->ep);
		c->ep = NULL;
	}
	gen_cache_entries_free(nv, nn);
	free(vss);
	free(ep);
	xds_snapshot_unref(snap);
	return rc;
}

int gen_grpc_snapshot_cached(struct gen_cache *c, const struct model *m, struct xds_snapshot **out)
{
	return gen_snapshot_cached(c, m, &gen_profile_proxyless, NULL, out);
}
