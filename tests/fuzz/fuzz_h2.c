/*
 * fuzz_h2.c - libFuzzer target for meshproxy's HTTP/2 glue (dataplane/h2.c
 * over nghttp2), server side, make fuzz: the input is the bytes a client
 * sends after the connection preface.
 *
 * One engine for the process (the loop runs on the fuzzer's thread), with
 * a snapshot from tests/unit/dataplane/pxspec.h: virtualOutbound and a
 * listener 9080 whose routes answer directly (/direct), redirect
 * (/redir), or go to a cluster whose only endpoint refuses connections
 * (127.0.0.1:1, a 503 from the proxy itself), so no input needs a
 * backend.  Per input: a loopback connection to the outbound port, the
 * preface and the input written, the loop run until it has nothing left to
 * do (no callback and no byte to the client for a few rounds: rounds are
 * counted, never timed), the connection closed and the loop run until the
 * proxy let go of it.
 * Sniffing, the HTTP/2 session, its streams' socketpairs into the
 * HTTP/1.1 stream logic, routing and local replies all run, as for a real
 * client (FUZZ_H2_VERBOSE set: one line per input, bytes back).  Invariants: no crash, leak or sanitizer report; the proxy
 * answers (a SETTINGS frame at least) before it closes.
 */
#include "dataplane/engine.h"
#include "dataplane/ev.h"
#include "tests/unit/dataplane/pxspec.h"

#include "common/log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char PREFACE[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

static const char *SPEC = "outbound registry_only\n"
			  "listener 9080\n"
			  "vhost 9080 r reviews,reviews:9080\n"
			  "route 9080 r /direct direct=200:hello\n"
			  "route 9080 r /redir redirect=other/x\n"
			  "route 9080 r / cluster=outbound|9080||reviews retries=1\n"
			  "cluster outbound|9080||reviews eds 127.0.0.1:1\n";

static struct ev_loop *loop;
static struct engine *eng;

static void setup(void)
{
	struct engine_opts o = { .outbound_addr = "127.0.0.1:0", .inbound_addr = "127.0.0.1:0" };
	struct px_snapshot *s = NULL;
	char err[256] = "";

	signal(SIGPIPE, SIG_IGN);
	mesh_log_set_level(MESH_LOG_OFF);
	loop = ev_loop_new();
	if (loop == NULL || engine_new(loop, &o, &eng) != 0)
		abort();
	if (pxspec_build(SPEC, &s, err, sizeof(err)) != 0 || engine_apply(eng, s, err, sizeof(err)) != 0) {
		fprintf(stderr, "fuzz_h2: %s\n", err);
		abort();
	}
	px_snapshot_unref(s);
}

static uint64_t activity(void)
{
	struct ev_stats st;

	ev_get_stats(loop, &st);
	return st.io_callbacks + st.timers_fired + st.defers_run;
}

/* Runs the loop until a few rounds in a row do nothing and fd (when not
 * -1) receives nothing; *got counts what it received; returns 1 when the
 * proxy closed fd's connection. */
static int settle(int fd, size_t *got)
{
	char buf[16384];
	int quiet = 0, rounds = 0;

	while (quiet < 4 && rounds++ < 100000) {
		uint64_t before = activity();
		int moved = 0;

		if (ev_run_once(loop, 0) < 0)
			abort();
		if (fd >= 0) {
			ssize_t r;

			while ((r = read(fd, buf, sizeof(buf))) > 0) {
				*got += (size_t)r;
				moved = 1;
			}
			if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK))
				return 1;
		}
		quiet = (moved || activity() != before) ? 0 : quiet + 1;
	}
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sockaddr_in sa;
	size_t got = 0, off = 0;
	int fd, closed;

	if (eng == NULL)
		setup();
	fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0)
		abort();
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sa.sin_port = htons((uint16_t)engine_outbound_port(eng));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
		abort();
	if (fcntl(fd, F_SETFL, O_NONBLOCK) != 0 || write(fd, PREFACE, sizeof(PREFACE) - 1) != sizeof(PREFACE) - 1)
		abort();
	closed = settle(fd, &got);
	/* the input, in pieces the loop takes in between */
	while (off < size && !closed) {
		ssize_t w = write(fd, data + off, size - off);

		if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
			break; /* the proxy reset the connection */
		if (w > 0)
			off += (size_t)w;
		closed = settle(fd, &got);
	}
	if (!closed)
		closed = settle(fd, &got);
	/* the proxy's SETTINGS went out first, whatever followed */
	if (got == 0 && !closed)
		abort();
	if (getenv("FUZZ_H2_VERBOSE") != NULL)
		fprintf(stderr, "fuzz_h2: %zu bytes in, %zu bytes back, %s\n", size, got,
			closed ? "closed by the proxy" : "open");
	close(fd);
	settle(-1, &got);
	return 0;
}
