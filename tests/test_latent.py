"""The face latent space: geometry, shapes, bad input, training, checkpoints, evaluation and the editor."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from vasa_lite.config import get_preset
from vasa_lite.errors import CheckpointError, InputError
from vasa_lite.latent import FaceLatentModel, checkpoint_file, load_latent
from vasa_lite.latent import geometry as geo
from vasa_lite.latent import losses as L


@pytest.fixture(scope="module")
def smoke_model():
    torch.manual_seed(0)
    p = get_preset("smoke")
    return FaceLatentModel(p.latent, p.world.size).eval()


def test_rotation_matches_the_world_conventions():
    nose = torch.tensor([[[0.0, 0.0, 0.5]]])                         # a point towards the camera
    def moved(**angles):
        pose = torch.zeros(1, 6)
        for k, v in angles.items():
            pose[0, geo.POSE_FIELDS.index(k)] = v
        return geo.to_camera(nose, pose)[0, 0]
    assert moved(yaw=20)[0] > 0.1                                     # positive yaw: the face turns to image right
    assert moved(pitch=20)[1] < -0.1                                  # positive pitch (chin up): the nose goes up (y down is +)
    ear = torch.tensor([[[0.5, 0.0, 0.0]]])
    pose = torch.zeros(1, 6)
    pose[0, 2] = 30.0
    assert geo.to_camera(ear, pose)[0, 0, 1] < -0.1                   # positive roll: counter-clockwise in the image


def test_head_and_camera_transforms_invert():
    torch.manual_seed(1)
    pose = torch.randn(4, 6) * torch.tensor([20.0, 15.0, 10.0, 0.05, 0.05, 0.1])
    pts = torch.rand(4, 3, 5, 7, 3) * 2 - 1
    back = geo.to_head(geo.to_camera(pts, pose), pose)
    assert torch.allclose(back, pts, atol=1e-5)


def test_rotate_volume_turns_content():
    vol = torch.zeros(1, 1, 16, 16, 16)
    vol[0, 0, 8:12, 7:9, 7:9] = 1.0                                  # a bar along +z (depth) from the centre
    turned = geo.rotate_volume(vol, yaw=90.0)
    # with yaw 90 the bar lies along +x: mass moves from high depth indices to high x indices
    w = turned[0, 0]
    x_idx = torch.arange(16.0)
    assert (w.sum((0, 1)) * x_idx).sum() / w.sum() > 8.5
    assert abs((w.sum((1, 2)) * x_idx).sum() / w.sum() - 7.5) < 0.7


def test_ssim_and_psnr():
    a = torch.rand(2, 3, 32, 32)
    assert float(L.ssim(a, a)) > 0.999
    assert float(L.psnr(a, a)) > 90
    flat = 0.5 + 0.05 * a                                             # little structure, so noise dominates it
    noisy = flat + 0.1 * torch.randn_like(a)
    assert float(L.ssim(flat, noisy)) < 0.5
    assert 19 < float(L.psnr(flat, noisy)) < 21                       # noise sigma 0.1 -> 20 dB


def test_shapes_and_four_way_split(smoke_model):
    x = torch.rand(3, 3, 64, 64)
    with torch.no_grad():
        codes = smoke_model.encode(x)
        cfg = smoke_model.cfg
        assert codes["V_app"].shape == (3, cfg.vol_channels, cfg.vol_depth, 16, 16)
        assert codes["z_id"].shape == (3, cfg.id_dim)
        assert codes["z_pose"].shape == (3, 6)
        assert codes["z_dyn"].shape == (3, cfg.dyn_dim)
        src = smoke_model.encode_source(x[:1])
        out, parts = smoke_model.decode(src, codes["z_pose"], codes["z_dyn"], return_parts=True)   # 1 source, 3 motions
    assert out.shape == (3, 3, 64, 64) and torch.isfinite(out).all()
    assert float(out.min()) >= 0 and float(out.max()) <= 1
    assert parts["mask"].shape == (3, 1, 64, 64)


@pytest.mark.parametrize("bad, msg", [
    (torch.rand(2, 3, 48, 48), "48x48 px"),
    (torch.rand(2, 4, 64, 64), "4 channels"),
    (torch.full((1, 3, 64, 64), float("nan")), "NaN"),
    (torch.rand(2, 2, 3, 64, 64), "shape"),
    ("frame.png", "tensor or array"),
])
def test_bad_frames_get_clear_errors(smoke_model, bad, msg):
    with pytest.raises(InputError, match=msg):
        smoke_model.encode(bad)


def test_nan_motion_codes_are_refused(smoke_model):
    src = smoke_model.encode_source(torch.rand(1, 3, 64, 64))
    with pytest.raises(InputError, match="NaN"):
        smoke_model.decode(src, torch.full((1, 6), float("nan")), torch.zeros(1, smoke_model.cfg.dyn_dim))


def test_training_lowers_the_loss_and_resumes(tmp_path, one_thread, monkeypatch):
    import vasa_lite.latent.train as lt
    from vasa_lite.latent.train import train_latent
    from vasa_lite.training import read_log, resume_path

    out = tmp_path / "latent_smoke.pt"
    real_step, calls = lt.latent_step, {"n": 0}

    def interrupted_step(*a, **k):                 # Ctrl-C in the middle of step 13
        calls["n"] += 1
        if calls["n"] == 13:
            raise KeyboardInterrupt
        return real_step(*a, **k)

    monkeypatch.setattr(lt, "latent_step", interrupted_step)
    with pytest.raises(KeyboardInterrupt):
        train_latent("smoke", steps=30, out=out, progress=False, preview_every=10)
    assert resume_path(out).exists() and not out.exists()
    monkeypatch.setattr(lt, "latent_step", real_step)
    s = train_latent("smoke", steps=30, out=out, progress=False, preview_every=10)
    assert s["resumed_from"] == 12 and s["steps_this_run"] == 18
    rows = read_log(s["log"])
    assert [r["step"] for r in rows] == [10, 20, 30]               # one log, continued where it stopped
    preview = Path(s["preview"])
    assert preview.exists() and preview.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    first, last = np.mean([r["recon"] for r in rows[:1]]), np.mean([r["recon"] for r in rows[-1:]])
    assert last < first, (first, last)
    assert all(k in rows[-1] for k in ("recon", "transfer", "cross_id", "pose", "dyn"))
    model = load_latent("smoke", out)
    assert model.meta["steps"] == 30 and model.meta["extra"]["config"]["dyn_dim"] == 16
    assert model.controls and model.controls["factors"][0] == "yaw"


def test_ablation_switches_drop_their_losses(tmp_path, one_thread):
    from vasa_lite.latent.train import train_latent
    from vasa_lite.training import read_log

    s = train_latent("smoke", steps=10, out=tmp_path / "abl.pt", progress=False, preview_every=0,
                     overrides={"transfer_weight": 0.0, "cross_id_weight": 0.0, "pose_supervision": False,
                                "dyn_supervision": False})
    row = read_log(s["log"])[-1]
    assert "recon" in row and not any(k in row for k in ("transfer", "cross_id", "pose", "dyn"))


def test_checkpoint_of_another_preset_or_component_is_refused(tmp_path):
    smoke = checkpoint_file("smoke")
    with pytest.raises(CheckpointError, match="preset"):
        load_latent("cpu", smoke)
    from vasa_lite.paths import CHECKPOINT_DIR

    with pytest.raises(CheckpointError):
        load_latent("smoke", CHECKPOINT_DIR / "audio_smoke.pt")
    bad = tmp_path / "latent_smoke.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError):
        load_latent("smoke", bad)


def test_expression_transfer_scores_a_perfect_and_a_frozen_decoder():
    """A decoder that shows the driver exactly scores the drivers' own r and gain; one that returns the source
    unmoved scores the source's r: the measure sees the decoder, not the estimator."""
    from vasa_lite.instruments.attributes import load_attributes
    from vasa_lite.latent.evaluate import TRANSFER_FACTORS, expression_transfer
    from vasa_lite.latent.train import latent_bank

    class Stub(torch.nn.Module):
        def __init__(self, show_driver: bool):
            super().__init__()
            self.register_buffer("grid", torch.zeros(1))
            self.show_driver = show_driver

        def reenact(self, xi, xj):
            return xj if self.show_driver else xi

    bank, att = latent_bank("smoke", "test", progress=False), load_attributes("smoke")
    perfect = expression_transfer(Stub(True), bank, att, per_actor=2)
    frozen = expression_transfer(Stub(False), bank, att, per_actor=2)
    for f in TRANSFER_FACTORS:
        assert perfect[f]["reenacted_r"] == pytest.approx(perfect[f]["driver_r"], abs=2e-3), f
        assert perfect[f]["reenacted_gain"] == pytest.approx(perfect[f]["driver_gain"], abs=2e-3), f
        assert frozen[f]["reenacted_r"] == pytest.approx(frozen[f]["source_r"], abs=2e-3), f


