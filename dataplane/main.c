/*
 * main.c - meshproxy: the sidecar's one process and its one event loop.
 *
 * Today it parses every flag DESIGN.md gives meshproxy, sets up the loop,
 * serves the admin port (dataplane/admin.c) and exits cleanly on SIGTERM,
 * SIGINT (read through a signalfd on the loop: no handler runs
 * asynchronously) or POST /quitquitquit.  The xDS client
 * (dataplane/xds_client.c) streams the configuration from meshd and hands
 * each candidate to the proxy engine (engine.h), which validates it whole
 * and swaps it in or refuses it (a NACK with its reason); /ready answers
 * 200 once a first complete one is applied.  The engine binds
 * virtualOutbound/virtualInbound once a configuration naming them is
 * applied.  SIGTERM drains as Istio's agent has Envoy drain (inbound only,
 * gracefully, for --drain-duration; engine_drain()) before exiting; SIGINT
 * exits at once.  The status
 * (--status-addr, Istio's 15020: /healthz/ready and /stats/prometheus) and
 * health (--health-addr, 15021: /healthz/ready) ports are admin.c servers
 * with a restricted page set; an empty address leaves one off.
 */
#include "common/buf.h"
#include "common/duration.h"
#include "common/file.h"
#include "common/json.h"
#include "common/log.h"
#include "dataplane/admin.h"
#include "dataplane/apphealth.h"
#include "dataplane/engine.h"
#include "dataplane/ev.h"
#include "dataplane/identity.h"
#include "dataplane/iptables.h"
#include "dataplane/sds.h"
#include "dataplane/net.h"
#include "dataplane/wait.h"
#include "dataplane/xds_client.h"

#include "envoy/config/core/v3/base.pb-c.h"

#include <errno.h>
#include <getopt.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <unistd.h>

#ifndef MESH_VERSION
#define MESH_VERSION "dev"
#endif

/* Istio's terminationDrainDuration default */
#define MAIN_DRAIN_DEFAULT_MS 5000

struct opts {
	const char *xds_addr, *node_id, *labels, *service_account, *interception, *workload_name, *admin_addr, *log_level, *log_format;
	const char *access_log, *outbound_addr, *inbound_addr, *status_addr, *health_addr, *xds_protocol;
	enum xds_protocol protocol;
	uint64_t drain_ms;           /* --drain-duration */
	int exit_on_zero;            /* --exit-on-zero-active-connections */
	const char *locality;
	/* issue 12: the workload certificate (identity.c) */
	const char *ca_addr, *root_cert, *token_file, *ca_server_name;
	uint64_t cert_ttl_s;
	/* issue 13: ADS over TLS to meshd's 15012 (--xds-tls) */
	const char *xds_tls_flag;    /* auto|on|off */
	int xds_tls;                 /* decided from it */
	/* issue 16: the downstream and xDS limits */
	uint64_t headers_ms;         /* --request-headers-timeout, 0 off */
	uint64_t stream_idle_ms;     /* --stream-idle-timeout, 0 off */
	uint64_t request_ms;         /* --request-timeout, 0 off */
	uint32_t max_connections;    /* --max-connections, 0 none */
	uint32_t global_max_connections; /* --global-downstream-max-connections, 0 none */
	int global_max_set;          /* given: else from RLIMIT_NOFILE (main_global_default()) */
	uint64_t xds_max_message;    /* --xds-max-message-bytes */
};

/* issue 16: --request-headers-timeout's default.  Envoy leaves
 * request_headers_timeout off and Istio sets none, which lets a client
 * hold a connection for the whole idle timeout (1 h) by sending a head a
 * byte at a time; nginx's client_header_timeout (60 s) bounds it. */
#define MAIN_HEADERS_TIMEOUT_DEFAULT_MS 60000
/* Envoy's HCM stream_idle_timeout default, where the HCM sets none */
#define MAIN_STREAM_IDLE_DEFAULT_MS (5 * 60 * 1000)
/* --global-downstream-max-connections without the flag: RLIMIT_NOFILE's
 * soft limit less this many descriptors kept for the admin, status and
 * health ports (ADMIN_MAX_CONNS each), xDS, DNS and files, halved (each
 * downstream connection may hold an upstream one), at least
 * MAIN_GLOBAL_CX_MIN: a flood of connections on 15001/15006 then runs
 * into the limit, never into EMFILE, and the probes keep their sockets */
#define MAIN_FD_RESERVE 512
#define MAIN_GLOBAL_CX_MIN 64
/* --xds-max-message-bytes default: meshd's messages carry whole CDS/EDS
 * snapshots of a mesh (Envoy's envoy_grpc sets no limit by default and
 * Istio's agent accepts math.MaxInt32; gRPC's own default of 4 MiB is
 * short for a thousand services with their endpoints) */
#define MAIN_XDS_MAX_MESSAGE_DEFAULT GRPC_MAX_RECV_MSG_DEFAULT

