/*
 * ads_test_client.h - a small ADS client on gRPC core for the xDS server
 * tests: insecure channel to 127.0.0.1, one bidi call (SotW or Delta),
 * raw message send and receive, the call's final status.  Every wait is
 * bounded by a deadline.  The tests pack and unpack their own message
 * types; this part only moves bytes.  ads_test_server_start/_stop run
 * the real server on an ephemeral loopback port.  Each test binary is built
 * from one .c, so everything here is static inline.
 */
#ifndef MESH_ADS_TEST_CLIENT_H
#define MESH_ADS_TEST_CLIENT_H

#include "common/log.h"
#include "controlplane/xds/server.h"
#include "envoy/config/core/v3/base.pb-c.h"
#include "google/protobuf/struct.pb-c.h"

#include <check.h>
#include <errno.h>
#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ADS_CLIENT_WAIT_MS 5000 /* open, send, status and close must finish within this */

struct ads_client {
	grpc_channel *ch;
	grpc_completion_queue *cq;
	grpc_call *call;
	grpc_metadata_array md_init, md_trail;
	grpc_status_code status;
	grpc_slice details;
	grpc_byte_buffer *recv;
	int recv_pending;
	int status_done;
	int tag_md, tag_send, tag_recv, tag_status;
};

static inline gpr_timespec ads_client_in_ms(int ms)
{
	return gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_millis(ms, GPR_TIMESPAN));
}

/* 0 when tag completed, -EIO when it completed unsuccessfully, -ETIMEDOUT. */
static inline int ads_client_pluck(struct ads_client *c, void *tag, int ms)
{
	grpc_event ev = grpc_completion_queue_pluck(c->cq, tag, ads_client_in_ms(ms), NULL);

	if (ev.type == GRPC_QUEUE_TIMEOUT)
		return -ETIMEDOUT;
	ck_assert_int_eq(ev.type, GRPC_OP_COMPLETE);
	return ev.success ? 0 : -EIO;
}

/* Start a call of method on 127.0.0.1:port over a channel with args (NULL:
 * defaults); metadata exchanged, status pending. */
static inline void ads_client_open_args(struct ads_client *c, int port, const char *method,
					const grpc_channel_args *args)
{
	grpc_channel_credentials *creds = grpc_insecure_credentials_create();
	char target[64];
	grpc_slice m = grpc_slice_from_static_string(method);
	grpc_op ops[2], st;

	memset(c, 0, sizeof(*c));
	snprintf(target, sizeof(target), "127.0.0.1:%d", port);
	c->ch = grpc_channel_create(target, creds, args);
	grpc_channel_credentials_release(creds);
	c->cq = grpc_completion_queue_create_for_pluck(NULL);
	c->call = grpc_channel_create_call(c->ch, NULL, GRPC_PROPAGATE_DEFAULTS, c->cq, m, NULL,
					   gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
	ck_assert_ptr_nonnull(c->call);
	grpc_metadata_array_init(&c->md_init);
	grpc_metadata_array_init(&c->md_trail);
	memset(ops, 0, sizeof(ops));
	ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
	ops[1].op = GRPC_OP_RECV_INITIAL_METADATA;
	ops[1].data.recv_initial_metadata.recv_initial_metadata = &c->md_init;
	ck_assert_int_eq(grpc_call_start_batch(c->call, ops, 2, &c->tag_md, NULL), GRPC_CALL_OK);
	ck_assert_int_eq(ads_client_pluck(c, &c->tag_md, ADS_CLIENT_WAIT_MS), 0);
	memset(&st, 0, sizeof(st));
	st.op = GRPC_OP_RECV_STATUS_ON_CLIENT;
	st.data.recv_status_on_client.trailing_metadata = &c->md_trail;
	st.data.recv_status_on_client.status = &c->status;
	st.data.recv_status_on_client.status_details = &c->details;
	ck_assert_int_eq(grpc_call_start_batch(c->call, &st, 1, &c->tag_status, NULL), GRPC_CALL_OK);
}

static inline void ads_client_open(struct ads_client *c, int port, const char *method)
{
	ads_client_open_args(c, port, method, NULL);
}

/* Send len bytes as one message; returns as ads_client_pluck. */
static inline int ads_client_send_raw(struct ads_client *c, const void *data, size_t len)
{
	grpc_slice s = grpc_slice_from_copied_buffer(data, len);
	grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&s, 1);
	grpc_op op;
	int rc;

	grpc_slice_unref(s);
	memset(&op, 0, sizeof(op));
	op.op = GRPC_OP_SEND_MESSAGE;
	op.data.send_message.send_message = bb;
	ck_assert_int_eq(grpc_call_start_batch(c->call, &op, 1, &c->tag_send, NULL), GRPC_CALL_OK);
	rc = ads_client_pluck(c, &c->tag_send, ADS_CLIENT_WAIT_MS);
	grpc_byte_buffer_destroy(bb);
	return rc;
}

