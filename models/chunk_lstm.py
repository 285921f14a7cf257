"""Chunk-level attention LSTM (Lin & Busso, TAFFC 2021): per-chunk LSTM, BatchNorm, chunk pooling, MLP head.

Input: (B * chunks, m, F) chunks of one utterance after another (utils.dynamic_chunks / gather_chunks).
Output: (B,) one normalised score per utterance. The state_dict keys equal the original's, so the published
v1.6 checkpoints load as they are (see engine/checkpoint.py for the legacy import).

Pooling variants (the original's CLI names):
    NonAtten        mean of the chunk vectors
    GatedVec        mean of sigmoid-gated chunk vectors (divided by the chunk count, not the gate sum: Q3)
    RnnAttenVec     RNN over the chunks, Luong-style attention against its last state
    SelfAttenVec    a TransformerEncoderLayer applied as the original calls it: each chunk attends only to
                    itself (quirk Q1: a (1, nC, D) tensor read as nC sequences of length 1), then the mean.
                    Kept for checkpoint compatibility.
    SelfAttenVecCross   the corrected variant: the same layer attending across the chunks of an utterance.
Unlike the original (quirk Q2), chunks are grouped by `chunks_per_utt`, so n = 2 or 3 works.
"""
from __future__ import annotations

import torch
from torch import nn

ATTENTIONS = ("NonAtten", "GatedVec", "RnnAttenVec", "SelfAttenVec", "SelfAttenVecCross")


