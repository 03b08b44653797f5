"""test_openai_sdk.py - the official `openai` Python SDK against a running server with only
base_url changed: videos.create (sent as multipart/form-data), retrieve, list (with its
paginator), download_content (video and thumbnail), remix, delete; an API key through the
SDK; an error surfacing as the SDK's exception with our envelope. Skipped (77) when the SDK
is not installed.
"""

import os
import sys
import tempfile
import time
import warnings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Server, check, check_eq, ffprobe, run_tests, skip  # noqa: E402

try:
    import openai
except ImportError:
    skip("openai SDK not installed")

warnings.filterwarnings("ignore", category=DeprecationWarning)  # the SDK's notice about the hosted service

server = Server("--api-key", "sdk-key").start()
client = openai.OpenAI(base_url=server.base + "/v1", api_key="sdk-key", max_retries=0, timeout=30)
state = {}


def wait(video_id, timeout=120):
    deadline = time.time() + timeout
    video = client.videos.retrieve(video_id)
    while video.status in ("queued", "in_progress"):
        check(time.time() < deadline, "video %s did not finish" % video_id)
        time.sleep(0.1)
        video = client.videos.retrieve(video_id)
    return video


def test_create_retrieve_download():
    video = client.videos.create(prompt="a paper boat on a pond", seconds="1", size="64x32",
                                 extra_body={"steps": 2, "seed": 11})
    check_eq(video.object, "video", "object")
    check_eq(video.status, "queued", "status")
    check_eq((video.size, video.seconds), ("64x32", "1"), "size and seconds")
    done = wait(video.id)
    check_eq((done.status, done.progress), ("completed", 100), "completed")
    check_eq(done.model, "tiny-random", "model")
    path = os.path.join(tempfile.mkdtemp(), "sdk.mp4")
    client.videos.download_content(video.id).write_to_file(path)
    info = ffprobe(path)
    check_eq((info["codec"], info["width"], info["height"], info["frames"], info["fps"]), ("h264", 64, 32, 9, 8.0),
             "decoded")
    thumb = client.videos.download_content(video.id, variant="thumbnail").read()
    check(thumb[:3] == b"\xff\xd8\xff", "thumbnail JPEG")
    state["id"] = video.id


def test_list_and_paginate():
    more = [client.videos.create(prompt="page %d" % i, size="16x16", extra_body={"frames": 1, "steps": 1}).id
            for i in range(3)]
    for vid in more:
        wait(vid)
    page = client.videos.list(limit=2, order="asc")
    check_eq(len(page.data), 2, "page size")
    check(page.has_more, "has_more")
    ids = [v.id for v in client.videos.list(limit=2, order="asc")]  # the paginator follows `after`
    check_eq(ids, [state["id"]] + more, "all videos in creation order")


def test_remix():
    remix = client.videos.remix(state["id"], prompt="a paper plane over a pond")
    check_eq(remix.remixed_from_video_id, state["id"], "remixed_from_video_id")
    check_eq(wait(remix.id).status, "completed", "remix completes")
    state["remix"] = remix.id


def test_delete():
    deleted = client.videos.delete(state["remix"])
    check_eq((deleted.id, deleted.deleted, deleted.object), (state["remix"], True, "video.deleted"), "deleted")
    try:
        client.videos.retrieve(state["remix"])
        raise AssertionError("retrieve after delete succeeded")
    except openai.NotFoundError as e:
        check_eq(e.status_code, 404, "status")
        check_eq(e.body.get("code"), "video_not_found", "error code through the SDK")


def test_errors_through_the_sdk():
    try:
        client.videos.create(prompt="x", size="100x100")
        raise AssertionError("bad size accepted")
    except openai.BadRequestError as e:
        check_eq(e.body.get("param"), "size", "param")
    bad = openai.OpenAI(base_url=server.base + "/v1", api_key="wrong", max_retries=0)
    try:
        bad.videos.list()
        raise AssertionError("wrong key accepted")
    except openai.AuthenticationError as e:
        check_eq(e.status_code, 401, "401")


def test_zz_stop():
    check_eq(server.stop(), 0, "clean exit")


run_tests(globals())
