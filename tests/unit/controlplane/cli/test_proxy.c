/*
 * test_proxy.c - meshctl version, proxy-status and proxy-config against a
 * fake HTTP server in this process that answers with fixed JSON: meshd's
 * /debug/syncz and /debug/config_dump shapes, and an Envoy admin
 * /config_dump (static and dynamic sections, sent chunked) as a meshproxy's
 * admin port serves it.  Runs the meshctl binary of the same build.
 */
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "testutil.h"

#define OUT_MAX 65536
#define REQ_MAX 8192

static const char syncz[] =
	"[{\"proxy\":\"b~10.0.0.2~b.ns~ns.svc.cluster.local\",\"flavour\":\"sidecar\",\"cluster\":\"Kubernetes\","
	"\"user_agent\":\"envoy 1.29\",\"peer\":\"10.0.0.2:1\",\"connected_at\":\"x\",\"delta\":false,\"stream\":3,"
	"\"types\":{\"cds\":{\"sent_version\":\"1\",\"sent_nonce\":\"1\",\"acked_version\":\"1\",\"state\":\"SYNCED\","
	"\"resources\":1,\"wildcard\":true},\"lds\":{\"sent_version\":\"2\",\"sent_nonce\":\"2\",\"acked_version\":\"1\","
	"\"state\":\"ERROR\",\"error\":\"bad listener\",\"resources\":1,\"wildcard\":true},"
	"\"rds\":{\"sent_version\":\"3\",\"sent_nonce\":\"3\",\"acked_version\":null,\"state\":\"STALE\","
	"\"resources\":1,\"wildcard\":false}}},"
	"{\"proxy\":\"a~10.0.0.1~a.ns~ns.svc.cluster.local\",\"flavour\":\"proxyless\",\"cluster\":\"\","
	"\"user_agent\":\"grpc-python 1.51\",\"peer\":\"p\",\"connected_at\":\"x\",\"delta\":true,\"stream\":2,"
	"\"types\":{}},"
	/* an older stream of b: the newest (listed first) wins */
	"{\"proxy\":\"b~10.0.0.2~b.ns~ns.svc.cluster.local\",\"flavour\":\"sidecar\",\"cluster\":\"old\","
	"\"user_agent\":\"envoy 1.28\",\"peer\":\"p\",\"connected_at\":\"x\",\"delta\":false,\"stream\":1,"
	"\"types\":{}}]";

/* A config dump with static and dynamic sections, field names in
 * lowerCamelCase as meshd's /debug/config_dump writes them.  The admin port
 * serves admin_dump, the same with the .proto (snake_case) names as Envoy's
 * and meshproxy's /config_dump write them (made by snake_dump()). */
