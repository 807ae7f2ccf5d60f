"""Backgrounds for the talking-head world: plain colours, gradients, and blurred crops of real photographs.

Real photographs come from the images scikit-image ships inside its wheel, so nothing is downloaded. A
background depends only on the actor and the frame size, so the renderer makes it once and reuses it.
"""
from __future__ import annotations

import functools

import numpy as np
import torch
import torch.nn.functional as F

# Images bundled with scikit-image (read from its package folder, never fetched).
TEXTURE_NAMES = ("astronaut", "coffee", "chelsea", "rocket", "coins", "brick", "grass", "gravel", "camera",
                 "moon", "hubble_deep_field", "immunohistochemistry", "page", "text", "cell", "colorwheel")


@functools.lru_cache(maxsize=1)
def texture_bank() -> tuple:
    """(name, uint8 [H, W, 3]) for each shipped image that loads; at most 512 px on the long side."""
    import skimage.data

    bank = []
    for name in TEXTURE_NAMES:
        try:
            img = np.asarray(getattr(skimage.data, name)())
        except Exception:   # an image missing from this scikit-image build is skipped, not fatal
            continue
        if img.dtype == bool:
            img = img.astype(np.uint8) * 255
        if img.ndim == 2:
            img = np.repeat(img[..., None], 3, axis=2)
        img = img[..., :3]
        step = max(1, int(np.ceil(max(img.shape[:2]) / 512)))
        bank.append((name, np.ascontiguousarray(img[::step, ::step]).astype(np.uint8)))
    return tuple(bank)


def _grid(size: int) -> tuple[torch.Tensor, torch.Tensor]:
    c = (torch.arange(size, dtype=torch.float32) + 0.5) / size * 2 - 1
    return c.view(1, size), c.view(size, 1)   # x across, y down


def background(actor, size: int) -> torch.Tensor:
    """The actor's background as float32 [3, size, size] in [0, 1]."""
    x, y = _grid(size)
    c1 = torch.tensor(actor.bg_colour, dtype=torch.float32).view(3, 1, 1)
    c2 = torch.tensor(actor.bg_colour2, dtype=torch.float32).view(3, 1, 1)
    vignette = 1.0 - 0.18 * (x ** 2 + y ** 2)
    if actor.bg_kind == 0:
        img = c1 * vignette
    elif actor.bg_kind == 1:
        a = actor.bg_angle
        s = (x * np.cos(a) + y * np.sin(a)) * 0.5 + 0.5
        img = (c1 * (1 - s) + c2 * s) * vignette
    else:
        bank = texture_bank()
        if not bank:   # no images at all: fall back to a gradient rather than failing
            return torch.lerp(c1, c2, (y * 0.5 + 0.5).expand(size, size)).clamp(0, 1)
        _, tex = bank[actor.bg_texture % len(bank)]
        h, w = tex.shape[:2]
        side = max(16, int(actor.bg_crop[2] * min(h, w)))
        y0 = int(actor.bg_crop[1] * (h - side))
        x0 = int(actor.bg_crop[0] * (w - side))
        crop = torch.from_numpy(tex[y0:y0 + side, x0:x0 + side]).permute(2, 0, 1).float().div(255)[None]
        # Shallow depth of field: downsample hard, then upsample smoothly, so the actor stays the subject.
        small = F.interpolate(crop, size=(max(4, size // 6),) * 2, mode="area")
        img = F.interpolate(small, size=(size, size), mode="bilinear", align_corners=False)[0]
        grey = img.mean(0, keepdim=True)
        img = 0.55 * img + 0.25 * grey + 0.2 * c1   # lower the saturation and pull toward a colour of the scene
        img = (0.15 + 0.75 * img) * vignette
    return img.clamp(0, 1).contiguous()
