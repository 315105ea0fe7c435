/*
 * h1drive.c - see h1drive.h.  The connection buffer holds every byte that
 * has arrived (a test input is small); heads are parsed from their first
 * byte as the codec's contract asks, body bytes are dropped as consumed.
 */
#include "tests/http/h1drive.h"

#include "dataplane/http1.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define DRIVE_MAX_HEADERS 256

void h1drive_escape(struct mesh_buf *out, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	size_t i;
	unsigned char c;

	for (i = 0; i < n; i++) {
		c = (unsigned char)s[i];
		if (c == '\r')
			mesh_buf_append(out, "\\r", 2);
		else if (c == '\n')
			mesh_buf_append(out, "\\n", 2);
		else if (c == '\t')
			mesh_buf_append(out, "\\t", 2);
		else if (c == '\\' || c == '"') {
			mesh_buf_putc(out, '\\');
			mesh_buf_putc(out, (char)c);
		} else if (c >= 0x20 && c < 0x7f)
			mesh_buf_putc(out, (char)c);
		else {
			char e[4] = { '\\', 'x', hex[c >> 4], hex[c & 15] };

			mesh_buf_append(out, e, 4);
		}
	}
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

char *h1drive_unescape(const char *t, size_t tlen, size_t *outlen)
{
	char *o = malloc(tlen + 1);
	size_t i = 0, n = 0;
	int bol = 1;

	if (!o)
		return NULL;
	while (i < tlen) {
		if (bol && t[i] == '#') {
			while (i < tlen && t[i] != '\n')
				i++;
			continue;
		}
		bol = 0;
		if (t[i] == '\n') {
			bol = 1;
			i++;
			continue;
		}
		if (t[i] == '\\' && i + 1 < tlen) {
			switch (t[i + 1]) {
			case 'r': o[n++] = '\r'; i += 2; continue;
			case 'n': o[n++] = '\n'; i += 2; continue;
			case 't': o[n++] = '\t'; i += 2; continue;
			case '0': o[n++] = '\0'; i += 2; continue;
			case '\\': o[n++] = '\\'; i += 2; continue;
			case 'x':
				if (i + 3 < tlen && hexval(t[i + 2]) >= 0 && hexval(t[i + 3]) >= 0) {
					o[n++] = (char)(hexval(t[i + 2]) * 16 + hexval(t[i + 3]));
					i += 4;
					continue;
				}
				break;
			default:
				break;
			}
		}
		o[n++] = t[i++];
	}
	*outlen = n;
	return o;
}

static const char *framing_name(enum h1_framing f)
{
	switch (f) {
	case H1_BODY_NONE: return "none";
	case H1_BODY_LENGTH: return "length";
	case H1_BODY_CHUNKED: return "chunked";
	case H1_BODY_UNTIL_CLOSE: return "until-close";
	case H1_BODY_TUNNEL: return "tunnel";
	}
	return "?";
}

static const char *form_name(enum h1_target_form f)
{
	switch (f) {
	case H1_FORM_ORIGIN: return "origin";
	case H1_FORM_ABSOLUTE: return "absolute";
	case H1_FORM_AUTHORITY: return "authority";
	case H1_FORM_ASTERISK: return "asterisk";
	}
	return "?";
}

static void put_str(struct mesh_buf *out, struct h1_str s)
{
	h1drive_escape(out, s.p, s.len);
}

static void print_head(struct mesh_buf *out, const struct h1_head *h)
{
	size_t i;

	if (h->is_request) {
		mesh_buf_puts(out, "request ");
		put_str(out, h->method);
		mesh_buf_putc(out, ' ');
		put_str(out, h->target);
		mesh_buf_printf(out, " HTTP/1.%d\n", h->version_minor);
		mesh_buf_printf(out, "form %s", form_name(h->form));
		if (h->scheme.len) {
			mesh_buf_puts(out, " scheme=");
			put_str(out, h->scheme);
		}
		if (h->authority.len) {
			mesh_buf_puts(out, " authority=");
			put_str(out, h->authority);
		}
		if (h->form == H1_FORM_ORIGIN || h->form == H1_FORM_ABSOLUTE) {
			mesh_buf_puts(out, " path=");
			put_str(out, h->path);
		}
		mesh_buf_putc(out, '\n');
	} else {
		mesh_buf_printf(out, "response HTTP/1.%d %d ", h->version_minor, h->status);
		put_str(out, h->reason);
		mesh_buf_putc(out, '\n');
	}
	for (i = 0; i < h->n_headers; i++) {
		mesh_buf_puts(out, "header ");
		put_str(out, h->headers[i].name);
		mesh_buf_puts(out, ": ");
		put_str(out, h->headers[i].value);
		if (h->headers[i].flags & H1_HF_HOP)
			mesh_buf_puts(out, " [hop]");
		mesh_buf_putc(out, '\n');
	}
	mesh_buf_printf(out, "framing %s", framing_name(h->framing));
	if (h->framing == H1_BODY_LENGTH)
		mesh_buf_printf(out, " %llu", (unsigned long long)h->content_length);
	mesh_buf_putc(out, '\n');
	mesh_buf_printf(out, "flags%s%s%s%s%s\n", (h->flags & H1_F_KEEP_ALIVE) ? " keep-alive" : " close",
			(h->flags & H1_F_EXPECT_CONTINUE) ? " expect-continue" : "",
			(h->flags & H1_F_EXPECT_OTHER) ? " expect-other" : "",
			(h->flags & H1_F_UPGRADE) ? " upgrade" : "",
			(h->flags & H1_F_CONNECT) ? " connect" : "");
}

int h1drive_run(const char *in, size_t len, const size_t *cuts, size_t ncuts,
		const struct h1drive_opts *o, struct mesh_buf *out)
{
	struct h1_header *hdrs = calloc(DRIVE_MAX_HEADERS, sizeof(*hdrs));
	struct h1_limits lim = { o->max_head_bytes, o->max_headers };
	struct h1_parser p;
	struct h1_head h;
	struct h1_str data;
	struct mesh_buf body;
	size_t arrived = 0, mstart = 0, boff = 0, consumed, k = 0;
	int in_body = 0, rc = 0, r, eof = 0, messages = 0;

	if (!hdrs)
		return -ENOMEM;
	mesh_buf_init(&body, 1u << 26);
	h1_parser_init(&p, !o->response, &lim, hdrs, DRIVE_MAX_HEADERS);
	h1_parser_set_request(&p, o->req_flags);
	for (;;) {
		/* the next piece arrives */
		if (arrived < len) {
			size_t upto = k < ncuts && cuts[k] <= len ? cuts[k] : len;

			k++;
			if (upto < arrived)
				upto = arrived;
			arrived = upto;
		} else if (!eof) {
			eof = 1;
		} else {
			break;
		}
		for (;;) {
			if (!in_body) {
				if (mstart == arrived) {
					if (eof)
						goto done;
					break;
				}
				r = h1_parse_head(&p, in + mstart, arrived - mstart, &h);
				if (r == H1_AGAIN) {
					if (eof) {
						mesh_buf_puts(out, "incomplete-head\n");
						goto done;
					}
					break;
				}
				if (r < 0) {
					mesh_buf_printf(out, "error %d %s\n", h1_err_status(r), h1_strerror(r));
					goto done;
				}
				print_head(out, &h);
				messages++;
				boff = mstart + h.head_len;
				in_body = 1;
				mesh_buf_reset(&body);
			}
			r = h1_parse_body(&p, in + boff, arrived - boff, &consumed, &data);
			boff += consumed;
			if (r == H1_DATA) {
				mesh_buf_append(&body, data.p, data.len);
				continue;
			}
			if (r == H1_TRAILERS) {
				if (body.len) {
					mesh_buf_printf(out, "body %zu \"", body.len);
					h1drive_escape(out, body.data, body.len);
					mesh_buf_puts(out, "\"\n");
					mesh_buf_reset(&body);
				}
				mesh_buf_puts(out, "trailers \"");
				put_str(out, data);
				mesh_buf_puts(out, "\"\n");
				continue;
			}
			if (r == H1_AGAIN && eof)
				r = h1_parse_eof(&p);
			if (r == H1_AGAIN)
				break;
			if (body.len) {
				mesh_buf_printf(out, "body %zu \"", body.len);
				h1drive_escape(out, body.data, body.len);
				mesh_buf_puts(out, "\"\n");
			}
			if (r < 0) {
				mesh_buf_printf(out, "error %d %s\n", h1_err_status(r), h1_strerror(r));
				goto done;
			}
			mesh_buf_puts(out, "end\n");
			in_body = 0;
			mstart = boff;
			h1_parser_reset(&p);
			if (h.framing == H1_BODY_TUNNEL || h.framing == H1_BODY_UNTIL_CLOSE)
				goto done;
		}
	}
done:
	if (out->err)
		rc = out->err;
	mesh_buf_cleanup(&body);
	free(hdrs);
	return rc;
}
