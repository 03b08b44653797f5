// deps: au_mp4 au_core
/* test_mp4.c - MP4 and thumbnail writing, checked by decoding what was written.
 *
 * A 64x48, 17-frame, 8 fps moving gradient is encoded, then read back with
 * libavformat/libavcodec: the stream must be H.264 high profile, 64x48, 8 fps,
 * exactly 17 frames, moov before mdat (+faststart), and the frames (converted back
 * to RGB with the BT.709 matrix they are tagged with, chroma interpolated) within
 * 2 levels of the input on average. A PNG
 * thumbnail must decode to the exact pixels, a JPEG to the right size and close
 * pixels. Bad inputs must fail with a message naming the problem.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libswscale/swscale.h>

#include "encode_mp4.h"
#include "check.h"

enum { W = 64, H = 48, N_FRAMES = 17, FPS = 8 };

static uint8_t clamp_u8(double v) { return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : lrint(v)); }

/* Frame i: red and green waves travelling across and down, a static blue ramp. */
static void make_clip(uint8_t *rgb, int w, int h, int n) {
    for (int i = 0; i < n; i++)
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) {
                uint8_t *p = rgb + (((size_t)i * h + y) * w + x) * 3;
                p[0] = clamp_u8(128 + 100 * sin(2 * M_PI * ((double)x / w + (double)i / n)));
                p[1] = clamp_u8(128 + 100 * cos(2 * M_PI * ((double)y / h + (double)i / n)));
                p[2] = clamp_u8((x + y) * 255.0 / (w + h));
            }
}

/* What a decoder saw in a file. */
typedef struct decoded {
    enum AVCodecID codec;
    int profile, width, height, n_frames;
    AVRational fps;
    double mean_abs_err; /* vs the expected frames, over all channels, in 0..255 levels */
} decoded;

/* Decode every frame of `path`, converting each to RGB24 and comparing with expect (n frames). */
static int decode_file(const char *path, const uint8_t *expect, int n_expect, decoded *d) {
    AVFormatContext *fmt = NULL;
    AVCodecContext *dec = NULL;
    AVFrame *frame = av_frame_alloc();
    AVPacket *pkt = av_packet_alloc();
    struct SwsContext *sws = NULL;
    uint8_t *rgb = NULL;
    double err_sum = 0;
    int rc = -1;
    memset(d, 0, sizeof *d);
    if (avformat_open_input(&fmt, path, NULL, NULL) < 0 || avformat_find_stream_info(fmt, NULL) < 0)
        goto done;
    int si = av_find_best_stream(fmt, AVMEDIA_TYPE_VIDEO, -1, -1, NULL, 0);
    if (si < 0)
        goto done;
    AVStream *st = fmt->streams[si];
    const AVCodec *codec = avcodec_find_decoder(st->codecpar->codec_id);
    dec = avcodec_alloc_context3(codec);
    if (!dec || avcodec_parameters_to_context(dec, st->codecpar) < 0 || avcodec_open2(dec, codec, NULL) < 0)
        goto done;
    d->codec = st->codecpar->codec_id;
    d->profile = st->codecpar->profile;
    d->width = st->codecpar->width;
    d->height = st->codecpar->height;
    d->fps = st->avg_frame_rate;
    rgb = malloc((size_t)d->width * d->height * 3);
    int flushing = 0;
    for (;;) {
        int r = flushing ? AVERROR_EOF : av_read_frame(fmt, pkt);
        if (r == AVERROR_EOF) {
            flushing = 1;
            avcodec_send_packet(dec, NULL);
        } else if (r < 0) {
            goto done;
        } else {
            if (pkt->stream_index == si)
                avcodec_send_packet(dec, pkt);
            av_packet_unref(pkt);
        }
        while (avcodec_receive_frame(dec, frame) == 0) {
            if (!sws) {
                sws = sws_getContext(frame->width, frame->height, frame->format, d->width, d->height,
                                     AV_PIX_FMT_RGB24, SWS_BICUBIC | SWS_ACCURATE_RND | SWS_FULL_CHR_H_INT, NULL, NULL, NULL);
                int cs = frame->colorspace == AVCOL_SPC_BT709 ? SWS_CS_ITU709 : SWS_CS_ITU601;
                int full = frame->color_range == AVCOL_RANGE_JPEG || frame->format == AV_PIX_FMT_YUVJ420P;
                sws_setColorspaceDetails(sws, sws_getCoefficients(cs), full, sws_getCoefficients(cs), 1, 0,
                                         1 << 16, 1 << 16);
            }
            uint8_t *dst[1] = {rgb};
            int dst_stride[1] = {d->width * 3};
            sws_scale(sws, (const uint8_t *const *)frame->data, frame->linesize, 0, frame->height, dst, dst_stride);
            if (d->n_frames < n_expect) {
                const uint8_t *e = expect + (size_t)d->n_frames * d->width * d->height * 3;
                for (size_t k = 0; k < (size_t)d->width * d->height * 3; k++)
                    err_sum += abs((int)rgb[k] - (int)e[k]);
            }
            d->n_frames++;
            av_frame_unref(frame);
        }
        if (flushing)
            break;
    }
    d->mean_abs_err = err_sum / ((double)d->width * d->height * 3 * (d->n_frames ? d->n_frames : 1));
    rc = 0;
done:
    free(rgb);
    sws_freeContext(sws);
    av_packet_free(&pkt);
    av_frame_free(&frame);
    avcodec_free_context(&dec);
    avformat_close_input(&fmt);
    return rc;
}

