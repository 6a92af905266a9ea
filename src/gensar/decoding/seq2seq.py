"""The two model calls every decoder here is made of: encode once, then decoder steps.

Both go through the model's own modules and forward, so any transformers
encoder-decoder with the standard seq2seq signature works: tested with
``T5ForConditionalGeneration`` and ``EncoderDecoderModel`` (BERT encoder, BERT
decoder with cross-attention; its ``enc_to_dec_proj`` is applied by its forward).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import NamedTuple

import torch
from transformers import PreTrainedModel
from transformers.cache_utils import EncoderDecoderCache
from transformers.modeling_outputs import BaseModelOutput

from gensar.decoding.shared_attention import shared_cross_attention
from gensar.errors import GensarError


class SpecialTokens(NamedTuple):
    """Token ids the decoders need from the tokenizer."""

    decoder_start: int
    eos: int
    pad: int

    @classmethod
    def from_model(cls, model: PreTrainedModel) -> SpecialTokens:
        """Read them from the model's config (``decoder_start_token_id`` falls back to pad)."""
        config = model.config
        start = getattr(config, "decoder_start_token_id", None)
        eos = getattr(config, "eos_token_id", None)
        pad = getattr(config, "pad_token_id", None)
        if start is None:
            start = pad
        if start is None or eos is None or pad is None:
            raise GensarError(
                "the model config lacks decoder_start/eos/pad token ids",
                fix="pass SpecialTokens(decoder_start, eos, pad) from the tokenizer",
            )
        return cls(int(start), int(eos), int(pad))


class Encoded(NamedTuple):
    """One encoder pass, reused by every decoder step of the same inputs."""

    outputs: BaseModelOutput
    attention_mask: torch.Tensor | None

    @property
    def batch_size(self) -> int:
        return int(self.outputs.last_hidden_state.shape[0])

    def select(self, start: int, stop: int) -> Encoded:
        """Inputs ``start:stop`` (views, no copy)."""
        mask = None if self.attention_mask is None else self.attention_mask[start:stop]
        return Encoded(
            BaseModelOutput(last_hidden_state=self.outputs.last_hidden_state[start:stop]), mask
        )


class Step(NamedTuple):
    """Decoder logits for the fed tokens and the updated cache."""

    logits: torch.Tensor  # (rows, new tokens, vocab)
    cache: EncoderDecoderCache


@contextmanager
def inference(model: PreTrainedModel) -> Iterator[None]:
    """Eval mode (restored afterwards), no autograd, decoder on the shared cross-attention cache."""
    was_training = model.training
    if was_training:  # eval() walks every module: ~0.5 ms, skipped when already in eval mode
        model.eval()
    try:
        with torch.inference_mode(), shared_cross_attention(model):
            yield
    finally:
        if was_training:
            model.train()


def check_inputs(
    input_ids: torch.Tensor, attention_mask: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Validate a tokenised batch: (batch, length) integer ids, a mask of the same shape."""
    if not isinstance(input_ids, torch.Tensor) or input_ids.dim() != 2 or input_ids.shape[0] == 0:
        raise GensarError("input_ids must be a non-empty (batch, length) tensor of token ids")
    if attention_mask is not None and attention_mask.shape != input_ids.shape:
        raise GensarError(
            f"attention_mask has shape {tuple(attention_mask.shape)}, input_ids {tuple(input_ids.shape)}"
        )
    return input_ids, attention_mask


def encode(
    model: PreTrainedModel, input_ids: torch.Tensor, attention_mask: torch.Tensor | None
) -> Encoded:
    """Run the encoder once for a batch of inputs."""
    device = model.device
    input_ids = input_ids.to(device)
    if attention_mask is not None:
        attention_mask = attention_mask.to(device)
    outputs = model.get_encoder()(
        input_ids=input_ids, attention_mask=attention_mask, return_dict=True
    )
    return Encoded(BaseModelOutput(last_hidden_state=outputs.last_hidden_state), attention_mask)


def decode_step(
    model: PreTrainedModel,
    encoded: Encoded,
    decoder_input_ids: torch.Tensor,
    cache: EncoderDecoderCache | None,
) -> Step:
    """Feed ``decoder_input_ids`` (rows, tokens) after what ``cache`` holds.

    ``rows`` is a multiple of the number of encoded inputs: rows ``i * group
    ... (i + 1) * group - 1`` belong to input ``i``. The first call (no cache)
    fills the cross-attention cache with one row per input; later calls reuse
    it through :func:`shared_cross_attention` (active inside :func:`inference`).
    """
    out = model(
        encoder_outputs=encoded.outputs,
        attention_mask=encoded.attention_mask,
        decoder_input_ids=decoder_input_ids,
        past_key_values=cache,
        use_cache=True,
        return_dict=True,
    )
    return Step(out.logits, out.past_key_values)


def expand_self_cache(cache: EncoderDecoderCache, rows: torch.Tensor) -> None:
    """Re-order/expand the decoder self-attention cache to ``rows``; the cross cache is untouched."""
    cache.self_attention_cache.reorder_cache(rows)