/* Delta, as Istio runs Envoy since 1.22 (ISTIO_DELTA_XDS defaults to true) */
#define DEFAULT_XDS_PROTOCOL "delta"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: meshproxy [flags]\n"
		"       meshproxy iptables [flags]   (capture as istio-init does; meshproxy iptables --help)\n"
		"\n"
		"  --xds-addr HOST:PORT        meshd's ADS (default 127.0.0.1:15010; Istio's XDS_ADDRESS)\n"
		"  --xds-tls auto|on|off       ADS over TLS with the workload certificate (meshd's 15012):\n"
		"                              auto (default) is on when --xds-addr's port is 15012 or\n"
		"                              --xds-addr is --ca-addr; --ca-addr defaults to --xds-addr\n"
		"                              then (Istio's CA_ADDR defaults to XDS_ADDRESS)\n"
		"  --xds-protocol sotw|delta   xDS variant: state of the world or Delta (incremental) (default "
		DEFAULT_XDS_PROTOCOL ")\n"
		"  --node-id ID                TYPE~IP~POD.NS~NS.svc.cluster.local (TYPE sidecar or router)\n"
		"  --labels k=v,...            workload labels (node metadata LABELS)\n"
		"  --service-account SA        node metadata SERVICE_ACCOUNT\n"
		"  --interception-mode MODE    node metadata INTERCEPTION_MODE: REDIRECT, TPROXY or NONE\n"
		"                              (default $ISTIO_META_INTERCEPTION_MODE, which the injector\n"
		"                              sets from sidecar.istio.io/interceptionMode; else REDIRECT)\n"
		"  --workload-name NAME        the workload (Deployment) in Istio's metrics and metadata\n"
		"                              exchange (default $ISTIO_META_WORKLOAD_NAME, which the\n"
		"                              injector sets; else the pod name from --node-id)\n"
		"  --locality R/Z/S            Node.locality region/zone/subzone (locality load balancing)\n"
		"  --admin-addr HOST:PORT      admin port (default 127.0.0.1:15000)\n"
		"  --outbound-addr HOST:PORT   outbound listener (default 0.0.0.0:15001)\n"
		"  --inbound-addr HOST:PORT    inbound listener (default 0.0.0.0:15006)\n"
		"  --status-addr HOST:PORT     /stats/prometheus and /healthz/ready (default 0.0.0.0:15020; empty: off)\n"
		"  --health-addr HOST:PORT     /healthz/ready (default 0.0.0.0:15021; empty: off)\n"
		"  --access-log PATH|-         an extra log of every request in Envoy's default format, - for\n"
		"                              stdout, besides the config's access_log (default off)\n"
		"  --drain-duration DURATION   SIGTERM: inbound drain period before exiting (default 5s;\n"
		"                              Istio's terminationDrainDuration; waited in full unless:)\n"
		"  --exit-on-zero-active-connections  end the drain once no connection is left\n"
		"                              (Istio's EXIT_ON_ZERO_ACTIVE_CONNECTIONS)\n"
		"  --ca-addr HOST:PORT         meshd's CA (15012, TLS) for the workload certificate (mTLS);\n"
		"                              empty: none (default; Istio's CA_ADDR)\n"
		"  --root-cert PATH            the mesh root that verifies meshd and peers (default\n"
		"                              ./var/run/secrets/istio/root-cert.pem, as Istio's agent)\n"
		"  --token-file PATH           service-account token sent to the CA (default\n"
		"                              ./var/run/secrets/tokens/istio-token, as Istio's agent)\n"
		"  --cert-ttl DURATION         certificate lifetime asked for (default 24h; Istio's\n"
		"                              SECRET_TTL); renewed at half of it\n"
		"  --ca-server-name NAME       meshd's name for SNI and :authority (default\n"
		"                              istiod.istio-system.svc)\n"
		"  --max-connections N         connections each listener holds at most (Envoy's listener\n"
		"                              connection_limit); past it a new one is closed at accept and\n"
		"                              counted in listener.ADDRESS.downstream_cx_overflow (default 0: none)\n"
		"  --global-downstream-max-connections N  all listeners together (Envoy's overload\n"
		"                              global_downstream_max_connections): downstream_global_cx_overflow\n"
		"                              (default: (RLIMIT_NOFILE - 512) / 2, at least 64; admin, status and\n"
		"                              health ports do not count and keep their own cap; 0: none)\n"
		"  --request-headers-timeout DURATION  a request head must be read whole this long after\n"
		"                              its first byte, else 408 (Envoy's HCM request_headers_timeout,\n"
		"                              where the HCM sets none; default 60s, 0 off)\n"
		"  --stream-idle-timeout DURATION  Envoy's HCM stream_idle_timeout where the HCM sets none\n"
		"                              (default 5m, 0 off)\n"
		"  --request-timeout DURATION  Envoy's HCM request_timeout where the HCM sets none: the whole\n"
		"                              request received this long after it began, else 408\n"
		"                              (default 0: off, Envoy's)\n"
		"  --xds-max-message-bytes N   largest xDS message accepted from meshd (K/Ki, M/Mi suffixes);\n"
		"                              past it the stream is reset, the last good configuration kept\n"
		"                              (default 64Mi)\n"
		"  --log-level LEVEL           debug|info|warn|error (default info)\n"
		"  --log-format FORMAT         text|json (default text)\n"
		"  --version                   print the version\n"
		"  --help                      this text\n");
}

/* The flags as one JSON object, for /server_info's command_line_options. */
static void opts_json(const struct opts *o, struct mesh_buf *b)
{
	const struct {
		const char *name, *val;
	} kv[] = {
		{ "xds_addr", o->xds_addr },       { "node_id", o->node_id },
		{ "labels", o->labels },           { "service_account", o->service_account },
		{ "interception_mode", o->interception },
		{ "workload_name", o->workload_name },
		{ "locality", o->locality },
		{ "admin_addr", o->admin_addr },   { "outbound_addr", o->outbound_addr },
		{ "inbound_addr", o->inbound_addr }, { "status_addr", o->status_addr },
		{ "health_addr", o->health_addr }, { "access_log", o->access_log },
		{ "log_level", o->log_level },     { "log_format", o->log_format },
		{ "xds_protocol", o->xds_protocol },
		{ "ca_addr", o->ca_addr },         { "root_cert", o->root_cert },
		{ "token_file", o->token_file },
		{ "xds_tls", o->xds_tls ? "on" : "off" }, /* issue 13: as decided from --xds-tls */
	};
	size_t i;

	mesh_buf_putc(b, '{');
	for (i = 0; i < sizeof(kv) / sizeof(kv[0]); i++) {
		if (i)
			mesh_buf_puts(b, ", ");
		json_put_string(b, kv[i].name);
		mesh_buf_puts(b, ": ");
		json_put_string(b, kv[i].val ? kv[i].val : "");
	}
	mesh_buf_putc(b, '}');
}

