#ifndef STET_COPENSSL_SHIM_H
#define STET_COPENSSL_SHIM_H

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

/* Macros and constants that Swift does not import from the OpenSSL headers. */

static inline int stet_pkey_ed25519(void) { return EVP_PKEY_ED25519; }

static inline long stet_bio_mem_data(BIO *bio, char **data) { return BIO_get_mem_data(bio, data); }

static inline void stet_openssl_free(void *ptr) { OPENSSL_free(ptr); }

/* The libcrypto Stet runs with, e.g. "OpenSSL 3.0.17 1 Jul 2025". */
static inline const char *stet_openssl_version(void) { return OpenSSL_version(OPENSSL_VERSION); }

/* A passphrase callback that always refuses: Stet never prompts for a key passphrase. */
static inline int stet_no_passphrase(char *buf, int size, int rwflag, void *u) {
    (void)buf; (void)size; (void)rwflag; (void)u;
    return -1;
}

static inline EVP_PKEY *stet_read_private_key(BIO *bio) {
    return PEM_read_bio_PrivateKey(bio, NULL, stet_no_passphrase, NULL);
}

static inline EVP_PKEY *stet_read_public_key(BIO *bio) {
    return PEM_read_bio_PUBKEY(bio, NULL, stet_no_passphrase, NULL);
}

#endif
