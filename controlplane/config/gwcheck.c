/*
 * gwcheck.c - the checks between Gateways (warnings; they reject nothing).
 *
 * One Gateway alone is validated by decode.c.  What only shows when
 * Gateways meet on one gateway proxy is said here, as Istio says it:
 *  - istioctl analyze's ConflictingGateways (IST0145, pkg/config/analysis/
 *    analyzers/gateway/conflictinggateway.go): another Gateway with the same
 *    selector has a server on the same port with a host of this server and
 *    the same bind;
 *  - what istiod's mergeGateways (pilot/pkg/model/gateway.go) skips when it
 *    merges the Gateways of one proxy, in its order (oldest first): a TLS
 *    server whose host is already served on the same port and bind by an
 *    earlier TLS server ("duplicate host names"), and a server whose
 *    protocol cannot be merged with the plain-text server already on its
 *    port and bind (HTTP-family protocols merge; TCP with HTTP, or two TCP
 *    servers, do not).
 * Gateways are grouped by equal selectors (the same set of labels): which
 * proxies a selector picks is the generator's business, and analyze also
 * keys on the selector.  Ports are the servers' numbers (no translation
 * to a Service's target port).
 *  - istioctl analyze's gateway.SecretAnalyzer (secret.go): a credentialName
 *    whose Secret is not in the namespace of the gateway workload (the
 *    first Pod the selector matches; no such Pod, no check: analyze's
 *    "selector not found" is not repeated here, a directory of
 *    configuration often has no Pods), or a Secret without a certificate
 *    and key that parse; and, as istiod's CredentialsController.GetCaCert
 *    looks for it, a MUTUAL/OPTIONAL_MUTUAL credential with no CA (neither
 *    a Secret NAME-cacert nor ca.crt/cacert in NAME);
 *  - istioctl analyze's virtualservice.GatewayAnalyzer (gateways.go): a
 *    VirtualService naming a Gateway istiod cannot find (resolved as
 *    istiod's resolveGatewayName does: "ns/name", "./name", short, legacy
 *    "name.ns"), or one whose hosts match none of the VirtualService's.
 * objs is sorted by (kind, namespace, name), as the store's served view.
 * Pure: no I/O.
 */
#include "controlplane/config/config_int.h"

#include "common/pem.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define GWCHECK__MSG_MAX 1024
#define GWCHECK__HOST_MAX 320
#define GWCHECK__NAME_MAX 320

/* a server istiod keeps after merging, with its Gateway */
struct gwcheck__kept {
	const struct cfg_object *o;
	const struct cfg_gw_server *s;
	size_t idx;                  /* index in o's servers */
	bool tls_server;             /* gateway.IsTLSServer: tls block and not an HTTP protocol */
};

static int gwcheck__older_cmp(const void *x, const void *y)
{
	const struct cfg_object *a = *(const struct cfg_object *const *)x, *b = *(const struct cfg_object *const *)y;

	if (cfg_object_older(a, b))
		return -1;
	return cfg_object_older(b, a) ? 1 : 0;
}

/* protocol.Instance.IsHTTP */
static bool gwcheck__is_http(const char *p)
{
	static const char *const http[] = { "HTTP", "HTTP2", "HTTP_PROXY", "GRPC", "GRPC-WEB" };
	size_t i;

	for (i = 0; p && i < sizeof(http) / sizeof(http[0]); i++)
		if (!strcasecmp(p, http[i]))
			return true;
	return false;
}

/* Istio's canMergeProtocols(current, p) */
static bool gwcheck__can_merge(const char *current, const char *p)
{
	bool same = current && p && !strcasecmp(current, p);

	return (gwcheck__is_http(current) || same) && gwcheck__is_http(p);
}

static bool gwcheck__label_in(const struct cfg_labels *l, const struct cfg_kv *kv)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		if (!strcmp(l->v[i].key, kv->key))
			return !strcmp(l->v[i].value ? l->v[i].value : "", kv->value ? kv->value : "");
	return false;
}

/* equal selectors: the same set of labels, in any order */
static bool gwcheck__same_selector(const struct cfg_labels *a, const struct cfg_labels *b)
{
	size_t i;

	if (a->n != b->n)
		return false;
	for (i = 0; i < a->n; i++)
		if (!gwcheck__label_in(b, &a->v[i]))
			return false;
	return true;
}

static int gwcheck__kv_cmp(const void *x, const void *y)
{
	return strcmp(((const struct cfg_kv *)x)->key, ((const struct cfg_kv *)y)->key);
}

