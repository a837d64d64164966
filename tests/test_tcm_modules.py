"""TCM building blocks against open_clip itself (the reference) and against
the architecture facts of TCM.md."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
open_clip = pytest.importorskip("open_clip")

import torch.nn.functional as F

from tcmbench.tcm.decoders import ContextDecoder
from tcmbench.tcm.image_encoder import (
    ClipFeatures,
    CLIPImageEncoder,
    DenseAttentionPool,
    resize_positional_embedding,
)
from tcmbench.tcm.prompts import LanguagePromptGenerator, tokenize_prompt
from tcmbench.tcm.text_encoder import CLIPTextEncoder
from tcmbench.tcm.weights import random_clip

PROMPT = "the pixels of many arbitrary-shape text instances."


@pytest.fixture(scope="module")
def clip():
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = random_clip("RN50-quickgelu").eval()
    return model


def _n(module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_prompt_is_14_tokens_sot_eot():
    ids = tokenize_prompt(PROMPT)
    assert ids.numel() == 14
    ref = open_clip.get_tokenizer("RN50-quickgelu")([PROMPT])[0]
    assert torch.equal(ids, ref[:14])
    assert ref[14:].eq(0).all()  # the rest of CLIP's 77 positions is padding


def test_resize_positional_embedding_keeps_class_row_and_is_bilinear():
    pos = torch.randn(1 + 7 * 7, 16)
    out = resize_positional_embedding(pos, (20, 20))
    assert out.shape == (401, 16)
    assert torch.equal(out[0], pos[0])
    grid = pos[1:].reshape(7, 7, 16).permute(2, 0, 1)[None]
    ref = F.interpolate(grid, size=(20, 20), mode="bilinear", align_corners=False)
    assert torch.allclose(out[1:], ref[0].permute(1, 2, 0).reshape(400, 16))
    assert resize_positional_embedding(pos, (7, 7)) is pos
    rect = resize_positional_embedding(pos, (2, 3))
    assert rect.shape == (7, 16)


def test_dense_attention_pool_matches_open_clip_global_token(clip):
    pool = clip.visual.attnpool
    ours = DenseAttentionPool(pool, grid=7).eval()
    x = torch.randn(2, 2048, 7, 7)
    with torch.no_grad():
        global_emb, dense = ours(x)
        ref = pool(x)  # open_clip returns token 0 only
    assert dense.shape == (2, 1024, 7, 7)
    assert torch.allclose(global_emb, ref, atol=1e-4, rtol=1e-4)


def test_attention_pool_resizes_positional_embedding_at_forward(clip):
    ours = DenseAttentionPool(clip.visual.attnpool, grid=20).eval()
    assert ours.positional_embedding.shape == (401, 2048)
    x = torch.randn(1, 2048, 2, 3)
    # Reference: open_clip's pool given the positional embedding for (2, 3).
    ref_pool = open_clip.modified_resnet.AttentionPool2d(7, 2048, 32, 1024).eval()
    ref_pool.load_state_dict(dict(clip.visual.attnpool.state_dict()))
    with torch.no_grad():
        ref_pool.positional_embedding.data = resize_positional_embedding(
            ours.positional_embedding, (2, 3)
        )
        global_emb, dense = ours(x)
        ref = ref_pool(x)
    assert dense.shape == (1, 1024, 2, 3)
    assert torch.allclose(global_emb, ref, atol=1e-4, rtol=1e-4)


def test_image_encoder_stages_and_embeddings(clip):
    enc = CLIPImageEncoder(clip.visual, stages=(0, 1, 2, 3), input_resolution=640).eval()
    assert enc.out_channels == [256, 512, 1024, 2048]
    assert enc.attnpool.positional_embedding.shape == (401, 2048)
    with torch.no_grad():
        feats = enc(torch.randn(1, 3, 64, 96))
    assert isinstance(feats, ClipFeatures)
    assert [tuple(f.shape) for f in feats] == [
        (1, 256, 16, 24),
        (1, 512, 8, 12),
        (1, 1024, 4, 6),
        (1, 2048, 2, 3),
    ]
    assert feats.global_embedding.shape == (1, 1024)
    assert feats.dense_embedding.shape == (1, 1024, 2, 3)
    fce = CLIPImageEncoder(clip.visual, stages=(1, 2, 3), input_resolution=800)
    assert fce.out_channels == [512, 1024, 2048]
    assert fce.attnpool.positional_embedding.shape == (626, 2048)
    with pytest.raises(ValueError):
        CLIPImageEncoder(clip.visual, stages=(3, 1))
    # The trunk (23.53M) + pool at 640 (15.51M), TCM.md section 8.
    trunk = _n(enc) - _n(enc.attnpool)
    assert abs(trunk - 23.53e6) < 0.01e6
    assert abs(_n(enc.attnpool) - 15.51e6) < 0.01e6


def test_text_encoder_prompt_only_equals_clip_encode_text(clip):
    enc = CLIPTextEncoder(clip, tokenize_prompt(PROMPT), n_context=0)
    assert enc.positional_embedding.shape == (14, 512)
    assert enc.eot_index == 13
    tokens = open_clip.get_tokenizer("RN50-quickgelu")([PROMPT])
    with torch.no_grad():
        ours = enc()
        ref = clip.encode_text(tokens)
    assert ours.shape == (1, 1, 1024)
    assert torch.allclose(ours[:, 0], ref, atol=1e-4, rtol=1e-4)


def test_text_encoder_learnable_context_sequence(clip):
    enc = CLIPTextEncoder(clip, tokenize_prompt(PROMPT), n_context=4)
    assert enc.seq_len == 18 and enc.eot_index == 17
    assert torch.equal(enc.positional_embedding, clip.positional_embedding[:18])
    ctx = torch.randn(1, 4, 512)
    offset = torch.randn(3, 512)
    seq = enc.build_sequence(ctx, offset)
    emb = clip.token_embedding(tokenize_prompt(PROMPT))
    assert seq.shape == (3, 18, 512)
    assert torch.allclose(seq[1, 0], emb[0] + offset[1])
    assert torch.allclose(seq[2, 1:5], ctx[0] + offset[2])
    assert torch.allclose(seq[0, 5:], emb[1:] + offset[0])
    with torch.no_grad():
        out = enc(ctx, offset)
    assert out.shape == (3, 1, 1024)
    with pytest.raises(ValueError):
        enc(torch.randn(1, 5, 512))


def test_text_encoder_learnable_only(clip):
    enc = CLIPTextEncoder(clip, None, n_context=18)
    assert enc.seq_len == 18 and enc.eot_index == 17
    ctx = torch.randn(1, 18, 512)
    assert torch.equal(enc.build_sequence(ctx, None), ctx)
    with pytest.raises(ValueError):
        CLIPTextEncoder(clip, None, n_context=0)
    with pytest.raises(ValueError):
        CLIPTextEncoder(clip, tokenize_prompt(PROMPT), n_context=64)  # 78 > 77 positions


def test_language_prompt_generator_size_and_init():
    lg = LanguagePromptGenerator()
    # LN(1024) + Linear(1024,1024) + LN(1024) + Linear(1024,512)
    expected = 2 * 1024 + (1024 * 1024 + 1024) + 2 * 1024 + (1024 * 512 + 512)
    assert _n(lg) == expected
    assert abs(expected - 1.58e6) < 0.005e6
    assert lg.fc1.bias.abs().sum() == 0
    assert abs(lg.fc1.weight.std().item() - 0.02) < 0.001  # trunc-normal std 0.02
    assert lg(torch.randn(2, 1024)).shape == (2, 512)


def test_context_decoder_size_and_shapes():
    dec = ContextDecoder()
    w, v = 256, 1024
    layer = 2 * (3 * w * w + w * w + w) + 3 * 2 * w + (w * 4 * w + 4 * w) + (4 * w * w + w)
    expected = (2 * v + v * w + w + 2 * w) + (2 * v + v * w + w) + 3 * layer + (2 * w + w * v + v)
    assert _n(dec) == expected
    assert abs(expected - 3.95e6) < 0.01e6
    dec.eval()
    q, mem = torch.randn(2, 6, v), torch.randn(2, 1, v)
    out = dec(q, mem)
    assert out.shape == (2, 6, v)
    # Queries do not see each other's positions only through memory: a
    # different memory changes the result.
    assert not torch.allclose(out, dec(q, torch.randn(2, 1, v)))