/* An address flag: numeric HOST:PORT, or empty where the flag allows "off". */
static int check_addr(const char *flag, const char *v, int may_be_empty)
{
	struct sockaddr_storage ss;
	socklen_t len;

	if (may_be_empty && !*v)
		return 0;
	if (net_parse_addr(v, &ss, &len) < 0) {
		fprintf(stderr, "meshproxy: --%s: not HOST:PORT (numeric): %s\n", flag, v);
		return -EINVAL;
	}
	return 0;
}

/* A count or size: decimal digits, optionally K/Ki (x1024) or M/Mi
 * (x1024^2).  0, or -EINVAL for anything else or an overflow. */
static int parse_size(const char *s, uint64_t *out)
{
	uint64_t v = 0, mul = 1;
	const char *p = s;

	if (*p < '0' || *p > '9')
		return -EINVAL;
	for (; *p >= '0' && *p <= '9'; p++) {
		if (v > (UINT64_MAX - 9) / 10)
			return -EINVAL;
		v = v * 10 + (uint64_t)(*p - '0');
	}
	if (!strcmp(p, "K") || !strcmp(p, "Ki"))
		mul = 1024;
	else if (!strcmp(p, "M") || !strcmp(p, "Mi"))
		mul = 1024 * 1024;
	else if (*p)
		return -EINVAL;
	if (v > UINT64_MAX / mul)
		return -EINVAL;
	*out = v * mul;
	return 0;
}

/* --global-downstream-max-connections without the flag (MAIN_FD_RESERVE). */
static uint32_t main_global_default(void)
{
	struct rlimit rl;
	uint64_t n;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= UINT32_MAX)
		return INT32_MAX; /* Istio's bootstrap: 2147483647 */
	n = rl.rlim_cur > MAIN_FD_RESERVE ? (rl.rlim_cur - MAIN_FD_RESERVE) / 2 : 0;
	return n < MAIN_GLOBAL_CX_MIN ? MAIN_GLOBAL_CX_MIN : (uint32_t)n;
}

