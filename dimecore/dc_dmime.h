/*
 * dc_dmime - the D/MIME message codec, byte-compatible with lavabit/libdime
 * (../shared/spec/dmime-dmtp.md sections 1-10, PROFILE.md section 4, and the conformance
 * vectors in tests/vectors/libdime, README section 4).
 *
 * Wire form: [u16 1837 | u16 trc_len | tracing] u16 1847 | u32 msg_size | chunks.
 * A chunk is type(1) | payload_size(u24) | payload | one 64-byte keyslot per entitled actor
 * (order author, origin, destination, recipient). This module never parses MIME: the
 * common-headers text, other headers, display and attachment bytes are opaque to it.
 *
 * Parser rules (ours; libdime enforces almost nothing, see spec section 8). Every message
 * libdime writes passes them:
 *  - chunks appear in libdime's serializer order 2, 4, 5, 33, 34, 67..., 131..., 225, 226,
 *    248, 249, 255; every type except 67 and 131 at most once (DC_ERR_ORDER otherwise);
 *  - required (DC_ERR_FIELD when absent): 2, 4, 5, 33, 225, 226, 255 (libdime's COMPLETE
 *    set). 34, 67, 131, 248 and 249 are optional when parsing;
 *  - type 3 (alternate) and every type not in the table: DC_ERR_FORMAT ("unknown chunk type");
 *  - ephemeral payload exactly 33 bytes, signature payloads exactly 64, standard payloads a
 *    multiple of 16 and at least 256 bytes (DC_ERR_FORMAT);
 *  - msg_size must equal the bytes that follow (DC_ERR_FORMAT for trailing bytes,
 *    DC_ERR_TRUNCATED when short); tracing data is kept as opaque bytes, trc_len 0 rejected.
 * A parsed message keeps its exact bytes; dc_dmime_bytes() gives them back unchanged.
 *
 * Signatures (all Ed25519) cover the serialized chunk bytes, chunk headers and keyslots
 * included, starting at the first chunk (offset 6 without tracing); tracing is not covered.
 */
#ifndef DC_DMIME_H
#define DC_DMIME_H

#include "dc_crypto.h"
#include "dc_fmap.h"

#define DC_DMIME_MAGIC         1847
#define DC_DMIME_TRACING_MAGIC 1837
#define DC_DMIME_SLOT_LEN      64
#define DC_DMIME_STD_HDR       69 /* signature(64) | data_size(3) | flags(1) | pad_len(1) */
#define DC_DMIME_MIN_PAYLOAD   256
#define DC_DMIME_MAX_PAYLOAD   16777215u
/* Largest data that always fits one standard chunk, whatever padding is chosen: the
 * largest 16-aligned payload (16777200) minus the header and the worst-case padding (256). */
#define DC_DMIME_MAX_CHUNK_DATA (16777200u - DC_DMIME_STD_HDR - 256u)

/* Chunk flag bits (spec section 1). */
#define DC_DMIME_FLAG_ALT_PADDING  0x01
#define DC_DMIME_FLAG_CONTINUATION 0x80

enum dc_actor {
    DC_ACTOR_AUTHOR = 0,
    DC_ACTOR_ORIGIN = 1,
    DC_ACTOR_DESTINATION = 2,
    DC_ACTOR_RECIPIENT = 3,
};
#define DC_ACTOR_BIT(a) (1u << (unsigned)(a))

enum dc_chunk_type {
    DC_CHUNK_EPHEMERAL = 2,
    DC_CHUNK_ORIGIN = 4,
    DC_CHUNK_DESTINATION = 5,
    DC_CHUNK_COMMON = 33,
    DC_CHUNK_HEADERS = 34,
    DC_CHUNK_DISPLAY = 67,
    DC_CHUNK_ATTACH = 131,
    DC_CHUNK_SIG_TREE = 225,
    DC_CHUNK_SIG_AUTHOR = 226,
    DC_CHUNK_SIG_META_BOUNCE = 248,
    DC_CHUNK_SIG_DISPLAY_BOUNCE = 249,
    DC_CHUNK_SIG_ORIGIN = 255,
};

/* ---- the chunk table ---- */

