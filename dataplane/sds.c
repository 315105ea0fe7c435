/*
 * sds.c - the secret store of sds.h: Secrets from ADS checked with
 * OpenSSL, kept as PEM text by name with a generation, and the walk over
 * listeners and clusters for the secret names they reference (what the xDS
 * client subscribes to).  A handful of secrets at most (a gateway's
 * credentials): a flat array, searched linearly.
 */
#include "dataplane/sds.h"

#include "common/json.h"
#include "common/log.h"
#include "common/pem.h"
#include "common/str.h"

#include "envoy/extensions/transport_sockets/tls/v3/secret.pb-c.h"
#include "envoy/extensions/transport_sockets/tls/v3/tls.pb-c.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SCOPE "sds"
#define TLS_SOCKET "envoy.transport_sockets.tls"
#define UP_URL "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext"
#define DOWN_URL "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext"

typedef Envoy__Extensions__TransportSockets__Tls__V3__Secret px_secret_msg;
typedef Envoy__Extensions__TransportSockets__Tls__V3__CommonTlsContext px_common_tls;

struct sds_entry {
	struct px_sds_secret pub;   /* pub.name and the PEM texts are owned */
	uint64_t hash;              /* of the resource's bytes: same bytes, same generation */
	char version[64];
	char serial[80];            /* the leaf's (or first CA's) serial, hex */
	time_t not_after;           /* its expiry */
	time_t updated;
};

struct px_sds {
	struct sds_entry *v;
	size_t n;
	unsigned next_gen;          /* the last generation given out */
};

static struct px_sds *sds_default;

void px_sds_set_default(struct px_sds *s)
{
	sds_default = s;
}

struct px_sds *px_sds_default(void)
{
	return sds_default;
}

int px_sds_is_identity(const char *name)
{
	return name && (!strcmp(name, PX_SDS_CERT_NAME) || !strcmp(name, PX_SDS_ROOT_NAME));
}

int px_sds_new(struct px_sds **out)
{
	*out = calloc(1, sizeof(**out));
	return *out ? 0 : -ENOMEM;
}

static void free_key(char *k)
{
	if (k) {
		OPENSSL_cleanse(k, strlen(k));
		free(k);
	}
}

static void entry_cleanup(struct sds_entry *e)
{
	free((char *)e->pub.name);
	free((char *)e->pub.chain_pem);
	free_key((char *)e->pub.key_pem);
	free((char *)e->pub.ca_pem);
	memset(e, 0, sizeof(*e));
}

void px_sds_free(struct px_sds *s)
{
	size_t i;

	if (!s)
		return;
	if (sds_default == s)
		sds_default = NULL;
	for (i = 0; i < s->n; i++)
		entry_cleanup(&s->v[i]);
	free(s->v);
	free(s);
}

static struct sds_entry *find(const struct px_sds *s, const char *name)
{
	size_t i;

	for (i = 0; s && name && i < s->n; i++)
		if (!strcmp(s->v[i].pub.name, name))
			return &s->v[i];
	return NULL;
}

const struct px_sds_secret *px_sds_get(const struct px_sds *s, const char *name)
{
	const struct sds_entry *e = find(s, name);

	return e ? &e->pub : NULL;
}

unsigned px_sds_generation(const struct px_sds *s, const char *name)
{
	const struct sds_entry *e = find(s, name);

	return e ? e->pub.generation : 0;
}

size_t px_sds_count(const struct px_sds *s)
{
	return s ? s->n : 0;
}

/* ---- checking a Secret */

/* An inline DataSource's text (malloc'd, NUL-terminated) into *out. */
static int inline_pem(const Envoy__Config__Core__V3__DataSource *d, const char *what, const char *name, char **out,
		      char *err, size_t cap)
{
	const char *p = NULL;
	size_t len = 0;

	*out = NULL;
	if (d && d->specifier_case == ENVOY__CONFIG__CORE__V3__DATA_SOURCE__SPECIFIER_INLINE_BYTES) {
		p = (const char *)d->inline_bytes.data;
		len = d->inline_bytes.len;
	} else if (d && d->specifier_case == ENVOY__CONFIG__CORE__V3__DATA_SOURCE__SPECIFIER_INLINE_STRING) {
		p = d->inline_string;
		len = strlen(p);
	} else {
		/* a file would be read on the loop; meshd sends only inline bytes */
		snprintf(err, cap, "secret %.200s: %s is not inline bytes or string", name, what);
		return -EINVAL;
	}
	if (len == 0 || len > PX_SDS_MAX_PEM) {
		snprintf(err, cap, "secret %.200s: %s is %s", name, what, len ? "too large" : "empty");
		return -EINVAL;
	}
	*out = strndup(p, len);
	return *out ? 0 : -ENOMEM;
}

