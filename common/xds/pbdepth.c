/*
 * pbdepth.c - an iterative protobuf wire-format walker that measures message
 * nesting (see pbdepth.h).  It never allocates: one frame per open message on
 * a fixed stack, each frame the descriptor, where the message ends and where
 * its parent resumes (the same place, but for an Any's value, after which the
 * rest of the Any is skipped).
 */
#include "common/xds/pbdepth.h"

#include "common/xds/pbjson.h"
#include "google/protobuf/any.pb-c.h"
#include "google/protobuf/duration.pb-c.h"

#include <string.h>

struct pbdepth__frame {
	const ProtobufCMessageDescriptor *desc;
	size_t end;     /* offset one past this message's last byte */
	size_t resume;  /* where the parent goes on once this one ends */
	unsigned level; /* 0 for the top message */
	int any_value;  /* the value of a followed Any */
};

/* Read a base-128 varint at *pos (< end); 0 or -MESH_EPARSE. */
static int pbdepth__varint(const uint8_t *p, size_t *pos, size_t end, uint64_t *out)
{
	uint64_t v = 0;
	unsigned shift;

	for (shift = 0; shift < 64 && *pos < end; shift += 7) {
		uint8_t b = p[(*pos)++];

		v |= (uint64_t)(b & 0x7f) << shift;
		if (!(b & 0x80)) {
			*out = v;
			return 0;
		}
	}
	return -MESH_EPARSE;
}

/* Skip one field's value of wire type wt at *pos; for wire type 2 also
 * return where its bytes start and how many there are. */
static int pbdepth__skip(const uint8_t *p, size_t *pos, size_t end, unsigned wt, size_t *start, size_t *n)
{
	uint64_t v;
	int rc = 0;

	switch (wt) {
	case 0: /* varint */
		rc = pbdepth__varint(p, pos, end, &v);
		break;
	case 1: /* 64-bit */
		if (end - *pos < 8)
			rc = -MESH_EPARSE;
		else
			*pos += 8;
		break;
	case 2: /* length-delimited */
		rc = pbdepth__varint(p, pos, end, &v);
		if (rc < 0)
			break;
		if (v > end - *pos) {
			rc = -MESH_EPARSE;
			break;
		}
		*start = *pos;
		*n = (size_t)v;
		*pos += (size_t)v;
		break;
	case 5: /* 32-bit */
		if (end - *pos < 4)
			rc = -MESH_EPARSE;
		else
			*pos += 4;
		break;
	default: /* groups (3, 4), which protobuf-c does not take, and 6, 7 */
		rc = -MESH_EPARSE;
		break;
	}
	return rc;
}

/* A google.protobuf.Duration's bytes [start, start+n): 0 when Envoy takes
 * it (seconds 1 and nanos 2, the last of each winning), -ERANGE when not,
 * -MESH_EPARSE when broken. */
static int pbdepth__duration(const uint8_t *p, size_t start, size_t n)
{
	size_t pos = start, end = start + n, fs, fn;
	int64_t seconds = 0, nanos = 0;
	uint64_t tag, v;
	int rc = 0;

	while (pos < end) {
		rc = pbdepth__varint(p, &pos, end, &tag);
		if (rc < 0)
			return rc;
		if ((tag & 7) == 0 && ((tag >> 3) == 1 || (tag >> 3) == 2)) {
			rc = pbdepth__varint(p, &pos, end, &v);
			if (rc < 0)
				return rc;
			if ((tag >> 3) == 1)
				seconds = (int64_t)v;
			else
				nanos = (int32_t)(uint32_t)v; /* int32: protobuf keeps the low 32 bits */
			continue;
		}
		rc = pbdepth__skip(p, &pos, end, (unsigned)(tag & 7), &fs, &fn);
		if (rc < 0)
			return rc;
	}
	if (seconds < 0 || nanos < 0 || seconds > PBDEPTH_DURATION_MAX_SECONDS || nanos > 999999999)
		return -ERANGE;
	return 0;
}

/*
 * An Any's bytes [start, start+n): find its type_url (field 1) and value
 * (field 2), the last of each winning as in protobuf, without descending.
 * Sets *inner to the registered descriptor of the type (NULL when unknown)
 * and [*vstart, *vstart+*vn) to the value.
 */
