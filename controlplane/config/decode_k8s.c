/*
 * decode_k8s.c - typed decode of the core Kubernetes kinds meshd reads:
 * Service, EndpointSlice, Pod and Namespace.
 *
 * These describe the service registry, from the API server or from a
 * directory that stands for a cluster.  Structural checks come from the
 * schemas in controlplane/config/k8s-schemas.yaml (unknown fields are kept,
 * as the API server keeps them); this file reads the fields the model uses
 * and checks what would make them meaningless (ports out of range, an
 * EndpointSlice that names no Service).
 */
#include "controlplane/config/config_int.h"

#include "common/arena.h"

#include <openssl/evp.h>

#include <limits.h>
#include <string.h>

#define F(n, k) cfg__node_field((n), (k))

struct k8s {
	struct cfg__ectx *e;
	struct arena *a;
};

static void *k8s__alloc(struct k8s *d, size_t n, size_t size)
{
	void *p = arena_calloc(d->a, n ? n : 1, size);

	if (!p)
		d->e->oom = true;
	return p;
}

static char *k8s__str(struct k8s *d, const struct cfg__node *n, const char *def)
{
	char *s;

	if (!n || !n->str || n->type == CFG__NULL) {
		if (!def)
			return NULL;
		s = arena_strdup(d->a, def);
	} else {
		s = arena_strndup(d->a, n->str, n->len);
	}
	if (!s)
		d->e->oom = true;
	return s;
}

static int64_t k8s__int(const struct cfg__node *n, int64_t def)
{
	return n && n->type == CFG__INT ? n->i : def;
}

static int k8s__bool(const struct cfg__node *n)
{
	return n && n->type == CFG__BOOL ? n->b : -1;
}

static void k8s__labels(struct k8s *d, const struct cfg__node *n, struct cfg_labels *out)
{
	size_t i;

	if (!n || n->type != CFG__MAP)
		return;
	out->v = k8s__alloc(d, n->n, sizeof(*out->v));
	if (!out->v)
		return;
	for (i = 0; i < n->n; i++) {
		out->v[i].key = k8s__str(d, n->k[i], "");
		out->v[i].value = k8s__str(d, n->v[i], "");
	}
	out->n = n->n;
}

/* A port number field: 1..65535. */
static bool k8s__port(struct k8s *d, const struct cfg__node *n, const char *key, int64_t *out)
{
	const struct cfg__node *v = F(n, key);
	size_t mark;

	if (!v)
		return false;
	if (v->type == CFG__INT && v->i >= 1 && v->i <= 65535) {
		*out = v->i;
		return true;
	}
	mark = cfg__path_key(d->e, key);
	cfg__error(d->e, v, "port must be a number from 1 to 65535");
	cfg__path_pop(d->e, mark);
	return false;
}

static void k8s__service(struct k8s *d, const struct cfg__node *spec, struct cfg_k8s_service *svc)
{
	const struct cfg__node *ports = F(spec, "ports"), *sel = F(spec, "selector");
	size_t i, mark = cfg__path_key(d->e, "spec");

	svc->type = k8s__str(d, F(spec, "type"), "ClusterIP");
	svc->cluster_ip = k8s__str(d, F(spec, "clusterIP"), NULL);
	svc->external_name = k8s__str(d, F(spec, "externalName"), NULL);
	if (sel && sel->type == CFG__MAP) {
		svc->has_selector = true;
		k8s__labels(d, sel, &svc->selector);
	}
	if (ports && ports->type == CFG__SEQ) {
		size_t m2 = cfg__path_key(d->e, "ports");
		svc->ports = k8s__alloc(d, ports->n, sizeof(*svc->ports));
		for (i = 0; svc->ports && i < ports->n; i++) {
			const struct cfg__node *p = ports->v[i], *tp = F(p, "targetPort");
			struct cfg_k8s_service_port *sp = &svc->ports[svc->n_ports];
			size_t m3 = cfg__path_idx(d->e, i);

			sp->name = k8s__str(d, F(p, "name"), "");
			sp->protocol = k8s__str(d, F(p, "protocol"), "TCP");
			sp->app_protocol = k8s__str(d, F(p, "appProtocol"), NULL);
			sp->target_port = -1;
			if (!F(p, "port")) {
				size_t m4 = cfg__path_key(d->e, "port");
				cfg__error(d->e, p, "a port is required");
				cfg__path_pop(d->e, m4);
			} else if (k8s__port(d, p, "port", &sp->port)) {
				if (tp && tp->type == CFG__STR)
					sp->target_port_name = k8s__str(d, tp, NULL);
				else if (tp)
					k8s__port(d, p, "targetPort", &sp->target_port);
				else
					sp->target_port = sp->port;
				svc->n_ports++;
			}
			cfg__path_pop(d->e, m3);
		}
		cfg__path_pop(d->e, m2);
	}
	cfg__path_pop(d->e, mark);
}

