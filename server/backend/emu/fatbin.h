/* The emu backend's reader of module images: PTX text, ELF cubins and
 * nvcc fatbinaries, as cuModuleLoadData / cuLibraryLoadData receive them.
 *
 * The emulated device runs PTX, so the one thing the backend needs from an
 * image is the PTX text to interpret. A fatbin is a 16-byte header
 * (u32 magic 0xBA55ED50, u16 version 1, u16 header size, u64 size of the
 * entries) followed by entries, each a header (64 bytes for machine code,
 * 80 for PTX) and a payload padded to 8 bytes; see the "Fatbinaries"
 * section of docs/cuda-driver-facts.md. Several fatbins may come back to
 * back (the prelinked fatbins of a version-2 wrapper, concatenated by the
 * client).
 *
 * Everything here is a pure function of a byte buffer: no I/O, no global
 * state, safe to call from any thread. The buffer comes from an untrusted
 * client: every offset and size in it is checked against the buffer before
 * use, and every size it declares is checked against EMU_FATBIN_PTX_MAX
 * before anything is allocated for it.
 *
 * Every function that can fail returns 0 or a negative GP_E* code and, when
 * |msg| is not NULL and |msg_size| is not 0, writes one NUL-terminated
 * human-readable line (no trailing newline) saying why into |msg|,
 * truncated to |msg_size| bytes. The codes:
 *   GP_EINVAL   the image is malformed, of an unknown kind, or a fatbin
 *               wrapper (whose pointers mean nothing on the server);
 *   GP_ENOTSUP  EMU_FATBIN_ENOPTX: the image holds machine code but no PTX;
 *   GP_ETOOBIG  a size the image declares is over EMU_FATBIN_PTX_MAX
 *               (GP_ETOOBIG is in the fatal range of errors.h: callers that
 *               want the session to survive map it, like the others, to
 *               CUDA_ERROR_INVALID_IMAGE);
 *   GP_ENOMEM   an allocation failed.
 */
#ifndef GP_SERVER_EMU_FATBIN_H
#define GP_SERVER_EMU_FATBIN_H

#include <stddef.h>
#include <stdint.h>

#include "gpupool/errors.h"

/* The largest PTX text the reader will produce, and so the largest
 * uncompressed size an entry may declare. nvcc's PTX for real programs is
 * at most a few MiB; -G builds are 8-17 times larger than optimised ones. */
#define EMU_FATBIN_PTX_MAX (64u << 20)

/* A message buffer of this size holds any message the reader writes. */
#define EMU_FATBIN_MSG_SIZE 256

/* The image has no PTX, only machine code: the emulated device cannot run
 * it. Distinct from every other error the reader returns. */
#define EMU_FATBIN_ENOPTX GP_ENOTSUP

#define EMU_FATBIN_MAGIC 0xBA55ED50u
#define EMU_FATBIN_WRAPPER_MAGIC 0x466243B1u

/* Entry kinds (the u16 at offset 0 of an entry header). Other kinds exist
 * (e.g. LTO IR); the reader lists them and otherwise ignores them. */
#define EMU_FATBIN_KIND_PTX 1
#define EMU_FATBIN_KIND_ELF 2

/* Entry flags (the u64 at offset 40 of an entry header). */
#define EMU_FATBIN_FLAG_64BIT 0x1u
#define EMU_FATBIN_FLAG_LINUX 0x10u
#define EMU_FATBIN_FLAG_LZ4 0x2000u  /* payload is one LZ4 block */
#define EMU_FATBIN_FLAG_ZSTD 0x8000u /* payload is zstd frame(s) */

enum emu_image_kind {
  EMU_IMAGE_PTX = 1, /* PTX text */
  EMU_IMAGE_ELF,     /* an ELF cubin: machine code */
  EMU_IMAGE_FATBIN,  /* one or more fatbins back to back */
};

/* One entry of a fatbin, as emu_fatbin_next() reports it. Offsets are from
 * the start of the buffer given to emu_fatbin_iter_init(); the reader has
 * checked that [payload_offset, payload_offset + payload_size) lies inside
 * it and, for a compressed entry, that compressed_size <= payload_size. */
