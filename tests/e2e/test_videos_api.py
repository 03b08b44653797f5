"""test_videos_api.py - the happy paths of the video API against a real server on the tiny
model: create (JSON and multipart) -> poll -> download -> decode with ffprobe (codec, size,
fps, frame count, +faststart); Range/ETag/If-None-Match; thumbnail; list with pagination;
remix; delete with its files; models, health and metrics.
"""

import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Server, check, check_eq, ffprobe, moov_before_mdat, multipart, run_tests  # noqa: E402

server = Server().start()
made = {}  # name -> video id, shared by the tests below (they run in order)


def test_create_poll_download_decode():
    v = server.create(prompt="a red circle moving right", size="64x32", seconds="1", fps=8, steps=3, seed=7,
                      negative_prompt="blurry", guidance_scale=4.5)
    check(v["id"].startswith("video_") and len(v["id"]) == 38, "id %r" % v["id"])
    check_eq(v["object"], "video", "object")
    check_eq(v["status"], "queued", "status at creation")
    check_eq(v["progress"], 0, "progress at creation")
    check_eq(v["size"], "64x32", "size")
    check_eq(v["seconds"], "1", "seconds echoed as given")
    check_eq(v["frames"], 9, "1 s at 8 fps rounds to 4k+1 = 9 frames")
    check_eq((v["seed"], v["steps"], v["fps"], v["guidance_scale"]), (7, 3, 8, 4.5), "extensions echoed")
    check_eq(v["negative_prompt"], "blurry", "negative_prompt")
    check_eq(v["model"], "tiny-random", "model")
    check(v["completed_at"] is None and v["error"] is None, "no completion yet")
    done = server.wait(v["id"])
    check_eq(done["status"], "completed", "status")
    check_eq(done["progress"], 100, "progress")
    check(done["completed_at"] >= done["created_at"], "completed_at")
    r = server.request("GET", "/v1/videos/%s/content" % v["id"])
    check_eq(r.status, 200, "download status")
    check_eq(r.headers.get("content-type"), "video/mp4", "content type")
    check_eq(r.headers.get("accept-ranges"), "bytes", "Accept-Ranges")
    check_eq(int(r.headers.get("content-length")), len(r.body), "Content-Length")
    check(r.headers.get("etag", "").startswith('"'), "ETag")
    check(moov_before_mdat(r.body), "moov before mdat (+faststart)")
    path = os.path.join(tempfile.mkdtemp(), "v.mp4")
    with open(path, "wb") as f:
        f.write(r.body)
    info = ffprobe(path)
    check_eq((info["codec"], info["profile"], info["pix_fmt"]), ("h264", "High", "yuv420p"), "codec")
    check_eq((info["width"], info["height"]), (64, 32), "decoded size")
    check_eq(info["fps"], 8.0, "fps")
    check_eq(info["frames"], 9, "decoded frame count")
    check("mp4" in info["format"], "container %s" % info["format"])
    made["first"] = v["id"]
    made["first_bytes"] = r.body


def test_progress_is_reported_while_running():
    v = server.create(prompt="slow one", size="128x128", frames=17, steps=30)
    seen = set()
    while True:
        cur = server.get(v["id"])
        if cur["status"] == "in_progress":
            seen.add(cur["progress"])
        if cur["status"] in ("completed", "failed"):
            break
        time.sleep(0.05)
    check_eq(cur["status"], "completed", "status")
    check(any(0 < p < 100 for p in seen), "progress between 0 and 100 seen while in progress: %r" % sorted(seen))
    check(sorted(seen) == sorted(set(seen)) and all(0 <= p <= 99 for p in seen), "progress %r" % sorted(seen))


def test_multipart_create():
    body, ctype = multipart({"prompt": "a blue square", "seconds": "2", "size": "32x32", "steps": "2"})
    r = server.request("POST", "/v1/videos", body=body, headers={"Content-Type": ctype})
    check_eq(r.status, 200, "multipart create %r" % r)
    v = r.json()
    check_eq((v["size"], v["frames"], v["steps"], v["seconds"]), ("32x32", 17, 2, "2"), "multipart fields")
    done = server.wait(v["id"])
    check_eq(done["status"], "completed", "status")
    made["multipart"] = v["id"]


