/*
 * http.c - meshd's debug HTTP endpoint (see debug.h).
 *
 * libmicrohttpd serves it on a small pool of epoll threads of its own
 * (DEBUG_THREADS): an idle or half-sent connection costs a socket and a
 * buffer, never a thread, so clients that connect and stall cannot starve
 * /ready and /metrics (a failing readiness probe gets meshd restarted).
 * Against them: a read deadline (DEBUG_CONNECTION_TIMEOUT_S of silence
 * closes a connection, headers half sent or not), a cap per peer address
 * (DEBUG_MAX_PER_IP; probes come from the kubelet's address, scrapes from
 * Prometheus's) and a total cap (DEBUG_MAX_CONNECTIONS) high enough that
 * many addresses together do not reach it before their deadlines do.  We bind the listening socket ourselves so
 * a busy port reports -EADDRINUSE and port 0 reports the port the kernel
 * chose, then hand it to libmicrohttpd, which closes it at stop.
 *
 * Each request builds its whole body in a mesh_buf capped at
 * DEBUG_MAX_RESPONSE_BYTES from immutable snapshots (config, model) or the
 * xDS server's locked debug calls, then hands the bytes to libmicrohttpd.
 * Every response carries a Content-Type; errors are JSON {"error": "..."}.
 */
#include "controlplane/debug/debug.h"
#include "controlplane/debug/telemetryz.h"

#include "common/buf.h"
#include "common/err.h"
#include "common/hash.h"
#include "common/json.h"
#include "common/log.h"
#include "common/net.h"
#include "controlplane/config/config.h"
#include "controlplane/config/store.h"
#include "controlplane/metrics/metrics.h"
#include "controlplane/gen/gen.h"
#include "controlplane/model/model.h"
#include "controlplane/xds/server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define DEBUG_LOG "debug"

/* Limits. */
#define DEBUG_MAX_ERROR_BYTES 4096          /* a JSON error body */
#define DEBUG_MAX_CONNECTIONS 2048u          /* concurrent connections, all peers */
#define DEBUG_MAX_PER_IP 16u                 /* concurrent connections from one address */
/* silence after which a connection is closed: the read deadline of a request
 * whose headers stall (libmicrohttpd's timeout restarts on each byte read, so a
 * client trickling one byte at a time is held to DEBUG_MAX_PER_IP per address) */
#define DEBUG_CONNECTION_TIMEOUT_S 5u
#define DEBUG_THREADS 2u                     /* epoll threads serving every connection */
#define DEBUG_LISTEN_BACKLOG 1024
#define DEBUG_MAX_ERROR_TEXT 4096            /* one cfg_error_format() line */

#define DEBUG_CT_JSON "application/json"
#define DEBUG_CT_TEXT "text/plain; charset=utf-8"
#define DEBUG_CT_METRICS "text/plain; version=0.0.4; charset=utf-8"
#define DEBUG_ALLOW "GET, HEAD"

struct debug_server {
	struct MHD_Daemon *mhd;
	struct debug_server_config cfg; /* addr and version point at the copies below */
	char *addr;
	char *version;
	size_t max_response;
	int port;
};

/* What a route handler produces. */
struct debug__reply {
	unsigned int status;
	const char *content_type;
	struct mesh_buf body;
};

/* ---------------------------------------------------------------- replies */

