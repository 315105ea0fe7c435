/*
 * iptables.c - `meshproxy iptables`: istio-init's capture rules.
 *
 * A port of istio-iptables (istio/istio tools/istio-iptables/pkg/capture
 * run.go, builder/iptables_builder_impl.go): the rules are appended to one
 * list per family in the order Run() appends them, and turned into
 * iptables-restore input as buildRestore() does (tables in name order, a
 * -N line for every non-built-in chain a rule is in or jumps to, the rules
 * in order, COMMIT), so the text is Istio's byte for byte; the golden cases
 * in tests/data/iptables/ are Istio's own testdata cases.
 *
 * Applying: root (CAP_NET_ADMIN) and iptables-restore on PATH.  If ISTIO_*
 * chains are already there (a re-run, a restarted init container), they
 * are cleaned up first as Istio's reconcile does (the jumps into them and
 * the rules this configuration adds to built-in chains deleted, the chains
 * flushed and removed), then the new rules go in with
 * `iptables-restore --noflush`, one transaction per family, so a re-run
 * ends with exactly one copy of the rules; with IPv6, ::6 is put on lo as
 * Istio's configureIPv6Addresses() does.  TPROXY adds Istio's policy
 * routing (configureTProxyRoutes: a fwmark rule and a local default route
 * on lo in their own table, per family, each added only when missing).
 * DNS capture rules are printed by --dry-run but not applied: meshproxy
 * has no DNS proxy on 15053.
 *
 * This runs once before the proxy starts (an init container), never on
 * the proxy's loop, so it blocks on its child processes.  Errors: negative
 * errno inside, the process exit code (0 / 1) from ipt_main().
 */
#include "dataplane/iptables.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <sched.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

/* Limits: a rule's text and how many rules one configuration may make (a
 * few lists of ports, CIDRs and interfaces; Istio has no cap, these are
 * far above anything a pod annotation carries). */
#define IPT_RULE_MAX 1024
#define IPT_RULES_MAX 4096
#define IPT_ITEMS_MAX 256
#define IPT_LIST_MAX 4096 /* bytes of one list */
/* istio-iptables' maxOwnerGroupsInclude */
#define IPT_OWNER_GROUPS_MAX 64
/* the save output read back for the cleanup */
#define IPT_SAVE_MAX (8u << 20)

/* The marker AppendVersionedRule replaces with the family's address. */
static const char IPT_VS[] = "<ip-version-specific>";

enum { F4 = 1, F6 = 2, FB = 3 };

struct ipt_rule {
	char table[8];
	char chain[32];
	char text[IPT_RULE_MAX]; /* "-A CHAIN args" or "-I CHAIN POS args" */
};

struct ipt_list {
	struct ipt_rule *r;
	size_t n, cap;
};

struct ipt_b {
	const struct ipt_opts *o;
	struct ipt_list l[2]; /* IPv4, IPv6 */
	int ipv6;
	int err; /* sticky: -ENOMEM / -E2BIG */
};

/* A comma list split as Istio's config.Split (empty items dropped), each
 * item without the blanks around it: Istio hands " 9090" of "8080, 9090"
 * (a list its injector accepts, parsePort trims) to iptables-restore,
 * which splits words on blanks, so the blanks never mattered there. */
struct ipt_items {
	char buf[IPT_LIST_MAX];
	const char *v[IPT_ITEMS_MAX];
	size_t n;
};

static int items_split(struct ipt_items *it, const char *s)
{
	size_t len = s ? strlen(s) : 0, i;
	char *p = it->buf, *e;

	it->n = 0;
	if (len >= sizeof(it->buf))
		return -E2BIG;
	memcpy(it->buf, s ? s : "", len + 1);
	for (i = 0; i <= len; i++) {
		if (it->buf[i] != ',' && it->buf[i] != '\0')
			continue;
		it->buf[i] = '\0';
		while (*p == ' ' || *p == '\t')
			p++;
		for (e = it->buf + i; e > p && (e[-1] == ' ' || e[-1] == '\t');)
			*--e = '\0';
		if (*p) {
			if (it->n == IPT_ITEMS_MAX)
				return -E2BIG;
			it->v[it->n++] = p;
		}
		p = it->buf + i + 1;
	}
	return 0;
}

static void rule_vadd(struct ipt_b *b, int fam, const char *chain, const char *table, int pos, va_list ap)
{
	struct ipt_list *l = &b->l[fam == F6];
	const char *vs = fam == F6 ? "::1/128" : b->o->loopback_cidr;
	struct ipt_rule *r;
	const char *a;
	size_t off;
	int n;

	if (b->err)
		return;
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 64;
		struct ipt_rule *nr;

		if (cap > IPT_RULES_MAX || !(nr = realloc(l->r, cap * sizeof(*nr)))) {
			b->err = cap > IPT_RULES_MAX ? -E2BIG : -ENOMEM;
			return;
		}
		l->r = nr;
		l->cap = cap;
	}
	r = &l->r[l->n];
	snprintf(r->table, sizeof(r->table), "%s", table);
	snprintf(r->chain, sizeof(r->chain), "%s", chain);
	n = pos ? snprintf(r->text, sizeof(r->text), "-I %s %d", chain, pos)
		: snprintf(r->text, sizeof(r->text), "-A %s", chain);
	off = (size_t)n;
	while ((a = va_arg(ap, const char *)) != NULL) {
		if (a == IPT_VS)
			a = vs;
		n = snprintf(r->text + off, sizeof(r->text) - off, " %s", a);
		if (n < 0 || (size_t)n >= sizeof(r->text) - off) {
			b->err = -E2BIG;
			return;
		}
		off += (size_t)n;
	}
	l->n++;
}

/* AppendRule / AppendRuleV4 / AppendRuleV6 (fam), NULL-terminated args;
 * IPT_VS among them is AppendVersionedRule's placeholder (the loopback
 * CIDR for IPv4, ::1/128 for IPv6). */
static void app(struct ipt_b *b, int fam, const char *chain, const char *table, ...)
{
	va_list ap;

	if (fam & F4) {
		va_start(ap, table);
		rule_vadd(b, F4, chain, table, 0, ap);
		va_end(ap);
	}
	if ((fam & F6) && b->ipv6) {
		va_start(ap, table);
		rule_vadd(b, F6, chain, table, 0, ap);
		va_end(ap);
	}
}

/* InsertRule / InsertRuleV4 / InsertRuleV6 at pos (1-based). */
static void ins(struct ipt_b *b, int fam, const char *chain, const char *table, int pos, ...)
{
	va_list ap;

	if (fam & F4) {
		va_start(ap, pos);
		rule_vadd(b, F4, chain, table, pos, ap);
		va_end(ap);
	}
	if ((fam & F6) && b->ipv6) {
		va_start(ap, pos);
		rule_vadd(b, F6, chain, table, pos, ap);
		va_end(ap);
	}
}

/* A CIDR list separated by family (config.SeparateV4V6), each item
 * printed as Go's netip.Prefix.String() does. */
struct ipt_ranges {
	int wildcard;
	int loopback[2];
	char buf[2][IPT_ITEMS_MAX][INET6_ADDRSTRLEN + 8];
	size_t n[2];
};

static int ranges_parse(struct ipt_ranges *rg, const char *list, const char *what, FILE *err)
{
	struct ipt_items it;
	size_t i;

	memset(rg, 0, sizeof(*rg));
	if (list && !strcmp(list, "*")) {
		rg->wildcard = 1;
		return 0;
	}
	if (items_split(&it, list) < 0) {
		fprintf(err, "meshproxy iptables: %s: list too long\n", what);
		return -EINVAL;
	}
	for (i = 0; i < it.n; i++) {
		char a[INET6_ADDRSTRLEN + 8], txt[INET6_ADDRSTRLEN];
		const char *slash = strchr(it.v[i], '/');
		unsigned char bin[16];
		char *end;
		long bits;
		int f6;

		if (!slash || (size_t)(slash - it.v[i]) >= sizeof(a))
			goto bad;
		memcpy(a, it.v[i], (size_t)(slash - it.v[i]));
		a[slash - it.v[i]] = '\0';
		f6 = strchr(a, ':') != NULL;
		errno = 0;
		bits = strtol(slash + 1, &end, 10);
		if (!isdigit((unsigned char)slash[1]) || *end || bits < 0 || bits > (f6 ? 128 : 32) ||
		    inet_pton(f6 ? AF_INET6 : AF_INET, a, bin) != 1 ||
		    !inet_ntop(f6 ? AF_INET6 : AF_INET, bin, txt, sizeof(txt)))
			goto bad;
		snprintf(rg->buf[f6][rg->n[f6]++], sizeof(rg->buf[0][0]), "%s/%d", txt, (int)bits);
		/* Go's Addr.IsLoopback(): an IPv4-mapped address is looked at as
		 * IPv4 (::ffff:127.0.0.1 is loopback), its prefix staying IPv6 */
		if (f6 ? !memcmp(bin, &in6addr_loopback, 16) ||
			       (IN6_IS_ADDR_V4MAPPED((const struct in6_addr *)bin) && bin[12] == 127)
		       : bin[0] == 127)
			rg->loopback[f6] = 1;
	}
	return 0;
bad:
	fprintf(err, "meshproxy iptables: %s: not a CIDR (ADDRESS/BITS): %s\n", what, it.v[i]);
	return -EINVAL;
}

