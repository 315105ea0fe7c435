/*
 * ads_debug.c - the JSON debug views of the ADS core's streams:
 * /debug/syncz (per stream and type: sent and acked versions, nonce, sync
 * state, NACK text) and /debug/config_dump (what a proxy was last sent, in
 * Envoy's admin config dump layout).  Both shapes are interfaces (istioctl
 * habits, tests/unit/controlplane/debug/test_http.c): fields may be added,
 * never renamed.  The caller serialises these with the core's other calls
 * (server.c holds its lock).
 */
#include "controlplane/xds/ads_int.h"

#include "common/err.h"
#include "common/json.h"
#include "common/xds/pbjson.h"

#include "envoy/extensions/transport_sockets/tls/v3/secret.pb-c.h"

#include <openssl/crypto.h>

#include <errno.h>
#include <stdbool.h>
#include <string.h>

static const char *sync_state_name(const struct xds_ads__type *ts)
{
	switch (ts->state) {
	case XDS_ADS__SYNC_STALE: return "STALE";
	case XDS_ADS__SYNC_ACKED: return "SYNCED";
	case XDS_ADS__SYNC_NACKED: return "ERROR";
	case XDS_ADS__SYNC_NONE:
	default: return "NOT SENT";
	}
}

static void syncz_stream(const struct xds_ads_stream *st, struct mesh_buf *out)
{
	int t, first = 1;

	mesh_buf_puts(out, "{\"proxy\":");
	json_put_string(out, st->node_id ? st->node_id : "");
	mesh_buf_puts(out, ",\"flavour\":");
	json_put_string(out, xds_flavour_name(st->flavour));
	mesh_buf_puts(out, ",\"cluster\":");
	json_put_string(out, st->node_cluster ? st->node_cluster : "");
	mesh_buf_puts(out, ",\"user_agent\":");
	json_put_string(out, st->user_agent ? st->user_agent : "");
	mesh_buf_puts(out, ",\"peer\":");
	json_put_string(out, st->peer ? st->peer : "");
	mesh_buf_puts(out, ",\"connected_at\":");
	json_put_string(out, st->connected_at);
	mesh_buf_printf(out, ",\"delta\":%s", st->delta ? "true" : "false");
	mesh_buf_printf(out, ",\"stream\":%llu,\"types\":{", (unsigned long long)st->id);
	for (t = 0; t < XDS_TYPE_COUNT; t++) {
		const struct xds_ads__type *ts = &st->types[t];
		if (!ts->subscribed)
			continue;
		if (!first)
			mesh_buf_putc(out, ',');
		first = 0;
		json_put_string(out, xds_type_short((enum xds_type)t));
		mesh_buf_puts(out, ":{\"sent_version\":");
		json_put_string(out, ts->sent_version);
		mesh_buf_puts(out, ",\"sent_nonce\":");
		json_put_string(out, ts->sent_nonce);
		mesh_buf_puts(out, ",\"acked_version\":");
		json_put_string(out, ts->acked_version);
		mesh_buf_puts(out, ",\"state\":");
		json_put_string(out, sync_state_name(ts));
		if (ts->error) {
			mesh_buf_puts(out, ",\"error\":");
			json_put_string(out, ts->error);
		}
		mesh_buf_printf(out, ",\"resources\":%zu,\"wildcard\":%s}", ts->sent_nres,
				ts->wildcard ? "true" : "false");
	}
	mesh_buf_putc(out, '}');
	/* a stream being ended by meshd (e.g. a flavour without a generator):
	 * the status it gets, while its call winds down */
	if (st->finishing && st->finish_code != XDS_ADS_STATUS_OK) {
		mesh_buf_printf(out, ",\"end_status\":{\"code\":%d,\"message\":", (int)st->finish_code);
		json_put_string(out, st->finish_msg ? st->finish_msg : "");
		mesh_buf_putc(out, '}');
	}
	mesh_buf_putc(out, '}');
}

int xds_ads_syncz(const struct xds_ads *a, struct mesh_buf *out)
{
	const struct xds_ads_stream *st;
	int first = 1;

	if (!a || !out)
		return -EINVAL;
	mesh_buf_putc(out, '[');
	for (st = a->streams; st; st = st->next) {
		if (!first)
			mesh_buf_putc(out, ',');
		first = 0;
		syncz_stream(st, out);
	}
	mesh_buf_putc(out, ']');
	return out->err;
}

/* Envoy's admin config dump layout, one section per xDS type. */
static const struct {
	const char *type;       /* envoy.admin.v3 message */
	const char *list;       /* repeated field holding the resources */
	const char *field;      /* field holding one resource */
	int named;              /* carries a "name" next to the resource */
} dump_layout[XDS_TYPE_COUNT] = {
	[XDS_LISTENER] = { "ListenersConfigDump", "dynamicListeners", "activeState", 1 },
	[XDS_ROUTE] = { "RoutesConfigDump", "dynamicRouteConfigs", "routeConfig", 0 },
	[XDS_CLUSTER] = { "ClustersConfigDump", "dynamicActiveClusters", "cluster", 0 },
	[XDS_ENDPOINT] = { "EndpointsConfigDump", "dynamicEndpointConfigs", "endpointConfig", 0 },
	[XDS_SECRET] = { "SecretsConfigDump", "dynamicActiveSecrets", "secret", 1 },
};

