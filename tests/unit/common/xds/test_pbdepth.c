/*
 * test_pbdepth.c - the nesting walker on hand-encoded messages: a Struct
 * nested in node metadata as a hostile client sends it (the crash of 3,000
 * levels in protobuf-c's recursive unpack), the exact limit, unknown fields,
 * broken wire formats, and Any followed by its type URL with the value placed
 * before the URL and fields after the Any.
 */
#include "common/xds/pbdepth.h"

#include "envoy/config/core/v3/address.pb-c.h"
#include "envoy/config/listener/v3/listener.pb-c.h"
#include "envoy/service/discovery/v3/discovery.pb-c.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

#define LDS_URL "type.googleapis.com/envoy.config.listener.v3.Listener"

/* A message built back to front: bytes live in [pos, cap) of data. */
struct rev {
	uint8_t *data;
	size_t cap, pos;
};

static void rev_init(struct rev *r, size_t cap)
{
	r->data = malloc(cap);
	ck_assert_ptr_nonnull(r->data);
	r->cap = cap;
	r->pos = cap;
}

static void rev_bytes(struct rev *r, const void *p, size_t n)
{
	/* not ck_assert: each of those reports a mark point to Check (a pipe
	 * write per call under CK_FORK), and 200,000 levels make millions */
	if (r->pos < n)
		ck_abort_msg("rev: %zu bytes left, %zu needed", r->pos, n);
	r->pos -= n;
	memcpy(r->data + r->pos, p, n);
}

static void rev_varint(struct rev *r, uint64_t v)
{
	uint8_t b[10];
	size_t n = 0;

	do {
		b[n] = (uint8_t)(v & 0x7f);
		v >>= 7;
		if (v)
			b[n] |= 0x80;
		n++;
	} while (v);
	rev_bytes(r, b, n);
}

/* Wrap the last n bytes (those from pos on) as field f, wire type 2. */
static void rev_wrap(struct rev *r, unsigned f, size_t n)
{
	rev_varint(r, n);
	rev_varint(r, (uint64_t)f << 3 | 2);
}

/* Prepend a string field. */
static void rev_str(struct rev *r, unsigned f, const char *s)
{
	rev_bytes(r, s, strlen(s));
	rev_wrap(r, f, strlen(s));
}

static size_t rev_len(const struct rev *r)
{
	return r->cap - r->pos;
}

/*
 * A DiscoveryRequest whose node.metadata {"X": v} holds v = Struct {"a": ...}
 * n times around the string "x".  Levels: request 0, node 1, metadata
 * Struct 2, its entry 3, the Value 4, then 3 more per wrap: 4 + 3n.
 */
static void deep_request(struct rev *r, unsigned n)
{
	unsigned i;

	rev_init(r, 128 + (size_t)n * 16);
	rev_str(r, 3, "x"); /* Value.string_value */
	for (i = 0; i < n; i++) {
		rev_wrap(r, 2, rev_len(r)); /* entry.value */
		rev_str(r, 1, "a");         /* entry.key */
		rev_wrap(r, 1, rev_len(r)); /* Struct.fields */
		rev_wrap(r, 5, rev_len(r)); /* Value.struct_value */
	}
	rev_wrap(r, 2, rev_len(r)); /* entry.value */
	rev_str(r, 1, "X");         /* entry.key */
	rev_wrap(r, 1, rev_len(r)); /* Struct.fields */
	rev_wrap(r, 3, rev_len(r)); /* Node.metadata */
	rev_str(r, 1, "sidecar~127.0.0.1~c.demo~demo.svc.cluster.local");
	rev_wrap(r, 2, rev_len(r)); /* DiscoveryRequest.node */
	rev_str(r, 4, LDS_URL);     /* DiscoveryRequest.type_url */
}

