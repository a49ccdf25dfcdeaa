"""Hand-written reference baseline (NOT part of the framework): a label-conditioned SNGAN on MNIST.

The recipe a user would write in an afternoon: DCGAN-sized G (linear -> 2 transposed-conv blocks with
BatchNorm), D with spectral norm and a projection head, hinge loss, Adam(2e-4, betas (0, 0.9)),
2 D steps per G step, batch 64, trained for a wall-clock budget on the CPU.

G reads the label through class-conditional BatchNorm, as the SNGAN / projection-cGAN generator does
(Miyato & Koyama 2018). A first version concatenated a label embedding with z instead: it collapsed to
one image per class in every run (recall 0.0002-0.0014 over 3 runs), see experiments/README.md.

    python experiments/baselines/sngan_mnist.py --data ../shared/data --minutes 10 --out runs/baseline.pt
"""

import argparse
import time

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm as sn
from torchvision.datasets import MNIST

Z, NC = 128, 10


class CondBN(nn.Module):
    """Class-conditional batch norm (the SNGAN/projection-cGAN generator's way of reading the label)."""

    def __init__(self, channels, conv=True):
        super().__init__()
        self.bn = (nn.BatchNorm2d if conv else nn.BatchNorm1d)(channels, affine=False)
        self.gain, self.bias = nn.Embedding(NC, channels), nn.Embedding(NC, channels)
        nn.init.ones_(self.gain.weight)
        nn.init.zeros_(self.bias.weight)

    def forward(self, h, y):
        shape = (-1, h.shape[1]) + (1,) * (h.dim() - 2)
        return self.bn(h) * self.gain(y).view(shape) + self.bias(y).view(shape)


class G(nn.Module):
    def __init__(self):
        super().__init__()
        self.z_dim = Z
        self.fc = nn.Linear(Z, 128 * 7 * 7)
        self.bn0 = CondBN(128 * 7 * 7, conv=False)
        self.up1 = nn.ConvTranspose2d(128, 64, 4, 2, 1)
        self.bn1 = CondBN(64)
        self.up2 = nn.ConvTranspose2d(64, 1, 4, 2, 1)

    def forward(self, z, y):
        h = torch.relu(self.bn0(self.fc(z), y)).view(-1, 128, 7, 7)
        return torch.tanh(self.up2(torch.relu(self.bn1(self.up1(h), y))))


class D(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(
            sn(nn.Conv2d(1, 64, 4, 2, 1)), nn.LeakyReLU(0.1),
            sn(nn.Conv2d(64, 128, 4, 2, 1)), nn.LeakyReLU(0.1),
            sn(nn.Conv2d(128, 128, 3, 1, 1)), nn.LeakyReLU(0.1),
        )
        self.lin = sn(nn.Linear(128, 1))
        self.embed = sn(nn.Embedding(NC, 128))

    def forward(self, x, y):
        h = self.net(x).sum((2, 3))
        return self.lin(h).squeeze(1) + (self.embed(y) * h).sum(1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="../shared/data")
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--out", default="baseline_sngan.pt")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    ds = MNIST(args.data, train=True, download=False)
    x_all = ds.data.unsqueeze(1).float() / 127.5 - 1
    y_all = ds.targets
    g, d = G(), D()
    opt_g = torch.optim.Adam(g.parameters(), 2e-4, betas=(0.0, 0.9))
    opt_d = torch.optim.Adam(d.parameters(), 2e-4, betas=(0.0, 0.9))
    bs, steps, t0 = 64, 0, time.time()
    while time.time() - t0 < args.minutes * 60:
        for _ in range(2):
            idx = torch.randint(len(x_all), (bs,))
            x, y = x_all[idx], y_all[idx]
            with torch.no_grad():
                fake = g(torch.randn(bs, Z), y)
            loss_d = F.relu(1 - d(x, y)).mean() + F.relu(1 + d(fake, y)).mean()
            opt_d.zero_grad()
            loss_d.backward()
            opt_d.step()
        y = torch.randint(NC, (bs,))
        loss_g = -d(g(torch.randn(bs, Z), y), y).mean()
        opt_g.zero_grad()
        loss_g.backward()
        opt_g.step()
        steps += 1
        if steps % 500 == 0:
            print(f"step {steps} d {loss_d.item():.3f} g {loss_g.item():.3f} {time.time() - t0:.0f}s", flush=True)
    torch.save({"G": g.state_dict(), "steps": steps, "seconds": time.time() - t0}, args.out)
    print(f"saved {args.out}: {steps} G steps in {time.time() - t0:.0f}s")


if __name__ == "__main__":
    main()
