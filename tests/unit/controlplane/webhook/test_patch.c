/*
 * test_patch.c - the webhook configuration patcher against the fake API
 * server (tests/kube/fake_apiserver.py, a real HTTP server process, which
 * runs the admission chain): the caBundle goes into the injector's
 * sidecar-injector.istio.io webhooks only and into every validator webhook;
 * configurations of other names are left alone; a rewrite is patched again;
 * the validators keep failurePolicy Ignore while the dry-run probe is let
 * through and switch to Fail once it cannot pass (a webhook that does not
 * take dry runs) or cannot be judged (no Gateway CRD).
 *
 * Every wait is bounded and polls for a condition; nothing asserts timing.
 */
#include "common/arena.h"
#include "common/json.h"
#include "controlplane/kube/kube_client.h"
#include "controlplane/kube/kube_config.h"
#include "controlplane/kube/kube_json.h"
#include "controlplane/webhook/patch.h"

#include <check.h>
#include <curl/curl.h>
#include <errno.h>
#include <openssl/evp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define WAIT_LIMIT_S 30
#define ROOT "-----BEGIN CERTIFICATE-----\nMIIBtest\n-----END CERTIFICATE-----\n"

static char dir[256];
static pid_t server_pid = -1;
static int port;
static struct kube_client *client;
static struct webhook_patch *patcher;
static char root_b64[256];

static void start_server(void)
{
	char port_file[300];
	int i;

	snprintf(port_file, sizeof(port_file), "%s/port", dir);
	server_pid = fork();
	ck_assert_int_ge(server_pid, 0);
	if (server_pid == 0) {
		execl("/usr/bin/python3", "python3", "tests/kube/fake_apiserver.py", "--port", "0", "--port-file",
		      port_file, (char *)NULL);
		_exit(127);
	}
	for (i = 0; i < WAIT_LIMIT_S * 20; i++) {
		FILE *f = fopen(port_file, "r");
		if (f) {
			int ok = fscanf(f, "%d", &port) == 1;
			fclose(f);
			if (ok)
				return;
		}
		usleep(50000);
	}
	ck_abort_msg("fake API server did not start");
}

static size_t collect(char *p, size_t size, size_t n, void *ud)
{
	char **out = ud;
	size_t have = *out ? strlen(*out) : 0;
	char *d = realloc(*out, have + size * n + 1);

	if (!d)
		return 0;
	memcpy(d + have, p, size * n);
	d[have + size * n] = '\0';
	*out = d;
	return size * n;
}

/* A request to the fake (control API or the API itself); the body (free it). */
static char *call(const char *method, const char *path, const char *body)
{
	char url[600];
	char *out = NULL;
	long code = 0;
	CURL *h = curl_easy_init();
	struct curl_slist *hl = curl_slist_append(NULL, "Content-Type: application/json");

	ck_assert_ptr_nonnull(h);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port, path);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
	if (body)
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &out);
	ck_assert_int_eq(curl_easy_perform(h), CURLE_OK);
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
	curl_slist_free_all(hl);
	curl_easy_cleanup(h);
	return out ? out : strdup("");
}

static void control(const char *what, const char *body)
{
	char path[100];

	snprintf(path, sizeof(path), "/_control/%s", what);
	free(call("POST", path, body));
}

/* A webhook configuration with the given webhooks (JSON array text). */
static void apply_config(const char *kind, const char *name, const char *webhooks)
{
	char body[4096];

	snprintf(body, sizeof(body),
		 "{\"apiVersion\":\"admissionregistration.k8s.io/v1\",\"kind\":\"%sWebhookConfiguration\","
		 "\"metadata\":{\"name\":\"%s\"},\"webhooks\":%s}", kind, name, webhooks);
	control("apply", body);
}

