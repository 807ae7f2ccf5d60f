"""The face latent model: a frame splits four ways (V_app, z_id, z_pose, z_dyn) and a decoder puts them back.

Decoding a driving motion (z_pose, z_dyn) for a source:
1. canonicalise: each canonical voxel c reads the source volume at s_s R_s (c + G_s(c)) + t_s, which undoes the
   source's own pose (rigid) and expression (non-rigid G from its z_dyn, z_id). The result is V_app;
2. animate: each voxel x of the driving camera reads V_app at c + H_d(c) with c = R_d^T (x - t_d) / s_d;
3. project: the volume's depth folds into channels and a thin 2D renderer draws the frame;
4. keep detail: the same chain of warps tells, for each driving voxel, where it was in the *source* camera. A
   softmax over depth (a learned occupancy) picks the visible surface, which gives a 2D flow; the source's pixels
   are warped with it, and the renderer predicts a mask saying where to trust them. Where the source showed a
   surface (skin texture, hair, background) the warped pixels keep its detail; where the new pose reveals what
   the source hid (the far cheek, the mouth's inside), the mask falls back on the rendered colours.
   With self_flow > 0 the flow is first corrected by the warp's own error: decoded with its own motion, a source
   should warp onto itself, so the flow it gets instead (measured once per source) is inverted out of every flow;
5. repaint the expression (refiner_width > 0): a small network redraws the mouth and eyes on the face crop that
   z_pose aligns, from z_dyn, and pastes them back (see networks.ExpressionRefiner).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vasa_lite.errors import InputError
from vasa_lite.latent import geometry as geo
from vasa_lite.latent.networks import (AppearanceEncoder, ExpressionRefiner, FlowGenerator, PoseEncoder, Renderer2D,
                                      VectorEncoder)
from vasa_lite.world.params import DYNAMICS_NAMES


class FaceLatentModel(nn.Module):
    """Encoders for V_app, z_id, z_pose, z_dyn and the decoder, for frames of `size` px (a preset's world size)."""

    def __init__(self, cfg, size: int):
        super().__init__()
        if size % 4:
            raise InputError(f"frame size must be a multiple of 4 px, got {size}")
        self.cfg, self.size = cfg, int(size)
        self.res = self.size // 4
        self.appearance = AppearanceEncoder(cfg, size)
        self.identity = VectorEncoder(cfg, size, cfg.id_dim)
        self.pose = PoseEncoder(cfg, size)
        self.dynamics = VectorEncoder(cfg, size // 2, cfg.dyn_dim)      # reads a face crop, see dynamics_of
        self.flow = FlowGenerator(cfg, self.res)
        self.occupancy = nn.Conv3d(cfg.vol_channels, 1, 1)
        self.renderer = Renderer2D(cfg)
        self.refiner = ExpressionRefiner(cfg, self.size // 2) if cfg.refiner_width else None
        # training only: the linear read-out of the world's expression factors from z_dyn (dyn_supervision)
        self.expression_head = nn.Linear(cfg.dyn_dim, len(DYNAMICS_NAMES))
        self.register_buffer("grid", geo.base_grid(cfg.vol_depth, self.res, self.res), persistent=False)

    # ------------------------------------------------------------------------------------------------ inputs
    def check_frames(self, frames, what: str = "frames") -> torch.Tensor:
        """Frames as float [N, 3, size, size] in [0, 1] on the model's device, or an InputError saying what to fix."""
        if isinstance(frames, np.ndarray):
            frames = torch.from_numpy(np.ascontiguousarray(frames))
        if not torch.is_tensor(frames):
            raise InputError(f"{what} must be a tensor or array [N, 3, H, W], got {type(frames).__name__}")
        x = frames
        if x.dim() == 3:
            x = x[None]
        if x.dim() != 4:
            raise InputError(f"{what} has shape {tuple(frames.shape)}; give RGB frames [N, 3, {self.size}, {self.size}]")
        if x.shape[1] != 3 and x.shape[-1] == 3:
            x = x.permute(0, 3, 1, 2)
        if x.shape[1] != 3:
            raise InputError(f"{what} has {x.shape[1]} channels; give RGB frames [N, 3, {self.size}, {self.size}] "
                             "(convert grey or RGBA images with vasa_lite.media.read_image)")
        if tuple(x.shape[-2:]) != (self.size, self.size):
            raise InputError(f"{what} are {x.shape[-1]}x{x.shape[-2]} px but this model works at {self.size}x{self.size}; "
                             "crop and resize the face first (vasa_lite.real.load_portrait(path, size=...))")
        if x.dtype == torch.uint8:
            x = x.float() / 255.0
        x = x.float()
        if not torch.isfinite(x).all():
            raise InputError(f"{what} contain NaN or Inf values; give finite pixel values in [0, 1]")
        return x.to(self.grid.device)

    # ----------------------------------------------------------------------------------------------- encoders
    def encode_motion(self, frames) -> tuple:
        """(z_pose [N, 6], z_dyn [N, dyn_dim]) of frames."""
        x = self.check_frames(frames)
        pose = self.pose(x)
        return pose, self.dynamics_of(x, pose)

    def dynamics_of(self, x: torch.Tensor, z_pose: torch.Tensor) -> torch.Tensor:
        """z_dyn of frames x, read from a face crop that z_pose aligns (position, size and roll undone), at half
        the frame size. The mouth and eyes then sit at the same pixels whatever the head does, so z_dyn has no
        reason to learn the pose, and a small encoder can resolve them. z_pose is detached: the crop must not
        teach the pose encoder."""
        return self.dynamics(geo.face_crop(x, z_pose.detach(), self.size // 2))

    def encode_source(self, frames, pose=None, z_dyn=None, z_id=None) -> dict:
        """Everything the decoder needs from a source frame, the canonical volume V_app included. Codes already
        computed (training) can be passed in."""
        x = self.check_frames(frames, "source frames")
        pose = self.pose(x) if pose is None else pose
        z_dyn = self.dynamics_of(x, pose) if z_dyn is None else z_dyn
        z_id = self.identity(x) if z_id is None else z_id
        g, _ = self.flow(z_dyn, z_id)                          # the source's canonical -> expressed offsets G_s
        n = x.shape[0]
        c = self.grid.expand(n, *self.grid.shape)
        where = geo.to_camera(c + geo.field_at(g, c), pose)    # each canonical voxel's place in the source camera
        v_app = geo.sample(self.appearance(x), where)
        # `where` rides along as 3 extra channels, so one lookup per driving voxel gives both its features and
        # its source position (for the pixel path); channels-last makes grid_sample about 1.6x faster on CPU
        packed = torch.cat([v_app, where.permute(0, 4, 1, 2, 3)], 1).contiguous(memory_format=torch.channels_last_3d)
        src = {"image": x, "V_app": v_app, "packed": packed, "z_id": z_id, "z_pose": pose, "z_dyn": z_dyn}
        if self.cfg.self_flow and self.cfg.pixel_path:
            # the warp of the source onto its own motion, less the identity: the warp's own error e [N, 2, r, r].
            # A measurement held fixed in training too: no gradient runs through it (and a step costs less)
            with torch.no_grad():
                own = self._look(src, pose, z_dyn)
                identity = self.grid[0, ..., :2].permute(2, 0, 1)
                src["flow_error"] = self._pixel_flow(own[:, :self.cfg.vol_channels], own) - identity
        return src

    def encode(self, frames) -> dict:
        """The four-way split of frames: V_app, z_id, z_pose, z_dyn."""
        s = self.encode_source(frames)
        return {k: s[k] for k in ("V_app", "z_id", "z_pose", "z_dyn")}

    # ------------------------------------------------------------------------------------------------ decoder
    @staticmethod
    def _expand(src: dict, n: int) -> dict:
        if src["image"].shape[0] == n:
            return src
        if src["image"].shape[0] != 1:
            raise InputError(f"{src['image'].shape[0]} sources for {n} motions; give one source, or one per motion")
        return {k: v.expand(n, *v.shape[1:]) for k, v in src.items()}

    def decode(self, source: dict, z_pose: torch.Tensor, z_dyn: torch.Tensor, return_parts: bool = False):
        """Frames [N, 3, S, S] of `source` (from encode_source) moved to the motions (z_pose, z_dyn)."""
        z_pose, z_dyn = torch.as_tensor(z_pose).float(), torch.as_tensor(z_dyn).float()
        if z_pose.dim() == 1:
            z_pose, z_dyn = z_pose[None], z_dyn[None]
        if not (torch.isfinite(z_pose).all() and torch.isfinite(z_dyn).all()):
            raise InputError("motion codes contain NaN or Inf; check the motion generator's output")
        n = z_pose.shape[0]
        src = self._expand(source, n)
        looked = self._look(src, z_pose, z_dyn)                # [N, C + 3, D, r, r] in the driving camera
        vol = looked[:, :self.cfg.vol_channels]
        feats = vol.flatten(1, 2)
        if self.cfg.pixel_path:
            flow2d = self._pixel_flow(vol, looked)                                  # [N, 2, r, r] source x, y
            if "flow_error" in src:
                flow2d = undo_self_flow(flow2d, src["flow_error"], self.cfg.self_flow)
            full = F.interpolate(flow2d, size=(self.size, self.size), mode="bilinear",
                                 align_corners=False).permute(0, 2, 3, 1)
            warped = F.grid_sample(src["image"], full, mode="bilinear", padding_mode="border", align_corners=False)
            warped_half = F.avg_pool2d(warped, 2)
        else:
            flow2d, warped = None, torch.zeros_like(src["image"])
            warped_half = F.avg_pool2d(warped, 2)
        out = F.interpolate(self.renderer(feats, warped_half), size=(self.size, self.size), mode="bilinear",
                            align_corners=False)
        rgb = torch.sigmoid(out[:, :3])
        if self.cfg.pixel_path:
            mask = torch.sigmoid(out[:, 3:4])
            img = mask * warped + (1 - mask) * rgb
        else:
            mask, img = torch.zeros_like(out[:, 3:4]), rgb
        parts = {"rendered": rgb, "warped": warped, "mask": mask, "flow": flow2d}
        if self.refiner is not None:
            img, parts["refined"], parts["refine_mask"] = self.refine(img, z_pose, z_dyn, src["z_dyn"])
        if return_parts:
            return img, parts
        return img

    def _look(self, src: dict, z_pose: torch.Tensor, z_dyn: torch.Tensor) -> torch.Tensor:
        """The source's packed volume (V_app and each voxel's source position) read at every voxel of the driving
        camera [N, C + 3, D, r, r]: the rigid warp by z_pose, then the non-rigid offsets H_d from (z_dyn, z_id)."""
        n = z_pose.shape[0]
        _, h = self.flow(z_dyn, src["z_id"])                   # expressed -> canonical offsets H_d
        c_expr = geo.to_head(self.grid.expand(n, *self.grid.shape), z_pose)
        return geo.sample(src["packed"], c_expr + geo.field_at(h, c_expr))

    def _pixel_flow(self, vol: torch.Tensor, looked: torch.Tensor) -> torch.Tensor:
        """The 2D flow [N, 2, r, r] (source x, y per driving pixel): the source positions of the voxels along each
        ray, weighted by a softmax over depth of a learned occupancy (the visible surface)."""
        w = torch.softmax(self.occupancy(vol), dim=2)                              # [N, 1, D, r, r] over depth
        nc = self.cfg.vol_channels
        return (w * looked[:, nc:nc + 2]).sum(2)

    def refine(self, img: torch.Tensor, z_pose: torch.Tensor, z_dyn: torch.Tensor, z_dyn_source: torch.Tensor) -> tuple:
        """The expression refiner's pass: the face crop that z_pose aligns is repainted for z_dyn (the source showed
        z_dyn_source) and pasted back through its mask. Returns (frames, the repainted crop, its mask in the frame)."""
        crop = geo.face_crop(img, z_pose, self.size // 2)
        rgb, m = self.refiner(crop, z_dyn, z_dyn_source)
        pasted = geo.paste_crop(torch.cat([rgb, m], 1), z_pose, self.size)
        mask = pasted[:, 3:4]
        return img + mask * (pasted[:, :3] - img), rgb, mask

    # ------------------------------------------------------------------------------------------- conveniences
    def reconstruct(self, frames) -> torch.Tensor:
        """Self reconstruction: each frame decoded from its own codes."""
        s = self.encode_source(frames)
        return self.decode(s, s["z_pose"], s["z_dyn"])

    def reenact(self, source_frames, driving_frames) -> torch.Tensor:
        """The source's appearance and identity with the driving frames' pose and dynamics."""
        s = self.encode_source(source_frames)
        pose, dyn = self.encode_motion(driving_frames)
        return self.decode(s, pose, dyn)


def undo_self_flow(flow: torch.Tensor, error: torch.Tensor, steps: int) -> torch.Tensor:
    """A driving flow [N, 2, r, r] (source positions in grid_sample's [-1, 1]) with the warp's own error taken out.

    The source's own motion warps pixel x to s(x) = x + e(x) instead of x. Each source position y of a driving flow
    is read as s(y') and replaced by y' = s^-1(y), which solves y' = y - e(y'): `steps` fixed-point steps. For the
    source's own motion this gives back x (up to the interpolation of e), so self reconstruction copies the source."""
    out = flow
    for _ in range(int(steps)):
        out = flow - F.grid_sample(error, out.permute(0, 2, 3, 1), mode="bilinear", padding_mode="border",
                                   align_corners=False)
    return out


def parameter_count(model: nn.Module) -> dict:
    """Parameters per part, and the total."""
    parts = {name: sum(p.numel() for p in m.parameters()) for name, m in model.named_children()}
    parts["total"] = sum(parts.values())
    return parts


def checkpoint_file(preset="cpu") -> Path:
    from vasa_lite.checkpoints import checkpoint_path
    from vasa_lite.config import get_preset

    return checkpoint_path("latent", get_preset(preset).name)


def load_latent(preset="cpu", path=None, device=None) -> FaceLatentModel:
    """The trained latent model of a preset, in eval mode (cached). A checkpoint of another preset or component
    is refused with a CheckpointError that says how to get the right one."""
    from vasa_lite.training import load_trained

    model = load_trained("latent", preset, path, device, lambda p: p.latent,
                         lambda p, meta: FaceLatentModel(recorded_config(p.latent, meta), p.world.size), frozen=False,
                         training_only=TRAINING_ONLY + RECORDED)
    model.controls = (model.meta.get("extra") or {}).get("controls")   # slider directions, see latent.controls
    return model


def recorded_config(cfg, meta: dict):
    """The LatentConfig `cfg` with the RECORDED settings of a checkpoint (its metadata): the model decodes as it was
    trained. One the checkpoint predates is LatentConfig's default, what the code did before it existed."""
    import dataclasses

    from vasa_lite.config import LatentConfig

    saved = (meta.get("extra") or {}).get("config") or {}
    return dataclasses.replace(cfg, **{k: saved.get(k, getattr(LatentConfig(), k)) for k in RECORDED})


# Settings that change how the decoder runs, not the weights' shapes, and that a checkpoint keeps: the one it was
# trained with is the one it decodes with, whatever the preset says (train all's last latent stage turns self_flow
# on).
RECORDED = ("self_flow",)
# Settings that change training, not the weights' shapes: a checkpoint stays loadable when they change.
TRAINING_ONLY = ("pose_supervision", "transfer_weight", "cross_id_weight", "pose_weight", "ssim_weight",
                 "per_actor", "pose_range", "self_pairs", "dyn_supervision", "dyn_weight", "region_weight", "dyn_warmup",
                 "dyn_in_decoder")