def test_ridge_probe_finds_linear_signal_and_not_noise():
    from vasa_lite.latent.evaluate import ridge_r2

    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 8))
    y = np.c_[x @ rng.normal(size=8), rng.normal(size=400)]
    r2 = ridge_r2(x[:300], y[:300], x[300:], y[300:])
    assert r2[0] > 0.95 and r2[1] < 0.1


def test_eval_reports_every_figure_on_smoke(one_thread):
    from vasa_lite.latent.evaluate import eval_latent

    r = eval_latent("smoke", limit=8, progress=False)
    for key in ("self", "same", "cross"):
        assert np.isfinite(r[key]["psnr_db"]) and 0 <= r[key]["ssim"] <= 1
    assert r["self"]["psnr_db"] > 12                                  # well above a blank frame's
    assert set(r["probes"]) >= {"z_pose", "z_dyn", "identity_accuracy"}
    assert np.isfinite(r["pose_control"]["mae_deg"])
    et = r["expression_transfer"]
    assert et["pairs"] > 0 and all(-1 <= et[f]["reenacted_r"] <= 1 for f in ("jaw", "blink", "gaze_yaw"))
    assert all(np.isfinite(et[f]["reenacted_gain"]) and np.isfinite(et[f]["driver_gain"]) for f in ("jaw", "gaze_yaw"))
    assert set(r["targets"]) == {"self_psnr_db", "cross_psnr_db", "pose_r2_from_z_dyn_max", "jaw_r2_from_z_dyn",
                                 "blink_r2_from_z_dyn", "pose_control_mae_deg_max"}