static int parse_args(int argc, char **argv, struct opts *o)
{
	enum { O_XDS = 256, O_NODE, O_LABELS, O_SA, O_INTERCEPT, O_WORKLOAD, O_LOCALITY, O_ADMIN, O_OUT, O_IN, O_STATUS, O_HEALTH, O_ALOG, O_LEVEL,
	       O_FORMAT, O_DRAIN, O_EXIT_ZERO, O_VERSION, O_HELP, O_PROTO, O_CA, O_ROOT, O_TOKEN, O_TTL, O_CANAME,
	       O_XDS_TLS, O_MAXCX, O_GMAXCX, O_HDR_TO, O_IDLE_TO, O_XDS_MAX, O_REQ_TO };
	static const struct option lo[] = {
		{ "xds-addr", required_argument, 0, O_XDS },
		{ "xds-protocol", required_argument, 0, O_PROTO },
		{ "node-id", required_argument, 0, O_NODE },
		{ "labels", required_argument, 0, O_LABELS },
		{ "service-account", required_argument, 0, O_SA },
		{ "interception-mode", required_argument, 0, O_INTERCEPT },
		{ "workload-name", required_argument, 0, O_WORKLOAD },
		{ "locality", required_argument, 0, O_LOCALITY },
		{ "admin-addr", required_argument, 0, O_ADMIN },
		{ "outbound-addr", required_argument, 0, O_OUT },
		{ "inbound-addr", required_argument, 0, O_IN },
		{ "status-addr", required_argument, 0, O_STATUS },
		{ "health-addr", required_argument, 0, O_HEALTH },
		{ "access-log", required_argument, 0, O_ALOG },
		{ "log-level", required_argument, 0, O_LEVEL },
		{ "log-format", required_argument, 0, O_FORMAT },
		{ "drain-duration", required_argument, 0, O_DRAIN },
		{ "exit-on-zero-active-connections", no_argument, 0, O_EXIT_ZERO },
		{ "ca-addr", required_argument, 0, O_CA },
		{ "root-cert", required_argument, 0, O_ROOT },
		{ "token-file", required_argument, 0, O_TOKEN },
		{ "cert-ttl", required_argument, 0, O_TTL },
		{ "ca-server-name", required_argument, 0, O_CANAME },
		{ "xds-tls", required_argument, 0, O_XDS_TLS },
		{ "max-connections", required_argument, 0, O_MAXCX },
		{ "global-downstream-max-connections", required_argument, 0, O_GMAXCX },
		{ "request-headers-timeout", required_argument, 0, O_HDR_TO },
		{ "stream-idle-timeout", required_argument, 0, O_IDLE_TO },
		{ "request-timeout", required_argument, 0, O_REQ_TO },
		{ "xds-max-message-bytes", required_argument, 0, O_XDS_MAX },
		{ "version", no_argument, 0, O_VERSION },
		{ "help", no_argument, 0, O_HELP },
		{ 0, 0, 0, 0 },
	};
	int c;

	memset(o, 0, sizeof(*o));
	o->xds_addr = "127.0.0.1:15010";
	o->xds_protocol = DEFAULT_XDS_PROTOCOL;
	o->node_id = "sidecar~127.0.0.1~meshproxy.default~default.svc.cluster.local";
	o->labels = "";
	o->service_account = "default";
	/* the injector's env, as Istio's agent reads it */
	o->workload_name = getenv("ISTIO_META_WORKLOAD_NAME") ? getenv("ISTIO_META_WORKLOAD_NAME") : "";
	o->interception = getenv("ISTIO_META_INTERCEPTION_MODE") && *getenv("ISTIO_META_INTERCEPTION_MODE")
				  ? getenv("ISTIO_META_INTERCEPTION_MODE") : "REDIRECT";
	o->locality = "";
	o->admin_addr = "127.0.0.1:15000";
	o->outbound_addr = "0.0.0.0:15001";
	o->inbound_addr = "0.0.0.0:15006";
	o->status_addr = "0.0.0.0:15020";
	o->health_addr = "0.0.0.0:15021";
	o->access_log = "";
	o->log_level = "info";
	o->log_format = "text";
	o->drain_ms = MAIN_DRAIN_DEFAULT_MS;
	o->ca_addr = "";
	o->root_cert = "./var/run/secrets/istio/root-cert.pem";
	o->token_file = "./var/run/secrets/tokens/istio-token";
	o->cert_ttl_s = 24 * 3600;
	o->xds_tls_flag = "auto";
	o->headers_ms = MAIN_HEADERS_TIMEOUT_DEFAULT_MS;
	o->stream_idle_ms = MAIN_STREAM_IDLE_DEFAULT_MS;
	o->xds_max_message = MAIN_XDS_MAX_MESSAGE_DEFAULT;
	while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		switch (c) {
		case O_XDS: o->xds_addr = optarg; break;
		case O_PROTO: o->xds_protocol = optarg; break;
		case O_NODE: o->node_id = optarg; break;
		case O_LABELS: o->labels = optarg; break;
		case O_SA: o->service_account = optarg; break;
		case O_INTERCEPT: o->interception = optarg; break;
		case O_WORKLOAD: o->workload_name = optarg; break;
		case O_LOCALITY: o->locality = optarg; break;
		case O_ADMIN: o->admin_addr = optarg; break;
		case O_OUT: o->outbound_addr = optarg; break;
		case O_IN: o->inbound_addr = optarg; break;
		case O_STATUS: o->status_addr = optarg; break;
		case O_HEALTH: o->health_addr = optarg; break;
		case O_ALOG: o->access_log = optarg; break;
		case O_LEVEL: o->log_level = optarg; break;
		case O_FORMAT: o->log_format = optarg; break;
		case O_DRAIN: {
			int64_t ns;

			if (mesh_duration_parse(optarg, &ns) < 0 || ns < 0) {
				fprintf(stderr, "meshproxy: --drain-duration: not a duration (examples: 5s, 500ms): %s\n", optarg);
				return -EINVAL;
			}
			/* 0 drains for no time at all: at least one millisecond */
			o->drain_ms = ns / 1000000 ? (uint64_t)(ns / 1000000) : 1;
			break;
		}
		case O_EXIT_ZERO: o->exit_on_zero = 1; break;
		case O_CA: o->ca_addr = optarg; break;
		case O_ROOT: o->root_cert = optarg; break;
		case O_TOKEN: o->token_file = optarg; break;
		case O_CANAME: o->ca_server_name = optarg; break;
		case O_XDS_TLS: o->xds_tls_flag = optarg; break;
		case O_MAXCX:
		case O_GMAXCX: {
			uint64_t n;

			if (parse_size(optarg, &n) < 0 || n > UINT32_MAX) {
				fprintf(stderr, "meshproxy: --%s: a number of connections (0: no limit), not %s\n",
					c == O_MAXCX ? "max-connections" : "global-downstream-max-connections", optarg);
				return -EINVAL;
			}
			if (c == O_MAXCX) {
				o->max_connections = (uint32_t)n;
			} else {
				o->global_max_connections = (uint32_t)n;
				o->global_max_set = 1;
			}
			break;
		}
		case O_HDR_TO:
		case O_REQ_TO:
		case O_IDLE_TO: {
			int64_t ns;

			if (mesh_duration_parse(optarg, &ns) < 0 || ns < 0) {
				fprintf(stderr, "meshproxy: --%s: not a duration (examples: 10s, 500ms, 0 for off): %s\n",
					c == O_HDR_TO	? "request-headers-timeout"
					: c == O_REQ_TO ? "request-timeout"
							: "stream-idle-timeout",
					optarg);
				return -EINVAL;
			}
			/* a sub-millisecond value is one millisecond, not off */
			*(c == O_HDR_TO ? &o->headers_ms : c == O_REQ_TO ? &o->request_ms : &o->stream_idle_ms) =
				ns ? (ns / 1000000 ? (uint64_t)(ns / 1000000) : 1) : 0;
			break;
		}
		case O_XDS_MAX:
			if (parse_size(optarg, &o->xds_max_message) < 0 || o->xds_max_message < 64 ||
			    o->xds_max_message > UINT32_MAX) {
				fprintf(stderr, "meshproxy: --xds-max-message-bytes: a size of at least 64 bytes, below 4Gi "
						"(examples: 4194304, 4Mi, 64Mi), not %s\n", optarg);
				return -EINVAL;
			}
			break;
		case O_TTL: {
			int64_t ns;

			if (mesh_duration_parse(optarg, &ns) < 0 || ns < 1000000000LL) {
				fprintf(stderr, "meshproxy: --cert-ttl: a duration of at least 1s (examples: 24h, 20s): %s\n",
					optarg);
				return -EINVAL;
			}
			o->cert_ttl_s = (uint64_t)(ns / 1000000000LL);
			break;
		}
		case O_VERSION:
			printf("meshproxy %s\n", MESH_VERSION);
			exit(0);
		case 'h':
		case O_HELP:
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			return -EINVAL;
		}
	}
	if (optind < argc) {
		if (!strcmp(argv[optind], "iptables")) {
			fprintf(stderr, "meshproxy: iptables is a subcommand: its flags follow it "
					"(meshproxy iptables --help)\n");
			return -EINVAL;
		}
		fprintf(stderr, "meshproxy: unexpected argument %s\n", argv[optind]);
		return -EINVAL;
	}
	/* Istio's model.InterceptionMode values (the injector validates the
	 * annotation the same way) */
	if (strcmp(o->interception, "REDIRECT") && strcmp(o->interception, "TPROXY") &&
	    strcmp(o->interception, "NONE")) {
		fprintf(stderr, "meshproxy: --interception-mode: REDIRECT, TPROXY or NONE, not %s\n", o->interception);
		return -EINVAL;
	}
	if (check_addr("xds-addr", o->xds_addr, 0) < 0 || check_addr("admin-addr", o->admin_addr, 0) < 0 ||
	    check_addr("outbound-addr", o->outbound_addr, 0) < 0 ||
	    check_addr("inbound-addr", o->inbound_addr, 0) < 0 ||
	    check_addr("status-addr", o->status_addr, 1) < 0 || check_addr("health-addr", o->health_addr, 1) < 0 ||
	    check_addr("ca-addr", o->ca_addr, 1) < 0)
		return -EINVAL;
	/* issue 13: TLS to 15012 as Istio's agent decides it (the discovery
	 * address on 15012, CA_ADDR defaulting to it) */
	if (!strcmp(o->xds_tls_flag, "on")) {
		o->xds_tls = 1;
	} else if (!strcmp(o->xds_tls_flag, "auto")) {
		const char *colon = strrchr(o->xds_addr, ':');

		o->xds_tls = (colon && !strcmp(colon + 1, "15012")) || (*o->ca_addr && !strcmp(o->ca_addr, o->xds_addr));
	} else if (strcmp(o->xds_tls_flag, "off") != 0) {
		fprintf(stderr, "meshproxy: --xds-tls: auto, on or off, not %s\n", o->xds_tls_flag);
		return -EINVAL;
	}
	if (o->xds_tls && !*o->ca_addr)
		o->ca_addr = o->xds_addr;
	if (!strcmp(o->xds_protocol, xds_protocol_name(XDS_PROTOCOL_DELTA))) {
		o->protocol = XDS_PROTOCOL_DELTA;
	} else if (!strcmp(o->xds_protocol, xds_protocol_name(XDS_PROTOCOL_SOTW))) {
		o->protocol = XDS_PROTOCOL_SOTW;
	} else {
		fprintf(stderr, "meshproxy: --xds-protocol: sotw or delta, not %s\n", o->xds_protocol);
		return -EINVAL;
	}
	if (mesh_log_setup(o->log_level, o->log_format) < 0) {
		fprintf(stderr, "meshproxy: bad --log-level or --log-format\n");
		return -EINVAL;
	}
	/* the scopes meshproxy logs under: the admin port's /logging loggers */
	(void)mesh_log_scope_add("admin");
	(void)mesh_log_scope_add("grpc");
	(void)mesh_log_scope_add("identity");
	(void)mesh_log_scope_add("meshproxy");
	(void)mesh_log_scope_add("xds");
	return 0;
}

