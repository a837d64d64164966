"""``tcmbench evaluate`` / ``tcmbench train`` end to end on a tiny ICDAR
2015-layout folder, the prediction cache, sharded inference, submission
files and the bad-input messages."""

from __future__ import annotations

import json
import os
import socket
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import shared_file
from shapely.geometry import LinearRing
from tiny_data import THRESHOLD_SPEC, TINY_SPEC, make_ic15_folder

from tcmbench.cli import main
from tcmbench.contract import registry as plugins
from tcmbench.contract.hookspecs import hookimpl
from tcmbench.contract.spec import DetectorConfig
from tcmbench.data.schema import Prediction
from tcmbench.eval.submission import rrc_entry_name, rrc_quad, submission_entries, write_submission
from tcmbench.hub import checkpoints as hub


class _TinyPlugin:
    @hookimpl
    def register_detectors(self, register):
        register(THRESHOLD_SPEC)
        register(TINY_SPEC)


@pytest.fixture
def tiny_plugins():
    pm = plugins.get_plugin_manager()
    p = _TinyPlugin()
    pm.register(p, name="tiny-eval-plugins")
    try:
        yield
    finally:
        pm.unregister(p)


@pytest.fixture
def ic15(tmp_path: Path) -> Path:
    return make_ic15_folder(tmp_path / "ic15", n_train=4, n_test=3)


@pytest.fixture
def threshold_ckpt(tmp_path: Path, tiny_plugins: None) -> Path:
    model = plugins.get_plugin_manager().hook.build_detector(
        spec=THRESHOLD_SPEC, config=DetectorConfig()
    )
    return hub.save_checkpoint(tmp_path / "threshold", model, THRESHOLD_SPEC, DetectorConfig())


