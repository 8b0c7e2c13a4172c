/* Unit tests of server/devices.c: --devices parsing, UUID text, the
 * probe's lines, merging the probe's devices with NVML's, selection,
 * the choice of a session's device, and the worker's environment. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "devices.h"
#include "gpupool/errors.h"

#define U0 "23d1a775-bf03-83f4-aed8-2b294173328f"
#define U1 "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
#define UM "00000000-1111-2222-3333-444444444444"

static int parse(const char *s, struct gp_devsel *sel, const char **why) {
  static char buf[256];
  *why = NULL;
  return gp__devsel_parse(s, sel, buf, sizeof(buf), why);
}

START_TEST(test_devices_parse_good) {
  struct gp_devsel sel;
  const char *why;

  ck_assert_int_eq(parse("all", &sel, &why), 0);
  ck_assert(sel.all);
  ck_assert_int_eq(sel.n, 0);

  ck_assert_int_eq(parse("0", &sel, &why), 0);
  ck_assert(!sel.all);
  ck_assert_int_eq(sel.n, 1);
  ck_assert_int_eq(sel.e[0].kind, GP_DEVSEL_ORDINAL);
  ck_assert_int_eq(sel.e[0].ordinal, 0);

  ck_assert_int_eq(parse("3,GPU-" U0 ",MIG-" UM ",65535", &sel, &why), 0);
  ck_assert_int_eq(sel.n, 4);
  ck_assert_int_eq(sel.e[0].ordinal, 3);
  ck_assert_int_eq(sel.e[1].kind, GP_DEVSEL_GPU);
  ck_assert_uint_eq(sel.e[1].uuid[0], 0x23);
  ck_assert_uint_eq(sel.e[1].uuid[15], 0x8f);
  ck_assert_int_eq(sel.e[2].kind, GP_DEVSEL_MIG);
  ck_assert_uint_eq(sel.e[2].uuid[15], 0x44);
  ck_assert_int_eq(sel.e[3].ordinal, 65535);

  /* Hex digits in either case are the same UUID. */
  ck_assert_int_eq(parse("GPU-23D1A775-BF03-83F4-AED8-2B294173328F", &sel,
                         &why), 0);
  ck_assert_uint_eq(sel.e[0].uuid[0], 0x23);
  ck_assert_uint_eq(sel.e[0].uuid[15], 0x8f);
}
END_TEST

START_TEST(test_devices_parse_bad) {
  static const char *bad[] = {
      "", ",", "0,", ",0", "0,,1", "-1", "1x", "65536", "99999999999999999999",
      "ALL", "all,0", "0,all", "GPU-", "GPU-" U0 "0", "GPU-" U0 "x",
      "GPU-23d1a775bf0383f4aed82b294173328f", "gpu-" U0, "GPU_" U0,
      "MIG-GPU-" U0 "/1/0", "GPU-23d1a775-bf03-83f4-aed8-2b294173328g",
      "0,1,0", "GPU-" U0 ",GPU-23D1A775-BF03-83F4-AED8-2B294173328F",
      " 0", "0 ",
  };
  struct gp_devsel sel;
  const char *why;

  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    ck_assert_msg(parse(bad[i], &sel, &why) == GP_EINVAL, "'%s' accepted",
                  bad[i]);
    ck_assert_msg(why != NULL && *why != '\0', "'%s': no reason", bad[i]);
  }
}
END_TEST

START_TEST(test_devices_parse_limit) {
  char list[64 * 3 + 16] = "";
  struct gp_devsel sel;
  const char *why;

  for (int i = 0; i < GP_DEVICES_MAX; i++)
    sprintf(list + strlen(list), "%s%d", i ? "," : "", i);
  ck_assert_int_eq(parse(list, &sel, &why), 0);
  ck_assert_int_eq(sel.n, GP_DEVICES_MAX);
  strcat(list, ",64");
  ck_assert_int_eq(parse(list, &sel, &why), GP_EINVAL);
}
END_TEST