/* libdime's table name of a chunk type, or NULL for a type we do not accept. */
const char *dc_dmime_chunk_name(unsigned type);
/* Bit set (DC_ACTOR_BIT) of the actors holding a keyslot in chunks of this type. */
unsigned dc_dmime_chunk_actors(unsigned type);
/* 0-based keyslot position of an actor in a chunk of this type, or -1 (spec section 3.1). */
int dc_dmime_slot_index(unsigned type, enum dc_actor actor);
const char *dc_actor_name(enum dc_actor a);

/* ---- parsing and serialization ---- */

struct dc_dmime_chunk {
    uint8_t type;
    size_t offset;      /* of the type byte, from the start of the message */
    size_t payload_len; /* payload_size field */
    size_t nslots;
    unsigned actors;    /* DC_ACTOR_BIT set of the keyslot holders */
};

struct dc_dmime {
    uint8_t *bin; /* the whole message, exactly as parsed or built */
    size_t len;
    size_t tracing_off, tracing_len; /* tracing data (tracing_len 0 when absent) */
    size_t chunks_off;               /* first chunk: start of every signed range */
    struct dc_dmime_chunk *chunks;
    size_t nchunks;
    /* Set when bin lies in a mapped file (dc_dmime_parse_mapped, dc_dmime_encrypt_to_map):
     * bin is then not owned, and every pass over a large range (hashing, verifying, signing,
     * decrypting) goes in DC_STREAM_WINDOW steps and releases the pages behind it, so that
     * memory stays bounded whatever the message size. */
    const struct dc_fmap *map;
    int view; /* bin is the caller's (dc_dmime_parse_view): not owned, not freed */
};

enum dc_status dc_dmime_parse(const uint8_t *bin, size_t len, struct dc_dmime **out,
                              struct dc_err *err);
void dc_dmime_free(struct dc_dmime *m);
/* Parses bin without copying it: bin must stay unchanged while *out uses its bytes. */
enum dc_status dc_dmime_parse_view(const uint8_t *bin, size_t len, struct dc_dmime **out,
                                   struct dc_err *err);
/* Parses the message in map without copying it; map must outlive *out. */
enum dc_status dc_dmime_parse_mapped(const struct dc_fmap *map, struct dc_dmime **out,
                                     struct dc_err *err);
/* The exact serialized bytes (owned by m). */
const uint8_t *dc_dmime_bytes(const struct dc_dmime *m, size_t *len);
/* Index of the first chunk of this type, or -1. */
long dc_dmime_find(const struct dc_dmime *m, unsigned type);
/* The byte range [*start, *end) that signature chunk `type` (226, 248, 249 or 255) signs. */
enum dc_status dc_dmime_signed_range(const struct dc_dmime *m, unsigned type, size_t *start,
                                     size_t *end, struct dc_err *err);
/*
 * The data the author tree signature (225) signs, with libdime's quirk: SHA-512 of each
 * serialized chunk 2, 4, 5, 33, 34, 67..., 131..., but the destination chunk's hash is
 * overwritten by the common-headers hash and the buffer keeps its N*64 size, so it ends in
 * 64 zero bytes (vectors README 4.4). Caller frees *data.
 */
void dc_dmime_tree_data_libdime_quirk(const struct dc_dmime *m, uint8_t **data, size_t *len);

/* ---- signature inputs: what a signer is asked to sign ---- */

/*
 * The shape of the bytes each D/MIME signature covers, for a signer that must not sign
 * anything else (the keyvault): the chunk sequence, lengths, keyslot counts and the last
 * chunk, never the cryptography (it cannot decrypt). Checked as a stream in constant memory,
 * since whole-message inputs may be many megabytes; every input our encoder and libdime
 * produce passes, a signet or arbitrary bytes do not.
 */
