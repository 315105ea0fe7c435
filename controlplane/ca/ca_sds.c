/*
 * ca_sds.c - meshd's SDS provider (see ca_sds.h for what is served to
 * whom, and the key trade-off).
 *
 * The ADS core (controlplane/xds/ads.c) hands each change of a stream's
 * Secret names to ca_sds_want() on the xDS thread; it only queues.  One
 * worker thread takes the queue: per stream it authenticates once (the
 * bearer token through the CA's authenticator, the node's namespace and
 * service account against it), builds the Secrets asked for and answers
 * with xds_server_secret_reply().  It keeps, per stream, the "default"
 * certificate it issued and re-issues it at half its lifetime, answering
 * again with the same request number: the core pushes the new version.
 * A release (the stream ended) forgets the stream.
 *
 * Ownership: requests are owned by the queue until the worker takes them;
 * entries and their key text belong to the worker alone.
 */
#include "controlplane/ca/ca_sds.h"

#include "common/err.h"
#include "common/log.h"
#include "common/queue.h"

#include "envoy/config/core/v3/base.pb-c.h"
#include "envoy/extensions/transport_sockets/tls/v3/common.pb-c.h"
#include "envoy/extensions/transport_sockets/tls/v3/secret.pb-c.h"

#include <openssl/crypto.h>

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SCOPE "sds"

/* A renewal that failed is tried again this much later. */
#define CA_SDS_RETRY_SECONDS 5

/* What the worker knows of one stream. */
struct sds_entry {
	struct sds_entry *next;
	uint64_t stream;
	uint64_t seq;                /* the latest request's: answers carry it */
	char **names;                /* the request's names (taken from it) */
	size_t nnames;
	int verified;                /* an authenticated identity, checked against the node */
	struct ca_identity id;
	char *chain, *key;           /* "default" as last issued; NULL: not yet */
	struct timespec refresh;     /* monotonic: re-issue "default" then (0: nothing to rotate) */
	uint64_t unserved;           /* entry_answer: hash of the names it could not serve (0: none) */
};

struct ca_sds {
	struct ca_sds_config cfg;
	pthread_t thread;
	int started;
	pthread_mutex_t lock;        /* queue, stop, srv, issued */
	pthread_cond_t cond;
	struct mesh_queue_item *head, **tail; /* xds_secret_req.qi, oldest first */
	int stop;
	int refresh;                 /* ca_sds_refresh(): re-read credentialName Secrets */
	struct xds_server *srv;
	uint64_t issued;
	struct sds_entry *entries;   /* worker only */
};

void ca_sds_tls_cleanup(struct ca_sds_tls *t)
{
	if (!t)
		return;
	free(t->cert);
	if (t->key)
		OPENSSL_clear_free(t->key, strlen(t->key));
	free(t->cacert);
	memset(t, 0, sizeof(*t));
}

static void entry_drop_cert(struct sds_entry *e)
{
	free(e->chain);
	if (e->key)
		OPENSSL_clear_free(e->key, strlen(e->key));
	e->chain = e->key = NULL;
}

static void entry_free(struct sds_entry *e)
{
	size_t i;

	if (!e)
		return;
	entry_drop_cert(e);
	for (i = 0; i < e->nnames; i++)
		free(e->names[i]);
	free(e->names);
	free(e);
}

static int ts_before(const struct timespec *a, const struct timespec *b)
{
	return a->tv_sec < b->tv_sec || (a->tv_sec == b->tv_sec && a->tv_nsec < b->tv_nsec);
}

/* Hand an answer to the server (set: a reference is taken there). */
static void sds_reply(struct ca_sds *s, uint64_t stream, uint64_t seq, struct xds_snapshot *set,
		      enum xds_ads_status code, const char *msg)
{
	struct xds_server *srv;

	if (s->cfg.reply) {
		s->cfg.reply(s->cfg.reply_ctx, stream, seq, set, code, msg);
		return;
	}
	pthread_mutex_lock(&s->lock);
	srv = s->srv;
	pthread_mutex_unlock(&s->lock);
	if (srv)
		xds_server_secret_reply(srv, stream, seq, set, code, msg);
}

