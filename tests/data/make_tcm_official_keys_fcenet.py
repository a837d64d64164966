"""Write tests/data/tcm_official_keys_fcenet.txt: the parameter names and
shapes of the official TCM-FCENet checkpoints (github.com/wenwenyu/TCM,
config ocrclip/configs/_base_/det_models/fcenet_clip_r50att_prompt_gen_vis_fpn.py:
CLIPResNetWithAttention with out_indices (1, 2, 3) at input_resolution 800,
CLIPTextContextEncoder with context_length 18 = 14 prompt tokens + 4
learnable, PromptGenerator, two ContextDecoders, mmdet FPN in
[512, 1024, 2049] -> 256 with three outputs and no extra convs
(num_outs == number of inputs), FCEHead(256, fourier_degree 5);
FCEIdentityHead has no parameters).

The TCM part (backbone.*, text_encoder.*, contexts, gamma, vis_gamma,
prompt_generator.*, context_decoder.*, visual_prompt_generator.*) has the
same names as in TCM-DBNet (see make_tcm_official_keys.py, whose helpers
this script reuses); only the attention pool is built for 800 px:
(800 / 32)^2 + 1 = 626 positional rows. CLIP's layer1 is still there
(C2 feeds C3 even though the neck does not read it).

The neck and head names come from reading mmdet's FPN (``lateral_convs.i``
and ``fpn_convs.i`` ConvModules -> ``.conv``, with bias since
norm_cfg=None) and mmocr 0.4's FCEHead (``out_conv_cls`` 3x3 -> 4,
``out_conv_reg`` 3x3 -> (2K + 1) x 2 = 22), independently of tcmbench's
model.

Run: .venv/bin/python tests/data/make_tcm_official_keys_fcenet.py
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from make_tcm_official_keys import clip_names, decoder

OUT = Path(__file__).with_name("tcm_official_keys_fcenet.txt")
RESOLUTION = 800


def main() -> None:
    rows = []
    for name, shape in clip_names():
        if name == "backbone.attnpool.positional_embedding":
            shape = ((RESOLUTION // 32) ** 2 + 1, shape[1])
        rows.append((name, shape))
    rows += [("contexts", (1, 4, 512)), ("gamma", (1024,)), ("vis_gamma", ())]
    rows += [
        ("prompt_generator.prompt_proj.0.weight", (1024,)),
        ("prompt_generator.prompt_proj.0.bias", (1024,)),
        ("prompt_generator.prompt_proj.1.weight", (1024, 1024)),
        ("prompt_generator.prompt_proj.1.bias", (1024,)),
        ("prompt_generator.prompt_proj.3.weight", (1024,)),
        ("prompt_generator.prompt_proj.3.bias", (1024,)),
        ("prompt_generator.prompt_proj.4.weight", (512, 1024)),
        ("prompt_generator.prompt_proj.4.bias", (512,)),
    ]
    rows += decoder("context_decoder") + decoder("visual_prompt_generator")
    for i, c in enumerate([512, 1024, 2049]):
        rows += [
            (f"neck.lateral_convs.{i}.conv.weight", (256, c, 1, 1)),
            (f"neck.lateral_convs.{i}.conv.bias", (256,)),
        ]
    for i in range(3):
        rows += [
            (f"neck.fpn_convs.{i}.conv.weight", (256, 256, 3, 3)),
            (f"neck.fpn_convs.{i}.conv.bias", (256,)),
        ]
    rows += [
        ("bbox_head.out_conv_cls.weight", (4, 256, 3, 3)),
        ("bbox_head.out_conv_cls.bias", (4,)),
        ("bbox_head.out_conv_reg.weight", (22, 256, 3, 3)),
        ("bbox_head.out_conv_reg.bias", (22,)),
    ]
    header = [
        "# Official TCM-FCENet checkpoint keys and shapes (state_dict of an mmocr 0.4 FCECLIP model,",
        "# config fcenet_clip_r50att_prompt_gen_vis_fpn.py: 4 context tokens, LG, VG, input 800).",
        "# Derived from reading the official module definitions (github.com/wenwenyu/TCM;",
        "# mmdet FPN, mmocr 0.4 FCEHead), independently of tcmbench's model:",
        "# see tests/data/make_tcm_official_keys_fcenet.py, which wrote this file.",
        "# Format: name<TAB>comma-separated shape (empty for a scalar).",
    ]
    lines = header + [f"{n}\t{','.join(str(s) for s in shape)}" for n, shape in rows]
    OUT.write_text("\n".join(lines) + "\n")
    print(f"wrote {len(rows)} keys to {OUT}")


if __name__ == "__main__":
    main()
