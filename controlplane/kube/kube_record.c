/*
 * kube_record.c - resource table and typed records of core kinds (see
 * kube_record.h).  Fields meshd does not use are not decoded; unknown or
 * mistyped fields are skipped (the API server validated them already).
 */
#include "controlplane/kube/kube_record.h"

#include "common/arena.h"
#include "controlplane/kube/kube_json.h"

#include <errno.h>
#include <string.h>

static const struct kube_res_info kube__res[KUBE_RES_COUNT] = {
	[KUBE_RES_VIRTUAL_SERVICE] = { "networking.istio.io", "v1", "virtualservices", "VirtualService", true,
				       CFG_VIRTUAL_SERVICE },
	[KUBE_RES_DESTINATION_RULE] = { "networking.istio.io", "v1", "destinationrules", "DestinationRule", true,
					CFG_DESTINATION_RULE },
	[KUBE_RES_SERVICE_ENTRY] = { "networking.istio.io", "v1", "serviceentries", "ServiceEntry", true,
				     CFG_SERVICE_ENTRY },
	[KUBE_RES_WORKLOAD_ENTRY] = { "networking.istio.io", "v1", "workloadentries", "WorkloadEntry", true,
				      CFG_WORKLOAD_ENTRY },
	[KUBE_RES_PEER_AUTHENTICATION] = { "security.istio.io", "v1", "peerauthentications", "PeerAuthentication",
					   true, CFG_PEER_AUTHENTICATION },
	[KUBE_RES_AUTHORIZATION_POLICY] = { "security.istio.io", "v1", "authorizationpolicies",
					    "AuthorizationPolicy", true, CFG_AUTHORIZATION_POLICY },
	[KUBE_RES_SERVICE] = { "", "v1", "services", "Service", true, -1 },
	[KUBE_RES_ENDPOINT_SLICE] = { "discovery.k8s.io", "v1", "endpointslices", "EndpointSlice", true, -1 },
	[KUBE_RES_POD] = { "", "v1", "pods", "Pod", true, -1 },
	[KUBE_RES_NAMESPACE] = { "", "v1", "namespaces", "Namespace", false, -1 },
};

const struct kube_res_info *kube_res_info(enum kube_res r)
{
	return (unsigned)r < KUBE_RES_COUNT ? &kube__res[r] : NULL;
}

void kube_record_free(struct kube_record *r)
{
	if (r)
		arena_free(r->arena);
}

const char *kube_record_label(const struct kube_record *r, const char *key)
{
	size_t i;

	for (i = 0; i < r->labels.n; i++)
		if (strcmp(r->labels.v[i].key, key) == 0)
			return r->labels.v[i].value;
	return NULL;
}

/* Copy a string member (NULL when absent). Sets *oom on allocation failure. */
static char *kube__s(struct arena *a, const struct kube_json *o, const char *key, bool *oom)
{
	const char *s = kube_json_str(o, key);
	char *d;

	if (!s)
		return NULL;
	d = arena_strdup(a, s);
	if (!d)
		*oom = true;
	return d;
}

static void kube__labels(struct arena *a, const struct kube_json *m, struct cfg_labels *out, bool *oom)
{
	const struct kube_json *c;
	size_t n = 0;

	memset(out, 0, sizeof(*out));
	if (!m || m->type != KUBE_JSON_OBJECT || !m->n)
		return;
	out->v = arena_calloc(a, m->n, sizeof(*out->v));
	if (!out->v) {
		*oom = true;
		return;
	}
	for (c = m->child; c; c = c->next) {
		if (c->type != KUBE_JSON_STRING)
			continue;
		out->v[n].key = arena_strdup(a, c->key);
		out->v[n].value = arena_strdup(a, c->str);
		if (!out->v[n].key || !out->v[n].value)
			*oom = true;
		n++;
	}
	out->n = n;
}

