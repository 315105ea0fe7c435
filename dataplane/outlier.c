/*
 * outlier.c - outlier detection (see outlier.h): Envoy's
 * DetectorImpl / DetectorHostMonitorImpl for the consecutive-error
 * detectors, the ejection time backoff and the ejection cap.
 */
#include "dataplane/outlier.h"

#include "dataplane/lb.h"
#include "dataplane/upstream.h"

#include "envoy/config/cluster/v3/outlier_detection.pb-c.h"
#include "google/protobuf/duration.pb-c.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static uint64_t od_ms(const Google__Protobuf__Duration *d, uint64_t def)
{
	if (!d)
		return def;
	if (d->seconds < 0)
		return 0;
	return (uint64_t)d->seconds * 1000u + (uint64_t)(d->nanos > 0 ? d->nanos : 0) / 1000000u;
}

#define OD_U32(m, f, def) ((m)->f ? (m)->f->value : (def))

int outlier_config_init(struct outlier_config *cfg, const Envoy__Config__Cluster__V3__OutlierDetection *m, char *err,
			size_t cap)
{
	int rc = 0;

	memset(cfg, 0, sizeof(*cfg));
	if (!m)
		goto out;
	cfg->enabled = true;
	cfg->consecutive_5xx = OD_U32(m, consecutive_5xx, OUTLIER_DEFAULT_CONSECUTIVE);
	cfg->consecutive_gw = OD_U32(m, consecutive_gateway_failure, OUTLIER_DEFAULT_CONSECUTIVE);
	cfg->consecutive_local = OD_U32(m, consecutive_local_origin_failure, OUTLIER_DEFAULT_CONSECUTIVE);
	cfg->enforcing_5xx = OD_U32(m, enforcing_consecutive_5xx, 100);
	cfg->enforcing_gw = OD_U32(m, enforcing_consecutive_gateway_failure, 0);
	cfg->enforcing_local = OD_U32(m, enforcing_consecutive_local_origin_failure, 100);
	cfg->max_ejection_percent = OD_U32(m, max_ejection_percent, OUTLIER_DEFAULT_MAX_EJECTION_PCT);
	if (cfg->max_ejection_percent > 100)
		cfg->max_ejection_percent = 100;
	cfg->split_local = m->split_external_local_origin_errors;
	cfg->always_eject_one = m->always_eject_one_host && m->always_eject_one_host->value;
	cfg->interval_ms = od_ms(m->interval, OUTLIER_DEFAULT_INTERVAL_MS);
	cfg->base_ejection_ms = od_ms(m->base_ejection_time, OUTLIER_DEFAULT_BASE_EJECTION_MS);
	cfg->max_ejection_ms = od_ms(m->max_ejection_time, OUTLIER_DEFAULT_MAX_EJECTION_MS);
	if (cfg->interval_ms == 0) {
		snprintf(err, cap, "outlier_detection.interval must be > 0");
		rc = -EINVAL;
		goto out;
	}
	if (cfg->enforcing_5xx > 100 || cfg->enforcing_gw > 100 || cfg->enforcing_local > 100) {
		snprintf(err, cap, "outlier_detection: enforcing_* percentages must be <= 100");
		rc = -EINVAL;
		goto out;
	}
	/* Envoy: max_ejection_time must be >= base_ejection_time when both are set */
	if (m->max_ejection_time && m->base_ejection_time && cfg->max_ejection_ms < cfg->base_ejection_ms) {
		snprintf(err, cap, "outlier_detection.max_ejection_time is below base_ejection_time");
		rc = -EINVAL;
		goto out;
	}
	/* success rate (default enforcing 100!) and failure percentage are not
	 * implemented: refuse a config that would rely on them */
	if (OD_U32(m, enforcing_success_rate, 100) > 0 ||
	    (cfg->split_local && OD_U32(m, enforcing_local_origin_success_rate, 100) > 0)) {
		snprintf(err, cap, "outlier_detection: success-rate ejection is not supported (set enforcing_success_rate "
				   "and enforcing_local_origin_success_rate to 0)");
		rc = -ENOTSUP;
		goto out;
	}
	if (m->failure_percentage_threshold &&
	    (OD_U32(m, enforcing_failure_percentage, 0) > 0 || OD_U32(m, enforcing_failure_percentage_local_origin, 0) > 0)) {
		snprintf(err, cap, "outlier_detection: failure-percentage ejection is not supported");
		rc = -ENOTSUP;
		goto out;
	}
out:
	if (rc < 0)
		memset(cfg, 0, sizeof(*cfg));
	return rc;
}

uint32_t outlier_ejected_count(const struct up_hostset *hs)
{
	uint32_t i, n = 0;

	for (i = 0; i < hs->n; i++)
		n += hs->hosts[i]->ejected ? 1 : 0;
	return n;
}

/* Envoy's DetectorImpl::ejectHost: the cap first (max_ejection_percent
 * of all the cluster's hosts, counting this one; always_eject_one lets a
 * first one through), then the detector's enforcement draw. */
