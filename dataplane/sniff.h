/*
 * sniff.h - the listener filters that look at a connection's first bytes
 * before a filter chain is chosen, as Envoy's tls_inspector and
 * http_inspector do (source/extensions/filters/listener/tls_inspector,
 * http_inspector):
 *
 *  - sniff_tls(): is it a TLS ClientHello, and if so its SNI (server_name
 *    extension, host_name entry) and ALPN list (application_layer_protocol_
 *    negotiation).  A ClientHello may span several TLS records; at most
 *    SNIFF_TLS_MAX bytes are looked at.
 *  - sniff_http(): an HTTP/1.x request line ("http/1.0" or "http/1.1") or
 *    the HTTP/2 connection preface ("h2c"), from as few bytes as tell them
 *    apart (a method token that cannot be HTTP ends it at once).
 *
 * Both are pure functions over the bytes read so far: the caller keeps the
 * bytes and hands them to the chosen chain (they are replayed, never
 * lost), calling again with more when told SNIFF_MORE, within the
 * listener's listener_filters_timeout.  Nothing is trusted: every length
 * the peer sends is checked against what is there.
 */
#ifndef MESH_DATAPLANE_SNIFF_H
#define MESH_DATAPLANE_SNIFF_H

#include <stddef.h>

/* The most a ClientHello may take, handshake message and all: a named cap
 * (a real one, post-quantum key shares included, stays under 2 KiB);
 * larger is taken as not TLS. */
#define SNIFF_TLS_MAX (16 * 1024)
/* ALPN protocols kept, and the longest kept (longer ones are skipped). */
#define SNIFF_ALPN_MAX 8
#define SNIFF_ALPN_LEN 32
/* Envoy's http_inspector looks at most this far for the end of the
 * request line (MAX_INSPECT_SIZE); past it the protocol stays unknown. */
#define SNIFF_HTTP_MAX 8192

enum sniff_rc {
	SNIFF_MORE = 0,  /* not decided: call again with more bytes */
	SNIFF_YES = 1,   /* it is (out is filled in) */
	SNIFF_NO = 2,    /* it is not this protocol (not TLS / not HTTP) */
};

struct sniff_tls {
	char sni[256];                             /* "" when the ClientHello names none */
	char alpn[SNIFF_ALPN_MAX][SNIFF_ALPN_LEN]; /* in the client's order */
	size_t n_alpn;
};

/*
 * Looks at p[0..n) as the start of a TLS connection.  SNIFF_YES: a
 * complete, well-formed ClientHello (*out filled); SNIFF_NO: not TLS, or a
 * handshake that is malformed or larger than SNIFF_TLS_MAX (Envoy then
 * treats it as not TLS: transport_protocol stays "raw_buffer"); SNIFF_MORE:
 * a TLS handshake whose ClientHello is not complete yet.
 */
enum sniff_rc sniff_tls(const unsigned char *p, size_t n, struct sniff_tls *out);

/*
 * Looks at p[0..n) as the start of a cleartext HTTP connection.
 * SNIFF_YES with proto "http/1.0", "http/1.1" (a request line whose
 * version says so) or "h2c" (the 24-byte HTTP/2 preface); SNIFF_NO: not
 * HTTP (Envoy's http_inspector leaves the application protocol unset);
 * SNIFF_MORE: a prefix of one of them, within SNIFF_HTTP_MAX bytes.
 * proto must hold 16 bytes.
 */
enum sniff_rc sniff_http(const unsigned char *p, size_t n, char proto[16]);

#endif
