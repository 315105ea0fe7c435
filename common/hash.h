/*
 * hash.h - 64-bit content hashing (FNV-1a) for versions and caches.
 *
 * Not cryptographic: used to tell "same bytes" from "changed bytes" so
 * xDS versions are stable across restarts and unchanged resources are
 * never re-sent.
 */
#ifndef MESH_HASH_H
#define MESH_HASH_H

#include <stddef.h>
#include <stdint.h>

#define MESH_HASH_INIT 0xcbf29ce484222325ULL

uint64_t mesh_hash(const void *data, size_t len);
uint64_t mesh_hash_update(uint64_t h, const void *data, size_t len);
uint64_t mesh_hash_str(uint64_t h, const char *s); /* includes the NUL, so "a","b" != "ab" */
/* 16 lowercase hex digits + NUL into out[17]. */
void mesh_hash_hex(uint64_t h, char out[17]);

#endif
