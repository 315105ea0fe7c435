/*
 * json.c - see json.h.
 */
#include "json.h"

#include <stdio.h>
#include <string.h>

void json_put_stringn(struct mesh_buf *b, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	size_t i, start = 0;

	mesh_buf_putc(b, '"');
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		const char *esc = NULL;
		char u[7];

		switch (c) {
		case '"': esc = "\\\""; break;
		case '\\': esc = "\\\\"; break;
		case '\n': esc = "\\n"; break;
		case '\r': esc = "\\r"; break;
		case '\t': esc = "\\t"; break;
		default:
			if (c < 0x20) {
				u[0] = '\\'; u[1] = 'u'; u[2] = '0'; u[3] = '0';
				u[4] = hex[c >> 4]; u[5] = hex[c & 15]; u[6] = '\0';
				esc = u;
			}
		}
		if (esc) {
			mesh_buf_append(b, s + start, i - start);
			mesh_buf_puts(b, esc);
			start = i + 1;
		}
	}
	mesh_buf_append(b, s + start, n - start);
	mesh_buf_putc(b, '"');
}

void json_put_string(struct mesh_buf *b, const char *s)
{
	if (!s) {
		mesh_buf_puts(b, "null");
		return;
	}
	json_put_stringn(b, s, strlen(s));
}
