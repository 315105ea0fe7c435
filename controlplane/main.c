/*
 * main.c - meshd: the control plane.
 *
 * Wires the modules together: a config source feeds the store and reports
 * each change to the push stage (controlplane/push/), which debounces every
 * source in one window and then, on the config thread (this one), reads the
 * file source, builds the model, runs the generators and publishes the xDS
 * snapshot to the ADS server, which pushes to the proxies whose resources
 * changed.  The debug endpoint reads the stage's latest model and snapshot.
 */
#include "common/duration.h"
#include "common/err.h"
#include "common/log.h"
#include "controlplane/ca/ca.h"
#include "controlplane/ca/ca_auth.h"
#include "controlplane/ca/ca_sds.h"
#include "controlplane/ca/ca_service.h"
#include "controlplane/config/meshcfg.h"
#include "controlplane/config/store.h"
#include "controlplane/debug/debug.h"
#include "controlplane/debounce/debounce.h"
#include "controlplane/metrics/metrics.h"
#include "controlplane/file/mesh_watch.h"
#include "controlplane/file/source.h"
#include "controlplane/inject/inject.h"
#include "controlplane/kube/kube_leader.h"
#include "controlplane/kube/kube_res.h"
#include "controlplane/kube/kube_source.h"
#include "controlplane/kube/kube_tokenreview.h"
#include "controlplane/model/jwks.h"
#include "controlplane/model/model.h"
#include "controlplane/push/push.h"
#include "controlplane/webhook/server.h"
#include "controlplane/webhook/patch.h"
#include "controlplane/webhook/validate.h"
#include "controlplane/xds/server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <unistd.h>

#ifndef MESH_VERSION
#define MESH_VERSION "dev"
#endif

/* meshd_malloc_setup(): blocks from this size on get a mapping of their
 * own; malloc arenas at most */
#define MESHD_MMAP_THRESHOLD (256 * 1024)
#define MESHD_ARENA_MAX 2

struct meshd_opts {
	const char *config_dir;
	const char *mesh_config;
	const char *kubeconfig;
	const char *xds_addr;
	const char *secure_addr;
	const char *http_addr;
	const char *webhook_addr;    /* "" turns the webhook port off */
	const char *webhook_dns;     /* extra serving names, comma separated */
	const char *proxy_image;     /* what /inject puts in istio-proxy and istio-init */
	const char *proxy_pull;      /* their imagePullPolicy (NULL: IfNotPresent, "": none) */
	bool native_sidecars;        /* /inject: istio-proxy as a native sidecar */
	int64_t webhook_cert_ttl;
	/* webhook configurations whose caBundle the leader keeps (webhook/patch.h) */
	const char *webhook_injector_configs, *webhook_validator_configs;
	const char *ca_dir;
	const char *ca_token_file;
	const char *trust_domain;
	const char *domain;
	const char *root_namespace;
	int64_t workload_cert_ttl;
	int64_t max_workload_cert_ttl;
	int64_t debounce_after;
	int64_t debounce_max;
	const char *log_format;
	const char *log_level;
	size_t max_objects_per_source;
	/* gRPC connection bounds (xds_server_config; ms, -1: off) */
	int keepalive_time_ms, keepalive_timeout_ms, max_connection_age_ms;
	int max_connection_idle_ms, handshake_timeout_ms, max_concurrent_streams;
};

struct meshd {
	struct meshd_opts opts;
	struct cfg_store *store;
	struct file_source *files;
	struct kube_source *kube;    /* without --config-dir */
	struct kube_leader *leader;  /* with kube: who writes the root-cert ConfigMaps */
	struct push_stage *push;     /* every source's changes -> debounce -> build -> publish */
	struct xds_server *xds;
	struct debug_server *debug;
	struct webhook_server *webhook; /* --webhook-addr: /inject, /validate */
	struct webhook_patch *webhook_patch; /* with kube and webhooks: caBundle kept by the leader */
	struct ca *ca;
	struct ca_authenticator *ca_auth;
	struct ca_service *ca_svc;
	struct ca_sds *sds;          /* Secrets over ADS (ca_sds.h) */
	struct mesh_watch *mesh_watch; /* with --mesh-config */
	struct mesh_config *mesh;    /* the last good mesh config (Istio's defaults without a file) */
	char *mesh_trust_domain, *mesh_root_ns; /* start-up values the mesh config gave (opts point here) */

	/* the mesh config's defaultConfig.holdApplicationUntilProxyStarts, for
	 * /inject on the webhook threads */
	_Atomic bool inject_hold;
	pthread_mutex_t lock;        /* guards ready for the debug threads */
	bool ready;
	int jwks_fd;                 /* eventfd: the JWKS cache fetched a changed key set (model/jwks.h) */
};

