"""A batched, truly 3D renderer for the talking-head world: analytic ray casting of ellipsoids.

Every frame is a perspective view of a head made of ellipsoids (cranium, brow ridge, cheeks, mid-face, jaw,
chin, muzzle, nose, ears, eyeballs), a neck that follows the head part of the way, a torso that only
translates, and a hair shell whose visible part is cut out by a hairline. Facial features (brows, lids,
iris, lips, mouth interior, teeth, beard, glasses) are painted procedurally in head-local coordinates, so
they turn, foreshorten and get hidden with the surface they sit on.

Why it is fast enough for a CPU:
- The camera sits at the origin, so a pixel's ray is t * e with e = (u, v, -1). For an ellipsoid, the
  discriminant and the coefficients of the ray's quadratic equation are quadratic forms in (u, v): a
  per-frame 3x3 matrix becomes a per-pixel map with two broadcast adds, with no per-pixel rotation.
- Frames of a batch are dense [N, H, W] maps; per-frame numbers broadcast as [N, 1, 1]. Masks are floats
  (clamp/lerp), because comparisons, `where` and gathers cost several times an add on a CPU.
- Screen-space culling: the image is cut into a head window and the strips around it, and each piece only
  intersects the primitives whose projected boxes reach it. Features are painted only inside their own
  windows (mouth, eyes, brows...), so most pixels run a short program.
- The nearest surface and its part id come out of one `amin` over an int32 key: the depth's bit pattern
  (positive floats sort like ints) with the part id in its lowest 5 bits.
- Normals blend the gradients of nearby ellipsoids with weights exp(-kappa * f_k), f_k the implicit
  function at the hit point: creases between primitives are smoothed, in one batched matrix product. The
  same weights give a cheap ambient-occlusion term (every crease of a union of convex solids is concave).

Anti-aliasing is analytic: each pixel knows its signed distance to every silhouette (the discriminant over
its screen gradient), so outlines get exact partial coverage; painted features use one-pixel ramps; inner
outlines (nose over cheek) take the uncovered share of a pixel from the neighbours behind the edge.

Units: head units, half the head width is about 1. Head-local axes: x to the image right of a frontal
head, y up, z out of the face. The camera frames head and shoulders; at rest the face box (brows to chin)
is about 45% of the frame height.
"""
from __future__ import annotations

import dataclasses
import json
import math
import time
from collections import OrderedDict
from typing import Iterator

import numpy as np
import torch

from vasa_lite.errors import InputError
from vasa_lite.world.actor import DEFAULT_ACTOR_SEED, Actor, sample_actor
from vasa_lite.world.params import FACTORS, FRAME_FACTOR_NAMES, check_tracks
from vasa_lite.world.textures import background

# Camera: at the origin, looking down -z. The head origin (between the eyes, inside the head) sits D0 head
# units away at rest; TAN_HALF sets the field of view (2 * atan(0.17) = 19.3 degrees).
D0 = 12.0
TAN_HALF = 0.17
HEAD_V = 0.08                         # where the head origin projects at rest (NDC, up is positive)
PIVOT_HEAD = (0.0, -0.95, -0.3)       # the head turns about the top of the spine, not about its centre
PIVOT_NECK = (0.0, -1.9, -0.35)
NECK_FOLLOW = (0.45, 0.4, 0.45)       # share of yaw, pitch, roll that the neck takes

# Part ids of the aux map. "_l"/"_r" are image left/right for a frontal head (the actor's right/left).
# Ids 1..13 are skin, so masks of painted features are cheap float ranges.
PARTS = ("background", "cranium", "brow", "cheek_l", "cheek_r", "midface", "jaw", "chin", "muzzle", "nose",
         "nose_tip", "ear_l", "ear_r", "neck", "eye_l", "eye_r", "shoulders", "chest", "hair", "glasses")
PART_ID = {p: i for i, p in enumerate(PARTS)}
_N_SOLID = PART_ID["chest"]           # ids 1.._N_SOLID are the union of solid ellipsoids
_HAIR, _GLASSES = PART_ID["hair"], PART_ID["glasses"]
_NECK = PART_ID["neck"] - 1
_HEAD_CORE = [PART_ID[p] - 1 for p in PARTS[1:13] + ("eye_l", "eye_r")]   # quadric indices of the head proper

# Painted-feature anchors, in head units (half the head width is about 1).
EYE_Y = 0.0
EYE_Z = 0.77
EYE_R = 0.235
MOUTH_Y = -0.9
JAW_DROP = 0.28                       # how far the chin moves down at jaw = 1
GLASSES_Z = 1.14
_BIG = 1.0e7                          # depth given to rays that miss
_REACH = 5.0                          # the normal blend reaches 5 crease widths out of a primitive


_MALLOC_TUNED = False


def tune_malloc() -> bool:
    """Let glibc keep freed memory instead of unmapping it (Linux only; returns whether it applied).

    The renderer allocates many short-lived, megabyte-sized tensors. With glibc's defaults they are mapped
    and unmapped again and again, and the page faults cost more than the arithmetic (about 30% of a frame
    at 128 px). Raising the mmap and trim thresholds keeps up to 256 MB of freed memory for reuse.
    """
    global _MALLOC_TUNED
    if _MALLOC_TUNED:
        return True
    try:
        import ctypes
        import ctypes.util
        import sys
        if not sys.platform.startswith("linux"):
            return False
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3
        ok = libc.mallopt(m_mmap_threshold, 64 << 20) == 1 and libc.mallopt(m_trim_threshold, 256 << 20) == 1
    except Exception:   # not glibc (musl, macOS, Windows): keep the platform's allocator as it is
        return False
    _MALLOC_TUNED = bool(ok)
    return _MALLOC_TUNED


def _f(x, device=None, dtype=torch.float32) -> torch.Tensor:
    return torch.as_tensor(x, dtype=dtype, device=device)


def _rotations(yaw, pitch, roll) -> torch.Tensor:
    """R = Rz(roll) Ry(yaw) Rx(-pitch), [N, 3, 3], angles in degrees, with the signs of params.py."""
    y, p, r = (torch.deg2rad(v) for v in (yaw, pitch, roll))
    cy, sy, cp, sp, cr, sr = y.cos(), y.sin(), p.cos(), p.sin(), r.cos(), r.sin()
    o, z = torch.ones_like(y), torch.zeros_like(y)
    rz = torch.stack([cr, -sr, z, sr, cr, z, z, z, o], -1).view(-1, 3, 3)
    ry = torch.stack([cy, z, sy, z, o, z, -sy, z, cy], -1).view(-1, 3, 3)
    rx = torch.stack([o, z, z, z, cp, sp, z, -sp, cp], -1).view(-1, 3, 3)   # Rx(-pitch): chin up is positive
    return rz @ ry @ rx


class _Batch:
    """Per-frame numbers of one batch: actor traits and tracks as [N] / [N, 3] tensors."""

    def __init__(self, traits: dict, tracks: dict):
        self.__dict__.update(traits)
        self.__dict__.update(tracks)
        self.n = next(iter(tracks.values())).shape[0]


def _col(x: torch.Tensor) -> torch.Tensor:
    """[N] -> [N, 1, 1] and [N, 3] -> [N, 3, 1, 1], to broadcast against [N, H, W] and [N, 3, H, W] maps."""
    return x.view(x.shape[0], 1, 1) if x.dim() == 1 else x.view(x.shape[0], x.shape[1], 1, 1)


def _ramp(x: torch.Tensor, inv_w) -> torch.Tensor:
    """Anti-aliased step of a signed distance: 0 below -w/2, 1 above +w/2 (w is about a pixel)."""
    return (x * inv_w).add_(0.5).clamp_(0.0, 1.0)


def _near(k: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
    """Float mask of integer-valued ids in [lo, hi], from float ids (cheaper than compare + cast)."""
    mid, half = (lo + hi) * 0.5, (hi - lo) * 0.5 + 1.0
    return (k - mid).abs_().sub_(half).neg_().clamp_(0.0, 1.0)


def _bump(d2: torch.Tensor) -> torch.Tensor:
    """A smooth bump, (1 - d2)^2 inside d2 < 1. Gaussians would underflow into slow denormals on a CPU."""
    return (1.0 - d2).clamp_(min=0.0).square_()


def _rgb(values, device) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32, device=device).view(1, 3, 1, 1)


