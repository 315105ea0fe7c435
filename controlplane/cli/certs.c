/*
 * certs.c - "meshctl certs": the workload side of meshd's CA for
 * proxyless gRPC applications (what istio-agent does for a sidecar).
 *
 * Each round makes a fresh EC P-256 key and CSR, reads the bearer token
 * file again (projected tokens rotate), calls CreateCertificate over TLS
 * with gRPC core, checks the answer (the leaf holds our key and verifies
 * up to the root), and publishes DIR/root-cert.pem, DIR/key.pem (0600) and
 * DIR/cert-chain.pem (leaf + intermediates) as one version: the files go
 * into a new directory and one symlink swap makes them current together,
 * so gRPC's file_watcher certificate provider never reads a half-written
 * file nor a key with another version's certificate (see certs_write).
 * Renewal happens at half the lifetime, counted from when we asked (the CA
 * backdates notBefore by CA_BACKDATE_SECONDS for clock skew, which must not
 * shorten the wait: a 20s certificate would otherwise look already half
 * spent), and never sooner than CERTS_RENEW_MIN_SECONDS; failures are
 * retried with exponential backoff (1s doubling to 60s).
 *
 * Trust: --root-cert PATH verifies meshd's serving certificate.  With
 * --insecure-bootstrap (explicit) the first call does not verify the
 * server and the root it returns is trusted from then on.
 */
#include "controlplane/cli/certs.h"

#include "common/duration.h"
#include "common/err.h"
#include "common/file.h"
#include "common/log.h"
#include "common/pem.h"
#include "controlplane/ca/ca.h"
#include "controlplane/ca/ca_auth.h"

#include "security/v1alpha1/ca.pb-c.h"

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define SCOPE "certs"
#define CERTS_METHOD "/istio.v1.auth.IstioCertificateService/CreateCertificate"
#define CERTS_CALL_TIMEOUT_MS 30000
#define CERTS_MAX_RESPONSE_BYTES (1024 * 1024)
#define CERTS_MAX_ROOT_BYTES (1024 * 1024)
#define CERTS_BACKOFF_MIN 1
#define CERTS_BACKOFF_MAX 60
#define CERTS_RENEW_MIN_SECONDS 1
#define CERTS_PATH_CAP 4096
#define CERTS_ERR_CAP 512

struct certs_opts {
	const char *ca_addr;
	const char *root_cert;
	int insecure;
	const char *token_file;
	const char *dir;
	const char *server_name;
	int64_t ttl_s;
	int once;
	int print_bootstrap;
};

struct issued {
	char *chain;      /* leaf + intermediates */
	char *key;
	char *root;
	char spiffe[CA_ERR_CAP];
	time_t asked_at;  /* our clock when the request went out */
	time_t not_before, not_after;
};

static void issued_cleanup(struct issued *i)
{
	free(i->chain);
	if (i->key) {
		OPENSSL_cleanse(i->key, strlen(i->key));
		free(i->key);
	}
	free(i->root);
	memset(i, 0, sizeof(*i));
}

static void certs_usage(FILE *f)
{
	fprintf(f, "usage: meshctl certs --ca-addr HOST:PORT (--root-cert PATH | --insecure-bootstrap)\n"
		   "                     --token-file PATH --dir DIR [--ttl DUR] [--once] [--server-name NAME]\n"
		   "       meshctl certs --print-bootstrap --dir DIR\n"
		   "\n"
		   "Gets a workload certificate from meshd's CA and keeps it fresh in DIR\n"
		   "(cert-chain.pem, key.pem, root-cert.pem), renewing at half its lifetime.\n"
		   "The three names are symlinks into DIR/..data, itself a symlink to a versioned\n"
		   "directory (..certs-TIME.XXXXXX) that each renewal replaces in one rename, so a\n"
		   "reader such as gRPC's file_watcher never pairs a new key with an old certificate.\n"
		   "  --root-cert PATH       roots that verify meshd's TLS port\n"
		   "  --insecure-bootstrap   do not verify meshd the first time; trust the root it returns\n"
		   "  --token-file PATH      bearer token for the CA (re-read for every request)\n"
		   "  --ttl DUR              requested lifetime (default: the CA's)\n"
		   "  --once                 get one certificate and exit\n"
		   "  --print-bootstrap      print gRPC's file_watcher certificate provider config for DIR\n"
		   "                         and exit (only --dir is needed)\n"
		   "  --server-name NAME     name to verify in meshd's certificate (default: the host of --ca-addr)\n");
}