/* handleInboundPortsInclude() */
static void inbound_ports(struct ipt_b *b, const struct ipt_items *inb, const struct ipt_items *inx)
{
	const struct ipt_opts *o = b->o;
	int tproxy = !strcmp(o->mode, "TPROXY");
	const char *table = tproxy ? "mangle" : "nat";
	char mark[64];
	size_t i;

	if (!inb->n)
		return;
	if (tproxy) {
		snprintf(mark, sizeof(mark), "%s/0xffffffff", o->tproxy_mark);
		app(b, FB, "ISTIO_DIVERT", "mangle", "-j", "MARK", "--set-mark", o->tproxy_mark, NULL);
		app(b, FB, "ISTIO_DIVERT", "mangle", "-j", "ACCEPT", NULL);
		app(b, FB, "ISTIO_TPROXY", "mangle", "!", "-d", IPT_VS, "-p", "tcp", "-j", "TPROXY", "--tproxy-mark",
		    mark, "--on-port", o->inbound_capture_port, NULL);
	}
	app(b, FB, "PREROUTING", table, "-p", "tcp", "-j", "ISTIO_INBOUND", NULL);
	if (inb->n == 1 && !strcmp(inb->v[0], "*")) {
		for (i = 0; i < inx->n; i++)
			app(b, FB, "ISTIO_INBOUND", table, "-p", "tcp", "--dport", inx->v[i], "-j", "RETURN", NULL);
		if (tproxy) {
			app(b, FB, "ISTIO_INBOUND", "mangle", "-p", "tcp", "-m", "conntrack", "--ctstate",
			    "RELATED,ESTABLISHED", "-j", "ISTIO_DIVERT", NULL);
			app(b, FB, "ISTIO_INBOUND", "mangle", "-p", "tcp", "-j", "ISTIO_TPROXY", NULL);
		} else {
			app(b, FB, "ISTIO_INBOUND", "nat", "-p", "tcp", "-j", "ISTIO_IN_REDIRECT", NULL);
		}
		return;
	}
	for (i = 0; i < inb->n; i++) {
		if (tproxy) {
			app(b, FB, "ISTIO_INBOUND", "mangle", "-p", "tcp", "--dport", inb->v[i], "-m", "conntrack",
			    "--ctstate", "RELATED,ESTABLISHED", "-j", "ISTIO_DIVERT", NULL);
			app(b, FB, "ISTIO_INBOUND", "mangle", "-p", "tcp", "--dport", inb->v[i], "-j", "ISTIO_TPROXY",
			    NULL);
		} else {
			app(b, FB, "ISTIO_INBOUND", "nat", "-p", "tcp", "--dport", inb->v[i], "-j",
			    "ISTIO_IN_REDIRECT", NULL);
		}
	}
}

/* handleOutboundIncludeRules() for one family */
static void outbound_include(struct ipt_b *b, int fam, const struct ipt_ranges *rg, const struct ipt_items *virt)
{
	size_t i, j;

	if (rg->wildcard) {
		app(b, fam, "ISTIO_OUTPUT", "nat", "-j", "ISTIO_REDIRECT", NULL);
		for (j = 0; j < virt->n; j++)
			ins(b, fam, "PREROUTING", "nat", 1, "-i", virt->v[j], "-j", "ISTIO_REDIRECT", NULL);
		return;
	}
	for (i = 0; i < rg->n[fam == F6]; i++) {
		const char *c = rg->buf[fam == F6][i];

		for (j = 0; j < virt->n; j++)
			ins(b, fam, "PREROUTING", "nat", 1, "-i", virt->v[j], "-d", c, "-j", "ISTIO_REDIRECT", NULL);
		app(b, fam, "ISTIO_OUTPUT", "nat", "-d", c, "-j", "ISTIO_REDIRECT", NULL);
	}
}

/* SetupDNSRedir() and addDNSConntrackZones() */
static void dns_redirect(struct ipt_b *b, const struct ipt_items *uids, const struct ipt_items *gids,
			 const struct ipt_items *d4, const struct ipt_items *d6)
{
	int all = b->o->capture_all_dns;
	char cidr[INET6_ADDRSTRLEN + 8];
	size_t i;

	app(b, FB, "OUTPUT", "raw", "-j", "ISTIO_OUTPUT_DNS", NULL);
	if (all || d4->n)
		app(b, F4, "ISTIO_OUTPUT", "nat", "-j", "ISTIO_OUTPUT_DNS", NULL);
	if (all || d6->n)
		app(b, F6, "ISTIO_OUTPUT", "nat", "-j", "ISTIO_OUTPUT_DNS", NULL);
	if (all) {
		app(b, FB, "ISTIO_OUTPUT_DNS", "nat", "-p", "tcp", "--dport", "53", "-j", "REDIRECT", "--to-ports",
		    "15053", NULL);
	} else {
		for (i = 0; i < d4->n; i++) {
			snprintf(cidr, sizeof(cidr), "%s/32", d4->v[i]);
			app(b, F4, "ISTIO_OUTPUT_DNS", "nat", "-p", "tcp", "--dport", "53", "-d", cidr, "-j", "REDIRECT",
			    "--to-ports", "15053", NULL);
		}
		for (i = 0; i < d6->n; i++) {
			snprintf(cidr, sizeof(cidr), "%s/128", d6->v[i]);
			app(b, F6, "ISTIO_OUTPUT_DNS", "nat", "-p", "tcp", "--dport", "53", "-d", cidr, "-j", "REDIRECT",
			    "--to-ports", "15053", NULL);
		}
	}
	if (all) {
		app(b, FB, "ISTIO_OUTPUT_DNS", "nat", "-p", "udp", "--dport", "53", "-j", "REDIRECT", "--to-port",
		    "15053", NULL);
	} else {
		for (i = 0; i < d4->n; i++) {
			snprintf(cidr, sizeof(cidr), "%s/32", d4->v[i]);
			app(b, F4, "ISTIO_OUTPUT_DNS", "nat", "-p", "udp", "--dport", "53", "-d", cidr, "-j", "REDIRECT",
			    "--to-port", "15053", NULL);
		}
		for (i = 0; i < d6->n; i++) {
			snprintf(cidr, sizeof(cidr), "%s/128", d6->v[i]);
			app(b, F6, "ISTIO_OUTPUT_DNS", "nat", "-p", "udp", "--dport", "53", "-d", cidr, "-j", "REDIRECT",
			    "--to-port", "15053", NULL);
		}
	}
	/* addDNSConntrackZones(): UDP DNS split into two conntrack zones */
	for (i = 0; i < uids->n; i++) {
		app(b, FB, "ISTIO_OUTPUT_DNS", "raw", "-p", "udp", "--dport", "53", "-m", "owner", "--uid-owner",
		    uids->v[i], "-j", "CT", "--zone", "1", NULL);
		app(b, FB, "ISTIO_OUTPUT_DNS", "raw", "-p", "udp", "--sport", "15053", "-m", "owner", "--uid-owner",
		    uids->v[i], "-j", "CT", "--zone", "2", NULL);
	}
	for (i = 0; i < gids->n; i++) {
		app(b, FB, "ISTIO_OUTPUT_DNS", "raw", "-p", "udp", "--dport", "53", "-m", "owner", "--gid-owner",
		    gids->v[i], "-j", "CT", "--zone", "1", NULL);
		app(b, FB, "ISTIO_OUTPUT_DNS", "raw", "-p", "udp", "--sport", "15053", "-m", "owner", "--gid-owner",
		    gids->v[i], "-j", "CT", "--zone", "2", NULL);
	}
	if (all) {
		app(b, FB, "PREROUTING", "raw", "-j", "ISTIO_INBOUND", NULL);
		app(b, FB, "ISTIO_OUTPUT_DNS", "raw", "-p", "udp", "--dport", "53", "-j", "CT", "--zone", "2", NULL);
		app(b, FB, "ISTIO_INBOUND", "raw", "-p", "udp", "--sport", "53", "-j", "CT", "--zone", "1", NULL);
		return;
	}
	if (d4->n)
		app(b, F4, "PREROUTING", "raw", "-j", "ISTIO_INBOUND", NULL);
	for (i = 0; i < d4->n; i++) {
		snprintf(cidr, sizeof(cidr), "%s/32", d4->v[i]);
		app(b, F4, "ISTIO_OUTPUT_DNS", "raw", "-p", "udp", "--dport", "53", "-d", cidr, "-j", "CT", "--zone",
		    "2", NULL);
		app(b, F4, "ISTIO_INBOUND", "raw", "-p", "udp", "--sport", "53", "-s", cidr, "-j", "CT", "--zone", "1",
		    NULL);
	}
	if (d6->n)
		app(b, F6, "PREROUTING", "raw", "-j", "ISTIO_INBOUND", NULL);
	for (i = 0; i < d6->n; i++) {
		snprintf(cidr, sizeof(cidr), "%s/128", d6->v[i]);
		app(b, F6, "ISTIO_OUTPUT_DNS", "raw", "-p", "udp", "--dport", "53", "-d", cidr, "-j", "CT", "--zone",
		    "2", NULL);
		app(b, F6, "ISTIO_INBOUND", "raw", "-p", "udp", "--sport", "53", "-s", cidr, "-j", "CT", "--zone", "1",
		    NULL);
	}
}

static int is_builtin(const char *chain)
{
	static const char *const names[] = { "INPUT",  "OUTPUT", "FORWARD", "PREROUTING",
					     "POSTROUTING", "ACCEPT", "RETURN", "DROP" };
	size_t i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (!strcmp(chain, names[i]))
			return 1;
	return 0;
}

/* The chain a rule jumps to when "-j X" ends it (buildRestore() looks at
 * the last two params only), into out; 0 when it does not. */
static int rule_jump(const struct ipt_rule *r, char *out, size_t cap)
{
	const char *last = strrchr(r->text, ' ');

	if (!last || last - r->text < 3 || strncmp(last - 3, " -j", 3) != 0)
		return 0;
	snprintf(out, cap, "%s", last + 1);
	return 1;
}

