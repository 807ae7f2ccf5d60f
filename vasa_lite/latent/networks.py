"""The networks of the face latent space: four encoders, the flow generator and the decoder.

Sizes come from `LatentConfig` and the frame size S; the volume grid is vol_depth x S/4 x S/4, so the `smoke`,
`cpu` and `gpu` presets are the same code with other numbers.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from vasa_lite.latent import geometry as geo


def _conv(cin: int, cout: int, k: int = 3, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, stride, k // 2)


class ResBlock(nn.Module):
    def __init__(self, ch: int):
        super().__init__()
        self.a, self.b = _conv(ch, ch), _conv(ch, ch)

    def forward(self, x):
        return x + self.b(F.relu(self.a(F.relu(x))))


class AppearanceEncoder(nn.Module):
    """Frame -> 3D feature volume [N, C, D, S/4, S/4] in the *source's* camera space: 2D features lifted to 3D by
    reshaping channels into depth, then a 3D convolution mixes neighbouring depths (as in face-vid2vid)."""

    def __init__(self, cfg, size: int):
        super().__init__()
        w, self.C, self.D = cfg.width, cfg.vol_channels, cfg.vol_depth
        self.net = nn.Sequential(_conv(3, w // 2, stride=2), nn.ReLU(), _conv(w // 2, w), nn.ReLU(),
                                 _conv(w, 2 * w, stride=2), ResBlock(2 * w), nn.ReLU(),
                                 nn.Conv2d(2 * w, self.C * self.D, 1))
        self.refine = nn.Conv3d(self.C, self.C, 3, padding=1)

    def forward(self, x):
        f = self.net(x - 0.5)
        v = f.view(f.shape[0], self.C, self.D, f.shape[-2], f.shape[-1])
        return v + self.refine(F.relu(v))


class VectorEncoder(nn.Module):
    """Frame -> a vector: strided convolutions down to 4 x 4, then an MLP. The identity, pose and dynamics
    encoders are three of these with their own weights, so no code is shared by accident."""

    def __init__(self, cfg, size: int, out: int):
        super().__init__()
        n_down = max(1, int(math.log2(size)) - 2)           # 128 px: 5 strided convs to 4 x 4
        chans = [max(8, cfg.width // 2)] + [min(4 * cfg.width, cfg.width * 2 ** (k // 2)) for k in range(1, n_down)]
        layers, cin = [], 3
        for c in chans:
            layers += [_conv(cin, c, stride=2), nn.ReLU()]
            cin = c
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(cin * 16, 256), nn.SiLU(), nn.Linear(256, out))

    def forward(self, x):
        return self.head(self.features(x - 0.5))


class PoseEncoder(nn.Module):
    """Frame -> z_pose [N, 6]: yaw, pitch, roll (degrees), tx, ty (fractions of the frame), log_scale."""

    SCALE = (30.0, 30.0, 30.0, 0.15, 0.15, 0.2)   # output units per unit of the raw head, so raw values stay O(1)

    def __init__(self, cfg, size: int):
        super().__init__()
        self.net = VectorEncoder(cfg, size, 6)
        self.register_buffer("scale", torch.tensor(self.SCALE), persistent=False)

    def forward(self, x):
        return self.net(x) * self.scale


class FlowGenerator(nn.Module):
    """(z_dyn, z_id) -> two non-rigid offset fields in head (canonical) coordinates, each [N, 3, flow_depth, S/4,
    S/4]: G (canonical -> expressed; canonicalises a source) and H (expressed -> canonical; animates a driver).

    The fields have the volume's full resolution across the image: a mouth is only a few voxels wide, and a
    coarser field cannot open a jaw or close an eyelid, so z_dyn would carry nothing. Depth needs few slices. The
    field grows from 4 x 4 by 2D upsampling convolutions, with depth slices as channels (cheap on a CPU).
    z_id enters because the same expression moves different faces differently."""

    def __init__(self, cfg, res: int):
        super().__init__()
        self.dg = cfg.flow_depth
        n_up = max(1, int(math.log2(res // 4)))
        chans = [64] + [max(16, 64 >> (k + 1)) for k in range(n_up)]
        self.seed = nn.Linear(cfg.dyn_dim + cfg.id_dim, chans[0] * 16)
        layers = []
        for k in range(n_up):
            layers += [nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                       _conv(chans[k], chans[k + 1]), nn.ReLU()]
        self.up = nn.Sequential(*layers)
        self.out = _conv(chans[-1], 6 * self.dg)
        # start near the identity warp, but not at it: a zero layer passes no gradient back to z_dyn and z_id,
        # and Adam then turns their noise-sized updates into full steps that can leave their ReLUs dead
        nn.init.normal_(self.out.weight, std=1e-3)
        nn.init.zeros_(self.out.bias)

    def forward(self, z_dyn, z_id):
        n = z_dyn.shape[0]
        x = self.up(F.relu(self.seed(torch.cat([z_dyn, z_id], -1))).view(n, -1, 4, 4))
        g = (self.out(x) * 0.1).view(n, 2, 3, self.dg, x.shape[-2], x.shape[-1])
        return g[:, 0], g[:, 1]


class Renderer2D(nn.Module):
    """Projected volume [N, C*D, S/4, S/4] (+ the warped source pixels at half size) -> RGB and a blend mask at
    half the frame size, upsampled by the caller.

    Thin on purpose: the decoder must run at 100 frames/s at 128 px on two CPU cores. The fine detail comes from
    the source's pixels, which the decoder blends in at full size; this network only paints what they cannot
    show (disocclusions, the mouth's inside) and decides where to trust them."""

    def __init__(self, cfg):
        super().__init__()
        rw = cfg.render_width
        self.proj = nn.Conv2d(cfg.vol_channels * cfg.vol_depth, rw, 1)
        self.block = ResBlock(rw)
        self.to_half = nn.Conv2d(rw, rw // 2, 1)
        self.conv = _conv(rw // 2 + 3, rw // 2)
        self.out = _conv(rw // 2, 4)

    def forward(self, feats, warped_half):
        x = self.block(F.relu(self.proj(feats)))
        x = F.interpolate(self.to_half(F.relu(x)), scale_factor=2, mode="nearest")
        x = F.relu(self.conv(torch.cat([F.relu(x), warped_half - 0.5], 1)))
        return self.out(x)


class ExpressionRefiner(nn.Module):
    """(aligned face crop of the decoded frame, z_dyn) -> a repainted crop and where to use it.

    The volume path moves the mouth and eyelids through a flow at S/4, too coarse to open a jaw that the source
    held shut, so frames kept the source's expression. This small U-Net sees the face crop that z_pose aligns (the
    mouth and eyes always at the same pixels) and gets z_dyn as a spatial map at crop/4, so it can paint the
    mouth's inside and the eyelids exactly where they are. It also gets the source's own z_dyn (the expression the
    frame shows already), so where the two agree it learns to leave the frame alone. Its mask starts near 0: at
    first it changes nothing."""

    def __init__(self, cfg, crop: int):
        super().__init__()
        w, self.r = cfg.refiner_width, crop // 4
        self.down1, self.down2 = _conv(3, w, stride=2), _conv(w, 2 * w, stride=2)
        self.code = nn.Linear(2 * cfg.dyn_dim, 16 * self.r * self.r)
        self.mid = nn.Sequential(_conv(2 * w + 16, 2 * w), ResBlock(2 * w))
        self.up1 = _conv(2 * w + w, w)
        self.up2 = _conv(w + 3, w)
        self.out = _conv(w, 4)
        nn.init.normal_(self.out.weight, std=1e-3)
        with torch.no_grad():
            self.out.bias.copy_(torch.tensor([0.0, 0.0, 0.0, -5.0]))
        # feather the crop's border so a pasted patch has no seam: 0 at the edge, 1 inside the inner 80%
        ramp = (torch.minimum(torch.arange(crop), torch.arange(crop).flip(0)).float() / (0.1 * crop)).clamp(max=1)
        self.register_buffer("feather", (ramp[:, None] * ramp[None, :])[None, None], persistent=False)

    def forward(self, crop, z_dyn, z_dyn_source):
        n = crop.shape[0]
        a = F.relu(self.down1(crop - 0.5))
        b = F.relu(self.down2(a))
        code = self.code(torch.cat([z_dyn, z_dyn_source.expand_as(z_dyn)], 1)).view(n, 16, self.r, self.r)
        x = self.mid(torch.cat([b, code], 1))
        x = F.relu(self.up1(torch.cat([F.interpolate(F.relu(x), scale_factor=2, mode="nearest"), a], 1)))
        x = F.relu(self.up2(torch.cat([F.interpolate(x, scale_factor=2, mode="nearest"), crop - 0.5], 1)))
        out = self.out(x)
        return torch.sigmoid(out[:, :3]), torch.sigmoid(out[:, 3:4]) * self.feather
