"""Write tests/data/tcm_official_keys.txt: the parameter names and shapes of
the official TCM-DBNet checkpoints (github.com/wenwenyu/TCM, config
ocrclip/configs/_base_/det_models/clip_dbnet_r50att_prompt_gen_vis_fpnc.py:
CLIPResNetWithAttention at input_resolution 640, CLIPTextContextEncoder with
context_length 18 = 14 prompt tokens + 4 learnable, PromptGenerator,
two ContextDecoders (width 256, 3 layers), FPNC in [256, 512, 1024, 2049],
DBHead(256)).

Derived from reading the official module definitions (names and shapes
only), independently of tcmbench's model and importer:

- ``backbone.*``: the official ``CLIPResNetWithAttention`` declares the same
  attributes as CLIP's ModifiedResNet (conv1..bn3, layer1..4 of Bottlenecks
  with conv1..bn3 and ``downsample`` Sequential "-1"/"0"/"1", ``attnpool``
  with positional_embedding, k/q/v/c_proj), so the names are open_clip's
  ``visual.*`` state-dict names; the attention pool is built at
  input_resolution 640, i.e. (640/32)^2 + 1 = 401 positional rows.
- ``text_encoder.*``: ``CLIPTextContextEncoder`` declares CLIP's text
  attributes (token_embedding, positional_embedding with context_length
  rows, transformer.resblocks.* with nn.MultiheadAttention, ln_1, mlp.c_fc,
  mlp.c_proj, ln_2; ln_final; text_projection), i.e. open_clip's text names.
- ``context_decoder.*`` / ``visual_prompt_generator.*``: ``ContextDecoder``
  = memory_proj Sequential(LN, Linear, LN), text_proj Sequential(LN,
  Linear), decoder ModuleList of TransformerDecoderLayer (self_attn and
  cross_attn with bias-free q_proj/k_proj/v_proj and proj; norm1..3; mlp
  Sequential(Linear, GELU, Dropout, Linear)), out_proj Sequential(LN, Linear).
- ``prompt_generator.prompt_proj``: Sequential(LN, Linear, ReLU, LN, Linear).
- ``contexts`` (1, 4, 512), ``gamma`` (1024,), ``vis_gamma`` () on OCRCLIP.
- ``neck.*``: mmocr 0.4 FPNC with default options: ConvModule without norm
  or bias -> ``lateral_convs.i.conv.weight``, ``smooth_convs.i.conv.weight``.
- ``bbox_head.*``: mmocr 0.4 DBHead: ``binarize`` / ``threshold`` =
  Sequential(Conv2d no bias, BN, ReLU, ConvTranspose2d, BN, ReLU,
  ConvTranspose2d, Sigmoid). ``identity_head`` has no parameters.

Run: .venv/bin/python tests/data/make_tcm_official_keys.py
"""

from __future__ import annotations

from pathlib import Path

OUT = Path(__file__).with_name("tcm_official_keys.txt")


def clip_names() -> list[tuple[str, tuple[int, ...]]]:
    import open_clip
    import torch

    with torch.device("meta"):
        clip = open_clip.model.CLIP(**open_clip.get_model_config("RN50-quickgelu"))
    rows: list[tuple[str, tuple[int, ...]]] = []
    for name, t in clip.state_dict().items():
        shape = tuple(t.shape)
        if name.startswith("visual."):
            if name == "visual.attnpool.positional_embedding":
                shape = (20 * 20 + 1, shape[1])
            rows.append(("backbone." + name[len("visual.") :], shape))
        elif name in ("logit_scale", "attn_mask"):
            continue
        else:
            if name == "positional_embedding":
                shape = (18, shape[1])
            rows.append(("text_encoder." + name, shape))
    return rows


