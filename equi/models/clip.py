"""CLIP models for the clip task: open_clip's pretrained weights, the offline stand-in, and the
two pieces the operator needs (an image encoder for λ to read, a zero-shot head).

Weights are open_clip's to fetch: this module only looks in open_clip's caches first, so an
offline run fails at once with one line instead of retrying a hub for half a minute.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

import open_clip
import torch
from huggingface_hub import try_to_load_from_cache
from huggingface_hub.constants import HF_HUB_CACHE
from open_clip.constants import HF_SAFE_WEIGHTS_NAME, HF_WEIGHTS_NAME
from torch import nn

from ..cache import load_cached, save_atomically
from ..data.download import hub_reachable, online
from ..data.prompts import template_texts
from ..errors import ConfigError, MissingAssetError, one_line

MODELS = ("RN50", "RN101", "ViT-B-32", "ViT-B-16")  # the paper's four backbones (open_clip's names)


def check_model(name: str) -> None:
    if name not in open_clip.list_models():
        raise ConfigError(f"open_clip has no model {name!r}; the paper's are {', '.join(MODELS)}")


def pretrained_cfg(name: str, tag: str) -> dict:
    """open_clip's record of a pretrained tag; a one-line error naming the known tags."""
    check_model(name)
    cfg = open_clip.get_pretrained_cfg(name, tag)
    if not cfg:
        tags = open_clip.list_pretrained_tags_by_model(name)
        raise ConfigError(f"open_clip has no pretrained tag {tag!r} for {name}; known tags: {', '.join(tags) or 'none'}")
    return cfg


def cached_weights(name: str, tag: str, cache_dir: str | None = None) -> str | None:
    """The local file open_clip would load for (name, tag), or None when it would have to download."""
    cfg = pretrained_cfg(name, tag)
    if cfg.get("hf_hub"):
        repo, filename = os.path.split(cfg["hf_hub"])
        for candidate in ([HF_SAFE_WEIGHTS_NAME, HF_WEIGHTS_NAME] if not filename else [filename]):
            path = try_to_load_from_cache(repo, candidate, cache_dir=cache_dir)
            if isinstance(path, str):
                return path
    if cfg.get("url"):
        path = Path(cache_dir or "~/.cache/clip").expanduser() / cfg["url"].rsplit("/", 1)[-1]
        if path.is_file():
            return str(path)
    return None


def weights_reachable(name: str, tag: str) -> bool:
    """Whether open_clip could download (name, tag) now: the host answers and HF_HUB_OFFLINE is unset."""
    cfg = pretrained_cfg(name, tag)
    if cfg.get("hf_hub"):
        return hub_reachable()
    return bool(cfg.get("url")) and online(cfg["url"])


def where_weights_go(name: str, tag: str) -> str:
    """Where to put a downloaded copy of (name, tag) so that cached_weights finds it."""
    cfg = pretrained_cfg(name, tag)
    if cfg.get("hf_hub"):
        repo = cfg["hf_hub"].rstrip("/")
        return f"{HF_HUB_CACHE}/models--{repo.replace('/', '--')} (huggingface_hub cache of {repo})"
    return f"~/.cache/clip/{cfg['url'].rsplit('/', 1)[-1]}"


def missing_weights(name: str, tag: str) -> MissingAssetError:
    return MissingAssetError(f"CLIP weights {name}/{tag} are not cached: put them at {where_weights_go(name, tag)}, "
                             "or set task.checkpoint=/path/to/file; with a network and download=true open_clip fetches them")


def load_pretrained(name: str, tag: str, checkpoint: str | None, download: bool) -> tuple[nn.Module, str]:
    """open_clip's `name` with the weights of `tag` (or a local checkpoint file), and the file they came from."""
    cfg = pretrained_cfg(name, tag)
    quick_gelu = bool(cfg.get("quick_gelu", False))  # OpenAI's weights were trained with QuickGELU
    if checkpoint:
        if not Path(checkpoint).is_file():
            raise MissingAssetError(f"task.checkpoint={checkpoint} does not exist (a {name} open_clip or OpenAI .pt/.bin file)")
        return open_clip.create_model(name, pretrained=checkpoint, force_quick_gelu=quick_gelu), checkpoint
    path = cached_weights(name, tag)
    if path is not None:
        return open_clip.create_model(name, pretrained=path, force_quick_gelu=quick_gelu), path
    if not download:
        raise missing_weights(name, tag)
    logging.disable(logging.ERROR)  # open_clip also logs a failed download; our one line says it
    try:
        model = open_clip.create_model(name, pretrained=tag, force_quick_gelu=quick_gelu)
    except RuntimeError as err:  # open_clip's wording for a failed download
        raise MissingAssetError(f"CLIP weights {name}/{tag} could not be downloaded ({one_line(err)}); put them at "
                                f"{where_weights_go(name, tag)} or set task.checkpoint=/path/to/file") from None
    finally:
        logging.disable(logging.NOTSET)
    return model, cached_weights(name, tag) or f"{name}/{tag} (downloaded)"


