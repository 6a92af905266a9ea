"""The GenSR network: a seq2seq backbone, a frozen collaborative item table with its
projector, a semantic projector for title tokens, and Yes/No scoring.

* Soft tokens: a COLLAB position is ``collab_proj(item_table[row])`` (64-d SASRec
  vectors by default -> d_model), a TITLE position is ``sem_proj(word_embedding(id))``,
  a TEXT position is the plain word embedding (prompt, markers, queries).
* Score of a candidate = P("Yes") at the answer step, i.e. the softmax over the
  vocabulary at the last position of the candidate's decoder prefix.
* All candidates of a sample share one encoder pass: the encoded history is
  repeated across the candidate rows of the decoder batch.
"""

from __future__ import annotations

import torch
from torch import nn

from gensar.families.gensr.data import COLLAB, TITLE, Sequences


class GenSR(nn.Module):
    def __init__(self, backbone, item_table: torch.Tensor, config, yes_id: int, no_id: int):
        super().__init__()
        self.backbone = backbone
        self.config = config
        self.is_t5 = hasattr(backbone, "lm_head")
        d_model = self._d_model()
        self.item_table = nn.Parameter(
            item_table.detach().clone().float(), requires_grad=config.collab_trainable
        )
        width = self.item_table.shape[1]
        self.collab_proj = nn.Sequential(
            nn.Linear(width, d_model), nn.GELU(), nn.Linear(d_model, d_model)
        )
        self.sem_proj = nn.Linear(d_model, d_model)
        with torch.no_grad():  # starts as the identity: titles enter as their word embeddings
            self.sem_proj.weight.copy_(torch.eye(d_model))
            self.sem_proj.bias.zero_()
        self.register_buffer("answer_ids", torch.tensor([yes_id, no_id]), persistent=False)

    def _d_model(self) -> int:
        cfg = self.backbone.config
        if self.is_t5:
            return cfg.d_model
        return cfg.decoder.hidden_size

    # ------------------------------------------------------------------ inputs
    def embed(self, seq: Sequences, decoder: bool) -> torch.Tensor:
        """[b, L, d] input embeddings with the soft tokens injected at their positions."""
        table = (
            self.backbone.get_decoder().get_input_embeddings()
            if decoder
            else self.backbone.get_input_embeddings()
        )
        x = table(seq.ids)
        title = seq.kinds == TITLE
        if title.any():
            x = x.clone()
            x[title] = self.sem_proj(x[title])
        collab = seq.kinds == COLLAB
        if collab.any():
            x = x.clone() if not title.any() else x
            x[collab] = self.collab_proj(self.item_table[seq.items[collab]]).to(x.dtype)
        return x

    def pooled_history(self, seq: Sequences) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Mean projected collaborative and semantic tokens of each encoder input
        ([b, d] each) and [b] bool: the input has both (the InfoNCE pairs)."""
        collab = (seq.kinds == COLLAB).float()
        title = (seq.kinds == TITLE).float()
        c = self.collab_proj(self.item_table[seq.items])
        s = self.sem_proj(self.backbone.get_input_embeddings()(seq.ids))
        pooled_c = (c * collab[..., None]).sum(1) / collab.sum(1, keepdim=True).clamp(min=1)
        pooled_s = (s * title[..., None]).sum(1) / title.sum(1, keepdim=True).clamp(min=1)
        return pooled_c, pooled_s, (collab.sum(1) > 0) & (title.sum(1) > 0)

    # ------------------------------------------------------------------ passes
    def encode(self, seq: Sequences) -> torch.Tensor:
        """[b, L, d] encoded (prompt, history)."""
        out = self.backbone.get_encoder()(
            inputs_embeds=self.embed(seq, decoder=False), attention_mask=seq.mask
        ).last_hidden_state
        if not self.is_t5 and getattr(self.backbone, "enc_to_dec_proj", None) is not None:
            out = self.backbone.enc_to_dec_proj(out)
        return out

    def answer_logits(
        self,
        memory: torch.Tensor,
        memory_mask: torch.Tensor,
        candidates: Sequences,
        per_sample: int,
    ) -> torch.Tensor:
        """[b * per_sample, 2] log-probabilities of (Yes, No) over the vocabulary.

        ``memory`` is [b, L, d]; candidate rows are grouped by sample
        (``per_sample`` consecutive rows each) and share the sample's memory.
        """
        shared = memory
        memory = memory.repeat_interleave(per_sample, dim=0)
        memory_mask = memory_mask.repeat_interleave(per_sample, dim=0)
        embeds = self.embed(candidates, decoder=True)
        last = candidates.lengths - 1
        rows = torch.arange(len(last), device=last.device)
        if self.is_t5:
            hidden = self.backbone.decoder(
                inputs_embeds=embeds,
                attention_mask=candidates.mask,
                encoder_hidden_states=memory,
                encoder_attention_mask=memory_mask,
                cache=self._shared_cross_cache(shared, per_sample),
                use_cache=True,
            ).last_hidden_state[rows, last]
            if self.backbone.config.tie_word_embeddings:
                hidden = hidden * self.backbone.model_dim**-0.5
            logits = self.backbone.lm_head(hidden)
        else:
            decoder = self.backbone.decoder
            hidden = decoder.bert(
                inputs_embeds=embeds,
                attention_mask=candidates.mask,
                encoder_hidden_states=memory,
                encoder_attention_mask=memory_mask,
            ).last_hidden_state[rows, last]
            logits = decoder.cls(hidden)
        return torch.log_softmax(logits.float(), dim=-1)[:, self.answer_ids]

    def _shared_cross_cache(self, memory: torch.Tensor, per_sample: int):
        """T5: the cross-attention keys and values of each sample's memory, projected
        once per sample (not once per candidate row) and handed to the decoder as a
        filled cross-attention cache; the projection of the repeated memory was two
        thirds of the cost of scoring 100 candidates."""
        from transformers.cache_utils import DynamicCache, EncoderDecoderCache

        cache = EncoderDecoderCache(DynamicCache(), DynamicCache())
        b, length = memory.shape[:2]
        for index, block in enumerate(self.backbone.decoder.block):
            attention = block.layer[1].EncDecAttention
            shape = (b, length, -1, attention.key_value_proj_dim)
            keys = attention.k(memory).view(shape).transpose(1, 2)
            values = attention.v(memory).view(shape).transpose(1, 2)
            cross = cache.cross_attention_cache
            cross.update(keys[:1, :, :0], values[:1, :, :0], index)  # creates the layer
            # set directly: update() would concatenate the repeated tensors once more
            cross.layers[index].keys = _repeat_rows(keys, per_sample)
            cross.layers[index].values = _repeat_rows(values, per_sample)
            cache.is_updated[index] = True
        return cache

    def forward(self, encoder: Sequences, candidates: Sequences, per_sample: int) -> torch.Tensor:
        """[b * per_sample, 2] (log P(Yes), log P(No)) of each candidate row."""
        return self.answer_logits(self.encode(encoder), encoder.mask, candidates, per_sample)


def _repeat_rows(x: torch.Tensor, times: int) -> torch.Tensor:
    """Each row ``times`` times in a row; a view (no copy) when there is one row."""
    if x.shape[0] == 1:
        return x.expand(times, *x.shape[1:])
    return x.repeat_interleave(times, dim=0)