/* An HTTP token (RFC 9110 tchar): what a header name must be on the wire. */
static int is_token(const char *s)
{
	static const char tchar[] = "!#$%&'*+-.^_`|~";

	if (!*s)
		return 0;
	for (; *s; s++)
		if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s && strchr(tchar, *s))))
			return 0;
	return 1;
}

/* Walks m for HeaderValue messages (headers to add, anywhere in a route
 * config) whose key meshproxy's HTTP/1.1 writer would refuse to send
 * (h1_out_header: no injection).  Returns 0 or -EINVAL with err. */
static int check_headers(const ProtobufCMessage *m, char *err, size_t cap, int depth)
{
	const ProtobufCMessageDescriptor *d = m->descriptor;
	unsigned i;
	size_t k;

	if (depth > 32)
		return 0;
	if (d == &envoy__config__core__v3__header_value__descriptor) {
		const Envoy__Config__Core__V3__HeaderValue *h = (const void *)m;
		if (!is_token(h->key)) {
			snprintf(err, cap, "header name \"%.100s\" is not an HTTP token: meshproxy cannot send it",
				 h->key);
			return -EINVAL;
		}
		return 0;
	}
	for (i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];
		const char *base = (const char *)m;

		if (f->type != PROTOBUF_C_TYPE_MESSAGE)
			continue;
		if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) && *(const uint32_t *)(base + f->quantifier_offset) != f->id)
			continue;
		if (f->label == PROTOBUF_C_LABEL_REPEATED) {
			size_t n = *(const size_t *)(base + f->quantifier_offset);
			ProtobufCMessage *const *v = *(ProtobufCMessage *const *const *)(base + f->offset);
			for (k = 0; k < n; k++)
				if (v[k] && check_headers(v[k], err, cap, depth + 1) < 0)
					return -EINVAL;
		} else {
			const ProtobufCMessage *sub = *(const ProtobufCMessage *const *)(base + f->offset);
			if (sub && check_headers(sub, err, cap, depth + 1) < 0)
				return -EINVAL;
		}
	}
	return 0;
}

/* The xDS client's apply hook: what meshproxy's HTTP/1.1 writer could not
 * send is refused before the engine compiles the rest (engine_apply()
 * swaps the candidate in, or refuses it with its reason: a NACK). */
static int apply_cb(void *ctx, struct px_snapshot *cand, char *err, size_t cap)
{
	const struct px_resource_set *rs = &cand->sets[XDS_ROUTE];
	char why[256];
	size_t i;

	for (i = 0; i < rs->n; i++) {
		const ProtobufCMessage *m = px_resource_msg(rs->v[i]);

		if (!m) {
			snprintf(err, cap, "out of memory");
			return -ENOMEM;
		}
		if (check_headers(m, why, sizeof(why), 0) < 0) {
			snprintf(err, cap, "route config %.100s: %s", rs->v[i]->name, why);
			return -EINVAL;
		}
	}
	/* the pages this frees (the previous compiled configuration) are
	 * returned once the message is handled (grpc_client.c,
	 * grpc_msg_release) */
	return engine_apply(ctx, cand, err, cap);
}

