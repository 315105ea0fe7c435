/*
 * authz.c - "meshctl authz check": would this request reach the workload?
 *
 * The configuration is read exactly as meshd reads it: a directory through
 * the file source (the same walk, parser, validator and store), a single
 * file through the parser and the store, then the model with the given
 * root namespace.  The workload's AuthorizationPolicies are compiled by
 * rbac_compile() into the RBAC filters meshd would send, and rbac_eval()
 * judges the request over those very messages.  The answer names the
 * policy that decided:
 *   ALLOW (policy ns[foo]-policy[allow-get]-rule[0])
 *   DENY (no ALLOW policy matched)
 * Rejected objects make the answer unreliable, so they are a configuration
 * error (exit 2) unless --ignore-rejected asks to judge what meshd serves.
 *
 * An HTTP request to a workload with RequestAuthentications first meets
 * the jwt_authn filter meshd would send (gen/authn.c), run by meshproxy's
 * own code (dataplane/jwt.c): a token (--jwt, or one in --header /
 * the path's query where the jwtRules say) is verified against the rules'
 * inline JWKS; a bad one is "DENY (401: Envoy's message)" before any
 * policy, a verified one is what request.auth.* and requestPrincipals see.
 */
#include "controlplane/cli/authz.h"

#include "controlplane/config/config.h"
#include "controlplane/config/store.h"
#include "controlplane/file/source.h"
#include "controlplane/model/model.h"
#include "common/xds/pbjson.h"
#include "controlplane/gen/authn.h"
#include "controlplane/gen/rbac.h"
#include "controlplane/model/jwks.h"
#include "dataplane/jwt.h"
#include "common/xds/pathnorm.h"
#include "common/xds/rbac_eval.h"

#include "common/arena.h"
#include "common/buf.h"
#include "common/err.h"
#include "common/json.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>

/* What the RBAC compiler notes (a condition the filter cannot match, a
 * rule dropped) is what meshd logs: print it, so the answer below is read
 * with it. */
static void authz_note(void *ctx, enum gen_note_level level, const char *scope, const char *msg)
{
	(void)ctx;
	fprintf(stderr, "meshctl authz: %s: %s: %s\n", level == GEN_NOTE_ERROR ? "error" : "warning", scope, msg);
}

static const struct gen_notes authz_notes = { authz_note, NULL, NULL };

#define AUTHZ_EXIT_ALLOW 0
#define AUTHZ_EXIT_DENY 1
#define AUTHZ_EXIT_USAGE 2
#define AUTHZ_MAX_LABELS 64
#define AUTHZ_MAX_HEADERS RBAC_EVAL_MAX_HEADERS
#define AUTHZ_PRINCIPAL_MAX 1024
#define AUTHZ_ARENA_MAX (64u << 20)
#define AUTHZ_OUT_MAX (16u << 20)    /* JSON output, filters included */
#define AUTHZ_LINE_MAX 2048
#define AUTHZ_SPIFFE "spiffe://"
/* The answer for a path the sidecar's connection manager refuses (400). */
#define AUTHZ_REASON_PATH "400: the path cannot be normalized"

struct authz_opts {
	const char *config;
	const char *ns;
	const char *labels_arg;
	const char *principal;
	bool no_peer;
	const char *source_ip, *remote_ip, *destination_ip;
	long port;
	const char *method, *path, *host, *sni;
	const char *root_namespace, *domain;
	bool json, verbose, ignore_rejected;
	bool tcp;                    /* judge a connection to a TCP port (network RBAC) */
	const char *path_norm;       /* meshConfig.pathNormalization mode (BASE) */
	struct rbac_header headers[AUTHZ_MAX_HEADERS];
	size_t n_headers;
	char *header_copies[AUTHZ_MAX_HEADERS];
	struct cfg_kv labels[AUTHZ_MAX_LABELS];
	size_t n_labels;
	char *labels_copy;
	const char *jwt_claims;      /* --jwt-claims: the verified JWT's payload (JSON object), or NULL */
	bool jwt;                    /* --jwt given: an "authorization: Bearer" header was added */
};

