/*
 * upstream.c - clusters and host sets (see upstream.h for the Envoy
 * semantics followed).
 *
 * A host set has two parts: what the ClusterLoadAssignment said (hosts
 * grouped by priority then locality, in hs->a), and what follows from the
 * hosts' current health (healthy lists, priority loads, panic flags, the
 * load-balancer pools, in hs->derived).  up_hostset_refresh() throws the
 * second part away and rebuilds it, so a health change costs one rebuild
 * (rare: ejections, EDS updates) and a pick only reads.
 */
#include "dataplane/upstream.h"

#include "common/arena.h"

#include "envoy/config/cluster/v3/circuit_breaker.pb-c.h"
#include "envoy/config/cluster/v3/cluster.pb-c.h"
#include "envoy/config/cluster/v3/outlier_detection.pb-c.h"
#include "envoy/config/core/v3/address.pb-c.h"
#include "envoy/config/core/v3/base.pb-c.h"
#include "envoy/config/core/v3/health_check.pb-c.h"
#include "envoy/config/core/v3/protocol.pb-c.h"
#include "envoy/config/endpoint/v3/endpoint.pb-c.h"
#include "envoy/config/endpoint/v3/endpoint_components.pb-c.h"
#include "envoy/extensions/upstreams/http/v3/http_protocol_options.pb-c.h"
#include "envoy/type/v3/percent.pb-c.h"
#include "google/protobuf/any.pb-c.h"
#include "google/protobuf/duration.pb-c.h"
#include "google/protobuf/struct.pb-c.h"

#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define UP_HTTP_OPTIONS_KEY "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
#define UP_HTTP_OPTIONS_URL "type.googleapis.com/" UP_HTTP_OPTIONS_KEY
#define UP_CONNECT_TIMEOUT_DEFAULT_MS 5000u
#define UP_ARENA_MAX (64u << 20)

static uint64_t up_ms(const Google__Protobuf__Duration *d)
{
	if (!d || d->seconds < 0)
		return 0;
	return (uint64_t)d->seconds * 1000u + (uint64_t)(d->nanos > 0 ? d->nanos : 0) / 1000000u;
}

static bool up_is_prime(uint64_t n)
{
	uint64_t i;

	if (n < 2)
		return false;
	for (i = 2; i * i <= n; i++)
		if (n % i == 0)
			return false;
	return true;
}

/* ---------------------------------------------------------------- clusters */

/* slow_start_config of a ROUND_ROBIN / LEAST_REQUEST cluster (Envoy's
 * SlowStartConfig: window; aggression, default 1.0, its default_value
 * (we have no runtime); min_weight_percent, default 10%).  Returns 0 or
 * -EINVAL with err. */
static int up_slow_start(const Envoy__Config__Cluster__V3__Cluster *c,
			 const Envoy__Config__Cluster__V3__Cluster__SlowStartConfig *ss, struct lb_config *lb, char *err,
			 size_t cap)
{
	if (!ss || !ss->slow_start_window)
		return 0;
	if (ss->slow_start_window->seconds < 0 || ss->slow_start_window->nanos < 0) {
		snprintf(err, cap, "cluster %s: slow_start_window must not be negative", c->name);
		return -EINVAL;
	}
	lb->slow_start_ms = (uint64_t)ss->slow_start_window->seconds * 1000u + (uint64_t)ss->slow_start_window->nanos / 1000000u;
	if (ss->min_weight_percent) {
		if (!(ss->min_weight_percent->value >= 0 && ss->min_weight_percent->value <= 100)) {
			snprintf(err, cap, "cluster %s: slow_start_config.min_weight_percent out of 0..100", c->name);
			return -EINVAL;
		}
		lb->slow_start_min = ss->min_weight_percent->value / 100.0;
	}
	if (ss->aggression) {
		/* Envoy clamps a negative aggression to 0 and asserts > 0 */
		if (!(ss->aggression->default_value > 0)) {
			snprintf(err, cap, "cluster %s: slow_start_config.aggression must be > 0", c->name);
			return -EINVAL;
		}
		lb->slow_start_aggression = ss->aggression->default_value;
	}
	return 0;
}