#define HOOK(name, policy, effects) \
	"{\"name\":\"" name "\",\"clientConfig\":{\"url\":\"https://127.0.0.1:1/validate\"}," \
	"\"rules\":[{\"operations\":[\"CREATE\",\"UPDATE\"],\"apiGroups\":[\"networking.istio.io\"]," \
	"\"apiVersions\":[\"*\"],\"resources\":[\"*\"]}],\"failurePolicy\":\"" policy "\"," \
	"\"sideEffects\":\"" effects "\",\"admissionReviewVersions\":[\"v1\"]}"

/* "caBundle|failurePolicy" of webhook i of a configuration, into out. */
static void webhook_state(const char *plural, const char *name, int i, char *out, size_t cap)
{
	char path[300];
	char *body;
	struct arena *a = arena_new(1 << 20);
	struct json_value *root;
	const struct json_value *w;
	int n = 0;

	snprintf(path, sizeof(path), "/apis/admissionregistration.k8s.io/v1/%s/%s", plural, name);
	body = call("GET", path, NULL);
	out[0] = '\0';
	if (kube_json_parse(a, body, strlen(body), &root) == 0) {
		w = json_get(root, "webhooks");
		for (w = w ? w->child : NULL; w && n < i; w = w->next)
			n++;
		if (w) {
			const char *cb = json_get_str(json_get(w, "clientConfig"), "caBundle");
			const char *fp = json_get_str(w, "failurePolicy");
			snprintf(out, cap, "%s|%s", cb ? cb : "", fp ? fp : "");
		}
	}
	arena_free(a);
	free(body);
}

static bool wait_state(const char *plural, const char *name, int i, const char *want)
{
	char got[1024];
	int t;

	for (t = 0; t < WAIT_LIMIT_S * 20; t++) {
		webhook_state(plural, name, i, got, sizeof(got));
		if (!strcmp(got, want))
			return true;
		usleep(50000);
	}
	fprintf(stderr, "%s/%s[%d]: want %s, got %s\n", plural, name, i, want, got);
	return false;
}