static const char camel_dump[] =
	"{\"configs\":["
	"{\"@type\":\"type.googleapis.com/envoy.admin.v3.ListenersConfigDump\",\"versionInfo\":\"v1\","
	"\"staticListeners\":[{\"listener\":{\"name\":\"admin\",\"address\":{\"socketAddress\":{\"address\":"
	"\"127.0.0.1\",\"portValue\":15000}}}}],"
	"\"dynamicListeners\":[{\"name\":\"0.0.0.0_8080\",\"activeState\":{\"versionInfo\":\"v1\",\"listener\":"
	"{\"name\":\"0.0.0.0_8080\",\"address\":{\"socketAddress\":{\"address\":\"0.0.0.0\",\"portValue\":8080}},"
	"\"filterChains\":[{\"filters\":[{\"name\":\"envoy.filters.network.http_connection_manager\",\"typedConfig\":"
	"{\"@type\":\"x\",\"rds\":{\"routeConfigName\":\"8080\"}}}]}]}}},"
	"{\"name\":\"10.0.0.1_3306\",\"activeState\":{\"listener\":{\"name\":\"10.0.0.1_3306\",\"address\":"
	"{\"socketAddress\":{\"address\":\"10.0.0.1\",\"portValue\":3306}},\"filterChains\":[{\"filters\":[{\"typedConfig\":"
	"{\"cluster\":\"outbound|3306||db.ns.svc.cluster.local\"}}]}]}}},"
	/* Istio's virtualOutbound: a chain per destination, one row each */
	"{\"name\":\"virtualOutbound\",\"activeState\":{\"listener\":{\"name\":\"virtualOutbound\",\"address\":"
	"{\"socketAddress\":{\"address\":\"0.0.0.0\",\"portValue\":15001}},\"filterChains\":["
	"{\"filterChainMatch\":{\"prefixRanges\":[{\"addressPrefix\":\"0.0.0.0\",\"prefixLen\":32}]},\"filters\":"
	"[{\"typedConfig\":{\"cluster\":\"BlackHoleCluster\"}}]},"
	"{\"filterChainMatch\":{\"destinationPort\":443,\"transportProtocol\":\"tls\",\"serverNames\":[\"a.example\","
	"\"b.example\"],\"applicationProtocols\":[\"h2\",\"http/1.1\"]},\"filters\":[{\"typedConfig\":"
	"{\"cluster\":\"outbound|443||a.example\"}}]},"
	"{\"name\":\"PassthroughFilterChain\",\"filters\":[{\"typedConfig\":{\"cluster\":\"PassthroughCluster\"}}]}]}}}]},"
	"{\"@type\":\"type.googleapis.com/envoy.admin.v3.ClustersConfigDump\",\"staticClusters\":[{\"cluster\":"
	"{\"name\":\"xds-grpc\",\"type\":\"STATIC\"}}],\"dynamicActiveClusters\":[{\"versionInfo\":\"v1\",\"cluster\":"
	"{\"name\":\"outbound|9080|v2|reviews.ns.svc.cluster.local\",\"type\":\"EDS\"}},{\"cluster\":{\"name\":"
	"\"inbound|8080||\",\"type\":\"STATIC\"}}]},"
	"{\"@type\":\"type.googleapis.com/envoy.admin.v3.RoutesConfigDump\",\"dynamicRouteConfigs\":[{\"routeConfig\":"
	"{\"name\":\"8080\",\"virtualHosts\":[{\"name\":\"reviews.ns.svc.cluster.local:9080\",\"domains\":"
	"[\"reviews.ns.svc.cluster.local\",\"reviews\"],\"routes\":[{\"match\":{\"path\":\"/exact\"},\"route\":"
	"{\"cluster\":\"c1\"}},{\"match\":{\"prefix\":\"/api\",\"headers\":[{\"name\":\"x-user\"}]},\"route\":"
	"{\"weightedClusters\":{\"clusters\":[{\"name\":\"c1\",\"weight\":75},{\"name\":\"c2\",\"weight\":25}]}}},"
	"{\"match\":{\"safeRegex\":{\"regex\":\"/r.*\"}},\"directResponse\":{\"status\":404}}]}]}}]},"
	"{\"@type\":\"type.googleapis.com/envoy.admin.v3.SecretsConfigDump\",\"dynamicActiveSecrets\":[{\"name\":"
	"\"default\",\"versionInfo\":\"s1\",\"secret\":{\"name\":\"default\",\"tlsCertificate\":{}}},{\"name\":"
	"\"ROOTCA\",\"versionInfo\":\"s1\",\"secret\":{\"name\":\"ROOTCA\",\"validationContext\":{}}}]}"
	"]}";

static char admin_dump[sizeof(camel_dump) * 2];

/* A proxy's live /clusters in Envoy's text form (meshproxy's and Envoy's):
 * one host ejected by outlier detection, one EDS-unhealthy. */
