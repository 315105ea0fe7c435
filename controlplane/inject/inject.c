/*
 * inject.c - sidecar injection for meshproxy (see inject.h).
 *
 * Istio renders a Go template into a Pod, merges it with the user's Pod
 * and diffs the two into a JSONPatch.  Here the pieces are written
 * directly as JSON text: each member the injection changes (labels,
 * annotations, initContainers, containers, volumes) is built whole from the
 * original's bytes (json_value keeps every value's byte range, so the
 * user's containers, volumes and annotations are copied verbatim) plus what
 * is added, and replaced by one "add" operation (RFC 6902: add on an
 * existing member replaces it).  The result is the same Pod Istio's patch
 * makes, written in fewer operations.
 *
 * Pure: no I/O, no globals; the namespace's labels come through
 * inject_config.ns_label.
 */
#include "controlplane/inject/inject.h"

#include "common/arena.h"
#include "common/err.h"
#include "common/json.h"
#include "controlplane/config/yamljson.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define INJECT_ARENA_MAX ((size_t)64 << 20)  /* parse tree of one input */
#define INJECT_MAX_LIST 250                  /* CIDRs or ports in one annotation (-d adds 3) */
#define INJECT_MAX_LIST_BYTES 4000           /* bytes of one (-d adds 18; meshproxy takes 4095) */

/* Annotations and labels Istio reads (pkg/kube/inject, api/annotation). */
#define A_STATUS "sidecar.istio.io/status"
#define A_INJECT "sidecar.istio.io/inject"
#define A_PROXY_CPU "sidecar.istio.io/proxyCPU"
#define A_PROXY_MEM "sidecar.istio.io/proxyMemory"
#define A_PROXY_CPU_LIMIT "sidecar.istio.io/proxyCPULimit"
#define A_PROXY_MEM_LIMIT "sidecar.istio.io/proxyMemoryLimit"
#define A_INTERCEPTION "sidecar.istio.io/interceptionMode"
#define A_PROXY_IMAGE "sidecar.istio.io/proxyImage"
#define A_REWRITE_PROBES "sidecar.istio.io/rewriteAppHTTPProbers"
#define A_INCLUDE_OUT_CIDR "traffic.sidecar.istio.io/includeOutboundIPRanges"
#define A_EXCLUDE_OUT_CIDR "traffic.sidecar.istio.io/excludeOutboundIPRanges"
#define A_INCLUDE_IN_PORTS "traffic.sidecar.istio.io/includeInboundPorts"
#define A_EXCLUDE_IN_PORTS "traffic.sidecar.istio.io/excludeInboundPorts"
#define A_EXCLUDE_OUT_PORTS "traffic.sidecar.istio.io/excludeOutboundPorts"
#define A_INCLUDE_OUT_PORTS "traffic.sidecar.istio.io/includeOutboundPorts"
#define A_EXCLUDE_IFACES "traffic.sidecar.istio.io/excludeInterfaces"
#define A_KUBEVIRT_IFACES "traffic.sidecar.istio.io/kubevirtInterfaces"
#define A_REROUTE_IFACES "istio.io/reroute-virtual-interfaces"
#define A_PROXY_CONFIG "proxy.istio.io/config"
#define A_LOG_LEVEL "sidecar.istio.io/logLevel"
#define A_STATUS_PORT "status.sidecar.istio.io/port"
#define A_READY_DELAY "readiness.status.sidecar.istio.io/initialDelaySeconds"
#define A_READY_PERIOD "readiness.status.sidecar.istio.io/periodSeconds"
#define A_READY_FAILURES "readiness.status.sidecar.istio.io/failureThreshold"
#define A_PROM_SCRAPE "prometheus.io/scrape"
#define A_PROM_PORT "prometheus.io/port"
#define A_PROM_PATH "prometheus.io/path"
#define A_DEFAULT_CONTAINER "kubectl.kubernetes.io/default-container"
#define A_DEFAULT_LOGS_CONTAINER "kubectl.kubernetes.io/default-logs-container"
#define L_INJECTION "istio-injection"
#define L_REV "istio.io/rev"
#define L_TLS_MODE "security.istio.io/tlsMode"
#define L_CANON_NAME "service.istio.io/canonical-name"
#define L_CANON_REV "service.istio.io/canonical-revision"
#define L_WORKLOAD_NAME "service.istio.io/workload-name"

/* Istio's defaults (manifests/charts/istio-control/istio-discovery/values.yaml) */
#define PROXY_CPU "100m"
#define PROXY_MEM "128Mi"
#define PROXY_CPU_LIMIT "2000m"
#define PROXY_MEM_LIMIT "1024Mi"

/* Everything one injection reads from the Pod. */
struct inj {
	const struct inject_config *cfg;
	const char *text;            /* the input the json_values index */
	const struct json_value *pod, *meta, *spec, *labels, *annotations;
	const struct json_value *containers, *init_containers, *volumes;
	const char *ns;
	char workload[256];          /* Istio's DeploymentMeta.Name ("" when it has none) */
	char owner[640];             /* ISTIO_META_OWNER, "" when it has none */
	const char *mode;            /* REDIRECT | TPROXY | NONE */
	const char *image;
	bool hold;
	bool rewrite_probes;
	long status_port;            /* the agent's: status.sidecar.istio.io/port, else 15020; 0: none */
	char status_str[8];          /* status_port in decimal */
	unsigned long long ready[3]; /* istio-proxy's readinessProbe: delay, period, failures */
	bool prom;                   /* prometheus merge (Istio's applyPrometheusMerge) */
	const char *proxy_config;    /* annotation text, or NULL */
	char *proxy_config_json;     /* its JSON (malloc) */
	struct mesh_buf probers;     /* ISTIO_KUBE_APP_PROBERS object being built */
	size_t nprobers;
	char *reason;
	size_t cap;
};

/* ---------------------------------------------------------------- helpers */

