"""The joint RQ-VAE of paper 3.2 (Eq. 2-10), and the plain RQ-VAE of the ablation (4.4.1).

Joint variant: two MLP encoders map v_s and v_c to z_s, z_c (Eq. 2); L_m shared
levels quantise [z_s; z_c] (Eq. 3); the shared residual is split into its
semantic half [0:d] and collaborative half [d:2d], each quantised by L_n
specific levels (Eq. 4); the summed code vectors (Eq. 6) are decoded (Eq. 7).

Ablation variants ``semantic`` / ``collaborative``: one encoder, L levels, one
decoder, on one embedding only.

Levels are named by their token prefix: ``m1, m2`` (shared), ``s1, s2``
(semantic), ``c1, c2`` (collaborative). An identifier is a list of level names:
joint semantic = m* + s*, joint collaborative = m* + c* (Eq. 5).

Gradients: the next residual is r - sg[e] (Lee et al. 2022), so every level's
commitment term of Eq. (9) trains the encoder as written; the decoder input is
z + sg[z_hat - z] (straight-through estimator) with the value of Eq. (6).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import NamedTuple

import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from gensar.errors import DataError
from gensar.ids.config import IndexConfig
from gensar.ids.quantize import ResidualQuantizer

SEMANTIC = "semantic"
COLLABORATIVE = "collaborative"
SHARED = "shared"
KIND_PREFIX = {SHARED: "m", SEMANTIC: "s", COLLABORATIVE: "c"}


class LevelSpec(NamedTuple):
    name: str  #: token prefix with level number, e.g. "m1", "s2"
    kind: str  #: shared | semantic | collaborative
    dim: int  #: width of its code vectors (2d shared, d specific)


class Encoded(NamedTuple):
    """The quantisation of a batch, one column per level in ``model.levels`` order."""

    codes: Tensor  #: [B, n_levels] int64
    level_inputs: list[Tensor]  #: the residual entering each level (Sinkhorn needs the last)
    z_hat: dict[str, Tensor]  #: quantised latent per tower, Eq. (6) value, STE gradient
    quant_loss: Tensor  #: mean over quantisers of codebook + alpha * commitment (Eq. 9)


class RQVAEOutput(NamedTuple):
    """A forward pass: the loss of Eq. (10) and its parts."""

    loss: Tensor
    recon_semantic: Tensor  #: MSE of v_s (0 when the variant has no semantic tower)
    recon_collaborative: Tensor  #: MSE of v_c (0 when absent)
    quant_loss: Tensor
    encoded: Encoded


def mlp(dims: list[int]) -> nn.Sequential:
    """Linear layers with ReLU between them and none after the last."""
    layers: list[nn.Module] = []
    for i, (fan_in, fan_out) in enumerate(zip(dims[:-1], dims[1:], strict=True)):
        layers.append(nn.Linear(fan_in, fan_out))
        if i < len(dims) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def level_specs(
    variant: str, config: IndexConfig, shared_dim: int, side_dims: dict[str, int]
) -> list[LevelSpec]:
    """The quantiser levels of a variant: ``L_m`` shared, then ``L_n`` per side (Eq. 2-4).

    A single-identifier ablation (``variant`` semantic or collaborative) has
    ``config.levels`` levels of its own kind instead.
    """
    if variant == "joint":
        return (
            [LevelSpec(f"m{i + 1}", SHARED, shared_dim) for i in range(config.shared_levels)]
            + [
                LevelSpec(f"s{i + 1}", SEMANTIC, side_dims[SEMANTIC])
                for i in range(config.specific_levels)
            ]
            + [
                LevelSpec(f"c{i + 1}", COLLABORATIVE, side_dims[COLLABORATIVE])
                for i in range(config.specific_levels)
            ]
        )
    prefix = KIND_PREFIX[variant]
    return [
        LevelSpec(f"{prefix}{i + 1}", variant, side_dims[variant]) for i in range(config.levels)
    ]


class IdentifierLevels:
    """Level names and the identifiers they form, shared by every index model."""

    variant: str
    levels: list[LevelSpec]

    @property
    def level_names(self) -> list[str]:
        return [spec.name for spec in self.levels]

    def identifier_levels(self) -> dict[str, list[str]]:
        """Level names forming each identifier (Eq. 5); one identifier twice for ablations."""
        names = self.level_names
        if self.variant != "joint":
            return {SEMANTIC: names, COLLABORATIVE: names}
        shared = [s.name for s in self.levels if s.kind == SHARED]
        return {
            kind: shared + [s.name for s in self.levels if s.kind == kind]
            for kind in (SEMANTIC, COLLABORATIVE)
        }


class JointRQVAE(IdentifierLevels, nn.Module):
    """Encoders, residual quantisers and decoders of one identifier variant."""

    def __init__(self, config: IndexConfig, semantic_dim: int, collaborative_dim: int):
        super().__init__()
        self.config = config
        self.variant = config.variant
        self.input_dims = {SEMANTIC: semantic_dim, COLLABORATIVE: collaborative_dim}
        self.towers = [SEMANTIC, COLLABORATIVE] if self.variant == "joint" else [self.variant]
        d = config.latent_dim
        self.encoders = nn.ModuleDict(
            {t: mlp([self.input_dims[t], *config.hidden_dims, d]) for t in self.towers}
        )
        self.decoders = nn.ModuleDict(
            {t: mlp([d, *reversed(config.hidden_dims), self.input_dims[t]]) for t in self.towers}
        )
        self.levels = self._level_specs()
        self.quantizers = nn.ModuleDict(
            {
                spec.name: ResidualQuantizer(config.codebook_size, spec.dim, config.beta)
                for spec in self.levels
            }
        )
        # Input normalisation (IndexConfig.normalize_inputs): saved with the weights.
        for t in self.towers:
            self.register_buffer(f"mean_{t}", torch.zeros(self.input_dims[t]))
            self.register_buffer(f"scale_{t}", torch.ones(()))

    def _level_specs(self) -> list[LevelSpec]:
        d = self.config.latent_dim
        return level_specs(self.variant, self.config, 2 * d, {SEMANTIC: d, COLLABORATIVE: d})

    # --- input normalisation -------------------------------------------------------------

    @torch.no_grad()
    def fit_input_stats(self, inputs: dict[str, Tensor]) -> None:
        """Centre each tower's input and scale it to unit mean squared value per dimension."""
        for t in self.towers:
            x = inputs[t].float()
            mean = x.mean(0)
            scale = (x - mean).pow(2).mean().sqrt().clamp_min(1e-8)
            getattr(self, f"mean_{t}").copy_(mean)
            getattr(self, f"scale_{t}").copy_(scale)

    def normalized(self, inputs: dict[str, Tensor]) -> dict[str, Tensor]:
        return {
            t: (inputs[t] - getattr(self, f"mean_{t}")) / getattr(self, f"scale_{t}")
            for t in self.towers
        }

    # --- forward ---------------------------------------------------------------------------

    def encode(self, inputs: dict[str, Tensor], init_kmeans=None) -> Encoded:
        """Eq. (2)-(6) on already normalised inputs.

        ``init_kmeans(quantizer, residual)``, when given, is called on each level
        just before it quantises, so every codebook is initialised on the
        residuals it will actually see (SPEC 4: k-means on the first batch).
        """
        z = {t: self.encoders[t](inputs[t]) for t in self.towers}
        codes: list[Tensor] = []
        level_inputs: list[Tensor] = []
        losses: list[Tensor] = []

        def run(name: str, residual: Tensor) -> Tensor:
            quantizer = self.quantizers[name]
            if init_kmeans is not None:
                init_kmeans(quantizer, residual.detach())
            out = quantizer(residual)
            codes.append(out.codes)
            level_inputs.append(residual.detach())
            losses.append(out.loss)
            return out.vectors

        d = self.config.latent_dim
        sums: dict[str, Tensor] = {t: torch.zeros_like(z[t]) for t in self.towers}
        if self.variant == "joint":
            residual = torch.cat([z[SEMANTIC], z[COLLABORATIVE]], dim=-1)  # r_0^m, Eq. (3)
            shared_sum = torch.zeros_like(residual)
            for spec in self.levels:
                if spec.kind == SHARED:
                    vectors = run(spec.name, residual)
                    residual = residual - vectors
                    shared_sum = shared_sum + vectors
            halves = {SEMANTIC: residual[:, :d], COLLABORATIVE: residual[:, d:]}  # r_0^s, r_0^c
            sums = {SEMANTIC: shared_sum[:, :d], COLLABORATIVE: shared_sum[:, d:]}
            for spec in self.levels:  # Eq. (4): specific levels, semantic then collaborative
                if spec.kind != SHARED:
                    vectors = run(spec.name, halves[spec.kind])
                    halves[spec.kind] = halves[spec.kind] - vectors
                    sums[spec.kind] = sums[spec.kind] + vectors
        else:
            (tower,) = self.towers
            residual = z[tower]
            for spec in self.levels:
                vectors = run(spec.name, residual)
                residual = residual - vectors
                sums[tower] = sums[tower] + vectors
        z_hat = {t: z[t] + (sums[t] - z[t]).detach() for t in self.towers}  # Eq. (6) + STE
        quant_loss = torch.stack(losses).mean()
        return Encoded(torch.stack(codes, dim=1), level_inputs, z_hat, quant_loss)

    def forward(self, inputs: dict[str, Tensor], init_kmeans=None) -> RQVAEOutput:
        """Loss of Eq. (10) = MSE(v_s) + MSE(v_c) (Eq. 8) + mean quantiser loss (Eq. 9)."""
        x = self.normalized(inputs)
        encoded = self.encode(x, init_kmeans=init_kmeans)
        recon = {
            t: F.mse_loss(self.decoders[t](encoded.z_hat[t]), x[t])  # Eq. (7)
            for t in self.towers
        }
        zero = encoded.quant_loss.new_zeros(())
        recon_s = recon.get(SEMANTIC, zero)
        recon_c = recon.get(COLLABORATIVE, zero)
        loss = recon_s + recon_c + encoded.quant_loss
        return RQVAEOutput(loss, recon_s, recon_c, encoded.quant_loss, encoded)

    @torch.no_grad()
    def encode_all(self, inputs: dict[str, Tensor], batch_size: int = 4096) -> Encoded:
        """Quantise a whole catalogue in eval mode, in chunks."""
        was_training = self.training
        self.eval()
        n = next(iter(inputs.values())).shape[0]
        parts = [
            self.encode(self.normalized({t: inputs[t][i : i + batch_size] for t in self.towers}))
            for i in range(0, n, batch_size)
        ]
        self.train(was_training)
        return Encoded(
            codes=torch.cat([p.codes for p in parts]),
            level_inputs=[
                torch.cat([p.level_inputs[j] for p in parts]) for j in range(len(self.levels))
            ],
            z_hat={t: torch.cat([p.z_hat[t] for p in parts]) for t in self.towers},
            quant_loss=torch.stack([p.quant_loss for p in parts]).mean(),
        )

    def codebooks(self) -> dict[str, Tensor]:
        """Level name -> its code vectors [K, dim] (used to initialise identifier tokens)."""
        return {name: q.codebook.detach() for name, q in self.quantizers.items()}


def save_rqvae(model: JointRQVAE, path: str | Path) -> None:
    """Write the weights as safetensors; the settings needed to rebuild go in the metadata."""
    metadata = {
        "config": model.config.model_dump_json(),
        "semantic_dim": str(model.input_dims[SEMANTIC]),
        "collaborative_dim": str(model.input_dims[COLLABORATIVE]),
        "levels": json.dumps(model.level_names),
    }
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(state, str(path), metadata=metadata)


def load_rqvae(path: str | Path) -> JointRQVAE:
    """Rebuild a model written by :func:`save_rqvae`."""
    path = Path(path)
    if not path.is_file():
        raise DataError("RQ-VAE weights not found", where=path, fix="run `gensar index` first")
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
        config = IndexConfig.model_validate_json(metadata["config"])
        model = JointRQVAE(
            config, int(metadata["semantic_dim"]), int(metadata["collaborative_dim"])
        )
        model.load_state_dict(load_file(str(path)))
    except (KeyError, ValueError, RuntimeError, OSError) as err:
        raise DataError(
            f"not a gensar RQ-VAE file ({str(err).splitlines()[0]})",
            where=path,
            fix="run `gensar index` again",
        ) from None
    return model
