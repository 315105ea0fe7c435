/*
 * ads_int.h - the ADS core's state, shared by ads.c (the protocol) and
 * ads_debug.c (the JSON views of it).  Private to controlplane/xds/: other
 * folders include ads.h only.
 */
#ifndef MESH_XDS_ADS_INT_H
#define MESH_XDS_ADS_INT_H

#include "common/refcount.h"
#include "controlplane/config/config.h"
#include "controlplane/xds/ads.h"

#include <stdint.h>
#include <time.h>

#define XDS_NONCE_CAP 24
#define XDS_VERSION_CAP 17

/* A name-sorted list of resources holding a reference to each, itself
 * counted: a whole key's selection, which the responses and held sets of
 * the key's 2,000 replicas point at instead of each copying thousands of
 * references (xDS thread only). */
struct xds_ads__rlist {
	struct mesh_refcount refs;
	size_t n;
	const struct xds_resource **v;     /* a reference to each; NULL when n is 0 */
};

/* A sorted unique list of subscribed names in one allocation, counted:
 * the streams of a key subscribed alike (a sidecar's ~1,000 EDS names)
 * share one copy. */
struct xds_ads__names {
	struct mesh_refcount refs;
	size_t n;
	uint64_t hash;                     /* names_hash() of v */
	uint64_t wire_hash;                /* names_wire_hash() of v; valid when wire_ok */
	size_t wire_len;                   /* v as DiscoveryRequest.resource_names, in bytes */
	int wire_ok;
	char **v;                          /* into this allocation */
};

/* A response waiting for the stream's send slot. */
struct xds_ads__pending {
	int queued;
	uint64_t seq;                      /* enqueue order */
	uint8_t *wire;                     /* SotW: encoded at enqueue; Delta: built by xds_ads_stream_next */
	size_t len;
	const struct xds_resource *head;   /* whole-flavour SotW: the shared part, before wire */
	char version[XDS_VERSION_CAP];
	char nonce[XDS_NONCE_CAP];
	const struct xds_resource **res;   /* a reference to each (never to a snapshot) */
	size_t nres;
	struct xds_ads__rlist *list;       /* set: res is list->v, the references are the list's */
	struct timespec published;         /* 0 when not caused by a publish */
	struct timespec enqueued;          /* first queued (CLOCK_MONOTONIC): pilot_proxy_queue_time */
};

/* Delta: a version the client says it holds (initial_resource_versions). */
struct xds_ads__init {
	char *name;
	uint64_t hash;
	int valid;                         /* 16 hex: one of our versions */
};

enum xds_ads__sync {
	XDS_ADS__SYNC_NONE,
	XDS_ADS__SYNC_STALE,
	XDS_ADS__SYNC_ACKED,
	XDS_ADS__SYNC_NACKED,
};

/* A per-proxy name asked of the push stage for a key. */
struct xds_ads__asked {
	enum xds_type type;
	char *name;
	uint64_t seq;                      /* the request's sequence number */
};

/* A whole key's selection of one type for a subscription, shared by the
 * key's streams subscribed alike (replicas ask for the same names). */
struct xds_ads__sel {
	uint64_t snap_gen;                 /* the key's set it was selected from (its snap_gen) */
	int wildcard;
	uint64_t names_hash;
	size_t nnames;
	struct xds_ads__rlist *list;       /* the selection (a reference); NULL: none */
	char version[XDS_VERSION_CAP];
};

/* The streams sharing per-proxy resources (flavour, namespace, labels). */
struct xds_ads__key {
	struct xds_ads__key *next;
	char *key;                         /* xds_proxy_key_node() */
	int whole;                         /* the set is the streams' whole config */
	int users;                         /* streams holding it */
	struct xds_snapshot *snap;         /* the stage's last set; NULL before one */
	uint64_t snap_gen;                 /* counts the sets taken; a selection names its set by it
					    * (a reference to the set would keep every old one alive) */
	/* whole: version_of each type's full set in snap, so a push skips, per
	 * stream, the types whose set did not change (most of them) */
	char tver[XDS_TYPE_COUNT][XDS_VERSION_CAP];
	/* whole: the encoded response bodies (all but the nonce) last built
	 * per type, newest first, shared by the key's streams; named
	 * "VERSION/SUBSET-VERSION" */
	const struct xds_resource *body[XDS_TYPE_COUNT][2];
	uint64_t body_hash[XDS_TYPE_COUNT][2]; /* mesh_hash_str of each body's name */
	struct xds_ads__sel sel[XDS_TYPE_COUNT];
	/* the names a stream of the key last subscribed to, per type (a
	 * reference), for the next stream asking alike */
	struct xds_ads__names *names[XDS_TYPE_COUNT];
	uint64_t answered;                 /* requests up to this seq are answered */
	uint64_t asked_seq;                /* the newest request's seq */
	struct xds_ads__asked *asked;      /* every name ever asked for the key */
	size_t nasked, capasked;
};

