"""Validating what learners upload, then putting it in storage.

The type of a file is decided by its content (magic bytes, then the decoder), never by its
name or the content type the browser declared. Images are decoded under Pillow's
decompression-bomb guard and re-encoded without EXIF (orientation applied first); videos are
probed with PyAV for duration and frame size, then remuxed (streams copied, no re-encoding) so
that container metadata such as a phone's GPS position is dropped.

    UploadRefused (MarginaliaError, 422)   a file or a set of files the tool will not take

    accept(files, allowed_kinds, limits, storage) -> [StoredFile]   (all or nothing)
"""

from __future__ import annotations

import hashlib
import io
import logging
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import PurePath
from typing import Any, BinaryIO, Protocol

from flask_babel import gettext as _
from PIL import Image, ImageOps, UnidentifiedImageError

from lti_tool.config import Settings
from lti_tool.services.errors import MarginaliaError
from lti_tool.services.storage import Storage
from lti_tool.services.submissions import StoredFile

log = logging.getLogger(__name__)

IMAGE = "image"
VIDEO = "video"

PNG, JPEG, WEBP = "image/png", "image/jpeg", "image/webp"
MP4, WEBM = "video/mp4", "video/webm"

_PIL_FORMAT = {PNG: "PNG", JPEG: "JPEG", WEBP: "WEBP"}
_SUFFIX = {PNG: ".png", JPEG: ".jpg", WEBP: ".webp", MP4: ".mp4", WEBM: ".webm"}
_AV_FORMAT = {MP4: "mp4", WEBM: "webm"}
# ISO BMFF brands that are still images (HEIC/AVIF photos), not videos.
_IMAGE_BRANDS = {b"heic", b"heix", b"hevc", b"heim", b"heis", b"mif1", b"msf1", b"avif", b"avis"}


class UploadRefused(MarginaliaError):
    status_code = 422
    public_message = "This file could not be accepted."


@dataclass(frozen=True)
class UploadLimits:
    max_upload_bytes: int = 20 * 1024 * 1024
    max_images: int = 5
    max_image_pixels: int = 40_000_000
    max_video_seconds: float = 120.0
    max_video_pixels: int = 1920 * 1080

    @classmethod
    def from_settings(cls, settings: Settings) -> UploadLimits:
        return cls(
            max_upload_bytes=settings.max_upload_bytes,
            max_images=settings.max_images,
            max_image_pixels=settings.max_image_pixels,
            max_video_seconds=settings.max_video_seconds,
            max_video_pixels=settings.max_video_pixels,
        )

    def for_activity(self, activity_settings: dict | None) -> UploadLimits:
        """These limits, narrowed by the activity's own (set from the admin's defaults)."""
        settings = activity_settings or {}
        limits = self
        mb = settings.get("max_upload_mb")
        if isinstance(mb, int) and mb > 0:
            limits = replace(limits, max_upload_bytes=min(limits.max_upload_bytes, mb * 1024**2))
        images = settings.get("max_images")
        if isinstance(images, int) and images >= 0:
            limits = replace(limits, max_images=min(limits.max_images, images))
        return limits


class IncomingFile(Protocol):
    """What a view hands in: werkzeug's FileStorage fits."""

    filename: str | None
    stream: BinaryIO


@dataclass
class CheckedFile:
    """A file that passed validation, re-encoded and ready to store."""

    kind: str
    content_type: str
    data: bytes
    original_name: str | None
    meta: dict[str, Any] = field(default_factory=dict)


# -- sniffing --------------------------------------------------------------------------------
def sniff(head: bytes) -> str | None:
    """The content type the leading bytes prove, among those the tool accepts; else None."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    if head.startswith(b"\xff\xd8\xff"):
        return JPEG
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return WEBP
    if head[4:8] == b"ftyp" and head[8:12] not in _IMAGE_BRANDS:
        return MP4  # MP4 and QuickTime (phones); both are remuxed into MP4
    if head.startswith(b"\x1a\x45\xdf\xa3") and b"webm" in head[:64]:
        return WEBM
    return None


def display_name(filename: str | None) -> str | None:
    """The uploader's file name, only for display: no directories, no control characters."""
    if not filename:
        return None
    name = PurePath(filename.replace("\\", "/")).name
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C").strip()
    return name[:255] or None


