"""Learned embeddings: the CLIP vision tower and DINOv2, through ``transformers`` on torch.

Needs the ``learned`` extra (``pip install 'viewfinder[learned]'``). Weights come from a
local folder or a model-hub id (``model``); nothing is downloaded when the hub cannot be
reached (transformers then reads its local cache only, or fails with a clear message).
``random_init=True`` builds a small model of the family from a configuration with random
weights, seeded so the vectors are reproducible: for tests, never for real use.

Images are resized (short side, bicubic), centre-cropped and normalized as each family
was trained; batches run under ``torch.no_grad()`` on CUDA when available.

Example:
    >>> p = get_provider("dinov2", model="/models/dinov2-small")   # doctest: +SKIP
    >>> p.embed([Image.open("cat.jpg")]).shape                       # doctest: +SKIP
    (1, 384)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from viewfinder.errors import ConfigError, MissingDependency

if TYPE_CHECKING:
    from PIL import Image

    from viewfinder.quality.embeddings.base import ProviderConfig

_CLIP_MEAN, _CLIP_STD = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)
_IMAGENET_MEAN, _IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
RANDOM_SEED = 0


def _torch() -> tuple[Any, Any]:
    try:
        import torch
    except ImportError:
        raise MissingDependency("torch", "learned") from None
    try:
        import transformers
    except ImportError:
        raise MissingDependency("transformers", "learned") from None
    return torch, transformers


class _LearnedProvider:
    """Shared loading, preprocessing and batching; subclasses pick the model and pooling."""

    family = ""
    default_model = ""
    mean: tuple[float, float, float] = _IMAGENET_MEAN
    std: tuple[float, float, float] = _IMAGENET_STD
    resize_ratio = 1.0  # short side = crop / ratio before the centre crop

    def __init__(self, config: ProviderConfig) -> None:
        torch, _ = _torch()
        self.config = config
        self.batch_size = config.batch_size
        self.cpu_parallel = False
        self.device = torch.device(config.device or ("cuda" if torch.cuda.is_available() else "cpu"))
        source = config.model or self.default_model
        if config.random_init:
            torch.manual_seed(RANDOM_SEED)
            self.model = self._random_model(config.model)
            self.name = f"{self.family}:random:{config.model or 'small'}"
        else:
            try:
                self.model = self._pretrained(source)
            except (OSError, ValueError) as e:
                raise ConfigError(f"cannot load {self.family} weights from {source!r} (a local "
                                  f"folder, or a model-hub id reachable or cached): {e}") from None
            self.name = f"{self.family}:{source}"
        self.model.to(self.device).eval()
        self.crop = int(self.model.config.image_size)
        self.input_side = round(self.crop / self.resize_ratio)
        self.dim = self._dim()

    # -- subclass hooks -------------------------------------------------------------------

    def _random_model(self, model: str | None) -> Any:
        raise NotImplementedError

    def _pretrained(self, source: str) -> Any:
        raise NotImplementedError

    def _dim(self) -> int:
        raise NotImplementedError

    def _forward(self, pixels: Any) -> Any:
        raise NotImplementedError

    # -- shared ---------------------------------------------------------------------------

    def _preprocess(self, im: Image.Image) -> np.ndarray:
        from PIL import Image as PILImage

        im = im.convert("RGB")
        w, h = im.size
        short = self.input_side
        f = short / min(w, h)
        im = im.resize((max(short, round(w * f)), max(short, round(h * f))), PILImage.Resampling.BICUBIC)
        w, h = im.size
        left, top = (w - self.crop) // 2, (h - self.crop) // 2
        im = im.crop((left, top, left + self.crop, top + self.crop))
        a = np.asarray(im, dtype=np.float32) / 255.0
        a = (a - np.asarray(self.mean, np.float32)) / np.asarray(self.std, np.float32)
        return a.transpose(2, 0, 1)

    def embed(self, images: list[Image.Image]) -> np.ndarray:
        """``(len(images), dim)`` float32 unit vectors."""
        torch, _ = _torch()
        out = np.empty((len(images), self.dim), dtype=np.float32)
        for s in range(0, len(images), self.batch_size):
            batch = np.stack([self._preprocess(im) for im in images[s:s + self.batch_size]])
            with torch.no_grad():
                pixels = torch.from_numpy(batch).to(self.device)
                feats = self._forward(pixels).float()
                feats = torch.nn.functional.normalize(feats, dim=-1)
            out[s:s + len(batch)] = feats.cpu().numpy()
        return out


class ClipProvider(_LearnedProvider):
    """The image tower of CLIP (projected image embeddings, as used for retrieval)."""

    family = "clip"
    default_model = "openai/clip-vit-base-patch32"
    mean, std = _CLIP_MEAN, _CLIP_STD

    def _random_model(self, model: str | None) -> Any:
        _, tf = _torch()
        if model:
            config = tf.CLIPVisionConfig.from_pretrained(model)
        else:
            config = tf.CLIPVisionConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                         num_attention_heads=2, projection_dim=32, image_size=64,
                                         patch_size=16)
        return tf.CLIPVisionModelWithProjection(config)

    def _pretrained(self, source: str) -> Any:
        _, tf = _torch()
        return tf.CLIPVisionModelWithProjection.from_pretrained(source)

    def _dim(self) -> int:
        return int(self.model.config.projection_dim)

    def _forward(self, pixels: Any) -> Any:
        return self.model(pixel_values=pixels).image_embeds


class Dinov2Provider(_LearnedProvider):
    """DINOv2: the class token of the last layer (strong for near-duplicates and outliers)."""

    family = "dinov2"
    default_model = "facebook/dinov2-small"
    resize_ratio = 224 / 256

    def _random_model(self, model: str | None) -> Any:
        _, tf = _torch()
        if model:
            config = tf.Dinov2Config.from_pretrained(model)
        else:
            config = tf.Dinov2Config(hidden_size=48, intermediate_size=96, num_hidden_layers=2,
                                     num_attention_heads=2, image_size=56, patch_size=14)
        return tf.Dinov2Model(config)

    def _pretrained(self, source: str) -> Any:
        _, tf = _torch()
        return tf.Dinov2Model.from_pretrained(source)

    def _dim(self) -> int:
        return int(self.model.config.hidden_size)

    def _forward(self, pixels: Any) -> Any:
        return self.model(pixel_values=pixels).pooler_output
