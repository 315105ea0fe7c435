/*
 * hash.c - see hash.h.
 */
#include "hash.h"

#include <string.h>

uint64_t mesh_hash_update(uint64_t h, const void *data, size_t len)
{
	const unsigned char *p = data;
	size_t i;

	for (i = 0; i < len; i++) {
		h ^= p[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

uint64_t mesh_hash(const void *data, size_t len)
{
	return mesh_hash_update(MESH_HASH_INIT, data, len);
}

uint64_t mesh_hash_str(uint64_t h, const char *s)
{
	if (!s)
		s = "";
	return mesh_hash_update(h, s, strlen(s) + 1);
}

void mesh_hash_hex(uint64_t h, char out[17])
{
	static const char hex[] = "0123456789abcdef";
	int i;

	for (i = 15; i >= 0; i--) {
		out[i] = hex[h & 15];
		h >>= 4;
	}
	out[16] = '\0';
}
