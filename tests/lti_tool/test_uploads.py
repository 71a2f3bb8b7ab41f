"""Upload validation: types by content, limits, decompression bombs, EXIF, videos via PyAV."""

from __future__ import annotations

import io
import struct
import zlib
from dataclasses import dataclass
from fractions import Fraction

import av
import pytest
from PIL import Image

from lti_tool.services import uploads
from lti_tool.services.storage import LocalStorage
from lti_tool.services.uploads import UploadLimits, UploadRefused

LIMITS = UploadLimits(
    max_upload_bytes=2 * 1024 * 1024,
    max_images=3,
    max_image_pixels=4_000_000,
    max_video_seconds=2.0,
    max_video_pixels=320 * 240,
)
BOTH = ["image", "video"]


@dataclass
class Incoming:
    filename: str | None
    stream: io.BytesIO


def incoming(name: str, data: bytes) -> Incoming:
    return Incoming(name, io.BytesIO(data))


def image_bytes(fmt: str = "PNG", size: tuple[int, int] = (40, 30), **save: object) -> bytes:
    img = Image.new("RGB", size, (200, 60, 40))
    img.paste((20, 90, 200), (0, 0, size[0] // 2, size[1] // 3))  # a marker in the top-left
    out = io.BytesIO()
    img.save(out, fmt, **save)
    return out.getvalue()


def photo_with_gps_and_orientation() -> bytes:
    """A JPEG as a phone writes it: rotated by EXIF orientation 6, with a GPS position."""
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90° clockwise to display
    exif[0x010F] = "PhoneMaker"
    gps = exif.get_ifd(0x8825)
    gps[1], gps[2] = "N", (48.0, 51.0, 29.0)
    gps[3], gps[4] = "E", (2.0, 17.0, 40.0)
    return image_bytes("JPEG", (40, 30), exif=exif)


def video_bytes(fmt: str, codec: str, seconds: float, size: tuple[int, int] = (64, 48)) -> bytes:
    """A tiny real video, with a GPS-like location tag in its container metadata."""
    out = io.BytesIO()
    with av.open(out, mode="w", format=fmt) as container:
        container.metadata["location"] = "+48.8584+002.2945/"
        stream = container.add_stream(codec, rate=10)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        for i in range(round(seconds * 10)):
            frame = av.VideoFrame.from_image(Image.new("RGB", size, (i * 20 % 255, 80, 160)))
            frame.pts, frame.time_base = i, Fraction(1, 10)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return out.getvalue()


def png_bomb(width: int = 30_000, height: int = 30_000) -> bytes:
    """A PNG whose header claims 900 megapixels, in a few dozen bytes."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


def check(*files: Incoming, allowed: list[str] = BOTH, limits: UploadLimits = LIMITS):
    return uploads.check_files(files, allowed, limits)


# -- sniffing ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (image_bytes("PNG"), "image/png"),
        (image_bytes("JPEG"), "image/jpeg"),
        (image_bytes("WEBP"), "image/webp"),
        (b"GIF89a" + b"\0" * 20, None),
        (b"<!doctype html><script>alert(1)</script>", None),
        (b"\0\0\0\x18ftypheic" + b"\0" * 16, None),  # an iPhone HEIC photo is not a video
    ],
)
def test_sniff_decides_by_magic_bytes(data, expected):
    assert uploads.sniff(data[:64]) == expected


def test_a_png_named_mp4_is_taken_as_the_png_it_is():
    [f] = check(incoming("lecture.mp4", image_bytes("PNG")))
    assert (f.kind, f.content_type) == ("image", "image/png")
    assert f.original_name == "lecture.mp4"


def test_a_png_named_mp4_is_refused_where_only_videos_are_accepted():
    with pytest.raises(UploadRefused, match="not an MP4 or WebM video"):
        check(incoming("lecture.mp4", image_bytes("PNG")), allowed=["video"])


def test_html_named_png_is_refused():
    html = b"<!doctype html><html><body><script>alert(document.cookie)</script></body></html>"
    with pytest.raises(UploadRefused, match="is not a PNG, JPEG or WebP image"):
        check(incoming("diagram.png", html), allowed=["image"])


def test_an_image_truncated_after_its_header_is_refused():
    data = image_bytes("PNG", (200, 200))
    with pytest.raises(UploadRefused, match="could not be read as an image"):
        check(incoming("cut.png", data[:120]))


def test_display_name_drops_directories_and_control_characters():
    assert uploads.display_name("../../etc/passwd") == "passwd"
    assert uploads.display_name("C:\\Users\\ada\\photo\x00\u202e.jpg") == "photo.jpg"
    assert uploads.display_name("") is None


# -- limits -------------------------------------------------------------------------------------
def test_oversized_file_is_refused_with_the_limit_in_the_message():
    limits = UploadLimits(max_upload_bytes=10 * 1024)
    big = image_bytes("PNG", (400, 400), compress_level=0)
    assert len(big) > 10 * 1024
    with pytest.raises(UploadRefused, match="larger than the 10 KB limit"):
        check(incoming("big.png", big), limits=limits)


def test_too_many_images_are_refused():
    files = [incoming(f"p{i}.png", image_bytes()) for i in range(LIMITS.max_images + 1)]
    with pytest.raises(UploadRefused, match="at most 3 images"):
        check(*files)


def test_more_than_one_video_is_refused():
    clip = video_bytes("mp4", "libx264", 0.5)
    with pytest.raises(UploadRefused, match="only one video"):
        check(incoming("a.mp4", clip), incoming("b.mp4", clip))


def test_empty_file_inputs_of_a_plain_form_are_skipped():
    assert check(Incoming("", io.BytesIO(b""))) == []


# -- images ---------------------------------------------------------------------------------------
def test_decompression_bomb_is_refused_by_pillows_guard():
    bomb = png_bomb()
    assert len(bomb) < 200
    roomy = UploadLimits(max_image_pixels=10**12)  # only Pillow's own guard stands in the way
    with pytest.raises(UploadRefused, match="too many pixels") as caught:
        check(incoming("bomb.png", bomb), limits=roomy)
    assert isinstance(caught.value.__cause__, Image.DecompressionBombError)


def test_image_above_the_configured_pixel_limit_is_refused_before_decoding():
    with pytest.raises(UploadRefused, match="at most 0.001 megapixels"):
        check(incoming("p.png", image_bytes()), limits=UploadLimits(max_image_pixels=1000))


def test_exif_is_stripped_and_the_orientation_applied(tmp_path):
    original = photo_with_gps_and_orientation()
    assert Image.open(io.BytesIO(original)).getexif().get_ifd(0x8825)  # the GPS is there

    storage = LocalStorage(tmp_path)
    [stored] = uploads.accept([incoming("IMG_0001.JPG", original)], BOTH, LIMITS, storage)
    with storage.open(stored.storage_key) as handle:
        data = handle.read()
    saved = Image.open(io.BytesIO(data))
    assert saved.format == "JPEG"
    exif = saved.getexif()
    assert len(exif) == 0 and not exif.get_ifd(0x8825)
    assert b"Exif" not in data and b"PhoneMaker" not in data
    # Rotated upright: 40x30 landscape became 30x40 portrait, marker now top-right.
    assert saved.size == (30, 40)
    assert saved.getpixel((27, 2))[2] > 150 and saved.getpixel((2, 38))[0] > 150
    assert stored.meta == {"width": 30, "height": 40, "frames": 1}
    assert stored.size_bytes == len(data) and len(stored.sha256) == 64


def test_png_text_chunks_are_dropped():
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "secret location")
    [f] = check(incoming("p.png", image_bytes("PNG", pnginfo=info)))
    assert b"secret location" not in f.data


def test_webp_is_accepted_and_stays_webp():
    [f] = check(incoming("snap.webp", image_bytes("WEBP")))
    assert f.content_type == "image/webp"
    assert Image.open(io.BytesIO(f.data)).format == "WEBP"


# -- videos ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("fmt", "codec", "ctype"), [("mp4", "libx264", "video/mp4"), ("webm", "libvpx", "video/webm")]
)
def test_short_video_is_accepted_and_its_metadata_dropped(fmt, codec, ctype):
    clip = video_bytes(fmt, codec, 1.0)
    with av.open(io.BytesIO(clip)) as source:
        assert any("location" in k.lower() for k in source.metadata)
    [f] = check(incoming(f"clip.{fmt}", clip))
    assert (f.kind, f.content_type) == ("video", ctype)
    assert f.meta["width"] == 64 and f.meta["height"] == 48
    assert f.meta["duration_seconds"] == pytest.approx(1.0, abs=0.15)
    assert b"loci" not in f.data and b"LOCATION" not in f.data  # MP4 and WebM location tags
    with av.open(io.BytesIO(f.data)) as again:
        assert again.streams.video[0].codec_context.width == 64
        assert not any("location" in k.lower() for k in again.metadata)


@pytest.mark.parametrize(("fmt", "codec"), [("mp4", "libx264"), ("webm", "libvpx")])
def test_video_too_long_is_refused(fmt, codec):
    with pytest.raises(UploadRefused, match="longer than 2 seconds"):
        check(incoming(f"long.{fmt}", video_bytes(fmt, codec, 3.0)))


def test_video_with_too_many_pixels_is_refused():
    clip = video_bytes("mp4", "libx264", 0.3, size=(640, 480))
    with pytest.raises(UploadRefused, match="640×480"):
        check(incoming("big.mp4", clip))


def test_a_truncated_video_is_refused():
    clip = video_bytes("mp4", "libx264", 1.0)
    with pytest.raises(UploadRefused, match="could not be read as a video"):
        check(incoming("cut.mp4", clip[:200]))


def test_nothing_is_stored_when_one_file_of_the_set_is_refused(tmp_path):
    storage = LocalStorage(tmp_path)
    files = [incoming("ok.png", image_bytes()), incoming("bad.png", b"<html>")]
    with pytest.raises(UploadRefused):
        uploads.accept(files, BOTH, LIMITS, storage)
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def test_an_activity_can_only_narrow_the_installation_limits():
    base = uploads.UploadLimits(max_upload_bytes=20 * 1024**2, max_images=5)
    narrowed = base.for_activity({"max_upload_mb": 2, "max_images": 1})
    assert (narrowed.max_upload_bytes, narrowed.max_images) == (2 * 1024**2, 1)
    widened = base.for_activity({"max_upload_mb": 500, "max_images": 50})
    assert (widened.max_upload_bytes, widened.max_images) == (20 * 1024**2, 5)
    assert base.for_activity(None) == base