/* klabels.SelectorFromSet(selector).String(): "k=v,k2=v2" sorted by key */
static void gwcheck__selector_text(const struct cfg_labels *l, char *out, size_t cap)
{
	struct cfg_kv kv[32];
	size_t i, n = l->n < 32 ? l->n : 32, len = 0;

	out[0] = '\0';
	memcpy(kv, l->v, n * sizeof(*kv));
	qsort(kv, n, sizeof(*kv), gwcheck__kv_cmp);
	for (i = 0; i < n && len < cap; i++) {
		int w = snprintf(out + len, cap - len, "%s%s=%s", i ? "," : "", kv[i].key, kv[i].value ? kv[i].value : "");
		if (w < 0)
			break;
		len += (size_t)w;
	}
}

static const char *gwcheck__bind(const struct cfg_gw_server *s)
{
	return s->bind ? s->bind : "";
}

/* Istio's sanitizeServerHostNamespace for one host: "./h" is "NS/h",
 * "*" + "/h" is "h" (and "*" + "/" + "*" is "*"), others as written. */
static void gwcheck__sanitize(const char *h, const char *ns, char *out, size_t cap)
{
	const char *slash = strchr(h, '/');

	if (slash && slash - h == 1 && h[0] == '.')
		snprintf(out, cap, "%s/%s", ns, slash + 1);
	else if (slash && slash - h == 1 && h[0] == '*')
		snprintf(out, cap, "%s", slash + 1);
	else
		snprintf(out, cap, "%s", h);
}

/* Whether s has a host (sanitized) that k, an earlier TLS server on the
 * same port and bind, also has (Istio's CheckDuplicates); the first such
 * host goes to host. */
static bool gwcheck__dup_host(const struct cfg_object *o, const struct cfg_gw_server *s, const struct gwcheck__kept *k,
			      char *host, size_t cap)
{
	char other[GWCHECK__HOST_MAX];
	size_t i, j;

	for (i = 0; i < s->hosts.n; i++) {
		gwcheck__sanitize(s->hosts.v[i], o->ns, host, cap);
		for (j = 0; j < k->s->hosts.n; j++) {
			gwcheck__sanitize(k->s->hosts.v[j], k->o->ns, other, sizeof(other));
			if (!strcmp(host, other))
				return true;
		}
	}
	return false;
}

static void gwcheck__server_name(const struct cfg_gw_server *s, char *out, size_t cap)
{
	snprintf(out, cap, "%s.%u.%s", s->port_name ? s->port_name : "", s->port, s->protocol ? s->protocol : "");
}

/* mergeGateways over one selector group (objs, oldest first): a warning on
 * each server istiod would skip.  Returns the number found or -ENOMEM. */
static int gwcheck__merge(const struct cfg_object *const *objs, size_t n, cfg__gw_finding_fn fn, void *ctx)
{
	struct gwcheck__kept *kept;
	size_t n_kept = 0, cap = 0, g, i, k;
	int found = 0, rc = 0;

	for (g = 0; g < n; g++)
		cap += objs[g]->spec.gw.n_servers;
	kept = calloc(cap ? cap : 1, sizeof(*kept));
	if (!kept)
		return -ENOMEM;
	for (g = 0; g < n; g++) {
		const struct cfg_object *o = objs[g];

		for (i = 0; i < o->spec.gw.n_servers; i++) {
			const struct cfg_gw_server *s = &o->spec.gw.servers[i];
			const struct gwcheck__kept *clash = NULL;
			char msg[GWCHECK__MSG_MAX], field[48], host[GWCHECK__HOST_MAX], a[128], b[128];
			bool tls_server = s->has_tls && !gwcheck__is_http(s->protocol);

			snprintf(field, sizeof(field), "spec.servers[%zu]", i);
			/* Envoy rejects two filter chains with the same SNI match */
			for (k = 0; s->has_tls && k < n_kept && !clash; k++)
				if (kept[k].s->has_tls && kept[k].s->port == s->port &&
				    !strcmp(gwcheck__bind(kept[k].s), gwcheck__bind(s)) &&
				    gwcheck__dup_host(o, s, &kept[k], host, sizeof(host)))
					clash = &kept[k];
			if (clash) {
				snprintf(msg, sizeof(msg), "skipping server on gateway %s/%s, duplicate host names: [%s] "
					 "(already served on port %u by server %zu of Gateway %s/%s: istiod does not serve "
					 "this server)", o->ns, o->name, host, s->port, clash->idx,
					 clash->o->ns, clash->o->name);
				rc = fn(ctx, o, field, s->line, s->col, msg);
				if (rc < 0)
					goto out;
				found++;
				continue;
			}
			/* the plain-text server already on this port and bind */
			for (k = 0; k < n_kept && !clash; k++)
				if (!kept[k].tls_server && kept[k].s->port == s->port &&
				    !strcmp(gwcheck__bind(kept[k].s), gwcheck__bind(s)))
					clash = &kept[k];
			if (clash && !gwcheck__can_merge(clash->s->protocol, s->protocol)) {
				gwcheck__server_name(s, a, sizeof(a));
				gwcheck__server_name(clash->s, b, sizeof(b));
				snprintf(msg, sizeof(msg), "skipping server on gateway %s/%s port %s: conflict with existing "
					 "server %s of Gateway %s/%s (same port and bind, protocols %s and %s cannot be "
					 "merged: istiod does not serve this server)", o->ns, o->name, a, b,
					 clash->o->ns, clash->o->name, clash->s->protocol ? clash->s->protocol : "",
					 s->protocol ? s->protocol : "");
				rc = fn(ctx, o, field, s->line, s->col, msg);
				if (rc < 0)
					goto out;
				found++;
				continue;
			}
			kept[n_kept].o = o;
			kept[n_kept].s = s;
			kept[n_kept].idx = i;
			kept[n_kept].tls_server = tls_server;
			n_kept++;
		}
	}
	rc = found;
out:
	free(kept);
	return rc;
}