/* Replace the body by {"error": "<message>"} with the given status. */
static void debug__error(struct debug__reply *r, unsigned int status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void debug__error(struct debug__reply *r, unsigned int status, const char *fmt, ...)
{
	char msg[DEBUG_MAX_ERROR_BYTES / 2];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	mesh_buf_cleanup(&r->body);
	mesh_buf_init(&r->body, DEBUG_MAX_ERROR_BYTES);
	mesh_buf_puts(&r->body, "{\"error\":");
	json_put_string(&r->body, msg);
	mesh_buf_puts(&r->body, "}\n");
	r->status = status;
	r->content_type = DEBUG_CT_JSON;
}

static void debug__put_u64(struct mesh_buf *b, uint64_t v)
{
	mesh_buf_printf(b, "%llu", (unsigned long long)v);
}

static void debug__put_labels(struct mesh_buf *b, const struct cfg_labels *l)
{
	size_t i;

	mesh_buf_putc(b, '{');
	for (i = 0; l && i < l->n; i++) {
		if (i)
			mesh_buf_putc(b, ',');
		json_put_string(b, l->v[i].key);
		mesh_buf_putc(b, ':');
		json_put_string(b, l->v[i].value);
	}
	mesh_buf_putc(b, '}');
}

/* ---------------------------------------------------------------- routes */

static void debug__ready(struct debug_server *d, struct MHD_Connection *c, struct debug__reply *r)
{
	bool ready = d->cfg.ready ? d->cfg.ready(d->cfg.ctx) : false;

	(void)c;
	r->status = ready ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE;
	r->content_type = DEBUG_CT_TEXT;
	mesh_buf_puts(&r->body, ready ? "ready" : "not ready");
}

static void debug__version(struct debug_server *d, struct MHD_Connection *c, struct debug__reply *r)
{
	(void)c;
	mesh_buf_puts(&r->body, "{\"version\":");
	json_put_string(&r->body, d->version ? d->version : "unknown");
	mesh_buf_puts(&r->body, ",\"component\":\"meshd\"}\n");
}

static void debug__metrics(struct debug_server *d, struct MHD_Connection *c, struct debug__reply *r)
{
	struct cfg_snapshot *snap;
	int k;

	(void)c;
	/* the per-kind object gauge is a plain "set": refresh it from the
	 * served snapshot so a scrape never shows a stale count */
	snap = d->cfg.config_snapshot ? d->cfg.config_snapshot(d->cfg.ctx) : NULL;
	if (snap) {
		for (k = 0; k < CFG_KIND_COUNT; k++)
			metrics_config_objects(k, snap->n_objects[k]);
		cfg_snapshot_unref(snap);
	}
	r->content_type = DEBUG_CT_METRICS;
	metrics_render(&r->body);
}

/* Past a JSON string starting at p (the opening quote); NULL if unterminated. */
static const char *debug__json_skip_string(const char *p)
{
	for (p++; *p; p++) {
		if (*p == '\\' && p[1])
			p++;
		else if (*p == '"')
			return p + 1;
	}
	return NULL;
}

/* Past one JSON value starting at p (compact JSON, as the parser writes it);
 * NULL if it does not end. */
static const char *debug__json_skip_value(const char *p)
{
	int depth = 0;

	for (;;) {
		if (*p == '"') {
			p = debug__json_skip_string(p);
			if (!p || depth == 0)
				return p;
			continue;
		}
		if (!*p)
			return NULL;
		if (*p == '{' || *p == '[') {
			depth++;
		} else if (*p == '}' || *p == ']') {
			if (depth == 0)
				return p; /* a scalar ending its object */
			if (--depth == 0)
				return p + 1;
		} else if (*p == ',' && depth == 0) {
			return p;
		}
		p++;
	}
}

/*
 * The value of the top-level member key of the JSON object in doc:
 * *val and *len point into doc.  0, or -ENOENT when doc is not an object
 * or has no such member.
 */
static int debug__json_member(const char *doc, const char *key, const char **val, size_t *len)
{
	size_t kl = strlen(key);
	const char *p = doc, *k, *v;

	if (*p++ != '{')
		return -ENOENT;
	while (*p == '"') {
		k = p + 1;
		p = debug__json_skip_string(p);
		if (!p || *p != ':')
			return -ENOENT;
		v = ++p;
		p = debug__json_skip_value(p);
		if (!p)
			return -ENOENT;
		if ((size_t)(p - v) > 0 && (size_t)(v - 2 - k) == kl && memcmp(k, key, kl) == 0) {
			*val = v;
			*len = (size_t)(p - v);
			return 0;
		}
		if (*p == ',')
			p++;
	}
	return -ENOENT;
}

static void debug__configz_object(struct mesh_buf *b, const struct cfg_object *o)
{
	const char *doc, *spec;
	size_t spec_len;
	char hex[17];

	mesh_hash_hex(o->hash, hex);
	mesh_buf_puts(b, "{\"kind\":");
	json_put_string(b, cfg_kind_name(o->kind));
	mesh_buf_puts(b, ",\"apiVersion\":");
	json_put_string(b, o->api_version);
	mesh_buf_puts(b, ",\"namespace\":");
	json_put_string(b, o->ns);
	mesh_buf_puts(b, ",\"name\":");
	json_put_string(b, o->name);
	mesh_buf_puts(b, ",\"origin\":");
	json_put_string(b, o->origin);
	mesh_buf_printf(b, ",\"line\":%d,\"version\":\"%s\",\"spec\":", o->line, hex);
	/*
	 * o->json is the whole document (apiVersion, kind, metadata, spec), as
	 * the parser made it.  "spec" once held all of it, so readers found the
	 * spec at spec.spec; it now holds the document's spec alone (null for
	 * kinds without one, such as EndpointSlice) and the whole document is
	 * the added field "object".
	 */
	doc = o->json && o->json[0] ? o->json : "null";
	if (debug__json_member(doc, "spec", &spec, &spec_len) == 0)
		mesh_buf_append(b, spec, spec_len);
	else
		mesh_buf_puts(b, "null");
	mesh_buf_puts(b, ",\"object\":");
	mesh_buf_puts(b, doc);
	mesh_buf_putc(b, '}');
}

static void debug__configz_error(struct mesh_buf *b, const struct cfg_error *e)
{
	char text[DEBUG_MAX_ERROR_TEXT];
	bool known = e->kind >= 0 && e->kind < CFG_KIND_COUNT;

	text[0] = '\0';
	cfg_error_format(e, text, sizeof(text));
	mesh_buf_puts(b, "{\"origin\":");
	json_put_string(b, e->origin);
	mesh_buf_printf(b, ",\"line\":%d,\"column\":%d,\"kind\":", e->line, e->column);
	json_put_string(b, known ? cfg_kind_name((enum cfg_kind)e->kind) : NULL);
	mesh_buf_puts(b, ",\"namespace\":");
	json_put_string(b, e->ns);
	mesh_buf_puts(b, ",\"name\":");
	json_put_string(b, e->name);
	mesh_buf_puts(b, ",\"field\":");
	json_put_string(b, e->field);
	mesh_buf_puts(b, ",\"message\":");
	json_put_string(b, e->message);
	mesh_buf_puts(b, ",\"text\":");
	json_put_string(b, text);
	mesh_buf_putc(b, '}');
}

/* gen_profile_check findings go beside the validation errors. */
struct debug__findings {
	struct mesh_buf *b;
	int only;
	bool *first;
};

static void debug__configz_finding(void *ctx, const struct cfg_error *e)
{
	struct debug__findings *f = ctx;

	if (f->only >= 0 && e->kind != f->only)
		return;
	if (!*f->first)
		mesh_buf_putc(f->b, ',');
	*f->first = false;
	debug__configz_error(f->b, e);
}

static void debug__configz(struct debug_server *d, struct MHD_Connection *c, struct debug__reply *r)
{
	struct cfg_snapshot *snap = NULL;
	const char *kind_arg;
	struct mesh_buf *b = &r->body;
	int only = -1, k;
	bool first;
	size_t i;

	kind_arg = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "kind");
	if (kind_arg && kind_arg[0]) {
		only = cfg_kind_from_name(kind_arg);
		if (only < 0) {
			debug__error(r, MHD_HTTP_BAD_REQUEST, "unknown kind \"%.200s\"", kind_arg);
			goto out;
		}
	}
	snap = d->cfg.config_snapshot ? d->cfg.config_snapshot(d->cfg.ctx) : NULL;
	if (!snap) {
		mesh_buf_puts(b, "{\"generation\":0,\"objects\":[],\"errors\":[]}\n");
		goto out;
	}
	mesh_buf_puts(b, "{\"generation\":");
	debug__put_u64(b, snap->generation);
	mesh_buf_puts(b, ",\"objects\":[");
	first = true;
	for (k = 0; k < CFG_KIND_COUNT && !b->err; k++) {
		if (only >= 0 && k != only)
			continue;
		for (i = 0; i < snap->n_objects[k] && !b->err; i++) {
			if (!first)
				mesh_buf_putc(b, ',');
			first = false;
			debug__configz_object(b, snap->objects[k][i]);
		}
	}
	mesh_buf_puts(b, "],\"errors\":[");
	first = true;
	for (i = 0; i < snap->n_errors && !b->err; i++) {
		if (only >= 0 && snap->errors[i].kind != only)
			continue;
		if (!first)
			mesh_buf_putc(b, ',');
		first = false;
		debug__configz_error(b, &snap->errors[i]);
	}
	/* what proxyless clients do not get, one warning per object, computed
	 * from the served model (so once per config generation) */
	if (d->cfg.model) {
		struct model *m = d->cfg.model(d->cfg.ctx);
		struct debug__findings f = { b, only, &first };

		if (m)
			gen_profile_check(m, &gen_profile_proxyless, debug__configz_finding, &f);
		model_unref(m);
	}
	mesh_buf_puts(b, "]}\n");
out:
	cfg_snapshot_unref(snap);
}