/* Byte offset of the first top-level box of type `fourcc`, or -1. */
static long find_box(const char *path, const char *fourcc) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    long pos = 0, found = -1;
    unsigned char hdr[8];
    while (fread(hdr, 1, 8, f) == 8) {
        unsigned long size = (unsigned long)hdr[0] << 24 | hdr[1] << 16 | hdr[2] << 8 | hdr[3];
        if (memcmp(hdr + 4, fourcc, 4) == 0) {
            found = pos;
            break;
        }
        if (size < 8 || fseek(f, pos + (long)size, SEEK_SET) != 0)
            break;
        pos += (long)size;
    }
    fclose(f);
    return found;
}

static void test_mp4_roundtrip(const char *dir, const uint8_t *clip) {
    char path[512];
    snprintf(path, sizeof path, "%s/clip.mp4", dir);
    au_video v = {.width = W, .height = H, .n_frames = N_FRAMES, .rgb = (uint8_t *)clip};
    au_mp4_opts opts = {.fps = FPS, .crf = 0, .encoder = "libx264"};
    au_err err = {0};
    int rc = mp4_write(path, &v, &opts, &err);
    CHECK(rc == 0, "mp4_write: %s", err.msg);
    decoded d;
    CHECK(decode_file(path, clip, N_FRAMES, &d) == 0, "cannot decode %s", path);
    printf("mp4: codec %s profile %d %dx%d fps %d/%d frames %d mean |err| %.3f levels\n", avcodec_get_name(d.codec),
           d.profile, d.width, d.height, d.fps.num, d.fps.den, d.n_frames, d.mean_abs_err);
    CHECK(d.codec == AV_CODEC_ID_H264, "codec %s", avcodec_get_name(d.codec));
    CHECK(d.profile == FF_PROFILE_H264_HIGH, "profile %d, expected high (%d)", d.profile, FF_PROFILE_H264_HIGH);
    CHECK(d.width == W && d.height == H, "size %dx%d", d.width, d.height);
    CHECK(d.fps.num == FPS * d.fps.den && d.fps.den > 0, "fps %d/%d", d.fps.num, d.fps.den);
    CHECK(d.n_frames == N_FRAMES, "decoded %d frames, expected %d", d.n_frames, N_FRAMES);
    CHECK(d.mean_abs_err < 2.0, "mean abs error %.3f levels", d.mean_abs_err);
    long moov = find_box(path, "moov"), mdat = find_box(path, "mdat");
    CHECK(moov >= 0 && mdat >= 0 && moov < mdat, "moov at %ld, mdat at %ld: not faststart", moov, mdat);

    /* A higher CRF gives a smaller file; a single frame is a valid clip. */
    char path2[512];
    snprintf(path2, sizeof path2, "%s/clip_crf35.mp4", dir);
    au_mp4_opts worse = {.fps = FPS, .crf = 35, .encoder = NULL};
    rc = mp4_write(path2, &v, &worse, &err);
    CHECK(rc == 0, "mp4_write crf 35: %s", err.msg);
    FILE *a = fopen(path, "rb"), *b = fopen(path2, "rb");
    if (a && b) {
        fseek(a, 0, SEEK_END);
        fseek(b, 0, SEEK_END);
        printf("mp4: %ld bytes at crf 18, %ld at crf 35\n", ftell(a), ftell(b));
        CHECK(ftell(b) < ftell(a), "crf 35 file not smaller");
    }
    if (a)
        fclose(a);
    if (b)
        fclose(b);
    au_video one = {.width = W, .height = H, .n_frames = 1, .rgb = (uint8_t *)clip};
    rc = mp4_write(path2, &one, &opts, &err);
    CHECK(rc == 0, "mp4_write 1 frame: %s", err.msg);
    CHECK(decode_file(path2, clip, 1, &d) == 0 && d.n_frames == 1, "1-frame clip decoded %d frames", d.n_frames);
    remove(path);
    remove(path2);
}

