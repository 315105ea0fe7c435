/*
 * istio_stats.c - Istio's standard request metrics and HTTP metadata
 * exchange (istio_stats.h).
 *
 * A series is keyed by what its labels are made of (struct istio_key:
 * table-kept peer and principal pointers, the service host, code, flags);
 * the key's XXH3 picks a slot in an open-addressing table (linear probing,
 * never shrinks, at most half full).  The first request of a label set
 * builds its Prometheus label text in Istio's order and copies it once;
 * later ones only hash the key (~270 bytes) and compare.  Histograms use Envoy's default buckets,
 * which Istio keeps for its istio_* histograms (durations in ms, sizes in
 * bytes alike).
 */
#include "dataplane/istio_stats.h"

#include "google/protobuf/struct.pb-c.h"

#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <xxhash.h>

/* Envoy's default histogram buckets (Stats::HistogramSettingsImpl::defaultBuckets) */
static const double istio_buckets[] = { 0.5,   1,     5,     10,     25,     50,     100,     250,     500,    1000,
					2500,  5000,  10000, 30000,  60000,  300000, 600000, 1800000, 3600000 };
#define ISTIO_NB (sizeof(istio_buckets) / sizeof(istio_buckets[0]))
#define ISTIO_LABELS_MAX 2048 /* one series' label text; a longer one is cut */

struct istio_hist {
	uint64_t b[ISTIO_NB]; /* per bucket (not cumulative), the rest is +Inf */
	uint64_t count;
	double sum;
};

/* What a series' labels are made of, compared per request instead of the
 * label text: peers and principals are kept by the table (stable
 * pointers), the rest is copied.  Zeroed before filling: padding too. */
struct istio_key {
	const struct istio_peer *peer;
	const char *principal;
	int inbound, mtls, grpc, tcp, code, grpc_status;
	char service[192]; /* a longer host is cut */
	char flags[32];
};

struct istio_series {
	char *labels; /* NULL: a free slot */
	uint64_t hash;
	struct istio_key key;
	int tcp;      /* a TCP series: the counters below, not the request ones */
	uint64_t requests;
	struct istio_hist dur, req, resp;
	uint64_t opened, closed, sent, received;
};

struct istio_cached_peer {
	char *text; /* the header value it came from (owned) */
	size_t len;
	uint64_t hash;
	struct istio_peer p;
};

struct istio_stats {
	struct istio_peer self;
	char self_principal[256]; /* "" when no service account */
	char meta_id[256];
	char meta[ISTIO_META_HDR_MAX];
	struct istio_series *tab;
	size_t cap, n, max;       /* slots (power of two), used, the series cap */
	uint64_t overflow;
	struct istio_cached_peer peers[ISTIO_PEER_CACHE];
	size_t n_peers;
	uint64_t peer_overflow;
	char *principals[ISTIO_PEER_CACHE];
	size_t n_principals;
};

/* --- peers */

static void cpy(char *dst, const char *src, size_t n)
{
	if (n >= ISTIO_STR_MAX)
		n = ISTIO_STR_MAX - 1;
	memcpy(dst, src, n);
	dst[n] = '\0';
}

/* Istio's canonical service and revision fall back on the app labels,
 * then on the workload name and "latest". */
static void peer_finish(struct istio_peer *p, const char *k8s_name, const char *k8s_version)
{
	if (!p->canon_svc[0])
		cpy(p->canon_svc, k8s_name && *k8s_name ? k8s_name : p->app[0] ? p->app : p->workload,
		    strlen(k8s_name && *k8s_name ? k8s_name : p->app[0] ? p->app : p->workload));
	if (!p->canon_rev[0]) {
		const char *v = k8s_version && *k8s_version ? k8s_version : p->version[0] ? p->version : "latest";

		cpy(p->canon_rev, v, strlen(v));
	}
}

#define KEQ(k, kl, lit) ((kl) == sizeof(lit) - 1 && !memcmp((k), (lit), sizeof(lit) - 1))

