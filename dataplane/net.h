/*
 * net.h - sockets for meshproxy's listeners: numeric address parsing (no
 * DNS: nothing on the proxy's loop may block) and non-blocking listeners.
 * Functions return 0 / an fd, or a negative errno-style code.
 */
#ifndef MESH_DATAPLANE_NET_H
#define MESH_DATAPLANE_NET_H

#include "common/err.h"

#include <sys/socket.h>

/* "HOST:PORT" (IPv4 or a name "localhost") or "[V6]:PORT" into ss; -EINVAL if malformed. */
MESH_MUST_CHECK int net_parse_addr(const char *addr, struct sockaddr_storage *ss, socklen_t *len);
/* net_listen() flags */
#define NET_REUSEPORT 1 /* SO_REUSEPORT: Envoy's listener enable_reuse_port, on by default on Linux */

/* A non-blocking, close-on-exec listening socket bound to addr (SO_REUSEADDR,
 * and SO_REUSEPORT with NET_REUSEPORT); the fd or -errno. */
MESH_MUST_CHECK int net_listen(const char *addr, int backlog, int flags);
/* The port a socket is bound to, or -errno. */
int net_local_port(int fd);

#endif
