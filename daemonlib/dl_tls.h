/*
 * dl_tls - OpenSSL contexts for DMTP and the account service: TLS 1.3 preferred, TLS 1.2
 * only with ECDHE and AEAD ciphers (forward secrecy always), including
 * ECDHE-RSA-AES256-GCM-SHA384, the single cipher libdime's client offers (so the server needs
 * an RSA certificate to talk to it). No compression, no tickets.
 */
#ifndef DL_TLS_H
#define DL_TLS_H

#include "dc_util.h"

#include <openssl/ssl.h>

#define DL_TLS12_CIPHERS                                                                       \
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"                               \
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"                               \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256"

enum dc_status dl_tls_server_ctx(const char *cert, const char *key, SSL_CTX **out,
                                 struct dc_err *err);
/* The client verifies nothing during the handshake (rl_resolve checks the certificate after
 * it, against the record or the CA store); ca_file NULL means the system store. */
enum dc_status dl_tls_client_ctx(const char *ca_file, SSL_CTX **out, struct dc_err *err);
/* The first OpenSSL error as text (and clears the queue). */
const char *dl_tls_error(char *buf, size_t len);

#endif