static void debug__syncz(struct debug_server *d, struct MHD_Connection *c, struct debug__reply *r)
{
	int rc;

	(void)c;
	if (!d->cfg.xds) {
		mesh_buf_puts(&r->body, "[]\n");
		return;
	}
	rc = xds_server_syncz(d->cfg.xds, &r->body);
	/* a full body buffer is reported by the dispatcher */
	if (rc < 0 && !r->body.err)
		debug__error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "syncz: %s", mesh_strerror(rc));
}

static void debug__config_dump(struct debug_server *d, struct MHD_Connection *c, struct debug__reply *r)
{
	const char *id;
	int rc;

	id = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "proxyID");
	if (!id || !id[0]) {
		debug__error(r, MHD_HTTP_BAD_REQUEST, "query parameter proxyID is required");
		return;
	}
	if (!d->cfg.xds) {
		debug__error(r, MHD_HTTP_NOT_FOUND, "proxy \"%.300s\" is not connected", id);
		return;
	}
	rc = xds_server_config_dump(d->cfg.xds, id, &r->body);
	if (rc == -ENOENT)
		debug__error(r, MHD_HTTP_NOT_FOUND,
			     "proxy \"%.300s\" is not connected (give its node id, or its POD.NAMESPACE; "
			     "/debug/syncz lists the connected proxies)", id);
	else if (rc == -ENOTUNIQ)
		debug__error(r, MHD_HTTP_CONFLICT, "several connected proxies are named \"%.300s\": give the full node id "
			     "(/debug/syncz lists them)", id);
	else if (rc < 0 && !r->body.err)
		debug__error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "config_dump: %s", mesh_strerror(rc));
}

