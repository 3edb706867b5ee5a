/*
 * dc_message - whole messages: an RFC 5322/MIME message in, a final D/MIME message out, and
 * back. This is the glue the milter and the dime-message tool call; it adds no crypto and no
 * MIME logic of its own:
 *
 *   encrypt:  dc_dmap_forward (display content left a view) -> pieces of at most max_data
 *             bytes cut as dc_dmap_chunks cuts them (the continuation flag on all but the
 *             last piece of an item; the display item is the display content, the
 *             frame is the last field of chunk 34) ->
 *             dc_dmime_encrypt (author form) -> optionally the origin's step (open as
 *             origin, verify the author's signatures, dc_dmime_origin_sign).
 *   decrypt:  dc_dmime_parse -> dc_dmime_open as the actor -> the caller's signet lookup
 *             for the author and origin named in the envelope -> dc_dmime_keys_from_signets
 *             (fingerprints checked against the envelope) -> dc_dmime_decrypt_ex -> for
 *             the author and the recipient, dc_dmap_reverse_stream. In memory the display
 *             and attachment chunks are deferred (DC_DMIME_DEFER_CONTENT): decrypted once,
 *             straight into the rebuilt message, and verified in the same pass
 *             (dc_dmime_read_verified, dc_dmime_decrypt_finish) before it is handed out.
 *             From file to file they are verified first and decrypted again while written.
 *
 * Envelope: Author and Recipient are the envelope sender and recipient addresses (by default
 * the signets' identifiers, fid 254); Origin and Destination are their domains (after the
 * last '@'). The *-Signet fingerprints are the signets' crypto fingerprints (DC_FP_CRYPTO)
 * and the encryption keys come from the signets.
 *
 * Chunk 34 (other headers): libdime requires the chunk. In the current layout it always
 * holds at least the frame field (dc_dmap.h). Messages of the first layout (DIMEFRAME/1)
 * whose mapping had nothing to put there hold the two bytes CR LF, which can never be mapped
 * header fields (a field starts with a name), and the reader turns exactly that back into
 * "no other headers"; the encoder still uses CR LF if chunk 34 would be empty.
 *
 * Messages from other implementations (libdime) carry no frame, neither in chunk 34 nor in
 * the display data. The reader then builds a plain message instead of failing
 * (dc_message.framed = 0): the common and other header lines, and the display data as the
 * body, or with attachments a multipart/mixed of the display data (text/plain) and one
 * base64 part per attachment.
 *
 * Encrypting from a file (dc_message_encrypt_fd), a decoded attachment body of 1 MiB or
 * more is written to an unlinked temporary file in $TMPDIR (else /tmp) and mapped, not kept
 * on the heap (dc_dmap_opts.spill_fd).
 *
 * Signature policy of dc_message_decrypt: DC_DSIG_FAILED anywhere is an error naming the
 * chunk. DC_DSIG_NO_KEY is only possible where dc_dmime lets a key be absent (origin
 * signatures for the author and the origin actor when the lookup has no origin signet; the
 * author's chunk signature for the destination, which never learns who the author is) and
 * is reported, not refused. The lookup callback is where the caller decides which signets it
 * trusts (DNS, the keyvault, a file): this module does not verify signet chains.
 */
#ifndef DC_MESSAGE_H
#define DC_MESSAGE_H

#include "dc_dmap.h"
#include "dc_dmime.h"
#include "dc_signet.h"

/* What chunk 34 holds when there are no other header fields. */
#define DC_MSG_EMPTY_OTHER "\r\n"

struct dc_msg_parties {
    const char *from; /* envelope sender (Author); NULL = the author signet's identifier */
    const char *to;   /* envelope recipient; NULL = the recipient signet's identifier */
    const struct dc_signet *author;      /* user signet */
    const struct dc_signet *origin;      /* org signet of the sender's domain */
    const struct dc_signet *destination; /* org signet of the recipient's domain */
    const struct dc_signet *recipient;   /* user signet */
};

struct dc_msg_opts {
    int64_t now;                         /* for a synthesized Date; 0 = current time */
    const struct dc_mime_limits *limits; /* NULL = dc_mime defaults (50 MiB message) */
    size_t max_data;                     /* bytes per display/attachment chunk;
                                            0 = DC_DMAP_CHUNK_DATA_MAX */
};

/* Which signet the lookup is asked for. */
enum dc_msg_role {
    DC_MSG_AUTHOR_SIGNET = 0, /* a user signet */
    DC_MSG_ORIGIN_SIGNET = 1, /* an org signet */
};

/*
 * Signet lookup: name and fp are what the actor read in the envelope (Author and
 * Author-Signet, or Origin and Origin-Signet), NULL when the actor cannot see them. Return
 * DC_OK with a new signet in *out (dc_message frees it), DC_ERR_NOTFOUND when there is none
 * (an error only where the actor needs that key), or any other error to stop.
 */
struct dc_msg_lookup {
    enum dc_status (*find)(void *ctx, enum dc_msg_role role, const char *name, const char *fp,
                           struct dc_signet **out, struct dc_err *err);
    void *ctx;
};