/* The admin pages' ctx: the xDS client (config dump, its counters) and
 * the engine (its counters: RBAC). */
struct stats_ctx {
	struct xds_client *xds;
	struct engine *engine;
	struct px_identity *ident; /* NULL without --ca-addr */
	struct admin *admin, *status, *health; /* their limit counters on /stats and /stats/prometheus
	                                        * (NULL: off) */
};

/* admin_info.warming: with --ca-addr the proxy is not ready before its
 * first workload certificate (Envoy under Istio keeps its listeners warming
 * until SDS sends the secret, so the pod is not ready either) */
static const char *warming_cb(void *ctx)
{
	const struct stats_ctx *sc = ctx;

	if (sc->ident && px_identity_generation(sc->ident) == 0)
		return "not ready: no workload certificate from the CA yet\n";
	/* issue 13: Envoy's initial warming of DNS clusters (engine.h) */
	if (sc->engine && !engine_dns_warmed(sc->engine))
		return "not ready: DNS clusters resolving their first addresses\n";
	return NULL;
}

static size_t sds_more_cb(void *ctx, struct mesh_buf *out, int first)
{
	return px_sds_dump_entries(ctx, out, first);
}

static void secrets_dump_cb(void *ctx, struct mesh_buf *out)
{
	const struct stats_ctx *sc = ctx;

	/* issue 13: and the secrets by name (sds.c), contents redacted */
	px_identity_secrets_dump_with(sc->ident, out, sds_more_cb, px_sds_default());
}

static int dump_cb(void *ctx, struct mesh_buf *out)
{
	const struct stats_ctx *sc = ctx;

	/* with a workload identity, its certificate and root as Envoy dumps
	 * SDS secrets (istioctl / meshctl proxy-config secrets read them) */
	return xds_client_config_dump_with(sc->xds, out,
					   sc->ident || px_sds_count(px_sds_default()) ? secrets_dump_cb : NULL, ctx);
}

/* issue 13: xds_client_config.tls_setup: the identity's current
 * certificate for each new ADS connection to 15012 */
static int xds_tls_cb(void *ctx, struct px_tls_ctx **tls, char **auth)
{
	return px_identity_xds_tls(ctx, tls, auth);
}

static void stats_cb(void *ctx, struct mesh_buf *out)
{
	struct stats_ctx *sc = ctx;

	xds_client_stats_text(sc->xds, out);
	engine_stats_text(sc->engine, out);
	if (sc->status)
		admin_stats_text(sc->status, out);
	if (sc->health)
		admin_stats_text(sc->health, out);
}

static int reopen_logs_cb(void *ctx, char *err, size_t cap)
{
	struct stats_ctx *sc = ctx;

	return engine_reopen_logs(sc->engine, err, cap);
}

static void drained(void *arg)
{
	log_info("meshproxy", "drained: exiting");
	ev_stop(arg);
}

