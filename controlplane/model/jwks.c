/*
 * jwks.c - meshd's JWKS cache and fetch thread (see jwks.h).
 *
 * One mutex guards a small table of URIs (body, last fetch, whether a
 * fetch ever succeeded); the fetch thread sleeps on a condition variable
 * until a URI is due or a new one is registered, fetches outside the lock,
 * and stores the result under it.  A body counts as a JWKS when it parses
 * as JSON with a "keys" array (Istio checks the same before caching).
 */
#include "controlplane/model/jwks.h"

#include "common/arena.h"
#include "common/buf.h"
#include "common/duration.h"
#include "common/err.h"
#include "common/json.h"
#include "common/log.h"

#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

const char JWKS_FAKE[] =
	"{\"keys\":[{\"e\":\"AQAB\",\"kid\":\"meshd-fallback\",\"kty\":\"RSA\",\"n\":\"vcoHXajuylGO4On2UM_RJgo91P7NN"
	"289xIsD0DDB3jZ2vnYMAwmo3iu4Pnc_DaQ9h1htACezcu9yzvba55XHH_-tUfLyEnuVWiIsYBgkA_gqu7fO45t9pPemQYXovK69oZZnm"
	"1l0IF3BvWVfQZFsJYUa17bKvwjGaAxQSXGqHD8N9pzdJRM3GI5dA0npmbnkDbF4aQIcw-w1HxVfTsi_2JXDC_Kb29zifpAcisGTOaGR_"
	"ww3gxd2NbdSFMOBWz3-YptNkVE7uJqSe8UT976_6yVrbPIETOUJLCebI2UxT_opOSZ2smboOF_TtcCSfe1-WY7irSv5LGqOLPadBUqBiw"
	"\"}]}";

struct jwks__entry {
	char *uri;
	char *body;                  /* last good JWKS; NULL: never fetched */
	int64_t next_ns;             /* monotonic time of the next fetch; 0: now */
	unsigned fails;              /* failed fetches in a row (backoff while never fetched) */
};

static struct {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct jwks__entry v[JWKS_MAX_URIS];
	size_t n;
	bool running, stop;
	pthread_t th;
	void (*changed)(void *);
	void *ctx;
	int64_t refresh_ns;
} jwks__g = { .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER };

static int64_t jwks__now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Entries for an issuer without jwksUri are keyed "openid:ISSUER" and
 * resolved through the issuer's OpenID discovery document. */
#define JWKS_OPENID "openid:"

static char *jwks__get(const char *key, struct arena *a)
{
	char *out = NULL;
	size_t i;

	pthread_mutex_lock(&jwks__g.mu);
	for (i = 0; i < jwks__g.n && strcmp(jwks__g.v[i].uri, key); i++)
		;
	if (i == jwks__g.n && jwks__g.n < JWKS_MAX_URIS) {
		char *u = strdup(key);
		if (u) {
			jwks__g.v[jwks__g.n].uri = u;
			jwks__g.v[jwks__g.n].body = NULL;
			jwks__g.v[jwks__g.n].next_ns = 0;
			jwks__g.v[jwks__g.n].fails = 0;
			jwks__g.n++;
			pthread_cond_signal(&jwks__g.cv);
		}
	}
	out = arena_strdup(a, i < jwks__g.n && jwks__g.v[i].body ? jwks__g.v[i].body : JWKS_FAKE);
	pthread_mutex_unlock(&jwks__g.mu);
	return out;
}

char *jwks_resolver_get(const char *uri, struct arena *a)
{
	return jwks__get(uri, a);
}

char *jwks_resolver_get_openid(const char *issuer, struct arena *a)
{
	char key[2048];

	if (strncmp(issuer, "http://", 7) && strncmp(issuer, "https://", 8))
		return arena_strdup(a, JWKS_FAKE);
	if ((size_t)snprintf(key, sizeof(key), JWKS_OPENID "%s", issuer) >= sizeof(key))
		return arena_strdup(a, JWKS_FAKE);
	return jwks__get(key, a);
}

static size_t jwks__write(char *p, size_t size, size_t n, void *ud)
{
	struct mesh_buf *b = ud;

	return mesh_buf_append(b, p, size * n) < 0 ? 0 : size * n;
}

/* GET uri into b (capped); 0 or -EIO (logged). */
static int jwks__get_url(const char *uri, struct mesh_buf *b)
{
	CURL *h = curl_easy_init();
	CURLcode cc;

	if (!h)
		return -ENOMEM;
	curl_easy_setopt(h, CURLOPT_URL, uri);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_TIMEOUT, (long)JWKS_FETCH_TIMEOUT_S);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_FAILONERROR, 1L);
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
	curl_easy_setopt(h, CURLOPT_MAXREDIRS, 3L);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, jwks__write);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, b);
	cc = curl_easy_perform(h);
	curl_easy_cleanup(h);
	if (cc != CURLE_OK) {
		log_warn("jwks", "fetching %s failed: %s", uri, curl_easy_strerror(cc));
		return -EIO;
	}
	return 0;
}

/* The JWKS of key (a jwksUri, or "openid:ISSUER": Istio's
 * resolveJwksURIUsingOpenID, ISSUER/.well-known/openid-configuration's
 * jwks_uri); 0 and *out (malloc'd) when the body is a JWKS. */
