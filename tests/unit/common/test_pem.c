/*
 * test_pem.c - common/pem.h and the file helpers in common/file.h: PEM
 * round trips for certificates, chains, keys and CSRs; text without PEM
 * blocks; the size cap; atomic replacement of a file.
 */
#include "common/file.h"
#include "common/pem.h"

#include <check.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

static EVP_PKEY *key_new(void)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");

	ck_assert_ptr_nonnull(k);
	return k;
}

/* A self-signed certificate with common name cn. */
static X509 *cert_new(EVP_PKEY *k, const char *cn)
{
	X509 *x = X509_new();
	X509_NAME *name;

	ck_assert_ptr_nonnull(x);
	ck_assert(ASN1_INTEGER_set(X509_get_serialNumber(x), 1));
	ck_assert_ptr_nonnull(X509_gmtime_adj(X509_getm_notBefore(x), 0));
	ck_assert_ptr_nonnull(X509_gmtime_adj(X509_getm_notAfter(x), 3600));
	name = X509_get_subject_name(x);
	ck_assert(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0));
	ck_assert(X509_set_issuer_name(x, name));
	ck_assert(X509_set_pubkey(x, k));
	ck_assert(X509_sign(x, k, EVP_sha256()) > 0);
	return x;
}

START_TEST(pem_cert_chain_round_trip)
{
	EVP_PKEY *k = key_new();
	X509 *a = cert_new(k, "a"), *b = cert_new(k, "b");
	STACK_OF(X509) *sk = sk_X509_new_null(), *back = NULL;
	char *pa, *chain;

	ck_assert(sk_X509_push(sk, a) && sk_X509_push(sk, b));
	pa = mesh_pem_from_x509(a);
	ck_assert_ptr_nonnull(pa);
	ck_assert(strncmp(pa, "-----BEGIN CERTIFICATE-----\n", 28) == 0);
	chain = mesh_pem_from_certs(sk, 0, 2);
	ck_assert_ptr_nonnull(chain);
	ck_assert(strncmp(chain, pa, strlen(pa)) == 0);
	/* not NUL-terminated input: only len bytes are read */
	ck_assert_int_eq(mesh_pem_read_certs(chain, strlen(chain), &back), 0);
	ck_assert_int_eq(sk_X509_num(back), 2);
	ck_assert_int_eq(X509_cmp(sk_X509_value(back, 0), a), 0);
	ck_assert_int_eq(X509_cmp(sk_X509_value(back, 1), b), 0);
	/* appending to an existing stack */
	ck_assert_int_eq(mesh_pem_read_certs(pa, strlen(pa), &back), 0);
	ck_assert_int_eq(sk_X509_num(back), 3);
	ck_assert_int_eq(mesh_pem_read_certs(chain, strlen(pa) - 10, &back), -MESH_EPARSE);
	ck_assert_int_eq(sk_X509_num(back), 3);
	free(pa);
	free(chain);
	sk_X509_pop_free(back, X509_free);
	sk_X509_pop_free(sk, X509_free);
	EVP_PKEY_free(k);
}
END_TEST

START_TEST(pem_garbage_and_cap)
{
	STACK_OF(X509) *sk = NULL;
	EVP_PKEY *k = (EVP_PKEY *)1;
	X509_REQ *r = (X509_REQ *)1;
	const char *junk = "not a PEM file\n";

	ck_assert_int_eq(mesh_pem_read_certs(junk, strlen(junk), &sk), -MESH_EPARSE);
	ck_assert_ptr_null(sk);
	ck_assert_int_eq(mesh_pem_read_key(junk, strlen(junk), &k), -MESH_EPARSE);
	ck_assert_ptr_null(k);
	ck_assert_int_eq(mesh_pem_read_csr(junk, strlen(junk), &r), -MESH_EPARSE);
	ck_assert_ptr_null(r);
	ck_assert_int_eq(mesh_pem_read_certs(junk, (size_t)MESH_PEM_MAX_BYTES + 1, &sk), -MESH_ETOOBIG);
	ck_assert_ptr_null(sk);
}
END_TEST

