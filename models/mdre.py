"""The MDRE family's networks (Yoon, Byun & Jung, SLT 2018): ARE, TRE, MDRE and MDREA, `MDRE(kind=...)`.

The paper: "Multimodal speech emotion recognition using audio and text".

Inputs (keyword-only; each kind reads only what it needs, the rest may be None):
    mfcc      (B, T_a, 39) float   MFCC-EDA frames, raw values; only the first 750 frames are used
    mfcc_len  (B,) long            frame counts (uncapped counts are fine: they are capped at 750 here, quirk 10)
    prosody   (B, 35) float        utterance prosody functionals, raw values
    tokens    (B, T_t) long        word ids, left-aligned
    token_len (B,) long            token counts
Output: logits (B, 4) in the class order [angry, happy, sad, neutral]; with return_attention=True (MDREA only)
the tuple (logits, alpha) where alpha (B, T_t) are the attention weights over the text positions.

Architecture (reference sheet section 7), H = 200:
    audio   e = [GRU(39 -> H)(mfcc) final state ; prosody]         (B, 235), prosody appended after the GRU
    text    o, h_t = GRU(E -> H)(Embedding(V, E)(tokens))          o (B, T_t, H) per-step outputs, h_t (B, H)
    ARE     logits = e M + b                                        M 235 x 4
    TRE     logits = h_t M + b                                      M 200 x 4
    MDRE    logits = [e M_a + b_a ; h_t M_t + b_t] M + b            M_a 235 x 117, M_t 200 x 100 (integer
                                                                    halves, quirk 13), M 217 x 4, no non-linearity
    MDREA   q = e W_q + b_q (235 -> H); alpha = softmax_t(o_t . q) over the valid positions only;
            H_ctx = sum_t alpha_t o_t; logits = [H_ctx ; q] M + b   M 400 x 4
Every projection has ONE scalar bias (shape [1], init 0) broadcast over its outputs (quirk 2) and a weight stored
as (in, out) like the original's M, initialised Uniform(-0.25, 0.25).

Faithful to the sheet:
  * dropout is given as DROP rates (the original's keep probabilities 0.7 audio / 0.3 text -> 0.3 / 0.7) and, like
    TF's DropoutWrapper, hits the GRU input at every step and the per-step outputs, never the final state. So the
    output dropout reaches MDREA's attention keys/values but not any final-state encoding (quirk 5). nn.Dropout on
    the (B, T, D) tensor draws a fresh mask per step, as the wrapper does;
  * variable lengths: the padded batch runs through the GRU and the state at the last valid step is taken; the
    per-step outputs past the length are exactly 0 (as dynamic_rnn with sequence_length);
  * MDREA masks the padded text positions before the softmax (the 2020 fix); their weights are exactly 0. With
    masked_attention=False it is the 2018 paper's code: the softmax runs over all `text_positions` (128) positions
    of the original's fixed-length rows, so every padded position (GRU output 0, score 0) adds e^0 to the
    normaliser and weight to nothing. The padding is counted up to 128 whatever the batch's own padding, so an
    utterance's logits do not depend on its batch;
  * embedding trainable; initialised from a given matrix (e.g. the GloVe-aligned W_embedding, E = 300) or, without
    one, N(0, 0.01^2) with E = 100 (0.01 read as the standard deviation);
  * GRU kernels orthogonal, gate bias 1.0: TF's gate kernel [in + H, 2H] and candidate kernel [in + H, H] are drawn
    orthogonal as such and split into PyTorch's weight_ih / weight_hh (same r, z/u, n gate order); TF's single
    gate bias of 1.0 becomes bias_ih[r, z] = 1 with bias_hh = 0 (the two are summed, so the effective gate bias is
    1.0), the candidate biases are 0.

Deliberate differences (and why):
  * PyTorch nn.GRU (cuDNN-style) instead of TF1 GRUCell: it applies the reset gate AFTER the recurrent matmul,
    n = tanh(W_in x + b_in + r * (W_hn h + b_hn)), where TF uses tanh(W_c [x; r * h] + b_c), and it has separate
    input and hidden biases: +3H = 600 parameters per GRU. The functions differ, so TF checkpoints cannot be
    loaded exactly. Parameter counts (V = 3,747, E = 300, H = 200): ARE 145,541, TRE 1,426,101, MDRE 1,618,266,
    MDREA 1,618,502 (the sheet's TF counts 144,941 / 1,425,501 / 1,617,066 / 1,617,302 plus 600 per GRU).
  * Any batch size works (the original bakes in 128 and MDREA's tf.squeeze breaks at batch 1, quirks 14 / 19).
  * A length of 0 (empty utterance or transcript) is accepted and behaves as TF's dynamic_rnn with
    sequence_length 0: the final state is the zero initial state and all per-step outputs are 0. In MDREA such a
    row gets all-zero attention weights (they do not sum to 1) and a zero context - the same logits TF gives (its
    uniform weights over all-zero outputs also give a zero context). Empty inputs (T = 0) are accepted likewise.
  * Float inputs are cast to the model's dtype (the original's arrays are float64).
"""
from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