static int jwks__fetch(const char *key, char **out)
{
	struct mesh_buf b;
	struct json_value *doc = NULL;
	const struct json_value *keys;
	char *uri = NULL;
	int rc;

	*out = NULL;
	mesh_buf_init(&b, JWKS_MAX_BYTES);
	if (!strncmp(key, JWKS_OPENID, strlen(JWKS_OPENID))) {
		const char *iss = key + strlen(JWKS_OPENID), *ju;
		size_t n = strlen(iss);
		struct mesh_buf ub;

		while (n && iss[n - 1] == '/')
			n--;
		mesh_buf_init(&ub, 4096);
		mesh_buf_printf(&ub, "%.*s/.well-known/openid-configuration", (int)n, iss);
		rc = ub.err ? -ENOMEM : jwks__get_url(ub.data, &b);
		mesh_buf_cleanup(&ub);
		if (rc < 0)
			goto out;
		ju = json_parse(b.data ? b.data : "", b.len, &doc) < 0 ? NULL : json_get_str(doc, "jwks_uri");
		if (!ju || !(uri = strdup(ju))) {
			log_warn("jwks", "%s: no jwks_uri in its OpenID discovery document", iss);
			rc = -EIO;
			goto out;
		}
		json_free(doc);
		doc = NULL;
		mesh_buf_reset(&b);
	}
	rc = jwks__get_url(uri ? uri : key, &b);
	if (rc < 0)
		goto out;
	if (json_parse(b.data ? b.data : "", b.len, &doc) < 0 || !(keys = json_get(doc, "keys")) ||
	    keys->type != JSON_ARRAY) {
		log_warn("jwks", "%s did not answer a JSON Web Key Set", uri ? uri : key);
		rc = -EIO;
		goto out;
	}
	*out = mesh_buf_take(&b, NULL);
	rc = *out ? 0 : -ENOMEM;
out:
	free(uri);
	json_free(doc);
	mesh_buf_cleanup(&b);
	return rc;
}

static void *jwks__thread(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&jwks__g.mu);
	while (!jwks__g.stop) {
		int64_t now = jwks__now(), next = now + jwks__g.refresh_ns;
		char *uri = NULL, *body = NULL;
		size_t i;

		for (i = 0; i < jwks__g.n; i++) {
			if (jwks__g.v[i].next_ns <= now) {
				uri = strdup(jwks__g.v[i].uri);
				break;
			}
			if (jwks__g.v[i].next_ns < next)
				next = jwks__g.v[i].next_ns;
		}
		if (!uri) {
			struct timespec ts;
			int64_t wait = next - now, rt;
			clock_gettime(CLOCK_REALTIME, &ts);
			rt = (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec + (wait > 0 ? wait : 0);
			ts.tv_sec = rt / 1000000000LL;
			ts.tv_nsec = rt % 1000000000LL;
			pthread_cond_timedwait(&jwks__g.cv, &jwks__g.mu, &ts);
			continue;
		}
		pthread_mutex_unlock(&jwks__g.mu);
		(void)jwks__fetch(uri, &body);
		pthread_mutex_lock(&jwks__g.mu);
		for (i = 0; i < jwks__g.n && strcmp(jwks__g.v[i].uri, uri); i++)
			;
		if (i < jwks__g.n) {
			struct jwks__entry *e = &jwks__g.v[i];
			bool changed = body && (!e->body || strcmp(e->body, body));
			/* a URI never fetched is retried sooner than a refresh: 1 s,
			 * doubling to 64 s (never past the refresh interval) */
			int64_t retry = 1000000000LL << (e->fails < 6 ? e->fails : 6);
			e->fails = body ? 0 : e->fails + 1;
			e->next_ns = jwks__now() + (body || e->body || retry > jwks__g.refresh_ns ? jwks__g.refresh_ns : retry);
			if (changed) {
				free(e->body);
				e->body = body;
				body = NULL;
				log_info("jwks", "fetched the JWKS of %s", uri);
				if (jwks__g.changed) {
					void (*cb)(void *) = jwks__g.changed;
					void *ctx = jwks__g.ctx;
					pthread_mutex_unlock(&jwks__g.mu);
					cb(ctx);
					pthread_mutex_lock(&jwks__g.mu);
				}
			}
		}
		free(body);
		free(uri);
	}
	pthread_mutex_unlock(&jwks__g.mu);
	return NULL;
}

int jwks_resolver_start(void (*changed)(void *ctx), void *ctx)
{
	const char *env = getenv("PILOT_JWT_PUB_KEY_REFRESH_INTERVAL");
	int64_t ns = JWKS_REFRESH_DEFAULT_NS;
	int rc = 0;

	if (env && (mesh_duration_parse(env, &ns) < 0 || ns <= 0)) {
		log_warn("jwks", "PILOT_JWT_PUB_KEY_REFRESH_INTERVAL=%s is not a duration; using 20m", env);
		ns = JWKS_REFRESH_DEFAULT_NS;
	}
	pthread_mutex_lock(&jwks__g.mu);
	if (jwks__g.running) {
		rc = -EALREADY;
	} else {
		jwks__g.changed = changed;
		jwks__g.ctx = ctx;
		jwks__g.refresh_ns = ns;
		jwks__g.stop = false;
		rc = -pthread_create(&jwks__g.th, NULL, jwks__thread, NULL);
		jwks__g.running = rc == 0;
	}
	pthread_mutex_unlock(&jwks__g.mu);
	return rc;
}

void jwks_resolver_stop(void)
{
	bool join;
	size_t i;

	pthread_mutex_lock(&jwks__g.mu);
	join = jwks__g.running;
	jwks__g.stop = true;
	pthread_cond_signal(&jwks__g.cv);
	pthread_mutex_unlock(&jwks__g.mu);
	if (join)
		pthread_join(jwks__g.th, NULL);
	pthread_mutex_lock(&jwks__g.mu);
	for (i = 0; i < jwks__g.n; i++) {
		free(jwks__g.v[i].uri);
		free(jwks__g.v[i].body);
	}
	jwks__g.n = 0;
	jwks__g.running = false;
	pthread_mutex_unlock(&jwks__g.mu);
}
