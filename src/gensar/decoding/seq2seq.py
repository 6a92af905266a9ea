"""The two model calls every decoder here is made of: encode once, then decoder steps.

:func:`inference` hands the searches one of two backends with the same three
methods (``encode``, ``step``, ``reorder``):

* :class:`~gensar.decoding.lean_t5.LeanT5` for float32
  ``T5ForConditionalGeneration`` (every preset but ``minilm``): the same maths
  on the model's own weights with ~4x fewer ops per call (~250, not ~1,100),
  which is what decoding latency on a CPU is made of;
* :class:`TransformersDecoder` for everything else: the model's own modules
  and forward, so any transformers encoder-decoder with the standard seq2seq
  signature works (tested with T5 and ``EncoderDecoderModel``, BERT encoder
  and decoder with cross-attention, whose ``enc_to_dec_proj`` its forward
  applies).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal, NamedTuple, Protocol

import torch
from transformers import PreTrainedModel
from transformers.cache_utils import EncoderDecoderCache
from transformers.modeling_outputs import BaseModelOutput

from gensar.decoding import lean_t5
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


class Step(NamedTuple):
    """Decoder logits for the fed tokens and the updated cache."""

    logits: torch.Tensor  # (rows, new tokens, vocab)
    cache: object  # backend-specific; pass it back to the same backend's step/reorder


Backend = Literal["auto", "transformers"]


class Decoder(Protocol):
    """What beam search and scoring need from a model (see the module docstring)."""

    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None): ...

    def step(self, encoded, tokens: torch.Tensor, cache: object | None) -> Step: ...

    def reorder(self, cache: object, rows: torch.Tensor) -> None: ...


class TransformersDecoder:
    """The generic backend: the model's own forward, on a shared cross-attention cache."""

    def __init__(self, model: PreTrainedModel) -> None:
        self.model = model

    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None) -> Encoded:
        """Run the encoder once for a batch of inputs."""
        device = self.model.device
        input_ids = input_ids.to(device)
        if attention_mask is not None:
            attention_mask = attention_mask.to(device)
        outputs = self.model.get_encoder()(
            input_ids=input_ids, attention_mask=attention_mask, return_dict=True
        )
        return Encoded(BaseModelOutput(last_hidden_state=outputs.last_hidden_state), attention_mask)

    def step(
        self, encoded: Encoded, tokens: torch.Tensor, cache: EncoderDecoderCache | None
    ) -> Step:
        """Feed ``tokens`` (rows, new) after what ``cache`` holds.

        ``rows`` is a multiple of the number of encoded inputs: rows ``i *
        group ... (i + 1) * group - 1`` belong to input ``i``. The first call
        (no cache) fills the cross-attention cache with one row per input;
        later calls reuse it through :func:`shared_cross_attention` (active
        inside :func:`inference`).
        """
        out = self.model(
            encoder_outputs=encoded.outputs,
            attention_mask=encoded.attention_mask,
            decoder_input_ids=tokens,
            past_key_values=cache,
            use_cache=True,
            return_dict=True,
        )
        return Step(out.logits, out.past_key_values)

    def reorder(self, cache: EncoderDecoderCache, rows: torch.Tensor) -> None:
        """Re-order/expand the self-attention cache to ``rows``; the cross cache is untouched."""
        cache.self_attention_cache.reorder_cache(rows)


class LeanDecoder:
    """The T5 backend: :class:`~gensar.decoding.lean_t5.LeanT5` behind the same methods."""

    def __init__(self, model: PreTrainedModel) -> None:
        self.lean = lean_t5.LeanT5(model)
        self.device = model.device

    def encode(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None
    ) -> lean_t5.LeanEncoded:
        mask = None if attention_mask is None else attention_mask.to(self.device)
        return self.lean.encode(input_ids.to(self.device), mask)

    def step(
        self, encoded: lean_t5.LeanEncoded, tokens: torch.Tensor, cache: object | None
    ) -> Step:
        return Step(*self.lean.step(encoded, tokens, cache))

    def reorder(self, cache: lean_t5.LeanCache, rows: torch.Tensor) -> None:
        cache.reorder(rows)


@contextmanager
def inference(model: PreTrainedModel, backend: Backend = "auto") -> Iterator[Decoder]:
    """Eval mode (restored afterwards), no autograd, and the fastest backend for ``model``.

    ``backend="transformers"`` forces the generic path (for comparisons).
    """
    if backend not in ("auto", "transformers"):
        raise GensarError(
            f"unknown decoding backend {backend!r}", fix="use 'auto' or 'transformers'"
        )
    was_training = model.training
    if was_training:  # eval() walks every module: ~0.5 ms, skipped when already in eval mode
        model.eval()
    try:
        with torch.inference_mode():
            if backend == "auto" and lean_t5.supports(model):
                yield LeanDecoder(model)
            else:
                with shared_cross_attention(model):
                    yield TransformersDecoder(model)
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
