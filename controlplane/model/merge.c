/*
 * merge.c - Istio's merging of configuration objects that speak about one
 * host (model_int.h): VirtualService delegates merged into their root
 * (pilot/pkg/model/virtualservice_controller.go mergeVirtualServices,
 * virtualservice.go MergeHTTPRoutes / mergeHTTPRoute / hasConflict) and
 * DestinationRules for one host merged into one
 * (pilot/pkg/model/destination_rule.go mergeDestinationRule).
 *
 * Everything is allocated in the model's arena; see model_int.h for what
 * a merged object shares with the objects it came from.
 */
#include "controlplane/model/model_int.h"
#include "controlplane/model/policy.h"

#include "common/arena.h"
#include "common/hash.h"

#include <stdio.h>
#include <string.h>

#define MODEL_MERGE_HOST_MAX 256

int model__cmp_creation(const struct cfg_object *a, const struct cfg_object *b)
{
	int c;

	if (a->creation_time != b->creation_time)
		return a->creation_time < b->creation_time ? -1 : 1;
	c = strcmp(a->name, b->name);
	return c ? c : strcmp(a->ns, b->ns);
}

static uint64_t model__hash_mix(uint64_t h, const struct cfg_object *o)
{
	h = mesh_hash_update(h, &o->hash, sizeof(o->hash));
	h = mesh_hash_str(h, o->ns);
	return mesh_hash_str(h, o->name);
}

/* ---------------------------------------------------------------- delegates */

/* Istio's stringMatchConflict; NULL (or CFG_MATCH_NONE for the request
 * fields) is "not specified".  A header present-match is a StringMatch
 * with no pattern: it conflicts with anything, as in Istio. */
static bool model__sm_conflict(const struct cfg_string_match *root, const struct cfg_string_match *leaf)
{
	if (!root || !leaf)
		return false;
	if (root->type == CFG_MATCH_REGEX && leaf->type != CFG_MATCH_NONE)
		return true;
	if (leaf->type == CFG_MATCH_REGEX && root->type != CFG_MATCH_NONE)
		return true;
	if (root->type == CFG_MATCH_EXACT) {
		if (leaf->type == CFG_MATCH_PREFIX)
			return true;
		return leaf->type != CFG_MATCH_EXACT || strcmp(leaf->value, root->value) != 0;
	}
	if (root->type == CFG_MATCH_PREFIX) {
		if (leaf->type == CFG_MATCH_PREFIX || leaf->type == CFG_MATCH_EXACT)
			return strncmp(leaf->value, root->value, strlen(root->value)) != 0;
	}
	return true;
}

static const struct cfg_string_match *model__field(const struct cfg_string_match *m)
{
	return m->type == CFG_MATCH_NONE ? NULL : m;
}

static const struct cfg_header_match *model__header(const struct cfg_header_match *v, size_t n, const char *name,
						    bool invert)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (v[i].invert == invert && strcmp(v[i].name, name) == 0)
			return &v[i];
	return NULL;
}

static const char *model__label(const struct cfg_labels *l, const char *key)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		if (strcmp(l->v[i].key, key) == 0)
			return l->v[i].value;
	return NULL;
}

static bool model__has_str(const struct cfg_strs *s, const char *v)
{
	size_t i;

	for (i = 0; i < s->n; i++)
		if (strcmp(s->v[i], v) == 0)
			return true;
	return false;
}