static grpc_channel_credentials *make_creds(const char *root_pem)
{
	grpc_tls_credentials_options *o;
	grpc_tls_certificate_verifier *v;
	grpc_channel_credentials *c;

	if (root_pem)
		return grpc_ssl_credentials_create_ex(root_pem, NULL, NULL, NULL);
	/* --insecure-bootstrap: encrypted, but the server is not verified */
	o = grpc_tls_credentials_options_create();
	v = grpc_tls_certificate_verifier_no_op_create();
	grpc_tls_credentials_options_set_verify_server_cert(o, 0);
	grpc_tls_credentials_options_set_check_call_host(o, 0);
	grpc_tls_credentials_options_set_certificate_verifier(o, v);
	c = grpc_tls_credentials_create(o);
	grpc_tls_certificate_verifier_release(v);
	return c;
}

/* One CreateCertificate call; *resp gets the response bytes. */
static int call_ca(const struct certs_opts *o, const char *root_pem, const char *token, const uint8_t *req,
		   size_t reqlen, grpc_slice *resp, char *err, size_t cap)
{
	grpc_channel_credentials *creds = make_creds(root_pem);
	grpc_channel *ch = NULL;
	grpc_completion_queue *cq = grpc_completion_queue_create_for_pluck(NULL);
	grpc_call *call = NULL;
	grpc_arg arg;
	grpc_channel_args args = { 0, NULL };
	grpc_metadata md;
	grpc_metadata_array md_init, md_trail;
	grpc_byte_buffer *send = NULL, *recv = NULL;
	grpc_slice s, details = grpc_empty_slice(), method;
	grpc_status_code status = GRPC_STATUS_UNKNOWN;
	grpc_op ops[6];
	grpc_event ev;
	char auth[CA_AUTH_MAX_TOKEN + 16];
	gpr_timespec deadline = gpr_time_add(gpr_now(GPR_CLOCK_REALTIME),
					     gpr_time_from_millis(CERTS_CALL_TIMEOUT_MS, GPR_TIMESPAN));
	int rc = -MESH_EGRPC;

	*resp = grpc_empty_slice();
	grpc_metadata_array_init(&md_init);
	grpc_metadata_array_init(&md_trail);
	if (!creds || !cq) {
		snprintf(err, cap, "cannot set up TLS credentials");
		goto out;
	}
	if (o->server_name) {
		arg.type = GRPC_ARG_STRING;
		arg.key = GRPC_SSL_TARGET_NAME_OVERRIDE_ARG;
		arg.value.string = (char *)o->server_name;
		args.num_args = 1;
		args.args = &arg;
	}
	ch = grpc_channel_create(o->ca_addr, creds, &args);
	method = grpc_slice_from_static_string(CERTS_METHOD);
	call = grpc_channel_create_call(ch, NULL, GRPC_PROPAGATE_DEFAULTS, cq, method, NULL, deadline, NULL);
	if (!call) {
		snprintf(err, cap, "cannot create a call to %s", o->ca_addr);
		goto out;
	}
	snprintf(auth, sizeof(auth), "Bearer %s", token);
	memset(&md, 0, sizeof(md));
	md.key = grpc_slice_from_static_string("authorization");
	md.value = grpc_slice_from_copied_string(auth);
	OPENSSL_cleanse(auth, sizeof(auth));
	s = grpc_slice_from_copied_buffer((const char *)req, reqlen);
	send = grpc_raw_byte_buffer_create(&s, 1);
	grpc_slice_unref(s);
	memset(ops, 0, sizeof(ops));
	ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
	ops[0].data.send_initial_metadata.count = 1;
	ops[0].data.send_initial_metadata.metadata = &md;
	ops[1].op = GRPC_OP_SEND_MESSAGE;
	ops[1].data.send_message.send_message = send;
	ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
	ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
	ops[3].data.recv_initial_metadata.recv_initial_metadata = &md_init;
	ops[4].op = GRPC_OP_RECV_MESSAGE;
	ops[4].data.recv_message.recv_message = &recv;
	ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
	ops[5].data.recv_status_on_client.trailing_metadata = &md_trail;
	ops[5].data.recv_status_on_client.status = &status;
	ops[5].data.recv_status_on_client.status_details = &details;
	if (grpc_call_start_batch(call, ops, 6, (void *)1, NULL) != GRPC_CALL_OK) {
		grpc_slice_unref(md.value);
		snprintf(err, cap, "cannot start the call");
		goto out;
	}
	ev = grpc_completion_queue_pluck(cq, (void *)1, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
	grpc_slice_unref(md.value);
	if (ev.type != GRPC_OP_COMPLETE) {
		snprintf(err, cap, "the call did not complete");
		goto out;
	}
	if (status != GRPC_STATUS_OK) {
		char *d = grpc_slice_to_c_string(details);
		snprintf(err, cap, "CreateCertificate: %s (code %d): %s",
			 status == GRPC_STATUS_UNAUTHENTICATED ? "UNAUTHENTICATED"
			 : status == GRPC_STATUS_UNAVAILABLE    ? "UNAVAILABLE"
			 : status == GRPC_STATUS_INVALID_ARGUMENT ? "INVALID_ARGUMENT"
								  : "error",
			 (int)status, d);
		gpr_free(d);
		goto out;
	}
	if (!recv) {
		snprintf(err, cap, "CreateCertificate returned no message");
		goto out;
	}
	{
		grpc_byte_buffer_reader r;
		if (!grpc_byte_buffer_reader_init(&r, recv)) {
			snprintf(err, cap, "cannot read the response");
			goto out;
		}
		*resp = grpc_byte_buffer_reader_readall(&r);
		grpc_byte_buffer_reader_destroy(&r);
	}
	if (GRPC_SLICE_LENGTH(*resp) > CERTS_MAX_RESPONSE_BYTES) {
		snprintf(err, cap, "response larger than %d bytes", CERTS_MAX_RESPONSE_BYTES);
		grpc_slice_unref(*resp);
		*resp = grpc_empty_slice();
		rc = -MESH_ETOOBIG;
		goto out;
	}
	rc = 0;
out:
	if (send)
		grpc_byte_buffer_destroy(send);
	if (recv)
		grpc_byte_buffer_destroy(recv);
	grpc_slice_unref(details);
	grpc_metadata_array_destroy(&md_init);
	grpc_metadata_array_destroy(&md_trail);
	if (call)
		grpc_call_unref(call);
	if (ch)
		grpc_channel_destroy(ch);
	if (cq) {
		grpc_completion_queue_shutdown(cq);
		while (grpc_completion_queue_pluck(cq, NULL, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
		       GRPC_QUEUE_SHUTDOWN)
			;
		grpc_completion_queue_destroy(cq);
	}
	if (creds)
		grpc_channel_credentials_release(creds);
	return rc;
}

static void spiffe_of(X509 *x, char *out, size_t cap)
{
	GENERAL_NAMES *gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	int i, type;

	snprintf(out, cap, "(no URI SAN)");
	for (i = 0; gens && i < sk_GENERAL_NAME_num(gens); i++) {
		ASN1_STRING *s = GENERAL_NAME_get0_value(sk_GENERAL_NAME_value(gens, i), &type);
		if (type == GEN_URI) {
			snprintf(out, cap, "%.*s", ASN1_STRING_length(s), (const char *)ASN1_STRING_get0_data(s));
			break;
		}
	}
	GENERAL_NAMES_free(gens);
}

static time_t time_of(const ASN1_TIME *t)
{
	struct tm tm;

	memset(&tm, 0, sizeof(tm));
	return ASN1_TIME_to_tm(t, &tm) == 1 ? timegm(&tm) : 0;
}

/* Check the response and split it: leaf holds key, chain verifies to the
 * root it ends with, which verifies against trust (when given). */
static int check_response(const Istio__V1__Auth__IstioCertificateResponse *r, EVP_PKEY *key, const char *trust_pem,
			  struct issued *out, char *err, size_t cap)
{
	STACK_OF(X509) *certs = sk_X509_new_null(), *mid = sk_X509_new_null(), *trust = NULL;
	X509_STORE *store = X509_STORE_new();
	X509_STORE_CTX *ctx = X509_STORE_CTX_new();
	X509 *leaf, *root;
	size_t i;
	int j, n, rc = -MESH_ESEMANTIC;

	if (!certs || !mid || !store || !ctx) {
		rc = -ENOMEM;
		goto out;
	}
	/* an element may hold more than one certificate, or (skipped) none */
	for (i = 0; i < r->n_cert_chain; i++) {
		int prc = mesh_pem_read_certs(r->cert_chain[i], strlen(r->cert_chain[i]), &certs);
		if (prc < 0 && prc != -MESH_EPARSE) {
			snprintf(err, cap, "certificate %zu of the chain returned: %s", i, mesh_strerror(prc));
			rc = prc;
			goto out;
		}
	}
	n = sk_X509_num(certs);
	if (n < 2) {
		snprintf(err, cap, "the CA returned %d certificates; expected a leaf and a root at least", n);
		goto out;
	}
	leaf = sk_X509_value(certs, 0);
	root = sk_X509_value(certs, n - 1);
	if (X509_check_private_key(leaf, key) != 1) {
		ERR_clear_error();
		snprintf(err, cap, "the certificate returned is not for our key");
		goto out;
	}
	for (j = 1; j < n - 1; j++)
		sk_X509_push(mid, sk_X509_value(certs, j));
	if (trust_pem) {
		/* none readable: nothing is trusted and verification fails below */
		if (mesh_pem_read_certs(trust_pem, strlen(trust_pem), &trust) == -ENOMEM) {
			rc = -ENOMEM;
			goto out;
		}
		for (j = 0; trust && j < sk_X509_num(trust); j++)
			X509_STORE_add_cert(store, sk_X509_value(trust, j));
		ERR_clear_error();
		/* the returned root must itself chain to what we trust */
		sk_X509_push(mid, root);
	} else {
		X509_STORE_add_cert(store, root);
	}
	if (X509_STORE_CTX_init(ctx, store, leaf, mid) != 1 || X509_verify_cert(ctx) != 1) {
		snprintf(err, cap, "the chain returned does not verify: %s",
			 X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx)));
		ERR_clear_error();
		goto out;
	}
	/* leaf + intermediates, then the root alone */
	out->chain = mesh_pem_from_certs(certs, 0, n - 1);
	out->root = mesh_pem_from_x509(root);
	if (!out->chain || !out->root) {
		rc = -ENOMEM;
		goto out;
	}
	spiffe_of(leaf, out->spiffe, sizeof(out->spiffe));
	out->not_before = time_of(X509_get0_notBefore(leaf));
	out->not_after = time_of(X509_get0_notAfter(leaf));
	rc = 0;
out:
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(store);
	sk_X509_free(mid);
	sk_X509_pop_free(trust, X509_free);
	sk_X509_pop_free(certs, X509_free);
	return rc;
}

