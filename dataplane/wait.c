/*
 * wait.c - "meshproxy wait" (see wait.h).  Blocking sockets are fine here:
 * this runs as its own short-lived process, not on the proxy's loop.
 */
#include "dataplane/wait.h"

#include "dataplane/net.h"

#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define WAIT_REQUEST_TIMEOUT_MS 500   /* Istio's --requestTimeoutMillis */

static long wait_now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* 1 when GET path on addr answered 200 within the request timeout. */
static int wait_probe(const char *addr, const char *path)
{
	struct sockaddr_storage ss;
	socklen_t len;
	char req[512], resp[32];
	struct pollfd pfd;
	size_t got = 0;
	ssize_t n;
	int fd, ok = 0, err = 0;
	socklen_t el = sizeof(err);
	long deadline = wait_now_ms() + WAIT_REQUEST_TIMEOUT_MS;

	if (net_parse_addr(addr, &ss, &len) < 0)
		return 0;
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return 0;
	if (connect(fd, (struct sockaddr *)&ss, len) < 0 && errno != EINPROGRESS)
		goto out;
	pfd.fd = fd;
	pfd.events = POLLOUT;
	if (poll(&pfd, 1, WAIT_REQUEST_TIMEOUT_MS) != 1 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0 || err)
		goto out;
	n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", path, addr);
	if (n <= 0 || (size_t)n >= sizeof(req) || send(fd, req, (size_t)n, MSG_NOSIGNAL) != n)
		goto out;
	while (got < 12) {
		long left = deadline - wait_now_ms();

		pfd.events = POLLIN;
		if (left <= 0 || poll(&pfd, 1, (int)left) != 1)
			goto out;
		n = recv(fd, resp + got, sizeof(resp) - 1 - got, 0);
		if (n <= 0)
			goto out;
		got += (size_t)n;
	}
	resp[got] = '\0';
	ok = strncmp(resp, "HTTP/1.", 7) == 0 && strncmp(resp + 8, " 200", 4) == 0;
out:
	close(fd);
	return ok;
}

int meshproxy_wait_main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "url", required_argument, NULL, 'u' },
		{ "timeout-seconds", required_argument, NULL, 't' },
		{ "timeoutSeconds", required_argument, NULL, 't' },
		{ "period-millis", required_argument, NULL, 'p' },
		{ "periodMillis", required_argument, NULL, 'p' },
		{ NULL, 0, NULL, 0 },
	};
	const char *url = "http://127.0.0.1:15021/healthz/ready";
	char addr[128];
	const char *hp, *path;
	long timeout_s = 60, period_ms = 500, deadline;
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 'u': url = optarg; break;
		case 't': timeout_s = strtol(optarg, NULL, 10); break;
		case 'p': period_ms = strtol(optarg, NULL, 10); break;
		default:
			fprintf(stderr, "usage: meshproxy wait [--url URL] [--timeout-seconds N] [--period-millis N]\n");
			return 2;
		}
	}
	if (strncmp(url, "http://", 7) != 0 || timeout_s <= 0 || period_ms <= 0) {
		fprintf(stderr, "meshproxy wait: want an http:// URL and positive durations\n");
		return 2;
	}
	hp = url + 7;
	path = strchr(hp, '/');
	snprintf(addr, sizeof(addr), "%.*s", (int)(path ? (size_t)(path - hp) : strlen(hp)), hp);
	if (!path)
		path = "/";
	deadline = wait_now_ms() + timeout_s * 1000;
	fprintf(stderr, "meshproxy wait: waiting for %s (up to %ld s)\n", url, timeout_s);
	while (wait_now_ms() < deadline) {
		if (wait_probe(addr, path)) {
			fprintf(stderr, "meshproxy wait: ready\n");
			return 0;
		}
		usleep((useconds_t)period_ms * 1000);
	}
	fprintf(stderr, "meshproxy wait: %s not ready after %ld s\n", url, timeout_s);
	return 1;
}
