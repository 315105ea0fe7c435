/*
 * transport.c - the raw TCP transport of transport.h: read(2)/send(2)
 * with errno turned into negative codes (MSG_NOSIGNAL: a peer gone is
 * -EPIPE, never a signal).
 */
#include "dataplane/transport.h"

#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

static ssize_t raw_read(void *ctx, int fd, void *buf, size_t len)
{
	ssize_t n;

	(void)ctx;
	do
		n = read(fd, buf, len);
	while (n < 0 && errno == EINTR);
	return n < 0 ? -errno : n;
}

static ssize_t raw_write(void *ctx, int fd, const void *buf, size_t len)
{
	ssize_t n;

	(void)ctx;
	do
		n = send(fd, buf, len, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	return n < 0 ? -errno : n;
}

static void raw_shutdown_write(void *ctx, int fd)
{
	(void)ctx;
	shutdown(fd, SHUT_WR);
}

const struct px_transport_ops px_transport_raw = {
	.name = "raw_buffer",
	.read = raw_read,
	.write = raw_write,
	.shutdown_write = raw_shutdown_write,
};
