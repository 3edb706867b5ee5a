/*
 * dl_tls - TLS context set-up shared by the DX server, the DMTP client and the account
 * service (dime-accountd).
 */
#include "dl_tls.h"

#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <stdio.h>

const char *dl_tls_error(char *buf, size_t len)
{
    unsigned long e = ERR_get_error();
    if (e == 0)
        snprintf(buf, len, "unknown TLS error");
    else
        ERR_error_string_n(e, buf, len);
    ERR_clear_error();
    return buf;
}

static void common(SSL_CTX *c)
{
    SSL_CTX_set_min_proto_version(c, TLS1_2_VERSION);
    SSL_CTX_set_options(c, SSL_OP_NO_COMPRESSION | SSL_OP_NO_TICKET |
                               SSL_OP_NO_RENEGOTIATION);
}

enum dc_status dl_tls_server_ctx(const char *cert, const char *key, SSL_CTX **out,
                                 struct dc_err *err)
{
    char e[200];
    SSL_CTX *c = SSL_CTX_new(TLS_server_method());
    if (c == NULL)
        return dc_fail(err, DC_ERR_CRYPTO, "SSL_CTX_new: %s", dl_tls_error(e, sizeof(e)));
    common(c);
    SSL_CTX_set_options(c, SSL_OP_CIPHER_SERVER_PREFERENCE);
    if (SSL_CTX_set_cipher_list(c, DL_TLS12_CIPHERS) != 1) {
        SSL_CTX_free(c);
        return dc_fail(err, DC_ERR_CRYPTO, "cipher list: %s", dl_tls_error(e, sizeof(e)));
    }
    if (SSL_CTX_use_certificate_chain_file(c, cert) != 1) {
        SSL_CTX_free(c);
        return dc_fail(err, DC_ERR_IO, "%s: %s", cert, dl_tls_error(e, sizeof(e)));
    }
    if (SSL_CTX_use_PrivateKey_file(c, key, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(c) != 1) {
        SSL_CTX_free(c);
        return dc_fail(err, DC_ERR_IO, "%s: %s", key, dl_tls_error(e, sizeof(e)));
    }
    *out = c;
    return DC_OK;
}

enum dc_status dl_tls_client_ctx(const char *ca_file, SSL_CTX **out, struct dc_err *err)
{
    char e[200];
    SSL_CTX *c = SSL_CTX_new(TLS_client_method());
    if (c == NULL)
        return dc_fail(err, DC_ERR_CRYPTO, "SSL_CTX_new: %s", dl_tls_error(e, sizeof(e)));
    common(c);
    SSL_CTX_set_verify(c, SSL_VERIFY_NONE, NULL);
    int ok = SSL_CTX_set_cipher_list(c, DL_TLS12_CIPHERS);
    if (ok == 1)
        ok = ca_file != NULL ? SSL_CTX_load_verify_locations(c, ca_file, NULL)
                             : SSL_CTX_set_default_verify_paths(c);
    if (ok != 1) {
        SSL_CTX_free(c);
        return dc_fail(err, DC_ERR_IO, "CA store %s: %s", ca_file ? ca_file : "(system)",
                       dl_tls_error(e, sizeof(e)));
    }
    /* OpenSSL fills a certificate's extension cache (key identifiers...) on its first use;
     * the CA certificates are shared by every worker's handshake, and TSan saw one worker
     * fill the cache (under the certificate's lock) while another read the key identifiers
     * without it. Filled here, before any thread, they are only read afterwards. */
    STACK_OF(X509_OBJECT) *objs = X509_STORE_get0_objects(SSL_CTX_get_cert_store(c));
    for (int i = 0; i < sk_X509_OBJECT_num(objs); i++) {
        X509 *x = X509_OBJECT_get0_X509(sk_X509_OBJECT_value(objs, i));
        if (x != NULL)
            (void)X509_check_purpose(x, -1, 0);
    }
    *out = c;
    return DC_OK;
}