def test_editor_sliders_redecode_headlessly():
    pytest.importorskip("ipywidgets")
    from vasa_lite.latent.controls import PortraitEditor
    from vasa_lite.latent.train import latent_bank

    model = load_latent("smoke")
    bank = latent_bank("smoke", "test", progress=False)
    frame = torch.from_numpy(np.array(bank["frames"][0])).float() / 255
    ed = PortraitEditor(model, frame)
    box = ed.widget()
    before = box.image.value
    box.sliders["yaw"].value = 25.0                                   # what a student's drag does
    assert ed.values["yaw"] == 25.0 and ed.renders == 1
    assert box.image.value != before
    box.sliders["gaze_yaw"].value = -20.0
    assert ed.values["gaze_yaw"] == -20.0 and ed.renders == 2
    with pytest.raises(InputError, match="unknown control"):
        ed.set(emotion=1.0)


def test_cli_train_latent_with_missing_data_folder_is_one_line(tmp_path):
    r = subprocess.run([sys.executable, "-m", "vasa_lite", "train", "latent", "--preset", "smoke",
                        "--data", str(tmp_path / "nope"), "--quiet"], capture_output=True, text=True)
    assert r.returncode == 2
    assert "not found" in r.stderr and "Traceback" not in r.stderr


def test_bench_latent_prints_json():
    r = subprocess.run([sys.executable, "-m", "vasa_lite", "bench", "latent", "--preset", "smoke", "--frames", "32",
                        "--threads", "1"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["decode_frames_per_s"] > 0 and out["size_px"] == 64


def test_training_on_a_folder_of_real_videos_uses_no_ground_truth(tmp_path, one_thread):
    from skimage import data as skdata

    from vasa_lite import media, real
    from vasa_lite.latent.train import train_latent
    from vasa_lite.training import read_log

    image = skdata.astronaut()
    frames = np.stack([real.crop_region(image, (105 + 4 * np.cos(i / 3), 5 + 3 * np.sin(i / 3), 240), 96)
                       for i in range(20)])
    audio = (0.2 * np.sin(2 * np.pi * 200 * np.arange(16000 * 20 // 25) / 16000)).astype(np.float32)
    for name in ("a.mp4", "b.mp4"):                                   # two videos: two "people"
        media.write_video(tmp_path / "videos" / name, frames, fps=25, audio=audio)
    s = train_latent("smoke", data=tmp_path / "videos", steps=4, out=tmp_path / "real.pt", progress=False,
                     preview_every=0)
    row = read_log(s["log"])[-1]
    assert "recon" in row and "cross_id" in row
    assert "pose" not in row and "dyn" not in row                   # no ground truth on real videos
    model = load_latent("smoke", tmp_path / "real.pt")
    assert model.meta["extra"]["data"].endswith("videos") and model.meta["extra"]["people"] == 2
    assert model.controls is None


def test_fine_tune_starts_from_a_checkpoint_and_records_it(tmp_path, one_thread):
    from vasa_lite.latent.train import train_latent

    start = load_latent("smoke")
    # every part trains, the warp included, so the warp's self-correction is off (see the self_flow tests below)
    s = train_latent("smoke", steps=3, out=tmp_path / "ft.pt", progress=False, preview_every=0,
                     init=checkpoint_file("smoke"), overrides={"self_pairs": 0.5, "lr": 1e-5, "self_flow": 0})
    tuned = load_latent("smoke", s["checkpoint"])
    rec = tuned.meta["extra"]["init"]
    assert rec["file"] == "latent_smoke.pt" and rec["new_parts"] == [] and rec["steps"] == start.meta["steps"]
    # a tiny learning rate for 3 steps: the weights moved, but stayed close to where they started
    a, b = start.state_dict()["pose.net.head.3.weight"], tuned.state_dict()["pose.net.head.3.weight"]
    assert not torch.equal(a, b) and float((a - b).abs().max()) < 1e-3


def test_fine_tune_across_an_architecture_change_keeps_what_fits(tmp_path, one_thread):
    from vasa_lite.latent.train import train_latent

    s = train_latent("smoke", steps=2, out=tmp_path / "ft3.pt", progress=False, preview_every=0,
                     init=checkpoint_file("smoke"), overrides={"flow_depth": 3, "self_flow": 0})
    from vasa_lite.checkpoints import load_checkpoint

    _, meta = load_checkpoint(s["checkpoint"], component="latent")
    assert meta["extra"]["init"]["new_parts"] == ["flow"]            # only the flow generator changed shape
    with pytest.raises(InputError, match="preset"):
        train_latent("cpu", steps=1, out=tmp_path / "x.pt", progress=False, init=checkpoint_file("smoke"))


def test_region_weights_count_the_boxes_more_and_keep_a_mean_of_one():
    boxes = torch.tensor([[[8.0, 8.0, 16.0, 12.0], [0.0, 0.0, 2.0, 2.0]]])
    w = L.region_weights(boxes, 32, extra=4.0, margin=0.0)
    assert w.shape == (1, 1, 32, 32)
    assert abs(float(w.mean()) - 1) < 1e-5
    assert float(w[0, 0, 10, 12]) > 3 * float(w[0, 0, 25, 25])       # inside the first box vs outside both
    assert float(w[0, 0, 1, 1]) == pytest.approx(float(w[0, 0, 10, 12]))
    # the weighted reconstruction counts an error inside a box more than the same error outside
    target = torch.zeros(1, 3, 32, 32)
    inside, outside = target.clone(), target.clone()
    inside[..., 9:12, 9:15] = 0.5
    outside[..., 20:23, 20:26] = 0.5
    assert L.reconstruction(inside, target, 0.0, weight=w) > 2 * L.reconstruction(outside, target, 0.0, weight=w)


def test_expression_targets_and_face_boxes_follow_the_world():
    from vasa_lite.latent.train import expression_targets, face_boxes, latent_bank
    from vasa_lite.world.params import DYNAMICS_NAMES, FRAME_FACTOR_NAMES

    bank = latent_bank("smoke", "test", progress=False)
    y = expression_targets(bank["tracks"])
    assert y.shape == (len(bank["actor"]), len(DYNAMICS_NAMES))
    assert y.min() >= 0 and y.max() <= 1
    jaw = np.asarray(bank["tracks"])[:, FRAME_FACTOR_NAMES.index("jaw")]
    assert np.allclose(y[:, DYNAMICS_NAMES.index("jaw")], jaw, atol=1e-6)    # jaw's range is 0..1 already
    boxes = face_boxes(bank, 64)
    size = 64
    assert boxes.shape == (len(jaw), 3, 4)
    assert (boxes[..., 2] > boxes[..., 0]).all() and (boxes[..., 3] > boxes[..., 1]).all()
    mouth_y, eyes_y = boxes[:, 0, 1], boxes[:, 1:, 3].mean(1)
    assert np.mean(mouth_y > eyes_y) > 0.95                          # the mouth is below the eyes in the image
    assert ((boxes >= -size) & (boxes <= 2 * size)).all()


def test_dynamics_supervision_teaches_z_dyn_the_jaw(one_thread):
    """A few hundred steps of the read-out loss alone make z_dyn carry the jaw on the frames it was trained on."""
    from vasa_lite.instruments.banks import bank_batch
    from vasa_lite.latent.train import expression_targets, latent_bank, pose_targets
    from vasa_lite.world.params import DYNAMICS_NAMES

    torch.manual_seed(0)
    p = get_preset("smoke")
    model = FaceLatentModel(p.latent, p.world.size)
    bank = latent_bank(p, "train", progress=False)
    rows = np.arange(min(64, len(bank["actor"])))
    x = bank_batch(bank["frames"], rows)
    y = torch.from_numpy(expression_targets(bank["tracks"][rows]))
    z_pose = torch.from_numpy(pose_targets(bank["tracks"][rows], bank["track"][rows], p.world.size))   # true pose
    opt = torch.optim.Adam(list(model.dynamics.parameters()) + list(model.expression_head.parameters()), 3e-3)
    losses = []
    for _ in range(200):
        loss = L.dynamics_supervision(model.expression_head(model.dynamics_of(x, z_pose)), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.4 * losses[0], (losses[0], losses[-1])
    j = DYNAMICS_NAMES.index("jaw")
    with torch.no_grad():
        pred = model.expression_head(model.dynamics_of(x, z_pose))[:, j]
    assert np.corrcoef(pred.numpy(), y[:, j].numpy())[0, 1] > 0.8


def test_face_crop_from_z_pose_matches_the_face_tracker_crop():
    """The dynamics encoder's crop, placed by the world's true z_pose, is the instruments' face crop on the true
    face track: the mouth and eyes sit at the same pixels whatever the head does."""
    from vasa_lite.instruments.banks import bank_batch, crop_face
    from vasa_lite.latent.train import latent_bank, pose_targets

    bank = latent_bank("smoke", "test", progress=False)
    rows = np.arange(min(16, len(bank["actor"])))
    x = bank_batch(bank["frames"], rows)
    size = x.shape[-1]
    z_pose = torch.from_numpy(pose_targets(bank["tracks"][rows], bank["track"][rows], size))
    mine = geo.face_crop(x, z_pose, size // 2)
    theirs = crop_face(x, bank["track"][rows], size // 2)
    assert mine.shape == (len(rows), 3, size // 2, size // 2)
    assert float((mine - theirs).abs().mean()) < 0.02
    # and a crop elsewhere (the head moved 10% of the frame) is clearly different
    moved = z_pose.clone()
    moved[:, 3] += 0.1
    assert float((geo.face_crop(x, moved, size // 2) - theirs).abs().mean()) > 0.03


def test_freezing_parts_keeps_their_weights(tmp_path, one_thread):
    from vasa_lite.latent.train import train_latent

    base = tmp_path / "base.pt"
    train_latent("smoke", steps=3, out=base, progress=False, preview_every=0)
    s = train_latent("smoke", steps=3, out=tmp_path / "ft.pt", progress=False, preview_every=0, init=base,
                     freeze=("pose", "dynamics"))
    a, b = load_latent("smoke", base), load_latent("smoke", s["checkpoint"])
    for part in ("pose", "dynamics"):
        assert all(torch.equal(x, y) for x, y in zip(getattr(a, part).state_dict().values(),
                                                      getattr(b, part).state_dict().values())), part
    assert not all(torch.equal(x, y) for x, y in zip(a.renderer.state_dict().values(), b.renderer.state_dict().values()))
    assert b.meta["extra"]["frozen"] == ["dynamics", "pose"]
    with pytest.raises(InputError, match="cannot freeze"):
        train_latent("smoke", steps=1, out=tmp_path / "bad.pt", progress=False, init=base, freeze=("nose",))


def test_the_read_out_stage_trains_a_new_dynamics_encoder_and_keeps_the_rest(tmp_path, one_thread):
    """train_dynamics replaces z_dyn's encoder and read-out of a trained model, on the crops its own pose encoder
    places; every other weight is the init's, the read-out loss falls, and the held-out R^2 is in the metadata."""
    from vasa_lite.latent.train import train_dynamics
    from vasa_lite.world.params import DYNAMICS_NAMES

    init = checkpoint_file("smoke")
    s = train_dynamics("smoke", init=init, steps=150, out=tmp_path / "dyn.pt", progress=False)
    a, b = load_latent("smoke", init), load_latent("smoke", s["checkpoint"])
    for part in ("pose", "appearance", "flow", "renderer", "refiner"):
        assert all(torch.equal(x, y) for x, y in zip(getattr(a, part).state_dict().values(),
                                                      getattr(b, part).state_dict().values())), part
    assert not torch.equal(a.dynamics.head[-1].weight, b.dynamics.head[-1].weight)
    rows = [json.loads(line) for line in (tmp_path / "dyn.jsonl").read_text().splitlines()]
    assert np.mean([r["dyn"] for r in rows[-3:]]) < 0.6 * np.mean([r["dyn"] for r in rows[:3]])
    assert {f"val_r2.{n}" for n in DYNAMICS_NAMES} <= set(b.meta["metrics"])
    assert b.meta["extra"]["init"]["new_parts"] == ["dynamics", "expression_head"]
    with pytest.raises(InputError, match="init"):
        train_dynamics("smoke", steps=1, out=tmp_path / "x.pt", progress=False)


def test_a_decoder_blind_to_z_dyn_sends_it_only_the_read_out_gradient():
    """dyn_in_decoder=False: reconstruction and transfer cannot reach the dynamics encoder, so head pose has to go
    through z_pose; the expression read-out still trains it."""
    import dataclasses

    from vasa_lite.latent.train import latent_step

    torch.manual_seed(0)
    p = get_preset("smoke")
    model = FaceLatentModel(p.latent, p.world.size)
    x_i, x_j = torch.rand(2, 3, 64, 64), torch.rand(2, 3, 64, 64)
    expression = torch.rand(4, model.expression_head.out_features)   # the world's factors of i then j

    def dyn_grad(**changes):
        cfg = dataclasses.replace(p.latent, cross_id_weight=0.0, pose_supervision=False, **changes)
        model.zero_grad(set_to_none=True)
        latent_step(model, x_i, x_j, cfg=cfg, expression=expression)["loss"].backward()
        grads = [q.grad for q in model.dynamics.parameters()]
        return sum(float(g.abs().sum()) for g in grads if g is not None)

    assert dyn_grad(dyn_supervision=False) > 0                       # the decoder uses z_dyn
    assert dyn_grad(dyn_supervision=False, dyn_in_decoder=False) == 0
    assert dyn_grad(dyn_in_decoder=False) > 0                        # the read-out alone


def test_undo_self_flow_inverts_the_warps_own_error():
    import torch.nn.functional as F

    from vasa_lite.latent.model import undo_self_flow

    r = 16
    ident = geo.base_grid(1, r, r)[0, ..., :2].permute(2, 0, 1)[None]
    # a smooth error field, gentle enough (|grad e| < 1) for the fixed point to converge
    e = torch.cat([0.06 * torch.sin(2 * ident[:, 1:2]) + 0.03, 0.05 * torch.cos(3 * ident[:, :1])], 1)
    own = ident + e                                    # the source's own motion warps x to x + e(x)
    errors = [float((undo_self_flow(own, e, k) - ident).abs().mean()) for k in (0, 1, 3, 6)]
    assert errors[0] == pytest.approx(float(e.abs().mean()))
    assert errors[1] < errors[0] and errors[2] < errors[1] and errors[3] < errors[2]
    assert errors[2] < 0.1 * errors[0]                # three steps take out over 90% of the warp's own error
    # any other flow f maps to y with s(y) = f: the correction inverts the self-map, it does not just subtract e
    f = ident + 0.1
    y = undo_self_flow(f, e, 8)
    s_y = y + F.grid_sample(e, y.permute(0, 2, 3, 1), mode="bilinear", padding_mode="border", align_corners=False)
    inner = (slice(None), slice(None), slice(2, -2), slice(2, -2))     # away from the border's padding
    assert float((s_y - f)[inner].abs().max()) < 1e-3
    assert torch.equal(undo_self_flow(f, torch.zeros_like(e), 3), f)   # no error: the flow is left alone


def test_self_flow_copies_the_source_onto_its_own_motion():
    import dataclasses

    from vasa_lite.world.actor import sample_actor
    from vasa_lite.world.params import FRAME_FACTOR_NAMES, FACTORS
    from vasa_lite.world.render import Renderer

    trained = load_latent("smoke")
    p = get_preset("smoke")
    rows = np.asarray([[FACTORS[n].default for n in FRAME_FACTOR_NAMES]] * 2, np.float32)
    rows[1, FRAME_FACTOR_NAMES.index("yaw")] = 15.0
    x = Renderer(p.world.size).render([sample_actor(3), sample_actor(4)],
                                      {n: rows[:, c] for c, n in enumerate(FRAME_FACTOR_NAMES)})
    warped = {}
    for k in (0, 3):
        m = FaceLatentModel(dataclasses.replace(trained.cfg, self_flow=k), p.world.size).eval()
        m.load_state_dict(trained.state_dict())
        with torch.no_grad():
            src = m.encode_source(x)
            assert ("flow_error" in src) == (k > 0)
            _, parts = m.decode(src, src["z_pose"], src["z_dyn"], return_parts=True)
            other = m.decode(src, src["z_pose"].flip(0), src["z_dyn"].flip(0))
        warped[k] = float((parts["warped"] - x).abs().mean())
        assert other.shape == x.shape and torch.isfinite(other).all()
    assert warped[3] < 0.5 * warped[0]                # the corrected warp copies the source's pixels back


def test_self_flow_is_recorded_in_the_checkpoint_and_kept_by_a_fine_tune(tmp_path, one_thread):
    import dataclasses

    from vasa_lite.checkpoints import load_checkpoint, save_checkpoint
    from vasa_lite.latent.train import train_latent

    p = get_preset("smoke")
    state, meta = load_checkpoint(checkpoint_file("smoke"), component="latent")
    for k, name in ((2, "on.pt"), (None, "before.pt")):
        config = dataclasses.asdict(dataclasses.replace(p.latent, self_flow=k or 0))
        if k is None:
            config.pop("self_flow")                   # a checkpoint from before the setting existed
        save_checkpoint(tmp_path / name, state, component="latent", preset="smoke", steps=meta["steps"],
                        extra={**meta["extra"], "config": config})
    assert load_latent("smoke", tmp_path / "on.pt").cfg.self_flow == 2        # the preset's value does not matter
    assert load_latent("smoke", tmp_path / "before.pt").cfg.self_flow == 0
    from vasa_lite.latent.train import WARP_PARTS

    kept = train_latent("smoke", steps=1, out=tmp_path / "ft.pt", progress=False, preview_every=0,
                        init=tmp_path / "on.pt", overrides={"lr": 1e-6}, freeze=WARP_PARTS)
    assert load_latent("smoke", kept["checkpoint"]).cfg.self_flow == 2
    # under the correction a warp that trains drifts: refused, with what to do
    with pytest.raises(InputError, match="frozen.*flow"):
        train_latent("smoke", steps=1, out=tmp_path / "ft1.pt", progress=False, preview_every=0,
                     init=tmp_path / "on.pt", freeze=("pose", "dynamics"))
    off = train_latent("smoke", steps=1, out=tmp_path / "ft0.pt", progress=False, preview_every=0,
                       init=tmp_path / "on.pt", overrides={"lr": 1e-6, "self_flow": 0})
    assert load_latent("smoke", off["checkpoint"]).cfg.self_flow == 0
