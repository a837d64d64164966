"""Augmentations keep pixels and polygons together; image loading errors
name the file; the test resize follows mmocr's keep-ratio rule."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import shared_file

from tcmbench.data import transforms as T
from tcmbench.data.schema import Instance, Sample
from tcmbench.data.torch_data import TrainDataset, collate, load_image, pad_batch
from tcmbench.errors import ImageReadError, TcmbenchError


def _scene(h: int = 120, w: int = 160) -> tuple[np.ndarray, list[np.ndarray]]:
    """Grey image with two red 'words' and their exact polygons (red, so
    that black borders from rotation / padding never look like text)."""
    img = np.full((h, w, 3), 180, np.uint8)
    boxes = [(10, 15, 70, 35), (60, 70, 140, 100)]
    polys = []
    for x0, y0, x1, y1 in boxes:
        img[y0:y1, x0:x1] = (255, 0, 0)
        polys.append(np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float32))
    return img, polys


def _text_mask(img: np.ndarray) -> np.ndarray:
    r, g, b = (img[..., i].astype(int) for i in range(3))
    return ((r > 150) & (g < 90) & (b < 90)).astype(np.uint8)


def _poly_mask(polys: list[np.ndarray], shape: tuple[int, int]) -> np.ndarray:
    m = np.zeros(shape, np.uint8)
    for p in polys:
        cv2.fillPoly(m, [np.round(p).astype(np.int32).reshape(-1, 1, 2)], 1)
    return m


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum()) / max(1, float((a | b).sum()))


def test_hflip_mirrors_polygons_and_keeps_clockwise_order() -> None:
    img, polys = _scene()
    out, fpolys = T.hflip(img, polys)
    assert np.array_equal(out, img[:, ::-1])
    assert _iou(_text_mask(out), _poly_mask(fpolys, out.shape[:2])) > 0.9
    for before, after in zip(polys, fpolys):
        # same (positive, y-down) orientation before and after
        assert np.sign(T.polygon_area(before)) == np.sign(T.polygon_area(after))
        x, y = after[:, 0], after[:, 1]
        assert np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)) > 0
        assert sorted(after[:, 0]) == sorted(160 - before[:, 0])


@pytest.mark.parametrize("degrees", [-10.0, 7.5])
def test_rotate_moves_polygons_with_the_pixels(degrees: float) -> None:
    img, polys = _scene()
    out, rpolys = T.rotate(img, polys, degrees)
    assert out.shape == img.shape
    assert _iou(_text_mask(out), _poly_mask(rpolys, out.shape[:2])) > 0.85
    # and the rotated polygons are not just the old ones
    assert not np.allclose(rpolys[0], polys[0])


def test_rescale_scales_both_sides_by_one_factor() -> None:
    img, polys = _scene()
    out, spolys = T.rescale(img, polys, 1.5)
    assert out.shape[:2] == (180, 240)
    np.testing.assert_allclose(spolys[0], polys[0] * 1.5)
    assert _iou(_text_mask(out), _poly_mask(spolys, out.shape[:2])) > 0.9


def test_crop_box_edges_never_cut_text() -> None:
    img, polys = _scene()
    for seed in range(200):
        rng = np.random.default_rng(seed)
        x0, y0, x1, y1 = T.text_aware_crop_box(img.shape[:2], polys, [False, False], rng)
        if (x0, y0, x1, y1) == (0, 0, 160, 120):
            continue
        inside = 0
        for p in polys:
            px0, py0 = p.min(axis=0)
            px1, py1 = p.max(axis=0)
            # along each axis a polygon is entirely on one side of each edge
            assert not (px0 < x0 < px1) and not (px0 < x1 < px1)
            assert not (py0 < y0 < py1) and not (py0 < y1 < py1)
            inside += px0 >= x0 and px1 <= x1 and py0 >= y0 and py1 <= y1
        assert inside >= 1


def test_crop_without_text_free_rows_falls_back_to_whole_image() -> None:
    poly = np.array([[0, 0], [99, 0], [99, 49], [0, 49]], np.float32)
    box = T.text_aware_crop_box((50, 100), [poly], [False], np.random.default_rng(0))
    assert box == (0, 0, 100, 50)


def test_crop_and_fit_keeps_aspect_and_drops_outside_polygons() -> None:
    img, polys = _scene()
    out, kept, ign = T.crop_and_fit(img, polys, [False, True], (0, 0, 80, 40), (64, 64))
    assert out.shape == (64, 64, 3)
    assert len(kept) == 1 and ign == [False]
    np.testing.assert_allclose(kept[0], polys[0] * 0.8)  # 80 px wide -> 64
    assert (out[33:] == 0).all()  # padded below the 32-px-high resized crop


def _no_jitter_recipe(crop: int) -> dict:
    return {
        "train": {
            "augment": [
                {"name": "hflip", "prob": 0.5},
                {"name": "rotate", "max_angle": 10.0},
                {"name": "random_scale", "range": [0.5, 3.0]},
                {"name": "random_crop", "size": [crop, crop]},
            ],
            "pad_divisor": 32,
        },
        "normalize": {"mean": [0, 0, 0], "std": [1, 1, 1]},
    }


def test_full_pipeline_keeps_pixels_and_polygons_together() -> None:
    img, polys = _scene()
    tf = T.TrainTransform.from_recipe(_no_jitter_recipe(96))
    checked = 0
    for seed in range(15):
        aug = tf(img, polys, [False, False], np.random.default_rng(seed))
        assert aug.image.shape == (3, 96, 96) and aug.image.dtype == np.float32
        pixels = np.ascontiguousarray(aug.image.transpose(1, 2, 0)).astype(np.uint8)
        text = _text_mask(pixels)
        if text.sum() < 20:
            continue
        # polygons may stick out of the canvas or into rotation corners
        content = pixels.max(axis=2) > 0
        assert _iou(text, _poly_mask(aug.polygons, (96, 96)) & content) > 0.75, seed
        checked += 1
    assert checked >= 8


def test_pipeline_is_a_function_of_the_rng_seed() -> None:
    img, polys = _scene()
    tf = T.TrainTransform.from_recipe({"train": {"augment": T.default_augment(64)}})
    a = tf(img, polys, [False, False], np.random.default_rng(3))
    b = tf(img, polys, [False, False], np.random.default_rng(3))
    c = tf(img, polys, [False, False], np.random.default_rng(4))
    assert np.array_equal(a.image, b.image)
    assert all(np.array_equal(p, q) for p, q in zip(a.polygons, b.polygons))
    assert not np.array_equal(a.image, c.image)


def test_default_normalisation_is_tcm_mean_std() -> None:
    pixel = np.array(T.MEAN_RGB, np.float32).round().astype(np.uint8)[None, None]
    out = T.normalize(np.repeat(np.repeat(pixel, 2, 0), 2, 1))
    assert out.shape == (3, 2, 2)
    assert np.abs(out).max() < 0.5 / 57.0 + 1e-6
    white = T.normalize(np.full((1, 1, 3), 255, np.uint8))
    np.testing.assert_allclose(
        white[:, 0, 0], (255 - np.array(T.MEAN_RGB)) / np.array(T.STD_RGB), rtol=1e-6
    )


def test_color_jitter_brightness_multiplies() -> None:
    img = np.full((4, 4, 3), 100, np.uint8)
    out = T.color_jitter(img, np.random.default_rng(0), brightness=0.2, saturation=0.0)
    factor = out[0, 0, 0] / 100
    assert 0.8 <= factor <= 1.2 and (out == out[0, 0, 0]).all()
    grey = T.color_jitter(img, np.random.default_rng(0), brightness=0.0, saturation=0.5)
    assert np.array_equal(grey, img)  # a grey image has no saturation to change


def test_unknown_augmentation_or_parameter_is_an_error() -> None:
    with pytest.raises(TcmbenchError, match="unknown augmentation 'blur'"):
        T.TrainTransform.from_recipe({"train": {"augment": [{"name": "blur"}]}})
    with pytest.raises(TcmbenchError, match="max_angel"):
        T.TrainTransform.from_recipe({"train": {"augment": [{"name": "rotate", "max_angel": 3}]}})


@pytest.mark.parametrize(
    ("size", "limits", "expected"),
    [
        ((720, 1280), (4068, 1024), (1024, 1820)),  # short side binds: 1024/720
        ((200, 3000), (4068, 1024), (271, 4068)),  # long side binds: 4068/3000
        ((720, 1280), (None, 736), (736, 1308)),
        ((100, 50), (None, None), (100, 50)),
    ],
)
def test_test_resize_keeps_ratio_under_limits(size, limits, expected) -> None:
    assert T.test_resize_size(*size, *limits) == expected


def test_inference_transform_pads_to_32_and_returns_scale() -> None:
    tf = T.InferenceTransform.from_recipe(
        {"test": {"long_side": None, "short_side": 50, "pad_divisor": 32}}
    )
    img = np.zeros((100, 70, 3), np.uint8)
    x, (sx, sy) = tf(img)
    assert x.shape == (3, 96, 64)  # resized to 71 x 50, padded
    assert (sx, sy) == pytest.approx((50 / 70, 71 / 100))


def test_pad_batch_stacks_different_sizes() -> None:
    a, b = np.ones((3, 32, 64), np.float32), np.ones((3, 64, 32), np.float32)
    out = pad_batch([a, b])
    assert out.shape == (2, 3, 64, 64)
    assert out[0, :, 32:].sum() == 0 and out[1, :, :, 32:].sum() == 0


# ---------------------------------------------------------------- images


def test_load_image_errors_name_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope.jpg"
    with pytest.raises(ImageReadError, match=r"image not found: .*nope\.jpg"):
        load_image(missing)
    odd = tmp_path / "scan.xyz"
    odd.write_bytes(b"123")
    with pytest.raises(ImageReadError, match=r"scan.xyz: unsupported image type '\.xyz'"):
        load_image(odd)
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG not really")
    with pytest.raises(ImageReadError, match=r"broken\.png: cannot decode"):
        load_image(broken)
    with pytest.raises(ImageReadError, match="sample 'x' has no image"):
        load_image(None, "x")


def test_load_image_is_rgb(tmp_path: Path) -> None:
    bgr = np.zeros((4, 5, 3), np.uint8)
    bgr[..., 2] = 255  # red in OpenCV's BGR
    cv2.imwrite(str(tmp_path / "red.png"), bgr)
    rgb = load_image(tmp_path / "red.png")
    assert rgb.shape == (4, 5, 3) and (rgb[..., 0] == 255).all() and (rgb[..., 2] == 0).all()


@pytest.mark.realdata
def test_load_image_ignores_exif_rotation_like_the_annotations() -> None:
    # IMG_2177 carries EXIF orientation 6; its GT box (x 952, w 94, h 992)
    # only fits the stored 1600 x 1200 grid.
    img = load_image(shared_file("msra-td500/test/IMG_2177.JPG"))
    assert img.shape[:2] == (1200, 1600)


def test_train_dataset_items_are_deterministic_and_collate(tmp_path: Path) -> None:
    img, polys = _scene(64, 64)
    cv2.imwrite(str(tmp_path / "a.png"), img)
    sample = Sample("a", str(tmp_path / "a.png"), 64, 64, [Instance(p) for p in polys])

    def targets(polygons, ignores, height, width):
        return {"mask": _poly_mask(list(polygons), (height, width)).astype(np.float32)}

    ds = TrainDataset(
        [sample],
        T.TrainTransform.from_recipe({"train": {"augment": T.default_augment(32)}}),
        targets,
        seed=5,
    )
    a, b, c = ds[(0, 7)], ds[(0, 7)], ds[(0, 8)]
    assert np.array_equal(a["image"], b["image"]) and not np.array_equal(a["image"], c["image"])
    batch = collate([a, c])
    assert tuple(batch["images"].shape) == (2, 3, 32, 32)
    assert tuple(batch["targets"]["mask"].shape) == (2, 32, 32)
    assert [m["draw"] for m in batch["metas"]] == [7, 8]