/* On the JWKS fetch thread: wake the config thread, which pushes. */
static void meshd_jwks_changed(void *ctx)
{
	struct meshd *d = ctx;
	uint64_t one = 1;

	if (write(d->jwks_fd, &one, sizeof(one)) < 0)
		log_warn("meshd", "waking the config thread for a new JWKS: %s", strerror(errno));
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: meshd [flags]\n"
		"\n"
		"Config source:\n"
		"  --config-dir DIR            serve every *.yaml|*.yml|*.json under DIR (watched)\n"
		"  --mesh-config FILE          Istio's MeshConfig (the istio ConfigMap's `mesh` key; watched);\n"
		"                              its trustDomain and rootNamespace win over the flags\n"
		"  --kubeconfig PATH           Kubernetes API through a kubeconfig; without --config-dir and\n"
		"                              --kubeconfig: in-cluster (service account)\n"
		"Listeners:\n"
		"  --xds-addr ADDR             plaintext ADS (default 0.0.0.0:15010)\n"
		"  --secure-addr ADDR          ADS + CA over TLS (default 0.0.0.0:15012)\n"
		"  --http-addr ADDR            /ready /version /metrics /debug/* (default 0.0.0.0:15014)\n"
		"  --webhook-addr ADDR         admission webhooks /inject /validate over TLS (default 0.0.0.0:15017;\n"
		"                              \"\" turns it off)\n"
		"  --webhook-dns NAMES         more DNS names (or IP addresses) for its certificate, comma\n"
		"                              separated (it always names istiod.ROOT_NAMESPACE.svc)\n"
		"  --webhook-cert-ttl DUR      its certificate's lifetime, renewed at half (default 24h)\n"
		"  --webhook-injector-configs NAMES   MutatingWebhookConfigurations the leader keeps meshd's\n"
		"                              root in (default " WEBHOOK_PATCH_INJECTOR "; \"\" none)\n"
		"  --webhook-validator-configs NAMES  ValidatingWebhookConfigurations likewise, switched to\n"
		"                              failurePolicy Fail once /validate answers (default\n"
		"                              " WEBHOOK_PATCH_VALIDATORS ")\n"
		"Sidecar injection (/inject):\n"
		"  --proxy-image IMAGE         meshproxy's image (default " INJECT_DEFAULT_IMAGE ")\n"
		"  --proxy-image-pull-policy P its imagePullPolicy: IfNotPresent (default), Always, Never, or \"\"\n"
		"                              for Kubernetes' default (Always for :latest; Istio's\n"
		"                              global.imagePullPolicy)\n"
		"  --native-sidecars           istio-proxy as a native sidecar init container (Kubernetes >= 1.29;\n"
		"                              Istio's ENABLE_NATIVE_SIDECARS)\n"
		"Identity:\n"
		"  --ca-dir DIR                plug-in CA files (ca-cert.pem ca-key.pem root-cert.pem cert-chain.pem);\n"
		"                              without them a self-signed root is generated and kept there\n"
		"  --ca-token-file PATH        CA callers: lines \"TOKEN NAMESPACE SERVICEACCOUNT\" (re-read on change)\n"
		"  --trust-domain NAME         (default cluster.local)\n"
		"  --workload-cert-ttl DUR     (default 24h)\n"
		"  --max-workload-cert-ttl DUR (default 2160h)\n"
		"Limits (README \"Limits\"):\n"
		"  --max-objects-per-source N  objects one config source may hold (default %d); past it the\n"
		"                              source keeps its last good state\n"
		"  --grpc-max-streams N        calls per gRPC connection on 15010/15012 (default %d)\n"
		"  --grpc-handshake-timeout DUR  TCP/TLS/HTTP/2 handshake deadline on 15010/15012 (default 10s)\n"
		"  --grpc-max-connection-idle DUR  close a gRPC connection without calls (default 5m; 0s: never)\n"
		"  --keepaliveInterval DUR     ping a silent gRPC connection (default 30s; 0s: never)\n"
		"  --keepaliveTimeout DUR      close it when the ping is not answered (default 10s)\n"
		"  --keepaliveMaxServerConnectionAge DUR  GOAWAY a gRPC connection this old (default: never)\n"
		"Pushes:\n"
		"  --debounce-after DUR        quiet time before a config change is pushed (default 100ms)\n"
		"  --debounce-max DUR          longest a change waits (default 10s)\n"
		"Other:\n"
		"  --domain NAME               DNS domain of services (default cluster.local)\n"
		"  --root-namespace NS         mesh-wide config namespace (default istio-system)\n"
		"  --log-format text|json      (default text)\n"
		"  --log-level debug|info|warn|error (default info)\n"
		"  --version, --help\n", CFG_MAX_OBJECTS_PER_SOURCE, XDS_MAX_CONCURRENT_STREAMS);
}

static int parse_duration_flag(const char *name, const char *v, int64_t *out)
{
	if (mesh_duration_parse(v, out) < 0) {
		fprintf(stderr, "meshd: --%s: invalid duration \"%s\" (examples: 100ms, 10s, 24h)\n", name, v);
		return -EINVAL;
	}
	return 0;
}

/* A duration flag in milliseconds for gRPC (int); 0 becomes -1 (off)
 * where zero_off, else is refused. */
static int parse_ms_flag(const char *name, const char *v, bool zero_off, int *out)
{
	int64_t ns;

	if (parse_duration_flag(name, v, &ns) < 0)
		return -EINVAL;
	if (ns < 0 || ns / 1000000 > INT_MAX || (ns == 0 && !zero_off) || (ns > 0 && ns < 1000000)) {
		fprintf(stderr, "meshd: --%s: \"%s\" is out of range (1ms to %dms%s)\n", name, v, INT_MAX,
			zero_off ? ", or 0s for never" : "");
		return -EINVAL;
	}
	*out = ns == 0 ? -1 : (int)(ns / 1000000);
	return 0;
}

/* A count flag in [1, max]. */
static int parse_count_flag(const char *name, const char *v, long long max, long long *out)
{
	char *end = NULL;
	long long n;

	errno = 0;
	n = strtoll(v, &end, 10);
	if (errno || !end || end == v || *end || n < 1 || n > max) {
		fprintf(stderr, "meshd: --%s: \"%s\" is not a count from 1 to %lld\n", name, v, max);
		return -EINVAL;
	}
	*out = n;
	return 0;
}