/*
 * MIME message -> D/MIME. With origin and origin_kek both given, the message also gets the
 * origin signatures (the final form); with neither, it is the author form (zero placeholders
 * in 248/249/255). The author signer must hold the author signet's signing key, the origin
 * signer the origin signet's POK or a SOK with the MSG bit (DC_ERR_KEY otherwise).
 */
enum dc_status dc_message_encrypt(const uint8_t *mime, size_t len, const struct dc_msg_parties *p,
                                  const struct dc_signer *author, const struct dc_signer *origin,
                                  const struct dc_kek_source *origin_kek,
                                  const struct dc_msg_opts *opts, struct dc_dmime **out,
                                  struct dc_err *err);

/*
 * The origin's step on an author-form message: opens it as origin with ks, checks the
 * author's signatures with the signet the lookup gives for chunk 4's Author/Author-Signet,
 * and signs 248/249/255. When the lookup also has the origin signet, the signer's key must be
 * its POK or a MSG SOK.
 */
enum dc_status dc_message_origin_sign(const uint8_t *bin, size_t len,
                                      const struct dc_kek_source *ks,
                                      const struct dc_signer *origin,
                                      const struct dc_msg_lookup *lookup, struct dc_dmime **out,
                                      struct dc_err *err);

/* What an actor learned from a message. */
struct dc_message {
    enum dc_actor actor;
    struct dc_dmime *dm;           /* the parsed message: its chunk table; the bytes are
                                      not kept (dm->bin NULL) after dc_message_decrypt, which
                                      reads the caller's input in place, and are the mapped
                                      input (map below) after dc_message_decrypt_fd */
    struct dc_dmime_envelope env;  /* copies; NULL for what the actor cannot see */
    struct dc_dmime_result *res;   /* per chunk: visibility, data, signature state */
    int have_author_key, have_origin_key; /* which signets the lookup supplied */
    uint8_t *mime;                 /* author and recipient: the rebuilt message, else NULL */
    int framed;                    /* mime is byte-exact (0: built from unframed data) */
    size_t mime_len;               /* dc_message_decrypt_fd: bytes written to out_fd */
    struct dc_fmap *map;           /* dc_message_decrypt_fd: the mapped input (dm's bytes) */
};

/*
 * Decrypts as `actor`. DC_OK: every visible signature that has a key verified and, for the
 * author and the recipient, the MIME message was rebuilt (their display and attachment items
 * then have no data, only data_len and flags: the bytes are in mime). bin is read in place,
 * not copied; it is not used after the call returns. DC_ERR_SIGNATURE: err names the
 * first failing chunk and *out is still set (mime NULL) so that the caller can report every
 * chunk's state. Any other error leaves *out NULL. Free with dc_message_free.
 */
enum dc_status dc_message_decrypt(const uint8_t *bin, size_t len, enum dc_actor actor,
                                  const struct dc_kek_source *ks,
                                  const struct dc_msg_lookup *lookup, struct dc_message **out,
                                  struct dc_err *err);
void dc_message_free(struct dc_message *m);

/*
 * The same three operations from file to file with bounded memory (issue 3: a 100 MiB
 * message in well under 64 MiB): the input is mapped read-only (dc_fmap_read), the output is
 * a shared writable map of out_fd (dc_fmap_create; the file is truncated to the message size
 * at the end), and every pass over message data goes in DC_STREAM_WINDOW steps, releasing the
 * pages behind it. Signatures over large ranges use the streaming Ed25519 of dc_crypto.h.
 * Results are byte-identical to the in-memory functions given the same random bytes.
 * Both descriptors must be regular files; out_fd must be open for reading and writing. On
 * failure out_fd holds garbage: the caller removes it (dime-message writes to a temporary
 * name and renames on success).
 */
enum dc_status dc_message_encrypt_fd(int in_fd, int out_fd, const struct dc_msg_parties *p,
                                     const struct dc_signer *author,
                                     const struct dc_signer *origin,
                                     const struct dc_kek_source *origin_kek,
                                     const struct dc_msg_opts *opts, size_t *out_len,
                                     struct dc_err *err);
enum dc_status dc_message_origin_sign_fd(int in_fd, int out_fd, const struct dc_kek_source *ks,
                                         const struct dc_signer *origin,
                                         const struct dc_msg_lookup *lookup, size_t *out_len,
                                         struct dc_err *err);
/*
 * Decrypts and verifies the D/MIME file in_fd as `actor`; for the author and the recipient,
 * writes the rebuilt MIME message to out_fd (when out_fd >= 0) only after every check passed
 * (the data is decrypted a second time for that). *out as for dc_message_decrypt, except that
 * mime is NULL (mime_len counts the bytes written) and the display and attachment items have
 * no data. Messages without our frame (other implementations) are rebuilt in memory.
 */
enum dc_status dc_message_decrypt_fd(int in_fd, enum dc_actor actor,
                                     const struct dc_kek_source *ks,
                                     const struct dc_msg_lookup *lookup, int out_fd,
                                     struct dc_message **out, struct dc_err *err);

#endif
