/* rope.c - host-side construction of the Wan2.1 3-D rotary table (see rope.h).
 *
 * The table is built once per latent grid and uploaded by the caller; the
 * per-axis (cos, sin) values are computed first for every position of that axis
 * (float64), then gathered per token, so the cost is O(tokens * head_dim).
 */
#include "rope.h"

#include <math.h>
#include <stdlib.h>

void rope_axis_pairs(int head_dim, int pairs[3]) {
    int c = head_dim / 2, k = head_dim / 6;
    pairs[0] = c - 2 * k;
    pairs[1] = k;
    pairs[2] = k;
}

/* (cos, sin) of position * theta^(-2j / span) for positions [0, n) and j in [0, n_pairs),
 * into axis [n, n_pairs, 2] float64. */
static void rope_axis_fill(double *axis, int n, int n_pairs, int span, double theta) {
    for (int j = 0; j < n_pairs; j++) {
        double freq = 1.0 / pow(theta, (double)(2 * j) / (double)span);
        for (int p = 0; p < n; p++) {
            double angle = (double)p * freq;
            axis[((size_t)p * n_pairs + j) * 2 + 0] = cos(angle);
            axis[((size_t)p * n_pairs + j) * 2 + 1] = sin(angle);
        }
    }
}

int rope_wan_table(float *cossin, int grid_f, int grid_h, int grid_w, int head_dim, double theta,
                   au_err *err) {
    if (head_dim <= 0 || head_dim % 2 != 0)
        return au_errf(err, AU_EINVAL, "rope: head_dim %d must be even and positive", head_dim);
    const int grid[3] = {grid_f, grid_h, grid_w};
    static const char *const axis_name[3] = {"frames", "height", "width"};
    for (int a = 0; a < 3; a++)
        if (grid[a] < 1 || grid[a] > ROPE_MAX_POSITIONS)
            return au_errf(err, AU_EUNSUPPORTED, "rope: grid %s %d outside [1, %d]", axis_name[a],
                           grid[a], ROPE_MAX_POSITIONS);

    int pairs[3];
    rope_axis_pairs(head_dim, pairs);
    /* Exponent span of each axis: the frame axis spans head_dim - 4k dims, the others 2k. */
    const int span[3] = {2 * pairs[0], 2 * pairs[1], 2 * pairs[2]};
    double *axis[3] = {NULL, NULL, NULL};
    int rc = 0;
    for (int a = 0; a < 3; a++) {
        axis[a] = malloc(((size_t)grid[a] * (size_t)(pairs[a] > 0 ? pairs[a] : 1)) * 2 * sizeof(double));
        if (!axis[a]) {
            rc = au_errf(err, AU_ENOMEM, "rope: table for grid %dx%dx%d", grid_f, grid_h, grid_w);
            goto done;
        }
        rope_axis_fill(axis[a], grid[a], pairs[a], span[a], theta);
    }

    const int n_pairs = head_dim / 2;
    size_t tok = 0;
    for (int f = 0; f < grid_f; f++)
        for (int h = 0; h < grid_h; h++)
            for (int w = 0; w < grid_w; w++, tok++) {
                float *row = cossin + tok * (size_t)n_pairs * 2;
                const int pos[3] = {f, h, w};
                int out_pair = 0;
                for (int a = 0; a < 3; a++) {
                    const double *src = axis[a] + (size_t)pos[a] * pairs[a] * 2;
                    for (int j = 0; j < pairs[a]; j++, out_pair++) {
                        row[out_pair * 2 + 0] = (float)src[j * 2 + 0];
                        row[out_pair * 2 + 1] = (float)src[j * 2 + 1];
                    }
                }
            }
done:
    for (int a = 0; a < 3; a++)
        free(axis[a]);
    return rc;
}