/*
 * A Secret as Envoy's config dump shows it: certificates and CAs in the
 * clear (they are public; meshctl proxy-config secret reads their
 * validity and serial from here), every private part replaced by the
 * inline string "[redacted]" (TlsCertificate private_key and password,
 * GenericSecret, session ticket keys).  Appends to out; returns 0 or a
 * negative code (nothing appended).
 */
static int dump_secret(const struct xds_resource *r, struct mesh_buf *out)
{
	Envoy__Extensions__TransportSockets__Tls__V3__Secret *sec =
		envoy__extensions__transport_sockets__tls__v3__secret__unpack(NULL, r->len, r->data);
	Envoy__Config__Core__V3__DataSource redacted = ENVOY__CONFIG__CORE__V3__DATA_SOURCE__INIT;
	Envoy__Config__Core__V3__DataSource *saved[3] = { NULL, NULL, NULL };
	void *saved_keys = NULL;
	size_t saved_nkeys = 0, len;
	uint8_t *wire = NULL;
	int rc = -MESH_EPARSE;

	if (!sec)
		goto out;
	redacted.specifier_case = ENVOY__CONFIG__CORE__V3__DATA_SOURCE__SPECIFIER_INLINE_STRING;
	redacted.inline_string = "[redacted]";
	/* swap the private parts out (restored before the free below) */
	if (sec->type_case == ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__SECRET__TYPE_TLS_CERTIFICATE &&
	    sec->tls_certificate) {
		saved[0] = sec->tls_certificate->private_key;
		saved[1] = sec->tls_certificate->password;
		saved[2] = sec->tls_certificate->pkcs12;
		if (saved[0])
			sec->tls_certificate->private_key = &redacted;
		if (saved[1])
			sec->tls_certificate->password = &redacted;
		if (saved[2])
			sec->tls_certificate->pkcs12 = &redacted;
	} else if (sec->type_case == ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__SECRET__TYPE_GENERIC_SECRET &&
		   sec->generic_secret) {
		saved[0] = sec->generic_secret->secret;
		if (saved[0])
			sec->generic_secret->secret = &redacted;
	} else if (sec->type_case == ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__SECRET__TYPE_SESSION_TICKET_KEYS &&
		   sec->session_ticket_keys) {
		saved_keys = sec->session_ticket_keys->keys;
		saved_nkeys = sec->session_ticket_keys->n_keys;
		sec->session_ticket_keys->keys = NULL;
		sec->session_ticket_keys->n_keys = 0;
	}
	len = envoy__extensions__transport_sockets__tls__v3__secret__get_packed_size(sec);
	wire = malloc(len ? len : 1);
	if (!wire) {
		rc = -ENOMEM;
	} else {
		envoy__extensions__transport_sockets__tls__v3__secret__pack(sec, wire);
		rc = pbjson_render_any(xds_type_url(XDS_SECRET), wire, len, out);
	}
	if (sec->type_case == ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__SECRET__TYPE_TLS_CERTIFICATE &&
	    sec->tls_certificate) {
		sec->tls_certificate->private_key = saved[0];
		sec->tls_certificate->password = saved[1];
		sec->tls_certificate->pkcs12 = saved[2];
	} else if (sec->type_case == ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__SECRET__TYPE_GENERIC_SECRET &&
		   sec->generic_secret) {
		sec->generic_secret->secret = saved[0];
	} else if (saved_keys) {
		sec->session_ticket_keys->keys = saved_keys;
		sec->session_ticket_keys->n_keys = saved_nkeys;
	}
out:
	if (wire)
		OPENSSL_clear_free(wire, len ? len : 1);
	envoy__extensions__transport_sockets__tls__v3__secret__free_unpacked(sec, NULL);
	return rc;
}

static void dump_resource(enum xds_type t, const struct xds_ads__type *ts, const struct xds_resource *r,
			  struct mesh_buf *out)
{
	mesh_buf_putc(out, '{');
	if (dump_layout[t].named) {
		mesh_buf_puts(out, "\"name\":");
		json_put_string(out, r->name);
		mesh_buf_putc(out, ',');
	}
	/* Envoy's DynamicListener keeps the version inside activeState */
	if (t != XDS_LISTENER) {
		mesh_buf_puts(out, "\"versionInfo\":");
		json_put_string(out, ts->sent_version);
	}
	if (t == XDS_SECRET) {
		/* Key material never leaves meshd through a debug view: the
		 * Secret with its private parts redacted, as Envoy dumps it,
		 * or only its name and version when it cannot be read. */
		size_t mark = out->len;

		mesh_buf_puts(out, ",\"secret\":");
		if (dump_secret(r, out) < 0 && !out->err)
			out->len = mark;
		mesh_buf_puts(out, "}");
		return;
	}
	if (t != XDS_LISTENER)
		mesh_buf_putc(out, ',');
	mesh_buf_printf(out, "\"%s\":", dump_layout[t].field);
	if (t == XDS_LISTENER) {
		mesh_buf_puts(out, "{\"versionInfo\":");
		json_put_string(out, ts->sent_version);
		mesh_buf_puts(out, ",\"listener\":");
	}
	if (pbjson_render_any(xds_type_url(t), r->data, r->len, out) < 0 && !out->err) {
		/* not decodable here: say so rather than fail the whole dump */
		mesh_buf_puts(out, "{\"@type\":");
		json_put_string(out, xds_type_url(t));
		mesh_buf_printf(out, ",\"@undecoded_bytes\":%zu}", r->len);
	}
	if (t == XDS_LISTENER)
		mesh_buf_putc(out, '}');
	mesh_buf_putc(out, '}');
}