START_TEST(deep_struct_refused)
{
	const ProtobufCMessageDescriptor *d = &envoy__service__discovery__v3__discovery_request__descriptor;
	Envoy__Service__Discovery__V3__DiscoveryRequest *req;
	struct rev r;
	unsigned depth = 0;

	/* 32 wraps: 100 levels, the limit itself, passes and decodes */
	deep_request(&r, 32);
	ck_assert_int_eq(pbdepth_check(d, r.data + r.pos, rev_len(&r), PBDEPTH_LIMIT, 0, &depth), 0);
	ck_assert_uint_eq(depth, 100);
	req = envoy__service__discovery__v3__discovery_request__unpack(NULL, rev_len(&r), r.data + r.pos);
	ck_assert_ptr_nonnull(req);
	ck_assert_str_eq(req->type_url, LDS_URL);
	ck_assert_ptr_nonnull(req->node);
	ck_assert_ptr_nonnull(req->node->metadata);
	ck_assert_uint_eq(req->node->metadata->n_fields, 1);
	envoy__service__discovery__v3__discovery_request__free_unpacked(req, NULL);
	/* one level less allowed: refused */
	ck_assert_int_eq(pbdepth_check(d, r.data + r.pos, rev_len(&r), 99, 0, &depth), -MESH_ETOOBIG);
	ck_assert_uint_eq(depth, 100);
	free(r.data);

	/* 33 wraps: 103 levels */
	deep_request(&r, 33);
	ck_assert_int_eq(pbdepth_check(d, r.data + r.pos, rev_len(&r), PBDEPTH_LIMIT, 0, &depth), -MESH_ETOOBIG);
	ck_assert_uint_eq(depth, 101);
	free(r.data);

	/* the tester's 3,000 levels (~20 KB) and far more: refused, no recursion */
	deep_request(&r, 3000);
	ck_assert_int_eq(pbdepth_check(d, r.data + r.pos, rev_len(&r), PBDEPTH_LIMIT, 0, NULL), -MESH_ETOOBIG);
	free(r.data);
	deep_request(&r, 200000);
	ck_assert_int_eq(pbdepth_check(d, r.data + r.pos, rev_len(&r), PBDEPTH_LIMIT, 0, NULL), -MESH_ETOOBIG);
	free(r.data);
}
END_TEST

START_TEST(flat_and_broken)
{
	const ProtobufCMessageDescriptor *d = &envoy__service__discovery__v3__discovery_request__descriptor;
	struct rev r;
	unsigned depth = 7;
	unsigned i;

	/* empty message */
	ck_assert_int_eq(pbdepth_check(d, NULL, 0, PBDEPTH_LIMIT, 0, &depth), 0);
	ck_assert_uint_eq(depth, 0);
	/* an unknown field (99) holding deeply nested-looking bytes is flat to
	 * protobuf-c (kept as bytes) and to the walker */
	rev_init(&r, 4096);
	rev_str(&r, 1, "x");
	for (i = 0; i < 300; i++)
		rev_wrap(&r, 1, rev_len(&r));
	rev_wrap(&r, 99, rev_len(&r));
	rev_str(&r, 4, LDS_URL);
	ck_assert_int_eq(pbdepth_check(d, r.data + r.pos, rev_len(&r), PBDEPTH_LIMIT, 0, &depth), 0);
	ck_assert_uint_eq(depth, 0);
	free(r.data);

	/* length past the end, truncated varint, group, field 0, bad wire type */
	ck_assert_int_eq(pbdepth_check(d, (const uint8_t *)"\x12\x05" "ab", 4, PBDEPTH_LIMIT, 0, NULL), -MESH_EPARSE);
	ck_assert_int_eq(pbdepth_check(d, (const uint8_t *)"\x08\x80", 2, PBDEPTH_LIMIT, 0, NULL), -MESH_EPARSE);
	ck_assert_int_eq(pbdepth_check(d, (const uint8_t *)"\x0b\x0c", 2, PBDEPTH_LIMIT, 0, NULL), -MESH_EPARSE);
	ck_assert_int_eq(pbdepth_check(d, (const uint8_t *)"\x02\x00", 2, PBDEPTH_LIMIT, 0, NULL), -MESH_EPARSE);
	ck_assert_int_eq(pbdepth_check(d, (const uint8_t *)"\x0e", 1, PBDEPTH_LIMIT, 0, NULL), -MESH_EPARSE);
	/* a nested message longer than its parent: node (2 bytes) claims 5 inside */
	ck_assert_int_eq(pbdepth_check(d, (const uint8_t *)"\x12\x02\x0a\x05", 4, PBDEPTH_LIMIT, 0, NULL),
			 -MESH_EPARSE);
	/* fixed-width fields and varints inside known messages */
	ck_assert_int_eq(pbdepth_check(d, (const uint8_t *)"\x12\x00\x22\x00", 4, PBDEPTH_LIMIT, 0, &depth), 0);
	ck_assert_uint_eq(depth, 1);
	ck_assert_int_eq(pbdepth_check(d, (const uint8_t *)"x", 1, PBDEPTH_HARD_MAX + 1, 0, NULL), -EINVAL);
	ck_assert_int_eq(pbdepth_check(NULL, (const uint8_t *)"x", 1, PBDEPTH_LIMIT, 0, NULL), -EINVAL);
}
END_TEST

