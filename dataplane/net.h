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
/* A non-blocking, close-on-exec listening socket bound to addr (SO_REUSEADDR); the fd or -errno. */
MESH_MUST_CHECK int net_listen(const char *addr, int backlog);
/* The port a socket is bound to, or -errno. */
int net_local_port(int fd);

#endif
