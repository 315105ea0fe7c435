/*
 * test_iptables.c - `meshproxy iptables` rules (dataplane/iptables.h).
 *
 * The golden cases are Istio's own: tests/data/iptables/NAME.args holds
 * the flags of istio-iptables' capture test case NAME (run_test.go; ENV
 * lines set the environment-only settings) and NAME.golden the
 * iptables-restore input Istio's testdata/NAME.golden records (without the
 * stub's iptables-save lines).  Each is rendered and compared line by
 * line.  Then the flag and environment handling (a flag wins, short and
 * long names, booleans as Go reads them) and refusals of values that would
 * break the restore input (a newline, a bad CIDR, an excluded wildcard).
 */
#include "dataplane/iptables.h"

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DATA "tests/data/iptables"

/* the environment a case sets: NAME=VALUE pairs */
static char g_env[8][256];
static size_t g_n_env;

static const char *case_env(const char *name)
{
	size_t i, l = strlen(name);

	for (i = 0; i < g_n_env; i++)
		if (!strncmp(g_env[i], name, l) && g_env[i][l] == '=')
			return g_env[i] + l + 1;
	return NULL;
}

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	char *s;
	long n;

	ck_assert_msg(f != NULL, "open %s", path);
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	s = calloc(1, (size_t)n + 1);
	ck_assert(s != NULL);
	ck_assert_int_eq(fread(s, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	return s;
}

/* Render the flags in args (words split on blanks; ENV lines set g_env). */
static int render(char *args, struct mesh_buf *out, FILE *err)
{
	char *argv[64], *p, *line;
	int argc = 0;
	struct ipt_opts o;
	int rc;

	g_n_env = 0;
	argv[argc++] = "iptables";
	for (line = args; line && *line;) {
		char *nl = strchr(line, '\n');

		if (nl)
			*nl = '\0';
		if (!strncmp(line, "ENV ", 4)) {
			ck_assert(g_n_env < 8);
			snprintf(g_env[g_n_env++], sizeof(g_env[0]), "%s", line + 4);
		} else {
			for (p = line; *p;) {
				while (*p == ' ')
					*p++ = '\0';
				if (!*p)
					break;
				ck_assert(argc < 63);
				argv[argc++] = p;
				while (*p && *p != ' ')
					p++;
			}
		}
		line = nl ? nl + 1 : NULL;
	}
	argv[argc] = NULL;
	rc = ipt_opts_parse(&o, argc, argv, case_env, stdout, err);
	if (rc != 0)
		return rc;
	return ipt_render(&o, out, err);
}

START_TEST(istio_golden_cases)
{
	DIR *d = opendir(DATA);
	struct dirent *de;
	int cases = 0;

	ck_assert(d != NULL);
	while ((de = readdir(d)) != NULL) {
		char path[512], *args, *want, *w, *g;
		struct mesh_buf out;
		size_t l = strlen(de->d_name);
		int line = 1;

		if (l < 6 || strcmp(de->d_name + l - 5, ".args"))
			continue;
		snprintf(path, sizeof(path), DATA "/%s", de->d_name);
		args = slurp(path);
		snprintf(path, sizeof(path), DATA "/%.*s.golden", (int)(l - 5), de->d_name);
		want = slurp(path);
		mesh_buf_init(&out, 1 << 20);
		ck_assert_msg(render(args, &out, stderr) == 0, "%s", de->d_name);
		ck_assert(out.data != NULL);
		/* line by line, to name the first differing one */
		for (w = want, g = out.data; *w || *g; line++) {
			size_t wl = strcspn(w, "\n"), gl = strcspn(g, "\n");

			ck_assert_msg(wl == gl && !memcmp(w, g, wl), "%s line %d: want \"%.*s\", got \"%.*s\"",
				      de->d_name, line, (int)wl, w, (int)gl, g);
			w += wl + (w[wl] == '\n');
			g += gl + (g[gl] == '\n');
		}
		mesh_buf_cleanup(&out);
		free(args);
		free(want);
		cases++;
	}
	closedir(d);
	/* Istio's capture testdata has 27 cases; all are here */
	ck_assert_int_eq(cases, 27);
}
END_TEST

static int render_str(const char *args, struct mesh_buf *out)
{
	char buf[1024];
	FILE *null = fopen("/dev/null", "w");
	int rc;

	snprintf(buf, sizeof(buf), "%s", args);
	rc = render(buf, out, null);
	fclose(null);
	return rc;
}

START_TEST(flags_env_and_names)
{
	struct mesh_buf a, b;

	/* short and long names give the same rules */
	mesh_buf_init(&a, 1 << 20);
	mesh_buf_init(&b, 1 << 20);
	ck_assert_int_eq(render_str("-i 10.96.0.0/12 -b * -d 15020 -o 3306 -u 7 --ipv6=false", &a), 0);
	ck_assert_int_eq(render_str("--istio-service-cidr 10.96.0.0/12 --istio-inbound-ports=* "
				    "--istio-local-exclude-ports 15020 --istio-local-outbound-ports-exclude=3306 "
				    "--proxy-uid 7 --ipv6 false",
				    &b),
			 -EINVAL); /* "--ipv6 false": a bool takes its value with '=' only */
	mesh_buf_reset(&b);
	ck_assert_int_eq(render_str("--istio-service-cidr 10.96.0.0/12 --istio-inbound-ports=* "
				    "--istio-local-exclude-ports 15020 --istio-local-outbound-ports-exclude=3306 "
				    "--proxy-uid 7 --ipv6=f",
				    &b),
			 0);
	ck_assert_str_eq(a.data, b.data);
	ck_assert_ptr_nonnull(strstr(a.data, "-A ISTIO_OUTPUT -m owner --uid-owner 7 -j RETURN\n"));
	ck_assert_ptr_nonnull(strstr(a.data, "-A ISTIO_OUTPUT -m owner --gid-owner 7 -j RETURN\n")); /* gid = uid */
	ck_assert_ptr_nonnull(strstr(a.data, "-A ISTIO_OUTPUT -p udp --dport 3306 -j RETURN\n"));
	ck_assert_ptr_nonnull(strstr(a.data, "-A ISTIO_INBOUND -p tcp --dport 15020 -j RETURN\n"));
	ck_assert_ptr_null(strstr(a.data, "::1/128")); /* IPv4 only */

	/* the environment, and a flag winning over it */
	mesh_buf_reset(&b);
	ck_assert_int_eq(render_str("--ipv6=false -u 7\nENV ISTIO_SERVICE_CIDR=10.96.0.0/12\nENV ISTIO_INBOUND_PORTS=*\n"
				    "ENV ISTIO_LOCAL_EXCLUDE_PORTS=15020\nENV ISTIO_LOCAL_OUTBOUND_PORTS_EXCLUDE=3306\n"
				    "ENV PROXY_UID=99",
				    &b),
			 0);
	ck_assert_str_eq(a.data, b.data);
	mesh_buf_reset(&b);
	ck_assert_int_eq(render_str("-n\nENV ENABLE_INBOUND_IPV6=true", &b), 0);
	ck_assert_ptr_nonnull(strstr(b.data, "-A ISTIO_OUTPUT -d ::1/128 -j RETURN\n"));
	mesh_buf_reset(&b);
	ck_assert_int_eq(render_str("--ipv6=false\nENV INVALID_DROP=true", &b), 0); /* AdditionalEnv name */
	ck_assert_ptr_nonnull(strstr(b.data, "-A ISTIO_DROP -j DROP\n"));
	/* the injector's istio-init arguments, taken whole (flags without
	 * effect here included) */
	mesh_buf_reset(&a);
	mesh_buf_reset(&b);
	ck_assert_int_eq(render_str("-p 15001 -z 15006 -u 1337 -m REDIRECT -i * --istio-service-exclude-cidr= -b * -d 15090,15021,15020 "
				    "--log_output_level=default:info --reconcile --ipv6=false",
				    &a),
			 0);
	ck_assert_int_eq(render_str("-i * -b * -d 15090,15021,15020 --ipv6=false", &b), 0);
	ck_assert_str_eq(a.data, b.data);
	mesh_buf_cleanup(&a);
	mesh_buf_cleanup(&b);
}
END_TEST

/* Blanks around list items: Istio's injector accepts "8080, 9090" (its
 * parsePort trims) and istio-iptables hands " 9090" to iptables-restore,
 * which splits on blanks; the same list here gives the same rules as
 * without the blanks (it was refused, and the pod's istio-init failed). */
START_TEST(blanks_around_items)
{
	struct mesh_buf a, b;

	mesh_buf_init(&a, 1 << 20);
	mesh_buf_init(&b, 1 << 20);
	ck_assert_int_eq(render_str("--ipv6=true -u 1337 -i 10.0.0.0/8,fd00::/8 -x 10.1.0.0/16 -b 80,90 -d 15020,15021 "
				    "-o 8080,9090 -q 3306 -c eth1",
				    &a),
			 0);
	ck_assert_int_eq(render_str("--ipv6=true\nENV PROXY_UID= 1337\nENV ISTIO_SERVICE_CIDR= 10.0.0.0/8 , fd00::/8\n"
				    "ENV ISTIO_SERVICE_EXCLUDE_CIDR=10.1.0.0/16 \nENV ISTIO_INBOUND_PORTS=80,\t90\n"
				    "ENV ISTIO_LOCAL_EXCLUDE_PORTS=15020 , 15021\nENV ISTIO_LOCAL_OUTBOUND_PORTS_EXCLUDE=8080, 9090\n"
				    "ENV ISTIO_OUTBOUND_PORTS= 3306\nENV ISTIO_EXCLUDE_INTERFACES=eth1 ",
				    &b),
			 0);
	ck_assert_str_eq(a.data, b.data);
	mesh_buf_cleanup(&a);
	mesh_buf_cleanup(&b);
}
END_TEST

START_TEST(bad_values_refused)
{
	static const char *const bad[] = {
		"--ipv6=false -i 10.0.0.0",           /* a CIDR without bits (Go's ParsePrefix) */
		"--ipv6=false -i 10.0.0.0/33",
		"--ipv6=false -i 300.0.0.0/8",
		"--ipv6=false -x *",                  /* OUTBOUND_IP_RANGES_EXCLUDE wildcard */
		"--ipv6=false -b 80;reboot",
		"--ipv6=false -c eth0\nENV X=1\n-b 80 x", /* stray argument */
		"--ipv6=false -m BOGUS",
		"--ipv6=false -u 1337,root\\n",
		"--ipv6=false -c averyveryverylongname",  /* over IFNAMSIZ */
		"--ipv6=false --dry-run=maybe",
		"--ipv6=false --no-such-flag",
		"--ipv6=false\nENV ISTIO_OUTBOUND_IPV4_LOOPBACK_CIDR=10.0.0.1/32",
		"--ipv6=false\nENV ISTIO_OUTBOUND_IPV4_LOOPBACK_CIDR=127.0.0.1/4",
		/* values iptables-restore refuses (it would, after the cleanup):
		 * refused here, naming the flag */
		"--ipv6=false -p abc",
		"--ipv6=false\nENV INBOUND_CAPTURE_PORT=",
		"--ipv6=false -e 0",
		"--ipv6=false -o 99999",
		"--ipv6=false -o :",                  /* iptables: every port */
		"--ipv6=false -o 1:2:3",
		"--ipv6=false -o 90:80",
		"--ipv6=false -b 80,http",
		"--ipv6=false -d +80",
		"--ipv6=false -q 65536",
		"--ipv6=false -g -1",
		"--ipv6=false -u -j",
		"--ipv6=false -m TPROXY -t abc/def",
		"--ipv6=false -m TPROXY -t 4294967296",
		"--ipv6=false -m TPROXY -b 80 -r 0",          /* ip(8): table 0 is "unspecified" */
		"--ipv6=false -m TPROXY -b 80 -r main",       /* a word ip(8) would read as a table name */
		"--ipv6=false -m TPROXY -b 80 -r 4294967296",
		"--ipv6=false -m TPROXY -b 80 -r 13x",
	};
	struct mesh_buf out;
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		mesh_buf_init(&out, 1 << 20);
		ck_assert_msg(render_str(bad[i], &out) < 0, "accepted: %s", bad[i]);
		mesh_buf_cleanup(&out);
	}
	/* ports and ranges iptables takes */
	mesh_buf_init(&out, 1 << 20);
	ck_assert_int_eq(render_str("--ipv6=false -o 0,80:90,65535 -m TPROXY -t 0x539", &out), 0);
	ck_assert_ptr_nonnull(strstr(out.data, "-A ISTIO_OUTPUT -p tcp --dport 80:90 -j RETURN\n"));
	mesh_buf_cleanup(&out);
	/* loopback in -i (Go's IsLoopback, which unmaps ::ffff:127.0.0.1):
	 * app => app over lo is captured, no "-o lo ... ! --uid-owner" RETURN */
	mesh_buf_init(&out, 1 << 20);
	ck_assert_int_eq(render_str("--ipv6=true -i ::ffff:127.0.0.1/128", &out), 0);
	ck_assert_ptr_null(strstr(out.data, "-A ISTIO_OUTPUT -o lo -m owner ! --uid-owner 1337 -j RETURN\n"));
	ck_assert_ptr_nonnull(strstr(out.data, "-A ISTIO_OUTPUT -d ::ffff:127.0.0.1/128 -j ISTIO_REDIRECT\n"));
	mesh_buf_cleanup(&out);
	/* canonical CIDR text as Go prints a netip.Prefix */
	mesh_buf_init(&out, 1 << 20);
	ck_assert_int_eq(render_str("--ipv6 -i 2001:0db8:0:0::/32,10.1.0.0/16", &out), 0);
	ck_assert_ptr_nonnull(strstr(out.data, "-A ISTIO_OUTPUT -d 2001:db8::/32 -j ISTIO_REDIRECT\n"));
	ck_assert_ptr_nonnull(strstr(out.data, "-A ISTIO_OUTPUT -d 10.1.0.0/16 -j ISTIO_REDIRECT\n"));
	mesh_buf_cleanup(&out);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("iptables");
	TCase *tc = tcase_create("core");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, istio_golden_cases);
	tcase_add_test(tc, flags_env_and_names);
	tcase_add_test(tc, blanks_around_items);
	tcase_add_test(tc, bad_values_refused);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