static void authz_usage(FILE *f)
{
	fprintf(f,
		"usage: meshctl authz check -f CONFIG --namespace NS [--labels k=v,...] (--path PATH | --tcp)\n"
		"                           [--principal TD/ns/NS/sa/SA | --no-peer] [--source-ip IP]\n"
		"                           [--remote-ip IP] [--destination-ip IP] [--port N] [--method M]\n"
		"                           [--host HOST] [--sni NAME] [--header NAME=VALUE]...\n"
		"                           [--jwt TOKEN | --jwt-claims JSON]\n"
		"                           [--json] [-v]\n"
		"                           [--path-normalization NONE|BASE|MERGE_SLASHES|DECODE_AND_MERGE_SLASHES]\n"
		"\n"
		"Would a request to the workload be allowed by its AuthorizationPolicies?\n"
		"CONFIG (a directory, or one file) is loaded and validated as meshd does; the\n"
		"policies that apply to the workload are compiled into the RBAC filters meshd\n"
		"serves and the request is evaluated over them.\n"
		"\n"
		"  -f, --filename CONFIG     configuration directory or file\n"
		"  -n, --namespace NS        the workload's namespace\n"
		"  -l, --labels k=v,...      the workload's labels (for policy selectors)\n"
		"      --principal ID        peer identity from mTLS, e.g. cluster.local/ns/a/sa/b\n"
		"      --no-peer             plaintext peer, no authenticated identity (default)\n"
		"      --source-ip IP        downstream address (ipBlocks, source.ip)\n"
		"      --remote-ip IP        original client, x-forwarded-for (remoteIpBlocks)\n"
		"      --destination-ip IP   address the request arrived on\n"
		"      --port N              destination port\n"
		"      --method M            HTTP method (default POST, as every gRPC call)\n"
		"      --path PATH           request path, e.g. /pkg.Service/Method\n"
		"      --host HOST           :authority\n"
		"      --sni NAME            TLS server name\n"
		"      --tcp                 a connection to a TCP port: the network RBAC filter meshd\n"
		"                            builds for TCP ports judges it (HTTP attributes never match)\n"
		"      --path-normalization MODE  meshConfig.pathNormalization the sidecar applies before\n"
		"                            RBAC (default BASE); a path it refuses is answered 400\n"
		"  -H, --header NAME=VALUE   request header (repeatable)\n"
		"      --jwt-claims JSON     the request's verified JWT payload, e.g. '{\"iss\":\"i\",\"sub\":\"s\",\"aud\":\"a\"}'\n"
		"                            (requestPrincipals \"iss/sub\", request.auth.*), taken as verified\n"
		"      --jwt TOKEN           the request carries \"Authorization: Bearer TOKEN\": the workload's\n"
		"                            RequestAuthentications verify it as the sidecar does (signature\n"
		"                            against the rules' inline jwks; a jwksUri is fetched by meshd,\n"
		"                            not here: its tokens fail on Istio's fallback key, with a note).\n"
		"                            A token in another header (fromHeaders) or parameter (fromParams)\n"
		"                            is read from --header / --path the same way\n"
		"      --root-namespace NS   mesh-wide policy namespace (default istio-system)\n"
		"      --trust-domain TD     trust domain (default cluster.local)\n"
		"      --ignore-rejected     judge what meshd serves even if some objects are rejected\n"
		"      --json                machine-readable answer\n"
		"  -v, --verbose             also show the applicable policies and the RBAC filters\n"
		"  -h, --help                this help\n"
		"\n"
		"Prints \"ALLOW (policy ns[NS]-policy[NAME]-rule[i])\", \"ALLOW (no policy applies)\",\n"
		"\"DENY (policy ...)\" or \"DENY (no ALLOW policy matched)\"; a token the\n"
		"RequestAuthentication refuses: \"DENY (401: Jwt verification fails)\" and the like.\n"
		"Exit status: 0 allowed, 1 denied, 2 usage or configuration error.\n");
}

static bool authz_is_ip(const char *s)
{
	unsigned char b[16];

	return inet_pton(AF_INET, s, b) == 1 || inet_pton(AF_INET6, s, b) == 1;
}