static int certs_issue(const struct certs_opts *o, const char *trust_pem, struct issued *out, char *err, size_t cap)
{
	Istio__V1__Auth__IstioCertificateRequest req = ISTIO__V1__AUTH__ISTIO_CERTIFICATE_REQUEST__INIT;
	Istio__V1__Auth__IstioCertificateResponse *resp = NULL;
	EVP_PKEY *key = NULL;
	char *csr = NULL, *token = NULL;
	uint8_t *wire = NULL;
	grpc_slice rs = grpc_empty_slice();
	time_t asked_at;
	size_t len;
	int rc;

	memset(out, 0, sizeof(*out));
	rc = mesh_read_file(o->token_file, CA_AUTH_MAX_TOKEN, &token, &len);
	if (rc < 0) {
		snprintf(err, cap, "--token-file %s: %s", o->token_file, mesh_strerror(rc));
		goto out;
	}
	len = strlen(token);
	while (len && (token[len - 1] == '\n' || token[len - 1] == '\r' || token[len - 1] == ' '))
		token[--len] = '\0';
	rc = mesh_pem_key_and_csr(&key, &csr);
	if (rc < 0) {
		snprintf(err, cap, "cannot make a key and CSR");
		goto out;
	}
	req.csr = csr;
	req.validity_duration = o->ttl_s;
	len = istio__v1__auth__istio_certificate_request__get_packed_size(&req);
	wire = malloc(len ? len : 1);
	if (!wire) {
		rc = -ENOMEM;
		goto out;
	}
	istio__v1__auth__istio_certificate_request__pack(&req, wire);
	asked_at = time(NULL);
	rc = call_ca(o, trust_pem, token, wire, len, &rs, err, cap);
	if (rc < 0)
		goto out;
	resp = istio__v1__auth__istio_certificate_response__unpack(NULL, GRPC_SLICE_LENGTH(rs), GRPC_SLICE_START_PTR(rs));
	if (!resp) {
		snprintf(err, cap, "malformed IstioCertificateResponse");
		rc = -MESH_EPARSE;
		goto out;
	}
	rc = check_response(resp, key, trust_pem, out, err, cap);
	if (rc < 0)
		goto out;
	out->asked_at = asked_at;
	out->key = mesh_pem_from_key(key);
	if (!out->key)
		rc = -ENOMEM;
out:
	if (rc < 0)
		issued_cleanup(out);
	if (resp)
		istio__v1__auth__istio_certificate_response__free_unpacked(resp, NULL);
	grpc_slice_unref(rs);
	free(wire);
	free(csr);
	if (token) {
		OPENSSL_cleanse(token, strlen(token));
		free(token);
	}
	EVP_PKEY_free(key);
	return rc;
}