class RnnAttenBlock(nn.Module):
    def __init__(self, *, dim: int):
        super().__init__()
        self.attn_rnn = nn.RNN(dim, dim, batch_first=True)
        self.attn_dnn_score = nn.Linear(dim, dim, bias=False)
        self.attn_dnn_out = nn.Linear(2 * dim, dim, bias=False)

    def forward(self, z: torch.Tensor) -> torch.Tensor:  # z: (B, nC, D) -> (B, D)
        e, _ = self.attn_rnn(z)                                   # (B, nC, D)
        h_last = e[:, -1]                                         # (B, D)
        scores = torch.einsum("bcd,bd->bc", self.attn_dnn_score(e), h_last)
        alpha = scores.softmax(dim=1)                             # (B, nC)
        context = torch.einsum("bc,bcd->bd", alpha, e)            # (B, D)
        return torch.tanh(self.attn_dnn_out(torch.cat([context, h_last], dim=1)))

    def per_chunk(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(the pooled vector each chunk alone would give, (B, nC, D); the attention alpha, (B, nC)): with
        one-hot attention on chunk c the context is e_c, so chunk c's vector is tanh(W_out [e_c; h_last])."""
        e, _ = self.attn_rnn(z)                                   # (B, nC, D)
        h_last = e[:, -1]                                         # (B, D)
        alpha = torch.einsum("bcd,bd->bc", self.attn_dnn_score(e), h_last).softmax(dim=1)  # (B, nC)
        last = h_last.unsqueeze(1).expand_as(e)                   # (B, nC, D)
        return torch.tanh(self.attn_dnn_out(torch.cat([e, last], dim=2))), alpha


class ChunkLSTM(nn.Module):
    def __init__(self, *, atten: str = "NonAtten", input_dim: int = 130, hidden_dim: int = 130, num_layers: int = 2,
                 dropout: float = 0.5, chunks_per_utt: int = 11, nhead: int = 2):
        super().__init__()
        if atten not in ATTENTIONS:
            raise ValueError(f"attention {atten!r} not one of {', '.join(ATTENTIONS)}")
        self.atten, self.chunks_per_utt = atten, chunks_per_utt
        self.lstm = nn.LSTM(input_dim, hidden_dim, num_layers=num_layers, dropout=dropout, batch_first=True)
        self.bn = nn.BatchNorm1d(hidden_dim)
        if atten == "GatedVec":
            self.attn = nn.Sequential(nn.Linear(hidden_dim, 1), nn.Sigmoid())
        elif atten == "RnnAttenVec":
            self.attn = RnnAttenBlock(dim=hidden_dim)
        elif atten in ("SelfAttenVec", "SelfAttenVecCross"):
            # PyTorch defaults as the original: FFN 2048, dropout 0.1, ReLU, post-norm
            self.attn = nn.TransformerEncoderLayer(d_model=hidden_dim, nhead=nhead, batch_first=False)
        self.fc1 = nn.Linear(hidden_dim, hidden_dim)
        self.fc2 = nn.Linear(hidden_dim, 1)

    def pool(self, z: torch.Tensor) -> torch.Tensor:  # z: (B, nC, D) -> (B, D)
        if self.atten == "NonAtten":
            return z.mean(dim=1)
        if self.atten == "GatedVec":
            return (self.attn(z) * z).mean(dim=1)                 # gates (B, nC, 1)
        if self.atten == "RnnAttenVec":
            return self.attn(z)
        if self.atten == "SelfAttenVec":
            # batch_first=False on (B, nC, D): B is read as the sequence axis... per utterance the original
            # passes (1, nC, D), i.e. nC sequences of length 1. Transposing to (1, B*nC, D) does the same
            # for the whole batch at once: every chunk is its own length-1 sequence.
            b, c, d = z.shape
            y = self.attn(z.reshape(1, b * c, d)).reshape(b, c, d)
            return y.mean(dim=1)
        y = self.attn(z.transpose(0, 1))                          # (nC, B, D): attends across the chunks
        return y.mean(dim=0)

    def head(self, v: torch.Tensor) -> torch.Tensor:  # (..., D) -> (...,)
        return self.fc2(torch.relu(self.fc1(v))).squeeze(-1)

    def chunk_outputs(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(utterance scores (B,) as forward gives them, chunk outputs (B, nC), chunk weights (B, nC)) of
        (B*nC, m, F) chunks. A chunk's output is the head applied to the chunk's own vector where the pooled
        one goes: the utterance's score if every chunk were like this one (NonAtten z_c, GatedVec g_c z_c,
        RnnAttenVec the pooled vector at one-hot attention, SelfAttenVec / SelfAttenVecCross the layer's output
        row y_c). Weights: GatedVec gates divided by their sum, RnnAttenVec alpha, the mean-pooled variants 1/nC.
        Outputs are on the model's normalised scale, not trained to match the utterance labels one by one."""
        n = x.shape[0]
        assert n % self.chunks_per_utt == 0, f"{n} chunks is not a multiple of {self.chunks_per_utt} per utterance"
        h, _ = self.lstm(x)                                       # (B*nC, m, D)
        z = self.bn(h[:, -1]).reshape(n // self.chunks_per_utt, self.chunks_per_utt, -1)  # (B, nC, D)
        b, c, d = z.shape
        weights = torch.full((b, c), 1.0 / c, dtype=z.dtype, device=z.device)
        if self.atten == "NonAtten":
            own = z
        elif self.atten == "GatedVec":
            gates = self.attn(z)                                  # (B, nC, 1)
            own, weights = gates * z, (gates / gates.sum(dim=1, keepdim=True)).squeeze(2)
        elif self.atten == "RnnAttenVec":
            own, weights = self.attn.per_chunk(z)
        elif self.atten == "SelfAttenVec":
            own = self.attn(z.reshape(1, b * c, d)).reshape(b, c, d)
        else:
            own = self.attn(z.transpose(0, 1)).transpose(0, 1)    # (B, nC, D)
        return self.head(self.pool(z)), self.head(own), weights

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, m, f = x.shape                                         # (B*nC, m, F)
        assert n % self.chunks_per_utt == 0, f"{n} chunks is not a multiple of {self.chunks_per_utt} per utterance"
        h, _ = self.lstm(x)                                       # (B*nC, m, D)
        h = self.bn(h[:, -1])                                     # last step of each chunk: (B*nC, D)
        z = h.reshape(n // self.chunks_per_utt, self.chunks_per_utt, -1)  # (B, nC, D)
        v = self.pool(z)                                          # (B, D)
        return self.fc2(torch.relu(self.fc1(v))).squeeze(1)       # (B,)
