/*
 * gateway.c - Istio's gateway binding rules (see gateway.h): Gateways
 * selecting a router, VirtualServices bound to a Gateway, server hosts
 * by namespace and host intersection.  Pure; nothing allocated: the
 * callers hand in the arrays they fill.
 */
#include "controlplane/model/gateway.h"
#include "controlplane/model/model_int.h"
#include "controlplane/model/policy.h"

#include "common/arena.h"
#include "common/str.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* The reserved gateway name of the mesh's sidecars. */
#define MODEL_MESH_GATEWAY "mesh"
/* VirtualServices considered when ordering those bound to one Gateway. */
#define MODEL_GW_VS_MAX 4096

const char *model_gateway_ref(const char *ref, const char *vs_ns, char *buf, size_t cap)
{
	const char *dot;

	if (!ref)
		ref = "";
	if (ref[0] == '.' && ref[1] == '/') {
		snprintf(buf, cap, "%s/%s", vs_ns ? vs_ns : "default", ref + 2);
	} else if (strchr(ref, '/') || strcmp(ref, MODEL_MESH_GATEWAY) == 0) {
		snprintf(buf, cap, "%s", ref);
	} else if ((dot = strchr(ref, '.')) != NULL) {
		/* "name.ns" or "name.ns.svc.cluster.local": Istio's legacy form */
		const char *ns = dot + 1, *end = strchr(ns, '.');
		int nl = end ? (int)(end - ns) : (int)strlen(ns);

		snprintf(buf, cap, "%.*s/%.*s", nl, ns, (int)(dot - ref), ref);
	} else {
		snprintf(buf, cap, "%s/%s", vs_ns ? vs_ns : "default", ref);
	}
	return buf;
}

bool model_gateways_include(const struct cfg_strs *gateways, const char *vs_ns, const char *gateway)
{
	char buf[MODEL_GATEWAY_NAME_MAX];
	size_t i;

	if ((!gateways || gateways->n == 0) && strcmp(gateway, MODEL_MESH_GATEWAY) == 0)
		return true;         /* getGatewayNames: none listed is "mesh" */
	for (i = 0; gateways && i < gateways->n; i++)
		if (strcmp(model_gateway_ref(gateways->v[i], vs_ns, buf, sizeof(buf)), gateway) == 0)
			return true;
	return false;
}

bool model_gateway_selects(const struct cfg_object *gw, const struct cfg_labels *labels)
{
	static const struct cfg_labels none;

	if (!gw || gw->kind != CFG_GATEWAY)
		return false;
	return model_labels_match(&gw->spec.gw.selector, labels ? labels : &none);
}

size_t model_gateways_for_proxy(const struct model *m, const char *ns, const struct cfg_labels *labels,
				const struct cfg_object **out, size_t cap)
{
	size_t i, n = 0;

	(void)ns;
	if (!m || !m->cfg)
		return 0;
	for (i = 0; i < m->cfg->n_objects[CFG_GATEWAY]; i++) {
		const struct cfg_object *o = m->cfg->objects[CFG_GATEWAY][i];

		if (!model_gateway_selects(o, labels))
			continue;
		if (n < cap)
			out[n] = o;
		n++;
	}
	return n;
}

struct model_gw_vs {
	const struct cfg_object *o;
	int cls;                     /* enum model_export */
};

static int model_gw_vs_cmp(const void *x, const void *y)
{
	const struct model_gw_vs *a = x, *b = y;

	if (a->cls != b->cls)
		return a->cls < b->cls ? -1 : 1;
	return model__cmp_creation(a->o, b->o);
}

size_t model_gateway_virtual_services(const struct model *m, const char *gateway, const char *proxy_ns,
				      const struct cfg_object **out, size_t cap)
{
	struct model_gw_vs *v = NULL;
	size_t i, n = 0, k;

	if (!m || !m->cfg || !gateway)
		return 0;
	k = m->cfg->n_objects[CFG_VIRTUAL_SERVICE];
	if (k > MODEL_GW_VS_MAX)
		k = MODEL_GW_VS_MAX;
	if (k && !(v = calloc(k, sizeof(*v))))
		return 0;
	for (i = 0; i < k; i++) {
		const struct cfg_object *o = m->cfg->objects[CFG_VIRTUAL_SERVICE][i];
		enum model_export cls;

		if (o->spec.vs.hosts.n == 0 || !model_gateways_include(&o->spec.vs.gateways, o->ns, gateway))
			continue;
		cls = model_export_class(m, o, proxy_ns ? proxy_ns : "default");
		if (cls == MODEL_EXPORT_NONE)
			continue;
		/* its delegates merged in, as the model keeps it */
		v[n].o = model__vs_merged(m, i) ? model__vs_merged(m, i) : o;
		v[n].cls = (int)cls;
		n++;
	}
	if (n > 1)
		qsort(v, n, sizeof(*v), model_gw_vs_cmp);
	for (i = 0; i < n && i < cap; i++)
		out[i] = v[i].o;
	free(v);
	return n;
}

