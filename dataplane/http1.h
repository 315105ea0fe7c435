/*
 * http1.h - meshproxy's HTTP/1.1 codec: a strict, incremental, zero-copy
 * parser of request and response messages (RFC 9112) and the writer of
 * heads and chunked bodies.
 *
 * Protocol logic without transport (STYLE.md): the codec takes bytes and
 * returns events and spans; it never reads a socket nor calls OpenSSL.  It
 * allocates nothing: the caller owns the input buffer and a header array,
 * and every string the parser returns (struct h1_str) points into that
 * input buffer, valid while the caller keeps those bytes in place.
 *
 * Input contract (as picohttpparser): h1_parse_head() is called with the
 * whole of the buffered message start each time (buf[0] is the first byte
 * of the message), growing as bytes arrive; it remembers how far it has
 * scanned, so the total work is linear.  h1_parse_body() reports how many
 * bytes it consumed; the caller drops those and presents the rest (plus
 * whatever arrives) next time.
 *
 * Strictness, where it comes from (RFC 9112 §11.2 and DESIGN.md), every
 * case answered with an error code whose h1_err_status() is 400 unless
 * said otherwise:
 *  - bare LF, or a CR not followed by LF, anywhere in a head, chunk line or
 *    trailer; obs-fold (a line starting with SP/HTAB); a field line without
 *    a colon; whitespace between field name and colon; a byte outside tchar
 *    in a method or field name; a control byte (but HTAB) in a field value,
 *    NUL included; request-target bytes outside %x21-7E;
 *  - Content-Length with Transfer-Encoding (requests and responses);
 *    Content-Length not 1*DIGIT (no sign, no inner space, no leading zero
 *    but "0" itself, at most 18 digits), differing Content-Lengths across
 *    lines or inside a list; a list of identical values ("5, 5", or two
 *    lines of 5) is accepted as RFC 9110 §8.6 allows, and the head is
 *    forwarded with the one value;
 *  - Transfer-Encoding in an HTTP/1.0 message (§6.1); a request whose final
 *    coding is not chunked; chunked applied twice; a coding with
 *    parameters; (a response whose final coding is not chunked is read
 *    until close, as §6.3 says);
 *  - an HTTP/1.1 request without Host, or with more than one;
 *  - chunk sizes that are not 1*HEXDIG or overflow 60 bits, BWS after the
 *    size not followed by a chunk extension, chunk data not followed by
 *    CRLF;
 *  - a head over max_head_bytes (default 60 KiB, Envoy's
 *    max_request_headers_kb) or with more than max_headers fields (default
 *    100, Envoy's): 431; an HTTP major version other than 1: 505.
 * Request-target forms (RFC 9112 §3.2): origin-form, absolute-form (scheme
 * "://" authority, no userinfo, no fragment), authority-form (CONNECT only,
 * host:port), asterisk-form (OPTIONS only).
 */
#ifndef MESH_DATAPLANE_HTTP1_H
#define MESH_DATAPLANE_HTTP1_H

#include "common/buf.h"
#include "common/err.h"

#include <stddef.h>
#include <stdint.h>

#define H1_DEFAULT_MAX_HEAD_BYTES (60 * 1024)
#define H1_DEFAULT_MAX_HEADERS 100

/* A span of the caller's input buffer (not NUL-terminated). */
struct h1_str {
	const char *p;
	size_t len;
};

/* Well-known fields the parser recognises (the low byte of h1_header.flags). */
enum h1_hdr_id {
	H1_H_OTHER = 0,
	H1_H_HOST,
	H1_H_CONTENT_LENGTH,
	H1_H_TRANSFER_ENCODING,
	H1_H_CONNECTION,
	H1_H_KEEP_ALIVE,
	H1_H_PROXY_CONNECTION,
	H1_H_TE,
	H1_H_TRAILER,
	H1_H_UPGRADE,
	H1_H_EXPECT,
};
#define H1_HF_ID_MASK 0xffu
#define H1_HF_HOP 0x100u /* hop-by-hop (RFC 9110 §7.6.1): not forwarded */

struct h1_header {
	struct h1_str name, value; /* value without leading/trailing OWS */
	unsigned flags;            /* enum h1_hdr_id | H1_HF_* */
};

enum h1_target_form {
	H1_FORM_ORIGIN,    /* /path?query */
	H1_FORM_ABSOLUTE,  /* http://host:port/path?query */
	H1_FORM_AUTHORITY, /* host:port (CONNECT) */
	H1_FORM_ASTERISK,  /* * (OPTIONS) */
};

