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
/* IP_TRANSPARENT (IPV6_TRANSPARENT too on an IPv6 socket) on or off:
 * Envoy's Listener.transparent, what the kernel's TPROXY target needs of
 * the socket it hands a diverted connection to.  Needs CAP_NET_ADMIN:
 * -EPERM without it, else 0 or -errno. */
MESH_MUST_CHECK int net_set_transparent(int fd, int on);
/* Envoy's original_src listener filter on a new upstream socket fd: made
 * transparent, bound to src (the downstream client's address; its port is
 * cleared, bind_port false) and, when mark is not 0, SO_MARK mark, so the
 * upstream sees the client's address and its replies are routed back
 * (istio-iptables' connmark / fwmark rules).  An IPv4-mapped src on an
 * IPv4 socket is unmapped; a src of the other family is -EAFNOSUPPORT.
 * 0 or -errno (-EPERM: no CAP_NET_ADMIN). */
MESH_MUST_CHECK int net_original_src(int fd, int family, const struct sockaddr_storage *src, unsigned mark);

#endif