/* "k=v,k2=v2" -> opts->labels (pointers into a private copy). */
static int authz_parse_labels(struct authz_opts *o, const char *arg)
{
	char *p, *next;

	free(o->labels_copy);
	o->n_labels = 0;
	o->labels_copy = strdup(arg);
	if (!o->labels_copy)
		return -ENOMEM;
	for (p = o->labels_copy; p && *p; p = next) {
		char *eq;

		next = strchr(p, ',');
		if (next)
			*next++ = '\0';
		if (!*p)
			continue;
		eq = strchr(p, '=');
		if (!eq || eq == p || o->n_labels == AUTHZ_MAX_LABELS)
			return -EINVAL;
		*eq = '\0';
		o->labels[o->n_labels].key = p;
		o->labels[o->n_labels].value = eq + 1;
		o->n_labels++;
	}
	return 0;
}

static int authz_add_header(struct authz_opts *o, const char *arg)
{
	const char *eq = strchr(arg, '=');
	char *copy;

	if (!eq || eq == arg || o->n_headers == AUTHZ_MAX_HEADERS)
		return -EINVAL;
	copy = strdup(arg);
	if (!copy)
		return -ENOMEM;
	copy[eq - arg] = '\0';
	o->header_copies[o->n_headers] = copy;
	o->headers[o->n_headers].name = copy;
	o->headers[o->n_headers].value = copy + (eq - arg) + 1;
	o->n_headers++;
	return 0;
}

/* --jwt TOKEN: the header the sidecar reads a token from by default. */
static int authz_add_bearer(struct authz_opts *o, const char *token)
{
	struct mesh_buf b;
	int rc;

	mesh_buf_init(&b, JWT_MAX_TOKEN + 64);
	mesh_buf_printf(&b, "authorization=Bearer %s", token);
	rc = b.err ? b.err : authz_add_header(o, b.data);
	mesh_buf_cleanup(&b);
	if (rc == 0)
		o->jwt = true;
	return rc;
}

static void authz_opts_cleanup(struct authz_opts *o)
{
	size_t i;

	for (i = 0; i < o->n_headers; i++)
		free(o->header_copies[i]);
	free(o->labels_copy);
}

/* Match "--name VALUE", "--name=VALUE" or a short "-x VALUE". */
static const char *authz_optval(int argc, char **argv, int *i, const char *lng, const char *shrt, bool *missing)
{
	const char *a = argv[*i];
	size_t n = strlen(lng);

	if (!strcmp(a, lng) || (shrt && !strcmp(a, shrt))) {
		if (*i + 1 >= argc) {
			*missing = true;
			return NULL;
		}
		return argv[++*i];
	}
	if (!strncmp(a, lng, n) && a[n] == '=')
		return a + n + 1;
	return NULL;
}

