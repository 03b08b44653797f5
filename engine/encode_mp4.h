/* encode_mp4.h - frames to an H.264 MP4 and a thumbnail, through FFmpeg's libraries.
 *
 * mp4_write encodes every frame of an au_video (uint8 RGB) as H.264 yuv420p,
 * high profile, constant-quality (CRF), in an MP4 with the moov atom first
 * (+faststart), at the requested fps with exactly video->n_frames frames.
 * The encoder is h264_nvenc when asked for and available, else libx264.
 * Writes straight to `path`; callers write to a temporary name and rename.
 */
#ifndef AU_ENCODE_MP4_H
#define AU_ENCODE_MP4_H

#include "pipeline.h" /* au_video */
#include "status.h"

typedef struct au_mp4_opts {
    int fps;             /* > 0 */
    int crf;             /* 0..51, 0 = default (18) */
    const char *encoder; /* NULL or "auto": nvenc if usable, else libx264; or an FFmpeg encoder name */
} au_mp4_opts;

int mp4_write(const char *path, const au_video *video, const au_mp4_opts *opts, au_err *err);
/* The encoder mp4_write would pick for opts->encoder ("libx264", "h264_nvenc"). */
const char *mp4_encoder_name(const au_mp4_opts *opts);
/* One RGB frame as a JPEG (.jpg/.jpeg) or PNG (.png), chosen by the extension. */
int image_write(const char *path, const uint8_t *rgb, int width, int height, au_err *err);

#endif