static int parse_opts(int argc, char **argv, struct meshd_opts *o)
{
	enum { O_CONFIG_DIR = 256, O_KUBECONFIG, O_XDS, O_SECURE, O_HTTP, O_CA_DIR, O_TRUST, O_TTL, O_MAX_TTL,
	       O_DEB_AFTER, O_DEB_MAX, O_LOG_FORMAT, O_LOG_LEVEL, O_DOMAIN, O_ROOT_NS, O_VERSION, O_HELP,
	       O_CA_TOKEN_FILE, O_MESH_CONFIG, O_WEBHOOK, O_WEBHOOK_DNS, O_WEBHOOK_TTL,
	       O_WEBHOOK_INJECTOR_CONFIGS, O_WEBHOOK_VALIDATOR_CONFIGS,
	       O_PROXY_IMAGE, O_PROXY_PULL, O_NATIVE_SIDECARS, O_MAX_OBJECTS, O_GRPC_STREAMS, O_GRPC_HANDSHAKE, O_GRPC_IDLE,
	       O_KA_INTERVAL, O_KA_TIMEOUT, O_KA_AGE };
	static const struct option longopts[] = {
		{ "config-dir", required_argument, NULL, O_CONFIG_DIR },
		{ "mesh-config", required_argument, NULL, O_MESH_CONFIG },
		{ "kubeconfig", required_argument, NULL, O_KUBECONFIG },
		{ "xds-addr", required_argument, NULL, O_XDS },
		{ "secure-addr", required_argument, NULL, O_SECURE },
		{ "http-addr", required_argument, NULL, O_HTTP },
		{ "webhook-addr", required_argument, NULL, O_WEBHOOK },
		{ "webhook-dns", required_argument, NULL, O_WEBHOOK_DNS },
		{ "webhook-cert-ttl", required_argument, NULL, O_WEBHOOK_TTL },
		{ "webhook-injector-configs", required_argument, NULL, O_WEBHOOK_INJECTOR_CONFIGS },
		{ "webhook-validator-configs", required_argument, NULL, O_WEBHOOK_VALIDATOR_CONFIGS },
		{ "proxy-image", required_argument, NULL, O_PROXY_IMAGE },
		{ "proxy-image-pull-policy", required_argument, NULL, O_PROXY_PULL },
		{ "native-sidecars", no_argument, NULL, O_NATIVE_SIDECARS },
		{ "ca-dir", required_argument, NULL, O_CA_DIR },
		{ "ca-token-file", required_argument, NULL, O_CA_TOKEN_FILE },
		{ "trust-domain", required_argument, NULL, O_TRUST },
		{ "workload-cert-ttl", required_argument, NULL, O_TTL },
		{ "max-workload-cert-ttl", required_argument, NULL, O_MAX_TTL },
		{ "debounce-after", required_argument, NULL, O_DEB_AFTER },
		{ "debounce-max", required_argument, NULL, O_DEB_MAX },
		{ "log-format", required_argument, NULL, O_LOG_FORMAT },
		{ "log-level", required_argument, NULL, O_LOG_LEVEL },
		{ "domain", required_argument, NULL, O_DOMAIN },
		{ "root-namespace", required_argument, NULL, O_ROOT_NS },
		{ "max-objects-per-source", required_argument, NULL, O_MAX_OBJECTS },
		{ "grpc-max-streams", required_argument, NULL, O_GRPC_STREAMS },
		{ "grpc-handshake-timeout", required_argument, NULL, O_GRPC_HANDSHAKE },
		{ "grpc-max-connection-idle", required_argument, NULL, O_GRPC_IDLE },
		{ "keepaliveInterval", required_argument, NULL, O_KA_INTERVAL },
		{ "keepaliveTimeout", required_argument, NULL, O_KA_TIMEOUT },
		{ "keepaliveMaxServerConnectionAge", required_argument, NULL, O_KA_AGE },
		{ "version", no_argument, NULL, O_VERSION },
		{ "help", no_argument, NULL, O_HELP },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	o->xds_addr = "0.0.0.0:15010";
	o->secure_addr = "0.0.0.0:15012";
	o->http_addr = "0.0.0.0:15014";
	o->webhook_addr = "0.0.0.0:15017";
	o->trust_domain = "cluster.local";
	o->domain = "cluster.local";
	o->root_namespace = "istio-system";
	o->workload_cert_ttl = 24LL * 3600 * 1000000000LL;
	o->max_workload_cert_ttl = 2160LL * 3600 * 1000000000LL;
	o->debounce_after = 100LL * 1000000LL;
	o->debounce_max = 10LL * 1000000000LL;
	o->log_format = "text";
	o->log_level = "info";

	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case O_CONFIG_DIR: o->config_dir = optarg; break;
		case O_MESH_CONFIG: o->mesh_config = optarg; break;
		case O_KUBECONFIG: o->kubeconfig = optarg; break;
		case O_XDS: o->xds_addr = optarg; break;
		case O_SECURE: o->secure_addr = optarg; break;
		case O_HTTP: o->http_addr = optarg; break;
		case O_WEBHOOK: o->webhook_addr = optarg; break;
		case O_WEBHOOK_DNS: o->webhook_dns = optarg; break;
		case O_WEBHOOK_INJECTOR_CONFIGS: o->webhook_injector_configs = optarg; break;
		case O_WEBHOOK_VALIDATOR_CONFIGS: o->webhook_validator_configs = optarg; break;
		case O_PROXY_IMAGE: o->proxy_image = optarg; break;
		case O_PROXY_PULL:
			if (strcmp(optarg, "") != 0 && strcmp(optarg, "IfNotPresent") != 0 &&
			    strcmp(optarg, "Always") != 0 && strcmp(optarg, "Never") != 0) {
				fprintf(stderr, "meshd: --proxy-image-pull-policy: want IfNotPresent, Always, Never or \"\", "
						"not \"%s\"\n", optarg);
				return 2;
			}
			o->proxy_pull = optarg;
			break;
		case O_NATIVE_SIDECARS: o->native_sidecars = true; break;
		case O_WEBHOOK_TTL:
			if (parse_duration_flag("webhook-cert-ttl", optarg, &o->webhook_cert_ttl) < 0)
				return 2;
			break;
		case O_MAX_OBJECTS: {
			long long n;
			if (parse_count_flag("max-objects-per-source", optarg, 100000000LL, &n) < 0)
				return 2;
			o->max_objects_per_source = (size_t)n;
			break;
		}
		case O_GRPC_STREAMS: {
			long long n;
			if (parse_count_flag("grpc-max-streams", optarg, INT_MAX, &n) < 0)
				return 2;
			o->max_concurrent_streams = (int)n;
			break;
		}
		case O_GRPC_HANDSHAKE:
			if (parse_ms_flag("grpc-handshake-timeout", optarg, false, &o->handshake_timeout_ms) < 0)
				return 2;
			break;
		case O_GRPC_IDLE:
			if (parse_ms_flag("grpc-max-connection-idle", optarg, true, &o->max_connection_idle_ms) < 0)
				return 2;
			break;
		case O_KA_INTERVAL:
			if (parse_ms_flag("keepaliveInterval", optarg, true, &o->keepalive_time_ms) < 0)
				return 2;
			break;
		case O_KA_TIMEOUT:
			if (parse_ms_flag("keepaliveTimeout", optarg, false, &o->keepalive_timeout_ms) < 0)
				return 2;
			break;
		case O_KA_AGE:
			if (parse_ms_flag("keepaliveMaxServerConnectionAge", optarg, true, &o->max_connection_age_ms) < 0)
				return 2;
			break;
		case O_CA_DIR: o->ca_dir = optarg; break;
		case O_CA_TOKEN_FILE: o->ca_token_file = optarg; break;
		case O_TRUST: o->trust_domain = optarg; break;
		case O_DOMAIN: o->domain = optarg; break;
		case O_ROOT_NS: o->root_namespace = optarg; break;
		case O_TTL:
			if (parse_duration_flag("workload-cert-ttl", optarg, &o->workload_cert_ttl) < 0)
				return 2;
			break;
		case O_MAX_TTL:
			if (parse_duration_flag("max-workload-cert-ttl", optarg, &o->max_workload_cert_ttl) < 0)
				return 2;
			break;
		case O_DEB_AFTER:
			if (parse_duration_flag("debounce-after", optarg, &o->debounce_after) < 0)
				return 2;
			break;
		case O_DEB_MAX:
			if (parse_duration_flag("debounce-max", optarg, &o->debounce_max) < 0)
				return 2;
			break;
		case O_LOG_FORMAT: o->log_format = optarg; break;
		case O_LOG_LEVEL: o->log_level = optarg; break;
		case O_VERSION:
			printf("meshd %s\n", MESH_VERSION);
			return 1;
		case O_HELP:
			usage(stdout);
			return 1;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "meshd: unexpected argument \"%s\"\n", argv[optind]);
		usage(stderr);
		return 2;
	}
	if (mesh_log_setup(o->log_level, o->log_format) < 0) {
		fprintf(stderr, "meshd: --log-level must be debug|info|warn|error and --log-format text|json\n");
		return 2;
	}
	return 0;
}

