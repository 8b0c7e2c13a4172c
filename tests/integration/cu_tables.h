/* Tables generated from the toolkit's cuda.h by cuda_tables.py. */
#ifndef GPT_CU_TABLES_H
#define GPT_CU_TABLES_H

#include <stddef.h>

struct gpt_named_int {
  const char *name;
  int value;
};

/* Every driver function that cuda.h declares, as the symbol a program built
 * against it links to (macros applied: cuMemAlloc is "cuMemAlloc_v2"). */
extern const char *const gpt_cu_functions[];
extern const size_t gpt_cu_functions_count;

/* Every CUresult enumerator with its value. */
extern const struct gpt_named_int gpt_cu_results[];
extern const size_t gpt_cu_results_count;

/* Every CUdevice_attribute enumerator except CU_DEVICE_ATTRIBUTE_MAX. */
extern const struct gpt_named_int gpt_cu_device_attributes[];
extern const size_t gpt_cu_device_attributes_count;

#endif