static bool gwcheck__share_host(const struct cfg_gw_server *a, const struct cfg_gw_server *b)
{
	size_t i, j;

	if (strcmp(gwcheck__bind(a), gwcheck__bind(b)) != 0)
		return false;
	for (i = 0; i < a->hosts.n; i++)
		for (j = 0; j < b->hosts.n; j++)
			if (!strcmp(a->hosts.v[i], b->hosts.v[j]))
				return true;
	return false;
}

/* ConflictingGateways: for each server of o, the other Gateways of its
 * group (objs) with a server on the same port, bind and a host as written. */
static int gwcheck__analyze(const struct cfg_object *o, const struct cfg_object *const *objs, size_t n,
			    cfg__gw_finding_fn fn, void *ctx)
{
	char names[GWCHECK__MSG_MAX / 2], hosts[GWCHECK__MSG_MAX / 4], sel[GWCHECK__MSG_MAX / 4];
	char msg[GWCHECK__MSG_MAX + GWCHECK__MSG_MAX / 4], field[48];
	size_t i, g, j, h;
	int found = 0;

	gwcheck__selector_text(&o->spec.gw.selector, sel, sizeof(sel));
	for (i = 0; i < o->spec.gw.n_servers; i++) {
		const struct cfg_gw_server *s = &o->spec.gw.servers[i];
		size_t len = 0, hl = 0;

		names[0] = '\0';
		/* objs is sorted oldest first; Istio sorts the names: by
		 * namespace/name here */
		for (g = 0; g < n; g++) {
			const struct cfg_object *b = objs[g];
			bool hit = false;

			if (b == o)
				continue;
			for (j = 0; j < b->spec.gw.n_servers && !hit; j++)
				hit = b->spec.gw.servers[j].port == s->port && gwcheck__share_host(s, &b->spec.gw.servers[j]);
			if (hit && len < sizeof(names)) {
				int w = snprintf(names + len, sizeof(names) - len, "%s%s/%s", len ? "," : "", b->ns, b->name);
				if (w > 0)
					len += (size_t)w;
			}
		}
		if (!len)
			continue;
		hosts[0] = '\0';
		for (h = 0; h < s->hosts.n && hl < sizeof(hosts); h++) {
			int w = snprintf(hosts + hl, sizeof(hosts) - hl, "%s%s", h ? "," : "", s->hosts.v[h]);
			if (w > 0)
				hl += (size_t)w;
		}
		snprintf(field, sizeof(field), "spec.servers[%zu]", i);
		snprintf(msg, sizeof(msg), "ConflictingGateways (IST0145): Conflict with gateways %s (workload selector "
			 "%s, port %u, hosts %s).", names, sel, s->port, hosts);
		if (fn(ctx, o, field, s->line, s->col, msg) < 0)
			return -ENOMEM;
		found++;
	}
	return found;
}

/* ---------------------------------------------------------------- credentialName */