/* How the body of a message is delimited (RFC 9112 §6.3). */
enum h1_framing {
	H1_BODY_NONE,        /* no body */
	H1_BODY_LENGTH,      /* content_length bytes */
	H1_BODY_CHUNKED,     /* chunked transfer coding */
	H1_BODY_UNTIL_CLOSE, /* response read until the connection closes */
	H1_BODY_TUNNEL,      /* 101 or 2xx to CONNECT: raw bytes both ways from here */
};

enum {
	H1_F_KEEP_ALIVE = 1u << 0,      /* the connection persists after this message */
	H1_F_EXPECT_CONTINUE = 1u << 1, /* request: Expect: 100-continue (HTTP/1.1 only) */
	H1_F_EXPECT_OTHER = 1u << 2,    /* request: an Expect we do not know (417 candidate) */
	H1_F_UPGRADE = 1u << 3,         /* request: Upgrade offered (Connection: upgrade + Upgrade) */
	H1_F_HEAD = 1u << 4,            /* request method HEAD */
	H1_F_CONNECT = 1u << 5,         /* request method CONNECT */
	H1_F_CONN_CLOSE = 1u << 6,      /* Connection: close seen */
	H1_F_CONN_NAMES = 1u << 7,      /* Connection nominated other fields (marked H1_HF_HOP) */
};

/* A parsed head; every h1_str points into the caller's buffer. */
struct h1_head {
	int is_request;
	int version_minor; /* 0 or 1 (a higher 1.x minor is treated as 1.1) */
	/* request */
	struct h1_str method, target;
	enum h1_target_form form;
	struct h1_str scheme, authority, path; /* scheme/authority: absolute- and authority-form; path: origin/absolute */
	/* response */
	int status;
	struct h1_str reason;
	/* both */
	struct h1_str host; /* the Host field's value (requests), empty when absent */
	struct h1_header *headers;
	size_t n_headers;
	enum h1_framing framing;
	uint64_t content_length; /* H1_BODY_LENGTH */
	unsigned flags;          /* H1_F_* */
	size_t head_len;         /* bytes from buf[0] through the empty line, leading CRLFs included */
};

struct h1_limits {
	size_t max_head_bytes; /* request/status line + fields (and a trailer section) */
	size_t max_headers;    /* field lines; at most the header array's size */
};

/* Results (>= 0); failures are negative h1 error codes below. */
enum {
	H1_OK = 0,    /* h1_parse_head: a complete head */
	H1_AGAIN = 1, /* more input needed */
	H1_DATA = 2,  /* h1_parse_body: a span of body bytes */
	H1_TRAILERS = 3, /* h1_parse_body: the raw trailer field lines (validated) */
	H1_DONE = 4,  /* h1_parse_body: the message is complete */
};

/* Codec error codes; the functions return them negated. */
enum h1_err {
	H1_E_REQUEST_LINE = 1,
	H1_E_METHOD,
	H1_E_TARGET,
	H1_E_VERSION,
	H1_E_VERSION_UNSUPPORTED, /* 505 */
	H1_E_STATUS_LINE,
	H1_E_BARE_LF,
	H1_E_BARE_CR,
	H1_E_OBS_FOLD,
	H1_E_NO_COLON,
	H1_E_SPACE_BEFORE_COLON,
	H1_E_FIELD_NAME,
	H1_E_FIELD_VALUE,
	H1_E_HEAD_TOO_LARGE, /* 431 */
	H1_E_TOO_MANY_HEADERS, /* 431 */
	H1_E_CL_TE,
	H1_E_CONTENT_LENGTH,
	H1_E_CL_MISMATCH,
	H1_E_TRANSFER_ENCODING,
	H1_E_TE_NOT_CHUNKED,
	H1_E_TE_HTTP10,
	H1_E_CHUNKED_TWICE,
	H1_E_NO_HOST,
	H1_E_MULTIPLE_HOST,
	H1_E_CHUNK_SIZE,
	H1_E_CHUNK_OVERFLOW,
	H1_E_CHUNK_EXT,
	H1_E_CHUNK_CRLF,
	H1_E_TRAILER,
	H1_E_TRAILER_TOO_LARGE,
	H1_E_TRUNCATED,
	H1_E_AUTHORITY, /* Host / request-target authority: empty host, bad port (Envoy's UHV "invalid host") */
	H1_E_MAX
};

/* A short stable name for a code (positive or negated), e.g. "cl-te". */
const char *h1_strerror(int code);
/* The status to answer a request that failed with code: 400, 431 or 505. */
int h1_err_status(int code);