/* Wait for the call's final status (bounded). */
static inline grpc_status_code ads_client_status(struct ads_client *c)
{
	if (!c->status_done) {
		ck_assert_int_eq(ads_client_pluck(c, &c->tag_status, ADS_CLIENT_WAIT_MS), 0);
		c->status_done = 1;
	}
	return c->status;
}

/*
 * The next message within ms: 0 with its bytes in *msg (the caller unrefs
 * it); -ETIMEDOUT (the receive stays outstanding and is picked up by the
 * next call); -EPIPE when the stream ended (its status is printed).
 */
static inline int ads_client_recv_raw(struct ads_client *c, int ms, grpc_slice *msg)
{
	grpc_byte_buffer_reader r;
	grpc_op op;
	int rc;

	if (!c->recv_pending) {
		memset(&op, 0, sizeof(op));
		op.op = GRPC_OP_RECV_MESSAGE;
		op.data.recv_message.recv_message = &c->recv;
		ck_assert_int_eq(grpc_call_start_batch(c->call, &op, 1, &c->tag_recv, NULL), GRPC_CALL_OK);
		c->recv_pending = 1;
	}
	rc = ads_client_pluck(c, &c->tag_recv, ms);
	if (rc == -ETIMEDOUT)
		return rc;
	c->recv_pending = 0;
	if (!c->recv) {
		/* the stream ended: say how */
		char *text;

		ads_client_status(c);
		text = grpc_slice_to_c_string(c->details);
		fprintf(stderr, "stream ended (recv rc %d): status %d \"%s\"\n", rc, (int)c->status, text);
		gpr_free(text);
		return -EPIPE;
	}
	ck_assert(grpc_byte_buffer_reader_init(&r, c->recv));
	*msg = grpc_byte_buffer_reader_readall(&r);
	grpc_byte_buffer_reader_destroy(&r);
	grpc_byte_buffer_destroy(c->recv);
	c->recv = NULL;
	return 0;
}

/* Cancel the call and release everything; every tag is plucked first. */
static inline void ads_client_close(struct ads_client *c)
{
	grpc_event ev;

	grpc_call_cancel(c->call, NULL);
	if (c->recv_pending)
		ads_client_pluck(c, &c->tag_recv, ADS_CLIENT_WAIT_MS);
	if (c->recv)
		grpc_byte_buffer_destroy(c->recv);
	ads_client_status(c);
	grpc_call_unref(c->call);
	grpc_slice_unref(c->details);
	grpc_metadata_array_destroy(&c->md_init);
	grpc_metadata_array_destroy(&c->md_trail);
	grpc_channel_destroy(c->ch);
	grpc_completion_queue_shutdown(c->cq);
	/* every tag has been plucked: the queue reports its shutdown */
	ev = grpc_completion_queue_pluck(c->cq, c, ads_client_in_ms(ADS_CLIENT_WAIT_MS), NULL);
	ck_assert_int_eq(ev.type, GRPC_QUEUE_SHUTDOWN);
	grpc_completion_queue_destroy(c->cq);
}

/* A Node as a proxyless gRPC client sends it: id, cluster "test-cluster",
 * user agent "meshd-test", metadata GENERATOR=grpc.  The storage lives in
 * the struct; node points into it. */
struct ads_client_node {
	Envoy__Config__Core__V3__Node node;
	Google__Protobuf__Struct md;
	Google__Protobuf__Struct__FieldsEntry fe, *fes[1];
	Google__Protobuf__Value v;
};

