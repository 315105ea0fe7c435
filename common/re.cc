/*
 * re.cc - the RE2 wrapper behind common/re.h (see there for the contract).
 *
 * The one C++ file of the tree: it only adapts RE2's API to C (no
 * exceptions cross it; allocation failures become -ENOMEM).  Replacement
 * is done here rather than with RE2::Replace/GlobalReplace, which build a
 * std::string: the same algorithm (RE2's re2.cc, GlobalReplace and
 * Rewrite) writing into the caller's buffer, so a rewrite on the proxy's
 * request path does not allocate.
 */
#include "common/re.h"

#include <re2/re2.h>

#include <errno.h>
#include <new>
#include <stdio.h>
#include <string.h>

struct mesh_re {
	re2::RE2 *re;
	char *pattern;
	int program_size;
	int groups;
};

static void re_err(char *err, size_t cap, const char *fmt, const char *a, int x, int y)
{
	if (err && cap)
		snprintf(err, cap, fmt, a, x, y);
}

extern "C" int mesh_re_new(const char *pattern, size_t len, unsigned max_program_size, struct mesh_re **out,
			   char *err, size_t cap)
{
	struct mesh_re *r = NULL;
	unsigned limit = max_program_size ? max_program_size : MESH_RE_MAX_PROGRAM_SIZE;
	int rc = -ENOMEM;

	*out = NULL;
	try {
		r = new (std::nothrow) mesh_re();
		if (!r)
			goto out;
		r->pattern = new (std::nothrow) char[len + 1];
		if (!r->pattern)
			goto out;
		memcpy(r->pattern, pattern, len);
		r->pattern[len] = '\0';
		r->re = new (std::nothrow) re2::RE2(re2::StringPiece(pattern, len), re2::RE2::Quiet);
		if (!r->re)
			goto out;
		if (!r->re->ok()) {
			rc = -EINVAL;
			if (err && cap)
				snprintf(err, cap, "regex '%s': %s", r->pattern, r->re->error().c_str());
			goto out;
		}
		r->program_size = r->re->ProgramSize();
		r->groups = r->re->NumberOfCapturingGroups();
		/* Envoy: CompiledGoogleReMatcher, the error-level threshold */
		if (r->program_size > (int)limit) {
			rc = -EINVAL;
			re_err(err, cap,
			       "regex '%s' RE2 program size of %d > max program size of %d set for the error level "
			       "threshold. Increase configured max program size if necessary.",
			       r->pattern, r->program_size, (int)limit);
			goto out;
		}
	} catch (...) {
		rc = -ENOMEM;
		goto out;
	}
	*out = r;
	r = NULL;
	rc = 0;
out:
	mesh_re_free(r);
	return rc;
}

extern "C" void mesh_re_free(struct mesh_re *re)
{
	if (!re)
		return;
	delete re->re;
	delete[] re->pattern;
	delete re;
}

extern "C" const char *mesh_re_pattern(const struct mesh_re *re)
{
	return re->pattern;
}

extern "C" int mesh_re_program_size(const struct mesh_re *re)
{
	return re->program_size;
}

extern "C" int mesh_re_groups(const struct mesh_re *re)
{
	return re->groups;
}

extern "C" bool mesh_re_full_match(const struct mesh_re *re, const char *s, size_t len)
{
	return re->re->Match(re2::StringPiece(s, len), 0, len, re2::RE2::ANCHOR_BOTH, NULL, 0);
}

extern "C" bool mesh_re_partial_match(const struct mesh_re *re, const char *s, size_t len)
{
	return re->re->Match(re2::StringPiece(s, len), 0, len, re2::RE2::UNANCHORED, NULL, 0);
}