static void peer_label(struct istio_peer *p, const char *k, size_t kl, const char *v, size_t vl,
		       const char **k8s_name, const char **k8s_version)
{
	if (KEQ(k, kl, "app"))
		cpy(p->app, v, vl);
	else if (KEQ(k, kl, "version"))
		cpy(p->version, v, vl);
	else if (KEQ(k, kl, "service.istio.io/canonical-name"))
		cpy(p->canon_svc, v, vl);
	else if (KEQ(k, kl, "service.istio.io/canonical-revision"))
		cpy(p->canon_rev, v, vl);
	else if (KEQ(k, kl, "app.kubernetes.io/name"))
		*k8s_name = v;
	else if (KEQ(k, kl, "app.kubernetes.io/version"))
		*k8s_version = v;
}

int istio_peer_from_node(struct istio_peer *p, const char *node_id, const char *labels, const char *cluster_id)
{
	const char *a, *b, *dot, *end, *s;
	const char *k8s_name = NULL, *k8s_version = NULL;
	char kn[ISTIO_STR_MAX] = "", kv[ISTIO_STR_MAX] = "";

	memset(p, 0, sizeof(*p));
	/* "TYPE~IP~POD.NS~DOMAIN": POD and NS */
	a = node_id ? strchr(node_id, '~') : NULL;
	b = a ? strchr(a + 1, '~') : NULL;
	if (b) {
		end = strchr(b + 1, '~');
		if (!end)
			end = b + 1 + strlen(b + 1);
		dot = memchr(b + 1, '.', (size_t)(end - b - 1));
		if (dot) {
			cpy(p->workload, b + 1, (size_t)(dot - b - 1));
			cpy(p->ns, dot + 1, (size_t)(end - dot - 1));
		} else {
			cpy(p->workload, b + 1, (size_t)(end - b - 1));
		}
	}
	cpy(p->cluster, cluster_id && *cluster_id ? cluster_id : "Kubernetes",
	    strlen(cluster_id && *cluster_id ? cluster_id : "Kubernetes"));
	for (s = labels ? labels : ""; *s;) {
		const char *comma = strchr(s, ','), *eq;
		size_t n = comma ? (size_t)(comma - s) : strlen(s);

		eq = memchr(s, '=', n);
		if (!eq || eq == s)
			return -EINVAL;
		peer_label(p, s, (size_t)(eq - s), eq + 1, n - (size_t)(eq - s) - 1, &k8s_name, &k8s_version);
		/* the two fallbacks point into labels: copy them out, cut at the comma */
		if (k8s_name == eq + 1 && !kn[0]) {
			cpy(kn, eq + 1, n - (size_t)(eq - s) - 1);
			k8s_name = kn;
		}
		if (k8s_version == eq + 1 && !kv[0]) {
			cpy(kv, eq + 1, n - (size_t)(eq - s) - 1);
			k8s_version = kv;
		}
		s += n;
		if (*s == ',')
			s++;
	}
	peer_finish(p, k8s_name, k8s_version);
	return 0;
}

static void sv_init(Google__Protobuf__Struct__FieldsEntry *e, Google__Protobuf__Value *v, const char *k,
		    const char *s)
{
	google__protobuf__struct__fields_entry__init(e);
	google__protobuf__value__init(v);
	e->key = (char *)k;
	e->value = v;
	v->kind_case = GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE;
	v->string_value = (char *)s;
}

int istio_peer_encode(const struct istio_peer *p, char *out, size_t cap)
{
	Google__Protobuf__Struct top, lab;
	Google__Protobuf__Struct__FieldsEntry te[6], le[4], *tp[6], *lp[4];
	Google__Protobuf__Value tv[6], lv[4];
	uint8_t *raw = NULL;
	size_t n, i, nt = 0, nl = 0;
	int rc;

	google__protobuf__struct__init(&top);
	google__protobuf__struct__init(&lab);
	sv_init(&te[nt], &tv[nt], "NAME", p->workload), nt++;
	sv_init(&te[nt], &tv[nt], "NAMESPACE", p->ns), nt++;
	sv_init(&te[nt], &tv[nt], "WORKLOAD_NAME", p->workload), nt++;
	sv_init(&te[nt], &tv[nt], "CLUSTER_ID", p->cluster), nt++;
	if (p->app[0])
		sv_init(&le[nl], &lv[nl], "app", p->app), nl++;
	if (p->version[0])
		sv_init(&le[nl], &lv[nl], "version", p->version), nl++;
	sv_init(&le[nl], &lv[nl], "service.istio.io/canonical-name", p->canon_svc), nl++;
	sv_init(&le[nl], &lv[nl], "service.istio.io/canonical-revision", p->canon_rev), nl++;
	for (i = 0; i < nl; i++)
		lp[i] = &le[i];
	lab.n_fields = nl;
	lab.fields = lp;
	google__protobuf__struct__fields_entry__init(&te[nt]);
	google__protobuf__value__init(&tv[nt]);
	te[nt].key = "LABELS";
	te[nt].value = &tv[nt];
	tv[nt].kind_case = GOOGLE__PROTOBUF__VALUE__KIND_STRUCT_VALUE;
	tv[nt].struct_value = &lab;
	nt++;
	for (i = 0; i < nt; i++)
		tp[i] = &te[i];
	top.n_fields = nt;
	top.fields = tp;
	n = google__protobuf__struct__get_packed_size(&top);
	if ((n + 2) / 3 * 4 + 1 > cap) {
		rc = -ENOSPC;
		goto out;
	}
	raw = malloc(n ? n : 1);
	if (!raw) {
		rc = -ENOMEM;
		goto out;
	}
	google__protobuf__struct__pack(&top, raw);
	rc = EVP_EncodeBlock((unsigned char *)out, raw, (int)n);
out:
	free(raw);
	return rc;
}

