/* The input format of fuzz_dispatch (described in fuzz_dispatch.c), shared
 * with the seed writer dispatch_seeds.c. */
#ifndef GP_TESTS_FUZZ_DISPATCH_H
#define GP_TESTS_FUZZ_DISPATCH_H

/* Byte 0 of an input. */
#define FD_MODE_OWN_HELLO 0x01 /* no HELLO from the harness */
#define FD_MODE_RAW 0x02       /* the rest is the byte stream, verbatim */

/* A record's head: type, flags, msg_len (LE16), payload_len (LE16). */
#define FD_RECORD_HEAD 6

/* The emulated device's memory per input: small, so that filling it is
 * quick. */
#define FD_EMU_MEMORY (16ull << 20)

#endif
