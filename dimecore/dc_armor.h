/*
 * dc_armor - the PEM-like armor of DIME signets and key files.
 *
 *   -----BEGIN <TAG>-----
 *   base64 of the whole binary object (header included), 64 characters a line
 *   =XXXX   (base64 of the 3-byte OpenPGP CRC-24 of the binary object, RFC 4880 6.1)
 *   -----END <TAG>-----
 *
 * The reader accepts LF or CRLF, surrounding blank lines, a missing final newline and
 * any body line length; it requires the checksum line (as libdime does) and a matching END.
 */
#ifndef DC_ARMOR_H
#define DC_ARMOR_H

#include "dc_util.h"

#define DC_TAG_ORG_SIGNET  "ORGANIZATIONAL SIGNET"
#define DC_TAG_USER_SIGNET "USER SIGNET"
#define DC_TAG_ORG_KEY     "ORGANIZATIONAL KEY"
#define DC_TAG_USER_KEY    "USER KEY"
#define DC_TAG_SSR         "SIGNET SIGNING REQUEST" /* PRIME's tag; libdime uses ORG SIGNET */

#define DC_ARMOR_TAG_MAX 64
/* Largest binary object: 5-byte header + 2^24-1 bytes of payload. */
#define DC_ARMOR_BIN_MAX (5u + 0xFFFFFFu)

uint32_t dc_crc24(const uint8_t *p, size_t n);

/* Returns a malloc'd NUL-terminated armored text. */
char *dc_armor_encode(const char *tag, const uint8_t *bin, size_t len);

/* Decodes the first armored block in text. tag receives the BEGIN tag. *bin is malloc'd. */
enum dc_status dc_armor_decode(const char *text, size_t len, char tag[DC_ARMOR_TAG_MAX],
                               uint8_t **bin, size_t *binlen, struct dc_err *err);

/* True when the bytes look like armor (start with "-----BEGIN " after optional space). */
int dc_armor_detect(const uint8_t *p, size_t len);

#endif