/* buildRestore(): one family's iptables-restore input. */
static int restore_text(const struct ipt_list *l, struct mesh_buf *out)
{
	static const char *const tables[] = { "filter", "mangle", "nat", "raw" }; /* sorted, as Istio */
	size_t t, i, j;
	int rc = 0;

	for (t = 0; t < sizeof(tables) / sizeof(tables[0]); t++) {
		char seen[IPT_RULES_MAX / 8][64];
		size_t n_seen = 0;
		int any = 0;

		for (i = 0; i < l->n; i++)
			any |= !strcmp(l->r[i].table, tables[t]);
		if (!any)
			continue;
		rc = mesh_buf_printf(out, "* %s\n", tables[t]);
		/* -N for each chain a rule is in, then each chain a rule jumps to */
		for (j = 0; j < 2 && rc >= 0; j++) {
			for (i = 0; i < l->n && rc >= 0; i++) {
				char name[64];
				size_t k;

				if (strcmp(l->r[i].table, tables[t]))
					continue;
				if (j == 0)
					snprintf(name, sizeof(name), "%s", l->r[i].chain);
				else if (!rule_jump(&l->r[i], name, sizeof(name)))
					continue;
				if (is_builtin(name))
					continue;
				for (k = 0; k < n_seen && strcmp(seen[k], name); k++)
					;
				if (k < n_seen)
					continue;
				if (n_seen == sizeof(seen) / sizeof(seen[0]))
					return -E2BIG;
				snprintf(seen[n_seen++], sizeof(seen[0]), "%s", name);
				rc = mesh_buf_printf(out, "-N %s\n", name);
			}
		}
		for (i = 0; i < l->n && rc >= 0; i++)
			if (!strcmp(l->r[i].table, tables[t]))
				rc = mesh_buf_printf(out, "%s\n", l->r[i].text);
		if (rc >= 0)
			rc = mesh_buf_puts(out, "COMMIT\n");
		if (rc < 0)
			return rc;
	}
	return rc < 0 ? rc : 0;
}

/* The lists' items go into iptables-restore input and argv: each must be
 * one token of the characters its kind allows (no space, no newline). */
static int items_check(const struct ipt_items *it, const char *what, const char *allowed, size_t maxlen, FILE *err)
{
	size_t i;

	for (i = 0; i < it->n; i++) {
		const char *p;

		for (p = it->v[i]; *p; p++)
			if (!isalnum((unsigned char)*p) && !strchr(allowed, *p))
				break;
		if (*p || strlen(it->v[i]) > maxlen) {
			fprintf(err, "meshproxy iptables: %s: not a valid value: %s\n", what, it->v[i]);
			return -EINVAL;
		}
	}
	return 0;
}

static int one_check(const char *v, const char *what, const char *allowed, FILE *err)
{
	struct ipt_items it = { .n = 1 };

	it.v[0] = v;
	return items_check(&it, what, allowed, 64, err);
}

/* A decimal number in [min, max] (digits only: no sign, no blank).  *end
 * gets the first byte after it.  1 or 0. */
static int num_ok(const char *s, unsigned long min, unsigned long max, const char **end)
{
	unsigned long v = 0;
	const char *p;

	for (p = s; *p >= '0' && *p <= '9' && p - s < 10; p++)
		v = v * 10 + (unsigned long)(*p - '0');
	*end = p;
	return p > s && v >= min && v <= max;
}

/* Port values as iptables-restore takes them, refused here with the flag's
 * name rather than by iptables-restore after the cleanup: a port list's
 * items are PORT or FIRST:LAST (iptables' range, FIRST <= LAST), 0..65535;
 * a single port (-p, -z, -e) is 1..65535. */
static int ports_check(const struct ipt_items *it, const char *what, FILE *err)
{
	size_t i;

	for (i = 0; i < it->n; i++) {
		const char *e, *v = it->v[i];
		unsigned long lo = strtoul(v, NULL, 10);

		if (num_ok(v, 0, 65535, &e) && (!*e || (*e == ':' && num_ok(e + 1, lo, 65535, &e) && !*e)))
			continue;
		fprintf(err, "meshproxy iptables: %s: not a port (0-65535) or range (FIRST:LAST): %s\n", what, v);
		return -EINVAL;
	}
	return 0;
}

static int port_check(const char *v, const char *what, FILE *err)
{
	const char *e;

	if (num_ok(v, 1, 65535, &e) && !*e)
		return 0;
	fprintf(err, "meshproxy iptables: %s: not a port (1-65535): %s\n", what, v);
	return -EINVAL;
}

/* configureTProxyRoutes() parses the table with strconv.Atoi; ip(8)
 * takes 1..2^32-1 (0 is "unspecified"): decimal only, so the value is
 * one word on the command line.  0 or -EINVAL (reason on err). */
static int ipt_route_table_check(const char *t, FILE *err)
{
	const char *e;

	if (num_ok(t, 1, 4294967295UL, &e) && !*e)
		return 0;
	fprintf(err, "meshproxy iptables: --istio-inbound-tproxy-route-table: not a routing table "
		     "(1-4294967295): %s\n", t);
	return -EINVAL;
}

/* A uid or gid list's items: a number, FIRST-LAST, or a user or group name
 * (the owner match's forms); never starting with '-'. */
static int owners_check(const struct ipt_items *it, const char *what, FILE *err)
{
	size_t i;

	for (i = 0; i < it->n; i++)
		if (it->v[i][0] == '-') {
			fprintf(err, "meshproxy iptables: %s: not a valid value: %s\n", what, it->v[i]);
			return -EINVAL;
		}
	return items_check(it, what, "._-", 32, err);
}

int ipt_build(const struct ipt_opts *o, const char *dns4, const char *dns6, struct mesh_buf *v4,
	      struct mesh_buf *v6, FILE *err)
{
	struct ipt_b b = { .o = o, .ipv6 = o->ipv6 > 0 };
	struct ipt_ranges *inc = NULL, *exc = NULL;
	struct ipt_items *it = NULL;
	enum { UID, GID, INB, INX, OUTP, OUTX, EXIF, VIRT, OGI, OGX, D4, D6, N_IT };
	const char *if_ch = "._@:+-", *name_ch = "._-";
	int redirect_dns = o->redirect_dns, rc = -ENOMEM, tproxy;
	char groups[IPT_RULE_MAX];
	size_t i, off;
	const char *lists[N_IT] = { o->proxy_uid, o->proxy_gid, o->inbound_ports, o->inbound_ports_exclude,
				    o->outbound_ports, o->outbound_ports_exclude, o->exclude_ifaces,
				    o->kube_virt_ifaces, o->owner_groups_include, o->owner_groups_exclude,
				    dns4, dns6 };

	inc = calloc(1, sizeof(*inc));
	exc = calloc(1, sizeof(*exc));
	it = calloc(N_IT, sizeof(*it));
	if (!inc || !exc || !it)
		goto out;
	rc = -EINVAL;
	for (i = 0; i < N_IT; i++) {
		if (items_split(&it[i], lists[i]) < 0) {
			fprintf(err, "meshproxy iptables: a list is too long (%zu items at most)\n",
				(size_t)IPT_ITEMS_MAX);
			goto out;
		}
	}
	if (owners_check(&it[UID], "--proxy-uid", err) < 0 || owners_check(&it[GID], "--proxy-gid", err) < 0 ||
	    ports_check(&it[INX], "--istio-local-exclude-ports", err) < 0 ||
	    ports_check(&it[OUTP], "--istio-outbound-ports", err) < 0 ||
	    ports_check(&it[OUTX], "--istio-local-outbound-ports-exclude", err) < 0 ||
	    items_check(&it[EXIF], "--istio-exclude-interfaces", if_ch, IFNAMSIZ - 1, err) < 0 ||
	    items_check(&it[VIRT], "--kube-virt-interfaces", if_ch, IFNAMSIZ - 1, err) < 0 ||
	    items_check(&it[OGI], "ISTIO_OUTBOUND_OWNER_GROUPS", "*._-", 32, err) < 0 ||
	    items_check(&it[OGX], "ISTIO_OUTBOUND_OWNER_GROUPS_EXCLUDE", name_ch, 32, err) < 0 ||
	    items_check(&it[D4], "DNS servers", ".", 15, err) < 0 ||
	    items_check(&it[D6], "DNS servers", ".:", 45, err) < 0 ||
	    port_check(o->proxy_port, "--envoy-port", err) < 0 ||
	    port_check(o->inbound_capture_port, "--inbound-capture-port", err) < 0 ||
	    port_check(o->inbound_tunnel_port, "--inbound-tunnel-port", err) < 0 ||
	    one_check(o->tproxy_mark, "--istio-inbound-tproxy-mark", "", err) < 0)
		goto out;
	if (!(it[INB].n == 1 && !strcmp(it[INB].v[0], "*")) && ports_check(&it[INB], "--istio-inbound-ports", err) < 0)
		goto out;
	{
		/* a mark: decimal or 0x hex, 32 bits (it gets "/0xffffffff" appended) */
		char *e;
		unsigned long long m;

		errno = 0;
		m = strtoull(o->tproxy_mark, &e, 0);
		if (!isdigit((unsigned char)o->tproxy_mark[0]) || *e || errno || m > 0xffffffffULL) {
			fprintf(err, "meshproxy iptables: --istio-inbound-tproxy-mark: not a 32-bit mark: %s\n",
				o->tproxy_mark);
			goto out;
		}
	}
	if (strcmp(o->mode, "REDIRECT") && strcmp(o->mode, "TPROXY")) {
		fprintf(err, "meshproxy iptables: --istio-inbound-interception-mode: REDIRECT or TPROXY, not %s\n",
			o->mode);
		goto out;
	}
	tproxy = !strcmp(o->mode, "TPROXY");
	if (tproxy && ipt_route_table_check(o->tproxy_route_table, err) < 0)
		goto out;
	/* config.Validate(): ValidateOwnerGroups, ValidateIPv4LoopbackCidr */
	if (strcmp(o->owner_groups_include, "*") && it[OGI].n > IPT_OWNER_GROUPS_MAX) {
		fprintf(err, "meshproxy iptables: number of owner groups whose outgoing traffic should be redirected "
			     "to Envoy cannot exceed %d, got %zu\n", IPT_OWNER_GROUPS_MAX, it[OGI].n);
		goto out;
	}
	if (ranges_parse(inc, o->loopback_cidr, "ISTIO_OUTBOUND_IPV4_LOOPBACK_CIDR", err) < 0)
		goto out;
	{
		const char *slash = strchr(o->loopback_cidr, '/');

		if (inc->n[0] != 1 || !inc->loopback[0] || !slash || atoi(slash + 1) < 8 || atoi(slash + 1) > 32) {
			fprintf(err, "meshproxy iptables: expected an IPv4 loopback CIDR with a mask in [8, 32]: %s\n",
				o->loopback_cidr);
			goto out;
		}
	}
	if (ranges_parse(exc, o->cidr_exclude, "--istio-service-exclude-cidr", err) < 0)
		goto out;
	if (exc->wildcard) {
		fprintf(err, "meshproxy iptables: invalid value for OUTBOUND_IP_RANGES_EXCLUDE\n");
		goto out;
	}
	if (ranges_parse(inc, o->cidr_include, "--istio-service-cidr", err) < 0)
		goto out;
	if (redirect_dns && !o->capture_all_dns && !it[D4].n && !it[D6].n) {
		fprintf(err, "meshproxy iptables: REDIRECT_DNS is set, but CAPTURE_ALL_DNS is false, and no DNS "
			     "servers provided. DNS capture disabled.\n");
		redirect_dns = 0;
	}