/*
 * The files a reader sees change together.  gRPC's file_watcher provider
 * (1.51) reads key.pem and cert-chain.pem one after the other and only
 * checks that neither file's mtime moved while it read; it does not check
 * that the key belongs to the certificate.  Renaming the two files one by
 * one leaves a moment where a whole read sees the new key with the old
 * certificate, and gRPC serves that pair until its next refresh, failing
 * every handshake meanwhile.  So each rotation writes a new version
 * directory and swaps one symlink, as Kubernetes does for projected
 * volumes:
 *
 *   DIR/..certs-<UTC time>.XXXXXX/{root-cert.pem,key.pem,cert-chain.pem}
 *   DIR/..data -> ..certs-<UTC time>.XXXXXX     (replaced by one rename)
 *   DIR/NAME   -> ..data/NAME                   (made once)
 *
 * A reader that opens both files between two swaps sees one version; one
 * that straddles a swap sees the mtime change (versions are written at
 * least CERTS_RENEW_MIN_SECONDS apart, so their mtimes differ) and reads
 * again.  The previous version is kept for readers still holding its
 * names; older ones are removed.  Returns 0 or -errno, with err set.
 */
#define CERTS_VERSION_PREFIX "..certs-"
#define CERTS_DATA_LINK "..data"
#define CERTS_DATA_TMP "..data_tmp"
#define CERTS_NAME_CAP 256

