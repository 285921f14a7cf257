"""Audio-side inputs of the multi-scale chunk audio-text system: chunk layout, random crop, TPP, batching."""
import random
import warnings

import numpy as np
import pytest

from corpora.textgrid import Interval
from systems.audio_text_inputs import (audio_sequence, chunk_count, chunk_starts, gather_blocks, pad_batch,
                                       random_crop, temporal_pyramid_pool, with_global_token)
from utils import dynamic_chunks


def frames(T, D=1):
    """(T, D) float32 whose row t holds t + 1 everywhere (so 0 marks padding and values reveal positions)."""
    return np.repeat(np.arange(1, T + 1, dtype=np.float32)[:, None], D, axis=1)


# ----------------------------------------------------------------------------------------------- chunks

def test_chunk_count_is_word_count_with_a_minimum_of_two():
    assert [chunk_count(n) for n in (0, 1, 2, 7)] == [2, 2, 2, 7]
    with pytest.raises(ValueError):
        chunk_count(-1)


@pytest.mark.parametrize("strategy", ["multiscale", "fixed"])
@pytest.mark.parametrize("T,C", [(100, 5), (300, 11), (53, 5), (50, 2), (30, 3), (1000, 40)])
def test_even_chunk_starts_are_dynamic_chunks(strategy, T, C):
    starts, lengths = chunk_starts(T, C, m=50, strategy=strategy)
    assert starts.tolist() == dynamic_chunks([T], m=50, C=C, n=1)[0].tolist()
    assert lengths.tolist() == [50] * C


def test_even_chunk_starts_sheet_examples():
    assert chunk_starts(100, 5)[0].tolist() == [0, 12, 24, 36, 48]  # step floor(50 / 4) = 12
    assert chunk_starts(53, 5)[0].tolist() == [0] * 5  # T - 50 = 3 < C - 1 = 4: step 0
    assert chunk_starts(30, 3)[0].tolist() == [0] * 3  # T < 50


def test_short_utterance_is_zero_padded_not_a_crash():
    x = frames(30, D=2)
    starts, lengths = chunk_starts(30, 3)
    blocks = gather_blocks(x, starts, lengths, 50)
    assert blocks.shape == (3, 50, 2) and blocks.dtype == np.float32
    for b in blocks:
        np.testing.assert_array_equal(b[:30], x)
        assert not b[30:].any()


def test_even_windows_gather_the_right_frames():
    x = frames(100)
    blocks = gather_blocks(x, *chunk_starts(100, 5), 50)
    for k, s in enumerate([0, 12, 24, 36, 48]):
        np.testing.assert_array_equal(blocks[k, :, 0], np.arange(s, s + 50) + 1)


def test_lexical_starts_for_three_words_by_hand():
    # 50 fps: 0.0 s -> frame 0, 0.3 s -> 15; 0.25 s -> 12.5 -> 13 (half up), 0.26 s -> 13 -> empty -> 1 frame;
    # 0.5 s -> 25, 2.5 s -> 125 -> clamped to T = 100 -> 75 frames -> clipped to m = 50
    words = [Interval(0.0, 0.3, "so"), Interval(0.25, 0.26, "uh"), Interval(0.5, 2.5, "well")]
    starts, lengths = chunk_starts(100, 3, strategy="lexical", words=words)
    assert starts.tolist() == [0, 13, 25]
    assert lengths.tolist() == [15, 1, 50]
    blocks = gather_blocks(frames(100), starts, lengths, 50)
    np.testing.assert_array_equal(blocks[0, :15, 0], np.arange(1, 16))
    assert not blocks[0, 15:].any()
    assert blocks[1, 0, 0] == 14 and not blocks[1, 1:].any()
    np.testing.assert_array_equal(blocks[2, :, 0], np.arange(26, 76))


def test_lexical_word_past_the_end_and_tuples():
    starts, lengths = chunk_starts(100, 2, strategy="lexical", words=[(0.0, 1.0), (2.2, 2.4, "late")])
    assert starts.tolist() == [0, 99] and lengths.tolist() == [50, 1]
    blocks = gather_blocks(frames(100), starts, lengths, 50)  # the block starting at 99 is zero-filled
    assert blocks[1, 0, 0] == 100 and not blocks[1, 1:].any()


def test_lexical_falls_back_to_even_windows_below_two_words():
    for words in ([], [Interval(0.1, 0.4, "yes")]):
        starts, lengths = chunk_starts(100, 2, strategy="lexical", words=words)
        assert starts.tolist() == [0, 50] and lengths.tolist() == [50, 50]


