"""Counts the forward and backward passes an attack makes through the model, whoever implements it.

Hooks on the network itself see every pass, so ART's attacks and ours are counted the same way.
Counts are in images: a forward pass over a batch of 32 counts 32. The hook sits on the network's
own forward, so a model that ART runs layer by layer (an nn.Sequential) would not be seen; the
project's models never are one (the normalisation wrapper is a plain module).
"""

from torch import nn


class PassCounter:
    def __init__(self, net: nn.Module):
        self.net = net
        self.forward = 0
        self.backward = 0

    def _on_forward(self, module, inputs, output):
        n = len(inputs[0])
        self.forward += n
        if output.requires_grad:
            output.register_hook(lambda grad: self._on_backward(n))

    def _on_backward(self, n: int):
        self.backward += n

    def __enter__(self):
        self.handle = self.net.register_forward_hook(self._on_forward)
        return self

    def __exit__(self, *exc):
        self.handle.remove()
