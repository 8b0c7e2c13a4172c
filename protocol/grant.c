/* Grants and keys: see grant.h and docs/broker.md. */
#include "grant.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "gpupool/errors.h"

int gp_key_load(const char *path, uint8_t *key, size_t *len, char *why,
                size_t whylen) {
  struct stat st;
  ssize_t n;
  size_t got = 0;
  int fd;

  *len = 0;
  fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) {
    snprintf(why, whylen, "cannot open %s: %s", path, strerror(errno));
    return GP_EINVAL;
  }
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    snprintf(why, whylen, "%s is not a regular file", path);
    close(fd);
    return GP_EINVAL;
  }
  if (st.st_mode & (S_IRWXG | S_IRWXO)) {
    snprintf(why, whylen, "%s is readable by others than its owner (mode "
             "%03o): chmod 600 it", path, (unsigned)(st.st_mode & 0777));
    close(fd);
    return GP_EINVAL;
  }
  /* One byte more than the limit, to tell "too long" from "exactly". */
  for (;;) {
    n = read(fd, key + got, GP_KEY_MAX_LEN - got);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      snprintf(why, whylen, "cannot read %s: %s", path, strerror(errno));
      close(fd);
      return GP_EINVAL;
    }
    if (n == 0)
      break;
    got += (size_t)n;
    if (got == GP_KEY_MAX_LEN) {
      uint8_t extra;
      if (read(fd, &extra, 1) == 1) {
        snprintf(why, whylen, "%s is longer than %u bytes", path,
                 GP_KEY_MAX_LEN);
        close(fd);
        return GP_EINVAL;
      }
      break;
    }
  }
  close(fd);
  if (got > 0 && key[got - 1] == '\n')
    got--;
  if (got > 0 && key[got - 1] == '\r')
    got--;
  if (got < GP_KEY_MIN_LEN) {
    snprintf(why, whylen, "%s holds %zu bytes; a key needs at least %u "
             "(openssl rand -hex 32 makes one)", path, got, GP_KEY_MIN_LEN);
    OPENSSL_cleanse(key, GP_KEY_MAX_LEN);
    return GP_EINVAL;
  }
  *len = got;
  return 0;
}

int gp_hmac_sha256(const uint8_t *key, size_t keylen, const void *data,
                   size_t len, uint8_t mac[GP_GRANT_MAC_LEN]) {
  unsigned int maclen = 0;

  if (keylen > INT32_MAX)
    return GP_EINVAL;
  if (!HMAC(EVP_sha256(), key, (int)keylen, data, len, mac, &maclen) ||
      maclen != GP_GRANT_MAC_LEN)
    return GP_ENOMEM;
  return 0;
}

bool gp_ct_equal(const void *a, const void *b, size_t len) {
  return CRYPTO_memcmp(a, b, len) == 0;
}

void gp_sha256_hex(const void *data, size_t len, char hex[65]) {
  static const char digits[] = "0123456789abcdef";
  uint8_t md[32];
  unsigned int mdlen = 0;

  memset(md, 0, sizeof(md));
  EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL);
  for (int i = 0; i < 32; i++) {
    hex[2 * i] = digits[md[i] >> 4];
    hex[2 * i + 1] = digits[md[i] & 15];
  }
  hex[64] = '\0';
}

/* HMAC-SHA256 of |prefix| (|plen| bytes, its NUL included) followed by
 * |len| bytes of |data|: the prefix separates the domains the one key
 * signs (grants, registrations), so bytes signed for one are never valid
 * for the other. */
static int prefixed_mac(const uint8_t *key, size_t keylen, const char *prefix,
                        size_t plen, const void *data, size_t len,
                        uint8_t mac[GP_GRANT_MAC_LEN]) {
  uint8_t *buf;
  int r;

  if (len > SIZE_MAX - plen)
    return GP_EINVAL;
  buf = malloc(plen + len);
  if (!buf)
    return GP_ENOMEM;
  memcpy(buf, prefix, plen);
  if (len)
    memcpy(buf + plen, data, len);
  r = gp_hmac_sha256(key, keylen, buf, plen + len, mac);
  OPENSSL_cleanse(buf, plen + len);
  free(buf);
  return r;
}