static void kube__strs(struct arena *a, const struct kube_json *arr, struct cfg_strs *out, bool *oom)
{
	const struct kube_json *c;

	memset(out, 0, sizeof(*out));
	if (!arr || arr->type != KUBE_JSON_ARRAY || !arr->n)
		return;
	out->v = arena_calloc(a, arr->n, sizeof(*out->v));
	if (!out->v) {
		*oom = true;
		return;
	}
	for (c = arr->child; c; c = c->next) {
		const char *s = c->type == KUBE_JSON_STRING ? c->str : NULL;
		if (!s && c->type == KUBE_JSON_OBJECT)
			s = kube_json_str(c, "ip");   /* podIPs: [{ip: ...}] */
		if (!s)
			continue;
		if (!(out->v[out->n++] = arena_strdup(a, s)))
			*oom = true;
	}
}

static void kube__ports(struct arena *a, const struct kube_json *arr, struct kube_port **out, size_t *n_out,
			bool *oom)
{
	const struct kube_json *c;
	struct kube_port *p;
	size_t n = 0;

	*out = NULL;
	*n_out = 0;
	if (!arr || arr->type != KUBE_JSON_ARRAY || !arr->n)
		return;
	p = arena_calloc(a, arr->n, sizeof(*p));
	if (!p) {
		*oom = true;
		return;
	}
	for (c = arr->child; c; c = c->next) {
		const struct kube_json *tp;
		if (c->type != KUBE_JSON_OBJECT)
			continue;
		p[n].name = kube__s(a, c, "name", oom);
		p[n].port = (int32_t)kube_json_int(c, "port", 0);
		p[n].protocol = kube__s(a, c, "protocol", oom);
		if (!p[n].protocol && !(p[n].protocol = arena_strdup(a, "TCP")))
			*oom = true;
		p[n].app_protocol = kube__s(a, c, "appProtocol", oom);
		tp = kube_json_get(c, "targetPort");
		if (tp && tp->type == KUBE_JSON_NUMBER && tp->is_int)
			p[n].target_port = (int32_t)tp->i;
		else if (tp && tp->type == KUBE_JSON_STRING)
			p[n].target_port_name = kube__s(a, c, "targetPort", oom);
		n++;
	}
	*out = p;
	*n_out = n;
}

static int kube__cond(const struct kube_json *conds, const char *key)
{
	const struct kube_json *v = kube_json_get(conds, key);

	if (!v || v->type != KUBE_JSON_BOOL)
		return -1;
	return v->b ? 1 : 0;
}

static void kube__endpoints(struct arena *a, const struct kube_json *arr, struct kube_endpoint_slice *eps, bool *oom)
{
	const struct kube_json *c;
	size_t n = 0;

	if (!arr || arr->type != KUBE_JSON_ARRAY || !arr->n)
		return;
	eps->endpoints = arena_calloc(a, arr->n, sizeof(*eps->endpoints));
	if (!eps->endpoints) {
		*oom = true;
		return;
	}
	for (c = arr->child; c; c = c->next) {
		struct kube_endpoint *e = &eps->endpoints[n];
		const struct kube_json *conds = kube_json_get(c, "conditions"), *ref = kube_json_get(c, "targetRef");
		if (c->type != KUBE_JSON_OBJECT)
			continue;
		kube__strs(a, kube_json_get(c, "addresses"), &e->addresses, oom);
		e->ready = kube__cond(conds, "ready");
		e->serving = kube__cond(conds, "serving");
		e->terminating = kube__cond(conds, "terminating");
		e->hostname = kube__s(a, c, "hostname", oom);
		e->node_name = kube__s(a, c, "nodeName", oom);
		e->zone = kube__s(a, c, "zone", oom);
		if (ref) {
			e->target_kind = kube__s(a, ref, "kind", oom);
			e->target_ns = kube__s(a, ref, "namespace", oom);
			e->target_name = kube__s(a, ref, "name", oom);
		}
		n++;
	}
	eps->n_endpoints = n;
}

