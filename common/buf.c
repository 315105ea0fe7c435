/*
 * buf.c - see buf.h.
 */
#include "buf.h"
#include "err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void mesh_buf_init(struct mesh_buf *b, size_t max)
{
	memset(b, 0, sizeof(*b));
	b->max = max;
}

void mesh_buf_cleanup(struct mesh_buf *b)
{
	free(b->data);
	memset(b, 0, sizeof(*b));
}

void mesh_buf_reset(struct mesh_buf *b)
{
	b->len = 0;
	b->err = 0;
	if (b->data)
		b->data[0] = '\0';
}

static int buf_reserve(struct mesh_buf *b, size_t extra)
{
	size_t need, cap;
	char *p;

	if (b->err)
		return b->err;
	if (extra > b->max || b->len + extra > b->max) {
		b->err = -MESH_ETOOBIG;
		return b->err;
	}
	need = b->len + extra + 1;
	if (need <= b->cap)
		return 0;
	cap = b->cap ? b->cap : 256;
	while (cap < need)
		cap *= 2;
	if (cap > b->max + 1)
		cap = b->max + 1;
	p = realloc(b->data, cap);
	if (!p) {
		b->err = -ENOMEM;
		return b->err;
	}
	b->data = p;
	b->cap = cap;
	return 0;
}

int mesh_buf_append(struct mesh_buf *b, const void *data, size_t len)
{
	int rc = buf_reserve(b, len);
	if (rc < 0)
		return rc;
	if (len)
		memcpy(b->data + b->len, data, len);
	b->len += len;
	b->data[b->len] = '\0';
	return 0;
}

int mesh_buf_puts(struct mesh_buf *b, const char *s)
{
	return mesh_buf_append(b, s, strlen(s));
}

int mesh_buf_putc(struct mesh_buf *b, char c)
{
	return mesh_buf_append(b, &c, 1);
}

int mesh_buf_vprintf(struct mesh_buf *b, const char *fmt, va_list ap)
{
	va_list cp;
	int n, rc;

	va_copy(cp, ap);
	n = vsnprintf(NULL, 0, fmt, cp);
	va_end(cp);
	if (n < 0)
		return -EINVAL;
	rc = buf_reserve(b, (size_t)n);
	if (rc < 0)
		return rc;
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	b->len += (size_t)n;
	return 0;
}

int mesh_buf_printf(struct mesh_buf *b, const char *fmt, ...)
{
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = mesh_buf_vprintf(b, fmt, ap);
	va_end(ap);
	return rc;
}

char *mesh_buf_take(struct mesh_buf *b, size_t *len)
{
	char *d = b->data;

	if (!d)
		d = calloc(1, 1);
	if (len)
		*len = b->len;
	b->data = NULL;
	b->len = b->cap = 0;
	b->err = 0;
	return d;
}