	/* Run(), in its order */
	for (i = 0; i < it[EXIF].n; i++) {
		app(&b, FB, "PREROUTING", "nat", "-i", it[EXIF].v[i], "-j", "RETURN", NULL);
		app(&b, FB, "OUTPUT", "nat", "-o", it[EXIF].v[i], "-j", "RETURN", NULL);
	}
	if (tproxy) {
		for (i = 0; i < it[EXIF].n; i++) {
			app(&b, FB, "PREROUTING", "mangle", "-i", it[EXIF].v[i], "-j", "RETURN", NULL);
			app(&b, FB, "OUTPUT", "mangle", "-o", it[EXIF].v[i], "-j", "RETURN", NULL);
		}
	}
	for (i = 0; i < it[VIRT].n; i++)
		ins(&b, FB, "PREROUTING", "nat", 1, "-i", it[VIRT].v[i], "-j", "RETURN", NULL);
	if (o->drop_invalid) {
		app(&b, FB, "PREROUTING", "mangle", "-m", "conntrack", "--ctstate", "INVALID", "-j", "ISTIO_DROP", NULL);
		app(&b, FB, "ISTIO_DROP", "mangle", "-j", "DROP", NULL);
	}
	app(&b, FB, "ISTIO_INBOUND", "nat", "-p", "tcp", "--dport", o->inbound_tunnel_port, "-j", "RETURN", NULL);
	app(&b, FB, "ISTIO_REDIRECT", "nat", "-p", "tcp", "-j", "REDIRECT", "--to-ports", o->proxy_port, NULL);
	app(&b, FB, "ISTIO_IN_REDIRECT", "nat", "-p", "tcp", "-j", "REDIRECT", "--to-ports", o->inbound_capture_port,
	    NULL);
	inbound_ports(&b, &it[INB], &it[INX]);
	app(&b, FB, "OUTPUT", "nat", "-j", "ISTIO_OUTPUT", NULL);
	for (i = 0; i < it[OUTX].n; i++) {
		app(&b, FB, "ISTIO_OUTPUT", "nat", "-p", "tcp", "--dport", it[OUTX].v[i], "-j", "RETURN", NULL);
		app(&b, FB, "ISTIO_OUTPUT", "nat", "-p", "udp", "--dport", it[OUTX].v[i], "-j", "RETURN", NULL);
	}
	/* 127.0.0.6 / ::6: the inbound passthrough cluster's source address */
	app(&b, F4, "ISTIO_OUTPUT", "nat", "-o", "lo", "-s", "127.0.0.6/32", "-j", "RETURN", NULL);
	app(&b, F6, "ISTIO_OUTPUT", "nat", "-o", "lo", "-s", "::6/128", "-j", "RETURN", NULL);
	for (i = 0; i < it[UID].n; i++) {
		char dports[64];

		/* app => its own service VIP => proxy (outbound) => proxy (inbound) => app */
		if (redirect_dns) {
			snprintf(dports, sizeof(dports), "53,%s", o->inbound_tunnel_port);
			app(&b, FB, "ISTIO_OUTPUT", "nat", "-o", "lo", "!", "-d", IPT_VS, "-p", "tcp", "-m", "multiport",
			    "!", "--dports", dports, "-m", "owner", "--uid-owner", it[UID].v[i], "-j",
			    "ISTIO_IN_REDIRECT", NULL);
		} else {
			app(&b, FB, "ISTIO_OUTPUT", "nat", "-o", "lo", "!", "-d", IPT_VS, "-p", "tcp", "!", "--dport",
			    o->inbound_tunnel_port, "-m", "owner", "--uid-owner", it[UID].v[i], "-j",
			    "ISTIO_IN_REDIRECT", NULL);
		}
		/* app => app over lo (its own endpoint address): not captured,
		 * unless loopback was asked for with -i */
		if (!inc->loopback[0] && !inc->loopback[1]) {
			if (redirect_dns)
				app(&b, FB, "ISTIO_OUTPUT", "nat", "-o", "lo", "-p", "tcp", "!", "--dport", "53", "-m",
				    "owner", "!", "--uid-owner", it[UID].v[i], "-j", "RETURN", NULL);
			else
				app(&b, FB, "ISTIO_OUTPUT", "nat", "-o", "lo", "-m", "owner", "!", "--uid-owner",
				    it[UID].v[i], "-j", "RETURN", NULL);
		}
		/* the proxy's own traffic is never captured (no loop) */
		app(&b, FB, "ISTIO_OUTPUT", "nat", "-m", "owner", "--uid-owner", it[UID].v[i], "-j", "RETURN", NULL);
	}
	for (i = 0; i < it[GID].n; i++) {
		app(&b, FB, "ISTIO_OUTPUT", "nat", "-o", "lo", "!", "-d", IPT_VS, "-p", "tcp", "!", "--dport",
		    o->inbound_tunnel_port, "-m", "owner", "--gid-owner", it[GID].v[i], "-j", "ISTIO_IN_REDIRECT",
		    NULL);
		if (!inc->loopback[0] && !inc->loopback[1]) {
			if (redirect_dns)
				app(&b, FB, "ISTIO_OUTPUT", "nat", "-o", "lo", "-p", "tcp", "!", "--dport", "53", "-m",
				    "owner", "!", "--gid-owner", it[GID].v[i], "-j", "RETURN", NULL);
			else
				app(&b, FB, "ISTIO_OUTPUT", "nat", "-o", "lo", "-m", "owner", "!", "--gid-owner",
				    it[GID].v[i], "-j", "RETURN", NULL);
		}
		app(&b, FB, "ISTIO_OUTPUT", "nat", "-m", "owner", "--gid-owner", it[GID].v[i], "-j", "RETURN", NULL);
	}
	/* handleCaptureByOwnerGroup() */
	if (!strcmp(o->owner_groups_include, "*")) {
		for (i = 0; i < it[OGX].n; i++)
			app(&b, FB, "ISTIO_OUTPUT", "nat", "-m", "owner", "--gid-owner", it[OGX].v[i], "-j", "RETURN",
			    NULL);
	} else {
		groups[0] = '\0';
		for (i = 0, off = 0; i < it[OGI].n; i++) {
			int n = snprintf(groups + off, sizeof(groups) - off, "%s-m owner ! --gid-owner %s",
					 i ? " " : "", it[OGI].v[i]);

			if (n < 0 || (size_t)n >= sizeof(groups) - off) {
				b.err = -E2BIG;
				break;
			}
			off += (size_t)n;
		}
		if (off)
			app(&b, FB, "ISTIO_OUTPUT", "nat", groups, "-j", "RETURN", NULL);
		else
			app(&b, FB, "ISTIO_OUTPUT", "nat", "-j", "RETURN", NULL);
	}
	if (redirect_dns)
		dns_redirect(&b, &it[UID], &it[GID], &it[D4], &it[D6]);
	/* applications that call localhost on purpose: never captured */
	app(&b, FB, "ISTIO_OUTPUT", "nat", "-d", IPT_VS, "-j", "RETURN", NULL);
	for (i = 0; i < exc->n[0]; i++)
		app(&b, F4, "ISTIO_OUTPUT", "nat", "-d", exc->buf[0][i], "-j", "RETURN", NULL);
	for (i = 0; i < exc->n[1]; i++)
		app(&b, F6, "ISTIO_OUTPUT", "nat", "-d", exc->buf[1][i], "-j", "RETURN", NULL);
	for (i = 0; i < it[OUTP].n; i++)
		app(&b, FB, "ISTIO_OUTPUT", "nat", "-p", "tcp", "--dport", it[OUTP].v[i], "-j", "ISTIO_REDIRECT", NULL);
	outbound_include(&b, F4, inc, &it[VIRT]);
	outbound_include(&b, F6, inc, &it[VIRT]);
	if (tproxy) {
		const char *m = o->tproxy_mark;

		app(&b, FB, "PREROUTING", "mangle", "-p", "tcp", "-m", "mark", "--mark", m, "-j", "CONNMARK",
		    "--save-mark", NULL);
		app(&b, FB, "OUTPUT", "mangle", "-p", "tcp", "-o", "lo", "-m", "mark", "--mark", m, "-j", "RETURN", NULL);
		for (i = 0; i < it[UID].n; i++)
			app(&b, FB, "OUTPUT", "mangle", "!", "-d", IPT_VS, "-p", "tcp", "-o", "lo", "-m", "owner",
			    "--uid-owner", it[UID].v[i], "-j", "MARK", "--set-mark", "1338", NULL);
		for (i = 0; i < it[GID].n; i++)
			app(&b, FB, "OUTPUT", "mangle", "!", "-d", IPT_VS, "-p", "tcp", "-o", "lo", "-m", "owner",
			    "--gid-owner", it[GID].v[i], "-j", "MARK", "--set-mark", "1338", NULL);
		app(&b, FB, "OUTPUT", "mangle", "-p", "tcp", "-m", "connmark", "--mark", m, "-j", "CONNMARK",
		    "--restore-mark", NULL);
		ins(&b, FB, "ISTIO_INBOUND", "mangle", 1, "-p", "tcp", "-m", "mark", "--mark", m, "-j", "RETURN", NULL);
		ins(&b, F4, "ISTIO_INBOUND", "mangle", 2, "-p", "tcp", "-s", "127.0.0.6/32", "-i", "lo", "-j", "RETURN",
		    NULL);
		ins(&b, F6, "ISTIO_INBOUND", "mangle", 2, "-p", "tcp", "-s", "::6/128", "-i", "lo", "-j", "RETURN",
		    NULL);
		ins(&b, FB, "ISTIO_INBOUND", "mangle", 3, "-p", "tcp", "-i", "lo", "-m", "mark", "!", "--mark", "1338",
		    "-j", "RETURN", NULL);
	}
	rc = b.err;
	if (rc < 0) {
		fprintf(err, "meshproxy iptables: %s\n",
			rc == -E2BIG ? "too many rules or a rule too long" : "out of memory");
		goto out;
	}
	rc = restore_text(&b.l[0], v4);
	if (rc >= 0 && b.ipv6 && v6)
		rc = restore_text(&b.l[1], v6);
out:
	free(b.l[0].r);
	free(b.l[1].r);
	free(inc);
	free(exc);
	free(it);
	return rc;
}