def test_chunk_starts_rejects_bad_input():
    with pytest.raises(ValueError, match="strategy"):
        chunk_starts(100, 5, strategy="words")
    with pytest.raises(ValueError, match="alignment"):
        chunk_starts(100, 5, strategy="lexical")
    with pytest.raises(ValueError, match="C=5"):
        chunk_starts(100, 5, strategy="lexical", words=[(0, 1), (1, 2), (2, 3)])
    with pytest.raises(ValueError):
        chunk_starts(0, 2)


# ------------------------------------------------------------------------------------------ random crop

def chunk_grid(C, m=50):
    """(C, m, 1): every chunk holds 1 .. m, so a cropped row's value - 1 is its source frame."""
    return np.tile(np.arange(1, m + 1, dtype=np.float32)[None, :, None], (C, 1, 1))


@pytest.mark.parametrize("make_rng", [lambda: random.Random(5), lambda: np.random.default_rng(5)])
def test_random_crop_lengths_contiguity_padding_and_last_frame(make_rng):
    rng = make_rng()
    seen = set()
    for _ in range(300):
        out, lengths = random_crop(chunk_grid(8), rng)
        assert out.shape == (8, 50, 1) and out.dtype == np.float32
        for row, n in zip(out[:, :, 0], lengths):
            seen.add(int(n))
            assert not row[n:].any()  # zero rows after each length
            start = int(row[0]) - 1
            np.testing.assert_array_equal(row[:n], np.arange(start, start + n) + 1)  # one contiguous piece
            if n < 50:
                assert 0 <= start <= 49 - n and 50 not in row  # frame 49 is never inside a crop
    assert seen == {10, 20, 30, 40, 50}


def test_random_crop_every_start_is_reachable():
    rng = random.Random(1)
    starts = set()
    for _ in range(400):
        out, lengths = random_crop(chunk_grid(10), rng, scales=(0.8,))
        assert set(lengths.tolist()) == {40}
        starts.update(int(v) - 1 for v in out[:, 0, 0])
    assert starts == set(range(10))  # uniform over 0 .. 49 - 40