/* Istio's hasConflict(root, leaf). */
static bool model__match_conflict(const struct cfg_http_match *root, const struct cfg_http_match *leaf)
{
	size_t i;

	if (model__sm_conflict(model__field(&root->uri), model__field(&leaf->uri)) ||
	    model__sm_conflict(model__field(&root->scheme), model__field(&leaf->scheme)) ||
	    model__sm_conflict(model__field(&root->method), model__field(&leaf->method)) ||
	    model__sm_conflict(model__field(&root->authority), model__field(&leaf->authority)))
		return true;
	for (i = 0; i < leaf->n_headers; i++) {
		const struct cfg_header_match *h = &leaf->headers[i];
		const struct cfg_header_match *r = model__header(root->headers, root->n_headers, h->name, h->invert);

		if (r && model__sm_conflict(&r->match, &h->match))
			return true;
	}
	for (i = 0; i < leaf->n_query_params; i++) {
		const struct cfg_header_match *q = &leaf->query_params[i];
		const struct cfg_header_match *r = model__header(root->query_params, root->n_query_params, q->name,
								 q->invert);

		if (r && model__sm_conflict(&r->match, &q->match))
			return true;
	}
	if (root->ignore_uri_case != leaf->ignore_uri_case)
		return true;
	if (root->port > 0 && leaf->port > 0 && root->port != leaf->port)
		return true;
	if (root->source_namespace && root->source_namespace[0] &&
	    (!leaf->source_namespace || strcmp(leaf->source_namespace, root->source_namespace) != 0))
		return true;
	for (i = 0; i < leaf->source_labels.n; i++) {
		const char *v = model__label(&root->source_labels, leaf->source_labels.v[i].key);

		if (v && strcmp(v, leaf->source_labels.v[i].value) != 0)
			return true;
	}
	if (root->gateways.n && leaf->gateways.n) {
		if (root->gateways.n < leaf->gateways.n)
			return true;
		for (i = 0; i < leaf->gateways.n; i++)
			if (!model__has_str(&root->gateways, leaf->gateways.v[i]))
				return true;
	}
	return false;
}

static const char *model__join_names(struct arena *a, const char *root, const char *leaf)
{
	if (!leaf || !leaf[0])
		return root;
	if (root && root[0])
		return arena_printf(a, "%s-%s", root, leaf);
	return leaf;
}

/* maps.MergeCopy(root, leaf): root's entries the leaf does not override,
 * then the leaf's. */
static int model__merge_headers(struct arena *a, const struct cfg_header_match *root, size_t n_root,
				const struct cfg_header_match *leaf, size_t n_leaf, struct cfg_header_match **out,
				size_t *n_out)
{
	struct cfg_header_match *v = arena_calloc(a, n_root + n_leaf + 1, sizeof(*v));
	size_t i, n = 0;

	if (!v)
		return -1;
	for (i = 0; i < n_root; i++)
		if (!model__header(leaf, n_leaf, root[i].name, root[i].invert))
			v[n++] = root[i];
	for (i = 0; i < n_leaf; i++)
		v[n++] = leaf[i];
	*out = v;
	*n_out = n;
	return 0;
}

/* Istio's mergeHTTPMatchRequest(root, leaf) into *out. */
static int model__merge_match(struct arena *a, const struct cfg_http_match *root, const struct cfg_http_match *leaf,
			      struct cfg_http_match *out)
{
	size_t i, n;

	*out = *leaf;
	out->name = (char *)model__join_names(a, root->name, leaf->name);
	if (out->uri.type == CFG_MATCH_NONE)
		out->uri = root->uri;
	if (out->scheme.type == CFG_MATCH_NONE)
		out->scheme = root->scheme;
	if (out->method.type == CFG_MATCH_NONE)
		out->method = root->method;
	if (out->authority.type == CFG_MATCH_NONE)
		out->authority = root->authority;
	if (model__merge_headers(a, root->headers, root->n_headers, leaf->headers, leaf->n_headers, &out->headers,
				 &out->n_headers) < 0 ||
	    model__merge_headers(a, root->query_params, root->n_query_params, leaf->query_params,
				 leaf->n_query_params, &out->query_params, &out->n_query_params) < 0)
		return -1;
	if (out->port <= 0)
		out->port = root->port;
	if (root->source_labels.n) {
		struct cfg_kv *kv = arena_calloc(a, root->source_labels.n + leaf->source_labels.n, sizeof(*kv));

		if (!kv)
			return -1;
		n = 0;
		for (i = 0; i < root->source_labels.n; i++)
			if (!model__label(&leaf->source_labels, root->source_labels.v[i].key))
				kv[n++] = root->source_labels.v[i];
		for (i = 0; i < leaf->source_labels.n; i++)
			kv[n++] = leaf->source_labels.v[i];
		out->source_labels.v = kv;
		out->source_labels.n = n;
	}
	if (!out->source_namespace || !out->source_namespace[0])
		out->source_namespace = root->source_namespace;
	if (out->gateways.n == 0)
		out->gateways = root->gateways;
	return 0;
}