enum dc_dmime_input {
    /* a chunk signature: the chunk's plaintext after the signature, data_size(3) | flags |
     * pad_len | data | padding, as long as a standard payload minus 64 */
    DC_DMIME_IN_CHUNK,
    /* the author tree signature (225): N >= 4 hashes of 64 bytes, the last one zero */
    DC_DMIME_IN_TREE,
    /* the author full signature (226): serialized chunks from the ephemeral through 225 */
    DC_DMIME_IN_AUTHOR_FULL,
    /* an origin signature: serialized chunks from the ephemeral through the headers (248),
     * the display chunks (249), or the author or bounce signatures (255) */
    DC_DMIME_IN_ORIGIN,
};
const char *dc_dmime_input_name(enum dc_dmime_input kind);

struct dc_dmime_input_check {
    enum dc_dmime_input kind;
    uint64_t off;          /* bytes seen */
    enum dc_status failed; /* DC_OK until a check fails; then every call fails */
    uint8_t hdr[5];        /* the header being read (4 bytes per chunk, 5 for a chunk input) */
    unsigned hlen;
    uint64_t left;         /* bytes of the current chunk still to skip */
    int last_rank;
    unsigned seen;
    int last_type;         /* of the last chunk begun, -1 before the first */
    size_t ds;             /* chunk input: data size */
    unsigned zeros;        /* tree input: trailing zero bytes, at most 64 */
};
void dc_dmime_input_init(struct dc_dmime_input_check *c, enum dc_dmime_input kind);
/* The next n bytes; fails as soon as they cannot be a prefix of a valid input. */
enum dc_status dc_dmime_input_update(struct dc_dmime_input_check *c, const uint8_t *p, size_t n,
                                     struct dc_err *err);
/* The input is complete: whether it is a whole valid input. */
enum dc_status dc_dmime_input_final(struct dc_dmime_input_check *c, struct dc_err *err);
/* init, update and final over one buffer. */
enum dc_status dc_dmime_input_check(enum dc_dmime_input kind, const uint8_t *p, size_t n,
                                    struct dc_err *err);

/* ---- key access ---- */

/* Derives the actor's KEK from the message's ephemeral key; the private key may live
 * elsewhere (the keyvault). */
struct dc_kek_source {
    enum dc_status (*derive)(void *ctx, const uint8_t eph[DC_SECP_PUB_LEN], struct dc_kek *out,
                             struct dc_err *err);
    void *ctx;
};
/* A KEK source over a local key; k must outlive s. */
void dc_kek_source_local(struct dc_kek_source *s, const struct dc_enc_key *k);

/* An unwrapped keyslot. */
struct dc_dmime_slot {
    uint8_t random[16];
    uint8_t ivmask[16];
    uint8_t key[32];
    uint8_t iv[16]; /* random XOR ivmask */
};
/* Decrypts the 64-byte keyslot with the KEK. */
enum dc_status dc_dmime_slot_unwrap(const struct dc_kek *kek, const uint8_t enc[64],
                                    struct dc_dmime_slot *out, struct dc_err *err);

/* ---- reading as an actor (two phases) ---- */

/* Envelope texts: chunk 4 gives author/destination, chunk 5 recipient/origin. Values are
 * NUL-terminated copies; NULL for what this actor cannot see. */
struct dc_dmime_envelope {
    char *author, *author_fp;           /* chunk 4: Author, Author-Signet */
    char *destination, *destination_fp; /* chunk 4: Destination, Destination-Signet */
    char *recipient, *recipient_fp;     /* chunk 5: Recipient, Recipient-Signet */
    char *origin, *origin_fp;           /* chunk 5: Origin, Origin-Signet */
};

struct dc_dmime_reader;

/* Phase (a): derives the KEK, decrypts the envelope chunk(s) the actor can see (origin: 4;
 * destination: 5; author and recipient: both) and parses them. The envelope chunks' author
 * signatures are checked in phase (b), once the caller knows the author's key. The reader
 * keeps a pointer to m (which must outlive it) and the KEK in locked memory until freed. */
enum dc_status dc_dmime_open(const struct dc_dmime *m, enum dc_actor actor,
                             const struct dc_kek_source *ks, struct dc_dmime_reader **out,
                             struct dc_err *err);
const struct dc_dmime_envelope *dc_dmime_envelope(const struct dc_dmime_reader *r);
/* Unwraps this actor's keyslot of chunk i (DC_ERR_NOTFOUND when it has none). */
enum dc_status dc_dmime_reader_slot(const struct dc_dmime_reader *r, size_t i,
                                    struct dc_dmime_slot *out, struct dc_err *err);
