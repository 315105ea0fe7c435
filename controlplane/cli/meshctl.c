/*
 * meshctl.c - the meshd command-line tool.
 *
 *   meshctl validate -f PATH...   check Istio configuration offline with the
 *                                 same parser, validator and reference checks
 *                                 as meshd (file, directory, recursive, or -)
 *   meshctl version, proxy-status, proxy-config
 *                                 read a running meshd's HTTP port (proxy.h)
 *   meshctl certs, authz          certs.h, authz.h
 *
 * Subcommands are a table (name, handler, one-line help).
 * Exit status: 0 success, 1 the input was checked and found bad, 2 usage.
 */
#include "controlplane/cli/authz.h"
#include "controlplane/cli/certs.h"
#include "controlplane/cli/kubeinject.h"
#include "controlplane/cli/proxy.h"
#include "controlplane/config/config.h"
#include "controlplane/config/meshcfg.h"
#include "controlplane/config/store.h"
#include "controlplane/gen/gen.h"
#include "controlplane/model/model.h"

#include "common/err.h"
#include "common/log.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MESHCTL_EXIT_OK 0
#define MESHCTL_EXIT_BAD 1
#define MESHCTL_EXIT_USAGE 2
#define MESHCTL_MAX_FILES 100000     /* files one validate run reads */
#define MESHCTL_MAX_DIR_DEPTH 32
#define MESHCTL_LINE_MAX 2048

struct meshctl_cmd {
	const char *name;
	int (*run)(int argc, char **argv);
	const char *summary;
};

static int meshctl_validate(int argc, char **argv);

static const struct meshctl_cmd meshctl_cmds[] = {
	{ "validate", meshctl_validate, "check Istio configuration files offline, as meshd would" },
	{ "certs", certs_main, "get and renew a workload certificate from meshd's CA (proxyless apps)" },
	{ "authz", authz_main, "would a request be allowed by the AuthorizationPolicies, and by which" },
	{ "version", proxy_version_main, "meshctl's version, and meshd's with --meshd ADDR" },
	{ "proxy-status", proxy_status_main, "the proxies connected to meshd and their xDS sync state" },
	{ "proxy-config", proxy_config_main, "what one proxy was sent: listeners, routes, clusters, endpoints, secrets" },
	{ "kube-inject", kube_inject_main, "inject the meshproxy sidecar into Pods and workloads of a file, as the webhook does" },
	{ "telemetry", proxy_telemetry_main, "the effective Telemetry (API) of one workload, as meshd merges it" },
};

static void meshctl_usage(FILE *f)
{
	size_t i;

	fprintf(f, "usage: meshctl COMMAND [options]\n\ncommands:\n");
	for (i = 0; i < sizeof(meshctl_cmds) / sizeof(meshctl_cmds[0]); i++)
		fprintf(f, "  %-13s %s\n", meshctl_cmds[i].name, meshctl_cmds[i].summary);
	fprintf(f, "\nRun 'meshctl COMMAND --help' for the options of a command.\n");
}

/* ------------------------------------------------------------- validate */

struct meshctl_files {
	char **v;
	size_t n, cap;
};