static const char *const certs_files[] = { "root-cert.pem", "key.pem", "cert-chain.pem" };

static int path_in(char *out, size_t cap, const char *dir, const char *name)
{
	return snprintf(out, cap, "%s/%s", dir, name) >= (int)cap ? -ENAMETOOLONG : 0;
}

/* Point DIR/name at target with a rename over it (atomic for readers). */
static int link_atomic(const char *dir, const char *name, const char *target, const char *tmpname)
{
	char p[CERTS_PATH_CAP], tmp[CERTS_PATH_CAP], cur[CERTS_PATH_CAP];
	ssize_t n;
	int rc;

	if ((rc = path_in(p, sizeof(p), dir, name)) < 0 || (rc = path_in(tmp, sizeof(tmp), dir, tmpname)) < 0)
		return rc;
	n = readlink(p, cur, sizeof(cur) - 1);
	if (n >= 0 && (size_t)n == strlen(target) && memcmp(cur, target, (size_t)n) == 0)
		return 0;
	unlink(tmp);
	if (symlink(target, tmp) < 0)
		return -errno;
	if (rename(tmp, p) < 0) {
		rc = -errno;
		unlink(tmp);
		return rc;
	}
	return 0;
}

static void remove_version(const char *dir, const char *name)
{
	char p[CERTS_PATH_CAP], f[CERTS_PATH_CAP];
	size_t i;

	if (path_in(p, sizeof(p), dir, name) < 0)
		return;
	for (i = 0; i < sizeof(certs_files) / sizeof(certs_files[0]); i++)
		if (path_in(f, sizeof(f), p, certs_files[i]) == 0)
			unlink(f);
	if (rmdir(p) < 0)
		log_warn(SCOPE, "cannot remove old version %s: %s", p, strerror(errno));
}