static void test_images(const char *dir, const uint8_t *clip) {
    const int iw = 65, ih = 47; /* odd sizes are fine for still images */
    uint8_t *img = malloc((size_t)iw * ih * 3);
    make_clip(img, iw, ih, 1);
    static const char *names[] = {"thumb.png", "thumb.jpg", "THUMB.JPEG"};
    for (int k = 0; k < 3; k++) {
        char path[512];
        snprintf(path, sizeof path, "%s/%s", dir, names[k]);
        au_err err = {0};
        int rc = image_write(path, img, iw, ih, &err);
        CHECK(rc == 0, "image_write %s: %s", names[k], err.msg);
        decoded d;
        CHECK(decode_file(path, img, 1, &d) == 0, "cannot decode %s", path);
        printf("image %s: codec %s %dx%d mean |err| %.3f levels\n", names[k], avcodec_get_name(d.codec), d.width,
               d.height, d.mean_abs_err);
        CHECK(d.width == iw && d.height == ih, "%s: size %dx%d", names[k], d.width, d.height);
        CHECK(d.codec == (k == 0 ? AV_CODEC_ID_PNG : AV_CODEC_ID_MJPEG), "%s: codec %s", names[k],
              avcodec_get_name(d.codec));
        if (k == 0)
            CHECK(d.mean_abs_err == 0.0, "png not lossless: %.3f", d.mean_abs_err);
        else
            CHECK(d.mean_abs_err < 2.0, "%s: mean abs error %.3f", names[k], d.mean_abs_err);
        remove(path);
    }
    free(img);
    (void)clip;
}

/* rc must be the expected status and the message must contain `needle`. */
static void expect_error(int rc, int want, const au_err *err, const char *needle, const char *what) {
    CHECK(rc == want, "%s: rc %d (%s), expected %d (%s); msg: %s", what, rc, au_status_name(rc), want,
          au_status_name(want), err->msg);
    CHECK(strstr(err->msg, needle) != NULL, "%s: message \"%s\" lacks \"%s\"", what, err->msg, needle);
    printf("error ok (%s): %s\n", what, err->msg);
}

