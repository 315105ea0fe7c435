/*
 * sniff.c - tls_inspector and http_inspector over the first bytes of a
 * connection (sniff.h).
 *
 * TLS: records (RFC 8446 5.1: type 22 handshake, legacy version 3.x, a
 * length of at most 2^14 + 2048) carry the handshake; the ClientHello
 * (type 1, RFC 8446 4.1.2) may be split over several records, so their
 * fragments are joined (in place when one record holds it all, else in a
 * buffer of at most SNIFF_TLS_MAX bytes) before it is read with a bounded
 * cursor: every length is checked against what is left, a length that
 * overruns its container makes the hello malformed (SNIFF_NO).
 *
 * HTTP: the 24-byte HTTP/2 preface, or a request line
 * "METHOD SP target SP HTTP/1.x CRLF" within SNIFF_HTTP_MAX bytes.
 */
#include "dataplane/sniff.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define TLS_REC_HANDSHAKE 22
#define TLS_HS_CLIENT_HELLO 1
#define TLS_REC_MAX (16384 + 2048)
#define TLS_EXT_SERVER_NAME 0
#define TLS_EXT_ALPN 16
/* Records a hello may be split over: clients use one or two; a peer
 * dribbling it a byte per record is refused, so the bytes looked at stay
 * under SNIFF_TLS_MAX + 5 * SNIFF_TLS_RECORDS. */
#define SNIFF_TLS_RECORDS 16

/* A bounded reader: every take fails once past the end. */
struct cur {
	const unsigned char *p;
	size_t n;
	int bad;
};

static const unsigned char *take(struct cur *c, size_t len)
{
	const unsigned char *r;

	if (c->bad || len > c->n) {
		c->bad = 1;
		return NULL;
	}
	r = c->p;
	c->p += len;
	c->n -= len;
	return r;
}

static size_t take_u(struct cur *c, size_t width)
{
	const unsigned char *p = take(c, width);
	size_t v = 0, i;

	for (i = 0; p && i < width; i++)
		v = (v << 8) | p[i];
	return v;
}

/* A sub-reader over the next len bytes (a vector with its length prefix read). */
static struct cur sub(struct cur *c, size_t len)
{
	struct cur s = { NULL, 0, 0 };
	const unsigned char *p = take(c, len);

	if (!p)
		s.bad = 1;
	else
		s.p = p, s.n = len;
	return s;
}

static int parse_sni(struct cur e, struct sniff_tls *out)
{
	struct cur list = sub(&e, take_u(&e, 2));

	if (e.bad || e.n || list.n == 0)
		return -1;
	while (list.n && !list.bad) {
		size_t type = take_u(&list, 1), len = take_u(&list, 2);
		const unsigned char *name = take(&list, len);

		if (!name)
			return -1;
		/* host_name (0); a name with a NUL or too long for a DNS name is
		 * malformed, as BoringSSL refuses it */
		if (type == 0 && !out->sni[0]) {
			if (len == 0 || len >= sizeof(out->sni) || memchr(name, 0, len))
				return -1;
			memcpy(out->sni, name, len);
			out->sni[len] = 0;
		}
	}
	return list.bad ? -1 : 0;
}

static int parse_alpn(struct cur e, struct sniff_tls *out)
{
	struct cur list = sub(&e, take_u(&e, 2));

	if (e.bad || e.n || list.n == 0)
		return -1;
	while (list.n && !list.bad) {
		size_t len = take_u(&list, 1);
		const unsigned char *pr = take(&list, len);

		if (!pr || len == 0)
			return -1; /* an empty protocol name is illegal (RFC 7301 3.1) */
		if (len < SNIFF_ALPN_LEN && out->n_alpn < SNIFF_ALPN_MAX && !memchr(pr, 0, len)) {
			memcpy(out->alpn[out->n_alpn], pr, len);
			out->alpn[out->n_alpn++][len] = 0;
		}
	}
	return list.bad ? -1 : 0;
}

/* The ClientHello body (after the 4-byte handshake header). */
static enum sniff_rc parse_hello(const unsigned char *p, size_t n, struct sniff_tls *out)
{
	struct cur c = { p, n, 0 }, exts;
	int seen_sni = 0, seen_alpn = 0;
	size_t len;

	memset(out, 0, sizeof(*out));
	if (take_u(&c, 1) != 3)
		return SNIFF_NO; /* legacy_version 3.x (SSL 3.0 .. TLS 1.2 and 1.3's 0x0303) */
	take(&c, 1 + 32);                       /* minor, random */
	len = take_u(&c, 1);
	if (len > 32)
		return SNIFF_NO;
	take(&c, len);                          /* legacy_session_id */
	len = take_u(&c, 2);
	if (c.bad || len < 2 || len % 2)
		return SNIFF_NO;
	take(&c, len);                          /* cipher_suites */
	len = take_u(&c, 1);
	if (c.bad || len < 1)
		return SNIFF_NO;
	take(&c, len);                          /* legacy_compression_methods */
	if (c.bad)
		return SNIFF_NO;
	if (c.n == 0)
		return SNIFF_YES;               /* no extensions at all (old clients) */
	exts = sub(&c, take_u(&c, 2));
	if (c.bad || c.n)
		return SNIFF_NO;                /* trailing bytes after the extensions */
	while (exts.n) {
		size_t type = take_u(&exts, 2);
		struct cur e = sub(&exts, take_u(&exts, 2));

		if (exts.bad)
			return SNIFF_NO;
		if (type == TLS_EXT_SERVER_NAME) {
			if (seen_sni++ || parse_sni(e, out) < 0)
				return SNIFF_NO;
		} else if (type == TLS_EXT_ALPN) {
			if (seen_alpn++ || parse_alpn(e, out) < 0)
				return SNIFF_NO;
		}
	}
	return SNIFF_YES;
}

