/*
 * lb.c - load-balancing algorithms over one pool of hosts, and the
 * request hash of a route's hash policies.
 *
 * Each algorithm follows Envoy's implementation so that a mesh moving from
 * Envoy sidecars to meshproxy keeps its distribution (and, for RING_HASH
 * and MAGLEV, the same key -> host mapping for the same host set):
 *  - ROUND_ROBIN: a cursor when all weights are equal, else the EDF
 *    scheduler (deadline = now + 1/weight).
 *  - LEAST_REQUEST: power of choice_count choices by active requests when
 *    weights are equal, else EDF with weight / (active_rq + 1) (Envoy's
 *    active_request_bias 1.0).
 *  - RANDOM: uniform over the pool.
 *  - RING_HASH: xxHash64("ADDR:PORT_i") points, lower bound lookup.
 *  - MAGLEV: Envoy's weighted Maglev permutation fill.
 * Tables are built at configuration (or health change) time from an arena;
 * picks read them and never allocate.  xxHash comes from Debian's
 * libxxhash (the same XXH64 Envoy uses).
 */
#include "dataplane/lb.h"

#include "common/arena.h"

#include "envoy/config/route/v3/route_components.pb-c.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

uint64_t lb_xxhash64(const void *data, size_t len, uint64_t seed)
{
	return XXH64(data, len, seed);
}

/* ---------------------------------------------------------------- EDF */

static bool edf_less(const struct lb_edf_entry *a, const struct lb_edf_entry *b)
{
	if (a->deadline != b->deadline)
		return a->deadline < b->deadline;
	return a->order < b->order;
}

static void edf_sift_down(struct lb_edf_entry *h, uint32_t n, uint32_t i)
{
	for (;;) {
		uint32_t l = 2 * i + 1, r = l + 1, m = i;
		struct lb_edf_entry t;

		if (l < n && edf_less(&h[l], &h[m]))
			m = l;
		if (r < n && edf_less(&h[r], &h[m]))
			m = r;
		if (m == i)
			return;
		t = h[i];
		h[i] = h[m];
		h[m] = t;
		i = m;
	}
}

/* The root goes next; it is re-queued at now + 1/w(now), where w is the
 * host's weight at that moment, times scale (slow start), and divided by
 * its load for least request. */
static struct up_host *edf_pick_scaled(struct lb_pool *p, bool least_request, double scale)
{
	struct lb_edf_entry *top = &p->edf[0];
	struct up_host *h = p->hosts[top->idx];
	double w = p->weights[top->idx] * scale;

	p->edf_now = top->deadline;
	if (least_request)
		w /= (double)h->active_rq + 1.0;
	top->deadline = p->edf_now + 1.0 / w;
	top->order = p->edf_order++;
	edf_sift_down(p->edf, p->n, 0);
	return h;
}

/*
 * x^y for 0 < x <= 1 and y > 0 (slow start's time factor), as exp(y ln x),
 * without libm: pow() was the only reason meshproxy mapped libm.so (~0.3 MB
 * of RSS against DESIGN.md's 10 MB).  frexp/ldexp are in libc.  ln: x =
 * m 2^e with m in [sqrt(1/2), sqrt(2)), ln m = 2 atanh(s), s = (m-1)/(m+1),
 * |s| < 0.172, the series to s^27 (the next term < 1e-21); exp: z = k ln 2
 * + r, |r| <= ln 2 / 2, Taylor to r^18 (< 1e-22 relative): within a few ulp
 * of pow(), far below what a weight factor needs.
 */
static double lb_pow_unit(double x, double y)
{
	double s, s2, term, sum = 0, z, r, kf;
	int e, k, n;
	double m = frexp(x, &e);

	if (m < M_SQRT1_2) {
		m *= 2;
		e--;
	}
	s = (m - 1) / (m + 1);
	s2 = s * s;
	term = s;
	for (n = 1; n <= 27; n += 2) {
		sum += term / n;
		term *= s2;
	}
	z = y * (2 * sum + e * M_LN2);
	if (z < -1100)
		return 0; /* below the smallest double */
	kf = z / M_LN2;
	k = (int)(kf < 0 ? kf - 0.5 : kf + 0.5);
	r = z - k * M_LN2;
	sum = 1;
	term = 1;
	for (n = 1; n <= 18; n++) {
		term *= r / n;
		sum += term;
	}
	return ldexp(sum, k);
}