def test_seeded_python_rng_replays_the_original_draws():
    scales = (0.2, 0.4, 0.6, 0.8, 1.0)
    out, lengths = random_crop(chunk_grid(12), random.Random(2023), scales)
    replay = random.Random(2023)  # the original: choice per chunk, then randrange(f/2, 50 - f/2) unless r == 1
    for k in range(12):
        r = replay.choice(scales)
        if r == 1:
            assert lengths[k] == 50
            np.testing.assert_array_equal(out[k, :, 0], np.arange(1, 51))
            continue
        f = int(r * 50)
        c = replay.randrange(f // 2, 50 - f // 2)
        assert lengths[k] == f
        np.testing.assert_array_equal(out[k, :f, 0], np.arange(c - f // 2, c + f // 2) + 1)
    # the global random module (the original's RNG) works the same way
    random.seed(2023)
    out2, lengths2 = random_crop(chunk_grid(12), random, scales)
    np.testing.assert_array_equal(out2, out)
    np.testing.assert_array_equal(lengths2, lengths)


def test_eval_scale_is_identity():
    x = np.random.default_rng(0).standard_normal((4, 50, 3)).astype(np.float32)
    out, lengths = random_crop(x, random.Random(0), scales=(1.0,))
    np.testing.assert_array_equal(out, x)
    assert lengths.tolist() == [50] * 4
    with pytest.raises(ValueError):
        random_crop(x, random.Random(0), scales=(1.5,))


# ---------------------------------------------------------------------------------------- pyramid pool

def test_tpp_hand_example_and_lengths_respected():
    x = np.full((1, 12, 1), 1000.0, dtype=np.float32)
    x[0, :10, 0] = np.arange(10)  # rows 10, 11 lie beyond the length and must be ignored
    out = temporal_pyramid_pool(x, [10])
    assert out.dtype == np.float32 and out.shape == (1, 7)
    np.testing.assert_allclose(out[0], [4.5, 2, 7, 0.5, 2.5, 4.5, 7.5])


def test_tpp_short_chunk_repeats_the_mean():
    x = np.zeros((2, 50, 1), dtype=np.float32)
    x[0, :4, 0] = [1, 2, 3, 6]
    x[1, :5, 0] = [1, 2, 3, 4, 5]  # L = 5 is the first pyramid length: q = 1, last quarter 2 rows
    out = temporal_pyramid_pool(x, [4, 5])
    np.testing.assert_allclose(out[0], [3] * 7)
    np.testing.assert_allclose(out[1], [3, 1.5, 4, 1, 2, 3, 4.5])


def test_tpp_layout_matches_a_naive_loop():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((5, 50, 4)).astype(np.float32)
    lens = [50, 40, 30, 20, 10]
    out = temporal_pyramid_pool(x, lens)
    assert out.shape == (5, 28)
    for k, L in enumerate(lens):
        h, q = L // 2, L // 4
        segs = [(0, L), (0, h), (h, L), (0, q), (q, 2 * q), (2 * q, 3 * q), (3 * q, L)]
        want = np.concatenate([x[k, a:b].mean(0) for a, b in segs])
        np.testing.assert_allclose(out[k], want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(temporal_pyramid_pool(x), temporal_pyramid_pool(x, [50] * 5))
    with pytest.raises(ValueError):
        temporal_pyramid_pool(x, [0, 1, 2, 3, 4])


# ---------------------------------------------------------------------------------------------- batches

def test_global_token_is_a_row_of_ones_first():
    seq = np.arange(6, dtype=np.float32).reshape(2, 3)
    out = with_global_token(seq)
    assert out.shape == (3, 3) and out.dtype == np.float32
    np.testing.assert_array_equal(out[0], [1, 1, 1])
    np.testing.assert_array_equal(out[1:], seq)


def test_pad_batch_masks_true_on_padding():
    a, b = np.ones((3, 2)), np.full((5, 2), 2.0)
    batch, mask = pad_batch([a, b], max_len=8)
    assert batch.shape == (2, 8, 2) and batch.dtype == np.float32 and mask.dtype == bool
    assert mask[0].tolist() == [False] * 3 + [True] * 5
    assert mask[1].tolist() == [False] * 5 + [True] * 3
    assert (batch[0, :3] == 1).all() and not batch[0, 3:].any()
    assert (batch[1, :5] == 2).all() and not batch[1, 5:].any()


def test_pad_batch_over_max_len_raises_or_truncates():
    ok, long = np.ones((128, 4)), with_global_token(np.zeros((130, 4)))  # 131 rows
    batch, mask = pad_batch([ok], max_len=128)  # exactly 128 fits
    assert not mask.any()
    with pytest.raises(ValueError, match="131 rows"):
        pad_batch([ok, long])
    with pytest.warns(UserWarning, match="3 row"):
        res = pad_batch([ok, long], truncate=True)
    batch, mask = res
    assert res.cut.tolist() == [0, 3]
    assert not mask.any() and (batch[1, 0] == 1).all() and not batch[1, 1:].any()  # global token kept
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert pad_batch([ok], truncate=True).cut.tolist() == [0]


# ------------------------------------------------------------------------------------------- sequences

def test_audio_sequence_shapes_for_each_strategy():
    x = np.random.default_rng(1).standard_normal((300, 8)).astype(np.float32)
    words = [Interval(0.1, 0.5, "a"), Interval(0.5, 1.2, "b"), Interval(2.0, 5.9, "c")]
    for strategy in ("multiscale", "fixed", "lexical"):
        for train in (False, True):
            out = audio_sequence(x, 3, strategy, random.Random(0), train, words)
            assert out.shape == (4, 56) and out.dtype == np.float32
            np.testing.assert_array_equal(out[0], np.ones(56))
    assert audio_sequence(x, 7, "multiscale", None, False).shape == (8, 56)
    assert audio_sequence(x, 0, "fixed", None, True).shape == (3, 56)
    assert audio_sequence(x, 1, "lexical", None, False, words[:1]).shape == (3, 56)  # fallback: C = 2


def test_audio_sequence_crops_only_multiscale_training():
    x = np.random.default_rng(2).standard_normal((400, 4)).astype(np.float32)
    even = with_global_token(temporal_pyramid_pool(gather_blocks(x, *chunk_starts(400, 6), 50)))
    np.testing.assert_array_equal(audio_sequence(x, 6, "multiscale", random.Random(0), False), even)
    np.testing.assert_array_equal(audio_sequence(x, 6, "fixed", random.Random(0), True), even)
    a = audio_sequence(x, 6, "multiscale", random.Random(9), True)
    b = audio_sequence(x, 6, "multiscale", random.Random(9), True)
    np.testing.assert_array_equal(a, b)  # same seed, same crops
    blocks, lengths = random_crop(gather_blocks(x, *chunk_starts(400, 6), 50), random.Random(9))
    np.testing.assert_array_equal(a, with_global_token(temporal_pyramid_pool(blocks, lengths)))
    assert not np.array_equal(a, even)  # seed 9 draws at least one r < 1 among 6 chunks