def _run(args: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str, str]:
    try:
        main(args)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_evaluate_a_perfect_detector(
    ic15: Path, threshold_ckpt: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """The fixed threshold detector finds every dark box exactly; the test
    scale upsamples 64 -> 96 px, so this also checks that predictions are
    mapped back to original pixels."""
    out_json, subm, vis = tmp_path / "r.json", tmp_path / "subm", tmp_path / "vis"
    code, out, err = _run(
        [
            "evaluate",
            "--plugin",
            "tiny-threshold",
            "--dataset",
            "icdar2015",
            "--data-root",
            str(ic15),
            "--weights",
            str(threshold_ckpt),
            "--device",
            "cpu",
            "--json",
            str(out_json),
            "--save-predictions",
            str(subm),
            "--visualize",
            str(vis),
            "--no-progress",
        ],
        capsys,
    )
    assert code == 0, err
    assert "| icdar2015 | test | icdar2015 | 3 | 1.0000 | 1.0000 | 1.0000 |" in out
    doc = json.loads(out_json.read_text())
    assert (doc["precision"], doc["recall"], doc["hmean"]) == (1.0, 1.0, 1.0)
    assert doc["cached_predictions"] is False and doc["checkpoint_sha256"]
    assert doc["test"]["test"]["short_side"] == 96
    with zipfile.ZipFile(subm / "submit.zip") as zf:
        assert sorted(zf.namelist()) == ["res_img_1.txt", "res_img_2.txt", "res_img_3.txt"]
        gt_lines = (ic15 / "test_gts" / "gt_img_1.txt").read_text().split()
        sub_lines = zf.read("res_img_1.txt").decode().split()
    # the same boxes as the GT, as 8 integers, up to a pixel
    assert len(sub_lines) == len(gt_lines)
    for s, g in zip(sorted(sub_lines), sorted(gt_lines)):
        sv = np.array(s.split(","), int)
        gv = np.array(g.split(",")[:8], int)
        assert sv.shape == (8,) and np.abs(sv - gv).max() <= 1
    assert sorted(p.name for p in vis.iterdir()) == ["img_1.png", "img_2.png", "img_3.png"]

    # Re-scoring with --sweep re-uses the cached predictions.
    code, out, err = _run(
        [
            "evaluate",
            "--plugin",
            "tiny-threshold",
            "--dataset",
            "icdar2015",
            "--data-root",
            str(ic15),
            "--weights",
            str(threshold_ckpt),
            "--device",
            "cpu",
            "--sweep",
            "--json",
            str(out_json),
            "--no-progress",
        ],
        capsys,
    )
    assert code == 0, err
    doc = json.loads(out_json.read_text())
    assert doc["cached_predictions"] is True and doc["sweep"]["best_hmean"] == 1.0
    # Named as the papers' figure, in the printed line and in the JSON.
    papers = "best-threshold hmean as mmocr 0.x reports it (the papers' figure)"
    assert f"{papers}; not the official protocol's figure: hmean 1.0000" in out
    assert doc["sweep"]["label"].startswith(papers)
    assert list((Path(os.environ["TCMBENCH_CACHE"]) / "predictions").glob("*.json.gz"))


def test_evaluate_bad_input_is_one_clear_line(
    ic15: Path, threshold_ckpt: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    base = [
        "evaluate",
        "--plugin",
        "tiny-threshold",
        "--dataset",
        "icdar2015",
        "--data-root",
        str(ic15),
        "--device",
        "cpu",
        "--no-progress",
    ]
    code, _, err = _run(base, capsys)
    assert code == 2 and "--weights is required for icdar2015" in err

    code, _, err = _run(
        ["evaluate", "--plugin", "tiny-threshold", "--dataset", "synthtext-mini"], capsys
    )
    assert code == 2 and "ships no default weights" in err and "Traceback" not in err

    code, _, err = _run(
        [
            "evaluate",
            "--plugin",
            "tiny-train",
            "--dataset",
            "icdar2015",
            "--data-root",
            str(ic15),
            "--weights",
            str(threshold_ckpt),
            "--device",
            "cpu",
        ],
        capsys,
    )
    assert code == 2 and "checkpoint of plugin 'tiny-threshold'" in err

    if not torch.cuda.is_available():
        code, _, err = _run([*base, "--weights", str(threshold_ckpt), "--device", "cuda"], capsys)
        assert code == 2 and "no CUDA device is available" in err and "Traceback" not in err

    (ic15 / "test_images" / "img_2.png").unlink()
    (ic15 / "test_images" / "img_2.gif").write_bytes(b"GIF89a broken")
    code, _, err = _run([*base, "--weights", str(threshold_ckpt), "--no-cache"], capsys)
    assert code == 2 and "img_2.gif" in err and "Traceback" not in err


def test_tcm_switches_need_tcm(capsys: pytest.CaptureFixture) -> None:
    code, _, err = _run(["train", "--dataset", "icdar2015", "--no-tcm-vg", "--steps", "1"], capsys)
    assert code == 2 and "--no-tcm-vg only make(s) sense with --tcm" in err


def test_tcm_options_build_a_tcm_config() -> None:
    from tcmbench.commands._options import tcm_config_from_options

    assert tcm_config_from_options() is None
    cfg = tcm_config_from_options(
        tcm_enabled=True, tcm_context=32, no_tcm_vg=True, clip_random=True
    )
    assert (
        cfg.context_length,
        cfg.visual_generator,
        cfg.language_generator,
        cfg.clip_pretrained,
    ) == (32, False, True, None)
    assert tcm_config_from_options(tcm_enabled=True, no_tcm_lp=True).context_length == 0


def test_train_cli_resume_and_evaluate_its_checkpoint(
    ic15: Path, tiny_plugins: None, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from safetensors.torch import load_file

    run = tmp_path / "run"
    args = [
        "train",
        "--plugin",
        "tiny-train",
        "--dataset",
        "icdar2015",
        "--data-root",
        str(ic15),
        "--output",
        str(run),
        "--steps",
        "3",
        "--batch-size",
        "2",
        "--save-every",
        "1",
        "--keep",
        "0",
        "--eval-every",
        "2",
        "--device",
        "cpu",
        "--no-progress",
        "--seed",
        "3",
    ]
    code, out, err = _run(args, capsys)
    assert code == 0, err
    assert "trained 3 steps" in out and "| icdar2015 | test | icdar2015 | 3 |" in out
    events = [json.loads(line) for line in (run / "train_log.jsonl").read_text().splitlines()]
    assert [e["step"] for e in events if e["event"] == "eval"] == [2, 3]
    assert all(0.0 <= e["hmean"] <= 1.0 for e in events if e["event"] == "eval")
    final = load_file(str(run / "final" / "model.safetensors"))
    config = json.loads((run / "final" / "config.json").read_text())
    assert config["plugin"] == "tiny-train" and config["train"]["seed"] == 3

    # resume from step 1 into a new folder: only --resume and --output given
    code, out, err = _run(
        [
            "train",
            "--resume",
            str(run / "checkpoints" / "step-0000001"),
            "--output",
            str(tmp_path / "again"),
            "--device",
            "cpu",
            "--no-progress",
        ],
        capsys,
    )
    assert code == 0, err
    again = load_file(str(tmp_path / "again" / "final" / "model.safetensors"))
    assert all(torch.equal(final[k], again[k]) for k in final)

    code, out, err = _run(
        [
            "evaluate",
            "--plugin",
            "tiny-train",
            "--dataset",
            "icdar2015",
            "--data-root",
            str(ic15),
            "--weights",
            str(run / "final"),
            "--device",
            "cpu",
            "--no-progress",
        ],
        capsys,
    )
    assert code == 0, err
    assert "| icdar2015 | test |" in out


# ----------------------------------------------------- sharded inference


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _shard_worker(rank: int, port: int, ic15: str, ckpt: str, out: str) -> None:
    # A forked child must not start OpenMP threads (GNU libgomp hangs when
    # the parent already had a pool): one thread, first thing.
    torch.set_num_threads(1)
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        WORLD_SIZE="2",
        RANK=str(rank),
        LOCAL_RANK=str(rank),
    )
    import torch.distributed as dist

    from tcmbench.data.dataset import load_split
    from tcmbench.inference import predict_samples
    from tcmbench.inference.world import init_distributed

    init_distributed(torch.device("cpu"))
    try:
        # forked: the parent's tiny plugins are registered here too
        samples, _ = load_split("icdar2015", "test", data_root=ic15, need_images=True)
        loaded = hub.load_checkpoint(ckpt)
        preds = predict_samples(
            loaded.model, samples, THRESHOLD_SPEC.recipe("x"), torch.device("cpu"), progress=False
        )
        Path(out, f"rank{rank}.json").write_text(
            json.dumps({k: [p.to_dict() for p in v] for k, v in preds.items()})
        )
    finally:
        dist.destroy_process_group()


def test_predictions_sharded_over_two_processes_equal_one_process(
    ic15: Path, threshold_ckpt: Path, tmp_path: Path
) -> None:
    import torch.multiprocessing as mp

    from tcmbench.data.dataset import load_split
    from tcmbench.inference import predict_samples

    mp.start_processes(
        _shard_worker,
        args=(_free_port(), str(ic15), str(threshold_ckpt), str(tmp_path)),
        nprocs=2,
        start_method="fork",
    )
    samples, _ = load_split("icdar2015", "test", data_root=str(ic15), need_images=True)
    single = predict_samples(
        hub.load_checkpoint(threshold_ckpt).model,
        samples,
        THRESHOLD_SPEC.recipe("x"),
        torch.device("cpu"),
        batch_size=2,
        progress=False,
    )
    expected = {k: [p.to_dict() for p in v] for k, v in single.items()}
    assert sum(len(v) for v in expected.values()) >= 3
    for rank in (0, 1):  # every rank holds all predictions, gathered
        got = json.loads((tmp_path / f"rank{rank}.json").read_text())
        assert got.keys() == expected.keys()
        for k, want in expected.items():
            assert len(got[k]) == len(want)
            for a, b in zip(got[k], want):
                np.testing.assert_allclose(a["polygon"], b["polygon"], atol=1e-6)


# ----------------------------------------------------------- submissions


def test_rrc_entry_names() -> None:
    assert rrc_entry_name("img_17") == "res_img_17.txt"
    assert rrc_entry_name("IMG_0059") == "res_img_59.txt"
    assert rrc_entry_name("42") == "res_img_42.txt"
    assert rrc_entry_name("night_3a") == "res_night_3a.txt"


def test_rrc_quads_are_clockwise_integers() -> None:
    ccw = np.array([[0, 0], [0, 10], [20, 10], [20, 0]], float)  # counter-clockwise on screen
    q = rrc_quad(ccw)
    nxt = np.roll(q, -1, axis=0)
    assert q.dtype.kind == "i" and np.sum((nxt[:, 0] - q[:, 0]) * (nxt[:, 1] + q[:, 1])) <= 0
    assert sorted(map(tuple, q)) == sorted(map(tuple, ccw.astype(int)))
    curved = np.array([[0, 0], [10, -2], [20, 0], [20, 8], [10, 6], [0, 8]], float)
    assert rrc_quad(curved).shape == (4, 2)


def test_polygon_and_ltrb_formats() -> None:
    preds = {"1001": [Prediction(np.array([[1.4, 2.6], [10, 2], [10, 9], [5, 12], [1, 9]]), 0.9)]}
    # The curved scripts reject rings shapely calls counter-clockwise: this
    # one is written reversed (the same region).
    assert submission_entries(preds, "ctw1500-iou") == {"1001.txt": "1,9,5,12,10,9,10,2,1,3\n"}
    assert submission_entries(preds, "totaltext-iou", scores=True)["1001.txt"].endswith(
        ",0.900000\n"
    )
    assert submission_entries({"img_3": preds["1001"]}, "icdar2013") == {
        "res_img_3.txt": "1,2,10,12\n"
    }
    # Deteval.py reads y,x: the same polygon, each pair swapped.
    assert submission_entries(preds, "totaltext-deteval") == {
        "1001.txt": "3,1,2,10,9,10,12,5,9,1\n"
    }


@pytest.mark.parametrize("protocol", ["totaltext-deteval", "totaltext-iou", "ctw1500-iou"])
def test_submission_reads_back_with_the_protocols_default_reader(
    tmp_path: Path, protocol: str
) -> None:
    """A submit.zip written for a protocol is read back by ``score``'s default
    reader for it (no --pred-order needed) to the same polygons."""
    from tcmbench.eval.io import PROTOCOL_INPUTS, read_predictions

    poly = np.array([[1, 3], [10, 2], [10, 9], [5, 12], [1, 9]], float)
    paths = write_submission(tmp_path, {"img7": [Prediction(poly, 0.9)]}, protocol)
    preds, _ = read_predictions(paths["zip"], style=PROTOCOL_INPUTS[protocol][0])
    got = np.asarray(preds["img7"][0].polygon).reshape(-1, 2)
    if protocol == "totaltext-deteval":  # Deteval.py checks no orientation
        assert np.array_equal(got, poly)
    else:  # reversed, as the curved scripts accept it (not LinearRing.is_ccw)
        assert np.array_equal(got, poly[::-1])
        assert not LinearRing(got).is_ccw


def _read_zip(path: Path) -> dict[str, list[list[int]]]:
    with zipfile.ZipFile(path) as zf:
        return {
            n: [
                [int(v) for v in ln.split(",")]
                for ln in zf.read(n).decode("utf-8-sig").splitlines()
                if ln.strip()
            ]
            for n in zf.namelist()
            if n.endswith(".txt")
        }


@pytest.mark.realdata
def test_real_rrc_submission_round_trips(tmp_path: Path) -> None:
    """PixelLink's real IC15 submission, read and written back: the same
    files and (clockwise, integer) lines."""
    original = _read_zip(shared_file("icdar2015/pixellink_submit.zip"))
    preds = {}
    for name, lines in original.items():
        sid = name[len("res_") : -len(".txt")]
        preds[sid] = [Prediction(np.array(ln, float)) for ln in lines]
    paths = write_submission(tmp_path, preds, "icdar2015")
    rewritten = _read_zip(paths["zip"])
    assert rewritten == original
    assert sum(len(v) for v in rewritten.values()) == 2823


def test_tcm_options_on_evaluate_must_match_the_checkpoint() -> None:
    from tcmbench.commands.evaluate import check_tcm_matches
    from tcmbench.contract.spec import TCMConfig
    from tcmbench.errors import CheckpointError

    saved = TCMConfig(context_length=32, visual_generator=False)
    check_tcm_matches(TCMConfig(visual_generator=False), saved, context_given=False)
    with pytest.raises(CheckpointError, match="visual_generator=False"):
        check_tcm_matches(TCMConfig(), saved, context_given=False)
    with pytest.raises(CheckpointError, match="context_length=32"):
        check_tcm_matches(
            TCMConfig(visual_generator=False, context_length=4), saved, context_given=True
        )


@pytest.mark.slow
def test_readme_command_uses_the_embedded_weights(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """`tcmbench evaluate --plugin dbnet --dataset synthtext-mini` without
    --weights finds the checkpoint shipped in the plugin package (here on
    the first 20 test images; the full figure is in docs/benchmarks)."""
    from tcmbench.hub.checkpoints import embedded_weights

    folder = embedded_weights(plugins.get_detector("dbnet"))
    assert folder is not None, "plugins/tcmbench_dbnet/weights/ holds no checkpoint"
    assert (folder / "model.safetensors").stat().st_size <= 10 * 1024 * 1024
    out = tmp_path / "r.json"
    code, _, err = _run(
        [
            "evaluate",
            "--plugin",
            "dbnet",
            "--dataset",
            "synthtext-mini",
            "--limit",
            "20",
            "--device",
            "cpu",
            "--batch-size",
            "4",
            "--no-progress",
            "--json",
            str(out),
        ],
        capsys,
    )
    assert code == 0, err
    doc = json.loads(out.read_text())
    assert doc["weights"] == str(folder) and doc["images"] == 20
    assert doc["hmean"] >= 0.6