/* --- flags ---------------------------------------------------------- */

/* Go's strconv.ParseBool, as pflag reads a bool flag's value */
static int parse_bool(const char *v, int *out)
{
	static const char *const t[] = { "1", "t", "T", "TRUE", "true", "True" };
	static const char *const f[] = { "0", "f", "F", "FALSE", "false", "False" };
	size_t i;

	for (i = 0; i < 6; i++) {
		if (!strcmp(v, t[i])) {
			*out = 1;
			return 0;
		}
		if (!strcmp(v, f[i])) {
			*out = 0;
			return 0;
		}
	}
	return -EINVAL;
}

enum {
	O_REDIRECT_DNS = 256,
	O_DROP_INVALID,
	O_DUAL_STACK,
	O_CAPTURE_ALL_DNS,
	O_CLEANUP_ONLY,
	O_IPV6,
	O_DNS_SERVERS,
	O_UID,
	O_SKIP_APPLY,
	O_NETNS,
	O_RECONCILE_,
	O_FORCE_APPLY_,
	O_RUN_VALIDATION,
	O_LOG_LEVEL,
	O_PROBE_PORT,
	O_PROBE_TIMEOUT,
	O_HELP,
};

/* A flag: its long name (istio-iptables'), short letter, environment
 * names (BindEnv's upper-cased name, then AdditionalEnv's), and where it
 * goes (str or flag). */
struct ipt_flag {
	const char *name;
	int val;
	const char *env, *env2;
	size_t str_off; /* offsetof into struct ipt_opts, or SIZE_MAX */
	size_t int_off;
};

#define S(f) offsetof(struct ipt_opts, f), (size_t)-1
#define B(f) (size_t)-1, offsetof(struct ipt_opts, f)

static const struct ipt_flag ipt_flags[] = {
	{ "envoy-port", 'p', NULL, NULL, S(proxy_port) },
	{ "inbound-capture-port", 'z', "INBOUND_CAPTURE_PORT", NULL, S(inbound_capture_port) },
	{ "inbound-tunnel-port", 'e', "INBOUND_TUNNEL_PORT", NULL, S(inbound_tunnel_port) },
	{ "proxy-uid", 'u', "PROXY_UID", NULL, S(proxy_uid) },
	{ "proxy-gid", 'g', "PROXY_GID", NULL, S(proxy_gid) },
	{ "istio-inbound-interception-mode", 'm', "ISTIO_INBOUND_INTERCEPTION_MODE", NULL, S(mode) },
	{ "istio-inbound-ports", 'b', "ISTIO_INBOUND_PORTS", NULL, S(inbound_ports) },
	{ "istio-local-exclude-ports", 'd', "ISTIO_LOCAL_EXCLUDE_PORTS", NULL, S(inbound_ports_exclude) },
	{ "istio-exclude-interfaces", 'c', "ISTIO_EXCLUDE_INTERFACES", NULL, S(exclude_ifaces) },
	{ "istio-service-cidr", 'i', "ISTIO_SERVICE_CIDR", NULL, S(cidr_include) },
	{ "istio-service-exclude-cidr", 'x', "ISTIO_SERVICE_EXCLUDE_CIDR", NULL, S(cidr_exclude) },
	{ "istio-outbound-ports", 'q', "ISTIO_OUTBOUND_PORTS", NULL, S(outbound_ports) },
	{ "istio-local-outbound-ports-exclude", 'o', "ISTIO_LOCAL_OUTBOUND_PORTS_EXCLUDE", NULL,
	  S(outbound_ports_exclude) },
	{ "kube-virt-interfaces", 'k', "KUBE_VIRT_INTERFACES", NULL, S(kube_virt_ifaces) },
	{ "istio-inbound-tproxy-mark", 't', "ISTIO_INBOUND_TPROXY_MARK", NULL, S(tproxy_mark) },
	{ "istio-inbound-tproxy-route-table", 'r', "ISTIO_INBOUND_TPROXY_ROUTE_TABLE", NULL, S(tproxy_route_table) },
	{ "dry-run", 'n', "DRY_RUN", NULL, B(dry_run) },
	{ "redirect-dns", O_REDIRECT_DNS, "REDIRECT_DNS", "ISTIO_META_DNS_CAPTURE", B(redirect_dns) },
	{ "drop-invalid", O_DROP_INVALID, "DROP_INVALID", "INVALID_DROP", B(drop_invalid) },
	{ "dual-stack", O_DUAL_STACK, "DUAL_STACK", "ISTIO_DUAL_STACK", B(dual_stack) },
	{ "capture-all-dns", O_CAPTURE_ALL_DNS, "CAPTURE_ALL_DNS", NULL, B(capture_all_dns) },
	{ "cleanup-only", O_CLEANUP_ONLY, "CLEANUP_ONLY", NULL, B(cleanup_only) },
	/* ours: IPv6 rules without looking at the addresses (Istio's
	 * ENABLE_INBOUND_IPV6 is decided from them) */
	{ "ipv6", O_IPV6, "ENABLE_INBOUND_IPV6", NULL, B(ipv6) },
	{ "dns-servers", O_DNS_SERVERS, NULL, NULL, S(dns_servers) },
	/* DESIGN.md's name for -u */
	{ "uid", O_UID, NULL, NULL, S(proxy_uid) },
	{ "skip-rule-apply", O_SKIP_APPLY, "SKIP_RULE_APPLY", NULL, B(skip_rule_apply) },
	{ "network-namespace", O_NETNS, "NETWORK_NAMESPACE", NULL, S(network_namespace) },
	/* taken as istio-iptables takes them (the injector passes some), no
	 * effect: every run cleans up and applies; no validation probe */
	{ "reconcile", O_RECONCILE_, "RECONCILE", NULL, B(reconcile) },
	{ "force-apply", O_FORCE_APPLY_, "FORCE_APPLY", NULL, B(force_apply) },
	{ "run-validation", O_RUN_VALIDATION, "RUN_VALIDATION", NULL, B(run_validation) },
	{ "log_output_level", O_LOG_LEVEL, NULL, NULL, S(log_level) },
	{ "iptables-probe-port", O_PROBE_PORT, "IPTABLES_PROBE_PORT", NULL, S(probe_port) },
	{ "probe-timeout", O_PROBE_TIMEOUT, "PROBE_TIMEOUT", NULL, S(probe_timeout) },
};

#define N_FLAGS (sizeof(ipt_flags) / sizeof(ipt_flags[0]))