/* ------------------------------------------------------------------ */
/* building Secrets */

/* Add Secret msg under name to set; the encoded bytes are cleansed after
 * the copy (they may hold a key).  Returns 0 or a negative code. */
static int add_secret(struct xds_snapshot *set, Envoy__Extensions__TransportSockets__Tls__V3__Secret *msg)
{
	size_t len = envoy__extensions__transport_sockets__tls__v3__secret__get_packed_size(msg);
	uint8_t *wire = malloc(len ? len : 1);
	int rc;

	if (!wire)
		return -ENOMEM;
	envoy__extensions__transport_sockets__tls__v3__secret__pack(msg, wire);
	rc = xds_snapshot_add(set, XDS_SECRET, msg->name, wire, len);
	OPENSSL_clear_free(wire, len ? len : 1);
	return rc;
}

static void inline_pem(Envoy__Config__Core__V3__DataSource *ds, const char *pem)
{
	ds->specifier_case = ENVOY__CONFIG__CORE__V3__DATA_SOURCE__SPECIFIER_INLINE_BYTES;
	ds->inline_bytes.data = (uint8_t *)pem;
	ds->inline_bytes.len = strlen(pem);
}

/* A TlsCertificate Secret name = (chain, key). */
static int add_tls_cert(struct xds_snapshot *set, const char *name, const char *chain, const char *key)
{
	Envoy__Extensions__TransportSockets__Tls__V3__Secret sec = ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__SECRET__INIT;
	Envoy__Extensions__TransportSockets__Tls__V3__TlsCertificate tc =
		ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__TLS_CERTIFICATE__INIT;
	Envoy__Config__Core__V3__DataSource c = ENVOY__CONFIG__CORE__V3__DATA_SOURCE__INIT;
	Envoy__Config__Core__V3__DataSource k = ENVOY__CONFIG__CORE__V3__DATA_SOURCE__INIT;

	inline_pem(&c, chain);
	inline_pem(&k, key);
	tc.certificate_chain = &c;
	tc.private_key = &k;
	sec.name = (char *)name;
	sec.type_case = ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__SECRET__TYPE_TLS_CERTIFICATE;
	sec.tls_certificate = &tc;
	return add_secret(set, &sec);
}

/* A CertificateValidationContext Secret name trusting roots. */
static int add_validation(struct xds_snapshot *set, const char *name, const char *roots)
{
	Envoy__Extensions__TransportSockets__Tls__V3__Secret sec = ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__SECRET__INIT;
	Envoy__Extensions__TransportSockets__Tls__V3__CertificateValidationContext vc =
		ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__CERTIFICATE_VALIDATION_CONTEXT__INIT;
	Envoy__Config__Core__V3__DataSource ca = ENVOY__CONFIG__CORE__V3__DATA_SOURCE__INIT;

	inline_pem(&ca, roots);
	vc.trusted_ca = &ca;
	sec.name = (char *)name;
	sec.type_case = ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__SECRET__TYPE_VALIDATION_CONTEXT;
	sec.validation_context = &vc;
	return add_secret(set, &sec);
}

/* Issue e's "default" when it has none or its refresh time has come. */
static int entry_issue(struct ca_sds *s, struct sds_entry *e, const struct timespec *now)
{
	char err[CA_ERR_CAP] = "";
	int64_t not_after = 0, half;
	char *chain = NULL, *key = NULL;
	int rc;

	if (e->chain && (e->refresh.tv_sec == 0 || ts_before(now, &e->refresh)))
		return 0;
	rc = ca_issue_workload(s->cfg.ca, e->id.ns, e->id.sa, s->cfg.ttl_seconds, &chain, &key, &not_after, err,
			       sizeof(err));
	if (rc < 0) {
		log_error(SCOPE, "stream %llu: cannot issue a certificate for ns/%s/sa/%s: %s",
			  (unsigned long long)e->stream, e->id.ns, e->id.sa, err[0] ? err : mesh_strerror(rc));
		return rc;
	}
	entry_drop_cert(e);
	e->chain = chain;
	e->key = key;
	/* renewed at half its lifetime, counted from now (as the holder of
	 * a CreateCertificate certificate does) */
	half = (not_after - (int64_t)time(NULL)) / 2;
	if (half < 1)
		half = 1;
	e->refresh = *now;
	e->refresh.tv_sec += half;
	pthread_mutex_lock(&s->lock);
	s->issued++;
	pthread_mutex_unlock(&s->lock);
	log_info(SCOPE, "stream %llu: issued \"default\" for ns/%s/sa/%s, renewed in %llds",
		 (unsigned long long)e->stream, e->id.ns, e->id.sa, (long long)half);
	return 0;
}

