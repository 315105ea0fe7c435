/*
 * pxbackend.c - the proxy benchmark's backend: one epoll thread answering
 * every request with 200 and a fixed 1 KiB body, keep-alive, pipelining
 * safe.  Small on purpose so that it is never the bottleneck (it does a
 * fraction of the proxy's work per request).  Requests with a body are
 * not supported (the benchmark sends GETs).
 *
 *   pxbackend PORT      (prints "ready PORT" once listening)
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define BODY_LEN 1024

struct conn {
	int fd;
	size_t len;
	char in[16384];
};

int main(int argc, char **argv)
{
	static char resp[2048];
	struct sockaddr_in sa;
	struct epoll_event ev, evs[256];
	int lfd, ep, one = 1, rlen, n, i;
	char body[BODY_LEN];

	if (argc < 2)
		return 2;
	signal(SIGPIPE, SIG_IGN);
	memset(body, 'x', sizeof(body));
	rlen = snprintf(resp, sizeof(resp),
			"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n", BODY_LEN);
	memcpy(resp + rlen, body, BODY_LEN);
	rlen += BODY_LEN;
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sa.sin_port = htons((uint16_t)atoi(argv[1]));
	if (bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(lfd, 1024) < 0) {
		perror("pxbackend: bind");
		return 1;
	}
	ep = epoll_create1(0);
	ev.events = EPOLLIN;
	ev.data.ptr = NULL;
	epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
	printf("ready %s\n", argv[1]);
	fflush(stdout);
	for (;;) {
		n = epoll_wait(ep, evs, 256, -1);
		for (i = 0; i < n; i++) {
			struct conn *c = evs[i].data.ptr;
			ssize_t r;

			if (!c) {
				int fd;

				while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
					c = calloc(1, sizeof(*c));
					c->fd = fd;
					setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
					ev.events = EPOLLIN;
					ev.data.ptr = c;
					epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
				}
				continue;
			}
			r = read(c->fd, c->in + c->len, sizeof(c->in) - c->len);
			if (r <= 0) {
				if (r < 0 && errno == EAGAIN)
					continue;
				close(c->fd);
				free(c);
				continue;
			}
			c->len += (size_t)r;
			for (;;) {
				char *end = memmem(c->in, c->len, "\r\n\r\n", 4);
				size_t used;

				if (!end)
					break;
				used = (size_t)(end - c->in) + 4;
				if (write(c->fd, resp, (size_t)rlen) < 0)
					break;
				memmove(c->in, c->in + used, c->len - used);
				c->len -= used;
			}
			if (c->len == sizeof(c->in))
				c->len = 0;
		}
	}
}
