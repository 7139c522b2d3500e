"""The two ResNet18s of the notebooks."""

import torch.nn.functional as F
from torch import nn


class BasicBlock(nn.Module):
    def __init__(self, in_planes, planes, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet18(nn.Module):
    """CIFAR ResNet18 with a channel multiplier (the Q1 notebook's ResNetScalable).
    Modules are created in the notebook's order, so the same seed gives the same init."""

    def __init__(self, width=1.0, num_classes=10, in_channels=3):
        super().__init__()
        c1, c2, c3, c4 = (int(c * width) for c in (64, 128, 256, 512))
        self.conv1 = nn.Conv2d(in_channels, c1, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c1)
        planes = [c1]
        layers = []
        for c, stride in ((c1, 1), (c2, 2), (c3, 2), (c4, 2)):
            layers.append(nn.Sequential(BasicBlock(planes[-1], c, stride), BasicBlock(c, c, 1)))
            planes.append(c)
        self.layer1, self.layer2, self.layer3, self.layer4 = layers
        self.linear = nn.Linear(c4, num_classes)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        out = F.adaptive_avg_pool2d(out, 1).flatten(1)
        return self.linear(out)


def tv_resnet18(num_classes=10, in_channels=3):
    """The Q3 notebook's model: torchvision resnet18, 3x3 stride-1 stem, no max-pool.
    Built in the notebook's order (full resnet18 first, then the stem replaced)."""
    import torchvision  # only this model needs it (~1 s of start-up)

    model = torchvision.models.resnet18(weights=None, num_classes=num_classes)
    model.conv1 = nn.Conv2d(in_channels, 64, 3, 1, 1, bias=False)
    model.maxpool = nn.Identity()
    return model


MODELS = {  # name -> builder(width, num_classes, in_channels)
    "resnet18": ResNet18,
    "tv_resnet18": lambda width, num_classes, in_channels: tv_resnet18(num_classes, in_channels),
}


def build_model(name, width=1.0, num_classes=10, in_channels=3):
    return MODELS[name](width, num_classes, in_channels)
