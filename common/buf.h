/*
 * buf.h - a growable byte buffer with a hard cap.
 *
 * Every buffer names its limit at init; appends past it fail with
 * -MESH_ETOOBIG and leave the buffer as it was.  The data is always
 * NUL-terminated so text users can read it as a string.
 * Functions return 0 or a negative code (err.h).
 */
#ifndef MESH_BUF_H
#define MESH_BUF_H

#include <stdarg.h>
#include <stddef.h>

struct mesh_buf {
	char *data;
	size_t len;
	size_t cap;
	size_t max;
	int err; /* first error seen; later appends are no-ops */
};

void mesh_buf_init(struct mesh_buf *b, size_t max);
void mesh_buf_cleanup(struct mesh_buf *b);
void mesh_buf_reset(struct mesh_buf *b);
int mesh_buf_append(struct mesh_buf *b, const void *data, size_t len);
int mesh_buf_puts(struct mesh_buf *b, const char *s);
int mesh_buf_putc(struct mesh_buf *b, char c);
int mesh_buf_printf(struct mesh_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int mesh_buf_vprintf(struct mesh_buf *b, const char *fmt, va_list ap);
/* Hand the data to the caller (free() it); the buffer is left empty. */
char *mesh_buf_take(struct mesh_buf *b, size_t *len);

#endif