static void ipt_usage(FILE *f)
{
	fprintf(f,
		"usage: meshproxy iptables [flags]   (istio-iptables' flags and environment)\n"
		"\n"
		"  -p, --envoy-port PORT                   outbound capture port (15001)\n"
		"  -z, --inbound-capture-port PORT         inbound capture port (15006; INBOUND_CAPTURE_PORT)\n"
		"  -e, --inbound-tunnel-port PORT          never captured inbound (15008)\n"
		"  -u, --proxy-uid UID[,UID]               the proxy's uid, not captured (1337; PROXY_UID;\n"
		"                                          also --uid)\n"
		"  -g, --proxy-gid GID[,GID]               the proxy's gid (default: the uid; PROXY_GID)\n"
		"  -m, --istio-inbound-interception-mode   REDIRECT (default) or TPROXY (mangle rules\n"
		"                                          and policy routing; CAP_NET_ADMIN, xt_TPROXY)\n"
		"  -b, --istio-inbound-ports LIST|*        inbound ports captured (ISTIO_INBOUND_PORTS; none)\n"
		"  -d, --istio-local-exclude-ports LIST    inbound ports not captured with -b '*'\n"
		"  -i, --istio-service-cidr LIST|*         outbound CIDRs captured (ISTIO_SERVICE_CIDR; none)\n"
		"  -x, --istio-service-exclude-cidr LIST   outbound CIDRs never captured\n"
		"  -q, --istio-outbound-ports LIST         outbound ports always captured\n"
		"  -o, --istio-local-outbound-ports-exclude LIST  outbound ports never captured\n"
		"  -c, --istio-exclude-interfaces LIST     interfaces never captured\n"
		"  -k, --kube-virt-interfaces LIST         interfaces whose inbound traffic is outbound (VMs)\n"
		"  -t, --istio-inbound-tproxy-mark MARK    TPROXY mark (1337)\n"
		"  -r, --istio-inbound-tproxy-route-table N  TPROXY route table (133)\n"
		"      --redirect-dns, --capture-all-dns   DNS to 15053 (dry-run only: no DNS proxy here)\n"
		"      --drop-invalid                      drop conntrack INVALID packets (mangle)\n"
		"      --dual-stack                        IPv4 and IPv6 rules when the pod has both\n"
		"      --ipv6                              IPv6 (ip6tables) rules too, without looking at\n"
		"                                          the addresses (Istio decides from them)\n"
		"      --dns-servers LIST                  DNS servers for --redirect-dns (default:\n"
		"                                          /etc/resolv.conf's nameservers, as Istio)\n"
		"      --cleanup-only                      remove the ISTIO_* chains and jumps, add nothing\n"
		"      --network-namespace PATH|NAME       apply in that network namespace (a path, or a\n"
		"                                          name under /var/run/netns)\n"
		"      --skip-rule-apply                   change nothing\n"
		"      --reconcile, --force-apply, --run-validation, --log_output_level,\n"
		"      --iptables-probe-port, --probe-timeout  taken, no effect (every run cleans up\n"
		"                                          and applies; no validation probe)\n"
		"  -n, --dry-run                           print the iptables-restore input (and TPROXY's ip\n"
		"                                          rule/route commands as comments), change nothing\n"
		"\n"
		"Environment as istio-iptables: the flags' upper-cased names (ISTIO_SERVICE_CIDR, ...),\n"
		"ISTIO_OUTBOUND_OWNER_GROUPS, ISTIO_OUTBOUND_OWNER_GROUPS_EXCLUDE,\n"
		"ISTIO_OUTBOUND_IPV4_LOOPBACK_CIDR; a flag wins over the environment.\n");
}

static int flag_set(struct ipt_opts *o, const struct ipt_flag *f, const char *v, const char *src, FILE *err)
{
	if (f->str_off != (size_t)-1) {
		*(const char **)((char *)o + f->str_off) = v ? v : "";
		return 0;
	}
	if (!v) {
		*(int *)((char *)o + f->int_off) = 1;
		return 0;
	}
	if (parse_bool(v, (int *)((char *)o + f->int_off)) < 0) {
		fprintf(err, "meshproxy iptables: %s: true or false, not %s\n", src, v);
		return -EINVAL;
	}
	return 0;
}

int ipt_opts_parse(struct ipt_opts *o, int argc, char **argv, ipt_env_fn env, FILE *out, FILE *err)
{
	struct option lo[N_FLAGS + 2];
	char shorts[64];
	const char *v;
	size_t i, si = 0;
	int c, rc = 0;

	memset(o, 0, sizeof(*o));
	o->proxy_port = "15001";
	o->inbound_capture_port = "15006";
	o->inbound_tunnel_port = "15008";
	o->proxy_uid = "";
	o->proxy_gid = "";
	o->mode = "";
	o->tproxy_mark = "1337";
	o->tproxy_route_table = "133";
	o->inbound_ports = o->inbound_ports_exclude = o->outbound_ports = o->outbound_ports_exclude = "";
	o->cidr_include = o->cidr_exclude = o->exclude_ifaces = o->kube_virt_ifaces = "";
	o->dns_servers = NULL;
	o->ipv6 = -1;
	/* the environment first (BindEnv at flag definition), then argv */
	for (i = 0; i < N_FLAGS; i++) {
		const struct ipt_flag *f = &ipt_flags[i];

		if (f->env && (v = env(f->env)) != NULL && flag_set(o, f, v, f->env, err) < 0)
			return -EINVAL;
		if (f->env2 && (v = env(f->env2)) != NULL && flag_set(o, f, v, f->env2, err) < 0)
			return -EINVAL;
	}
	/* env.Register'ed only (no flag) in istio-iptables */
	o->owner_groups_include = (v = env("ISTIO_OUTBOUND_OWNER_GROUPS")) ? v : "*";
	o->owner_groups_exclude = (v = env("ISTIO_OUTBOUND_OWNER_GROUPS_EXCLUDE")) ? v : "";
	o->loopback_cidr = (v = env("ISTIO_OUTBOUND_IPV4_LOOPBACK_CIDR")) ? v : "127.0.0.1/32";
	if (!(v = env("INBOUND_INTERCEPTION_MODE")) || !*v)
		v = NULL;
	if (v && !*o->mode)
		o->mode = v;

	for (i = 0; i < N_FLAGS; i++) {
		const struct ipt_flag *f = &ipt_flags[i];
		int is_bool = f->str_off == (size_t)-1;

		lo[i].name = f->name;
		lo[i].has_arg = is_bool ? optional_argument : required_argument;
		lo[i].flag = NULL;
		lo[i].val = f->val;
		if (f->val < 256) {
			shorts[si++] = (char)f->val;
			if (!is_bool)
				shorts[si++] = ':';
		}
	}
	lo[N_FLAGS] = (struct option){ "help", no_argument, NULL, O_HELP };
	memset(&lo[N_FLAGS + 1], 0, sizeof(lo[0]));
	shorts[si++] = 'h';
	shorts[si] = '\0';
	optind = 0; /* GNU getopt: a full reset (the unit tests parse many times) */
	opterr = 0;
	while ((c = getopt_long(argc, argv, shorts, lo, NULL)) != -1) {
		if (c == 'h' || c == O_HELP) {
			ipt_usage(out);
			return 1;
		}
		for (i = 0; i < N_FLAGS && ipt_flags[i].val != c; i++)
			;
		if (i == N_FLAGS) {
			fprintf(err, "meshproxy iptables: unknown flag or missing value: %s\n", argv[optind - 1]);
			ipt_usage(err);
			return -EINVAL;
		}
		rc = flag_set(o, &ipt_flags[i], optarg, ipt_flags[i].name, err);
		if (rc < 0)
			return rc;
	}
	if (optind < argc) {
		fprintf(err, "meshproxy iptables: unexpected argument %s\n", argv[optind]);
		return -EINVAL;
	}
	if (!*o->mode)
		o->mode = "REDIRECT";
	/* FillConfigFromEnvironment(): uid 1337 (ENVOY_USER's, we have no
	 * such lookup), gid = uid */
	if (!*o->proxy_uid)
		o->proxy_uid = "1337";
	if (!*o->proxy_gid)
		o->proxy_gid = o->proxy_uid;
	return 0;
}

/* --- applying ------------------------------------------------------- */

/* getLocalIP(): whether the pod's address is IPv6 (the first address not
 * loopback nor link-local; with dual-stack, any IPv6 one).  -ENOENT: none. */
static int local_ipv6(int dual_stack)
{
	struct ifaddrs *ifa = NULL, *p;
	int rc = -ENOENT;

	if (getifaddrs(&ifa) < 0)
		return -errno;
	/* netlink lists IPv4 addresses before IPv6 ones, as Go's InterfaceAddrs */
	for (p = ifa; p; p = p->ifa_next) {
		if (!p->ifa_addr || p->ifa_addr->sa_family != AF_INET)
			continue;
		const struct in_addr *a = &((const struct sockaddr_in *)p->ifa_addr)->sin_addr;
		uint32_t h = ntohl(a->s_addr);

		if ((h >> 24) == 127 || (h >> 16) == 0xa9fe || h == 0)
			continue;
		rc = 0;
		if (!dual_stack)
			goto out;
		break;
	}
	for (p = ifa; p; p = p->ifa_next) {
		if (!p->ifa_addr || p->ifa_addr->sa_family != AF_INET6)
			continue;
		const struct in6_addr *a = &((const struct sockaddr_in6 *)p->ifa_addr)->sin6_addr;

		if (IN6_IS_ADDR_LOOPBACK(a) || IN6_IS_ADDR_LINKLOCAL(a) || IN6_IS_ADDR_UNSPECIFIED(a))
			continue;
		rc = 1;
		break;
	}
out:
	freeifaddrs(ifa);
	return rc;
}

/* /etc/resolv.conf's nameservers split by family (Istio's DNS servers) */
static void resolv_servers(struct mesh_buf *d4, struct mesh_buf *d6)
{
	FILE *f = fopen("/etc/resolv.conf", "r");
	char line[512];

	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		char addr[64];

		if (sscanf(line, " nameserver %63s", addr) != 1)
			continue;
		if (strchr(addr, ':'))
			(void)mesh_buf_printf(d6, "%s%s", d6->len ? "," : "", addr);
		else
			(void)mesh_buf_printf(d4, "%s%s", d4->len ? "," : "", addr);
	}
	fclose(f);
}

