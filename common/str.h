/*
 * str.h - bounded string copy, the one the project uses instead of
 * strcpy/strncpy (STYLE.md): always NUL-terminated, truncating; and the
 * UTF-8 check strings from clients pass at the border (issue 16).
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

/* Length of the well-formed UTF-8 sequence at s[0..n) (RFC 3629: no
 * overlong forms, no surrogates, nothing above U+10FFFF), 0 when it is
 * not one.  n >= 1. */
static inline size_t mesh_utf8_seq(const unsigned char *s, size_t n)
{
	unsigned char c = s[0], lo = 0x80, hi = 0xbf;
	size_t len, i;

	if (c >= 0xc2 && c <= 0xdf)
		len = 2;
	else if (c >= 0xe0 && c <= 0xef)
		len = 3;
	else if (c >= 0xf0 && c <= 0xf4)
		len = 4;
	else
		return 0;
	if (c == 0xe0)
		lo = 0xa0;
	else if (c == 0xed)
		hi = 0x9f;
	else if (c == 0xf0)
		lo = 0x90;
	else if (c == 0xf4)
		hi = 0x8f;
	if (n < len || s[1] < lo || s[1] > hi)
		return 0;
	for (i = 2; i < len; i++)
		if (s[i] < 0x80 || s[i] > 0xbf)
			return 0;
	return len;
}

#endif
