// Kernels for tests/integration/test_kernels.c (see e2e_basic.cu):
// cooperative groups' thread-block tiles, their shuffles and votes, and
// cg::reduce / cg::inclusive_scan (which compile for sm_75 with shuffles,
// as there is no redux.sync before sm_80).
#include <cooperative_groups.h>
#include <cooperative_groups/reduce.h>
#include <cooperative_groups/scan.h>
namespace cg = cooperative_groups;

// For element g = blockIdx.x * blockDim.x + threadIdx.x (blockDim.x a
// multiple of 32), out[g * 8 + ...]:
//  0: the sum over its 32-thread tile, by tile.shfl_down;
//  1: the sum over its 8-thread tile, by tile.shfl_down;
//  2: tile8.ballot(in[g] odd) (bits by rank within the 8-tile);
//  3: __ballot_sync(full, in[g] > 0) of its warp;
//  4: cg::reduce(tile32, in[g], cg::plus<int>());
//  5: cg::reduce(tile8, in[g], cg::greater<int>()) (the max);
//  6: cg::inclusive_scan(tile8, in[g]);
//  7: tile32.meta_group_rank() * 1000 + tile8.meta_group_rank() * 100 +
//     tile8.thread_rank() * 10 + tile8.any(in[g] == 0) * 2 +
//     tile32.all(in[g] < 1000).
extern "C" __global__ void cgTiles(const int *in, int *out) {
  cg::thread_block b = cg::this_thread_block();
  cg::thread_block_tile<32> t32 = cg::tiled_partition<32>(b);
  cg::thread_block_tile<8> t8 = cg::tiled_partition<8>(b);
  int g = blockIdx.x * blockDim.x + b.thread_rank();
  int v = in[g];
  int *o = out + g * 8;

  int s = v;
  for (int d = t32.size() / 2; d > 0; d /= 2) s += t32.shfl_down(s, d);
  // Only rank 0's sum is the tile's; broadcast it.
  o[0] = t32.shfl(s, 0);

  int s8 = v;
  for (int d = t8.size() / 2; d > 0; d /= 2) s8 += t8.shfl_down(s8, d);
  o[1] = t8.shfl(s8, 0);

  o[2] = (int)t8.ballot(v & 1);
  o[3] = (int)__ballot_sync(0xffffffffu, v > 0);
  o[4] = cg::reduce(t32, v, cg::plus<int>());
  o[5] = cg::reduce(t8, v, cg::greater<int>());
  o[6] = cg::inclusive_scan(t8, v);
  o[7] = (int)t32.meta_group_rank() * 1000 + (int)t8.meta_group_rank() * 100 +
         (int)t8.thread_rank() * 10 + (t8.any(v == 0) ? 2 : 0) +
         (t32.all(v < 1000) ? 1 : 0);
}
