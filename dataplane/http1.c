/*
 * http1.c - the HTTP/1.1 codec of http1.h: strict, incremental, zero-copy.
 *
 * A head is handled in two steps (as picohttpparser's is_complete, haproxy's
 * h1_headers_to_hdr_list after the end is known): first find its end,
 * resuming where the previous call stopped (memchr for LF, each LF checked
 * for its CR, so a bare LF is refused before anything else), then parse the
 * complete head once, in one pass, with table lookups and an 8-bytes-at-a-
 * time check for field values and targets.  The body decoder is a byte
 * state machine for chunk lines and hands out data spans of the input.
 */
#include "dataplane/http1.h"

#include <string.h>

/* --- character classes (RFC 9110 §5.6.2 tchar; field-vchar / obs-text) */

enum { C_TCHAR = 1, C_VALUE = 2, C_TARGET = 4, C_HEX = 8, C_DIGIT = 16, C_SCHEME = 32, C_AUTH = 64 };

static unsigned char cls[256];
static unsigned char lower[256];

static void init_tables(void)
{
	static int done;
	const char *tspecial = "!#$%&'*+-.^_`|~";
	int c;

	if (done)
		return;
	for (c = 0; c < 256; c++) {
		unsigned char m = 0;
		int alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
		int digit = c >= '0' && c <= '9';

		if (alpha || digit || (c && strchr(tspecial, c)))
			m |= C_TCHAR;
		if (c == '\t' || (c >= 0x20 && c != 0x7f))
			m |= C_VALUE;
		if (c >= 0x21 && c <= 0x7e)
			m |= C_TARGET;
		if (digit || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))
			m |= C_HEX;
		if (digit)
			m |= C_DIGIT;
		if (alpha || digit || c == '+' || c == '-' || c == '.')
			m |= C_SCHEME;
		/* reg-name / IP-literal / port characters of an authority, no userinfo */
		if (alpha || digit || (c && strchr("-._~!$&'()*+,;=:[]%", c)))
			m |= C_AUTH;
		cls[c] = m;
		lower[c] = (unsigned char)((c >= 'A' && c <= 'Z') ? c + 32 : c);
	}
	done = 1;
}

#define IS(c, m) (cls[(unsigned char)(c)] & (m))

/*
 * Length of the prefix of s[0..n) made of bytes in 0x20..0x7e or >= 0x80
 * (HTAB and the rest are left to the byte loop): eight bytes per step
 * while none is a control byte or DEL.
 */
static size_t vchar_run(const char *s, size_t n)
{
	const uint64_t ones = 0x0101010101010101ull, high = 0x8080808080808080ull;
	size_t i = 0;
	uint64_t w, lt20, del;

	while (i + 8 <= n) {
		memcpy(&w, s + i, 8);
		lt20 = (w - ones * 0x20) & ~w & high; /* a byte < 0x20 */
		del = ((w ^ (ones * 0x7f)) - ones) & ~(w ^ (ones * 0x7f)) & high; /* a byte == 0x7f */
		if (lt20 | del)
			break;
		i += 8;
	}
	return i;
}

/* The same for request-target bytes, %x21-7e only (SP ends the target). */
static size_t target_run(const char *s, size_t n)
{
	const uint64_t ones = 0x0101010101010101ull, high = 0x8080808080808080ull;
	size_t i = 0;
	uint64_t w;

	while (i + 8 <= n) {
		memcpy(&w, s + i, 8);
		/* a byte < 0x21, or >= 0x7f (0x7f + 1 and every byte >= 0x80 set the high bit) */
		if ((((w - ones * 0x21) & ~w) | (w + ones) | w) & high)
			break;
		i += 8;
	}
	return i;
}

int h1_str_ieq(struct h1_str s, const char *lc)
{
	size_t i;

	for (i = 0; i < s.len; i++)
		if (!lc[i] || lower[(unsigned char)s.p[i]] != (unsigned char)lc[i])
			return 0;
	return lc[i] == '\0';
}

static int span_ieq(const char *p, size_t n, const char *lc, size_t lcn)
{
	size_t i;

	if (n != lcn)
		return 0;
	for (i = 0; i < n; i++)
		if (lower[(unsigned char)p[i]] != (unsigned char)lc[i])
			return 0;
	return 1;
}

static enum h1_hdr_id header_id(const char *n, size_t len)
{
#define ID(s, id) \
	if (span_ieq(n, len, s, sizeof(s) - 1)) \
		return id
	switch (len) {
	case 2:
		ID("te", H1_H_TE);
		break;
	case 4:
		ID("host", H1_H_HOST);
		break;
	case 6:
		ID("expect", H1_H_EXPECT);
		break;
	case 7:
		ID("trailer", H1_H_TRAILER);
		ID("upgrade", H1_H_UPGRADE);
		break;
	case 10:
		ID("connection", H1_H_CONNECTION);
		ID("keep-alive", H1_H_KEEP_ALIVE);
		break;
	case 14:
		ID("content-length", H1_H_CONTENT_LENGTH);
		break;
	case 16:
		ID("proxy-connection", H1_H_PROXY_CONNECTION);
		break;
	case 17:
		ID("transfer-encoding", H1_H_TRANSFER_ENCODING);
		break;
	}
#undef ID
	return H1_H_OTHER;
}

/* --- errors */

