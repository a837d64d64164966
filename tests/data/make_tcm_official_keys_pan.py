"""Write tests/data/tcm_official_keys_pan.txt: the parameter names and shapes
of the official TCM-PAN checkpoints (github.com/wenwenyu/TCM, config
ocrclip/configs/_base_/det_models/panet_r50att_prompt_gen_vis_fpem_ffm.py
with ocrclip/configs/textdet/panet/panet_clip_r50att_prompt_gen_vis_fpem_ffm_
600e_ft_ic15_taiji.py: CLIPResNetWithAttention at input_resolution 736,
CLIPTextContextEncoder with context_length 18 = 14 prompt tokens + 4
learnable, PromptGenerator, two ContextDecoders, FPEM_FFM with in_channels
[256, 512, 1024, 2048 + 1], PANHead in_channels [128] * 4 -> 6 outputs;
PANIdentityHead holds no parameters).

The CLIP / prompt / decoder part is the same model as TCM-DBNet's, so it is
read from tests/data/tcm_official_keys.txt (made by
make_tcm_official_keys.py) with two changes: the attention pool's positional
embedding has (736 / 32)^2 + 1 = 530 rows, and DBNet's neck / head lines are
replaced by PAN's. The neck and head names come from reading mmocr 0.x's
module definitions (names and shapes only), independently of tcmbench's
model:

- ``neck.reduce_conv_c{2,3,4,5}``: Sequential(Conv2d(in, 128, 1) with bias,
  BatchNorm2d(128), ReLU) -> ``.0.weight/.bias``, ``.1.<BN>``;
- ``neck.fpems.{0,1}``: two FPEMs, each with ``up_add{1,2,3}`` and
  ``down_add{1,2,3}`` SeparableConv2d = depthwise_conv Conv2d(128, 128, 3,
  groups=128) with bias, pointwise_conv Conv2d(128, 128, 1) with bias, bn
  BatchNorm2d(128);
- ``bbox_head.out_conv``: Conv2d(512, 6, 1) with bias.

Run: .venv/bin/python tests/data/make_tcm_official_keys_pan.py
"""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).parent
SOURCE = HERE / "tcm_official_keys.txt"
OUT = HERE / "tcm_official_keys_pan.txt"
RESOLUTION = 736
CHANNELS = 128


def _bn(prefix: str, n: int) -> list[tuple[str, tuple[int, ...]]]:
    return [
        (f"{prefix}.weight", (n,)),
        (f"{prefix}.bias", (n,)),
        (f"{prefix}.running_mean", (n,)),
        (f"{prefix}.running_var", (n,)),
        (f"{prefix}.num_batches_tracked", ()),
    ]


def fpem_ffm(in_channels=(256, 512, 1024, 2049), c: int = CHANNELS, repeats: int = 2):
    rows: list[tuple[str, tuple[int, ...]]] = []
    for level, cin in zip((2, 3, 4, 5), in_channels):
        p = f"neck.reduce_conv_c{level}"
        rows += [(f"{p}.0.weight", (c, cin, 1, 1)), (f"{p}.0.bias", (c,))]
        rows += _bn(f"{p}.1", c)
    for i in range(repeats):
        for name in ("up_add1", "up_add2", "up_add3", "down_add1", "down_add2", "down_add3"):
            p = f"neck.fpems.{i}.{name}"
            rows += [
                (f"{p}.depthwise_conv.weight", (c, 1, 3, 3)),
                (f"{p}.depthwise_conv.bias", (c,)),
                (f"{p}.pointwise_conv.weight", (c, c, 1, 1)),
                (f"{p}.pointwise_conv.bias", (c,)),
            ]
            rows += _bn(f"{p}.bn", c)
    return rows


def main() -> None:
    rows: list[tuple[str, str]] = []
    for line in SOURCE.read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        name, shape = line.split("\t")
        if name.startswith(("neck.", "bbox_head.")):
            continue
        if name == "backbone.attnpool.positional_embedding":
            side = RESOLUTION // 32
            shape = f"{side * side + 1},{shape.split(',')[1]}"
        rows.append((name, shape))
    pan = fpem_ffm() + [("bbox_head.out_conv.weight", (6, 4 * CHANNELS, 1, 1))]
    pan += [("bbox_head.out_conv.bias", (6,))]
    rows += [(n, ",".join(str(s) for s in shape)) for n, shape in pan]
    header = [
        "# Official TCM-PAN checkpoint keys and shapes (state_dict of an mmocr 0.4 OCRCLIP model,",
        "# config panet_r50att_prompt_gen_vis_fpem_ffm.py + the IC15 fine-tuning config: 4 context",
        "# tokens, LG, VG, input 736). CLIP / prompt / decoder lines from tcm_official_keys.txt;",
        "# FPEM_FFM and PANHead from mmocr 0.x's definitions, independently of tcmbench's model:",
        "# see tests/data/make_tcm_official_keys_pan.py, which wrote this file.",
        "# Format: name<TAB>comma-separated shape (empty for a scalar).",
    ]
    OUT.write_text("\n".join(header + [f"{n}\t{s}" for n, s in rows]) + "\n")
    print(f"wrote {len(rows)} keys to {OUT}")


if __name__ == "__main__":
    main()
