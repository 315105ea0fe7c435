/*
 * test_kube_source.c - the Kubernetes source against the fake API server
 * (tests/kube/fake_apiserver.py, a real HTTP server process): initial sync,
 * add/modify/delete, a dropped watch resumed without a relist, 410 answered
 * by a relist that notices a deletion, bookmarks advancing the
 * resourceVersion, pagination, the server going away and coming back, a CRD
 * that is not installed, token file rotation; error answers as client-go
 * handles them (429 waits Retry-After; 401/403/404/5xx on a relist keep
 * what is known; HTTP 410 on a watch relists) and the cap on objects per
 * source.
 *
 * Every wait is bounded and polls for a condition; nothing asserts timing.
 */
#include "controlplane/config/store.h"
#include "controlplane/kube/kube_source.h"
#include "controlplane/kube/kube_tokenreview.h"

#include <check.h>
#include <curl/curl.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define WAIT_LIMIT_S 30

static char dir[256];
static char kubeconfig[300];
static char token_file[300];
static pid_t server_pid = -1;
static int port;
static struct cfg_store *store;
static struct kube_source *ks;

/* ------------------------------------------------------------- fake server */

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

/* Call the control API; returns the response body (free it). */
static char *control(const char *method, const char *what, const char *body)
{
	char url[300];
	char *out = NULL;
	long code = 0;
	CURL *h = curl_easy_init();
	struct curl_slist *hl = curl_slist_append(NULL, "Content-Type: application/json");

	ck_assert_ptr_nonnull(h);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/_control/%s", port, what);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
	if (body)
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
	else if (strcmp(method, "POST") == 0)
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, "{}");
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &out);
	ck_assert_int_eq(curl_easy_perform(h), CURLE_OK);
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
	ck_assert_msg(code >= 200 && code < 300, "control %s: HTTP %ld: %s", what, code, out ? out : "");
	curl_slist_free_all(hl);
	curl_easy_cleanup(h);
	return out ? out : strdup("");
}

static void control0(const char *method, const char *what, const char *body)
{
	free(control(method, what, body));
}

static void apply_vs(const char *name, const char *host)
{
	char body[600];

	snprintf(body, sizeof(body),
		 "{\"apiVersion\":\"networking.istio.io/v1\",\"kind\":\"VirtualService\","
		 "\"metadata\":{\"name\":\"%s\",\"namespace\":\"ns\"},"
		 "\"spec\":{\"hosts\":[\"%s\"],\"http\":[{\"route\":[{\"destination\":{\"host\":\"%s\"}}]}]}}",
		 name, host, host);
	control0("POST", "apply", body);
}

static void delete_vs(const char *name)
{
	char body[300];

	snprintf(body, sizeof(body),
		 "{\"apiVersion\":\"networking.istio.io/v1\",\"kind\":\"VirtualService\","
		 "\"metadata\":{\"name\":\"%s\",\"namespace\":\"ns\"}}", name);
	control0("POST", "delete", body);
}

static void apply_service(const char *name)
{
	char body[600];

	snprintf(body, sizeof(body),
		 "{\"apiVersion\":\"v1\",\"kind\":\"Service\",\"metadata\":{\"name\":\"%s\",\"namespace\":\"ns\","
		 "\"labels\":{\"app\":\"%s\"}},\"spec\":{\"clusterIP\":\"10.0.0.7\",\"selector\":{\"app\":\"%s\"},"
		 "\"ports\":[{\"name\":\"http\",\"port\":80,\"targetPort\":8080}]}}",
		 name, name, name);
	control0("POST", "apply", body);
}

/* The server's current resourceVersion. */
static long server_rv(void)
{
	char *s = control("GET", "state", NULL), *p = strstr(s, "\"resourceVersion\": \"");
	long rv;

	ck_assert_ptr_nonnull(p);
	rv = strtol(p + strlen("\"resourceVersion\": \""), NULL, 10);
	free(s);
	return rv;
}

