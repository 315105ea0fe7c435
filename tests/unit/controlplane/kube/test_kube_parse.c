/*
 * test_kube_parse.c - the watch event framer (chunk boundaries anywhere,
 * an oversized event, garbage), the JSON reader, the key map and the
 * kubeconfig / in-cluster settings.
 */
#include "common/arena.h"
#include "common/err.h"
#include "controlplane/kube/kube_config.h"
#include "controlplane/kube/kube_json.h"
#include "controlplane/kube/kube_map.h"
#include "controlplane/kube/kube_res.h"
#include "controlplane/kube/kube_stream.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ------------------------------------------------------------- framer */

struct got {
	char ev[8][512];
	size_t n;
};

static int on_event(void *ctx, const char *data, size_t len)
{
	struct got *g = ctx;

	ck_assert_uint_lt(g->n, 8);
	ck_assert_uint_lt(len, sizeof(g->ev[0]));
	memcpy(g->ev[g->n], data, len);
	g->ev[g->n][len] = '\0';
	g->n++;
	return 0;
}

static const char STREAM[] =
	"{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":\"a\",\"annotations\":{\"x\":\"}{\\\"\\\\\"}}}}\n"
	"{\"type\":\"MODIFIED\",\"object\":{\"metadata\":{\"name\":\"caf\xc3\xa9\"},\"s\":[1,{\"k\":\"]\"}]}}\n"
	"  \r\n{\"type\":\"BOOKMARK\",\"object\":{\"metadata\":{\"resourceVersion\":\"12\"}}}";

START_TEST(stream_splits_at_every_boundary)
{
	size_t len = strlen(STREAM), cut, cut2;

	/* every split into two and a sample of splits into three pieces */
	for (cut = 0; cut <= len; cut++) {
		for (cut2 = cut; cut2 <= len; cut2 += (cut2 == cut ? 1 : 7)) {
			struct kube_stream s;
			struct got g = { .n = 0 };

			kube_stream_init(&s, 0);
			ck_assert_int_eq(kube_stream_feed(&s, STREAM, cut, on_event, &g), 0);
			ck_assert_int_eq(kube_stream_feed(&s, STREAM + cut, cut2 - cut, on_event, &g), 0);
			ck_assert_int_eq(kube_stream_feed(&s, STREAM + cut2, len - cut2, on_event, &g), 0);
			ck_assert_uint_eq(g.n, 3);
			ck_assert(kube_stream_idle(&s));
			ck_assert_str_eq(g.ev[0], "{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":\"a\","
					 "\"annotations\":{\"x\":\"}{\\\"\\\\\"}}}}");
			ck_assert_ptr_nonnull(strstr(g.ev[1], "MODIFIED"));
			ck_assert_ptr_nonnull(strstr(g.ev[2], "BOOKMARK"));
			kube_stream_cleanup(&s);
		}
	}
}
END_TEST

START_TEST(stream_byte_at_a_time)
{
	struct kube_stream s;
	struct got g = { .n = 0 };
	size_t i, len = strlen(STREAM);

	kube_stream_init(&s, 0);
	for (i = 0; i < len; i++)
		ck_assert_int_eq(kube_stream_feed(&s, STREAM + i, 1, on_event, &g), 0);
	ck_assert_uint_eq(g.n, 3);
	kube_stream_cleanup(&s);
}
END_TEST

START_TEST(stream_partial_event_is_not_idle)
{
	struct kube_stream s;
	struct got g = { .n = 0 };

	kube_stream_init(&s, 0);
	ck_assert_int_eq(kube_stream_feed(&s, "{\"type\":\"ADD", 12, on_event, &g), 0);
	ck_assert_uint_eq(g.n, 0);
	ck_assert(!kube_stream_idle(&s));
	kube_stream_reset(&s);
	ck_assert(kube_stream_idle(&s));
	kube_stream_cleanup(&s);
}
END_TEST

