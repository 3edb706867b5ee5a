/*
 * dc_dmime_int - private to the D/MIME codec: what its three parts share and nobody else
 * may use. dc_dmime.c owns the chunk table, parsing, the signed byte ranges, keyslots and
 * the common-headers text; dc_dmime_read.c opening, decryption, verification and origin
 * signing; dc_dmime_build.c encoding. The windowed pass over a message's bytes stays
 * static inline here: it sits on the hashing and verification paths of every part.
 */
#ifndef DC_DMIME_INT_H
#define DC_DMIME_INT_H

#include "dc_dmime.h"

enum payload_kind { PK_NONE = 0, PK_EPHEMERAL, PK_STANDARD, PK_SIGNATURE };

struct chunk_info {
    uint8_t type;
    const char *name;
    enum payload_kind kind;
    unsigned actors;
    int rank;     /* position in libdime's serializer order */
    int multiple; /* may repeat (display, attachments) */
    int required; /* must be present when parsing */
};

/* The table entry of a chunk type, NULL for a type the format does not have. */
const struct chunk_info *dmime_info_of(unsigned type);

/* Error prefix naming a chunk. */
#define CHUNK_FMT "chunk %u (%s) at offset %zu"
#define CHUNK_ARGS(c) (unsigned)(c)->type, dc_dmime_chunk_name((c)->type), (c)->offset

/* Feeds bin[off, off + len) to update in windows; mapped bytes are released behind. */
static inline void range_pass(const struct dc_dmime *m, size_t off, size_t len,
                              void (*update)(void *h, const void *p, size_t n), void *h)
{
    while (len > 0) {
        size_t n = len < DC_STREAM_WINDOW ? len : DC_STREAM_WINDOW;
        update(h, m->bin + off, n);
        dc_fmap_release(m->map, m->bin + off, n);
        off += n;
        len -= n;
    }
}

/* The chunk order seen so far, for the checks shared by the parser and the signature-input
 * checker (dc_dmime_input.c). */
struct dmime_order {
    int last_rank;
    unsigned seen; /* bit per rank */
};
#define DMIME_ORDER_INIT {-1, 0}

/* Checks the 4-byte chunk header at offset off against the table and the order so far
 * (known type, serializer order, payload size of its kind) and records it in ord; gives the
 * table entry, the payload size and the keyslot count. The parser's rules, in one place. */
enum dc_status dmime_chunk_head(const uint8_t hdr[4], size_t off, struct dmime_order *ord,
                                const struct chunk_info **info, size_t *plen, size_t *nslots,
                                struct dc_err *err);
/* DC_ERR_FIELD naming the first required chunk of rank <= upto that ord has not seen. */
enum dc_status dmime_required_seen(const struct dmime_order *ord, int upto,
                                   struct dc_err *err);

/* The sizes in the header of a standard chunk's plaintext (hdr: data_size(3) | flags |
 * pad_len, after the 64-byte signature) in a payload of plen >= 69 bytes: the data and
 * padding lengths, or what is wrong (the callers name the chunk or input in their message). */
enum dmime_std_fault { DMIME_STD_OK, DMIME_STD_ZERO, DMIME_STD_OVER, DMIME_STD_PADLEN };
enum dmime_std_fault dmime_std_sizes(size_t plen, const uint8_t hdr[5], size_t *ds,
                                     size_t *pad);

/* Parses m->bin (already set) into the chunk table. */
enum dc_status dmime_parse_into(struct dc_dmime *m, struct dc_err *err);

/* Signs bin[s0, s1) of m: streaming over a mapped message, one buffer otherwise. */
enum dc_status dmime_sign_range(const struct dc_signer *signer, const struct dc_dmime *m,
                                size_t s0, size_t s1, uint8_t sig[64], struct dc_err *err);

/* The libdime tree-signature data from the chunk hashes (see dc_dmime.c). */
void dmime_tree_data_quirk(const uint8_t *types, const uint8_t *hashes, size_t n,
                           uint8_t **data, size_t *len);

/* Builds an encrypted keyslot for chunk key/iv under kek. */
enum dc_status dmime_slot_wrap(const struct dc_kek *kek, const uint8_t key[32],
                               const uint8_t iv[16], uint8_t out[64], struct dc_err *err);

#endif
