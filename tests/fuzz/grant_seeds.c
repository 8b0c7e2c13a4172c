/* Writes the seed corpus of fuzz_grant (tests/fuzz/corpus/fuzz_grant):
 * grants signed with fuzz_grant's fixed key as the broker signs them
 * (whole, and as bodies for its FG_SIGNED mode), and BrokerRegister
 * messages as a server sends them.
 *
 * usage: grant_seeds OUTDIR
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "grant.h"
#include "gpupool.pb-c.h"

/* As in fuzz_grant.c. */
static const uint8_t key[32] = "fuzz_grant fixed key, 32 bytes!";
#define FG_SIGNED 0x01
#define FG_REGISTER 0x02

static void save(const char *dir, const char *name, uint8_t mode,
                 const uint8_t *buf, size_t len) {
  char path[4096];
  FILE *f;

  snprintf(path, sizeof(path), "%s/%s", dir, name);
  f = fopen(path, "wb");
  if (!f || fwrite(&mode, 1, 1, f) != 1 ||
      fwrite(buf, 1, len, f) != len || fclose(f) != 0) {
    perror(path);
    exit(1);
  }
}

int main(int argc, char **argv) {
  static const char *servers[] = {"gpu-a", "node-17.example", ""};
  static const uint64_t limits[] = {0, 1ull << 30, UINT64_MAX};
  uint8_t nonce[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
  /* A fixed binding key (any 32 bytes verify as a grant's field). */
  uint8_t binding[GP_BINDING_KEY_LEN];
  for (size_t b = 0; b < sizeof(binding); b++)
    binding[b] = (uint8_t)(0xa0 + b);
  char name[64];

  if (argc != 2) {
    fprintf(stderr, "usage: grant_seeds OUTDIR\n");
    return 2;
  }
  for (int i = 0; i < 3; i++) {
    Gpupool__Grant g = GPUPOOL__GRANT__INIT;
    uint8_t *buf;
    size_t len;

    g.version = GP_GRANT_VERSION;
    g.binding_key.data = binding;
    g.binding_key.len = sizeof(binding);
    g.session_id = 0x1122334455667788ull + (uint64_t)i;
    g.tenant = i == 1 ? "team-b" : "alice";
    g.server = (char *)servers[i];
    g.gpu_uuid = "GPU-8f3c1a2e-0000-4000-8000-00000000000" "1";
    g.memory_limit = limits[i];
    g.issued_unix = 1799999000ull;
    g.expires_unix = i == 2 ? 1700000000ull : 1800000600ull; /* expired */
    g.nonce.data = nonce;
    g.nonce.len = sizeof(nonce);
    if (gp_grant_sign(key, sizeof(key), &g, &buf, &len) != 0) {
      fprintf(stderr, "grant_seeds: gp_grant_sign failed\n");
      return 1;
    }
    snprintf(name, sizeof(name), "grant_%d", i);
    save(argv[1], name, 0, buf, len);
    snprintf(name, sizeof(name), "grant_body_%d", i);
    save(argv[1], name, FG_SIGNED, buf, len - GP_GRANT_MAC_LEN);
    free(buf);
  }
  {
    Gpupool__BrokerRegister m = GPUPOOL__BROKER_REGISTER__INIT;
    Gpupool__KeyValue l = GPUPOOL__KEY_VALUE__INIT, *lp = &l;
    uint8_t mac[GP_GRANT_MAC_LEN], *buf;
    size_t n;

    m.name = "gpu-a";
    m.timestamp_unix = 1800000000ull;
    m.address = "10.0.0.7:7471";
    l.key = "zone";
    l.value = "b";
    m.labels = &lp;
    m.n_labels = 1;
    m.version = "gpupool-server 0.1.0 (emu)";
    if (gp_register_auth(key, sizeof(key), &m, mac) != 0)
      return 1;
    m.auth.data = mac;
    m.auth.len = sizeof(mac);
    n = gpupool__broker_register__get_packed_size(&m);
    buf = malloc(n);
    gpupool__broker_register__pack(&m, buf);
    save(argv[1], "register", FG_REGISTER, buf, n);
    free(buf);
  }
  return 0;
}