void dc_dmime_reader_free(struct dc_dmime_reader *r);

enum dc_dmime_sig {
    DC_DSIG_NOT_VISIBLE = 0, /* the actor has no keyslot for it (or the chunk is absent) */
    DC_DSIG_OK,
    DC_DSIG_FAILED,
    DC_DSIG_NO_KEY, /* visible, but the caller gave no key for it (see dc_dmime_keys) */
};
const char *dc_dmime_sig_name(enum dc_dmime_sig s);

/* Verification keys for phase (b). */
struct dc_dmime_keys {
    /* Author's signing key (user signet field 1). Required for author, origin and recipient;
     * optional for the destination (which learns the author only from chunk 4, which it
     * cannot read: without it the destination chunk's signature is DC_DSIG_NO_KEY). */
    const uint8_t *author_pub;
    /* Keys that may have made the origin signatures 248/249/255: the origin org's POK, plus
     * any SOK with the MSG bit the caller accepts. Required for destination and recipient;
     * optional for author and origin (then DC_DSIG_NO_KEY). */
    const uint8_t (*origin_pubs)[DC_ED25519_PUB_LEN];
    size_t norigin_pubs;
};

/*
 * Keys from signets, checked against the envelope: the author's user signet must have the
 * crypto fingerprint named in Author-Signet (when this actor sees chunk 4), the origin's
 * org signet the one in Origin-Signet (when it sees chunk 5). The origin keys are every SOK
 * with the MSG permission bit, then the POK (PROFILE.md section 2). Either signet may be
 * NULL (then those keys are absent). A fingerprint mismatch is DC_ERR_KEY.
 */
#define DC_DMIME_MAX_ORIGIN_KEYS 17
struct dc_signet;
struct dc_dmime_signet_keys {
    uint8_t author[DC_ED25519_PUB_LEN];
    uint8_t origin[DC_DMIME_MAX_ORIGIN_KEYS][DC_ED25519_PUB_LEN];
    struct dc_dmime_keys keys; /* points into this struct: do not copy it */
};
enum dc_status dc_dmime_keys_from_signets(const struct dc_dmime_reader *r,
                                          const struct dc_signet *author,
                                          const struct dc_signet *origin,
                                          struct dc_dmime_signet_keys *out, struct dc_err *err);

struct dc_dmime_item {
    uint8_t type;
    size_t index;           /* chunk index in the message */
    int visible;            /* the actor holds a keyslot and the chunk was decrypted */
    enum dc_dmime_sig sig;  /* standard chunks: the author's chunk signature; signature
                               chunks: the message-level signature they carry */
    uint8_t flags;          /* standard chunks */
    size_t pad_len;         /* standard chunks: padding bytes */
    uint8_t *data;          /* standard: the data; signature chunks: the 64-byte signature */
    size_t data_len;
    /* Internal: the allocation data lies in when it is not data itself (a standard chunk's
     * whole decrypted payload, decrypted in place: data = payload + 69), and its size. */
    uint8_t *payload;
    size_t payload_len;
    int pending; /* DC_DMIME_DEFER_CONTENT: not decrypted and verified yet (sig NO_KEY) */
};

struct dc_dmime_result {
    enum dc_actor actor;
    struct dc_dmime_item *items; /* one per chunk, in message order */
    size_t nitems;
    enum dc_dmime_sig tree, author_full, meta_bounce, display_bounce, origin_full;
    const struct dc_dmime_item *common, *other; /* NULL when not visible or absent */
};

/*
 * Phase (b): decrypts every chunk the actor holds a keyslot for, checks the standard
 * payload structure and verifies every visible signature that has a key.
 * Returns DC_OK when all of that holds. A malformed payload (bad padding, sizes) fails with
 * *out left NULL. A signature that does not verify gives DC_ERR_SIGNATURE naming the first
 * failing chunk, and *out is still set so the caller can see which ones failed (the caller
 * frees it in both cases). Missing required keys: DC_ERR_ARG.
 */
