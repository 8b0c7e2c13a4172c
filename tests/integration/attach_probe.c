/* A program that finds the CUDA driver the way cudart does: dlopen
 * ("libcuda.so.1") by its soname, not linked to it. Run under `gpupool
 * attach`, it must get gpupool's library and a device from the server.
 *
 * Prints "library: PATH" and "device: NAME"; exits 0 on success, 3 if no
 * libcuda.so.1 could be loaded, 4 if a driver call failed, or the status
 * given as argv[1] when there is one (to test exit-status passing). */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

#include <cuda.h>

typedef CUresult (*init_fn)(unsigned);
typedef CUresult (*get_fn)(CUdevice *, int);
typedef CUresult (*name_fn)(char *, int, CUdevice);

int main(int argc, char **argv) {
  void *h = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
  if (h == NULL) {
    fprintf(stderr, "attach_probe: %s\n", dlerror());
    return 3;
  }
  init_fn init = (init_fn)dlsym(h, "cuInit");
  get_fn get = (get_fn)dlsym(h, "cuDeviceGet");
  name_fn name = (name_fn)dlsym(h, "cuDeviceGetName");
  if (!init || !get || !name) {
    fprintf(stderr, "attach_probe: missing entry points\n");
    return 4;
  }
  Dl_info info;
  if (dladdr((void *)init, &info) && info.dli_fname)
    printf("library: %s\n", info.dli_fname);
  CUresult r = init(0);
  if (r != CUDA_SUCCESS) {
    fprintf(stderr, "attach_probe: cuInit returned %d\n", (int)r);
    return 4;
  }
  CUdevice dev;
  char buf[256];
  if (get(&dev, 0) != CUDA_SUCCESS || name(buf, sizeof buf, dev) != CUDA_SUCCESS) {
    fprintf(stderr, "attach_probe: device query failed\n");
    return 4;
  }
  printf("device: %s\n", buf);
  fflush(stdout);
  return argc > 1 ? atoi(argv[1]) : 0;
}