static void setup(void)
{
	struct kube_config kc = { 0 };
	char server[64];

	snprintf(dir, sizeof(dir), "/tmp/meshd-test-patch-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	start_server();
	snprintf(server, sizeof(server), "http://127.0.0.1:%d", port);
	kc.server = server;
	kc.ns = "default";
	ck_assert_int_eq(kube_client_new(&kc, &client), 0);
	EVP_EncodeBlock((unsigned char *)root_b64, (const unsigned char *)ROOT, (int)strlen(ROOT));
	patcher = NULL;
}

static void teardown(void)
{
	char cmd[300];

	webhook_patch_stop(patcher);
	kube_client_free(client);
	if (server_pid > 0) {
		kill(server_pid, SIGTERM);
		waitpid(server_pid, NULL, 0);
	}
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	ck_assert_int_eq(system(cmd), 0);
}

static void start_patcher(void)
{
	struct webhook_patch_config c = { .client = client, .root_pem = ROOT, .resync = 60LL * 1000000000LL };

	ck_assert_int_eq(webhook_patch_start(&c, &patcher), 0);
}

START_TEST(ca_bundle_where_istiod_puts_it)
{
	char want[512], got[512];

	apply_config("Mutating", "istio-sidecar-injector",
		     "[" HOOK("namespace.sidecar-injector.istio.io", "Fail", "None") ","
		     HOOK("someone.else.example.com", "Fail", "None") "]");
	apply_config("Mutating", "another-injector", "[" HOOK("object.sidecar-injector.istio.io", "Fail", "None") "]");
	start_patcher();
	snprintf(want, sizeof(want), "%s|Fail", root_b64);
	ck_assert(wait_state("mutatingwebhookconfigurations", "istio-sidecar-injector", 0, want));
	webhook_state("mutatingwebhookconfigurations", "istio-sidecar-injector", 1, got, sizeof(got));
	ck_assert_str_eq(got, "|Fail");
	webhook_state("mutatingwebhookconfigurations", "another-injector", 0, got, sizeof(got));
	ck_assert_str_eq(got, "|Fail");
	/* rewritten by someone: patched again (the watch) */
	apply_config("Mutating", "istio-sidecar-injector",
		     "[" HOOK("namespace.sidecar-injector.istio.io", "Fail", "None") "]");
	ck_assert(wait_state("mutatingwebhookconfigurations", "istio-sidecar-injector", 0, want));
	ck_assert_uint_ge(webhook_patch_writes(patcher), 2);
}
END_TEST

START_TEST(validators_fail_closed_only_once_the_probe_cannot_pass)
{
	char want[512], got[512];
	int i;

	/* the webhook cannot be reached and fails open: the probe is let through */
	apply_config("Validating", "istiod-default-validator", "[" HOOK("validation.istio.io", "Ignore", "None") "]");
	start_patcher();
	snprintf(want, sizeof(want), "%s|Ignore", root_b64);
	ck_assert(wait_state("validatingwebhookconfigurations", "istiod-default-validator", 0, want));
	/* a few probe rounds (100, 200, 400 ms ...): still Ignore */
	for (i = 0; i < 20; i++) {
		usleep(50000);
		webhook_state("validatingwebhookconfigurations", "istiod-default-validator", 0, got, sizeof(got));
		ck_assert_str_eq(got, want);
	}
	ck_assert(!webhook_patch_fail_closed(patcher));
	/* another validator that takes no dry runs: the probe is refused for that, which istiod
	 * takes as ready */
	apply_config("Validating", "zz-other", "[" HOOK("other.example.com", "Ignore", "Some") "]");
	snprintf(want, sizeof(want), "%s|Fail", root_b64);
	ck_assert(wait_state("validatingwebhookconfigurations", "istiod-default-validator", 0, want));
	ck_assert(webhook_patch_fail_closed(patcher));
	webhook_state("validatingwebhookconfigurations", "zz-other", 0, got, sizeof(got));
	ck_assert_str_eq(got, "|Ignore"); /* not ours */
	/* put back to Ignore by someone: Fail again at once (readiness is kept) */
	apply_config("Validating", "istiod-default-validator", "[" HOOK("validation.istio.io", "Ignore", "None") "]");
	ck_assert(wait_state("validatingwebhookconfigurations", "istiod-default-validator", 0, want));
}
END_TEST

START_TEST(no_gateway_crd_counts_as_ready)
{
	char want[512];

	control("crd", "{\"group\":\"networking.istio.io\",\"plural\":\"gateways\",\"installed\":false}");
	apply_config("Validating", "istio-validator-istio-system", "[" HOOK("rev.validation.istio.io", "Ignore", "None") "]");
	start_patcher();
	snprintf(want, sizeof(want), "%s|Fail", root_b64);
	ck_assert(wait_state("validatingwebhookconfigurations", "istio-validator-istio-system", 0, want));
}
END_TEST

START_TEST(bad_config)
{
	struct webhook_patch_config c = { .client = client };
	struct webhook_patch *p = (struct webhook_patch *)1;

	ck_assert_int_eq(webhook_patch_start(&c, &p), -EINVAL);
	ck_assert_ptr_null(p);
	c.root_pem = ROOT;
	c.validating = "a,b,c,d,e,f,g,h,i";
	ck_assert_int_eq(webhook_patch_start(&c, &p), -EINVAL);
	webhook_patch_stop(NULL);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("webhook_patch");
	TCase *tc = tcase_create("fake_apiserver");
	SRunner *sr;
	int failed;

	curl_global_init(CURL_GLOBAL_DEFAULT);
	tcase_set_timeout(tc, 120);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, ca_bundle_where_istiod_puts_it);
	tcase_add_test(tc, validators_fail_closed_only_once_the_probe_cannot_pass);
	tcase_add_test(tc, no_gateway_crd_counts_as_ready);
	tcase_add_test(tc, bad_config);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