struct emu_fatbin_entry {
  unsigned fatbin;            /* index of the fatbin among those back to back */
  unsigned index;             /* index of the entry within its fatbin */
  uint16_t kind;              /* EMU_FATBIN_KIND_* or another */
  uint32_t sm;                /* e.g. 75 for sm_75 / compute_75 */
  uint64_t flags;             /* EMU_FATBIN_FLAG_* and others */
  size_t header_offset;       /* of the entry header */
  uint32_t header_size;       /* of the entry header */
  size_t payload_offset;      /* of the payload */
  uint64_t payload_size;      /* padded payload bytes */
  uint64_t compressed_size;   /* bytes of compressed data; 0 if raw */
  uint64_t uncompressed_size; /* declared; 0 if raw */
};

/* A walk over the entries of a buffer of fatbins. Embed one and call
 * emu_fatbin_iter_init(); it holds a pointer to the buffer but does not own
 * it. */
struct emu_fatbin_iter {
  const uint8_t *data;
  size_t len;
  size_t pos;        /* next entry header, or next fatbin when pos == end */
  size_t end;        /* end of the current fatbin's entries */
  unsigned fatbin;   /* fatbins started so far */
  unsigned index;    /* entries seen in the current fatbin */
  int done;          /* 1 after the end, or an error */
};

/* Says what kind of image |data| (|len| bytes) is: a fatbin (magic
 * 0xBA55ED50), an ELF cubin ("\x7fELF"), or PTX text (after optional
 * whitespace and comments, a directive: .version, .target or
 * .address_size). Looks only at the start of the image: emu_fatbin_next()
 * and emu_image_get_ptx() check the rest. Returns 0 and sets |*kind|, or
 * GP_EINVAL for a fatbin wrapper (the message says that the client must
 * send the fatbin bytes, not the wrapper) and for anything else. */
int emu_image_classify(const void *data, size_t len, enum emu_image_kind *kind,
                       char *msg, size_t msg_size);

/* Starts a walk over the entries of the fatbins in |data| (|len| bytes),
 * which must stay valid while the walk runs. Never fails. */
void emu_fatbin_iter_init(struct emu_fatbin_iter *it, const void *data,
                          size_t len);

/* Reports the next entry in |*entry|. Returns 1 for an entry, 0 after the
 * last (zero bytes after the last fatbin, as a linker's alignment leaves,
 * are allowed), or GP_EINVAL when the buffer is malformed from this point
 * on; after 0 or an error every later call returns 0. Does not allocate. */
int emu_fatbin_next(struct emu_fatbin_iter *it, struct emu_fatbin_entry *entry,
                    char *msg, size_t msg_size);

/* The PTX the emulated device should run from the image |data| (|len|
 * bytes) of any kind emu_image_classify() accepts. For fatbins: among all
 * PTX entries of all fatbins the one with the highest SM, the latest of
 * equals, decompressed (zstd or LZ4) to exactly its declared size. For PTX
 * text: the text itself. The text ends at its first NUL.
 *
 * On success returns 0, sets |*out| to a NUL-terminated heap copy of the
 * text, which the caller frees with free(), and |*out_len| (when not NULL)
 * to its strlen(). On failure returns a negative code (see the top of this
 * file; EMU_FATBIN_ENOPTX for an image with machine code only, whose message
 * says to rebuild with PTX) and leaves |*out| NULL. Every header and size
 * of the image is checked, not only the chosen entry's; only the chosen
 * entry is decompressed. */
int emu_image_get_ptx(const void *data, size_t len, char **out,
                      size_t *out_len, char *msg, size_t msg_size);

/* Whether machine-code entry |e| (as emu_fatbin_next() reported it for
 * the same |data| and |len|) holds a cubin that defines no function and no
 * variable: what nvcc's device-link step embeds in every program, even
 * one without relocatable device code (a version-2 wrapper whose fatbin
 * holds such a cubin and no PTX; loading it must succeed, with nothing in
 * the module). Decompresses the entry if needed. Returns 1 (empty), 0
 * (defines something), or a negative code with |msg| saying why (not an
 * ELF entry, malformed ELF, a size over EMU_FATBIN_PTX_MAX). */
int emu_fatbin_elf_is_empty(const void *data, size_t len,
                            const struct emu_fatbin_entry *e, char *msg,
                            size_t msg_size);

#endif
