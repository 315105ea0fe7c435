/*
 * test_server.c - the admission webhook server (controlplane/webhook/server.h)
 * over real HTTPS with libcurl: the certificate verifies against the CA's
 * root for istiod.istio-system.svc, a handler's return picks the status,
 * and the server refuses what a webhook is never sent (GET, other content
 * types, bodies over the cap, unknown paths).  Renewal: a 4 s certificate
 * is replaced while the port keeps answering.
 */
#include "controlplane/ca/ca.h"
#include "controlplane/webhook/server.h"
#include "testutil.h"

#include <check.h>
#include <curl/curl.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define NS_PER_S 1000000000LL
#define SVC "istiod.istio-system.svc"

static struct ca *ca;
static struct webhook_server *srv;
static int calls;

static int echo_handler(void *ud, const char *body, size_t len, struct mesh_buf *out)
{
	(void)ud;
	__atomic_add_fetch(&calls, 1, __ATOMIC_RELAXED);
	if (len >= 3 && memcmp(body, "bad", 3) == 0) {
		mesh_buf_puts(out, "bad request body");
		return -EINVAL;
	}
	if (len >= 4 && memcmp(body, "boom", 4) == 0)
		return -EIO;
	mesh_buf_printf(out, "{\"len\":%zu}", len);
	return 0;
}

struct reply {
	long status;
	char body[4096];
	size_t len;
	char ctype[128];
};

static size_t on_body(char *p, size_t sz, size_t n, void *ud)
{
	struct reply *r = ud;
	size_t take = sz * n;

	if (take > sizeof(r->body) - 1 - r->len)
		take = sizeof(r->body) - 1 - r->len;
	memcpy(r->body + r->len, p, take);
	r->len += take;
	r->body[r->len] = '\0';
	return sz * n;
}

/* One request; returns curl's code (0: an HTTP answer came). */
static CURLcode request(const char *method, const char *path, const char *ctype, const char *body, size_t len,
			struct reply *r)
{
	char url[256], resolve[128], hdr[160];
	struct curl_slist *hosts = NULL, *headers = NULL;
	struct curl_blob root = { .data = (void *)ca_root_pem(ca), .len = strlen(ca_root_pem(ca)),
				  .flags = CURL_BLOB_COPY };
	CURL *c = curl_easy_init();
	CURLcode rc;
	char *ct = NULL;

	memset(r, 0, sizeof(*r));
	snprintf(url, sizeof(url), "https://%s:%d%s", SVC, webhook_server_port(srv), path);
	snprintf(resolve, sizeof(resolve), "%s:%d:127.0.0.1", SVC, webhook_server_port(srv));
	hosts = curl_slist_append(hosts, resolve);
	if (ctype) {
		snprintf(hdr, sizeof(hdr), "Content-Type: %s", ctype);
		headers = curl_slist_append(headers, hdr);
	}
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_RESOLVE, hosts);
	curl_easy_setopt(c, CURLOPT_CAINFO_BLOB, &root);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	if (body) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)len);
	}
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 20L);
	rc = curl_easy_perform(c);
	if (rc == CURLE_OK) {
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
		curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &ct);
		snprintf(r->ctype, sizeof(r->ctype), "%s", ct ? ct : "");
	}
	curl_easy_cleanup(c);
	curl_slist_free_all(hosts);
	curl_slist_free_all(headers);
	return rc;
}

static void start(int64_t ttl)
{
	struct ca_config cc = { NULL, "cluster.local", 24 * 3600 * NS_PER_S, 2160LL * 3600 * NS_PER_S };
	const char *dns[] = { SVC };
	struct webhook_server_config wc = { .addr = "127.0.0.1:0", .dns = dns, .ndns = 1, .cert_ttl_seconds = ttl };
	char err[CA_ERR_CAP];

	curl_global_init(CURL_GLOBAL_DEFAULT);
	ck_assert_int_eq(ca_new(&cc, &ca, err, sizeof(err)), 0);
	wc.ca = ca;
	ck_assert_int_eq(webhook_server_start(&wc, &srv), 0);
	ck_assert_int_gt(webhook_server_port(srv), 0);
	ck_assert_int_eq(webhook_server_route(srv, "/inject", echo_handler, NULL), 0);
	calls = 0;
}

static void stop(void)
{
	webhook_server_stop(srv);
	srv = NULL;
	ca_free(ca);
	ca = NULL;
	curl_global_cleanup();
}

