/*
 * cl_sync - the reading side of dime-client (dime-client(1)):
 *
 *   sync     new messages of the provider's IMAP mailbox (cl_imap), each opened and checked
 *            with the user's own key and signets (cl_decrypt), delivered into a local Maildir
 *            (cl_maildir); where it stopped and what it delivered are kept in the client's
 *            directory (cl_state), so a run fetches only what is new and a renumbered mailbox
 *            (new UIDVALIDITY) is fetched again without delivering anything twice.
 *   decrypt  one message on standard input to standard output, the same way (for a mail
 *            client's filter); the exit status is the verdict.
 *
 * Each returns the command's exit status; errors are printed as "dime-client: CMD: reason".
 */
#ifndef CL_SYNC_H
#define CL_SYNC_H

/* Exit statuses of decrypt (beside the sysexits.h ones for errors). */
#define CL_EXIT_PASS 0
#define CL_EXIT_FAIL 1
#define CL_EXIT_NONE 2

int cl_sync_main(const char *dir, int argc, char **argv);
int cl_decrypt_main(const char *dir, int argc, char **argv);

#endif
