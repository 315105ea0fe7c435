/*
 * pxrate.c - a fixed-rate HTTP/1.1 load generator for the proxy benchmark
 * (wrk2 is not in Debian): sends GETs at RATE per second over a set of
 * keep-alive connections for SECONDS, and prints the latency distribution
 * measured from each request's scheduled send time (so a stall is counted
 * against every request it delays: no coordinated omission).
 *
 *   pxrate HOST:PORT HOSTHEADER RATE SECONDS [CONNS]
 * Output: "sent N done N errors N p50_us X p90_us X p99_us X max_us X"
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

struct conn {
	int fd, busy;
	uint64_t sched;
	size_t len, need;
	char in[65536];
};

static uint64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static int cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static int dial(struct sockaddr_in *sa)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;

	if (connect(fd, (struct sockaddr *)sa, sizeof(*sa)) < 0) {
		perror("pxrate: connect");
		exit(1);
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

int main(int argc, char **argv)
{
	struct sockaddr_in sa;
	char req[512], *colon;
	int rate, secs, nconn = 32, i, rlen;
	uint64_t start, total, sent = 0, done = 0, errors = 0, *lat;
	struct conn *cs;
	struct pollfd *pfd;

	if (argc < 5)
		return 2;
	colon = strchr(argv[1], ':');
	*colon = 0;
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	inet_pton(AF_INET, argv[1], &sa.sin_addr);
	sa.sin_port = htons((uint16_t)atoi(colon + 1));
	rate = atoi(argv[3]);
	secs = atoi(argv[4]);
	if (argc > 5)
		nconn = atoi(argv[5]);
	total = (uint64_t)rate * (uint64_t)secs;
	lat = calloc(total + 1, sizeof(*lat));
	cs = calloc((size_t)nconn, sizeof(*cs));
	pfd = calloc((size_t)nconn, sizeof(*pfd));
	rlen = snprintf(req, sizeof(req), "GET / HTTP/1.1\r\nHost: %s\r\nUser-Agent: pxrate\r\n\r\n", argv[2]);
	for (i = 0; i < nconn; i++)
		cs[i].fd = dial(&sa);
	start = now_us();
	while (done + errors < total) {
		uint64_t t = now_us();
		int timeout;

		/* send every request whose time has come, on an idle connection */
		while (sent < total && start + sent * 1000000 / (uint64_t)rate <= t) {
			for (i = 0; i < nconn && cs[i].busy; i++)
				;
			if (i == nconn)
				break; /* all busy: it goes out late, and its latency shows it */
			cs[i].busy = 1;
			cs[i].sched = start + sent * 1000000 / (uint64_t)rate;
			cs[i].len = 0;
			cs[i].need = 0;
			if (write(cs[i].fd, req, (size_t)rlen) != rlen)
				errors++;
			sent++;
		}
		for (i = 0; i < nconn; i++) {
			pfd[i].fd = cs[i].busy ? cs[i].fd : -1;
			pfd[i].events = POLLIN;
		}
		timeout = sent < total ? (int)((start + sent * 1000000 / (uint64_t)rate - (t < start ? start : t)) / 1000) : 100;
		if (timeout < 0)
			timeout = 0;
		if (poll(pfd, (nfds_t)nconn, timeout) < 0)
			break;
		for (i = 0; i < nconn; i++) {
			struct conn *c = &cs[i];
			ssize_t r;

			if (!(pfd[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			r = read(c->fd, c->in + c->len, sizeof(c->in) - c->len - 1);
			if (r <= 0) {
				errors++;
				close(c->fd);
				c->fd = dial(&sa);
				c->busy = 0;
				continue;
			}
			c->len += (size_t)r;
			c->in[c->len] = 0;
			if (!c->need) {
				char *end = strstr(c->in, "\r\n\r\n"), *cl = strcasestr(c->in, "content-length:");

				if (!end)
					continue;
				c->need = (size_t)(end - c->in) + 4 + (cl ? strtoul(cl + 15, NULL, 10) : 0);
				if (strncmp(c->in, "HTTP/1.1 200", 12))
					errors++;
			}
			if (c->len >= c->need) {
				lat[done++] = now_us() - c->sched;
				c->busy = 0;
			}
		}
	}
	qsort(lat, done, sizeof(*lat), cmp);
	printf("sent %llu done %llu errors %llu p50_us %llu p90_us %llu p99_us %llu max_us %llu\n",
	       (unsigned long long)sent, (unsigned long long)done, (unsigned long long)errors,
	       (unsigned long long)(done ? lat[done / 2] : 0), (unsigned long long)(done ? lat[done * 9 / 10] : 0),
	       (unsigned long long)(done ? lat[done * 99 / 100] : 0), (unsigned long long)(done ? lat[done - 1] : 0));
	return 0;
}
