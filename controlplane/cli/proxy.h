/*
 * proxy.h - meshctl's commands that read a running meshd (or a meshproxy
 * admin port) over HTTP, as istioctl's do:
 *
 *   meshctl version [--meshd ADDR]          meshctl's build, and meshd's /version
 *   meshctl proxy-status [--meshd ADDR]     meshd's /debug/syncz as istioctl's table
 *   meshctl proxy-config TYPE PROXY_ID      meshd's /debug/config_dump?proxyID= as
 *       [--meshd ADDR | --admin HOST:PORT]  tables (TYPE listeners, routes, clusters,
 *       [-o short|json|yaml] [FILTERS]      endpoints, secrets, all), or a meshproxy's
 *                                           (or Envoy's) admin /config_dump; with
 *                                           --admin, endpoints from its live /clusters
 *
 * FILTERS are istioctl proxy-config's, with its semantics
 * (istioctl/pkg/writer/envoy/{configdump,clusters}): clusters --fqdn --port
 * --subset --direction, listeners --port --address --type, routes --name,
 * endpoints --cluster --port --address --status.
 *
 * ADDR defaults to 127.0.0.1:15014 (meshd's --http-addr under `make run`).
 * The HTTP client is a plain HTTP/1.1 GET over a socket: meshctl does not link
 * libcurl, and these endpoints answer localhost only.
 *
 * Each takes argv from the subcommand's name on and returns the exit status:
 * 0 success, 1 meshd unreachable or the request refused (message on stderr),
 * 2 usage.
 */
#ifndef MESH_CLI_PROXY_H
#define MESH_CLI_PROXY_H

int proxy_version_main(int argc, char **argv);
int proxy_status_main(int argc, char **argv);
int proxy_config_main(int argc, char **argv);
/* meshctl telemetry PROXY_ID: the workload's effective Telemetry (/debug/telemetryz) */
int proxy_telemetry_main(int argc, char **argv);

#endif