double lb_slow_start_factor(uint64_t age_ms, uint64_t window_ms, double aggression, double min)
{
	double tf, f;

	if (window_ms == 0 || age_ms >= window_ms)
		return 1.0;
	tf = (double)(age_ms ? age_ms : 1) / (double)window_ms;
	/* aggression <= 0 is invalid in Envoy (clamped, then asserted): linear */
	f = aggression > 0 && aggression != 1.0 ? lb_pow_unit(tf, 1.0 / aggression) : tf;
	return f > min ? f : min;
}

/* Slow start: EDF as edf_pick_scaled() with the picked host re-queued at its
 * weight scaled by its age factor now (Envoy's pickAndAdd with hostWeight
 * applying the slow start factor); hosts without a stamp are not young. */
static struct up_host *edf_pick_slow(struct lb_pool *p, const struct lb_config *cfg, bool least_request,
				     uint64_t now_ms)
{
	const struct up_host *h = p->hosts[p->edf[0].idx];
	double scale = 1.0;

	if (h->added_ms)
		scale = lb_slow_start_factor(now_ms > h->added_ms ? now_ms - h->added_ms : 0, cfg->slow_start_ms,
					     cfg->slow_start_aggression, cfg->slow_start_min);
	return edf_pick_scaled(p, least_request, scale);
}

/* True while some host of p is within its slow start window at now_ms. */
static bool pool_in_slow_start(struct lb_pool *p, const struct lb_config *cfg, uint64_t now_ms)
{
	uint32_t i;

	if (!p->slow || !now_ms)
		return false;
	if (!p->slow_known) {
		p->slow_until_ms = 0;
		for (i = 0; i < p->n; i++)
			if (p->hosts[i]->added_ms && p->hosts[i]->added_ms + cfg->slow_start_ms > p->slow_until_ms)
				p->slow_until_ms = p->hosts[i]->added_ms + cfg->slow_start_ms;
		p->slow_known = true;
	}
	return now_ms < p->slow_until_ms;
}

/* ---------------------------------------------------------------- ring hash */

struct ring_point {
	uint64_t hash;
	uint32_t idx;
};

static int ring_point_cmp(const void *a, const void *b, void *arg)
{
	const struct ring_point *x = a, *y = b;
	struct up_host *const *ring_sort_hosts = arg;

	if (x->hash != y->hash)
		return x->hash < y->hash ? -1 : 1;
	/* Envoy breaks hash ties by address */
	return strcmp(ring_sort_hosts[x->idx]->key, ring_sort_hosts[y->idx]->key);
}