static void val_str(const Google__Protobuf__Value *v, char *dst)
{
	if (v && v->kind_case == GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE && v->string_value)
		cpy(dst, v->string_value, strlen(v->string_value));
}

int istio_peer_decode(const char *b64, size_t len, struct istio_peer *p)
{
	Google__Protobuf__Struct *st = NULL;
	unsigned char raw[ISTIO_META_HDR_MAX];
	const char *k8s_name = NULL, *k8s_version = NULL;
	char kn[ISTIO_STR_MAX] = "", kv[ISTIO_STR_MAX] = "";
	int n, rc = -EINVAL;
	size_t i, j, pad = 0;

	memset(p, 0, sizeof(*p));
	if (!len || len % 4 || len > sizeof(raw) / 3 * 4)
		goto out;
	n = EVP_DecodeBlock(raw, (const unsigned char *)b64, (int)len);
	if (n < 0)
		goto out;
	/* EVP_DecodeBlock counts the padding as zero bytes */
	pad = (b64[len - 1] == '=') + (b64[len - 2] == '=');
	st = google__protobuf__struct__unpack(NULL, (size_t)n - pad, raw);
	if (!st)
		goto out;
	for (i = 0; i < st->n_fields; i++) {
		const Google__Protobuf__Struct__FieldsEntry *e = st->fields[i];

		if (!e->key)
			continue;
		if (!strcmp(e->key, "WORKLOAD_NAME"))
			val_str(e->value, p->workload);
		else if (!strcmp(e->key, "NAMESPACE"))
			val_str(e->value, p->ns);
		else if (!strcmp(e->key, "CLUSTER_ID"))
			val_str(e->value, p->cluster);
		else if (!strcmp(e->key, "LABELS") && e->value &&
			 e->value->kind_case == GOOGLE__PROTOBUF__VALUE__KIND_STRUCT_VALUE && e->value->struct_value) {
			const Google__Protobuf__Struct *l = e->value->struct_value;

			for (j = 0; j < l->n_fields; j++) {
				const Google__Protobuf__Value *v = l->fields[j]->value;

				if (!l->fields[j]->key || !v || v->kind_case != GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE ||
				    !v->string_value)
					continue;
				peer_label(p, l->fields[j]->key, strlen(l->fields[j]->key), v->string_value,
					   strlen(v->string_value), &k8s_name, &k8s_version);
				if (k8s_name == v->string_value && !kn[0]) {
					cpy(kn, k8s_name, strlen(k8s_name));
					k8s_name = kn;
				}
				if (k8s_version == v->string_value && !kv[0]) {
					cpy(kv, k8s_version, strlen(k8s_version));
					k8s_version = kv;
				}
			}
		}
	}
	peer_finish(p, k8s_name, k8s_version);
	rc = 0;
out:
	if (st)
		google__protobuf__struct__free_unpacked(st, NULL);
	return rc;
}

int istio_is_meta_header(const char *name, size_t len)
{
	return (len == 21 && !strncasecmp(name, "x-envoy-peer-metadata", 21)) ||
	       (len == 24 && !strncasecmp(name, "x-envoy-peer-metadata-id", 24));
}