/* Remove our version directories other than keep1 and keep2. */
static void prune_versions(const char *dir, const char *keep1, const char *keep2)
{
	DIR *d = opendir(dir);
	struct dirent *e;

	if (!d)
		return;
	while ((e = readdir(d)) != NULL) {
		if (strncmp(e->d_name, CERTS_VERSION_PREFIX, strlen(CERTS_VERSION_PREFIX)) != 0 ||
		    strcmp(e->d_name, keep1) == 0 || strcmp(e->d_name, keep2) == 0)
			continue;
		remove_version(dir, e->d_name);
	}
	closedir(d);
}

static int certs_write(const char *dir, const struct issued *is, char *err, size_t cap)
{
	const char *data[] = { is->root, is->key, is->chain };
	const unsigned modes[] = { 0644, 0600, 0644 };
	char ver[CERTS_PATH_CAP], p[CERTS_PATH_CAP], target[CERTS_NAME_CAP], tmpname[CERTS_NAME_CAP];
	char prev[CERTS_NAME_CAP] = "", stamp[32];
	const char *vname;
	struct tm tm;
	time_t now = time(NULL);
	ssize_t n;
	size_t i;
	int rc;

	err[0] = '\0';
	/* a first run names a directory that does not exist yet */
	if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
		rc = -errno;
		snprintf(err, cap, "cannot create %.300s: %s", dir, strerror(-rc));
		goto out;
	}
	if ((rc = path_in(p, sizeof(p), dir, CERTS_DATA_LINK)) < 0)
		goto out;
	n = readlink(p, prev, sizeof(prev) - 1);
	prev[n > 0 ? n : 0] = '\0';
	gmtime_r(&now, &tm);
	strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm);
	if (snprintf(ver, sizeof(ver), "%s/%s%s.XXXXXX", dir, CERTS_VERSION_PREFIX, stamp) >= (int)sizeof(ver)) {
		rc = -ENAMETOOLONG;
		goto out;
	}
	if (!mkdtemp(ver) || chmod(ver, 0755) < 0) {
		rc = -errno;
		snprintf(err, cap, "cannot make a version directory in %.300s: %s", dir, strerror(-rc));
		goto out;
	}
	vname = ver + strlen(dir) + 1;
	for (i = 0; i < 3; i++) {
		if ((rc = path_in(p, sizeof(p), ver, certs_files[i])) < 0)
			goto out;
		rc = mesh_write_file_atomic(p, data[i], strlen(data[i]), modes[i]);
		if (rc < 0) {
			snprintf(err, cap, "cannot write %.300s: %s", p, strerror(-rc));
			goto out;
		}
	}
	/* the one switch readers see */
	rc = link_atomic(dir, CERTS_DATA_LINK, vname, CERTS_DATA_TMP);
	if (rc < 0) {
		snprintf(err, cap, "cannot point %.300s/%s at %s: %s", dir, CERTS_DATA_LINK, vname, strerror(-rc));
		goto out;
	}
	/* the stable names (a directory from an older layout is converted here) */
	for (i = 0; i < 3; i++) {
		snprintf(target, sizeof(target), "%s/%s", CERTS_DATA_LINK, certs_files[i]);
		snprintf(tmpname, sizeof(tmpname), ".%s.link", certs_files[i]);
		rc = link_atomic(dir, certs_files[i], target, tmpname);
		if (rc < 0) {
			snprintf(err, cap, "cannot link %.300s/%s: %s", dir, certs_files[i], strerror(-rc));
			goto out;
		}
	}
	mesh_fsync_dir(dir);
	prune_versions(dir, vname, prev);
	rc = 0;