static struct cfg_snapshot *cb_config(void *ctx)
{
	struct meshd *d = ctx;

	return push_stage_config(d->push);
}

/* credentialName Secrets for SDS (ca_sds_config.lookup): the Secret
 * ns/name of the config meshd serves, its TLS material copied. */
static int cb_sds_lookup(void *ctx, const char *ns, const char *name, struct ca_sds_tls *out)
{
	struct meshd *d = ctx;
	struct cfg_snapshot *snap = push_stage_config(d->push);
	const struct cfg_k8s_secret *s = NULL;
	size_t lo = 0, hi = snap ? snap->n_objects[CFG_K8S_SECRET] : 0;
	int rc = -ENOENT;

	/* sorted by (namespace, name) */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const struct cfg_object *o = snap->objects[CFG_K8S_SECRET][mid];
		int c = strcmp(o->ns, ns);

		if (c == 0)
			c = strcmp(o->name, name);
		if (c == 0) {
			s = &o->spec.secret;
			break;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (!s)
		goto out;
	rc = -ENOMEM;
	if ((s->cert && !(out->cert = strdup(s->cert))) || (s->key && !(out->key = strdup(s->key))) ||
	    (s->cacert && !(out->cacert = strdup(s->cacert)))) {
		ca_sds_tls_cleanup(out);
		goto out;
	}
	rc = 0;
out:
	cfg_snapshot_unref(snap);
	return rc;
}

static struct model *cb_model(void *ctx)
{
	struct meshd *d = ctx;

	return push_stage_model(d->push);
}

static bool cb_ready(void *ctx)
{
	struct meshd *d = ctx;
	bool r;

	pthread_mutex_lock(&d->lock);
	r = d->ready;
	pthread_mutex_unlock(&d->lock);
	return r;
}

/* The host of "HOST:PORT" or "[V6]:PORT" into out ("" when absent). */
static void meshd_addr_host(const char *addr, char *out, size_t cap)
{
	const char *end;
	size_t n;

	if (addr[0] == '[') {
		addr++;
		end = strchr(addr, ']');
	} else {
		end = strrchr(addr, ':');
	}
	n = end ? (size_t)(end - addr) : strlen(addr);
	if (n >= cap)
		n = 0;
	memcpy(out, addr, n);
	out[n] = '\0';
}

/* The CA, who may call it, and the certificate of the TLS port. */
static int meshd_start_ca(struct meshd *d)
{
	struct ca_config cc = {
		.dir = d->opts.ca_dir,
		.trust_domain = d->opts.trust_domain,
		.default_ttl_ns = d->opts.workload_cert_ttl,
		.max_ttl_ns = d->opts.max_workload_cert_ttl,
	};
	char err[CA_ERR_CAP], host[256], svc_short[300], svc_full[600];
	const char *dns[5], *ips[3];
	size_t ndns = 0, nips = 0;
	struct in6_addr a6;
	int rc;

	rc = ca_new(&cc, &d->ca, err, sizeof(err));
	if (rc < 0) {
		log_error("meshd", "CA: %s", err);
		return rc;
	}
	if (d->opts.ca_token_file) {
		rc = ca_auth_file_new(d->opts.ca_token_file, &d->ca_auth, err, sizeof(err));
		if (rc < 0) {
			log_error("meshd", "--ca-token-file: %s", err);
			return rc;
		}
	} else if (d->kube) {
		rc = kube_tokenreview_authenticator_new(kube_source_client(d->kube), &d->ca_auth);
		if (rc < 0)
			return rc;
		log_info("meshd", "CA callers are authenticated by Kubernetes TokenReview");
	} else {
		rc = ca_auth_none_new("meshd has no way to authenticate callers: start it with --ca-token-file",
				      &d->ca_auth);
		if (rc < 0)
			return rc;
		log_warn("meshd", "no --ca-token-file: every CreateCertificate call will be refused");
	}
	snprintf(svc_short, sizeof(svc_short), "istiod.%s.svc", d->opts.root_namespace);
	snprintf(svc_full, sizeof(svc_full), "istiod.%s.svc.%s", d->opts.root_namespace, d->opts.domain);
	dns[ndns++] = svc_short;
	dns[ndns++] = svc_full;
	dns[ndns++] = "istiod";
	dns[ndns++] = "localhost";
	ips[nips++] = "127.0.0.1";
	meshd_addr_host(d->opts.secure_addr, host, sizeof(host));
	if (inet_pton(AF_INET, host, &a6) == 1 || inet_pton(AF_INET6, host, &a6) == 1) {
		if (strcmp(host, "0.0.0.0") != 0 && strcmp(host, "::") != 0 && strcmp(host, "127.0.0.1") != 0)
			ips[nips++] = host;
	} else if (host[0] && strcmp(host, "localhost") != 0) {
		dns[ndns++] = host;
	}
	{
		struct ca_service_config sc = {
			.ca = d->ca,
			.auth = d->ca_auth,
			.serving_dns = dns,
			.n_serving_dns = ndns,
			.serving_ips = ips,
			.n_serving_ips = nips,
		};
		rc = ca_service_new(&sc, &d->ca_svc);
		if (rc < 0) {
			log_error("meshd", "CA service: %s", mesh_strerror(rc));
			return rc;
		}
	}
	{
		/* SDS: "default" and "ROOTCA" to authenticated nodes */
		struct ca_sds_config sc = { .ca = d->ca, .auth = d->ca_auth, .lookup = cb_sds_lookup, .lookup_ctx = d };

		rc = ca_sds_new(&sc, &d->sds);
		if (rc < 0)
			log_error("meshd", "SDS provider: %s", mesh_strerror(rc));
	}
	return rc;
}

/*
 * The mesh config: read at start-up (a bad file stops meshd, as istiod
 * stops on a bad --meshConfig: there is no last good one yet) and on every
 * change of the file (a bad one is logged with file:line and field,
 * counted in meshd_config_rejected_total, and the last good one stays).
 * Its trustDomain (Istio's precedence: istiod takes the trust domain from
 * MeshConfig) and rootNamespace win over the flags.  Returns 0 or < 0.
 */
static int meshd_mesh_take(struct meshd *d, int rc, struct mesh_config *mc, const char *err, const char *warn,
			   bool startup)
{
	if (rc < 0) {
		log_error("meshd", "mesh config rejected%s: %s", startup ? "" : " (the last good one stays)", err);
		meshcfg_unref(mc);
		metrics_config_rejected(1);
		return rc;
	}
	if (warn[0])
		log_warn("meshd", "%s", warn);
	if (!startup && d->mesh && mc->trust_domain_set && strcmp(mc->trust_domain, d->opts.trust_domain) != 0)
		log_warn("meshd", "mesh config trustDomain %s: the CA and SPIFFE identities keep %s until meshd restarts",
			 mc->trust_domain, d->opts.trust_domain);
	if (startup) {
		/* the flags are the defaults; the mesh config, when it says, wins */
		if (mc->trust_domain_set && !(d->opts.trust_domain = d->mesh_trust_domain = strdup(mc->trust_domain)))
			rc = -ENOMEM;
		if (mc->root_namespace_set && !(d->opts.root_namespace = d->mesh_root_ns = strdup(mc->root_namespace)))
			rc = -ENOMEM;
		if (rc < 0) {
			meshcfg_unref(mc);
			return rc;
		}
	}
	if (!startup && d->mesh && d->mesh->hash == mc->hash) {
		meshcfg_unref(mc);
		return 0;
	}
	meshcfg_unref(d->mesh);
	d->mesh = mc;
	d->inject_hold = mc->hold_application_until_proxy_starts;
	log_info("meshd", "mesh config %s: outboundTrafficPolicy %s, rootNamespace %s, trustDomain %s",
		 startup ? "loaded" : "changed", mc->outbound == MESHCFG_REGISTRY_ONLY ? "REGISTRY_ONLY" : "ALLOW_ANY",
		 mc->root_namespace_set ? mc->root_namespace : d->opts.root_namespace, d->opts.trust_domain);
	if (d->push)
		(void)push_stage_set_mesh(d->push, mc, debounce_now());
	return 0;
}

static int meshd_mesh_load(struct meshd *d, bool startup)
{
	char err[MESHCFG_ERR_CAP], warn[MESHCFG_ERR_CAP];
	struct mesh_config *mc = NULL;
	int rc;

	if (!d->opts.mesh_config) {
		d->mesh = meshcfg_defaults();
		return d->mesh ? 0 : -ENOMEM;
	}
	rc = meshcfg_load_file(d->opts.mesh_config, &mc, err, sizeof(err), warn);
	return meshd_mesh_take(d, rc, mc, err, warn, startup);
}

/* Kubernetes without --mesh-config: the `mesh` key of ConfigMap
 * ROOT_NS/istio, as istiod watches it; text NULL (no ConfigMap): Istio's
 * defaults.  Errors keep the last good one. */
static void meshd_mesh_kube(struct meshd *d, char *text)
{
	char err[MESHCFG_ERR_CAP], warn[MESHCFG_ERR_CAP] = "", source[300];
	struct mesh_config *mc = NULL;
	int rc;

	snprintf(source, sizeof(source), "ConfigMap %s/%s key %s", d->opts.root_namespace, KUBE_MESH_CONFIGMAP,
		 KUBE_MESH_CONFIGMAP_KEY);
	if (text) {
		rc = meshcfg_parse(text, strlen(text), source, &mc, err, sizeof(err), warn);
	} else {
		mc = meshcfg_defaults();
		rc = mc ? 0 : -ENOMEM;
		snprintf(err, sizeof(err), "%s", mesh_strerror(rc));
	}
	free(text);
	(void)meshd_mesh_take(d, rc, mc, err, warn, false);
}

/* Kubernetes changes: applied to the store at once, pushed debounced, and
 * nothing served before every resource has been listed once. */
static void meshd_kube_tick(struct meshd *d, bool readable)
{
	int n = readable ? kube_source_handle(d->kube) : 0;
	char *mesh_text;

	if (kube_source_mesh_config(d->kube, &mesh_text))
		meshd_mesh_kube(d, mesh_text); /* schedules its own push */
	/* before the first push (which takes the whole store) nothing is debounced */
	if (n > 0 && d->ready)
		push_stage_changed(d->push, PUSH_CHANGE_STORE, debounce_now());
	if (d->leader && kube_source_namespaces_changed(d->kube))
		kube_leader_kick(d->leader);
	if (!d->ready) {
		if (!kube_source_synced(d->kube) || push_stage_push(d->push) < 0)
			return;
		pthread_mutex_lock(&d->lock);
		d->ready = true;
		pthread_mutex_unlock(&d->lock);
		/* a stream that asked for credentialName Secrets before this first
		 * push was answered from no config: answer it again */
		ca_sds_refresh(d->sds);
		log_info("meshd", "Kubernetes resources synced; ready");
		return;
	}
	if (readable && n == 0)
		push_stage_refresh_errors(d->push);
}

static int meshd_loop(struct meshd *d, int sfd)
{
	for (;;) {
		struct pollfd pfd[6] = {
			{ .fd = sfd, .events = POLLIN },
			{ .fd = d->files ? file_source_fd(d->files) : -1, .events = POLLIN },
			{ .fd = d->kube ? kube_source_fd(d->kube) : -1, .events = POLLIN },
			{ .fd = push_stage_fd(d->push), .events = POLLIN },
			{ .fd = mesh_watch_fd(d->mesh_watch), .events = POLLIN },
			{ .fd = d->jwks_fd, .events = POLLIN },
		};
		int n = poll(pfd, 6, push_stage_timeout_ms(d->push, debounce_now()));


		if (n < 0 && errno != EINTR)
			return -errno;
		if (pfd[0].revents & POLLIN) {
			struct signalfd_siginfo si;
			if (read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
				log_info("meshd", "signal %u: shutting down", si.ssi_signo);
				return 0;
			}
		}
		/* per-proxy requests from the xDS thread: built now, not debounced */
		if (pfd[3].revents & POLLIN)
			(void)push_stage_handle(d->push);
		if (d->kube)
			meshd_kube_tick(d, pfd[2].revents & POLLIN);
		/* inotify only says something moved: the stage reads the files
		 * once the window is quiet */
		if (d->files && (pfd[1].revents & POLLIN) && file_source_handle(d->files) > 0)
			push_stage_changed(d->push, PUSH_CHANGE_FILES, debounce_now());
		/* only complete writes wake this: read at once, pushed debounced */
		if ((pfd[4].revents & POLLIN) && mesh_watch_handle(d->mesh_watch) > 0)
			(void)meshd_mesh_load(d, false);
		/* a jwksUri's key set changed: every sidecar's jwt_authn inlines it */
		if (pfd[5].revents & POLLIN) {
			uint64_t v;
			if (read(d->jwks_fd, &v, sizeof(v)) == (ssize_t)sizeof(v))
				push_stage_changed(d->push, PUSH_CHANGE_STORE, debounce_now());
		}
		/* failures logged; last good kept.  A new config may hold
		 * changed credentialName Secrets: SDS answers again. */
		if (d->ready && push_stage_tick(d->push, debounce_now()) > 0)
			ca_sds_refresh(d->sds);
	}
}

/* A label of Namespace ns in the served config (inject_ns_label_fn; ctx
 * is the snapshot, held by the caller). */
static const char *cb_ns_label(void *ctx, const char *ns, const char *key)
{
	struct cfg_snapshot *snap = ctx;
	size_t i, k;

	for (i = 0; snap && i < snap->n_objects[CFG_K8S_NAMESPACE]; i++) {
		const struct cfg_object *o = snap->objects[CFG_K8S_NAMESPACE][i];

		if (strcmp(o->name, ns) != 0)
			continue;
		for (k = 0; k < o->labels.n; k++)
			if (strcmp(o->labels.v[k].key, key) == 0)
				return o->labels.v[k].value;
		return NULL;
	}
	return NULL;
}

/* /inject (a webhook thread): the AdmissionReview answered from the
 * config being served, counted as istiod counts it. */
static int cb_inject(void *ud, const char *body, size_t len, struct mesh_buf *out)
{
	static const enum metrics_injection counter[] = {
		[INJECT_INJECTED] = METRICS_INJECTION_SUCCESS,
		[INJECT_SKIPPED] = METRICS_INJECTION_SKIP,
		[INJECT_FAILED] = METRICS_INJECTION_FAILURE,
	};
	struct meshd *d = ud;
	struct cfg_snapshot *snap = push_stage_config(d->push);
	struct inject_config ic = {
		.image = d->opts.proxy_image,
		.image_pull_policy = d->opts.proxy_pull,
		.root_namespace = d->opts.root_namespace,
		.domain = d->opts.domain,
		.trust_domain = d->opts.trust_domain,
		.native_sidecar = d->opts.native_sidecars,
		.hold_application = d->inject_hold,
		.ns_label = cb_ns_label,
		.ns_ctx = snap,
	};
	enum inject_outcome oc = INJECT_FAILED;
	int rc;

	metrics_injection(METRICS_INJECTION_REQUEST);
	rc = inject_review(&ic, body, len, out, &oc);
	metrics_injection(counter[oc]);
	cfg_snapshot_unref(snap);
	return rc;
}

/*
 * The admission webhook port (--webhook-addr): its certificate from the CA
 * names istiod.ROOT_NS.svc (the Service the webhook configurations call,
 * as istiod's) and --webhook-dns's names.  Returns 0 or < 0.
 */
static int meshd_start_webhook(struct meshd *d)
{
	char svc[300], svc_full[600], extra[1024];
	const char *dns[16], *ips[16]; /* server.c keeps 16 of each */
	struct webhook_server_config wc = { .addr = d->opts.webhook_addr, .ca = d->ca, .dns = dns, .ips = ips };
	char *save = NULL, *tok;
	int rc;

	if (!d->opts.webhook_addr[0])
		return 0;
	snprintf(svc, sizeof(svc), "istiod.%s.svc", d->opts.root_namespace);
	snprintf(svc_full, sizeof(svc_full), "istiod.%s.svc.%s", d->opts.root_namespace, d->opts.domain);
	dns[wc.ndns++] = svc;
	dns[wc.ndns++] = svc_full;
	snprintf(extra, sizeof(extra), "%s", d->opts.webhook_dns ? d->opts.webhook_dns : "");
	for (tok = strtok_r(extra, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		struct in6_addr a;

		if (!*tok)
			continue;
		/* an address is an IP SAN (a webhook clientConfig.url by address) */
		if (inet_pton(AF_INET, tok, &a) == 1 || inet_pton(AF_INET6, tok, &a) == 1) {
			if (wc.nips < sizeof(ips) / sizeof(ips[0]))
				ips[wc.nips++] = tok;
		} else if (wc.ndns < sizeof(dns) / sizeof(dns[0])) {
			dns[wc.ndns++] = tok;
		}
	}
	wc.cert_ttl_seconds = d->opts.webhook_cert_ttl / 1000000000LL;
	rc = webhook_server_start(&wc, &d->webhook);
	if (rc < 0) {
		log_error("meshd", "cannot serve the admission webhooks on %s: %s", d->opts.webhook_addr,
			  mesh_strerror(rc));
		return rc;
	}
	return webhook_server_route(d->webhook, "/inject", cb_inject, d);
}

/*
 * glibc malloc, set before any thread starts.  Its mmap threshold rises to
 * the largest block freed (up to 32 MB), so after a burst of multi-megabyte
 * blocks (gRPC core's read buffers while 2,000 sidecars ACK an endpoint
 * change, each ACK naming every cluster; a request's unpack arena) the next
 * ones come from the heap and stay there once freed: RSS kept what a
 * burst peaked at.  A fixed threshold keeps such blocks in mappings of
 * their own, returned when freed.  Fewer arenas than glibc's 8 per core:
 * meshd's threads (config, xDS, gRPC's pollers and executors) then
 * fragment fewer heaps.  MALLOC_* in the environment still win (glibc
 * reads them at start; mallopt would override, so we skip what is set).
 */
static void meshd_malloc_setup(void)
{
	if (!getenv("MALLOC_MMAP_THRESHOLD_"))
		(void)mallopt(M_MMAP_THRESHOLD, MESHD_MMAP_THRESHOLD);
	if (!getenv("MALLOC_ARENA_MAX"))
		(void)mallopt(M_ARENA_MAX, MESHD_ARENA_MAX);
}

int main(int argc, char **argv)
{
	struct meshd d;
	sigset_t mask;
	int rc, sfd = -1, status = 1;

	memset(&d, 0, sizeof(d));
	d.jwks_fd = -1;
	meshd_malloc_setup();
	pthread_mutex_init(&d.lock, NULL);
	rc = parse_opts(argc, argv, &d.opts);
	if (rc)
		return rc == 1 ? 0 : 2;


	sigemptyset(&mask);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &mask, NULL); /* before any thread starts */
	signal(SIGPIPE, SIG_IGN);
	sfd = signalfd(-1, &mask, SFD_CLOEXEC);
	if (sfd < 0) {
		log_error("meshd", "signalfd: %s", strerror(errno));
		goto out;
	}

	log_info("meshd", "meshd %s starting", MESH_VERSION);
	metrics_set_build("pilot", MESH_VERSION); /* istio_build, as istiod's discovery */
	(void)metrics_add_section(webhook_validate_metrics); /* galley_validation_* */
	if (meshd_mesh_load(&d, true) < 0)
		goto out;
	if (d.opts.mesh_config) {
		rc = mesh_watch_new(d.opts.mesh_config, &d.mesh_watch);
		if (rc < 0) {
			log_error("meshd", "--mesh-config %s: cannot watch: %s", d.opts.mesh_config, mesh_strerror(rc));
			goto out;
		}
	}
	d.store = cfg_store_new();
	if (!d.store)
		goto out;
	if (!d.opts.config_dir) {
		struct kube_source_config kc = { .store = d.store, .kubeconfig = d.opts.kubeconfig,
						  .max_objects = d.opts.max_objects_per_source };

		/* Istio's precedence: a mesh config file, else the ConfigMap */
		if (!d.opts.mesh_config)
			kc.mesh_ns = d.opts.root_namespace;
		rc = kube_source_new(&kc, &d.kube);
		if (rc < 0) {
			log_error("meshd", "Kubernetes API (%s): %s", d.opts.kubeconfig ? d.opts.kubeconfig : "in-cluster",
				  mesh_strerror(rc));
			goto out;
		}
	} else {
		struct file_source_config fc = {
			.dir = d.opts.config_dir,
			.store = d.store,
			.max_objects = d.opts.max_objects_per_source,
		};
		rc = file_source_new(&fc, &d.files);
		if (rc < 0) {
			log_error("meshd", "--config-dir %s: %s", d.opts.config_dir, mesh_strerror(rc));
			goto out;
		}
	}
	{
		struct push_stage_config pc = {
			.store = d.store,
			.files = d.files,
			.domain = d.opts.domain,
			.root_namespace = d.opts.root_namespace,
			.trust_domain = d.opts.trust_domain,
			.debounce_after = d.opts.debounce_after,
			.debounce_max = d.opts.debounce_max,
		};
		const char *verify = getenv("MESHD_GEN_CACHE_VERIFY");

		/* a debug mode (README, debugging): a full rebuild per push */
		pc.gen_cache_verify = verify && verify[0] && strcmp(verify, "0") != 0;
		if (pc.gen_cache_verify)
			log_warn("meshd", "MESHD_GEN_CACHE_VERIFY: every push rebuilds what the caches reuse and "
					  "compares (a debug mode, slow)");
		rc = push_stage_new(&pc, &d.push);
		if (rc < 0)
			goto out;
		(void)push_stage_set_mesh(d.push, d.mesh, debounce_now());
	}
	/* jwksUri key sets: fetched off the config thread, pushed when they change */
	d.jwks_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	rc = d.jwks_fd < 0 ? -errno : jwks_resolver_start(meshd_jwks_changed, &d);
	if (rc < 0) {
		log_error("meshd", "starting the JWKS fetcher: %s", mesh_strerror(rc));
		goto out;
	}
	rc = meshd_start_ca(&d);
	if (rc < 0)
		goto out;
	if (d.kube) {
		struct kube_leader_config lc = {
			.client = kube_source_client(d.kube),
			.ns = d.opts.root_namespace,
			.root_pem = ca_root_pem(d.ca),
		};
		rc = kube_leader_start(&lc, &d.leader);
		if (rc < 0) {
			log_error("meshd", "leader election: %s", mesh_strerror(rc));
			goto out;
		}
	}
	{
		struct xds_server_unary unary;
		grpc_server_credentials *creds;
		struct xds_server_config xc = {
			.addr = d.opts.xds_addr,
			.secure_addr = d.opts.secure_addr,
			.keepalive_time_ms = d.opts.keepalive_time_ms,
			.keepalive_timeout_ms = d.opts.keepalive_timeout_ms,
			.max_connection_age_ms = d.opts.max_connection_age_ms,
			.max_connection_idle_ms = d.opts.max_connection_idle_ms,
			.handshake_timeout_ms = d.opts.handshake_timeout_ms,
			.max_concurrent_streams = d.opts.max_concurrent_streams,
		};

		ca_service_unary(d.ca_svc, &unary);
		xc.unary = &unary;
		/* per-proxy resources: asked by the xDS thread, built by the stage */
		xc.want = push_stage_want;
		xc.want_ctx = d.push;
		/* a sidecar's (and a router's) whole config is built per workload by the stage */
		xc.whole_flavours = 1u << XDS_FLAVOUR_SIDECAR | 1u << XDS_FLAVOUR_ROUTER;
		/* Secrets per stream, from the SDS provider */
		xc.secret = ca_sds_want;
		xc.secret_ctx = d.sds;
		creds = ca_service_server_credentials(d.ca_svc);
		if (!creds) {
			log_error("meshd", "cannot set up TLS for %s", d.opts.secure_addr);
			goto out;
		}
		xc.secure_creds = creds;
		rc = xds_server_start(&xc, &d.xds);
		grpc_server_credentials_release(creds);
		push_stage_set_server(d.push, d.xds);
		ca_sds_set_server(d.sds, d.xds);
		if (rc < 0) {
			log_error("meshd", "cannot serve xDS on %s and %s: %s", d.opts.xds_addr, d.opts.secure_addr,
				  mesh_strerror(rc));
			goto out;
		}
		log_info("meshd", "xDS (ADS) on %s, ADS and CA over TLS on %s", d.opts.xds_addr, d.opts.secure_addr);
	}
	{
		struct debug_server_config dc = {
			.addr = d.opts.http_addr,
			.version = MESH_VERSION,
			.xds = d.xds,
			.ctx = &d,
			.config_snapshot = cb_config,
			.model = cb_model,
			.ready = cb_ready,
		};
		rc = debug_server_start(&dc, &d.debug);
		if (rc < 0) {
			log_error("meshd", "cannot serve HTTP on %s: %s", d.opts.http_addr, mesh_strerror(rc));
			goto out;
		}
		log_info("meshd", "debug HTTP on %s", d.opts.http_addr);
	}
	rc = meshd_start_webhook(&d);
	/* the validating webhook at istiod's path and its /validate/ alias */
	if (rc == 0 && d.webhook)
		rc = webhook_server_route(d.webhook, "/validate", webhook_validate_handle, NULL);
	if (rc == 0 && d.webhook)
		rc = webhook_server_route(d.webhook, "/validate/", webhook_validate_handle, NULL);
	if (rc < 0)
		goto out;
	if (d.kube && d.webhook) {
		/* the leader keeps the webhook configurations pointing at this root */
		struct webhook_patch_config wc = {
			.client = kube_source_client(d.kube),
			.leader = d.leader,
			.root_pem = ca_root_pem(d.ca),
			.mutating = d.opts.webhook_injector_configs,
			.validating = d.opts.webhook_validator_configs,
			.probe_ns = d.opts.root_namespace,
		};
		rc = webhook_patch_start(&wc, &d.webhook_patch);
		if (rc < 0) {
			log_error("meshd", "webhook configurations: %s", mesh_strerror(rc));
			goto out;
		}
	}

	if (d.files) {
		rc = file_source_sync(d.files);
		if (rc < 0) {
			log_error("meshd", "loading %s: %s", d.opts.config_dir, mesh_strerror(rc));
			goto out;
		}
		rc = push_stage_push(d.push);
		if (rc < 0)
			goto out;
		pthread_mutex_lock(&d.lock);
		d.ready = true;
		pthread_mutex_unlock(&d.lock);
		/* the xDS ports are open before the first load: a sidecar that
		 * reconnected at once (a meshd restart) asked for its credentialName
		 * Secrets before there was any config to read them from */
		ca_sds_refresh(d.sds);
		log_info("meshd", "ready");
	} else {
		log_info("meshd", "waiting for the Kubernetes resources to be listed before serving");
	}

	rc = meshd_loop(&d, sfd);
	status = rc < 0 ? 1 : 0;
out:
	jwks_resolver_stop();
	webhook_patch_stop(d.webhook_patch); /* before the leader and the client it borrows */
	webhook_server_stop(d.webhook);
	debug_server_stop(d.debug);
	xds_server_stop(d.xds);
	push_stage_free(d.push);   /* after the server: nothing publishes to it */
	ca_sds_free(d.sds);        /* after the server: nothing asks it */
	/* after the server: its calls are bound to the CA service's queue */
	ca_service_free(d.ca_svc);
	ca_auth_free(d.ca_auth);
	kube_leader_stop(d.leader);  /* releases the lease; before the client goes */
	ca_free(d.ca);
	file_source_free(d.files);
	kube_source_free(d.kube);
	cfg_store_free(d.store);
	mesh_watch_free(d.mesh_watch);
	meshcfg_unref(d.mesh);
	free(d.mesh_trust_domain);
	free(d.mesh_root_ns);
	if (sfd >= 0)
		close(sfd);
	if (d.jwks_fd >= 0)
		close(d.jwks_fd);
	pthread_mutex_destroy(&d.lock);
	return status;
}