static void inj__why(char *reason, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void inj__why(char *reason, size_t cap, const char *fmt, ...)
{
	va_list ap;

	if (!cap)
		return;
	va_start(ap, fmt);
	vsnprintf(reason, cap, fmt, ap);
	va_end(ap);
}

/* A value of the input copied compact (white space outside strings
 * dropped): what the user wrote, without the request's indentation. */
static void inj__raw(struct mesh_buf *b, const char *text, const struct json_value *v)
{
	const char *p = text + v->start, *end = text + v->end, *run = p;
	bool in_str = false;

	for (; p < end; p++) {
		if (in_str) {
			if (*p == '\\')
				p++;
			else if (*p == '"')
				in_str = false;
			continue;
		}
		if (*p == '"') {
			in_str = true;
		} else if (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t') {
			mesh_buf_append(b, run, (size_t)(p - run));
			run = p + 1;
		}
	}
	mesh_buf_append(b, run, (size_t)(end - run));
}

static const char *inj__member_str(const struct json_value *obj, const char *key)
{
	return obj ? json_get_str(obj, key) : NULL;
}

/* "y"/"yes"/"true"/"on" → 1, "n"/"no"/"false"/"off" → 0, else -1 (Istio
 * lower-cases the value). */
static int inj__truthy(const char *v)
{
	static const char *const yes[] = { "y", "yes", "true", "on" }, *const no[] = { "n", "no", "false", "off" };
	size_t i;

	if (!v)
		return -1;
	for (i = 0; i < 4; i++) {
		if (strcasecmp(v, yes[i]) == 0)
			return 1;
		if (strcasecmp(v, no[i]) == 0)
			return 0;
	}
	return -1;
}

/* Go's strconv.ParseBool: 1 / 0, or -1 for anything else. */
static int inj__parse_bool(const char *v)
{
	static const char *const t[] = { "1", "t", "T", "TRUE", "true", "True" };
	static const char *const f[] = { "0", "f", "F", "FALSE", "false", "False" };
	size_t i;

	for (i = 0; v && i < 6; i++) {
		if (strcmp(v, t[i]) == 0)
			return 1;
		if (strcmp(v, f[i]) == 0)
			return 0;
	}
	return -1;
}

static const char *inj__ns_label(const struct inject_config *cfg, const char *ns, const char *key)
{
	return cfg->ns_label ? cfg->ns_label(cfg->ns_ctx, ns, key) : NULL;
}

static const char *inj__revision(const struct inject_config *cfg)
{
	return cfg->revision && cfg->revision[0] ? cfg->revision : "default";
}

static const char *inj__root_ns(const struct inject_config *cfg)
{
	return cfg->root_namespace && cfg->root_namespace[0] ? cfg->root_namespace : "istio-system";
}

static const char *inj__domain(const struct inject_config *cfg)
{
	return cfg->domain && cfg->domain[0] ? cfg->domain : "cluster.local";
}

static const char *inj__trust_domain(const struct inject_config *cfg)
{
	return cfg->trust_domain && cfg->trust_domain[0] ? cfg->trust_domain : "cluster.local";
}

/* ---------------------------------------------------------------- selection */

int inject_required(const struct inject_config *cfg, const struct json_value *pod, const char *ns, char *reason,
		    size_t cap)
{
	static const char *const ignored[] = { "kube-system", "kube-public", "kube-node-lease", "local-path-storage" };
	const struct json_value *meta = json_get(pod, "metadata"), *spec = json_get(pod, "spec");
	const struct json_value *labels = json_get(meta, "labels"), *ann = json_get(meta, "annotations");
	const char *ns_inj = inj__ns_label(cfg, ns, L_INJECTION), *ns_rev = inj__ns_label(cfg, ns, L_REV);
	const char *ours = inj__revision(cfg), *sel, *pod_sel = inj__member_str(labels, A_INJECT);
	const char *pod_rev = inj__member_str(labels, L_REV);
	size_t i;

	if (json_get_bool(spec, "hostNetwork", false)) {
		inj__why(reason, cap, "hostNetwork pod");
		return 0;
	}
	/* Istio's IgnoredNamespaces */
	for (i = 0; i < sizeof(ignored) / sizeof(ignored[0]); i++)
		if (strcmp(ns, ignored[i]) == 0) {
			inj__why(reason, cap, "namespace %s is never injected", ns);
			return 0;
		}
	if (inj__member_str(ann, A_STATUS)) {
		inj__why(reason, cap, "already injected (%s present)", A_STATUS);
		return 0;
	}
	/*
	 * Would one of the injector's webhooks (deploy/webhooks.yaml, Istio's
	 * chart) send this Pod here?  Their selectors read the namespace's
	 * labels and the Pod's labels, never its annotations:
	 *   namespace.sidecar-injector  ns istio-injection=enabled
	 *   rev.namespace               ns istio.io/rev=OURS, no istio-injection
	 *   rev.object                  ns unlabelled, Pod istio.io/rev=OURS
	 *   object.sidecar-injector     ns unlabelled, Pod inject=true, no istio.io/rev
	 * and each skips a Pod labelled sidecar.istio.io/inject=false.
	 */
	if (pod_sel && strcmp(pod_sel, "false") == 0) {
		inj__why(reason, cap, "pod has %s=false", A_INJECT);
		return 0;
	}
	if (ns_inj) {
		if (strcmp(ns_inj, "enabled") != 0) {
			inj__why(reason, cap, "namespace %s has %s=%s", ns, L_INJECTION, ns_inj);
			return 0;
		}
	} else if (ns_rev) {
		if (strcmp(ns_rev, ours) != 0) {
			inj__why(reason, cap, "namespace %s has %s=%s, not this control plane's revision %s", ns, L_REV,
				 ns_rev, ours);
			return 0;
		}
	} else if (pod_rev) {
		if (strcmp(pod_rev, ours) != 0) {
			inj__why(reason, cap, "pod %s=%s is not this control plane's revision %s", L_REV, pod_rev, ours);
			return 0;
		}
	} else if (!pod_sel || strcmp(pod_sel, "true") != 0) {
		inj__why(reason, cap, "namespace %s has neither %s nor %s and the pod is not labelled %s=true", ns,
			 L_INJECTION, L_REV, A_INJECT);
		return 0;
	}
	/* then istiod's injectRequired (policy enabled): the label, else the
	 * deprecated annotation; "false" skips, "true" or any other value
	 * (which istiod warns about) injects */
	sel = pod_sel ? pod_sel : inj__member_str(ann, A_INJECT);
	if (sel && strcmp(sel, "false") == 0) {
		inj__why(reason, cap, "pod has %s=false", A_INJECT);
		return 0;
	}
	return 1;
}

/* ---------------------------------------------------------------- validation */

/* An IPv4/IPv6 CIDR (address/len), as Go's netip.ParsePrefix takes it: no
 * blank, no zone, the length in decimal without a sign or a leading zero. */
static bool inj__cidr_ok(const char *s, size_t n)
{
	char buf[64], *slash;
	unsigned char addr[16];
	unsigned long bits = 0;
	const char *p;
	bool v6;

	if (n == 0 || n >= sizeof(buf))
		return false;
	memcpy(buf, s, n);
	buf[n] = '\0';
	slash = strchr(buf, '/');
	if (!slash)
		return false;
	*slash = '\0';
	v6 = strchr(buf, ':') != NULL;
	if (inet_pton(v6 ? AF_INET6 : AF_INET, buf, addr) != 1)
		return false;
	for (p = slash + 1; isdigit((unsigned char)*p) && p - slash <= 3; p++)
		bits = bits * 10 + (unsigned long)(*p - '0');
	return p > slash + 1 && !*p && !(slash[1] == '0' && slash[2]) && bits <= (v6 ? 128u : 32u);
}

/* A port as Istio's parsePort: blanks around it trimmed, then
 * strconv.ParseUint(s, 10, 16) (0-65535, digits only). */
static bool inj__port_ok(const char *s, size_t n)
{
	unsigned long p = 0;
	size_t i;

	while (n && isspace((unsigned char)*s)) {
		s++;
		n--;
	}
	while (n && isspace((unsigned char)s[n - 1]))
		n--;
	if (n == 0)
		return false;
	for (i = 0; i < n; i++) {
		if (!isdigit((unsigned char)s[i]))
			return false;
		p = p * 10 + (unsigned long)(s[i] - '0');
		if (p > 65535)
			return false;
	}
	return true;
}

/*
 * An annotation's list, as Istio's pkg/kube/inject/validate.go checks it:
 * "*" alone where star is allowed (compared untrimmed); CIDRs
 * (validateCIDRList) split on ',' and each parsed whole, so an empty item
 * or a blank is refused; ports (parsePorts) trimmed as a whole, split, each
 * trimmed and parsed, an empty item refused; an empty list allowed.  Past
 * istio-iptables, meshproxy iptables takes at most 256 items and 4 KiB per
 * list (dataplane/iptables.c): longer lists are refused here (Istio has no
 * cap) rather than written into an istio-init that cannot start.
 */
static int inj__list_ok(const char *v, bool cidrs, bool star)
{
	const char *p = v;
	size_t items = 0;

	if (star && strcmp(v, "*") == 0)
		return 0;
	if (strlen(v) > INJECT_MAX_LIST_BYTES)
		return -E2BIG;
	if (!cidrs) {
		while (isspace((unsigned char)*p))
			p++;
	}
	if (!*p)
		return 0;
	for (;;) {
		const char *e = strchr(p, ',');
		size_t n = e ? (size_t)(e - p) : strlen(p);

		if (!(cidrs ? inj__cidr_ok(p, n) : inj__port_ok(p, n)))
			return -EINVAL;
		if (++items > INJECT_MAX_LIST)
			return -E2BIG;
		if (!e)
			break;
		p = e + 1;
	}
	return 0;
}

/* Comma separated interface names, as Istio's ValidateInterfaceNames:
 * each (trimmed) item 1..15 characters, a letter then letters, digits,
 * '_', '.' or '-'; the whole value may be empty. */
static bool inj__ifaces_ok(const char *v)
{
	const char *p = v;
	size_t items = 0;

	if (!*v)
		return true;
	for (;;) {
		const char *e = strchr(p, ',');
		size_t n = e ? (size_t)(e - p) : strlen(p), i;
		const char *q = p;

		while (n && isspace((unsigned char)*q)) {
			q++;
			n--;
		}
		while (n && isspace((unsigned char)q[n - 1]))
			n--;
		if (n == 0 || n > 15 || !isalpha((unsigned char)q[0]) || ++items > INJECT_MAX_LIST)
			return false;
		for (i = 1; i < n; i++)
			if (!isalnum((unsigned char)q[i]) && q[i] != '_' && q[i] != '.' && q[i] != '-')
				return false;
		if (!e)
			return true;
		p = e + 1;
	}
}

/* A Kubernetes quantity as resource.ParseQuantity reads it (an optional
 * '+', digits with at most one '.', then a binary or decimal SI suffix or
 * an exponent e/E[+-]N), not negative (the API server refuses a negative
 * request or limit).  "1.2.3" or "1e" would make a Pod the API server
 * refuses after the patch; here the annotation is named instead. */
static bool inj__quantity_ok(const char *v)
{
	static const char *const sfx[] = { "",  "n",  "u",  "m",  "k",  "M",  "G",  "T",
					   "P", "E",  "Ki", "Mi", "Gi", "Ti", "Pi", "Ei" };
	const char *p = v;
	size_t i;
	bool digits = false, dot = false;

	if (*p == '+')
		p++;
	for (; isdigit((unsigned char)*p) || (*p == '.' && !dot); p++) {
		dot |= *p == '.';
		digits |= *p != '.';
	}
	if (!digits)
		return false;
	for (i = 0; i < sizeof(sfx) / sizeof(sfx[0]); i++)
		if (strcmp(p, sfx[i]) == 0)
			return true;
	if (*p != 'e' && *p != 'E')
		return false;
	p++;
	if (*p == '+' || *p == '-')
		p++;
	if (!isdigit((unsigned char)*p))
		return false;
	while (isdigit((unsigned char)*p))
		p++;
	return *p == '\0';
}

/* Istio validates the annotations it reads before injecting
 * (pkg/kube/inject/validate.go); a bad one refuses the Pod. */
static int inj__validate(struct inj *j)
{
	static const struct {
		const char *key;
		bool cidrs, star;
	} lists[] = {
		{ A_INCLUDE_OUT_CIDR, true, true },   { A_EXCLUDE_OUT_CIDR, true, false },
		{ A_INCLUDE_IN_PORTS, false, true },  { A_EXCLUDE_IN_PORTS, false, false },
		{ A_EXCLUDE_OUT_PORTS, false, false }, { A_INCLUDE_OUT_PORTS, false, false },
	};
	static const char *const ifaces[] = { A_EXCLUDE_IFACES, A_KUBEVIRT_IFACES, A_REROUTE_IFACES };
	static const char *const quantities[] = { A_PROXY_CPU, A_PROXY_MEM, A_PROXY_CPU_LIMIT, A_PROXY_MEM_LIMIT };
	const char *v;
	size_t i;
	int rc;

	for (i = 0; i < sizeof(lists) / sizeof(lists[0]); i++) {
		v = inj__member_str(j->annotations, lists[i].key);
		if (!v)
			continue;
		rc = inj__list_ok(v, lists[i].cidrs, lists[i].star);
		if (rc == -E2BIG) {
			inj__why(j->reason, j->cap, "invalid annotation %s: more than %d items or %d bytes", lists[i].key,
				 INJECT_MAX_LIST, INJECT_MAX_LIST_BYTES);
			return -EINVAL;
		}
		if (rc < 0) {
			inj__why(j->reason, j->cap, "invalid annotation %s=\"%.200s\": want %s", lists[i].key, v,
				 lists[i].cidrs ? "comma separated CIDRs (ADDRESS/BITS)"
						: "comma separated ports (0-65535)");
			return -EINVAL;
		}
	}
	for (i = 0; i < sizeof(ifaces) / sizeof(ifaces[0]); i++) {
		v = inj__member_str(j->annotations, ifaces[i]);
		if (v && !inj__ifaces_ok(v)) {
			inj__why(j->reason, j->cap,
				 "invalid annotation %s=\"%.200s\": want comma separated interface names "
				 "(a letter, then letters, digits, '_', '.' or '-'; at most 15 characters)",
				 ifaces[i], v);
			return -EINVAL;
		}
	}
	for (i = 0; i < sizeof(quantities) / sizeof(quantities[0]); i++) {
		v = inj__member_str(j->annotations, quantities[i]);
		if (v && !inj__quantity_ok(v)) {
			inj__why(j->reason, j->cap,
				 "invalid annotation %s=\"%.200s\": not a quantity (100m, 1.5, 128Mi, 1e3; not negative)",
				 quantities[i], v);
			return -EINVAL;
		}
	}
	/* the readiness.status.sidecar.istio.io annotations: Istio's validateUInt32
	 * (ParseUint(v, 10, 32)) over the chart's 0 s delay, every 15 s, 4 failures */
	{
		static const char *const ready[] = { A_READY_DELAY, A_READY_PERIOD, A_READY_FAILURES };
		static const unsigned long long dflt[] = { 0, 15, 4 };

		for (i = 0; i < sizeof(ready) / sizeof(ready[0]); i++) {
			const char *q;
			unsigned long long n = 0;

			j->ready[i] = dflt[i];
			v = inj__member_str(j->annotations, ready[i]);
			if (!v)
				continue;
			for (q = v; isdigit((unsigned char)*q) && n <= 0xffffffffULL; q++)
				n = n * 10 + (unsigned long long)(*q - '0');
			if (q == v || *q || n > 0xffffffffULL) {
				inj__why(j->reason, j->cap,
					 "invalid annotation %s=\"%.200s\": want a whole number (0-4294967295)", ready[i], v);
				return -EINVAL;
			}
			j->ready[i] = n;
		}
	}
	/* status.sidecar.istio.io/port: Istio's parsePort (0-65535, spaces around allowed) */
	j->status_port = INJECT_STATUS_PORT;
	v = inj__member_str(j->annotations, A_STATUS_PORT);
	if (v) {
		const char *q = v;
		long port = 0;

		while (*q == ' ')
			q++;
		if (!isdigit((unsigned char)*q))
			port = -1;
		for (; port >= 0 && isdigit((unsigned char)*q); q++)
			port = port > 65535 ? port : port * 10 + (*q - '0');
		while (*q == ' ')
			q++;
		if (port < 0 || port > 65535 || *q) {
			inj__why(j->reason, j->cap, "invalid annotation %s=\"%.200s\": want a port (0-65535)",
				 A_STATUS_PORT, v);
			return -EINVAL;
		}
		j->status_port = port;
	}
	snprintf(j->status_str, sizeof(j->status_str), "%ld", j->status_port);
	v = inj__member_str(j->annotations, A_INTERCEPTION);
	if (v && strcmp(v, "REDIRECT") != 0 && strcmp(v, "TPROXY") != 0 && strcmp(v, "NONE") != 0) {
		inj__why(j->reason, j->cap, "invalid annotation %s=\"%.200s\": want REDIRECT, TPROXY or NONE",
			 A_INTERCEPTION, v);
		return -EINVAL;
	}
	return 0;
}

/* proxy.istio.io/config: a ProxyConfig in YAML or JSON.  Only
 * holdApplicationUntilProxyStarts is acted on here; the whole document
 * goes to the proxy as PROXY_CONFIG, as Istio passes it. */
static int inj__proxy_config_doc(void *ctx, const char *json, size_t len)
{
	struct inj *j = ctx;

	if (j->proxy_config_json)
		return 0; /* the first document */
	j->proxy_config_json = strndup(json, len);
	return j->proxy_config_json ? 0 : -ENOMEM;
}

static int inj__proxy_config(struct inj *j)
{
	struct json_value *root = NULL;
	char err[256];
	int rc;

	j->proxy_config = inj__member_str(j->annotations, A_PROXY_CONFIG);
	if (!j->proxy_config)
		return 0;
	rc = cfg_yaml_each_json(j->proxy_config, strlen(j->proxy_config), inj__proxy_config_doc, j, err,
				sizeof(err));
	if (rc == -ENOMEM)
		return rc;
	if (rc < 0 || !j->proxy_config_json || json_parse(j->proxy_config_json, strlen(j->proxy_config_json), &root) < 0 ||
	    root->type != JSON_OBJECT) {
		inj__why(j->reason, j->cap, "invalid annotation %s: not a ProxyConfig object%s%s", A_PROXY_CONFIG,
			 rc < 0 ? ": " : "", rc < 0 ? err : "");
		json_free(root);
		return -EINVAL;
	}
	if (json_get(root, "holdApplicationUntilProxyStarts"))
		j->hold = json_get_bool(root, "holdApplicationUntilProxyStarts", j->hold);
	json_free(root);
	return 0;
}

/* NAME-DIGITS with 8 to 10 digits (a CronJob's Job): the length of NAME,
 * else 0 (Istio's cronJobNameRegexp `(.+)-\d{8,10}$`). */
static size_t inj__cron_prefix(const char *job)
{
	size_t n = strlen(job), d = 0;

	while (d < n && d < 11 && job[n - 1 - d] >= '0' && job[n - 1 - d] <= '9')
		d++;
	if (d < 8 || d > 10 || n < d + 2 || job[n - 1 - d] != '-')
		return 0;
	return n - 1 - d;
}

/* A ReplicaSet name ending with a non-empty template hash label (Istio's
 * hash != "" && strings.HasSuffix(name, hash)). */
static bool inj__hash_suffix(const char *name, const char *hash)
{
	size_t n = strlen(name), h = hash ? strlen(hash) : 0;

	return h && n >= h && strcmp(name + n - h, hash) == 0;
}

/*
 * The workload and its owner, as istiod's GetDeployMetaFromPod
 * (pkg/kube/util.go) derives them for the template's
 * ISTIO_META_WORKLOAD_NAME and ISTIO_META_OWNER: a Pod is its own workload
 * (v1 Pod) unless its name is generated and an ownerReference is its
 * controller; then the controller is, with a ReplicaSet carrying the Pod's
 * pod-template-hash read as its Deployment (rollouts-pod-template-hash: an
 * Argo Rollout), a ReplicationController with a deploymentconfig label as
 * that DeploymentConfig and a Job named NAME-TIMESTAMP as CronJob NAME.
 * kube-inject names the workload object it read (cfg->workload).
 */
static void inj__workload(struct inj *j)
{
	const char *name = inj__member_str(j->meta, "name"), *gen = inj__member_str(j->meta, "generateName");
	const char *kind = "Pod", *api = "v1", *hash, *pth, *rth, *ns = j->ns && j->ns[0] ? j->ns : "default";
	const struct json_value *refs = json_get(j->meta, "ownerReferences"), *r;
	size_t n = 0, i;
	char lower[128];

	j->owner[0] = '\0';
	snprintf(j->workload, sizeof(j->workload), "%s", name ? name : "");
	if (j->cfg->workload && j->cfg->workload[0]) {
		snprintf(j->workload, sizeof(j->workload), "%s", j->cfg->workload);
		kind = j->cfg->workload_kind ? j->cfg->workload_kind : "";
		api = j->cfg->workload_api_version ? j->cfg->workload_api_version : "";
	} else if (gen && gen[0] && refs && refs->type == JSON_ARRAY) {
		for (r = refs->child; r; r = r->next)
			if (json_get_bool(r, "controller", false))
				break;
		if (r) {
			kind = json_get_str(r, "kind") ? json_get_str(r, "kind") : "";
			api = json_get_str(r, "apiVersion") ? json_get_str(r, "apiVersion") : "";
			name = json_get_str(r, "name") ? json_get_str(r, "name") : "";
			n = strlen(name);
			snprintf(j->workload, sizeof(j->workload), "%s", name);
			pth = inj__member_str(j->labels, "pod-template-hash");
			rth = inj__member_str(j->labels, "rollouts-pod-template-hash");
			if (strcmp(kind, "ReplicaSet") == 0 &&
			    (inj__hash_suffix(name, pth) || inj__hash_suffix(name, rth))) {
				if (inj__hash_suffix(name, pth)) {
					hash = pth;
					kind = "Deployment";
				} else { /* an Argo Rollout */
					hash = rth;
					kind = "Rollout";
					api = "v1alpha1";
				}
				/* strings.TrimSuffix(name, "-"+hash): nothing when the '-' is missing */
				if (n > strlen(hash) && name[n - strlen(hash) - 1] == '-')
					n -= strlen(hash) + 1;
				snprintf(j->workload, sizeof(j->workload), "%.*s", (int)(n < 255 ? n : 255), name);
			} else if (strcmp(kind, "ReplicationController") == 0 &&
				   inj__member_str(j->labels, "deploymentconfig") &&
				   inj__member_str(j->labels, "deploymentconfig")[0]) {
				snprintf(j->workload, sizeof(j->workload), "%s",
					 inj__member_str(j->labels, "deploymentconfig"));
				kind = "DeploymentConfig";
			} else if (strcmp(kind, "Job") == 0 && (n = inj__cron_prefix(name)) > 0) {
				snprintf(j->workload, sizeof(j->workload), "%.*s", (int)(n < 255 ? n : 255), name);
				kind = "CronJob";
				api = "batch/v1";
			}
		}
		if (!j->workload[0]) /* a controller without a name: the Pod's (empty before the API server names it) */
			snprintf(j->workload, sizeof(j->workload), "%s", inj__member_str(j->meta, "name") ?
				 inj__member_str(j->meta, "name") : "");
	}
	if (!api[0] || !j->workload[0])
		return;
	for (i = 0; kind[i] && i < sizeof(lower) - 1; i++)
		lower[i] = (char)tolower((unsigned char)kind[i]);
	lower[i] = '\0';
	snprintf(j->owner, sizeof(j->owner), "kubernetes://apis/%s/namespaces/%s/%ss/%s", api, ns, lower, j->workload);
}

/* ---------------------------------------------------------------- probes */

/* A probe's port (number, or a name among the container's ports) → 1..65535, or 0. */
static long inj__probe_port(const struct json_value *container, const struct json_value *port)
{
	const struct json_value *ports = json_get(container, "ports"), *p;

	if (!port)
		return 0;
	if (port->type == JSON_NUMBER && port->is_int)
		return port->i > 0 && port->i <= 65535 ? (long)port->i : 0;
	if (port->type != JSON_STRING)
		return 0;
	if (inj__port_ok(port->str, port->len))
		return strtol(port->str, NULL, 10);
	for (p = ports && ports->type == JSON_ARRAY ? ports->child : NULL; p; p = p->next) {
		const char *name = json_get_str(p, "name");

		if (name && strcmp(name, port->str) == 0)
			return (long)json_get_int(p, "containerPort", 0);
	}
	return 0;
}

/* One handler object with its port resolved: {"port":N, ...rest}. */
static void inj__handler(struct mesh_buf *b, const char *text, const struct json_value *h, long port)
{
	const struct json_value *m;
	bool first = true;

	mesh_buf_putc(b, '{');
	for (m = h->child; m; m = m->next) {
		if (strcmp(m->key, "port") == 0)
			continue;
		if (!first)
			mesh_buf_putc(b, ',');
		first = false;
		json_put_string(b, m->key);
		mesh_buf_putc(b, ':');
		inj__raw(b, text, m);
	}
	mesh_buf_printf(b, "%s\"port\":%ld}", first ? "" : ",", port);
}

/*
 * Rewrite one probe of container cname to the agent (app_probe.go): the
 * original goes into ISTIO_KUBE_APP_PROBERS under /app-health/C/KIND and the
 * probe becomes an httpGet of that path on 15020, its timing kept.  exec
 * probes, probes already on the status port, and ports that do not
 * resolve are left alone.  Returns true when rewritten (written to out).
 */
static bool inj__probe(struct inj *j, const struct json_value *c, const char *cname, const struct json_value *probe,
		       const char *kind, struct mesh_buf *out)
{
	static const char *const handlers[] = { "httpGet", "tcpSocket", "grpc" };
	const struct json_value *h = NULL, *m;
	const char *hname = NULL;
	size_t i;
	long port;

	/* no status port (status.sidecar.istio.io/port 0): nothing would answer the rewritten probe */
	if (!j->rewrite_probes || !j->status_port || !probe || probe->type != JSON_OBJECT)
		return false;
	for (i = 0; i < 3 && !h; i++) {
		h = json_get(probe, handlers[i]);
		hname = handlers[i];
		if (h && h->type != JSON_OBJECT)
			h = NULL;
	}
	if (!h)
		return false;
	port = inj__probe_port(c, json_get(h, "port"));
	if (port <= 0 || port == j->status_port)
		return false;
	/* the prober entry */
	mesh_buf_puts(&j->probers, j->nprobers++ ? "," : "");
	mesh_buf_printf(&j->probers, "\"/app-health/%s/%s\":{", cname, kind);
	json_put_string(&j->probers, hname);
	mesh_buf_putc(&j->probers, ':');
	inj__handler(&j->probers, j->text, h, port);
	mesh_buf_printf(&j->probers, ",\"timeoutSeconds\":%lld}", (long long)json_get_int(probe, "timeoutSeconds", 1));
	/* the rewritten probe */
	mesh_buf_putc(out, '{');
	for (m = probe->child; m; m = m->next) {
		if (strcmp(m->key, "httpGet") == 0 || strcmp(m->key, "tcpSocket") == 0 || strcmp(m->key, "grpc") == 0)
			continue;
		json_put_string(out, m->key);
		mesh_buf_putc(out, ':');
		inj__raw(out, j->text, m);
		mesh_buf_putc(out, ',');
	}
	mesh_buf_printf(out, "\"httpGet\":{\"path\":\"/app-health/%s/%s\",\"port\":%ld,\"scheme\":\"HTTP\"}}", cname,
			kind, j->status_port);
	return true;
}

/* A container name the probe paths may carry as they are: the characters
 * of a Kubernetes name (an RFC 1123 label; the API server refuses any
 * other after the patch, naming the field).  A name with a quote, a
 * backslash or a control character was written raw into the patch's JSON
 * ("a\u0001b" made a patch that is not JSON). */
static bool inj__name_ok(const char *name)
{
	const char *p;

	for (p = name; *p; p++)
		if (!isalnum((unsigned char)*p) && *p != '-' && *p != '.' && *p != '_')
			return false;
	return p > name;
}

/* An app container, its probes rewritten. */
static void inj__app_container(struct inj *j, const struct json_value *c, struct mesh_buf *b)
{
	static const struct {
		const char *key, *kind;
	} probes[] = { { "livenessProbe", "livez" }, { "readinessProbe", "readyz" }, { "startupProbe", "startupz" } };
	const char *cname = json_get_str(c, "name");
	const struct json_value *m;
	bool first = true;
	size_t i;

	if (!cname || c->type != JSON_OBJECT || !inj__name_ok(cname)) {
		inj__raw(b, j->text, c);
		return;
	}
	mesh_buf_putc(b, '{');
	for (m = c->child; m; m = m->next) {
		if (!first)
			mesh_buf_putc(b, ',');
		first = false;
		json_put_string(b, m->key);
		mesh_buf_putc(b, ':');
		for (i = 0; i < 3; i++)
			if (strcmp(m->key, probes[i].key) == 0)
				break;
		if (i == 3 || !inj__probe(j, c, cname, m, probes[i].kind, b))
			inj__raw(b, j->text, m);
	}
	mesh_buf_putc(b, '}');
}

/* ---------------------------------------------------------------- pieces */

static void inj__str_array(struct mesh_buf *b, const char *const *v, size_t n)
{
	size_t i;

	mesh_buf_putc(b, '[');
	for (i = 0; i < n; i++) {
		if (i)
			mesh_buf_putc(b, ',');
		json_put_string(b, v[i]);
	}
	mesh_buf_putc(b, ']');
}

static const char *inj__ann(const struct inj *j, const char *key, const char *def)
{
	const char *v = inj__member_str(j->annotations, key);

	return v ? v : def;
}

/* The excludeInboundPorts annotation in effect: the user's ports (trimmed)
 * and the status port unless listed (Istio's excludeInboundPort). */
static void inj__exclude_inbound_ann(const struct inj *j, char *out, size_t cap)
{
	const char *p = inj__member_str(j->annotations, A_EXCLUDE_IN_PORTS);
	size_t n = 0, sl = strlen(j->status_str);
	bool has_status = !j->status_port; /* port 0: nothing to add */

	out[0] = '\0';
	while (p && *p) {
		const char *e = strchr(p, ','), *q = p;
		size_t l = e ? (size_t)(e - p) : strlen(p);

		while (l && *q == ' ') {
			q++;
			l--;
		}
		while (l && q[l - 1] == ' ')
			l--;
		if (l) {
			has_status |= l == sl && strncmp(q, j->status_str, l) == 0;
			n += (size_t)snprintf(out + n, n < cap ? cap - n : 0, "%s%.*s", n ? "," : "", (int)l, q);
			if (n >= cap)
				n = cap - 1;
		}
		p = e ? e + 1 : NULL;
	}
	if (!has_status)
		snprintf(out + n, cap - n, "%s%s", n ? "," : "", j->status_str);
}

/* istio-init's -d: Envoy's prom port and the health port, then the above. */
static void inj__exclude_inbound(const struct inj *j, char *out, size_t cap)
{
	char ann[INJECT_MAX_LIST_BYTES + 16];

	inj__exclude_inbound_ann(j, ann, sizeof(ann));
	snprintf(out, cap, "15090,15021%s%s", ann[0] ? "," : "", ann);
}

/* ,"imagePullPolicy":P after a container's image, unless the policy is "". */
static void inj__pull_policy(const struct inj *j, struct mesh_buf *b)
{
	const char *p = j->cfg->image_pull_policy ? j->cfg->image_pull_policy : "IfNotPresent";

	if (!p[0])
		return;
	mesh_buf_puts(b, ",\"imagePullPolicy\":");
	json_put_string(b, p);
}

/* istio-init: `meshproxy iptables` with istio-iptables' flags. */
static void inj__init_container(struct inj *j, struct mesh_buf *b)
{
	char excl_in[INJECT_MAX_LIST_BYTES + 32];
	const char *args[26], *v;
	size_t n = 0;

	inj__exclude_inbound(j, excl_in, sizeof(excl_in));
	args[n++] = "iptables";
	args[n++] = "-p";
	args[n++] = "15001";
	args[n++] = "-z";
	args[n++] = "15006";
	args[n++] = "-u";
	args[n++] = "1337";
	args[n++] = "-m";
	args[n++] = j->mode;
	args[n++] = "-i";
	args[n++] = inj__ann(j, A_INCLUDE_OUT_CIDR, "*");
	args[n++] = "-x";
	args[n++] = inj__ann(j, A_EXCLUDE_OUT_CIDR, "");
	args[n++] = "-b";
	args[n++] = inj__ann(j, A_INCLUDE_IN_PORTS, "*");
	args[n++] = "-d";
	args[n++] = excl_in;
	/* the rest only when the Pod names them, in the template's order:
	 * -q, -o, -k (reroute-virtual-interfaces before kubevirtInterfaces), -c */
	if ((v = inj__member_str(j->annotations, A_INCLUDE_OUT_PORTS))) {
		args[n++] = "-q";
		args[n++] = v;
	}
	if ((v = inj__member_str(j->annotations, A_EXCLUDE_OUT_PORTS))) {
		args[n++] = "-o";
		args[n++] = v;
	}
	if ((v = inj__member_str(j->annotations, A_REROUTE_IFACES)) ||
	    (v = inj__member_str(j->annotations, A_KUBEVIRT_IFACES))) {
		args[n++] = "-k";
		args[n++] = v;
	}
	if ((v = inj__member_str(j->annotations, A_EXCLUDE_IFACES))) {
		args[n++] = "-c";
		args[n++] = v;
	}
	mesh_buf_puts(b, "{\"name\":\"istio-init\",\"image\":");
	json_put_string(b, j->image);
	inj__pull_policy(j, b);
	mesh_buf_puts(b, ",\"command\":[\"meshproxy\"],\"args\":");
	inj__str_array(b, args, n);
	mesh_buf_puts(b, ",\"resources\":{\"limits\":{\"cpu\":\"2000m\",\"memory\":\"1024Mi\"},"
			 "\"requests\":{\"cpu\":\"10m\",\"memory\":\"40Mi\"}},"
			 "\"securityContext\":{\"allowPrivilegeEscalation\":false,"
			 "\"capabilities\":{\"add\":[\"NET_ADMIN\",\"NET_RAW\"],\"drop\":[\"ALL\"]},"
			 "\"privileged\":false,\"readOnlyRootFilesystem\":false,\"runAsGroup\":0,"
			 "\"runAsNonRoot\":false,\"runAsUser\":0}}");
}

static void inj__env(struct mesh_buf *b, const char *name, const char *value)
{
	mesh_buf_puts(b, ",{\"name\":");
	json_put_string(b, name);
	mesh_buf_puts(b, ",\"value\":");
	json_put_string(b, value);
	mesh_buf_putc(b, '}');
}

static void inj__env_field(struct mesh_buf *b, const char *name, const char *field)
{
	mesh_buf_printf(b, ",{\"name\":\"%s\",\"valueFrom\":{\"fieldRef\":{\"apiVersion\":\"v1\",\"fieldPath\":\"%s\"}}}",
			name, field);
}

/* The app's own prometheus.io annotations annotations, when it has a port or path:
 * the agent merges its metrics (Istio's ISTIO_PROMETHEUS_ANNOTATIONS). */
static bool inj__app_prom(const struct inj *j, struct mesh_buf *b)
{
	const char *port = inj__member_str(j->annotations, A_PROM_PORT);
	const char *path = inj__member_str(j->annotations, A_PROM_PATH);
	const char *scrape = inj__member_str(j->annotations, A_PROM_SCRAPE);

	if (!port && !path && !scrape)
		return false;
	mesh_buf_puts(b, "{\"scrape\":");
	json_put_string(b, scrape ? scrape : "");
	mesh_buf_puts(b, ",\"path\":");
	json_put_string(b, path ? path : "");
	mesh_buf_puts(b, ",\"port\":");
	json_put_string(b, port ? port : "");
	mesh_buf_putc(b, '}');
	return true;
}

/* Pod labels as meshproxy's --labels "k=v,..." (label keys and values
 * hold no comma) and the labels the injection adds. */
static void inj__labels_flag(const struct inj *j, const char *canon_name, const char *canon_rev, struct mesh_buf *b)
{
	const struct json_value *m;
	bool first = true;

	for (m = j->labels && j->labels->type == JSON_OBJECT ? j->labels->child : NULL; m; m = m->next) {
		if (m->type != JSON_STRING || strchr(m->key, ',') || strchr(m->str, ','))
			continue;
		if (strcmp(m->key, L_TLS_MODE) == 0 || strcmp(m->key, L_CANON_NAME) == 0 ||
		    strcmp(m->key, L_CANON_REV) == 0)
			continue;
		mesh_buf_printf(b, "%s%s=%s", first ? "" : ",", m->key, m->str);
		first = false;
	}
	mesh_buf_printf(b, "%s%s=istio,%s=%s,%s=%s", first ? "" : ",", L_TLS_MODE, L_CANON_NAME, canon_name,
			L_CANON_REV, canon_rev);
}

/* One "resources" half ("requests" or "limits") with the members whose
 * annotation is set (all, with the defaults, when defaults). */
static void inj__resource_half(const struct inj *j, struct mesh_buf *b, const char *half, const char *cpu_key,
			       const char *mem_key, const char *cpu_def, const char *mem_def, bool defaults, bool *first)
{
	const char *cpu = defaults ? cpu_def : inj__member_str(j->annotations, cpu_key);
	const char *mem = defaults ? mem_def : inj__member_str(j->annotations, mem_key);

	if (!cpu && !mem)
		return;
	mesh_buf_printf(b, "%s\"%s\":{", *first ? "" : ",", half);
	*first = false;
	if (cpu) {
		mesh_buf_puts(b, "\"cpu\":");
		json_put_string(b, cpu);
	}
	if (mem) {
		mesh_buf_puts(b, cpu ? ",\"memory\":" : "\"memory\":");
		json_put_string(b, mem);
	}
	mesh_buf_putc(b, '}');
}

/* istio-proxy's resources as the injection template's "resources": when
 * any of proxyCPU, proxyMemory, proxyCPULimit, proxyMemoryLimit is set,
 * only the ones set (so proxyCPU "3" alone is a request without the
 * default 2000m limit, which the API server would refuse as under the
 * request); else the chart's defaults. */
static void inj__resources(const struct inj *j, struct mesh_buf *b)
{
	bool defaults = !inj__member_str(j->annotations, A_PROXY_CPU) && !inj__member_str(j->annotations, A_PROXY_MEM) &&
			!inj__member_str(j->annotations, A_PROXY_CPU_LIMIT) &&
			!inj__member_str(j->annotations, A_PROXY_MEM_LIMIT);
	bool first = true;

	mesh_buf_puts(b, ",\"resources\":{");
	inj__resource_half(j, b, "limits", A_PROXY_CPU_LIMIT, A_PROXY_MEM_LIMIT, PROXY_CPU_LIMIT, PROXY_MEM_LIMIT,
			   defaults, &first);
	inj__resource_half(j, b, "requests", A_PROXY_CPU, A_PROXY_MEM, PROXY_CPU, PROXY_MEM, defaults, &first);
	mesh_buf_putc(b, '}');
}

/* istio-proxy: meshproxy reaching meshd over TLS with its token. */
static void inj__proxy_container(struct inj *j, const char *canon_name, const char *canon_rev, bool native,
				 struct mesh_buf *b)
{
	char istiod[600], node[600], excl_in[INJECT_MAX_LIST_BYTES + 32];
	struct mesh_buf tmp;
	const struct json_value *c, *p;
	const char *v;
	bool first;

	snprintf(istiod, sizeof(istiod), "istiod.%s.svc:15012", inj__root_ns(j->cfg));
	snprintf(node, sizeof(node), "sidecar~$(INSTANCE_IP)~$(POD_NAME).$(POD_NAMESPACE)~$(POD_NAMESPACE).svc.%s",
		 inj__domain(j->cfg));
	inj__exclude_inbound(j, excl_in, sizeof(excl_in));
	mesh_buf_puts(b, "{\"name\":\"istio-proxy\",\"image\":");
	json_put_string(b, j->image);
	inj__pull_policy(j, b);
	mesh_buf_puts(b, ",\"command\":[\"meshproxy\"],\"args\":[\"--xds-addr\",");
	json_put_string(b, istiod);
	mesh_buf_puts(b, ",\"--ca-addr\",");
	json_put_string(b, istiod);
	mesh_buf_puts(b, ",\"--node-id\",");
	json_put_string(b, node);
	mesh_buf_puts(b, ",\"--service-account\",\"$(SERVICE_ACCOUNT)\",\"--labels\",");
	mesh_buf_init(&tmp, INJECT_MAX_OUTPUT);
	inj__labels_flag(j, canon_name, canon_rev, &tmp);
	json_put_string(b, tmp.data ? tmp.data : "");
	{
		/* sidecar.istio.io/logLevel (Envoy's levels) onto meshproxy's four */
		static const struct {
			const char *istio, *ours;
		} levels[] = { { "trace", "debug" }, { "debug", "debug" }, { "info", "info" }, { "warning", "warn" },
			       { "error", "error" }, { "critical", "error" }, { "off", "error" } };
		const char *lv = inj__member_str(j->annotations, A_LOG_LEVEL);
		size_t i;

		for (i = 0; lv && i < sizeof(levels) / sizeof(levels[0]); i++)
			if (strcmp(lv, levels[i].istio) == 0)
				mesh_buf_printf(b, ",\"--log-level\",\"%s\"", levels[i].ours);
	}
	/* the agent's status port moved (pilot-agent reads the same annotation), or off */
	if (j->status_port != INJECT_STATUS_PORT)
		mesh_buf_printf(b, ",\"--status-addr\",\"%s%s\"", j->status_port ? "0.0.0.0:" : "",
				j->status_port ? j->status_str : "");
	mesh_buf_puts(b, ",\"--root-cert\",\"/var/run/secrets/istio/root-cert.pem\","
			 "\"--token-file\",\"/var/run/secrets/tokens/istio-token\",\"--ca-server-name\",");
	/* the name meshd's 15012 certificate carries (SNI and :authority) */
	istiod[strlen(istiod) - strlen(":15012")] = '\0';
	json_put_string(b, istiod);
	mesh_buf_putc(b, ']');
	if (native)
		mesh_buf_puts(b, ",\"restartPolicy\":\"Always\"");
	/* env: the downward API and Istio's ISTIO_META_* */
	snprintf(istiod, sizeof(istiod), "istiod.%s.svc:15012", inj__root_ns(j->cfg));
	mesh_buf_puts(b, ",\"env\":[{\"name\":\"PILOT_CERT_PROVIDER\",\"value\":\"istiod\"}");
	inj__env(b, "CA_ADDR", istiod);
	inj__env_field(b, "POD_NAME", "metadata.name");
	inj__env_field(b, "POD_NAMESPACE", "metadata.namespace");
	inj__env_field(b, "INSTANCE_IP", "status.podIP");
	inj__env_field(b, "SERVICE_ACCOUNT", "spec.serviceAccountName");
	inj__env_field(b, "HOST_IP", "status.hostIP");
	inj__env_field(b, "ISTIO_META_NODE_NAME", "spec.nodeName");
	/* the app containers' ports and names */
	mesh_buf_reset(&tmp);
	mesh_buf_putc(&tmp, '[');
	first = true;
	for (c = j->containers->child; c; c = c->next)
		for (p = json_get(c, "ports") && json_get(c, "ports")->type == JSON_ARRAY ? json_get(c, "ports")->child
											 : NULL;
		     p; p = p->next) {
			if (!first)
				mesh_buf_putc(&tmp, ',');
			first = false;
			inj__raw(&tmp, j->text, p);
		}
	mesh_buf_putc(&tmp, ']');
	inj__env(b, "ISTIO_META_POD_PORTS", tmp.data);
	mesh_buf_reset(&tmp);
	first = true;
	for (c = j->containers->child; c; c = c->next) {
		const char *n = json_get_str(c, "name");

		if (!n)
			continue;
		mesh_buf_printf(&tmp, "%s%s", first ? "" : ",", n);
		first = false;
	}
	inj__env(b, "ISTIO_META_APP_CONTAINERS", tmp.data ? tmp.data : "");
	inj__env(b, "ISTIO_META_CLUSTER_ID", "Kubernetes");
	inj__env(b, "ISTIO_META_INTERCEPTION_MODE", j->mode);
	/* the template's `service.istio.io/workload-name` label | default .DeploymentMeta.Name, then OWNER */
	v = inj__member_str(j->labels, L_WORKLOAD_NAME);
	if (!v || !v[0])
		v = j->workload;
	if (v[0])
		inj__env(b, "ISTIO_META_WORKLOAD_NAME", v);
	if (j->owner[0])
		inj__env(b, "ISTIO_META_OWNER", j->owner);
	inj__env(b, "ISTIO_META_MESH_ID", inj__trust_domain(j->cfg));
	inj__env(b, "TRUST_DOMAIN", inj__trust_domain(j->cfg));
	if (j->proxy_config_json)
		inj__env(b, "PROXY_CONFIG", j->proxy_config_json);
	mesh_buf_reset(&tmp);
	if (j->prom && inj__app_prom(j, &tmp))
		inj__env(b, "ISTIO_PROMETHEUS_ANNOTATIONS", tmp.data);
	if (j->nprobers) {
		mesh_buf_reset(&tmp);
		mesh_buf_putc(&tmp, '{');
		mesh_buf_append(&tmp, j->probers.data, j->probers.len);
		mesh_buf_putc(&tmp, '}');
		inj__env(b, "ISTIO_KUBE_APP_PROBERS", tmp.data);
	}
	mesh_buf_cleanup(&tmp);
	mesh_buf_putc(b, ']');
	if (j->hold && !native)
		/* the kubelet starts the next container only when this returns */
		mesh_buf_puts(b, ",\"lifecycle\":{\"postStart\":{\"exec\":{\"command\":[\"meshproxy\",\"wait\"]}}}");
	/* the template leaves the proxy's probes out when the status port is 0 */
	if (j->status_port) {
		mesh_buf_printf(b,
				",\"ports\":[{\"containerPort\":%ld,\"name\":\"http-envoy-prom\",\"protocol\":\"TCP\"}]",
				j->status_port);
		/* a 0 s delay left out, as the API server leaves it */
		mesh_buf_printf(b,
				",\"readinessProbe\":{\"failureThreshold\":%llu,\"httpGet\":{\"path\":\"/healthz/ready\","
				"\"port\":15021,\"scheme\":\"HTTP\"},",
				j->ready[2]);
		if (j->ready[0])
			mesh_buf_printf(b, "\"initialDelaySeconds\":%llu,", j->ready[0]);
		mesh_buf_printf(b, "\"periodSeconds\":%llu,\"timeoutSeconds\":3}", j->ready[1]);
		mesh_buf_puts(b, ",\"startupProbe\":{\"failureThreshold\":600,\"httpGet\":{\"path\":\"/healthz/ready\","
				 "\"port\":15021,\"scheme\":\"HTTP\"},\"periodSeconds\":1,\"timeoutSeconds\":3}");
	}
	inj__resources(j, b);
	/* Istio's template: TPROXY runs the proxy as root with NET_ADMIN (its
	 * transparent sockets need it; a uid-1337 process would not keep the
	 * capability), in group 1337, which the capture's --gid-owner rules
	 * keep out of the redirect */
	if (strcmp(j->mode, "TPROXY") == 0)
		mesh_buf_puts(b, ",\"securityContext\":{\"allowPrivilegeEscalation\":false,\"capabilities\":{\"add\":"
				 "[\"NET_ADMIN\"],\"drop\":[\"ALL\"]},\"privileged\":false,\"readOnlyRootFilesystem\":true,"
				 "\"runAsGroup\":1337,\"runAsNonRoot\":false,\"runAsUser\":0}");
	else
		mesh_buf_puts(b, ",\"securityContext\":{\"allowPrivilegeEscalation\":false,\"capabilities\":{\"drop\":"
				 "[\"ALL\"]},\"privileged\":false,\"readOnlyRootFilesystem\":true,\"runAsGroup\":1337,"
				 "\"runAsNonRoot\":true,\"runAsUser\":1337}");
	mesh_buf_puts(b, ",\"volumeMounts\":[{\"mountPath\":\"/var/run/secrets/istio\",\"name\":\"istiod-ca-cert\"},"
			 "{\"mountPath\":\"/var/lib/istio/data\",\"name\":\"istio-data\"},"
			 "{\"mountPath\":\"/etc/istio/proxy\",\"name\":\"istio-envoy\"},"
			 "{\"mountPath\":\"/var/run/secrets/tokens\",\"name\":\"istio-token\"},"
			 "{\"mountPath\":\"/etc/istio/pod\",\"name\":\"istio-podinfo\"}]}");
}

static const char *const inj__volumes[] = { "istio-envoy", "istio-data", "istio-podinfo", "istio-token",
					    "istiod-ca-cert" };

static void inj__our_volumes(struct mesh_buf *b)
{
	mesh_buf_puts(b, "{\"emptyDir\":{\"medium\":\"Memory\"},\"name\":\"istio-envoy\"},"
			 "{\"emptyDir\":{},\"name\":\"istio-data\"},"
			 "{\"downwardAPI\":{\"items\":[{\"fieldRef\":{\"fieldPath\":\"metadata.labels\"},\"path\":\"labels\"},"
			 "{\"fieldRef\":{\"fieldPath\":\"metadata.annotations\"},\"path\":\"annotations\"}]},"
			 "\"name\":\"istio-podinfo\"},"
			 "{\"name\":\"istio-token\",\"projected\":{\"sources\":[{\"serviceAccountToken\":"
			 "{\"audience\":\"istio-ca\",\"expirationSeconds\":43200,\"path\":\"istio-token\"}}]}},"
			 "{\"configMap\":{\"name\":\"istio-ca-root-cert\"},\"name\":\"istiod-ca-cert\"}");
}

/* An object's members but those in skip (n keys), each copied raw, with a
 * trailing comma after each; returns the count written. */
static size_t inj__copy_members(struct mesh_buf *b, const char *text, const struct json_value *obj,
				const char *const *skip, size_t n)
{
	const struct json_value *m;
	size_t i, w = 0;

	for (m = obj && obj->type == JSON_OBJECT ? obj->child : NULL; m; m = m->next) {
		for (i = 0; i < n; i++)
			if (skip[i] && strcmp(m->key, skip[i]) == 0)
				break;
		if (i < n)
			continue;
		json_put_string(b, m->key);
		mesh_buf_putc(b, ':');
		inj__raw(b, text, m);
		mesh_buf_putc(b, ',');
		w++;
	}
	return w;
}

static void inj__kv(struct mesh_buf *b, const char *k, const char *v)
{
	json_put_string(b, k);
	mesh_buf_putc(b, ':');
	json_put_string(b, v);
}

/* Drop a trailing comma a member list left. */
static void inj__uncomma(struct mesh_buf *b)
{
	if (b->len && b->data[b->len - 1] == ',')
		b->data[--b->len] = '\0';
}

/* The whole patch. */
static int inj__patch(struct inj *j, struct mesh_buf *patch)
{
	const struct json_value *c;
	const char *canon_name, *canon_rev, *first_name;
	char canon_buf[64];
	struct mesh_buf status;
	bool native = j->cfg->native_sidecar, init = strcmp(j->mode, "NONE") != 0, prom;
	const char *skip_ann[12];
	size_t ns = 0;

	canon_name = inj__member_str(j->labels, L_CANON_NAME);
	if (!canon_name)
		canon_name = inj__member_str(j->labels, "app.kubernetes.io/name");
	if (!canon_name)
		canon_name = inj__member_str(j->labels, "app");
	if (!canon_name)
		canon_name = j->workload;
	{
		/* a label value: at most 63 bytes, no trailing '-' (the template's trunc 63 | trimSuffix) */
		size_t cl = strlen(canon_name);

		if (cl > 63)
			cl = 63;
		while (cl && canon_name[cl - 1] == '-')
			cl--;
		snprintf(canon_buf, sizeof(canon_buf), "%.*s", (int)cl, canon_name);
		canon_name = canon_buf;
	}
	canon_rev = inj__member_str(j->labels, L_CANON_REV);
	if (!canon_rev)
		canon_rev = inj__member_str(j->labels, "app.kubernetes.io/version");
	if (!canon_rev)
		canon_rev = inj__member_str(j->labels, "version");
	if (!canon_rev)
		canon_rev = "latest";
	first_name = j->containers->child ? json_get_str(j->containers->child, "name") : NULL;
	/* prometheus.io/scrape false (Go's ParseBool) keeps the app's
	 * annotations as they are, and so does a port already on 15020 (a
	 * re-injection): Istio's applyPrometheusMerge */
	prom = j->prom = j->status_port && inj__parse_bool(inj__member_str(j->annotations, A_PROM_SCRAPE)) != 0 &&
			 !(inj__member_str(j->annotations, A_PROM_PORT) &&
			   strcmp(inj__member_str(j->annotations, A_PROM_PORT), j->status_str) == 0);

	/* containers first: rewriting the probes fills j->probers, which
	 * istio-proxy's env carries */
	{
		struct mesh_buf apps;

		mesh_buf_init(&apps, INJECT_MAX_OUTPUT);
		for (c = j->containers->child; c; c = c->next) {
			if (c != j->containers->child)
				mesh_buf_putc(&apps, ',');
			inj__app_container(j, c, &apps);
		}
		mesh_buf_putc(patch, '[');
		/* labels */
		mesh_buf_puts(patch, "{\"op\":\"add\",\"path\":\"/metadata/labels\",\"value\":{");
		{
			const char *skip[] = { L_TLS_MODE, L_CANON_NAME, L_CANON_REV };
			inj__copy_members(patch, j->text, j->labels, skip, 3);
		}
		inj__kv(patch, L_TLS_MODE, "istio");
		mesh_buf_putc(patch, ',');
		inj__kv(patch, L_CANON_NAME, canon_name);
		mesh_buf_putc(patch, ',');
		inj__kv(patch, L_CANON_REV, canon_rev);
		mesh_buf_puts(patch, "}},");
		/* annotations */
		mesh_buf_init(&status, INJECT_MAX_OUTPUT);
		mesh_buf_puts(&status, "{\"initContainers\":");
		if (init && native)
			mesh_buf_puts(&status, "[\"istio-init\",\"istio-proxy\"]");
		else if (init)
			mesh_buf_puts(&status, "[\"istio-init\"]");
		else if (native)
			mesh_buf_puts(&status, "[\"istio-proxy\"]");
		else
			mesh_buf_puts(&status, "null");
		mesh_buf_printf(&status, ",\"containers\":%s,\"volumes\":", native ? "null" : "[\"istio-proxy\"]");
		inj__str_array(&status, inj__volumes, sizeof(inj__volumes) / sizeof(inj__volumes[0]));
		mesh_buf_puts(&status, ",\"imagePullSecrets\":null,\"revision\":");
		json_put_string(&status, inj__revision(j->cfg));
		mesh_buf_putc(&status, '}');
		skip_ann[ns++] = A_STATUS;
		skip_ann[ns++] = L_REV;
		if (prom) {
			skip_ann[ns++] = A_PROM_SCRAPE;
			skip_ann[ns++] = A_PROM_PORT;
			skip_ann[ns++] = A_PROM_PATH;
		}
		mesh_buf_puts(patch, "{\"op\":\"add\",\"path\":\"/metadata/annotations\",\"value\":{");
		inj__copy_members(patch, j->text, j->annotations, skip_ann, ns);
		/* as the injection template writes them: the revision and the
		 * containers kubectl picks.  The capture in effect
		 * (interceptionMode, the traffic.sidecar.istio.io ones) is written only
		 * for Istio's CNI plugin (pilot.cni.enabled); with istio-init the
		 * Pod keeps the user's annotations as they are. */
		inj__kv(patch, L_REV, inj__revision(j->cfg));
		mesh_buf_putc(patch, ',');
		if (first_name && !inj__member_str(j->annotations, A_DEFAULT_LOGS_CONTAINER)) {
			inj__kv(patch, A_DEFAULT_LOGS_CONTAINER, first_name);
			mesh_buf_putc(patch, ',');
		}
		if (first_name && !inj__member_str(j->annotations, A_DEFAULT_CONTAINER)) {
			inj__kv(patch, A_DEFAULT_CONTAINER, first_name);
			mesh_buf_putc(patch, ',');
		}
		if (prom) {
			inj__kv(patch, A_PROM_PATH, "/stats/prometheus");
			mesh_buf_putc(patch, ',');
			inj__kv(patch, A_PROM_PORT, j->status_str);
			mesh_buf_putc(patch, ',');
			inj__kv(patch, A_PROM_SCRAPE, "true");
			mesh_buf_putc(patch, ',');
		}
		inj__kv(patch, A_STATUS, status.data ? status.data : "");
		mesh_buf_cleanup(&status);
		mesh_buf_puts(patch, "}},");
		/* initContainers: native, the proxy (after istio-init) runs
		 * before every other; else istio-init last (Istio's reorderPod:
		 * user init containers run before capture) */
		mesh_buf_puts(patch, "{\"op\":\"add\",\"path\":\"/spec/initContainers\",\"value\":[");
		if (native) {
			if (init) {
				inj__init_container(j, patch);
				mesh_buf_putc(patch, ',');
			}
			inj__proxy_container(j, canon_name, canon_rev, true, patch);
			mesh_buf_putc(patch, ',');
		}
		for (c = j->init_containers ? j->init_containers->child : NULL; c; c = c->next) {
			inj__raw(patch, j->text, c);
			mesh_buf_putc(patch, ',');
		}
		if (!native && init)
			inj__init_container(j, patch);
		inj__uncomma(patch);
		mesh_buf_puts(patch, "]},");
		/* containers: the proxy last, or first to hold the app */
		mesh_buf_puts(patch, "{\"op\":\"add\",\"path\":\"/spec/containers\",\"value\":[");
		if (!native && j->hold) {
			inj__proxy_container(j, canon_name, canon_rev, false, patch);
			mesh_buf_putc(patch, ',');
		}
		mesh_buf_append(patch, apps.data ? apps.data : "", apps.len);
		if (!native && !j->hold) {
			mesh_buf_putc(patch, ',');
			inj__proxy_container(j, canon_name, canon_rev, false, patch);
		}
		mesh_buf_puts(patch, "]},");
		mesh_buf_cleanup(&apps);
	}
	/* volumes */
	mesh_buf_puts(patch, "{\"op\":\"add\",\"path\":\"/spec/volumes\",\"value\":[");
	for (c = j->volumes ? j->volumes->child : NULL; c; c = c->next) {
		inj__raw(patch, j->text, c);
		mesh_buf_putc(patch, ',');
	}
	inj__our_volumes(patch);
	mesh_buf_puts(patch, "]}]");
	return patch->err ? patch->err : 0;
}

/* One Pod (pod, inside text) into *patch.  Returns as inject_pod. */
static int inj__pod(const struct inject_config *cfg, const char *text, const struct json_value *pod, const char *ns,
		    struct mesh_buf *patch, char *reason, size_t cap)
{
	struct inj j = { .cfg = cfg, .text = text, .pod = pod, .reason = reason, .cap = cap };
	const char *v;
	int rc;

	if (!pod || pod->type != JSON_OBJECT) {
		inj__why(reason, cap, "not a Pod object");
		return -EINVAL;
	}
	j.meta = json_get(pod, "metadata");
	j.spec = json_get(pod, "spec");
	/* the Pod's own namespace, else the request's (a Deployment's Pods
	 * arrive without one), as istiod */
	if (inj__member_str(j.meta, "namespace") && inj__member_str(j.meta, "namespace")[0])
		ns = inj__member_str(j.meta, "namespace");
	j.ns = ns && ns[0] ? ns : "default";
	if (!j.meta || j.meta->type != JSON_OBJECT || !j.spec || j.spec->type != JSON_OBJECT) {
		inj__why(reason, cap, "not a Pod: metadata and spec are required");
		return -EINVAL;
	}
	j.labels = json_get(j.meta, "labels");
	j.annotations = json_get(j.meta, "annotations");
	j.containers = json_get(j.spec, "containers");
	j.init_containers = json_get(j.spec, "initContainers");
	j.volumes = json_get(j.spec, "volumes");
	if (j.labels && j.labels->type != JSON_OBJECT)
		j.labels = NULL;
	if (j.annotations && j.annotations->type != JSON_OBJECT)
		j.annotations = NULL;
	if (j.init_containers && j.init_containers->type != JSON_ARRAY)
		j.init_containers = NULL;
	if (j.volumes && j.volumes->type != JSON_ARRAY)
		j.volumes = NULL;
	rc = inject_required(cfg, pod, j.ns, reason, cap);
	if (rc <= 0)
		return rc;
	if (!j.containers || j.containers->type != JSON_ARRAY || !j.containers->child) {
		inj__why(reason, cap, "pod has no containers");
		return -EINVAL;
	}
	rc = inj__validate(&j);
	if (rc < 0)
		return rc;
	j.mode = inj__ann(&j, A_INTERCEPTION, "REDIRECT");
	v = inj__member_str(j.annotations, A_PROXY_IMAGE);
	j.image = v && v[0] ? v : cfg->image && cfg->image[0] ? cfg->image : INJECT_DEFAULT_IMAGE;
	j.hold = cfg->hold_application;
	j.rewrite_probes = inj__truthy(inj__member_str(j.annotations, A_REWRITE_PROBES)) != 0;
	rc = inj__proxy_config(&j);
	if (rc < 0)
		goto out;
	inj__workload(&j);
	mesh_buf_init(&j.probers, INJECT_MAX_OUTPUT);
	rc = inj__patch(&j, patch);
	if (rc == 0 && j.probers.err)
		rc = j.probers.err;
	mesh_buf_cleanup(&j.probers);
	if (rc == 0)
		rc = 1;
out:
	free(j.proxy_config_json);
	return rc;
}

static int inj__parse(struct arena **a, const char *text, size_t len, struct json_value **root)
{
	const struct json_limits lim = { JSON_MAX_DEPTH, INJECT_MAX_INPUT, JSON_MAX_NUMBER, false, true };

	*a = arena_new(INJECT_ARENA_MAX);
	if (!*a)
		return -ENOMEM;
	return json_parse_arena(*a, text, len, &lim, root);
}

int inject_pod(const struct inject_config *cfg, const char *pod_json, size_t len, const char *ns,
	       struct mesh_buf *patch, char *reason, size_t cap)
{
	struct json_value *root = NULL;
	struct arena *a = NULL;
	int rc;

	if (cap)
		reason[0] = '\0';
	rc = inj__parse(&a, pod_json, len, &root);
	if (rc < 0) {
		inj__why(reason, cap, "cannot read the Pod: %s", mesh_strerror(rc));
		goto out;
	}
	rc = inj__pod(cfg, pod_json, root, ns, patch, reason, cap);
out:
	arena_free(a);
	return rc;
}

/* ---------------------------------------------------------------- review */

static void inj__response_head(struct mesh_buf *out, const char *api, const char *uid)
{
	mesh_buf_puts(out, "{\"apiVersion\":");
	json_put_string(out, api);
	mesh_buf_puts(out, ",\"kind\":\"AdmissionReview\",\"response\":{\"uid\":");
	json_put_string(out, uid ? uid : "");
}

int inject_review(const struct inject_config *cfg, const char *body, size_t len, struct mesh_buf *out,
		  enum inject_outcome *outcome)
{
	char reason[INJECT_REASON_CAP] = "";
	const struct json_value *req, *obj, *kind;
	const char *api = "admission.k8s.io/v1", *uid = NULL, *ns, *k;
	struct json_value *root = NULL;
	struct mesh_buf patch;
	struct arena *a = NULL;
	enum inject_outcome oc = INJECT_FAILED;
	int rc;

	/* the patch travels in base64 inside the answer, which is capped at
	 * INJECT_MAX_OUTPUT too (and the webhook server's response cap) */
	mesh_buf_init(&patch, INJECT_MAX_OUTPUT / 4 * 3 - 4096);
	if (len == 0) {
		mesh_buf_puts(out, "no body found");
		rc = -EINVAL;
		goto out;
	}
	rc = inj__parse(&a, body, len, &root);
	if (rc < 0) {
		snprintf(reason, sizeof(reason), "could not decode body: %s", mesh_strerror(rc));
		goto deny;
	}
	k = json_get_str(root, "apiVersion");
	if (k && strcmp(k, "admission.k8s.io/v1beta1") == 0)
		api = k;
	/* another group/version or kind: the API server's deserializer in
	 * istiod does not know it (an absent one is read as a review) */
	if ((k && strcmp(k, "admission.k8s.io/v1") != 0 && strcmp(k, "admission.k8s.io/v1beta1") != 0) ||
	    (json_get_str(root, "kind") && strcmp(json_get_str(root, "kind"), "AdmissionReview") != 0)) {
		snprintf(reason, sizeof(reason),
			 "could not decode body: no kind \"%.100s\" is registered for version \"%.100s\" "
			 "(want AdmissionReview admission.k8s.io/v1 or v1beta1)",
			 json_get_str(root, "kind") ? json_get_str(root, "kind") : "", k ? k : "");
		uid = json_get_str(json_get(root, "request"), "uid");
		goto deny;
	}
	req = json_get(root, "request");
	uid = json_get_str(req, "uid");
	if (!req || req->type != JSON_OBJECT || !uid) {
		snprintf(reason, sizeof(reason), "could not decode body: not an AdmissionReview with a request.uid");
		goto deny;
	}
	kind = json_get(req, "kind");
	k = json_get_str(kind, "kind");
	if (k && strcmp(k, "Pod") != 0) {
		/* the webhook configuration sends Pods only: anything else passes */
		oc = INJECT_SKIPPED;
		inj__response_head(out, api, uid);
		mesh_buf_puts(out, ",\"allowed\":true}}");
		goto done;
	}
	obj = json_get(req, "object");
	ns = json_get_str(req, "namespace");
	rc = inj__pod(cfg, body, obj, ns, &patch, reason, sizeof(reason));
	if (rc == -MESH_ETOOBIG && patch.err)
		snprintf(reason, sizeof(reason), "cannot inject: the patch for this Pod would be over %zu bytes",
			 patch.max);
	else if (rc < 0 && !reason[0])
		snprintf(reason, sizeof(reason), "cannot inject: %s", mesh_strerror(rc));
	if (rc < 0)
		goto deny;
	inj__response_head(out, api, uid);
	mesh_buf_puts(out, ",\"allowed\":true");
	if (rc == 1) {
		size_t n = patch.len;
		unsigned char *b64 = malloc(4 * ((n + 2) / 3) + 1);

		if (!b64) {
			rc = -ENOMEM;
			goto out;
		}
		EVP_EncodeBlock(b64, (const unsigned char *)patch.data, (int)n);
		mesh_buf_puts(out, ",\"patch\":\"");
		mesh_buf_puts(out, (const char *)b64);
		mesh_buf_puts(out, "\",\"patchType\":\"JSONPatch\"");
		free(b64);
		oc = INJECT_INJECTED;
	} else {
		oc = INJECT_SKIPPED;
	}
	mesh_buf_puts(out, "}}");
	goto done;
deny:
	/* istiod's toAdmissionResponse: refused, with the reason */
	mesh_buf_reset(out);
	inj__response_head(out, api, uid);
	mesh_buf_puts(out, ",\"allowed\":false,\"status\":{\"message\":");
	json_put_string(out, reason);
	mesh_buf_puts(out, "}}}");
	oc = INJECT_FAILED;
done:
	rc = out->err ? out->err : 0;
out:
	if (outcome)
		*outcome = oc;
	mesh_buf_cleanup(&patch);
	arena_free(a);
	return rc;
}

/* ---------------------------------------------------------------- apply */

struct inj__op {
	char *path;                  /* JSON pointer, prefix included */
	const struct json_value *value;
	bool used;
};

static void inj__emit(struct mesh_buf *b, const char *text, const char *ptext, const struct json_value *v,
		      char *path, size_t plen, struct inj__op *ops, size_t nops);

/* Does some op target a path strictly below p? */
static bool inj__below(const struct inj__op *ops, size_t nops, const char *p, size_t n)
{
	size_t i;

	for (i = 0; i < nops; i++)
		if (!ops[i].used && strncmp(ops[i].path, p, n) == 0 && ops[i].path[n] == '/')
			return true;
	return false;
}

/* Append "/" + key (JSON pointer escaped) to path; the new length. */
static size_t inj__push(char *path, size_t plen, size_t cap, const char *key)
{
	size_t n = plen;

	if (n + 1 < cap)
		path[n++] = '/';
	for (; *key && n + 2 < cap; key++) {
		if (*key == '~') {
			path[n++] = '~';
			path[n++] = '0';
		} else if (*key == '/') {
			path[n++] = '~';
			path[n++] = '1';
		} else {
			path[n++] = *key;
		}
	}
	path[n] = '\0';
	return n;
}

#define INJ_PATH_CAP 1024

static void inj__emit(struct mesh_buf *b, const char *text, const char *ptext, const struct json_value *v,
		      char *path, size_t plen, struct inj__op *ops, size_t nops)
{
	const struct json_value *m;
	bool first = true;
	size_t i, n;

	if (v->type != JSON_OBJECT || !inj__below(ops, nops, path, plen)) {
		inj__raw(b, text, v);
		return;
	}
	mesh_buf_putc(b, '{');
	for (m = v->child; m; m = m->next) {
		n = inj__push(path, plen, INJ_PATH_CAP, m->key);
		if (!first)
			mesh_buf_putc(b, ',');
		first = false;
		json_put_string(b, m->key);
		mesh_buf_putc(b, ':');
		for (i = 0; i < nops; i++)
			if (!ops[i].used && strcmp(ops[i].path, path) == 0)
				break;
		if (i < nops) {
			ops[i].used = true;
			inj__raw(b, ptext, ops[i].value);
		} else {
			inj__emit(b, text, ptext, m, path, n, ops, nops);
		}
		path[plen] = '\0';
	}
	/* members the patch adds */
	for (i = 0; i < nops; i++) {
		const char *slash = strrchr(ops[i].path, '/');
		char key[INJ_PATH_CAP];
		size_t k = 0;
		const char *s;

		if (ops[i].used || !slash || (size_t)(slash - ops[i].path) != plen ||
		    strncmp(ops[i].path, path, plen) != 0)
			continue;
		for (s = slash + 1; *s && k + 1 < sizeof(key); s++) {
			if (s[0] == '~' && (s[1] == '0' || s[1] == '1')) {
				key[k++] = s[1] == '0' ? '~' : '/';
				s++;
			} else {
				key[k++] = *s;
			}
		}
		key[k] = '\0';
		if (!first)
			mesh_buf_putc(b, ',');
		first = false;
		json_put_string(b, key);
		mesh_buf_putc(b, ':');
		inj__raw(b, ptext, ops[i].value);
		ops[i].used = true;
	}
	mesh_buf_putc(b, '}');
}

int inject_apply(const char *doc_json, size_t len, const char *patch_json, size_t plen, const char *prefix,
		 struct mesh_buf *out)
{
	struct json_value *doc = NULL, *patch = NULL;
	struct arena *a = NULL, *pa = NULL;
	struct inj__op *ops = NULL;
	const struct json_value *op;
	char path[INJ_PATH_CAP] = "";
	size_t nops = 0, i;
	int rc;

	rc = inj__parse(&a, doc_json, len, &doc);
	if (rc < 0)
		goto out;
	rc = inj__parse(&pa, patch_json, plen, &patch);
	if (rc < 0)
		goto out;
	rc = -EINVAL;
	if (patch->type != JSON_ARRAY)
		goto out;
	ops = calloc(patch->n + 1, sizeof(*ops));
	if (!ops) {
		rc = -ENOMEM;
		goto out;
	}
	for (op = patch->child; op; op = op->next) {
		const char *o = json_get_str(op, "op"), *p = json_get_str(op, "path");

		if (!o || strcmp(o, "add") != 0 || !p || p[0] != '/' || !json_get(op, "value"))
			goto out;
		ops[nops].path = arena_printf(pa, "%s%s", prefix ? prefix : "", p);
		ops[nops].value = json_get(op, "value");
		if (!ops[nops].path) {
			rc = -ENOMEM;
			goto out;
		}
		nops++;
	}
	inj__emit(out, doc_json, patch_json, doc, path, 0, ops, nops);
	for (i = 0; i < nops; i++)
		if (!ops[i].used)
			goto out; /* its parent is not an object of the document */
	rc = out->err ? out->err : 0;
out:
	free(ops);
	arena_free(a);
	arena_free(pa);
	return rc;
}