static int ring_build(struct arena *a, const struct lb_config *cfg, struct lb_pool *p)
{
	double sum = 0, min_w = INFINITY, scale, current = 0, target = 0;
	uint64_t size, cap, k = 0, min = cfg->ring_min ? cfg->ring_min : LB_RING_MIN_DEFAULT;
	uint64_t max = cfg->ring_max ? cfg->ring_max : LB_RING_MAX_DEFAULT;
	struct ring_point *pts = NULL;
	char key[UP_KEY_MAX + 24];
	uint32_t i;
	int rc = -ENOMEM;

	for (i = 0; i < p->n; i++)
		sum += p->weights[i];
	for (i = 0; i < p->n; i++)
		if (p->weights[i] / sum < min_w)
			min_w = p->weights[i] / sum;
	scale = ceil(min_w * (double)min) / min_w;
	if (scale > (double)max)
		scale = (double)max; /* fmin() without libm (lb_pow_unit) */
	size = (uint64_t)ceil(scale);
	cap = size + p->n + 1;
	pts = malloc(cap * sizeof(*pts));
	if (!pts)
		goto out;
	for (i = 0; i < p->n; i++) {
		const struct up_host *h = p->hosts[i];
		uint64_t j = 0;

		memcpy(key, h->key, h->key_len);
		key[h->key_len] = '_';
		target += scale * (p->weights[i] / sum);
		while (current < target && k < cap) {
			int len = snprintf(key + h->key_len + 1, sizeof(key) - h->key_len - 1, "%llu",
					   (unsigned long long)j);

			pts[k].hash = XXH64(key, h->key_len + 1 + (size_t)len, 0);
			pts[k].idx = i;
			k++;
			j++;
			current += 1;
		}
	}
	qsort_r(pts, k, sizeof(*pts), ring_point_cmp, p->hosts);
	p->ring_hash = arena_calloc(a, k ? k : 1, sizeof(*p->ring_hash));
	p->ring_idx = arena_calloc(a, k ? k : 1, sizeof(*p->ring_idx));
	if (!p->ring_hash || !p->ring_idx)
		goto out;
	for (i = 0; i < k; i++) {
		p->ring_hash[i] = pts[i].hash;
		p->ring_idx[i] = pts[i].idx;
	}
	p->ring_n = k;
	rc = 0;
out:
	free(pts);
	return rc;
}

static struct up_host *ring_pick(const struct lb_pool *p, uint64_t h, uint32_t attempt)
{
	uint64_t lo = 0, hi = p->ring_n;

	if (!p->ring_n)
		return NULL;
	/* the first point at or after h, wrapping to the first */
	while (lo < hi) {
		uint64_t mid = lo + (hi - lo) / 2;

		if (p->ring_hash[mid] < h)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == p->ring_n)
		lo = 0;
	return p->hosts[p->ring_idx[(lo + attempt) % p->ring_n]];
}

/* ---------------------------------------------------------------- maglev */

struct maglev_entry {
	uint64_t offset, skip, next;
	double weight, target;
	uint32_t idx;
};

static int maglev_entry_cmp(const void *a, const void *b, void *arg)
{
	const struct maglev_entry *x = a, *y = b;
	struct up_host *const *maglev_sort_hosts = arg;

	return strcmp(maglev_sort_hosts[x->idx]->key, maglev_sort_hosts[y->idx]->key);
}

static int maglev_build(struct arena *a, const struct lb_config *cfg, struct lb_pool *p)
{
	uint64_t m = cfg->maglev_size ? cfg->maglev_size : LB_MAGLEV_SIZE_DEFAULT, filled = 0, j;
	struct maglev_entry *e = NULL;
	double sum = 0, max_w = 0;
	uint32_t i, iteration;
	int rc = -ENOMEM;

	/* slots hold 16-bit host indexes (a quarter of the 8-byte pointers
	 * Envoy keeps per slot); UINT16_MAX marks a free slot */
	if (p->n >= m || p->n >= UINT16_MAX)
		return -EINVAL;
	e = calloc(p->n, sizeof(*e));
	p->maglev = arena_calloc(a, m, sizeof(*p->maglev));
	if (!e || !p->maglev)
		goto out;
	for (i = 0; i < p->n; i++)
		sum += p->weights[i];
	for (i = 0; i < p->n; i++) {
		const struct up_host *h = p->hosts[i];

		e[i].idx = i;
		e[i].offset = XXH64(h->key, h->key_len, 0) % m;
		e[i].skip = XXH64(h->key, h->key_len, 1) % (m - 1) + 1;
		e[i].weight = p->weights[i] / sum;
		if (e[i].weight > max_w)
			max_w = e[i].weight;
	}
	qsort_r(e, p->n, sizeof(*e), maglev_entry_cmp, p->hosts);
	for (j = 0; j < m; j++)
		p->maglev[j] = UINT16_MAX;
	for (iteration = 1; filled < m; iteration++) {
		for (i = 0; i < p->n && filled < m; i++) {
			struct maglev_entry *x = &e[i];
			uint64_t c;

			/* a host of max weight takes a slot every iteration, one
			 * of a third of it every third iteration */
			if ((double)iteration * x->weight < x->target)
				continue;
			x->target += max_w;
			c = (x->offset + x->skip * x->next) % m;
			while (p->maglev[c] != UINT16_MAX) {
				x->next++;
				c = (x->offset + x->skip * x->next) % m;
			}
			p->maglev[c] = (uint16_t)x->idx;
			x->next++;
			filled++;
		}
	}
	p->maglev_n = m;
	rc = 0;
out:
	free(e);
	return rc;
}