static void cert_facts(X509 *x, struct sds_entry *e)
{
	BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
	char *hex = bn ? BN_bn2hex(bn) : NULL;
	struct tm tm;

	mesh_str_copy(e->serial, sizeof(e->serial), hex ? hex : "");
	memset(&tm, 0, sizeof(tm));
	e->not_after = ASN1_TIME_to_tm(X509_get0_notAfter(x), &tm) == 1 ? timegm(&tm) : 0;
	OPENSSL_free(hex);
	BN_free(bn);
}

/* Parses r into e (owned texts; name, hash and version set): -EINVAL with
 * err for anything sds.h says rejects, -ENOMEM. */
static int check_secret(const struct px_resource *r, struct sds_entry *e, char *err, size_t cap)
{
	px_secret_msg *m = NULL;
	STACK_OF(X509) *certs = NULL;
	EVP_PKEY *key = NULL;
	char why[160];
	int rc = -EINVAL;

	memset(e, 0, sizeof(*e));
	if (r->type != XDS_SECRET) {
		snprintf(err, cap, "%.200s is not a Secret", r->name);
		return -EINVAL;
	}
	/* decoded here and freed at once: the snapshot's cache would keep the
	 * decoded message (and the key in it) for as long as nothing sheds it */
	m = envoy__extensions__transport_sockets__tls__v3__secret__unpack(NULL, r->len, r->bytes);
	if (!m) {
		snprintf(err, cap, "secret %.200s does not decode", r->name);
		return -MESH_EPARSE;
	}
	if (!(e->pub.name = strdup(r->name))) {
		rc = -ENOMEM;
		goto out;
	}
	e->hash = r->hash;
	mesh_str_copy(e->version, sizeof(e->version), r->version);
	switch (m->type_case) {
	case ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__SECRET__TYPE_TLS_CERTIFICATE: {
		const Envoy__Extensions__TransportSockets__Tls__V3__TlsCertificate *t = m->tls_certificate;

		if ((rc = inline_pem(t->certificate_chain, "certificate_chain", r->name, (char **)&e->pub.chain_pem,
				     err, cap)) < 0 ||
		    (rc = inline_pem(t->private_key, "private_key", r->name, (char **)&e->pub.key_pem, err, cap)) < 0)
			goto out;
		rc = mesh_pem_read_certs(e->pub.chain_pem, strlen(e->pub.chain_pem), &certs);
		if (rc == 0)
			rc = mesh_pem_read_key(e->pub.key_pem, strlen(e->pub.key_pem), &key);
		if (rc < 0) {
			snprintf(err, cap, "secret %.200s: %s", r->name,
				 certs ? "the private key does not parse" : "the certificate chain does not parse");
			rc = rc == -ENOMEM ? rc : -EINVAL;
			goto out;
		}
		if (X509_check_private_key(sk_X509_value(certs, 0), key) != 1) {
			snprintf(err, cap, "secret %.200s: the private key does not match the certificate (%s)", r->name,
				 mesh_pem_ssl_reason(why, sizeof(why)));
			rc = -EINVAL;
			goto out;
		}
		break;
	}
	case ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__SECRET__TYPE_VALIDATION_CONTEXT:
		if ((rc = inline_pem(m->validation_context->trusted_ca, "trusted_ca", r->name, (char **)&e->pub.ca_pem,
				     err, cap)) < 0)
			goto out;
		rc = mesh_pem_read_certs(e->pub.ca_pem, strlen(e->pub.ca_pem), &certs);
		if (rc < 0) {
			snprintf(err, cap, "secret %.200s: trusted_ca does not parse", r->name);
			rc = rc == -ENOMEM ? rc : -EINVAL;
			goto out;
		}
		break;
	default:
		snprintf(err, cap, "secret %.200s is neither a tls_certificate nor a validation_context", r->name);
		rc = -EINVAL;
		goto out;
	}
	cert_facts(sk_X509_value(certs, 0), e);
	e->updated = time(NULL);
	rc = 0;
out:
	EVP_PKEY_free(key);
	sk_X509_pop_free(certs, X509_free);
	protobuf_c_message_free_unpacked(&m->base, NULL);
	if (rc < 0)
		entry_cleanup(e);
	return rc;
}