static const char *const err_names[H1_E_MAX] = {
	[0] = "ok",
	[H1_E_REQUEST_LINE] = "request-line",
	[H1_E_METHOD] = "method",
	[H1_E_TARGET] = "request-target",
	[H1_E_VERSION] = "version",
	[H1_E_VERSION_UNSUPPORTED] = "version-unsupported",
	[H1_E_STATUS_LINE] = "status-line",
	[H1_E_BARE_LF] = "bare-lf",
	[H1_E_BARE_CR] = "bare-cr",
	[H1_E_OBS_FOLD] = "obs-fold",
	[H1_E_NO_COLON] = "no-colon",
	[H1_E_SPACE_BEFORE_COLON] = "space-before-colon",
	[H1_E_FIELD_NAME] = "field-name",
	[H1_E_FIELD_VALUE] = "field-value",
	[H1_E_HEAD_TOO_LARGE] = "head-too-large",
	[H1_E_TOO_MANY_HEADERS] = "too-many-headers",
	[H1_E_CL_TE] = "cl-te",
	[H1_E_CONTENT_LENGTH] = "content-length",
	[H1_E_CL_MISMATCH] = "content-length-mismatch",
	[H1_E_TRANSFER_ENCODING] = "transfer-encoding",
	[H1_E_TE_NOT_CHUNKED] = "te-not-chunked",
	[H1_E_TE_HTTP10] = "te-http10",
	[H1_E_CHUNKED_TWICE] = "chunked-twice",
	[H1_E_NO_HOST] = "no-host",
	[H1_E_MULTIPLE_HOST] = "multiple-host",
	[H1_E_CHUNK_SIZE] = "chunk-size",
	[H1_E_CHUNK_OVERFLOW] = "chunk-overflow",
	[H1_E_CHUNK_EXT] = "chunk-ext",
	[H1_E_CHUNK_CRLF] = "chunk-crlf",
	[H1_E_TRAILER] = "trailer",
	[H1_E_TRAILER_TOO_LARGE] = "trailer-too-large",
	[H1_E_TRUNCATED] = "truncated",
	[H1_E_AUTHORITY] = "invalid-host",
};

const char *h1_strerror(int code)
{
	if (code < 0)
		code = -code;
	if (code >= H1_E_MAX || !err_names[code])
		return "unknown";
	return err_names[code];
}

int h1_err_status(int code)
{
	if (code < 0)
		code = -code;
	switch (code) {
	case H1_E_HEAD_TOO_LARGE:
	case H1_E_TOO_MANY_HEADERS:
		return 431;
	case H1_E_VERSION_UNSUPPORTED:
		return 505;
	default:
		return 400;
	}
}

/* --- parser state */

void h1_parser_init(struct h1_parser *p, int is_request, const struct h1_limits *lim,
		    struct h1_header *hdrs, size_t hdr_cap)
{
	init_tables();
	memset(p, 0, sizeof(*p));
	p->lim.max_head_bytes = lim && lim->max_head_bytes ? lim->max_head_bytes : H1_DEFAULT_MAX_HEAD_BYTES;
	p->lim.max_headers = lim && lim->max_headers ? lim->max_headers : H1_DEFAULT_MAX_HEADERS;
	if (p->lim.max_headers > hdr_cap)
		p->lim.max_headers = hdr_cap;
	p->hdrs = hdrs;
	p->hdr_cap = hdr_cap;
	p->is_request = is_request;
}

enum { B_HEAD, B_LENGTH, B_RAW, B_CSIZE0, B_CSIZE, B_CSIZE_WS, B_CEXT, B_CSIZE_LF, B_CDATA, B_CDATA_CR,
       B_CDATA_LF, B_TRAILERS, B_DONE_PENDING, B_DONE };

void h1_parser_reset(struct h1_parser *p)
{
	p->scan = p->skip = p->line_start = 0;
	p->framing = H1_BODY_NONE;
	p->bstate = B_HEAD;
	p->remaining = 0;
	p->chunk_line = 0;
}

void h1_parser_set_request(struct h1_parser *p, unsigned req_flags)
{
	p->req_flags = req_flags & (H1_F_HEAD | H1_F_CONNECT);
}

/*
 * Finds the end of a field block starting at buf[start] (a head after its
 * leading CRLFs, or a trailer section), resuming at p->scan: returns the
 * offset just past the empty line, 0 if not there yet, or a negative code.
 * Every LF must follow a CR.
 */
static long find_block_end(struct h1_parser *p, const char *buf, size_t len, size_t start, int too_large)
{
	/* nothing past the limit is looked at, so the outcome does not depend
	 * on how the bytes were split into reads */
	size_t lim = len - start > p->lim.max_head_bytes ? start + p->lim.max_head_bytes : len;
	const char *q;
	size_t pos;

	if (p->scan < start)
		p->scan = p->line_start = start;
	while (p->scan < lim) {
		q = memchr(buf + p->scan, '\n', lim - p->scan);
		if (!q)
			break;
		pos = (size_t)(q - buf);
		if (pos == start || buf[pos - 1] != '\r')
			return -H1_E_BARE_LF;
		if (pos - 1 == p->line_start)
			return (long)(pos + 1);
		p->line_start = p->scan = pos + 1;
	}
	p->scan = lim;
	if (lim - start >= p->lim.max_head_bytes)
		return -too_large;
	return 0;
}

/*
 * Parses field lines from s up to the block's final CRLF (end points at
 * the empty line's CR).  Stores up to p->lim.max_headers fields in out
 * (NULL: validate only).  Returns the count or a negative code.
 */