static bool gwcheck__selects(const struct cfg_labels *sel, const struct cfg_labels *labels)
{
	size_t i;

	for (i = 0; i < sel->n; i++)
		if (!gwcheck__label_in(labels, &sel->v[i]))
			return false;
	return true;
}

/* The object kind ns/name of objs, sorted by (kind, ns, name) as the
 * store's served view is: a binary search. */
static const struct cfg_object *gwcheck__find(const struct cfg_object *const *objs, size_t n, enum cfg_kind kind,
					      const char *ns, const char *name)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const struct cfg_object *o = objs[mid];
		int c = o->kind != kind ? ((int)o->kind < (int)kind ? -1 : 1) : strcmp(o->ns, ns);

		if (!c)
			c = strcmp(o->name, name);
		if (!c)
			return o;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

/* istiod's ExtractCertInfo + ValidateCertificate: a key and a certificate
 * that parses. */
static bool gwcheck__secret_valid(const struct cfg_k8s_secret *sec)
{
	STACK_OF(X509) *certs = NULL;
	bool ok;

	if (!sec->cert || !sec->key || !sec->cert[0] || !sec->key[0])
		return false;
	ok = mesh_pem_read_certs(sec->cert, strlen(sec->cert), &certs) == 0;
	sk_X509_pop_free(certs, X509_free);
	return ok;
}

/* The SecretAnalyzer over Gateway o, and the CA of a MUTUAL credential.
 * Returns the number of findings or -ENOMEM. */
static int gwcheck__secrets(const struct cfg_object *o, const struct cfg_object *const *objs, size_t n,
			    cfg__gw_finding_fn fn, void *ctx)
{
	const struct cfg_object *pod = NULL;
	char msg[2 * GWCHECK__MSG_MAX], field[96], ns[GWCHECK__NAME_MAX], name[GWCHECK__NAME_MAX];
	size_t i, c;
	int found = 0;

	/* an empty selector matches every Pod: no namespace to say */
	if (!o->spec.gw.selector.n)
		return 0;
	for (i = 0; i < n && !pod; i++)
		if (objs[i]->kind == CFG_K8S_POD && gwcheck__selects(&o->spec.gw.selector, &objs[i]->labels))
			pod = objs[i];
	if (!pod)
		return 0;
	for (i = 0; i < o->spec.gw.n_servers; i++) {
		const struct cfg_gw_server *s = &o->spec.gw.servers[i];
		const struct cfg_gw_tls *t = &s->tls;
		size_t n_cn = t->credential_names.n ? t->credential_names.n : 1;

		if (!s->has_tls)
			continue;
		for (c = 0; c < n_cn; c++) {
			const char *cn = t->credential_names.n ? t->credential_names.v[c] : t->credential_name;
			const char *slash;
			const struct cfg_object *sec, *ca;
			bool mutual = t->mode == CFG_GW_TLS_MUTUAL || t->mode == CFG_GW_TLS_OPTIONAL_MUTUAL;

			/* other credential kinds (kubernetes-gateway://, builtin://) are not Secrets by name */
			if (!cn || !cn[0] || strstr(cn, "://"))
				continue;
			if (t->credential_names.n)
				snprintf(field, sizeof(field), "spec.servers[%zu].tls.credentialNames[%zu]", i, c);
			else
				snprintf(field, sizeof(field), "spec.servers[%zu].tls.credentialName", i);
			/* resource.NewShortOrFullName: "ns/name" or a name in the workload's namespace */
			slash = strchr(cn, '/');
			snprintf(ns, sizeof(ns), "%.*s", slash ? (int)(slash - cn) : (int)strlen(pod->ns),
				 slash ? cn : pod->ns);
			snprintf(name, sizeof(name), "%s", slash ? slash + 1 : cn);
			sec = gwcheck__find(objs, n, CFG_K8S_SECRET, ns, name);
			if (!sec) {
				snprintf(msg, sizeof(msg), "ReferencedResourceNotFound (IST0101): Referenced credentialName "
					 "not found: \"%s\" (no Secret %s/%s: the namespace of gateway workload Pod %s/%s)",
					 cn, ns, name, pod->ns, pod->name);
			} else if (!gwcheck__secret_valid(&sec->spec.secret)) {
				snprintf(msg, sizeof(msg), "InvalidGatewayCredential (IST0161): The credential referenced by "
					 "the Gateway %s in namespace %s is invalid, which can cause the traffic not to work "
					 "as expected. (Secret %s/%s has no certificate and key that parse)", o->name, ns,
					 ns, name);
			} else if (mutual) {
				char ca_name[GWCHECK__NAME_MAX + 8];

				/* GetCaCert: NAME-cacert's CA, else NAME's own */
				snprintf(ca_name, sizeof(ca_name), "%s-cacert", name);
				ca = gwcheck__find(objs, n, CFG_K8S_SECRET, ns, ca_name);
				if (!ca)
					ca = sec;
				if (ca->spec.secret.cacert && ca->spec.secret.cacert[0])
					continue;
				snprintf(msg, sizeof(msg), "%s TLS with credentialName \"%s\": no CA certificate to verify "
					 "clients with (istiod takes ca.crt or cacert from Secret %s/%s, else from %s/%s; "
					 "there is none: client certificates cannot be verified)",
					 t->mode == CFG_GW_TLS_MUTUAL ? "MUTUAL" : "OPTIONAL_MUTUAL", cn, ns, ca_name, ns,
					 name);
			} else {
				continue;
			}
			if (fn(ctx, o, field, s->line, s->col, msg) < 0)
				return -ENOMEM;
			found++;
		}
	}
	return found;
}