/* Count logged requests to path whose query has (or lacks) "watch". */
static int count_requests(const char *path, int watch, const char *needle)
{
	char *s = control("GET", "requests", NULL), *p = s;
	char pat[300];
	int n = 0;

	snprintf(pat, sizeof(pat), "\"path\": \"%s\"", path);
	while ((p = strstr(p, pat))) {
		char *end = strchr(p, '}');
		end = end ? strchr(end + 1, '}') : NULL; /* query object, then the request */
		if (!end)
			break;
		*end = '\0';
		if ((strstr(p, "\"watch\": \"true\"") != NULL) == (watch != 0) && (!needle || strstr(p, needle)))
			n++;
		p = end + 1;
	}
	free(s);
	return n;
}

#define VS_PATH "/apis/networking.istio.io/v1/virtualservices"

/* ------------------------------------------------------------- fixture */

static void write_text(const char *path, const char *text)
{
	char tmp[320];
	FILE *f;

	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	f = fopen(tmp, "w");
	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	fclose(f);
	ck_assert_int_eq(rename(tmp, path), 0);
}

static void setup(void)
{
	char text[1024];

	snprintf(dir, sizeof(dir), "/tmp/meshd-test-kube-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	start_server();
	snprintf(token_file, sizeof(token_file), "%s/token", dir);
	write_text(token_file, "t1\n");
	snprintf(kubeconfig, sizeof(kubeconfig), "%s/kubeconfig", dir);
	snprintf(text, sizeof(text),
		 "apiVersion: v1\nkind: Config\ncurrent-context: fake\n"
		 "contexts:\n- name: fake\n  context: {cluster: c, user: u, namespace: ns}\n"
		 "clusters:\n- name: c\n  cluster: {server: \"http://127.0.0.1:%d/\"}\n"
		 "users:\n- name: u\n  user: {tokenFile: token}\n", port);
	write_text(kubeconfig, text);
	control0("POST", "tokens", "{\"tokens\":[\"t1\"]}");
	store = cfg_store_new();
	ck_assert_ptr_nonnull(store);
	ks = NULL;
}

static void teardown(void)
{
	char cmd[300];

	kube_source_free(ks);
	cfg_store_free(store);
	if (server_pid > 0) {
		kill(server_pid, SIGTERM);
		waitpid(server_pid, NULL, 0);
	}
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	ck_assert_int_eq(system(cmd), 0);
}

static void start_source_max(int page_size, size_t max_objects)
{
	struct kube_source_config c = {
		.max_objects = max_objects,
		.store = store,
		.kubeconfig = kubeconfig,
		.page_size = page_size,
		.watch_timeout_seconds = 60,
		.backoff_min = 20 * 1000000LL,
		.backoff_max = 300 * 1000000LL,
		.missing_retry = 200 * 1000000LL,
	};
	ck_assert_int_eq(kube_source_new(&c, &ks), 0);
}

static void start_source(int page_size)
{
	start_source_max(page_size, 0);
}

/* Handle source input until cond() holds (bounded). */
static void wait_for(int (*cond)(void *), void *arg, const char *what)
{
	time_t end = time(NULL) + WAIT_LIMIT_S;

	while (!cond(arg)) {
		struct pollfd p = { .fd = kube_source_fd(ks), .events = POLLIN };
		ck_assert_msg(time(NULL) < end, "timed out waiting for %s", what);
		poll(&p, 1, 200);
		ck_assert_int_ge(kube_source_handle(ks), 0);
	}
}

static int is_synced(void *arg)
{
	(void)arg;
	return kube_source_synced(ks);
}

static int vs_present(void *name)
{
	return cfg_store_get(store, CFG_VIRTUAL_SERVICE, "ns", name) != NULL;
}

static int vs_absent(void *name)
{
	return cfg_store_get(store, CFG_VIRTUAL_SERVICE, "ns", name) == NULL;
}

static const char *want_host;
static int vs_has_host(void *name)
{
	const struct cfg_object *o = cfg_store_get(store, CFG_VIRTUAL_SERVICE, "ns", name);
	return o && o->spec.vs.hosts.n == 1 && strcmp(o->spec.vs.hosts.v[0], want_host) == 0;
}

static int svc_present(void *name)
{
	return cfg_store_get(store, CFG_K8S_SERVICE, "ns", name) != NULL;
}

static int svc_absent(void *name)
{
	return cfg_store_get(store, CFG_K8S_SERVICE, "ns", name) == NULL;
}

static const char *label(const struct cfg_object *o, const char *key)
{
	size_t i;

	for (i = 0; i < o->labels.n; i++)
		if (strcmp(o->labels.v[i].key, key) == 0)
			return o->labels.v[i].value;
	return NULL;
}

static int n_vs_is(void *n)
{
	struct cfg_snapshot *s = cfg_store_snapshot(store);
	int ok = s->n_objects[CFG_VIRTUAL_SERVICE] == (size_t)(long)n;
	cfg_snapshot_unref(s);
	return ok;
}

static int has_error(void *needle)
{
	struct cfg_snapshot *s = cfg_store_snapshot(store);
	size_t i;
	int found = 0;

	for (i = 0; i < s->n_errors; i++) {
		char msg[1024];
		cfg_error_format(&s->errors[i], msg, sizeof(msg));
		if (strstr(msg, needle))
			found = 1;
	}
	cfg_snapshot_unref(s);
	return found;
}

static int active_watches_at_least(void *n)
{
	char *s = control("GET", "state", NULL), *p = strstr(s, "\"activeWatches\": ");
	long have = p ? strtol(p + strlen("\"activeWatches\": "), NULL, 10) : 0;
	free(s);
	return have >= (long)n;
}

/* Times (the server's monotonic clock) of the logged lists of path, in order. */
static int list_times(const char *path, double *t, int max)
{
	char *s = control("GET", "requests", NULL), *p = s;
	char pat[300];
	int n = 0;

	snprintf(pat, sizeof(pat), "\"path\": \"%s\"", path);
	while ((p = strstr(p, pat)) && n < max) {
		char *end = strchr(p, '}'), *tm;
		end = end ? strchr(end + 1, '}') : NULL;
		if (!end)
			break;
		*end = '\0';
		tm = strstr(p, "\"time\": ");
		if (!strstr(p, "\"watch\": \"true\"") && tm)
			t[n++] = strtod(tm + strlen("\"time\": "), NULL);
		p = end + 1;
	}
	free(s);
	return n;
}

/* How many requests the first fault answered. */
static long fault_hits(void)
{
	char *s = control("GET", "faults", NULL), *p = strstr(s, "\"hits\": ");
	long n = p ? strtol(p + strlen("\"hits\": "), NULL, 10) : -1;

	free(s);
	return n;
}

static const char *keep_name;
/* The fault answered at least n requests, and keep_name was never lost. */
static int hits_while_kept(void *n)
{
	ck_assert_msg(vs_present((void *)keep_name), "%s deleted by a failed list", keep_name);
	return fault_hits() >= (long)n;
}

/* Take whatever the source has queued. */
static void drain(void)
{
	struct pollfd p = { .fd = kube_source_fd(ks), .events = POLLIN };

	while (poll(&p, 1, 0) > 0)
		ck_assert_int_ge(kube_source_handle(ks), 0);
}

/* ------------------------------------------------------------- tests */

START_TEST(initial_sync_and_core_kinds)
{
	const struct cfg_object *r;
	struct cfg_snapshot *snap;

	apply_vs("a", "a.ns.svc.cluster.local");
	control0("POST", "apply",
		 "{\"apiVersion\":\"networking.istio.io/v1\",\"kind\":\"VirtualService\","
		 "\"metadata\":{\"name\":\"bad\",\"namespace\":\"ns\"},\"spec\":{\"hosts\":[\"b\"],"
		 "\"http\":[{\"route\":[{\"destination\":{\"host\":\"b\"},\"weight\":\"x\"}]}]}}");
	apply_service("reviews");
	control0("POST", "apply",
		 "{\"apiVersion\":\"discovery.k8s.io/v1\",\"kind\":\"EndpointSlice\",\"metadata\":{\"name\":"
		 "\"reviews-abc\",\"namespace\":\"ns\",\"labels\":{\"kubernetes.io/service-name\":\"reviews\"}},"
		 "\"addressType\":\"IPv4\",\"endpoints\":[{\"addresses\":[\"10.1.0.5\"],\"conditions\":{\"ready\":"
		 "true},\"targetRef\":{\"kind\":\"Pod\",\"namespace\":\"ns\",\"name\":\"reviews-1\"}}],"
		 "\"ports\":[{\"name\":\"http\",\"port\":8080,\"protocol\":\"TCP\"}]}");
	control0("POST", "apply",
		 "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"reviews-1\",\"namespace\":\"ns\","
		 "\"labels\":{\"app\":\"reviews\"}},\"spec\":{\"serviceAccountName\":\"bookinfo\",\"nodeName\":\"n1\"},"
		 "\"status\":{\"phase\":\"Running\",\"podIP\":\"10.1.0.5\",\"podIPs\":[{\"ip\":\"10.1.0.5\"}],"
		 "\"conditions\":[{\"type\":\"Ready\",\"status\":\"True\"}]}}");
	control0("POST", "apply",
		 "{\"apiVersion\":\"v1\",\"kind\":\"Namespace\",\"metadata\":{\"name\":\"ns\",\"labels\":"
		 "{\"istio-injection\":\"enabled\"}}}");
	start_source(0);
	wait_for(is_synced, NULL, "sync");
	wait_for(vs_present, "a", "VirtualService a");
	wait_for(has_error, "VirtualService ns/bad", "rejection of ns/bad");
	ck_assert_ptr_null(cfg_store_get(store, CFG_VIRTUAL_SERVICE, "ns", "bad"));
	ck_assert_str_eq(cfg_store_get(store, CFG_VIRTUAL_SERVICE, "ns", "a")->origin, "kube");

	r = cfg_store_get(store, CFG_K8S_SERVICE, "ns", "reviews");
	ck_assert_ptr_nonnull(r);
	ck_assert_str_eq(r->origin, "kube");
	ck_assert_str_eq(r->spec.svc.cluster_ip, "10.0.0.7");
	ck_assert_uint_eq(r->spec.svc.n_ports, 1);
	ck_assert_int_eq(r->spec.svc.ports[0].port, 80);
	ck_assert_int_eq(r->spec.svc.ports[0].target_port, 8080);
	ck_assert_str_eq(r->spec.svc.ports[0].protocol, "TCP");
	ck_assert(r->spec.svc.has_selector);
	ck_assert_str_eq(r->spec.svc.selector.v[0].value, "reviews");
	r = cfg_store_get(store, CFG_K8S_ENDPOINT_SLICE, "ns", "reviews-abc");
	ck_assert_ptr_nonnull(r);
	ck_assert_str_eq(r->spec.eps.service_name, "reviews");
	ck_assert_uint_eq(r->spec.eps.n_endpoints, 1);
	ck_assert_str_eq(r->spec.eps.endpoints[0].addresses.v[0], "10.1.0.5");
	ck_assert_int_eq(r->spec.eps.endpoints[0].ready, 1);
	ck_assert_str_eq(r->spec.eps.endpoints[0].target_name, "reviews-1");
	r = cfg_store_get(store, CFG_K8S_POD, "ns", "reviews-1");
	ck_assert_ptr_nonnull(r);
	ck_assert_str_eq(r->spec.pod.pod_ip, "10.1.0.5");
	ck_assert_str_eq(r->spec.pod.service_account, "bookinfo");
	ck_assert(r->spec.pod.ready);
	r = cfg_store_get(store, CFG_K8S_NAMESPACE, "", "ns");
	ck_assert_ptr_nonnull(r);
	ck_assert_str_eq(label(r, "istio-injection"), "enabled");
	snap = cfg_store_snapshot(store);
	ck_assert_uint_eq(snap->n_objects[CFG_K8S_POD], 1);
	ck_assert_uint_eq(snap->n_objects[CFG_K8S_SERVICE], 1);
	cfg_snapshot_unref(snap);
}
END_TEST

START_TEST(add_modify_delete)
{
	uint64_t gen;
	struct cfg_snapshot *snap;

	start_source(0);
	wait_for(is_synced, NULL, "sync");
	apply_vs("a", "one");
	wait_for(vs_present, "a", "VirtualService a added");
	want_host = "two";
	apply_vs("a", "two");
	wait_for(vs_has_host, "a", "VirtualService a modified");
	/* a rejected update keeps the last good version */
	control0("POST", "apply",
		 "{\"apiVersion\":\"networking.istio.io/v1\",\"kind\":\"VirtualService\","
		 "\"metadata\":{\"name\":\"a\",\"namespace\":\"ns\"},\"spec\":{\"hosts\":[\"three\"],"
		 "\"http\":[{\"route\":[{\"destination\":{\"host\":\"b\"},\"weight\":\"x\"}]}]}}");
	wait_for(has_error, "VirtualService ns/a", "rejection of ns/a");
	ck_assert(vs_has_host("a"));
	delete_vs("a");
	wait_for(vs_absent, "a", "VirtualService a deleted");

	snap = cfg_store_snapshot(store);
	gen = snap->generation;
	cfg_snapshot_unref(snap);
	apply_service("ratings");
	wait_for(svc_present, "ratings", "Service ratings");
	snap = cfg_store_snapshot(store);
	ck_assert_uint_gt(snap->generation, gen);
	cfg_snapshot_unref(snap);
	control0("POST", "delete", "{\"apiVersion\":\"v1\",\"kind\":\"Service\","
				   "\"metadata\":{\"name\":\"ratings\",\"namespace\":\"ns\"}}");
	wait_for(svc_absent, "ratings", "Service ratings deleted");
}
END_TEST

START_TEST(dropped_watch_resumes_without_relist)
{
	char needle[64];
	long rv;

	apply_vs("a", "a");
	start_source(0);
	wait_for(is_synced, NULL, "sync");
	wait_for(vs_present, "a", "a");
	wait_for(active_watches_at_least, (void *)10L, "all watches open");
	rv = server_rv();
	control0("DELETE", "requests", NULL);
	control0("POST", "drop-watches", NULL);
	apply_vs("b", "b");
	wait_for(vs_present, "b", "b after the drop");
	ck_assert_int_eq(count_requests(VS_PATH, 0, NULL), 0);
	snprintf(needle, sizeof(needle), "\"resourceVersion\": \"%ld\"", rv);
	ck_assert_int_ge(count_requests(VS_PATH, 1, needle), 1);
}
END_TEST

START_TEST(gone_relists_and_notices_deletions)
{
	apply_vs("a", "a");
	apply_vs("keep", "keep");
	start_source(0);
	wait_for(is_synced, NULL, "sync");
	wait_for(vs_present, "a", "a");
	control0("POST", "down", NULL);
	delete_vs("a");
	apply_vs("c", "c");
	control0("POST", "compact", NULL);
	control0("DELETE", "requests", NULL);
	control0("POST", "up", NULL);
	wait_for(vs_absent, "a", "a deleted while disconnected");
	wait_for(vs_present, "c", "c created while disconnected");
	ck_assert(vs_present("keep"));
	ck_assert_int_ge(count_requests(VS_PATH, 0, NULL), 1);
}
END_TEST

static int watch_at_current_rv(void *arg)
{
	char needle[64];
	(void)arg;
	snprintf(needle, sizeof(needle), "\"resourceVersion\": \"%ld\"", server_rv());
	if (count_requests(VS_PATH, 1, needle) > 0)
		return 1;
	control0("POST", "drop-watches", NULL);
	return 0;
}

START_TEST(bookmarks_advance_resource_version)
{
	int i;

	apply_vs("a", "a");
	start_source(0);
	wait_for(is_synced, NULL, "sync");
	control0("DELETE", "requests", NULL);
	for (i = 0; i < 5; i++) {
		char name[16];
		snprintf(name, sizeof(name), "s%d", i);
		apply_service(name);
	}
	control0("POST", "config", "{\"bookmark_interval\": 0.1}");
	/* only a bookmark can tell the VirtualService watch about the Services' versions */
	wait_for(watch_at_current_rv, NULL, "a VirtualService watch from the bookmarked version");
	ck_assert_int_eq(count_requests(VS_PATH, 0, NULL), 0);
	/* compaction up to now does not force a relist: the version is fresh */
	control0("POST", "compact", NULL);
	control0("DELETE", "requests", NULL);
	control0("POST", "drop-watches", NULL);
	apply_vs("d", "d");
	wait_for(vs_present, "d", "d");
	ck_assert_int_eq(count_requests(VS_PATH, 0, NULL), 0);
}
END_TEST

START_TEST(pagination)
{
	int i;

	for (i = 0; i < 10; i++) {
		char name[16];
		snprintf(name, sizeof(name), "vs%d", i);
		apply_vs(name, name);
	}
	start_source(3);
	wait_for(is_synced, NULL, "sync");
	wait_for(n_vs_is, (void *)10L, "10 VirtualServices");
	ck_assert_int_eq(count_requests(VS_PATH, 0, "\"continue\""), 3);
	ck_assert_int_eq(count_requests(VS_PATH, 0, "\"limit\": \"3\""), 4);
}
END_TEST

START_TEST(server_goes_away_and_comes_back)
{
	start_source(0);
	wait_for(is_synced, NULL, "sync");
	control0("POST", "down", NULL);
	apply_vs("x", "x");
	control0("POST", "up", NULL);
	wait_for(vs_present, "x", "x after the server came back");
	control0("POST", "down", NULL);
	delete_vs("x");
	control0("POST", "up", NULL);
	wait_for(vs_absent, "x", "x deleted after the server came back");
}
END_TEST

START_TEST(crd_not_installed_does_not_block)
{
	control0("POST", "crd", "{\"group\":\"security.istio.io\",\"plural\":\"peerauthentications\","
				"\"installed\":false}");
	apply_vs("a", "a");
	start_source(0);
	wait_for(is_synced, NULL, "sync with a CRD missing");
	wait_for(vs_present, "a", "a");
	control0("POST", "crd", "{\"group\":\"security.istio.io\",\"plural\":\"peerauthentications\","
				"\"installed\":true}");
	control0("POST", "apply", "{\"apiVersion\":\"security.istio.io/v1\",\"kind\":\"PeerAuthentication\","
				  "\"metadata\":{\"name\":\"default\",\"namespace\":\"ns\"},"
				  "\"spec\":{\"mtls\":{\"mode\":\"STRICT\"}}}");
	while (!cfg_store_get(store, CFG_PEER_AUTHENTICATION, "ns", "default")) {
		struct pollfd p = { .fd = kube_source_fd(ks), .events = POLLIN };
		static time_t end;
		if (!end)
			end = time(NULL) + WAIT_LIMIT_S;
		ck_assert_msg(time(NULL) < end, "PeerAuthentication never arrived");
		poll(&p, 1, 200);
		kube_source_handle(ks);
	}
}
END_TEST

/* client-go's REST client waits what a 429's Retry-After says. */
START_TEST(too_many_requests_waits_retry_after)
{
	double t[8];
	int n;

	apply_vs("a", "a");
	control0("POST", "faults", "{\"faults\":[{\"plural\":\"virtualservices\",\"watch\":false,"
				   "\"code\":429,\"retryAfter\":1,\"count\":1}]}");
	start_source(0);
	wait_for(is_synced, NULL, "sync after a 429");
	wait_for(vs_present, "a", "a");
	n = list_times(VS_PATH, t, 8);
	ck_assert_int_ge(n, 2);
	/* a lower bound only: a loaded machine waits longer, never shorter */
	ck_assert_msg(t[1] - t[0] >= 1.0, "listed again %.3f s after a 429 with Retry-After: 1", t[1] - t[0]);
}
END_TEST

/* 401, 403, 404, 500 on a relist: what was known stays, nothing is
 * deleted; once the server answers again, the changes arrive. */
static const int keep_codes[] = { 404, 403, 401, 500 };

START_TEST(error_on_relist_keeps_what_is_known)
{
	char body[300];

	apply_vs("a", "a");
	start_source(0);
	wait_for(is_synced, NULL, "sync");
	wait_for(vs_present, "a", "a");
	snprintf(body, sizeof(body), "{\"faults\":[{\"plural\":\"virtualservices\",\"watch\":false,\"code\":%d}]}",
		 keep_codes[_i]);
	control0("POST", "faults", body);
	/* the watch cannot resume (history compacted): a relist it is */
	control0("POST", "down", NULL);
	apply_vs("x", "x");
	control0("POST", "compact", NULL);
	control0("POST", "up", NULL);
	keep_name = "a";
	wait_for(hits_while_kept, (void *)2L, "two failed relists");
	drain();
	ck_assert_msg(vs_present("a"), "a deleted after HTTP %d on a list", keep_codes[_i]);
	control0("POST", "faults", "{\"faults\":[]}");
	wait_for(vs_present, "x", "x once the server answers");
	ck_assert(vs_present("a"));
}
END_TEST

/* HTTP 410 Gone on a watch request (not an ERROR event): relist. */
START_TEST(gone_status_on_watch_relists)
{
	apply_vs("a", "a");
	start_source(0);
	wait_for(is_synced, NULL, "sync");
	wait_for(active_watches_at_least, (void *)10L, "all watches open");
	control0("POST", "faults", "{\"faults\":[{\"plural\":\"virtualservices\",\"watch\":true,"
				   "\"code\":410,\"count\":1}]}");
	control0("DELETE", "requests", NULL);
	control0("POST", "drop-watches", NULL);
	apply_vs("b", "b");
	wait_for(vs_present, "b", "b after a 410 on the watch");
	ck_assert_int_eq(fault_hits(), 1);
	ck_assert_int_ge(count_requests(VS_PATH, 0, NULL), 1);
	ck_assert(vs_present("a"));
}
END_TEST

static int relisted(void *n)
{
	return count_requests(VS_PATH, 0, NULL) >= (long)n;
}

/* At most max_objects across the source: past it, a watch event is
 * refused and the relist fails whole, keeping the last good state. */
START_TEST(objects_per_source_cap)
{
	apply_vs("a", "a");
	apply_vs("b", "b");
	start_source_max(0, 2);
	wait_for(is_synced, NULL, "sync at the cap");
	wait_for(vs_present, "b", "b");
	control0("DELETE", "requests", NULL);
	apply_vs("c", "c");
	/* the refused event restarts the watch with a relist, which fails
	 * too (3 > 2); it is retried with backoff */
	wait_for(relisted, (void *)2L, "relists past the cap");
	drain();
	ck_assert(vs_present("a"));
	ck_assert(vs_present("b"));
	ck_assert(vs_absent("c"));
	/* back under the cap: the next relist applies the server's state */
	delete_vs("a");
	wait_for(vs_present, "c", "c once the source fits its cap");
	wait_for(vs_absent, "a", "a deleted");
	ck_assert(vs_present("b"));
}
END_TEST

START_TEST(token_file_rotation)
{
	start_source(0);
	wait_for(is_synced, NULL, "sync");
	write_text(token_file, "t2\n");
	control0("POST", "tokens", "{\"tokens\":[\"t2\"]}");
	control0("POST", "drop-watches", NULL);
	apply_vs("after-rotation", "r");
	wait_for(vs_present, "after-rotation", "an object seen with the rotated token");
}
END_TEST

START_TEST(tokenreview_identities)
{
	struct ca_authenticator *auth = NULL;
	struct ca_identity id;
	char ns[64], sa[64], msg[256];

	control0("POST", "tokenreviews",
		 "{\"tokens\":{\"sa-tok\":{\"username\":\"system:serviceaccount:app:web\"},"
		 "\"user-tok\":{\"username\":\"alice\"},"
		 "\"odd-tok\":{\"username\":\"system:serviceaccount:app:web:extra\"}}}");
	start_source(0);
	ck_assert_int_eq(kube_tokenreview(kube_source_client(ks), "sa-tok", ns, sizeof(ns), sa, sizeof(sa), msg,
					  sizeof(msg)), 0);
	ck_assert_str_eq(ns, "app");
	ck_assert_str_eq(sa, "web");
	ck_assert_int_eq(kube_tokenreview(kube_source_client(ks), "user-tok", ns, sizeof(ns), sa, sizeof(sa), msg,
					  sizeof(msg)), -EACCES);
	ck_assert_int_eq(kube_tokenreview(kube_source_client(ks), "odd-tok", ns, sizeof(ns), sa, sizeof(sa), msg,
					  sizeof(msg)), -EACCES);
	ck_assert_int_eq(kube_tokenreview(kube_source_client(ks), "nobody", ns, sizeof(ns), sa, sizeof(sa), msg,
					  sizeof(msg)), -EACCES);
	ck_assert_ptr_null(strstr(msg, "nobody")); /* the token is never echoed */
	ck_assert_int_eq(kube_tokenreview(kube_source_client(ks), "", ns, sizeof(ns), sa, sizeof(sa), msg,
					  sizeof(msg)), -EACCES);
	/* a namespace that does not fit the caller's buffer is refused, not cut */
	ck_assert_int_eq(kube_tokenreview(kube_source_client(ks), "sa-tok", ns, 3, sa, sizeof(sa), msg,
					  sizeof(msg)), -EACCES);
	ck_assert_int_eq(kube_tokenreview_authenticator_new(kube_source_client(ks), &auth), 0);
	ck_assert_int_eq(ca_auth_authenticate(auth, "sa-tok", &id, msg, sizeof(msg)), 0);
	ck_assert_str_eq(id.ns, "app");
	ck_assert_str_eq(id.sa, "web");
	ck_assert_int_eq(ca_auth_authenticate(auth, "user-tok", &id, msg, sizeof(msg)), -EACCES);
	ca_auth_free(auth);
	/* the API server is down: the review fails, and not as a refusal */
	control0("POST", "down", NULL);
	ck_assert_int_lt(kube_tokenreview(kube_source_client(ks), "sa-tok", ns, sizeof(ns), sa, sizeof(sa), msg,
					  sizeof(msg)), 0);
	ck_assert_int_ne(kube_tokenreview(kube_source_client(ks), "sa-tok", ns, sizeof(ns), sa, sizeof(sa), msg,
					  sizeof(msg)), -EACCES);
	control0("POST", "up", NULL);
}
END_TEST

START_TEST(bad_kubeconfig_fails)
{
	struct kube_source_config c = { .store = store, .kubeconfig = "/nonexistent/kubeconfig" };
	struct kube_source *k = NULL;

	ck_assert_int_lt(kube_source_new(&c, &k), 0);
	ck_assert_ptr_null(k);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("kube_source");
	TCase *tc = tcase_create("fake_apiserver");
	SRunner *sr;
	int failed;

	curl_global_init(CURL_GLOBAL_DEFAULT);
	tcase_set_timeout(tc, 120);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, initial_sync_and_core_kinds);
	tcase_add_test(tc, add_modify_delete);
	tcase_add_test(tc, dropped_watch_resumes_without_relist);
	tcase_add_test(tc, gone_relists_and_notices_deletions);
	tcase_add_test(tc, bookmarks_advance_resource_version);
	tcase_add_test(tc, pagination);
	tcase_add_test(tc, server_goes_away_and_comes_back);
	tcase_add_test(tc, crd_not_installed_does_not_block);
	tcase_add_test(tc, too_many_requests_waits_retry_after);
	tcase_add_loop_test(tc, error_on_relist_keeps_what_is_known, 0,
			    (int)(sizeof(keep_codes) / sizeof(keep_codes[0])));
	tcase_add_test(tc, gone_status_on_watch_relists);
	tcase_add_test(tc, objects_per_source_cap);
	tcase_add_test(tc, token_file_rotation);
	tcase_add_test(tc, tokenreview_identities);
	tcase_add_test(tc, bad_kubeconfig_fails);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