static const char *debug__resolution_name(enum cfg_resolution res)
{
	switch (res) {
	case CFG_RESOLUTION_NONE: return "NONE";
	case CFG_RESOLUTION_STATIC: return "STATIC";
	case CFG_RESOLUTION_DNS: return "DNS";
	case CFG_RESOLUTION_DNS_ROUND_ROBIN: return "DNS_ROUND_ROBIN";
	case CFG_RESOLUTION_DYNAMIC_DNS: return "DYNAMIC_DNS";
	}
	return "UNKNOWN";
}

static void debug__registry_service(struct mesh_buf *b, const struct model_service *s)
{
	size_t i, j;

	mesh_buf_puts(b, "{\"hostname\":");
	json_put_string(b, s->hostname);
	mesh_buf_puts(b, ",\"namespace\":");
	json_put_string(b, s->ns);
	mesh_buf_puts(b, ",\"resolution\":");
	json_put_string(b, debug__resolution_name(s->resolution));
	mesh_buf_printf(b, ",\"meshExternal\":%s,\"ports\":[", s->mesh_external ? "true" : "false");
	for (i = 0; i < s->n_ports; i++) {
		const struct model_port *p = &s->ports[i];

		if (i)
			mesh_buf_putc(b, ',');
		mesh_buf_printf(b, "{\"number\":%u,\"name\":", (unsigned)p->number);
		json_put_string(b, p->name);
		mesh_buf_puts(b, ",\"protocol\":");
		json_put_string(b, p->protocol);
		mesh_buf_printf(b, ",\"targetPort\":%u}", (unsigned)(p->target_port ? p->target_port : p->number));
	}
	mesh_buf_puts(b, "],\"endpoints\":[");
	for (i = 0; i < s->n_endpoints && !b->err; i++) {
		const struct model_endpoint *e = &s->endpoints[i];

		if (i)
			mesh_buf_putc(b, ',');
		mesh_buf_puts(b, "{\"address\":");
		json_put_string(b, e->address);
		/* endpoint port per service port, keyed by the port's name
		 * (its number when it has none) */
		mesh_buf_puts(b, ",\"ports\":{");
		for (j = 0; j < s->n_ports; j++) {
			const struct model_port *p = &s->ports[j];

			if (j)
				mesh_buf_putc(b, ',');
			if (p->name && p->name[0])
				json_put_string(b, p->name);
			else
				mesh_buf_printf(b, "\"%u\"", (unsigned)p->number);
			mesh_buf_printf(b, ":%u", (unsigned)(e->ports ? e->ports[j] : p->number));
		}
		mesh_buf_puts(b, "},\"labels\":");
		debug__put_labels(b, e->labels);
		mesh_buf_puts(b, ",\"locality\":");
		json_put_string(b, e->locality ? e->locality : "");
		mesh_buf_puts(b, ",\"network\":");
		json_put_string(b, e->network);
		mesh_buf_printf(b, ",\"weight\":%u,\"ready\":%s,\"serviceAccount\":", (unsigned)e->weight,
				e->not_ready ? "false" : "true");
		json_put_string(b, e->service_account);
		mesh_buf_putc(b, '}');
	}
	mesh_buf_puts(b, "]}");
}

