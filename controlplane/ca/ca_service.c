/*
 * ca_service.c - CreateCertificate over gRPC core, and meshd's serving
 * certificate for the TLS port.
 *
 * Threads: the xDS thread accepts a call and queues it here (no work
 * beyond a malloc).  The worker thread takes calls one at a time: checks
 * the call came over TLS, reads "authorization: Bearer <token>", asks the
 * authenticator for the identity, parses the request, signs with the CA,
 * and starts one batch carrying the reply and status.  The completion
 * thread drains this service's completion queue and frees each call when
 * its batch completes.  The worker also renews the serving certificate at
 * half its lifetime; the TLS credentials' fetcher hands the newest one to
 * gRPC core on the next handshake.
 *
 * Status codes: UNAUTHENTICATED (no or unknown token, plaintext),
 * INVALID_ARGUMENT (malformed request or CSR), RESOURCE_EXHAUSTED (queue
 * full), INTERNAL (signing failed), UNAVAILABLE (shutting down).
 */
#include "controlplane/ca/ca_service.h"

#include "common/err.h"
#include "common/log.h"
#include "common/xds/pbdepth.h"
#include "controlplane/metrics/metrics.h"

#include "security/v1alpha1/ca.pb-c.h"

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SCOPE "ca"
#define CA_SERVICE_DEFAULT_SERVING_TTL (24 * 3600)
/* Retry a failed serving renewal this often. */
#define CA_SERVICE_RETRY_SECONDS 60
#define CA_SERVICE_PEER_CAP 128

struct ca_job {
	struct ca_job *next;
	struct ca_service *svc;
	grpc_call *call;
	grpc_metadata_array md;
	grpc_byte_buffer *payload;
	grpc_byte_buffer *resp;
	int cancelled;
};

struct ca_service {
	struct ca *ca;
	struct ca_authenticator *auth;
	int allow_plaintext;
	grpc_completion_queue *cq;
	pthread_t worker, completer;
	int worker_started, completer_started;

	pthread_mutex_t lock;            /* queue, stop */
	pthread_cond_t cond;
	struct ca_job *head, *tail;
	size_t queued;
	int stop;

	/* serving certificate; serving_lock guards these */
	pthread_mutex_t serving_lock;
	char *serving_chain, *serving_key;
	unsigned serving_gen, fetched_gen;
	int64_t serving_not_after;
	time_t renew_at;                 /* worker only */
	char *dns[CA_SERVICE_MAX_NAMES];    /* owned copies */
	size_t ndns;
	char *ips[CA_SERVICE_MAX_NAMES];
	size_t nips;
	int64_t serving_ttl;
};

/* ------------------------------------------------------------------ */
/* replies */

static void job_free(struct ca_job *j)
{
	if (!j)
		return;
	if (j->call)
		grpc_call_unref(j->call);
	grpc_metadata_array_destroy(&j->md);
	if (j->payload)
		grpc_byte_buffer_destroy(j->payload);
	if (j->resp)
		grpc_byte_buffer_destroy(j->resp);
	free(j);
}

/* One batch: initial metadata, the response if any, status, close.  The
 * completion thread frees the job when it completes. */
static void job_reply(struct ca_job *j, grpc_status_code code, const char *msg)
{
	grpc_op ops[4];
	grpc_slice details = grpc_slice_from_copied_string(msg ? msg : "");
	size_t n = 0;
	grpc_call_error e;

	memset(ops, 0, sizeof(ops));
	ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
	if (code == GRPC_STATUS_OK && j->resp) {
		ops[n].op = GRPC_OP_SEND_MESSAGE;
		ops[n++].data.send_message.send_message = j->resp;
	}
	ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
	ops[n].data.send_status_from_server.status = code;
	ops[n++].data.send_status_from_server.status_details = &details;
	ops[n].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
	ops[n++].data.recv_close_on_server.cancelled = &j->cancelled;
	e = grpc_call_start_batch(j->call, ops, n, j, NULL);
	grpc_slice_unref(details);
	if (e != GRPC_CALL_OK) {
		log_warn(SCOPE, "cannot answer CreateCertificate: %s", grpc_call_error_to_string(e));
		job_free(j);
	}
}