int istio_grpc_status_val(const char *v, size_t len)
{
	int n = 0;
	size_t i;

	while (len && (*v == ' ' || *v == '\t'))
		v++, len--;
	while (len && (v[len - 1] == ' ' || v[len - 1] == '\t' || v[len - 1] == '\r'))
		len--;
	if (!len || len > 3)
		return -1;
	for (i = 0; i < len; i++) {
		if (v[i] < '0' || v[i] > '9')
			return -1;
		n = n * 10 + (v[i] - '0');
	}
	return n;
}

int istio_grpc_status_in(const char *p, size_t len)
{
	const char *end = p + len, *nl, *colon;

	for (; p < end; p = nl + 1) {
		nl = memchr(p, '\n', (size_t)(end - p));
		if (!nl)
			nl = end;
		colon = memchr(p, ':', (size_t)(nl - p));
		if (colon && colon - p == 11 && !strncasecmp(p, "grpc-status", 11))
			return istio_grpc_status_val(colon + 1, (size_t)(nl - colon - 1));
	}
	return -1;
}

const char *istio_service_of(const char *cluster, const char *authority, size_t alen, size_t *len)
{
	const char *p, *colon;
	int bars = 0;

	*len = 0;
	if (cluster && !strncmp(cluster, "outbound|", 9)) {
		for (p = cluster; *p && bars < 3; p++)
			bars += *p == '|';
		if (bars == 3 && *p) {
			*len = strlen(p);
			return p;
		}
	}
	if (!authority || !alen)
		return NULL;
	/* a bracketed IPv6 literal keeps its colons */
	colon = authority[0] == '[' ? NULL : memchr(authority, ':', alen);
	*len = colon ? (size_t)(colon - authority) : alen;
	return authority;
}

const char *istio_catchall_name(const char *route, const char *cluster)
{
	static const char *const clusters[] = { "BlackHoleCluster", "PassthroughCluster", "InboundPassthroughCluster",
						"InboundPassthroughClusterIpv4", "InboundPassthroughClusterIpv6" };
	size_t i;

	if (route && !strcmp(route, "block_all"))
		return "BlackHoleCluster";
	if (route && !strcmp(route, "allow_any"))
		return "PassthroughCluster";
	for (i = 0; cluster && i < sizeof(clusters) / sizeof(clusters[0]); i++)
		if (!strcmp(cluster, clusters[i]))
			return clusters[i];
	return NULL;
}

/* --- the table */

int istio_stats_new(const char *node_id, const char *labels, const char *sa, size_t max_series,
		    struct istio_stats **out)
{
	struct istio_stats *st;
	int rc;

	*out = NULL;
	st = calloc(1, sizeof(*st));
	if (!st)
		return -ENOMEM;
	rc = istio_peer_from_node(&st->self, node_id, labels, NULL);
	if (rc < 0)
		goto out;
	st->max = max_series ? max_series : ISTIO_DEFAULT_MAX_SERIES;
	for (st->cap = 16; st->cap < st->max * 2; st->cap *= 2)
		;
	st->tab = calloc(st->cap, sizeof(*st->tab));
	if (!st->tab) {
		rc = -ENOMEM;
		goto out;
	}
	if (sa && *sa)
		snprintf(st->self_principal, sizeof(st->self_principal), "spiffe://cluster.local/ns/%s/sa/%s",
			 st->self.ns[0] ? st->self.ns : "default", sa);
	snprintf(st->meta_id, sizeof(st->meta_id), "%s", node_id ? node_id : "");
	rc = istio_peer_encode(&st->self, st->meta, sizeof(st->meta));
	if (rc < 0)
		goto out;
	rc = 0;
	*out = st;
	st = NULL;
out:
	istio_stats_free(st);
	return rc;
}

void istio_stats_free(struct istio_stats *st)
{
	size_t i;

	if (!st)
		return;
	for (i = 0; st->tab && i < st->cap; i++)
		free(st->tab[i].labels);
	for (i = 0; i < st->n_peers; i++)
		free(st->peers[i].text);
	for (i = 0; i < st->n_principals; i++)
		free(st->principals[i]);
	free(st->tab);
	free(st);
}

const char *istio_stats_meta_id(const struct istio_stats *st)
{
	return st->meta_id;
}

const char *istio_stats_meta(const struct istio_stats *st)
{
	return st->meta;
}