static const char clusters_text[] =
	"outbound|9080|v2|reviews.ns.svc.cluster.local::observability_name::outbound|9080|v2|reviews.ns.svc.cluster.local\n"
	"outbound|9080|v2|reviews.ns.svc.cluster.local::added_via_api::true\n"
	"outbound|9080|v2|reviews.ns.svc.cluster.local::10.0.0.8:9080::cx_active::0\n"
	"outbound|9080|v2|reviews.ns.svc.cluster.local::10.0.0.8:9080::health_flags::/failed_outlier_check\n"
	"outbound|9080|v2|reviews.ns.svc.cluster.local::10.0.0.7:9080::health_flags::healthy\n"
	"outbound|9080|v2|reviews.ns.svc.cluster.local::10.0.0.9:9080::health_flags::/failed_eds_health\n"
	"inbound|8080||::observability_name::inbound|8080||\n"
	"inbound|8080||::127.0.0.1:8080::health_flags::healthy\n";

/* camel_dump with every key ("x":) in snake_case, into admin_dump. */
static void snake_dump(void)
{
	const char *p;
	size_t k = 0;

	for (p = camel_dump; *p; p++) {
		if (*p >= 'A' && *p <= 'Z') {
			const char *q = p;

			while (*q && *q != '"')
				q++;
			if (q[0] == '"' && q[1] == ':') {
				admin_dump[k++] = '_';
				admin_dump[k++] = (char)(*p - 'A' + 'a');
				continue;
			}
		}
		admin_dump[k++] = *p;
	}
	admin_dump[k] = '\0';
}

static int srv_fd = -1, srv_port;
static pthread_t srv_thread;
static char last_path[REQ_MAX];
static char out[OUT_MAX];

static void send_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w <= 0)
			return;
		p += w;
		n -= (size_t)w;
	}
}

static void reply(int fd, int status, const char *body, int chunked)
{
	char head[256];
	size_t n = strlen(body), off, step;

	if (!chunked) {
		snprintf(head, sizeof(head), "HTTP/1.1 %d X\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
			 status, n);
		send_all(fd, head, strlen(head));
		send_all(fd, body, n);
		return;
	}
	snprintf(head, sizeof(head), "HTTP/1.1 %d X\r\nTransfer-Encoding: chunked\r\n\r\n", status);
	send_all(fd, head, strlen(head));
	for (off = 0; off < n; off += step) {
		step = n - off > 333 ? 333 : n - off;
		snprintf(head, sizeof(head), "%zx\r\n", step);
		send_all(fd, head, strlen(head));
		send_all(fd, body + off, step);
		send_all(fd, "\r\n", 2);
	}
	send_all(fd, "0\r\n\r\n", 5);
}

/* set: the server answers 200 with a web page to every path (a port that
 * is not a proxy's admin port) */
static volatile int not_admin;

static void *serve(void *arg)
{
	(void)arg;
	for (;;) {
		char req[REQ_MAX];
		size_t n = 0;
		ssize_t r;
		int fd = accept(srv_fd, NULL, NULL);

		if (fd < 0)
			return NULL;
		while (n < sizeof(req) - 1 && (r = recv(fd, req + n, sizeof(req) - 1 - n, 0)) > 0) {
			n += (size_t)r;
			req[n] = '\0';
			if (strstr(req, "\r\n\r\n"))
				break;
		}
		req[n] = '\0';
		sscanf(req, "GET %8191s", last_path);
		if (not_admin)
			reply(fd, 200, "<html><body>some other web server</body></html>\n", 0);
		else if (!strcmp(last_path, "/version"))
			reply(fd, 200, "{\"version\":\"9.9.9-test\",\"component\":\"meshd\"}\n", 0);
		else if (!strcmp(last_path, "/debug/syncz"))
			reply(fd, 200, syncz, 0);
		else if (!strcmp(last_path, "/clusters"))
			reply(fd, 200, clusters_text, 1);
		else if (!strcmp(last_path, "/config_dump"))
			reply(fd, 200, admin_dump, 1);
		else if (!strncmp(last_path, "/debug/config_dump?proxyID=", 27) && strstr(last_path, "proxyID=a~"))
			reply(fd, 200, camel_dump, 0);
		else if (!strncmp(last_path, "/debug/config_dump", 18))
			reply(fd, 404, "{\"error\":\"proxy \\\"zz\\\" is not connected\"}\n", 0);
		else
			reply(fd, 403, "{\"error\":\"/debug/* answers only callers on meshd's host (localhost)\"}\n", 0);
		close(fd);
	}
}