def head_geometry(b: _Batch) -> list:
    """The solids and the hair shell: (name, frame, centre [N, 3], radii [N, 3], crease width) per entry.

    Frames: "h" head-local, "n" neck, "b" body. The crease width (head units) is how far the normal blend
    of a primitive reaches into its neighbours; 0 keeps it out of the blend.
    """
    g = lambda x: x.to(torch.float64)   # noqa: E731
    one = torch.ones_like(g(b.jaw))
    v3 = lambda x, y, z: torch.stack([x * one, y * one, z * one], -1)   # noqa: E731
    hw, hl, hd, jw = g(b.head_width), g(b.head_length), g(b.head_depth), g(b.jaw_width)
    drop = JAW_DROP * g(b.jaw)
    rnd, spread = g(b.lip_round).clamp(min=0), (-g(b.lip_round)).clamp(min=0)
    ns, nw, es = g(b.nose_size), g(b.nose_width), g(b.eye_size)
    ex = 0.385 * g(b.eye_spacing)
    ck = (0.92 + 0.16 * g(b.cheeks))[:, None]
    ch = g(b.chin)[:, None]
    lift = 0.05 * g(b.smile).clamp(min=0)          # a smile lifts the cheeks
    ear = g(b.ear_size)[:, None]
    eye = EYE_R * es[:, None]
    sw = g(b.shoulder_width)
    prims = [
        ("cranium", "h", v3(0, 0.25, -0.3), v3(hw, 1.25 * hl, 1.28 * hd), 0.10),
        ("brow", "h", v3(0, 0.38, 0.35), v3(0.8 * hw, 0.3 * hl, 0.68), 0.08),
        ("cheek_l", "h", v3(-0.45 * hw, -0.25 + lift, 0.45), v3(0.35, 0.25, 0.4) * ck, 0.10),
        ("cheek_r", "h", v3(0.45 * hw, -0.25 + lift, 0.45), v3(0.35, 0.25, 0.4) * ck, 0.10),
        ("midface", "h", v3(0, -0.45 - 0.3 * drop, 0.0), v3(0.9 * hw, 0.8 + 0.3 * drop, 0.95 * hd), 0.12),
        ("jaw", "h", v3(0, -0.85 - 0.7 * drop, -0.08 - 0.2 * drop), v3(0.8 * jw * hw, 0.65 * one, 0.95 * hd), 0.12),
        ("chin", "h", v3(0, -1.2 - drop, 0.5 - 0.28 * drop), v3(0.3, 0.28, 0.32) * ch, 0.15),
        ("muzzle", "h", v3(0, -0.82 - 0.45 * drop, 0.5 + 0.06 * rnd),
         v3(0.42 * g(b.lip_width) * (1 + 0.12 * spread - 0.18 * rnd), 0.32 + 0.5 * drop, 0.52 + 0.04 * rnd), 0.08),
        ("nose", "h", v3(0, -0.18, 0.92), v3(0.1 * nw * ns, 0.36 * ns, 0.18 * ns), 0.06),
        ("nose_tip", "h", v3(0, -0.5, 1.08 + 0.06 * (ns - 1)), v3(0.15 * nw * ns, 0.12 * ns, 0.15 * ns), 0.05),
        ("ear_l", "h", v3(-0.98 * hw, -0.1, -0.25), v3(0.1, 0.3, 0.2) * ear, 0.03),
        ("ear_r", "h", v3(0.98 * hw, -0.1, -0.25), v3(0.1, 0.3, 0.2) * ear, 0.03),
        ("neck", "n", v3(0, -1.75, -0.35), v3(0.58, 1.0, 0.6) * g(b.neck_width)[:, None], 0.10),
        ("eye_l", "h", v3(-ex, EYE_Y, EYE_Z), v3(1, 1, 1) * eye, 0.015),
        ("eye_r", "h", v3(ex, EYE_Y, EYE_Z), v3(1, 1, 1) * eye, 0.015),
        ("shoulders", "b", v3(0, -2.9, -0.5), v3(1.9 * sw, 1.05 * one, 0.9 * one), 0.12),
        ("chest", "b", v3(0, -3.65, -0.4), v3(1.5 * sw, 1.5 * one, 1.0 * one), 0.15),
    ]
    # One shell for every hair style: long hair stretches it downward, keeping its top in place.
    vol, length = g(b.hair_volume), g(b.hair_length)
    sr = 1.06 + 0.12 * vol
    ry = 1.25 * hl * sr + 0.02 + 0.75 * length
    top = 0.25 + 1.25 * hl * sr + 0.03
    prims.append(("hair", "h", torch.stack([0 * one, top - ry, -0.3 - 0.04 * vol], -1),
                  torch.stack([hw * sr + 0.02 + 0.1 * length, ry, 1.28 * hd * sr + 0.02], -1), 0.0))
    return prims


def _feature_boxes(b: _Batch) -> dict:
    """Head-local boxes (lo [N, 3], hi [N, 3]) that hold each painted feature whatever its dynamics, for
    paint windows. They must be conservative: a feature is only painted inside its window."""
    jaw = b.jaw.double()

    def box(lo, hi, lo_y=None):
        lo_t = torch.tensor(lo, dtype=torch.float64).repeat(b.n, 1)
        hi_t = torch.tensor(hi, dtype=torch.float64).repeat(b.n, 1)
        if lo_y is not None:
            lo_t[:, 1] = lo_y
        return lo_t, hi_t
    return {
        "mouth": box((-0.65, 0.0, 0.2), (0.65, -0.48, 1.3), -1.34 - 0.26 * jaw),
        "beard": box((-1.05, 0.0, -0.7), (1.05, -0.38, 1.3), -1.95 - JAW_DROP * jaw),
        "brows": box((-0.82, 0.0, 0.2), (0.82, 0.82, 1.2)),
        "cheeks": box((-1.02, -0.88, 0.0), (1.02, 0.45, 1.2)),
        "nostrils": box((-0.22, -0.72, 0.85), (0.22, -0.48, 1.35)),
        "eyes": box((-0.78, -0.32, 0.45), (0.78, 0.32, 1.12)),
        "glasses": box((-1.1, -0.32, -0.15), (1.1, 0.3, GLASSES_Z + 0.01)),
    }