static int on_path(const char *name)
{
	const char *path = getenv("PATH"), *p, *e;
	char full[4096];

	if (!path || !*path)
		path = "/usr/sbin:/usr/bin:/sbin:/bin";
	for (p = path; *p; p = *e ? e + 1 : e) {
		e = strchrnul(p, ':');
		if (e == p)
			continue;
		if (snprintf(full, sizeof(full), "%.*s/%s", (int)(e - p), p, name) < (int)sizeof(full) &&
		    access(full, X_OK) == 0)
			return 1;
	}
	return 0;
}

/* Run argv (PATH lookup) with in on its stdin (may be NULL) and its stdout
 * into out (may be NULL: to /dev/null); stderr passes through unless
 * quiet.  The exit status, or negative errno when it could not run. */
static int run(char *const argv[], const char *in, size_t in_len, struct mesh_buf *out, int quiet)
{
	int pin[2] = { -1, -1 }, pout[2] = { -1, -1 }, status = 0, rc;
	pid_t pid;

	if ((in && pipe2(pin, O_CLOEXEC) < 0) || (out && pipe2(pout, O_CLOEXEC) < 0)) {
		rc = -errno;
		goto out;
	}
	pid = fork();
	if (pid < 0) {
		rc = -errno;
		goto out;
	}
	if (pid == 0) {
		int null = open("/dev/null", O_RDWR);

		dup2(in ? pin[0] : null, 0);
		dup2(out ? pout[1] : null, 1);
		if (quiet)
			dup2(null, 2);
		execvp(argv[0], argv);
		_exit(127);
	}
	if (in) {
		size_t off = 0;

		close(pin[0]);
		pin[0] = -1;
		while (off < in_len) {
			ssize_t n = write(pin[1], in + off, in_len - off);

			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				break;
			off += (size_t)n;
		}
		close(pin[1]);
		pin[1] = -1;
	}
	if (out) {
		char buf[8192];
		ssize_t n;

		close(pout[1]);
		pout[1] = -1;
		while ((n = read(pout[0], buf, sizeof(buf))) != 0) {
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0 || mesh_buf_append(out, buf, (size_t)n) < 0)
				break;
		}
	}
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
out:
	if (pin[0] >= 0)
		close(pin[0]);
	if (pin[1] >= 0)
		close(pin[1]);
	if (pout[0] >= 0)
		close(pout[0]);
	if (pout[1] >= 0)
		close(pout[1]);
	return rc;
}

/* `BIN -t TABLE` + the words of text (one space between words: the text
 * is ours or iptables-save's), with the rule's -A/-I POS turned into op. */
static int run_rule(const char *bin, const char *table, const char *op, const char *text, int quiet)
{
	char copy[IPT_RULE_MAX], *argv[IPT_RULE_MAX / 2 + 4], *p;
	size_t n = 0;
	int skip_pos = 0;

	if (strlen(text) >= sizeof(copy))
		return -E2BIG;
	memcpy(copy, text, strlen(text) + 1);
	argv[n++] = (char *)bin;
	argv[n++] = "-t";
	argv[n++] = (char *)table;
	for (p = copy; *p && n < sizeof(argv) / sizeof(argv[0]) - 1;) {
		char *w = p;

		while (*p && *p != ' ')
			p++;
		if (*p)
			*p++ = '\0';
		if (!*w)
			continue;
		if (n == 3 && (!strcmp(w, "-A") || !strcmp(w, "-I"))) {
			skip_pos = !strcmp(w, "-I");
			argv[n++] = (char *)op;
			continue;
		}
		if (skip_pos && n == 5) { /* -I CHAIN POS: the position goes */
			skip_pos = 0;
			continue;
		}
		argv[n++] = w;
	}
	argv[n] = NULL;
	return run(argv, NULL, 0, NULL, quiet);
}

/* The next line of a text *cur points into (its newline replaced by a
 * NUL), *cur moved past it; NULL at the end. */
static char *next_line(char **cur)
{
	char *line = *cur, *nl;

	if (!line || !*line)
		return NULL;
	nl = strchr(line, '\n');
	if (nl) {
		*nl = '\0';
		*cur = nl + 1;
	} else {
		*cur = line + strlen(line);
	}
	return line;
}

/* Istio's cleanup (BuildCleanupFromState + BuildCleanupV4/V6): what a
 * previous run left.  From iptables-save: every rule of a built-in chain
 * jumping to an ISTIO_* chain is deleted, then every ISTIO_* chain is
 * flushed and removed; the rules this configuration adds to built-in
 * chains (exclusions, marks) are deleted too (quietly: they may be gone).
 * Without ISTIO_* chains nothing is touched unless force (--cleanup-only).
 * Returns 1 when something was found, 0 when clean, negative errno. */
static int cleanup(const char *fam_bin, const char *save_bin, const char *planned, int force)
{
	struct mesh_buf save, chains;
	char table[16] = "";
	char *p, *line;
	int found = 0, rc;
	char *argv[] = { (char *)save_bin, NULL };

	mesh_buf_init(&save, IPT_SAVE_MAX);
	mesh_buf_init(&chains, 64 * 1024);
	rc = run(argv, NULL, 0, &save, 1);
	if (rc != 0) {
		rc = rc < 0 ? rc : 0; /* no state to read: nothing to clean, as Istio assumes */
		goto out;
	}
	if (mesh_buf_putc(&save, '\0') < 0) {
		rc = -ENOMEM;
		goto out;
	}
	for (p = save.data; (line = next_line(&p)) != NULL;) {
		if (line[0] == '*') {
			snprintf(table, sizeof(table), "%s", line + 1);
		} else if (!strncmp(line, ":ISTIO_", 7)) {
			char *sp = strchr(line, ' ');

			if (sp)
				*sp = '\0';
			found = 1;
			(void)mesh_buf_printf(&chains, "%s %s\n", table, line + 1);
		} else if (!strncmp(line, "-A ", 3) && strncmp(line, "-A ISTIO_", 9) && strstr(line, " -j ISTIO_")) {
			found = 1;
			(void)run_rule(fam_bin, table, "-D", line, 0);
		}
	}
	if (!found && !force) {
		rc = 0;
		goto out;
	}
	/* this configuration's own rules in built-in chains */
	if (mesh_buf_putc(&chains, '\0') < 0) {
		rc = -ENOMEM;
		goto out;
	}
	{
		char *copy = strdup(planned);

		if (!copy) {
			rc = -ENOMEM;
			goto out;
		}
		table[0] = '\0';
		for (p = copy; (line = next_line(&p)) != NULL;) {
			if (line[0] == '*')
				snprintf(table, sizeof(table), "%s", line + 2);
			else if ((!strncmp(line, "-A ", 3) || !strncmp(line, "-I ", 3)) && strncmp(line + 3, "ISTIO_", 6) &&
				 !strstr(line, " -j ISTIO_"))
				(void)run_rule(fam_bin, table, "-D", line, 1);
		}
		free(copy);
	}
	/* flush every chain first: they jump to each other */
	for (int pass = 0; pass < 2; pass++) {
		char *copy = strdup(chains.data);

		if (!copy) {
			rc = -ENOMEM;
			goto out;
		}
		for (p = copy; (line = next_line(&p)) != NULL;) {
			char t[16], c[64];
			char *fx[] = { (char *)fam_bin, "-t", t, pass ? "-X" : "-F", c, NULL };

			if (sscanf(line, "%15s %63s", t, c) == 2)
				(void)run(fx, NULL, 0, NULL, 0);
		}
		free(copy);
	}
	rc = 1;
out:
	mesh_buf_cleanup(&save);
	mesh_buf_cleanup(&chains);
	return rc;
}

/* configureTProxyRoutes(): with TPROXY and inbound capture, packets
 * marked by ISTIO_DIVERT (and the replies the proxy's original_src
 * sockets mark) are routed to lo by a rule and a local default route in
 * their own table, per family: `ip -4|-6 rule add fwmark MARK lookup
 * TABLE` and `ip -4|-6 route add local default dev lo table TABLE`.
 * Ours on top: `ip -4 rule add from 127.0.0.0/8 lookup TABLE` (-6: from
 * ::1/128).  The application's answer to a connection original_src made
 * from a client's address to its loopback endpoint (inbound|PORT||,
 * 127.0.0.1) leaves from 127.0.0.1 towards that client: its first route
 * lookup, before the connmark restores the mark, is refused (a loopback
 * source off lo) and the handshake never completes; the rule sends it to
 * lo, where the proxy's transparent socket takes it.  Nothing else can
 * leave from a loopback address to another host, so nothing else
 * changes (unlike route_localnet, which would also let the pod's
 * neighbours reach its loopback-only ports).
 * Each is added only when not there yet (listed first), so a re-run
 * changes nothing; del (--cleanup-only) removes them instead, quietly.
 * show: print the commands as iptables-restore comments (--dry-run) and
 * run nothing.  0, or 1 (reason on stderr). */