START_TEST(test_devices_uuid_roundtrip) {
  uint8_t u[16], v[16];
  char text[GP_UUID_STR_LEN];

  for (int i = 0; i < 16; i++)
    u[i] = (uint8_t)(i * 17 + 3);
  gp__uuid_format("GPU-", u, text);
  ck_assert_int_eq((int)strlen(text), 40);
  ck_assert_str_eq(text, "GPU-03142536-4758-697a-8b9c-adbecfe0f102");
  ck_assert_int_eq(gp__uuid_parse(text + 4, v), 0);
  ck_assert_mem_eq(u, v, 16);
  gp__uuid_format("MIG-", u, text);
  ck_assert_str_eq(text, "MIG-03142536-4758-697a-8b9c-adbecfe0f102");
  ck_assert_int_eq(gp__uuid_parse("03142536-4758-697a-8b9c-adbecfe0f10", v),
                   GP_EINVAL);
  ck_assert_int_eq(gp__uuid_parse("0314253604758-697a-8b9c-adbecfe0f102", v),
                   GP_EINVAL);
}
END_TEST

START_TEST(test_devices_probe_line) {
  struct gp_device_rec r;

  ck_assert_int_eq(gp__probe_parse_line("device 0 GPU-" U0
                                        " 1073741824 gpupool emulated device",
                                        &r), 0);
  ck_assert_int_eq(r.ordinal, 0);
  ck_assert_str_eq(r.uuid_str, "GPU-" U0);
  ck_assert(r.has_total);
  ck_assert_uint_eq(r.mem_total, 1073741824ull);
  ck_assert_str_eq(r.name, "gpupool emulated device");
  ck_assert(!r.has_used);
  ck_assert_int_eq(r.util, -1);
  ck_assert(!r.mig);

  ck_assert_int_eq(gp__probe_parse_line("device 12 GPU-" U1
                                        " 18446744073709551615 X", &r), 0);
  ck_assert_int_eq(r.ordinal, 12);
  ck_assert_uint_eq(r.mem_total, 18446744073709551615ull);

  static const char *bad[] = {
      "", "device", "device 0", "device 0 GPU-" U0, "device 0 GPU-" U0 " 1",
      "device 0 GPU-" U0 " 1 ", "device  0 GPU-" U0 " 1 n",
      "device 00 GPU-" U0 " 1 n", "device -1 GPU-" U0 " 1 n",
      "device 65536 GPU-" U0 " 1 n", "device 0 MIG-" U0 " 1 n",
      "device 0 GPU-" U0 "  1 n", "device 0 GPU-" U0 " 18446744073709551616 n",
      "device 0 GPU-" U0 " 01 n", "device 0 GPU-" U0 " 1x n",
      "device 0 GPU-" U0 " 1 bad\tname", "device 0 GPU-" U0 " 1 bad\x7fname",
      "Device 0 GPU-" U0 " 1 n", "device 0 GPU-23d1a775 1 n",
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
    ck_assert_msg(gp__probe_parse_line(bad[i], &r) == GP_EPROTO,
                  "'%s' accepted", bad[i]);

  /* A name of 95 characters fits; 96 does not. */
  char line[GP_PROBE_LINE_MAX];
  int n = snprintf(line, sizeof(line), "device 0 GPU-" U0 " 5 ");
  memset(line + n, 'n', 95);
  line[n + 95] = '\0';
  ck_assert_int_eq(gp__probe_parse_line(line, &r), 0);
  line[n + 95] = 'n';
  line[n + 96] = '\0';
  ck_assert_int_eq(gp__probe_parse_line(line, &r), GP_EPROTO);
}
END_TEST

/* Two CUDA devices from the probe, then NVML: GPU U0 (merges with device
 * 0), GPU U1 (not visible to CUDA, MIG on) and its MIG device UM. */
static void two_plus_nvml(struct gp_inventory *inv, bool nvml) {
  struct gp_device_rec r;
  int at = -1;

  memset(inv, 0, sizeof(*inv));
  ck_assert_int_eq(gp__probe_parse_line("device 0 GPU-" U0 " 1048576 Zero",
                                        &r), 0);
  ck_assert_int_eq(gp__inventory_add_probe(inv, &r), 0);
  ck_assert_int_eq(gp__probe_parse_line("device 1 GPU-11111111-2222-3333-"
                                        "4444-555555555555 2097152 One", &r),
                   0);
  ck_assert_int_eq(gp__inventory_add_probe(inv, &r), 0);
  /* The same ordinal twice is refused. */
  ck_assert_int_eq(gp__inventory_add_probe(inv, &r), GP_EINVAL);
  if (!nvml)
    return;

  gp__device_rec_init(&r);
  ck_assert_int_eq(gp__uuid_parse(U0, r.uuid), 0);
  gp__uuid_format("GPU-", r.uuid, r.uuid_str);
  snprintf(r.name, sizeof(r.name), "NVML name");
  r.has_total = r.has_used = true;
  r.mem_total = 999ull << 20;
  r.mem_used = 7ull << 20;
  r.util = 42;
  ck_assert_int_eq(gp__inventory_add_nvml(inv, &r, &at), 0);
  ck_assert_int_eq(at, 0);

  gp__device_rec_init(&r);
  ck_assert_int_eq(gp__uuid_parse(U1, r.uuid), 0);
  gp__uuid_format("GPU-", r.uuid, r.uuid_str);
  snprintf(r.name, sizeof(r.name), "Other");
  r.mig_enabled = true;
  ck_assert_int_eq(gp__inventory_add_nvml(inv, &r, &at), 0);
  ck_assert_int_eq(at, 2);

  gp__device_rec_init(&r);
  r.mig = true;
  r.parent = 2;
  ck_assert_int_eq(gp__uuid_parse(UM, r.uuid), 0);
  gp__uuid_format("MIG-", r.uuid, r.uuid_str);
  snprintf(r.mig_profile, sizeof(r.mig_profile), "1g.10gb");
  ck_assert_int_eq(gp__inventory_add_nvml(inv, &r, &at), 0);
  ck_assert_int_eq(at, 3);
  inv->have_nvml = true;
}

START_TEST(test_devices_merge) {
  struct gp_inventory *inv = malloc(sizeof(*inv));

  two_plus_nvml(inv, true);
  ck_assert_int_eq(inv->n, 4);
  /* The driver's name and total stand; NVML adds use and utilisation. */
  ck_assert_str_eq(inv->d[0].name, "Zero");
  ck_assert_uint_eq(inv->d[0].mem_total, 1048576);
  ck_assert(inv->d[0].has_used);
  ck_assert_uint_eq(inv->d[0].mem_used, 7ull << 20);
  ck_assert_int_eq(inv->d[0].util, 42);
  ck_assert_int_eq(inv->d[0].ordinal, 0);
  /* Device 1 has no NVML record: its NVML fields are absent. */
  ck_assert(!inv->d[1].has_used);
  ck_assert_int_eq(inv->d[1].util, -1);
  ck_assert_int_eq(inv->d[2].ordinal, -1);
  ck_assert(inv->d[3].mig);
  ck_assert_int_eq(inv->d[3].parent, 2);

  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  gp__inventory_print(inv, f);
  fclose(f);
  ck_assert_ptr_nonnull(strstr(buf, "GPU-" U0));
  ck_assert_ptr_nonnull(strstr(buf, "7 MiB"));
  ck_assert_ptr_nonnull(strstr(buf, "42%"));
  ck_assert_ptr_nonnull(strstr(buf, "1g.10gb"));
  ck_assert_ptr_nonnull(strstr(buf, "enabled"));
  /* Four rows and the header. */
  int lines = 0;
  for (char *p = buf; *p; p++)
    lines += *p == '\n';
  ck_assert_int_eq(lines, 5);
  free(buf);
  free(inv);
}
END_TEST

static int sel_run(struct gp_inventory *inv, const char *list, bool *warn) {
  struct gp_devsel sel;
  const char *why;
  char msg[256] = "";

  ck_assert_int_eq(parse(list, &sel, &why), 0);
  int r = gp__inventory_select(inv, &sel, msg, sizeof(msg), warn);
  if (r != 0)
    ck_assert_msg(msg[0] != '\0', "no reason for '%s'", list);
  return r;
}

START_TEST(test_devices_select) {
  struct gp_inventory *inv = malloc(sizeof(*inv));
  bool warn;

  two_plus_nvml(inv, true);
  ck_assert_int_eq(sel_run(inv, "all", &warn), 0);
  ck_assert_int_eq(inv->noffer, 2);
  ck_assert(inv->d[0].offered && inv->d[1].offered);
  ck_assert(!inv->d[2].offered && !inv->d[3].offered);

  two_plus_nvml(inv, true);
  ck_assert_int_eq(sel_run(inv, "1,MIG-" UM, &warn), 0);
  ck_assert(!warn);
  ck_assert_int_eq(inv->noffer, 2);
  ck_assert_int_eq(inv->offer[0], 1);
  ck_assert_int_eq(inv->offer[1], 3);

  two_plus_nvml(inv, true);
  ck_assert_int_eq(sel_run(inv, "2", &warn), GP_ENOENT);
  two_plus_nvml(inv, true);
  /* NVML knows U1 but the driver does not show it. */
  ck_assert_int_eq(sel_run(inv, "GPU-" U1, &warn), GP_ENOENT);
  two_plus_nvml(inv, true);
  ck_assert_int_eq(sel_run(inv, "MIG-" U1, &warn), GP_ENOENT);
  two_plus_nvml(inv, true);
  /* Ordinal 0 and U0 are one device. */
  ck_assert_int_eq(sel_run(inv, "0,GPU-" U0, &warn), GP_EINVAL);

  /* Without NVML a MIG UUID is taken as given, with a warning. */
  two_plus_nvml(inv, false);
  ck_assert_int_eq(sel_run(inv, "MIG-" UM ",0", &warn), 0);
  ck_assert(warn);
  ck_assert_int_eq(inv->n, 3);
  ck_assert(inv->d[2].mig && inv->d[2].offered);
  ck_assert_str_eq(inv->d[2].uuid_str, "MIG-" UM);
  ck_assert(!inv->d[2].has_total);

  /* Without NVML, a MIG UUID the driver shows is that device, now known
   * to be a MIG device. */
  two_plus_nvml(inv, false);
  ck_assert_int_eq(sel_run(inv, "MIG-" U0, &warn), 0);
  ck_assert(!warn);
  ck_assert_int_eq(inv->n, 2);
  ck_assert(inv->d[0].mig && inv->d[0].offered);
  ck_assert_str_eq(inv->d[0].uuid_str, "MIG-" U0);
  ck_assert_int_eq(inv->d[0].ordinal, 0);

  memset(inv, 0, sizeof(*inv));
  ck_assert_int_eq(sel_run(inv, "all", &warn), GP_ENOENT);
  free(inv);
}
END_TEST

START_TEST(test_devices_pick_fewest_sessions) {
  struct gp_inventory *inv = malloc(sizeof(*inv));
  bool warn;

  two_plus_nvml(inv, true);
  ck_assert_int_eq(gp__inventory_pick(inv), -1);
  /* Listed as 1 then 0: ties go to the first listed. */
  ck_assert_int_eq(sel_run(inv, "1,0", &warn), 0);
  ck_assert_int_eq(gp__inventory_pick(inv), 1);
  inv->d[1].sessions++;
  ck_assert_int_eq(gp__inventory_pick(inv), 0);
  inv->d[0].sessions++;
  ck_assert_int_eq(gp__inventory_pick(inv), 1);
  inv->d[1].sessions++;
  inv->d[0].sessions++;
  inv->d[0].sessions++;
  ck_assert_int_eq(gp__inventory_pick(inv), 1);
  inv->d[0].sessions = 0;
  ck_assert_int_eq(gp__inventory_pick(inv), 0);
  free(inv);
}
END_TEST

START_TEST(test_devices_env_with) {
  char *env[] = {"A=1", "CUDA_VISIBLE_DEVICES=0,1", "CUDA_VISIBLE_DEVICESX=3",
                 "B=2", "CUDA_VISIBLE_DEVICES=7", NULL};
  char **e = gp__env_with(env, "CUDA_VISIBLE_DEVICES", "GPU-" U0);
  int n = 0, found = 0;

  ck_assert_ptr_nonnull(e);
  for (; e[n]; n++)
    if (strncmp(e[n], "CUDA_VISIBLE_DEVICES=", 21) == 0) {
      found++;
      ck_assert_str_eq(e[n], "CUDA_VISIBLE_DEVICES=GPU-" U0);
    }
  ck_assert_int_eq(found, 1);
  ck_assert_int_eq(n, 4); /* A, B, the similar name, the new one */
  gp__env_free(e);

  char *none[] = {NULL};
  e = gp__env_with(none, "X", "y");
  ck_assert_str_eq(e[0], "X=y");
  ck_assert_ptr_null(e[1]);
  gp__env_free(e);
}
END_TEST

START_TEST(test_devices_probe_cc) {
  int o = -1, ma = -1, mi = -1;

  ck_assert_int_eq(gp__probe_parse_cc("cc 0 7 5", &o, &ma, &mi), 0);
  ck_assert_int_eq(o, 0);
  ck_assert_int_eq(ma, 7);
  ck_assert_int_eq(mi, 5);
  ck_assert_int_eq(gp__probe_parse_cc("cc 12 10 0", &o, &ma, &mi), 0);
  ck_assert_int_eq(o, 12);
  ck_assert_int_eq(ma, 10);
  ck_assert_int_eq(mi, 0);
  ck_assert_int_eq(gp__probe_parse_cc("cc 0 0 5", &o, &ma, &mi), GP_EPROTO);
  ck_assert_int_eq(gp__probe_parse_cc("cc 0 100 5", &o, &ma, &mi),
                   GP_EPROTO);
  ck_assert_int_eq(gp__probe_parse_cc("cc 0 07 5", &o, &ma, &mi), GP_EPROTO);
  ck_assert_int_eq(gp__probe_parse_cc("cc 0 7", &o, &ma, &mi), GP_EPROTO);
  ck_assert_int_eq(gp__probe_parse_cc("cc 0 7 5 ", &o, &ma, &mi), GP_EPROTO);
  ck_assert_int_eq(gp__probe_parse_cc("cc -1 7 5", &o, &ma, &mi), GP_EPROTO);
  ck_assert_int_eq(gp__probe_parse_cc("cc 65536 7 5", &o, &ma, &mi),
                   GP_EPROTO);
  ck_assert_int_eq(gp__probe_parse_cc("cc  0 7 5", &o, &ma, &mi), GP_EPROTO);
  ck_assert_int_eq(gp__probe_parse_cc("device 0 7 5", &o, &ma, &mi),
                   GP_EPROTO);
}
END_TEST

static Suite *devices_suite(void) {
  Suite *s = suite_create("devices");
  TCase *tc = tcase_create("devices");
  tcase_add_test(tc, test_devices_parse_good);
  tcase_add_test(tc, test_devices_parse_bad);
  tcase_add_test(tc, test_devices_parse_limit);
  tcase_add_test(tc, test_devices_uuid_roundtrip);
  tcase_add_test(tc, test_devices_probe_line);
  tcase_add_test(tc, test_devices_merge);
  tcase_add_test(tc, test_devices_select);
  tcase_add_test(tc, test_devices_pick_fewest_sessions);
  tcase_add_test(tc, test_devices_env_with);
  tcase_add_test(tc, test_devices_probe_cc);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(devices_suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? 0 : 1;
}