static struct up_host *maglev_pick(const struct lb_pool *p, uint64_t h, uint32_t attempt)
{
	if (!p->maglev_n)
		return NULL;
	/* a retry host predicate re-pick moves the hash far away */
	if (attempt > 0)
		h ^= ~0ull - attempt + 1;
	return p->hosts[p->maglev[h % p->maglev_n]];
}

/* ---------------------------------------------------------------- pools */

int lb_pool_build(struct arena *a, const struct lb_config *cfg, struct up_host **hosts, const double *weights,
		  uint32_t n, uint64_t seed, struct lb_pool *p)
{
	uint32_t i;
	int rc = 0;

	memset(p, 0, sizeof(*p));
	p->hosts = hosts;
	p->n = n;
	p->rr = (uint32_t)seed;
	if (n == 0)
		goto out;
	p->weights = arena_calloc(a, n, sizeof(*p->weights));
	if (!p->weights) {
		rc = -ENOMEM;
		goto out;
	}
	for (i = 0; i < n; i++) {
		p->weights[i] = weights ? weights[i] : (double)hosts[i]->weight;
		if (p->weights[i] <= 0)
			p->weights[i] = 1;
		if (p->weights[i] != p->weights[0])
			p->weighted = true;
	}
	switch (cfg->kind) {
	case LB_ROUND_ROBIN:
	case LB_LEAST_REQUEST:
		p->slow = cfg->slow_start_ms > 0;
		if (!p->weighted && !p->slow)
			break;
		p->edf = arena_calloc(a, n, sizeof(*p->edf));
		if (!p->edf) {
			rc = -ENOMEM;
			goto out;
		}
		/* all start at 1/w: already a heap ordered by deadline once sifted */
		for (i = 0; i < n; i++) {
			p->edf[i].deadline = 1.0 / p->weights[i];
			p->edf[i].order = p->edf_order++;
			p->edf[i].idx = i;
		}
		for (i = n / 2 + 1; i-- > 0;)
			edf_sift_down(p->edf, n, i);
		break;
	case LB_RANDOM:
		break;
	case LB_RING_HASH:
		rc = ring_build(a, cfg, p);
		break;
	case LB_MAGLEV:
		rc = maglev_build(a, cfg, p);
		break;
	}
out:
	return rc;
}

struct up_host *lb_pool_pick(struct lb_pool *p, const struct lb_config *cfg, struct lb_rng *rng, uint64_t hash,
			     uint32_t attempt)
{
	return lb_pool_pick_at(p, cfg, rng, hash, attempt, 0);
}

struct up_host *lb_pool_pick_at(struct lb_pool *p, const struct lb_config *cfg, struct lb_rng *rng, uint64_t hash,
				uint32_t attempt, uint64_t now_ms)
{
	struct up_host *best;
	uint32_t i, k;

	if (p->n == 0)
		return NULL;
	switch (cfg->kind) {
	case LB_ROUND_ROBIN:
		if (pool_in_slow_start(p, cfg, now_ms))
			return edf_pick_slow(p, cfg, false, now_ms);
		if (p->weighted)
			return edf_pick_scaled(p, false, 1.0);
		return p->hosts[p->rr++ % p->n];
	case LB_LEAST_REQUEST:
		if (pool_in_slow_start(p, cfg, now_ms))
			return edf_pick_slow(p, cfg, true, now_ms);
		if (p->weighted)
			return edf_pick_scaled(p, true, 1.0);
		k = cfg->choice_count ? cfg->choice_count : LB_CHOICE_COUNT_DEFAULT;
		best = p->hosts[lb_rand(rng) % p->n];
		for (i = 1; i < k; i++) {
			struct up_host *h = p->hosts[lb_rand(rng) % p->n];

			if (h->active_rq < best->active_rq)
				best = h;
		}
		return best;
	case LB_RANDOM:
		return p->hosts[lb_rand(rng) % p->n];
	case LB_RING_HASH:
		return ring_pick(p, hash, attempt);
	case LB_MAGLEV:
		return maglev_pick(p, hash, attempt);
	}
	return NULL;
}