static inline Envoy__Config__Core__V3__Node *ads_client_node_init(struct ads_client_node *n, const char *id)
{
	envoy__config__core__v3__node__init(&n->node);
	google__protobuf__struct__init(&n->md);
	google__protobuf__struct__fields_entry__init(&n->fe);
	google__protobuf__value__init(&n->v);
	n->node.id = (char *)id;
	n->node.cluster = "test-cluster";
	n->node.user_agent_name = "meshd-test";
	n->v.kind_case = GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE;
	n->v.string_value = "grpc";
	n->fe.key = "GENERATOR";
	n->fe.value = &n->v;
	n->fes[0] = &n->fe;
	n->md.n_fields = 1;
	n->md.fields = n->fes;
	n->node.metadata = &n->md;
	return &n->node;
}

/* A Node as a sidecar (Envoy or meshproxy) sends it: id
 * "sidecar~IP~POD.NS~NS.svc.cluster.local", no GENERATOR, metadata
 * NAMESPACE, SERVICE_ACCOUNT, INTERCEPTION_MODE REDIRECT and LABELS
 * app=APP (none when app is NULL).  The storage lives in the struct. */
struct ads_client_sidecar_node {
	Envoy__Config__Core__V3__Node node;
	Google__Protobuf__Struct md, labels;
	Google__Protobuf__Struct__FieldsEntry fe[4], *fes[4], le, *les[1];
	Google__Protobuf__Value v[4], lv;
};

static inline Envoy__Config__Core__V3__Node *ads_client_sidecar_node_init(struct ads_client_sidecar_node *n,
									  const char *id, const char *ns,
									  const char *sa, const char *app)
{
	static const char *const keys[] = { "NAMESPACE", "SERVICE_ACCOUNT", "INTERCEPTION_MODE", "LABELS" };
	const char *vals[] = { ns, sa, "REDIRECT" };
	size_t i, k = 0;

	envoy__config__core__v3__node__init(&n->node);
	google__protobuf__struct__init(&n->md);
	google__protobuf__struct__init(&n->labels);
	for (i = 0; i < 4; i++) {
		if (i < 3 && !vals[i])
			continue;
		if (i == 3 && !app)
			continue;
		google__protobuf__struct__fields_entry__init(&n->fe[k]);
		google__protobuf__value__init(&n->v[k]);
		n->fe[k].key = (char *)keys[i];
		n->fe[k].value = &n->v[k];
		if (i < 3) {
			n->v[k].kind_case = GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE;
			n->v[k].string_value = (char *)vals[i];
		} else {
			google__protobuf__struct__fields_entry__init(&n->le);
			google__protobuf__value__init(&n->lv);
			n->lv.kind_case = GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE;
			n->lv.string_value = (char *)app;
			n->le.key = "app";
			n->le.value = &n->lv;
			n->les[0] = &n->le;
			n->labels.fields = n->les;
			n->labels.n_fields = 1;
			n->v[k].kind_case = GOOGLE__PROTOBUF__VALUE__KIND_STRUCT_VALUE;
			n->v[k].struct_value = &n->labels;
		}
		n->fes[k] = &n->fe[k];
		k++;
	}
	n->md.fields = n->fes;
	n->md.n_fields = k;
	n->node.id = (char *)id;
	n->node.cluster = "test-cluster";
	n->node.user_agent_name = "envoy";
	n->node.metadata = &n->md;
	return &n->node;
}

/* gRPC up and a server on 127.0.0.1:0 (*srv, its port in *port); debug
 * logging when MESH_TEST_DEBUG is set. */
static inline void ads_test_server_start(struct xds_server **srv, int *port)
{
	struct xds_server_config cfg = { .addr = "127.0.0.1:0" };

	grpc_init();
	if (getenv("MESH_TEST_DEBUG"))
		mesh_log_set_level(MESH_LOG_DEBUG);
	ck_assert_int_eq(xds_server_start(&cfg, srv), 0);
	*port = xds_server_port(*srv);
	ck_assert_int_gt(*port, 0);
}

static inline void ads_test_server_stop(struct xds_server **srv)
{
	xds_server_stop(*srv);
	*srv = NULL;
	grpc_shutdown_blocking();
}

#endif
