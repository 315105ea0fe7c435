/*
 * retry.c - Envoy's retry conditions and jittered exponential backoff
 * (retry.h).  Kept apart from proxy.c so they can be tested alone.
 */
#include "dataplane/retry.h"

bool retry_condition(const struct router_retry *rp, enum retry_failure kind, unsigned status, unsigned resp)
{
	uint32_t on = rp ? rp->on : 0;
	uint32_t i;

	if (!rp)
		return false;
	switch (kind) {
	case RETRY_F_CONNECT:
		/* Envoy counts a connect failure for connect-failure, reset,
		 * 5xx and gateway-error (and refused-stream, reset-before-request:
		 * nothing was sent) */
		return (on & (ROUTER_RETRY_CONNECT_FAILURE | ROUTER_RETRY_RESET | ROUTER_RETRY_5XX | ROUTER_RETRY_GATEWAY_ERROR |
			      ROUTER_RETRY_REFUSED_STREAM | ROUTER_RETRY_RESET_BEFORE_REQUEST)) != 0;
	case RETRY_F_REFUSED:
		/* Envoy's wouldRetryFromReset: a RemoteRefusedStreamReset is a
		 * reset (reset, 5xx, gateway-error) sent before any response, and
		 * the one refused-stream names */
		return (on & (ROUTER_RETRY_REFUSED_STREAM | ROUTER_RETRY_RESET | ROUTER_RETRY_5XX |
			      ROUTER_RETRY_GATEWAY_ERROR | ROUTER_RETRY_RESET_BEFORE_REQUEST)) != 0;
	case RETRY_F_RESET:
	case RETRY_F_TIMEOUT:
		return (on & (ROUTER_RETRY_RESET | ROUTER_RETRY_5XX | ROUTER_RETRY_GATEWAY_ERROR)) != 0;
	case RETRY_F_HEADERS:
	default:
		break;
	}
	if (resp & RETRY_RESP_OVERLOADED)
		return false;
	if (resp & RETRY_RESP_GRPC_MASK) {
		/* Envoy's RETRY_ON_GRPC_*: the response head's grpc-status */
		unsigned g = ((resp & RETRY_RESP_GRPC_MASK) >> RETRY_RESP_GRPC_SHIFT) - 1;

		if (((on & ROUTER_RETRY_GRPC_CANCELLED) && g == 1) || ((on & ROUTER_RETRY_GRPC_DEADLINE) && g == 4) ||
		    ((on & ROUTER_RETRY_GRPC_RESOURCE) && g == 8) || ((on & ROUTER_RETRY_GRPC_INTERNAL) && g == 13) ||
		    ((on & ROUTER_RETRY_GRPC_UNAVAILABLE) && g == 14))
			return true;
	}
	if (resp & RETRY_RESP_RATELIMITED)
		return (on & ROUTER_RETRY_ENVOY_RATELIMITED) != 0;
	if ((on & ROUTER_RETRY_5XX) && status >= 500 && status <= 599)
		return true;
	if ((on & ROUTER_RETRY_GATEWAY_ERROR) && status >= 502 && status <= 504)
		return true;
	if ((on & ROUTER_RETRY_RETRIABLE_4XX) && status == 409)
		return true;
	if (on & ROUTER_RETRY_STATUS_CODES)
		for (i = 0; i < rp->n_status_codes; i++)
			if (rp->status_codes[i] == status)
				return true;
	return false;
}

void retry_backoff_init(struct retry_backoff *b, uint64_t base_ms, uint64_t max_ms)
{
	b->base_ms = base_ms ? base_ms : 1;
	b->max_ms = max_ms < b->base_ms ? b->base_ms : max_ms;
	b->next_ms = b->base_ms;
}

uint64_t retry_backoff_next(struct retry_backoff *b, uint64_t rnd)
{
	uint64_t cur = b->next_ms;

	/* doubling stops at max / 2 (no overflow), then the interval is max */
	b->next_ms = b->next_ms < b->max_ms / 2 ? b->next_ms * 2 : b->max_ms;
	return rnd % cur;
}

unsigned retry_resp_grpc(const char *v, size_t len)
{
	unsigned g = 0;
	size_t i;

	if (!v || len == 0 || len > 2)
		return 0;
	for (i = 0; i < len; i++) {
		if (v[i] < '0' || v[i] > '9')
			return 0;
		g = g * 10 + (unsigned)(v[i] - '0');
	}
	return (g + 1) << RETRY_RESP_GRPC_SHIFT;
}