out:
	if (rc < 0 && !err[0])
		snprintf(err, cap, "cannot write into %.300s: %s", dir, strerror(-rc));
	return rc;
}

/* When to ask again: half way through the lifetime as we see it (from
 * when we asked, or notBefore if that is later), at least
 * CERTS_RENEW_MIN_SECONDS from now so a short or already clamped
 * certificate cannot make us hammer the CA. */
static time_t certs_renew_at(const struct issued *is, time_t now)
{
	time_t start = is->not_before > is->asked_at ? is->not_before : is->asked_at;
	time_t renew = start + (is->not_after - start) / 2;

	return renew < now + CERTS_RENEW_MIN_SECONDS ? now + CERTS_RENEW_MIN_SECONDS : renew;
}

static void sleep_seconds(int64_t s)
{
	struct timespec ts = { (time_t)(s > 0 ? s : 0), 0 };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static void print_bootstrap(const char *dir)
{
	printf("{\n"
	       "  \"certificate_providers\": {\n"
	       "    \"default\": {\n"
	       "      \"plugin_name\": \"file_watcher\",\n"
	       "      \"config\": {\n"
	       "        \"certificate_file\": \"%s/cert-chain.pem\",\n"
	       "        \"private_key_file\": \"%s/key.pem\",\n"
	       "        \"ca_certificate_file\": \"%s/root-cert.pem\",\n"
	       "        \"refresh_interval\": \"60s\"\n"
	       "      }\n"
	       "    }\n"
	       "  }\n"
	       "}\n",
	       dir, dir, dir);
	fflush(stdout);
}

static int parse_certs_opts(int argc, char **argv, struct certs_opts *o)
{
	enum { C_ADDR = 256, C_ROOT, C_INSECURE, C_TOKEN, C_DIR, C_TTL, C_ONCE, C_PRINT, C_NAME, C_HELP };
	static const struct option longopts[] = {
		{ "ca-addr", required_argument, NULL, C_ADDR },
		{ "root-cert", required_argument, NULL, C_ROOT },
		{ "insecure-bootstrap", no_argument, NULL, C_INSECURE },
		{ "token-file", required_argument, NULL, C_TOKEN },
		{ "dir", required_argument, NULL, C_DIR },
		{ "ttl", required_argument, NULL, C_TTL },
		{ "once", no_argument, NULL, C_ONCE },
		{ "print-bootstrap", no_argument, NULL, C_PRINT },
		{ "server-name", required_argument, NULL, C_NAME },
		{ "help", no_argument, NULL, C_HELP },
		{ NULL, 0, NULL, 0 },
	};
	int64_t ns;
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case C_ADDR: o->ca_addr = optarg; break;
		case C_ROOT: o->root_cert = optarg; break;
		case C_INSECURE: o->insecure = 1; break;
		case C_TOKEN: o->token_file = optarg; break;
		case C_DIR: o->dir = optarg; break;
		case C_TTL:
			if (mesh_duration_parse(optarg, &ns) < 0 || ns < 1000000000LL) {
				fprintf(stderr, "meshctl certs: --ttl: invalid duration \"%s\" (example: 24h)\n", optarg);
				return 2;
			}
			o->ttl_s = ns / 1000000000LL;
			break;
		case C_ONCE: o->once = 1; break;
		case C_PRINT: o->print_bootstrap = 1; break;
		case C_NAME: o->server_name = optarg; break;
		case C_HELP: certs_usage(stdout); return 1;
		default: certs_usage(stderr); return 2;
		}
	}
	if (o->print_bootstrap && o->dir && optind == argc)
		return 0; /* prints and exits: nothing else is needed */
	if (!o->ca_addr || !o->token_file || !o->dir || (!o->root_cert && !o->insecure) ||
	    (o->root_cert && o->insecure) || optind < argc) {
		fprintf(stderr, "meshctl certs: need --ca-addr, --token-file, --dir and exactly one of --root-cert "
				"or --insecure-bootstrap\n\n");
		certs_usage(stderr);
		return 2;
	}
	return 0;
}