KINDS = ("ARE", "TRE", "MDRE", "MDREA")
MFCC_DIM = 39
PROSODY_DIM = 35
MAX_AUDIO_FRAMES = 750  # 7.5 s at 10 ms
VOCAB_SIZE = 3_747      # _PAD_, _UNK_ and the 3,745 IEMOCAP tokens
NUM_CLASSES = 4         # angry, happy, sad, neutral
MAX_TEXT_POSITIONS = 128  # the original's fixed text length N_SEQ_MAX_NLP (every row padded to it)


class ScalarBiasLinear(nn.Module):
    """y = x M + b with M (in, out) ~ Uniform(-0.25, 0.25) and ONE scalar bias b (shape [1], init 0)."""

    def __init__(self, *, in_dim: int, out_dim: int, init_range: float = 0.25):
        super().__init__()
        self.in_dim, self.out_dim, self.init_range = in_dim, out_dim, init_range
        self.weight = nn.Parameter(torch.empty(in_dim, out_dim))
        self.bias = nn.Parameter(torch.zeros(1))
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        self.weight.uniform_(-self.init_range, self.init_range)
        self.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert x.shape[-1] == self.in_dim, f"input {tuple(x.shape)}: last dim must be {self.in_dim}"
        return x @ self.weight + self.bias                                    # (..., out)

    def extra_repr(self) -> str:
        return f"in_dim={self.in_dim}, out_dim={self.out_dim}, scalar bias"


class GRUEncoder(nn.Module):
    """One-layer GRU with the DropoutWrapper's input and output dropout and dynamic_rnn length handling.

    forward(x (B, T, D), lengths (B,)) -> (outputs (B, T, H): output-dropped, 0 past each length;
    final (B, H): the state at the last valid step, never dropped; zero where the length is 0)."""

    def __init__(self, *, input_dim: int, hidden: int, dropout: float):
        super().__init__()
        self.input_dim, self.hidden = input_dim, hidden
        self.gru = nn.GRU(input_dim, hidden, num_layers=1, batch_first=True)
        self.input_dropout = nn.Dropout(dropout)
        self.output_dropout = nn.Dropout(dropout)
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        d, h = self.input_dim, self.hidden
        gates = nn.init.orthogonal_(torch.empty(d + h, 2 * h))               # TF gates/kernel: [x; h] -> [r, u]
        cand = nn.init.orthogonal_(torch.empty(d + h, h))                    # TF candidate/kernel: [x; r h] -> c
        kernel = torch.cat([gates, cand], dim=1)                             # (d + h, 3h) in PyTorch order r, z, n
        self.gru.weight_ih_l0.copy_(kernel[:d].t())                          # (3h, d)
        self.gru.weight_hh_l0.copy_(kernel[d:].t())                          # (3h, h)
        self.gru.bias_ih_l0.zero_()
        self.gru.bias_ih_l0[: 2 * h].fill_(1.0)                              # TF gate bias 1.0 (r and u)
        self.gru.bias_hh_l0.zero_()

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, t, d = x.shape
        assert d == self.input_dim, f"input {tuple(x.shape)}: last dim must be {self.input_dim}"
        assert lengths.shape == (b,), f"lengths {tuple(lengths.shape)} vs batch {b}"
        if t == 0:                                                           # nothing to run: dynamic_rnn on T = 0
            return x.new_zeros(b, 0, self.hidden), x.new_zeros(b, self.hidden)
        # The padded batch runs through the GRU as it is: a one-way GRU's output at step i never depends on later
        # steps, so the rows up to each length are exact; the rest is zeroed. (pack_padded_sequence gives the
        # same numbers but its CPU backward costs O(T^2): 6.6 s against 0.24 s for 32 x 650 frames.)
        lengths = lengths.to(device=x.device, dtype=torch.long).clamp(0, t)
        out, _ = self.gru(self.input_dropout(x))                             # (B, T, H)
        valid = torch.arange(t, device=x.device)[None, :] < lengths[:, None]  # (B, T)
        out = out * valid[:, :, None].to(out.dtype)                          # 0 past each length
        last = (lengths - 1).clamp(min=0)                                    # (B,)
        final = out[torch.arange(b, device=x.device), last]                  # (B, H); 0 where the length is 0
        return self.output_dropout(out), final