def random_clip(name: str) -> nn.Module:
    """open_clip's `name` with random weights: enough to time a pass (paper Table 1)."""
    check_model(name)
    return open_clip.create_model(name, pretrained=None)


def weights_file_id(path: str | Path) -> str:
    """A weights file as a cache key for its zero-shot heads: its path, size and modification
    time, so that retrained or replaced weights under the same name never reuse old heads."""
    stat = Path(path).stat()
    return f"{Path(path).resolve()}|{stat.st_size}|{stat.st_mtime_ns}"


def standin_clip(model_cfg: dict) -> nn.Module:
    """A small CLIP from open_clip's own classes (ModifiedResNet image tower, text transformer)."""
    return open_clip.CLIP(**model_cfg)


def tokenizer_for(model: nn.Module):
    """open_clip's BPE tokenizer with the text tower's context length (shipped with open_clip)."""
    return open_clip.SimpleTokenizer(context_length=model.context_length)


def preprocess_cfg(model: nn.Module) -> tuple[int, tuple, tuple]:
    """(image size, mean, std) the image tower expects."""
    cfg = open_clip.get_model_preprocess_cfg(model)
    size = cfg.get("size", model.visual.image_size)
    size = size[0] if isinstance(size, (tuple, list)) else size
    return int(size), tuple(cfg.get("mean", open_clip.OPENAI_DATASET_MEAN)), tuple(cfg.get("std", open_clip.OPENAI_DATASET_STD))


class Preprocess(nn.Module):
    """uint8 images → the image tower's input: resized (bicubic) to its size and standardised."""

    def __init__(self, size: int, mean: tuple, std: tuple):
        super().__init__()
        self.size = size
        self.register_buffer("mean", torch.tensor(mean).view(3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(3, 1, 1), persistent=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images.float() / 255
        if x.shape[-2:] != (self.size, self.size):
            x = nn.functional.interpolate(x, size=(self.size, self.size), mode="bicubic", antialias=True,
                                          align_corners=False).clamp(0, 1)
        return (x - self.mean) / self.std


class ImageEncoder(nn.Module):
    """CLIP's image tower with unit-norm output: the operator's encoder, so the λ-network reads
    the features of the same pass that the zero-shot head classifies."""

    def __init__(self, visual: nn.Module):
        super().__init__()
        self.visual = visual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.normalize(self.visual(x), dim=-1)


class ZeroShotHead(nn.Module):
    """Unit-norm image features → scale · cosine similarity with each class's text embedding, or its
    softmax. Equitune and λ-equitune average class probabilities (the paper's code does); equizero
    and vanilla keep the similarities, so that equizero can pick the view most similar to a class."""

    def __init__(self, class_embeddings: torch.Tensor, logit_scale: float, probabilities: bool):
        super().__init__()
        self.register_buffer("weights", class_embeddings, persistent=False)  # (D, C), unit columns
        self.logit_scale = logit_scale
        self.probabilities = probabilities

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        logits = self.logit_scale * features @ self.weights.to(features.dtype)
        return logits.softmax(-1) if self.probabilities else logits


def zero_shot_weights(model: nn.Module, classnames, templates, weights_id: str | None, cache_dir: Path,
                      device: torch.device) -> torch.Tensor:
    """open_clip's zero-shot classifier (D, C): per class, encode every template, normalise, average,
    normalise. Cached on disk by weights, class names and templates, so a sweep encodes text once;
    weights_id None (random weights) is never cached."""
    path = None
    if weights_id is not None:
        key = json.dumps([weights_id, list(classnames), template_texts(templates)])
        path = Path(cache_dir) / "clip" / "heads" / f"{hashlib.sha1(key.encode()).hexdigest()[:16]}.pt"
        stored = load_cached(path, lambda p: torch.load(p, map_location=device))
        if stored is not None:
            return stored
    weights = open_clip.build_zero_shot_classifier(
        model, tokenizer_for(model), list(classnames), list(templates), device=device, use_tqdm=True)
    if path is not None:
        save_atomically(path, lambda tmp: torch.save(weights.cpu(), tmp))
    return weights