static const char register_domain[] = "gpupool-register"; /* and its NUL */
static const char grant_domain[] = "gpupool-grant";       /* and its NUL */

int gp_register_auth(const uint8_t *key, size_t keylen,
                     const Gpupool__BrokerRegister *m,
                     uint8_t mac[GP_GRANT_MAC_LEN]) {
  Gpupool__BrokerRegister copy = *m;
  size_t n;
  uint8_t *buf;
  int r;

  copy.auth.data = NULL;
  copy.auth.len = 0;
  n = gpupool__broker_register__get_packed_size(&copy);
  buf = malloc(n + 1);
  if (!buf)
    return GP_ENOMEM;
  gpupool__broker_register__pack(&copy, buf);
  r = prefixed_mac(key, keylen, register_domain, sizeof(register_domain),
                   buf, n, mac);
  free(buf);
  return r;
}

int gp_grant_sign(const uint8_t *key, size_t keylen, const Gpupool__Grant *g,
                  uint8_t **out, size_t *outlen) {
  size_t body = gpupool__grant__get_packed_size(g);
  uint8_t *buf;
  int r;

  *out = NULL;
  *outlen = 0;
  if (body + GP_GRANT_MAC_LEN > GP_GRANT_MAX_LEN)
    return GP_ETOOBIG;
  buf = malloc(body + GP_GRANT_MAC_LEN);
  if (!buf)
    return GP_ENOMEM;
  gpupool__grant__pack(g, buf);
  r = prefixed_mac(key, keylen, grant_domain, sizeof(grant_domain), buf, body,
                   buf + body);
  if (r != 0) {
    free(buf);
    return r;
  }
  *out = buf;
  *outlen = body + GP_GRANT_MAC_LEN;
  return 0;
}

int gp_grant_verify(const uint8_t *key, size_t keylen, const uint8_t *buf,
                    size_t len, uint64_t now_unix, Gpupool__Grant **out,
                    char *why, size_t whylen) {
  uint8_t mac[GP_GRANT_MAC_LEN];
  Gpupool__Grant *g;
  size_t body;

  *out = NULL;
  if (len <= GP_GRANT_MAC_LEN || len > GP_GRANT_MAX_LEN) {
    snprintf(why, whylen, "grant of %zu bytes is malformed", len);
    return GP_EGRANT;
  }
  body = len - GP_GRANT_MAC_LEN;
  if (prefixed_mac(key, keylen, grant_domain, sizeof(grant_domain), buf,
                   body, mac) != 0) {
    snprintf(why, whylen, "grant cannot be checked (out of memory)");
    return GP_EGRANT;
  }
  if (!gp_ct_equal(mac, buf + body, GP_GRANT_MAC_LEN)) {
    snprintf(why, whylen, "grant signature does not verify");
    return GP_EGRANT;
  }
  g = gpupool__grant__unpack(NULL, body, buf);
  if (!g) {
    snprintf(why, whylen, "grant is signed but malformed");
    return GP_EGRANT;
  }
  if (g->version != GP_GRANT_VERSION) {
    snprintf(why, whylen, "grant version %u is not %u", g->version,
             GP_GRANT_VERSION);
    gpupool__grant__free_unpacked(g, NULL);
    return GP_EGRANT;
  }
  if (g->binding_key.len != GP_BINDING_KEY_LEN) {
    snprintf(why, whylen, "grant has a binding key of %zu bytes (not %u)",
             g->binding_key.len, GP_BINDING_KEY_LEN);
    gpupool__grant__free_unpacked(g, NULL);
    return GP_EGRANT;
  }
  if (g->expires_unix <= now_unix) {
    snprintf(why, whylen, "grant expired %" PRIu64 " s ago",
             now_unix - g->expires_unix);
    gpupool__grant__free_unpacked(g, NULL);
    return GP_EGRANT;
  }
  *out = g;
  return 0;
}

/* ---- Binding ------------------------------------------------------------------ */