class MDRE(nn.Module):
    """ARE / TRE / MDRE / MDREA (see the module docstring). `kind` picks the model; sizes default to the sheet's."""

    def __init__(self, *, kind: str, vocab_size: int | None = None, embedding: torch.Tensor | None = None,
                 embed_dim: int | None = None, hidden: int = 200, mfcc_dim: int = MFCC_DIM,
                 prosody_dim: int = PROSODY_DIM, num_classes: int = NUM_CLASSES,
                 max_audio_frames: int = MAX_AUDIO_FRAMES, audio_dropout: float = 0.3, text_dropout: float = 0.7,
                 masked_attention: bool = True, text_positions: int = MAX_TEXT_POSITIONS):
        super().__init__()
        if kind not in KINDS:
            raise ValueError(f"kind {kind!r} not one of {', '.join(KINDS)}")
        for name, p in (("audio_dropout", audio_dropout), ("text_dropout", text_dropout)):
            if not 0.0 <= p < 1.0:
                raise ValueError(f"{name} = {p} is a DROP rate and must lie in [0, 1)")
        if not masked_attention and kind != "MDREA":
            raise ValueError(f"{kind} has no attention; masked_attention=False is for MDREA only")
        self.kind, self.hidden, self.num_classes = kind, hidden, num_classes
        self.masked_attention, self.text_positions = masked_attention, text_positions
        self.mfcc_dim, self.prosody_dim, self.max_audio_frames = mfcc_dim, prosody_dim, max_audio_frames
        self.uses_audio = kind != "TRE"
        self.uses_text = kind != "ARE"
        audio_width = hidden + prosody_dim                                   # e = [h_a ; p]: 235

        if self.uses_audio:
            self.audio_encoder = GRUEncoder(input_dim=mfcc_dim, hidden=hidden, dropout=audio_dropout)
        if self.uses_text:
            self.embedding = make_embedding(vocab_size=vocab_size, embedding=embedding, embed_dim=embed_dim)
            self.vocab_size, self.embed_dim = self.embedding.weight.shape
            self.text_encoder = GRUEncoder(input_dim=self.embed_dim, hidden=hidden, dropout=text_dropout)

        if kind == "ARE":
            self.head = ScalarBiasLinear(in_dim=audio_width, out_dim=num_classes)
        elif kind == "TRE":
            self.head = ScalarBiasLinear(in_dim=hidden, out_dim=num_classes)
        elif kind == "MDRE":
            self.proj_audio = ScalarBiasLinear(in_dim=audio_width, out_dim=audio_width // 2)  # 235 -> 117
            self.proj_text = ScalarBiasLinear(in_dim=hidden, out_dim=hidden // 2)            # 200 -> 100
            self.head = ScalarBiasLinear(in_dim=audio_width // 2 + hidden // 2, out_dim=num_classes)
        else:
            self.proj_query = ScalarBiasLinear(in_dim=audio_width, out_dim=hidden)             # 235 -> 200
            self.head = ScalarBiasLinear(in_dim=2 * hidden, out_dim=num_classes)              # [H_ctx ; q]

    @property
    def dtype(self) -> torch.dtype:
        return self.head.weight.dtype

    def encode_audio(self, mfcc: torch.Tensor, mfcc_len: torch.Tensor, prosody: torch.Tensor) -> torch.Tensor:
        """e = [final GRU state over the first min(len, 750) frames ; prosody] -> (B, H + 35)."""
        assert self.uses_audio, f"{self.kind} has no audio branch"
        if mfcc is None or mfcc_len is None or prosody is None:
            raise ValueError(f"{self.kind} needs mfcc, mfcc_len and prosody")
        assert mfcc.dim() == 3 and mfcc.shape[2] == self.mfcc_dim, \
            f"mfcc {tuple(mfcc.shape)}: need (B, T_a, {self.mfcc_dim})"
        b = mfcc.shape[0]
        assert prosody.shape == (b, self.prosody_dim), f"prosody {tuple(prosody.shape)}: need ({b}, {self.prosody_dim})"
        mfcc = mfcc[:, : self.max_audio_frames].to(self.dtype)                # (B, min(T_a, 750), 39)
        lengths = check_lengths(mfcc_len, batch=b, name="mfcc_len", at_most=mfcc.shape[1],
                                cap=self.max_audio_frames, what="frames")
        _, h_a = self.audio_encoder(mfcc, lengths)                           # (B, H)
        e = torch.cat([h_a, prosody.to(h_a)], dim=1)                         # (B, H + 35)
        return e

    def encode_text(self, tokens: torch.Tensor, token_len: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(per-step outputs (B, T_t, H) with output dropout, 0 past each length; final state (B, H))."""
        assert self.uses_text, f"{self.kind} has no text branch"
        if tokens is None or token_len is None:
            raise ValueError(f"{self.kind} needs tokens and token_len")
        assert tokens.dim() == 2, f"tokens {tuple(tokens.shape)}: need (B, T_t)"
        assert not tokens.is_floating_point(), f"tokens must be integer ids, got {tokens.dtype}"
        b, t = tokens.shape
        lengths = check_lengths(token_len, batch=b, name="token_len", at_most=t, what="tokens")
        x = self.embedding(tokens.long())                                    # (B, T_t, E)
        return self.text_encoder(x, lengths)                                 # (B, T_t, H), (B, H)

    @staticmethod
    def attend(outputs: torch.Tensor, query: torch.Tensor, lengths: torch.Tensor, masked: bool = True,
               positions: int = MAX_TEXT_POSITIONS) -> tuple[torch.Tensor, torch.Tensor]:
        """Dot-product attention of query (B, H) over outputs (B, T, H), positions >= length masked.

        Returns (context (B, H), alpha (B, T)); alpha is exactly 0 on padded positions and sums to 1 over the
        valid ones (all 0 for a length-0 row). masked=False: the 2018 code's softmax over max(T, positions)
        positions, the padded ones (outputs 0, so score 0) included; alpha (B, T) then sums to less than 1."""
        b, t, h = outputs.shape
        assert query.shape == (b, h), f"query {tuple(query.shape)} vs outputs {tuple(outputs.shape)}"
        lengths = torch.as_tensor(lengths).to(outputs.device)
        valid = torch.arange(t, device=outputs.device)[None, :] < lengths[:, None]  # (B, T)
        scores = torch.einsum("bth,bh->bt", outputs, query)                  # (B, T)
        if not masked:
            scores = scores * valid  # padding outputs are 0 already; exactly 0 here whatever the GRU left there
            pad = scores.new_zeros(b, max(0, positions - t))                  # the original's rows up to 128
            alpha = torch.cat([scores, pad], dim=1).softmax(dim=1)[:, :t]    # (B, T)
            return torch.einsum("bt,bth->bh", alpha, outputs), alpha
        scores = scores.masked_fill(~valid, torch.finfo(scores.dtype).min)   # as adding -float_max in the original
        alpha = scores.softmax(dim=1) * valid                                # (B, T); zero rows for length 0
        context = torch.einsum("bt,bth->bh", alpha, outputs)                 # (B, H)
        return context, alpha

    def forward(self, *, mfcc: torch.Tensor | None = None, mfcc_len: torch.Tensor | None = None,
                prosody: torch.Tensor | None = None, tokens: torch.Tensor | None = None,
                token_len: torch.Tensor | None = None, return_attention: bool = False
                ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        if return_attention and self.kind != "MDREA":
            raise ValueError(f"{self.kind} has no attention; return_attention is for MDREA only")
        if self.kind == "ARE":
            logits = self.head(self.encode_audio(mfcc, mfcc_len, prosody))   # (B, 4)
        elif self.kind == "TRE":
            _, h_t = self.encode_text(tokens, token_len)
            logits = self.head(h_t)                                          # (B, 4)
        elif self.kind == "MDRE":
            e = self.encode_audio(mfcc, mfcc_len, prosody)                   # (B, 235)
            _, h_t = self.encode_text(tokens, token_len)                     # (B, 200)
            assert e.shape[0] == h_t.shape[0], f"audio batch {e.shape[0]} vs text batch {h_t.shape[0]}"
            a = self.proj_audio(e)                                           # (B, 117)
            t = self.proj_text(h_t)                                          # (B, 100)
            logits = self.head(torch.cat([a, t], dim=1))                     # (B, 217) -> (B, 4)
        else:
            q = self.proj_query(self.encode_audio(mfcc, mfcc_len, prosody))  # (B, 200)
            o, _ = self.encode_text(tokens, token_len)                       # (B, T_t, 200)
            assert o.shape[0] == q.shape[0], f"audio batch {q.shape[0]} vs text batch {o.shape[0]}"
            context, alpha = self.attend(o, q, token_len, self.masked_attention, self.text_positions)
            logits = self.head(torch.cat([context, q], dim=1))               # (B, 400) -> (B, 4)
            if return_attention:
                return logits, alpha
        return logits

    def parameter_breakdown(self) -> "OrderedDict[str, int]":
        """Parameter count per top-level part (audio_encoder, embedding, text_encoder, proj_*, head)."""
        return OrderedDict((name, sum(p.numel() for p in child.parameters()))
                           for name, child in self.named_children() if any(True for _ in child.parameters()))


def make_embedding(*, vocab_size: int | None, embedding: torch.Tensor | None, embed_dim: int | None
                   ) -> nn.Embedding:
    """Trainable V x E embedding: a copy of `embedding` if given (e.g. GloVe, E = 300), else N(0, 0.01^2), E = 100.

    No padding_idx: as in the original the _PAD_ row is an ordinary (trainable) row; padding is handled by the
    lengths."""
    if embedding is not None:
        w = torch.as_tensor(embedding).detach().clone().float()
        if w.dim() != 2:
            raise ValueError(f"embedding matrix must be (V, E), got {tuple(w.shape)}")
        for name, given, have in (("vocab_size", vocab_size, w.shape[0]), ("embed_dim", embed_dim, w.shape[1])):
            if given is not None and given != have:
                raise ValueError(f"{name} = {given} but the embedding matrix is {tuple(w.shape)}")
        return nn.Embedding.from_pretrained(w, freeze=False)
    emb = nn.Embedding(VOCAB_SIZE if vocab_size is None else vocab_size, 100 if embed_dim is None else embed_dim)
    with torch.no_grad():
        emb.weight.normal_(0.0, 0.01)
    return emb


def check_lengths(lengths: torch.Tensor, *, batch: int, name: str, at_most: int, cap: int | None = None,
                  what: str = "rows") -> torch.Tensor:
    """`lengths` as long counts, capped at `cap` (uncapped counts are fine); ValueError for a wrong shape or dtype
    and, for lengths on the CPU, for a negative count or one (after the cap) over the `at_most` rows given.
    The value checks are skipped on an accelerator: reading a GPU tensor's values is a host sync per batch; the
    collates build the counts from the very rows they pad (GRUEncoder clamps them to the rows as a backstop)."""
    lengths = torch.as_tensor(lengths)
    if lengths.shape != (batch,):
        raise ValueError(f"{name} {tuple(lengths.shape)}: need ({batch},)")
    if lengths.is_floating_point():
        raise ValueError(f"{name} must be integer counts, got {lengths.dtype}")
    lengths = lengths.long() if cap is None else lengths.long().clamp(max=cap)
    if lengths.device.type == "cpu" and lengths.numel():
        if bool((lengths < 0).any()):
            raise ValueError(f"{name} has negative entries")
        if int(lengths.max()) > at_most:
            raise ValueError(f"{name} up to {int(lengths.max())} but only {at_most} {what} given")
    return lengths