static void k8s__endpoint_slice(struct k8s *d, const struct cfg_object *o, const struct cfg__node *root,
				struct cfg_k8s_endpoint_slice *es)
{
	const struct cfg__node *eps = F(root, "endpoints"), *ports = F(root, "ports");
	size_t i, j;

	for (i = 0; i < o->labels.n; i++)
		if (strcmp(o->labels.v[i].key, "kubernetes.io/service-name") == 0)
			es->service_name = o->labels.v[i].value;
	es->address_type = k8s__str(d, F(root, "addressType"), "IPv4");
	if (eps && eps->type == CFG__SEQ) {
		size_t m1 = cfg__path_key(d->e, "endpoints");
		es->endpoints = k8s__alloc(d, eps->n, sizeof(*es->endpoints));
		for (i = 0; es->endpoints && i < eps->n; i++) {
			const struct cfg__node *ep = eps->v[i], *cond = F(ep, "conditions"), *ref = F(ep, "targetRef");
			const struct cfg__node *addrs = F(ep, "addresses");
			struct cfg_k8s_endpoint *out = &es->endpoints[es->n_endpoints++];

			if (addrs && addrs->type == CFG__SEQ) {
				out->addresses.v = k8s__alloc(d, addrs->n, sizeof(char *));
				for (j = 0; out->addresses.v && j < addrs->n; j++)
					if ((out->addresses.v[out->addresses.n] = k8s__str(d, addrs->v[j], NULL)))
						out->addresses.n++;
			}
			if (!out->addresses.n) {
				size_t m2 = cfg__path_idx(d->e, i), m3 = cfg__path_key(d->e, "addresses");
				cfg__error(d->e, ep, "an endpoint needs at least one address");
				cfg__path_pop(d->e, m3);
				cfg__path_pop(d->e, m2);
			}
			out->ready = k8s__bool(F(cond, "ready"));
			out->serving = k8s__bool(F(cond, "serving"));
			out->terminating = k8s__bool(F(cond, "terminating"));
			out->hostname = k8s__str(d, F(ep, "hostname"), NULL);
			out->node_name = k8s__str(d, F(ep, "nodeName"), NULL);
			out->zone = k8s__str(d, F(ep, "zone"), NULL);
			if (ref) {
				out->target_kind = k8s__str(d, F(ref, "kind"), NULL);
				out->target_ns = k8s__str(d, F(ref, "namespace"), o->ns);
				out->target_name = k8s__str(d, F(ref, "name"), NULL);
			}
		}
		cfg__path_pop(d->e, m1);
	}
	if (ports && ports->type == CFG__SEQ) {
		size_t m1 = cfg__path_key(d->e, "ports");
		es->ports = k8s__alloc(d, ports->n, sizeof(*es->ports));
		for (i = 0; es->ports && i < ports->n; i++) {
			const struct cfg__node *p = ports->v[i];
			struct cfg_k8s_endpoint_port *out = &es->ports[es->n_ports++];
			size_t m2 = cfg__path_idx(d->e, i);

			out->name = k8s__str(d, F(p, "name"), "");
			out->protocol = k8s__str(d, F(p, "protocol"), "TCP");
			out->app_protocol = k8s__str(d, F(p, "appProtocol"), NULL);
			out->port = -1;
			k8s__port(d, p, "port", &out->port);
			cfg__path_pop(d->e, m2);
		}
		cfg__path_pop(d->e, m1);
	}
}

