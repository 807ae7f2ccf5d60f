"""The latent space's losses and image metrics.

- reconstruction: L1 plus (1 - SSIM). SSIM compares local means, contrasts and structure, so it punishes the blur
  that L1 alone tolerates, and it needs no feature network;
- pairwise transfer consistency (VASA-1): frames i and j of one person; the decoder of (app_j, pose_i, dyn_j) and
  of (app_i, pose_i, dyn_j) must agree. If z_dyn carried pose (or V_app carried expression), the two would differ;
- cross-identity (VASA-1): person d's motion on person s must still look like s to an identity network
  (1 - cosine of the embeddings). Without it, z_dyn learns the driver's face shape and leaks it into the result;
- weak pose supervision (optional): L1 between z_pose and the world's yaw, pitch, roll and the head's position
  and size in the image;
- weak dynamics supervision (optional): a linear read-out of z_dyn must give the world's expression factors
  (jaw, lips, smile, brows, eyelids, gaze). The mouth and eyes are a few percent of the pixels, so reconstruction
  alone gives z_dyn little reason to carry them early in training; this gives it one.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

_WINDOW: dict = {}


def _gauss(size: int = 7, sigma: float = 1.5, device=None) -> torch.Tensor:
    key = (size, sigma, str(device))
    if key not in _WINDOW:
        x = torch.arange(size, dtype=torch.float32, device=device) - size // 2
        g = torch.exp(-x ** 2 / (2 * sigma ** 2))
        g = g / g.sum()
        _WINDOW[key] = (g[:, None] * g[None, :]).view(1, 1, size, size)
    return _WINDOW[key]


def ssim(a: torch.Tensor, b: torch.Tensor, reduce: bool = True) -> torch.Tensor:
    """Structural similarity of images [N, C, H, W] in [0, 1] (Gaussian window 7 px, sigma 1.5, per channel).
    reduce=False gives one value per image."""
    c = a.shape[1]
    w = _gauss(device=a.device).expand(c, 1, -1, -1)

    def blur(x):
        return F.conv2d(x, w, groups=c)

    c1, c2 = 0.01 ** 2, 0.03 ** 2
    mu_a, mu_b = blur(a), blur(b)
    s_aa = blur(a * a) - mu_a ** 2
    s_bb = blur(b * b) - mu_b ** 2
    s_ab = blur(a * b) - mu_a * mu_b
    m = ((2 * mu_a * mu_b + c1) * (2 * s_ab + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (s_aa + s_bb + c2))
    return m.mean() if reduce else m.flatten(1).mean(1)


def psnr(a: torch.Tensor, b: torch.Tensor, reduce: bool = True) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB of images in [0, 1]; reduce=False gives one value per image."""
    mse = ((a - b) ** 2).flatten(1).mean(1).clamp(min=1e-10)
    v = 10 * torch.log10(1.0 / mse)
    return v.mean() if reduce else v


def reconstruction(pred: torch.Tensor, target: torch.Tensor, ssim_weight: float = 0.5, levels: int = 3,
                   weight: "torch.Tensor | None" = None) -> torch.Tensor:
    """L1 over an image pyramid (full, 1/2, 1/4 size) + ssim_weight * (1 - SSIM).

    A bilinear warp's gradient only sees a pixel or two; the coarse levels let a head that is 10 px off feel
    which way to move. weight [N, 1, H, W] (optional, mean about 1) counts some pixels more: the mouth and eyes."""
    w = torch.ones_like(pred[:, :1]) if weight is None else weight
    loss = ((pred - target).abs() * w).mean()
    p, t = pred, target
    for _ in range(levels - 1):
        p, t, w = F.avg_pool2d(p, 2), F.avg_pool2d(t, 2), F.avg_pool2d(w, 2)
        loss = loss + ((p - t).abs() * w).mean()
    return loss / levels + ssim_weight * (1 - ssim(pred, target))


def region_weights(boxes: torch.Tensor, size: int, extra: float, margin: float = 0.25) -> torch.Tensor:
    """Per-pixel weights [N, 1, size, size]: 1 everywhere plus `extra` inside any of the boxes [N, K, 4]
    (x0, y0, x1, y1 px, each grown by `margin` of its size), normalised to a mean of 1 per image."""
    xy = torch.arange(size, dtype=torch.float32, device=boxes.device) + 0.5
    grow = (boxes[..., 2:] - boxes[..., :2]) * margin
    lo, hi = boxes[..., :2] - grow, boxes[..., 2:] + grow                                  # [N, K, 2]
    inx = (xy[None, None, :] >= lo[..., :1]) & (xy[None, None, :] <= hi[..., :1])          # [N, K, W]
    iny = (xy[None, None, :] >= lo[..., 1:]) & (xy[None, None, :] <= hi[..., 1:])          # [N, K, H]
    inside = (iny[..., :, None] & inx[..., None, :]).any(1).float()                         # [N, H, W]
    w = 1 + extra * inside
    return (w / w.mean((1, 2), keepdim=True))[:, None]


def transfer_consistency(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """L1 between the two decodings of the same (pose_i, dyn_j) from the two appearances of one person."""
    return (a - b).abs().mean()


def cross_identity(id_net, generated: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
    """1 - cos(ID(generated), ID(source)), the identity network frozen (its gradients flow to the generator only)."""
    with torch.no_grad():
        ref = id_net.embed(source)
    return (1 - (id_net.embed(generated) * ref).sum(-1)).mean()


# Error units of z_pose's fields in the pose loss: 30 degrees, 5% of the frame, 10% of the head's size.
POSE_LOSS_UNITS = (30.0, 30.0, 30.0, 0.05, 0.05, 0.1)


def pose_supervision(z_pose: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L1 between z_pose and the world's pose (see latent.train.pose_targets), each field in its error unit."""
    units = torch.tensor(POSE_LOSS_UNITS, dtype=z_pose.dtype, device=z_pose.device)
    return ((z_pose - target) / units).abs().mean()


def dynamics_supervision(predicted: torch.Tensor, target: torch.Tensor, weight: "torch.Tensor | None" = None
                         ) -> torch.Tensor:
    """Mean squared error between the read-out of z_dyn and the world's expression factors, both as fractions of each
    factor's range (see latent.train.expression_targets). Squared, not L1: with L1 the read-out sat longer at the
    factors' medians before it started to read the face. weight: one per factor (mean 1 keeps the scale)."""
    err = (predicted - target) ** 2
    return (err * weight).mean() if weight is not None else err.mean()


def psnr_from_mse(mse: float) -> float:
    return 10 * math.log10(1.0 / max(mse, 1e-10))