static int up_cluster_lb(struct up_cluster *cl, const Envoy__Config__Cluster__V3__Cluster *c, char *err, size_t cap)
{
	struct lb_config *lb = &cl->lb;

	lb->choice_count = LB_CHOICE_COUNT_DEFAULT;
	lb->ring_min = LB_RING_MIN_DEFAULT;
	lb->ring_max = LB_RING_MAX_DEFAULT;
	lb->maglev_size = LB_MAGLEV_SIZE_DEFAULT;
	lb->slow_start_aggression = 1.0;
	lb->slow_start_min = LB_SLOW_START_MIN_DEFAULT;
	switch (c->lb_policy) {
	case ENVOY__CONFIG__CLUSTER__V3__CLUSTER__LB_POLICY__ROUND_ROBIN:
		lb->kind = LB_ROUND_ROBIN;
		if (c->lb_config_case == ENVOY__CONFIG__CLUSTER__V3__CLUSTER__LB_CONFIG_ROUND_ROBIN_LB_CONFIG &&
		    up_slow_start(c, c->round_robin_lb_config->slow_start_config, lb, err, cap) < 0)
			return -EINVAL;
		break;
	case ENVOY__CONFIG__CLUSTER__V3__CLUSTER__LB_POLICY__LEAST_REQUEST:
		lb->kind = LB_LEAST_REQUEST;
		if (c->lb_config_case == ENVOY__CONFIG__CLUSTER__V3__CLUSTER__LB_CONFIG_LEAST_REQUEST_LB_CONFIG &&
		    up_slow_start(c, c->least_request_lb_config->slow_start_config, lb, err, cap) < 0)
			return -EINVAL;
		if (c->lb_config_case == ENVOY__CONFIG__CLUSTER__V3__CLUSTER__LB_CONFIG_LEAST_REQUEST_LB_CONFIG &&
		    c->least_request_lb_config->choice_count) {
			lb->choice_count = c->least_request_lb_config->choice_count->value;
			if (lb->choice_count < 2) {
				snprintf(err, cap, "cluster %s: least_request_lb_config.choice_count must be >= 2", c->name);
				return -EINVAL;
			}
		}
		break;
	case ENVOY__CONFIG__CLUSTER__V3__CLUSTER__LB_POLICY__RANDOM:
		lb->kind = LB_RANDOM;
		break;
	case ENVOY__CONFIG__CLUSTER__V3__CLUSTER__LB_POLICY__RING_HASH:
		lb->kind = LB_RING_HASH;
		if (c->lb_config_case == ENVOY__CONFIG__CLUSTER__V3__CLUSTER__LB_CONFIG_RING_HASH_LB_CONFIG) {
			const Envoy__Config__Cluster__V3__Cluster__RingHashLbConfig *r = c->ring_hash_lb_config;

			if (r->hash_function != ENVOY__CONFIG__CLUSTER__V3__CLUSTER__RING_HASH_LB_CONFIG__HASH_FUNCTION__XX_HASH) {
				snprintf(err, cap, "cluster %s: ring_hash_lb_config.hash_function: only XX_HASH is supported",
					 c->name);
				return -ENOTSUP;
			}
			if (r->minimum_ring_size)
				lb->ring_min = r->minimum_ring_size->value;
			if (r->maximum_ring_size)
				lb->ring_max = r->maximum_ring_size->value;
			if (lb->ring_min == 0 || lb->ring_max > LB_RING_MAX_LIMIT || lb->ring_min > lb->ring_max) {
				snprintf(err, cap, "cluster %s: ring_hash_lb_config: ring sizes %llu..%llu out of 1..%u", c->name,
					 (unsigned long long)lb->ring_min, (unsigned long long)lb->ring_max, LB_RING_MAX_LIMIT);
				return -EINVAL;
			}
		}
		break;
	case ENVOY__CONFIG__CLUSTER__V3__CLUSTER__LB_POLICY__MAGLEV:
		lb->kind = LB_MAGLEV;
		if (c->lb_config_case == ENVOY__CONFIG__CLUSTER__V3__CLUSTER__LB_CONFIG_MAGLEV_LB_CONFIG &&
		    c->maglev_lb_config->table_size) {
			lb->maglev_size = c->maglev_lb_config->table_size->value;
			if (lb->maglev_size > LB_MAGLEV_SIZE_LIMIT || !up_is_prime(lb->maglev_size)) {
				snprintf(err, cap, "cluster %s: maglev_lb_config.table_size %llu is not a prime <= %u", c->name,
					 (unsigned long long)lb->maglev_size, LB_MAGLEV_SIZE_LIMIT);
				return -EINVAL;
			}
		}
		break;
	case ENVOY__CONFIG__CLUSTER__V3__CLUSTER__LB_POLICY__CLUSTER_PROVIDED:
		if (cl->type != UP_ORIGINAL_DST) {
			snprintf(err, cap, "cluster %s: lb_policy CLUSTER_PROVIDED needs type ORIGINAL_DST", c->name);
			return -EINVAL;
		}
		lb->kind = LB_ROUND_ROBIN;
		cl->original_dst = true;
		break;
	default:
		snprintf(err, cap, "cluster %s: lb_policy %d is not supported", c->name, (int)c->lb_policy);
		return -ENOTSUP;
	}
	if (cl->type == UP_ORIGINAL_DST)
		cl->original_dst = true;
	return 0;
}

/* typed_extension_protocol_options' HttpProtocolOptions (what meshd sends:
 * idle timeout, max requests per connection, HTTP/2), else the
 * deprecated cluster fields. */