START_TEST(handler_status_follows_return)
{
	struct reply r;

	start(0);
	ck_assert_int_eq(request("POST", "/inject", "application/json", "{\"a\":1}", 7, &r), CURLE_OK);
	ck_assert_int_eq(r.status, 200);
	ck_assert_str_eq(r.body, "{\"len\":7}");
	ck_assert_str_eq(r.ctype, "application/json");
	ck_assert_int_eq(request("POST", "/inject", "application/json; charset=utf-8", "bad", 3, &r), CURLE_OK);
	ck_assert_int_eq(r.status, 400);
	ck_assert_str_eq(r.body, "bad request body");
	ck_assert_int_eq(request("POST", "/inject", "application/json", "boom", 4, &r), CURLE_OK);
	ck_assert_int_eq(r.status, 500);
	/* Istio's chart calls /inject/cluster/CLUSTER/net/NETWORK */
	ck_assert_int_eq(request("POST", "/inject/cluster/Kubernetes/net/", "application/json", "{}", 2, &r), CURLE_OK);
	ck_assert_int_eq(r.status, 200);
	ck_assert_int_eq(calls, 4);
	stop();
}
END_TEST

START_TEST(refuses_what_a_webhook_never_gets)
{
	struct reply r;
	size_t big = WEBHOOK_MAX_BODY + 1;
	char *body = malloc(big);

	start(0);
	ck_assert_int_eq(request("GET", "/inject", NULL, NULL, 0, &r), CURLE_OK);
	ck_assert_int_eq(r.status, 405);
	ck_assert_int_eq(request("POST", "/inject", "text/plain", "{}", 2, &r), CURLE_OK);
	ck_assert_int_eq(r.status, 415);
	ck_assert_int_eq(request("POST", "/nope", "application/json", "{}", 2, &r), CURLE_OK);
	ck_assert_int_eq(r.status, 404);
	ck_assert_int_eq(request("POST", "/injectx", "application/json", "{}", 2, &r), CURLE_OK);
	ck_assert_int_eq(r.status, 404);
	memset(body, 'x', big);
	ck_assert_int_eq(request("POST", "/inject", "application/json", body, big, &r), CURLE_OK);
	ck_assert_int_eq(r.status, 413);
	ck_assert_int_eq(calls, 0);
	/* a route added later is served, a second registration replaces */
	ck_assert_int_eq(webhook_server_route(srv, "/validate", echo_handler, NULL), 0);
	ck_assert_int_eq(webhook_server_route(srv, "/validate", echo_handler, NULL), 0);
	ck_assert_int_eq(webhook_server_route(srv, "novalid", echo_handler, NULL), -EINVAL);
	ck_assert_int_eq(request("POST", "/validate", "application/json", "{}", 2, &r), CURLE_OK);
	ck_assert_int_eq(r.status, 200);
	free(body);
	stop();
}
END_TEST

START_TEST(certificate_renewed_while_serving)
{
	struct reply r;
	int64_t first, deadline;

	start(4); /* renewed every ~2 s */
	first = webhook_server_cert_expiry(srv);
	deadline = (int64_t)time(NULL) + 20;
	while (webhook_server_cert_expiry(srv) == first && (int64_t)time(NULL) < deadline) {
		ck_assert_int_eq(request("POST", "/inject", "application/json", "{}", 2, &r), CURLE_OK);
		ck_assert_int_eq(r.status, 200);
		usleep(200 * 1000);
	}
	ck_assert_int_gt(webhook_server_cert_expiry(srv), first);
	ck_assert_int_eq(request("POST", "/inject", "application/json", "{}", 2, &r), CURLE_OK);
	ck_assert_int_eq(r.status, 200);
	stop();
}
END_TEST

START_TEST(bad_config_refused)
{
	struct ca_config cc = { NULL, "cluster.local", 24 * 3600 * NS_PER_S, 2160LL * 3600 * NS_PER_S };
	const char *dns[] = { SVC };
	struct webhook_server_config wc = { .addr = "nonsense", .dns = dns, .ndns = 1 };
	char err[CA_ERR_CAP];
	struct webhook_server *s = NULL;

	ck_assert_int_eq(ca_new(&cc, &ca, err, sizeof(err)), 0);
	wc.ca = ca;
	ck_assert_int_eq(webhook_server_start(&wc, &s), -EINVAL);
	wc.addr = "127.0.0.1:0";
	wc.ndns = 0;
	ck_assert_int_eq(webhook_server_start(&wc, &s), -EINVAL);
	ck_assert_ptr_null(s);
	ca_free(ca);
	ca = NULL;
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("webhook_server");
	TCase *tc = tcase_create("core");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, handler_status_follows_return);
	tcase_add_test(tc, refuses_what_a_webhook_never_gets);
	tcase_add_test(tc, certificate_renewed_while_serving);
	tcase_add_test(tc, bad_config_refused);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return testutil_run(suite());
}