const struct istio_peer *istio_stats_peer(struct istio_stats *st, const char *b64, size_t len)
{
	uint64_t h = XXH3_64bits(b64, len);
	struct istio_cached_peer *c;
	size_t i;

	/* a mesh has few peers per proxy: a scan of the cache is cheaper than decoding */
	for (i = 0; i < st->n_peers; i++) {
		c = &st->peers[i];
		if (c->hash == h && c->len == len && !memcmp(c->text, b64, len))
			return &c->p;
	}
	if (st->n_peers == ISTIO_PEER_CACHE) {
		st->peer_overflow++;
		return NULL;
	}
	c = &st->peers[st->n_peers];
	if (istio_peer_decode(b64, len, &c->p) < 0)
		return NULL;
	c->text = malloc(len);
	if (!c->text)
		return NULL;
	memcpy(c->text, b64, len);
	c->len = len;
	c->hash = h;
	st->n_peers++;
	return &c->p;
}

const char *istio_stats_principal(struct istio_stats *st, const char *principal)
{
	size_t i;

	if (!principal)
		return NULL;
	for (i = 0; i < st->n_principals; i++)
		if (!strcmp(st->principals[i], principal))
			return st->principals[i];
	if (st->n_principals == ISTIO_PEER_CACHE) {
		st->peer_overflow++;
		return NULL;
	}
	st->principals[st->n_principals] = strdup(principal);
	return st->principals[st->n_principals] ? st->principals[st->n_principals++] : NULL;
}

/* appends name="value" to the label text, escaping as the exposition format asks */
static void lab(char *buf, size_t *off, const char *name, const char *v, size_t vl)
{
	size_t o = *off, i;

	if (!v || !vl) {
		v = "unknown";
		vl = 7;
	}
	o += (size_t)snprintf(buf + o, o < ISTIO_LABELS_MAX ? ISTIO_LABELS_MAX - o : 0, "%s%s=\"", o ? "," : "",
			      name);
	for (i = 0; i < vl && o + 4 < ISTIO_LABELS_MAX; i++) {
		char c = v[i];

		if (c == '"' || c == '\\') {
			buf[o++] = '\\';
			buf[o++] = c;
		} else if (c == '\n') {
			buf[o++] = '\\';
			buf[o++] = 'n';
		} else {
			buf[o++] = c;
		}
	}
	if (o + 2 < ISTIO_LABELS_MAX)
		buf[o++] = '"';
	if (o >= ISTIO_LABELS_MAX)
		o = ISTIO_LABELS_MAX - 1;
	buf[o] = '\0';
	*off = o;
}

static void lab_s(char *buf, size_t *off, const char *name, const char *v)
{
	lab(buf, off, name, v, v ? strlen(v) : 0);
}

static void hist_add(struct istio_hist *h, double v)
{
	size_t i;

	for (i = 0; i < ISTIO_NB && v > istio_buckets[i]; i++)
		;
	if (i < ISTIO_NB)
		h->b[i]++;
	h->count++;
	h->sum += v;
}

/* The series for r's labels (tcp: Istio's TCP label set), made on first
 * use; NULL past the cap (counted). */