enum dc_status dc_dmime_decrypt(struct dc_dmime_reader *r, const struct dc_dmime_keys *keys,
                                struct dc_dmime_result **out, struct dc_err *err);
/* The same with flags. DC_DMIME_NO_CONTENT: display (67) and attachment (131) data are
 * decrypted and verified but not kept (their items have data NULL and data_len set); read
 * them afterwards with dc_dmime_read_data. Every standard chunk is decrypted and verified in
 * DC_STREAM_WINDOW steps, so memory is bounded by the window, not by the chunk. */
#define DC_DMIME_NO_CONTENT 1u
/* DC_DMIME_DEFER_CONTENT: display and attachment chunks are only opened far enough to read
 * their header (data_len, flags, pad_len set; the item is `pending`, sig DC_DSIG_NO_KEY):
 * they are decrypted and verified once, later, by dc_dmime_read_verified (which hands the
 * data to a sink in the same pass) and dc_dmime_decrypt_finish (every chunk still pending,
 * then the result). DC_OK from dc_dmime_decrypt_ex then means that everything else checked
 * out; nothing read from the content chunks may be used before _finish returns DC_OK. */
#define DC_DMIME_DEFER_CONTENT 2u
enum dc_status dc_dmime_decrypt_ex(struct dc_dmime_reader *r, const struct dc_dmime_keys *keys,
                                   unsigned flags, struct dc_dmime_result **out,
                                   struct dc_err *err);
/* Where decrypted data goes, a window at a time. */
typedef enum dc_status (*dc_dmime_sink)(void *ctx, const uint8_t *p, size_t n,
                                        struct dc_err *err);
/* Decrypts pending chunk i of res, hands its data to sink (may be NULL) and records its
 * signature state in res->items[i]. A malformed payload is an error; a signature that does
 * not verify is not (see dc_dmime_decrypt_finish). */
enum dc_status dc_dmime_read_verified(const struct dc_dmime_reader *r,
                                      struct dc_dmime_result *res, size_t i, dc_dmime_sink sink,
                                      void *ctx, struct dc_err *err);
/* Verifies every chunk of res still pending, then returns what dc_dmime_decrypt_ex would
 * have returned without DC_DMIME_DEFER_CONTENT (DC_ERR_SIGNATURE naming the first failing
 * chunk; a malformed payload as its error). */
enum dc_status dc_dmime_decrypt_finish(struct dc_dmime_reader *r, struct dc_dmime_result *res,
                                       struct dc_err *err);
/* Decrypts standard chunk i again and hands its data to sink in windows. Only after a
 * successful dc_dmime_decrypt_ex on this reader (the chunk's signature was checked then; the
 * message must not have changed since). */
enum dc_status dc_dmime_read_data(const struct dc_dmime_reader *r, size_t i, dc_dmime_sink sink,
                                  void *ctx, struct dc_err *err);
void dc_dmime_result_free(struct dc_dmime_result *res);

/* ---- origin signing ---- */

/*
 * The origin's step: r must be a reader opened as DC_ACTOR_ORIGIN on which
 * dc_dmime_decrypt() succeeded (author signatures checked). Computes 248 (envelope +
 * metadata), 249 (+ display) and 255 (everything before it, after 248/249 are filled) with
 * signer and re-encrypts each in place with the chunk key and IV from the origin's keyslot;
 * nothing else changes. Both bounce flags are always set, as the profile requires.
 */
enum dc_status dc_dmime_origin_sign(const struct dc_dmime_reader *r,
                                    const struct dc_signer *signer, struct dc_dmime **out,
                                    struct dc_err *err);
/* The same in place: m must be the message r was opened on, writable (heap, or a writable
 * map). Only the three signature payloads change. */
enum dc_status dc_dmime_origin_sign_inplace(const struct dc_dmime_reader *r, struct dc_dmime *m,
                                            const struct dc_signer *signer, struct dc_err *err);

/* ---- author-side build ---- */

/* A piece of chunk data. With segs set, the data is the concatenation of the segments and
 * data is ignored (len must be their total): the display data of a large message is its
 * framing block (memory) followed by a view into the mapped input, never copied. */