static void debug__registryz(struct debug_server *d, struct MHD_Connection *c, struct debug__reply *r)
{
	struct model *m;
	size_t i;

	(void)c;
	m = d->cfg.model ? d->cfg.model(d->cfg.ctx) : NULL;
	mesh_buf_putc(&r->body, '[');
	for (i = 0; m && i < m->n_services && !r->body.err; i++) {
		if (i)
			mesh_buf_putc(&r->body, ',');
		debug__registry_service(&r->body, &m->services[i]);
	}
	mesh_buf_puts(&r->body, "]\n");
	model_unref(m);
}

/* istiod's /debug/mesh: the mesh config the served model was built with
 * (Istio's defaults before the first build or without --mesh-config). */
static void debug__mesh(struct debug_server *d, struct MHD_Connection *c, struct debug__reply *r)
{
	struct model *m;
	struct mesh_config *def = NULL;

	(void)c;
	m = d->cfg.model ? d->cfg.model(d->cfg.ctx) : NULL;
	if (!m || !m->mesh)
		def = meshcfg_defaults();
	if (m && m->mesh)
		meshcfg_json(&r->body, m->mesh);
	else if (def)
		meshcfg_json(&r->body, def);
	else
		r->body.err = -ENOMEM;
	mesh_buf_putc(&r->body, '\n');
	meshcfg_unref(def);
	model_unref(m);
}

/* The effective Telemetry of one workload (telemetryz.c). */
static void debug__telemetryz(struct debug_server *d, struct MHD_Connection *c, struct debug__reply *r)
{
	const char *id = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "proxyID");
	const char *ns = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "namespace");
	const char *labels = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "labels");
	const char *node_ns = NULL, *node_labels = NULL;
	struct mesh_buf nsb, lb;
	char err[300];
	struct model *m;
	int rc;

	mesh_buf_init(&nsb, 0);
	mesh_buf_init(&lb, 0);
	m = d->cfg.model ? d->cfg.model(d->cfg.ctx) : NULL;
	if (!m) {
		debug__error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "no model built yet");
		return;
	}
	if (id && *id && d->cfg.xds) {
		/* a connected proxy: the namespace and labels its Node says */
		mesh_buf_init(&nsb, DEBUG_TELEMETRYZ_LABELS_MAX);
		mesh_buf_init(&lb, 2 * DEBUG_TELEMETRYZ_LABELS_MAX);
		rc = xds_server_proxy_workload(d->cfg.xds, id, &nsb, &lb);
		if (rc == -ENOTUNIQ) {
			debug__error(r, MHD_HTTP_CONFLICT, "several connected proxies are named \"%.300s\": give the "
				     "full node id (/debug/syncz lists them)", id);
			goto out;
		}
		if (rc == 0) {
			node_ns = (const char *)nsb.data;
			node_labels = (const char *)lb.data;
		}
	}
	rc = debug_telemetryz(m, id, node_ns, node_labels, ns, labels, &r->body, err, sizeof(err));
	if (rc == -EINVAL)
		debug__error(r, MHD_HTTP_BAD_REQUEST, "%s", err);
	else if (rc < 0 && !r->body.err)
		debug__error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "telemetryz: %s", mesh_strerror(rc));
