/*
 * dns.c - see dns.h.  Each query is its own allocation holding glibc's
 * gaicb: glibc keeps it on its request list until its helper thread has
 * dequeued it, which happens a little after gai_error() stops saying
 * EAI_INPROGRESS (the result is stored first, the request dequeued under
 * glibc's lock after).  Freeing it in that window, and reusing the address
 * for the next query, corrupts glibc's list (seen here as gai_suspend()
 * spinning): a query is freed only once gai_cancel() answers EAI_ALLDONE
 * or EAI_CANCELED, glibc's own word that it no longer knows the gaicb.  A
 * query cancelled, timed out or answered stays on the list without a
 * callback until then.  (A query glibc cancelled before it ran keeps
 * gai_error() at EAI_INPROGRESS for ever: glibc does not store a result
 * for it, so only gai_cancel()'s answer tells.)
 */
#include "dataplane/dns.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct dns_query {
	struct dns_query *next, *prev;
	struct dns_resolver *r;
	struct gaicb cb;
	struct gaicb *v[1];
	struct addrinfo hints;
	enum dns_family fam;
	dns_cb fn;                   /* NULL: cancelled or answered (timed out), waiting for glibc */
	int gone;                    /* glibc no longer knows the gaicb (q_release): free it */
	void *arg;
	uint64_t start;              /* ev_now() when started */
	char name[DNS_NAME_MAX + 1];
};

struct dns_resolver {
	struct ev_loop *loop;
	struct ev_timer poll;
	uint64_t poll_ms;            /* the next poll's delay: doubles while nothing completes */
	uint64_t timeout_ms;
	struct dns_query head;       /* sentinel of the circular list of queries glibc still holds or that wait
	                              * for their callback */
	struct dns_stats st;
};

static void dns_poll(struct ev_loop *loop, struct ev_timer *t);

int dns_resolver_new(struct ev_loop *loop, uint64_t timeout_ms, struct dns_resolver **out)
{
	struct dns_resolver *r = calloc(1, sizeof(*r));

	*out = NULL;
	if (!r)
		return -ENOMEM;
	r->loop = loop;
	r->timeout_ms = timeout_ms ? timeout_ms : DNS_TIMEOUT_MS;
	r->head.next = r->head.prev = &r->head;
	r->poll_ms = DNS_POLL_MIN_MS;
	ev_timer_init(&r->poll, dns_poll, r);
	*out = r;
	return 0;
}

/* Asks glibc to let go of q (cancels it if it has not started; one that
 * is running or finished is left alone) and notes whether it has (see
 * above).  Returns q->gone. */
static int q_release(struct dns_query *q)
{
	int rc;

	if (!q->gone) {
		rc = gai_cancel(&q->cb);
		q->gone = rc == EAI_ALLDONE || rc == EAI_CANCELED;
	}
	return q->gone;
}

static void q_unlink_free(struct dns_query *q)
{
	q->prev->next = q->next;
	q->next->prev = q->prev;
	if (q->cb.ar_result)
		freeaddrinfo(q->cb.ar_result);
	free(q);
}

void dns_resolver_free(struct dns_resolver *r)
{
	struct dns_query *q;

	if (!r)
		return;
	ev_timer_cancel(r->loop, &r->poll);
	for (q = r->head.next; q != &r->head; q = q->next) {
		q->fn = NULL;
		q_release(q);
	}
	/* exiting: the one place a lookup is waited for (glibc's thread
	 * writes into the query until it is done) */
	while (r->head.next != &r->head) {
		struct timespec ts = { 0, 1000 * 1000 };

		q = r->head.next;
		if (!q->gone && (gai_error(&q->cb) == EAI_INPROGRESS || !q_release(q))) {
			nanosleep(&ts, NULL);
			continue;
		}
		q_unlink_free(q);
	}
	free(r);
}