struct xds_ads__type {
	int subscribed;
	int wildcard;
	char **names;                      /* sorted, unique */
	size_t nnames;
	struct xds_ads__names *names_obj;  /* set: names is names_obj->v (shared); else owned */
	uint64_t names_hash;               /* over names, for the key's shared selection */
	int need_send;                     /* respond even if the version is unchanged */
	/* the newest response queued or sent: what protocol decisions use */
	char latest_version[XDS_VERSION_CAP];
	char latest_nonce[XDS_NONCE_CAP];
	int have_latest;
	/* what went to the transport last (syncz, config dump, Delta's held set) */
	int sent;
	char sent_version[XDS_VERSION_CAP];
	char sent_nonce[XDS_NONCE_CAP];
	const struct xds_resource **sent_res; /* sorted by name; a reference to each */
	size_t sent_nres;
	struct xds_ads__rlist *sent_list;  /* set: sent_res is its v, the references are its */
	char acked_version[XDS_VERSION_CAP];
	enum xds_ads__sync state;
	/* a NACKed version is not pushed again */
	int nacked;
	char nacked_version[XDS_VERSION_CAP];
	char *error;
	struct xds_ads__pending pending;
	/* whole-flavour SotW: the key's tver[] this type was last resolved against */
	char key_tver[XDS_VERSION_CAP];
	int delta_dirty;                   /* Delta: the subscription changed since the last diff */
	char delta_held[XDS_VERSION_CAP];  /* Delta, whole key: version of what the client holds ("": nothing) */
	/* Delta: the client's initial_resource_versions, until the first diff */
	struct xds_ads__init *init;
	size_t ninit;
	int have_init;
};

struct xds_ads_stream {
	struct xds_ads *ads;
	void *user;                        /* the transport's stream */
	struct xds_ads_stream *next;       /* newest first */
	uint64_t id;
	uint64_t fast_acks;                /* SotW requests taken by sotw_fast_ack() */
	int delta;                         /* DeltaAggregatedResources */
	int closed;                        /* the transport's call is over */
	int finishing;
	enum xds_ads_status finish_code;
	char *finish_msg;
	/* identity, from the first request's Node */
	int have_node;
	char *node_id;
	char *node_cluster;
	char *user_agent;
	enum xds_flavour flavour;
	char *node_ns;
	struct cfg_labels node_labels;     /* owned copies */
	char *node_sa;                     /* metadata SERVICE_ACCOUNT; NULL: none */
	char *node_ip;                     /* node id "TYPE~IP~..."; NULL: none */
	char *node_locality;               /* Node.locality "region/zone/subzone"; NULL: none */
	bool node_tproxy;                  /* metadata INTERCEPTION_MODE is TPROXY */
	/* per-proxy resources (see ads.c): the key's set, shared */
	struct xds_ads__key *key;          /* NULL: none (no Node, no want callback) */
	struct xds_snapshot *own;          /* key->snap when last resolved */
	int own_dirty;                     /* subscriptions or the key's set changed */
	int proxy_changed;                 /* the key got a set no publish handled yet */
	/* Secrets (ads.h, xds_secret_req): per stream, from the provider */
	int secure;                        /* the call came over TLS */
	char *authorization;               /* its "authorization" metadata; NULL: none */
	char *peer_id;                     /* its verified client certificate's SPIFFE ID; NULL: none */
	struct xds_snapshot *secrets;      /* the provider's last answer; NULL: none */
	uint64_t secret_asked;             /* seq of the latest request (0: never asked) */
	uint64_t secret_answered;          /* seq of the latest answer taken */
	char *peer;
	char connected_at[40];
	struct xds_ads__type types[XDS_TYPE_COUNT];
};

struct xds_ads {
	struct xds_snapshot *snaps[XDS_FLAVOUR_COUNT];
	void (*want)(void *ctx, struct xds_proxy_req *req);
	void *want_ctx;
	unsigned whole_flavours;           /* xds_ads_config.whole_flavours */
	void (*secret)(void *ctx, struct xds_secret_req *req);
	void *secret_ctx;
	struct xds_snapshot *no_secrets;   /* empty: what a stream holds before an answer */
	struct xds_ads__key *keys;
	size_t nkeys;
	uint64_t req_seq;
	void (*queued)(void *user);
	struct xds_ads_stream *streams;
	int nstreams;
	uint64_t next_stream_id;
	uint64_t nonce_counter;
	uint64_t seq_counter;
};

#endif