class Renderer:
    """Renders frames at one size; caches rays, backgrounds and per-actor tensors between calls.

    `render(actors, tracks)` draws one frame per track entry. `render_clip(actor, tracks, batch)` yields the
    frames of a long clip of one actor in batches. Both are deterministic: the same inputs give the same
    bytes, whatever the batch size.

    device: where the maps live (CPU by default). antialias=False skips the inner-outline pass (outlines
    over the background stay analytic). tune_memory: on Linux, let glibc keep freed memory (`tune_malloc`);
    without it, page faults cost about a third of the time at 128 px.
    """

    def __init__(self, size: int = 128, device=None, antialias: bool = True, tune_memory: bool = True):
        if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or not 16 <= int(size) <= 2048:
            raise InputError(f"size must be an integer number of pixels in [16, 2048], got {size!r}; "
                             "the course uses 64, 128 or 256")
        self.size = int(size)
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.antialias = antialias
        s = self.size
        c = (torch.arange(s, dtype=torch.float32, device=self.device) + 0.5) / s * 2 - 1
        self.U = (c * TAN_HALF).view(1, 1, s)            # x across (right), one value per column
        self.V = (-c * TAN_HALF).view(1, s, 1)           # y up, one value per row
        self.UV = (self.U * self.V).contiguous()         # the one per-pixel term of the quadratic forms
        self._kid = torch.arange(1, _N_SOLID + 1, dtype=torch.int32, device=self.device)
        self._actors: "OrderedDict[tuple, tuple]" = OrderedDict()
        if tune_memory and self.device.type == "cpu":
            tune_malloc()

    # ------------------------------------------------------------------ inputs
    def _actor_entry(self, actor: Actor):
        key = (actor.seed, hash(json.dumps(dataclasses.asdict(actor), sort_keys=True, default=str)))
        hit = self._actors.get(key)
        if hit is None:
            hit = ({k: v.to(self.device) for k, v in actor.to_tensors().items()},
                   background(actor, self.size).to(self.device))
            self._actors[key] = hit
            if len(self._actors) > 256:
                self._actors.popitem(last=False)
        return hit

    def _prepare(self, actors, tracks):
        if isinstance(actors, (int, np.integer)) and not isinstance(actors, bool):
            actors = sample_actor(int(actors))
        if isinstance(actors, Actor):
            actors = [actors]
        try:
            actors = list(actors)
        except TypeError:
            actors = []
        if not actors or not all(isinstance(a, Actor) for a in actors):
            raise InputError("actors must be an Actor, a seed, or a non-empty list of Actors "
                             "(see world.actor.sample_actor)")
        if not isinstance(tracks, dict):
            raise InputError(f"tracks must be a dict of factor name -> per-frame values; accepted names: "
                             f"{list(FRAME_FACTOR_NAMES)}")
        tr = check_tracks({k: (v.detach().cpu().numpy() if torch.is_tensor(v) else v) for k, v in tracks.items()})
        n = next(iter(tr.values())).shape[0]
        if len(actors) not in (1, n):
            if n == 1:
                tr = {k: np.repeat(v, len(actors)) for k, v in tr.items()}
                n = len(actors)
            else:
                raise InputError(f"got {len(actors)} actors for {n} frames; give one actor, or one per frame")
        entries, index, uniq = [], [], {}
        for a in actors:
            e = self._actor_entry(a)
            if id(e) not in uniq:
                uniq[id(e)] = len(entries)
                entries.append(e)
            index.append(uniq[id(e)])
        idx = torch.tensor(index if len(index) == n else index * n, device=self.device)
        traits = {k: torch.stack([e[0][k] for e in entries])[idx] for k in entries[0][0]}
        bgs = torch.stack([e[1] for e in entries])
        tracks_t = {k: torch.from_numpy(np.ascontiguousarray(v)).to(self.device) for k, v in tr.items()}
        return traits, tracks_t, bgs, idx, n

    # ------------------------------------------------------------------ per-frame geometry
    def _rect(self, R, pv, T, lo, hi):
        """Per-frame pixel bounds of boxes [lo, hi]: R [N, K, 3, 3], pv [K, 3], lo/hi [N, K, 3] in each
        box's frame -> (min [N, K, 2], max [N, K, 2]) over the box corners, in (x, y) pixels."""
        sel = torch.tensor([[i, j, k] for i in (0, 1) for j in (0, 1) for k in (0, 1)], device=lo.device)
        both = torch.stack([lo, hi], -2)                                    # [N, K, 2, 3]
        corners = torch.stack([both[..., sel[:, d], d] for d in range(3)], -1)   # [N, K, 8, 3]
        pc = torch.einsum("nkij,nkcj->nkci", R, corners - pv[None, :, None]) + pv[None, :, None] + T[:, None, None]
        z = (-pc[..., 2]).clamp(min=1e-3)
        px = (pc[..., 0] / z / TAN_HALF + 1) * 0.5 * self.size
        py = (1 - pc[..., 1] / z / TAN_HALF) * 0.5 * self.size
        q = torch.stack([px, py], -1)
        return q.amin(-2), q.amax(-2)

    def _scene(self, b: _Batch) -> dict:
        """Per-frame transforms, every quadric's coefficients (float64 math, float32 out) and the batch's
        screen rectangles of primitives and painted features (for culling)."""
        d64 = torch.float64
        g = lambda x: x.to(d64)                         # noqa: E731
        dev = self.device
        n = b.n
        dist = D0 * g(b.distance)
        T = torch.stack([g(b.tx) * 2 * dist * TAN_HALF, (HEAD_V - 2 * g(b.ty)) * dist * TAN_HALF, -dist], -1)
        Rh = _rotations(g(b.yaw), g(b.pitch), g(b.roll))
        Rn = _rotations(g(b.yaw) * NECK_FOLLOW[0], g(b.pitch) * NECK_FOLLOW[1], g(b.roll) * NECK_FOLLOW[2])
        pvh, pvn = _f(PIVOT_HEAD, dev, d64), _f(PIVOT_NECK, dev, d64)
        prims = head_geometry(b)
        fidx = torch.tensor([{"h": 0, "n": 1, "b": 2}[p[1]] for p in prims], device=dev)
        Rs = torch.stack([Rh, Rn, torch.eye(3, dtype=d64, device=dev).expand(n, 3, 3)], 1)[:, fidx]   # [N, K, 3, 3]
        pvs = torch.stack([pvh, pvn, torch.zeros(3, dtype=d64, device=dev)])[fidx]                     # [K, 3]
        cl = torch.stack([p[2] for p in prims], 1)                                                     # [N, K, 3]
        rl = torch.stack([p[3] for p in prims], 1)
        c = torch.einsum("nkij,nkj->nki", Rs, cl - pvs) + pvs + T[:, None]
        A = (Rs * (1.0 / rl ** 2)[..., None, :]) @ Rs.transpose(-1, -2)
        gv = torch.einsum("nkij,nkj->nki", A, c)  # b = e . (A c)
        cc = (c * gv).sum(-1) - 1.0               # [N, K]
        P = gv[..., :, None] * gv[..., None, :] - cc[..., None, None] * A   # discriminant: e^T P e
        # Normal blend: gradient_k ~ t (A_k e) - A_k c_k, scaled by the primitive's size to about unit length.
        Ks = _N_SOLID
        scale = rl[:, :Ks].mean(-1)
        As_ = A[:, :Ks] * scale[..., None, None]
        gs_ = gv[:, :Ks] * scale[..., None]
        blend = torch.cat([As_[..., 0], As_[..., 1], As_[..., 2], gs_, torch.ones_like(scale)[..., None]], -1)
        delta = torch.tensor([p[4] for p in prims[:Ks]], dtype=d64, device=dev)
        # batch-wide pixel rectangles: of each primitive, and of each painted feature
        reach = _REACH * torch.tensor([p[4] for p in prims], dtype=d64, device=dev)[None, :, None]
        lo_p, hi_p = self._rect(Rs, pvs, T, cl - rl - reach, cl + rl + reach)                         # [N, K, 2]
        fb = _feature_boxes(b)
        flo = torch.stack([v[0] for v in fb.values()], 1).to(dev)
        fhi = torch.stack([v[1] for v in fb.values()], 1).to(dev)
        F_ = flo.shape[1]
        lo_f, hi_f = self._rect(Rh[:, None].expand(n, F_, 3, 3), pvh.expand(F_, 3), T, flo, fhi)
        rects = self._to_rects(torch.cat([lo_p, lo_f], 1), torch.cat([hi_p, hi_f], 1))
        feats = dict(zip(fb.keys(), rects[len(prims):]))
        rects = rects[:len(prims)]
        return dict(
            T=T, Rh=Rh, P=P.float(), A=A.float(), g=gv.float(), cc=cc.float(),
            neg_kappa=-(scale / (2 * delta)).float(),
            blend=blend.transpose(1, 2).float().contiguous(),              # [N, 13, Ks]
            loc_c=cl.float(), loc_r=rl.float(),
            ex=(0.385 * g(b.eye_spacing)).float(), drop=(JAW_DROP * g(b.jaw)).float(),
            # head-local ray: d_l = Rh^T e, origin o_l = pv - Rh^T (pv + T)
            o_l=(pvh - torch.einsum("nji,nj->ni", Rh, pvh + T)).float(), Rt=Rh.transpose(1, 2).float(),
            o_b=(-T).float(), rects=rects, feats=feats,
        )

    def _to_rects(self, lo: torch.Tensor, hi: torch.Tensor) -> list:
        """Union over the batch of per-frame pixel boxes [N, K, 2] -> K rects (r0, r1, c0, c1) or None."""
        sz = self.size
        lo = lo.amin(0).floor().sub(1).clamp(0, sz).long().tolist()
        hi = hi.amax(0).ceil().add(1).clamp(0, sz).long().tolist()
        return [(l[1], h[1], l[0], h[0]) if l[1] < h[1] and l[0] < h[0] else None for l, h in zip(lo, hi)]

    def _regions(self, S: dict, glasses: bool) -> list:
        """Cut the image into the head window and the strips around it; list (rect, quadric indices)."""
        s = self.size
        core = None
        for k in _HEAD_CORE:
            r = S["rects"][k]
            if r is not None:
                core = r if core is None else (min(core[0], r[0]), max(core[1], r[1]),
                                               min(core[2], r[2]), max(core[3], r[3]))
        if core is None:
            pieces = [(0, s, 0, s)]
        else:
            r0, r1, c0, c1 = core
            pieces = [core, (0, r0, 0, s), (r1, s, 0, s), (r0, r1, 0, c0), (r0, r1, c1, s)]
        out = []
        for p in pieces:
            if p[0] >= p[1] or p[2] >= p[3]:
                continue
            ks = [k for k, r in enumerate(S["rects"]) if r is not None and _overlap(r, p)]
            gl = glasses and S["feats"]["glasses"] is not None and _overlap(S["feats"]["glasses"], p)
            if ks or gl:
                out.append((p, ks, gl))
        return out

    # ------------------------------------------------------------------ per-pixel helpers
    @staticmethod
    def _qform(M: torch.Tensor, U, V, UV) -> torch.Tensor:
        """e^T M e for e = (U, V, -1): per-frame [N, K, 3, 3] -> [N, K, h, w] in two full-size passes."""
        U, V = U[None], V[None]
        m = lambda i, j: M[..., i, j][..., None, None]   # noqa: E731
        x = (m(0, 0) * U - 2 * m(0, 2)) * U + m(2, 2)
        y = (m(1, 1) * V - 2 * m(1, 2)) * V
        return torch.add(x, y).addcmul_(2 * m(0, 1), UV[None])

    @staticmethod
    def _affine(v: torch.Tensor, U, V) -> torch.Tensor:
        """v . e for e = (U, V, -1): per-frame [..., 3] -> [..., h, w]."""
        return torch.add(v[..., 0, None, None] * U - v[..., 2, None, None], v[..., 1, None, None] * V)

    # ------------------------------------------------------------------ the frame
    @torch.inference_mode()
    def _render_batch(self, b: _Batch, bg: torch.Tensor, aux: bool = False):
        S = self._scene(b)
        N, H = b.n, self.size
        out = bg.clone()
        kmap = torch.zeros(N, H, H, device=self.device)
        cmap = torch.ones(N, H, H, device=self.device)
        depth = torch.full((N, H, H), _BIG, device=self.device)
        glasses = bool((b.glasses > 0.5).any())
        for (r0, r1, c0, c1), ks, gl in self._regions(S, glasses):
            col, kf, t, fg, fc = self._region(b, S, (r0, r1, c0, c1), ks, gl, bg[:, :, r0:r1, c0:c1])
            out[:, :, r0:r1, c0:c1] = col
            kmap[:, r0:r1, c0:c1] = kf
            cmap[:, r0:r1, c0:c1] = fc
            depth[:, r0:r1, c0:c1] = torch.lerp(torch.full_like(t, _BIG), t, (fg * 1e4).clamp_(0.0, 1.0))
        if self.antialias:
            out = self._antialias(out, depth, cmap)
        out = out.clamp_(0.0, 1.0)
        if aux:
            return out, {"part": kmap.round().to(torch.uint8), "depth": depth.masked_fill(depth > 1e3, math.inf)}
        return out, None

    def _region(self, b: _Batch, S: dict, rect, ks: list, with_glasses: bool, bg):
        """Everything about one screen rectangle: intersect its primitives, shade, paint, composite."""
        r0, r1, c0, c1 = rect
        N, h, w = b.n, r1 - r0, c1 - c0
        dev = self.device
        U, V, UV = self.U[..., c0:c1], self.V[:, r0:r1], self.UV[:, r0:r1, c0:c1]
        Ks = _N_SOLID
        solids = [k for k in ks if k < Ks]
        has_hair = Ks in ks
        q = torch.tensor(solids + ([Ks] if has_hair else []), device=dev)
        ns = len(solids)
        pix = 2 * TAN_HALF * D0 * b.distance / self.size   # head units per pixel at the head's depth
        ipw = _col(1.0 / pix)

        # --- this rectangle's quadrics, [N, k, h, w]
        P = S["P"][:, q]
        disc = self._qform(P, U, V, UV)
        qa = self._qform(S["A"][:, q], U, V, UV)
        qb = self._affine(S["g"][:, q], U, V)
        # Signed distance to each silhouette in pixels: disc / |grad disc|, exact to first order. Rays that
        # miss by less than half a pixel still "hit" (at their closest approach), and the coverage
        # clamp(delta + 1/2) blends them over the background: analytic anti-aliasing of the outline.
        p_ = lambda i, j: P[..., i, j][..., None, None]   # noqa: E731
        gu = torch.add(p_(0, 0) * U - p_(0, 2), p_(0, 1) * V)
        gv = torch.add(p_(0, 1) * U - p_(1, 2), p_(1, 1) * V)
        delta = gu.square_().add_(gv.square_()).add_(1e-30).rsqrt_().mul_(disc).mul_(self.size / (4 * TAN_HALF))
        cover = (delta + 0.5).clamp_(0.0, 1.0)
        # sqrt gets a tiny positive floor: sqrt of 0 or of a negative number takes a slow path on CPUs
        sq = disc.clamp_(min=1e-20).sqrt_()
        miss = delta.neg_().sub_(0.5).clamp_(min=0.0).mul_(_BIG)   # huge depth for real misses
        t_all = (qb - sq).div_(qa).add_(miss)

        # --- nearest solid: depth bits with the part id in the low 5 bits, one amin over primitives
        if ns:
            kid = self._kid[solids].view(1, ns, 1, 1)
            key = torch.bitwise_and(t_all[:, :ns].view(torch.int32), -32).add_(kid).amin(1)
            kf = torch.bitwise_and(key, 31).float()
            t = torch.bitwise_and(key, -32).view(torch.float32)
            alpha = cover[:, :ns].amax(1)
            # coverage of the front solid alone, for inner outlines (nose over cheek, chin over neck)
            near = (t_all[:, :ns] - t[:, None]).mul_(-1e3).add_(1.0).clamp_(0.0, 1.0)
            front_cov = near.mul_(cover[:, :ns]).amax(1)
        else:
            kf = torch.zeros(N, h, w, device=dev)
            t = torch.full((N, h, w), _BIG, device=dev)
            alpha = torch.zeros(N, h, w, device=dev)
            front_cov = torch.ones(N, h, w, device=dev)

        Rt, ol = S["Rt"], S["o_l"]
        dl = [self._affine(Rt[:, i], U, V) for i in range(3)]   # head-local ray directions
        olc = [_col(ol[:, i]) for i in range(3)]

        # --- hair shell: its entry point if that lies on hair, else its exit point (hair seen from inside).
        # The hairline is a hard cut for depth and part ids, and a one-pixel ramp for colour (hair_cov).
        hair_m = hair_in = hair_cov = None
        if has_hair:
            j = ns
            te = t_all[:, j]
            tx = (qb[:, j] + sq[:, j]).div_(qa[:, j]).add_(miss[:, j])
            cz, rz = _col(S["loc_c"][:, Ks, 2]), _col(S["loc_r"][:, Ks, 2])
            d_e = self._hairline(b, [olc[i] + te * dl[i] for i in range(3)], cz, rz)
            d_x = self._hairline(b, [olc[i] + tx * dl[i] for i in range(3)], cz, rz)
            m_e, m_x = (d_e * 1e4).clamp_(0.0, 1.0), (d_x * 1e4).clamp_(0.0, 1.0)
            t_h = torch.lerp(torch.lerp(torch.full_like(t, _BIG), tx, m_x), te, m_e)
            hair_m = (t - t_h).mul_(1e4).clamp_(0.0, 1.0)   # 1 where hair is in front of the solids
            front_e = (t - te).mul_(1e4).clamp_(0.0, 1.0)
            soft_e = self._edge_ramp(d_e)
            hair_in = hair_m * (1.0 - m_e)                  # hair seen from inside: darker, normal flipped
            hair_cov = torch.maximum(hair_in, torch.lerp(hair_m, soft_e, front_e))
            inside_soft = hair_m * (1.0 - soft_e)           # the same, with an anti-aliased edge, for shading
            t = torch.lerp(t, t_h, hair_m)
            kf = torch.lerp(kf, torch.full_like(kf, float(_HAIR)), hair_m)
            alpha = torch.maximum(alpha, cover[:, j] * torch.maximum(m_e, m_x))
            front_cov = torch.lerp(front_cov, cover[:, j], hair_m)

        alpha = alpha * (1e3 - t).clamp_(0.0, 1.0)
        kf = kf * (alpha * 1e4).clamp_(0.0, 1.0)
        x, y, z = (olc[i] + t * dl[i] for i in range(3))    # head-local hit point

        # --- normals: blend of solid gradients (camera space); the hair shell replaces them on hair
        tb = t.clamp(max=1e3)
        if ns:
            t4 = tb[:, None]
            f = (qa[:, :ns] * t4).sub_(qb[:, :ns], alpha=2.0).mul_(t4).add_(S["cc"][:, solids, None, None])
            # weights exp(-d / crease) for a point d outside a primitive, cut to exactly 0 at d = 5 creases,
            # so that culling a primitive whose (widened) box misses the rectangle changes nothing
            wgt = f.mul_(S["neg_kappa"][:, solids, None, None]).clamp_(-_REACH, 0.0).exp_().sub_(math.exp(-_REACH))
            if _NECK in solids:   # the neck bends only its own normals: under the jaw stays in shadow
                wgt[:, solids.index(_NECK)] *= _near(kf, PART_ID["neck"], PART_ID["neck"])
            sums = torch.bmm(S["blend"][:, :, solids], wgt.view(N, ns, h * w)).view(N, 13, h, w)
            nrm = [(sums[:, i] * U).addcmul_(sums[:, 3 + i], V).sub_(sums[:, 6 + i]).mul_(tb).sub_(sums[:, 9 + i])
                   for i in range(3)]
            ao = (sums[:, 12] * (1.0 / (1.0 - math.exp(-_REACH))) - 1.0).clamp_(0.0, 1.0).mul_(-0.15).add_(1.0)
        else:
            nrm = [torch.zeros_like(tb) for _ in range(3)]
            ao = torch.ones_like(tb)
        if has_hair:
            flip = 1.0 - 2.0 * hair_in
            A_h, g_h = S["A"][:, Ks], S["g"][:, Ks]
            for i in range(3):
                nh = (self._affine(A_h[:, i], U, V) * tb).sub_(_col(g_h[:, i])).mul_(flip)
                nrm[i] = torch.lerp(nrm[i], nh, hair_cov)
            ao = torch.lerp(ao, 1.0 - 0.5 * inside_soft, hair_cov)
        inv = (nrm[0] * nrm[0]).addcmul_(nrm[1], nrm[1]).addcmul_(nrm[2], nrm[2]).add_(1e-12).rsqrt_()
        nrm = [v.mul_(inv) for v in nrm]

        # --- albedo and specular strength, painted in head-local coordinates inside feature windows
        m = dict(x=x, y=y, z=z, kf=kf, t=t, U=U.expand(N, h, w), V=V.expand(N, h, w))
        alb, spec, sharp = self._paint(b, S, rect, m, ipw, solids, hair_cov)

        # --- shading: wrapped Lambert, hemisphere ambient, Blinn-Phong (two exponents: skin and eyes)
        L = b.light_dir / b.light_dir.norm(dim=-1, keepdim=True)
        Hv = L + torch.tensor([0.0, 0.0, 1.0], device=dev)
        Hv = Hv / Hv.norm(dim=-1, keepdim=True)
        col = self._shade(b, nrm, ao, alb, spec, sharp, L, Hv)

        # --- glasses: a frame in a head-local plane in front of the eyes, blended by its own coverage
        if with_glasses:
            col, on = self._glasses(b, S, dl, olc, t, ipw, col, L, Hv)
            kf = torch.lerp(kf, torch.full_like(kf, float(_GLASSES)), (on * 1e4 - 5e3).clamp_(0.0, 1.0))
            alpha = torch.maximum(alpha, on)
        return torch.lerp(bg, col, alpha[:, None]), kf, t, alpha, front_cov

    @staticmethod
    def _edge_ramp(d: torch.Tensor) -> torch.Tensor:
        """One-pixel anti-aliased step of a signed field d, using its screen-space gradient (from the larger
        of the forward and backward differences), so that steep and shallow edges are both one pixel wide."""
        gx = torch.zeros_like(d)
        gy = torch.zeros_like(d)
        dx = (d[:, :, 1:] - d[:, :, :-1]).abs_()
        dy = (d[:, 1:] - d[:, :-1]).abs_()
        gx[:, :, 1:] = dx
        gx[:, :, :-1] = torch.maximum(gx[:, :, :-1], dx)
        gy[:, 1:] = dy
        gy[:, :-1] = torch.maximum(gy[:, :-1], dy)
        g = gx.add_(gy).clamp_(min=1e-6)
        return (d / g).add_(0.5).clamp_(0.0, 1.0)

    def _shade(self, b, nrm, ao, alb, spec, sharp, L, Hv):
        ndl = (nrm[0] * _col(L[:, 0])).addcmul_(nrm[1], _col(L[:, 1])).addcmul_(nrm[2], _col(L[:, 2]))
        diff = ndl.add_(0.25).mul_(1 / 1.25).clamp_(min=0.0)
        ndh = (nrm[0] * _col(Hv[:, 0])).addcmul_(nrm[1], _col(Hv[:, 1])).addcmul_(nrm[2], _col(Hv[:, 2]))
        s = ndh.clamp_(min=0.0)
        s = s * s
        s = s * s
        s8 = s * s
        s32 = (s8 * s8).mul_(s8).mul_(s8)                   # exponent 32
        if sharp is not None:                               # exponent 128: the wet catch-lights of eyes
            s128 = (s32 * s32).square_()
            s32 = torch.lerp(s32, s128, sharp)
        hl = s32.mul_(spec)
        amb = (nrm[1] * 0.2 + 0.8).mul_(ao).mul_(_col(b.ambient))
        direct = diff.mul_(ao).mul_(_col(1.05 - 0.5 * b.ambient))
        light = _col(b.light_colour)
        return alb * (amb[:, None] + direct[:, None] * light) + hl[:, None] * light

    # ------------------------------------------------------------------ hair
    def _hairline(self, b: _Batch, p, cz, rz) -> torch.Tensor:
        """Signed height (head units) of a shell point above the hairline; hair where it is positive.

        The hairline is high on the forehead, above the ears at the sides for short hair and down to the
        nape at the back; length lowers sides and back together, fringe lowers the front."""
        x, y, z = p
        uz = (z - cz) / rz
        L = _col(b.hair_length)
        fringe = _col(b.fringe)
        # without a fringe the hairline arches up over the forehead; a fringe cuts straight, swept to a side
        arch = 0.14 * (1 - fringe) * (1 - (x * 1.25) ** 2).clamp_(min=0.0)
        front = 0.78 - 0.36 * fringe + arch + 0.5 * _col(b.bald) + (0.05 + 0.12 * fringe) * _col(b.hair_part) * x
        side = 0.22 - 2.7 * L
        back = -0.75 - 1.7 * L
        h = side + (back - side) * (uz * (-1 / 0.6)).clamp_(0.0, 1.0)
        h = h + (front - h) * (uz - 0.3).mul_(1 / 0.25).clamp_(0.0, 1.0)
        return (y - h).sub_(_col((b.bald >= 0.85).float() * 100.0))

    # ------------------------------------------------------------------ glasses
    def _glasses(self, b, S, dl, olc, t, ipw, col, L, Hv):
        """Frames in the plane z = GLASSES_Z (head-local), composited over the shaded image with their
        anti-aliased coverage; lenses add a faint reflection. Returns (colour, frame coverage)."""
        dz = dl[2]
        tg = (GLASSES_Z - olc[2]) / dz
        gx = olc[0] + tg * dl[0]
        gy = olc[1] + tg * dl[1]
        ex = _col(S["ex"])
        rx, ry = 0.25, 0.19
        dx = (gx.abs() - ex) * (1 / rx)
        dy = (gy - (EYE_Y - 0.02)) * (1 / ry)
        qx, qy = dx * dx, dy * dy
        q = torch.lerp(torch.sqrt(qx + qy), (qx * qx + qy * qy).sqrt_().sqrt_(), _col(b.glasses_shape))
        on = _col((b.glasses > 0.5).float())
        front = (t - tg).mul_(1e4).clamp_(0.0, 1.0) * on     # the plane is in front of what the ray hit
        ring = _ramp(0.045 - (q - 1).abs_() * rx, ipw)
        bridge = _ramp(0.022 - (gy - 0.07).abs(), ipw) * _ramp(ex - rx - gx.abs() + 0.03, ipw)
        frame = torch.maximum(ring, bridge).mul_(front)
        lens = _ramp((1 - q) * rx, ipw).mul_(front).mul_(1 - frame)
        # temple arms: strips in two slanted planes, from the outer rims back to the ears
        c = ex + rx + 0.25 * GLASSES_Z
        for side in (1.0, -1.0):
            ta = (c - (side * olc[0] + 0.25 * olc[2])) / (side * dl[0] + 0.25 * dz)
            ya = olc[1] + ta * dl[1]
            za = olc[2] + ta * dz
            arm = _ramp(0.02 - (ya - 0.05).abs(), ipw) * _ramp(GLASSES_Z - za, ipw) * _ramp(za + 0.1, ipw)
            arm = arm.mul_((t - ta).mul_(1e4).clamp_(0.0, 1.0)).mul_(on)
            frame = torch.maximum(frame, arm)
        # frames face the camera roughly as the head does: shade them with the head's forward axis
        fwd = S["Rh"][:, :, 2].float()
        ndl = ((fwd * L).sum(-1) * 0.8 + 0.2).clamp(min=0.0)
        ndh = (fwd * Hv).sum(-1).clamp(min=0.0) ** 40
        gcol = _col(b.glasses_colour * (b.ambient + ndl)[:, None] + 0.25 * ndh[:, None])
        col = torch.lerp(col, 0.75 + 0.2 * _col(b.glasses_colour), (lens * 0.15)[:, None])
        return torch.lerp(col, gcol, frame[:, None]), frame

    # ------------------------------------------------------------------ painting
    def _window(self, S: dict, rect, name) -> "tuple | None":
        """Slices, relative to `rect`, of the part of a feature's rectangle inside it."""
        f = S["feats"][name] if isinstance(name, str) else name
        if f is None:
            return None
        r0, r1, c0, c1 = max(f[0], rect[0]), min(f[1], rect[1]), max(f[2], rect[2]), min(f[3], rect[3])
        if r0 >= r1 or c0 >= c1:
            return None
        return slice(r0 - rect[0], r1 - rect[0]), slice(c0 - rect[2], c1 - rect[2])

    def _paint(self, b: _Batch, S: dict, rect, m: dict, ipw, solids: list, hair_m):
        kf = m["kf"]
        N, h, w = kf.shape
        dev = self.device
        alb = _col(b.skin).expand(N, 3, h, w).clone()
        spec = torch.full((N, h, w), 0.12, device=dev)
        sharp = None
        z = m["z"]
        m["face"] = _near(kf, 1, PART_ID["ear_r"]) * z.clamp(0.0, 0.05) * 20.0   # front of the head skin

        def run(name, painter):
            win = self._window(S, rect, name)
            if win is not None:
                rs, cs = win
                sub = {k: v[:, rs, cs] for k, v in m.items()}
                a, s = painter(b, S, alb[:, :, rs, cs], spec[:, rs, cs], sub, ipw)
                alb[:, :, rs, cs] = a
                spec[:, rs, cs] = s

        present = set(solids)
        face = any(k in present for k in range(PART_ID["ear_r"]))
        if face:
            run("cheeks", self._cheeks)
            run("brows", self._brows)
            run("mouth", self._mouth)
            if bool((b.beard > 0).any() or (b.moustache > 0).any()):
                run("beard", self._beard)
            run("nostrils", self._nostrils)
        for k in (PART_ID["ear_l"] - 1, PART_ID["ear_r"] - 1):
            if k in present:
                run(S["rects"][k], self._ears)
        if PART_ID["neck"] - 1 in present:
            run(S["rects"][PART_ID["neck"] - 1], self._neck)
        if PART_ID["eye_l"] - 1 in present or PART_ID["eye_r"] - 1 in present:
            win = self._window(S, rect, "eyes")
            if win is not None:
                sharp = torch.zeros_like(spec)
                rs, cs = win
                sub = {k: v[:, rs, cs] for k, v in m.items()}
                a, s, sh = self._eyes(b, S, alb[:, :, rs, cs], spec[:, rs, cs], sub, ipw)
                alb[:, :, rs, cs] = a
                spec[:, rs, cs] = s
                sharp[:, rs, cs] = sh
        if hair_m is not None:
            m["hair"] = hair_m
            run(S["rects"][_N_SOLID], self._hair)
        body = [k for k in (PART_ID["shoulders"] - 1, PART_ID["chest"] - 1) if k in present]
        if body:
            rb = [S["rects"][k] for k in body]
            run((min(r[0] for r in rb), max(r[1] for r in rb), min(r[2] for r in rb), max(r[3] for r in rb)),
                self._clothes)
        m.pop("hair", None)
        return alb, spec, sharp

    def _cheeks(self, b, S, alb, spec, m, ipw):
        """Blush on the cheeks and a soft darkening of the eye sockets."""
        x, y, face = m["x"], m["y"], m["face"]
        ax = x.abs()
        skin = _col(b.skin)
        blush = _bump((ax - 0.5) ** 2 * 5 + (y + 0.42) ** 2 * 7) * (face * _col(b.blush) * 0.3)
        alb = torch.lerp(alb, skin * _rgb([1.0, 0.6, 0.6], self.device), blush[:, None])
        socket = _bump((ax - _col(S["ex"])) ** 2 * 8 + (y - EYE_Y - 0.12) ** 2 * 14) * (face * 0.08)
        return alb * (1 - socket[:, None]), spec

    def _brows(self, b, S, alb, spec, m, ipw):
        x, y, mask = m["x"], m["y"], m["face"]
        ax = x.abs()
        fur, rai = _col(b.brow_furrow), _col(b.brow_raise)
        xi = 0.1 - 0.05 * fur                              # a furrow draws the inner ends together...
        xo = 0.66
        s = (ax - xi) / (xo - xi)
        sc = s.clamp(0, 1)
        arch = _col(b.brow_arch)
        yb = (EYE_Y + 0.35 + rai * 0.17 - fur * 0.12 * (1 - sc)    # ...and pulls them down at the inside
              + (0.03 + 0.06 * arch) * 4 * sc * (1 - sc) - _col(b.brow_tilt) * 0.04 * (sc - 0.5)
              + 0.03 * rai * (1 - sc))
        th = _col(b.brow_thickness) * 0.042 * (1.15 - 0.55 * sc) * (1 + 0.15 * fur)
        span = xo - xi
        mb = _ramp(th - (y - yb).abs(), ipw) * _ramp(s * span, ipw) * _ramp((1 - s) * span, ipw)
        # vertical furrow lines between the brows
        wr = _ramp(0.012 - (ax - 0.05).abs(), ipw) * _ramp(0.1 - (y - EYE_Y - 0.27).abs(), ipw) * (fur * 0.3)
        alb = alb * (1 - (wr * mask)[:, None])
        return torch.lerp(alb, _col(b.brow_colour).expand_as(alb), (mb * mask * 0.92)[:, None]), spec

    def _mouth_shape(self, b, x):
        """Lip lines of the mouth at head-local x: y of the mouth line, the opening edges and lip edges."""
        jaw, rnd_s, close, smile = _col(b.jaw), _col(b.lip_round), _col(b.lip_close), _col(b.smile)
        rnd, spr = rnd_s.clamp(min=0), (-rnd_s).clamp(min=0)
        # rounding narrows the mouth and opens a small 'o'; spreading and smiling widen it
        mw = 0.35 * _col(b.lip_width) * (1 + 0.18 * spr - 0.42 * rnd + 0.15 * smile.clamp(min=0))
        xn = x / mw
        inside = (1 - xn * xn).clamp_(min=0.0)
        prof = inside.sqrt()
        prof_open = torch.lerp(inside, prof, 0.3 + 0.7 * rnd)
        gap = (0.30 * jaw + 0.09 * rnd * (1 - jaw)) * (1 - close)          # lip closure presses the gap shut
        # corners up (smile) or down (frown), around a faint resting upturn
        y0 = MOUTH_Y + (smile * 0.14 + 0.015) * (xn * xn).clamp_(max=1.2)
        yu = y0 + 0.22 * gap * prof_open
        yl = y0 - 0.78 * gap * prof_open
        thick = _col(b.lip_thickness) * (1 - 0.45 * close) * (1 + 0.25 * rnd)
        bow = 1 - 0.35 * _bump(x * x * 110)                                 # the cupid's bow
        ytop = yu + (0.068 * thick) * prof * bow + 0.004
        ybot = yl - (0.092 * thick) * prof - 0.004
        return mw, xn, y0, yu, yl, ytop, ybot

    def _mouth(self, b, S, alb, spec, m, ipw):
        dev = self.device
        x, y, mask = m["x"], m["y"], m["face"]
        jaw, close = _col(b.jaw), _col(b.lip_close)
        mw, xn, y0, yu, yl, ytop, ybot = self._mouth_shape(b, x)
        side = _ramp((1 - xn.abs()) * mw, ipw)
        lips = _ramp(ytop - y, ipw) * _ramp(y - ybot, ipw) * side * mask
        interior = _ramp(yu - y, ipw) * _ramp(y - yl, ipw) * side * mask
        lip_col = _col(b.lip_colour) * (1 + 0.25 * ((y - ybot) / (ytop - ybot + 1e-3) - 0.5).abs()[:, None])
        alb = torch.lerp(alb, lip_col, lips[:, None])
        spec = spec + lips * 0.15
        # mouth interior: dark, upper teeth under the upper lip, tongue at the bottom
        teeth_h = (0.07 * jaw).clamp(max=0.06)
        teeth = _ramp(y - (yu - teeth_h), ipw) * _ramp((0.75 - xn.abs()) * mw, ipw)
        tongue = _ramp((yl + 0.3 * (yu - yl)) - y, ipw) * 0.6
        inner = torch.lerp(_rgb([0.05, 0.012, 0.018], dev), _rgb([0.36, 0.11, 0.11], dev), tongue[:, None])
        inner = torch.lerp(inner, _rgb([0.86, 0.84, 0.78], dev), teeth[:, None])
        alb = torch.lerp(alb, inner, interior[:, None])
        spec = spec * (1 - interior * (1 - teeth))
        # the line between the lips: always drawn, so that a closed mouth still reads at 64 px
        lw = 0.011 + 0.007 * close
        line = _ramp(lw - (y - y0).abs(), ipw) * _ramp((1 - xn.abs()) * mw + 0.01, ipw) * mask
        alb = alb * (1 - (line * (0.6 + 0.3 * close))[:, None])
        return alb, spec

    def _beard(self, b, S, alb, spec, m, ipw):
        x, y, mask = m["x"], m["y"], _near(m["kf"], 1, PART_ID["ear_r"])
        ax = x.abs()
        mw, xn, y0, yu, yl, ytop, ybot = self._mouth_shape(b, x)
        yj = y + _col(S["drop"]) * ((MOUTH_Y - y) * 4).clamp(0, 1)      # the beard moves down with the jaw
        region = _ramp((MOUTH_Y + 0.32 - 0.5 * ax * ax) - y, ipw) * _ramp(0.97 - ax, ipw)
        mouth = _ramp(ytop + 0.01 - y, ipw) * _ramp(y - ybot + 0.01, ipw) * _ramp((1.02 - xn.abs()) * mw, ipw)
        bd = region * _col(b.beard) * (1 - mouth)
        mo = _ramp(0.06 - (y - ytop - 0.035).abs(), ipw) * _ramp(mw + 0.06 - ax, ipw) * _col(b.moustache)
        fine = ((ipw - 20.0) * 0.05).clamp(0, 1)                       # stubble texture only when resolvable
        grain = 1 + fine * 0.15 * torch.sin(x * 90.0 + yj * 40.0) * torch.sin(yj * 80.0 - x * 30.0)
        bd = torch.maximum(bd, mo) * mask * grain
        alb = torch.lerp(alb, _col(b.hair_colour) * 0.9, (bd * 0.9).clamp(0, 1)[:, None])
        return alb, spec

    def _nostrils(self, b, S, alb, spec, m, ipw):
        x, y = m["x"], m["y"]
        d = ((x.abs() - 0.075 * _col(b.nose_width)) * (1 / 0.045)) ** 2 + ((y + 0.6) * (1 / 0.028)) ** 2
        nos = _ramp(1 - d, ipw * 0.08) * _near(m["kf"], PART_ID["nose_tip"], PART_ID["nose_tip"]) * 0.8
        return alb * (1 - nos[:, None]), spec

    def _ears(self, b, S, alb, spec, m, ipw):
        x, y = m["x"], m["y"]
        ear = _near(m["kf"], PART_ID["ear_l"], PART_ID["ear_r"])
        d = ((x.abs() - 0.98 * _col(b.head_width)) * (1 / 0.06)) ** 2 + ((y + 0.12) * (1 / 0.2)) ** 2
        return alb * (1 - (ear * _bump(d) * 0.3)[:, None]), spec

    def _neck(self, b, S, alb, spec, m, ipw):
        """The chin's shadow on the neck."""
        neck = _near(m["kf"], PART_ID["neck"], PART_ID["neck"])
        return alb * (1 - (((m["y"] + 1.95) * 2.5).clamp_(0, 1) * neck * 0.4)[:, None]), spec

    def _eyes(self, b, S, alb, spec, m, ipw):
        dev = self.device
        x, y, z = m["x"], m["y"], m["z"]
        eye_m = _near(m["kf"], PART_ID["eye_l"], PART_ID["eye_r"])
        r = EYE_R * _col(b.eye_size)
        ir = 1.0 / r
        qx = (x.abs() - _col(S["ex"])) * ir * torch.sign(x)   # eyeball coordinates, head-fixed, unit radius
        qy = (y - EYE_Y) * ir
        qz = (z - EYE_Z) * ir
        ipq = ipw * r                                      # one pixel in eyeball units
        blink, squint = _col(b.blink), _col(b.squint)
        gy, gp = torch.deg2rad(_col(b.gaze_yaw)), torch.deg2rad(_col(b.gaze_pitch))
        lift = gp.sin()                                    # the lids follow the eye up and down, as real lids do
        low = -0.42 + 0.38 * squint + 0.08 * blink + 0.25 * lift
        up0 = 0.52 - 0.18 * squint + 0.45 * lift
        up = up0 + (low - up0) * blink                     # blink = 1: the upper lid meets the lower one
        yU = up - 0.5 * qx * qx
        yL = low + 0.32 * qx * qx
        opening = _ramp(yU - qy, ipq) * _ramp(qy - yL, ipq)
        # the iris is a cap around the gaze direction, which turns the eyeball, not the lids
        cg = qx * (gy.sin() * gp.cos()) + qy * gp.sin() + qz * (gy.cos() * gp.cos())
        ci, cp = math.cos(0.6), math.cos(0.26)
        gw = ipq * 0.6
        iris = _ramp(cg - ci, gw)
        pupil = _ramp(cg - cp, gw)
        rim = ((cg - ci) * (3 / (1 - ci))).clamp_(0, 1)
        icol = _col(b.iris_colour) * (0.5 + 0.8 * rim)[:, None]
        sclera = _rgb([0.96, 0.94, 0.9], dev) * (1 - 0.3 * (qx * qx).clamp(0, 1))[:, None]
        eye_col = torch.lerp(sclera, icol, iris[:, None]) * (1 - 0.92 * pupil)[:, None]
        lash = _ramp(qy - yU + 0.02, ipq) * _ramp(yU + 0.14 - qy, ipq) * _ramp(1.0 - qx.abs(), ipq)
        lash_low = _ramp(yL + 0.01 - qy, ipq) * _ramp(qy - yL + 0.05, ipq) * 0.35
        col = torch.lerp(_col(b.skin) * 0.93, eye_col, opening[:, None])
        col = col * (1 - 0.85 * torch.maximum(lash, lash_low))[:, None]
        alb = torch.lerp(alb, col, eye_m[:, None])
        spec = torch.lerp(spec, 0.9 * opening + 0.1, eye_m)
        return alb, spec, eye_m * opening

    def _hair(self, b, S, alb, spec, m, ipw):
        x, y, z, hair_m = m["x"], m["y"], m["z"], m["hair"]
        cx, cz = _col(S["loc_c"][:, _N_SOLID, 0]), _col(S["loc_c"][:, _N_SOLID, 2])
        # Strands run down from the crown: waves across the azimuth whose phase drifts with height, so they
        # read as locks rather than stripes; faded out where a pixel cannot hold them.
        phi = torch.atan2(x - cx, z - cz)
        fine = ((ipw - 12.0) * 0.05).clamp(0, 1)
        ph = _col(b.hair_part) * 3.0
        wave = torch.sin(phi * 23.0 + y * 3.0 + ph).mul_(0.6).add_(torch.sin(phi * 57.0 - y * 5.0 - ph), alpha=0.4)
        wave = wave * fine
        # darker towards the ends and at the roots along the hairline, lighter on top
        shade = 1.0 + 0.12 * wave - 0.1 * (0.9 - y).clamp(0, 2)
        alb = torch.lerp(alb, _col(b.hair_colour) * shade[:, None], hair_m[:, None])
        spec = torch.lerp(spec, 0.12 + 0.05 * wave, hair_m)
        return alb, spec

    def _clothes(self, b, S, alb, spec, m, ipw):
        body_m = _near(m["kf"], PART_ID["shoulders"], PART_ID["chest"])
        ob = S["o_b"]
        t = m["t"]
        bx = t * m["U"] + _col(ob[:, 0])
        by = t * m["V"] + _col(ob[:, 1])
        ax = bx.abs()
        nl = _col(b.neckline)
        depth = 0.2 + 0.45 * nl
        wid = 0.6 + 0.25 * nl
        neck_line = -2.05 - depth * (1 - (ax / wid) ** 2).clamp(min=0)
        skin_area = _ramp(by - neck_line, ipw) * _ramp(wid - ax, ipw)
        cloth = _col(b.cloth_colour)
        if bool((b.stripes > 0).any()):
            stripes = _ramp(torch.sin(by * 9.0), ipw * 0.111) * _col(b.stripes)
            cloth = torch.lerp(cloth, _col(b.cloth_colour2), stripes[:, None])
        col = torch.lerp(cloth, _col(b.skin), skin_area[:, None])
        alb = torch.lerp(alb, col, body_m[:, None])
        spec = torch.lerp(spec, 0.04 + 0.08 * skin_area, body_m)
        return alb, spec

    # ------------------------------------------------------------------ anti-aliasing
    def _antialias(self, img: torch.Tensor, depth: torch.Tensor, cover: torch.Tensor) -> torch.Tensor:
        """Inner outlines (nose over cheek, face over hair, chin over neck): a pixel that its front surface
        covers only partly (analytic coverage < 1) takes the rest of its colour from the neighbours that
        lie behind it, which show the surface behind the edge. Outlines over the background are done."""
        acc = torch.zeros_like(img)
        cnt = torch.zeros_like(depth)
        for dst, src in (((slice(None), slice(1, None)), (slice(None), slice(None, -1))),
                         ((slice(None), slice(None, -1)), (slice(None), slice(1, None))),
                         ((slice(1, None), slice(None)), (slice(None, -1), slice(None))),
                         ((slice(None, -1), slice(None)), (slice(1, None), slice(None)))):
            d_src = depth[:, src[0], src[1]]
            behind = (d_src - depth[:, dst[0], dst[1]]).sub_(0.04).mul_(25.0).clamp_(0.0, 1.0)
            wgt = behind.mul_((1e3 - d_src).clamp_(0.0, 1.0))      # ...and not the background
            cnt[:, dst[0], dst[1]] += wgt
            acc[:, :, dst[0], dst[1]] += img[:, :, src[0], src[1]] * wgt[:, None]
        has = cnt.clamp(0.0, 1.0)
        nb = acc.div_(cnt.clamp(min=1e-6)[:, None])
        return img.lerp_(nb, ((1.0 - cover) * has)[:, None])

    # ------------------------------------------------------------------ public
    def render(self, actors, tracks: dict, return_aux: bool = False, batch: "int | None" = None):
        """Frames [N, 3, H, W] float32 in [0, 1]; with return_aux also {"part": uint8 [N, H, W] (ids of
        PARTS), "depth": float32 [N, H, W] (camera z distance, inf on the background)}."""
        bs = self._check_batch(batch)
        if isinstance(tracks, dict) and tracks and all(np.size(v) == 0 for v in tracks.values()):
            empty = torch.zeros(0, 3, self.size, self.size, device=self.device)   # a clip of no frames
            return (empty, {"part": empty[:, 0].to(torch.uint8), "depth": empty[:, 0]}) if return_aux else empty
        traits, tr, bgs, idx, n = self._prepare(actors, tracks)
        outs, auxs = [], []
        for s in range(0, n, bs):
            sl = slice(s, min(n, s + bs))
            bb = _Batch({k: v[sl] for k, v in traits.items()}, {k: v[sl] for k, v in tr.items()})
            img, ax = self._render_batch(bb, bgs[idx[sl]], aux=return_aux)
            outs.append(img)
            auxs.append(ax)
        out = torch.cat(outs) if len(outs) > 1 else outs[0]
        if return_aux:
            return out, {k: torch.cat([a[k] for a in auxs]) for k in auxs[0]}
        return out

    def _check_batch(self, batch) -> int:
        if batch is None:
            return max(1, (1 << 18) // (self.size * self.size))   # about 262k pixels per batch
        if isinstance(batch, bool) or not isinstance(batch, (int, np.integer)) or batch < 1:
            raise InputError(f"batch must be a positive integer number of frames, got {batch!r}")
        return int(batch)

    def render_clip(self, actor: Actor, tracks: dict, batch: "int | None" = None) -> Iterator[torch.Tensor]:
        """Yield [B, 3, H, W] batches of one actor's clip, in order (the last batch may be shorter)."""
        if not isinstance(actor, Actor):
            raise InputError("render_clip takes one Actor; for frames of different actors use render()")
        if not isinstance(tracks, dict):
            raise InputError(f"tracks must be a dict of factor name -> per-frame values; accepted names: "
                             f"{list(FRAME_FACTOR_NAMES)}")
        tr = check_tracks({k: (v.detach().cpu().numpy() if torch.is_tensor(v) else v) for k, v in tracks.items()})
        n = next(iter(tr.values())).shape[0]
        bs = self._check_batch(batch)
        for s in range(0, n, bs):
            yield self.render(actor, {k: v[s:s + bs] for k, v in tr.items()}, batch=bs)

    def landmarks(self, actors, tracks: dict) -> dict:
        """See the module-level `landmarks`."""
        return _landmarks(self, actors, tracks)


def _overlap(a, b) -> bool:
    return a[0] < b[1] and b[0] < a[1] and a[2] < b[3] and b[2] < a[3]


# ---------------------------------------------------------------------- landmarks
def _landmarks(r: Renderer, actors, tracks) -> dict:
    traits, tr, _, _, n = r._prepare(actors, tracks)
    b = _Batch({k: v.double() for k, v in traits.items()}, {k: v.double() for k, v in tr.items()})
    prims = {p[0]: p for p in head_geometry(b)}
    S = r._scene(b)
    Rh, T = S["Rh"], S["T"]
    pv = _f(PIVOT_HEAD, r.device, torch.float64)

    def front(name, dy=0.0):                           # the frontmost point of a primitive (head-local)
        c, rad = prims[name][2], prims[name][3]
        return c + torch.stack([0 * c[:, 0], dy + 0 * c[:, 0], rad[:, 2]], -1)

    def bottom(name):
        c, rad = prims[name][2], prims[name][3]
        return c + torch.stack([0 * c[:, 0], -rad[:, 1] * 0.7, rad[:, 2] * 0.7], -1)

    drop = JAW_DROP * b.jaw
    mw = 0.33 * b.lip_width * (1 + 0.16 * (-b.lip_round).clamp(min=0) - 0.36 * b.lip_round.clamp(min=0)
                               + 0.1 * b.smile.clamp(min=0))
    mz = prims["muzzle"][2][:, 2] + prims["muzzle"][3][:, 2] - 0.05
    zero = torch.zeros_like(mw)
    mouth_y = MOUTH_Y - 0.78 * 0.30 * b.jaw * (1 - b.lip_close) * 0.5
    pts = {
        "eye_left": front("eye_l"), "eye_right": front("eye_r"), "nose_tip": front("nose_tip"),
        "mouth": torch.stack([zero, mouth_y, mz], -1), "chin": bottom("chin"),
        "head_center": torch.zeros_like(front("eye_l")),
    }
    top, bot = MOUTH_Y + 0.12, MOUTH_Y - 0.14 - 0.30 * b.jaw * 0.8
    corners = torch.stack([torch.stack([sx * (mw + 0.05), yy + zero, mz - 0.05 * sx * sx], -1)
                           for sx in (-1.0, 1.0) for yy in (top, bot)], 1)
    corners[:, :, 1] = torch.stack([top + zero, bot, top + zero, bot], 1)

    def project(p):                                    # head-local [N, ..., 3] -> pixel (x, y)
        pc = torch.einsum("nij,n...j->n...i", Rh, p - pv) + pv + T.view(-1, *([1] * (p.dim() - 2)), 3)
        u = pc[..., 0] / (-pc[..., 2]) / TAN_HALF
        v = pc[..., 1] / (-pc[..., 2]) / TAN_HALF
        return torch.stack([(u + 1) * 0.5 * r.size, (1 - v) * 0.5 * r.size], -1)

    out = {k: project(v).float().cpu().numpy() for k, v in pts.items()}
    mb = project(corners)
    out["mouth_box"] = torch.cat([mb.min(1).values, mb.max(1).values], -1).float().cpu().numpy()
    out["head_scale"] = (r.size * 0.5 / TAN_HALF / (-T[:, 2])).float().cpu().numpy()   # pixels per head unit
    for side, name in (("eye_left", "eye_l"), ("eye_right", "eye_r")):
        c = prims[name][2]
        ex = torch.tensor([[-0.3, 0.0, 0.0], [0.3, 0.0, 0.0], [0.0, 0.25, 0.0], [0.0, -0.22, 0.0]], dtype=torch.float64)
        q = project(c[:, None, :] + ex[None] + torch.tensor([0, 0, EYE_R], dtype=torch.float64))
        out[side + "_box"] = torch.cat([q.min(1).values, q.max(1).values], -1).float().cpu().numpy()
    return out


# ---------------------------------------------------------------------- module-level helpers
_RENDERERS: "dict[tuple, Renderer]" = {}


def get_renderer(size: int = 128, device=None) -> Renderer:
    """A shared Renderer per (size, device), so that module-level calls reuse rays and actor caches."""
    key = (int(size) if isinstance(size, (int, np.integer)) else size, str(device))
    if key not in _RENDERERS:
        _RENDERERS[key] = Renderer(size, device)
    return _RENDERERS[key]


def render(actors, tracks: dict, size: int = 128, device=None, return_aux: bool = False):
    """Render one frame per track entry: float32 [N, 3, size, size] in [0, 1] (see Renderer.render)."""
    return get_renderer(size, device).render(actors, tracks, return_aux=return_aux)


def landmarks(actors, tracks: dict, size: int = 128) -> dict:
    """Projected 2D pixel positions (x, y) of key points, as float32 numpy arrays.

    Points [N, 2]: eye_left, eye_right (front of each eyeball), nose_tip, mouth (centre of the opening),
    chin, head_center (the head origin between the eyes). Boxes [N, 4] (x0, y0, x1, y1): mouth_box (lips
    and opening, follows jaw, rounding and smile), eye_left_box, eye_right_box. head_scale [N]: pixels per
    head unit (half the head width is about one unit). eye_left/eye_right are the eyes on the image's
    left/right for a frontal head (the actor's right/left). Points are not checked for occlusion; use
    render(..., return_aux=True) for visibility.
    """
    return get_renderer(size).landmarks(actors, tracks)


def to_uint8(frames: torch.Tensor) -> np.ndarray:
    """[N, 3, H, W] floats in [0, 1] -> uint8 [N, H, W, 3] (mediapy and PIL order)."""
    if frames.dim() == 3:
        frames = frames[None]
    return (frames.detach().clamp(0, 1) * 255 + 0.5).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def clip_tracks(n_frames: int, seed: int = 0) -> dict:
    """A lively, smooth random clip (every factor moving, blinks, speech-like jaw) for demos and benchmarks.

    Not a performance model (see world.perform for that): sums of a few sinusoids per factor, in range."""
    rng = np.random.default_rng(seed)
    t = np.arange(n_frames) / 25.0
    out = {}
    for name in FRAME_FACTOR_NAMES:
        fa = FACTORS[name]
        wave = sum(rng.uniform(0.2, 1.0) * np.sin(2 * np.pi * rng.uniform(0.1, 0.8) * t + rng.uniform(0, 2 * np.pi))
                   for _ in range(3)) / 2.2
        # around the default: symmetric factors swing both ways, one-sided ones (blink, jaw...) rise from 0
        span = 0.4 * (fa.high - fa.low)
        out[name] = np.clip(fa.default + span * wave, fa.low, fa.high).astype(np.float32)
    talking = np.sin(2 * np.pi * 0.3 * t) > -0.3
    out["jaw"] = np.clip(0.35 + 0.35 * np.sin(2 * np.pi * 4.0 * t) * talking, 0, 1).astype(np.float32)
    blink = np.zeros(n_frames, np.float32)
    for start in range(int(rng.integers(0, 40)), n_frames, int(rng.integers(60, 100))):
        blink[start:start + 4] = [0.5, 1.0, 1.0, 0.4][: max(0, min(4, n_frames - start))]
    out["blink"] = blink
    return out


def bench_render(size: int = 128, n_frames: int = 256, batch: "int | None" = None, actor_seed: int = DEFAULT_ACTOR_SEED,
                 threads: "int | None" = 2, repeats: int = 3, device=None, motion: str = "clip") -> dict:
    """Frames per second of `render_clip` on one actor; best of `repeats` timed runs. JSON-able.

    motion="clip": a smooth random clip (`clip_tracks`), as datasets render. motion="random": every
    factor drawn independently per frame, the worst case for the renderer's screen-space culling.
    threads: torch threads during the run (restored afterwards); None keeps the current setting.
    """
    if motion not in ("clip", "random"):
        raise InputError(f"motion must be 'clip' or 'random', got {motion!r}")
    if isinstance(n_frames, bool) or not isinstance(n_frames, (int, np.integer)) or n_frames < 1:
        raise InputError(f"n_frames must be a positive integer, got {n_frames!r}")
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(int(threads))
    try:
        r = Renderer(size, device)
        actor = sample_actor(actor_seed)
        if motion == "clip":
            tr = clip_tracks(n_frames, seed=0)
        else:
            rng = np.random.default_rng(0)
            tr = {f.name: rng.uniform(f.low, f.high, n_frames).astype(np.float32) for f in FACTORS.values()}
        list(r.render_clip(actor, {k: v[: min(n_frames, 8)] for k, v in tr.items()}, batch=batch))   # warm-up
        times = []
        for _ in range(max(1, int(repeats))):
            t0 = time.perf_counter()
            for _ in r.render_clip(actor, tr, batch=batch):
                pass
            times.append(time.perf_counter() - t0)
        used = torch.get_num_threads()
    finally:
        torch.set_num_threads(before)
    best = min(times)
    return {"size": int(size), "n_frames": int(n_frames), "batch": r._check_batch(batch), "motion": motion,
            "threads": used, "seconds": round(best, 4), "frames_per_s": round(n_frames / best, 1),
            "all_seconds": [round(x, 4) for x in times], "device": str(r.device)}


def actor_portrait(actor_seed: "int | None" = None, size: int = 128, device=None) -> np.ndarray:
    """A world actor facing the camera with every factor at its default, uint8 [size, size, 3]: the built-in
    portrait of the demo and the quickstart (DEFAULT_ACTOR_SEED unless another actor's seed is given)."""
    from vasa_lite.world.actor import DEFAULT_ACTOR_SEED, sample_actor
    from vasa_lite.world.params import default_tracks

    actor = sample_actor(DEFAULT_ACTOR_SEED if actor_seed is None else int(actor_seed))
    return to_uint8(get_renderer(size, device).render(actor, default_tracks(1)))[0]
