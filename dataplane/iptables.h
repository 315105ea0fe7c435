/*
 * iptables.h - `meshproxy iptables`: traffic capture as istio-init programs it.
 *
 * The rules are Istio's istio-iptables (tools/istio-iptables/pkg/capture
 * run.go and builder/) rule for rule: nat chains ISTIO_INBOUND,
 * ISTIO_REDIRECT, ISTIO_IN_REDIRECT, ISTIO_OUTPUT (mangle ISTIO_DIVERT /
 * ISTIO_TPROXY / ISTIO_DROP and raw ISTIO_OUTPUT_DNS where asked), in the
 * same order and with the same text, so `--dry-run` prints what
 * istio-iptables hands iptables-restore.  Applied with `iptables-restore
 * --noflush` (one transaction per family) after Istio's cleanup of any
 * earlier ISTIO_* chains and jumps, so a re-run leaves the same rules.
 */
#ifndef MESH_DATAPLANE_IPTABLES_H
#define MESH_DATAPLANE_IPTABLES_H

#include "common/buf.h"

#include <stdio.h>

/* The configuration: istio-iptables' config.Config fields this port uses.
 * Strings are borrowed (argv, the environment or static defaults). */
struct ipt_opts {
	const char *proxy_port;          /* -p --envoy-port (15001) */
	const char *inbound_capture_port;/* -z --inbound-capture-port (15006) */
	const char *inbound_tunnel_port; /* -e --inbound-tunnel-port (15008) */
	const char *proxy_uid, *proxy_gid; /* -u / -g, lists (1337; gid = uid) */
	const char *mode;                /* -m REDIRECT (default) | TPROXY */
	const char *tproxy_mark;         /* -t (1337) */
	const char *tproxy_route_table;  /* -r (133) */
	const char *inbound_ports;       /* -b list or "*" ("": no inbound capture) */
	const char *inbound_ports_exclude;   /* -d, with -b '*' */
	const char *outbound_ports;          /* -q */
	const char *outbound_ports_exclude;  /* -o */
	const char *cidr_include;        /* -i list or "*" */
	const char *cidr_exclude;        /* -x */
	const char *exclude_ifaces;      /* -c */
	const char *kube_virt_ifaces;    /* -k */
	const char *owner_groups_include;/* ISTIO_OUTBOUND_OWNER_GROUPS ("*") */
	const char *owner_groups_exclude;/* ISTIO_OUTBOUND_OWNER_GROUPS_EXCLUDE */
	const char *loopback_cidr;       /* ISTIO_OUTBOUND_IPV4_LOOPBACK_CIDR (127.0.0.1/32) */
	const char *dns_servers;         /* ours: --dns-servers; else /etc/resolv.conf as Istio */
	int ipv6;                        /* -1: decided from the local addresses as Istio does */
	int dual_stack, dry_run, redirect_dns, capture_all_dns, drop_invalid, cleanup_only;
	int skip_rule_apply;             /* --skip-rule-apply: change nothing */
	const char *network_namespace;   /* --network-namespace PATH|NAME: setns first */
	/* accepted as istio-iptables takes them, no effect here (reconcile
	 * and force-apply: a run always cleans up and applies) */
	int reconcile, force_apply, run_validation;
	const char *log_level, *probe_port, *probe_timeout;
};

/* An environment lookup (getenv, or a table in tests): NULL when unset. */
typedef const char *(*ipt_env_fn)(const char *name);

/* Fill o from the environment (istio-iptables' env names: ISTIO_INBOUND_PORTS,
 * ISTIO_SERVICE_CIDR, PROXY_UID, ...) and then argv (argv[0] is
 * "iptables"; long and short flags as istio-iptables names them; the
 * command line wins over the environment).  0, or -EINVAL with the reason
 * on err; a --help prints the usage on out and returns 1. */
int ipt_opts_parse(struct ipt_opts *o, int argc, char **argv, ipt_env_fn env, FILE *out, FILE *err);

/* The iptables-restore input for IPv4 (v4) and, when o->ipv6, IPv6 (v6),
 * appended to the buffers: Istio's BuildV4Restore()/BuildV6Restore() text
 * (tables in name order, "* TABLE", -N lines, rules, COMMIT).  dns4/dns6
 * are the DNS servers (comma lists, may be NULL) for --redirect-dns.
 * 0, or -EINVAL (a bad CIDR or value: reason on err) / -ENOMEM. */
int ipt_build(const struct ipt_opts *o, const char *dns4, const char *dns6, struct mesh_buf *v4,
	      struct mesh_buf *v6, FILE *err);

/* The --dry-run text for o: the IPv4 iptables-restore input, then the
 * IPv6 one when o->ipv6 (o->ipv6 < 0 is decided from the local addresses
 * first, as Istio does; --dns-servers else /etc/resolv.conf for DNS
 * capture), appended to out.  0 or negative errno (reason on err). */
int ipt_render(struct ipt_opts *o, struct mesh_buf *out, FILE *err);

/* `meshproxy iptables ARGS`: parse, build, then print (--dry-run) or apply
 * (root; iptables-restore on PATH).  Returns the process exit code. */
int ipt_main(int argc, char **argv);

#endif