START_TEST(stream_oversized_event)
{
	struct kube_stream s;
	struct got g = { .n = 0 };
	char big[300];

	kube_stream_init(&s, 100);
	memset(big, 'x', sizeof(big));
	ck_assert_int_eq(kube_stream_feed(&s, "{\"a\":1}\n{\"s\":\"", 15, on_event, &g), 0);
	ck_assert_uint_eq(g.n, 1);
	ck_assert_int_eq(kube_stream_feed(&s, big, sizeof(big), on_event, &g), -MESH_ETOOBIG);
	/* sticky */
	ck_assert_int_eq(kube_stream_feed(&s, "\"}", 2, on_event, &g), -MESH_ETOOBIG);
	ck_assert_uint_eq(g.n, 1);
	/* an event exactly at the cap passes */
	kube_stream_reset(&s);
	memset(big, ' ', sizeof(big));
	big[0] = '{';
	big[99] = '}';
	ck_assert_int_eq(kube_stream_feed(&s, big, 100, on_event, &g), 0);
	ck_assert_uint_eq(g.n, 2);
	kube_stream_cleanup(&s);
}
END_TEST

START_TEST(stream_garbage)
{
	static const char *bad[] = { "hello", "{\"a\":1} x", "[1,2]", "}", "\"str\"", "<html>" };
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct kube_stream s;
		struct got g = { .n = 0 };
		kube_stream_init(&s, 0);
		ck_assert_int_eq(kube_stream_feed(&s, bad[i], strlen(bad[i]), on_event, &g), -MESH_EPARSE);
		ck_assert(!kube_stream_idle(&s));
		kube_stream_cleanup(&s);
	}
}
END_TEST

static int stop_cb(void *ctx, const char *data, size_t len)
{
	(void)data;
	(void)len;
	(*(int *)ctx)++;
	return -ECANCELED;
}

START_TEST(stream_callback_stops)
{
	struct kube_stream s;
	int n = 0;

	kube_stream_init(&s, 0);
	ck_assert_int_eq(kube_stream_feed(&s, "{}{}{}", 6, stop_cb, &n), -ECANCELED);
	ck_assert_int_eq(n, 1);
	kube_stream_cleanup(&s);
}
END_TEST

/* ------------------------------------------------------------- JSON */

START_TEST(json_values_and_ranges)
{
	struct arena *a = arena_new(0);
	struct json_value *root;
	const struct json_value *o, *arr;
	const char *text = " {\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":\"a\\u00e9\\ud83d\\ude00\\/\\n\"},"
			   "\"n\":-12,\"f\":1.5e2,\"t\":true,\"z\":null,\"arr\":[1,\"x\",{}]}} ";

	ck_assert_int_eq(kube_json_parse(a, text, strlen(text), &root), 0);
	ck_assert_str_eq(json_get_str(root, "type"), "ADDED");
	o = json_get(root, "object");
	ck_assert_ptr_nonnull(o);
	ck_assert_uint_eq(o->type, JSON_OBJECT);
	ck_assert(text[o->start] == '{' && text[o->end - 1] == '}');
	ck_assert_int_eq(strncmp(text + o->start, "{\"metadata\"", 11), 0);
	ck_assert_str_eq(json_get_str(json_get(o, "metadata"), "name"), "a\xc3\xa9\xf0\x9f\x98\x80/\n");
	ck_assert_int_eq(json_get_int(o, "n", 0), -12);
	ck_assert(json_get(o, "f")->num == 150.0);
	ck_assert(!json_get(o, "f")->is_int);
	ck_assert(json_get_bool(o, "t", false));
	ck_assert_uint_eq(json_get(o, "z")->type, JSON_NULL);
	arr = json_get(o, "arr");
	ck_assert_uint_eq(arr->n, 3);
	ck_assert_str_eq(arr->child->next->str, "x");
	ck_assert_ptr_null(json_get(o, "missing"));
	ck_assert_ptr_null(json_get_str(o, "n"));
	arena_free(a);
}
END_TEST

START_TEST(json_rejects_malformed)
{
	static const char *bad[] = { "", "{", "{\"a\"}", "{\"a\":}", "{\"a\":1,}", "[1,]", "01", "1.", "-",
				     "\"\\x\"", "\"a\nb\"", "tru", "{\"a\":1} 2", "\"\\ud800\"", "{a:1}",
				     "\"\\u12g4\"", "[1 2]" };
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct arena *a = arena_new(0);
		struct json_value *root;
		ck_assert_msg(kube_json_parse(a, bad[i], strlen(bad[i]), &root) == -MESH_EPARSE, "accepted: %s",
			      bad[i]);
		arena_free(a);
	}
}
END_TEST