START_TEST(any_followed)
{
	const ProtobufCMessageDescriptor *d = &envoy__service__discovery__v3__discovery_response__descriptor;
	Envoy__Config__Listener__V3__Listener l = ENVOY__CONFIG__LISTENER__V3__LISTENER__INIT;
	Envoy__Config__Core__V3__Address a = ENVOY__CONFIG__CORE__V3__ADDRESS__INIT;
	Envoy__Config__Core__V3__SocketAddress sa = ENVOY__CONFIG__CORE__V3__SOCKET_ADDRESS__INIT;
	Envoy__Service__Discovery__V3__DiscoveryResponse *resp;
	uint8_t lbuf[256];
	size_t ln, anylen;
	struct rev r;
	unsigned depth = 0;

	sa.address = "10.0.0.1";
	sa.port_specifier_case = ENVOY__CONFIG__CORE__V3__SOCKET_ADDRESS__PORT_SPECIFIER_PORT_VALUE;
	sa.port_value = 8080;
	a.address_case = ENVOY__CONFIG__CORE__V3__ADDRESS__ADDRESS_SOCKET_ADDRESS;
	a.socket_address = &sa;
	l.name = "0.0.0.0_8080";
	l.address = &a;
	ln = protobuf_c_message_get_packed_size(&l.base);
	ck_assert_uint_le(ln, sizeof(lbuf));
	protobuf_c_message_pack(&l.base, lbuf);

	/* DiscoveryResponse { resources: Any { value, then type_url },
	 * resources: Any { unknown type }, type_url, nonce } */
	rev_init(&r, 1024);
	rev_str(&r, 5, "n1");
	rev_str(&r, 4, LDS_URL);
	anylen = rev_len(&r);
	rev_str(&r, 2, "not a message");
	rev_str(&r, 1, "type.googleapis.com/example.Unknown");
	rev_wrap(&r, 2, rev_len(&r) - anylen);
	anylen = rev_len(&r);
	rev_str(&r, 1, LDS_URL);
	rev_bytes(&r, lbuf, ln);
	rev_wrap(&r, 2, ln);
	rev_wrap(&r, 2, rev_len(&r) - anylen);

	/* it decodes, so the walker's reading of it is the real one */
	resp = envoy__service__discovery__v3__discovery_response__unpack(NULL, rev_len(&r), r.data + r.pos);
	ck_assert_ptr_nonnull(resp);
	ck_assert_uint_eq(resp->n_resources, 2);
	ck_assert_str_eq(resp->resources[0]->type_url, LDS_URL);
	ck_assert_str_eq(resp->nonce, "n1");
	envoy__service__discovery__v3__discovery_response__free_unpacked(resp, NULL);

	/* without following: the Anys are level 1 */
	ck_assert_int_eq(pbdepth_check(d, r.data + r.pos, rev_len(&r), PBDEPTH_LIMIT, 0, &depth), 0);
	ck_assert_uint_eq(depth, 1);
	/* following: response 0, Any 1, Listener 2, Address 3, SocketAddress 4 */
	ck_assert_int_eq(pbdepth_check(d, r.data + r.pos, rev_len(&r), PBDEPTH_LIMIT, PBDEPTH_FOLLOW_ANY, &depth), 0);
	ck_assert_uint_eq(depth, 4);
	ck_assert_int_eq(pbdepth_check(d, r.data + r.pos, rev_len(&r), 3, PBDEPTH_FOLLOW_ANY, &depth), -MESH_ETOOBIG);
	free(r.data);

	/* a Listener whose bytes are broken (address claims more than there
	 * is): that resource will not decode on its own; the walk goes on after
	 * it and still finds the second resource too deep */
	rev_init(&r, 1024);
	rev_str(&r, 4, LDS_URL);
	anylen = rev_len(&r);
	rev_bytes(&r, lbuf, ln);
	rev_wrap(&r, 2, ln);
	rev_str(&r, 1, LDS_URL);
	rev_wrap(&r, 2, rev_len(&r) - anylen);
	anylen = rev_len(&r);
	rev_str(&r, 1, LDS_URL);
	rev_bytes(&r, (const uint8_t *)"\x12\x7f\x0a", 3);
	rev_wrap(&r, 2, 3);
	rev_wrap(&r, 2, rev_len(&r) - anylen);
	ck_assert_int_eq(pbdepth_check(d, r.data + r.pos, rev_len(&r), PBDEPTH_LIMIT, PBDEPTH_FOLLOW_ANY, &depth), 0);
	ck_assert_uint_eq(depth, 4);
	ck_assert_int_eq(pbdepth_check(d, r.data + r.pos, rev_len(&r), 3, PBDEPTH_FOLLOW_ANY, &depth), -MESH_ETOOBIG);
	/* not followed, or broken at the top: refused */
	ck_assert_int_eq(pbdepth_check(&envoy__config__listener__v3__listener__descriptor,
				       (const uint8_t *)"\x12\x7f\x0a", 3, PBDEPTH_LIMIT, PBDEPTH_FOLLOW_ANY, NULL),
			 -MESH_EPARSE);
	free(r.data);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("pbdepth");
	TCase *tc = tcase_create("core");
	SRunner *sr;
	int failed;

	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, deep_struct_refused);
	tcase_add_test(tc, flat_and_broken);
	tcase_add_test(tc, any_followed);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
