/* rope.h - the 3-D rotary position table of the Wan2.1 DiT.
 *
 * A head of head_dim values is c = head_dim/2 complex pairs (x[2i], x[2i+1]).
 * With k = head_dim/6 (integer division), the pairs are split between the three
 * token coordinates of the patch grid as
 *     frame  : pairs [0, c - 2k)       frequency theta^(-2j / (head_dim - 4k)), j = 0..c-2k-1
 *     height : pairs [c - 2k, c - k)   frequency theta^(-2j / (2k)),            j = 0..k-1
 *     width  : pairs [c - k, c)        frequency theta^(-2j / (2k)),            j = 0..k-1
 * (head_dim 128: 22 / 21 / 21 pairs, exponents over 44, 42 and 42 dims). The
 * rotation angle of pair j for a token at grid position (f, h, w) is the
 * coordinate of its axis times the pair's frequency. Angles, cos and sin are
 * computed in float64 and stored as float32. Positions must be below
 * ROPE_MAX_POSITIONS, the length of the official frequency table.
 */
#ifndef AU_ROPE_H
#define AU_ROPE_H

#include "status.h"

#define ROPE_MAX_POSITIONS 1024

/* Number of pairs given to the frame, height and width axes. */
void rope_axis_pairs(int head_dim, int pairs[3]);

/* Fill the host table cossin [grid_f * grid_h * grid_w, head_dim/2, 2] float32
 * ((cos, sin) per pair) for tokens in (f, h, w) order. head_dim must be even and
 * positive; each grid size in [1, ROPE_MAX_POSITIONS]. */
int rope_wan_table(float *cossin, int grid_f, int grid_h, int grid_w, int head_dim, double theta,
                   au_err *err);

#endif