struct dc_dmime_seg {
    const uint8_t *p;
    size_t len;
};
struct dc_dmime_part {
    const uint8_t *data;
    size_t len;
    uint8_t flags;
    const struct dc_dmime_seg *segs;
    size_t nsegs;
};

struct dc_dmime_draft {
    const char *author, *author_fp;           /* address, user-signet crypto fingerprint */
    const uint8_t *author_enc;                /* 33-byte encryption key of the author */
    const char *origin, *origin_fp;           /* domain, org-signet crypto fingerprint */
    const uint8_t *origin_enc;
    const char *destination, *destination_fp;
    const uint8_t *destination_enc;
    const char *recipient, *recipient_fp;
    const uint8_t *recipient_enc;
    const uint8_t *common; /* common headers text; must pass dc_dmime_common_parse() */
    size_t common_len;
    const uint8_t *other; /* other headers, non-empty (libdime requires chunk 34) */
    size_t other_len;
    const struct dc_dmime_part *display; /* at least one; each at most DC_DMIME_MAX_CHUNK_DATA */
    size_t ndisplay;
    /* Attachments: a part longer than DC_DMIME_MAX_CHUNK_DATA is split here into several
     * consecutive 131 chunks, every one but the last with DC_DMIME_FLAG_CONTINUATION. */
    const struct dc_dmime_part *attach;
    size_t nattach;
    /* Called on data ranges once they are encrypted (the input's pages, dc_fmap_releaser);
     * optional. */
    struct dc_release release;
};

/* ---- common headers text (chunk 33, spec section 7.3) ---- */

/* Lines `Label: value` CRLF in this fixed order, optional ones (CC, Organization) skipped
 * when absent, no blank line. Labels are case-sensitive; values are raw bytes without CR or
 * LF (unfolded) and may be empty. */
enum dc_dmime_hdr {
    DC_HDR_DATE = 0,
    DC_HDR_TO,
    DC_HDR_CC,
    DC_HDR_FROM,
    DC_HDR_ORGANIZATION,
    DC_HDR_SUBJECT,
    DC_HDR_COUNT
};
struct dc_dmime_common {
    const uint8_t *val[DC_HDR_COUNT]; /* NULL when absent (points into the parsed text) */
    size_t len[DC_HDR_COUNT];
};
/* "Date", "To", "CC", "From", "Organization", "Subject". */
const char *dc_dmime_common_label(enum dc_dmime_hdr h);
/* Strict: labels in table order, no unknown or repeated label, Date/To/From/Subject present,
 * every line CRLF-terminated, nothing after the last line (DC_ERR_FIELD naming the problem). */
enum dc_status dc_dmime_common_parse(const uint8_t *text, size_t len, struct dc_dmime_common *out,
                                     struct dc_err *err);
/* Appends the canonical text; fails (DC_ERR_ARG) when a required value is NULL or a value
 * holds CR or LF. */
enum dc_status dc_dmime_common_format(const struct dc_dmime_common *in, struct dc_buf *out,
                                      struct dc_err *err);

/* libdime's default padding length for dsize = 69 + data_size and random byte r. */
size_t dc_dmime_padlen(size_t dsize, uint8_t r);

/* Builds and author-signs a message: chunks 2, 4, 5, 33, 34, 67..., 131..., 225 (with the
 * libdime tree quirk), 226, and 248/249/255 holding encrypted all-zero placeholders. */
enum dc_status dc_dmime_encrypt(const struct dc_dmime_draft *d, const struct dc_signer *author,
                                struct dc_dmime **out, struct dc_err *err);
/* Upper bound of the serialized size of the message d gives (for dc_fmap_create). */
size_t dc_dmime_size_bound(const struct dc_dmime_draft *d);
/* The same build written into map (writable, cap at least dc_dmime_size_bound), chunk by
 * chunk, in windows, releasing what is written; *out's bytes are in the map (map->len is set
 * to the message size; the caller truncates the file with dc_fmap_finish). */
enum dc_status dc_dmime_encrypt_to_map(const struct dc_dmime_draft *d,
                                       const struct dc_signer *author, struct dc_fmap *map,
                                       struct dc_dmime **out, struct dc_err *err);

#endif
