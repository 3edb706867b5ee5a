/*
 * rl_signets - SGNT, VRFY and HIST answers from the keyvault. See rl_signets.h.
 */
#include "rl_signets.h"

#include "kv_client.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool local_name(const struct rl_config *cfg, const char *name)
{
    const char *at = strrchr(name, '@');
    return rl_config_domain(cfg, at ? at + 1 : name) != NULL;
}

static int put(struct dc_buf *out, int code, const char *text)
{
    dc_dmtp_reply_put(out, code, false, "%s", text);
    return code;
}

static int sgnt(struct kv_client *kv, const struct dc_dmtp_cmd *cmd, struct dc_buf *out,
                char *why, size_t wl)
{
    struct dc_err err = {0};
    struct dc_signet *sig = NULL;
    /* SGNT [fp] asks for that signet; VRFY [fp] whether fp is the current one, so it reads
     * the current signet (the one with fp would always match: every answer CURRENT) */
    const char *want = cmd->verb == DC_DMTP_SGNT && cmd->nfp ? cmd->fp[0] : NULL;
    if (kv_client_signet(kv, cmd->name, want, &sig, &err) != DC_OK) {
        if (kv_client_status(kv) == KV_E_NOTFOUND)
            return put(out, 576, "no such signet");
        snprintf(why, wl, "%s", err.msg);
        return put(out, 476, "signet temporarily unavailable");
    }
    int code = 250;
    if (cmd->verb == DC_DMTP_SGNT) {
        char *b64 = dc_signet_b64(sig);
        if (strlen(b64) + 12 > DC_DMTP_LINE_MAX)
            code = put(out, 451, "signet too large for one line");
        else
            dc_dmtp_reply_put(out, 250, false, "OK [%s]", b64);
        free(b64);
    } else { /* VRFY */
        char fp[DC_FP_B64_LEN + 1], fpc[DC_FP_B64_LEN + 1];
        if (dc_signet_fp(sig, fp, fpc, &err) != DC_OK)
            code = put(out, 451, "cannot fingerprint the signet");
        else if (strcmp(fp, cmd->fp[0]) == 0 || strcmp(fpc, cmd->fp[0]) == 0)
            put(out, 250, "CURRENT");
        else
            dc_dmtp_reply_put(out, 250, false, "UPDATE [%s]", fp);
    }
    dc_signet_free(sig);
    return code;
}

static int hist(struct kv_client *kv, const struct dc_dmtp_cmd *cmd, struct dc_buf *out,
                char *why, size_t wl)
{
    struct dc_err err = {0};
    struct dc_signet **h = NULL;
    size_t n = 0;
    if (kv_client_history(kv, cmd->name, cmd->nfp > 0 ? cmd->fp[0] : NULL,
                          cmd->nfp > 1 ? cmd->fp[1] : NULL, &h, &n, &err) != DC_OK) {
        if (kv_client_status(kv) == KV_E_NOTFOUND)
            return put(out, 576, "no such signet history");
        snprintf(why, wl, "%s", err.msg);
        return put(out, 476, "history temporarily unavailable");
    }
    for (size_t i = 0; i < n; i++) {
        char *b64 = dc_signet_b64(h[i]);
        dc_dmtp_reply_put(out, 250, true, "[%s]", b64);
        free(b64);
        dc_signet_free(h[i]);
    }
    free(h);
    return put(out, 250, "OK");
}

int rl_signets_answer(const struct rl_config *cfg, struct kv_client *kv,
                      const struct dc_dmtp_cmd *cmd, struct dc_buf *out, char *why, size_t wl)
{
    why[0] = '\0';
    if (!local_name(cfg, cmd->name))
        return put(out, 576, "not a local domain");
    if (kv == NULL)
        return put(out, 476, cmd->verb == DC_DMTP_HIST ? "signet history temporarily unavailable"
                                                       : "signet temporarily unavailable");
    return cmd->verb == DC_DMTP_HIST ? hist(kv, cmd, out, why, wl) : sgnt(kv, cmd, out, why, wl);
}