def decoder(prefix: str, visual: int = 1024, width: int = 256, layers: int = 3):
    rows = [
        (f"{prefix}.memory_proj.0.weight", (visual,)),
        (f"{prefix}.memory_proj.0.bias", (visual,)),
        (f"{prefix}.memory_proj.1.weight", (width, visual)),
        (f"{prefix}.memory_proj.1.bias", (width,)),
        (f"{prefix}.memory_proj.2.weight", (width,)),
        (f"{prefix}.memory_proj.2.bias", (width,)),
        (f"{prefix}.text_proj.0.weight", (visual,)),
        (f"{prefix}.text_proj.0.bias", (visual,)),
        (f"{prefix}.text_proj.1.weight", (width, visual)),
        (f"{prefix}.text_proj.1.bias", (width,)),
    ]
    for i in range(layers):
        p = f"{prefix}.decoder.{i}"
        for attn in ("self_attn", "cross_attn"):
            rows += [
                (f"{p}.{attn}.{n}.weight", (width, width)) for n in ("q_proj", "k_proj", "v_proj")
            ]
            rows += [
                (f"{p}.{attn}.proj.weight", (width, width)),
                (f"{p}.{attn}.proj.bias", (width,)),
            ]
        for n in ("norm1", "norm2", "norm3"):
            rows += [(f"{p}.{n}.weight", (width,)), (f"{p}.{n}.bias", (width,))]
        rows += [
            (f"{p}.mlp.0.weight", (width * 4, width)),
            (f"{p}.mlp.0.bias", (width * 4,)),
            (f"{p}.mlp.3.weight", (width, width * 4)),
            (f"{p}.mlp.3.bias", (width,)),
        ]
    rows += [
        (f"{prefix}.out_proj.0.weight", (width,)),
        (f"{prefix}.out_proj.0.bias", (width,)),
        (f"{prefix}.out_proj.1.weight", (visual, width)),
        (f"{prefix}.out_proj.1.bias", (visual,)),
    ]
    return rows


def db_branch(prefix: str, c: int = 256):
    q = c // 4

    def bn(p: str, n: int) -> list:
        return [
            (f"{p}.weight", (n,)),
            (f"{p}.bias", (n,)),
            (f"{p}.running_mean", (n,)),
            (f"{p}.running_var", (n,)),
            (f"{p}.num_batches_tracked", ()),
        ]

    return (
        [(f"{prefix}.0.weight", (q, c, 3, 3))]
        + bn(f"{prefix}.1", q)
        + [(f"{prefix}.3.weight", (q, q, 2, 2)), (f"{prefix}.3.bias", (q,))]
        + bn(f"{prefix}.4", q)
        + [(f"{prefix}.6.weight", (q, 1, 2, 2)), (f"{prefix}.6.bias", (1,))]
    )


def main() -> None:
    rows = clip_names()
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
    for i, c in enumerate([256, 512, 1024, 2049]):
        rows.append((f"neck.lateral_convs.{i}.conv.weight", (256, c, 1, 1)))
    rows += [(f"neck.smooth_convs.{i}.conv.weight", (64, 256, 3, 3)) for i in range(4)]
    rows += db_branch("bbox_head.binarize") + db_branch("bbox_head.threshold")
    header = [
        "# Official TCM-DBNet checkpoint keys and shapes (state_dict of an mmocr 0.4 OCRCLIP model,",
        "# config clip_dbnet_r50att_prompt_gen_vis_fpnc.py: 4 context tokens, LG, VG, input 640).",
        "# Derived from reading the official module definitions (github.com/wenwenyu/TCM",
        "# ocrclip/ocrclip/models.py, ocrclip.py; mmocr 0.4 FPNC, DBHead), independently of",
        "# tcmbench's model: see tests/data/make_tcm_official_keys.py, which wrote this file.",
        "# Format: name<TAB>comma-separated shape (empty for a scalar).",
    ]
    lines = header + [f"{n}\t{','.join(str(s) for s in shape)}" for n, shape in rows]
    OUT.write_text("\n".join(lines) + "\n")
    print(f"wrote {len(rows)} keys to {OUT}")


if __name__ == "__main__":
    main()
