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


class LeanT5:
    """Encoder pass and incremental decoder steps of one T5 model, for inference only."""

    def __init__(self, model: T5ForConditionalGeneration, max_decoder_length: int = 32) -> None:
        self.model = model
        config = model.config
        self.heads = config.num_heads
        self.d_kv = config.d_kv
        self.eps = config.layer_norm_epsilon
        self.gated = bool(getattr(config, "is_gated_act", False))
        self.scale_output = bool(
            getattr(config, "scale_decoder_outputs", config.tie_word_embeddings)
        )
        self.d_model = config.d_model
        self.dtype = model.dtype
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

    def _feed_forward(self, block: T5Block, x: torch.Tensor) -> torch.Tensor:
        layer = block.layer[-1]
        ff = layer.DenseReluDense
        h = self._norm(x, layer.layer_norm.weight)
        if self.gated:
            h = ff.act(F.linear(h, ff.wi_0.weight)) * F.linear(h, ff.wi_1.weight)
        else:
            h = ff.act(F.linear(h, ff.wi.weight))
        return x + F.linear(h, ff.wo.weight)

    # -- encoder -----------------------------------------------------------------------

    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None) -> LeanEncoded:
        """Encoder pass, then each decoder layer's cross-attention keys/values (once per input)."""
        encoder = self.model.encoder
        batch, length = input_ids.shape
        x = encoder.embed_tokens(input_ids)
        if attention_mask is None:
            pad_bias = x.new_zeros(batch, 1, 1, length)
        else:
            pad_bias = (1.0 - attention_mask[:, None, None, :].to(x.dtype)) * torch.finfo(
                x.dtype
            ).min
        bias = self._bias(encoder, length, length, bidirectional=True) + pad_bias
        for block in encoder.block:
            attention = block.layer[0].SelfAttention
            h = self._norm(x, block.layer[0].layer_norm.weight)
            q = self._heads(F.linear(h, attention.q.weight))
            k = self._heads(F.linear(h, attention.k.weight))
            v = self._heads(F.linear(h, attention.v.weight))
            x = x + F.linear(self._merge(self._attend(q, k, v, bias)), attention.o.weight)
            x = self._feed_forward(block, x)
        hidden = self._norm(x, encoder.final_layer_norm.weight)
        keys, values = [], []
        for block in self.model.decoder.block:
            cross = block.layer[1].EncDecAttention
            keys.append(self._heads(F.linear(hidden, cross.k.weight)))
            values.append(self._heads(F.linear(hidden, cross.v.weight)))
        return LeanEncoded(keys, values, pad_bias)

    # -- decoder -----------------------------------------------------------------------

    def step(
        self, encoded: LeanEncoded, tokens: torch.Tensor, cache: LeanCache | None
    ) -> tuple[torch.Tensor, LeanCache]:
        """Logits ``(rows, new, vocab)`` for ``tokens`` fed after what ``cache`` holds.

        ``rows`` is a multiple of the batch: rows ``i * group ... (i + 1) *
        group - 1`` belong to input ``i``.
        """
        decoder = self.model.decoder
        rows, new = tokens.shape
        batch = encoded.batch_size
        group = rows // batch
        cache = cache or LeanCache([], [])
        past = cache.length
        if past + new > self.decoder_bias.shape[-1]:
            self.decoder_bias = self._decoder_bias(2 * (past + new))
        self_bias = self.decoder_bias[:, :, past : past + new, : past + new]
        x = decoder.embed_tokens(tokens)
        keys, values = [], []
        for index, block in enumerate(decoder.block):
            attention = block.layer[0].SelfAttention
            h = self._norm(x, block.layer[0].layer_norm.weight)
            q = self._heads(F.linear(h, attention.q.weight))
            k = self._heads(F.linear(h, attention.k.weight))
            v = self._heads(F.linear(h, attention.v.weight))
            if past:
                k = torch.cat([cache.keys[index], k], dim=2)
                v = torch.cat([cache.values[index], v], dim=2)
            keys.append(k)
            values.append(v)
            x = x + F.linear(self._merge(self._attend(q, k, v, self_bias)), attention.o.weight)

            cross = block.layer[1]
            h = self._norm(x, cross.layer_norm.weight)
            q = self._heads(F.linear(h, cross.EncDecAttention.q.weight))
            # fold the rows of each input into its query axis: one copy of its keys
            q = q.reshape(batch, group, self.heads, new, self.d_kv).transpose(1, 2)
            q = q.reshape(batch, self.heads, group * new, self.d_kv)
            out = self._attend(
                q, encoded.cross_keys[index], encoded.cross_values[index], encoded.cross_bias
            )
            out = out.view(batch, self.heads, group, new, self.d_kv).transpose(1, 2)
            out = out.reshape(rows, self.heads, new, self.d_kv)
            x = x + F.linear(self._merge(out), cross.EncDecAttention.o.weight)
            x = self._feed_forward(block, x)
        x = self._norm(x, decoder.final_layer_norm.weight)
        if self.scale_output:
            x = x * self.d_model**-0.5
        return F.linear(x, self.model.lm_head.weight), LeanCache(keys, values)
