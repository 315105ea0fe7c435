/*
 * pathnorm.c - the request-path normalization of Envoy's HTTP connection
 * manager (see pathnorm.h), shared by meshproxy, which applies it before
 * RBAC and routing, and `meshctl authz check`, which must judge the path
 * the proxy judges.
 */
#include "common/xds/pathnorm.h"

#include <ctype.h>
#include <errno.h>
#include <string.h>

static int pathnorm__hex(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = tolower(c);
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* RFC 3986 unreserved: what a canonical path never keeps escaped. */
static int pathnorm__unreserved(int c)
{
	return isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~';
}

/* RFC 3986 5.2.4 remove_dot_segments, in place over p[0..*n) (p starts
 * with '/'); ".." above the root stays at the root, as browsers and
 * Envoy's canonicalizer do. */
static void pathnorm__dots(char *p, size_t *n)
{
	size_t in = 0, out = 0, len = *n;

	/* out holds "/seg/seg..." (never a trailing '/' except the empty
	 * segment); each input segment is "/" + p[seg..end) */
	while (in < len) {
		size_t seg = in + 1, end;

		for (end = seg; end < len && p[end] != '/'; end++)
			;
		if ((end - seg == 1 && p[seg] == '.') || (end - seg == 2 && p[seg] == '.' && p[seg + 1] == '.')) {
			if (end - seg == 2) {
				/* pop the last output segment */
				while (out > 0 && p[out - 1] != '/')
					out--;
				if (out > 0)
					out--;
			}
			if (end == len)
				p[out++] = '/'; /* "/a/.." -> "/", "/a/b/." -> "/a/b/" */
			in = end;
			continue;
		}
		memmove(p + out, p + in, end - in);
		out += end - in;
		in = end;
	}
	if (out == 0)
		p[out++] = '/';
	*n = out;
}

int pathnorm_apply(const struct pathnorm_opts *o, const char *path, size_t len, char *out, size_t cap,
			 size_t *outlen)
{
	size_t plen = 0, i, n = 0, q;
	int rc = 0;

	*outlen = 0;
	while (plen < len && path[plen] != '?')
		plen++;
	if (memchr(path, '\0', len))
		return -EINVAL;
	if (!o->normalize && !o->merge_slashes && o->slashes == PATHNORM_SLASHES_KEEP)
		return 0;
	if (plen == 0 || path[0] != '/')
		return o->normalize ? -EINVAL : 0; /* "*" and authority forms never reach here */
	if (len + 1 > cap)
		return -MESH_ETOOBIG;
	for (i = 0; i < plen; i++) {
		char c = path[i];

		if (c == '%' && i + 2 < plen) {
			int h = pathnorm__hex((unsigned char)path[i + 1]), l = pathnorm__hex((unsigned char)path[i + 2]);

			if (h >= 0 && l >= 0) {
				int v = h * 16 + l;
				int slash = v == '/' || v == '\\';

				if (slash && o->slashes == PATHNORM_SLASHES_REJECT)
					return -EINVAL;
				if (slash && o->slashes == PATHNORM_SLASHES_UNESCAPE) {
					/* unescaped first; normalize_path then reads '\' as '/' */
					out[n++] = (char)(v == '\\' && o->normalize ? '/' : v);
					i += 2;
					continue;
				}
				if (o->normalize && v < 0x20)
					return -EINVAL;
				if (o->normalize && pathnorm__unreserved(v)) {
					out[n++] = (char)v;
					i += 2;
					continue;
				}
				if (o->normalize) {
					/* canonical escapes are upper case */
					out[n++] = '%';
					out[n++] = (char)toupper((unsigned char)path[i + 1]);
					out[n++] = (char)toupper((unsigned char)path[i + 2]);
					i += 2;
					continue;
				}
			}
		}
		if (o->normalize && c == '\\')
			c = '/';
		out[n++] = c;
	}
	if (o->normalize)
		pathnorm__dots(out, &n);
	if (o->merge_slashes) {
		size_t w = 0;

		for (i = 0; i < n; i++)
			if (!(out[i] == '/' && w > 0 && out[w - 1] == '/'))
				out[w++] = out[i];
		n = w;
	}
	q = len - plen;
	memcpy(out + n, path + plen, q);
	n += q;
	out[n] = '\0';
	*outlen = n;
	rc = n != len || memcmp(out, path, len) != 0;
	return rc;
}

int pathnorm_mode(const char *name, struct pathnorm_opts *o)
{
	memset(o, 0, sizeof(*o));
	if (!strcmp(name, "NONE"))
		return 0;
	o->normalize = 1;
	if (!strcmp(name, "BASE") || !strcmp(name, "DEFAULT"))
		return 0;
	o->merge_slashes = 1;
	if (!strcmp(name, "MERGE_SLASHES"))
		return 0;
	o->slashes = PATHNORM_SLASHES_UNESCAPE;
	if (!strcmp(name, "DECODE_AND_MERGE_SLASHES"))
		return 0;
	memset(o, 0, sizeof(*o));
	return -EINVAL;
}