static void labels_text(const struct istio_stats *st, const struct istio_req *r, int tcp, char *buf, size_t *len)
{
	static const struct istio_peer none;
	const struct istio_peer *src = r->inbound ? (r->peer ? r->peer : &none) : &st->self;
	const struct istio_peer *dst = r->inbound ? &st->self : (r->peer ? r->peer : &none);
	const char *svc = r->service;
	size_t svc_len = svc ? r->service_len : 0, name_len, off = 0;
	const char *dot, *ns = NULL;
	size_t ns_len = 0;
	char num[16];

	buf[0] = '\0';
	/* destination_service_name / _namespace: "NAME.NS.svc..." */
	dot = svc_len ? memchr(svc, '.', svc_len) : NULL;
	name_len = dot ? (size_t)(dot - svc) : svc_len;
	if (dot) {
		const char *d2 = memchr(dot + 1, '.', svc_len - name_len - 1);

		ns = dot + 1;
		ns_len = d2 ? (size_t)(d2 - ns) : svc_len - name_len - 1;
	} else if (dst->ns[0]) {
		ns = dst->ns;
		ns_len = strlen(ns);
	}
	lab_s(buf, &off, "reporter", r->inbound ? "destination" : "source");
	lab_s(buf, &off, "source_workload", src->workload);
	lab_s(buf, &off, "source_canonical_service", src->canon_svc);
	lab_s(buf, &off, "source_canonical_revision", src->canon_rev);
	lab_s(buf, &off, "source_workload_namespace", src->ns);
	lab_s(buf, &off, "source_principal",
	      r->inbound ? r->peer_principal : (st->self_principal[0] ? st->self_principal : NULL));
	lab_s(buf, &off, "source_app", src->app);
	lab_s(buf, &off, "source_version", src->version);
	lab_s(buf, &off, "source_cluster", src->cluster);
	lab_s(buf, &off, "destination_workload", dst->workload);
	lab_s(buf, &off, "destination_workload_namespace", dst->ns);
	lab_s(buf, &off, "destination_principal",
	      r->inbound ? (r->mtls && st->self_principal[0] ? st->self_principal : NULL) : r->peer_principal);
	lab_s(buf, &off, "destination_app", dst->app);
	lab_s(buf, &off, "destination_version", dst->version);
	lab(buf, &off, "destination_service", svc, svc_len);
	lab_s(buf, &off, "destination_canonical_service", dst->canon_svc);
	lab_s(buf, &off, "destination_canonical_revision", dst->canon_rev);
	if (r->service_name) {
		/* a catch-all (issue 13): no service, so no namespace but the peer's */
		lab_s(buf, &off, "destination_service_name", r->service_name);
		lab_s(buf, &off, "destination_service_namespace", dst->ns);
	} else {
		lab(buf, &off, "destination_service_name", svc, name_len);
		lab(buf, &off, "destination_service_namespace", ns, ns_len);
	}
	lab_s(buf, &off, "destination_cluster", dst->cluster);
	lab_s(buf, &off, "request_protocol", tcp ? "tcp" : r->grpc ? "grpc" : "http");
	if (!tcp) {
		snprintf(num, sizeof(num), "%d", r->response_code);
		lab_s(buf, &off, "response_code", num);
		/* Istio leaves grpc_response_status empty for plain HTTP */
		if (r->grpc_status >= 0)
			snprintf(num, sizeof(num), "%d", r->grpc_status);
		else
			num[0] = '\0';
		off += (size_t)snprintf(buf + off, ISTIO_LABELS_MAX - off, ",grpc_response_status=\"%s\"", num);
		if (off >= ISTIO_LABELS_MAX)
			off = ISTIO_LABELS_MAX - 1;
	}
	lab_s(buf, &off, "response_flags", r->response_flags && *r->response_flags ? r->response_flags : "-");
	/* Istio's source reporter does not know the policy: "unknown" */
	lab_s(buf, &off, "connection_security_policy", !r->inbound ? NULL : r->mtls ? "mutual_tls" : "none");
	*len = off;
}

static void key_str(char *dst, size_t cap, const char *src, size_t n)
{
	if (n >= cap)
		n = cap - 1;
	if (n)
		memcpy(dst, src, n);
}

/* The series for r's labels (tcp: Istio's TCP label set), made on first
 * use: only then is the label text built.  NULL past the cap (counted). */
static struct istio_series *series_of(struct istio_stats *st, const struct istio_req *r, int tcp)
{
	struct istio_key k;
	struct istio_req rr = *r;
	struct istio_series *e;
	char buf[ISTIO_LABELS_MAX];
	size_t i, off;
	uint64_t h;

	memset(&k, 0, sizeof(k));
	k.peer = r->peer;
	k.principal = rr.peer_principal = istio_stats_principal(st, r->peer_principal);
	k.inbound = r->inbound;
	k.mtls = r->mtls;
	k.tcp = tcp;
	if (!tcp) {
		k.grpc = r->grpc;
		k.code = r->response_code;
		k.grpc_status = r->grpc_status;
	}
	key_str(k.service, sizeof(k.service), r->service, r->service ? r->service_len : 0);
	key_str(k.flags, sizeof(k.flags), r->response_flags, r->response_flags ? strlen(r->response_flags) : 0);
	h = XXH3_64bits(&k, sizeof(k));
	for (i = h & (st->cap - 1);; i = (i + 1) & (st->cap - 1)) {
		e = &st->tab[i];
		if (!e->labels)
			break;
		if (e->hash == h && !memcmp(&e->key, &k, sizeof(k)))
			return e;
	}
	if (st->n >= st->max) {
		st->overflow++;
		return NULL;
	}
	rr.service = k.service;
	rr.service_len = strlen(k.service);
	rr.response_flags = k.flags;
	labels_text(st, &rr, tcp, buf, &off);
	e->labels = malloc(off + 1);
	if (!e->labels) {
		st->overflow++;
		return NULL;
	}
	memcpy(e->labels, buf, off + 1);
	e->key = k;
	e->hash = h;
	e->tcp = tcp;
	st->n++;
	return e;
}