static long parse_fields(const struct h1_parser *p, const char *s, const char *end, struct h1_header *out)
{
	size_t n = 0;
	const char *name, *v, *ve;

	while (s < end) {
		if (*s == ' ' || *s == '\t')
			return -H1_E_OBS_FOLD;
		name = s;
		while (IS(*s, C_TCHAR))
			s++;
		if (*s != ':') {
			if (s == name && *s == '\r')
				return -H1_E_NO_COLON;
			if (*s == ' ' || *s == '\t')
				return s == name ? -H1_E_OBS_FOLD : -H1_E_SPACE_BEFORE_COLON;
			if (*s == '\r')
				return -H1_E_NO_COLON;
			return -H1_E_FIELD_NAME;
		}
		if (s == name)
			return -H1_E_FIELD_NAME;
		if (n >= p->lim.max_headers)
			return -H1_E_TOO_MANY_HEADERS;
		if (out) {
			out[n].name.p = name;
			out[n].name.len = (size_t)(s - name);
		}
		s++;
		while (*s == ' ' || *s == '\t')
			s++;
		v = s;
		for (;;) {
			s += vchar_run(s, (size_t)(end - s));
			if (IS(*s, C_VALUE)) {
				s++;
				continue;
			}
			break;
		}
		if (*s != '\r')
			return -H1_E_FIELD_VALUE;
		if (s[1] != '\n')
			return -H1_E_BARE_CR;
		ve = s;
		while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
			ve--;
		if (out) {
			out[n].value.p = v;
			out[n].value.len = (size_t)(ve - v);
			out[n].flags = header_id(out[n].name.p, out[n].name.len);
		}
		n++;
		s += 2;
	}
	return (long)n;
}

/* Calls fn for each non-empty element of a comma-separated list (RFC 9110 §5.6.1). */
#define FOR_LIST(val, e, elen, ...) \
	do { \
		const char *lp_ = (val).p, *le_ = (val).p + (val).len, *ee_; \
		while (lp_ < le_) { \
			while (lp_ < le_ && (*lp_ == ' ' || *lp_ == '\t' || *lp_ == ',')) \
				lp_++; \
			if (lp_ == le_) \
				break; \
			ee_ = memchr(lp_, ',', (size_t)(le_ - lp_)); \
			if (!ee_) \
				ee_ = le_; \
			e = lp_; \
			elen = (size_t)(ee_ - lp_); \
			while (elen && (e[elen - 1] == ' ' || e[elen - 1] == '\t')) \
				elen--; \
			__VA_ARGS__; \
			lp_ = ee_; \
		} \
	} while (0)

static int is_token(const char *s, size_t n)
{
	size_t i;

	if (!n)
		return 0;
	for (i = 0; i < n; i++)
		if (!IS(s[i], C_TCHAR))
			return 0;
	return 1;
}

/* Content-Length value(s): *cl set (or checked against an earlier one). */
static int parse_cl(struct h1_str v, uint64_t *cl, int *seen)
{
	const char *e;
	size_t elen, i;
	uint64_t x;
	int any = 0;

	FOR_LIST(v, e, elen, {
		if (elen == 0 || elen > 18 || (elen > 1 && e[0] == '0'))
			return -H1_E_CONTENT_LENGTH;
		x = 0;
		for (i = 0; i < elen; i++) {
			if (!IS(e[i], C_DIGIT))
				return -H1_E_CONTENT_LENGTH;
			x = x * 10 + (uint64_t)(e[i] - '0');
		}
		if (*seen && x != *cl)
			return -H1_E_CL_MISMATCH;
		*cl = x;
		*seen = 1;
		any = 1;
	});
	return any ? 0 : -H1_E_CONTENT_LENGTH;
}

struct te_state {
	int codings;      /* codings seen */
	int chunked;      /* times chunked seen */
	int last_chunked; /* the final coding so far is chunked */
};

static int parse_te(struct h1_str v, struct te_state *te)
{
	const char *e;
	size_t elen;

	FOR_LIST(v, e, elen, {
		if (!is_token(e, elen))
			return -H1_E_TRANSFER_ENCODING; /* parameters, quotes, junk */
		te->codings++;
		te->last_chunked = span_ieq(e, elen, "chunked", 7);
		if (te->last_chunked && ++te->chunked > 1)
			return -H1_E_CHUNKED_TWICE;
	});
	return 0;
}

/*
 * An authority (Host value or request-target authority) as Envoy's header
 * validator takes it (HeaderValidator::validateHostHeader, RFC 9110 §7.2,
 * RFC 3986 §3.2.2): a non-empty host, "[...]" with IPv6 characters or a
 * reg-name without ':' '[' ']' (the caller has checked the characters
 * against C_AUTH, which has no '@'), then nothing or ":" and a port of
 * digits only in 1..65535.  So "h:abc", "h:99999", "h:0", "h:", ":80" and
 * "" are refused with 400 instead of reaching routing (where a bad port
 * would become a DNS lookup and a 503).  Returns 0 or -H1_E_AUTHORITY.
 */