static int up_cluster_http(struct up_cluster *cl, const Envoy__Config__Cluster__V3__Cluster *c, char *err, size_t cap)
{
	const Envoy__Config__Core__V3__HttpProtocolOptions *common = c->common_http_protocol_options;
	Envoy__Extensions__Upstreams__Http__V3__HttpProtocolOptions *hpo = NULL;
	size_t i;
	int rc = 0;

	if (c->max_requests_per_connection)
		cl->max_requests_per_connection = c->max_requests_per_connection->value;
	if (c->http2_protocol_options) {
		cl->http2 = true;
		if (c->http2_protocol_options->max_concurrent_streams)
			cl->max_concurrent_streams = c->http2_protocol_options->max_concurrent_streams->value;
	}
	for (i = 0; i < c->n_typed_extension_protocol_options; i++) {
		const Envoy__Config__Cluster__V3__Cluster__TypedExtensionProtocolOptionsEntry *e =
			c->typed_extension_protocol_options[i];

		if (strcmp(e->key, UP_HTTP_OPTIONS_KEY) != 0 || !e->value)
			continue;
		if (strcmp(e->value->type_url, UP_HTTP_OPTIONS_URL) != 0) {
			snprintf(err, cap, "cluster %s: typed_extension_protocol_options[%s] has type %s", c->name, e->key,
				 e->value->type_url);
			rc = -EINVAL;
			goto out;
		}
		hpo = envoy__extensions__upstreams__http__v3__http_protocol_options__unpack(NULL, e->value->value.len,
											  e->value->value.data);
		if (!hpo) {
			snprintf(err, cap, "cluster %s: HttpProtocolOptions does not decode", c->name);
			rc = -EINVAL;
			goto out;
		}
		if (hpo->common_http_protocol_options)
			common = hpo->common_http_protocol_options;
		if (hpo->upstream_protocol_options_case ==
			    ENVOY__EXTENSIONS__UPSTREAMS__HTTP__V3__HTTP_PROTOCOL_OPTIONS__UPSTREAM_PROTOCOL_OPTIONS_EXPLICIT_HTTP_CONFIG &&
		    hpo->explicit_http_config->protocol_config_case ==
			    ENVOY__EXTENSIONS__UPSTREAMS__HTTP__V3__HTTP_PROTOCOL_OPTIONS__EXPLICIT_HTTP_CONFIG__PROTOCOL_CONFIG_HTTP2_PROTOCOL_OPTIONS) {
			cl->http2 = true;
			if (hpo->explicit_http_config->http2_protocol_options->max_concurrent_streams)
				cl->max_concurrent_streams =
					hpo->explicit_http_config->http2_protocol_options->max_concurrent_streams->value;
		}
		if (hpo->upstream_protocol_options_case ==
			    ENVOY__EXTENSIONS__UPSTREAMS__HTTP__V3__HTTP_PROTOCOL_OPTIONS__UPSTREAM_PROTOCOL_OPTIONS_USE_DOWNSTREAM_PROTOCOL_CONFIG &&
		    hpo->use_downstream_protocol_config->http2_protocol_options)
			cl->http2_downstream = true; /* Istio's useClientProtocol / the passthrough clusters */
		break;
	}
	if (common) {
		if (common->max_requests_per_connection)
			cl->max_requests_per_connection = common->max_requests_per_connection->value;
		cl->idle_timeout_ms = up_ms(common->idle_timeout);
		cl->max_connection_duration_ms = up_ms(common->max_connection_duration);
	}
out:
	if (hpo)
		envoy__extensions__upstreams__http__v3__http_protocol_options__free_unpacked(hpo, NULL);
	return rc;
}

static const char *up_struct_string(const Google__Protobuf__Struct *s, const char *key)
{
	size_t i;

	for (i = 0; s && i < s->n_fields; i++)
		if (strcmp(s->fields[i]->key, key) == 0 && s->fields[i]->value &&
		    s->fields[i]->value->kind_case == GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE)
			return s->fields[i]->value->string_value;
	return NULL;
}

int up_cluster_new(const Envoy__Config__Cluster__V3__Cluster *c, char *err, size_t cap, struct up_cluster **out)
{
	struct up_cluster *cl = calloc(1, sizeof(*cl));
	size_t i;
	int rc = -ENOMEM;

	*out = NULL;
	if (!cl)
		goto out;
	cl->refs = 1;
	if (!c->name || !*c->name) {
		snprintf(err, cap, "cluster without a name");
		rc = -EINVAL;
		goto out;
	}
	{
		const char *eds = c->eds_cluster_config && c->eds_cluster_config->service_name &&
					  *c->eds_cluster_config->service_name
				  ? c->eds_cluster_config->service_name
				  : c->name;
		size_t nl = strlen(c->name), el = strlen(eds);

		if (!(cl->name = malloc(nl + 1 + el + 1)))
			goto out;
		memcpy(cl->name, c->name, nl + 1);
		cl->eds_name = cl->name + nl + 1;
		memcpy(cl->eds_name, eds, el + 1);
	}
	if (c->cluster_discovery_type_case == ENVOY__CONFIG__CLUSTER__V3__CLUSTER__CLUSTER_DISCOVERY_TYPE_CLUSTER_TYPE) {
		snprintf(err, cap, "cluster %s: custom cluster_type is not supported", c->name);
		rc = -ENOTSUP;
		goto out;
	}
	switch (c->cluster_discovery_type_case == ENVOY__CONFIG__CLUSTER__V3__CLUSTER__CLUSTER_DISCOVERY_TYPE_TYPE
			? c->type
			: ENVOY__CONFIG__CLUSTER__V3__CLUSTER__DISCOVERY_TYPE__STATIC) {
	case ENVOY__CONFIG__CLUSTER__V3__CLUSTER__DISCOVERY_TYPE__STATIC:
		cl->type = UP_STATIC;
		break;
	case ENVOY__CONFIG__CLUSTER__V3__CLUSTER__DISCOVERY_TYPE__STRICT_DNS:
		cl->type = UP_STRICT_DNS;
		break;
	case ENVOY__CONFIG__CLUSTER__V3__CLUSTER__DISCOVERY_TYPE__LOGICAL_DNS:
		cl->type = UP_LOGICAL_DNS;
		break;
	case ENVOY__CONFIG__CLUSTER__V3__CLUSTER__DISCOVERY_TYPE__EDS:
		cl->type = UP_EDS;
		break;
	case ENVOY__CONFIG__CLUSTER__V3__CLUSTER__DISCOVERY_TYPE__ORIGINAL_DST:
		cl->type = UP_ORIGINAL_DST;
		break;
	default:
		snprintf(err, cap, "cluster %s: discovery type %d is not supported", c->name, (int)c->type);
		rc = -ENOTSUP;
		goto out;
	}
	rc = up_cluster_lb(cl, c, err, cap);
	if (rc < 0)
		goto out;
	cl->panic_threshold = UP_PANIC_THRESHOLD_DEFAULT;
	if (c->common_lb_config) {
		const Envoy__Config__Cluster__V3__Cluster__CommonLbConfig *cc = c->common_lb_config;

		if (cc->healthy_panic_threshold) {
			double v = cc->healthy_panic_threshold->value;

			if (!(v >= 0 && v <= 100)) {
				snprintf(err, cap, "cluster %s: healthy_panic_threshold %g not in [0, 100]", c->name, v);
				rc = -EINVAL;
				goto out;
			}
			cl->panic_threshold = (uint32_t)(v + 0.5); /* lround() of v >= 0, without libm (lb.c) */
		}
		cl->locality_weighted =
			cc->locality_config_specifier_case ==
			ENVOY__CONFIG__CLUSTER__V3__CLUSTER__COMMON_LB_CONFIG__LOCALITY_CONFIG_SPECIFIER_LOCALITY_WEIGHTED_LB_CONFIG;
	}
	rc = outlier_config_init(&cl->od, c->outlier_detection, err, cap);
	if (rc < 0)
		goto out;
	rc = cb_init(&cl->cb, c->circuit_breakers, err, cap);
	if (rc < 0)
		goto out;
	rc = up_cluster_http(cl, c, err, cap);
	if (rc < 0)
		goto out;
	cl->connect_timeout_ms = c->connect_timeout ? up_ms(c->connect_timeout) : UP_CONNECT_TIMEOUT_DEFAULT_MS;
	/* Envoy's upstream_connection_options.tcp_keepalive: SO_KEEPALIVE on
	 * every upstream socket, each unset value left to the OS */
	if (c->upstream_connection_options && c->upstream_connection_options->tcp_keepalive) {
		const Envoy__Config__Core__V3__TcpKeepalive *ka = c->upstream_connection_options->tcp_keepalive;

		cl->tcp_keepalive = true;
		cl->keepalive_probes = ka->keepalive_probes ? ka->keepalive_probes->value : 0;
		cl->keepalive_time_s = ka->keepalive_time ? ka->keepalive_time->value : 0;
		cl->keepalive_interval_s = ka->keepalive_interval ? ka->keepalive_interval->value : 0;
	}
	for (i = 0; i < c->n_transport_socket_matches; i++) {
		const char *v = c->transport_socket_matches[i]->match
					? up_struct_string(c->transport_socket_matches[i]->match, "tlsMode")
					: NULL;

		if (v && strcmp(v, "istio") == 0)
			cl->tls_istio_match = true;
	}
	*out = cl;
	cl = NULL;
	rc = 0;
out:
	if (rc == -ENOMEM && err && cap)
		snprintf(err, cap, "cluster %s: out of memory", c->name);
	up_cluster_unref(cl);
	return rc;
}

