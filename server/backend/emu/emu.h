/* Private header of the emu backend (server/backend/emu/). */
#ifndef GP_SERVER_EMU_EMU_H
#define GP_SERVER_EMU_EMU_H

#include <stdbool.h>

#include "backend.h"

/* The driver version the emu backend reports (cuDriverGetVersion): CUDA
 * 13.0. cudart refuses to run on a driver older than itself, and the
 * toolkit we build against is 13.0. */
#define EMU_DRIVER_VERSION 13000

/* Devices an emu backend exposes. */
#define EMU_DEVICE_COUNT 1

#define EMU_DEVICE_NAME "gpupool emulated device"

/* Fills |out| with the emulated device's name, UUID, |total_mem| and the
 * value of every CUdevice_attribute of the toolkit's cuda.h, with
 * |sm_count| multiprocessors. Never fails. */
void emu_device_describe(int sm_count, uint64_t total_mem,
                         struct gp_device_desc *out);

/* The first CUdevice_attribute in [1, CU_DEVICE_ATTRIBUTE_MAX) that the
 * table in device.c does not define, or 0 when it defines them all (a unit
 * test keeps the table complete when cuda.h grows). */
int emu_device_missing_attr(void);

#endif
