"""A lean inference path for ``T5ForConditionalGeneration``: the same maths, far fewer ops.

Why: identifier decoding is a handful of decoder calls on a few rows each, so
on a CPU the time goes to the framework, not the arithmetic. One transformers
T5 decoder call issues about 1,100 small ops (cache objects, mask builders,
attention dispatch, module hooks); for the tiny preset the matrix products of
a beam-search step take ~2 ms and the call ~10 ms. This module runs the
model's own weights (read at call time, never copied, so it always sees the
current weights, e.g. during validation in training) with ~15 ops per layer:

* the relative position bias (T5's only position signal, computed by the
  first layer's ``relative_attention_bias`` and shared by all layers) is
  looked up once per search for the decoder, once per batch for the encoder,
  with the causal mask folded in;
* the cross-attention keys/values are projected once per input and kept with
  one row per input: the ``group`` rows of an input (beams or candidates) are
  folded into the query axis, so they read one copy
  (the same idea as :mod:`gensar.decoding.shared_attention`, without the
  dispatch);
* the self-attention cache is a pair of plain tensors per layer.

The maths follow ``transformers.models.t5.modeling_t5`` in eval mode (no
dropout): RMS layer norm, unscaled dot-product attention plus position bias,
``wo(act(wi(x)))`` or the gated variant, ``d_model ** -0.5`` before a tied
``lm_head`` when ``config.scale_decoder_outputs`` says so. Outputs equal
transformers' up to float summation order (tests compare the two).
Only float32 models take this path; others use the generic one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from transformers import PreTrainedModel, T5ForConditionalGeneration
from transformers.models.t5.modeling_t5 import T5Attention, T5Block, T5Stack


def supports(model: PreTrainedModel) -> bool:
    """Whether ``model`` can take the lean path (a float32 T5 encoder-decoder)."""
    return isinstance(model, T5ForConditionalGeneration) and model.dtype == torch.float32


@dataclass
class LeanEncoded:
    """The encoder's work for a batch, reused by every decoder step.

    ``cross_keys``/``cross_values``: per decoder layer, ``(batch, heads,
    length, d_kv)``; ``cross_bias``: ``(batch, 1, 1, length)``, 0 for real
    tokens and the dtype's minimum for padding.
    """

    cross_keys: list[torch.Tensor]
    cross_values: list[torch.Tensor]
    cross_bias: torch.Tensor

    @property
    def batch_size(self) -> int:
        return int(self.cross_bias.shape[0])


@dataclass
class LeanCache:
    """Decoder self-attention keys/values per layer, ``(rows, heads, steps, d_kv)``."""

    keys: list[torch.Tensor]
    values: list[torch.Tensor]

    @property
    def length(self) -> int:
        return 0 if not self.keys else int(self.keys[0].shape[2])

    def reorder(self, rows: torch.Tensor) -> None:
        """Keep/duplicate rows: row ``i`` of the new cache is row ``rows[i]`` of the old."""
        self.keys = [k.index_select(0, rows) for k in self.keys]
        self.values = [v.index_select(0, rows) for v in self.values]


@dataclass
class _Block:
    """One T5 block's weight tensors (references to the model's parameters, not copies).

    Read once per search: going through ``block.layer[i].SelfAttention.q``
    costs ~25 ``nn.Module.__getattr__`` calls per layer and step.
    """

    norm: torch.Tensor
    q: torch.Tensor
    k: torch.Tensor
    v: torch.Tensor
    o: torch.Tensor
    ff_norm: torch.Tensor
    wi: tuple[torch.Tensor, ...]  # (wi,) or, gated, (wi_0, wi_1)
    wo: torch.Tensor
    act: Callable[[torch.Tensor], torch.Tensor]
    cross_norm: torch.Tensor | None = None  # decoder blocks only
    cross_q: torch.Tensor | None = None
    cross_k: torch.Tensor | None = None
    cross_v: torch.Tensor | None = None
    cross_o: torch.Tensor | None = None

    @classmethod
    def of(cls, block: T5Block) -> _Block:
        attention = block.layer[0].SelfAttention
        ff = block.layer[-1].DenseReluDense
        wi = (ff.wi_0.weight, ff.wi_1.weight) if hasattr(ff, "wi_0") else (ff.wi.weight,)
        out = cls(
            block.layer[0].layer_norm.weight,
            attention.q.weight,
            attention.k.weight,
            attention.v.weight,
            attention.o.weight,
            block.layer[-1].layer_norm.weight,
            wi,
            ff.wo.weight,
            ff.act,
        )
        if len(block.layer) == 3:  # self-attention, cross-attention, feed-forward
            cross = block.layer[1]
            out.cross_norm = cross.layer_norm.weight
            out.cross_q = cross.EncDecAttention.q.weight
            out.cross_k = cross.EncDecAttention.k.weight
            out.cross_v = cross.EncDecAttention.v.weight
            out.cross_o = cross.EncDecAttention.o.weight
        return out


class LeanT5:
    """Encoder pass and incremental decoder steps of one T5 model, for inference only.

    Build one per search (cheap): it holds references to the model's current
    weights, so a model that trains between searches is always seen as it is.
    """

    def __init__(self, model: T5ForConditionalGeneration, max_decoder_length: int = 32) -> None:
        self.model = model
        self.encoder_blocks = [_Block.of(block) for block in model.encoder.block]
        self.decoder_blocks = [_Block.of(block) for block in model.decoder.block]
        # a module, not its weight: a soft-token embedding (tasks.soft_tokens) projects
        # the ids past the word vocabulary
        self.encoder_embed = model.encoder.embed_tokens
        self.decoder_embed = model.decoder.embed_tokens.weight
        self.encoder_final_norm = model.encoder.final_layer_norm.weight
        self.decoder_final_norm = model.decoder.final_layer_norm.weight
        self.lm_head = model.lm_head.weight
        config = model.config
        self.heads = config.num_heads
        self.d_kv = config.d_kv
        self.eps = config.layer_norm_epsilon
        self.scale_output = bool(
            getattr(config, "scale_decoder_outputs", config.tie_word_embeddings)
        )
        self.d_model = config.d_model
        self.decoder_bias = self._decoder_bias(max_decoder_length)

    # -- position bias -----------------------------------------------------------------

    def _bias(self, stack: T5Stack, query: int, key: int, bidirectional: bool) -> torch.Tensor:
        """(1, heads, query, key) relative position bias of ``stack``'s first layer."""
        attention: T5Attention = stack.block[0].layer[0].SelfAttention
        device = attention.relative_attention_bias.weight.device
        relative = (
            torch.arange(key, device=device)[None, :] - torch.arange(query, device=device)[:, None]
        )
        buckets = T5Attention._relative_position_bucket(
            relative,
            bidirectional=bidirectional,
            num_buckets=attention.relative_attention_num_buckets,
            max_distance=attention.relative_attention_max_distance,
        )
        return attention.relative_attention_bias(buckets).permute(2, 0, 1).unsqueeze(0)

    def _decoder_bias(self, length: int) -> torch.Tensor:
        """Causal self-attention bias for decoder positions ``0..length-1``, mask folded in."""
        bias = self._bias(self.model.decoder, length, length, bidirectional=False)
        future = torch.ones(length, length, dtype=torch.bool, device=bias.device).triu(1)
        return bias.masked_fill(future, torch.finfo(bias.dtype).min)

    # -- building blocks ---------------------------------------------------------------

    def _norm(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """T5LayerNorm: RMS norm without mean subtraction or bias."""
        return F.rms_norm(x, (x.shape[-1],), weight, self.eps)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        """(rows, tokens, heads * d_kv) -> (rows, heads, tokens, d_kv)."""
        return x.view(x.shape[0], x.shape[1], self.heads, self.d_kv).transpose(1, 2)

    def _merge(self, x: torch.Tensor) -> torch.Tensor:
        """(rows, heads, tokens, d_kv) -> (rows, tokens, heads * d_kv)."""
        return x.transpose(1, 2).reshape(x.shape[0], x.shape[2], self.heads * self.d_kv)

    @staticmethod
    def _attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor):
        """T5 attention: softmax(q k^T + bias) v, no 1/sqrt(d) scaling.

        One fused SDPA call for a single query per row (a beam step: 2x
        faster there); matmul-softmax-matmul otherwise (SDPA is 4x slower on
        many rows of a few queries each, as in teacher-forced scoring).
        """
        if q.shape[2] == 1:
            return F.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=1.0)
        scores = torch.matmul(q, k.transpose(-1, -2)) + bias
        return torch.matmul(scores.softmax(-1), v)

    def _self_attention(
        self, block: _Block, x: torch.Tensor, bias: torch.Tensor, past: tuple | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Residual self-attention; also returns the keys/values (``past`` ones prepended)."""
        h = self._norm(x, block.norm)
        q = self._heads(F.linear(h, block.q))
        k = self._heads(F.linear(h, block.k))
        v = self._heads(F.linear(h, block.v))
        if past is not None:
            k = torch.cat([past[0], k], dim=2)
            v = torch.cat([past[1], v], dim=2)
        return x + F.linear(self._merge(self._attend(q, k, v, bias)), block.o), k, v

    def _cross_attention(
        self, block: _Block, x: torch.Tensor, encoded: LeanEncoded, index: int
    ) -> torch.Tensor:
        """Residual cross-attention of ``group`` rows per input to one copy of its keys.

        The rows of each input are folded into its query axis, (batch, heads,
        group * new, d_kv), so each input's keys are read once; one copy back.
        """
        rows, new, _ = x.shape
        batch = encoded.batch_size
        h = self._norm(x, block.cross_norm)
        # rows are grouped per input, so this is a view: (batch, heads, group * new, d_kv)
        q = F.linear(h, block.cross_q).view(batch, -1, self.heads, self.d_kv).transpose(1, 2)
        out = self._attend(
            q, encoded.cross_keys[index], encoded.cross_values[index], encoded.cross_bias
        )
        out = out.transpose(1, 2).reshape(rows, new, self.heads * self.d_kv)
        return x + F.linear(out, block.cross_o)

    def _feed_forward(self, block: _Block, x: torch.Tensor) -> torch.Tensor:
        h = self._norm(x, block.ff_norm)
        if len(block.wi) == 2:  # gated (T5 1.1): act(wi_0 h) * wi_1 h
            h = block.act(F.linear(h, block.wi[0])) * F.linear(h, block.wi[1])
        else:
            h = block.act(F.linear(h, block.wi[0]))
        return x + F.linear(h, block.wo)

    # -- encoder -----------------------------------------------------------------------

    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None) -> LeanEncoded:
        """Encoder pass, then each decoder layer's cross-attention keys/values (once per input)."""
        batch, length = input_ids.shape
        x = self.encoder_embed(input_ids)
        if attention_mask is None:
            pad_bias = x.new_zeros(batch, 1, 1, length)
        else:
            pad_bias = (1.0 - attention_mask[:, None, None, :].to(x.dtype)) * torch.finfo(
                x.dtype
            ).min
        bias = self._bias(self.model.encoder, length, length, bidirectional=True) + pad_bias
        for block in self.encoder_blocks:
            x, _, _ = self._self_attention(block, x, bias)
            x = self._feed_forward(block, x)
        hidden = self._norm(x, self.encoder_final_norm)
        keys = [self._heads(F.linear(hidden, block.cross_k)) for block in self.decoder_blocks]
        values = [self._heads(F.linear(hidden, block.cross_v)) for block in self.decoder_blocks]
        return LeanEncoded(keys, values, pad_bias)

    # -- decoder -----------------------------------------------------------------------

    def step(
        self, encoded: LeanEncoded, tokens: torch.Tensor, cache: LeanCache | None
    ) -> tuple[torch.Tensor, LeanCache]:
        """Logits ``(rows, new, vocab)`` for ``tokens`` fed after what ``cache`` holds.

        ``rows`` is a multiple of the batch: rows ``i * group ... (i + 1) *
        group - 1`` belong to input ``i``.
        """
        new = tokens.shape[1]
        past = 0 if cache is None else cache.length
        if past + new > self.decoder_bias.shape[-1]:
            self.decoder_bias = self._decoder_bias(2 * (past + new))
        self_bias = self.decoder_bias[:, :, past : past + new, : past + new]
        x = F.embedding(tokens, self.decoder_embed)
        keys, values = [], []
        for index, block in enumerate(self.decoder_blocks):
            previous = None if cache is None else (cache.keys[index], cache.values[index])
            x, k, v = self._self_attention(block, x, self_bias, previous)
            keys.append(k)
            values.append(v)

            x = self._cross_attention(block, x, encoded, index)
            x = self._feed_forward(block, x)
        x = self._norm(x, self.decoder_final_norm)
        if self.scale_output:
            x = x * self.d_model**-0.5
        return F.linear(x, self.lm_head), LeanCache(keys, values)