enum sniff_rc sniff_tls(const unsigned char *p, size_t n, struct sniff_tls *out)
{
	unsigned char *joined = NULL;
	size_t have = 0, off = 0, need = 0, nrec = 0;
	enum sniff_rc rc = SNIFF_MORE;

	/* the first record's header alone tells TLS from not: type, 3.x, a length */
	if (n >= 1 && p[0] != TLS_REC_HANDSHAKE)
		return SNIFF_NO;
	if (n >= 2 && p[1] != 3)
		return SNIFF_NO;
	while (off + 5 <= n) {
		size_t rlen = ((size_t)p[off + 3] << 8) | p[off + 4];
		const unsigned char *frag = p + off + 5;
		size_t flen;

		if (p[off] != TLS_REC_HANDSHAKE || p[off + 1] != 3 || rlen == 0 || rlen > TLS_REC_MAX ||
		    ++nrec > SNIFF_TLS_RECORDS) {
			rc = SNIFF_NO;
			goto out;
		}
		flen = rlen <= n - off - 5 ? rlen : n - off - 5;
		if (off == 0 && flen >= 4) {
			need = 4 + (((size_t)frag[1] << 16) | ((size_t)frag[2] << 8) | frag[3]);
			if (frag[0] != TLS_HS_CLIENT_HELLO || need > SNIFF_TLS_MAX) {
				rc = SNIFF_NO;
				goto out;
			}
			if (flen >= need) {
				/* the common case: one record holds the whole hello */
				rc = parse_hello(frag + 4, need - 4, out);
				goto out;
			}
		}
		if (!joined) {
			joined = malloc(SNIFF_TLS_MAX + 4);
			if (!joined) {
				rc = SNIFF_NO;
				goto out;
			}
		}
		if (have + flen > SNIFF_TLS_MAX + 4)
			flen = SNIFF_TLS_MAX + 4 - have;
		memcpy(joined + have, frag, flen);
		have += flen;
		if (!need && have >= 4) {
			need = 4 + (((size_t)joined[1] << 16) | ((size_t)joined[2] << 8) | joined[3]);
			if (joined[0] != TLS_HS_CLIENT_HELLO || need > SNIFF_TLS_MAX) {
				rc = SNIFF_NO;
				goto out;
			}
		}
		if (need && have >= need) {
			rc = parse_hello(joined + 4, need - 4, out);
			goto out;
		}
		if (flen < rlen)
			break; /* the record is not all there yet */
		off += 5 + rlen;
	}
out:
	free(joined);
	return rc;
}

static const char h2_preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

enum sniff_rc sniff_http(const unsigned char *p, size_t n, char proto[16])
{
	size_t plen = sizeof(h2_preface) - 1, i, m;

	proto[0] = 0;
	if (!memcmp(p, h2_preface, n < plen ? n : plen)) {
		if (n < plen)
			return SNIFF_MORE;
		memcpy(proto, "h2c", 4);
		return SNIFF_YES;
	}
	/* the method: a token of capitals (Envoy's parser knows only those) */
	for (m = 0; m < n && ((p[m] >= 'A' && p[m] <= 'Z') || p[m] == '-' || p[m] == '_'); m++)
		;
	if (m == n)
		return n == 0 || m < 24 ? SNIFF_MORE : SNIFF_NO;
	if (m == 0 || m > 24 || p[m] != ' ')
		return SNIFF_NO;
	/* the target: visible characters up to the next space */
	for (i = m + 1; i < n && p[i] > ' ' && p[i] < 0x7f; i++)
		;
	if (i == n)
		return n < SNIFF_HTTP_MAX ? SNIFF_MORE : SNIFF_NO;
	if (i == m + 1 || p[i] != ' ')
		return SNIFF_NO;
	i++;
	{
		static const char v10[] = "HTTP/1.0\r\n", v11[] = "HTTP/1.1\r\n";
		size_t left = n - i, k = left < 10 ? left : 10;

		if (!memcmp(p + i, v10, k) || !memcmp(p + i, v11, k)) {
			if (left < 10)
				return i + 10 <= SNIFF_HTTP_MAX ? SNIFF_MORE : SNIFF_NO;
			memcpy(proto, p[i + 7] == '0' ? "http/1.0" : "http/1.1", 9);
			return SNIFF_YES;
		}
	}
	return SNIFF_NO;
}