static int check_authority(const char *p, size_t len)
{
	const char *end = p + len, *s = p;
	unsigned long port = 0;

	if (len == 0)
		return -H1_E_AUTHORITY;
	if (*s == '[') {
		for (s++; s < end && *s != ']'; s++)
			if (!IS(*s, C_HEX) && *s != ':' && *s != '.')
				return -H1_E_AUTHORITY;
		if (s == end || s == p + 1)
			return -H1_E_AUTHORITY;
		s++;
	} else {
		for (; s < end && *s != ':'; s++)
			if (*s == '[' || *s == ']')
				return -H1_E_AUTHORITY;
		if (s == p)
			return -H1_E_AUTHORITY;
	}
	if (s == end)
		return 0;
	if (*s != ':' || ++s == end || end - s > 5)
		return -H1_E_AUTHORITY;
	for (; s < end; s++) {
		if (!IS(*s, C_DIGIT))
			return -H1_E_AUTHORITY;
		port = port * 10 + (unsigned long)(*s - '0');
	}
	return port >= 1 && port <= 65535 ? 0 : -H1_E_AUTHORITY;
}

/* Request-target forms, RFC 9112 §3.2. */
static int parse_target(struct h1_head *h)
{
	const char *t = h->target.p, *end = t + h->target.len, *s, *a;

	h->scheme.len = h->authority.len = h->path.len = 0;
	h->scheme.p = h->authority.p = h->path.p = t;
	if (memchr(t, '#', h->target.len))
		return -H1_E_TARGET;
	if (h->flags & H1_F_CONNECT) {
		/* authority-form: host ":" port, port digits */
		s = end;
		while (s > t && IS(s[-1], C_DIGIT))
			s--;
		if (s == end || s - 1 <= t || s[-1] != ':')
			return -H1_E_TARGET;
		for (a = t; a < end; a++)
			if (!IS(*a, C_AUTH))
				return -H1_E_TARGET;
		h->form = H1_FORM_AUTHORITY;
		h->authority = h->target;
		return 0;
	}
	if (*t == '/') {
		h->form = H1_FORM_ORIGIN;
		h->path = h->target;
		return 0;
	}
	if (h->target.len == 1 && *t == '*') {
		if (h->method.len != 7 || memcmp(h->method.p, "OPTIONS", 7) != 0)
			return -H1_E_TARGET;
		h->form = H1_FORM_ASTERISK;
		return 0;
	}
	/* absolute-form: scheme "://" authority [path-abempty] ["?" query] */
	s = t;
	if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z')))
		return -H1_E_TARGET;
	while (s < end && IS(*s, C_SCHEME))
		s++;
	if (end - s < 3 || memcmp(s, "://", 3) != 0)
		return -H1_E_TARGET;
	h->scheme.len = (size_t)(s - t);
	a = s + 3;
	s = a;
	while (s < end && *s != '/' && *s != '?') {
		if (!IS(*s, C_AUTH))
			return -H1_E_TARGET; /* '@' (userinfo) among others */
		s++;
	}
	if (s == a)
		return -H1_E_TARGET;
	h->form = H1_FORM_ABSOLUTE;
	h->authority.p = a;
	h->authority.len = (size_t)(s - a);
	h->path.p = s;
	h->path.len = (size_t)(end - s);
	return 0;
}

/* "HTTP/" DIGIT "." DIGIT at s (8 bytes available): minor (0/1) or a negative code. */
static int parse_version(const char *s, int bad)
{
	if (memcmp(s, "HTTP/", 5) != 0 || !IS(s[5], C_DIGIT) || s[6] != '.' || !IS(s[7], C_DIGIT))
		return -bad;
	if (s[5] != '1')
		return -H1_E_VERSION_UNSUPPORTED;
	return s[7] == '0' ? 0 : 1;
}

static int ieq2(const char *a, size_t alen, const char *b, size_t blen)
{
	size_t i;

	if (alen != blen)
		return 0;
	for (i = 0; i < alen; i++)
		if (lower[(unsigned char)a[i]] != lower[(unsigned char)b[i]])
			return 0;
	return 1;
}

/* Marks the fields the Connection header nominates as hop-by-hop (RFC 9110 §7.6.1). */
static void mark_nominated(struct h1_head *h)
{
	size_t i, j, elen;
	const char *e;
	unsigned id;

	for (i = 0; i < h->n_headers; i++) {
		if ((h->headers[i].flags & H1_HF_ID_MASK) != H1_H_CONNECTION)
			continue;
		FOR_LIST(h->headers[i].value, e, elen, {
			for (j = 0; j < h->n_headers; j++) {
				id = h->headers[j].flags & H1_HF_ID_MASK;
				/* Host and framing stay under the proxy's control, never dropped by name */
				if (id == H1_H_HOST || id == H1_H_CONTENT_LENGTH)
					continue;
				if (ieq2(h->headers[j].name.p, h->headers[j].name.len, e, elen))
					h->headers[j].flags |= H1_HF_HOP;
			}
		});
	}
}