/* Returns 0, 1 for --help, or -EINVAL (message printed). */
static int authz_parse(struct authz_opts *o, int argc, char **argv)
{
	int i;

	for (i = 0; i < argc; i++) {
		const char *a = argv[i], *v;
		bool missing = false;
		char *end;

		if (!strcmp(a, "-h") || !strcmp(a, "--help"))
			return 1;
		if (!strcmp(a, "--tcp")) {
			o->tcp = true;
		} else if ((v = authz_optval(argc, argv, &i, "--path-normalization", NULL, &missing))) {
			o->path_norm = v;
		} else if (!strcmp(a, "--no-peer")) {
			o->no_peer = true;
		} else if (!strcmp(a, "--json")) {
			o->json = true;
		} else if (!strcmp(a, "-v") || !strcmp(a, "--verbose")) {
			o->verbose = true;
		} else if (!strcmp(a, "--ignore-rejected")) {
			o->ignore_rejected = true;
		} else if ((v = authz_optval(argc, argv, &i, "--filename", "-f", &missing))) {
			o->config = v;
		} else if ((v = authz_optval(argc, argv, &i, "--namespace", "-n", &missing))) {
			o->ns = v;
		} else if ((v = authz_optval(argc, argv, &i, "--labels", "-l", &missing))) {
			if (authz_parse_labels(o, v) < 0) {
				fprintf(stderr, "meshctl authz: --labels wants k=v[,k=v...] (at most %d), got \"%s\"\n",
					AUTHZ_MAX_LABELS, v);
				return -EINVAL;
			}
		} else if ((v = authz_optval(argc, argv, &i, "--principal", NULL, &missing))) {
			o->principal = v;
		} else if ((v = authz_optval(argc, argv, &i, "--source-ip", NULL, &missing))) {
			o->source_ip = v;
		} else if ((v = authz_optval(argc, argv, &i, "--remote-ip", NULL, &missing))) {
			o->remote_ip = v;
		} else if ((v = authz_optval(argc, argv, &i, "--destination-ip", NULL, &missing))) {
			o->destination_ip = v;
		} else if ((v = authz_optval(argc, argv, &i, "--port", NULL, &missing))) {
			o->port = strtol(v, &end, 10);
			if (!*v || *end || o->port < 1 || o->port > 65535) {
				fprintf(stderr, "meshctl authz: --port \"%s\" is not a port number (1..65535)\n", v);
				return -EINVAL;
			}
		} else if ((v = authz_optval(argc, argv, &i, "--method", NULL, &missing))) {
			o->method = v;
		} else if ((v = authz_optval(argc, argv, &i, "--path", NULL, &missing))) {
			o->path = v;
		} else if ((v = authz_optval(argc, argv, &i, "--host", NULL, &missing))) {
			o->host = v;
		} else if ((v = authz_optval(argc, argv, &i, "--sni", NULL, &missing))) {
			o->sni = v;
		} else if ((v = authz_optval(argc, argv, &i, "--header", "-H", &missing))) {
			if (authz_add_header(o, v) < 0) {
				fprintf(stderr, "meshctl authz: --header wants NAME=VALUE (at most %d), got \"%s\"\n",
					AUTHZ_MAX_HEADERS, v);
				return -EINVAL;
			}
		} else if ((v = authz_optval(argc, argv, &i, "--jwt-claims", NULL, &missing))) {
			o->jwt_claims = v;
		} else if ((v = authz_optval(argc, argv, &i, "--jwt", NULL, &missing))) {
			if (authz_add_bearer(o, v) < 0) {
				fprintf(stderr, "meshctl authz: --jwt: too many headers or out of memory\n");
				return -EINVAL;
			}
		} else if ((v = authz_optval(argc, argv, &i, "--root-namespace", NULL, &missing))) {
			o->root_namespace = v;
		} else if ((v = authz_optval(argc, argv, &i, "--trust-domain", NULL, &missing))) {
			o->domain = v;
		} else {
			if (missing)
				fprintf(stderr, "meshctl authz: %s needs a value\n", a);
			else
				fprintf(stderr, "meshctl authz: unknown argument \"%s\"\n", a);
			return -EINVAL;
		}
	}
	if (!o->config || !o->ns || (!o->path && !o->tcp)) {
		fprintf(stderr, "meshctl authz: -f CONFIG, --namespace and --path (or --tcp) are required\n");
		return -EINVAL;
	}
	if (o->principal && o->no_peer) {
		fprintf(stderr, "meshctl authz: --principal and --no-peer exclude each other\n");
		return -EINVAL;
	}
	if (o->principal && (!o->principal[0] || strlen(o->principal) + sizeof(AUTHZ_SPIFFE) > AUTHZ_PRINCIPAL_MAX)) {
		fprintf(stderr, "meshctl authz: --principal must be 1..%zu bytes\n",
			AUTHZ_PRINCIPAL_MAX - sizeof(AUTHZ_SPIFFE));
		return -EINVAL;
	}
	if ((o->source_ip && !authz_is_ip(o->source_ip)) || (o->remote_ip && !authz_is_ip(o->remote_ip)) ||
	    (o->destination_ip && !authz_is_ip(o->destination_ip))) {
		fprintf(stderr, "meshctl authz: --source-ip, --remote-ip and --destination-ip take an IP address\n");
		return -EINVAL;
	}
	if (o->path_norm) {
		struct pathnorm_opts pn;

		if (pathnorm_mode(o->path_norm, &pn) < 0) {
			fprintf(stderr, "meshctl authz: --path-normalization: unknown mode %s\n", o->path_norm);
			return -EINVAL;
		}
	}
	if (o->path && o->path[0] != '/') {
		fprintf(stderr, "meshctl authz: --path must start with \"/\"\n");
		return -EINVAL;
	}
	return 0;
}

