/*
 * kube_stream.c - watch event framing (see kube_stream.h).
 *
 * A byte-level state machine: between events only whitespace is allowed;
 * '{' opens an event; inside, brackets are counted outside strings and
 * strings honour backslash escapes.  Runs of bytes are appended to the
 * capped buffer in one call, so a large event costs one copy.
 */
#include "controlplane/kube/kube_stream.h"

#include "common/err.h"

void kube_stream_init(struct kube_stream *s, size_t max_event)
{
	mesh_buf_init(&s->buf, max_event ? max_event : KUBE_STREAM_MAX_EVENT);
	s->depth = 0;
	s->in_str = s->esc = false;
	s->err = 0;
	s->n_events = 0;
}

void kube_stream_reset(struct kube_stream *s)
{
	mesh_buf_reset(&s->buf);
	s->depth = 0;
	s->in_str = s->esc = false;
	s->err = 0;
}

void kube_stream_cleanup(struct kube_stream *s)
{
	mesh_buf_cleanup(&s->buf);
}

bool kube_stream_idle(const struct kube_stream *s)
{
	return !s->err && s->depth == 0;
}

int kube_stream_feed(struct kube_stream *s, const char *data, size_t len, kube_stream_fn fn, void *ctx)
{
	size_t i = 0, run;
	int rc;

	if (s->err)
		return s->err;
	while (i < len) {
		if (s->depth == 0) {
			char c = data[i];
			if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
				i++;
				continue;
			}
			if (c != '{') {
				s->err = -MESH_EPARSE;
				return s->err;
			}
			mesh_buf_reset(&s->buf);
		}
		/* inside an event: find where it ends (or the end of the input) */
		for (run = i; run < len; run++) {
			char c = data[run];
			if (s->in_str) {
				if (s->esc)
					s->esc = false;
				else if (c == '\\')
					s->esc = true;
				else if (c == '"')
					s->in_str = false;
				continue;
			}
			if (c == '"') {
				s->in_str = true;
			} else if (c == '{' || c == '[') {
				s->depth++;
			} else if (c == '}' || c == ']') {
				if (--s->depth == 0) {
					run++;
					break;
				}
			}
		}
		rc = mesh_buf_append(&s->buf, data + i, run - i);
		if (rc < 0) {
			s->err = rc;
			return rc;
		}
		i = run;
		if (s->depth == 0) {
			s->n_events++;
			rc = fn(ctx, s->buf.data, s->buf.len);
			mesh_buf_reset(&s->buf);
			if (rc < 0) {
				s->err = rc;
				return rc;
			}
		} else if (s->depth < 0) {
			s->err = -MESH_EPARSE;
			return s->err;
		}
	}
	return 0;
}