int px_sds_check(const struct px_sds *s, const struct px_resource *r, char *err, size_t cap)
{
	const struct sds_entry *old = s ? find(s, r->name) : NULL;
	struct sds_entry tmp;
	int rc;

	if (old && old->hash == r->hash)
		return 0; /* the bytes stored: checked when they came */
	rc = check_secret(r, &tmp, err, cap);
	if (rc == 0)
		entry_cleanup(&tmp);
	return rc;
}

int px_sds_update(struct px_sds *s, const struct px_resource *const *v, size_t n, char *err, size_t cap)
{
	struct sds_entry *fresh = NULL;
	size_t i, k = 0, grow = 0;
	int rc = 0;

	if (!n)
		return 0;
	fresh = calloc(n, sizeof(*fresh));
	if (!fresh) {
		rc = -ENOMEM;
		goto out;
	}
	/* check everything first: a rejected update changes nothing */
	for (i = 0; i < n && rc == 0; i++) {
		const struct sds_entry *old = find(s, v[i]->name);

		if (old && old->hash == v[i]->hash)
			continue; /* same bytes: same generation */
		if ((rc = check_secret(v[i], &fresh[k], err, cap)) < 0)
			break;
		if (!old)
			grow++;
		k++;
	}
	if (rc < 0)
		goto out;
	if (grow) {
		struct sds_entry *nv = realloc(s->v, (s->n + grow) * sizeof(*nv));

		if (!nv) {
			rc = -ENOMEM;
			goto out;
		}
		s->v = nv;
	}
	for (i = 0; i < k; i++) {
		struct sds_entry *e = find(s, fresh[i].pub.name);

		if (e)
			entry_cleanup(e);
		else
			e = &s->v[s->n++];
		*e = fresh[i];
		e->pub.generation = ++s->next_gen;
		memset(&fresh[i], 0, sizeof(fresh[i]));
		log_info(SCOPE, "secret %s (version %s, serial %s): generation %u", e->pub.name, e->version, e->serial,
			 e->pub.generation);
	}
out:
	for (i = 0; fresh && i < n; i++)
		if (fresh[i].pub.name)
			entry_cleanup(&fresh[i]);
	free(fresh);
	return rc;
}

void px_sds_retain(struct px_sds *s, const struct px_resource *const *v, size_t n)
{
	size_t i, j, w = 0;

	if (!s)
		return;
	for (i = 0; i < s->n; i++) {
		int keep = 0;

		for (j = 0; j < n && !keep; j++)
			keep = !strcmp(v[j]->name, s->v[i].pub.name);
		if (!keep) {
			log_info(SCOPE, "secret %s dropped: nothing references it any more", s->v[i].pub.name);
			entry_cleanup(&s->v[i]);
			continue;
		}
		if (w != i)
			s->v[w] = s->v[i];
		w++;
	}
	s->n = w;
}

/* ---- the names listeners and clusters reference */

static int common_names(const px_common_tls *c, px_sds_name_cb cb, void *ctx)
{
	const Envoy__Extensions__TransportSockets__Tls__V3__SdsSecretConfig *vc = NULL;
	size_t i;
	int rc = 0;

	if (!c)
		return 0;
	for (i = 0; i < c->n_tls_certificate_sds_secret_configs && rc == 0; i++) {
		const char *name = c->tls_certificate_sds_secret_configs[i]->name;

		if (name && *name && !px_sds_is_identity(name))
			rc = cb(ctx, name);
	}
	if (c->validation_context_type_case ==
	    ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__COMMON_TLS_CONTEXT__VALIDATION_CONTEXT_TYPE_VALIDATION_CONTEXT_SDS_SECRET_CONFIG)
		vc = c->validation_context_sds_secret_config;
	else if (c->validation_context_type_case ==
		 ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__COMMON_TLS_CONTEXT__VALIDATION_CONTEXT_TYPE_COMBINED_VALIDATION_CONTEXT)
		vc = c->combined_validation_context->validation_context_sds_secret_config;
	if (rc == 0 && vc && vc->name && *vc->name && !px_sds_is_identity(vc->name))
		rc = cb(ctx, vc->name);
	return rc;
}

