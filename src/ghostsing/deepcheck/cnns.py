"""The convolutional networks of the deep checks: the two Keras models of the 2022 course report and a
batch of seeds of any module.

``parker_hoang_cnn`` / ``parker_hoang_resnet`` rebuild the two Keras models of the 2022 course report
(418,794 and 223,242 parameters; ``parker_hoang_resnet_noskip`` is the skip ablation of the residual one);
:class:`BatchedModule` runs ``S`` copies of any module through ``torch.func.vmap(functional_call)``.
The MLPs with skips are :mod:`ghostsing.deepcheck.nets`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn


def parker_hoang_cnn(dropout: float = 0.5, n_classes: int = 10) -> nn.Sequential:
    """The plain ("CNN sequential") model of the 2022 report: 418,794 parameters for 10 classes.

    conv3x3(32, same)-conv3x3(32, same)-maxpool2 - conv(64)x2-maxpool2 - conv(128)x2-maxpool2 - flatten
    (2048) - dense 64 (ReLU) - dense 10 - dropout, all convs ReLU.  As in the report's summary the
    dropout acts on the last layer's output (rate not stated there; 0.5 by default).  Input NCHW 32x32.
    """

    def block(cin: int, cout: int) -> list[nn.Module]:
        return [
            nn.Conv2d(cin, cout, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(cout, cout, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
        ]

    return nn.Sequential(
        *block(3, 32),
        *block(32, 64),
        *block(64, 128),
        nn.Flatten(),
        nn.Linear(2048, 64),
        nn.ReLU(),
        nn.Linear(64, n_classes),
        nn.Dropout(dropout),
    )


class _ResBlock(nn.Module):
    """``relu(conv2(relu(conv1(x)))) + x``, or without the ``+ x`` when ``skip=False`` (same parameters)."""

    def __init__(self, ch: int, skip: bool = True):
        super().__init__()
        self.conv1 = nn.Conv2d(ch, ch, 3, padding=1)
        self.conv2 = nn.Conv2d(ch, ch, 3, padding=1)
        self.skip = skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.conv2(torch.relu(self.conv1(x))))
        return y + x if self.skip else y


def parker_hoang_resnet(dropout: float = 0.5, n_classes: int = 10, skip: bool = True) -> nn.Sequential:
    """The residual ("RNN functional") model of the 2022 report: 223,242 parameters for 10 classes.

    conv3x3(32, valid) 30x30 - conv3x3(64, valid) 28x28 - maxpool3 9x9 - two residual blocks
    ``x + relu(conv(relu(conv(x))))`` (64 ch, same) - conv3x3(64, valid) 7x7 - global average pooling
    - dense 256 (ReLU) - dropout (0.5, as in the Keras toy ResNet it follows) - dense 10.
    ``skip=False`` removes the blocks' two additions ``+ x`` and nothing else (the ablation: same layers,
    same 223,242 parameters, same initialisation for a seed).
    """
    return nn.Sequential(
        nn.Conv2d(3, 32, 3),
        nn.ReLU(),
        nn.Conv2d(32, 64, 3),
        nn.ReLU(),
        nn.MaxPool2d(3),
        _ResBlock(64, skip),
        _ResBlock(64, skip),
        nn.Conv2d(64, 64, 3),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(64, 256),
        nn.ReLU(),
        nn.Dropout(dropout),
        nn.Linear(256, n_classes),
    )


def parker_hoang_resnet_noskip(dropout: float = 0.5, n_classes: int = 10) -> nn.Sequential:
    """:func:`parker_hoang_resnet` with its two additions removed (``skip=False``)."""
    return parker_hoang_resnet(dropout, n_classes, skip=False)


CNN_FACTORIES: dict[str, Callable[..., nn.Module]] = {
    "cnn": parker_hoang_cnn, "resnet": parker_hoang_resnet, "resnet-noskip": parker_hoang_resnet_noskip,
}


class BatchedModule(nn.Module):
    """``S`` copies of a module, copy ``s`` initialised under ``torch.manual_seed(seeds[s])``.

    Parameters are stacked with a leading network axis (``torch.func.stack_module_state``) and the
    forward pass is ``vmap(functional_call)`` over that axis with independent dropout per copy.
    ``forward(x)`` takes ``(S, B, ...)`` and returns ``(S, B, C)``.
    """

    def __init__(
        self, factory: Callable[[], nn.Module], seeds: Sequence[int], dtype=torch.float32, device="cpu"
    ):
        super().__init__()
        self.seeds = tuple(int(s) for s in seeds)
        mods = []
        for s in self.seeds:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(s)
                mods.append(factory().to(device=device, dtype=dtype))
        params, buffers = torch.func.stack_module_state(mods)
        self.names = tuple(params)
        self.params = nn.ParameterDict({k.replace(".", "__"): nn.Parameter(v) for k, v in params.items()})
        for k, v in buffers.items():
            self.register_buffer("buf__" + k.replace(".", "__"), v)
        self._base = (mods[0],)  # a tuple keeps it out of the registered submodules

    @property
    def n_nets(self) -> int:
        return len(self.seeds)

    def train(self, mode: bool = True):
        super().train(mode)
        self._base[0].train(mode)
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        base = self._base[0]
        state = {k: self.params[k.replace(".", "__")] for k in self.names}
        for name, buf in self.named_buffers():
            state[name[len("buf__") :].replace("__", ".")] = buf

        def one(p, xb):
            return torch.func.functional_call(base, p, (xb,))

        return torch.func.vmap(one, randomness="different")(state, x)