/* ---------------------------------------------------------------- VirtualService gateways */

/* istiod's resolveGatewayName (pilot/pkg/model/config.go): "ns/name",
 * "./name", a short name in the VirtualService's namespace, or the legacy
 * "name.ns[.svc...]"; into ns and name. */
static void gwcheck__resolve_gw(const char *g, const char *vs_ns, char *ns, char *name, size_t cap)
{
	const char *slash = strchr(g, '/'), *dot = strchr(g, '.');

	if (slash) {
		bool here = slash - g == 1 && g[0] == '.';
		snprintf(ns, cap, "%.*s", here ? (int)strlen(vs_ns) : (int)(slash - g), here ? vs_ns : g);
		snprintf(name, cap, "%s", slash + 1);
	} else if (!dot) {
		snprintf(ns, cap, "%s", vs_ns);
		snprintf(name, cap, "%s", g);
	} else {
		const char *end = strchr(dot + 1, '.');
		snprintf(ns, cap, "%.*s", end ? (int)(end - dot - 1) : (int)strlen(dot + 1), dot + 1);
		snprintf(name, cap, "%.*s", (int)(dot - g), g);
	}
}

/* analyze's vsHostInGateway: a host of the Gateway visible from the
 * VirtualService's namespace (sanitized, then host.NamesForNamespace)
 * that matches a host of the VirtualService either way. */
static bool gwcheck__vs_host_in_gateway(const struct cfg_object *gw, const struct cfg_object *vs)
{
	char h[GWCHECK__HOST_MAX];
	size_t i, j, k;

	for (i = 0; i < gw->spec.gw.n_servers; i++) {
		const struct cfg_gw_server *s = &gw->spec.gw.servers[i];

		for (j = 0; j < s->hosts.n; j++) {
			const char *slash, *gh;

			gwcheck__sanitize(s->hosts.v[j], gw->ns, h, sizeof(h));
			slash = strchr(h, '/');
			if (slash && !((slash - h == 1 && h[0] == '*') ||
				       ((size_t)(slash - h) == strlen(vs->ns) && !strncmp(h, vs->ns, strlen(vs->ns)))))
				continue;
			gh = slash ? slash + 1 : h;
			for (k = 0; k < vs->spec.vs.hosts.n; k++)
				if (cfg_host_covers(gh, vs->spec.vs.hosts.v[k], NULL) ||
				    cfg_host_covers(vs->spec.vs.hosts.v[k], gh, NULL))
					return true;
		}
	}
	return false;
}

/* istioctl analyze's virtualservice.GatewayAnalyzer over vs: a gateway it
 * names that istiod cannot find (IST0101), or whose hosts match none of
 * the VirtualService's (IST0132: the routes reach no gateway). */
