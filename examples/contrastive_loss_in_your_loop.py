"""seqrep's losses in your own training loop: a CURL-style contrastive encoder for sequences.

Two random crops of the same series are a positive pair; the other series in the batch are the
negatives. A query encoder is trained with InfoNCE through a learned bilinear critic q^T W k
against a momentum (EMA) key encoder, as in CURL and MoCo. The data are synthetic waves of
four shapes (sine, square, triangle, sawtooth) at random frequency, amplitude, offset and phase,
with noise; each view is also rescaled at random. No labels reach the loss, yet a
nearest-neighbour probe on the learned features tells the shapes apart better than on a random
encoder's, and log N - L_N is a lower bound (nats) on the mutual information between the two
views' features.

    python examples/contrastive_loss_in_your_loop.py            # about a minute on a CPU
    python examples/contrastive_loss_in_your_loop.py --quick    # a few seconds (the tests' run)
"""

from __future__ import annotations

import argparse
import math

import torch
from torch import nn

from seqrep.critics import BilinearCritic
from seqrep.losses import info_nce_bound, info_nce_result
from seqrep.nets import DilatedConvEncoder, MomentumEncoder, masked_max_pool

SHAPES = ("sine", "square", "triangle", "sawtooth")


def wave_batch(n: int, length: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """n noisy waves [n, length, 1] and their shape class [n]."""
    label = torch.randint(0, len(SHAPES), (n,), generator=gen)
    frequency = 0.02 + 0.08 * torch.rand(n, 1, generator=gen)  # cycles per step
    phase = torch.rand(n, 1, generator=gen)
    cycle = (frequency * torch.arange(length)[None, :] + phase) % 1.0  # in [0, 1)
    waves = torch.stack(
        [
            torch.sin(2 * math.pi * cycle),
            torch.where(cycle < 0.5, 1.0, -1.0),
            4 * (cycle - 0.5).abs() - 1,
            2 * cycle - 1,
        ]
    )  # [4, n, length]
    x = waves[label, torch.arange(n)]
    amplitude = 0.5 + 1.5 * torch.rand(n, 1, generator=gen)
    offset = torch.randn(n, 1, generator=gen)
    x = amplitude * x + offset + 0.2 * torch.randn(n, length, generator=gen)
    return x[..., None], label


def rescale(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Each series times a random factor in [0.5, 2): the views disagree on amplitude."""
    return x * (0.5 + 1.5 * torch.rand(x.shape[0], 1, 1, generator=gen))


def random_crop(x: torch.Tensor, size: int, gen: torch.Generator) -> torch.Tensor:
    """One random window of ``size`` steps per series: [B, T, C] -> [B, size, C]."""
    start = torch.randint(0, x.shape[1] - size + 1, (x.shape[0],), generator=gen)
    index = start[:, None] + torch.arange(size)[None, :]
    return torch.gather(x, 1, index[..., None].expand(-1, -1, x.shape[2]))


class SeriesEncoder(nn.Module):
    """[B, T, 1] -> [B, D]: seqrep's causal dilated convolutions, max-pooled over time, then a
    linear head and LayerNorm (CURL's head: it keeps the bilinear logits on one scale)."""

    def __init__(self, dim: int = 32) -> None:
        super().__init__()
        self.conv = DilatedConvEncoder(1, hidden=32, out_dim=64, depth=4)
        self.head = nn.Sequential(nn.Linear(64, dim), nn.LayerNorm(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv(x)
        return self.head(masked_max_pool(h, torch.full((x.shape[0],), x.shape[1])))


@torch.no_grad()
def nearest_neighbour_accuracy(encoder: nn.Module, gen: torch.Generator) -> float:
    """Shape accuracy of a 1-nearest-neighbour probe on cosine similarity."""
    train_x, train_y = wave_batch(512, 96, gen)
    test_x, test_y = wave_batch(512, 96, gen)
    a = nn.functional.normalize(encoder(train_x), dim=1)
    b = nn.functional.normalize(encoder(test_x), dim=1)
    predicted = train_y[(b @ a.T).argmax(1)]
    return (predicted == test_y).float().mean().item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--quick", action="store_true", help="30 steps (the tests' run)")
    args = parser.parse_args()
    steps = 30 if args.quick else args.steps
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)

    query_encoder = SeriesEncoder()
    key_encoder = MomentumEncoder(query_encoder, tau=0.05)  # EMA copy, no gradients
    critic = BilinearCritic(32, init="identity")
    optimiser = torch.optim.Adam([*query_encoder.parameters(), *critic.parameters()], lr=1e-3)
    before = nearest_neighbour_accuracy(query_encoder, torch.Generator().manual_seed(1))

    batch = 128
    for step in range(1, steps + 1):
        x, _ = wave_batch(batch, 128, gen)
        q = query_encoder(rescale(random_crop(x, 96, gen), gen))  # [B, D]
        with torch.no_grad():
            k = key_encoder(rescale(random_crop(x, 96, gen), gen))  # [B, D], the positives
        result = info_nce_result(q, k, similarity=critic)  # in-batch negatives: N = B
        optimiser.zero_grad()
        result.loss.backward()
        optimiser.step()
        key_encoder.update(query_encoder)
        if step % max(1, steps // 6) == 0 or step == steps:
            bound = info_nce_bound(result.loss.detach(), result.num_candidates).item()
            print(
                f"step {step:4d}  InfoNCE {result.loss.item():.3f}  accuracy "
                f"{result.accuracy.item():.2f}  MI >= {bound:.2f} nats (at most log N = "
                f"{math.log(batch):.2f})"
            )
    after = nearest_neighbour_accuracy(query_encoder, torch.Generator().manual_seed(1))
    print(
        f"1-NN shape accuracy ({len(SHAPES)} classes, chance {1 / len(SHAPES):.3f}): "
        f"random init {before:.3f}, after training {after:.3f}"
    )


if __name__ == "__main__":
    main()