static int meshctl_files_add(struct meshctl_files *f, const char *path)
{
	char *p;

	if (f->n == MESHCTL_MAX_FILES)
		return -MESH_ETOOBIG;
	if (f->n == f->cap) {
		size_t cap = f->cap ? f->cap * 2 : 64;
		char **v = realloc(f->v, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		f->v = v;
		f->cap = cap;
	}
	p = strdup(path);
	if (!p)
		return -ENOMEM;
	f->v[f->n++] = p;
	return 0;
}

static int meshctl_is_config_name(const char *name)
{
	size_t n = strlen(name);
	static const char *const exts[] = { ".yaml", ".yml", ".json" };
	size_t i;

	if (name[0] == '.')
		return 0; /* editor and hidden files */
	for (i = 0; i < sizeof(exts) / sizeof(exts[0]); i++) {
		size_t l = strlen(exts[i]);
		if (n > l && strcmp(name + n - l, exts[i]) == 0)
			return 1;
	}
	return 0;
}

/* Collect config files under path (a file is taken whatever its name). */
static int meshctl_collect(struct meshctl_files *f, const char *path, int depth, int top)
{
	struct stat st;
	struct dirent **ents = NULL;
	int n, i, rc = 0;

	if (top && !strcmp(path, "-"))
		return meshctl_files_add(f, path); /* standard input, as kubectl -f - */
	if (stat(path, &st) < 0) {
		fprintf(stderr, "meshctl: %s: %s\n", path, strerror(errno));
		return -errno;
	}
	if (!S_ISDIR(st.st_mode)) {
		if (top || (S_ISREG(st.st_mode)))
			return meshctl_files_add(f, path);
		return 0;
	}
	if (depth >= MESHCTL_MAX_DIR_DEPTH)
		return 0;
	n = scandir(path, &ents, NULL, alphasort);
	if (n < 0) {
		fprintf(stderr, "meshctl: %s: %s\n", path, strerror(errno));
		return -errno;
	}
	for (i = 0; i < n; i++) {
		const char *name = ents[i]->d_name;
		char child[4096];
		struct stat cst;

		if (rc == 0 && strcmp(name, ".") != 0 && strcmp(name, "..") != 0 && name[0] != '.') {
			snprintf(child, sizeof(child), "%s%s%s", path, path[strlen(path) - 1] == '/' ? "" : "/", name);
			if (stat(child, &cst) == 0 && S_ISDIR(cst.st_mode))
				rc = meshctl_collect(f, child, depth + 1, 0);
			else if (meshctl_is_config_name(name))
				rc = meshctl_files_add(f, child);
		}
		free(ents[i]);
	}
	free(ents);
	return rc;
}

/* Parse standard input (at most CFG_MAX_FILE_BYTES) with origin "stdin".
 * Returns 0 or a negative code; -MESH_ETOOBIG past the cap. */
static int meshctl_parse_stdin(struct cfg_parse_result *res)
{
	char *data = malloc(CFG_MAX_FILE_BYTES + 1);
	size_t len = 0, n;
	int rc = 0;

	memset(res, 0, sizeof(*res));
	if (!data)
		return -ENOMEM;
	while ((n = fread(data + len, 1, CFG_MAX_FILE_BYTES + 1 - len, stdin)) > 0) {
		len += n;
		if (len > CFG_MAX_FILE_BYTES) {
			rc = -MESH_ETOOBIG;
			goto out;
		}
	}
	if (ferror(stdin)) {
		rc = -EIO;
		goto out;
	}
	rc = cfg_parse_buffer("stdin", data, len, res);
out:
	free(data);
	return rc;
}

static void meshctl_print_finding(void *ctx, const struct cfg_error *e)
{
	char line[2048];

	(void)ctx;
	cfg_error_format(e, line, sizeof(line));
	printf("%s\n", line);
}

static int meshctl_path_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void meshctl_validate_usage(FILE *f)
{
	fprintf(f,
		"usage: meshctl validate -f PATH [-f PATH...] [--mesh-config FILE]\n"
		"\n"
		"Check Istio configuration (VirtualService, DestinationRule, ServiceEntry,\n"
		"WorkloadEntry, PeerAuthentication, AuthorizationPolicy, Sidecar,\n"
		"RequestAuthentication, and Gateway, Telemetry which are validated but not\n"
		"applied yet)\n"
		"the way meshd does: schema, Istio's semantic rules and warnings, and\n"
		"cross-object references.  PATH is a file, a directory (read recursively\n"
		"for *.yaml, *.yml and *.json) or - for standard input.  Istio kinds meshd\n"
		"does not implement (EnvoyFilter, ...) are named in a warning; an unknown\n"
		"kind in an Istio API group is an error; other kinds (Deployment, ...) are\n"
		"skipped.\n"
		"\n"
		"  -f, --filename PATH   file or directory to check (repeatable)\n"
		"  --mesh-config FILE    check a mesh config as meshd --mesh-config reads it (Istio's\n"
		"                        MeshConfig: the istio ConfigMap's `mesh` key, or the whole\n"
		"                        ConfigMap); its rootNamespace then applies to the -f objects\n"
		"  -q, --quiet           print only errors and warnings, no summary\n"
		"  -h, --help            this help\n"
		"\n"
		"Exit status: 0 all objects valid (warnings allowed), 1 some rejected or no\n"
		"configuration found, 2 usage error.\n");
}

/* The mesh config file: errors (file:line, field) and the warning about
 * fields meshd does not act on, as meshd logs them.  *out: the config
 * (NULL when rejected).  Returns 0 when valid, 1 when rejected. */
static int meshctl_validate_mesh(const char *path, int quiet, struct mesh_config **out)
{
	char err[MESHCFG_ERR_CAP], warn[MESHCFG_ERR_CAP];
	int rc = meshcfg_load_file(path, out, err, sizeof(err), warn);

	if (rc < 0) {
		printf("%s\n", err);
		return 1;
	}
	if (warn[0])
		printf("warning: %s\n", warn);
	if (!quiet)
		printf("%s: mesh config valid\n", path);
	return 0;
}

static int meshctl_validate(int argc, char **argv)
{
	struct meshctl_files files = { 0 };
	struct cfg_store *store = NULL;
	struct cfg_snapshot *snap = NULL;
	size_t n_valid = 0, n_rejected = 0, n_warnings = 0, n_ignored = 0, n_documents = 0, i, k;
	const struct cfg_error *last_err = NULL;
	int quiet = 0, n_paths = 0, rc = MESHCTL_EXIT_USAGE, err, mesh_bad = 0;
	const char *mesh_path = NULL;
	struct mesh_config *mesh = NULL;
	char line[MESHCTL_LINE_MAX];

	for (i = 1; i < (size_t)argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			meshctl_validate_usage(stdout);
			rc = MESHCTL_EXIT_OK;
			goto out;
		} else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) {
			quiet = 1;
		} else if (!strcmp(a, "-f") || !strcmp(a, "--filename")) {
			if (++i == (size_t)argc) {
				fprintf(stderr, "meshctl validate: %s needs a path\n", a);
				goto out;
			}
			if (meshctl_collect(&files, argv[i], 0, 1) < 0)
				goto out;
			n_paths++;
		} else if (!strcmp(a, "--mesh-config") || !strncmp(a, "--mesh-config=", 14)) {
			if (a[13] == '=') {
				mesh_path = a + 14;
			} else if (++i == (size_t)argc) {
				fprintf(stderr, "meshctl validate: %s needs a file\n", a);
				goto out;
			} else {
				mesh_path = argv[i];
			}
		} else if (!strncmp(a, "--filename=", 11) || !strncmp(a, "-f", 2)) {
			const char *p = a[1] == 'f' ? a + 2 : a + 11;
			if (meshctl_collect(&files, p, 0, 1) < 0)
				goto out;
			n_paths++;
		} else {
			fprintf(stderr, "meshctl validate: unknown argument \"%s\"\n", a);
			meshctl_validate_usage(stderr);
			goto out;
		}
	}
	if (mesh_path) {
		mesh_bad = meshctl_validate_mesh(mesh_path, quiet, &mesh);
		if (!n_paths) {
			rc = mesh_bad ? MESHCTL_EXIT_BAD : MESHCTL_EXIT_OK;
			goto out;
		}
	}
	if (!n_paths) {
		fprintf(stderr, "meshctl validate: -f PATH is required (or --mesh-config FILE alone)\n");
		meshctl_validate_usage(stderr);
		goto out;
	}
	if (files.n)
		qsort(files.v, files.n, sizeof(*files.v), meshctl_path_cmp);
	/* every finding is printed below; the store's log of them would repeat it */
	if (!getenv("MESHCTL_LOG_LEVEL"))
		mesh_log_setup("error", "text");
	store = cfg_store_new();
	if (!store) {
		fprintf(stderr, "meshctl: out of memory\n");
		rc = MESHCTL_EXIT_BAD;
		goto out;
	}
	for (i = 0; i < files.n; i++) {
		struct cfg_parse_result res;

		err = strcmp(files.v[i], "-") ? cfg_parse_file(files.v[i], &res) : meshctl_parse_stdin(&res);
		if (err == 0) {
			n_ignored += res.n_ignored;
			n_documents += res.n_documents;
			err = cfg_store_apply_origin(store, strcmp(files.v[i], "-") ? files.v[i] : "stdin", &res);
		}
		cfg_parse_result_cleanup(&res);
		if (err < 0) {
			fprintf(stderr, "meshctl: %s: %s\n", files.v[i], mesh_strerror(err));
			rc = MESHCTL_EXIT_BAD;
			goto out;
		}
	}
	snap = cfg_store_snapshot(store);
	if (!snap) {
		fprintf(stderr, "meshctl: out of memory\n");
		rc = MESHCTL_EXIT_BAD;
		goto out;
	}
	for (k = 0; k < CFG_KIND_COUNT; k++)
		n_valid += snap->n_objects[k];
	for (i = 0; i < snap->n_errors; i++) {
		const struct cfg_error *e = &snap->errors[i];
		cfg_error_format(e, line, sizeof(line));
		printf("%s\n", line);
		if (e->warning) {
			n_warnings++;
			continue;
		}
		/* one rejected object per document, however many errors it has
		 * (warnings of the same object may sit between its errors) */
		if (last_err && e->name && last_err->name && e->kind == last_err->kind &&
		    !strcmp(e->origin, last_err->origin) && !strcmp(e->name, last_err->name) &&
		    !strcmp(e->ns ? e->ns : "", last_err->ns ? last_err->ns : "")) {
			last_err = e;
			continue;
		}
		last_err = e;
		n_rejected++;
	}
	/* what proxyless gRPC clients would not get, as meshd's /debug/configz says it */
	{
		struct model *m = model_build(snap, "cluster.local",
					      mesh && mesh->root_namespace_set ? mesh->root_namespace : "istio-system");

		if (m)
			n_warnings += gen_profile_check(m, &gen_profile_proxyless, meshctl_print_finding, NULL);
		model_unref(m);
	}
	if (!quiet) {
		printf("%zu object%s valid, %zu rejected", n_valid, n_valid == 1 ? "" : "s", n_rejected);
		if (n_warnings)
			printf(", %zu warning%s", n_warnings, n_warnings == 1 ? "" : "s");
		if (n_ignored)
			printf(" (%zu document%s of other kinds skipped)", n_ignored, n_ignored == 1 ? "" : "s");
		printf(" in %zu file%s\n", files.n, files.n == 1 ? "" : "s");
	}
	rc = n_rejected || mesh_bad ? MESHCTL_EXIT_BAD : MESHCTL_EXIT_OK;
	if (!files.n || !n_documents) {
		/* nothing to check is not a success: a wrong path or an empty directory */
		fprintf(stderr, "meshctl validate: no configuration found (%s)\n",
			files.n ? "the files hold no YAML or JSON documents" :
				  "no *.yaml, *.yml or *.json files");
		rc = MESHCTL_EXIT_BAD;
	} else if (!n_valid && !snap->n_errors && n_ignored == n_documents) {
		fprintf(stderr, "meshctl validate: no configuration found: none of the %zu document%s is a kind "
			"meshd reads\n", n_documents, n_documents == 1 ? "" : "s");
		rc = MESHCTL_EXIT_BAD;
	}
out:
	meshcfg_unref(mesh);
	cfg_snapshot_unref(snap);
	cfg_store_free(store);
	for (i = 0; i < files.n; i++)
		free(files.v[i]);
	free(files.v);
	return rc;
}

/* ------------------------------------------------------------- main */

int main(int argc, char **argv)
{
	size_t i;

	mesh_log_setup(getenv("MESHCTL_LOG_LEVEL") ? getenv("MESHCTL_LOG_LEVEL") : "warn", "text");
	if (argc < 2) {
		meshctl_usage(stderr);
		return MESHCTL_EXIT_USAGE;
	}
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
		meshctl_usage(stdout);
		return MESHCTL_EXIT_OK;
	}
	for (i = 0; i < sizeof(meshctl_cmds) / sizeof(meshctl_cmds[0]); i++)
		if (!strcmp(argv[1], meshctl_cmds[i].name))
			return meshctl_cmds[i].run(argc - 1, argv + 1);
	fprintf(stderr, "meshctl: unknown command \"%s\"\n\n", argv[1]);
	meshctl_usage(stderr);
	return MESHCTL_EXIT_USAGE;
}