/* Semantics of the fields: framing, persistence, Host, Expect, Upgrade. */
static int analyse(struct h1_parser *p, struct h1_head *h)
{
	struct te_state te = { 0, 0, 0 };
	int cl_seen = 0, hosts = 0, conn_upgrade = 0, has_upgrade = 0, keep_alive_tok = 0, rc;
	size_t i, elen;
	const char *e;

	for (i = 0; i < h->n_headers; i++) {
		struct h1_header *f = &h->headers[i];

		switch (f->flags & H1_HF_ID_MASK) {
		case H1_H_CONTENT_LENGTH:
			rc = parse_cl(f->value, &h->content_length, &cl_seen);
			if (rc < 0)
				return rc;
			break;
		case H1_H_TRANSFER_ENCODING:
			f->flags |= H1_HF_HOP;
			rc = parse_te(f->value, &te);
			if (rc < 0)
				return rc;
			if (te.codings == 0)
				return -H1_E_TRANSFER_ENCODING;
			break;
		case H1_H_HOST:
			hosts++;
			h->host = f->value;
			for (elen = 0; elen < f->value.len; elen++)
				if (!IS(f->value.p[elen], C_AUTH))
					return -H1_E_FIELD_VALUE; /* not an authority (no userinfo either) */
			break;
		case H1_H_CONNECTION:
			f->flags |= H1_HF_HOP;
			FOR_LIST(f->value, e, elen, {
				if (span_ieq(e, elen, "close", 5))
					h->flags |= H1_F_CONN_CLOSE;
				else if (span_ieq(e, elen, "keep-alive", 10))
					keep_alive_tok = 1;
				else if (span_ieq(e, elen, "upgrade", 7))
					conn_upgrade = 1;
				else
					h->flags |= H1_F_CONN_NAMES;
			});
			break;
		case H1_H_UPGRADE:
			f->flags |= H1_HF_HOP;
			has_upgrade = 1;
			break;
		case H1_H_EXPECT:
			if (h->is_request && h->version_minor >= 1) {
				if (h1_str_ieq(f->value, "100-continue"))
					h->flags |= H1_F_EXPECT_CONTINUE;
				else
					h->flags |= H1_F_EXPECT_OTHER;
			}
			break;
		case H1_H_KEEP_ALIVE:
		case H1_H_PROXY_CONNECTION:
		case H1_H_TE:
		case H1_H_TRAILER:
			f->flags |= H1_HF_HOP;
			break;
		default:
			break;
		}
	}
	if (h->flags & H1_F_CONN_NAMES)
		mark_nominated(h);
	if (h->version_minor >= 1)
		h->flags |= (h->flags & H1_F_CONN_CLOSE) ? 0 : H1_F_KEEP_ALIVE;
	else if (keep_alive_tok && !(h->flags & H1_F_CONN_CLOSE))
		h->flags |= H1_F_KEEP_ALIVE;
	if (te.codings && h->version_minor == 0)
		return -H1_E_TE_HTTP10; /* RFC 9112 §6.1: faulty framing */
	if (te.codings && cl_seen)
		return -H1_E_CL_TE;
	if (h->is_request) {
		if (h->version_minor >= 1 && hosts == 0)
			return -H1_E_NO_HOST;
		if (hosts > 1)
			return -H1_E_MULTIPLE_HOST;
		/* an absolute-form or authority-form target's authority replaces Host
		 * (RFC 9112 §3.2.2, Envoy's codec setHost), so that is the one checked */
		rc = 0;
		if (h->form == H1_FORM_ABSOLUTE || h->form == H1_FORM_AUTHORITY)
			rc = check_authority(h->authority.p, h->authority.len);
		else if (hosts == 1)
			rc = check_authority(h->host.p, h->host.len);
		if (rc < 0)
			return rc;
		if (conn_upgrade && has_upgrade && h->version_minor >= 1)
			h->flags |= H1_F_UPGRADE;
		if (te.codings) {
			if (!te.last_chunked)
				return -H1_E_TE_NOT_CHUNKED;
			h->framing = H1_BODY_CHUNKED;
		} else if (cl_seen && h->content_length > 0) {
			h->framing = H1_BODY_LENGTH;
		} else {
			h->framing = H1_BODY_NONE;
		}
		return 0;
	}
	/* responses, RFC 9112 §6.3 in its order */
	if ((p->req_flags & H1_F_HEAD) || h->status < 200 || h->status == 204 || h->status == 304) {
		h->framing = h->status == 101 ? H1_BODY_TUNNEL : H1_BODY_NONE;
	} else if ((p->req_flags & H1_F_CONNECT) && h->status < 300) {
		h->framing = H1_BODY_TUNNEL;
	} else if (te.codings) {
		h->framing = te.last_chunked ? H1_BODY_CHUNKED : H1_BODY_UNTIL_CLOSE;
	} else if (cl_seen) {
		h->framing = h->content_length > 0 ? H1_BODY_LENGTH : H1_BODY_NONE;
	} else {
		h->framing = H1_BODY_UNTIL_CLOSE;
	}
	if (h->framing == H1_BODY_UNTIL_CLOSE || h->framing == H1_BODY_TUNNEL)
		h->flags &= ~(unsigned)H1_F_KEEP_ALIVE;
	return 0;
}

static int parse_request_line(struct h1_head *h, const char *s, const char *end, const char **next)
{
	const char *m = s, *t;
	int v;

	while (IS(*s, C_TCHAR))
		s++;
	if (s == m)
		return *s == ' ' ? -H1_E_REQUEST_LINE : -H1_E_METHOD;
	if (*s != ' ')
		return *s == '\r' ? -H1_E_REQUEST_LINE : -H1_E_METHOD;
	h->method.p = m;
	h->method.len = (size_t)(s - m);
	t = ++s;
	for (;;) {
		s += target_run(s, (size_t)(end - s));
		while (IS(*s, C_TARGET))
			s++;
		if ((unsigned char)*s < 0x80 || s >= end)
			break;
		return -H1_E_TARGET; /* obs-text is not allowed in a request-target */
	}
	if (s == t)
		return -H1_E_REQUEST_LINE;
	if (*s != ' ')
		return *s == '\r' ? -H1_E_REQUEST_LINE : -H1_E_TARGET;
	h->target.p = t;
	h->target.len = (size_t)(s - t);
	s++;
	if (end - s < 10)
		return -H1_E_REQUEST_LINE;
	v = parse_version(s, H1_E_VERSION);
	if (v < 0)
		return v;
	if (s[8] != '\r' || s[9] != '\n')
		return s[8] == '\r' ? -H1_E_BARE_CR : -H1_E_VERSION;
	h->version_minor = v;
	if (h->method.len == 4 && memcmp(h->method.p, "HEAD", 4) == 0)
		h->flags |= H1_F_HEAD;
	if (h->method.len == 7 && memcmp(h->method.p, "CONNECT", 7) == 0)
		h->flags |= H1_F_CONNECT;
	*next = s + 10;
	return parse_target(h);
}

