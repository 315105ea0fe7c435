/*
 * kube_client.c - Kubernetes API requests on libcurl (see kube_client.h).
 */
#include "controlplane/kube/kube_client.h"
#include "controlplane/kube/kube_curl.h"

#include "common/err.h"
#include "common/log.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

struct kube_client {
	struct kube_config cfg;
	pthread_mutex_t lock;        /* guards the token cache */
	char *token;                 /* current bearer token (file or fixed) */
	struct stat token_st;        /* of token_file when last read */
	bool token_read;
};

int kube_client_new(const struct kube_config *cfg, struct kube_client **out)
{
	struct kube_client *c;
	int rc;

	*out = NULL;
	if (!cfg->server)
		return -EINVAL;
	/* libcurl is loaded here, not linked (kube_curl.h) */
	rc = kube_curl_load();
	if (rc < 0)
		return rc;
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return -ENOMEM;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	rc = kube_config_copy(&c->cfg, cfg);
	if (rc < 0) {
		free(c);
		return rc;
	}
	pthread_mutex_init(&c->lock, NULL);
	*out = c;
	return 0;
}

void kube_client_free(struct kube_client *c)
{
	if (!c)
		return;
	kube_config_cleanup(&c->cfg);
	free(c->token);
	pthread_mutex_destroy(&c->lock);
	free(c);
	curl_global_cleanup();
}

const struct kube_config *kube_client_config(const struct kube_client *c)
{
	return &c->cfg;
}

/* Re-read the token file when it changed.  Caller holds c->lock. */
static void kube__token_refresh(struct kube_client *c)
{
	struct stat st;
	char *data = NULL;
	size_t len;
	int rc;

	if (!c->cfg.token_file)
		return;
	if (stat(c->cfg.token_file, &st) < 0) {
		log_warn("kube", "token file %s: %s; keeping the previous token", c->cfg.token_file,
			 strerror(errno));
		return;
	}
	if (c->token_read && st.st_ino == c->token_st.st_ino && st.st_size == c->token_st.st_size &&
	    st.st_mtim.tv_sec == c->token_st.st_mtim.tv_sec && st.st_mtim.tv_nsec == c->token_st.st_mtim.tv_nsec)
		return;
	if (st.st_size > (off_t)KUBE_CLIENT_TOKEN_MAX) {
		log_warn("kube", "token file %s is larger than %u bytes", c->cfg.token_file, KUBE_CLIENT_TOKEN_MAX);
		return;
	}
	rc = kube_config_read_file(c->cfg.token_file, &data, &len);
	if (rc < 0) {
		log_warn("kube", "token file %s: %s", c->cfg.token_file, mesh_strerror(rc));
		return;
	}
	while (len && (data[len - 1] == '\n' || data[len - 1] == '\r' || data[len - 1] == ' '))
		data[--len] = '\0';
	if (c->token_read)
		log_info("kube", "token file %s changed; using the new token", c->cfg.token_file);
	free(c->token);
	c->token = data;
	c->token_st = st;
	c->token_read = true;
}

int kube_client_prepare(struct kube_client *c, CURL *h, const char *method, const char *path,
			struct curl_slist **headers)
{
	struct curl_slist *hl = NULL, *n;
	char url[KUBE_CLIENT_URL_MAX];
	char *auth = NULL;
	int rc = 0, w;

	*headers = NULL;
	w = snprintf(url, sizeof(url), "%s%s", c->cfg.server, path);
	if (w < 0 || (size_t)w >= sizeof(url))
		return -MESH_ETOOBIG;
	pthread_mutex_lock(&c->lock);
	kube__token_refresh(c);
	{
		const char *tok = c->cfg.token ? c->cfg.token : c->token;
		if (tok && *tok) {
			size_t l = strlen(tok) + sizeof("Authorization: Bearer ");
			auth = malloc(l);
			if (auth)
				snprintf(auth, l, "Authorization: Bearer %s", tok);
			else
				rc = -ENOMEM;
		}
	}
	pthread_mutex_unlock(&c->lock);
	if (rc < 0)
		goto out;
#define KUBE__HDR(s) \
	do { \
		n = curl_slist_append(hl, s); \
		if (!n) { \
			rc = -ENOMEM; \
			goto out; \
		} \
		hl = n; \
	} while (0)
	KUBE__HDR("Accept: application/json");
	if (auth)
		KUBE__HDR(auth);
#undef KUBE__HDR
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, strcmp(method, "GET") ? method : NULL);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "meshd");
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
	curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_ACCEPT_ENCODING, "");
	if (c->cfg.insecure) {
		curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
	} else if (c->cfg.ca_data) {
		struct curl_blob blob = { .data = c->cfg.ca_data, .len = c->cfg.ca_data_len,
					  .flags = CURL_BLOB_COPY };
		curl_easy_setopt(h, CURLOPT_CAINFO_BLOB, &blob);
	} else if (c->cfg.ca_file) {
		curl_easy_setopt(h, CURLOPT_CAINFO, c->cfg.ca_file);
	}
	if (c->cfg.cert_data) {
		struct curl_blob blob = { .data = c->cfg.cert_data, .len = c->cfg.cert_data_len,
					  .flags = CURL_BLOB_COPY };
		curl_easy_setopt(h, CURLOPT_SSLCERT_BLOB, &blob);
		curl_easy_setopt(h, CURLOPT_SSLCERTTYPE, "PEM");
	} else if (c->cfg.cert_file) {
		curl_easy_setopt(h, CURLOPT_SSLCERT, c->cfg.cert_file);
	}
	if (c->cfg.key_data) {
		struct curl_blob blob = { .data = c->cfg.key_data, .len = c->cfg.key_data_len,
					  .flags = CURL_BLOB_COPY };
		curl_easy_setopt(h, CURLOPT_SSLKEY_BLOB, &blob);
		curl_easy_setopt(h, CURLOPT_SSLKEYTYPE, "PEM");
	} else if (c->cfg.key_file) {
		curl_easy_setopt(h, CURLOPT_SSLKEY, c->cfg.key_file);
	}
	*headers = hl;
	hl = NULL;
out:
	curl_slist_free_all(hl);
	free(auth);
	return rc;
}

static size_t kube__collect(char *p, size_t size, size_t n, void *ud)
{
	struct mesh_buf *b = ud;

	return mesh_buf_append(b, p, size * n) < 0 ? 0 : size * n;
}

int kube_client_request(struct kube_client *c, const char *method, const char *path, const char *body,
			size_t body_len, const char *content_type, long *status, struct mesh_buf *resp)
{
	struct curl_slist *hl = NULL, *n;
	CURL *h = curl_easy_init();
	CURLcode cr;
	int rc;

	*status = 0;
	if (!h)
		return -ENOMEM;
	rc = kube_client_prepare(c, h, method, path, &hl);
	if (rc < 0)
		goto out;
	if (content_type) {
		char ct[128];
		snprintf(ct, sizeof(ct), "Content-Type: %s", content_type);
		n = curl_slist_append(hl, ct);
		if (!n) {
			rc = -ENOMEM;
			goto out;
		}
		hl = n;
		curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
	}
	if (body) {
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
	}
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 30000L);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, kube__collect);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, resp);
	cr = curl_easy_perform(h);
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
	if (cr != CURLE_OK) {
		rc = resp->err ? resp->err : -EIO;
		log_debug("kube", "%s %s: %s", method, path, curl_easy_strerror(cr));
	}
out:
	curl_slist_free_all(hl);
	curl_easy_cleanup(h);
	return rc;
}