struct up_cluster *up_cluster_ref(struct up_cluster *cl)
{
	if (cl)
		cl->refs++;
	return cl;
}

void up_cluster_unref(struct up_cluster *cl)
{
	if (!cl || --cl->refs > 0)
		return;
	free(cl->name);
	free(cl);
}

/* ---------------------------------------------------------------- hosts */

static void up_host_unref(struct up_host *h)
{
	if (h && --h->refs == 0)
		free(h);
}

/* A build-time index of hosts by key (open addressing, power-of-two
 * slots, at least twice the hosts), so that building a set of n hosts
 * against the previous one stays O(n). */
struct up_index {
	struct up_host **slot;
	uint32_t mask;
};

static int up_index_init(struct up_index *ix, uint32_t n)
{
	uint32_t cap = 8;

	while (cap < 2 * n + 1)
		cap <<= 1;
	ix->slot = calloc(cap, sizeof(*ix->slot));
	ix->mask = cap - 1;
	return ix->slot ? 0 : -ENOMEM;
}

static struct up_host **up_index_at(const struct up_index *ix, const char *key, size_t len)
{
	uint32_t i = (uint32_t)lb_xxhash64(key, len, 0) & ix->mask;

	while (ix->slot[i] && !(ix->slot[i]->key_len == len && memcmp(ix->slot[i]->key, key, len) == 0))
		i = (i + 1) & ix->mask;
	return &ix->slot[i];
}

struct up_host *up_hostset_find(const struct up_hostset *hs, const char *key, size_t len)
{
	uint32_t i;

	for (i = 0; hs && i < hs->n; i++)
		if (hs->hosts[i]->key_len == len && memcmp(hs->hosts[i]->key, key, len) == 0)
			return hs->hosts[i];
	return NULL;
}

/* The address of an LbEndpoint into h (fresh) or the key to look up. */
static int up_host_addr(const struct up_cluster *cl, const Envoy__Config__Endpoint__V3__LbEndpoint *le,
			struct up_host *h, char *err, size_t cap)
{
	const Envoy__Config__Core__V3__SocketAddress *sa;
	int n;