static int parse_status_line(struct h1_head *h, const char *s, const char *end, const char **next)
{
	const char *r;
	int v;

	if (end - s < 14)
		return -H1_E_STATUS_LINE;
	v = parse_version(s, H1_E_STATUS_LINE);
	if (v < 0)
		return v;
	h->version_minor = v;
	s += 8;
	if (s[0] != ' ' || !IS(s[1], C_DIGIT) || !IS(s[2], C_DIGIT) || !IS(s[3], C_DIGIT) || s[1] == '0')
		return -H1_E_STATUS_LINE;
	h->status = (s[1] - '0') * 100 + (s[2] - '0') * 10 + (s[3] - '0');
	s += 4;
	/* "HTTP/1.1 200\r\n" without SP and reason is taken: clients ignore the reason */
	if (*s == ' ')
		s++;
	else if (*s != '\r')
		return -H1_E_STATUS_LINE;
	r = s;
	for (;;) {
		s += vchar_run(s, (size_t)(end - s));
		if (IS(*s, C_VALUE)) {
			s++;
			continue;
		}
		break;
	}
	if (*s != '\r')
		return -H1_E_STATUS_LINE;
	if (s[1] != '\n')
		return -H1_E_BARE_CR;
	h->reason.p = r;
	h->reason.len = (size_t)(s - r);
	*next = s + 2;
	return 0;
}

int h1_parse_head(struct h1_parser *p, const char *buf, size_t len, struct h1_head *h)
{
	const char *s, *end;
	long r;
	int rc;

	/* RFC 9112 §2.2: empty lines before a request-line are ignored */
	if (p->scan == 0 && p->is_request) {
		while (p->skip < len && buf[p->skip] == '\r') {
			if (p->skip + 1 >= len)
				return H1_AGAIN;
			if (buf[p->skip + 1] != '\n')
				return -H1_E_BARE_CR;
			p->skip += 2;
			if (p->skip > p->lim.max_head_bytes)
				return -H1_E_HEAD_TOO_LARGE;
		}
		if (p->skip < len && buf[p->skip] == '\n')
			return -H1_E_BARE_LF;
		if (p->skip == len)
			return H1_AGAIN;
	}
	r = find_block_end(p, buf, len, p->skip, H1_E_HEAD_TOO_LARGE);
	if (r <= 0)
		return r < 0 ? (int)r : H1_AGAIN;
	memset(h, 0, sizeof(*h));
	h->is_request = p->is_request;
	h->head_len = (size_t)r;
	h->headers = p->hdrs;
	s = buf + p->skip;
	end = buf + r - 2; /* the empty line's CR: a sentinel every scan stops at */
	if (p->is_request)
		rc = parse_request_line(h, s, end, &s);
	else
		rc = parse_status_line(h, s, end, &s);
	if (rc < 0)
		return rc;
	r = parse_fields(p, s, end, p->hdrs);
	if (r < 0)
		return (int)r;
	h->n_headers = (size_t)r;
	rc = analyse(p, h);
	if (rc < 0)
		return rc;
	p->framing = h->framing;
	p->remaining = h->content_length;
	p->scan = p->line_start = 0;
	switch (h->framing) {
	case H1_BODY_NONE:
		p->bstate = B_DONE_PENDING;
		break;
	case H1_BODY_LENGTH:
		p->bstate = B_LENGTH;
		break;
	case H1_BODY_CHUNKED:
		p->bstate = B_CSIZE0;
		break;
	default:
		p->bstate = B_RAW;
		break;
	}
	return H1_OK;
}

/* --- bodies */

#define CHUNK_LINE_MAX 4096 /* a chunk-size line with its extensions */

