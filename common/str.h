/*
 * str.h - bounded string copy, the one the project uses instead of
 * strcpy/strncpy (STYLE.md): always NUL-terminated, truncating.
 */
#ifndef MESH_STR_H
#define MESH_STR_H

#include <stddef.h>
#include <string.h>

/* Copies src (NULL: "") into dst of cap bytes (cap >= 1), truncated to
 * cap - 1 bytes and NUL-terminated; src may overlap dst. */
static inline void mesh_str_copy(char *dst, size_t cap, const char *src)
{
	size_t n;

	if (!src)
		src = "";
	n = strnlen(src, cap - 1);
	memmove(dst, src, n);
	dst[n] = '\0';
}

#endif
