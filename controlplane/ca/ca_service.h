/*
 * ca_service.h - Istio's certificate service on gRPC core:
 * istio.v1.auth.IstioCertificateService/CreateCertificate, and the TLS
 * credentials of meshd's secure port.
 *
 * The ADS server accepts CreateCertificate calls (on its xDS thread) and
 * hands them to this service, which owns their completion queue.  A worker
 * thread authenticates the caller, signs and replies; a second thread only
 * drains the queue and frees finished calls.  Neither signing nor token
 * checks ever run on the xDS thread.  The same worker renews meshd's own
 * serving certificate at half its lifetime; new TLS handshakes pick it up.
 *
 * Order: ca_service_new() before xds_server_start() (the queue must be
 * registered), ca_service_free() after xds_server_stop().
 * Functions return 0 or a negative code (err.h).
 */
#ifndef MESH_CA_SERVICE_H
#define MESH_CA_SERVICE_H

#include "controlplane/ca/ca.h"
#include "controlplane/ca/ca_auth.h"
#include "controlplane/xds/server.h"

#include <grpc/grpc_security.h>

#define CA_SERVICE_METHOD "/istio.v1.auth.IstioCertificateService/CreateCertificate"
/* Largest IstioCertificateRequest (a capped CSR plus metadata). */
#define CA_SERVICE_MAX_REQUEST_BYTES (CA_MAX_CSR_BYTES + 64 * 1024)
/* Calls waiting for the worker; past this they get RESOURCE_EXHAUSTED. */
#define CA_SERVICE_MAX_QUEUE 1024
/* Names a serving certificate may carry. */
#define CA_SERVICE_MAX_NAMES 16

struct ca_service;

struct ca_service_config {
	struct ca *ca;                   /* borrowed; outlives the service */
	struct ca_authenticator *auth;   /* borrowed; outlives the service */
	const char *const *serving_dns;  /* SANs of meshd's serving certificate */
	size_t n_serving_dns;
	const char *const *serving_ips;
	size_t n_serving_ips;
	int64_t serving_ttl_seconds;     /* 0: 24h */
	int allow_plaintext;             /* 0 (meshd): refuse calls that did not come over TLS */
};

int ca_service_new(const struct ca_service_config *cfg, struct ca_service **out);
/* NULL is a no-op. */
void ca_service_free(struct ca_service *svc);

/* The unary method for xds_server_config.unary. */
void ca_service_unary(struct ca_service *svc, struct xds_server_unary *u);

/* New TLS server credentials presenting meshd's serving certificate (and
 * its renewals); release with grpc_server_credentials_release(). */
grpc_server_credentials *ca_service_server_credentials(struct ca_service *svc);

/* Number of serving certificates issued so far (1 after start). */
unsigned ca_service_serving_generation(struct ca_service *svc);

#endif