out:
	mesh_buf_cleanup(&nsb);
	mesh_buf_cleanup(&lb);
	model_unref(m);
}

typedef void (*debug__route_fn)(struct debug_server *d, struct MHD_Connection *c, struct debug__reply *r);

static void debug__index(struct debug_server *d, struct MHD_Connection *c, struct debug__reply *r);

/* /debug/... paths answer localhost only (see debug__peer_is_local). */
#define DEBUG_PREFIX "/debug"

static const struct {
	const char *path;
	debug__route_fn fn;
	const char *what;       /* listed by /debug */
} debug__routes[] = {
	{ "/ready", debug__ready, NULL },
	{ "/version", debug__version, NULL },
	{ "/metrics", debug__metrics, NULL },
	{ "/debug", debug__index, "this list" },
	{ "/debug/configz", debug__configz,
	  "every config object (spec, and the whole document as object) and every validation error; ?kind=KIND" },
	{ "/debug/syncz", debug__syncz,
	  "per proxy and xDS type: sent and acked version, nonce, SYNCED / STALE / NOT SENT / ERROR" },
	{ "/debug/config_dump", debug__config_dump,
	  "what one proxy was sent, as Envoy's admin config dump; ?proxyID=ID" },
	{ "/debug/registryz", debug__registryz, "services, ports and endpoints" },
	{ "/debug/mesh", debug__mesh, "the mesh config in force (MeshConfig, --mesh-config), defaults filled in" },
	{ "/debug/telemetryz", debug__telemetryz,
	  "the effective Telemetry (API) of one workload: ?proxyID=ID, or ?namespace=NS&labels=k=v,..." },
};

static void debug__index(struct debug_server *d, struct MHD_Connection *c, struct debug__reply *r)
{
	size_t i;
	bool first = true;

	(void)d;
	(void)c;
	mesh_buf_puts(&r->body, "{\"endpoints\":[");
	for (i = 0; i < sizeof(debug__routes) / sizeof(debug__routes[0]); i++) {
		if (!debug__routes[i].what)
			continue;
		if (!first)
			mesh_buf_putc(&r->body, ',');
		first = false;
		mesh_buf_puts(&r->body, "{\"path\":");
		json_put_string(&r->body, debug__routes[i].path);
		mesh_buf_puts(&r->body, ",\"description\":");
		json_put_string(&r->body, debug__routes[i].what);
		mesh_buf_putc(&r->body, '}');
	}
	mesh_buf_puts(&r->body, "]}\n");
}

/*
 * Whether the caller is on this host (127.0.0.0/8, ::1, or IPv4-mapped
 * 127.x).  istiod serves its debug endpoints on the HTTP port
 * (ENABLE_DEBUG_ON_HTTP) to localhost and otherwise only to authenticated
 * callers; meshd has no authentication for this port, so a remote caller is
 * refused.
 */
static bool debug__peer_is_local(struct MHD_Connection *c)
{
	const union MHD_ConnectionInfo *ci;
	const struct sockaddr *sa;

	ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	if (!ci || !ci->client_addr)
		return false;
	sa = ci->client_addr;
	if (sa->sa_family == AF_INET)
		return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
	if (sa->sa_family == AF_INET6) {
		const struct in6_addr *a6 = &((const struct sockaddr_in6 *)sa)->sin6_addr;

		return IN6_IS_ADDR_LOOPBACK(a6) || (IN6_IS_ADDR_V4MAPPED(a6) && a6->s6_addr[12] == 127);
	}
	return false;
}