START_TEST(pem_key_and_csr_round_trip)
{
	EVP_PKEY *k = key_new(), *back = NULL;
	X509_REQ *req = X509_REQ_new(), *rback = NULL;
	char *pk, *pr;

	pk = mesh_pem_from_key(k);
	ck_assert_ptr_nonnull(pk);
	ck_assert(strncmp(pk, "-----BEGIN PRIVATE KEY-----\n", 28) == 0);
	ck_assert_int_eq(mesh_pem_read_key(pk, strlen(pk), &back), 0);
	ck_assert_int_eq(EVP_PKEY_eq(k, back), 1);
	ck_assert(X509_REQ_set_pubkey(req, k) && X509_REQ_sign(req, k, EVP_sha256()) > 0);
	pr = mesh_pem_from_csr(req);
	ck_assert_ptr_nonnull(pr);
	ck_assert_int_eq(mesh_pem_read_csr(pr, strlen(pr), &rback), 0);
	ck_assert_int_eq(X509_REQ_verify(rback, k), 1);
	free(pk);
	free(pr);
	EVP_PKEY_free(back);
	EVP_PKEY_free(k);
	X509_REQ_free(req);
	X509_REQ_free(rback);
}
END_TEST

/* PEM text of obj written by write (a BIO writer), encrypted with "secret". */
static char *encrypted_pem(int (*write)(BIO *, const void *), const void *obj)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *p, *out;
	long n;

	ck_assert_ptr_nonnull(b);
	ck_assert_int_eq(write(b, obj), 1);
	n = BIO_get_mem_data(b, &p);
	out = strndup(p, (size_t)n);
	ck_assert_ptr_nonnull(out);
	BIO_free(b);
	return out;
}

static int write_pkcs8_encrypted(BIO *b, const void *k)
{
	return PEM_write_bio_PKCS8PrivateKey(b, (EVP_PKEY *)k, EVP_aes_128_cbc(), "secret", 6, NULL, NULL);
}

static int write_traditional_encrypted(BIO *b, const void *k)
{
	return PEM_write_bio_PrivateKey_traditional(b, (EVP_PKEY *)k, EVP_aes_128_cbc(), (unsigned char *)"secret", 6,
						    NULL, NULL);
}

static int write_cert_encrypted(BIO *b, const void *x)
{
	return PEM_ASN1_write_bio((i2d_of_void *)i2d_X509, PEM_STRING_X509, b, x, EVP_aes_128_cbc(),
				  (unsigned char *)"secret", 6, NULL, NULL);
}

/*
 * Found by tests/fuzz/fuzz_pem: an encrypted block (what a control plane
 * may put in a Secret) made OpenSSL's default passphrase callback prompt
 * "Enter PEM pass phrase:" and read the terminal or stdin, blocking the
 * caller (meshproxy's loop).  Now it fails to decode and stdin is not
 * read: here stdin holds the right passphrase, which the readers used
 * before the fix (the key loaded).
 */
START_TEST(pem_encrypted_never_prompts)
{
	EVP_PKEY *k = key_new(), *back = NULL;
	X509 *x = cert_new(k, "enc");
	STACK_OF(X509) *sk = NULL;
	char *p8 = encrypted_pem(write_pkcs8_encrypted, k), *trad = encrypted_pem(write_traditional_encrypted, k);
	char *cert = encrypted_pem(write_cert_encrypted, x), left[16];
	int fds[2], saved = dup(0);

	ck_assert_ptr_nonnull(strstr(p8, "ENCRYPTED PRIVATE KEY"));
	ck_assert_ptr_nonnull(strstr(trad, "Proc-Type: 4,ENCRYPTED"));
	ck_assert_ptr_nonnull(strstr(cert, "Proc-Type: 4,ENCRYPTED"));
	ck_assert_int_eq(pipe(fds), 0);
	ck_assert_int_eq(write(fds[1], "secret\n", 7), 7);
	close(fds[1]);
	ck_assert_int_eq(dup2(fds[0], 0), 0);
	close(fds[0]);
	ck_assert_int_eq(mesh_pem_read_key(p8, strlen(p8), &back), -MESH_EPARSE);
	ck_assert_ptr_null(back);
	ck_assert_int_eq(mesh_pem_read_key(trad, strlen(trad), &back), -MESH_EPARSE);
	ck_assert_ptr_null(back);
	ck_assert_int_eq(mesh_pem_read_certs(cert, strlen(cert), &sk), -MESH_EPARSE);
	ck_assert_ptr_null(sk);
	/* the passphrase is still there: nobody asked for it */
	ck_assert_int_eq(read(0, left, sizeof(left)), 7);
	dup2(saved, 0);
	close(saved);
	free(p8);
	free(trad);
	free(cert);
	X509_free(x);
	EVP_PKEY_free(k);
}
END_TEST