START_TEST(json_depth_cap)
{
	struct arena *a = arena_new(0);
	struct json_value *root;
	char deep[2 * (KUBE_JSON_MAX_DEPTH + 2)];
	size_t i, n = KUBE_JSON_MAX_DEPTH + 2;

	for (i = 0; i < n; i++) {
		deep[i] = '[';
		deep[2 * n - 1 - i] = ']';
	}
	ck_assert_int_eq(kube_json_parse(a, deep, 2 * n, &root), -MESH_ETOOBIG);
	ck_assert_int_eq(kube_json_parse(a, deep + 2, 2 * n - 4, &root), 0);
	arena_free(a);
}
END_TEST

START_TEST(json_arena_cap_is_enomem)
{
	struct arena *a = arena_new(256);
	struct json_value *root;
	const char *text = "[\"aaaaaaaaaaaaaaaaaaaa\",\"bbbbbbbbbbbbbbbbbbbbbbbbb\",\"ccccccccccccccccccccc\","
			   "\"dddddddddddddddddddd\",\"eeeeeeeeeeeeeeeeeeeeeeeeeee\"]";

	ck_assert_int_eq(kube_json_parse(a, text, strlen(text), &root), -ENOMEM);
	arena_free(a);
}
END_TEST

/* ------------------------------------------------------------- map, records */

START_TEST(map_put_get_del_iterate)
{
	struct kube_map m;
	struct kube_map_entry *it = NULL;
	char key[32];
	void *old;
	long i, sum = 0;

	kube_map_init(&m);
	for (i = 1; i <= 1000; i++) {
		snprintf(key, sizeof(key), "ns/%ld", i);
		ck_assert_int_eq(kube_map_put(&m, key, (void *)i, NULL), 0);
	}
	ck_assert_uint_eq(m.n, 1000);
	ck_assert_int_eq(kube_map_put(&m, "ns/7", (void *)7000L, &old), 0);
	ck_assert_int_eq((long)old, 7);
	ck_assert_int_eq((long)kube_map_get(&m, "ns/7"), 7000);
	ck_assert_int_eq((long)kube_map_del(&m, "ns/8"), 8);
	ck_assert_ptr_null(kube_map_get(&m, "ns/8"));
	ck_assert_ptr_null(kube_map_del(&m, "ns/8"));
	while ((it = kube_map_next(&m, it)))
		sum += (long)it->val;
	ck_assert_int_eq(sum, 1000L * 1001 / 2 - 7 - 8 + 7000);
	kube_map_cleanup(&m);
}
END_TEST

START_TEST(res_table_maps_every_resource_to_a_config_kind)
{
	bool seen[CFG_KIND_COUNT] = { false };
	int r;

	for (r = 0; r < KUBE_RES_COUNT; r++) {
		const struct kube_res_info *in = kube_res_info((enum kube_res)r);
		ck_assert_ptr_nonnull(in);
		if (r == KUBE_RES_MESH_CONFIG) {
			/* not a config object: one ConfigMap, handed over as text */
			ck_assert_str_eq(in->kind, "ConfigMap");
			ck_assert_str_eq(in->only_name, KUBE_MESH_CONFIGMAP);
			ck_assert(in->namespaced);
			continue;
		}
		ck_assert_ptr_null(in->only_name);
		ck_assert((unsigned)in->cfg_kind < CFG_KIND_COUNT);
		ck_assert_msg(!seen[in->cfg_kind], "%s listed twice", in->kind);
		seen[in->cfg_kind] = true;
		/* the kind and group agree with the config parser's */
		ck_assert_str_eq(in->kind, cfg_kind_name(in->cfg_kind));
		ck_assert_str_eq(in->group, cfg_kind_group(in->cfg_kind));
		ck_assert_int_eq(in->namespaced, in->cfg_kind != CFG_K8S_NAMESPACE);
	}
	for (r = 0; r < CFG_KIND_COUNT; r++)
		ck_assert_msg(seen[r], "%s is not watched", cfg_kind_name((enum cfg_kind)r));
	ck_assert_ptr_null(kube_res_info(KUBE_RES_COUNT));
}
END_TEST

/* ------------------------------------------------------------- settings */

static char dir[256];

static void write_file(const char *name, const char *text)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	fclose(f);
}