const char *model_server_host_for(const char *h, const char *gw_ns, const char *vs_ns)
{
	const char *slash = h ? strchr(h, '/') : NULL;
	size_t nl;

	if (!h)
		return NULL;
	if (!slash)
		return h;
	nl = (size_t)(slash - h);
	if (nl == 1 && h[0] == '*')
		return slash + 1;
	if (nl == 1 && h[0] == '.')
		return gw_ns && vs_ns && strcmp(gw_ns, vs_ns) == 0 ? slash + 1 : NULL;
	if (vs_ns && strlen(vs_ns) == nl && strncmp(h, vs_ns, nl) == 0)
		return slash + 1;
	return NULL;
}

/* Add s to out[] (count *n, cap) unless there already (case-insensitive). */
static void model_gw_host_add(const char **out, size_t cap, size_t *n, const char *s)
{
	size_t i;

	for (i = 0; i < *n && i < cap; i++)
		if (strcasecmp(out[i], s) == 0)
			return;
	if (*n < cap)
		out[*n] = s;
	(*n)++;
}

/* VirtualService host h of vs as Istio resolves it (a short name in
 * vs's namespace, resolveVirtualServiceShortnames) into buf. */
static const char *model_gw_vs_host(const struct model *m, const struct cfg_object *vs, const char *h, char *buf,
				    size_t cap)
{
	return m ? model_resolve_host(m, h, vs->ns, buf, cap) : h;
}

size_t model_gateway_hosts(const struct model *m, const struct cfg_strs *server_hosts, const char *gw_ns,
			   const struct cfg_object *vs, struct arena *a, const char **out, size_t cap)
{
	char buf[MODEL_GATEWAY_NAME_MAX];
	size_t i, j, n = 0;

	if (!server_hosts || !vs || vs->kind != CFG_VIRTUAL_SERVICE)
		return 0;
	for (i = 0; i < server_hosts->n; i++) {
		const char *sh = model_server_host_for(server_hosts->v[i], gw_ns, vs->ns);

		if (!sh)
			continue;
		for (j = 0; j < vs->spec.vs.hosts.n; j++) {
			const char *vh = model_gw_vs_host(m, vs, vs->spec.vs.hosts.v[j], buf, sizeof(buf));

			/* the narrower of the two (host.Names.Intersection) */
			if (cfg_host_covers(vh, sh, NULL)) {
				model_gw_host_add(out, cap, &n, sh);
			} else if (cfg_host_covers(sh, vh, NULL)) {
				const char *keep = vh == buf ? arena_strdup(a, buf) : vh;

				if (!keep)
					return n;    /* out of memory: what was found */
				model_gw_host_add(out, cap, &n, keep);
			}
		}
	}
	return n;
}

bool model_gateway_hosts_match(const struct model *m, const struct cfg_strs *server_hosts, const char *gw_ns,
			       const struct cfg_object *vs)
{
	char buf[MODEL_GATEWAY_NAME_MAX];
	size_t i, j;

	if (!server_hosts || !vs || vs->kind != CFG_VIRTUAL_SERVICE)
		return false;
	for (i = 0; i < server_hosts->n; i++) {
		const char *sh = model_server_host_for(server_hosts->v[i], gw_ns, vs->ns);

		for (j = 0; sh && j < vs->spec.vs.hosts.n; j++) {
			const char *vh = model_gw_vs_host(m, vs, vs->spec.vs.hosts.v[j], buf, sizeof(buf));

			if (cfg_host_covers(sh, vh, NULL) || cfg_host_covers(vh, sh, NULL))
				return true;
		}
	}
	return false;
}
