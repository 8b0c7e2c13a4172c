/* Asking the broker (docs/broker.md): one connection per request, one
 * frame out, its answer in, close. The library asks for a session at
 * cuInit (gp__broker_request_session()); the CLI asks for the pool's status
 * and drains servers (gp__broker_rpc()). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "broker.h"
#include "gpupool/gpupool.h"
#include "grant.h"
#include "msg.h"
#include "wire.h"

int gp__broker_rpc(const char *broker, const struct gp__tls_opts *tls,
                   int timeout_ms, uint16_t type, const ProtobufCMessage *req,
                   ProtobufCMessage **reply, char *why, size_t why_len) {
  *reply = NULL;
  struct gp__hostport hp;
  if (gp__parse_hostport(broker, GP_DEFAULT_BROKER_PORT, GP_ENV_BROKER, &hp,
                         why, why_len) < 0)
    return GP__BRPC_UNREACHABLE;
  char dial_why[900];
  struct gp_wire w;
  if (gp__connect_wire(&hp, tls, timeout_ms, "broker", &w, dial_why,
                       sizeof(dial_why)) < 0) {
    snprintf(why, why_len, "the broker cannot be reached: %s", dial_why);
    return GP__BRPC_UNREACHABLE;
  }
  w.timeout_ms = timeout_ms;
  struct gp_frame_header h;
  ProtobufCMessage *m = NULL;
  int rc = gp_wire_send(&w, type, 0, 1, req, NULL, 0);
  if (rc == 0)
    rc = gp_wire_recv_header(&w, &h);
  if (rc == 0 && h.type == GP_MSG_PROTOCOL_ERROR &&
      gp_wire_recv_msg(&w, &h, &m) == 0) {
    const Gpupool__ProtocolError *pe = (const Gpupool__ProtocolError *)m;
    snprintf(why, why_len, "the broker at %s answered with a protocol error: "
             "%s", hp.addr, pe->message && *pe->message
                                 ? pe->message
                                 : gp_strerror(pe->code));
    protobuf_c_message_free_unpacked(m, NULL);
    gp_wire_free(&w);
    return GP__BRPC_UNREACHABLE;
  }
  if (rc == 0 && (h.type != type || !(h.flags & GP_FRAME_F_REPLY) ||
                  h.request_id != 1))
    rc = GP_EPROTO;
  if (rc == 0)
    rc = gp_wire_recv_msg(&w, &h, &m);
  gp_wire_free(&w);
  if (rc != 0) {
    if (rc == GP_ECLOSED && tls->insecure)
      snprintf(why, why_len, "the broker at %s closed the connection without "
               "an answer: is it running TLS? (plain TCP was asked for: "
               "--insecure or %s; drop it, or start the broker with "
               "--insecure)", hp.addr, GP_ENV_INSECURE);
    else if (rc == GP_ECLOSED)
      snprintf(why, why_len, "the broker at %s closed the connection without "
               "an answer", hp.addr);
    else if (rc == GP_ETIMEDOUT)
      snprintf(why, why_len, "the broker at %s did not answer within %.1f s",
               hp.addr, timeout_ms / 1000.0);
    else
      snprintf(why, why_len, "the broker at %s answered nonsense: %s (is it "
               "a gpupool broker?)", hp.addr, gp_strerror(rc));
    protobuf_c_message_free_unpacked(m, NULL);
    return GP__BRPC_UNREACHABLE;
  }
  *reply = m;
  return GP__BRPC_OK;
}

int gp__broker_request_session(const struct gp__pool *pool, int timeout_ms,
                               const char *client, struct gp__grant *g,
                               char *why, size_t why_len) {
  memset(g, 0, sizeof(*g));
  Gpupool__KeyValue kv[GP__MAX_LABELS];
  Gpupool__KeyValue *kvp[GP__MAX_LABELS];
  for (int i = 0; i < pool->nlabels; i++) {
    gpupool__key_value__init(&kv[i]);
    kv[i].key = (char *)pool->labels[i].key;
    kv[i].value = (char *)pool->labels[i].value;
    kvp[i] = &kv[i];
  }
  Gpupool__BrokerSessionRequest req = GPUPOOL__BROKER_SESSION_REQUEST__INIT;
  req.token.data = (uint8_t *)pool->token;
  req.token.len = strlen(pool->token);
  req.memory = pool->memory;
  req.gpu_count = 1;
  req.n_labels = (size_t)pool->nlabels;
  req.labels = kvp;
  req.server = (char *)pool->server;
  req.client = (char *)client;
  /* A fresh key per request: the grant is bound to it, and HELLO proves
   * its possession on the connection that presents the grant. */
  uint8_t pub[GP_BINDING_KEY_LEN];
  if (gp_binding_keypair(g->binding_priv, pub) != 0) {
    snprintf(why, why_len, "cannot make a key for the grant (out of memory)");
    return -1;
  }
  req.binding_key.data = pub;
  req.binding_key.len = sizeof(pub);

  ProtobufCMessage *m = NULL;
  if (gp__broker_rpc(pool->broker, &pool->tls, timeout_ms,
                     GP_MSG_BROKER_REQUEST_SESSION, &req.base, &m, why,
                     why_len) != GP__BRPC_OK)
    return -1;
  const Gpupool__BrokerSessionGrant *gr = (const Gpupool__BrokerSessionGrant *)m;
  int ret = -1;
  if (gr->result != 0) {
    snprintf(why, why_len, "the broker refused the session: %s",
             gr->message && *gr->message ? gr->message
                                         : gp_strerror(gr->result));
    ret = 1;
    goto out;
  }
  if (gr->grant.len == 0 || gr->grant.len > sizeof(g->grant)) {
    snprintf(why, why_len, "the broker at %s sent a grant of %zu bytes (1 to "
             "%zu)", pool->broker, gr->grant.len, sizeof(g->grant));
    goto out;
  }
  char addr_why[400];
  if (gr->address == NULL || *gr->address == '\0' ||
      gp__parse_hostport(gr->address, GP_DEFAULT_SERVER_PORT,
                         "the broker's server address", &g->server, addr_why,
                         sizeof(addr_why)) < 0) {
    snprintf(why, why_len, "the broker at %s granted an unusable address: %s",
             pool->broker, gr->address && *gr->address ? addr_why : "none");
    goto out;
  }
  memcpy(g->grant, gr->grant.data, gr->grant.len);
  g->grant_len = gr->grant.len;
  snprintf(g->server_name, sizeof(g->server_name), "%s",
           gr->server ? gr->server : "");
  g->session_id = gr->session_id;
  g->bound = true;
  ret = 0;
out:
  protobuf_c_message_free_unpacked(m, NULL);
  return ret;
}