static int socket_names(const Envoy__Config__Core__V3__TransportSocket *ts, px_sds_name_cb cb, void *ctx)
{
	const Google__Protobuf__Any *any;
	int rc = 0;

	if (!ts || !ts->name || strcmp(ts->name, TLS_SOCKET) ||
	    ts->config_type_case != ENVOY__CONFIG__CORE__V3__TRANSPORT_SOCKET__CONFIG_TYPE_TYPED_CONFIG || !ts->typed_config)
		return 0;
	any = ts->typed_config;
	if (any->type_url && !strcmp(any->type_url, UP_URL)) {
		Envoy__Extensions__TransportSockets__Tls__V3__UpstreamTlsContext *u =
			envoy__extensions__transport_sockets__tls__v3__upstream_tls_context__unpack(NULL, any->value.len,
												    any->value.data);

		if (!u)
			return -MESH_EPARSE;
		rc = common_names(u->common_tls_context, cb, ctx);
		protobuf_c_message_free_unpacked(&u->base, NULL);
	} else if (any->type_url && !strcmp(any->type_url, DOWN_URL)) {
		Envoy__Extensions__TransportSockets__Tls__V3__DownstreamTlsContext *d =
			envoy__extensions__transport_sockets__tls__v3__downstream_tls_context__unpack(
				NULL, any->value.len, any->value.data);

		if (!d)
			return -MESH_EPARSE;
		rc = common_names(d->common_tls_context, cb, ctx);
		protobuf_c_message_free_unpacked(&d->base, NULL);
	}
	return rc;
}

int px_sds_listener_names(const Envoy__Config__Listener__V3__Listener *l, px_sds_name_cb cb, void *ctx)
{
	size_t i;
	int rc = 0;

	if (!l)
		return -ENOMEM;
	for (i = 0; i < l->n_filter_chains && rc == 0; i++)
		if (l->filter_chains[i])
			rc = socket_names(l->filter_chains[i]->transport_socket, cb, ctx);
	if (rc == 0 && l->default_filter_chain)
		rc = socket_names(l->default_filter_chain->transport_socket, cb, ctx);
	return rc;
}

int px_sds_cluster_names(const Envoy__Config__Cluster__V3__Cluster *c, px_sds_name_cb cb, void *ctx)
{
	size_t i;
	int rc;

	if (!c)
		return -ENOMEM;
	rc = socket_names(c->transport_socket, cb, ctx);
	for (i = 0; i < c->n_transport_socket_matches && rc == 0; i++)
		if (c->transport_socket_matches[i])
			rc = socket_names(c->transport_socket_matches[i]->transport_socket, cb, ctx);
	return rc;
}

/* ---- the same from encoded bytes: only the transport sockets decoded */

/* Calls fn(arg, data, len) for each length-delimited field number num at
 * the top level of the message in b.  -MESH_EPARSE for bytes that are not
 * a message; fn's negative return stops the walk. */
static int pb_each(const uint8_t *b, size_t len, uint32_t num,
		   int (*fn)(void *arg, const uint8_t *d, size_t n), void *arg)
{
	size_t i = 0;
	int rc = 0;

	while (i < len && rc == 0) {
		uint64_t key = 0, v = 0;
		unsigned shift = 0;

		do {
			if (i >= len || shift > 63)
				return -MESH_EPARSE;
			key |= (uint64_t)(b[i] & 0x7f) << shift;
			shift += 7;
		} while (b[i++] & 0x80);
		switch (key & 7) {
		case 0: /* varint */
			do {
				if (i >= len)
					return -MESH_EPARSE;
			} while (b[i++] & 0x80);
			break;
		case 1:
			if (len - i < 8)
				return -MESH_EPARSE;
			i += 8;
			break;
		case 5:
			if (len - i < 4)
				return -MESH_EPARSE;
			i += 4;
			break;
		case 2:
			shift = 0;
			do {
				if (i >= len || shift > 63)
					return -MESH_EPARSE;
				v |= (uint64_t)(b[i] & 0x7f) << shift;
				shift += 7;
			} while (b[i++] & 0x80);
			if (v > len - i)
				return -MESH_EPARSE;
			if ((key >> 3) == num)
				rc = fn(arg, b + i, (size_t)v);
			i += (size_t)v;
			break;
		default:
			return -MESH_EPARSE; /* groups: not in these messages */
		}
	}
	return rc;
}

struct walk {
	px_sds_name_cb cb;
	void *ctx;
	const uint8_t *p; /* a field found by take() */
	size_t n;
	int found;
};

static int take(void *arg, const uint8_t *d, size_t n)
{
	struct walk *w = arg;

	w->p = d;
	w->n = n;
	w->found = 1;
	return 0;
}