/* name is a credentialName of the caller's namespace ("kubernetes://N",
 * or a bare name; "-cacert" asks for its CA): add it when the lookup
 * finds it with what that form needs.  When it cannot, why (cap bytes)
 * says so for the operator: a name left out of the answer is otherwise
 * only a TLS handshake the proxy closes. */
static int add_credential(struct ca_sds *s, struct sds_entry *e, struct xds_snapshot *set, const char *name,
			  char *why, size_t cap)
{
	struct ca_sds_tls tls = { 0 };
	const char *base = name;
	char obj[CA_MAX_NAME_LEN + 1];
	size_t n, sfx = strlen(CA_SDS_CACERT_SUFFIX);
	int cacert = 0, rc = 0;

	why[0] = '\0';
	if (!s->cfg.lookup) {
		snprintf(why, cap, "meshd reads no credentialName Secrets here");
		goto out;
	}
	if (strncmp(base, CA_SDS_K8S_PREFIX, strlen(CA_SDS_K8S_PREFIX)) == 0)
		base += strlen(CA_SDS_K8S_PREFIX);
	n = strlen(base);
	/* "NS/NAME" or anything not a plain object name: never another namespace's */
	if (n == 0 || strchr(base, '/')) {
		snprintf(why, cap, "not a Secret name of the proxy's namespace %s", e->id.ns);
		goto out;
	}
	if (n > sfx && strcmp(base + n - sfx, CA_SDS_CACERT_SUFFIX) == 0) {
		cacert = 1;
		n -= sfx;
	}
	if (n > CA_MAX_NAME_LEN) {
		snprintf(why, cap, "name longer than %d characters", CA_MAX_NAME_LEN);
		goto out;
	}
	/* istiod's GetCaCert: a Secret named "NAME-cacert" first, then NAME's */
	rc = -ENOENT;
	if (cacert && strlen(base) <= CA_MAX_NAME_LEN) {
		rc = s->cfg.lookup(s->cfg.lookup_ctx, e->id.ns, base, &tls);
		if (rc == 0 && !tls.cacert) {
			ca_sds_tls_cleanup(&tls);
			rc = -ENOENT;
		}
	}
	memcpy(obj, base, n);
	obj[n] = '\0';
	if (rc == -ENOENT)
		rc = s->cfg.lookup(s->cfg.lookup_ctx, e->id.ns, obj, &tls);
	if (rc == -ENOENT) {
		/* Istio reads credentialName Secrets in the gateway's own namespace */
		if (cacert)
			snprintf(why, cap, "no Secret %s/%s-cacert nor %s/%s with ca.crt (or cacert)", e->id.ns, obj,
				 e->id.ns, obj);
		else
			snprintf(why, cap, "no Secret %s/%s (credentialName Secrets are read in the namespace of "
				 "the proxy using them)", e->id.ns, obj);
		rc = 0;
		goto out;
	}
	if (rc < 0) {
		snprintf(why, cap, "reading Secret %s/%s: %s", e->id.ns, obj, mesh_strerror(rc));
		goto out;
	}
	if (cacert && tls.cacert)
		rc = add_validation(set, name, tls.cacert);
	else if (!cacert && tls.cert && tls.key)
		rc = add_tls_cert(set, name, tls.cert, tls.key);
	else
		snprintf(why, cap, "Secret %s/%s has no %s", e->id.ns, obj,
			 cacert ? "ca.crt (or cacert)" : "tls.crt and tls.key (or cert and key)");
out:
	ca_sds_tls_cleanup(&tls);
	return rc;
}