def format_size(n: int) -> str:
    if n >= 1024 * 1024:
        return f"{n / (1024 * 1024):.0f} MB"
    return f"{max(1, round(n / 1024))} KB"


def _read_limited(stream: BinaryIO, limit: int, name: str) -> bytes:
    data = stream.read(limit + 1)
    if len(data) > limit:
        raise UploadRefused(
            _("“%(name)s” is larger than the %(limit)s limit.", name=name, limit=format_size(limit))
        )
    return data


# -- images ----------------------------------------------------------------------------------
def check_image(data: bytes, content_type: str, limits: UploadLimits, name: str) -> CheckedFile:
    unreadable = _("“%(name)s” could not be read as an image.", name=name)
    too_large = _(
        "“%(name)s” has too many pixels (at most %(mp)s megapixels).",
        name=name,
        mp=f"{limits.max_image_pixels / 1_000_000:g}",
    )
    try:
        # Pillow's guard raises above twice Image.MAX_IMAGE_PIXELS (and warns above it; a
        # warning turned into an error is refused too); max_image_pixels is checked before
        # anything is decoded.
        with Image.open(io.BytesIO(data), formats=[_PIL_FORMAT[content_type]]) as img:
            width, height = img.size
            if width * height > limits.max_image_pixels:
                raise UploadRefused(too_large)
            frames = getattr(img, "n_frames", 1)
            img.seek(0)
            upright = ImageOps.exif_transpose(img)  # applies (and drops) the orientation
            upright.load()
            icc = img.info.get("icc_profile")
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise UploadRefused(too_large) from exc
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise UploadRefused(unreadable) from exc

    upright.info = {}  # no EXIF, XMP, text chunks or comments survive
    fmt = _PIL_FORMAT[content_type]
    options: dict[str, Any] = {"exif": b""}
    if icc:
        options["icc_profile"] = icc
    if fmt == "JPEG":
        if upright.mode not in ("RGB", "L", "CMYK"):
            upright = upright.convert("RGB")
        options.update(quality=90)
    elif fmt == "WEBP":
        options.update(quality=90)
    out = io.BytesIO()
    upright.save(out, fmt, **options)
    return CheckedFile(
        kind=IMAGE,
        content_type=content_type,
        data=out.getvalue(),
        original_name=name,
        meta={"width": upright.width, "height": upright.height, "frames": frames},
    )


# -- videos ----------------------------------------------------------------------------------
def check_video(data: bytes, content_type: str, limits: UploadLimits, name: str) -> CheckedFile:
    import av  # PyAV loads FFmpeg: only where videos are actually checked

    unreadable = _("“%(name)s” could not be read as a video.", name=name)
    too_long = _(
        "“%(name)s” is longer than %(seconds)s seconds.",
        name=name,
        seconds=f"{limits.max_video_seconds:g}",
    )
    try:
        with av.open(io.BytesIO(data), mode="r") as source:
            if not source.streams.video:
                raise UploadRefused(unreadable)
            video = source.streams.video[0]
            width, height = video.codec_context.width, video.codec_context.height
            if not width or not height:
                raise UploadRefused(unreadable)
            if width * height > limits.max_video_pixels:
                raise UploadRefused(
                    _(
                        "“%(name)s” is %(w)s×%(h)s; videos may have at most %(mp)s megapixels "
                        "(for example 1920×1080).",
                        name=name,
                        w=width,
                        h=height,
                        mp=f"{limits.max_video_pixels / 1_000_000:.1f}",
                    )
                )
            if source.duration is not None and source.duration / 1_000_000 > (
                limits.max_video_seconds
            ):
                raise UploadRefused(too_long)
            data, seconds = _remux(source, _AV_FORMAT[content_type], limits, too_long)
            meta = {
                "width": width,
                "height": height,
                "duration_seconds": round(seconds, 3),
                "video_codec": video.codec_context.name,
                "audio_codec": (
                    source.streams.audio[0].codec_context.name if source.streams.audio else None
                ),
            }
    except UploadRefused:
        raise
    except (av.FFmpegError, ValueError, OSError) as exc:
        log.info("video refused: %s", exc)
        raise UploadRefused(unreadable) from exc
    return CheckedFile(VIDEO, content_type, data, name, meta)


