/*
 * cl_curl - libcurl handles with TLS required (see cl_curl.h).
 */
#include "cl_curl.h"

#include <stdbool.h>

CURL *cl_curl_new(struct dc_err *err)
{
    static bool inited;
    if (!inited && curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        dc_fail(err, DC_ERR_IO, "libcurl did not initialize");
        return NULL;
    }
    inited = true;
    CURL *c = curl_easy_init();
    if (c == NULL)
        dc_fail(err, DC_ERR_NOMEM, "libcurl: no handle");
    return c;
}

void cl_curl_secure(CURL *c, const char *protocols, const char *ca_file, const char *login,
                    const char *password, unsigned timeout)
{
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, protocols);
    /* TLS from the start (smtps, imaps) or STARTTLS; never the login in clear */
    curl_easy_setopt(c, CURLOPT_USE_SSL, (long)CURLUSESSL_ALL);
    if (ca_file != NULL)
        curl_easy_setopt(c, CURLOPT_CAINFO, ca_file);
    curl_easy_setopt(c, CURLOPT_USERNAME, login);
    curl_easy_setopt(c, CURLOPT_PASSWORD, password);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, (long)(timeout ? timeout : 120));
}