/* One more name e asked for and is not sent (why): fold it into the hash of
 * this answer's unserved names (FNV-1a) and warn, unless the last answer
 * left out the very same ones, so that a Secret missing for hours is one
 * line per change, not one per config push. */
static uint64_t unserved_note(const struct sds_entry *e, uint64_t h, const char *name, const char *why)
{
	const char *p;

	if (!h)
		h = 1469598103934665603ULL;
	for (p = name; *p; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ULL;
	h = (h ^ 0xff) * 1099511628211ULL;
	if (h != e->unserved)
		log_warn(SCOPE, "stream %llu (ns/%s/sa/%s): Secret \"%s\" not sent: %s; TLS that needs it fails "
			 "until it is there", (unsigned long long)e->stream, e->id.ns, e->id.sa, name, why);
	return h;
}

/* Build and send what e asks for (an empty set without an identity). */
static void entry_answer(struct ca_sds *s, struct sds_entry *e, const struct timespec *now)
{
	struct xds_snapshot *set = xds_snapshot_new();
	uint64_t unserved = 0;
	size_t i;
	int rc = set ? 0 : -ENOMEM;

	for (i = 0; rc == 0 && e->verified && i < e->nnames && i < CA_SDS_MAX_NAMES; i++) {
		const char *name = e->names[i];
		char why[4 * CA_MAX_NAME_LEN + 128] = ""; /* room for namespace and object names in full */

		if (strcmp(name, CA_SDS_CERT_NAME) == 0) {
			rc = entry_issue(s, e, now);
			if (rc == 0)
				rc = add_tls_cert(set, name, e->chain, e->key);
		} else if (strcmp(name, CA_SDS_ROOT_NAME) == 0) {
			rc = add_validation(set, name, ca_root_pem(s->cfg.ca));
		} else {
			rc = add_credential(s, e, set, name, why, sizeof(why));
		}
		if (rc == 0 && why[0])
			unserved = unserved_note(e, unserved, name, why);
	}
	if (rc == 0 && e->unserved && !unserved)
		log_info(SCOPE, "stream %llu (ns/%s/sa/%s): every Secret asked for is served now",
			 (unsigned long long)e->stream, e->id.ns, e->id.sa);
	if (rc == 0)
		e->unserved = unserved;
	if (e->nnames > CA_SDS_MAX_NAMES)
		log_warn(SCOPE, "stream %llu: %zu Secret names asked; only the first %d are looked at",
			 (unsigned long long)e->stream, e->nnames, CA_SDS_MAX_NAMES);
	if (rc < 0) {
		/* the client keeps what it has; the next request or rotation retries */
		log_error(SCOPE, "stream %llu: cannot build its Secrets: %s", (unsigned long long)e->stream,
			  mesh_strerror(rc));
		goto out;
	}
	xds_snapshot_seal(set);
	sds_reply(s, e->stream, e->seq, set, XDS_ADS_STATUS_OK, NULL);
out:
	xds_snapshot_unref(set);
}

/* ------------------------------------------------------------------ */
/* authentication */

/* ns and sa of spiffe://TD/ns/NS/sa/SA when TD is the CA's trust domain
 * and the ID is exactly the one the CA would issue for them.  Returns 0
 * or -EACCES. */
static int peer_identity(struct ca_sds *s, const char *uri, struct ca_identity *id)
{
	static const char pfx[] = "spiffe://";
	char again[2 * CA_MAX_NAME_LEN + 512];
	const char *p = uri, *ns, *sa, *end;
	size_t nl, sl;

	if (strncmp(p, pfx, sizeof(pfx) - 1) != 0 || !(p = strchr(p + sizeof(pfx) - 1, '/')) ||
	    strncmp(p, "/ns/", 4) != 0)
		return -EACCES;
	ns = p + 4;
	end = strchr(ns, '/');
	if (!end || strncmp(end, "/sa/", 4) != 0)
		return -EACCES;
	nl = (size_t)(end - ns);
	sa = end + 4;
	sl = strlen(sa);
	if (nl == 0 || nl > CA_MAX_NAME_LEN || sl == 0 || sl > CA_MAX_NAME_LEN)
		return -EACCES;
	memcpy(id->ns, ns, nl);
	id->ns[nl] = '\0';
	memcpy(id->sa, sa, sl);
	id->sa[sl] = '\0';
	if (ca_spiffe_id(ca_trust_domain(s->cfg.ca), id->ns, id->sa, again, sizeof(again)) < 0 ||
	    strcmp(again, uri) != 0)
		return -EACCES;
	return 0;
}

/* Who the stream's caller is (once per stream).  Returns OK (e->verified
 * set when it proved an identity) or the status ending the stream, with
 * msg filled. */
static enum xds_ads_status entry_authenticate(struct ca_sds *s, struct sds_entry *e, const struct xds_secret_req *r,
					      char *msg, size_t cap)
{
	static char token[CA_AUTH_MAX_TOKEN + 1]; /* worker only */
	char why[256] = "";
	enum xds_ads_status code = XDS_ADS_STATUS_OK;
	int rc;

	if (!r->secure) {
		/* plaintext (15010): nothing proven, so no Secret */
		log_warn(SCOPE, "stream %llu (%s): Secrets asked over plaintext: none served (ask on the TLS port "
				"with \"authorization: Bearer <token>\")",
			 (unsigned long long)r->stream, r->node_id ? r->node_id : "?");
		goto out;
	}
	if (r->peer_id) {
		/* Istio's ClientCertAuthenticator first: TLS verified the
		 * certificate against our root; its SPIFFE ID must be one of
		 * our trust domain's, in the form the CA issues */
		if (peer_identity(s, r->peer_id, &e->id) < 0) {
			snprintf(msg, cap, "SDS: the client certificate's identity %.200s is not of trust domain %.100s",
				 r->peer_id, ca_trust_domain(s->cfg.ca));
			code = XDS_ADS_STATUS_UNAUTHENTICATED;
			goto out;
		}
		goto check_node;
	}
	if (!r->authorization) {
		snprintf(msg, cap, "SDS: no credentials: send \"authorization: Bearer <token>\" or a client "
				   "certificate of the mesh");
		code = XDS_ADS_STATUS_UNAUTHENTICATED;
		goto out;
	}
	rc = ca_auth_bearer(r->authorization, strlen(r->authorization), token, sizeof(token));
	if (rc < 0) {
		snprintf(msg, cap, "SDS: the authorization metadata is not a bearer token%s",
			 rc == -MESH_ETOOBIG ? " (too long)" : "");
		code = XDS_ADS_STATUS_UNAUTHENTICATED;
		goto out;
	}
	rc = ca_auth_authenticate(s->cfg.auth, token, &e->id, why, sizeof(why));
	OPENSSL_cleanse(token, sizeof(token));
	if (rc == -EACCES) {
		snprintf(msg, cap, "SDS: %s", why[0] ? why : "authentication failed");
		code = XDS_ADS_STATUS_UNAUTHENTICATED;
		goto out;
	}
	if (rc < 0) {
		snprintf(msg, cap, "SDS: cannot authenticate now: %s", why[0] ? why : mesh_strerror(rc));
		code = XDS_ADS_STATUS_UNAVAILABLE;
		goto out;
	}
check_node:
	/* pilot's checkConnectionIdentity: the node must be who its credentials say */
	if ((r->node_ns && strcmp(r->node_ns, e->id.ns) != 0) || (r->node_sa && strcmp(r->node_sa, e->id.sa) != 0)) {
		snprintf(msg, cap, "SDS: the node claims ns %.100s sa %.100s but authenticated as ns %.100s sa %.100s",
			 r->node_ns ? r->node_ns : "(any)", r->node_sa ? r->node_sa : "(any)", e->id.ns, e->id.sa);
		code = XDS_ADS_STATUS_PERMISSION_DENIED;
		goto out;
	}
	e->verified = 1;
out:
	return code;
}

/* ------------------------------------------------------------------ */
/* the worker */

static struct sds_entry **entry_find(struct ca_sds *s, uint64_t stream)
{
	struct sds_entry **pp;

	for (pp = &s->entries; *pp; pp = &(*pp)->next)
		if ((*pp)->stream == stream)
			break;
	return pp;
}

static void sds_handle(struct ca_sds *s, struct xds_secret_req *r, const struct timespec *now)
{
	struct sds_entry **pp = entry_find(s, r->stream), *e = *pp;
	char msg[512] = "";
	enum xds_ads_status code;
	size_t i;

	if (r->release) {
		if (e) {
			*pp = e->next;
			entry_free(e);
		}
		goto out;
	}
	if (!e) {
		e = calloc(1, sizeof(*e));
		if (!e) {
			sds_reply(s, r->stream, r->seq, NULL, XDS_ADS_STATUS_INTERNAL, "out of memory");
			goto out;
		}
		e->stream = r->stream;
		code = entry_authenticate(s, e, r, msg, sizeof(msg));
		if (code != XDS_ADS_STATUS_OK) {
			log_warn(SCOPE, "stream %llu (%s): %s", (unsigned long long)r->stream,
				 r->node_id ? r->node_id : "?", msg);
			sds_reply(s, r->stream, r->seq, NULL, code, msg);
			free(e);
			goto out;
		}
		e->next = s->entries;
		s->entries = e;
	}
	/* the names change: take the request's */
	for (i = 0; i < e->nnames; i++)
		free(e->names[i]);
	free(e->names);
	e->names = r->names;
	e->nnames = r->nnames;
	r->names = NULL;
	r->nnames = 0;
	e->seq = r->seq;
	entry_answer(s, e, now);
out:
	xds_secret_req_free(r);
}

/* Whether e asks for "default" (within the names looked at). */
static int entry_wants_cert(const struct sds_entry *e)
{
	size_t i;

	for (i = 0; i < e->nnames && i < CA_SDS_MAX_NAMES; i++)
		if (strcmp(e->names[i], CA_SDS_CERT_NAME) == 0)
			return 1;
	return 0;
}

/* Re-issue and push every "default" whose half-life has come; the
 * earliest next refresh into *next (tv_sec 0: none). */
static void sds_rotate(struct ca_sds *s, const struct timespec *now, struct timespec *next)
{
	struct sds_entry *e;

	next->tv_sec = 0;
	next->tv_nsec = 0;
	for (e = s->entries; e; e = e->next) {
		if (!e->chain || e->refresh.tv_sec == 0)
			continue;
		if (!ts_before(now, &e->refresh) && !entry_wants_cert(e)) {
			/* "default" is no longer asked for: nothing to renew */
			entry_drop_cert(e);
			e->refresh.tv_sec = 0;
			continue;
		}
		if (!ts_before(now, &e->refresh))
			entry_answer(s, e, now); /* re-issues: the refresh time has come */
		if (!ts_before(now, &e->refresh)) {
			/* issuing failed (logged): try again a little later, not in a loop */
			e->refresh = *now;
			e->refresh.tv_sec += CA_SDS_RETRY_SECONDS;
		}
		if (e->refresh.tv_sec && (next->tv_sec == 0 || ts_before(&e->refresh, next)))
			*next = e->refresh;
	}
}

/* The config changed: answer again every stream holding credentialName
 * Secrets (an unchanged answer is no push: the core compares versions). */
static void sds_refresh(struct ca_sds *s, const struct timespec *now)
{
	struct sds_entry *e;
	size_t i;

	for (e = s->entries; e; e = e->next) {
		for (i = 0; e->verified && i < e->nnames && i < CA_SDS_MAX_NAMES; i++)
			if (strcmp(e->names[i], CA_SDS_CERT_NAME) != 0 && strcmp(e->names[i], CA_SDS_ROOT_NAME) != 0)
				break;
		if (e->verified && i < e->nnames && i < CA_SDS_MAX_NAMES)
			entry_answer(s, e, now);
	}
}

static void *sds_main(void *arg)
{
	struct ca_sds *s = arg;
	struct timespec now, next = { 0, 0 };

	pthread_mutex_lock(&s->lock);
	for (;;) {
		struct mesh_queue_item *batch;
		int refresh;

		while (!s->stop && !s->head && !s->refresh) {
			if (next.tv_sec == 0) {
				pthread_cond_wait(&s->cond, &s->lock);
				break;
			}
			if (pthread_cond_timedwait(&s->cond, &s->lock, &next) != 0)
				break; /* a refresh is due */
		}
		if (s->stop)
			break;
		batch = s->head;
		s->head = NULL;
		s->tail = &s->head;
		refresh = s->refresh;
		s->refresh = 0;
		pthread_mutex_unlock(&s->lock);
		clock_gettime(CLOCK_MONOTONIC, &now);
		while (batch) {
			struct xds_secret_req *r = mesh_container_of(batch, struct xds_secret_req, qi);

			batch = batch->next;
			sds_handle(s, r, &now);
		}
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (refresh)
			sds_refresh(s, &now);
		sds_rotate(s, &now, &next);
		pthread_mutex_lock(&s->lock);
	}
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

/* ------------------------------------------------------------------ */
/* public API */

void ca_sds_want(void *ctx, struct xds_secret_req *req)
{
	struct ca_sds *s = ctx;

	req->qi.next = NULL;
	pthread_mutex_lock(&s->lock);
	*s->tail = &req->qi;
	s->tail = &req->qi.next;
	pthread_cond_signal(&s->cond);
	pthread_mutex_unlock(&s->lock);
}

int ca_sds_new(const struct ca_sds_config *cfg, struct ca_sds **out)
{
	struct ca_sds *s;
	pthread_condattr_t ca;
	int rc;

	*out = NULL;
	if (!cfg || !cfg->ca || !cfg->auth)
		return -EINVAL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->cfg = *cfg;
	s->tail = &s->head;
	pthread_mutex_init(&s->lock, NULL);
	pthread_condattr_init(&ca);
	/* refresh times are monotonic: a clock step neither delays nor floods renewals */
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&s->cond, &ca);
	pthread_condattr_destroy(&ca);
	rc = -pthread_create(&s->thread, NULL, sds_main, s);
	if (rc < 0) {
		ca_sds_free(s);
		return rc;
	}
	s->started = 1;
	*out = s;
	return 0;
}

void ca_sds_free(struct ca_sds *s)
{
	struct mesh_queue_item *it;

	if (!s)
		return;
	if (s->started) {
		pthread_mutex_lock(&s->lock);
		s->stop = 1;
		pthread_cond_signal(&s->cond);
		pthread_mutex_unlock(&s->lock);
		pthread_join(s->thread, NULL);
	}
	while ((it = s->head)) {
		s->head = it->next;
		xds_secret_req_free(mesh_container_of(it, struct xds_secret_req, qi));
	}
	while (s->entries) {
		struct sds_entry *e = s->entries;
		s->entries = e->next;
		entry_free(e);
	}
	pthread_cond_destroy(&s->cond);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

void ca_sds_refresh(struct ca_sds *s)
{
	if (!s)
		return;
	pthread_mutex_lock(&s->lock);
	s->refresh = 1;
	pthread_cond_signal(&s->cond);
	pthread_mutex_unlock(&s->lock);
}

void ca_sds_set_server(struct ca_sds *s, struct xds_server *srv)
{
	pthread_mutex_lock(&s->lock);
	s->srv = srv;
	pthread_mutex_unlock(&s->lock);
}

uint64_t ca_sds_issued(struct ca_sds *s)
{
	uint64_t n;

	pthread_mutex_lock(&s->lock);
	n = s->issued;
	pthread_mutex_unlock(&s->lock);
	return n;
}