def _remux(source: Any, fmt: str, limits: UploadLimits, too_long: str) -> tuple[bytes, float]:
    """Copy the first video (and audio) stream into a fresh container without its metadata.

    Returns the new file and its duration measured from the packets themselves (a header's
    duration can be missing, as in browser-recorded WebM, or wrong).
    """
    import av

    out_buf = io.BytesIO()
    streams = [source.streams.video[0], *source.streams.audio[:1]]
    end = Fraction(0)
    with av.open(out_buf, mode="w", format=fmt) as target:
        mapping = {s.index: target.add_stream_from_template(s) for s in streams}
        for packet in source.demux(streams):
            if packet.dts is None:  # the demuxer's end-of-stream flush packet
                continue
            if packet.pts is not None and packet.time_base is not None:
                stop = (packet.pts + (packet.duration or 0)) * packet.time_base
                end = max(end, Fraction(stop))
                if end > limits.max_video_seconds:
                    raise UploadRefused(too_long)
            packet.stream = mapping[packet.stream.index]
            target.mux(packet)
    return out_buf.getvalue(), float(end)


# -- the whole submission ----------------------------------------------------------------------
def check_files(
    files: Iterable[IncomingFile], allowed_kinds: Sequence[str], limits: UploadLimits
) -> list[CheckedFile]:
    """Validate every file (empty file inputs are skipped); refuse the set on the first problem."""
    checked: list[CheckedFile] = []
    for incoming in files:
        name = display_name(incoming.filename) or _("unnamed file")
        data = _read_limited(incoming.stream, limits.max_upload_bytes, name)
        if not data and not incoming.filename:
            continue  # an empty <input type=file> in a plain form post
        content_type = sniff(data[:64])
        kind = IMAGE if content_type in _PIL_FORMAT else VIDEO if content_type else None
        if kind is None or kind not in allowed_kinds:
            raise UploadRefused(_not_accepted_message(name, allowed_kinds))
        if kind == IMAGE:
            if sum(f.kind == IMAGE for f in checked) >= limits.max_images:
                raise UploadRefused(_("You can attach at most %(n)s images.", n=limits.max_images))
            checked.append(check_image(data, content_type, limits, name))
        else:
            if any(f.kind == VIDEO for f in checked):
                raise UploadRefused(_("You can attach only one video."))
            checked.append(check_video(data, content_type, limits, name))
    return checked


def _not_accepted_message(name: str, allowed_kinds: Sequence[str]) -> str:
    if IMAGE in allowed_kinds and VIDEO in allowed_kinds:
        return _("“%(name)s” is not a PNG, JPEG or WebP image or an MP4 or WebM video.", name=name)
    if IMAGE in allowed_kinds:
        return _("“%(name)s” is not a PNG, JPEG or WebP image.", name=name)
    if VIDEO in allowed_kinds:
        return _("“%(name)s” is not an MP4 or WebM video.", name=name)
    return _("This activity does not accept files.")


def store(checked: Iterable[CheckedFile], storage: Storage) -> list[StoredFile]:
    stored: list[StoredFile] = []
    try:
        for f in checked:
            key = storage.put(f.data, suffix=_SUFFIX[f.content_type])
            stored.append(
                StoredFile(
                    kind=f.kind,
                    content_type=f.content_type,
                    size_bytes=len(f.data),
                    sha256=hashlib.sha256(f.data).hexdigest(),
                    storage_key=key,
                    original_name=f.original_name,
                    meta=f.meta,
                )
            )
    except BaseException:
        discard(stored, storage)
        raise
    return stored


def discard(stored: Iterable[StoredFile], storage: Storage) -> None:
    """Delete files whose submission was never recorded."""
    for f in stored:
        storage.delete(f.storage_key)


def accept(
    files: Iterable[IncomingFile],
    allowed_kinds: Sequence[str],
    limits: UploadLimits,
    storage: Storage,
) -> list[StoredFile]:
    """Validate all files, then store all of them; nothing is stored if any is refused."""
    return store(check_files(files, allowed_kinds, limits), storage)