static int addr_same(const struct dns_addr *a, const struct dns_addr *b)
{
	if (a->len != b->len || a->u.sa.sa_family != b->u.sa.sa_family)
		return 0;
	if (a->u.sa.sa_family == AF_INET)
		return a->u.in4.sin_addr.s_addr == b->u.in4.sin_addr.s_addr;
	return !memcmp(&a->u.in6.sin6_addr, &b->u.in6.sin6_addr, sizeof(a->u.in6.sin6_addr)) &&
	       a->u.in6.sin6_scope_id == b->u.in6.sin6_scope_id;
}

/* Append the addresses of family af in ai to out[*n..cap), skipping ones
 * already there. */
static void take_family(const struct addrinfo *ai, int af, struct dns_addr *out, size_t *n, size_t cap)
{
	for (; ai && *n < cap; ai = ai->ai_next) {
		struct dns_addr a;
		size_t i;

		if (ai->ai_family != af || !ai->ai_addr)
			continue;
		if ((af == AF_INET && ai->ai_addrlen < sizeof(a.u.in4)) ||
		    (af == AF_INET6 && ai->ai_addrlen < sizeof(a.u.in6)))
			continue;
		memset(&a, 0, sizeof(a));
		if (af == AF_INET) {
			a.u.in4.sin_family = AF_INET;
			a.u.in4.sin_addr = ((const struct sockaddr_in *)ai->ai_addr)->sin_addr;
			a.len = sizeof(a.u.in4);
		} else {
			a.u.in6.sin6_family = AF_INET6;
			a.u.in6.sin6_addr = ((const struct sockaddr_in6 *)ai->ai_addr)->sin6_addr;
			a.u.in6.sin6_scope_id = ((const struct sockaddr_in6 *)ai->ai_addr)->sin6_scope_id;
			a.len = sizeof(a.u.in6);
		}
		for (i = 0; i < *n && !addr_same(&out[i], &a); i++)
			;
		if (i == *n)
			out[(*n)++] = a;
	}
}

size_t dns_filter(const struct addrinfo *ai, enum dns_family fam, struct dns_addr *out, size_t cap)
{
	size_t n = 0;

	switch (fam) {
	case DNS_V4_ONLY:
		take_family(ai, AF_INET, out, &n, cap);
		break;
	case DNS_V6_ONLY:
		take_family(ai, AF_INET6, out, &n, cap);
		break;
	case DNS_V4_PREFERRED:
		take_family(ai, AF_INET, out, &n, cap);
		if (!n)
			take_family(ai, AF_INET6, out, &n, cap);
		break;
	case DNS_ALL:
		/* in the resolver's order, both families */
		for (; ai && n < cap; ai = ai->ai_next) {
			struct addrinfo one = *ai;

			one.ai_next = NULL;
			take_family(&one, ai->ai_family, out, &n, cap);
		}
		break;
	default: /* DNS_AUTO */
		take_family(ai, AF_INET6, out, &n, cap);
		if (!n)
			take_family(ai, AF_INET, out, &n, cap);
		break;
	}
	return n;
}

int dns_addrs_equal(const struct dns_addr *a, size_t na, const struct dns_addr *b, size_t nb)
{
	size_t i, j;

	if (na != nb)
		return 0;
	for (i = 0; i < na; i++) {
		for (j = 0; j < nb && !addr_same(&a[i], &b[j]); j++)
			;
		if (j == nb)
			return 0;
	}
	return 1;
}

int dns_resolve(struct dns_resolver *r, const char *name, enum dns_family fam, dns_cb cb, void *arg,
		struct dns_query **out)
{
	struct dns_query *q;
	size_t len = name ? strlen(name) : 0;
	int rc;