static bool model__headers_empty(const struct cfg_headers *h)
{
	return !h->request.set.n && !h->request.add.n && !h->request.remove.n && !h->response.set.n &&
	       !h->response.add.n && !h->response.remove.n;
}

/* Resolve d's host in namespace ns into an FQDN kept in the arena. */
static int model__resolve_dest(struct model *m, struct cfg_destination *d, const char *ns)
{
	char buf[MODEL_MERGE_HOST_MAX];

	if (!d->host)
		return 0;
	d->host = arena_strdup(m->arena, model_resolve_host(m, d->host, ns, buf, sizeof(buf)));
	return d->host ? 0 : -1;
}

/* Istio's mergeHTTPRoute(root, leaf): 1 merged into *out, 0 conflict, -1 OOM. */
static int model__merge_route(struct model *m, const struct cfg_http_route *root, const struct cfg_http_route *leaf,
			      const char *leaf_ns, struct cfg_http_route *out)
{
	struct arena *a = m->arena;
	size_t i, j, n = 0;

	*out = *leaf;
	out->delegate = NULL;
	if (root->n_match && leaf->n_match) {
		struct cfg_http_match *v = arena_calloc(a, root->n_match * leaf->n_match, sizeof(*v));

		if (!v)
			return -1;
		/* each leaf match must find a root match it does not conflict with */
		for (i = 0; i < leaf->n_match; i++) {
			bool found = false;

			for (j = 0; j < root->n_match; j++) {
				if (model__match_conflict(&root->match[j], &leaf->match[i]))
					continue;
				if (model__merge_match(a, &root->match[j], &leaf->match[i], &v[n++]) < 0)
					return -1;
				found = true;
			}
			if (!found)
				return 0;
		}
		if (n == 0)
			return 0;
		out->match = v;
		out->n_match = n;
	} else if (root->n_match) {
		out->match = root->match;
		out->n_match = root->n_match;
	}
	out->name = (char *)model__join_names(a, root->name, leaf->name);
	if (!out->rewrite.set)
		out->rewrite = root->rewrite;
	if (!out->direct_response.set)
		out->direct_response = root->direct_response;
	if (out->timeout < 0)
		out->timeout = root->timeout;
	if (!out->retries.set)
		out->retries = root->retries;
	if (!out->fault.has_delay && !out->fault.has_abort)
		out->fault = root->fault;
	if (!out->mirror.set && !out->n_mirrors) {
		out->mirror = root->mirror;
		out->mirrors = root->mirrors;
		out->n_mirrors = root->n_mirrors;
	}
	if (!out->cors.set)
		out->cors = root->cors;
	if (model__headers_empty(&out->headers))
		out->headers = root->headers;
	/* the delegate's short host names mean its own namespace */
	if (out->n_route) {
		struct cfg_route_destination *rd = arena_calloc(a, out->n_route, sizeof(*rd));

		if (!rd)
			return -1;
		for (i = 0; i < out->n_route; i++) {
			rd[i] = leaf->route[i];
			if (model__resolve_dest(m, &rd[i].destination, leaf_ns) < 0)
				return -1;
		}
		out->route = rd;
	}
	if (leaf->mirror.set && model__resolve_dest(m, &out->mirror.destination, leaf_ns) < 0)
		return -1;
	if (leaf->n_mirrors) {
		struct cfg_mirror *mv = arena_calloc(a, leaf->n_mirrors, sizeof(*mv));

		if (!mv)
			return -1;
		for (i = 0; i < leaf->n_mirrors; i++) {
			mv[i] = leaf->mirrors[i];
			if (model__resolve_dest(m, &mv[i].destination, leaf_ns) < 0)
				return -1;
		}
		out->mirrors = mv;
	}
	return 1;
}