	if (le->host_identifier_case != ENVOY__CONFIG__ENDPOINT__V3__LB_ENDPOINT__HOST_IDENTIFIER_ENDPOINT ||
	    !le->endpoint || !le->endpoint->address ||
	    le->endpoint->address->address_case != ENVOY__CONFIG__CORE__V3__ADDRESS__ADDRESS_SOCKET_ADDRESS) {
		snprintf(err, cap, "cluster %s: endpoint without a socket address", cl->name);
		return -EINVAL;
	}
	sa = le->endpoint->address->socket_address;
	if (sa->port_specifier_case != ENVOY__CONFIG__CORE__V3__SOCKET_ADDRESS__PORT_SPECIFIER_PORT_VALUE ||
	    sa->port_value > 65535) {
		snprintf(err, cap, "cluster %s: endpoint %s: no valid port_value", cl->name, sa->address);
		return -EINVAL;
	}
	h->port = (uint16_t)sa->port_value;
	memset(&h->addr, 0, sizeof(h->addr));
	if (inet_pton(AF_INET, sa->address, &h->addr.in4.sin_addr) == 1) {
		h->addr.in4.sin_family = AF_INET;
		h->addr.in4.sin_port = htons(h->port);
		h->addr_len = sizeof(h->addr.in4);
		n = snprintf(h->key, UP_KEY_MAX, "%s:%u", sa->address, (unsigned)h->port);
	} else if (inet_pton(AF_INET6, sa->address, &h->addr.in6.sin6_addr) == 1) {
		char txt[INET6_ADDRSTRLEN];

		h->addr.in6.sin6_family = AF_INET6;
		h->addr.in6.sin6_port = htons(h->port);
		h->addr_len = sizeof(h->addr.in6);
		/* Envoy's asString() prints the canonical form */
		inet_ntop(AF_INET6, &h->addr.in6.sin6_addr, txt, sizeof(txt));
		n = snprintf(h->key, UP_KEY_MAX, "[%s]:%u", txt, (unsigned)h->port);
	} else if (cl->type == UP_STRICT_DNS || cl->type == UP_LOGICAL_DNS) {
		/* resolved later by the engine (asynchronously): no sockaddr yet */
		h->addr_len = 0;
		n = snprintf(h->key, UP_KEY_MAX, "%s:%u", sa->address, (unsigned)h->port);
	} else {
		snprintf(err, cap, "cluster %s: endpoint address \"%s\" is not an IP address", cl->name, sa->address);
		return -EINVAL;
	}
	if (n < 0 || (size_t)n >= UP_KEY_MAX) {
		snprintf(err, cap, "cluster %s: endpoint address too long", cl->name);
		return -EINVAL;
	}
	h->key_len = (uint8_t)n;
	return 0;
}

static uint8_t up_health_of(Envoy__Config__Core__V3__HealthStatus s)
{
	switch (s) {
	case ENVOY__CONFIG__CORE__V3__HEALTH_STATUS__UNKNOWN:
	case ENVOY__CONFIG__CORE__V3__HEALTH_STATUS__HEALTHY:
		return UP_HEALTHY;
	case ENVOY__CONFIG__CORE__V3__HEALTH_STATUS__DEGRADED:
		return UP_DEGRADED;
	default:
		return UP_UNHEALTHY;
	}
}

static bool up_tls_istio(const Envoy__Config__Core__V3__Metadata *md)
{
	size_t i;

	for (i = 0; md && i < md->n_filter_metadata; i++) {
		const char *v;

		if (strcmp(md->filter_metadata[i]->key, "envoy.transport_socket_match") != 0)
			continue;
		v = up_struct_string(md->filter_metadata[i]->value, "tlsMode");
		if (v && strcmp(v, "istio") == 0)
			return true;
	}
	return false;
}

/* ---------------------------------------------------------------- host sets */

void up_hostset_free(struct up_hostset *hs)
{
	uint32_t i;

	if (!hs)
		return;
	for (i = 0; i < hs->n; i++)
		up_host_unref(hs->hosts[i]);
	free(hs->hosts);
	arena_free(hs->derived);
	arena_free(hs->a);
	up_cluster_unref(hs->cl);
	free(hs);
}

#define UP_ROUND16(n) (((n) + 15u) & ~(size_t)15u)

/* The block bytes up_str_carve takes for s: "" (most localities) none. */
static size_t up_str_size(const char *s)
{
	return s && *s ? UP_ROUND16(strlen(s) + 1) : 0;
}

/* s copied at *block (advanced by up_str_size(s)); "" is a static "". */
static const char *up_str_carve(unsigned char **block, const char *s)
{
	char *d;

	if (!s || !*s)
		return "";
	d = (char *)*block;
	memcpy(d, s, strlen(s) + 1);
	*block += up_str_size(s);
	return d;
}