static void setup(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sa);

	srv_fd = socket(AF_INET, SOCK_STREAM, 0);
	ck_assert_int_ge(srv_fd, 0);
	ck_assert_int_eq(bind(srv_fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(listen(srv_fd, 16), 0);
	ck_assert_int_eq(getsockname(srv_fd, (struct sockaddr *)&sa, &len), 0);
	srv_port = ntohs(sa.sin_port);
	ck_assert_int_eq(pthread_create(&srv_thread, NULL, serve, NULL), 0);
}

static void teardown(void)
{
	shutdown(srv_fd, SHUT_RDWR);
	close(srv_fd);
	pthread_join(srv_thread, NULL);
}

/* meshctl ARGS with --meshd/--admin pointing at the fake server ("%d" in args). */
static int run(const char *fmt, const char *redirect)
{
	char args[1024];

	snprintf(args, sizeof(args), fmt, srv_port);
	return testutil_meshctl(out, OUT_MAX, "", args, redirect);
}

static void has(const char *needle)
{
	ck_assert_msg(strstr(out, needle) != NULL, "missing [%s] in:\n%s", needle, out);
}

START_TEST(version)
{
	ck_assert_int_eq(run("version", "2>&1"), 0);
	ck_assert_msg(!strncmp(out, "client version: ", 16) && !strchr(out + 16, '\n')[1], "%s", out);
	ck_assert_int_eq(run("version --meshd 127.0.0.1:%d", "2>&1"), 0);
	has("meshd version: 9.9.9-test (127.0.0.1:");
	ck_assert_int_eq(run("version --meshd=127.0.0.1:%d -o json", "2>&1"), 0);
	has("\"meshVersion\":[{\"Component\":\"meshd\",\"Info\":{\"version\":\"9.9.9-test\"");
	ck_assert_int_eq(run("version extra", "2>/dev/null"), 2);
}
END_TEST

START_TEST(proxy_status_table)
{
	char line[512];

	ck_assert_int_eq(run("proxy-status --meshd 127.0.0.1:%d", "2>&1"), 0);
	/* istioctl's columns, sorted by name, one row per proxy (its newest stream) */
	ck_assert_msg(!strncmp(out, "NAME   ", 7), "%s", out);
	has("   CLUSTER      CDS        LDS        EDS        RDS        ECDS       ISTIOD            VERSION\n");
	snprintf(line, sizeof(line), "a~10.0.0.1~a.ns~ns.svc.cluster.local   -            NOT SENT   NOT SENT   "
		 "NOT SENT   NOT SENT   NOT SENT   127.0.0.1:%d   grpc-python 1.51\n", srv_port);
	has(line);
	snprintf(line, sizeof(line), "b~10.0.0.2~b.ns~ns.svc.cluster.local   Kubernetes   SYNCED     ERROR      "
		 "NOT SENT   STALE      NOT SENT   127.0.0.1:%d   envoy 1.29\n", srv_port);
	has(line);
	ck_assert_ptr_null(strstr(out, "envoy 1.28"));
	ck_assert(strstr(out, "a~10.0.0.1") < strstr(out, "b~10.0.0.2"));
	ck_assert_str_eq(last_path, "/debug/syncz");
	ck_assert_int_eq(run("proxy-status --meshd 127.0.0.1:%d -o json", "2>&1"), 0);
	ck_assert_str_eq(out, syncz);
}
END_TEST

START_TEST(proxy_config_from_admin_port)
{
	ck_assert_int_eq(run("proxy-config listeners --admin 127.0.0.1:%d", "2>&1"), 0);
	ck_assert_str_eq(last_path, "/config_dump");
	/* one row per filter chain, with its match, as istioctl prints */
	has("NAME              ADDRESS     PORT    MATCH                                                               "
	    "DESTINATION\n");
	has("0.0.0.0_8080      0.0.0.0     8080    ALL                                                                 "
	    "Route: 8080\n");
	has("10.0.0.1_3306     10.0.0.1    3306    ALL                                                                 "
	    "Cluster: outbound|3306||db.ns.svc.cluster.local\n");
	has("virtualOutbound   0.0.0.0     15001   Addr: 0.0.0.0/32                                                    "
	    "Cluster: BlackHoleCluster\n");
	has("virtualOutbound   0.0.0.0     15001   SNI: a.example,b.example; Trans: tls; App: h2,http/1.1; Port: 443   "
	    "Cluster: outbound|443||a.example\n");
	has("virtualOutbound   0.0.0.0     15001   ALL                                                                 "
	    "Cluster: PassthroughCluster\n");
	has("admin             127.0.0.1   15000   -                                                                   -\n");

	ck_assert_int_eq(run("proxy-config clusters --admin 127.0.0.1:%d", "2>&1"), 0);
	has("SERVICE FQDN                   PORT   SUBSET   DIRECTION   TYPE\n");
	has("reviews.ns.svc.cluster.local   9080   v2       outbound    EDS\n");
	has("-                              8080   -        inbound     STATIC\n");
	has("xds-grpc                       -      -        -           STATIC\n");

	ck_assert_int_eq(run("proxy-config route --admin 127.0.0.1:%d", "2>&1"), 0);
	/* in dump order, which is match order */
	has("8080   reviews.ns.svc.cluster.local:9080   reviews.ns.svc.cluster.local +1 more   /exact         c1\n");
	has("8080   reviews.ns.svc.cluster.local:9080   reviews.ns.svc.cluster.local +1 more   /api* x-user   "
	    "c1 75, c2 25\n");
	has("8080   reviews.ns.svc.cluster.local:9080   reviews.ns.svc.cluster.local +1 more   ~/r.*          "
	    "direct response\n");
	ck_assert(strstr(out, "/exact") < strstr(out, "/api*"));

	ck_assert_int_eq(run("proxy-config secrets --admin 127.0.0.1:%d", "2>&1"), 0);
	/* no certificate in this dump: istioctl's certificate columns are "-" */
	has("default         Cert Chain   ACTIVE   -            -               -           -            -          s1\n");
	has("ROOTCA          CA           ACTIVE   -            -               -           -            -          s1\n");

	/* endpoints: the proxy's live /clusters, sorted by address */
	ck_assert_int_eq(run("proxy-config endpoints --admin 127.0.0.1:%d", "2>&1"), 0);
	ck_assert_str_eq(last_path, "/clusters");
	ck_assert_str_eq(out, "ENDPOINT         STATUS      OUTLIER CHECK   CLUSTER\n"
			      "10.0.0.7:9080    HEALTHY     OK              outbound|9080|v2|reviews.ns.svc.cluster.local\n"
			      "10.0.0.8:9080    HEALTHY     FAILED          outbound|9080|v2|reviews.ns.svc.cluster.local\n"
			      "10.0.0.9:9080    UNHEALTHY   OK              outbound|9080|v2|reviews.ns.svc.cluster.local\n"
			      "127.0.0.1:8080   HEALTHY     OK              inbound|8080||\n");

	ck_assert_int_eq(run("proxy-config clusters --admin 127.0.0.1:%d -o json", "2>&1"), 0);
	/* dynamic then static, each item as the dump has it */
	ck_assert_str_eq(out, "[{\"version_info\":\"v1\",\"cluster\":{\"name\":\"outbound|9080|v2|reviews.ns.svc.cluster.local\","
			      "\"type\":\"EDS\"}},{\"cluster\":{\"name\":\"inbound|8080||\",\"type\":\"STATIC\"}},"
			      "{\"cluster\":{\"name\":\"xds-grpc\",\"type\":\"STATIC\"}}]\n");
}
END_TEST

START_TEST(proxy_config_from_meshd)
{
	ck_assert_int_eq(run("proxy-config all 'a~10.0.0.1~a.ns~ns.svc.cluster.local' --meshd 127.0.0.1:%d", "2>&1"), 0);
	ck_assert_str_eq(last_path, "/debug/config_dump?proxyID=a~10.0.0.1~a.ns~ns.svc.cluster.local");
	has("listeners:\nNAME");
	has("\nroutes:\nNAME");
	has("\nclusters:\nSERVICE FQDN");
	has("\nsecrets:\nRESOURCE NAME");
	/* camelCase names read as well as the .proto ones */
	has("10.0.0.1_3306     10.0.0.1    3306    ALL                                                                 "
	    "Cluster: outbound|3306||db.ns.svc.cluster.local\n");
	has("virtualOutbound   0.0.0.0     15001   ALL                                                                 "
	    "Cluster: PassthroughCluster\n");
	has("reviews.ns.svc.cluster.local   9080   v2       outbound    EDS\n");
	/* characters a query needs escaped are */
	ck_assert_int_eq(run("proxy-config all 'zz &=%%/ ' --meshd 127.0.0.1:%d", "2>/dev/null"), 1);
	ck_assert_str_eq(last_path, "/debug/config_dump?proxyID=zz%20%26%3D%25%2F%20");
	ck_assert_int_eq(run("proxy-config all 'a~1' --meshd 127.0.0.1:%d -o json", "2>&1"), 0);
	ck_assert_str_eq(out, camel_dump);
	/* meshd's error text, unescaped */
	ck_assert_int_eq(run("proxy-config clusters zz --meshd 127.0.0.1:%d", "2>&1"), 1);
	has("/debug/config_dump?proxyID=zz: HTTP 404: proxy \"zz\" is not connected\n");
}
END_TEST

/* istioctl's filters, each narrowing its table; -o yaml */
START_TEST(proxy_config_filters)
{
	ck_assert_int_eq(run("proxy-config clusters --admin 127.0.0.1:%d --fqdn reviews.ns", "2>&1"), 0);
	has("reviews.ns.svc.cluster.local   9080   v2       outbound    EDS\n");
	ck_assert_ptr_null(strstr(out, "xds-grpc"));
	ck_assert_ptr_null(strstr(out, "inbound"));
	ck_assert_int_eq(run("proxy-config clusters --admin 127.0.0.1:%d --direction inbound --port=8080", "2>&1"), 0);
	ck_assert_str_eq(out, "SERVICE FQDN   PORT   SUBSET   DIRECTION   TYPE\n"
			      "-              8080   -        inbound     STATIC\n");
	ck_assert_int_eq(run("proxy-config clusters --admin 127.0.0.1:%d --subset v1", "2>&1"), 0);
	ck_assert_str_eq(out, "SERVICE FQDN   PORT   SUBSET   DIRECTION   TYPE\n");
	ck_assert_int_eq(run("proxy-config clusters --admin 127.0.0.1:%d --subset v2 -o json", "2>&1"), 0);
	ck_assert_str_eq(out, "[{\"version_info\":\"v1\",\"cluster\":{\"name\":"
			      "\"outbound|9080|v2|reviews.ns.svc.cluster.local\",\"type\":\"EDS\"}}]\n");
	ck_assert_int_eq(run("proxy-config clusters --admin 127.0.0.1:%d --subset v2 -o yaml", "2>&1"), 0);
	ck_assert_str_eq(out, "- version_info: v1\n  cluster:\n    name: outbound|9080|v2|reviews.ns.svc.cluster.local\n"
			      "    type: EDS\n");

	ck_assert_int_eq(run("proxy-config listeners --admin 127.0.0.1:%d --port 15001", "2>&1"), 0);
	has("virtualOutbound   0.0.0.0   15001   ALL");
	ck_assert_ptr_null(strstr(out, "0.0.0.0_8080"));
	ck_assert_int_eq(run("proxy-config listeners --admin 127.0.0.1:%d --address 10.0.0.1", "2>&1"), 0);
	has("10.0.0.1_3306   10.0.0.1   3306   ALL");
	ck_assert_ptr_null(strstr(out, "virtualOutbound"));
	/* HTTP by its connection manager, TCP by its proxy filter (BlackHoleCluster alone is not TCP) */
	ck_assert_int_eq(run("proxy-config listeners --admin 127.0.0.1:%d --type http", "2>&1"), 0);
	has("0.0.0.0_8080   0.0.0.0   8080   ALL     Route: 8080\n");
	ck_assert_ptr_null(strstr(out, "3306"));

	ck_assert_int_eq(run("proxy-config routes --admin 127.0.0.1:%d --name 8080", "2>&1"), 0);
	has("/exact");
	ck_assert_int_eq(run("proxy-config routes --admin 127.0.0.1:%d --name 9090", "2>&1"), 0);
	ck_assert_str_eq(out, "NAME   VHOST NAME   DOMAINS   MATCH   DESTINATION\n");

	ck_assert_int_eq(run("proxy-config endpoints --admin 127.0.0.1:%d --status unhealthy", "2>&1"), 0);
	ck_assert_str_eq(out, "ENDPOINT        STATUS      OUTLIER CHECK   CLUSTER\n"
			      "10.0.0.9:9080   UNHEALTHY   OK              outbound|9080|v2|reviews.ns.svc.cluster.local\n");
	ck_assert_int_eq(run("proxy-config endpoints --admin 127.0.0.1:%d --address 10.0.0.8 --port 9080 "
			     "--cluster 'OUTBOUND|9080|v2|reviews.ns.svc.cluster.local'", "2>&1"), 0);
	ck_assert_str_eq(out, "ENDPOINT        STATUS    OUTLIER CHECK   CLUSTER\n"
			      "10.0.0.8:9080   HEALTHY   FAILED          outbound|9080|v2|reviews.ns.svc.cluster.local\n");
	ck_assert_int_eq(run("proxy-config endpoints --admin 127.0.0.1:%d --cluster 'inbound|8080||' -o json", "2>&1"),
			 0);
	ck_assert_str_eq(out, "[{\"name\":\"inbound|8080||\",\"host_statuses\":[{\"address\":{\"socket_address\":"
			      "{\"address\":\"127.0.0.1\",\"port_value\":8080}},\"health_status\":"
			      "{\"eds_health_status\":\"HEALTHY\"}}]}]\n");

	/* all: each section in turn, the filters where they apply */
	ck_assert_int_eq(run("proxy-config all --admin 127.0.0.1:%d --port 3306", "2>&1"), 0);
	has("listeners:\nNAME            ADDRESS    PORT   MATCH   DESTINATION\n10.0.0.1_3306");
	has("\nendpoints:\nENDPOINT   STATUS   OUTLIER CHECK   CLUSTER\n\nsecrets:");

	/* bad values and filters of another TYPE: exit 2, a clear message */
	ck_assert_int_eq(run("proxy-config clusters --admin 127.0.0.1:%d --port 0", "2>&1"), 2);
	has("--port \"0\": want a port number 1-65535");
	ck_assert_int_eq(run("proxy-config clusters --admin 127.0.0.1:%d --port 80x", "2>/dev/null"), 2);
	ck_assert_int_eq(run("proxy-config clusters --admin 127.0.0.1:%d --direction sideways", "2>&1"), 2);
	has("want inbound or outbound");
	ck_assert_int_eq(run("proxy-config listeners --admin 127.0.0.1:%d --type UDP", "2>&1"), 2);
	has("want HTTP, TCP or HTTP+TCP");
	ck_assert_int_eq(run("proxy-config endpoints --admin 127.0.0.1:%d --status sick", "2>&1"), 2);
	ck_assert_int_eq(run("proxy-config routes --admin 127.0.0.1:%d --fqdn x", "2>&1"), 2);
	has("--fqdn does not filter routes; it filters clusters");
	ck_assert_int_eq(run("proxy-config clusters --admin 127.0.0.1:%d --port", "2>/dev/null"), 2);
}
END_TEST

/* --direction in any case; a filter given twice; --admin at a server that
 * is not a proxy's admin port */
START_TEST(proxy_config_polish)
{
	ck_assert_int_eq(run("proxy-config clusters --admin 127.0.0.1:%d --direction INBOUND", "2>&1"), 0);
	ck_assert_str_eq(out, "SERVICE FQDN   PORT   SUBSET   DIRECTION   TYPE\n"
			      "-              8080   -        inbound     STATIC\n");
	ck_assert_int_eq(run("proxy-config clusters --admin 127.0.0.1:%d --direction Outbound", "2>&1"), 0);
	has("reviews.ns.svc.cluster.local   9080   v2       outbound    EDS\n");
	ck_assert_ptr_null(strstr(out, "inbound"));

	ck_assert_int_eq(run("proxy-config clusters --admin 127.0.0.1:%d --port 8080 --port=9080", "2>&1"), 2);
	has("--port given more than once");
	ck_assert_int_eq(run("proxy-config endpoints --admin 127.0.0.1:%d --status healthy --status unhealthy",
			     "2>&1"), 2);
	has("--status given more than once");
	ck_assert_int_eq(run("proxy-config clusters --admin 127.0.0.1:%d --admin 127.0.0.1:1", "2>&1"), 2);

	not_admin = 1;
	ck_assert_int_eq(run("proxy-config endpoints --admin 127.0.0.1:%d", "2>&1"), 1);
	has("does not look like a proxy's admin port");
	ck_assert_ptr_null(strstr(out, "ENDPOINT"));
	ck_assert_int_eq(run("proxy-config clusters --admin 127.0.0.1:%d", "2>&1"), 1);
	has("does not look like a proxy's admin port");
	ck_assert_int_eq(run("proxy-config all --admin 127.0.0.1:%d -o json", "2>&1"), 1);
	ck_assert_ptr_null(strstr(out, "<html>"));
	not_admin = 0;
}
END_TEST

START_TEST(usage_and_unreachable)
{
	ck_assert_int_eq(run("proxy-config", "2>/dev/null"), 2);
	ck_assert_int_eq(run("proxy-config clusters", "2>/dev/null"), 2);
	ck_assert_int_eq(run("proxy-config nonsense x", "2>/dev/null"), 2);
	ck_assert_int_eq(run("proxy-config clusters x -o xml", "2>/dev/null"), 2);
	ck_assert_int_eq(run("proxy-status extra", "2>/dev/null"), 2);
	ck_assert_int_eq(run("proxy-status --help", "2>/dev/null"), 0);
	has("SYNCED");
	/* a port nobody listens on: the fake server's, once closed */
	teardown();
	ck_assert_int_eq(run("proxy-status --meshd 127.0.0.1:%d", "2>&1"), 1);
	has("cannot reach 127.0.0.1:");
	has("is meshd running?");
	setup();
	ck_assert_int_eq(run("proxy-status --meshd nocolon", "2>&1"), 1);
	has("bad address \"nocolon\"");
}
END_TEST

int main(void)
{
	Suite *s = suite_create("meshctl_proxy");

	snake_dump();
	if (!strstr(admin_dump, "\"port_value\":15000") || strstr(admin_dump, "portValue")) {
		fprintf(stderr, "snake_dump: %s\n", admin_dump);
		return EXIT_FAILURE;
	}
	TCase *tc = tcase_create("proxy");

	/* each test runs meshctl a dozen times as a child process: on a loaded
	 * machine that outlasts Check's 4 s default (not a timing assertion) */
	tcase_set_timeout(tc, 60);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, version);
	tcase_add_test(tc, proxy_status_table);
	tcase_add_test(tc, proxy_config_from_admin_port);
	tcase_add_test(tc, proxy_config_from_meshd);
	tcase_add_test(tc, proxy_config_filters);
	tcase_add_test(tc, proxy_config_polish);
	tcase_add_test(tc, usage_and_unreachable);
	suite_add_tcase(s, tc);
	return testutil_run(s);
}