static const char proof_domain[] = "gpupool-grant-proof"; /* and its NUL */
#define PROOF_MSG_LEN (sizeof(proof_domain) + GP_GRANT_EXPORTER_LEN + 32)

/* "gpupool-grant-proof\0" || exporter || SHA-256(grant) into |msg|. */
static int proof_message(const uint8_t exporter[GP_GRANT_EXPORTER_LEN],
                         const uint8_t *grant, size_t len,
                         uint8_t msg[PROOF_MSG_LEN]) {
  unsigned int mdlen = 0;

  memcpy(msg, proof_domain, sizeof(proof_domain));
  memcpy(msg + sizeof(proof_domain), exporter, GP_GRANT_EXPORTER_LEN);
  if (EVP_Digest(grant, len, msg + sizeof(proof_domain) +
                 GP_GRANT_EXPORTER_LEN, &mdlen, EVP_sha256(), NULL) != 1 ||
      mdlen != 32)
    return GP_ENOMEM;
  return 0;
}

int gp_binding_keypair(uint8_t priv[GP_BINDING_KEY_LEN],
                       uint8_t pub[GP_BINDING_KEY_LEN]) {
  EVP_PKEY_CTX *pc = EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, NULL);
  EVP_PKEY *k = NULL;
  size_t plen = GP_BINDING_KEY_LEN, qlen = GP_BINDING_KEY_LEN;
  int r = GP_ENOMEM;

  if (pc && EVP_PKEY_keygen_init(pc) == 1 && EVP_PKEY_keygen(pc, &k) == 1 &&
      EVP_PKEY_get_raw_private_key(k, priv, &plen) == 1 &&
      EVP_PKEY_get_raw_public_key(k, pub, &qlen) == 1 &&
      plen == GP_BINDING_KEY_LEN && qlen == GP_BINDING_KEY_LEN)
    r = 0;
  EVP_PKEY_free(k);
  EVP_PKEY_CTX_free(pc);
  return r;
}

int gp_grant_proof(const uint8_t priv[GP_BINDING_KEY_LEN],
                   const uint8_t exporter[GP_GRANT_EXPORTER_LEN],
                   const uint8_t *grant, size_t len,
                   uint8_t proof[GP_GRANT_PROOF_LEN]) {
  uint8_t msg[PROOF_MSG_LEN];
  EVP_PKEY *k;
  EVP_MD_CTX *mc;
  size_t siglen = GP_GRANT_PROOF_LEN;
  int r = GP_ENOMEM;

  if (proof_message(exporter, grant, len, msg) != 0)
    return GP_ENOMEM;
  k = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, priv,
                                   GP_BINDING_KEY_LEN);
  mc = EVP_MD_CTX_new();
  if (k && mc && EVP_DigestSignInit(mc, NULL, NULL, NULL, k) == 1 &&
      EVP_DigestSign(mc, proof, &siglen, msg, sizeof(msg)) == 1 &&
      siglen == GP_GRANT_PROOF_LEN)
    r = 0;
  EVP_MD_CTX_free(mc);
  EVP_PKEY_free(k);
  return r;
}

bool gp_grant_proof_ok(const uint8_t pub[GP_BINDING_KEY_LEN],
                       const uint8_t exporter[GP_GRANT_EXPORTER_LEN],
                       const uint8_t *grant, size_t len, const uint8_t *proof,
                       size_t proof_len) {
  uint8_t msg[PROOF_MSG_LEN];
  EVP_PKEY *k;
  EVP_MD_CTX *mc;
  bool ok = false;

  if (proof_len != GP_GRANT_PROOF_LEN ||
      proof_message(exporter, grant, len, msg) != 0)
    return false;
  k = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, pub,
                                  GP_BINDING_KEY_LEN);
  mc = EVP_MD_CTX_new();
  if (k && mc && EVP_DigestVerifyInit(mc, NULL, NULL, NULL, k) == 1 &&
      EVP_DigestVerify(mc, proof, proof_len, msg, sizeof(msg)) == 1)
    ok = true;
  ERR_clear_error();
  EVP_MD_CTX_free(mc);
  EVP_PKEY_free(k);
  return ok;
}
