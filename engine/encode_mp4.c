/* encode_mp4.c - RGB frames to H.264 MP4, and thumbnails, through FFmpeg (encode_mp4.h).
 *
 * Video: RGB24 -> yuv420p with swscale: BT.709 matrix, limited range, tagged so players
 * convert back with the same matrix; chroma filtered at full resolution, then subsampled
 * bicubically (SWS_FULL_CHR_H_INP), not point-sampled. H.264 high profile at constant
 * quality: libx264 with crf (default 18) and preset "medium" (x264's own default:
 * encoding 81 frames of 832x480 takes seconds against minutes of denoising, so the
 * smaller file of a slower preset is worth it), or h264_nvenc (VBR with cq = crf,
 * preset p5). Frame i has pts i in time base 1/fps; the encoder is flushed so exactly
 * n_frames frames are written; the MP4 muxer runs with movflags +faststart (moov first).
 * yuv420p stores chroma at half resolution, so width and height must be even: odd sizes
 * are rejected (the model only makes multiples of 16) rather than padded or cropped.
 *
 * Encoder choice: "libx264" or "h264_nvenc" by name; NULL or "auto" probes nvenc once
 * per process (find it, open it at 256x256) and uses it if that works, else libx264;
 * an nvenc that then fails to open at the real size also falls back to libx264.
 *
 * Thumbnails: .jpg/.jpeg with mjpeg (yuvj420p, qscale 2), .png with png (rgb24); the
 * single encoded packet is the whole file.
 *
 * Every FFmpeg call goes through AV_TRY, which records the call, file, line and
 * av_strerror text. FFmpeg's log level is set to errors only on first use (libx264
 * otherwise prints its statistics on every encode); the nvenc probe runs quiet.
 */
#include "encode_mp4.h"

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/imgutils.h>
#include <libavutil/opt.h>
#include <libswscale/swscale.h>

#define DEFAULT_CRF 18

static int av_fail(au_err *err, int averr, const char *call, const char *file, int line) {
    char msg[AV_ERROR_MAX_STRING_SIZE];
    av_strerror(averr, msg, sizeof msg);
    int code = averr == AVERROR(ENOMEM)                   ? AU_ENOMEM
               : averr == AVERROR(EINVAL)                 ? AU_EINVAL
               : averr == AVERROR_ENCODER_NOT_FOUND       ? AU_EUNSUPPORTED
               : averr == AVERROR(ENOENT) || averr == AVERROR(EACCES) || averr == AVERROR(EROFS) ||
                       averr == AVERROR(ENOTDIR) || averr == AVERROR(EIO) || averr == AVERROR(ENOSPC)
                   ? AU_EIO
                   : AU_EBACKEND;
    return au_errf(err, code, "ffmpeg %s: %s (%s:%d)", call, msg, file, line);
}

