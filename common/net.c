/*
 * net.c - see net.h.
 */
#include "common/net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <string.h>
#include <unistd.h>

#define NET_MAX_HOST 64 /* the host part of a listening address */

int mesh_addr_parse(const char *addr, struct sockaddr_storage *ss, socklen_t *len)
{
	char host[NET_MAX_HOST];
	const char *colon, *hs, *he, *p;
	unsigned long port = 0;
	bool v6 = false;
	size_t hl;

	if (!addr || !addr[0])
		return -EINVAL;
	if (addr[0] == '[') {
		hs = addr + 1;
		he = strchr(hs, ']');
		if (!he || he[1] != ':')
			return -EINVAL;
		colon = he + 1;
		v6 = true;
	} else {
		colon = strrchr(addr, ':');
		if (!colon)
			return -EINVAL;
		hs = addr;
		he = colon;
		if (memchr(hs, ':', (size_t)(he - hs)))
			return -EINVAL; /* IPv6 needs brackets */
	}
	hl = (size_t)(he - hs);
	if (hl >= sizeof(host))
		return -EINVAL;
	memcpy(host, hs, hl);
	host[hl] = '\0';
	p = colon + 1;
	if (!*p)
		return -EINVAL;
	for (; *p; p++) {
		if (*p < '0' || *p > '9')
			return -EINVAL;
		port = port * 10 + (unsigned long)(*p - '0');
		if (port > 65535)
			return -EINVAL;
	}

	memset(ss, 0, sizeof(*ss));
	if (v6) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;

		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)port);
		if (inet_pton(AF_INET6, host, &s6->sin6_addr) != 1)
			return -EINVAL;
		*len = sizeof(*s6);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)ss;

		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)port);
		if (!host[0] || strcmp(host, "*") == 0)
			s4->sin_addr.s_addr = htonl(INADDR_ANY);
		else if (strcmp(host, "localhost") == 0)
			s4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		else if (inet_pton(AF_INET, host, &s4->sin_addr) != 1)
			return -EINVAL;
		*len = sizeof(*s4);
	}
	return 0;
}

int mesh_listen_tcp(const char *addr, int backlog, int *fd_out, int *port_out, int *v6_out)
{
	struct sockaddr_storage ss, bound;
	socklen_t len = 0, blen = sizeof(bound);
	int fd = -1, one = 1, rc;

	rc = mesh_addr_parse(addr, &ss, &len);
	if (rc < 0)
		goto out;
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		rc = -errno;
		goto out;
	}
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(fd, (struct sockaddr *)&ss, len) < 0 || listen(fd, backlog) < 0 ||
	    getsockname(fd, (struct sockaddr *)&bound, &blen) < 0) {
		rc = -errno;
		goto out;
	}
	if (bound.ss_family == AF_INET6)
		*port_out = ntohs(((struct sockaddr_in6 *)&bound)->sin6_port);
	else
		*port_out = ntohs(((struct sockaddr_in *)&bound)->sin_port);
	if (v6_out)
		*v6_out = bound.ss_family == AF_INET6;
	*fd_out = fd;
	fd = -1;
out:
	if (fd >= 0)
		close(fd);
	return rc;
}