int up_hostset_new(struct up_cluster *cl, const Envoy__Config__Endpoint__V3__ClusterLoadAssignment *cla,
		   const struct up_hostset *prev, uint64_t seed, char *err, size_t cap, struct up_hostset **out)
{
	struct up_hostset *hs = calloc(1, sizeof(*hs));
	unsigned char *block = NULL;
	struct up_index seen = { NULL, 0 }, old = { NULL, 0 };
	uint32_t max_prio = 0, total = 0, p;
	size_t i, j;
	int rc = -ENOMEM;

	*out = NULL;
	if (!hs || !(hs->a = arena_new(UP_ARENA_MAX)))
		goto out;
	hs->cl = up_cluster_ref(cl);
	hs->seed = seed;
	hs->overprovisioning = UP_OVERPROVISIONING_DEFAULT;
	if (cla && cla->policy && cla->policy->overprovisioning_factor) {
		hs->overprovisioning = cla->policy->overprovisioning_factor->value;
		if (hs->overprovisioning == 0) {
			snprintf(err, cap, "cluster %s: overprovisioning_factor must be > 0", cl->name);
			rc = -EINVAL;
			goto out;
		}
	}
	/* Envoy's LogicalDnsCluster refuses more than one endpoint (and none:
	 * here a set without hosts is also what dnscl.c builds before the
	 * name resolves, so only "more" is refused) */
	if (cl->type == UP_LOGICAL_DNS && cla &&
	    (cla->n_endpoints > 1 || (cla->n_endpoints == 1 && cla->endpoints[0]->n_lb_endpoints > 1))) {
		snprintf(err, cap, "cluster %s: LOGICAL_DNS clusters must have a single locality_lb_endpoint and a "
			 "single lb_endpoint", cl->name);
		rc = -EINVAL;
		goto out;
	}
	for (i = 0; cla && i < cla->n_endpoints; i++) {
		const Envoy__Config__Endpoint__V3__LocalityLbEndpoints *le = cla->endpoints[i];

		if (le->priority >= UP_PRIORITY_MAX) {
			snprintf(err, cap, "cluster %s: priority %u over %u", cl->name, le->priority, UP_PRIORITY_MAX - 1);
			rc = -EINVAL;
			goto out;
		}
		if (le->priority > max_prio)
			max_prio = le->priority;
		total += (uint32_t)le->n_lb_endpoints;
	}
	hs->n_prio = cla && cla->n_endpoints ? max_prio + 1 : 0;
	if (hs->n_prio) {
		/* the priorities, their localities and host lists in one block
		 * (one arena chunk of the right size: a sidecar holds ~1,000 sets) */
		size_t sz = UP_ROUND16(hs->n_prio * sizeof(*hs->prio));

		for (i = 0; i < cla->n_endpoints; i++) {
			const Envoy__Config__Core__V3__Locality *lo = cla->endpoints[i]->locality;

			sz += sizeof(struct up_locality);
			if (lo)
				sz += up_str_size(lo->region) + up_str_size(lo->zone) + up_str_size(lo->sub_zone);
		}
		for (p = 0; p < hs->n_prio; p++) {
			uint32_t np = 0;

			for (i = 0; i < cla->n_endpoints; i++)
				if (cla->endpoints[i]->priority == p)
					np += (uint32_t)cla->endpoints[i]->n_lb_endpoints;
			sz += UP_ROUND16((np ? np : 1) * sizeof(struct up_host *));
		}
		if (!(block = arena_alloc(hs->a, sz)))
			goto out;
		hs->prio = (struct up_priority *)block;
		block += UP_ROUND16(hs->n_prio * sizeof(*hs->prio));
	}
	if (total && !(hs->hosts = calloc(total, sizeof(*hs->hosts))))
		goto out;
	if (up_index_init(&seen, total) < 0 || up_index_init(&old, prev ? prev->n : 0) < 0)
		goto out;
	for (i = 0; prev && i < prev->n; i++)
		*up_index_at(&old, prev->hosts[i]->key, prev->hosts[i]->key_len) = prev->hosts[i];
	/* Envoy requires priorities to be contiguous from 0 */
	for (p = 0; p < hs->n_prio; p++) {
		uint32_t np = 0, nl = 0;

		for (i = 0; i < cla->n_endpoints; i++)
			if (cla->endpoints[i]->priority == p) {
				np += (uint32_t)cla->endpoints[i]->n_lb_endpoints;
				nl++;
			}
		if (nl == 0) {
			snprintf(err, cap, "cluster %s: priority %u has no localities (priorities must be contiguous)",
				 cl->name, p);
			rc = -EINVAL;
			goto out;
		}
		hs->prio[p].loc = (struct up_locality *)block;
		block += nl * sizeof(struct up_locality);
		hs->prio[p].hosts = (struct up_host **)block;
		block += UP_ROUND16((np ? np : 1) * sizeof(struct up_host *));
	}
	for (i = 0; cla && i < cla->n_endpoints; i++) {
		const Envoy__Config__Endpoint__V3__LocalityLbEndpoints *le = cla->endpoints[i];
		struct up_priority *pr = &hs->prio[le->priority];
		struct up_locality *loc = &pr->loc[pr->n_loc];

		loc->first = pr->n;
		loc->weight = le->load_balancing_weight ? le->load_balancing_weight->value : 0;
		if (le->locality) {
			loc->region = up_str_carve(&block, le->locality->region);
			loc->zone = up_str_carve(&block, le->locality->zone);
			loc->sub_zone = up_str_carve(&block, le->locality->sub_zone);
		}
		for (j = 0; j < le->n_lb_endpoints; j++) {
			const Envoy__Config__Endpoint__V3__LbEndpoint *lbe = le->lb_endpoints[j];
			union {
				struct up_host h;
				char b[sizeof(struct up_host) + UP_KEY_MAX];
			} tb;
			struct up_host *tmp = &tb.h, *h, **dup;

			memset(&tb, 0, sizeof(tb));
			rc = up_host_addr(cl, lbe, tmp, err, cap);
			if (rc < 0)
				goto out;
			dup = up_index_at(&seen, tmp->key, tmp->key_len);
			if (*dup) {
				snprintf(err, cap, "cluster %s: endpoint %s listed twice", cl->name, tmp->key);
				rc = -EINVAL;
				goto out;
			}
			h = *up_index_at(&old, tmp->key, tmp->key_len);
			if (h) {
				h->refs++;
			} else {
				size_t sz = offsetof(struct up_host, key) + tmp->key_len + 1u;

				h = malloc(sz < sizeof(*h) ? sizeof(*h) : sz);
				if (!h) {
					rc = -ENOMEM;
					goto out;
				}
				memcpy(h, tmp, sz);
				h->refs = 1;
			}
			hs->hosts[hs->n++] = h;
			*dup = h;
			/* what EDS says now wins over the previous set's view */
			h->weight = lbe->load_balancing_weight && lbe->load_balancing_weight->value
					    ? lbe->load_balancing_weight->value
					    : 1;
			h->health = up_health_of(lbe->health_status);
			h->tls_istio = up_tls_istio(lbe->metadata);
			h->priority = le->priority;
			h->locality = pr->n_loc;
			pr->hosts[pr->n++] = h;
			loc->n++;
		}
		pr->n_loc++;
	}
	rc = up_hostset_refresh(hs);
	if (rc == -EINVAL)
		snprintf(err, cap, "cluster %s: %u hosts do not fit a maglev table of %llu (65535 at most)", cl->name,
			 hs->n, (unsigned long long)cl->lb.maglev_size);
	if (rc < 0)
		goto out;
	*out = hs;
	hs = NULL;
out:
	if (rc == -ENOMEM && cap)
		snprintf(err, cap, "cluster %s: out of memory", cl->name);
	free(seen.slot);
	free(old.slot);
	up_hostset_free(hs);
	return rc;
}

