/* Two tiny kernels: the input from which the build makes the fatbins and
 * PTX files that tests/unit/test_fatbin.c reads (see tests/unit/meson.build).
 * Their content does not matter, only that nvcc compiles them. */

extern "C" __global__ void add(const float *a, const float *b, float *c,
                               int n)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n)
        c[i] = a[i] + b[i];
}

extern "C" __global__ void scale(float *x, float s, int n)
{
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += blockDim.x * gridDim.x)
        x[i] *= s;
}