def test_range_etag_and_thumbnail():
    vid, data = made["first"], made["first_bytes"]
    url = "/v1/videos/%s/content" % vid
    r = server.request("GET", url, headers={"Range": "bytes=0-99"})
    check_eq(r.status, 206, "206 for a range")
    check_eq(r.body, data[:100], "first 100 bytes")
    check_eq(r.headers.get("content-range"), "bytes 0-99/%d" % len(data), "Content-Range")
    r = server.request("GET", url, headers={"Range": "bytes=-10"})
    check_eq((r.status, r.body), (206, data[-10:]), "suffix range")
    r = server.request("GET", url, headers={"Range": "bytes=%d-" % (len(data) - 5)})
    check_eq((r.status, r.body), (206, data[-5:]), "open range")
    r = server.request("GET", url, headers={"Range": "bytes=%d-" % len(data)})
    check_eq(r.status, 416, "416 past the end")
    check_eq(r.headers.get("content-range"), "bytes */%d" % len(data), "416 Content-Range")
    check_eq(r.error()["code"], "range_not_satisfiable", "416 code")
    r = server.request("GET", url, headers={"Range": "bytes=9-2"})
    check_eq(r.status, 416, "416 for a reversed range")
    r = server.request("GET", url, headers={"Range": "bytes=0-1,5-6"})
    check_eq((r.status, r.body), (200, data), "several ranges: the whole file")
    etag = server.request("GET", url).headers["etag"]
    r = server.request("GET", url, headers={"If-None-Match": etag})
    check_eq(r.status, 304, "If-None-Match")
    r = server.request("GET", url, headers={"Range": "bytes=0-9", "If-Range": '"stale"'})
    check_eq((r.status, r.body), (200, data), "If-Range with another ETag: whole file")
    r = server.request("GET", url, headers={"Range": "bytes=0-9", "If-Range": etag})
    check_eq((r.status, r.body), (206, data[:10]), "If-Range with the ETag: the range")
    r = server.request("HEAD", url)
    check_eq((r.status, r.body, int(r.headers["content-length"])), (200, b"", len(data)), "HEAD")
    r = server.request("GET", url + "?variant=video")
    check_eq(r.body, data, "variant=video")
    r = server.request("GET", url + "?variant=thumbnail")
    check_eq(r.status, 200, "thumbnail")
    check_eq(r.headers.get("content-type"), "image/jpeg", "thumbnail type")
    check(r.body[:3] == b"\xff\xd8\xff", "thumbnail is a JPEG")
    path = os.path.join(tempfile.mkdtemp(), "t.jpg")
    with open(path, "wb") as f:
        f.write(r.body)
    info = ffprobe(path)
    check_eq((info["width"], info["height"]), (64, 32), "thumbnail size")


def test_list_and_pagination():
    ids = [server.create(prompt="list %d" % i, size="16x16", frames=1, steps=1)["id"] for i in range(5)]
    for i in ids:
        server.wait(i)
    r = server.request("GET", "/v1/videos?limit=100&order=asc")
    check_eq(r.status, 200, "list")
    full = r.json()
    check_eq(full["object"], "list", "object")
    all_ids = [v["id"] for v in full["data"]]
    check_eq(all_ids[-5:], ids, "ascending order ends with the newest five")
    check_eq((full["first_id"], full["last_id"], full["has_more"]), (all_ids[0], all_ids[-1], False), "list meta")
    # walk newest first, two at a time
    walked, after = [], None
    while True:
        q = "/v1/videos?limit=2" + ("&after=" + after if after else "")
        page = server.request("GET", q).json()
        check(len(page["data"]) <= 2, "page size")
        walked += [v["id"] for v in page["data"]]
        if not page["has_more"]:
            break
        after = page["last_id"]
    check_eq(walked, list(reversed(all_ids)), "pages cover the list newest first, no gaps or repeats")
    check_eq(server.request("GET", "/v1/videos?limit=2").json()["data"][0]["id"], ids[-1], "default order desc")