static int pbdepth__any(const uint8_t *p, size_t start, size_t n, const ProtobufCMessageDescriptor **inner,
			size_t *vstart, size_t *vn)
{
	char url[256];
	size_t pos = start, end = start + n, fs = 0, fn = 0, us = 0, un = 0;
	uint64_t tag;
	int have_url = 0, rc = 0;

	*inner = NULL;
	*vstart = 0;
	*vn = 0;
	while (pos < end) {
		rc = pbdepth__varint(p, &pos, end, &tag);
		if (rc < 0)
			goto out;
		rc = pbdepth__skip(p, &pos, end, (unsigned)(tag & 7), &fs, &fn);
		if (rc < 0)
			goto out;
		if ((tag & 7) != 2)
			continue;
		if ((tag >> 3) == 1) {
			us = fs;
			un = fn;
			have_url = 1;
		} else if ((tag >> 3) == 2) {
			*vstart = fs;
			*vn = fn;
		}
	}
	/* a URL longer than any registered type name cannot name one */
	if (have_url && un < sizeof(url) && !memchr(p + us, '\0', un)) {
		memcpy(url, p + us, un);
		url[un] = '\0';
		*inner = pbjson_lookup(url);
	}
out:
	return rc;
}

int pbdepth_check(const ProtobufCMessageDescriptor *desc, const uint8_t *data, size_t len, unsigned max_depth,
		  unsigned flags, unsigned *depth_out)
{
	struct pbdepth__frame stack[PBDEPTH_HARD_MAX + 1];
	unsigned top = 0, deepest = 0; /* top <= level <= max_depth */
	size_t pos = 0, fs = 0, fn = 0;
	uint64_t tag;
	int rc = 0;

	if (!desc || (!data && len) || max_depth > PBDEPTH_HARD_MAX) {
		rc = -EINVAL;
		goto out;
	}
	stack[0].desc = desc;
	stack[0].end = len;
	stack[0].resume = len;
	stack[0].level = 0;
	stack[0].any_value = 0;
	for (;;) {
		const ProtobufCFieldDescriptor *f;
		const ProtobufCMessageDescriptor *child;
		unsigned wt, level;

		/* close every message that ends here */
		while (pos == stack[top].end && top > 0) {
			pos = stack[top].resume;
			top--;
		}
		if (pos == stack[top].end)
			break; /* the top message is done */
		rc = pbdepth__varint(data, &pos, stack[top].end, &tag);
		if (rc < 0)
			goto broken;
		wt = (unsigned)(tag & 7);
		if ((tag >> 3) == 0 || (tag >> 3) > 0x1fffffff) {
			rc = -MESH_EPARSE;
			goto broken;
		}
		rc = pbdepth__skip(data, &pos, stack[top].end, wt, &fs, &fn);
		if (rc < 0)
			goto broken;
		if (wt != 2)
			continue;
		f = protobuf_c_message_descriptor_get_field(stack[top].desc, (unsigned)(tag >> 3));
		if (!f || f->type != PROTOBUF_C_TYPE_MESSAGE || !f->descriptor)
			continue; /* unknown field, string, bytes or packed scalars: flat */
		child = f->descriptor;
		if ((flags & PBDEPTH_CHECK_DURATIONS) && child == &google__protobuf__duration__descriptor) {
			rc = pbdepth__duration(data, fs, fn);
			if (rc == -ERANGE)
				goto out;
			if (rc < 0)
				goto broken;
		}
		level = stack[top].level + 1;
		if (level > deepest)
			deepest = level;
		if (level > max_depth) {
			rc = -MESH_ETOOBIG;
			goto out;
		}
		if ((flags & PBDEPTH_FOLLOW_ANY) && child == &google__protobuf__any__descriptor) {
			const ProtobufCMessageDescriptor *inner;
			size_t vs, vn;

			rc = pbdepth__any(data, fs, fn, &inner, &vs, &vn);
			if (rc < 0)
				goto out;
			if (!inner || !vn)
				continue;
			/* the Any is at level, its value one below; once the value
			 * is walked the parent resumes after the whole Any */
			level++;
			if (level > deepest)
				deepest = level;
			if (level > max_depth) {
				rc = -MESH_ETOOBIG;
				goto out;
			}
			top++;
			stack[top].desc = inner;
			stack[top].end = vs + vn;
			stack[top].resume = fs + fn;
			stack[top].level = level;
			stack[top].any_value = 1;
			pos = vs;
		} else {
			top++;
			stack[top].desc = child;
			stack[top].end = fs + fn;
			stack[top].resume = fs + fn;
			stack[top].level = level;
			stack[top].any_value = 0;
			pos = fs;
		}
		continue;
broken:
		/*
		 * Broken bytes inside a followed Any's value: that value will not
		 * decode (its own unpack fails and the holder NACKs it, as for any
		 * resource that does not decode), so the walk goes on after the
		 * Any.  protobuf-c scans a message's fields flat before it
		 * descends into any of them, so it never descends past the broken
		 * spot: what it would reach has been walked.
		 */
		while (top > 0 && !stack[top].any_value)
			top--;
		if (top == 0)
			goto out;
		pos = stack[top].resume;
		top--;
		rc = 0;
	}
out:
	if (depth_out)
		*depth_out = deepest;
	return rc;
}