int kube_record_decode(enum kube_res res, const struct kube_json *obj, struct kube_record **out)
{
	const struct kube_json *md = kube_json_get(obj, "metadata"), *spec = kube_json_get(obj, "spec");
	const struct kube_json *st = kube_json_get(obj, "status"), *c;
	struct kube_record *r;
	struct arena *a;
	const char *name = kube_json_str(md, "name"), *ns = kube_json_str(md, "namespace");
	bool oom = false;

	*out = NULL;
	if (!name || !*name || (unsigned)res >= KUBE_RES_COUNT)
		return -EINVAL;
	if (!kube__res[res].namespaced)
		ns = "";
	else if (!ns || !*ns)
		ns = "default";
	a = arena_new(KUBE_RECORD_ARENA_MAX);
	if (!a)
		return -ENOMEM;
	r = arena_alloc(a, sizeof(*r));
	if (!r) {
		arena_free(a);
		return -ENOMEM;
	}
	r->arena = a;
	r->res = res;
	r->ns = arena_strdup(a, ns);
	r->name = arena_strdup(a, name);
	if (!r->ns || !r->name)
		oom = true;
	r->uid = kube__s(a, md, "uid", &oom);
	r->resource_version = kube__s(a, md, "resourceVersion", &oom);
	kube__labels(a, kube_json_get(md, "labels"), &r->labels, &oom);
	kube__labels(a, kube_json_get(md, "annotations"), &r->annotations, &oom);
	switch (res) {
	case KUBE_RES_SERVICE: {
		struct kube_service *s = &r->u.svc;
		const struct kube_json *sel = kube_json_get(spec, "selector");
		s->type = kube__s(a, spec, "type", &oom);
		if (!s->type && !(s->type = arena_strdup(a, "ClusterIP")))
			oom = true;
		s->cluster_ip = kube__s(a, spec, "clusterIP", &oom);
		kube__strs(a, kube_json_get(spec, "clusterIPs"), &s->cluster_ips, &oom);
		s->external_name = kube__s(a, spec, "externalName", &oom);
		s->has_selector = sel && sel->type == KUBE_JSON_OBJECT;
		kube__labels(a, sel, &s->selector, &oom);
		kube__ports(a, kube_json_get(spec, "ports"), &s->ports, &s->n_ports, &oom);
		break;
	}
	case KUBE_RES_ENDPOINT_SLICE: {
		struct kube_endpoint_slice *e = &r->u.eps;
		e->address_type = kube__s(a, obj, "addressType", &oom);
		kube__endpoints(a, kube_json_get(obj, "endpoints"), e, &oom);
		kube__ports(a, kube_json_get(obj, "ports"), &e->ports, &e->n_ports, &oom);
		{
			const char *svc = NULL;
			size_t i;
			for (i = 0; i < r->labels.n; i++)
				if (strcmp(r->labels.v[i].key, "kubernetes.io/service-name") == 0)
					svc = r->labels.v[i].value;
			e->service_name = (char *)svc;
		}
		break;
	}
	case KUBE_RES_POD: {
		struct kube_pod *p = &r->u.pod;
		p->phase = kube__s(a, st, "phase", &oom);
		p->pod_ip = kube__s(a, st, "podIP", &oom);
		kube__strs(a, kube_json_get(st, "podIPs"), &p->pod_ips, &oom);
		p->host_ip = kube__s(a, st, "hostIP", &oom);
		p->node_name = kube__s(a, spec, "nodeName", &oom);
		p->service_account = kube__s(a, spec, "serviceAccountName", &oom);
		if (!p->service_account && !(p->service_account = arena_strdup(a, "default")))
			oom = true;
		c = kube_json_get(st, "conditions");
		if (c && c->type == KUBE_JSON_ARRAY) {
			for (c = c->child; c; c = c->next) {
				const char *t = kube_json_str(c, "type"), *v = kube_json_str(c, "status");
				if (t && v && strcmp(t, "Ready") == 0)
					p->ready = strcmp(v, "True") == 0;
			}
		}
		break;
	}
	default:
		break;
	}
	if (oom) {
		arena_free(a);
		return -ENOMEM;
	}
	*out = r;
	return 0;
}
