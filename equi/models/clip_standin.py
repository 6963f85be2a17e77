"""The offline stand-in for pretrained CLIP: a small open_clip CLIP trained here with open_clip's
ClipLoss on upright CIFAR-10 training images, each paired with a caption drawn from the CIFAR
templates ("a blurry photo of a cat."). Like CLIP it never sees rotated images, so rotations
hurt it; mirrors (and with `augment: crop_flip` random shifts) are its only augmentation.
"""

from __future__ import annotations

from contextlib import contextmanager

import open_clip
import torch
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from ..data import cifar
from ..data.prompts import CIFAR10_CLASSES, CIFAR_TEMPLATES
from .clip import Preprocess, preprocess_cfg, standin_clip, tokenizer_for


@contextmanager
def caption_rows(model: open_clip.CLIP, captions: torch.Tensor):
    """Swap the text tower's token table for the rows `captions` use (29 of 49,408 for the CIFAR
    templates) while training, and yield the captions renumbered for it. Every caption goes through
    the tower at every step, so those rows get the same AdamW updates as in the full table, whose
    gradient would cost a 25 MB zero-fill and its optimizer update every step (20–35 ms of a 250 ms
    step here). The trained rows go back into the full table on exit; the others keep their start."""
    full = model.token_embedding
    used = captions.unique()
    model.token_embedding = torch.nn.Embedding.from_pretrained(full.weight.detach()[used].clone(), freeze=False)
    try:
        yield torch.searchsorted(used, captions)
    finally:
        with torch.no_grad():
            full.weight[used] = model.token_embedding.weight
        model.token_embedding = full


def resolved(settings: DictConfig, device: torch.device) -> DictConfig:
    """The recipe as it runs on `device`, `precision: auto` decided: bf16 where the device has bf16
    kernels (a CUDA GPU that supports it; a CPU where oneDNN has them, AVX-512 or newer), float32
    elsewhere, where emulated bf16 would be slower. The stand-in's file is named by this."""
    if settings.precision != "auto":
        return settings
    native = (torch.cuda.is_bf16_supported() if device.type == "cuda"
              else device.type == "cpu" and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    out = settings.copy()
    out.precision = "bf16" if native else "fp32"
    return out


def train(settings: DictConfig, images: torch.Tensor, labels: torch.Tensor, device: torch.device) -> torch.nn.Module:
    """ClipLoss over image–caption batches; AdamW with a one-cycle schedule."""
    settings = resolved(settings, device)
    generator = torch.Generator().manual_seed(settings.seed)
    torch.manual_seed(settings.seed)
    model = standin_clip(OmegaConf.to_container(settings.model, resolve=True)).to(device)
    model.visual.to(memory_format=torch.channels_last)  # about 1.4× faster convolutions on a CPU
    prepare = Preprocess(*preprocess_cfg(model)).to(device)
    captions = tokenizer_for(model)([t.format(c) for c in CIFAR10_CLASSES for t in CIFAR_TEMPLATES]).to(device)
    per_epoch = min(settings.examples_per_epoch or len(images), len(images))
    batches = per_epoch // settings.batch_size
    if batches == 0:
        raise ValueError(f"task.standin.batch_size={settings.batch_size} exceeds the {per_epoch} training images")
    with caption_rows(model, captions) as captions:
        decay = [p for p in model.parameters() if p.ndim >= 2]
        no_decay = [p for p in model.parameters() if p.ndim < 2]  # gains, biases, logit scale
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": settings.weight_decay},
                                 {"params": no_decay, "weight_decay": 0.0}], lr=settings.lr,
                                fused=True)  # one kernel for all parameters: a 5× faster optimizer step on a CPU, same update
        schedule = torch.optim.lr_scheduler.OneCycleLR(opt, settings.lr, total_steps=settings.epochs * batches,
                                                       pct_start=0.2)
        loss_fn = open_clip.ClipLoss()
        model.train()
        for epoch in range(1, settings.epochs + 1):
            order = torch.randperm(len(images), generator=generator)[: batches * settings.batch_size]
            progress = tqdm(order.split(settings.batch_size), desc=f"stand-in CLIP epoch {epoch}/{settings.epochs}",
                            unit="batch")
            for step, idx in enumerate(progress):
                x = cifar.augment(images[idx], generator, pad=4 if settings.augment == "crop_flip" else 0)
                x = prepare(x.to(device)).contiguous(memory_format=torch.channels_last)
                template = torch.randint(len(CIFAR_TEMPLATES), (len(idx),), generator=generator)
                caption = labels[idx].to(device) * len(CIFAR_TEMPLATES) + template.to(device)
                # weights and the loss stay float32; bf16 only inside the towers (autocast)
                with torch.autocast(device.type, torch.bfloat16, enabled=settings.precision == "bf16"):
                    # all captions through the text tower once per step (fewer than a batch), then picked per image
                    text_features = model.encode_text(captions, normalize=True)[caption]
                    image_features = model.encode_image(x, normalize=True)
                loss = loss_fn(image_features.float(), text_features.float(), model.logit_scale.exp())
                opt.zero_grad()
                loss.backward()
                opt.step()
                schedule.step()
                with torch.no_grad():
                    model.logit_scale.clamp_(0, 4.6052)  # CLIP's cap: scale ≤ 100
                if step % 20 == 0:
                    progress.set_postfix(loss=f"{loss.item():.3f}")
    return model.eval()