/* Load CONFIG into store the way meshd does.  Returns 0 or < 0 (printed). */
static int authz_load(const char *config, struct cfg_store *store)
{
	struct stat st;
	int rc;

	if (stat(config, &st) < 0) {
		rc = -errno;
		fprintf(stderr, "meshctl authz: %s: %s\n", config, strerror(errno));
		return rc;
	}
	if (S_ISDIR(st.st_mode)) {
		struct file_source_config fc = { .dir = config, .store = store };
		struct file_source *fs = NULL;

		rc = file_source_new(&fc, &fs);
		if (rc == 0)
			rc = file_source_sync(fs);
		file_source_free(fs);
	} else {
		struct cfg_parse_result res;

		rc = cfg_parse_file(config, &res);
		if (rc == 0)
			rc = cfg_store_apply_origin(store, config, &res);
		cfg_parse_result_cleanup(&res);
	}
	if (rc < 0)
		fprintf(stderr, "meshctl authz: %s: %s\n", config, mesh_strerror(rc));
	return rc < 0 ? rc : 0;
}

/* Print rejected objects; returns how many errors (not warnings) there are. */
static size_t authz_report_rejected(const struct cfg_snapshot *snap)
{
	char line[AUTHZ_LINE_MAX];
	size_t i, n = 0;

	for (i = 0; i < snap->n_errors; i++) {
		if (snap->errors[i].warning)
			continue;
		cfg_error_format(&snap->errors[i], line, sizeof(line));
		fprintf(stderr, "%s\n", line);
		n++;
	}
	return n;
}

static void authz_json_filter(struct mesh_buf *b, const char *key, const rbac_filter *f)
{
	int rc;

	mesh_buf_printf(b, ",\"%s\":", key);
	if (!f) {
		mesh_buf_puts(b, "null");
		return;
	}
	/* a filter that cannot be rendered fails the whole output, which the
	 * caller reports through b->err */
	rc = pbjson_render(&f->base, b);
	if (rc < 0 && !b->err)
		b->err = rc;
}

/* jwt_req's header(): the first --header of that name (and --jwt's). */
static const char *authz_jwt_header(void *ctx, const char *name, size_t name_len, size_t *value_len)
{
	const struct authz_opts *o = ctx;
	size_t i;

	for (i = 0; i < o->n_headers; i++)
		if (strlen(o->headers[i].name) == name_len && !strncasecmp(o->headers[i].name, name, name_len)) {
			*value_len = strlen(o->headers[i].value);
			return o->headers[i].value;
		}
	return NULL;
}

/*
 * The workload's jwt_authn filter, as meshd builds it and meshproxy runs
 * it, over the request (path as normalized, headers).  Returns 0 with
 * *res (NULL when no RequestAuthentication applies; else owned by the
 * caller), or a negative code with a message printed.
 */
static int authz_jwt(const struct authz_opts *o, const struct model *m, const struct cfg_labels *labels,
		     const char *path, struct arena *a, struct jwt_result **res)
{
	authn_jwt_config *msg = NULL;
	struct jwt_config *jc = NULL;
	struct jwt_req r;
	char err[256] = "";
	size_t i;
	int rc;

	*res = NULL;
	rc = authn_jwt_config_build(m, o->ns, labels, a, &msg);
	if (rc < 0) {
		fprintf(stderr, "meshctl authz: building the jwt_authn filter: %s\n", mesh_strerror(rc));
		goto out;
	}
	if (!msg) {
		if (o->jwt)
			fprintf(stderr, "meshctl authz: note: no RequestAuthentication applies to the workload: the "
				"token is not read (no request.auth.* for RBAC)\n");
		goto out;
	}
	/* meshd fetches jwksUri (and OpenID discovery) itself and inlines the
	 * keys; offline there is only Istio's fallback key */
	for (i = 0; o->jwt && i < msg->n_providers; i++) {
		const Envoy__Extensions__Filters__Http__JwtAuthn__V3__JwtProvider *p = msg->providers[i]->value;

		if (p && p->local_jwks && p->local_jwks->inline_string && !strcmp(p->local_jwks->inline_string, JWKS_FAKE))
			fprintf(stderr, "meshctl authz: note: issuer %s has no inline jwks (jwksUri or OpenID "
				"discovery, fetched by meshd, not here): its tokens fail signature checks here\n",
				p->issuer ? p->issuer : "(any)");
	}
	rc = jwt_config_new(msg, &jc, err, sizeof(err));
	if (rc < 0) {
		fprintf(stderr, "meshctl authz: the jwt_authn filter does not compile: %s\n", err[0] ? err : mesh_strerror(rc));
		goto out;
	}
	memset(&r, 0, sizeof(r));
	r.method = o->method;
	r.method_len = strlen(o->method);
	r.path = path;
	r.path_len = strlen(path);
	r.authority = o->host;
	r.authority_len = o->host ? strlen(o->host) : 0;
	r.header = authz_jwt_header;
	r.ctx = (void *)o;
	rc = jwt_filter_run(jc, &r, (int64_t)time(NULL), res);
	if (rc < 0)
		fprintf(stderr, "meshctl authz: the jwt_authn filter: %s\n", mesh_strerror(rc));
out:
	jwt_config_free(jc);
	return rc;
}

