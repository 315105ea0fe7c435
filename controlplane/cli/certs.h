/*
 * certs.h - "meshctl certs": a certificate agent for proxyless gRPC apps.
 *
 * Makes an EC P-256 key and CSR, asks meshd's CA (CreateCertificate over
 * TLS) for a certificate, writes DIR/cert-chain.pem, DIR/key.pem and
 * DIR/root-cert.pem atomically, and renews at half the lifetime.
 * Returns the process exit status (0 ok, 1 failure, 2 usage).
 */
#ifndef MESH_CLI_CERTS_H
#define MESH_CLI_CERTS_H

int certs_main(int argc, char **argv);

#endif
