/*
 * pxserve.c - the proxy engine with a configuration from a spec file
 * (tests/unit/dataplane/pxspec.h) instead of xDS: what the integration
 * tests (tests/integration/test_meshproxy_http.py) and the proxy benchmark
 * run until meshproxy's xDS client (branch pxxds) merges.  Same loop,
 * engine and admin port as meshproxy; SIGHUP re-reads the spec and applies
 * it (a config swap between requests), SIGTERM drains, SIGINT exits.
 *
 *   pxserve --spec FILE [--outbound-addr A] [--inbound-addr A] [--admin-addr A] [--access-log PATH|-]
 *           [--router 1]   (a gateway: only the spec's bound listeners, as meshproxy --node-id router~...)
 * Prints "ready outbound=PORT inbound=PORT admin=PORT" on stdout once listening.
 */
#include "common/log.h"
#include "dataplane/admin.h"
#include "dataplane/engine.h"
#include "tests/unit/dataplane/pxspec.h"

#include <malloc.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

static const char *spec_path;
static struct engine *engine;

static int apply_file(void)
{
	struct px_snapshot *s = NULL;
	char err[512] = "", *text;
	FILE *f = fopen(spec_path, "r");
	long n;
	int rc;

	if (!f)
		return -errno;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	text = calloc(1, (size_t)n + 1);
	if (fread(text, 1, (size_t)n, f) != (size_t)n) {
		fclose(f);
		free(text);
		return -EIO;
	}
	fclose(f);
	rc = pxspec_build(text, &s, err, sizeof(err));
	free(text);
	if (rc < 0) {
		fprintf(stderr, "pxserve: spec: %s\n", err);
		return rc;
	}
	rc = engine_apply(engine, s, err, sizeof(err));
	px_snapshot_unref(s);
	if (rc < 0)
		fprintf(stderr, "pxserve: apply: %s\n", err);
	/* the spec's protobuf-c building is this harness's, not meshproxy's:
	 * give its freed heap back so the RSS the benchmark reads is the engine's */
	malloc_trim(0);
	return rc;
}

static void drained(void *arg)
{
	ev_stop(arg);
}

static void sig_cb(struct ev_loop *loop, struct ev_io *io, unsigned events)
{
	struct signalfd_siginfo si;

	(void)events;
	while (read(io->fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		if (si.ssi_signo == SIGHUP) {
			int rc = apply_file();

			fprintf(stderr, "pxserve: reload: %s\n", rc < 0 ? "rejected" : "applied");
		} else if (si.ssi_signo == SIGTERM) {
			engine_drain(engine, drained, loop);
		} else {
			ev_stop(loop);
		}
	}
}

static int pages(void *ctx, const char *path, size_t plen, struct mesh_buf *out, const char **ct)
{
	return engine_admin_page(ctx, path, plen, out, ct);
}

int main(int argc, char **argv)
{
	struct engine_opts eo = { .outbound_addr = "127.0.0.1:15001", .inbound_addr = "127.0.0.1:15006" };
	eo.exit_on_zero = 1; /* a test and bench tool: SIGTERM ends as soon as nothing is left */
	const char *admin_addr = "127.0.0.1:0";
	struct ev_loop *loop;
	struct admin *admin = NULL;
	struct admin_info info = { .version = "pxserve", .node_id = "pxserve" };
	struct ev_io sio;
	sigset_t mask;
	int i, sfd, rc;

	for (i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--spec"))
			spec_path = argv[i + 1];
		else if (!strcmp(argv[i], "--outbound-addr"))
			eo.outbound_addr = argv[i + 1];
		else if (!strcmp(argv[i], "--inbound-addr"))
			eo.inbound_addr = argv[i + 1];
		else if (!strcmp(argv[i], "--admin-addr"))
			admin_addr = argv[i + 1];
		else if (!strcmp(argv[i], "--access-log"))
			eo.access_log = argv[i + 1];
		else if (!strcmp(argv[i], "--router"))
			eo.router = atoi(argv[i + 1]); /* issue 13: meshproxy's node type router */
		else if (!strcmp(argv[i], "--log-level"))
			mesh_log_setup(argv[i + 1], "text");
	}
	if (!spec_path) {
		fprintf(stderr, "usage: pxserve --spec FILE [--outbound-addr A] [--inbound-addr A] [--admin-addr A] [--access-log P]\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	loop = ev_loop_new();
	if (!loop || sfd < 0 || engine_new(loop, &eo, &engine) < 0)
		return 1;
	ev_io_init(&sio, sfd, sig_cb, NULL);
	if (ev_io_start(loop, &sio, EV_READ) < 0)
		return 1;
	if (apply_file() < 0)
		return 1;
	info.ready = engine_ready_flag(engine);
	info.start_ms = ev_now(loop);
	rc = admin_start(loop, admin_addr, &info, &admin);
	if (rc < 0) {
		fprintf(stderr, "pxserve: admin %s: %s\n", admin_addr, strerror(-rc));
		return 1;
	}
	admin_set_pages(admin, pages, engine);
	/* as meshproxy's main: the admin port is never an upstream (the loop guard) */
	if (engine_self_add(engine, admin_addr, admin_port(admin)) < 0)
		return 1;
	printf("ready outbound=%d inbound=%d admin=%d\n", engine_outbound_port(engine), engine_inbound_port(engine),
	       admin_port(admin));
	fflush(stdout);
	rc = ev_run(loop);
	admin_free(admin);
	engine_free(engine);
	ev_io_stop(loop, &sio);
	ev_loop_free(loop);
	close(sfd);
	return rc < 0 ? 1 : 0;
}
