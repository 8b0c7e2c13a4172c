/* libFuzzer target for the grant verifier (gp_grant_verify: MAC, unpack,
 * version, expiry) and the registration MAC (gp_register_auth over an
 * unpacked BrokerRegister, compared as the broker compares it), with a
 * fixed key.
 *
 * Byte 0 of an input picks what the rest is:
 *   FG_SIGNED    a grant body: the harness appends its valid MAC, so the
 *                unpack and the field checks are reached; a grant that
 *                verifies is signed again by gp_grant_sign and must verify
 *                again, to the same fields.
 *   FG_REGISTER  a packed BrokerRegister; its auth is checked, then set to
 *                the right MAC and checked again (it must then verify).
 *   neither      a grant as a client sends it (MAC included).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "grant.h"
#include "gpupool.pb-c.h"

#define FG_SIGNED 0x01
#define FG_REGISTER 0x02

/* The verifier's clock: grants in the seeds expire after it. */
#define FG_NOW 1800000000ull

static const uint8_t key[32] = "fuzz_grant fixed key, 32 bytes!";

static void check_grant(const uint8_t *buf, size_t len) {
  Gpupool__Grant *g = NULL, *again = NULL;
  uint8_t *signed_buf = NULL;
  size_t signed_len = 0;
  char why[256];

  if (gp_grant_verify(key, sizeof(key), buf, len, FG_NOW, &g, why,
                      sizeof(why)) != 0) {
    if (g || !why[0] || !memchr(why, '\0', sizeof(why)))
      __builtin_trap();
    return;
  }
  if (!g || g->expires_unix <= FG_NOW)
    __builtin_trap();
  if (gp_grant_sign(key, sizeof(key), g, &signed_buf, &signed_len) == 0) {
    if (gp_grant_verify(key, sizeof(key), signed_buf, signed_len, FG_NOW,
                        &again, why, sizeof(why)) != 0 ||
        again->session_id != g->session_id ||
        again->expires_unix != g->expires_unix ||
        again->memory_limit != g->memory_limit ||
        strcmp(again->server, g->server) != 0 ||
        strcmp(again->gpu_uuid, g->gpu_uuid) != 0)
      __builtin_trap();
    gpupool__grant__free_unpacked(again, NULL);
    free(signed_buf);
  }
  gpupool__grant__free_unpacked(g, NULL);
}

static void check_register(const uint8_t *buf, size_t len) {
  Gpupool__BrokerRegister *m, copy;
  uint8_t mac[GP_GRANT_MAC_LEN], mac2[GP_GRANT_MAC_LEN];

  m = gpupool__broker_register__unpack(NULL, len, buf);
  if (!m)
    return;
  if (gp_register_auth(key, sizeof(key), m, mac) == 0) {
    /* As the broker compares it. */
    volatile bool ok = m->auth.len == GP_GRANT_MAC_LEN &&
                       gp_ct_equal(mac, m->auth.data, GP_GRANT_MAC_LEN);
    (void)ok;
    /* The MAC ignores the auth field: with the right one it verifies. */
    copy = *m;
    copy.auth.data = mac;
    copy.auth.len = sizeof(mac);
    if (gp_register_auth(key, sizeof(key), &copy, mac2) != 0 ||
        !gp_ct_equal(mac, mac2, sizeof(mac)))
      __builtin_trap();
  }
  gpupool__broker_register__free_unpacked(m, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size == 0)
    return 0;
  uint8_t mode = data[0];
  data++;
  size--;

  if (mode & FG_REGISTER) {
    check_register(data, size);
  } else if (mode & FG_SIGNED) {
    /* The body, then HMAC-SHA256(key, "gpupool-grant\0" || body): the
     * format gp_grant_sign writes (protocol/grant.c). */
    static const char domain[] = "gpupool-grant";
    uint8_t *buf = malloc(sizeof(domain) + size + GP_GRANT_MAC_LEN);
    if (!buf)
      return 0;
    memcpy(buf, domain, sizeof(domain));
    if (size)
      memcpy(buf + sizeof(domain), data, size);
    if (gp_hmac_sha256(key, sizeof(key), buf, sizeof(domain) + size,
                       buf + sizeof(domain) + size) == 0)
      check_grant(buf + sizeof(domain), size + GP_GRANT_MAC_LEN);
    free(buf);
  } else {
    check_grant(data, size);
  }
  return 0;
}