/* ---------------------------------------------------------------- dispatch */

static void debug__dispatch(struct debug_server *d, struct MHD_Connection *c, const char *url,
			    const char *method, struct debug__reply *r)
{
	size_t i;
	int err;

	if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0) {
		debug__error(r, MHD_HTTP_METHOD_NOT_ALLOWED, "method %.40s not allowed", method);
		return;
	}
	if (strncmp(url, DEBUG_PREFIX, strlen(DEBUG_PREFIX)) == 0 &&
	    (url[strlen(DEBUG_PREFIX)] == '\0' || url[strlen(DEBUG_PREFIX)] == '/') && !debug__peer_is_local(c)) {
		debug__error(r, MHD_HTTP_FORBIDDEN,
			     "%s answers only callers on meshd's host (localhost), as istiod's debug endpoints "
			     "on the HTTP port do; meshd has no authentication for remote callers: "
			     "call it from that host (ssh, kubectl port-forward)", DEBUG_PREFIX "/*");
		return;
	}
	for (i = 0; i < sizeof(debug__routes) / sizeof(debug__routes[0]); i++)
		if (strcmp(url, debug__routes[i].path) == 0)
			break;
	if (i == sizeof(debug__routes) / sizeof(debug__routes[0])) {
		debug__error(r, MHD_HTTP_NOT_FOUND, "no such path: %.200s", url);
		return;
	}
	debug__routes[i].fn(d, c, r);
	err = r->body.err;
	if (err == -MESH_ETOOBIG)
		metrics_limit(METRICS_LIMIT_DEBUG_RESPONSE_SIZE);
	if (err == -MESH_ETOOBIG)
		debug__error(r, MHD_HTTP_INTERNAL_SERVER_ERROR,
			     "response exceeds the %zu byte limit (DEBUG_MAX_RESPONSE_BYTES)", d->max_response);
	else if (err < 0)
		debug__error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "building the response failed: %s",
			     mesh_strerror(err));
}

/* Marks a connection whose request was seen once (see debug__handle). */
static int debug__seen;

/* A GET or HEAD without a request body. */
static bool debug__keepalive_ok(struct MHD_Connection *c, const char *method)
{
	const char *cl, *te;

	if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
		return false;
	cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
	te = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING);
	return !te && (!cl || strcmp(cl, "0") == 0);
}

static enum MHD_Result debug__handle(void *cls, struct MHD_Connection *c, const char *url, const char *method,
				     const char *version, const char *upload_data, size_t *upload_data_size,
				     void **con_cls)
{
	struct debug_server *d = cls;
	struct debug__reply r;
	struct MHD_Response *resp = NULL;
	enum MHD_Result ret = MHD_NO;
	size_t len;
	char *data;

	(void)version;
	(void)upload_data;
	/*
	 * Every route answers from the headers alone and a request body is
	 * never read.  A reply queued on the first call makes libmicrohttpd
	 * close the connection afterwards, so a bodiless GET/HEAD waits for
	 * the second call (the request is complete) and the connection stays
	 * open for the next scrape; anything else is answered at once.
	 */
	if (!*con_cls && debug__keepalive_ok(c, method)) {
		*con_cls = &debug__seen;
		return MHD_YES;
	}
	if (*upload_data_size)
		return MHD_NO; /* a body the headers did not announce */
	r.status = MHD_HTTP_OK;
	r.content_type = DEBUG_CT_JSON;
	mesh_buf_init(&r.body, d->max_response);
	debug__dispatch(d, c, url, method, &r);

	data = mesh_buf_take(&r.body, &len);
	if (!data)
		goto out;
	resp = MHD_create_response_from_buffer(len, data, MHD_RESPMEM_MUST_FREE);
	if (!resp) {
		free(data);
		goto out;
	}
	if (MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, r.content_type) != MHD_YES)
		goto out;
	if (r.status == MHD_HTTP_METHOD_NOT_ALLOWED &&
	    MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, DEBUG_ALLOW) != MHD_YES)
		goto out;
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	ret = MHD_queue_response(c, r.status, resp);
out:
	if (resp)
		MHD_destroy_response(resp);
	mesh_buf_cleanup(&r.body);
	return ret;
}