static void authz_print(const struct authz_opts *o, const struct rbac_decision *d, const struct cfg_object **sel,
			size_t n_sel, const rbac_filter *deny, const rbac_filter *allow, const rbac_filter *audit,
			struct mesh_buf *b)
{
	char line[RBAC_EVAL_TEXT_MAX];
	size_t i;

	if (!o->json) {
		if (o->verbose) {
			mesh_buf_printf(b, "workload: namespace %s", o->ns);
			for (i = 0; i < o->n_labels; i++)
				mesh_buf_printf(b, "%s%s=%s", i ? "," : ", labels ", o->labels[i].key, o->labels[i].value);
			mesh_buf_puts(b, "\npolicies:");
			if (!n_sel)
				mesh_buf_puts(b, " none");
			for (i = 0; i < n_sel; i++)
				mesh_buf_printf(b, " %s/%s", sel[i]->ns, sel[i]->name);
			mesh_buf_puts(b, "\n");
			if (d->audit_policy)
				mesh_buf_printf(b, "audited by policy %s\n", d->audit_policy);
		}
		mesh_buf_printf(b, "%s\n", rbac_decision_format(d, line, sizeof(line)));
		return;
	}
	mesh_buf_printf(b, "{\"decision\":\"%s\",\"policy\":", d->allowed ? "ALLOW" : "DENY");
	json_put_string(b, d->policy);
	mesh_buf_puts(b, ",\"reason\":");
	json_put_string(b, d->reason);
	mesh_buf_puts(b, ",\"audit_policy\":");
	json_put_string(b, d->audit_policy);
	mesh_buf_puts(b, ",\"text\":");
	json_put_string(b, rbac_decision_format(d, line, sizeof(line)));
	mesh_buf_puts(b, ",\"workload\":{\"namespace\":");
	json_put_string(b, o->ns);
	mesh_buf_puts(b, ",\"labels\":{");
	for (i = 0; i < o->n_labels; i++) {
		if (i)
			mesh_buf_putc(b, ',');
		json_put_string(b, o->labels[i].key);
		mesh_buf_putc(b, ':');
		json_put_string(b, o->labels[i].value);
	}
	mesh_buf_puts(b, "}},\"policies\":[");
	for (i = 0; i < n_sel; i++) {
		if (i)
			mesh_buf_putc(b, ',');
		mesh_buf_puts(b, "{\"namespace\":");
		json_put_string(b, sel[i]->ns);
		mesh_buf_puts(b, ",\"name\":");
		json_put_string(b, sel[i]->name);
		mesh_buf_putc(b, '}');
	}
	mesh_buf_putc(b, ']');
	if (o->verbose) {
		authz_json_filter(b, "deny", deny);
		authz_json_filter(b, "allow", allow);
		authz_json_filter(b, "audit", audit);
	}
	mesh_buf_puts(b, "}\n");
}