/* ---------------------------------------------------------------- request hash */

int lb_hash_compile(struct arena *a, const Envoy__Config__Route__V3__RouteAction__HashPolicy *const *hp, size_t n,
		    char *err, size_t cap, struct lb_hash **out)
{
	struct lb_hash *h = arena_alloc(a, sizeof(*h));
	size_t i, j;
	int rc = -ENOMEM;

	*out = NULL;
	if (!h || (n && !(h->v = arena_calloc(a, n, sizeof(*h->v)))))
		goto out;
	for (i = 0; i < n; i++) {
		const Envoy__Config__Route__V3__RouteAction__HashPolicy *p = hp[i];
		struct lb_hash_policy *d = &h->v[h->n];
		const char *name = NULL;

		d->terminal = p->terminal;
		switch (p->policy_specifier_case) {
		case ENVOY__CONFIG__ROUTE__V3__ROUTE_ACTION__HASH_POLICY__POLICY_SPECIFIER_HEADER:
			d->kind = LB_HASH_HEADER;
			name = p->header->header_name;
			if (p->header->regex_rewrite) {
				/* needs the RE2 wrapper (pxroute): refuse rather than hash differently */
				snprintf(err, cap, "hash_policy[%zu]: header regex_rewrite is not supported", i);
				rc = -EINVAL;
				goto out;
			}
			break;
		case ENVOY__CONFIG__ROUTE__V3__ROUTE_ACTION__HASH_POLICY__POLICY_SPECIFIER_COOKIE:
			d->kind = LB_HASH_COOKIE;
			name = p->cookie->name;
			if (p->cookie->ttl) {
				d->has_ttl = true;
				d->ttl_s = p->cookie->ttl->seconds > 0 ? (uint64_t)p->cookie->ttl->seconds : 0;
			}
			d->path = arena_strdup(a, p->cookie->path ? p->cookie->path : "");
			if (!d->path)
				goto out;
			break;
		case ENVOY__CONFIG__ROUTE__V3__ROUTE_ACTION__HASH_POLICY__POLICY_SPECIFIER_CONNECTION_PROPERTIES:
			if (!p->connection_properties->source_ip)
				continue;
			d->kind = LB_HASH_SOURCE_IP;
			break;
		case ENVOY__CONFIG__ROUTE__V3__ROUTE_ACTION__HASH_POLICY__POLICY_SPECIFIER_QUERY_PARAMETER:
			d->kind = LB_HASH_QUERY;
			name = p->query_parameter->name;
			break;
		case ENVOY__CONFIG__ROUTE__V3__ROUTE_ACTION__HASH_POLICY__POLICY_SPECIFIER_FILTER_STATE:
			/* no filter state in meshproxy: never produces a hash */
			continue;
		default:
			snprintf(err, cap, "hash_policy[%zu]: no policy specifier", i);
			rc = -EINVAL;
			goto out;
		}
		if (name) {
			char *c = arena_strdup(a, name);

			if (!c)
				goto out;
			if (d->kind == LB_HASH_HEADER)
				for (j = 0; c[j]; j++)
					c[j] = (char)tolower((unsigned char)c[j]);
			d->name = c;
			d->name_len = strlen(c);
		}
		h->n++;
	}
	*out = h;
	rc = 0;
out:
	return rc;
}