static void debug__mhd_log(void *cls, const char *fmt, va_list ap)
{
	char msg[512];
	size_t n;

	(void)cls;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	n = strlen(msg);
	while (n && msg[n - 1] == '\n')
		msg[--n] = '\0';
	/* libmicrohttpd's only word on a connection it refused past
	 * MHD_OPTION_CONNECTION_LIMIT or MHD_OPTION_PER_IP_CONNECTION_LIMIT */
	if (strstr(msg, "reached connection limit"))
		metrics_limit(METRICS_LIMIT_DEBUG_CONNECTIONS);
	log_debug(DEBUG_LOG, "libmicrohttpd: %s", msg);
}

/* ---------------------------------------------------------------- listen */


/* ---------------------------------------------------------------- lifecycle */

int debug_server_start(const struct debug_server_config *cfg, struct debug_server **out)
{
	struct debug_server *d = NULL;
	unsigned int flags;
	int fd = -1, rc;

	*out = NULL;
	if (!cfg || !cfg->addr)
		return -EINVAL;
	d = calloc(1, sizeof(*d));
	if (!d) {
		rc = -ENOMEM;
		goto out;
	}
	d->cfg = *cfg;
	d->addr = strdup(cfg->addr);
	d->version = cfg->version ? strdup(cfg->version) : NULL;
	if (!d->addr || (cfg->version && !d->version)) {
		rc = -ENOMEM;
		goto out;
	}
	d->cfg.addr = d->addr;
	d->cfg.version = d->version;
	d->max_response = cfg->max_response_bytes ? cfg->max_response_bytes : DEBUG_MAX_RESPONSE_BYTES;

	rc = mesh_listen_tcp(d->addr, DEBUG_LISTEN_BACKLOG, &fd, &d->port, NULL);
	if (rc < 0) {
		if (rc == -EINVAL)
			log_error(DEBUG_LOG, "bad HTTP address \"%s\": want HOST:PORT or [IPV6]:PORT", d->addr);
		else if (rc == -EADDRINUSE)
			log_error(DEBUG_LOG, "cannot listen on %s: port %s: address in use (is another meshd running?)",
				  d->addr, strrchr(d->addr, ':') + 1);
		else
			log_error(DEBUG_LOG, "listen on %s: %s", d->addr, mesh_strerror(rc));
		goto out;
	}
	flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ERROR_LOG;
	if (d->addr[0] == '[')
		flags |= MHD_USE_IPv6;
	d->mhd = MHD_start_daemon(flags, 0, NULL, NULL, debug__handle, d,
				  MHD_OPTION_LISTEN_SOCKET, (MHD_socket)fd,
				  MHD_OPTION_THREAD_POOL_SIZE, DEBUG_THREADS,
				  MHD_OPTION_CONNECTION_LIMIT, DEBUG_MAX_CONNECTIONS,
				  MHD_OPTION_PER_IP_CONNECTION_LIMIT, DEBUG_MAX_PER_IP,
				  MHD_OPTION_CONNECTION_TIMEOUT, DEBUG_CONNECTION_TIMEOUT_S,
				  MHD_OPTION_EXTERNAL_LOGGER, debug__mhd_log, (void *)NULL,
				  MHD_OPTION_END);
	if (!d->mhd) {
		/* libmicrohttpd closes the socket on some failure paths and
		 * not on others; leaking it beats closing it twice */
		rc = -ENOMEM;
		log_error(DEBUG_LOG, "libmicrohttpd failed to start on %s", d->addr);
		goto out;
	}
	log_info(DEBUG_LOG, "debug HTTP listening on %s (port %d)", d->addr, d->port);
	*out = d;
	d = NULL;
	rc = 0;
out:
	debug_server_stop(d);
	return rc;
}

int debug_server_port(const struct debug_server *d)
{
	return d ? d->port : -EINVAL;
}

void debug_server_stop(struct debug_server *d)
{
	if (!d)
		return;
	if (d->mhd)
		MHD_stop_daemon(d->mhd);
	free(d->addr);
	free(d->version);
	free(d);
}