int h1_parse_body(struct h1_parser *p, const char *buf, size_t len, size_t *consumed, struct h1_str *data)
{
	size_t pos = 0, n;
	long r;
	int rc = H1_AGAIN;
	unsigned char c;

	data->p = buf;
	data->len = 0;
	while (rc == H1_AGAIN) {
		switch (p->bstate) {
		case B_DONE_PENDING:
			p->bstate = B_DONE;
			rc = H1_DONE;
			continue;
		case B_DONE:
			rc = H1_DONE;
			continue;
		case B_LENGTH:
			if (p->remaining == 0) {
				p->bstate = B_DONE;
				rc = H1_DONE;
				continue;
			}
			/* fall through */
		case B_CDATA:
			if (pos == len)
				goto out;
			n = len - pos;
			if (n > p->remaining)
				n = (size_t)p->remaining;
			data->p = buf + pos;
			data->len = n;
			pos += n;
			p->remaining -= n;
			if (p->bstate == B_CDATA && p->remaining == 0)
				p->bstate = B_CDATA_CR;
			rc = H1_DATA;
			continue;
		case B_RAW:
			if (pos == len)
				goto out;
			data->p = buf + pos;
			data->len = len - pos;
			pos = len;
			rc = H1_DATA;
			continue;
		case B_TRAILERS:
			/* the whole section must be buffered: validated in one go, handed out as one span */
			if (pos < len && buf[pos] == '\r' && p->scan <= pos) {
				if (pos + 1 == len)
					goto out;
				if (buf[pos + 1] != '\n')
					return -H1_E_BARE_CR;
				pos += 2;
				p->bstate = B_DONE;
				rc = H1_DONE;
				continue;
			}
			r = find_block_end(p, buf, len, pos, H1_E_TRAILER_TOO_LARGE);
			if (r < 0)
				return (int)r;
			if (r == 0) {
				/* rebase: the caller drops the pos bytes consumed so far */
				p->scan -= pos;
				p->line_start -= pos;
				goto out;
			}
			if (parse_fields(p, buf + pos, buf + r - 2, NULL) < 0)
				return -H1_E_TRAILER;
			data->p = buf + pos;
			data->len = (size_t)r - 2 - pos;
			pos = (size_t)r;
			p->scan = p->line_start = 0;
			p->bstate = B_DONE_PENDING;
			rc = H1_TRAILERS;
			continue;
		default:
			break;
		}
		/* chunk-size line and CRLFs, a byte at a time */
		if (pos == len)
			goto out;
		c = (unsigned char)buf[pos++];
		switch (p->bstate) {
		case B_CSIZE0:
		case B_CSIZE:
			if (IS(c, C_HEX)) {
				if (p->remaining >> 56)
					return -H1_E_CHUNK_OVERFLOW;
				p->remaining = (p->remaining << 4) |
					       (uint64_t)(IS(c, C_DIGIT) ? c - '0' : (lower[c] - 'a' + 10));
				p->bstate = B_CSIZE;
			} else if (p->bstate == B_CSIZE0) {
				return -H1_E_CHUNK_SIZE;
			} else if (c == '\r') {
				p->bstate = B_CSIZE_LF;
			} else if (c == ';') {
				p->bstate = B_CEXT;
			} else if (c == ' ' || c == '\t') {
				p->bstate = B_CSIZE_WS;
			} else {
				return c == '\n' ? -H1_E_BARE_LF : -H1_E_CHUNK_SIZE;
			}
			break;
		case B_CSIZE_WS: /* BWS is allowed only before a chunk extension */
			if (c == ';')
				p->bstate = B_CEXT;
			else if (c != ' ' && c != '\t')
				return -H1_E_CHUNK_SIZE;
			break;
		case B_CEXT:
			if (c == '\r')
				p->bstate = B_CSIZE_LF;
			else if (!IS(c, C_VALUE))
				return c == '\n' ? -H1_E_BARE_LF : -H1_E_CHUNK_EXT;
			break;
		case B_CSIZE_LF:
			if (c != '\n')
				return -H1_E_BARE_CR;
			p->chunk_line = 0;
			p->bstate = p->remaining ? B_CDATA : B_TRAILERS;
			p->scan = p->line_start = 0;
			continue;
		case B_CDATA_CR:
			if (c != '\r')
				return -H1_E_CHUNK_CRLF;
			p->bstate = B_CDATA_LF;
			continue;
		case B_CDATA_LF:
			if (c != '\n')
				return -H1_E_CHUNK_CRLF;
			p->bstate = B_CSIZE0;
			continue;
		default:
			return -H1_E_CHUNK_SIZE;
		}
		if (++p->chunk_line > CHUNK_LINE_MAX)
			return -H1_E_CHUNK_EXT;
	}
out:
	*consumed = pos;
	return rc;
}

int h1_parse_eof(struct h1_parser *p)
{
	if (p->bstate == B_RAW || p->bstate == B_DONE || p->bstate == B_DONE_PENDING ||
	    (p->bstate == B_LENGTH && p->remaining == 0)) {
		p->bstate = B_DONE;
		return H1_DONE;
	}
	return -H1_E_TRUNCATED;
}

size_t h1_split_fields(struct h1_str block, struct h1_header *out, size_t cap)
{
	const char *s = block.p, *end = block.p + block.len, *le, *c, *v, *ve;
	size_t n = 0;

	while (s < end && n < cap) {
		le = memchr(s, '\r', (size_t)(end - s));
		if (!le)
			le = end;
		c = memchr(s, ':', (size_t)(le - s));
		if (c) {
			v = c + 1;
			while (v < le && (*v == ' ' || *v == '\t'))
				v++;
			ve = le;
			while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
				ve--;
			out[n].name.p = s;
			out[n].name.len = (size_t)(c - s);
			out[n].value.p = v;
			out[n].value.len = (size_t)(ve - v);
			out[n].flags = header_id(s, (size_t)(c - s));
			n++;
		}
		s = le + 2;
	}
	return n;
}

struct h1_str h1_head_get(const struct h1_head *h, const char *lc)
{
	struct h1_str none = { "", 0 };
	size_t i;

	for (i = 0; i < h->n_headers; i++)
		if (h1_str_ieq(h->headers[i].name, lc))
			return h->headers[i].value;
	return none;
}

/* --- writing */

