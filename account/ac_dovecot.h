/*
 * ac_dovecot - a client of Dovecot's authentication service (the auth client protocol,
 * version 1: VERSION, CPID; the server's handshake up to DONE; AUTH with mechanism PLAIN;
 * OK, FAIL or CONT). The account service checks its users' logins with it, against the same
 * passdb that Postfix's SASL (smtpd_sasl_type = dovecot) uses; the password is held in
 * secure memory only for the one request, and never stored or logged here.
 */
#ifndef AC_DOVECOT_H
#define AC_DOVECOT_H

#include "dc_util.h"

#include <stddef.h>

#define AC_USER_MAX 254

/* Asks the auth service at sock whether login and pass are right. DC_OK: yes, and user (of
 * AC_USER_MAX + 1 bytes) is the user name Dovecot answered with (its user= field, else the
 * login). DC_ERR_SIGNATURE: Dovecot said no (FAIL, or a mechanism step PLAIN never takes);
 * err has its reason when it gave one. DC_ERR_IO or DC_ERR_FORMAT: no answer within
 * timeout_ms, the socket, or a reply that is not the protocol (a temporary failure). rip: the
 * client's address, passed on for Dovecot's log and its failure delay. */
enum dc_status ac_dovecot_auth(const char *sock, const char *login, const uint8_t *pass,
                               size_t passlen, const char *rip, int timeout_ms,
                               char user[AC_USER_MAX + 1], struct dc_err *err);

#endif