static bool up_usable(const struct up_host *h)
{
	return h->health == UP_HEALTHY && !h->ejected;
}

/* Effective weight of each host of a pool: its own weight, times its
 * locality's share when the cluster is locality-weighted (as Envoy
 * normalises weights for the hashing balancers). */
static double *up_weights(struct arena *a, const struct up_hostset *hs, const struct up_priority *pr,
			  struct up_host **hosts, uint32_t n)
{
	double *w = arena_calloc(a, n ? n : 1, sizeof(*w));
	uint32_t i, l;

	if (!w)
		return NULL;
	for (i = 0; i < n; i++)
		w[i] = hosts[i]->weight;
	if (!hs->cl->locality_weighted || (hs->cl->lb.kind != LB_RING_HASH && hs->cl->lb.kind != LB_MAGLEV))
		return w;
	for (l = 0; l < pr->n_loc; l++) {
		double lw = pr->loc[l].weight, sum = 0;

		for (i = 0; i < n; i++)
			if (hosts[i]->locality == l)
				sum += hosts[i]->weight;
		for (i = 0; i < n; i++)
			if (hosts[i]->locality == l)
				w[i] = sum > 0 && lw > 0 ? w[i] / sum * lw * 1000.0 : 0;
	}
	for (i = 0; i < n; i++)
		if (w[i] <= 0)
			w[i] = 1e-9; /* a locality without weight: (almost) no share */
	return w;
}

static void up_loc_sift(struct lb_edf_entry *h, uint32_t n, uint32_t i)
{
	for (;;) {
		uint32_t l = 2 * i + 1, r = l + 1, m = i;
		struct lb_edf_entry t;

		if (l < n && (h[l].deadline < h[m].deadline ||
			      (h[l].deadline == h[m].deadline && h[l].order < h[m].order)))
			m = l;
		if (r < n && (h[r].deadline < h[m].deadline ||
			      (h[r].deadline == h[m].deadline && h[r].order < h[m].order)))
			m = r;
		if (m == i)
			return;
		t = h[i];
		h[i] = h[m];
		h[m] = t;
		i = m;
	}
}

int up_hostset_refresh(struct up_hostset *hs)
{
	struct arena *a = arena_new(UP_ARENA_MAX);
	const struct lb_config *lbc = &hs->cl->lb;
	uint32_t p, i, l, sum_health = 0, norm, left = 100;
	int32_t first = -1;
	int rc = -ENOMEM;

	if (!a)
		goto out;
	for (p = 0; p < hs->n_prio; p++) {
		struct up_priority *pr = &hs->prio[p];

		pr->healthy = arena_calloc(a, pr->n ? pr->n : 1, sizeof(*pr->healthy));
		if (!pr->healthy)
			goto out;
		pr->n_healthy = 0;
		for (i = 0; i < pr->n; i++)
			if (up_usable(pr->hosts[i]))
				pr->healthy[pr->n_healthy++] = pr->hosts[i];
		/* integer percent, as Envoy: min(100, OF x healthy / total) */
		pr->health = pr->n ? (uint32_t)((uint64_t)hs->overprovisioning * pr->n_healthy / pr->n) : 0;
		if (pr->health > 100)
			pr->health = 100;
		sum_health += pr->health;
	}
	norm = sum_health > 100 ? 100 : sum_health;
	/* priority loads: the healthiest first, the rest flowing down */
	for (p = 0; p < hs->n_prio; p++) {
		struct up_priority *pr = &hs->prio[p];
		uint32_t ld;

		if (norm == 0) {
			pr->load = p == 0 ? 100 : 0;
			continue;
		}
		if (first < 0 && pr->health > 0)
			first = (int32_t)p;
		ld = pr->health * 100 / norm;
		pr->load = ld < left ? ld : left;
		left -= pr->load;
	}
	if (norm && left && first >= 0)
		hs->prio[first].load += left;
	/* panic */
	for (p = 0; p < hs->n_prio; p++) {
		struct up_priority *pr = &hs->prio[p];
		uint32_t pct = pr->n ? 100 * pr->n_healthy / pr->n : 0;

		if (norm == 0 && hs->cl->panic_threshold == 0)
			pr->panic = false;
		else if (norm == 100)
			pr->panic = false;
		else if (norm == 0)
			pr->panic = true;
		else
			pr->panic = pct < hs->cl->panic_threshold;
	}
	/* pools */
	for (p = 0; p < hs->n_prio; p++) {
		struct up_priority *pr = &hs->prio[p];
		double *w;

		if (pr->panic) {
			w = up_weights(a, hs, pr, pr->hosts, pr->n);
			if (!w)
				goto out;
			rc = lb_pool_build(a, lbc, pr->hosts, w, pr->n, hs->seed + p, &pr->pool);
			if (rc < 0)
				goto out;
		} else {
			w = up_weights(a, hs, pr, pr->healthy, pr->n_healthy);
			if (!w)
				goto out;
			rc = lb_pool_build(a, lbc, pr->healthy, w, pr->n_healthy, hs->seed + p, &pr->pool);
			if (rc < 0)
				goto out;
		}
		rc = -ENOMEM;
		pr->n_loc_edf = 0;
		pr->loc_edf = NULL;
		if (!hs->cl->locality_weighted || lbc->kind == LB_RING_HASH || lbc->kind == LB_MAGLEV)
			continue;
		/* locality-weighted: each locality's healthy hosts, and an EDF over
		 * load_balancing_weight x min(1, OF x healthy share) */
		pr->loc_edf = arena_calloc(a, pr->n_loc ? pr->n_loc : 1, sizeof(*pr->loc_edf));
		if (!pr->loc_edf)
			goto out;
		pr->loc_now = 0;
		pr->loc_order = 0;
		for (l = 0; l < pr->n_loc; l++) {
			struct up_locality *loc = &pr->loc[l];
			struct up_host **lh = arena_calloc(a, loc->n ? loc->n : 1, sizeof(*lh));
			double ratio;

			if (!lh)
				goto out;
			loc->n_healthy = 0;
			for (i = 0; i < loc->n; i++)
				if (up_usable(pr->hosts[loc->first + i]))
					lh[loc->n_healthy++] = pr->hosts[loc->first + i];
			ratio = loc->n ? (double)hs->overprovisioning / 100.0 * loc->n_healthy / loc->n : 0;
			loc->eff_weight = (double)loc->weight * (ratio < 1.0 ? ratio : 1.0);
			if (!(loc->pool = arena_alloc(a, sizeof(*loc->pool))))
				goto out;
			rc = lb_pool_build(a, lbc, lh, NULL, loc->n_healthy, hs->seed + p + l, loc->pool);
			if (rc < 0)
				goto out;
			rc = -ENOMEM;
			if (loc->eff_weight > 0) {
				struct lb_edf_entry *e = &pr->loc_edf[pr->n_loc_edf++];

				e->deadline = 1.0 / loc->eff_weight;
				e->order = pr->loc_order++;
				e->idx = l;
			}
		}
		for (i = pr->n_loc_edf / 2 + 1; i-- > 0;)
			up_loc_sift(pr->loc_edf, pr->n_loc_edf, i);
	}
	arena_free(hs->derived);
	hs->derived = a;
	a = NULL;
	rc = 0;
out:
	arena_free(a);
	return rc;
}

