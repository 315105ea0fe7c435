/*
 * net.c - see net.h.  Listeners are made once at start-up; the accept and
 * I/O paths live with their owners (admin.c, later the proxy listeners).
 */
#include "dataplane/net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int net_parse_addr(const char *addr, struct sockaddr_storage *ss, socklen_t *len)
{
	char host[64];
	const char *colon, *h, *port_s;
	size_t hlen;
	char *end;
	long port;

	memset(ss, 0, sizeof(*ss));
	if (!addr)
		return -EINVAL;
	if (addr[0] == '[') {
		colon = strstr(addr, "]:");
		if (!colon)
			return -EINVAL;
		h = addr + 1;
		hlen = (size_t)(colon - h);
		port_s = colon + 2;
	} else {
		colon = strrchr(addr, ':');
		if (!colon)
			return -EINVAL;
		h = addr;
		hlen = (size_t)(colon - addr);
		port_s = colon + 1;
	}
	if (hlen >= sizeof(host) || !*port_s)
		return -EINVAL;
	memcpy(host, h, hlen);
	host[hlen] = '\0';
	errno = 0;
	port = strtol(port_s, &end, 10);
	if (errno || *end || port < 0 || port > 65535)
		return -EINVAL;
	if (addr[0] == '[') {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;

		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)port);
		if (inet_pton(AF_INET6, host, &s6->sin6_addr) != 1)
			return -EINVAL;
		*len = sizeof(*s6);
		return 0;
	}
	{
		struct sockaddr_in *s4 = (struct sockaddr_in *)ss;

		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)port);
		if (!hlen || !strcmp(host, "localhost"))
			memcpy(host, hlen ? "127.0.0.1" : "0.0.0.0", 10);
		if (inet_pton(AF_INET, host, &s4->sin_addr) != 1)
			return -EINVAL;
		*len = sizeof(*s4);
	}
	return 0;
}

int net_listen(const char *addr, int backlog, int flags)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int fd, one = 1, rc;

	rc = net_parse_addr(addr, &ss, &len);
	if (rc < 0)
		return rc;
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if ((flags & NET_REUSEPORT) && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0) {
		rc = -errno;
		close(fd);
		return rc;
	}
	if (bind(fd, (struct sockaddr *)&ss, len) < 0 || listen(fd, backlog) < 0) {
		rc = -errno;
		close(fd);
		return rc;
	}
	return fd;
}

int net_set_transparent(int fd, int on)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
		return -errno;
	if (ss.ss_family == AF_INET6 && setsockopt(fd, SOL_IPV6, IPV6_TRANSPARENT, &on, sizeof(on)) < 0)
		return -errno;
	/* an IPv6 socket takes IPv4 connections too (dual-stack): both flags */
	if (setsockopt(fd, SOL_IP, IP_TRANSPARENT, &on, sizeof(on)) < 0)
		return -errno;
	return 0;
}

int net_original_src(int fd, int family, const struct sockaddr_storage *src, unsigned mark)
{
	struct sockaddr_storage b;
	socklen_t blen;
	int one = 1;

	memset(&b, 0, sizeof(b));
	if (family == AF_INET && src->ss_family == AF_INET6 &&
	    IN6_IS_ADDR_V4MAPPED(&((const struct sockaddr_in6 *)src)->sin6_addr)) {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&b;

		s4->sin_family = AF_INET;
		memcpy(&s4->sin_addr, &((const struct sockaddr_in6 *)src)->sin6_addr.s6_addr[12], 4);
		blen = sizeof(*s4);
	} else if (family == AF_INET && src->ss_family == AF_INET) {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&b;

		*s4 = *(const struct sockaddr_in *)src;
		s4->sin_port = 0;
		blen = sizeof(*s4);
	} else if (family == AF_INET6 && src->ss_family == AF_INET6 &&
		   !IN6_IS_ADDR_V4MAPPED(&((const struct sockaddr_in6 *)src)->sin6_addr)) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&b;

		*s6 = *(const struct sockaddr_in6 *)src;
		s6->sin6_port = 0;
		blen = sizeof(*s6);
	} else {
		return -EAFNOSUPPORT;
	}
	if (family == AF_INET6 && setsockopt(fd, SOL_IPV6, IPV6_TRANSPARENT, &one, sizeof(one)) < 0)
		return -errno;
	if (family == AF_INET && setsockopt(fd, SOL_IP, IP_TRANSPARENT, &one, sizeof(one)) < 0)
		return -errno;
	if (mark && setsockopt(fd, SOL_SOCKET, SO_MARK, &mark, sizeof(mark)) < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&b, blen) < 0)
		return -errno;
	return 0;
}

int net_local_port(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
		return -errno;
	if (ss.ss_family == AF_INET6)
		return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}