static int gwcheck__vs_gateways(const struct cfg_object *vs, const struct cfg_object *const *objs, size_t n,
				cfg__gw_finding_fn fn, void *ctx)
{
	char msg[2 * GWCHECK__MSG_MAX], field[48], ns[GWCHECK__NAME_MAX], name[GWCHECK__NAME_MAX];
	char hosts[GWCHECK__MSG_MAX / 2];
	size_t i, len = 0;
	int found = 0;

	hosts[0] = '\0';
	for (i = 0; i < vs->spec.vs.hosts.n && len < sizeof(hosts); i++) {
		int w = snprintf(hosts + len, sizeof(hosts) - len, "%s%s", i ? " " : "", vs->spec.vs.hosts.v[i]);
		if (w > 0)
			len += (size_t)w;
	}
	for (i = 0; i < vs->spec.vs.gateways.n; i++) {
		const char *g = vs->spec.vs.gateways.v[i];
		const struct cfg_object *gw;

		/* "mesh", and the gateways istiod makes from Gateway API objects */
		if (!strcmp(g, "mesh") || strstr(g, "-istio-autogenerated-k8s-gateway"))
			continue;
		gwcheck__resolve_gw(g, vs->ns, ns, name, sizeof(ns));
		gw = gwcheck__find(objs, n, CFG_GATEWAY, ns, name);
		snprintf(field, sizeof(field), "spec.gateways[%zu]", i);
		if (!gw)
			snprintf(msg, sizeof(msg), "ReferencedResourceNotFound (IST0101): Referenced gateway not found: "
				 "\"%s\" (no Gateway %s/%s: these routes reach no gateway)", g, ns, name);
		else if (!gwcheck__vs_host_in_gateway(gw, vs))
			snprintf(msg, sizeof(msg), "VirtualServiceHostNotFoundInGateway (IST0132): one or more host [%s] "
				 "defined in VirtualService %s/%s not found in Gateway %s/%s.", hosts, vs->ns, vs->name,
				 ns, name);
		else
			continue;
		if (fn(ctx, vs, field, 0, 0, msg) < 0)
			return -ENOMEM;
		found++;
	}
	return found;
}

static int gwcheck__name_cmp(const void *x, const void *y)
{
	const struct cfg_object *a = *(const struct cfg_object *const *)x, *b = *(const struct cfg_object *const *)y;
	int c = strcmp(a->ns, b->ns);

	return c ? c : strcmp(a->name, b->name);
}

int cfg__gateway_checks(const struct cfg_object *const *objs, size_t n, cfg__gw_finding_fn fn, void *ctx)
{
	const struct cfg_object **gw = NULL, **group = NULL, **byname = NULL;
	size_t n_gw = 0, i, j, n_group;
	bool *done = NULL;
	int found = 0, rc = 0;

	for (i = 0; i < n; i++) {
		n_gw += objs[i]->kind == CFG_GATEWAY;
		if (objs[i]->kind == CFG_VIRTUAL_SERVICE && objs[i]->spec.vs.gateways.n) {
			rc = gwcheck__vs_gateways(objs[i], objs, n, fn, ctx);
			if (rc < 0)
				return rc;
			found += rc;
		}
	}
	if (n_gw < 1)
		return found;
	gw = calloc(n_gw, sizeof(*gw));
	group = calloc(n_gw, sizeof(*group));
	byname = calloc(n_gw, sizeof(*byname));
	done = calloc(n_gw, sizeof(*done));
	if (!gw || !group || !byname || !done) {
		rc = -ENOMEM;
		goto out;
	}
	for (i = 0, j = 0; i < n; i++)
		if (objs[i]->kind == CFG_GATEWAY)
			gw[j++] = objs[i];
	/* mergeGateways sees a proxy's Gateways oldest first */
	qsort(gw, n_gw, sizeof(*gw), gwcheck__older_cmp);
	for (i = 0; i < n_gw; i++) {
		if (done[i])
			continue;
		n_group = 0;
		for (j = i; j < n_gw; j++)
			if (!done[j] && gwcheck__same_selector(&gw[i]->spec.gw.selector, &gw[j]->spec.gw.selector)) {
				done[j] = true;
				group[n_group++] = gw[j];
			}
		rc = gwcheck__merge(group, n_group, fn, ctx);
		if (rc < 0)
			goto out;
		found += rc;
		if (n_group < 2)
			continue;
		memcpy(byname, group, n_group * sizeof(*byname));
		qsort(byname, n_group, sizeof(*byname), gwcheck__name_cmp);
		for (j = 0; j < n_group; j++) {
			rc = gwcheck__analyze(byname[j], byname, n_group, fn, ctx);
			if (rc < 0)
				goto out;
			found += rc;
		}
	}
	for (i = 0; i < n_gw; i++) {
		rc = gwcheck__secrets(gw[i], objs, n, fn, ctx);
		if (rc < 0)
			goto out;
		found += rc;
	}
	rc = found;
out:
	free(gw);
	free(group);
	free(byname);
	free(done);
	return rc;
}