static int tproxy_routes(const struct ipt_opts *o, int fam, int show, int del)
{
	const char *f = fam ? "-6" : "-4";
	char *rule_ls[] = { "ip", (char *)f, "rule", "list", "fwmark", (char *)o->tproxy_mark, "lookup",
			    (char *)o->tproxy_route_table, NULL };
	char *rule_op[] = { "ip", (char *)f, "rule", del ? "del" : "add", "fwmark", (char *)o->tproxy_mark,
			    "lookup", (char *)o->tproxy_route_table, NULL };
	char *route_ls[] = { "ip", (char *)f, "route", "list", "table", (char *)o->tproxy_route_table, "type",
			     "local", "default", "dev", "lo", NULL };
	char *route_op[] = { "ip", (char *)f, "route", del ? "del" : "add", "local", "default", "dev", "lo",
			     "table", (char *)o->tproxy_route_table, NULL };
	char *lo_ls[] = { "ip", (char *)f, "rule", "list", "from", fam ? "::1/128" : "127.0.0.0/8", "lookup",
			  (char *)o->tproxy_route_table, NULL };
	char *lo_op[] = { "ip", (char *)f, "rule", del ? "del" : "add", "from", fam ? "::1/128" : "127.0.0.0/8",
			  "lookup", (char *)o->tproxy_route_table, NULL };
	char *const *cmds[3][2] = { { rule_ls, rule_op }, { route_ls, route_op }, { lo_ls, lo_op } };
	int i, rc;

	if (strcmp(o->mode, "TPROXY") || !*o->inbound_ports)
		return 0;
	for (i = 0; i < 3; i++) {
		char *const *op = cmds[i][1];
		struct mesh_buf ls;
		int there;

		if (show) {
			int w;

			fputs("#", stdout);
			for (w = 0; op[w]; w++)
				printf(" %s", op[w]);
			fputs("\n", stdout);
			continue;
		}
		mesh_buf_init(&ls, 64 * 1024);
		rc = run(cmds[i][0], NULL, 0, &ls, 1);
		there = rc == 0 && ls.len > 0;
		mesh_buf_cleanup(&ls);
		if (del ? !there : there)
			continue;
		rc = run(op, NULL, 0, NULL, del);
		if (rc != 0 && !del) {
			fprintf(stderr, "meshproxy iptables: ip %s %s add for TPROXY failed (%s %d; needs CAP_NET_ADMIN; "
					"Debian: apt-get install iproute2)\n", f, op[2], rc < 0 ? "error" : "exit status",
				rc < 0 ? -rc : rc);
			return 1;
		}
	}
	return 0;
}

/* What the configuration needs from the host: the families (o->ipv6 < 0:
 * decided from the local addresses as Istio does) and, for DNS capture,
 * the servers (--dns-servers, else /etc/resolv.conf) split by family into
 * d4/d6 as comma lists.  0 or negative errno (reason on err). */
static int ipt_prepare(struct ipt_opts *o, struct mesh_buf *d4, struct mesh_buf *d6, FILE *err)
{
	int rc;

	if (o->ipv6 < 0) {
		rc = local_ipv6(o->dual_stack);
		if (rc < 0) {
			fprintf(err, "meshproxy iptables: no valid local IP address found (--ipv6 or --ipv6=false "
				     "chooses the families without one)\n");
			return rc;
		}
		o->ipv6 = rc;
	}
	if (o->redirect_dns && !o->capture_all_dns) {
		if (o->dns_servers) {
			struct ipt_items it;
			size_t i;

			if (items_split(&it, o->dns_servers) < 0) {
				fprintf(err, "meshproxy iptables: --dns-servers: list too long\n");
				return -EINVAL;
			}
			for (i = 0; i < it.n; i++) {
				struct mesh_buf *d = strchr(it.v[i], ':') ? d6 : d4;

				(void)mesh_buf_printf(d, "%s%s", d->len ? "," : "", it.v[i]);
			}
		} else {
			resolv_servers(d4, d6);
		}
	}
	if (mesh_buf_putc(d4, '\0') < 0 || mesh_buf_putc(d6, '\0') < 0)
		return -ENOMEM;
	/* the NULs are not part of the lists */
	d4->len--;
	d6->len--;
	return 0;
}

int ipt_render(struct ipt_opts *o, struct mesh_buf *out, FILE *err)
{
	struct mesh_buf d4, d6, v6;
	int rc;

	mesh_buf_init(&d4, 4096);
	mesh_buf_init(&d6, 4096);
	mesh_buf_init(&v6, 1 << 20);
	rc = ipt_prepare(o, &d4, &d6, err);
	if (rc >= 0)
		rc = ipt_build(o, d4.len ? d4.data : NULL, d6.len ? d6.data : NULL, out, &v6, err);
	if (rc >= 0 && o->ipv6 > 0)
		rc = mesh_buf_append(out, v6.data ? v6.data : "", v6.len);
	mesh_buf_cleanup(&d4);
	mesh_buf_cleanup(&d6);
	mesh_buf_cleanup(&v6);
	return rc < 0 ? rc : 0;
}

/* --network-namespace: the rules go into that namespace (istio-iptables
 * does its work there); a NAME is /var/run/netns/NAME as `ip netns` keeps
 * them.  0 or negative errno (reason on stderr). */
static int enter_netns(const char *ns)
{
	char path[512];
	int fd, rc = 0;

	if (strchr(ns, '/'))
		snprintf(path, sizeof(path), "%s", ns);
	else
		snprintf(path, sizeof(path), "/var/run/netns/%s", ns);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || setns(fd, CLONE_NEWNET) < 0) {
		rc = -errno;
		fprintf(stderr, "meshproxy iptables: --network-namespace %s: %s\n", path, strerror(-rc));
	}
	if (fd >= 0)
		close(fd);
	return rc;
}

static const char *real_env(const char *name)
{
	return getenv(name);
}

int ipt_main(int argc, char **argv)
{
	struct ipt_opts o;
	struct mesh_buf v4, v6, d4, d6;
	int rc, code = 1, fam;

	mesh_buf_init(&v4, 1 << 20);
	mesh_buf_init(&v6, 1 << 20);
	mesh_buf_init(&d4, 4096);
	mesh_buf_init(&d6, 4096);
	rc = ipt_opts_parse(&o, argc, argv, real_env, stdout, stderr);
	if (rc != 0) {
		code = rc > 0 ? 0 : 1;
		goto out;
	}
	/* first: the pod's addresses (IPv6 or not) are read there too */
	if (o.network_namespace && *o.network_namespace && enter_netns(o.network_namespace) < 0)
		goto out;
	rc = ipt_prepare(&o, &d4, &d6, stderr);
	if (rc < 0)
		goto out;
	rc = ipt_build(&o, d4.len ? d4.data : NULL, d6.len ? d6.data : NULL, &v4, &v6, stderr);
	if (rc < 0 || mesh_buf_putc(&v4, '\0') < 0 || mesh_buf_putc(&v6, '\0') < 0)
		goto out;
	if (o.dry_run) {
		/* what istio-iptables hands iptables-restore --noflush, family by
		 * family, each followed by its TPROXY policy routing as comments
		 * (iptables-restore skips them) */
		fputs(v4.data, stdout);
		(void)tproxy_routes(&o, 0, 1, 0);
		if (o.ipv6) {
			fputs(v6.data, stdout);
			(void)tproxy_routes(&o, 1, 1, 0);
		}
		code = 0;
		goto out;
	}
	if (o.skip_rule_apply) {
		code = 0;
		goto out;
	}
	if (o.redirect_dns) {
		fprintf(stderr, "meshproxy iptables: DNS capture is printed by --dry-run but not applied: meshproxy "
				"has no DNS proxy on 15053\n");
		goto out;
	}
	if (geteuid() != 0) {
		fprintf(stderr, "meshproxy iptables: must run as root (CAP_NET_ADMIN in the pod's network namespace); "
				"--dry-run prints the rules without it\n");
		goto out;
	}
	for (fam = 0; fam < 1 + (o.ipv6 > 0); fam++) {
		const char *bin = fam ? "ip6tables" : "iptables";
		const char *save = fam ? "ip6tables-save" : "iptables-save";
		const char *restore = fam ? "ip6tables-restore" : "iptables-restore";
		const struct mesh_buf *in = fam ? &v6 : &v4;
		char *rargv[] = { (char *)restore, "--noflush", NULL };

		if (!on_path(bin) || !on_path(save) || !on_path(restore)) {
			fprintf(stderr, "meshproxy iptables: %s, %s or %s not found on PATH (Debian: apt-get install iptables)\n",
				bin, save, restore);
			goto out;
		}
		rc = cleanup(bin, save, in->data, o.cleanup_only);
		if (rc < 0) {
			fprintf(stderr, "meshproxy iptables: cleanup of earlier rules failed: %s\n", strerror(-rc));
			goto out;
		}
		if (rc > 0)
			fprintf(stderr, "meshproxy iptables: %s: earlier ISTIO_* chains removed\n", bin);
		if (o.cleanup_only) {
			(void)tproxy_routes(&o, fam, 0, 1);
			continue;
		}
		if (!in->data[0])
			continue;
		rc = run(rargv, in->data, strlen(in->data), NULL, 0);
		if (rc != 0) {
			fprintf(stderr, "meshproxy iptables: %s --noflush failed (%s %d); its input was:\n%s", restore,
				rc < 0 ? "error" : "exit status", rc < 0 ? -rc : rc, in->data);
			goto out;
		}
		if (fam) {
			/* configureIPv6Addresses(): ::6 on lo, the source of inbound
			 * passthrough connections (IPv6 lo has ::1/128 only, IPv4's
			 * 127/8 holds 127.0.0.6 already); replace: idempotent */
			char *aargv[] = { "ip", "-6", "addr", "replace", "::6/128", "dev", "lo", NULL };

			rc = run(aargv, NULL, 0, NULL, 0);
			if (rc != 0) {
				fprintf(stderr, "meshproxy iptables: ip -6 addr replace ::6/128 dev lo failed (%s %d; "
						"Debian: apt-get install iproute2)\n", rc < 0 ? "error" : "exit status",
					rc < 0 ? -rc : rc);
				goto out;
			}
		}
		if (tproxy_routes(&o, fam, 0, 0) != 0)
			goto out;
	}
	code = 0;
out:
	mesh_buf_cleanup(&v4);
	mesh_buf_cleanup(&v6);
	mesh_buf_cleanup(&d4);
	mesh_buf_cleanup(&d6);
	return code;
}