	if (out)
		*out = NULL;
	if (!len || len > DNS_NAME_MAX)
		return -EINVAL;
	q = calloc(1, sizeof(*q));
	if (!q)
		return -ENOMEM;
	memcpy(q->name, name, len + 1);
	q->r = r;
	q->fam = fam;
	q->fn = cb;
	q->arg = arg;
	q->hints.ai_family = fam == DNS_V4_ONLY ? AF_INET : fam == DNS_V6_ONLY ? AF_INET6 : AF_UNSPEC;
	q->hints.ai_socktype = SOCK_STREAM; /* one entry per address, not one per socket type */
	q->cb.ar_name = q->name;
	q->cb.ar_request = &q->hints;
	q->v[0] = &q->cb;
	rc = getaddrinfo_a(GAI_NOWAIT, q->v, 1, NULL);
	if (rc != 0) {
		free(q);
		r->st.failures++;
		return rc == EAI_MEMORY ? -ENOMEM : -EAGAIN;
	}
	q->start = ev_now(r->loop);
	q->next = r->head.next;
	q->prev = &r->head;
	r->head.next->prev = q;
	r->head.next = q;
	r->st.resolve_total++;
	r->st.pending++;
	/* a new lookup: look soon again, whatever the backoff had grown to */
	r->poll_ms = DNS_POLL_MIN_MS;
	ev_timer_arm(r->loop, &r->poll, r->poll_ms);
	if (out)
		*out = q;
	return 0;
}

void dns_cancel(struct dns_query *q)
{
	if (!q || !q->fn)
		return;
	q->fn = NULL;
	q->r->st.pending--;
	/* one already running is freed by the poll when glibc is done */
	q_release(q);
}

void dns_get_stats(const struct dns_resolver *r, struct dns_stats *st)
{
	*st = r->st;
}

/* Answer q (its callback, once) from glibc's result rc. */
static void q_answer(struct dns_query *q, int rc)
{
	struct dns_resolver *r = q->r;
	struct dns_addr addrs[DNS_ADDRS_MAX];
	dns_cb fn = q->fn;
	size_t n = 0;
	int status;

	q->fn = NULL;
	r->st.pending--;
	if (rc == 0) {
		n = dns_filter(q->cb.ar_result, q->fam, addrs, DNS_ADDRS_MAX);
		status = n ? 0 : -ENOENT;
	} else if (rc == EAI_NONAME || rc == EAI_NODATA || rc == EAI_ADDRFAMILY) {
		status = -ENOENT;
	} else if (rc == EAI_AGAIN) {
		status = -EAGAIN;
	} else if (rc == EAI_MEMORY) {
		status = -ENOMEM;
	} else {
		status = -EIO;
	}
	if (status == -ENOENT)
		r->st.not_found++;
	else if (status < 0)
		r->st.failures++;
	fn(q->arg, status, addrs, n);
}

/*
 * The poll: answers the queries glibc finished and the ones past the
 * timeout, frees what glibc let go of.  A callback may start or cancel
 * queries: a new one goes to the head (not visited this round), a
 * cancelled one is only marked (dns_cancel never frees), so the saved next
 * pointer stays valid.
 */
static void dns_poll(struct ev_loop *loop, struct ev_timer *t)
{
	struct dns_resolver *r = t->data;
	struct dns_query *q, *next;
	int progressed = 0;

	for (q = r->head.next; q != &r->head; q = next) {
		int rc = q->gone ? EAI_CANCELED : gai_error(&q->cb);

		next = q->next;
		if (rc == EAI_INPROGRESS) {
			if (q->fn && ev_now(loop) - q->start >= r->timeout_ms) {
				dns_cb fn = q->fn;

				q->fn = NULL;
				r->st.pending--;
				r->st.timeouts++;
				q_release(q);
				fn(q->arg, -ETIMEDOUT, NULL, 0);
				progressed = 1;
			}
			if (!q->gone)
				continue;
		} else if (q->fn) {
			q_answer(q, rc);
			progressed = 1;
		}
		if (q_release(q))
			q_unlink_free(q);
	}
	if (r->head.next == &r->head)
		return;
	if (progressed)
		r->poll_ms = DNS_POLL_MIN_MS;
	else if ((r->poll_ms *= 2) > DNS_POLL_MAX_MS)
		r->poll_ms = DNS_POLL_MAX_MS;
	ev_timer_arm(loop, t, r->poll_ms);
}
