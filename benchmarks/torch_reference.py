"""PyTorch reference networks and timing, run in PyTorch's own environment.

    /path/to/torch-venv/bin/python benchmarks/torch_reference.py NAME BATCH STEPS

Prints one JSON object: images/s in eager mode and with channels_last. Never imported by
jaxcnn (PyTorch is not a project dependency); benchmarks/train_speed.py calls it.
"""
import json
import statistics
import sys
import time

import torch
from torch import nn


def lenet5():
  return nn.Sequential(
      nn.Conv2d(1, 6, 5), nn.Sigmoid(), nn.MaxPool2d(2, 2),
      nn.Conv2d(6, 16, 5), nn.Sigmoid(), nn.MaxPool2d(2, 2), nn.Flatten(),
      nn.Linear(256, 120), nn.Sigmoid(), nn.Linear(120, 84), nn.Sigmoid(), nn.Linear(84, 10))


class Basic(nn.Module):
  def __init__(self, cin, cout, stride, option_a):
    super().__init__()
    self.c1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
    self.b1 = nn.BatchNorm2d(cout)
    self.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
    self.b2 = nn.BatchNorm2d(cout)
    self.option_a = option_a
    self.pad = cout - cin
    self.short = None
    if (stride != 1 or cin != cout) and not option_a:
      self.short = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
    self.stride = stride

  def forward(self, x):
    y = self.b2(self.c2(torch.relu(self.b1(self.c1(x)))))
    if self.short is not None:
      x = self.short(x)
    elif self.stride != 1 or self.pad:  # option A: subsample and zero-pad channels
      x = x[:, :, ::self.stride, ::self.stride]
      x = nn.functional.pad(x, (0, 0, 0, 0, self.pad // 2, self.pad - self.pad // 2))
    return torch.relu(y + x)


def cifar_resnet(widths, blocks, option_a, stem=16):
  layers = [nn.Conv2d(3, stem, 3, 1, 1, bias=False), nn.BatchNorm2d(stem), nn.ReLU()]
  cin = stem
  for i, (w, n) in enumerate(zip(widths, blocks)):
    for j in range(n):
      layers.append(Basic(cin, w, 2 if (j == 0 and i > 0) else 1, option_a))
      cin = w
  layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, 10)]
  return nn.Sequential(*layers)


def vgg16_bn_cifar():
  cfg = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]
  layers, cin = [], 3
  for v in cfg:
    if v == "M":
      layers.append(nn.MaxPool2d(2, 2))
    else:
      layers += [nn.Conv2d(cin, v, 3, padding=1), nn.BatchNorm2d(v), nn.ReLU()]
      cin = v
  return nn.Sequential(*layers, nn.Flatten(), nn.Linear(512, 10))


def alexnet_d2l():
  return nn.Sequential(
      nn.Conv2d(1, 96, 11, 4), nn.ReLU(), nn.MaxPool2d(3, 2),
      nn.Conv2d(96, 256, 5, 1, 2), nn.ReLU(), nn.MaxPool2d(3, 2),
      nn.Conv2d(256, 384, 3, 1, 1), nn.ReLU(), nn.Conv2d(384, 384, 3, 1, 1), nn.ReLU(),
      nn.Conv2d(384, 256, 3, 1, 1), nn.ReLU(), nn.MaxPool2d(3, 2), nn.Flatten(),
      nn.Linear(6400, 4096), nn.ReLU(), nn.Dropout(0.5), nn.Linear(4096, 4096), nn.ReLU(),
      nn.Dropout(0.5), nn.Linear(4096, 10))


def resnet50():
  import torchvision  # optional: only this network needs it
  return torchvision.models.resnet50(num_classes=1000)


NETWORKS = {  # name -> (factory, input shape CHW, classes)
    "lenet5": (lenet5, (1, 28, 28), 10),
    "resnet20": (lambda: cifar_resnet([16, 32, 64], [3, 3, 3], True), (3, 32, 32), 10),
    "resnet18_cifar": (lambda: cifar_resnet([64, 128, 256, 512], [2, 2, 2, 2], False, 64),
                       (3, 32, 32), 10),
    "vgg16_bn_cifar": (vgg16_bn_cifar, (3, 32, 32), 10),
    "resnet50": (resnet50, (3, 224, 224), 1000),
    "alexnet_d2l": (alexnet_d2l, (1, 224, 224), 10),
}


def time_training(name: str, batch: int, steps: int, channels_last: bool) -> dict:
  factory, shape, classes = NETWORKS[name]
  torch.manual_seed(0)
  model = factory()
  x = torch.randn(batch, *shape)
  y = torch.randint(0, classes, (batch,))
  if channels_last:
    model = model.to(memory_format=torch.channels_last)
    x = x.contiguous(memory_format=torch.channels_last)
  opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
  loss_fn = nn.CrossEntropyLoss()
  model.train()
  times = []
  for i in range(steps + 3):
    t = time.perf_counter()
    opt.zero_grad(set_to_none=True)
    loss_fn(model(x), y).backward()
    opt.step()
    if i >= 3:  # warm-up
      times.append(time.perf_counter() - t)
  return {"median": batch / statistics.median(times), "min": batch / max(times),
          "max": batch / min(times)}


def main():
  name, batch, steps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
  torch.set_num_threads(torch.get_num_threads())
  result = {"torch": torch.__version__, "threads": torch.get_num_threads()}
  try:
    result["eager"] = time_training(name, batch, steps, channels_last=False)
    result["channels_last"] = time_training(name, batch, steps, channels_last=True)
  except ImportError as e:
    result["error"] = str(e)
  print(json.dumps(result))


if __name__ == "__main__":
  main()