int certs_main(int argc, char **argv)
{
	struct certs_opts o;
	struct issued is;
	char err[CERTS_ERR_CAP], *trust = NULL;
	size_t trust_len;
	int64_t backoff = CERTS_BACKOFF_MIN;
	int rc, status = 1;

	memset(&o, 0, sizeof(o));
	rc = parse_certs_opts(argc, argv, &o);
	if (rc)
		return rc == 1 ? 0 : 2;
	if (o.print_bootstrap) {
		/* the config for a bootstrap file, then exit: an agent is another run */
		print_bootstrap(o.dir);
		return 0;
	}
	if (!getenv("MESHCTL_LOG_LEVEL"))
		mesh_log_set_level(MESH_LOG_INFO);
	if (o.root_cert) {
		rc = mesh_read_file(o.root_cert, CERTS_MAX_ROOT_BYTES, &trust, &trust_len);
		if (rc < 0) {
			fprintf(stderr, "meshctl certs: --root-cert %s: %s\n", o.root_cert, mesh_strerror(rc));
			return 1;
		}
	} else {
		log_warn(SCOPE, "--insecure-bootstrap: meshd at %s is not verified on the first request; the root it "
				"returns is trusted from then on",
			 o.ca_addr);
	}
	grpc_init();
	for (;;) {
		rc = certs_issue(&o, trust, &is, err, sizeof(err));
		if (rc == 0)
			rc = certs_write(o.dir, &is, err, sizeof(err));
		if (rc == 0) {
			time_t now = time(NULL);
			time_t renew = certs_renew_at(&is, now);
			log_info(SCOPE, "rotated: %s, valid until %lld, files in %s; next renewal in %llds", is.spiffe,
				 (long long)is.not_after, o.dir, (long long)(renew - now));
			if (!trust) {
				/* bootstrap done: verify meshd with the root from now on */
				trust = is.root;
				is.root = NULL;
			}
			issued_cleanup(&is);
			backoff = CERTS_BACKOFF_MIN;
			if (o.once) {
				status = 0;
				break;
			}
			sleep_seconds(renew - now);
			continue;
		}
		log_error(SCOPE, "%s", err);
		if (o.once)
			break;
		log_info(SCOPE, "retrying in %llds", (long long)backoff);
		sleep_seconds(backoff);
		backoff = backoff * 2 > CERTS_BACKOFF_MAX ? CERTS_BACKOFF_MAX : backoff * 2;
	}
	free(trust);
	grpc_shutdown_blocking();
	return status;
}