static void *completer_main(void *arg)
{
	struct ca_service *svc = arg;

	for (;;) {
		grpc_event ev = grpc_completion_queue_next(svc->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
		if (ev.type == GRPC_QUEUE_SHUTDOWN)
			break;
		if (ev.type == GRPC_OP_COMPLETE)
			job_free(ev.tag);
	}
	return NULL;
}

/* ------------------------------------------------------------------ */
/* handling one call (worker thread) */

static int call_over_tls(grpc_call *call)
{
	grpc_auth_context *ctx = grpc_call_auth_context(call);
	grpc_auth_property_iterator it;
	const grpc_auth_property *p;
	int tls = 0;

	if (!ctx)
		return 0;
	it = grpc_auth_context_find_properties_by_name(ctx, GRPC_TRANSPORT_SECURITY_TYPE_PROPERTY_NAME);
	p = grpc_auth_property_iterator_next(&it);
	if (p && p->value && strncmp(p->value, GRPC_SSL_TRANSPORT_SECURITY_TYPE, p->value_length) == 0 &&
	    p->value_length == strlen(GRPC_SSL_TRANSPORT_SECURITY_TYPE))
		tls = 1;
	grpc_auth_context_release(ctx);
	return tls;
}

/* The bearer token of the call's metadata into out. */
static int call_token(const grpc_metadata_array *md, char *out, size_t cap)
{
	size_t i;

	for (i = 0; i < md->count; i++) {
		const grpc_metadata *m = &md->metadata[i];
		if (grpc_slice_str_cmp(m->key, "authorization") != 0)
			continue;
		return ca_auth_bearer((const char *)GRPC_SLICE_START_PTR(m->value), GRPC_SLICE_LENGTH(m->value), out,
				      cap);
	}
	return -ENOENT;
}

static void peer_of(grpc_call *call, char *out, size_t cap)
{
	char *p = grpc_call_get_peer(call);

	snprintf(out, cap, "%s", p ? p : "?");
	if (p)
		gpr_free(p);
}

/* Pack the chain into j->resp. */
static int build_response(struct ca_job *j, const struct ca_chain *chain)
{
	Istio__V1__Auth__IstioCertificateResponse resp = ISTIO__V1__AUTH__ISTIO_CERTIFICATE_RESPONSE__INIT;
	uint8_t *wire;
	size_t len;
	grpc_slice slice;

	resp.cert_chain = chain->pem;
	resp.n_cert_chain = chain->n;
	len = istio__v1__auth__istio_certificate_response__get_packed_size(&resp);
	wire = malloc(len ? len : 1);
	if (!wire)
		return -ENOMEM;
	istio__v1__auth__istio_certificate_response__pack(&resp, wire);
	slice = grpc_slice_new(wire, len, free);
	j->resp = grpc_raw_byte_buffer_create(&slice, 1);
	grpc_slice_unref(slice);
	return j->resp ? 0 : -ENOMEM;
}

static void job_handle(struct ca_service *svc, struct ca_job *j)
{
	Istio__V1__Auth__IstioCertificateRequest *req = NULL;
	struct ca_chain chain = { 0 };
	struct ca_identity id;
	grpc_byte_buffer_reader reader;
	grpc_slice slice;
	int have_slice = 0, rc;
	char *token = NULL;
	char msg[CA_ERR_CAP + 64], err[CA_ERR_CAP], peer[CA_SERVICE_PEER_CAP];
	grpc_status_code code = GRPC_STATUS_OK;

	peer_of(j->call, peer, sizeof(peer));
	msg[0] = '\0';
	metrics_ca(METRICS_CA_CSR);
	if (!svc->allow_plaintext && !call_over_tls(j->call)) {
		code = GRPC_STATUS_UNAUTHENTICATED;
		snprintf(msg, sizeof(msg), "CreateCertificate is served only over TLS (meshd's --secure-addr port)");
		goto out;
	}
	token = malloc(CA_AUTH_MAX_TOKEN + 1);
	if (!token) {
		code = GRPC_STATUS_RESOURCE_EXHAUSTED;
		snprintf(msg, sizeof(msg), "out of memory");
		goto out;
	}
	rc = call_token(&j->md, token, CA_AUTH_MAX_TOKEN + 1);
	if (rc < 0) {
		code = GRPC_STATUS_UNAUTHENTICATED;
		if (rc == -MESH_ETOOBIG) {
			metrics_limit(METRICS_LIMIT_CA_REQUEST_SIZE);
			snprintf(msg, sizeof(msg), "bearer token longer than %d bytes", CA_AUTH_MAX_TOKEN);
		}
		else
			snprintf(msg, sizeof(msg), "missing \"authorization: Bearer <token>\" metadata");
		goto out;
	}
	rc = ca_auth_authenticate(svc->auth, token, &id, err, sizeof(err));
	if (rc < 0) {
		metrics_ca(METRICS_CA_AUTHN_FAILURE);
		code = rc == -EACCES ? GRPC_STATUS_UNAUTHENTICATED : GRPC_STATUS_UNAVAILABLE;
		snprintf(msg, sizeof(msg), "%s", rc == -EACCES ? err : "caller authentication is unavailable");
		if (rc != -EACCES)
			log_warn(SCOPE, "authenticating a caller from %s: %s (%s)", peer, err, mesh_strerror(rc));
		goto out;
	}
	if (!j->payload) {
		code = GRPC_STATUS_INVALID_ARGUMENT;
		snprintf(msg, sizeof(msg), "no IstioCertificateRequest in the call");
		goto out;
	}
	if (!grpc_byte_buffer_reader_init(&reader, j->payload)) {
		code = GRPC_STATUS_INTERNAL;
		snprintf(msg, sizeof(msg), "cannot read the request");
		goto out;
	}
	slice = grpc_byte_buffer_reader_readall(&reader);
	grpc_byte_buffer_reader_destroy(&reader);
	have_slice = 1;
	if (GRPC_SLICE_LENGTH(slice) > CA_SERVICE_MAX_REQUEST_BYTES) {
		metrics_limit(METRICS_LIMIT_CA_REQUEST_SIZE);
		code = GRPC_STATUS_INVALID_ARGUMENT;
		snprintf(msg, sizeof(msg), "IstioCertificateRequest is %zu bytes; the limit is %d",
			 (size_t)GRPC_SLICE_LENGTH(slice), CA_SERVICE_MAX_REQUEST_BYTES);
		goto out;
	}
	/* nesting bounded before protobuf-c's recursive unpack (pbdepth.h) */
	rc = pbdepth_check(&istio__v1__auth__istio_certificate_request__descriptor, GRPC_SLICE_START_PTR(slice),
			   GRPC_SLICE_LENGTH(slice), PBDEPTH_LIMIT, 0, NULL);
	if (rc < 0) {
		code = GRPC_STATUS_INVALID_ARGUMENT;
		if (rc == -MESH_ETOOBIG)
			snprintf(msg, sizeof(msg), "IstioCertificateRequest nests messages deeper than %d levels",
				 PBDEPTH_LIMIT);
		else
			snprintf(msg, sizeof(msg), "malformed istio.v1.auth.IstioCertificateRequest");
		log_info(SCOPE, "CreateCertificate from %s refused: %s", peer, msg);
		goto out;
	}
	req = istio__v1__auth__istio_certificate_request__unpack(NULL, GRPC_SLICE_LENGTH(slice),
								 GRPC_SLICE_START_PTR(slice));
	if (!req) {
		code = GRPC_STATUS_INVALID_ARGUMENT;
		snprintf(msg, sizeof(msg), "malformed istio.v1.auth.IstioCertificateRequest");
		goto out;
	}
	rc = ca_sign_csr(svc->ca, req->csr ? req->csr : "", req->csr ? strlen(req->csr) : 0, id.ns, id.sa,
			 req->validity_duration, &chain, err, sizeof(err));
	if (rc < 0) {
		code = (rc == -ENOMEM || rc == -MESH_ETLS) ? GRPC_STATUS_INTERNAL : GRPC_STATUS_INVALID_ARGUMENT;
		/* a refused CSR is the caller's (parse), a failed signature ours */
		metrics_ca(code == GRPC_STATUS_INTERNAL ? METRICS_CA_SIGN_ERR : METRICS_CA_PARSING_ERR);
		if (rc == -MESH_ETOOBIG)
			metrics_limit(METRICS_LIMIT_CA_REQUEST_SIZE); /* CA_MAX_CSR_BYTES */
		snprintf(msg, sizeof(msg), "%s", err);
		log_info(SCOPE, "CreateCertificate from %s (ns %s, sa %s) refused: %s", peer, id.ns, id.sa, err);
		goto out;
	}
	if (build_response(j, &chain) < 0) {
		code = GRPC_STATUS_INTERNAL;
		snprintf(msg, sizeof(msg), "out of memory");
		goto out;
	}
	metrics_ca(METRICS_CA_SUCCESS);
	log_info(SCOPE, "issued a certificate for ns %s sa %s to %s (%zu certificates in the chain)", id.ns, id.sa,
		 peer, chain.n);
out:
	if (code != GRPC_STATUS_OK && code != GRPC_STATUS_INVALID_ARGUMENT)
		log_info(SCOPE, "CreateCertificate from %s: %s", peer, msg);
	job_reply(j, code, msg);
	ca_chain_cleanup(&chain);
	if (req)
		istio__v1__auth__istio_certificate_request__free_unpacked(req, NULL);
	if (have_slice)
		grpc_slice_unref(slice);
	free(token);
}

/* ------------------------------------------------------------------ */
/* serving certificate */

static int serving_renew(struct ca_service *svc)
{
	char *chain = NULL, *key = NULL, err[CA_ERR_CAP];
	int64_t not_after = 0;
	time_t now = time(NULL);
	int rc;

	rc = ca_issue_serving(svc->ca, (const char *const *)svc->dns, svc->ndns, (const char *const *)svc->ips, svc->nips, svc->serving_ttl, &chain, &key,
			      &not_after, err, sizeof(err));
	if (rc < 0) {
		log_error(SCOPE, "cannot issue meshd's serving certificate: %s; retrying in %ds", err,
			  CA_SERVICE_RETRY_SECONDS);
		svc->renew_at = now + CA_SERVICE_RETRY_SECONDS;
		return rc;
	}
	pthread_mutex_lock(&svc->serving_lock);
	free(svc->serving_chain);
	if (svc->serving_key)
		memset(svc->serving_key, 0, strlen(svc->serving_key));
	free(svc->serving_key);
	svc->serving_chain = chain;
	svc->serving_key = key;
	svc->serving_not_after = not_after;
	svc->serving_gen++;
	pthread_mutex_unlock(&svc->serving_lock);
	svc->renew_at = now + (time_t)((not_after - (int64_t)now) / 2);
	log_info(SCOPE, "serving certificate %u issued (renewal in %llds)", svc->serving_gen,
		 (long long)(svc->renew_at - now));
	return 0;
}

static grpc_ssl_certificate_config_reload_status serving_fetch(void *arg, grpc_ssl_server_certificate_config **config)
{
	struct ca_service *svc = arg;
	grpc_ssl_pem_key_cert_pair pair;
	grpc_ssl_certificate_config_reload_status st = GRPC_SSL_CERTIFICATE_CONFIG_RELOAD_UNCHANGED;

	pthread_mutex_lock(&svc->serving_lock);
	if (!svc->serving_chain) {
		st = GRPC_SSL_CERTIFICATE_CONFIG_RELOAD_FAIL;
	} else if (svc->fetched_gen != svc->serving_gen) {
		pair.private_key = svc->serving_key;
		pair.cert_chain = svc->serving_chain;
		/* client certificates, when a caller presents one, are verified
		 * against our root: an xDS client authenticated by its mesh
		 * certificate (SDS, ca_sds.h), as Istio's xDS server takes it */
		*config = grpc_ssl_server_certificate_config_create(ca_root_pem(svc->ca), &pair, 1);
		if (*config) {
			svc->fetched_gen = svc->serving_gen;
			st = GRPC_SSL_CERTIFICATE_CONFIG_RELOAD_NEW;
		} else {
			st = GRPC_SSL_CERTIFICATE_CONFIG_RELOAD_FAIL;
		}
	}
	pthread_mutex_unlock(&svc->serving_lock);
	return st;
}

grpc_server_credentials *ca_service_server_credentials(struct ca_service *svc)
{
	grpc_ssl_server_credentials_options *opts;

	/* asked for and verified when presented, never required: callers
	 * without one authenticate with a bearer token */
	opts = grpc_ssl_server_credentials_create_options_using_config_fetcher(
		GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_AND_VERIFY, serving_fetch, svc);
	if (!opts)
		return NULL;
	/* a new credentials object starts from the current certificate */
	pthread_mutex_lock(&svc->serving_lock);
	svc->fetched_gen = 0;
	pthread_mutex_unlock(&svc->serving_lock);
	return grpc_ssl_server_credentials_create_with_options(opts);
}

unsigned ca_service_serving_generation(struct ca_service *svc)
{
	unsigned g;

	pthread_mutex_lock(&svc->serving_lock);
	g = svc->serving_gen;
	pthread_mutex_unlock(&svc->serving_lock);
	return g;
}

/* ------------------------------------------------------------------ */
/* worker */

static void *worker_main(void *arg)
{
	struct ca_service *svc = arg;
	struct ca_job *j;

	pthread_mutex_lock(&svc->lock);
	while (!svc->stop) {
		if (svc->head) {
			j = svc->head;
			svc->head = j->next;
			if (!svc->head)
				svc->tail = NULL;
			svc->queued--;
			pthread_mutex_unlock(&svc->lock);
			job_handle(svc, j);
			pthread_mutex_lock(&svc->lock);
			continue;
		}
		if (time(NULL) >= svc->renew_at) {
			pthread_mutex_unlock(&svc->lock);
			serving_renew(svc);
			pthread_mutex_lock(&svc->lock);
			continue;
		}
		{
			struct timespec until = { svc->renew_at, 0 };
			pthread_cond_timedwait(&svc->cond, &svc->lock, &until);
		}
	}
	/* calls still queued at shutdown */
	while ((j = svc->head) != NULL) {
		svc->head = j->next;
		svc->queued--;
		job_reply(j, GRPC_STATUS_UNAVAILABLE, "meshd is shutting down");
	}
	svc->tail = NULL;
	pthread_mutex_unlock(&svc->lock);
	return NULL;
}

/* xDS thread: take the call and queue it; no work here. */
static void ca_service_accept(void *arg, grpc_call *call, grpc_metadata_array *md, grpc_byte_buffer *payload)
{
	struct ca_service *svc = arg;
	struct ca_job *j = calloc(1, sizeof(*j));
	int full;

	if (!j) {
		grpc_call_cancel_with_status(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory", NULL);
		grpc_call_unref(call);
		grpc_metadata_array_destroy(md);
		if (payload)
			grpc_byte_buffer_destroy(payload);
		return;
	}
	j->svc = svc;
	j->call = call;
	j->md = *md;
	j->payload = payload;
	pthread_mutex_lock(&svc->lock);
	full = svc->queued >= CA_SERVICE_MAX_QUEUE || svc->stop;
	if (!full) {
		if (svc->tail)
			svc->tail->next = j;
		else
			svc->head = j;
		svc->tail = j;
		svc->queued++;
		pthread_cond_signal(&svc->cond);
	}
	pthread_mutex_unlock(&svc->lock);
	if (full)
		job_reply(j, GRPC_STATUS_RESOURCE_EXHAUSTED, "too many certificate requests waiting; retry later");
}

void ca_service_unary(struct ca_service *svc, struct xds_server_unary *u)
{
	u->method = CA_SERVICE_METHOD;
	u->cq = svc->cq;
	u->accept = ca_service_accept;
	u->arg = svc;
}

/* ------------------------------------------------------------------ */
/* life cycle */

int ca_service_new(const struct ca_service_config *cfg, struct ca_service **out)
{
	struct ca_service *svc = NULL;
	size_t i;
	int rc = 0;

	*out = NULL;
	if (!cfg || !cfg->ca || !cfg->auth || cfg->n_serving_dns > CA_SERVICE_MAX_NAMES ||
	    cfg->n_serving_ips > CA_SERVICE_MAX_NAMES)
		return -EINVAL;
	grpc_init();
	svc = calloc(1, sizeof(*svc));
	if (!svc) {
		grpc_shutdown_blocking();
		return -ENOMEM;
	}
	svc->ca = cfg->ca;
	svc->auth = cfg->auth;
	svc->allow_plaintext = cfg->allow_plaintext;
	svc->serving_ttl = cfg->serving_ttl_seconds > 0 ? cfg->serving_ttl_seconds : CA_SERVICE_DEFAULT_SERVING_TTL;
	pthread_mutex_init(&svc->lock, NULL);
	pthread_mutex_init(&svc->serving_lock, NULL);
	pthread_cond_init(&svc->cond, NULL);
	/* the names are borrowed for this call: keep copies for renewals */
	for (i = 0; i < cfg->n_serving_dns; i++, svc->ndns++)
		if (!(svc->dns[i] = strdup(cfg->serving_dns[i])))
			rc = -ENOMEM;
	for (i = 0; i < cfg->n_serving_ips; i++, svc->nips++)
		if (!(svc->ips[i] = strdup(cfg->serving_ips[i])))
			rc = -ENOMEM;
	if (rc < 0)
		goto out;
	rc = serving_renew(svc);
	if (rc < 0)
		goto out;
	svc->cq = grpc_completion_queue_create_for_next(NULL);
	if (!svc->cq) {
		rc = -MESH_EGRPC;
		goto out;
	}
	if (pthread_create(&svc->completer, NULL, completer_main, svc) != 0) {
		rc = -EAGAIN;
		goto out;
	}
	svc->completer_started = 1;
	if (pthread_create(&svc->worker, NULL, worker_main, svc) != 0) {
		rc = -EAGAIN;
		goto out;
	}
	svc->worker_started = 1;
	*out = svc;
	svc = NULL;
out:
	ca_service_free(svc);
	return rc;
}

void ca_service_free(struct ca_service *svc)
{
	size_t i;

	if (!svc)
		return;
	if (svc->worker_started) {
		pthread_mutex_lock(&svc->lock);
		svc->stop = 1;
		pthread_cond_signal(&svc->cond);
		pthread_mutex_unlock(&svc->lock);
		pthread_join(svc->worker, NULL);
	}
	if (svc->cq) {
		grpc_completion_queue_shutdown(svc->cq);
		if (svc->completer_started)
			pthread_join(svc->completer, NULL);
		else
			while (grpc_completion_queue_next(svc->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
			       GRPC_QUEUE_SHUTDOWN)
				;
		grpc_completion_queue_destroy(svc->cq);
	}
	free(svc->serving_chain);
	if (svc->serving_key)
		memset(svc->serving_key, 0, strlen(svc->serving_key));
	free(svc->serving_key);
	for (i = 0; i < svc->ndns; i++)
		free(svc->dns[i]);
	for (i = 0; i < svc->nips; i++)
		free(svc->ips[i]);
	pthread_cond_destroy(&svc->cond);
	pthread_mutex_destroy(&svc->lock);
	pthread_mutex_destroy(&svc->serving_lock);
	free(svc);
	grpc_shutdown_blocking();
}
