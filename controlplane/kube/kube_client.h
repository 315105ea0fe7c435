/*
 * kube_client.h - HTTP requests to the Kubernetes API on libcurl.
 *
 * Holds the connection settings (kube_config.h) and the bearer token.  A
 * token file is re-read whenever it changed on disk (inode, size or mtime),
 * so rotated service-account tokens are picked up without a restart.
 *
 * kube_client_prepare() sets up a curl easy handle for one request (the
 * watch thread drives those on its curl multi handle); kube_client_request()
 * is a blocking request for threads that may block (never the config or
 * xDS threads).  Thread-safe.  Returns 0 or a negative code (err.h).
 */
#ifndef MESH_KUBE_CLIENT_H
#define MESH_KUBE_CLIENT_H

#include "common/buf.h"
#include "controlplane/kube/kube_config.h"

#include <curl/curl.h>
#include <stddef.h>

#define KUBE_CLIENT_TOKEN_MAX (64u << 10)
#define KUBE_CLIENT_URL_MAX 4096

struct kube_client;

/* The settings are copied. */
int kube_client_new(const struct kube_config *cfg, struct kube_client **out);
void kube_client_free(struct kube_client *c);   /* NULL is a no-op */
const struct kube_config *kube_client_config(const struct kube_client *c);

/* Set up h (fresh or curl_easy_reset) for `method` on path ("/api/v1/pods?
 * limit=500"): URL, TLS, Authorization and Accept headers, timeouts.  The
 * caller frees *headers with curl_slist_free_all() once the transfer is
 * done, and sets the write callback. */
int kube_client_prepare(struct kube_client *c, CURL *h, const char *method, const char *path,
			struct curl_slist **headers);

/* Blocking request.  body may be NULL.  The response body goes to resp
 * (its cap applies).  *status: the HTTP status, 0 when none came. */
int kube_client_request(struct kube_client *c, const char *method, const char *path, const char *body,
			size_t body_len, const char *content_type, long *status, struct mesh_buf *resp);

#endif
