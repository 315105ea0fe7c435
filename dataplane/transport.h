/*
 * transport.h - the byte transport under the HTTP codec (STYLE.md: "codecs
 * never call OpenSSL directly; a transport vtable sits under the HTTP
 * codec").  Today only raw TCP; TLS (issue 12) adds an ops table whose
 * read/write run the TLS record layer and report -EAGAIN the same way.
 *
 * read/write return bytes moved (read: 0 at EOF) or a negative errno
 * (-EAGAIN when the socket would block).
 */
#ifndef MESH_DATAPLANE_TRANSPORT_H
#define MESH_DATAPLANE_TRANSPORT_H

#include <stddef.h>
#include <sys/types.h>

struct px_transport_ops {
	const char *name; /* "raw_buffer", later "tls" */
	ssize_t (*read)(void *ctx, int fd, void *buf, size_t len);
	ssize_t (*write)(void *ctx, int fd, const void *buf, size_t len);
	void (*shutdown_write)(void *ctx, int fd);
};

extern const struct px_transport_ops px_transport_raw;

#endif