def test_remix_keeps_parameters_and_seed():
    src = server.get(made["first"])
    r = server.request("POST", "/v1/videos/%s/remix" % src["id"], json_body={"prompt": "a green circle"})
    check_eq(r.status, 200, "remix %r" % r)
    v = r.json()
    check(v["id"] != src["id"], "a new video")
    check_eq(v["remixed_from_video_id"], src["id"], "remixed_from_video_id")
    check_eq(v["prompt"], "a green circle", "new prompt")
    for key in ("size", "seconds", "frames", "fps", "steps", "seed", "guidance_scale", "shift", "sampler",
                "negative_prompt"):
        check_eq(v[key], src[key], "remix keeps " + key)
    check_eq(server.wait(v["id"])["status"], "completed", "remix completes")
    r = server.request("POST", "/v1/videos/video_%s/remix" % ("0" * 32), json_body={"prompt": "x"})
    check_eq(r.status, 404, "remix of an unknown video")


def test_delete_completed_removes_files():
    vid = made["multipart"]
    mp4 = os.path.join(server.data_dir, "videos", vid + ".mp4")
    jpg = os.path.join(server.data_dir, "videos", vid + ".jpg")
    check(os.path.exists(mp4) and os.path.exists(jpg), "files exist before delete")
    r = server.request("DELETE", "/v1/videos/" + vid)
    check_eq(r.status, 200, "delete")
    check_eq(r.json(), {"id": vid, "object": "video.deleted", "deleted": True}, "deleted object")
    check(not os.path.exists(mp4) and not os.path.exists(jpg), "files removed")
    check_eq(server.request("GET", "/v1/videos/" + vid).status, 404, "gone")
    check_eq(server.request("GET", "/v1/videos/%s/content" % vid).status, 404, "content gone")
    check_eq(server.request("DELETE", "/v1/videos/" + vid).status, 404, "second delete")


def test_models_health_metrics():
    m = server.request("GET", "/v1/models").json()
    check_eq(m["object"], "list", "models object")
    check_eq(m["data"][0]["id"], "tiny-random", "model id")
    h = server.request("GET", "/health")
    check_eq(h.status, 200, "health status")
    report = h.json()
    check_eq(report["status"], "ok", "health")
    check(report["database"]["ok"] and report["database"]["schema_version"] >= 1, "database in health")
    check(report["model"]["loaded"] and report["model"]["name"] == "tiny-random", "model in health")
    check("queued" in report["queue"] and "max" in report["queue"], "queue in health")
    text = server.request("GET", "/metrics").body.decode()
    for needle in ('auteur_http_requests_total{route="/v1/videos",method="POST",status="200"}',
                   'auteur_http_requests_total{route="/v1/videos/{id}",method="GET",status="200"}',
                   'auteur_http_requests_total{route="/v1/videos/{id}/content",method="GET",status="206"}',
                   "auteur_queue_depth ", 'auteur_jobs{state="completed"}', "auteur_generation_seconds_bucket",
                   "auteur_generation_seconds_count ", "auteur_denoise_steps_per_second ", "auteur_model_loaded 1"):
        check(needle in text, "metrics lack %s" % needle)
    completed = [line for line in text.splitlines() if line.startswith('auteur_jobs{state="completed"}')][0]
    check(int(completed.split()[-1]) >= 8, "completed jobs counted: " + completed)
    rate = float([line for line in text.splitlines() if line.startswith("auteur_denoise_steps_per_second")][0].split()[1])
    check(rate > 0, "denoise rate measured")


def test_zz_sigterm_exits_cleanly():
    check_eq(server.stop(), 0, "exit code after SIGTERM")
    check("stopped" in server.stderr(), "logged its stop")
    server.cleanup()


run_tests(globals())