/* Run an FFmpeg call returning < 0 on failure; on failure fill err and goto fail. */
#define AV_TRY(expr)                                                                               \
    do {                                                                                           \
        int av_rc_ = (expr);                                                                       \
        if (av_rc_ < 0) {                                                                          \
            rc = av_fail(err, av_rc_, #expr, __FILE__, __LINE__);                                  \
            goto fail;                                                                             \
        }                                                                                          \
    } while (0)
/* For allocators that return NULL on failure. */
#define AV_NONNULL(ptr) ((ptr) ? 0 : AVERROR(ENOMEM))

static pthread_once_t ffmpeg_once = PTHREAD_ONCE_INIT;
static int nvenc_usable;

/* Whether h264_nvenc opens here (a GPU with NVENC and a working driver). */
static int probe_nvenc(void) {
    const AVCodec *codec = avcodec_find_encoder_by_name("h264_nvenc");
    if (!codec)
        return 0;
    AVCodecContext *ctx = avcodec_alloc_context3(codec);
    if (!ctx)
        return 0;
    ctx->width = 256;
    ctx->height = 256;
    ctx->pix_fmt = AV_PIX_FMT_YUV420P;
    ctx->time_base = (AVRational){1, 16};
    int ok = avcodec_open2(ctx, codec, NULL) == 0;
    avcodec_free_context(&ctx);
    return ok;
}

static void ffmpeg_init(void) {
    av_log_set_level(AV_LOG_QUIET);
    nvenc_usable = probe_nvenc();
    av_log_set_level(AV_LOG_ERROR);
}

static int wants_auto(const au_mp4_opts *opts) {
    return !opts || !opts->encoder || strcmp(opts->encoder, "auto") == 0;
}

const char *mp4_encoder_name(const au_mp4_opts *opts) {
    pthread_once(&ffmpeg_once, ffmpeg_init);
    if (wants_auto(opts))
        return nvenc_usable ? "h264_nvenc" : "libx264";
    return opts->encoder;
}

/* Allocate and open the H.264 encoder `name` for the stream; 0 or a negative au_status. */
static int open_encoder(AVCodecContext **out, const char *name, int width, int height, int fps, int crf,
                        int global_header, au_err *err) {
    int rc = 0;
    AVCodecContext *ctx = NULL;
    const AVCodec *codec = avcodec_find_encoder_by_name(name);
    if (!codec)
        return au_errf(err, AU_EUNSUPPORTED, "mp4: encoder %s is not in this FFmpeg build", name);
    AV_TRY(AV_NONNULL(ctx = avcodec_alloc_context3(codec)));
    ctx->width = width;
    ctx->height = height;
    ctx->pix_fmt = AV_PIX_FMT_YUV420P;
    ctx->time_base = (AVRational){1, fps};
    ctx->framerate = (AVRational){fps, 1};
    ctx->color_range = AVCOL_RANGE_MPEG;
    ctx->colorspace = AVCOL_SPC_BT709;
    ctx->color_primaries = AVCOL_PRI_BT709;
    ctx->color_trc = AVCOL_TRC_BT709;
    if (global_header)
        ctx->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
    char crf_text[16];
    snprintf(crf_text, sizeof crf_text, "%d", crf);
    if (strcmp(name, "libx264") == 0) {
        AV_TRY(av_opt_set(ctx->priv_data, "preset", "medium", 0));
        AV_TRY(av_opt_set(ctx->priv_data, "profile", "high", 0));
        AV_TRY(av_opt_set(ctx->priv_data, "crf", crf_text, 0));
    } else {
        AV_TRY(av_opt_set(ctx->priv_data, "preset", "p5", 0));
        AV_TRY(av_opt_set(ctx->priv_data, "profile", "high", 0));
        AV_TRY(av_opt_set(ctx->priv_data, "rc", "vbr", 0));
        AV_TRY(av_opt_set(ctx->priv_data, "cq", crf_text, 0));
        ctx->bit_rate = 0;
    }
    AV_TRY(avcodec_open2(ctx, codec, NULL));
    *out = ctx;
    return 0;
fail:
    avcodec_free_context(&ctx);
    au_err_prefix(err, "mp4: encoder %s", name);
    return rc;
}

/* Pick and open the encoder for opts (the auto rules at the top of the file). */
static int open_video_encoder(AVCodecContext **out, const au_mp4_opts *opts, int width, int height,
                              int global_header, au_err *err) {
    int crf = opts->crf ? opts->crf : DEFAULT_CRF;
    const char *name = mp4_encoder_name(opts);
    if (strcmp(name, "libx264") != 0 && strcmp(name, "h264_nvenc") != 0)
        return au_errf(err, AU_EUNSUPPORTED, "mp4: encoder \"%s\": expected \"auto\", \"libx264\" or \"h264_nvenc\"",
                       name);
    int rc = open_encoder(out, name, width, height, opts->fps, crf, global_header, err);
    if (rc < 0 && wants_auto(opts) && strcmp(name, "h264_nvenc") == 0) {
        au_err_clear(err);
        rc = open_encoder(out, "libx264", width, height, opts->fps, crf, global_header, err);
    }
    return rc;
}

/* Send `frame` (NULL flushes) and write every packet the encoder returns. */
static int encode_and_write(AVFormatContext *fmt, AVCodecContext *enc, AVStream *st, AVFrame *frame,
                            AVPacket *pkt, au_err *err) {
    int rc = 0;
    AV_TRY(avcodec_send_frame(enc, frame));
    for (;;) {
        int r = avcodec_receive_packet(enc, pkt);
        if (r == AVERROR(EAGAIN) || r == AVERROR_EOF)
            return 0;
        AV_TRY(r);
        av_packet_rescale_ts(pkt, enc->time_base, st->time_base);
        pkt->stream_index = st->index;
        AV_TRY(av_interleaved_write_frame(fmt, pkt)); /* takes the packet's reference */
    }
fail:
    return rc;
}

static int check_video(const au_video *video, const au_mp4_opts *opts, au_err *err) {
    if (!video || !video->rgb)
        return au_errf(err, AU_EINVAL, "mp4: no frames given");
    if (video->n_frames < 1)
        return au_errf(err, AU_EINVAL, "mp4: n_frames must be >= 1, got %d", video->n_frames);
    if (video->width < 2 || video->height < 2 || video->width % 2 || video->height % 2)
        return au_errf(err, AU_EINVAL, "mp4: size %dx%d: width and height must be even and >= 2 (yuv420p)",
                       video->width, video->height);
    if (!opts || opts->fps < 1 || opts->fps > 240)
        return au_errf(err, AU_EINVAL, "mp4: fps must be 1..240, got %d", opts ? opts->fps : 0);
    if (opts->crf < 0 || opts->crf > 51)
        return au_errf(err, AU_EINVAL, "mp4: crf must be 0..51 (0 = default %d), got %d", DEFAULT_CRF, opts->crf);
    return 0;
}

int mp4_write(const char *path, const au_video *video, const au_mp4_opts *opts, au_err *err) {
    int rc = check_video(video, opts, err);
    if (rc < 0)
        return rc;
    pthread_once(&ffmpeg_once, ffmpeg_init);
    const int w = video->width, h = video->height;
    AVFormatContext *fmt = NULL;
    AVCodecContext *enc = NULL;
    AVFrame *frame = NULL;
    AVPacket *pkt = NULL;
    struct SwsContext *sws = NULL;
    AVDictionary *mux_opts = NULL;
    int file_open = 0;

    AV_TRY(avformat_alloc_output_context2(&fmt, NULL, "mp4", path));
    if ((rc = open_video_encoder(&enc, opts, w, h, fmt->oformat->flags & AVFMT_GLOBALHEADER, err)) < 0)
        goto fail;
    AVStream *st = avformat_new_stream(fmt, NULL);
    AV_TRY(AV_NONNULL(st));
    AV_TRY(avcodec_parameters_from_context(st->codecpar, enc));
    st->time_base = enc->time_base;
    st->avg_frame_rate = enc->framerate;
    st->r_frame_rate = enc->framerate;

    AV_TRY(avio_open(&fmt->pb, path, AVIO_FLAG_WRITE));
    file_open = 1;
    AV_TRY(av_dict_set(&mux_opts, "movflags", "+faststart", 0));
    AV_TRY(avformat_write_header(fmt, &mux_opts));

    AV_TRY(AV_NONNULL(frame = av_frame_alloc()));
    AV_TRY(AV_NONNULL(pkt = av_packet_alloc()));
    frame->format = AV_PIX_FMT_YUV420P;
    frame->width = w;
    frame->height = h;
    frame->color_range = AVCOL_RANGE_MPEG;
    frame->colorspace = AVCOL_SPC_BT709;
    frame->color_primaries = AVCOL_PRI_BT709;
    frame->color_trc = AVCOL_TRC_BT709;
    AV_TRY(av_frame_get_buffer(frame, 0));
    AV_TRY(AV_NONNULL(sws = sws_getContext(w, h, AV_PIX_FMT_RGB24, w, h, AV_PIX_FMT_YUV420P,
                                           SWS_BICUBIC | SWS_ACCURATE_RND | SWS_FULL_CHR_H_INP, NULL, NULL, NULL)));
    /* RGB in (full range) -> BT.709 limited-range YUV out. */
    AV_TRY(sws_setColorspaceDetails(sws, sws_getCoefficients(SWS_CS_ITU709), 1, sws_getCoefficients(SWS_CS_ITU709),
                                    0, 0, 1 << 16, 1 << 16));

    const size_t frame_bytes = (size_t)w * (size_t)h * 3;
    for (int i = 0; i < video->n_frames; i++) {
        AV_TRY(av_frame_make_writable(frame));
        const uint8_t *src[4] = {video->rgb + frame_bytes * (size_t)i};
        const int src_stride[4] = {w * 3};
        AV_TRY(sws_scale(sws, src, src_stride, 0, h, frame->data, frame->linesize));
        frame->pts = i;
        if ((rc = encode_and_write(fmt, enc, st, frame, pkt, err)) < 0)
            goto fail;
    }
    if ((rc = encode_and_write(fmt, enc, st, NULL, pkt, err)) < 0)
        goto fail;
    AV_TRY(av_write_trailer(fmt));
    AV_TRY(avio_closep(&fmt->pb));
    file_open = 0;
    rc = 0;
fail:
    if (file_open) {
        avio_closep(&fmt->pb);
        remove(path); /* no half-written file left behind */
    }
    if (rc < 0)
        au_err_prefix(err, "mp4 %s", path);
    av_dict_free(&mux_opts);
    sws_freeContext(sws);
    av_packet_free(&pkt);
    av_frame_free(&frame);
    avcodec_free_context(&enc);
    avformat_free_context(fmt);
    return rc;
}

/* Case-insensitive "does path end with ext". */
static int has_ext(const char *path, const char *ext) {
    size_t n = strlen(path), m = strlen(ext);
    if (n < m)
        return 0;
    for (size_t i = 0; i < m; i++)
        if (tolower((unsigned char)path[n - m + i]) != ext[i])
            return 0;
    return 1;
}

int image_write(const char *path, const uint8_t *rgb, int width, int height, au_err *err) {
    int is_png = has_ext(path, ".png");
    int is_jpeg = has_ext(path, ".jpg") || has_ext(path, ".jpeg");
    if (!is_png && !is_jpeg)
        return au_errf(err, AU_EINVAL, "image %s: extension must be .jpg, .jpeg or .png", path);
    if (!rgb || width < 1 || height < 1)
        return au_errf(err, AU_EINVAL, "image %s: no pixels (size %dx%d)", path, width, height);
    pthread_once(&ffmpeg_once, ffmpeg_init);
    int rc = 0;
    const char *codec_name = is_png ? "png" : "mjpeg";
    const enum AVPixelFormat pix = is_png ? AV_PIX_FMT_RGB24 : AV_PIX_FMT_YUVJ420P;
    AVCodecContext *enc = NULL;
    AVFrame *frame = NULL;
    AVPacket *pkt = NULL;
    struct SwsContext *sws = NULL;
    AVIOContext *io = NULL;
    const AVCodec *codec = avcodec_find_encoder_by_name(codec_name);
    if (!codec)
        return au_errf(err, AU_EUNSUPPORTED, "image %s: encoder %s is not in this FFmpeg build", path, codec_name);

    AV_TRY(AV_NONNULL(enc = avcodec_alloc_context3(codec)));
    enc->width = width;
    enc->height = height;
    enc->pix_fmt = pix;
    enc->time_base = (AVRational){1, 1};
    if (is_jpeg) { /* fixed quantiser 2: visually lossless */
        enc->flags |= AV_CODEC_FLAG_QSCALE;
        enc->global_quality = FF_QP2LAMBDA * 2;
        enc->color_range = AVCOL_RANGE_JPEG;
    }
    AV_TRY(avcodec_open2(enc, codec, NULL));
    AV_TRY(AV_NONNULL(frame = av_frame_alloc()));
    AV_TRY(AV_NONNULL(pkt = av_packet_alloc()));
    frame->format = pix;
    frame->width = width;
    frame->height = height;
    frame->pts = 0;
    AV_TRY(av_frame_get_buffer(frame, 0));
    const uint8_t *src[4] = {rgb};
    const int src_stride[4] = {width * 3};
    if (is_png) {
        av_image_copy(frame->data, frame->linesize, src, src_stride, pix, width, height);
    } else {
        frame->quality = enc->global_quality;
        frame->color_range = AVCOL_RANGE_JPEG;
        AV_TRY(AV_NONNULL(sws = sws_getContext(width, height, AV_PIX_FMT_RGB24, width, height, pix,
                                               SWS_BICUBIC | SWS_ACCURATE_RND | SWS_FULL_CHR_H_INP, NULL, NULL, NULL)));
        AV_TRY(sws_scale(sws, src, src_stride, 0, height, frame->data, frame->linesize));
    }
    AV_TRY(avcodec_send_frame(enc, frame));
    AV_TRY(avcodec_send_frame(enc, NULL));
    AV_TRY(avcodec_receive_packet(enc, pkt));
    AV_TRY(avio_open(&io, path, AVIO_FLAG_WRITE));
    avio_write(io, pkt->data, pkt->size);
    avio_flush(io);
    AV_TRY(io->error);
    AV_TRY(avio_closep(&io));
    rc = 0;
fail:
    if (io) {
        avio_closep(&io);
        remove(path);
    }
    if (rc < 0)
        au_err_prefix(err, "image %s", path);
    sws_freeContext(sws);
    av_packet_free(&pkt);
    av_frame_free(&frame);
    avcodec_free_context(&enc);
    return rc;
}
