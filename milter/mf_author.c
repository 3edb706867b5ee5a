/*
 * mf_author - the milter's checks on author-made D/MIME (see mf_author.h).
 */
#include "mf_author.h"

const char *mf_author_refusal(const struct mf_author_facts *f, const char **why)
{
    if (!f->login) {
        *why = "author-made D/MIME without SMTP AUTH";
        return "author-made D/MIME is taken only over authenticated SMTP";
    }
    if (f->too_big) {
        *why = "author-made D/MIME too large";
        return "author-made D/MIME above the message size limit";
    }
    if (!f->dmime) {
        *why = "the application/x-dime body is not D/MIME";
        return "the application/x-dime body is not one base64 D/MIME message";
    }
    if (f->nrcpt != 1) {
        *why = "author-made D/MIME for several recipients";
        return "author-made D/MIME is made for one recipient: send one message per recipient, "
               "with that recipient alone in the envelope";
    }
    if (!f->dime_rcpt) {
        *why = "author-made D/MIME for a recipient that is not at a DIME domain";
        return "author-made D/MIME goes only to a recipient at another DIME domain";
    }
    return NULL;
}