/* A TransportSocket's bytes (name 1, typed_config 3: Any type_url 1, value 2). */
static int socket_bytes(void *arg, const uint8_t *d, size_t n)
{
	struct walk *w = arg, f = { 0 };
	Envoy__Config__Core__V3__TransportSocket ts = ENVOY__CONFIG__CORE__V3__TRANSPORT_SOCKET__INIT;
	Google__Protobuf__Any any = GOOGLE__PROTOBUF__ANY__INIT;
	char url[sizeof(DOWN_URL) > sizeof(UP_URL) ? sizeof(DOWN_URL) : sizeof(UP_URL)];
	const uint8_t *a;
	size_t an;
	int rc;

	if ((rc = pb_each(d, n, 1, take, &f)) < 0)
		return rc;
	if (!f.found || f.n != sizeof(TLS_SOCKET) - 1 || memcmp(f.p, TLS_SOCKET, f.n))
		return 0;
	f.found = 0;
	if ((rc = pb_each(d, n, 3, take, &f)) < 0 || !f.found)
		return rc;
	a = f.p;
	an = f.n;
	f.found = 0;
	if ((rc = pb_each(a, an, 1, take, &f)) < 0 || !f.found || f.n >= sizeof(url))
		return rc;
	memcpy(url, f.p, f.n);
	url[f.n] = '\0';
	f.found = 0;
	if ((rc = pb_each(a, an, 2, take, &f)) < 0)
		return rc;
	/* the decoded walk over a socket holding just that Any */
	ts.name = TLS_SOCKET;
	ts.config_type_case = ENVOY__CONFIG__CORE__V3__TRANSPORT_SOCKET__CONFIG_TYPE_TYPED_CONFIG;
	ts.typed_config = &any;
	any.type_url = url;
	any.value.data = f.found ? (uint8_t *)f.p : NULL;
	any.value.len = f.found ? f.n : 0;
	return socket_names(&ts, w->cb, w->ctx);
}

/* A TransportSocketMatch's or FilterChain's bytes: its transport_socket. */
static int match_bytes(void *arg, const uint8_t *d, size_t n)
{
	return pb_each(d, n, 3, socket_bytes, arg);
}

static int chain_bytes(void *arg, const uint8_t *d, size_t n)
{
	return pb_each(d, n, 6, socket_bytes, arg);
}

int px_sds_cluster_names_bytes(const uint8_t *b, size_t len, px_sds_name_cb cb, void *ctx)
{
	struct walk w = { cb, ctx, NULL, 0, 0 };
	int rc = pb_each(b, len, 24, socket_bytes, &w);

	return rc < 0 ? rc : pb_each(b, len, 43, match_bytes, &w);
}

int px_sds_listener_names_bytes(const uint8_t *b, size_t len, px_sds_name_cb cb, void *ctx)
{
	struct walk w = { cb, ctx, NULL, 0, 0 };
	int rc = pb_each(b, len, 3, chain_bytes, &w);

	return rc < 0 ? rc : pb_each(b, len, 25, chain_bytes, &w);
}

/* ---- the admin dump */

static void put_time(struct mesh_buf *b, const char *key, time_t t)
{
	struct tm tm;
	char s[32];

	gmtime_r(&t, &tm);
	strftime(s, sizeof(s), "%Y-%m-%dT%H:%M:%SZ", &tm);
	mesh_buf_printf(b, "\"%s\": \"%s\"", key, s);
}

size_t px_sds_dump_entries(const struct px_sds *s, struct mesh_buf *b, int first)
{
	size_t i;

	for (i = 0; s && i < s->n; i++) {
		const struct sds_entry *e = &s->v[i];

		mesh_buf_puts(b, first && i == 0 ? "\n    {\"name\": " : ",\n    {\"name\": ");
		json_put_string(b, e->pub.name);
		mesh_buf_puts(b, ", \"version_info\": ");
		json_put_string(b, e->version);
		mesh_buf_puts(b, ", ");
		put_time(b, "last_updated", e->updated);
		mesh_buf_printf(b, ", \"generation\": %u, \"secret\": {\"@type\": "
				   "\"type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret\", \"name\": ",
				e->pub.generation);
		json_put_string(b, e->pub.name);
		/* never the PEM: the certificate's serial and expiry say which
		 * one is in use, the key is redacted as Envoy redacts it */
		mesh_buf_puts(b, e->pub.chain_pem ? ", \"tls_certificate\": {\"certificate_chain\": {\"serial_number\": "
						  : ", \"validation_context\": {\"trusted_ca\": {\"serial_number\": ");
		json_put_string(b, e->serial);
		mesh_buf_puts(b, ", ");
		put_time(b, "expiration_time", e->not_after);
		mesh_buf_puts(b, e->pub.chain_pem ? "}, \"private_key\": {\"inline_string\": \"[redacted]\"}}}}" : "}}}}");
	}
	return s ? s->n : 0;
}