static int authz_check(int argc, char **argv)
{
	struct authz_opts o;
	struct cfg_store *store = NULL;
	struct cfg_snapshot *snap = NULL;
	struct model *m = NULL;
	struct arena *a = NULL;
	const struct cfg_object **sel = NULL;
	rbac_filter *deny = NULL, *allow = NULL, *audit = NULL;
	struct rbac_eval *ev = NULL;
	const rbac_filter *chain[3];
	struct cfg_labels labels;
	struct rbac_request req;
	struct rbac_decision d;
	struct mesh_buf out;
	char principal[AUTHZ_PRINCIPAL_MAX], err[RBAC_EVAL_TEXT_MAX], normpath[PATHNORM_MAX], jwt_principal[2048];
	struct json_value *claims = NULL;
	struct jwt_result *jres = NULL;
	char jwt_reason[128];
	struct rbac_jwt jwt;
	struct rbac_opts ropts;
	size_t n_sel = 0, rejected;
	int rc = AUTHZ_EXIT_USAGE, r;

	memset(&o, 0, sizeof(o));
	memset(&d, 0, sizeof(d));
	mesh_buf_init(&out, AUTHZ_OUT_MAX);
	o.method = "POST";
	o.root_namespace = "istio-system";
	o.domain = "cluster.local";
	r = authz_parse(&o, argc, argv);
	if (r == 1) {
		authz_usage(stdout);
		rc = AUTHZ_EXIT_ALLOW;
		goto out;
	}
	if (r < 0) {
		authz_usage(stderr);
		goto out;
	}
	store = cfg_store_new();
	a = arena_new(AUTHZ_ARENA_MAX);
	if (!store || !a) {
		fprintf(stderr, "meshctl authz: out of memory\n");
		goto out;
	}
	if (authz_load(o.config, store) < 0)
		goto out;
	snap = cfg_store_snapshot(store);
	if (!snap) {
		fprintf(stderr, "meshctl authz: out of memory\n");
		goto out;
	}
	rejected = authz_report_rejected(snap);
	if (rejected && !o.ignore_rejected) {
		fprintf(stderr, "meshctl authz: %zu configuration error%s; fix them or pass --ignore-rejected to "
			"judge what meshd serves\n", rejected, rejected == 1 ? "" : "s");
		goto out;
	}
	m = model_build(snap, o.domain, o.root_namespace);
	if (!m) {
		fprintf(stderr, "meshctl authz: out of memory\n");
		goto out;
	}
	labels.v = o.labels;
	labels.n = o.n_labels;
	n_sel = rbac_select(m, o.ns, &labels, NULL, 0);
	if (n_sel > RBAC_MAX_POLICIES) {
		fprintf(stderr, "meshctl authz: more than %d policies apply\n", RBAC_MAX_POLICIES);
		goto out;
	}
	if (n_sel) {
		sel = arena_calloc(a, n_sel, sizeof(*sel));
		if (!sel) {
			fprintf(stderr, "meshctl authz: out of memory\n");
			goto out;
		}
		rbac_select(m, o.ns, &labels, sel, n_sel);
	}
	/* what the sidecar runs: dry-run policies as shadow rules; a TCP port's
	 * network filters compiled for TCP */
	ropts.tcp = o.tcp;
	ropts.shadow = true;
	r = rbac_compile_policies_opts(sel, n_sel, &authz_notes, &ropts, a, &deny, &allow, &audit);
	if (r < 0) {
		fprintf(stderr, "meshctl authz: compiling the policies: %s\n", mesh_strerror(r));
		goto out;
	}
	/* the chain rbac_compile() implies, as a proxy runs it */
	chain[0] = audit;
	chain[1] = deny;
	chain[2] = allow;
	memset(&req, 0, sizeof(req));
	if (o.principal) {
		snprintf(principal, sizeof(principal), "%s%s",
			 strncmp(o.principal, AUTHZ_SPIFFE, strlen(AUTHZ_SPIFFE)) ? AUTHZ_SPIFFE : "", o.principal);
		req.principal = principal;
	}
	req.source_ip = o.source_ip;
	req.remote_ip = o.remote_ip;
	req.destination_ip = o.destination_ip;
	req.destination_port = (uint32_t)o.port;
	req.sni = o.sni;
	if (!o.tcp) {
		/* the HCM normalizes the path before RBAC sees it (pathnorm.h) */
		struct pathnorm_opts pn;
		size_t plen;

		if (pathnorm_mode(o.path_norm ? o.path_norm : "BASE", &pn) < 0)
			goto out; /* checked in authz_parse() */
		r = pathnorm_apply(&pn, o.path, strlen(o.path), normpath, sizeof(normpath), &plen);
		if (r < 0) {
			/* the proxy answers 400 before RBAC runs */
			d.allowed = false;
			d.reason = AUTHZ_REASON_PATH;
			authz_print(&o, &d, sel, n_sel, deny, allow, audit, &out);
			fputs(out.data ? out.data : "", stdout);
			rc = AUTHZ_EXIT_DENY;
			goto out;
		}
		req.method = o.method;
		req.path = r == 1 ? normpath : o.path;
		req.host = o.host;
		req.headers = o.headers;
		req.n_headers = o.n_headers;
	}
	if (o.jwt && o.jwt_claims) {
		fprintf(stderr, "meshctl authz: --jwt and --jwt-claims exclude each other\n");
		authz_usage(stderr);
		goto out;
	}
	if (!o.tcp && !o.jwt_claims) {
		/* the jwt_authn filter runs first (before RBAC, after the path's
		 * normalization): a token it refuses is answered 401 (403 for
		 * the audience) and no policy is consulted */
		if (authz_jwt(&o, m, &labels, req.path, a, &jres) < 0)
			goto out;
		if (jres && jres->status) {
			snprintf(jwt_reason, sizeof(jwt_reason), "%d: %s", jres->status, jres->message);
			d.allowed = false;
			d.reason = jwt_reason;
			authz_print(&o, &d, sel, n_sel, deny, allow, audit, &out);
			fputs(out.data ? out.data : "", stdout);
			rc = AUTHZ_EXIT_DENY;
			goto out;
		}
		req.jwt = jwt_result_rbac(jres);
	}
	if (o.jwt_claims) {
		/* what meshproxy's jwt_authn filter hands RBAC for a verified
		 * token (dataplane/jwt.c): principal "iss/sub" and the claims */
		const char *iss, *sub;

		if (json_parse(o.jwt_claims, strlen(o.jwt_claims), &claims) < 0 || claims->type != JSON_OBJECT) {
			fprintf(stderr, "meshctl authz: --jwt-claims wants a JSON object\n");
			goto out;
		}
		iss = json_get_str(claims, "iss");
		sub = json_get_str(claims, "sub");
		snprintf(jwt_principal, sizeof(jwt_principal), "%s/%s", iss ? iss : "", sub ? sub : "");
		jwt.principal = jwt_principal;
		jwt.payload = claims;
		req.jwt = &jwt;
	}
	r = rbac_eval_compile(chain, 3, &ev, err, sizeof(err));
	if (r < 0) {
		fprintf(stderr, "meshctl authz: the compiled policies cannot be evaluated: %s\n",
			err[0] ? err : mesh_strerror(r));
		goto out;
	}
	r = rbac_eval_check(ev, &req, &d, err, sizeof(err));
	if (r < 0) {
		fprintf(stderr, "meshctl authz: evaluation failed: %s\n", err[0] ? err : mesh_strerror(r));
		goto out;
	}
	authz_print(&o, &d, sel, n_sel, deny, allow, audit, &out);
	if (out.err) {
		fprintf(stderr, "meshctl authz: output: %s\n", mesh_strerror(out.err));
		goto out;
	}
	fputs(out.data ? out.data : "", stdout);
	rc = d.allowed ? AUTHZ_EXIT_ALLOW : AUTHZ_EXIT_DENY;
out:
	jwt_result_free(jres);
	json_free(claims);
	rbac_eval_free(ev);
	mesh_buf_cleanup(&out);
	arena_free(a);
	model_unref(m);
	cfg_snapshot_unref(snap);
	cfg_store_free(store);
	authz_opts_cleanup(&o);
	return rc;
}

int authz_main(int argc, char **argv)
{
	if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
		authz_usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? AUTHZ_EXIT_USAGE : AUTHZ_EXIT_ALLOW;
	}
	if (!strcmp(argv[1], "check"))
		return authz_check(argc - 2, argv + 2);
	fprintf(stderr, "meshctl authz: unknown subcommand \"%s\" (want: check)\n", argv[1]);
	authz_usage(stderr);
	return AUTHZ_EXIT_USAGE;
}
