"""A small CNN for 32x32 images, sized for every engine the project builds: no convolution sums
more than 511 products per output (the ``up5k`` preset's 24-bit accumulator), so that
``convhw explore --part up5k`` has configurations that take it. Used by ``bench/explore.py``
(a network given as a file, as a user would: ``convhw explore --network FILE.py``)."""

import torch

torch.manual_seed(0)
model = torch.nn.Sequential(
    torch.nn.Conv2d(3, 16, 3, padding=1), torch.nn.ReLU(),
    torch.nn.Conv2d(16, 32, 3, stride=2, padding=1), torch.nn.ReLU(),
    torch.nn.Conv2d(32, 32, 3, padding=1), torch.nn.ReLU(),
    torch.nn.Conv2d(32, 48, 3, stride=2, padding=1), torch.nn.ReLU(),
    torch.nn.Conv2d(48, 48, 1), torch.nn.ReLU(),
    torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(48, 10))
inputs = (torch.randn(1, 3, 32, 32),)