/* The workload's key and CSR (meshproxy identity, meshctl certs): the CSR
 * carries the new key's public half and is signed by it. */
START_TEST(pem_fresh_key_and_csr)
{
	EVP_PKEY *k = NULL;
	X509_REQ *req = NULL;
	char *csr = NULL;

	ck_assert_int_eq(mesh_pem_key_and_csr(&k, &csr), 0);
	ck_assert_ptr_nonnull(k);
	ck_assert_int_eq(EVP_PKEY_get_base_id(k), EVP_PKEY_EC);
	ck_assert_int_eq(mesh_pem_read_csr(csr, strlen(csr), &req), 0);
	ck_assert_int_eq(X509_REQ_verify(req, k), 1);
	ck_assert_int_eq(EVP_PKEY_eq(X509_REQ_get0_pubkey(req), k), 1);
	free(csr);
	EVP_PKEY_free(k);
	X509_REQ_free(req);
}
END_TEST

START_TEST(file_write_atomic_then_read)
{
	char dir[] = "/tmp/mesh-test-file-XXXXXX", path[64], *data = NULL;
	struct stat st;
	size_t len;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/key.pem", dir);
	ck_assert_int_eq(mesh_write_file_atomic(path, "old", 3, 0600), 0);
	ck_assert_int_eq(mesh_write_file_atomic(path, "new contents", 12, 0640), 0);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_uint_eq(st.st_mode & 0777, 0640);
	ck_assert_int_eq(mesh_read_file(path, 64, &data, &len), 0);
	ck_assert_uint_eq(len, 12);
	ck_assert_str_eq(data, "new contents");
	free(data);
	ck_assert_int_eq(mesh_read_file(path, 11, &data, &len), -MESH_ETOOBIG);
	ck_assert_ptr_null(data);
	ck_assert_uint_eq(len, 12);
	/* only regular files: a FIFO nobody writes is refused at once (an
	 * open without O_NONBLOCK would wait here for ever), a directory or
	 * a device too */
	snprintf(path, sizeof(path), "%s/fifo", dir);
	ck_assert_int_eq(mkfifo(path, 0600), 0);
	ck_assert_int_eq(mesh_read_file(path, 64, &data, &len), -MESH_ENOTREG);
	ck_assert_ptr_null(data);
	ck_assert_int_eq(unlink(path), 0);
	ck_assert_int_eq(mesh_read_file(dir, 64, &data, &len), -EISDIR);
	ck_assert_int_eq(mesh_read_file("/dev/zero", 64, &data, &len), -MESH_ENOTREG);
	snprintf(path, sizeof(path), "%s/key.pem", dir);
	snprintf(path, sizeof(path), "%s/missing/x", dir);
	ck_assert_int_eq(mesh_write_file_atomic(path, "x", 1, 0600), -ENOENT);
	snprintf(path, sizeof(path), "%s/key.pem", dir);
	ck_assert_int_eq(unlink(path), 0);
	ck_assert_int_eq(rmdir(dir), 0); /* no temporary file was left behind */
}
END_TEST

int main(void)
{
	Suite *s = suite_create("pem");
	TCase *tc = tcase_create("core");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, pem_cert_chain_round_trip);
	tcase_add_test(tc, pem_garbage_and_cap);
	tcase_add_test(tc, pem_key_and_csr_round_trip);
	tcase_add_test(tc, pem_fresh_key_and_csr);
	tcase_add_test(tc, pem_encrypted_never_prompts);
	tcase_add_test(tc, file_write_atomic_then_read);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