void istio_stats_record(struct istio_stats *st, const struct istio_req *r)
{
	struct istio_series *e = series_of(st, r, 0);

	if (!e)
		return;
	e->requests++;
	hist_add(&e->dur, (double)r->duration_ms);
	hist_add(&e->req, (double)r->request_bytes);
	hist_add(&e->resp, (double)r->response_bytes);
}

void istio_stats_tcp(struct istio_stats *st, const struct istio_req *r, int opened, int closed)
{
	struct istio_series *e = series_of(st, r, 1);

	if (!e)
		return;
	e->opened += (uint64_t)opened;
	e->closed += (uint64_t)closed;
	e->received += r->request_bytes;
	e->sent += r->response_bytes;
}

static void hist_out(struct mesh_buf *out, const char *name, const char *labels, const struct istio_hist *h)
{
	uint64_t cum = 0;
	size_t i;

	for (i = 0; i < ISTIO_NB; i++) {
		cum += h->b[i];
		mesh_buf_printf(out, "%s_bucket{%s,le=\"%g\"} %llu\n", name, labels, istio_buckets[i],
				(unsigned long long)cum);
	}
	mesh_buf_printf(out, "%s_bucket{%s,le=\"+Inf\"} %llu\n%s_sum{%s} %.17g\n%s_count{%s} %llu\n", name, labels,
			(unsigned long long)h->count, name, labels, h->sum, name, labels, (unsigned long long)h->count);
}

void istio_stats_prometheus(const struct istio_stats *st, struct mesh_buf *out)
{
	static const char *const hn[] = { "istio_request_duration_milliseconds", "istio_request_bytes",
					  "istio_response_bytes" };
	size_t i, k;

	mesh_buf_puts(out, "# TYPE istio_requests_total counter\n");
	for (i = 0; i < st->cap; i++)
		if (st->tab[i].labels && !st->tab[i].tcp)
			mesh_buf_printf(out, "istio_requests_total{%s} %llu\n", st->tab[i].labels,
					(unsigned long long)st->tab[i].requests);
	for (k = 0; k < 3; k++) {
		mesh_buf_printf(out, "# TYPE %s histogram\n", hn[k]);
		for (i = 0; i < st->cap; i++) {
			const struct istio_series *e = &st->tab[i];

			if (e->labels && !e->tcp)
				hist_out(out, hn[k], e->labels, k == 0 ? &e->dur : k == 1 ? &e->req : &e->resp);
		}
	}
	for (k = 0; k < 4; k++) {
		static const char *const tn[] = { "istio_tcp_connections_opened_total", "istio_tcp_connections_closed_total",
						  "istio_tcp_received_bytes_total", "istio_tcp_sent_bytes_total" };

		mesh_buf_printf(out, "# TYPE %s counter\n", tn[k]);
		for (i = 0; i < st->cap; i++) {
			const struct istio_series *e = &st->tab[i];

			if (e->labels && e->tcp)
				mesh_buf_printf(out, "%s{%s} %llu\n", tn[k], e->labels,
						(unsigned long long)(k == 0 ? e->opened : k == 1 ? e->closed
								 : k == 2 ? e->received : e->sent));
		}
	}
	mesh_buf_printf(out,
			"# TYPE meshproxy_istio_stats_series gauge\nmeshproxy_istio_stats_series %llu\n"
			"# TYPE meshproxy_istio_stats_overflow_total counter\nmeshproxy_istio_stats_overflow_total %llu\n"
			"# TYPE meshproxy_istio_peer_cache_overflow_total counter\n"
			"meshproxy_istio_peer_cache_overflow_total %llu\n",
			(unsigned long long)st->n, (unsigned long long)st->overflow,
			(unsigned long long)st->peer_overflow);
}

size_t istio_stats_series(const struct istio_stats *st)
{
	return st->n;
}

uint64_t istio_stats_overflow(const struct istio_stats *st)
{
	return st->overflow;
}