/* ---------------------------------------------------------------- picking */

static struct up_locality *up_pick_locality(struct up_priority *pr)
{
	struct lb_edf_entry *top;
	struct up_locality *loc;

	if (!pr->n_loc_edf)
		return NULL;
	top = &pr->loc_edf[0];
	loc = &pr->loc[top->idx];
	pr->loc_now = top->deadline;
	top->deadline = pr->loc_now + 1.0 / loc->eff_weight;
	top->order = pr->loc_order++;
	up_loc_sift(pr->loc_edf, pr->n_loc_edf, 0);
	return loc;
}

static struct up_host *up_pick_once(struct up_hostset *hs, struct lb_rng *rng, uint64_t h, uint32_t attempt,
				    uint64_t now_ms)
{
	const struct lb_config *lbc = &hs->cl->lb;
	struct up_priority *pr;
	uint32_t p, acc = 0, d;

	if (hs->n_prio == 0)
		return NULL;
	/* Envoy's choosePriority: hash % 100 + 1 against the cumulative loads */
	d = (uint32_t)(h % 100) + 1;
	for (p = 0; p + 1 < hs->n_prio; p++) {
		acc += hs->prio[p].load;
		if (d <= acc)
			break;
	}
	pr = &hs->prio[p];
	if (pr->panic)
		return lb_pool_pick_at(&pr->pool, lbc, rng, h, attempt, now_ms); /* all hosts */
	if (pr->n_loc_edf) {
		struct up_locality *loc = up_pick_locality(pr);

		if (loc && loc->pool && loc->pool->n)
			return lb_pool_pick_at(loc->pool, lbc, rng, h, attempt, now_ms);
	}
	return lb_pool_pick_at(&pr->pool, lbc, rng, h, attempt, now_ms);
}

struct up_host *up_pick(struct up_hostset *hs, struct lb_rng *rng, const uint64_t *hash, const struct up_avoid *avoid)
{
	return up_pick_at(hs, rng, hash, avoid, 0);
}

void up_hostset_stamp(struct up_hostset *hs, uint64_t now_ms)
{
	uint32_t i;

	for (i = 0; hs && i < hs->n; i++)
		if (!hs->hosts[i]->added_ms)
			hs->hosts[i]->added_ms = now_ms ? now_ms : 1;
}

struct up_host *up_pick_at(struct up_hostset *hs, struct lb_rng *rng, const uint64_t *hash,
			   const struct up_avoid *avoid, uint64_t now_ms)
{
	uint32_t attempt, max = avoid ? avoid->max_attempts : 0;
	struct up_host *h = NULL;

	for (attempt = 0; attempt <= max; attempt++) {
		uint64_t x = hash ? *hash : lb_rand(rng);
		size_t i;
		bool seen = false;

		h = up_pick_once(hs, rng, x, hash ? attempt : 0, now_ms);
		if (!h || !avoid)
			break;
		for (i = 0; i < avoid->n && !seen; i++)
			seen = avoid->hosts[i] == h;
		if (!seen)
			break;
	}
	return h;
}
