"""Class names and prompt templates for CLIP zero-shot heads.

CIFAR-10 and CIFAR-100 use the class names and the 18 templates of OpenAI's CLIP
(`data/prompts.md`; the paper's code uses the same list for CIFAR-100). ImageNet (and so
ImageNet-V2) uses open_clip's copies of OpenAI's cleaned class names and 80 templates.
"""

from __future__ import annotations

from open_clip import IMAGENET_CLASSNAMES, OPENAI_IMAGENET_TEMPLATES

from .cifar import CLASSES as CIFAR10_CLASSES

CIFAR_TEMPLATES = (
    "a photo of a {}.", "a blurry photo of a {}.", "a black and white photo of a {}.",
    "a low contrast photo of a {}.", "a high contrast photo of a {}.", "a bad photo of a {}.",
    "a good photo of a {}.", "a photo of a small {}.", "a photo of a big {}.", "a photo of the {}.",
    "a blurry photo of the {}.", "a black and white photo of the {}.", "a low contrast photo of the {}.",
    "a high contrast photo of the {}.", "a bad photo of the {}.", "a good photo of the {}.",
    "a photo of the small {}.", "a photo of the big {}.",
)

CIFAR100_CLASSES = (
    "apple", "aquarium fish", "baby", "bear", "beaver", "bed", "bee", "beetle", "bicycle", "bottle", "bowl", "boy",
    "bridge", "bus", "butterfly", "camel", "can", "castle", "caterpillar", "cattle", "chair", "chimpanzee", "clock",
    "cloud", "cockroach", "couch", "crab", "crocodile", "cup", "dinosaur", "dolphin", "elephant", "flatfish",
    "forest", "fox", "girl", "hamster", "house", "kangaroo", "keyboard", "lamp", "lawn mower", "leopard", "lion",
    "lizard", "lobster", "man", "maple tree", "motorcycle", "mountain", "mouse", "mushroom", "oak tree", "orange",
    "orchid", "otter", "palm tree", "pear", "pickup truck", "pine tree", "plain", "plate", "poppy", "porcupine",
    "possum", "rabbit", "raccoon", "ray", "road", "rocket", "rose", "sea", "seal", "shark", "shrew", "skunk",
    "skyscraper", "snail", "snake", "spider", "squirrel", "streetcar", "sunflower", "sweet pepper", "table", "tank",
    "telephone", "television", "tiger", "tractor", "train", "trout", "tulip", "turtle", "wardrobe", "whale",
    "willow tree", "wolf", "woman", "worm",
)

PROMPTS = {
    "cifar10": (CIFAR10_CLASSES, CIFAR_TEMPLATES),
    "cifar100": (CIFAR100_CLASSES, CIFAR_TEMPLATES),
    "imagenetv2": (tuple(IMAGENET_CLASSNAMES), tuple(OPENAI_IMAGENET_TEMPLATES)),
}


def template_texts(templates) -> list[str]:
    """Templates as strings (open_clip's ImageNet templates are lambdas), for cache keys."""
    return [t if isinstance(t, str) else t("{}") for t in templates]
