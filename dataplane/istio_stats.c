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

#include "google/protobuf/any.pb-c.h"
#include "google/protobuf/struct.pb-c.h"
#include "istio/stats/config.pb-c.h"

#include "common/cel.h"
#include "common/str.h"

#include <ctype.h>
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
#define ISTIO_VAL_MAX 128     /* one tag expression's value (longer: cut) */

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
	uint64_t cfg, ev;  /* issue 14: the istio.stats config's id and its expressions' values (0: none) */
	int inbound, mtls, grpc, tcp, code, grpc_status;
	char service[192]; /* a longer host is cut */
	char flags[32];
};

/* One exposed series of one metric: its label text and value.  Series
 * keys that render the same text (a configuration replaced by an equal
 * one, an override that changes nothing) share the cell, so no series is
 * listed twice. */
struct istio_cell {
	uint64_t hash;
	int metric;                /* IM_* */
	uint64_t count;            /* a counter */
	struct istio_hist h;       /* a histogram */
	size_t len;
	char labels[];
};

/* What requests with one key count into: a cell per metric of its group
 * (requests: IM_REQUESTS.., TCP: IM_TCP_OPENED..), NULL where dropped. */
struct istio_series {
	int used;     /* 0: a free slot */
	uint64_t hash;
	struct istio_key key;
	struct istio_cell *cell[4];
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
	uint8_t mx[ISTIO_MX_MAX];  /* issue 14: the TCP exchange's header and data we send */
	int mx_len;                /* < 0: none (too large) */
	struct istio_series *tab;
	size_t cap, n, max;       /* slots (power of two), used, the series cap */
	struct istio_cell **cells; /* by (metric, label text), open addressing */
	size_t ccap, ncells;       /* at most 4 per series: ccap >= 8 * max */
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

/* The workload a node metadata Struct describes. */
static void peer_from_struct(const Google__Protobuf__Struct *st, struct istio_peer *p)
{
	const char *k8s_name = NULL, *k8s_version = NULL;
	char kn[ISTIO_STR_MAX] = "", kv[ISTIO_STR_MAX] = "";
	size_t i, j;

	memset(p, 0, sizeof(*p));
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
}

int istio_peer_decode(const char *b64, size_t len, struct istio_peer *p)
{
	Google__Protobuf__Struct *st = NULL;
	unsigned char raw[ISTIO_META_HDR_MAX];
	int n, rc = -EINVAL;
	size_t pad = 0;

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
	peer_from_struct(st, p);
	rc = 0;
out:
	if (st)
		google__protobuf__struct__free_unpacked(st, NULL);
	return rc;
}

#define MX_MAGIC 0x3D230467u
#define MX_STRUCT_URL "type.googleapis.com/google.protobuf.Struct"

int istio_peer_mx_encode(const struct istio_peer *p, const char *node_id, uint8_t *out, size_t cap)
{
	char b64[ISTIO_META_HDR_MAX];
	unsigned char raw[ISTIO_META_HDR_MAX];
	Google__Protobuf__Struct *inner = NULL, top;
	Google__Protobuf__Struct__FieldsEntry te[2], *tp[2];
	Google__Protobuf__Value tv[2];
	Google__Protobuf__Any any;
	uint8_t *val = NULL;
	size_t vlen, alen;
	int n, rc;

	/* the node metadata Struct, as the HTTP exchange sends it */
	rc = istio_peer_encode(p, b64, sizeof(b64));
	if (rc < 0)
		return rc;
	n = EVP_DecodeBlock(raw, (const unsigned char *)b64, rc);
	if (n < 0)
		return -EINVAL;
	n -= (rc >= 1 && b64[rc - 1] == '=') + (rc >= 2 && b64[rc - 2] == '=');
	inner = google__protobuf__struct__unpack(NULL, (size_t)n, raw);
	if (!inner)
		return -ENOMEM;
	/* Istio's exchange data: {x-envoy-peer-metadata: the Struct,
	 * x-envoy-peer-metadata-id: the node id} in an Any */
	google__protobuf__struct__init(&top);
	google__protobuf__struct__fields_entry__init(&te[0]);
	google__protobuf__value__init(&tv[0]);
	te[0].key = "x-envoy-peer-metadata";
	te[0].value = &tv[0];
	tv[0].kind_case = GOOGLE__PROTOBUF__VALUE__KIND_STRUCT_VALUE;
	tv[0].struct_value = inner;
	sv_init(&te[1], &tv[1], "x-envoy-peer-metadata-id", node_id ? node_id : "");
	tp[0] = &te[0];
	tp[1] = &te[1];
	top.fields = tp;
	top.n_fields = 2;
	vlen = google__protobuf__struct__get_packed_size(&top);
	val = malloc(vlen ? vlen : 1);
	if (!val) {
		rc = -ENOMEM;
		goto out;
	}
	google__protobuf__struct__pack(&top, val);
	google__protobuf__any__init(&any);
	any.type_url = MX_STRUCT_URL;
	any.value.data = val;
	any.value.len = vlen;
	alen = google__protobuf__any__get_packed_size(&any);
	if (alen + 8 > cap) {
		rc = -ENOSPC;
		goto out;
	}
	out[0] = (uint8_t)(MX_MAGIC >> 24);
	out[1] = (uint8_t)(MX_MAGIC >> 16);
	out[2] = (uint8_t)(MX_MAGIC >> 8);
	out[3] = (uint8_t)MX_MAGIC;
	out[4] = (uint8_t)(alen >> 24);
	out[5] = (uint8_t)(alen >> 16);
	out[6] = (uint8_t)(alen >> 8);
	out[7] = (uint8_t)alen;
	google__protobuf__any__pack(&any, out + 8);
	rc = (int)(alen + 8);
out:
	free(val);
	google__protobuf__struct__free_unpacked(inner, NULL);
	return rc;
}

long istio_peer_mx_size(const uint8_t *p, size_t len)
{
	uint32_t magic, size;

	if (len < 8)
		return 0;
	magic = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
	size = (uint32_t)p[4] << 24 | (uint32_t)p[5] << 16 | (uint32_t)p[6] << 8 | p[7];
	if (magic != MX_MAGIC || size > ISTIO_MX_MAX - 8)
		return -EINVAL;
	return (long)size + 8;
}

int istio_peer_mx_decode(const uint8_t *data, size_t len, struct istio_peer *p)
{
	Google__Protobuf__Any *any = NULL;
	Google__Protobuf__Struct *st = NULL;
	size_t i;
	int rc = -EINVAL;

	memset(p, 0, sizeof(*p));
	any = google__protobuf__any__unpack(NULL, len, data);
	if (!any || !any->type_url || strcmp(any->type_url, MX_STRUCT_URL))
		goto out;
	st = google__protobuf__struct__unpack(NULL, any->value.len, any->value.data);
	if (!st)
		goto out;
	for (i = 0; i < st->n_fields; i++) {
		const Google__Protobuf__Struct__FieldsEntry *e = st->fields[i];

		if (e->key && !strcmp(e->key, "x-envoy-peer-metadata") && e->value &&
		    e->value->kind_case == GOOGLE__PROTOBUF__VALUE__KIND_STRUCT_VALUE && e->value->struct_value) {
			peer_from_struct(e->value->struct_value, p);
			rc = 0;
		}
	}
out:
	if (st)
		google__protobuf__struct__free_unpacked(st, NULL);
	if (any)
		google__protobuf__any__free_unpacked(any, NULL);
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
	st->ccap = st->cap * 4;
	st->cells = calloc(st->ccap, sizeof(*st->cells));
	if (!st->tab || !st->cells) {
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
	st->mx_len = istio_peer_mx_encode(&st->self, node_id, st->mx, sizeof(st->mx));
	rc = 0;
	*out = st;
	st = NULL;
out:
	istio_stats_free(st);
	return rc;
}

int istio_stats_set_workload(struct istio_stats *st, const char *workload)
{
	struct istio_peer p;
	char meta[ISTIO_META_HDR_MAX];
	int rc;

	if (!workload || !*workload)
		return 0;
	p = st->self;
	/* the canonical service fell back on the workload: no label named one */
	if (!p.app[0] && strcmp(p.canon_svc, p.workload) == 0)
		cpy(p.canon_svc, workload, strlen(workload));
	cpy(p.workload, workload, strlen(workload));
	rc = istio_peer_encode(&p, meta, sizeof(meta));
	if (rc < 0)
		return rc;
	st->self = p;
	memcpy(st->meta, meta, sizeof(meta));
	st->mx_len = istio_peer_mx_encode(&st->self, st->meta_id, st->mx, sizeof(st->mx));
	return 0;
}

void istio_stats_free(struct istio_stats *st)
{
	size_t i;

	if (!st)
		return;
	for (i = 0; st->cells && i < st->ccap; i++)
		free(st->cells[i]);
	free(st->cells);
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

const uint8_t *istio_stats_mx(const struct istio_stats *st, size_t *len)
{
	*len = st->mx_len > 0 ? (size_t)st->mx_len : 0;
	return st->mx_len > 0 ? st->mx : NULL;
}

/* istio_stats_peer and istio_stats_peer_mx: one cache, keyed by the
 * bytes (a header's base64 text or the TCP exchange's Any), decoded by
 * dec on first sight */
static const struct istio_peer *peer_cached(struct istio_stats *st, const char *b64, size_t len, int mx);

const struct istio_peer *istio_stats_peer(struct istio_stats *st, const char *b64, size_t len)
{
	return peer_cached(st, b64, len, 0);
}

const struct istio_peer *istio_stats_peer_mx(struct istio_stats *st, const uint8_t *data, size_t len)
{
	return peer_cached(st, (const char *)data, len, 1);
}

static const struct istio_peer *peer_cached(struct istio_stats *st, const char *b64, size_t len, int mx)
{
	uint64_t h = XXH3_64bits_withSeed(b64, len, (uint64_t)mx);
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
	if ((mx ? istio_peer_mx_decode((const uint8_t *)b64, len, &c->p) : istio_peer_decode(b64, len, &c->p)) < 0)
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

/* --- compiled istio.stats configurations (stats.PluginConfig) */

/* The metrics meshproxy reports, in exposition order: a request series
 * feeds the first four, a TCP series the last four. */
enum { IM_REQUESTS, IM_DURATION, IM_REQ_BYTES, IM_RESP_BYTES, IM_TCP_OPENED, IM_TCP_CLOSED, IM_TCP_RECEIVED,
       IM_TCP_SENT, IM_N };
static const char *const im_name[IM_N] = { "requests_total",		   "request_duration_milliseconds",
					   "request_bytes",		   "response_bytes",
					   "tcp_connections_opened_total", "tcp_connections_closed_total",
					   "tcp_received_bytes_total",	   "tcp_sent_bytes_total" };
static const int im_hist[IM_N] = { 0, 1, 1, 1, 0, 0, 0, 0 };

/* Istio's standard tags, in the order our label text lists them. */
enum { T_REPORTER, T_SRC_WL, T_SRC_CSVC, T_SRC_CREV, T_SRC_NS, T_SRC_PRINC, T_SRC_APP, T_SRC_VER, T_SRC_CLUSTER,
       T_DST_WL, T_DST_NS, T_DST_PRINC, T_DST_APP, T_DST_VER, T_DST_SVC, T_DST_CSVC, T_DST_CREV, T_DST_SVC_NAME,
       T_DST_SVC_NS, T_DST_CLUSTER, T_PROTO, T_CODE, T_GRPC, T_FLAGS, T_CSP, T_N };
static const char *const t_name[T_N] = {
	"reporter",
	"source_workload",
	"source_canonical_service",
	"source_canonical_revision",
	"source_workload_namespace",
	"source_principal",
	"source_app",
	"source_version",
	"source_cluster",
	"destination_workload",
	"destination_workload_namespace",
	"destination_principal",
	"destination_app",
	"destination_version",
	"destination_service",
	"destination_canonical_service",
	"destination_canonical_revision",
	"destination_service_name",
	"destination_service_namespace",
	"destination_cluster",
	"request_protocol",
	"response_code",
	"grpc_response_status",
	"response_flags",
	"connection_security_policy",
};

/* What an expression reads (istio_expr_compile). */
enum { EX_LIT, EX_HOST, EX_METHOD, EX_PATH, EX_URL_PATH, EX_HEADER, EX_CODE, EX_SRC_ADDR, EX_SRC_PORT,
       EX_DST_ADDR, EX_DST_PORT, EX_PEER, EX_CLUSTER, EX_ROUTE, EX_STD,
       EX_UNKNOWN /* valid CEL meshproxy does not evaluate: "unknown", as a failed evaluation */ };
/* istio_expr_compile: the tag is left out (counted), the configuration kept */
#define EX_DROP_PARSE (-EBADMSG)
#define EX_DROP_CAP   (-EOVERFLOW)
#define EX_DROPPED    (-1) /* in an ex[] index list: the tag's expression was dropped */

/* Tags left out of configurations loaded, by why (all threads). */
static uint64_t drop_parse, drop_cap;
/* peer fields (upstream_peer.X / downstream_peer.X) */
enum { PF_APP, PF_VERSION, PF_WORKLOAD, PF_NAMESPACE, PF_CLUSTER, PF_SERVICE, PF_REVISION };

struct istio_expr {
	int kind;
	int arg;           /* EX_PEER: PF_* + 16 for upstream; EX_HEADER: header index; EX_STD: T_* */
	char *lit;         /* EX_LIT: the literal (owned) */
	char *text;        /* as written (owned), to find equal ones */
};

#define OV_NONE   -1
#define OV_REMOVE -2

struct istio_mspec {
	int drop;
	signed char over[T_N];                   /* OV_NONE, OV_REMOVE or an expression index */
	struct istio_add { char *name; int ex; } *add; /* tags added, in order (owned; no cap, as Istio) */
	size_t n_add;
};

struct istio_stats_cfg {
	uint64_t id;                             /* hash of the configuration's bytes */
	uint64_t report_ms;
	int disable_host_fallback;
	int plain;                               /* no override at all: the fast path */
	int needs_local;                         /* an expression reads destination.address/port */
	struct istio_mspec m[IM_N];
	struct istio_expr ex[ISTIO_CFG_EXPR_MAX];
	size_t n_ex;
	char *hdr[ISTIO_CFG_HDR_MAX];            /* request.headers['x'] names, lower case (owned) */
	size_t n_hdr;
	size_t n_dropped;                        /* tags left out (istio_stats_cfg_dropped) */
};

static int t_index(const char *name)
{
	int i;

	for (i = 0; i < T_N; i++)
		if (!strcmp(name, t_name[i]))
			return i;
	return -1;
}

static int im_index(const char *name)
{
	int i;

	for (i = 0; i < IM_N; i++)
		if (!strcmp(name, im_name[i]))
			return i;
	return -1;
}

/* "'x'" or "\"x\"": the literal's length, else -1 */
static int quoted(const char *s, size_t n)
{
	if (n >= 2 && (s[0] == '\'' || s[0] == '"') && s[n - 1] == s[0] && !memchr(s + 1, s[0], n - 2) &&
	    !memchr(s + 1, '\\', n - 2))
		return (int)(n - 2);
	return -1;
}

static int peer_field(const char *f)
{
	static const char *const pf[] = { "app", "version", "workload", "namespace", "cluster", "service", "revision" };
	size_t i;

	for (i = 0; i < sizeof(pf) / sizeof(pf[0]); i++)
		if (!strcmp(f, pf[i]))
			return (int)i;
	return -1;
}

/* Compiles one tag expression of Istio's docs into c->ex; the index or
 * -EINVAL (why says which) / -ENOSPC / -ENOMEM. */
static int istio_expr_compile(struct istio_stats_cfg *c, const char *text, char *why, size_t cap)
{
	struct istio_expr x = { 0 };
	const char *written = text;
	char buf[256];
	size_t n, i;
	int q;

	for (i = 0; i < c->n_ex; i++)
		if (!strcmp(c->ex[i].text, text))
			return (int)i;
	/* string(X) is X: every value here is a string already */
	n = strlen(text);
	while (n && (text[n - 1] == ' '))
		n--;
	while (n && *text == ' ') {
		text++;
		n--;
	}
	if (n > 8 && !memcmp(text, "string(", 7) && text[n - 1] == ')') {
		text += 7;
		n -= 8;
	}
	if (n >= sizeof(buf))
		goto bad;
	memcpy(buf, text, n);
	buf[n] = '\0';
	if ((q = quoted(buf, n)) >= 0) {
		x.kind = EX_LIT;
		if (!(x.lit = strndup(buf + 1, (size_t)q)))
			return -ENOMEM;
	} else if (!strcmp(buf, "request.host")) {
		x.kind = EX_HOST;
	} else if (!strcmp(buf, "request.method")) {
		x.kind = EX_METHOD;
	} else if (!strcmp(buf, "request.path")) {
		x.kind = EX_PATH;
	} else if (!strcmp(buf, "request.url_path")) {
		x.kind = EX_URL_PATH;
	} else if (!strcmp(buf, "response.code")) {
		x.kind = EX_CODE;
	} else if (!strcmp(buf, "source.address")) {
		x.kind = EX_SRC_ADDR;
	} else if (!strcmp(buf, "source.port")) {
		x.kind = EX_SRC_PORT;
	} else if (!strcmp(buf, "destination.address")) {
		x.kind = EX_DST_ADDR;
		c->needs_local = 1;
	} else if (!strcmp(buf, "destination.port")) {
		x.kind = EX_DST_PORT;
		c->needs_local = 1;
	} else if (!strcmp(buf, "xds.cluster_name")) {
		x.kind = EX_CLUSTER;
	} else if (!strcmp(buf, "xds.route_name")) {
		x.kind = EX_ROUTE;
	} else if (!strncmp(buf, "request.headers[", 16) && n > 18 && buf[n - 1] == ']' &&
		   (q = quoted(buf + 16, n - 17)) > 0) {
		char *h;

		for (i = 0; i < c->n_hdr; i++)
			if ((int)strlen(c->hdr[i]) == q && !strncasecmp(c->hdr[i], buf + 17, (size_t)q))
				break;
		if (i == c->n_hdr) {
			if (c->n_hdr == ISTIO_CFG_HDR_MAX) {
				snprintf(why, cap, "expression \"%s\": more than %d request headers", written,
					 ISTIO_CFG_HDR_MAX);
				return EX_DROP_CAP;
			}
			if (!(h = strndup(buf + 17, (size_t)q)))
				return -ENOMEM;
			for (i = 0; h[i]; i++)
				h[i] = (char)tolower((unsigned char)h[i]);
			c->hdr[c->n_hdr] = h;
			i = c->n_hdr++;
		}
		x.kind = EX_HEADER;
		x.arg = (int)i;
	} else if ((!strncmp(buf, "upstream_peer.", 14) && peer_field(buf + 14) >= 0) ||
		   (!strncmp(buf, "downstream_peer.", 16) && peer_field(buf + 16) >= 0)) {
		x.kind = EX_PEER;
		x.arg = buf[0] == 'u' ? 16 + peer_field(buf + 14) : peer_field(buf + 16);
	} else {
		goto bad;
	}
store:
	if (c->n_ex == ISTIO_CFG_EXPR_MAX) {
		free(x.lit);
		snprintf(why, cap, "expression \"%s\": more than %d distinct expressions", written, ISTIO_CFG_EXPR_MAX);
		return EX_DROP_CAP;
	}
	if (!(x.text = strdup(written))) {
		free(x.lit);
		return -ENOMEM;
	}
	c->ex[c->n_ex] = x;
	return (int)c->n_ex++;
bad:
	/* outside what meshproxy evaluates: CEL's own parse and build decide
	 * (common/cel.h), as Istio's getOrCreateExpression */
	switch (cel_check(written, buf, sizeof(buf))) {
	case CEL_OK:
		x.kind = EX_UNKNOWN;
		goto store;
	case CEL_PARSE:
		snprintf(why, cap, "Failed to parse expression: %s (%s)", written, buf);
		return EX_DROP_PARSE;
	default:
		snprintf(why, cap, "expression \"%s\": failed to create an expression: %s", written, buf);
		return -EINVAL;
	}
}

/* A tag name as a Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*): any
 * other byte becomes '_' and a leading digit gets a '_' before it, as
 * Envoy's Prometheus output sanitizes tag names.  A malloc'd copy or NULL
 * (out of memory). */
static char *tag_name(const char *key)
{
	size_t n = strlen(key), d = isdigit((unsigned char)key[0]) ? 1 : 0, i;
	char *s = malloc(n + d + 1);

	if (!s)
		return NULL;
	s[0] = '_';
	for (i = 0; i < n; i++)
		s[d + i] = isalnum((unsigned char)key[i]) && !((unsigned char)key[i] & 0x80) ? key[i] : '_';
	s[n + d] = '\0';
	return s;
}

/* One MetricConfig applied to metric i (Istio's Config constructor). */
static int mspec_apply(struct istio_stats_cfg *c, int i, const Stats__MetricConfig *mc, const int *ex)
{
	struct istio_mspec *m = &c->m[i];
	size_t k, j;
	char *name;

	if (mc->drop) {
		m->drop = 1;
		return 0;
	}
	for (k = 0; k < mc->n_tags_to_remove; k++) {
		int t = t_index(mc->tags_to_remove[k]);

		if (t >= 0) /* a tag that is not standard: nothing to remove (as Istio) */
			m->over[t] = OV_REMOVE;
	}
	for (k = 0; k < mc->n_dimensions; k++) {
		int t;

		if (!(name = tag_name(mc->dimensions[k]->key)))
			return -ENOMEM;
		t = t_index(name);
		if (t >= 0) { /* an expression that did not compile: the tag is left out, as Istio */
			m->over[t] = (signed char)(ex[k] == EX_DROPPED ? OV_REMOVE : ex[k]);
			free(name);
			continue;
		}
		if (ex[k] == EX_DROPPED) { /* Istio skips an added tag whose expression did not parse */
			free(name);
			continue;
		}
		for (j = 0; j < m->n_add; j++)
			if (!strcmp(m->add[j].name, name))
				break;
		if (j < m->n_add) {
			m->add[j].ex = ex[k];
			free(name);
			continue;
		}
		{
			struct istio_add *v = realloc(m->add, (m->n_add + 1) * sizeof(*v));

			if (!v) {
				free(name);
				return -ENOMEM;
			}
			m->add = v;
		}
		m->add[m->n_add].name = name;
		m->add[m->n_add++].ex = ex[k];
	}
	return 0;
}

static int dim_cmp(const void *a, const void *b)
{
	const Stats__MetricConfig__DimensionsEntry *const *x = a, *const *y = b;

	return strcmp((*x)->key, (*y)->key);
}

int istio_stats_cfg_new(const uint8_t *data, size_t len, struct istio_stats_cfg **out, char *why, size_t cap)
{
	Stats__PluginConfig *pc = NULL;
	struct istio_stats_cfg *c;
	char note[512];
	int *ex = NULL; /* per dimension of one MetricConfig: its expression or EX_DROPPED */
	size_t i, k;
	int rc = -ENOMEM, j;

	*out = NULL;
	if (cap)
		why[0] = '\0';
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	for (j = 0; j < IM_N; j++)
		memset(c->m[j].over, OV_NONE, sizeof(c->m[j].over));
	pc = stats__plugin_config__unpack(NULL, len, data);
	if (!pc) {
		snprintf(why, cap, "stats.PluginConfig does not decode");
		rc = -EINVAL;
		goto out;
	}
	c->id = XXH3_64bits(data, len);
	c->disable_host_fallback = pc->disable_host_header_fallback;
	c->report_ms = ISTIO_TCP_REPORT_DEFAULT_MS;
	if (pc->tcp_reporting_duration && pc->tcp_reporting_duration->seconds >= 0 &&
	    pc->tcp_reporting_duration->nanos >= 0) {
		c->report_ms = (uint64_t)pc->tcp_reporting_duration->seconds * 1000 +
			       (uint64_t)pc->tcp_reporting_duration->nanos / 1000000;
		if (!c->report_ms)
			c->report_ms = ISTIO_TCP_REPORT_DEFAULT_MS;
	}
	c->plain = pc->n_metrics == 0;
	for (i = 0; i < pc->n_metrics; i++) {
		Stats__MetricConfig *mc = pc->metrics[i];
		int target = -1;

		free(ex);
		ex = mc->n_dimensions ? calloc(mc->n_dimensions, sizeof(*ex)) : NULL;
		if (mc->n_dimensions && !ex) {
			rc = -ENOMEM;
			goto out;
		}
		/* Istio adds tags in the order of their names */
		if (mc->n_dimensions > 1)
			qsort(mc->dimensions, mc->n_dimensions, sizeof(*mc->dimensions), dim_cmp);
		for (k = 0; k < mc->n_dimensions; k++) {
			if (!mc->dimensions[k]->key[0]) {
				snprintf(why, cap, "metric %s: a tag without a name", mc->name[0] ? mc->name : "(all)");
				rc = -EINVAL;
				goto out;
			}
			rc = istio_expr_compile(c, mc->dimensions[k]->value, note, sizeof(note));
			if (rc == EX_DROP_PARSE || rc == EX_DROP_CAP) {
				__atomic_add_fetch(rc == EX_DROP_PARSE ? &drop_parse : &drop_cap, 1, __ATOMIC_RELAXED);
				if (!c->n_dropped++ && cap)
					snprintf(why, cap, "metric %s tag %s: %s", mc->name[0] ? mc->name : "(all)",
						 mc->dimensions[k]->key, note);
				ex[k] = EX_DROPPED;
				continue;
			}
			if (rc < 0) {
				snprintf(why, cap, "%s", note);
				if (rc == -EINVAL && cap) {
					char tmp[512];

					snprintf(tmp, sizeof(tmp), "metric %s tag %s: %s", mc->name[0] ? mc->name : "(all)",
						 mc->dimensions[k]->key, why);
					snprintf(why, cap, "%s", tmp);
				}
				goto out;
			}
			ex[k] = rc;
		}
		if (mc->name[0]) {
			target = im_index(mc->name);
			if (target < 0)
				continue; /* a metric meshproxy does not report (gRPC messages, custom ones) */
		}
		/* "le" is a histogram's bucket label: a second one would make
		 * every bucket line unreadable */
		for (k = 0; k < mc->n_dimensions; k++) {
			if (strcmp(mc->dimensions[k]->key, "le") || (target >= 0 && !im_hist[target]))
				continue;
			snprintf(why, cap, "metric %s: tag le is the histograms' bucket label",
				 mc->name[0] ? mc->name : "(all)");
			rc = -EINVAL;
			goto out;
		}
		for (j = target < 0 ? 0 : target; j < (target < 0 ? IM_N : target + 1); j++) {
			rc = mspec_apply(c, j, mc, ex);
			if (rc < 0)
				goto out;
		}
	}
	rc = 0;
	*out = c;
	c = NULL;
out:
	free(ex);
	if (pc)
		stats__plugin_config__free_unpacked(pc, NULL);
	istio_stats_cfg_free(c);
	return rc;
}

void istio_stats_cfg_free(struct istio_stats_cfg *c)
{
	size_t i, k;

	if (!c)
		return;
	for (i = 0; i < c->n_ex; i++) {
		free(c->ex[i].lit);
		free(c->ex[i].text);
	}
	for (i = 0; i < IM_N; i++) {
		for (k = 0; k < c->m[i].n_add; k++)
			free(c->m[i].add[k].name);
		free(c->m[i].add);
	}
	for (i = 0; i < c->n_hdr; i++)
		free(c->hdr[i]);
	free(c);
}

size_t istio_stats_cfg_dropped(const struct istio_stats_cfg *c)
{
	return c ? c->n_dropped : 0;
}

uint64_t istio_stats_cfg_id(const struct istio_stats_cfg *c)
{
	return c->id;
}

int istio_stats_cfg_needs_local(const struct istio_stats_cfg *c)
{
	return c && c->needs_local;
}

uint64_t istio_stats_cfg_report_ms(const struct istio_stats_cfg *c)
{
	return c ? c->report_ms : ISTIO_TCP_REPORT_DEFAULT_MS;
}

size_t istio_stats_cfg_headers(const struct istio_stats_cfg *c, const char *const **names)
{
	*names = c ? (const char *const *)c->hdr : NULL;
	return c ? c->n_hdr : 0;
}

/* --- the table */

/* appends name="value" to the label text, escaping as the exposition
 * format asks (backslash, double quote, line feed) and writing bytes that
 * are not UTF-8 as U+FFFD (Prometheus refuses a label value that is not
 * UTF-8: one such byte from a client would make the whole scrape fail);
 * v NULL or empty: "unknown" unless raw (then as is).  The text stays
 * within ISTIO_LABELS_MAX: a value is cut between characters, and a label
 * whose name does not fit is left out whole, so the text always parses. */
static void lab_x(char *buf, size_t *off, const char *name, const char *v, size_t vl, int raw)
{
	size_t o = *off, i = 0, nl = strlen(name);

	if (!raw && (!v || !vl)) {
		v = "unknown";
		vl = 7;
	}
	/* ,name=" and the closing quote, before the NUL */
	if (o + 1 + nl + 2 + 1 >= ISTIO_LABELS_MAX)
		return;
	if (o)
		buf[o++] = ',';
	memcpy(buf + o, name, nl);
	o += nl;
	buf[o++] = '=';
	buf[o++] = '"';
	while (i < vl) {
		const unsigned char *c = (const unsigned char *)v + i;
		size_t n = *c < 0x80 ? 1 : mesh_utf8_seq(c, vl - i), w = n;
		const char *put = (const char *)c;

		if (*c == '"' || *c == '\\' || *c == '\n') {
			w = 2;
		} else if (!n) {
			n = 1;
			w = 3;
			put = "\xef\xbf\xbd"; /* U+FFFD */
		}
		if (o + w + 1 >= ISTIO_LABELS_MAX)
			break;
		if (w == 2) {
			buf[o++] = '\\';
			buf[o++] = *c == '\n' ? 'n' : (char)*c;
		} else {
			memcpy(buf + o, put, w);
			o += w;
		}
		i += n;
	}
	buf[o++] = '"';
	buf[o] = '\0';
	*off = o;
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

/* one tag's value: p/len (NULL: unknown), raw: written even when empty */
struct istio_tv {
	const char *p;
	size_t len;
	int raw, absent;
};

static void tv_s(struct istio_tv *t, const char *s)
{
	t->p = s;
	t->len = s ? strlen(s) : 0;
}

/* The standard tags of r (tcp: Istio's TCP label set, without
 * response_code and grpc_response_status); num holds the numbers. */
static void std_tags(const struct istio_stats *st, const struct istio_req *r, int tcp, struct istio_tv *v,
		     char num[2][16])
{
	static const struct istio_peer none;
	const struct istio_peer *src = r->inbound ? (r->peer ? r->peer : &none) : &st->self;
	const struct istio_peer *dst = r->inbound ? &st->self : (r->peer ? r->peer : &none);
	const char *svc = r->service;
	size_t svc_len = svc ? r->service_len : 0, name_len;
	const char *dot, *ns = NULL;
	size_t ns_len = 0;

	memset(v, 0, T_N * sizeof(*v));
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
	tv_s(&v[T_REPORTER], r->inbound ? "destination" : "source");
	tv_s(&v[T_SRC_WL], src->workload);
	tv_s(&v[T_SRC_CSVC], src->canon_svc);
	tv_s(&v[T_SRC_CREV], src->canon_rev);
	tv_s(&v[T_SRC_NS], src->ns);
	tv_s(&v[T_SRC_PRINC], r->inbound ? r->peer_principal : (st->self_principal[0] ? st->self_principal : NULL));
	tv_s(&v[T_SRC_APP], src->app);
	tv_s(&v[T_SRC_VER], src->version);
	tv_s(&v[T_SRC_CLUSTER], src->cluster);
	tv_s(&v[T_DST_WL], dst->workload);
	tv_s(&v[T_DST_NS], dst->ns);
	tv_s(&v[T_DST_PRINC], r->inbound ? (r->mtls && st->self_principal[0] ? st->self_principal : NULL)
					  : r->peer_principal);
	tv_s(&v[T_DST_APP], dst->app);
	tv_s(&v[T_DST_VER], dst->version);
	v[T_DST_SVC].p = svc;
	v[T_DST_SVC].len = svc_len;
	tv_s(&v[T_DST_CSVC], dst->canon_svc);
	tv_s(&v[T_DST_CREV], dst->canon_rev);
	if (r->service_name) {
		/* a catch-all (issue 13): no service, so no namespace but the peer's */
		tv_s(&v[T_DST_SVC_NAME], r->service_name);
		tv_s(&v[T_DST_SVC_NS], dst->ns);
	} else {
		v[T_DST_SVC_NAME].p = svc;
		v[T_DST_SVC_NAME].len = name_len;
		v[T_DST_SVC_NS].p = ns;
		v[T_DST_SVC_NS].len = ns_len;
	}
	tv_s(&v[T_DST_CLUSTER], dst->cluster);
	tv_s(&v[T_PROTO], tcp ? "tcp" : r->grpc ? "grpc" : "http");
	if (tcp) {
		v[T_CODE].absent = v[T_GRPC].absent = 1;
	} else {
		snprintf(num[0], sizeof(num[0]), "%d", r->response_code);
		tv_s(&v[T_CODE], num[0]);
		/* Istio leaves grpc_response_status empty for plain HTTP */
		if (r->grpc_status >= 0)
			snprintf(num[1], sizeof(num[1]), "%d", r->grpc_status);
		else
			num[1][0] = '\0';
		tv_s(&v[T_GRPC], num[1]);
		v[T_GRPC].raw = 1;
	}
	tv_s(&v[T_FLAGS], r->response_flags && *r->response_flags ? r->response_flags : "-");
	/* Istio's source reporter does not know the policy: "unknown" */
	tv_s(&v[T_CSP], !r->inbound ? NULL : r->mtls ? "mutual_tls" : "none");
}

/* The values of c's expressions for r, into vals (each NUL-terminated,
 * "" when unknown). */
static void eval_all(const struct istio_stats_cfg *c, const struct istio_req *r, char vals[][ISTIO_VAL_MAX])
{
	size_t i;

	for (i = 0; i < c->n_ex; i++) {
		const struct istio_expr *x = &c->ex[i];
		const char *p = NULL;
		size_t n = 0;
		char tmp[16];

		switch (x->kind) {
		case EX_LIT:
			p = x->lit;
			n = strlen(p);
			break;
		case EX_HOST:
			p = r->host;
			n = r->host_len;
			break;
		case EX_METHOD:
			p = r->method;
			n = r->method_len;
			break;
		case EX_PATH:
		case EX_URL_PATH:
			p = r->path;
			n = r->path_len;
			if (x->kind == EX_URL_PATH && p) {
				const char *q = memchr(p, '?', n);

				if (q)
					n = (size_t)(q - p);
			}
			break;
		case EX_HEADER:
			if (r->hdr_vals && x->arg < (int)r->n_hdr_vals) {
				p = r->hdr_vals[x->arg].p;
				n = r->hdr_vals[x->arg].len;
			}
			break;
		case EX_CODE:
			n = (size_t)snprintf(tmp, sizeof(tmp), "%d", r->response_code);
			p = tmp;
			break;
		case EX_SRC_ADDR:
			p = r->source_address;
			n = p ? strlen(p) : 0;
			break;
		case EX_DST_ADDR:
			p = r->destination_address;
			n = p ? strlen(p) : 0;
			break;
		case EX_SRC_PORT:
		case EX_DST_PORT: {
			unsigned port = x->kind == EX_SRC_PORT ? r->source_port : r->destination_port;

			if (port) {
				n = (size_t)snprintf(tmp, sizeof(tmp), "%u", port);
				p = tmp;
			}
			break;
		}
		case EX_CLUSTER:
			p = r->cluster;
			n = p ? strlen(p) : 0;
			break;
		case EX_ROUTE:
			p = r->route;
			n = p ? strlen(p) : 0;
			break;
		case EX_PEER: {
			/* upstream_peer is the other side on the client (outbound),
			 * downstream_peer on the server (inbound) */
			const struct istio_peer *pr = (x->arg >= 16) == !r->inbound ? r->peer : NULL;

			if (pr) {
				switch (x->arg & 15) {
				case PF_APP: p = pr->app; break;
				case PF_VERSION: p = pr->version; break;
				case PF_WORKLOAD: p = pr->workload; break;
				case PF_NAMESPACE: p = pr->ns; break;
				case PF_CLUSTER: p = pr->cluster; break;
				case PF_SERVICE: p = pr->canon_svc; break;
				default: p = pr->canon_rev; break;
				}
				n = strlen(p);
			}
			break;
		}
		default:
			break;
		}
		if (n >= ISTIO_VAL_MAX)
			n = ISTIO_VAL_MAX - 1;
		if (n)
			memcpy(vals[i], p, n);
		vals[i][n] = '\0';
	}
}

/* The label text of metric i under spec m (NULL: standard). */
static void render(const struct istio_mspec *m, const struct istio_tv *v, char vals[][ISTIO_VAL_MAX], char *buf,
		   size_t *len)
{
	size_t off = 0, k;
	int t;

	buf[0] = '\0';
	for (t = 0; t < T_N; t++) {
		int o = m ? m->over[t] : OV_NONE;

		if (v[t].absent && o < 0)
			continue;
		if (o == OV_REMOVE)
			continue;
		if (o >= 0)
			lab_x(buf, &off, t_name[t], vals[o], strlen(vals[o]), 0);
		else
			lab_x(buf, &off, t_name[t], v[t].p, v[t].len, v[t].raw);
	}
	for (k = 0; m && k < m->n_add; k++)
		lab_x(buf, &off, m->add[k].name, vals[m->add[k].ex], strlen(vals[m->add[k].ex]), 0);
	*len = off;
}

static void key_str(char *dst, size_t cap, const char *src, size_t n)
{
	if (n >= cap)
		n = cap - 1;
	if (n)
		memcpy(dst, src, n);
}

/* The cell of metric i with this label text, made on first use; NULL
 * without memory (counted as overflow). */
static struct istio_cell *cell_of(struct istio_stats *st, int i, const char *labels, size_t len)
{
	uint64_t h = XXH3_64bits_withSeed(labels, len, (uint64_t)i + 1);
	struct istio_cell *c;
	size_t k;

	for (k = h & (st->ccap - 1);; k = (k + 1) & (st->ccap - 1)) {
		c = st->cells[k];
		if (!c)
			break;
		if (c->hash == h && c->metric == i && c->len == len && !memcmp(c->labels, labels, len))
			return c;
	}
	if (st->ncells * 2 >= st->ccap)
		return NULL; /* cannot happen: at most IM_N / 2 cells per series, sized for it */
	c = calloc(1, sizeof(*c) + len + 1);
	if (!c)
		return NULL;
	c->hash = h;
	c->metric = i;
	c->len = len;
	memcpy(c->labels, labels, len + 1);
	st->cells[k] = c;
	st->ncells++;
	return c;
}

/* The series for r's labels under cfg (tcp: Istio's TCP metrics), made
 * on first use: only then is label text built, once per metric.  NULL
 * past the cap (counted). */
static struct istio_series *series_of(struct istio_stats *st, const struct istio_req *r, int tcp)
{
	const struct istio_stats_cfg *cfg = r->cfg;
	char vals[ISTIO_CFG_EXPR_MAX][ISTIO_VAL_MAX];
	struct istio_key k;
	struct istio_req rr = *r;
	struct istio_series *e;
	struct istio_tv tv[T_N];
	char buf[ISTIO_LABELS_MAX], num[2][16];
	size_t i, off;
	uint64_t h;
	int m, base = tcp ? IM_TCP_OPENED : IM_REQUESTS;

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
	if (cfg && !cfg->plain) {
		/* the configuration and its expressions' values are part of the
		 * series: the same request under another override is another
		 * label set */
		k.cfg = cfg->id;
		if (cfg->n_ex) {
			eval_all(cfg, r, vals);
			for (i = 0; i < cfg->n_ex; i++)
				k.ev = XXH3_64bits_withSeed(vals[i], strlen(vals[i]) + 1, k.ev);
		}
	}
	h = XXH3_64bits(&k, sizeof(k));
	for (i = h & (st->cap - 1);; i = (i + 1) & (st->cap - 1)) {
		e = &st->tab[i];
		if (!e->used)
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
	std_tags(st, &rr, tcp, tv, num);
	memset(e->cell, 0, sizeof(e->cell));
	for (m = 0; m < 4; m++) {
		const struct istio_mspec *ms = cfg && !cfg->plain ? &cfg->m[base + m] : NULL;

		if (ms && ms->drop)
			continue; /* dropped: nothing counted, nothing shown */
		if (m > 0 && !ms && e->cell[0]) {
			/* no override: every metric has the first one's labels */
			e->cell[m] = cell_of(st, base + m, e->cell[0]->labels, e->cell[0]->len);
		} else {
			render(ms, tv, vals, buf, &off);
			e->cell[m] = cell_of(st, base + m, buf, off);
		}
		if (!e->cell[m]) {
			st->overflow++;
			return NULL;
		}
	}
	e->used = 1;
	e->key = k;
	e->hash = h;
	st->n++;
	return e;
}

void istio_stats_record(struct istio_stats *st, const struct istio_req *r)
{
	struct istio_series *e = series_of(st, r, 0);

	if (!e)
		return;
	if (e->cell[0])
		e->cell[0]->count++;
	if (e->cell[1])
		hist_add(&e->cell[1]->h, (double)r->duration_ms);
	if (e->cell[2])
		hist_add(&e->cell[2]->h, (double)r->request_bytes);
	if (e->cell[3])
		hist_add(&e->cell[3]->h, (double)r->response_bytes);
}

void istio_stats_tcp(struct istio_stats *st, const struct istio_req *r, int opened, int closed)
{
	struct istio_series *e = series_of(st, r, 1);

	if (!e)
		return;
	if (e->cell[0])
		e->cell[0]->count += (uint64_t)opened;
	if (e->cell[1])
		e->cell[1]->count += (uint64_t)closed;
	if (e->cell[2])
		e->cell[2]->count += r->request_bytes;
	if (e->cell[3])
		e->cell[3]->count += r->response_bytes;
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
	size_t i;
	int m;

	for (m = 0; m < IM_N; m++) {
		char name[64];

		snprintf(name, sizeof(name), "istio_%s", im_name[m]);
		mesh_buf_printf(out, "# TYPE %s %s\n", name, im_hist[m] ? "histogram" : "counter");
		for (i = 0; i < st->ccap; i++) {
			const struct istio_cell *c = st->cells[i];

			if (!c || c->metric != m)
				continue;
			if (im_hist[m])
				hist_out(out, name, c->labels, &c->h);
			else
				mesh_buf_printf(out, "%s{%s} %llu\n", name, c->labels, (unsigned long long)c->count);
		}
	}
	mesh_buf_printf(out,
			"# TYPE meshproxy_istio_stats_series gauge\nmeshproxy_istio_stats_series %llu\n"
			"# TYPE meshproxy_istio_stats_overflow_total counter\nmeshproxy_istio_stats_overflow_total %llu\n"
			"# TYPE meshproxy_istio_peer_cache_overflow_total counter\n"
			"meshproxy_istio_peer_cache_overflow_total %llu\n"
			"# TYPE meshproxy_istio_stats_tag_expr_dropped_total counter\n"
			"meshproxy_istio_stats_tag_expr_dropped_total{reason=\"parse\"} %llu\n"
			"meshproxy_istio_stats_tag_expr_dropped_total{reason=\"cap\"} %llu\n",
			(unsigned long long)st->n, (unsigned long long)st->overflow,
			(unsigned long long)st->peer_overflow,
			(unsigned long long)__atomic_load_n(&drop_parse, __ATOMIC_RELAXED),
			(unsigned long long)__atomic_load_n(&drop_cap, __ATOMIC_RELAXED));
}

size_t istio_stats_series(const struct istio_stats *st)
{
	return st->n;
}

uint64_t istio_stats_overflow(const struct istio_stats *st)
{
	return st->overflow;
}