static int od_eject(struct up_hostset *hs, struct up_host *h, uint32_t enforcing, uint64_t now, struct lb_rng *rng)
{
	const struct outlier_config *c = &hs->cl->od;
	uint32_t active = outlier_ejected_count(hs);
	double pct;
	int rc;

	if (h->ejected || hs->n == 0)
		return 0;
	pct = 100.0 * (active + 1) / hs->n;
	if (!(pct <= c->max_ejection_percent || (c->always_eject_one && active == 0)))
		return 0;
	if (enforcing < 100 && (uint32_t)(lb_rand(rng) % 100) >= enforcing)
		return 0;
	h->ejected = 1;
	h->od.num_ejections++;
	h->od.ejected_at_ms = now;
	/* grow the backoff while base x backoff stays under max (+ one base) */
	if ((uint64_t)h->od.backoff * c->base_ejection_ms < c->max_ejection_ms + c->base_ejection_ms)
		h->od.backoff++;
	rc = up_hostset_refresh(hs);
	return rc < 0 ? rc : 1;
}

static bool od_is_gateway(unsigned status)
{
	return status == 502 || status == 503 || status == 504;
}

/* Envoy's putHttpResponseCode: 5xx counts (gateway errors also on their
 * own counter); anything else resets both.  A detector fires when its
 * counter reaches the threshold exactly, so it fires once per streak. */
static int od_http(struct up_hostset *hs, struct up_host *h, unsigned status, uint64_t now, struct lb_rng *rng)
{
	const struct outlier_config *c = &hs->cl->od;
	int rc = 0, r;

	if (status < 500 || status > 599) {
		h->od.consecutive_5xx = 0;
		h->od.consecutive_gw = 0;
		return 0;
	}
	if (od_is_gateway(status)) {
		if (++h->od.consecutive_gw == c->consecutive_gw && c->consecutive_gw > 0) {
			r = od_eject(hs, h, c->enforcing_gw, now, rng);
			if (r != 0)
				rc = r;
		}
	} else {
		h->od.consecutive_gw = 0;
	}
	if (++h->od.consecutive_5xx == c->consecutive_5xx && c->consecutive_5xx > 0) {
		r = od_eject(hs, h, c->enforcing_5xx, now, rng);
		if (r != 0)
			rc = r;
	}
	return rc;
}

int outlier_report_http(struct up_hostset *hs, struct up_host *h, unsigned status, uint64_t now_ms, struct lb_rng *rng)
{
	if (!hs->cl->od.enabled)
		return 0;
	return od_http(hs, h, status, now_ms, rng);
}

int outlier_report_local(struct up_hostset *hs, struct up_host *h, enum outlier_local ev, uint64_t now_ms,
			 struct lb_rng *rng)
{
	const struct outlier_config *c = &hs->cl->od;

	if (!c->enabled)
		return 0;
	if (!c->split_local) {
		switch (ev) {
		case OUTLIER_CONNECT_FAILED:
		case OUTLIER_RESET:
			return od_http(hs, h, 503, now_ms, rng);
		case OUTLIER_TIMEOUT:
			return od_http(hs, h, 504, now_ms, rng);
		case OUTLIER_CONNECT_SUCCESS:
			return 0;
		}
		return 0;
	}
	if (ev == OUTLIER_CONNECT_SUCCESS) {
		h->od.consecutive_local = 0;
		return 0;
	}
	if (++h->od.consecutive_local == c->consecutive_local && c->consecutive_local > 0)
		return od_eject(hs, h, c->enforcing_local, now_ms, rng);
	return 0;
}

int outlier_tick(struct up_hostset *hs, uint64_t now_ms)
{
	const struct outlier_config *c = &hs->cl->od;
	uint32_t i;
	int n = 0, rc;

	if (!c->enabled)
		return 0;
	for (i = 0; i < hs->n; i++) {
		struct up_host *h = hs->hosts[i];
		uint64_t t;

		if (!h->ejected) {
			/* healthy for an interval since the last unejection: the
			 * next ejection will be shorter */
			if (h->od.unejected_at_ms && now_ms - h->od.unejected_at_ms >= c->interval_ms && h->od.backoff > 0) {
				h->od.backoff--;
				h->od.unejected_at_ms = now_ms;
			}
			continue;
		}
		t = (uint64_t)h->od.backoff * c->base_ejection_ms;
		if (t > c->max_ejection_ms)
			t = c->max_ejection_ms;
		if (now_ms - h->od.ejected_at_ms < t)
			continue;
		h->ejected = 0;
		h->od.consecutive_5xx = 0;
		h->od.consecutive_gw = 0;
		h->od.consecutive_local = 0;
		h->od.unejected_at_ms = now_ms ? now_ms : 1;
		n++;
	}
	if (n > 0) {
		rc = up_hostset_refresh(hs);
		if (rc < 0)
			return rc;
	}
	return n;
}
