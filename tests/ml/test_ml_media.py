"""Image, OCR and video paths through the featurizer and a tiny student."""

from __future__ import annotations

import pytest
import torch
from PIL import Image, ImageDraw, ImageFont

from ml.data import load_corpus
from ml.features import Featurizer
from ml.inference import FeedbackModel
from ml.models.encoders import HashingTextEncoder
from ml.models.vision import VisionMediaEncoder
from ml.train import TrainConfig, student_config_for, train_student


def render(text: str, path, size=(900, 120)):
    im = Image.new("RGB", size, "white")
    font = ImageFont.load_default(size=36)
    ImageDraw.Draw(im).text((10, 30), text, fill="black", font=font)
    im.save(path)
    return str(path)


def write_video(path, n=6):
    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=5)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        for i in range(n):
            img = Image.new("RGB", (64, 64), (40 * i % 255, 100, 200))
            for packet in stream.encode(av.VideoFrame.from_image(img)):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return str(path)


class FakeOCR(VisionMediaEncoder):
    """Tiny backbone; OCR replaced by a lookup so the fast tests do not load rapidocr."""

    def __init__(self, texts: dict[str, str]) -> None:
        super().__init__("tiny", ocr=False, n_frames=4)
        self.texts = texts

    def ocr(self, paths):
        return " ".join(self.texts.get(p, "") for p in paths)


def test_video_frames_sampled_and_pooled(tmp_path):
    enc = VisionMediaEncoder("tiny", ocr=False, n_frames=4)
    frames = enc.video_frames(write_video(tmp_path / "v.mp4", n=9))
    assert frames.shape == (4, enc.dim)
    assert not torch.allclose(frames[0], frames[-1])


def test_image_answer_goes_through_ocr_and_image_token(tmp_path, make_request):
    img = render("Light energy, water and carbon dioxide", tmp_path / "a.png")
    media = FakeOCR({img: "Light energy, water and carbon dioxide"})
    feat = Featurizer(HashingTextEncoder(32), None, media)
    typed = make_request("Light energy, water and carbon dioxide")
    photo = make_request("", image_paths=[img])
    out = feat([typed, photo])
    assert out.answer_texts[1] == "Light energy, water and carbon dioxide"
    assert out.batch.image_mask.tolist() == [False, True]
    assert torch.allclose(out.batch.a[0], out.batch.a[1])  # same text stream


def test_student_grades_photo_like_typed_and_video(tmp_path):
    corpus = load_corpus()
    enc = HashingTextEncoder(32)
    media = FakeOCR({})
    cfg = student_config_for(enc, media.dim, d_model=32, n_heads=2, n_layers=1, retrieval_dim=16)
    model, feat, _ = train_student(corpus, enc, TrainConfig(epochs=5), cfg, media=media)
    fm = FeedbackModel(model, feat, "tiny")
    ex = corpus[0]
    img = render(ex.answer_text, tmp_path / "p.png")
    media.texts[img] = ex.answer_text
    from dataclasses import replace

    typed = ex.to_request()
    photo = replace(typed, answer_text="", image_paths=(img,))
    video = replace(typed, video_path=write_video(tmp_path / "v.mp4"))
    r_typed, r_photo, r_video = fm.predict_batch([typed, photo, video])
    assert r_photo.extracted_text == ex.answer_text
    assert abs(r_photo.score - r_typed.score) <= 0.05 * ex.max_score
    assert 0 <= r_video.score <= ex.max_score


@pytest.mark.slow
def test_rapidocr_reads_rendered_answer(tmp_path):
    pytest.importorskip("rapidocr")
    pytest.importorskip("onnxruntime")
    enc = VisionMediaEncoder("tiny", ocr=True)
    text = enc.ocr((render("water and carbon dioxide", tmp_path / "o.png"),))
    assert "carbon" in text.lower() and "water" in text.lower()