static void k8s__pod(struct k8s *d, const struct cfg__node *root, struct cfg_k8s_pod *pod)
{
	const struct cfg__node *spec = F(root, "spec"), *status = F(root, "status");
	const struct cfg__node *containers = F(spec, "containers"), *conds = F(status, "conditions");
	size_t i, j, n = 0;

	pod->service_account = k8s__str(d, F(spec, "serviceAccountName"), NULL);
	if (!pod->service_account)
		pod->service_account = k8s__str(d, F(spec, "serviceAccount"), "default");
	pod->node_name = k8s__str(d, F(spec, "nodeName"), NULL);
	pod->phase = k8s__str(d, F(status, "phase"), NULL);
	pod->pod_ip = k8s__str(d, F(status, "podIP"), NULL);
	for (i = 0; conds && conds->type == CFG__SEQ && i < conds->n; i++) {
		const struct cfg__node *t = F(conds->v[i], "type"), *st = F(conds->v[i], "status");
		if (t && t->str && strcmp(t->str, "Ready") == 0 && st && st->str && strcmp(st->str, "True") == 0)
			pod->ready = true;
	}
	for (i = 0; containers && containers->type == CFG__SEQ && i < containers->n; i++) {
		const struct cfg__node *ports = F(containers->v[i], "ports");
		if (ports && ports->type == CFG__SEQ)
			n += ports->n;
	}
	if (!n)
		return;
	pod->ports = k8s__alloc(d, n, sizeof(*pod->ports));
	for (i = 0; pod->ports && i < containers->n; i++) {
		const struct cfg__node *ports = F(containers->v[i], "ports");
		for (j = 0; ports && ports->type == CFG__SEQ && j < ports->n; j++) {
			const struct cfg__node *name = F(ports->v[j], "name");
			int64_t cp = k8s__int(F(ports->v[j], "containerPort"), -1);
			if (!name || !name->str || cp < 1 || cp > 65535)
				continue;
			pod->ports[pod->n_ports].name = k8s__str(d, name, NULL);
			pod->ports[pod->n_ports].container_port = cp;
			pod->n_ports++;
		}
	}
}

/* Base64 text n (the API's encoding of Secret data) decoded into a new
 * NUL-terminated arena string; NULL and an error (at n) when it is not
 * base64 or holds a NUL. */
static char *k8s__base64(struct k8s *d, const struct cfg__node *n)
{
	size_t i, len = 0, pad = 0;
	unsigned char *out;
	char *in;
	int w;

	if (!n->len)
		return k8s__str(d, n, "");
	in = k8s__alloc(d, n->len + 1, 1);
	if (!in)
		return NULL;
	for (i = 0; i < n->len; i++) /* line breaks are allowed in YAML; drop them */
		if (n->str[i] != '\n' && n->str[i] != '\r' && n->str[i] != ' ')
			in[len++] = n->str[i];
	if (len % 4 || len > INT_MAX)
		goto bad;
	pad = len && in[len - 1] == '=' ? (len > 1 && in[len - 2] == '=' ? 2 : 1) : 0;
	out = k8s__alloc(d, len / 4 * 3 + 1, 1);
	if (!out)
		return NULL;
	w = EVP_DecodeBlock(out, (const unsigned char *)in, (int)len);
	if (w < 0 || (size_t)w < pad)
		goto bad;
	w -= (int)pad; /* EVP_DecodeBlock counts the padding as zero bytes */
	out[w] = '\0';
	if (memchr(out, '\0', (size_t)w))
		goto bad;
	return (char *)out;
bad:
	cfg__error(d->e, n, "not base64 text of a PEM file");
	return NULL;
}

/* The first of keys (istiod's order) in stringData, else data (base64). */
static char *k8s__secret_value(struct k8s *d, const struct cfg__node *root, const char *k1, const char *k2)
{
	const char *keys[2] = { k1, k2 };
	const struct cfg__node *n;
	size_t i, mark;
	char *v;

	for (i = 0; i < 2; i++) {
		n = F(F(root, "stringData"), keys[i]);
		if (n && n->str)
			return k8s__str(d, n, NULL);
		n = F(F(root, "data"), keys[i]);
		if (!n || !n->str)
			continue;
		mark = cfg__path_key(d->e, "data");
		cfg__path_key(d->e, keys[i]);
		v = k8s__base64(d, n);
		cfg__path_pop(d->e, mark);
		return v;
	}
	return NULL;
}

/* A Secret's TLS material (struct cfg_k8s_secret). */
static void k8s__secret(struct k8s *d, const struct cfg__node *root, struct cfg_k8s_secret *s)
{
	s->type = k8s__str(d, F(root, "type"), "Opaque");
	s->cert = k8s__secret_value(d, root, "tls.crt", "cert");
	s->key = k8s__secret_value(d, root, "tls.key", "key");
	s->cacert = k8s__secret_value(d, root, "ca.crt", "cacert");
}

void cfg__decode_k8s(struct cfg__ectx *e, struct cfg_object *o, const struct cfg__node *root)
{
	struct k8s d = { e, o->arena };

	switch (o->kind) {
	case CFG_K8S_SERVICE:
		k8s__service(&d, F(root, "spec"), &o->spec.svc);
		break;
	case CFG_K8S_ENDPOINT_SLICE:
		k8s__endpoint_slice(&d, o, root, &o->spec.eps);
		break;
	case CFG_K8S_POD:
		k8s__pod(&d, root, &o->spec.pod);
		break;
	case CFG_K8S_SECRET:
		k8s__secret(&d, root, &o->spec.secret);
		break;
	default:
		break;
	}
}