static void test_bad_inputs(const char *dir, uint8_t *clip) {
    char path[512];
    snprintf(path, sizeof path, "%s/bad.mp4", dir);
    au_mp4_opts opts = {.fps = FPS};
    au_err err = {0};
    au_video v = {.width = W, .height = H, .n_frames = 0, .rgb = clip};
    expect_error(mp4_write(path, &v, &opts, &err), AU_EINVAL, &err, "n_frames", "zero frames");
    v = (au_video){.width = W + 1, .height = H, .n_frames = 2, .rgb = clip};
    expect_error(mp4_write(path, &v, &opts, &err), AU_EINVAL, &err, "even", "odd width");
    v = (au_video){.width = W, .height = H - 1, .n_frames = 2, .rgb = clip};
    expect_error(mp4_write(path, &v, &opts, &err), AU_EINVAL, &err, "even", "odd height");
    v = (au_video){.width = W, .height = H, .n_frames = 2, .rgb = clip};
    au_mp4_opts fps0 = {.fps = 0};
    expect_error(mp4_write(path, &v, &fps0, &err), AU_EINVAL, &err, "fps", "fps 0");
    au_mp4_opts crf99 = {.fps = FPS, .crf = 99};
    expect_error(mp4_write(path, &v, &crf99, &err), AU_EINVAL, &err, "crf", "crf 99");
    au_mp4_opts mpeg4 = {.fps = FPS, .encoder = "mpeg4"};
    expect_error(mp4_write(path, &v, &mpeg4, &err), AU_EUNSUPPORTED, &err, "mpeg4", "non-H.264 encoder");
    expect_error(mp4_write("/nonexistent-dir/x.mp4", &v, &opts, &err), AU_EIO, &err, "/nonexistent-dir/x.mp4",
                 "unwritable path");
    CHECK(access(path, F_OK) != 0, "a failed write left %s behind", path);
    expect_error(image_write("/nonexistent-dir/x.png", clip, W, H, &err), AU_EIO, &err, "/nonexistent-dir/x.png",
                 "unwritable image path");
    expect_error(image_write("thumb.gif", clip, W, H, &err), AU_EINVAL, &err, ".png", "image extension");
    expect_error(image_write("thumb.png", clip, 0, H, &err), AU_EINVAL, &err, "0x48", "image size 0");
}

static void test_encoder_choice(const char *dir, uint8_t *clip) {
    const char *name = mp4_encoder_name(NULL);
    au_mp4_opts x264 = {.fps = FPS, .encoder = "libx264"};
    printf("auto encoder here: %s\n", name);
    CHECK(strcmp(name, "libx264") == 0 || strcmp(name, "h264_nvenc") == 0, "auto picked %s", name);
    CHECK(strcmp(mp4_encoder_name(&x264), "libx264") == 0, "explicit libx264 not kept");
    if (strcmp(name, "libx264") == 0) {
        /* No usable nvenc: asking for it by name is an error, not a silent fallback. */
        char path[512];
        snprintf(path, sizeof path, "%s/nv.mp4", dir);
        au_mp4_opts nv = {.fps = FPS, .encoder = "h264_nvenc"};
        au_video v = {.width = W, .height = H, .n_frames = 2, .rgb = clip};
        au_err err = {0};
        int rc = mp4_write(path, &v, &nv, &err);
        CHECK(rc < 0 && strstr(err.msg, "h264_nvenc"), "explicit h264_nvenc without NVENC: rc %d msg %s", rc,
              err.msg);
        printf("error ok (explicit nvenc): %s\n", err.msg);
    }
}

int main(void) {
    char dir[] = "/tmp/test_mp4_XXXXXX";
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    uint8_t *clip = malloc((size_t)W * H * 3 * N_FRAMES);
    make_clip(clip, W, H, N_FRAMES);
    test_mp4_roundtrip(dir, clip);
    test_images(dir, clip);
    test_bad_inputs(dir, clip);
    test_encoder_choice(dir, clip);
    free(clip);
    rmdir(dir);
    if (failures) {
        fprintf(stderr, "%d failure(s)\n", failures);
        return 1;
    }
    printf("test_mp4: all passed\n");
    return 0;
}
