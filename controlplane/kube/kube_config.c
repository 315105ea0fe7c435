/*
 * kube_config.c - in-cluster and kubeconfig settings (see kube_config.h).
 *
 * The kubeconfig is read with libyaml's document API (a node tree owned by
 * libyaml); only the few fields above are looked at.  Base64 "-data"
 * fields are decoded with OpenSSL's EVP decoder.
 */
#include "controlplane/kube/kube_config.h"

#include "common/err.h"
#include "common/file.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

static void kube__why(char *why, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void kube__why(char *why, size_t cap, const char *fmt, ...)
{
	va_list ap;

	if (!why || !cap)
		return;
	va_start(ap, fmt);
	vsnprintf(why, cap, fmt, ap);
	va_end(ap);
}

int kube_config_read_file(const char *path, char **data, size_t *len)
{
	int rc = mesh_read_file(path, KUBE_CONFIG_MAX_BYTES, data, len);

	if (rc < 0)
		*len = 0;
	return rc;
}

void kube_config_cleanup(struct kube_config *c)
{
	if (!c)
		return;
	free(c->server);
	free(c->tls_server_name);
	free(c->ca_file);
	free(c->ca_data);
	free(c->token);
	free(c->token_file);
	free(c->cert_file);
	free(c->key_file);
	free(c->cert_data);
	free(c->key_data);
	free(c->ns);
	memset(c, 0, sizeof(*c));
}

static int kube__dup(char **dst, const char *src, size_t len)
{
	*dst = NULL;
	if (!src)
		return 0;
	*dst = malloc(len + 1);
	if (!*dst)
		return -ENOMEM;
	memcpy(*dst, src, len);
	(*dst)[len] = '\0';
	return 0;
}

int kube_config_copy(struct kube_config *d, const struct kube_config *s)
{
	int rc = 0;

	memset(d, 0, sizeof(*d));
	d->insecure = s->insecure;
	d->ca_data_len = s->ca_data_len;
	d->cert_data_len = s->cert_data_len;
	d->key_data_len = s->key_data_len;
#define KUBE__COPY(f, l) \
	if (rc == 0) \
		rc = kube__dup(&d->f, s->f, s->f ? (l) : 0)
	KUBE__COPY(server, strlen(s->server));
	KUBE__COPY(tls_server_name, strlen(s->tls_server_name));
	KUBE__COPY(ca_file, strlen(s->ca_file));
	KUBE__COPY(ca_data, s->ca_data_len);
	KUBE__COPY(token, strlen(s->token));
	KUBE__COPY(token_file, strlen(s->token_file));
	KUBE__COPY(cert_file, strlen(s->cert_file));
	KUBE__COPY(key_file, strlen(s->key_file));
	KUBE__COPY(cert_data, s->cert_data_len);
	KUBE__COPY(key_data, s->key_data_len);
	KUBE__COPY(ns, strlen(s->ns));
#undef KUBE__COPY
	if (rc < 0)
		kube_config_cleanup(d);
	return rc;
}

/* ------------------------------------------------------------- in-cluster */

static int kube__trim_dup(char **dst, const char *s, size_t len)
{
	while (len && (s[len - 1] == '\n' || s[len - 1] == '\r' || s[len - 1] == ' ' || s[len - 1] == '\t'))
		len--;
	return kube__dup(dst, s, len);
}

int kube_config_in_cluster(const char *sa_dir, struct kube_config *out, char *why, size_t why_cap)
{
	const char *host = getenv("KUBERNETES_SERVICE_HOST"), *port = getenv("KUBERNETES_SERVICE_PORT");
	char path[PATH_MAX], server[300];
	char *data = NULL;
	size_t len;
	int rc;

	memset(out, 0, sizeof(*out));
	if (!sa_dir)
		sa_dir = KUBE_CONFIG_SA_DIR;
	if (!host || !*host || !port || !*port) {
		kube__why(why, why_cap, "not running in a cluster: KUBERNETES_SERVICE_HOST and "
			  "KUBERNETES_SERVICE_PORT must be set (or use --kubeconfig)");
		return -ENOENT;
	}
	if (strchr(host, ':'))
		rc = snprintf(server, sizeof(server), "https://[%s]:%s", host, port);
	else
		rc = snprintf(server, sizeof(server), "https://%s:%s", host, port);
	if (rc < 0 || (size_t)rc >= sizeof(server)) {
		kube__why(why, why_cap, "KUBERNETES_SERVICE_HOST is too long");
		return -EINVAL;
	}
	rc = kube__dup(&out->server, server, strlen(server));
	if (rc < 0)
		goto out;
	snprintf(path, sizeof(path), "%s/token", sa_dir);
	if (access(path, R_OK) < 0) {
		rc = -errno;
		kube__why(why, why_cap, "%s: %s", path, strerror(errno));
		goto out;
	}
	rc = kube__dup(&out->token_file, path, strlen(path));
	if (rc < 0)
		goto out;
	snprintf(path, sizeof(path), "%s/ca.crt", sa_dir);
	if (access(path, R_OK) == 0) {
		rc = kube__dup(&out->ca_file, path, strlen(path));
		if (rc < 0)
			goto out;
	}
	snprintf(path, sizeof(path), "%s/namespace", sa_dir);
	if (kube_config_read_file(path, &data, &len) == 0 && len)
		rc = kube__trim_dup(&out->ns, data, len);
	else
		rc = kube__dup(&out->ns, "default", 7);
out:
	free(data);
	if (rc < 0)
		kube_config_cleanup(out);
	return rc;
}

/* ------------------------------------------------------------- kubeconfig */

struct kube__kc {
	yaml_document_t doc;
	const char *path;
	char dir[PATH_MAX];
	char *why;
	size_t why_cap;
};

static yaml_node_t *kube__map_get(struct kube__kc *kc, yaml_node_t *map, const char *key)
{
	yaml_node_pair_t *p;

	if (!map || map->type != YAML_MAPPING_NODE)
		return NULL;
	for (p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
		yaml_node_t *k = yaml_document_get_node(&kc->doc, p->key);
		if (k && k->type == YAML_SCALAR_NODE && strcmp((const char *)k->data.scalar.value, key) == 0)
			return yaml_document_get_node(&kc->doc, p->value);
	}
	return NULL;
}

static const char *kube__map_str(struct kube__kc *kc, yaml_node_t *map, const char *key)
{
	yaml_node_t *v = kube__map_get(kc, map, key);

	if (!v || v->type != YAML_SCALAR_NODE || !v->data.scalar.length)
		return NULL;
	return (const char *)v->data.scalar.value;
}

/* In the list under `list`, the item whose name is `name`; its `field` map. */
static yaml_node_t *kube__named(struct kube__kc *kc, yaml_node_t *root, const char *list, const char *name,
				const char *field)
{
	yaml_node_t *seq = kube__map_get(kc, root, list);
	yaml_node_item_t *it;

	if (!seq || seq->type != YAML_SEQUENCE_NODE)
		return NULL;
	for (it = seq->data.sequence.items.start; it < seq->data.sequence.items.top; it++) {
		yaml_node_t *item = yaml_document_get_node(&kc->doc, *it);
		const char *n = kube__map_str(kc, item, "name");
		if (n && strcmp(n, name) == 0)
			return kube__map_get(kc, item, field);
	}
	return NULL;
}

static int kube__path(struct kube__kc *kc, const char *p, char **out)
{
	char buf[PATH_MAX];
	int n;

	if (p[0] == '/' || !kc->dir[0])
		return kube__dup(out, p, strlen(p));
	n = snprintf(buf, sizeof(buf), "%s/%s", kc->dir, p);
	if (n < 0 || (size_t)n >= sizeof(buf))
		return -ENAMETOOLONG;
	return kube__dup(out, buf, (size_t)n);
}

static int kube__b64(struct kube__kc *kc, const char *field, const char *in, char **out, size_t *out_len)
{
	EVP_ENCODE_CTX *ctx = EVP_ENCODE_CTX_new();
	size_t inl = strlen(in);
	unsigned char *d = NULL;
	int n = 0, m = 0, rc = 0;

	if (!ctx)
		return -ENOMEM;
	if (inl > INT_MAX / 2) {
		rc = -MESH_ETOOBIG;
		goto out;
	}
	d = malloc(inl / 4 * 3 + 4);
	if (!d) {
		rc = -ENOMEM;
		goto out;
	}
	EVP_DecodeInit(ctx);
	if (EVP_DecodeUpdate(ctx, d, &n, (const unsigned char *)in, (int)inl) < 0 ||
	    EVP_DecodeFinal(ctx, d + n, &m) < 0) {
		kube__why(kc->why, kc->why_cap, "%s: %s is not valid base64", kc->path, field);
		rc = -EINVAL;
		goto out;
	}
	d[n + m] = '\0';
	*out = (char *)d;
	*out_len = (size_t)(n + m);
	d = NULL;
out:
	free(d);
	EVP_ENCODE_CTX_free(ctx);
	return rc;
}

int kube_config_from_kubeconfig(const char *path, const char *context, struct kube_config *out, char *why,
				size_t why_cap)
{
	struct kube__kc kc = { .path = path, .why = why, .why_cap = why_cap };
	yaml_parser_t parser;
	yaml_node_t *root, *ctx, *cluster, *user;
	const char *cluster_name, *user_name, *s;
	char *data = NULL, *slash;
	size_t len;
	bool have_doc = false, have_parser = false;
	int rc;

	memset(out, 0, sizeof(*out));
	rc = kube_config_read_file(path, &data, &len);
	if (rc < 0) {
		kube__why(why, why_cap, "%s: %s", path, mesh_strerror(rc));
		goto out;
	}
	snprintf(kc.dir, sizeof(kc.dir), "%s", path);
	slash = strrchr(kc.dir, '/');
	if (slash)
		*slash = '\0';
	else
		kc.dir[0] = '\0';
	if (!yaml_parser_initialize(&parser)) {
		rc = -ENOMEM;
		goto out;
	}
	have_parser = true;
	yaml_parser_set_input_string(&parser, (const unsigned char *)data, len);
	if (!yaml_parser_load(&parser, &kc.doc)) {
		kube__why(why, why_cap, "%s:%zu: %s", path, parser.problem_mark.line + 1,
			  parser.problem ? parser.problem : "not YAML");
		rc = -MESH_EPARSE;
		goto out;
	}
	have_doc = true;
	root = yaml_document_get_root_node(&kc.doc);
	if (!root || root->type != YAML_MAPPING_NODE) {
		kube__why(why, why_cap, "%s: not a kubeconfig (expected a mapping)", path);
		rc = -MESH_EPARSE;
		goto out;
	}
	if (!context)
		context = kube__map_str(&kc, root, "current-context");
	if (!context) {
		kube__why(why, why_cap, "%s: no current-context", path);
		rc = -EINVAL;
		goto out;
	}
	ctx = kube__named(&kc, root, "contexts", context, "context");
	if (!ctx) {
		kube__why(why, why_cap, "%s: context \"%s\" not found", path, context);
		rc = -EINVAL;
		goto out;
	}
	cluster_name = kube__map_str(&kc, ctx, "cluster");
	user_name = kube__map_str(&kc, ctx, "user");
	cluster = cluster_name ? kube__named(&kc, root, "clusters", cluster_name, "cluster") : NULL;
	if (!cluster) {
		kube__why(why, why_cap, "%s: cluster \"%s\" of context \"%s\" not found", path,
			  cluster_name ? cluster_name : "", context);
		rc = -EINVAL;
		goto out;
	}
	user = user_name ? kube__named(&kc, root, "users", user_name, "user") : NULL;
	if (user_name && !user) {
		kube__why(why, why_cap, "%s: user \"%s\" of context \"%s\" not found", path, user_name, context);
		rc = -EINVAL;
		goto out;
	}

	s = kube__map_str(&kc, cluster, "server");
	if (!s) {
		kube__why(why, why_cap, "%s: clusters[%s].cluster.server is required", path, cluster_name);
		rc = -EINVAL;
		goto out;
	}
	len = strlen(s);
	while (len && s[len - 1] == '/')
		len--;
	rc = kube__dup(&out->server, s, len);
	if (rc == 0 && (s = kube__map_str(&kc, cluster, "tls-server-name")))
		rc = kube__dup(&out->tls_server_name, s, strlen(s));
	if (rc == 0 && (s = kube__map_str(&kc, cluster, "certificate-authority-data")))
		rc = kube__b64(&kc, "certificate-authority-data", s, &out->ca_data, &out->ca_data_len);
	else if (rc == 0 && (s = kube__map_str(&kc, cluster, "certificate-authority")))
		rc = kube__path(&kc, s, &out->ca_file);
	if (rc == 0 && (s = kube__map_str(&kc, cluster, "insecure-skip-tls-verify")))
		out->insecure = strcmp(s, "true") == 0;
	if (rc == 0 && user) {
		if (kube__map_get(&kc, user, "exec") || kube__map_get(&kc, user, "auth-provider")) {
			kube__why(why, why_cap, "%s: users[%s].user: exec and auth-provider plugins are not "
				  "supported; use a token, tokenFile or client certificate", path, user_name);
			rc = -ENOTSUP;
			goto out;
		}
		if ((s = kube__map_str(&kc, user, "token")))
			rc = kube__dup(&out->token, s, strlen(s));
		else if ((s = kube__map_str(&kc, user, "tokenFile")))
			rc = kube__path(&kc, s, &out->token_file);
		if (rc == 0 && (s = kube__map_str(&kc, user, "client-certificate-data")))
			rc = kube__b64(&kc, "client-certificate-data", s, &out->cert_data, &out->cert_data_len);
		else if (rc == 0 && (s = kube__map_str(&kc, user, "client-certificate")))
			rc = kube__path(&kc, s, &out->cert_file);
		if (rc == 0 && (s = kube__map_str(&kc, user, "client-key-data")))
			rc = kube__b64(&kc, "client-key-data", s, &out->key_data, &out->key_data_len);
		else if (rc == 0 && (s = kube__map_str(&kc, user, "client-key")))
			rc = kube__path(&kc, s, &out->key_file);
	}
	if (rc == 0) {
		s = kube__map_str(&kc, ctx, "namespace");
		rc = kube__dup(&out->ns, s ? s : "default", strlen(s ? s : "default"));
	}
	if (rc == -ENOMEM || rc == -ENAMETOOLONG)
		kube__why(why, why_cap, "%s: %s", path, mesh_strerror(rc));
out:
	if (have_doc)
		yaml_document_delete(&kc.doc);
	if (have_parser)
		yaml_parser_delete(&parser);
	free(data);
	if (rc < 0)
		kube_config_cleanup(out);
	return rc;
}