struct h1_parser {
	struct h1_limits lim;
	struct h1_header *hdrs;
	size_t hdr_cap;
	int is_request;
	unsigned req_flags; /* response parser: H1_F_HEAD / H1_F_CONNECT of the request answered */
	/* head (and trailer) scanning */
	size_t scan, skip, line_start;
	/* body */
	enum h1_framing framing;
	int bstate;
	uint64_t remaining;
	size_t chunk_line; /* bytes of the current chunk-size line */
};

/*
 * Sets up a parser of requests (is_request) or responses.  hdrs/hdr_cap is
 * the caller's field array, reused for every message; lim may be NULL for
 * the defaults; lim->max_headers is clamped to hdr_cap.
 */
void h1_parser_init(struct h1_parser *p, int is_request, const struct h1_limits *lim,
		    struct h1_header *hdrs, size_t hdr_cap);
/* Ready for the next message on the connection (after H1_DONE). */
void h1_parser_reset(struct h1_parser *p);
/* Response parser: the request this response answers (its H1_F_HEAD/H1_F_CONNECT flags). */
void h1_parser_set_request(struct h1_parser *p, unsigned req_flags);

/*
 * Parses a head from buf[0..len): H1_OK with *out filled (out->head_len
 * bytes belong to the head; the body, if any, follows), H1_AGAIN, or a
 * negative h1 error code (answer h1_err_status() and close).
 */
MESH_MUST_CHECK int h1_parse_head(struct h1_parser *p, const char *buf, size_t len, struct h1_head *out);

/*
 * Decodes body bytes after a head: *consumed is set to how many bytes of
 * buf the call used (drop them; present the rest again).  Returns H1_DATA
 * with *data a span of body bytes inside buf (chunked framing removed),
 * H1_TRAILERS with *data the trailer field lines (each ending in CRLF),
 * H1_AGAIN, H1_DONE (the message ended; bytes after *consumed belong to the
 * next message) or a negative h1 error code.
 */
MESH_MUST_CHECK int h1_parse_body(struct h1_parser *p, const char *buf, size_t len, size_t *consumed,
				  struct h1_str *data);
/* The peer closed: H1_DONE if the body runs until close (or is complete), else -H1_E_TRUNCATED. */
MESH_MUST_CHECK int h1_parse_eof(struct h1_parser *p);

/*
 * Splits a validated trailer section (H1_TRAILERS' span) into fields, as
 * many as fit; returns their count.
 */
size_t h1_split_fields(struct h1_str block, struct h1_header *out, size_t cap);

/* Case-insensitive comparison of a span with a NUL-terminated lowercase name. */
int h1_str_ieq(struct h1_str s, const char *lower);
/* The field value of the first header named lower (lowercase), or an empty span. */
struct h1_str h1_head_get(const struct h1_head *h, const char *lower);

/* --- writing (0 or a negative code from common/buf.h; -EINVAL on CR, LF or NUL in a field) */

MESH_MUST_CHECK int h1_out_request_line(struct mesh_buf *b, struct h1_str method, struct h1_str target);
/* reason may be empty: the standard phrase is used */
MESH_MUST_CHECK int h1_out_status_line(struct mesh_buf *b, int status, struct h1_str reason);
MESH_MUST_CHECK int h1_out_header(struct mesh_buf *b, struct h1_str name, struct h1_str value);
/*
 * The head's fields but the hop-by-hop ones and, with skip_framing,
 * Content-Length/Transfer-Encoding (the writer states the framing itself).
 */
MESH_MUST_CHECK int h1_out_fields(struct mesh_buf *b, const struct h1_head *h, int skip_framing);
/* "Content-Length: N" or "Transfer-Encoding: chunked", then nothing else */
MESH_MUST_CHECK int h1_out_framing(struct mesh_buf *b, enum h1_framing f, uint64_t length);
MESH_MUST_CHECK int h1_out_end(struct mesh_buf *b);
/* The standard reason phrase of a status ("OK"), "" if unknown. */
const char *h1_reason(int status);

/*
 * Chunked encoding, writev-friendly: the prefix "HEX\r\n" written into out
 * (returns its length, at most H1_CHUNK_PREFIX_MAX), then the data as is,
 * then H1_CHUNK_SUFFIX; the body ends with H1_CHUNK_LAST.
 */
#define H1_CHUNK_PREFIX_MAX 18
#define H1_CHUNK_SUFFIX "\r\n"
#define H1_CHUNK_LAST "0\r\n\r\n"
size_t h1_chunk_prefix(char out[H1_CHUNK_PREFIX_MAX], size_t len);
/* One chunk (prefix, data, suffix) appended to b; len 0 appends nothing. */
MESH_MUST_CHECK int h1_out_chunk(struct mesh_buf *b, const void *data, size_t len);

#endif