static void signal_cb(struct ev_loop *loop, struct ev_io *io, unsigned events)
{
	struct signalfd_siginfo si;
	struct engine *engine = io->data;

	(void)events;
	while (read(io->fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		if (si.ssi_signo == SIGTERM && engine) {
			log_info("meshproxy", "SIGTERM: draining");
			engine_drain(engine, drained, loop);
			continue;
		}
		if (si.ssi_signo == SIGUSR1) {
			/* Envoy's: reopen the access logs (rotation by rename) */
			char err[256];

			if (engine && engine_reopen_logs(engine, err, sizeof(err)) < 0)
				log_warn("meshproxy", "SIGUSR1: %s (kept the old file)", err);
			else
				log_info("meshproxy", "SIGUSR1: access logs reopened");
			continue;
		}
		log_info("meshproxy", "signal %u: exiting", si.ssi_signo);
		ev_stop(loop);
	}
}

/* issue 16: the admin, status and health ports' limit counters in
 * Prometheus form, after the engine's (meshproxy's own families: Envoy
 * keeps its admin listener's under listener.admin.*, which /stats shows). */
static void probe_ports_prom(const struct stats_ctx *sc, struct mesh_buf *out)
{
	const struct admin *v[3] = { sc->admin, sc->status, sc->health };
	static const char *const port[3] = { "admin", "status", "health" };
	static const char *const fam[4] = { "downstream_cx_evicted", "downstream_cx_overflow", "downstream_rq_timeout",
					    "downstream_cx_idle_timeout" };
	size_t f, i;

	for (f = 0; f < 4; f++) {
		mesh_buf_printf(out, "# TYPE meshproxy_admin_%s counter\n", fam[f]);
		for (i = 0; i < 3; i++) {
			const struct admin_stats *st = v[i] ? admin_stats(v[i]) : NULL;

			if (!st)
				continue;
			mesh_buf_printf(out, "meshproxy_admin_%s{admin_port=\"%s\"} %llu\n", fam[f], port[i],
					(unsigned long long)(f == 0	? st->cx_evicted
							     : f == 1 ? st->cx_refused
							     : f == 2 ? st->rq_timeout
								      : st->cx_idle_timeout));
		}
	}
}

static int engine_pages(void *ctx, const char *path, size_t plen, struct mesh_buf *out, const char **ctype)
{
	const struct stats_ctx *sc = ctx;
	int rc = engine_admin_page(sc->engine, path, plen, out, ctype);

	if (rc == 0 && plen == 17 && !memcmp(path, "/stats/prometheus", 17))
		probe_ports_prom(sc, out);
	return rc;
}

/* The status port's pages: meshproxy's own /stats/prometheus (Istio's
 * agent also merges the application's metrics there; meshproxy does not). */
static int status_pages(void *ctx, const char *path, size_t plen, struct mesh_buf *out, const char **ctype)
{
	static const char prom[] = "/stats/prometheus";

	if (plen != sizeof(prom) - 1 || memcmp(path, prom, plen) != 0)
		return -ENOENT;
	return engine_pages(ctx, path, plen, out, ctype);
}

/* Starts a status/health port on addr (nothing when addr is empty). */
static int start_status(struct ev_loop *loop, const char *flag, const char *addr, const struct admin_info *info,
			admin_page_fn pages, void *ctx, struct admin **out)
{
	struct admin_info si = *info;
	int rc;

	*out = NULL;
	if (!*addr)
		return 0;
	si.status_only = 1;
	rc = admin_start(loop, addr, &si, out);
	if (rc < 0) {
		log_error("meshproxy", "%s listener %s: %s", flag, addr, strerror(-rc));
		return rc;
	}
	if (pages)
		admin_set_pages(*out, pages, ctx);
	log_info("meshproxy", "%s on %s (port %d)", flag, addr, admin_port(*out));
	return 0;
}

int main(int argc, char **argv)
{
	struct opts o;
	struct ev_loop *loop = NULL;
	struct admin *admin = NULL, *status = NULL, *health = NULL;
	struct apphealth *apph = NULL; /* /app-health/... on the status port (issue 15) */
	struct engine *engine = NULL;
	struct engine_opts eo;
	struct admin_info info;
	struct stats_ctx sctx;
	struct xds_client *xds = NULL;
	struct xds_client_config xcfg;
	struct px_identity *ident = NULL;
	struct px_sds *sds = NULL;
	struct ev_io sigio;
	struct mesh_buf cmdline;
	sigset_t mask;
	int sfd = -1, rc;

	/* issue 15: the injector's postStart hook (holdApplicationUntilProxyStarts) */
	if (argc > 1 && strcmp(argv[1], "wait") == 0)
		return meshproxy_wait_main(argc - 1, argv + 1);
	/* A fixed mmap threshold: glibc raises it (up to 32 MiB) each time a
	 * large mmap'd block is freed, after which the next large buffers (a
	 * whole xDS response, the /clusters page of 1,000 clusters) come from
	 * the heap and stay resident, fragmenting it, after they are freed.
	 * With the threshold fixed at glibc's own default they are mapped and
	 * unmapped: with the bench's 1,005 clusters the idle heap is ~0.4 MB
	 * smaller and a /clusters read no longer adds ~1.9 MB (DESIGN.md:
	 * <= 10 MB RSS). */
	mallopt(M_MMAP_THRESHOLD, 128 * 1024);
	/* issue 15: `meshproxy iptables ...` is istio-init's capture step,
	 * its own flags (dataplane/iptables.h) */
	if (argc > 1 && !strcmp(argv[1], "iptables"))
		return ipt_main(argc - 1, argv + 1);
	mesh_buf_init(&cmdline, 16 * 1024);
	rc = parse_args(argc, argv, &o);
	if (rc < 0)
		goto out;
	opts_json(&o, &cmdline);
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGUSR1);
	if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0 ||
	    (sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC)) < 0) {
		rc = -errno;
		log_error("meshproxy", "signalfd: %s", strerror(-rc));
		goto out;
	}
	loop = ev_loop_new();
	if (!loop) {
		rc = -errno;
		log_error("meshproxy", "event loop: %s", strerror(-rc));
		goto out;
	}
	memset(&eo, 0, sizeof(eo));
	eo.outbound_addr = o.outbound_addr;
	eo.inbound_addr = o.inbound_addr;
	eo.access_log = o.access_log;
	eo.drain_ms = o.drain_ms;
	eo.exit_on_zero = o.exit_on_zero;
	eo.headers_ms = o.headers_ms;
	eo.stream_idle_ms = o.stream_idle_ms ? o.stream_idle_ms : ENGINE_OFF;
	eo.request_ms = o.request_ms;
	eo.max_connections = o.max_connections;
	eo.global_max_connections = o.global_max_set ? o.global_max_connections : main_global_default();
	log_info("meshproxy", "downstream limits: %u connections per listener%s, %u on all listeners%s, "
		 "request_headers_timeout %llu ms, stream_idle_timeout %llu ms, request_timeout %llu ms (0: none/off)",
		 eo.max_connections, eo.max_connections ? "" : " (none)", eo.global_max_connections,
		 eo.global_max_connections ? "" : " (none)",
		 (unsigned long long)o.headers_ms, (unsigned long long)o.stream_idle_ms,
		 (unsigned long long)o.request_ms);
	eo.node_id = o.node_id;
	eo.labels = o.labels;
	eo.service_account = o.service_account;
	eo.workload_name = o.workload_name;
	/* issue 13: Istio's node type router is a gateway (DESIGN.md: binds the
	 * ports of its Gateway servers, no 15001/15006) */
	eo.router = !strncmp(o.node_id, "router~", 7);
	rc = engine_new(loop, &eo, &engine);
	if (rc < 0) {
		log_error("meshproxy", "proxy engine (access log %s): %s", o.access_log, strerror(-rc));
		goto out;
	}
	if (*o.ca_addr) {
		/* issue 12: the workload certificate; the root is read once, here,
		 * before the loop runs (no file I/O on the loop for it) */
		struct px_identity_opts io = { 0 };
		char *root = NULL;
		size_t rlen;

		rc = mesh_read_file(o.root_cert, 1u << 20, &root, &rlen);
		if (rc < 0) {
			log_error("meshproxy", "--root-cert %s: %s", o.root_cert, mesh_strerror(rc));
			goto out;
		}
		io.ca_addr = o.ca_addr;
		io.root_pem = root;
		io.token_file = o.token_file;
		io.server_name = o.ca_server_name;
		io.ttl_s = o.cert_ttl_s;
		rc = px_identity_new(loop, &io, &ident);
		free(root);
		if (rc < 0) {
			log_error("meshproxy", "workload identity from %s: %s", o.ca_addr, mesh_strerror(rc));
			goto out;
		}
		engine_set_identity(engine, ident);
		log_info("meshproxy", "workload certificate from meshd's CA at %s (ttl %llus)", o.ca_addr,
			 (unsigned long long)o.cert_ttl_s);
	}
	ev_io_init(&sigio, sfd, signal_cb, engine);
	rc = ev_io_start(loop, &sigio, EV_READ);
	if (rc < 0)
		goto out;
	/* issue 13: the secrets meshd sends by name (credentialName) */
	rc = px_sds_new(&sds);
	if (rc < 0)
		goto out;
	px_sds_set_default(sds);
	memset(&xcfg, 0, sizeof(xcfg));
	xcfg.node_id = o.node_id;
	xcfg.labels = o.labels;
	xcfg.service_account = o.service_account;
	xcfg.interception = o.interception;
	xcfg.protocol = o.protocol;
	xcfg.locality = o.locality;
	xcfg.version = MESH_VERSION;
	xcfg.apply = apply_cb;
	xcfg.apply_ctx = engine;
	/* gRPC core servers answer PINGs more often than every 5 minutes on a
	 * quiet stream with GOAWAY too_many_pings: TCP keepalive covers the rest */
	xcfg.grpc.keepalive_ms = 330000;
	xcfg.grpc.keepalive_timeout_ms = 20000;
	xcfg.grpc.connect_timeout_ms = 10000;
	xcfg.grpc.limits.max_recv_msg = (size_t)o.xds_max_message;
	xcfg.sds = sds;
	if (o.xds_tls) {
		xcfg.tls_setup = xds_tls_cb;
		xcfg.tls_setup_ctx = ident;
		xcfg.grpc.tls_sni = o.ca_server_name ? o.ca_server_name : "istiod.istio-system.svc";
	}
	rc = xds_client_new(loop, &xcfg, &xds);
	if (rc < 0) {
		log_error("meshproxy", "xDS client: %s", mesh_strerror(rc));
		goto out;
	}
	engine_set_xds_stats(engine, &xds_client_stats(xds)->cx);
	memset(&info, 0, sizeof(info));
	info.version = MESH_VERSION;
	info.node_id = o.node_id;
	info.cmdline = cmdline.err ? NULL : cmdline.data;
	info.ready = xds_client_ready(xds);
	info.draining = engine_draining_flag(engine);
	info.config_dump = dump_cb;
	info.stats = stats_cb;
	info.reopen_logs = reopen_logs_cb;
	sctx.xds = xds;
	sctx.engine = engine;
	sctx.ident = ident;
	sctx.admin = sctx.status = sctx.health = NULL;
	info.warming = warming_cb;
	info.ctx = &sctx;
	info.start_ms = ev_now(loop);
	rc = admin_start(loop, o.admin_addr, &info, &admin);
	if (rc < 0) {
		log_error("meshproxy", "admin listener %s: %s", o.admin_addr, strerror(-rc));
		goto out;
	}
	sctx.admin = admin;
	admin_set_pages(admin, engine_pages, &sctx);
	/* the admin, status and health ports are never an upstream (the loop guard) */
	rc = engine_self_add(engine, o.admin_addr, admin_port(admin));
	if (rc < 0)
		goto out;
	log_info("meshproxy", "meshproxy %s: admin on %s (port %d), node %s%s", MESH_VERSION, o.admin_addr,
		 admin_port(admin), o.node_id, eo.router ? " (gateway: LDS listeners only)" : "");
	rc = start_status(loop, "status", o.status_addr, &info, status_pages, &sctx, &status);
	if (rc < 0)
		goto out;
	rc = start_status(loop, "health", o.health_addr, &info, NULL, NULL, &health);
	if (rc < 0)
		goto out;
	sctx.status = status;
	sctx.health = health;
	if (status) {
		/* the app probes the injector rewrote (ISTIO_KUBE_APP_PROBERS); a
		 * bad value is logged and the probes answer 404 */
		char aherr[256];

		if (apphealth_new(loop, getenv("ISTIO_KUBE_APP_PROBERS"), &apph, aherr, sizeof(aherr)) < 0)
			log_error("meshproxy", "ISTIO_KUBE_APP_PROBERS: %s: app probes not served", aherr);
		else if (apphealth_count(apph))
			admin_set_async(status, apphealth_serve, apph);
	}
	if (status)
		rc = engine_self_add(engine, o.status_addr, admin_port(status));
	if (rc >= 0 && health)
		rc = engine_self_add(engine, o.health_addr, admin_port(health));
	if (rc < 0)
		goto out;
	rc = xds_client_start(xds, o.xds_addr);
	if (rc < 0) {
		log_error("meshproxy", "xDS client %s: %s", o.xds_addr, mesh_strerror(rc));
		goto out;
	}
	log_info("meshproxy", "ADS (%s) to meshd at %s%s", o.xds_protocol, o.xds_addr,
		 o.xds_tls ? " over TLS with the workload identity" : "");
	rc = ev_run(loop);
	if (rc < 0)
		log_error("meshproxy", "event loop: %s", strerror(-rc));
	else
		log_info("meshproxy", "exited cleanly");
out:
	admin_free(health);
	admin_free(status);
	apphealth_free(apph);
	admin_free(admin);
	xds_client_free(xds);
	engine_free(engine);
	px_sds_free(sds);
	px_identity_free(ident);
	if (loop) {
		ev_io_stop(loop, &sigio);
		ev_loop_free(loop);
	}
	if (sfd >= 0)
		close(sfd);
	mesh_buf_cleanup(&cmdline);
	return rc < 0 ? 1 : 0;
}
