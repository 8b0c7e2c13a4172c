/* libFuzzer target for the frame codec and message decoding: the input is
 * a byte stream as a peer might send it. The first byte chooses how the
 * stream is cut into feeds, so split headers and bodies are explored too.
 * Every frame the parser yields is decoded as both request and reply. */
#include <stddef.h>
#include <stdint.h>

#include "frame.h"
#include "gpupool/errors.h"
#include "msg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size == 0)
    return 0;
  size_t step = (size_t)data[0] + 1;
  data++;
  size--;

  struct gp_frame_limits lim = {.max_msg = 4096, .max_payload = 65536};
  struct gp_frame_parser p;
  gp_frame_parser_init(&p, &lim);
  size_t off = 0;
  while (off < size) {
    size_t n = size - off < step ? size - off : step;
    size_t used = 0;
    struct gp_frame f;
    int rc = gp_frame_feed(&p, data + off, n, &used, &f);
    if (rc < 0)
      break;
    if (used > n)
      __builtin_trap();
    off += used;
    if (rc == 1) {
      if (f.hdr.msg_len > lim.max_msg || f.hdr.payload_len > lim.max_payload)
        __builtin_trap();
      for (int reply = 0; reply < 2; reply++) {
        ProtobufCMessage *m =
            gp_msg_unpack(f.hdr.type, reply, f.msg, f.hdr.msg_len);
        if (m != NULL) {
          int32_t r, d;
          if (reply && gp_msg_reply_status(m, &r, &d) != 0)
            __builtin_trap();
          protobuf_c_message_free_unpacked(m, NULL);
        }
      }
    } else if (used == 0) {
      break;
    }
  }
  gp_frame_parser_free(&p);
  return 0;
}