extern "C" int mesh_re_check_rewrite(const struct mesh_re *re, const char *sub, char *err, size_t cap)
{
	const char *p;

	for (p = sub; *p; p++) {
		if (*p != '\\')
			continue;
		p++;
		if (*p == '\\')
			continue;
		if (*p >= '0' && *p <= '9') {
			if (*p - '0' > re->groups) {
				if (err && cap)
					snprintf(err, cap,
						 "substitution '%s' requests group %d but regex '%s' has %d capturing groups",
						 sub, *p - '0', re->pattern, re->groups);
				return -EINVAL;
			}
			continue;
		}
		if (err && cap)
			snprintf(err, cap, "substitution '%s': invalid rewrite pattern (a backslash must be followed by a "
				 "digit or a backslash)", sub);
		return -EINVAL;
	}
	return 0;
}

struct re_out {
	char *p;
	size_t n, cap;
	bool full;
};

static void re_put(struct re_out *o, const char *s, size_t n)
{
	size_t room = o->cap - 1 - o->n;   /* cap >= 1: one byte for the NUL */

	if (n > room) {
		n = room;
		o->full = true;
	}
	memcpy(o->p + o->n, s, n);
	o->n += n;
}

/* RE2::Rewrite: \N is group N (an unmatched group is empty), \\ a backslash. */
static void re_rewrite(struct re_out *o, const char *sub, const re2::StringPiece *vec, int nvec)
{
	const char *p;

	for (p = sub; *p; p++) {
		if (*p != '\\') {
			const char *q = strchr(p, '\\');
			size_t n = q ? (size_t)(q - p) : strlen(p);

			re_put(o, p, n);
			p += n - 1;
			continue;
		}
		p++;
		if (*p >= '0' && *p <= '9') {
			int g = *p - '0';

			if (g < nvec && vec[g].data())
				re_put(o, vec[g].data(), vec[g].size());
		} else if (*p == '\\') {
			re_put(o, "\\", 1);
		} else {
			break;                 /* checked at config time */
		}
	}
}

/* Length of the UTF-8 sequence starting with byte c (1 for anything odd). */
static size_t re_utf8_len(unsigned char c)
{
	if (c >= 0xf0 && c < 0xf8)
		return 4;
	if (c >= 0xe0)
		return c < 0xf0 ? 3 : 1;
	if (c >= 0xc0)
		return 2;
	return 1;
}

extern "C" int mesh_re_replace(const struct mesh_re *re, const char *s, size_t len, const char *sub, bool global,
			       char *out, size_t cap, size_t *out_len)
{
	re2::StringPiece text(s, len);
	re2::StringPiece vec[MESH_RE_MAX_GROUPS];
	int nvec = re->groups + 1 < MESH_RE_MAX_GROUPS ? re->groups + 1 : MESH_RE_MAX_GROUPS;
	struct re_out o = { out, 0, cap, false };
	const char *p = s, *ep = s + len, *lastend = NULL;
	int count = 0;

	if (cap == 0)
		return -ENOSPC;
	while (p <= ep) {
		if (!re->re->Match(text, (size_t)(p - s), len, re2::RE2::UNANCHORED, vec, nvec))
			break;
		if (p < vec[0].data())
			re_put(&o, p, (size_t)(vec[0].data() - p));
		if (vec[0].data() == lastend && vec[0].empty()) {
			/* an empty match right where the last one ended: step
			 * over one character, as RE2::GlobalReplace does */
			if (p < ep) {
				size_t n = re_utf8_len((unsigned char)*p);

				if (n > (size_t)(ep - p))
					n = (size_t)(ep - p);
				re_put(&o, p, n);
				p += n;
				continue;
			}
			p++;
			break;
		}
		re_rewrite(&o, sub, vec, nvec);
		p = vec[0].data() + vec[0].size();
		lastend = p;
		count++;
		if (!global)
			break;
	}
	if (p < ep)
		re_put(&o, p, (size_t)(ep - p));
	out[o.n] = '\0';
	if (out_len)
		*out_len = o.n;
	return o.full ? -ENOSPC : count;
}