static void setup(void)
{
	snprintf(dir, sizeof(dir), "/tmp/meshd-test-kubecfg-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void teardown(void)
{
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	ck_assert_int_eq(system(cmd), 0);
}

static const char KUBECONFIG[] =
	"apiVersion: v1\n"
	"kind: Config\n"
	"current-context: dev\n"
	"clusters:\n"
	"- name: prod\n"
	"  cluster:\n"
	"    server: https://prod.example:6443\n"
	"    certificate-authority: /etc/prod-ca.pem\n"
	"- name: dev\n"
	"  cluster:\n"
	"    server: https://127.0.0.1:6443/\n"
	"    certificate-authority-data: LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCg==\n"
	"    tls-server-name: kubernetes\n"
	"users:\n"
	"- name: alice\n"
	"  user:\n"
	"    client-certificate: certs/alice.crt\n"
	"    client-key-data: a2V5\n"
	"- name: bot\n"
	"  user:\n"
	"    tokenFile: /var/run/bot-token\n"
	"- name: plug\n"
	"  user:\n"
	"    exec: {command: get-token}\n"
	"contexts:\n"
	"- name: dev\n"
	"  context: {cluster: dev, user: alice, namespace: team}\n"
	"- name: prod\n"
	"  context: {cluster: prod, user: bot}\n"
	"- name: plugged\n"
	"  context: {cluster: prod, user: plug}\n"
	"- name: nowhere\n"
	"  context: {cluster: missing, user: bot}\n";

START_TEST(kubeconfig_current_context)
{
	struct kube_config c;
	char path[300], why[KUBE_CONFIG_WHY_MAX], want[300];

	write_file("config", KUBECONFIG);
	snprintf(path, sizeof(path), "%s/config", dir);
	ck_assert_int_eq(kube_config_from_kubeconfig(path, NULL, &c, why, sizeof(why)), 0);
	ck_assert_str_eq(c.server, "https://127.0.0.1:6443");
	ck_assert_str_eq(c.tls_server_name, "kubernetes");
	ck_assert_uint_eq(c.ca_data_len, strlen("-----BEGIN CERTIFICATE-----\n"));
	ck_assert_str_eq(c.ca_data, "-----BEGIN CERTIFICATE-----\n");
	ck_assert_ptr_null(c.ca_file);
	snprintf(want, sizeof(want), "%s/certs/alice.crt", dir);
	ck_assert_str_eq(c.cert_file, want);
	ck_assert_str_eq(c.key_data, "key");
	ck_assert_ptr_null(c.token);
	ck_assert_str_eq(c.ns, "team");
	ck_assert(!c.insecure);
	kube_config_cleanup(&c);

	ck_assert_int_eq(kube_config_from_kubeconfig(path, "prod", &c, why, sizeof(why)), 0);
	ck_assert_str_eq(c.server, "https://prod.example:6443");
	ck_assert_str_eq(c.ca_file, "/etc/prod-ca.pem");
	ck_assert_str_eq(c.token_file, "/var/run/bot-token");
	ck_assert_str_eq(c.ns, "default");
	{
		struct kube_config d;
		ck_assert_int_eq(kube_config_copy(&d, &c), 0);
		ck_assert_str_eq(d.token_file, c.token_file);
		kube_config_cleanup(&d);
	}
	kube_config_cleanup(&c);
}
END_TEST

START_TEST(kubeconfig_errors_name_the_problem)
{
	struct kube_config c;
	char path[300], why[KUBE_CONFIG_WHY_MAX];

	write_file("config", KUBECONFIG);
	snprintf(path, sizeof(path), "%s/config", dir);
	ck_assert_int_eq(kube_config_from_kubeconfig(path, "plugged", &c, why, sizeof(why)), -ENOTSUP);
	ck_assert_ptr_nonnull(strstr(why, "exec"));
	ck_assert_int_eq(kube_config_from_kubeconfig(path, "nowhere", &c, why, sizeof(why)), -EINVAL);
	ck_assert_ptr_nonnull(strstr(why, "cluster \"missing\""));
	ck_assert_int_eq(kube_config_from_kubeconfig(path, "absent", &c, why, sizeof(why)), -EINVAL);
	ck_assert_ptr_nonnull(strstr(why, "context \"absent\""));

	write_file("bad", "clusters: [unclosed\n");
	snprintf(path, sizeof(path), "%s/bad", dir);
	ck_assert_int_eq(kube_config_from_kubeconfig(path, NULL, &c, why, sizeof(why)), -MESH_EPARSE);
	ck_assert_ptr_nonnull(strstr(why, path));

	write_file("b64", "current-context: x\ncontexts: [{name: x, context: {cluster: x}}]\n"
			  "clusters: [{name: x, cluster: {server: 'https://a', certificate-authority-data: '!!!'}}]\n");
	snprintf(path, sizeof(path), "%s/b64", dir);
	ck_assert_int_eq(kube_config_from_kubeconfig(path, NULL, &c, why, sizeof(why)), -EINVAL);
	ck_assert_ptr_nonnull(strstr(why, "certificate-authority-data"));

	write_file("noserver", "current-context: x\ncontexts: [{name: x, context: {cluster: x}}]\n"
			       "clusters: [{name: x, cluster: {insecure-skip-tls-verify: true}}]\n");
	snprintf(path, sizeof(path), "%s/noserver", dir);
	ck_assert_int_eq(kube_config_from_kubeconfig(path, NULL, &c, why, sizeof(why)), -EINVAL);
	ck_assert_ptr_nonnull(strstr(why, "server"));

	snprintf(path, sizeof(path), "%s/none", dir);
	ck_assert_int_lt(kube_config_from_kubeconfig(path, NULL, &c, why, sizeof(why)), 0);
}
END_TEST

START_TEST(in_cluster)
{
	struct kube_config c;
	char why[KUBE_CONFIG_WHY_MAX], want[300];

	unsetenv("KUBERNETES_SERVICE_HOST");
	ck_assert_int_eq(kube_config_in_cluster(dir, &c, why, sizeof(why)), -ENOENT);
	ck_assert_ptr_nonnull(strstr(why, "KUBERNETES_SERVICE_HOST"));
	setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1", 1);
	setenv("KUBERNETES_SERVICE_PORT", "443", 1);
	ck_assert_int_lt(kube_config_in_cluster(dir, &c, why, sizeof(why)), 0); /* no token */
	write_file("token", "tok\n");
	ck_assert_int_eq(kube_config_in_cluster(dir, &c, why, sizeof(why)), 0);
	ck_assert_str_eq(c.server, "https://10.96.0.1:443");
	snprintf(want, sizeof(want), "%s/token", dir);
	ck_assert_str_eq(c.token_file, want);
	ck_assert_ptr_null(c.ca_file);
	ck_assert_str_eq(c.ns, "default");
	kube_config_cleanup(&c);
	write_file("ca.crt", "pem");
	write_file("namespace", "istio-system\n");
	setenv("KUBERNETES_SERVICE_HOST", "fd00::1", 1);
	ck_assert_int_eq(kube_config_in_cluster(dir, &c, why, sizeof(why)), 0);
	ck_assert_str_eq(c.server, "https://[fd00::1]:443");
	ck_assert_str_eq(c.ns, "istio-system");
	ck_assert_ptr_nonnull(c.ca_file);
	kube_config_cleanup(&c);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("kube_parse");
	TCase *tc = tcase_create("stream");
	TCase *tj = tcase_create("json");
	TCase *tk = tcase_create("settings");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, stream_splits_at_every_boundary);
	tcase_add_test(tc, stream_byte_at_a_time);
	tcase_add_test(tc, stream_partial_event_is_not_idle);
	tcase_add_test(tc, stream_oversized_event);
	tcase_add_test(tc, stream_garbage);
	tcase_add_test(tc, stream_callback_stops);
	tcase_add_test(tj, json_values_and_ranges);
	tcase_add_test(tj, json_rejects_malformed);
	tcase_add_test(tj, json_depth_cap);
	tcase_add_test(tj, json_arena_cap_is_enomem);
	tcase_add_test(tj, map_put_get_del_iterate);
	tcase_add_test(tj, res_table_maps_every_resource_to_a_config_kind);
	tcase_add_checked_fixture(tk, setup, teardown);
	tcase_add_test(tk, kubeconfig_current_context);
	tcase_add_test(tk, kubeconfig_errors_name_the_problem);
	tcase_add_test(tk, in_cluster);
	suite_add_tcase(s, tc);
	suite_add_tcase(s, tj);
	suite_add_tcase(s, tk);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