/* Header values: sorted, then chained XXH64 (each value seeds the next),
 * as Envoy's HashUtil::xxHash64(Span) so that repeated headers hash the
 * same whatever their order. */
#define LB_HASH_HEADER_VALUES 8

static bool hash_header(const struct lb_hash_policy *p, const struct lb_hash_request *rq, uint64_t *out)
{
	const char *v[LB_HASH_HEADER_VALUES];
	size_t vl[LB_HASH_HEADER_VALUES], n, i, j;
	uint64_t h = 0;

	if (!rq->header)
		return false;
	n = rq->header(rq->ctx, p->name, p->name_len, v, vl, LB_HASH_HEADER_VALUES);
	if (n == 0)
		return false;
	if (n > LB_HASH_HEADER_VALUES)
		n = LB_HASH_HEADER_VALUES;
	for (i = 1; i < n; i++) { /* insertion sort: n is tiny */
		for (j = i; j > 0; j--) {
			size_t ml = vl[j - 1] < vl[j] ? vl[j - 1] : vl[j];
			int c = memcmp(v[j - 1], v[j], ml);
			const char *tv;
			size_t tl;

			if (c < 0 || (c == 0 && vl[j - 1] <= vl[j]))
				break;
			tv = v[j];
			v[j] = v[j - 1];
			v[j - 1] = tv;
			tl = vl[j];
			vl[j] = vl[j - 1];
			vl[j - 1] = tl;
		}
	}
	for (i = 0; i < n; i++)
		h = XXH64(v[i], vl[i], h);
	*out = h;
	return true;
}

bool lb_hash_compute(const struct lb_hash *h, const struct lb_hash_request *rq, uint64_t *hash,
		     struct lb_hash_cookie *cookie)
{
	static const char hex[] = "0123456789abcdef";
	bool have = false;
	uint64_t acc = 0;
	size_t i;

	if (cookie)
		cookie->set = false;
	for (i = 0; h && i < h->n; i++) {
		const struct lb_hash_policy *p = &h->v[i];
		const char *v = NULL;
		size_t len = 0;
		uint64_t nh = 0;
		bool got = false;

		switch (p->kind) {
		case LB_HASH_HEADER:
			got = hash_header(p, rq, &nh);
			break;
		case LB_HASH_COOKIE:
			if (rq->cookie)
				v = rq->cookie(rq->ctx, p->name, p->name_len, &len);
			/* Envoy's parseCookieValue strips a quoted value's quotes:
			 * the cookie we set is quoted and must hash as generated */
			if (v && len >= 2 && v[0] == '"' && v[len - 1] == '"') {
				v++;
				len -= 2;
			}
			if (v && len) {
				nh = XXH64(v, len, 0);
				got = true;
			} else if (p->has_ttl && cookie && !cookie->set) {
				uint64_t g = XXH64(rq->conn_addrs ? rq->conn_addrs : "", rq->conn_addrs_len, 0);
				int k;

				for (k = 15; k >= 0; k--, g >>= 4)
					cookie->value[k] = hex[g & 15];
				cookie->value[16] = '\0';
				cookie->set = true;
				cookie->name = p->name;
				cookie->name_len = p->name_len;
				cookie->path = p->path;
				cookie->ttl_s = p->ttl_s;
				nh = XXH64(cookie->value, 16, 0);
				got = true;
			}
			break;
		case LB_HASH_SOURCE_IP:
			if (rq->source_ip && rq->source_ip_len) {
				nh = XXH64(rq->source_ip, rq->source_ip_len, 0);
				got = true;
			}
			break;
		case LB_HASH_QUERY:
			if (rq->query)
				v = rq->query(rq->ctx, p->name, p->name_len, &len);
			if (v) {
				nh = XXH64(v, len, 0);
				got = true;
			}
			break;
		}
		if (got) {
			/* rotate so that duplicate policies do not cancel out */
			acc = (have ? ((acc << 1) | (acc >> 63)) : 0) ^ nh;
			have = true;
		}
		if (p->terminal && have)
			break;
	}
	if (have)
		*hash = acc;
	return have;
}
