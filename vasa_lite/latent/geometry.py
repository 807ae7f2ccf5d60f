"""3D geometry of the latent space: head pose as a rigid transform of a feature volume, and sampling with it.

Coordinates follow `torch.nn.functional.grid_sample`: a volume [N, C, D, H, W] covers the cube [-1, 1]^3 with
x across the image (right), y down the image and z along the depth axis (towards the camera). The world renders
with x right, y up, z towards the camera, so a world rotation R becomes M R M with M = diag(1, -1, 1): then a
pose encoder supervised with the world's yaw, pitch and roll rotates the volume the same way the world turns the
head.

z_pose is a vector [N, 6]: yaw, pitch, roll in degrees (the world's signs, see world.params), tx, ty as
fractions of the image (positive: right, down, as the world's tx, ty) and log_scale (the head's size; larger
when nearer the camera).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

ANCHOR_UP = 1.0        # the head's anchor: this many head units above the mouth's rest point, between the eyes
REF_SCALE = 0.24       # a head unit is about 0.24 frame widths at distance 1: log_scale 0 there
POSE_FIELDS = ("yaw", "pitch", "roll", "tx", "ty", "log_scale")
POSE_UNITS = ("deg", "deg", "deg", "frame", "frame", "log")
_FLIP = torch.tensor([1.0, -1.0, 1.0])


def rotation(yaw: torch.Tensor, pitch: torch.Tensor, roll: torch.Tensor) -> torch.Tensor:
    """Rotation matrices [N, 3, 3] in volume coordinates, from the world's angles in degrees."""
    from vasa_lite.world.render import _rotations

    m = _FLIP.to(yaw.device, yaw.dtype)
    return _rotations(yaw, pitch, roll) * m.view(1, 3, 1) * m.view(1, 1, 3)   # M R M, M diagonal


def base_grid(depth: int, height: int, width: int, device=None) -> torch.Tensor:
    """Voxel centres [D, H, W, 3] as (x, y, z) in [-1, 1] (grid_sample's align_corners=False convention)."""
    def axis(n):
        return (torch.arange(n, dtype=torch.float32, device=device) + 0.5) / n * 2 - 1
    z, y, x = torch.meshgrid(axis(depth), axis(height), axis(width), indexing="ij")
    return torch.stack([x, y, z], -1)


def _rst(pose: torch.Tensor):
    R = rotation(pose[:, 0], pose[:, 1], pose[:, 2])
    t = torch.stack([2 * pose[:, 3], 2 * pose[:, 4], torch.zeros_like(pose[:, 3])], -1)   # fraction -> grid units
    s = pose[:, 5].exp()
    return R, s, t


def to_camera(points: torch.Tensor, pose: torch.Tensor) -> torch.Tensor:
    """Head (canonical) points [N, ..., 3] to the camera's volume: x = s R c + t."""
    R, s, t = _rst(pose)
    flat = points.reshape(points.shape[0], -1, 3)
    out = torch.einsum("nij,npj->npi", R, flat) * s.view(-1, 1, 1) + t.view(-1, 1, 3)
    return out.view(points.shape)


def to_head(points: torch.Tensor, pose: torch.Tensor) -> torch.Tensor:
    """Camera-volume points [N, ..., 3] to head (canonical) coordinates: c = R^T (x - t) / s."""
    R, s, t = _rst(pose)
    flat = points.reshape(points.shape[0], -1, 3)
    out = torch.einsum("nji,npj->npi", R, flat - t.view(-1, 1, 3)) / s.view(-1, 1, 1)
    return out.view(points.shape)


def sample(volume: torch.Tensor, points: torch.Tensor, padding: str = "zeros") -> torch.Tensor:
    """Trilinear samples of a volume [N, C, D, H, W] at points [N, d, h, w, 3] -> [N, C, d, h, w]."""
    return F.grid_sample(volume, points, mode="bilinear", padding_mode=padding, align_corners=False)


def field_at(field: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """A 3-channel offset field [N, 3, d', h', w'] read at points [N, d, h, w, 3] -> offsets [N, d, h, w, 3]."""
    return sample(field, points, padding="border").permute(0, 2, 3, 4, 1)


def rotate_volume(volume: torch.Tensor, yaw: float = 0.0, pitch: float = 0.0, roll: float = 0.0) -> torch.Tensor:
    """A rigid rotation of a volume about its centre (the toy example of notebook 02): each output voxel reads
    the input at R^T x, so the content turns by R."""
    n, _, d, h, w = volume.shape
    pose = torch.zeros(n, 6, device=volume.device)
    pose[:, 0], pose[:, 1], pose[:, 2] = float(yaw), float(pitch), float(roll)
    grid = base_grid(d, h, w, volume.device).expand(n, d, h, w, 3)
    return sample(volume, to_head(grid, pose))


def _crop_frame(z_pose: torch.Tensor):
    """The face crop's axes (a rotation [N, 2, 2], columns ex, ey), half-width and centre in grid_sample's [-1, 1]
    coordinates: 2.8 x 2.8 head units centred half a unit below the anchor (brows to chin), rotated with the roll."""
    roll = torch.deg2rad(z_pose[:, 2])
    c, s = torch.cos(roll), torch.sin(roll)
    ex, ey = torch.stack([c, -s], 1), torch.stack([s, c], 1)                  # the crop's axes in the image
    unit = (torch.exp(z_pose[:, 5]) * REF_SCALE)[:, None]                     # a head unit, in frame widths
    centre = torch.stack([z_pose[:, 3], z_pose[:, 4]], 1) + 0.5 * unit * ey   # frame fractions from the centre
    return torch.stack([ex, ey], 2), 1.4 * unit * 2, centre * 2               # 1.4 units each side


def face_crop(frames: torch.Tensor, z_pose: torch.Tensor, size: int) -> torch.Tensor:
    """RGB crops [N, 3, size, size] of the face that z_pose places in the frames (see _crop_frame). z_pose's
    translation is the head anchor's image position and its log_scale the head unit's size (see
    latent.train.pose_targets), so the crop follows the head the way a face tracker's does."""
    rot, half, centre = _crop_frame(z_pose)
    theta = torch.cat([rot * half[:, :, None], centre[:, :, None]], 2)
    grid = F.affine_grid(theta, (frames.shape[0], 3, size, size), align_corners=False)
    return F.grid_sample(frames, grid, mode="bilinear", padding_mode="border", align_corners=False)


def paste_crop(crop: torch.Tensor, z_pose: torch.Tensor, size: int) -> torch.Tensor:
    """The inverse of face_crop: a crop [N, C, h, w] put back where z_pose places the face in a size x size frame;
    zeros outside it (so a pasted mask is 0 there)."""
    rot, half, centre = _crop_frame(z_pose)
    inv = rot.transpose(1, 2) / half[:, :, None]                               # u = R^T (f - centre) / half
    theta = torch.cat([inv, -(inv @ centre[:, :, None])], 2)
    grid = F.affine_grid(theta, (crop.shape[0], crop.shape[1], size, size), align_corners=False)
    return F.grid_sample(crop, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
