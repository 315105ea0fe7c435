/*
 * net.h - meshd's listening addresses: "HOST:PORT" parsed numerically and a
 * blocking TCP listener bound to it, for the servers that hand the socket to
 * libmicrohttpd (the debug server, the webhook server).
 */
#ifndef MESH_NET_H
#define MESH_NET_H

#include "common/err.h"

#include <sys/socket.h>

/*
 * "HOST:PORT" into *ss / *len: "0.0.0.0:15014", "127.0.0.1:0", "[::1]:15014",
 * ":15014" and "*:15014" (every IPv4 address), "localhost:15014".  IPv6 only
 * in brackets, the port in decimal digits up to 65535, no names but
 * "localhost" (nothing resolves).  0 or -EINVAL.
 */
MESH_MUST_CHECK int mesh_addr_parse(const char *addr, struct sockaddr_storage *ss, socklen_t *len);

/*
 * A close-on-exec, blocking TCP listener on addr (SO_REUSEADDR) with the given
 * backlog: *fd_out (the caller's to close) and *port_out, the port bound (the
 * one the kernel chose for ":0"), and *v6_out true for an IPv6 address (NULL:
 * not wanted).  0, -EINVAL for a malformed addr, or the -errno of socket,
 * bind or listen (-EADDRINUSE...).
 */
MESH_MUST_CHECK int mesh_listen_tcp(const char *addr, int backlog, int *fd_out, int *port_out, int *v6_out);

#endif