/* Whether node id TYPE~IP~POD.NS~DOMAIN has id as its POD.NS part. */
static bool ads__short_id_is(const char *node_id, const char *id)
{
	const char *p, *q;
	size_t n = strlen(id);

	if (!node_id || !n || !(p = strchr(node_id, '~')) || !(p = strchr(p + 1, '~')))
		return false;
	p++;
	q = strchr(p, '~');
	return (size_t)((q ? q : p + strlen(p)) - p) == n && strncmp(p, id, n) == 0;
}

/* The newest live stream of proxy_id (a node id or "POD.NAMESPACE"):
 * 0 with *found, -ENOENT, or -ENOTUNIQ when the short form names two. */
static int ads__find_proxy(const struct xds_ads *a, const char *proxy_id, const struct xds_ads_stream **out)
{
	const struct xds_ads_stream *st, *found = NULL;

	/* the newest stream of that proxy (streams are kept newest first) */
	for (st = a->streams; st && !found; st = st->next)
		if (st->node_id && strcmp(st->node_id, proxy_id) == 0 && !st->closed)
			found = st;
	/* else Istio's proxy ID, "POD.NAMESPACE" (the node id's third part,
	 * what istioctl and istiod's debug endpoints take) */
	for (st = a->streams; st && !found && !strchr(proxy_id, '~'); st = st->next) {
		if (st->closed || !ads__short_id_is(st->node_id, proxy_id))
			continue;
		found = st;
	}
	if (found && strcmp(found->node_id, proxy_id) != 0) {
		for (st = found->next; st; st = st->next)
			if (!st->closed && ads__short_id_is(st->node_id, proxy_id) && strcmp(st->node_id, found->node_id))
				return -ENOTUNIQ; /* two proxies of that name: the full node id decides */
	}
	*out = found;
	return found ? 0 : -ENOENT;
}

int xds_ads_proxy_workload(const struct xds_ads *a, const char *proxy_id, struct mesh_buf *ns,
			   struct mesh_buf *labels)
{
	const struct xds_ads_stream *found = NULL;
	size_t i;
	int rc;

	if (!a || !proxy_id || !ns || !labels)
		return -EINVAL;
	rc = ads__find_proxy(a, proxy_id, &found);
	if (rc < 0)
		return rc;
	mesh_buf_puts(ns, found->node_ns ? found->node_ns : "");
	mesh_buf_putc(ns, '\0');
	for (i = 0; i < found->node_labels.n; i++) {
		if (i)
			mesh_buf_putc(labels, ',');
		mesh_buf_puts(labels, found->node_labels.v[i].key);
		mesh_buf_putc(labels, '=');
		mesh_buf_puts(labels, found->node_labels.v[i].value);
	}
	mesh_buf_putc(labels, '\0');
	return ns->err ? ns->err : labels->err;
}

int xds_ads_config_dump(const struct xds_ads *a, const char *proxy_id, struct mesh_buf *out)
{
	const struct xds_ads_stream *found = NULL;
	int t, rc = 0, first = 1;
	size_t i;

	if (!a || !proxy_id || !out)
		return -EINVAL;
	rc = ads__find_proxy(a, proxy_id, &found);
	if (rc < 0)
		goto out;
	mesh_buf_puts(out, "{\"configs\":[");
	for (t = 0; t < XDS_TYPE_COUNT; t++) {
		const struct xds_ads__type *ts = &found->types[t];
		if (!ts->sent)
			continue;
		if (!first)
			mesh_buf_putc(out, ',');
		first = 0;
		mesh_buf_printf(out, "{\"@type\":\"type.googleapis.com/envoy.admin.v3.%s\",\"versionInfo\":",
				dump_layout[t].type);
		json_put_string(out, ts->sent_version);
		mesh_buf_printf(out, ",\"%s\":[", dump_layout[t].list);
		for (i = 0; i < ts->sent_nres; i++) {
			if (i)
				mesh_buf_putc(out, ',');
			dump_resource((enum xds_type)t, ts, ts->sent_res[i], out);
		}
		mesh_buf_puts(out, "]}");
	}
	mesh_buf_puts(out, "]}");
	rc = out->err;
out:
	return rc;
}
