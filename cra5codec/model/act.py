"""ACT blocks: window attention whose windows follow the atmospheric circulation.

The CRA5 paper (VAEformer) cycles four window shapes through its transformer blocks:
square windows for local structure, east-west bands for zonal flow (jets, storm
tracks), north-south bands for meridional exchange, and global attention. The
original implementation never lets a window cross the dateline; here longitude is
treated as the periodic coordinate it is: east-west bands span the full circle and
every other square / north-south block is rolled by half a window in longitude, so
windows straddle 180E/180W exactly as they straddle any other meridian.

Tensors are channels-last token grids ``(B, H, W, C)`` with H = latitude, W = longitude.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

#: window kinds, in the order the blocks cycle through them
KINDS = ("square", "ew", "ns", "global")


def _divisor_at_most(n: int, target: int) -> int:
    """Largest divisor of ``n`` not above ``target`` (windows must tile the grid)."""
    for d in range(min(n, target), 0, -1):
        if n % d == 0:
            return d
    return 1


def window_size(kind: str, H: int, W: int, base: int = 8) -> tuple[int, int]:
    """Window (height, width) in tokens for a block of ``kind`` on an H x W grid."""
    if kind == "square":
        return _divisor_at_most(H, base), _divisor_at_most(W, base)
    if kind == "ew":  # a zonal band around the whole latitude circle
        return _divisor_at_most(H, max(1, base // 4)), W
    if kind == "ns":  # a meridional band from pole to pole
        return H, _divisor_at_most(W, max(1, base // 2))
    if kind == "global":
        return H, W
    raise ValueError(f"unknown window kind {kind!r}")


def window_partition(x: torch.Tensor, wh: int, ww: int) -> torch.Tensor:
    """(B, H, W, C) -> (B * nWindows, wh * ww, C)."""
    B, H, W, C = x.shape
    x = x.view(B, H // wh, wh, W // ww, ww, C).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, wh * ww, C)


def window_reverse(windows: torch.Tensor, wh: int, ww: int, H: int, W: int) -> torch.Tensor:
    """(B * nWindows, wh * ww, C) -> (B, H, W, C); inverse of :func:`window_partition`."""
    C = windows.shape[-1]
    x = windows.view(-1, H // wh, W // ww, wh, ww, C).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, H, W, C)


class WindowAttention(nn.Module):
    """Multi-head self-attention inside each window (torch's fused SDPA kernel)."""

    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (Bw, N, C)
        Bw, N, C = x.shape
        qkv = self.qkv(x).view(Bw, N, 3, self.num_heads, C // self.num_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)
        x = F.scaled_dot_product_attention(q, k, v)
        return self.proj(x.transpose(1, 2).reshape(Bw, N, C))


class ACTBlock(nn.Module):
    """Pre-norm transformer block attending within windows of one ``kind``.

    ``shift=True`` rolls the grid by half a window in longitude before partitioning,
    so windows wrap across the dateline; latitude is never rolled (the poles are not
    neighbours).
    """

    def __init__(self, dim: int, num_heads: int, kind: str, shift: bool = False,
                 mlp_ratio: float = 2.0, window: int = 8):
        super().__init__()
        if kind not in KINDS:
            raise ValueError(f"unknown window kind {kind!r}")
        self.kind, self.shift, self.window = kind, shift, window
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, H, W, C)
        B, H, W, C = x.shape
        wh, ww = window_size(self.kind, H, W, self.window)
        roll = ww // 2 if (self.shift and ww < W) else 0
        h = self.norm1(x)
        if roll:
            h = torch.roll(h, shifts=-roll, dims=2)
        h = window_reverse(self.attn(window_partition(h, wh, ww)), wh, ww, H, W)
        if roll:
            h = torch.roll(h, shifts=roll, dims=2)
        x = x + h
        return x + self.mlp(self.norm2(x))


class ACTStage(nn.Module):
    """``depth`` ACT blocks cycling square -> east-west -> north-south -> global.

    With ``wrap`` the square blocks of even cycles and the north-south blocks of odd
    cycles are rolled by half a window in longitude: consecutive partitions then never
    share an edge, and one of them always straddles the dateline. East-west bands and
    global windows cover the whole latitude circle and need no roll.
    """

    def __init__(self, dim: int, depth: int, num_heads: int, window: int = 8,
                 kinds: tuple[str, ...] = KINDS, wrap: bool = True, mlp_ratio: float = 2.0):
        super().__init__()
        blocks = []
        for i in range(depth):
            kind, even_cycle = kinds[i % len(kinds)], (i // len(kinds)) % 2 == 0
            shift = wrap and ((kind == "square" and even_cycle) or (kind == "ns" and not even_cycle))
            blocks.append(ACTBlock(dim, num_heads, kind, shift, mlp_ratio, window))
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for blk in self.blocks:
            x = blk(x)
        return x
