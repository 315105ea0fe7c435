/*
 * kube_tokenreview.c - CA caller authentication by TokenReview (see
 * kube_tokenreview.h).
 */
#include "controlplane/kube/kube_tokenreview.h"

#include "common/arena.h"
#include "common/buf.h"
#include "common/err.h"
#include "common/json.h"
#include "common/log.h"
#include "controlplane/kube/kube_json.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KUBE_TOKENREVIEW__SA_PREFIX "system:serviceaccount:"

static void kube_tokenreview__msg(char *msg, size_t cap, const char *text)
{
	if (msg && cap)
		snprintf(msg, cap, "%s", text);
}

/* "system:serviceaccount:NS:SA" into ns and sa; false when not of that form. */
static bool kube_tokenreview__user(const char *user, char *ns, size_t ns_cap, char *sa, size_t sa_cap)
{
	const char *p, *colon;
	size_t n;

	if (strncmp(user, KUBE_TOKENREVIEW__SA_PREFIX, strlen(KUBE_TOKENREVIEW__SA_PREFIX)) != 0)
		return false;
	p = user + strlen(KUBE_TOKENREVIEW__SA_PREFIX);
	colon = strchr(p, ':');
	if (!colon || colon == p || !colon[1] || strchr(colon + 1, ':'))
		return false;
	n = (size_t)(colon - p);
	if (n >= ns_cap || strlen(colon + 1) >= sa_cap)
		return false;
	memcpy(ns, p, n);
	ns[n] = '\0';
	snprintf(sa, sa_cap, "%s", colon + 1);
	return true;
}

int kube_tokenreview(struct kube_client *c, const char *token, char *ns, size_t ns_cap, char *sa, size_t sa_cap,
		     char *msg, size_t msg_cap)
{
	struct mesh_buf req, resp;
	struct arena *a = NULL;
	struct json_value *root;
	const struct json_value *st, *aud, *it;
	const char *user;
	long status = 0;
	bool aud_ok;
	int rc;

	mesh_buf_init(&req, CA_AUTH_MAX_TOKEN + 512);
	mesh_buf_init(&resp, KUBE_TOKENREVIEW_MAX_RESPONSE);
	if (!token || !*token) {
		kube_tokenreview__msg(msg, msg_cap, "no token");
		rc = -EACCES;
		goto out;
	}
	mesh_buf_puts(&req, "{\"apiVersion\":\"authentication.k8s.io/v1\",\"kind\":\"TokenReview\","
			    "\"spec\":{\"token\":");
	json_put_string(&req, token);
	mesh_buf_puts(&req, ",\"audiences\":[\"" KUBE_TOKENREVIEW_AUDIENCE "\"]}}");
	if (req.err) {
		kube_tokenreview__msg(msg, msg_cap, "token too long");
		rc = -EACCES;
		goto out;
	}
	rc = kube_client_request(c, "POST", "/apis/authentication.k8s.io/v1/tokenreviews", req.data, req.len,
				 "application/json", &status, &resp);
	if (rc < 0) {
		kube_tokenreview__msg(msg, msg_cap, "the Kubernetes API could not be reached");
		goto out;
	}
	if (status != 200 && status != 201) {
		log_warn("kube", "tokenreviews: HTTP %ld: %.200s", status, resp.data ? resp.data : "");
		kube_tokenreview__msg(msg, msg_cap, "the token review failed");
		rc = -EIO;
		goto out;
	}
	a = arena_new(resp.len * 8 + 4096);
	if (!a) {
		rc = -ENOMEM;
		goto out;
	}
	rc = kube_json_parse(a, resp.data ? resp.data : "", resp.len, &root);
	if (rc < 0) {
		kube_tokenreview__msg(msg, msg_cap, "the token review answer is not JSON");
		rc = -EIO;
		goto out;
	}
	st = json_get(root, "status");
	if (!json_get_bool(st, "authenticated", false)) {
		kube_tokenreview__msg(msg, msg_cap, "the token was not authenticated");
		rc = -EACCES;
		goto out;
	}
	aud = json_get(st, "audiences");
	aud_ok = !aud || aud->type != JSON_ARRAY;
	for (it = aud && aud->type == JSON_ARRAY ? aud->child : NULL; it; it = it->next)
		if (it->type == JSON_STRING && strcmp(it->str, KUBE_TOKENREVIEW_AUDIENCE) == 0)
			aud_ok = true;
	if (!aud_ok) {
		kube_tokenreview__msg(msg, msg_cap, "the token is not for the audience " KUBE_TOKENREVIEW_AUDIENCE);
		rc = -EACCES;
		goto out;
	}
	user = json_get_str(json_get(st, "user"), "username");
	if (!user || !kube_tokenreview__user(user, ns, ns_cap, sa, sa_cap)) {
		kube_tokenreview__msg(msg, msg_cap, "the token is not a service account's");
		rc = -EACCES;
		goto out;
	}
	rc = 0;
out:
	arena_free(a);
	mesh_buf_cleanup(&req);
	mesh_buf_cleanup(&resp);
	return rc;
}

/* ------------------------------------------------------------- authenticator */

struct kube_tokenreview__auth {
	struct ca_authenticator base;  /* first */
	struct kube_client *client;
};

static int kube_tokenreview__authenticate(struct ca_authenticator *a, const char *token, struct ca_identity *id,
					  char *msg, size_t cap)
{
	struct kube_tokenreview__auth *t = (struct kube_tokenreview__auth *)a;

	return kube_tokenreview(t->client, token, id->ns, sizeof(id->ns), id->sa, sizeof(id->sa), msg, cap);
}

static void kube_tokenreview__free(struct ca_authenticator *a)
{
	free(a);
}

static const struct ca_authenticator_ops kube_tokenreview__ops = {
	.name = "kubernetes-tokenreview",
	.authenticate = kube_tokenreview__authenticate,
	.free = kube_tokenreview__free,
};

int kube_tokenreview_authenticator_new(struct kube_client *c, struct ca_authenticator **out)
{
	struct kube_tokenreview__auth *t = calloc(1, sizeof(*t));

	*out = NULL;
	if (!t)
		return -ENOMEM;
	t->base.ops = &kube_tokenreview__ops;
	t->client = c;
	*out = &t->base;
	return 0;
}