static int safe_span(struct h1_str s)
{
	size_t i;

	for (i = 0; i < s.len; i++) {
		unsigned char c = (unsigned char)s.p[i];

		if (c == '\r' || c == '\n' || c == '\0')
			return 0;
	}
	return 1;
}

int h1_out_request_line(struct mesh_buf *b, struct h1_str method, struct h1_str target)
{
	int rc;

	if (!safe_span(method) || !safe_span(target) || !method.len || !target.len)
		return -EINVAL;
	rc = mesh_buf_append(b, method.p, method.len);
	if (rc == 0)
		rc = mesh_buf_putc(b, ' ');
	if (rc == 0)
		rc = mesh_buf_append(b, target.p, target.len);
	if (rc == 0)
		rc = mesh_buf_append(b, " HTTP/1.1\r\n", 11);
	return rc;
}

const char *h1_reason(int status)
{
	switch (status) {
	case 100: return "Continue";
	case 101: return "Switching Protocols";
	case 200: return "OK";
	case 201: return "Created";
	case 202: return "Accepted";
	case 204: return "No Content";
	case 206: return "Partial Content";
	case 301: return "Moved Permanently";
	case 302: return "Found";
	case 303: return "See Other";
	case 304: return "Not Modified";
	case 307: return "Temporary Redirect";
	case 308: return "Permanent Redirect";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 413: return "Content Too Large";
	case 417: return "Expectation Failed";
	case 426: return "Upgrade Required";
	case 429: return "Too Many Requests";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	case 505: return "HTTP Version Not Supported";
	default: return "";
	}
}

int h1_out_status_line(struct mesh_buf *b, int status, struct h1_str reason)
{
	char line[16];
	int rc;

	if (status < 100 || status > 999 || !safe_span(reason))
		return -EINVAL;
	memcpy(line, "HTTP/1.1 ", 9);
	line[9] = (char)('0' + status / 100);
	line[10] = (char)('0' + status / 10 % 10);
	line[11] = (char)('0' + status % 10);
	line[12] = ' ';
	if (!reason.len) {
		reason.p = h1_reason(status);
		reason.len = strlen(reason.p);
	}
	rc = mesh_buf_append(b, line, 13);
	if (rc == 0)
		rc = mesh_buf_append(b, reason.p, reason.len);
	if (rc == 0)
		rc = mesh_buf_append(b, "\r\n", 2);
	return rc;
}

int h1_out_header(struct mesh_buf *b, struct h1_str name, struct h1_str value)
{
	int rc;

	if (!name.len || !safe_span(name) || !safe_span(value) || memchr(name.p, ':', name.len))
		return -EINVAL;
	rc = mesh_buf_append(b, name.p, name.len);
	if (rc == 0)
		rc = mesh_buf_append(b, ": ", 2);
	if (rc == 0)
		rc = mesh_buf_append(b, value.p, value.len);
	if (rc == 0)
		rc = mesh_buf_append(b, "\r\n", 2);
	return rc;
}

int h1_out_fields(struct mesh_buf *b, const struct h1_head *h, int skip_framing)
{
	size_t i;
	unsigned id;
	int rc = 0;

	for (i = 0; i < h->n_headers && rc == 0; i++) {
		id = h->headers[i].flags & H1_HF_ID_MASK;
		if (h->headers[i].flags & H1_HF_HOP)
			continue;
		if (skip_framing && (id == H1_H_CONTENT_LENGTH || id == H1_H_TRANSFER_ENCODING))
			continue;
		rc = h1_out_header(b, h->headers[i].name, h->headers[i].value);
	}
	return rc;
}

int h1_out_framing(struct mesh_buf *b, enum h1_framing f, uint64_t length)
{
	char num[24];
	size_t n = sizeof(num);

	if (f == H1_BODY_CHUNKED)
		return mesh_buf_append(b, "Transfer-Encoding: chunked\r\n", 28);
	if (f != H1_BODY_LENGTH)
		return 0;
	int rc;

	do {
		num[--n] = (char)('0' + length % 10);
		length /= 10;
	} while (length);
	rc = mesh_buf_append(b, "Content-Length: ", 16);
	if (rc == 0)
		rc = mesh_buf_append(b, num + n, sizeof(num) - n);
	if (rc == 0)
		rc = mesh_buf_append(b, "\r\n", 2);
	return rc;
}

int h1_out_end(struct mesh_buf *b)
{
	return mesh_buf_append(b, "\r\n", 2);
}

size_t h1_chunk_prefix(char out[H1_CHUNK_PREFIX_MAX], size_t len)
{
	static const char hex[] = "0123456789abcdef";
	char tmp[16];
	size_t n = 0, i;

	do {
		tmp[n++] = hex[len & 15];
		len >>= 4;
	} while (len);
	for (i = 0; i < n; i++)
		out[i] = tmp[n - 1 - i];
	out[n] = '\r';
	out[n + 1] = '\n';
	return n + 2;
}

int h1_out_chunk(struct mesh_buf *b, const void *data, size_t len)
{
	char pre[H1_CHUNK_PREFIX_MAX];
	size_t n;
	int rc;

	if (!len)
		return 0;
	n = h1_chunk_prefix(pre, len);
	rc = mesh_buf_append(b, pre, n);
	if (rc == 0)
		rc = mesh_buf_append(b, data, len);
	if (rc == 0)
		rc = mesh_buf_append(b, "\r\n", 2);
	return rc;
}