static const struct cfg_object *model__find_vs(const struct model *m, const char *ns, const char *name)
{
	size_t i;

	for (i = 0; i < m->cfg->n_objects[CFG_VIRTUAL_SERVICE]; i++) {
		const struct cfg_object *o = m->cfg->objects[CFG_VIRTUAL_SERVICE][i];

		if (strcmp(o->ns, ns) == 0 && strcmp(o->name, name) == 0)
			return o;
	}
	return NULL;
}

const struct cfg_object *model__merge_delegates(struct model *m, const struct cfg_object *root)
{
	const struct cfg_virtual_service *vs = &root->spec.vs;
	struct cfg_http_route *routes;
	struct cfg_object *out;
	size_t i, j, n = 0, cap = 0;
	uint64_t h = root->hash;
	bool any = false;

	for (i = 0; i < vs->n_http; i++) {
		const struct cfg_delegate *dg = vs->http[i].delegate;
		const struct cfg_object *d;

		if (!dg) {
			cap++;
			continue;
		}
		any = true;
		d = model__find_vs(m, dg->ns ? dg->ns : root->ns, dg->name);
		if (d)
			cap += d->spec.vs.n_http;
	}
	if (!any)
		return root;
	out = arena_alloc(m->arena, sizeof(*out));
	routes = arena_calloc(m->arena, cap ? cap : 1, sizeof(*routes));
	if (!out || !routes)
		return NULL;
	for (i = 0; i < vs->n_http; i++) {
		const struct cfg_http_route *r = &vs->http[i];
		const struct cfg_object *d;

		if (!r->delegate) {
			routes[n++] = *r;
			continue;
		}
		d = model__find_vs(m, r->delegate->ns ? r->delegate->ns : root->ns, r->delegate->name);
		/* a missing delegate, one with hosts (not a delegate), or one not
		 * exported to the root's namespace drops this route alone */
		if (!d || d->spec.vs.hosts.n || model_export_class(m, d, root->ns) == MODEL_EXPORT_NONE)
			continue;
		h = model__hash_mix(h, d);
		for (j = 0; j < d->spec.vs.n_http; j++) {
			int rc = model__merge_route(m, r, &d->spec.vs.http[j], d->ns, &routes[n]);

			if (rc < 0)
				return NULL;
			n += (size_t)rc;
		}
	}
	*out = *root;
	out->arena = NULL;
	out->spec.vs.http = routes;
	out->spec.vs.n_http = n;
	out->hash = h;
	return out;
}

/* ---------------------------------------------------------------- DestinationRule */

static bool model__subset_named(const struct cfg_subset *v, size_t n, const char *name)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (strcmp(v[i].name, name) == 0)
			return true;
	return false;
}

struct cfg_object *model__dr_merge(struct model *m, struct cfg_object *acc, const struct cfg_object *next)
{
	const struct cfg_destination_rule *nd = &next->spec.dr;
	struct cfg_subset *v;
	size_t i, n;

	/* The first of a run is the config object itself, not a copy: most
	 * hosts have one DestinationRule, and a copy of each (a cfg_object
	 * with its spec union, ~1.4 KB) was 1.4 MB of meshd's idle heap at
	 * 1,000 services.  A second one merges into a copy (arena NULL: the
	 * model's own), made then. */
	if (!acc)
		return (struct cfg_object *)next;
	if (acc->arena) {
		struct cfg_object *copy = arena_alloc(m->arena, sizeof(*copy));
		if (!copy)
			return NULL;
		*copy = *acc;
		copy->arena = NULL;
		acc = copy;
	}
	n = acc->spec.dr.n_subsets;
	v = arena_calloc(m->arena, n + nd->n_subsets + 1, sizeof(*v));
	if (!v)
		return NULL;
	if (n)
		memcpy(v, acc->spec.dr.subsets, n * sizeof(*v));
	for (i = 0; i < nd->n_subsets; i++)
		if (!model__subset_named(v, n, nd->subsets[i].name))
			v[n++] = nd->subsets[i];
	acc->spec.dr.subsets = v;
	acc->spec.dr.n_subsets = n;
	if (!acc->spec.dr.traffic_policy.set && nd->traffic_policy.set)
		acc->spec.dr.traffic_policy = nd->traffic_policy;
	acc->hash = model__hash_mix(acc->hash, next);
	return acc;
}
