"""Seed 000's LeNet training loop in PyTorch, on the Fashion-MNIST files jaxcnn's main job reads.

    /path/to/torch-venv/bin/python benchmarks/torch_lenet_fashion_mnist.py [--epochs=5]
        [--data_dir=/usr/share/datasets/fashion-mnist] [--threads=N]

The seed's code (d2l's LeNet and train_ch5): its network (the text's nn.Linear(1644, 120)
has 16 * 4 * 4 = 256 inputs, as the shapes need), cross-entropy, Adam with lr 1e-3, batch
256, 5 epochs; per epoch its loop (shuffle, forward, loss, zero_grad, backward, step, the loss
and accuracy read back every step with .item()), then the test accuracy batch by batch in
eval mode, and its line per epoch. The one difference: the data are the IDX files decoded
once into tensors in memory (scaled to [0, 1] as ToTensor does), where the seed reads them
through torchvision's dataset and a DataLoader with 4 workers. `--threads` sets PyTorch's
intra-op threads (default: its own choice, one per core).

Never imported by jaxcnn (PyTorch is not a project dependency); benchmarks/main_job.py times
it against launch.py, whole process against whole process.
"""
import argparse
import gzip
import os
import struct
import time

import torch
from torch import nn

FILES = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
         "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}


def read_idx(path: str) -> torch.Tensor:
  with gzip.open(path, "rb") as f:
    _, _, ndim = struct.unpack(">HBB", f.read(4))
    shape = struct.unpack(">" + "I" * ndim, f.read(4 * ndim))
    return torch.frombuffer(bytearray(f.read()), dtype=torch.uint8).reshape(shape)


def load(data_dir: str, split: str) -> tuple[torch.Tensor, torch.Tensor]:
  images, labels = (read_idx(os.path.join(data_dir, f)) for f in FILES[split])
  return images[:, None].float() / 255.0, labels.long()  # [N, 1, 28, 28], as ToTensor


class LeNet(nn.Module):
  def __init__(self):
    super().__init__()
    self.conv = nn.Sequential(
        nn.Conv2d(1, 6, 5), nn.Sigmoid(), nn.MaxPool2d(2, 2),
        nn.Conv2d(6, 16, 5), nn.Sigmoid(), nn.MaxPool2d(2, 2))
    self.fc = nn.Sequential(
        nn.Linear(16 * 4 * 4, 120), nn.Sigmoid(), nn.Linear(120, 84), nn.Sigmoid(),
        nn.Linear(84, 10))

  def forward(self, img):
    feature = self.conv(img)
    return self.fc(feature.view(img.shape[0], -1))


def batches(x, y, batch_size, shuffle):
  order = torch.randperm(len(x)) if shuffle else torch.arange(len(x))
  for i in range(0, len(x), batch_size):
    idx = order[i:i + batch_size]
    yield x[idx], y[idx]


def evaluate_accuracy(x, y, net, batch_size):
  acc_sum, n = 0.0, 0
  with torch.no_grad():
    for X, Y in batches(x, y, batch_size, shuffle=False):
      net.eval()  # evaluation mode (the seed switches per batch)
      acc_sum += (net(X).argmax(dim=1) == Y).float().sum().item()
      net.train()
      n += Y.shape[0]
  return acc_sum / n


def train_ch5(net, train, test, batch_size, optimizer, num_epochs):
  loss = torch.nn.CrossEntropyLoss()
  batch_count = 0
  for epoch in range(num_epochs):
    train_l_sum, train_acc_sum, n, start = 0.0, 0.0, 0, time.time()
    for X, y in batches(*train, batch_size, shuffle=True):
      y_hat = net(X)
      l = loss(y_hat, y)  # noqa: E741  (the seed's names)
      optimizer.zero_grad()
      l.backward()
      optimizer.step()
      train_l_sum += l.cpu().item()
      train_acc_sum += (y_hat.argmax(dim=1) == y).sum().cpu().item()
      n += y.shape[0]
      batch_count += 1  # counted over all epochs, as the seed does (its printed loss divides by it)
    test_acc = evaluate_accuracy(*test, net, batch_size)
    print("epoch %d, loss %.4f, train acc %.3f, test acc %.3f, time %.1f sec"
          % (epoch + 1, train_l_sum / batch_count, train_acc_sum / n, test_acc,
             time.time() - start), flush=True)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--data_dir", default="/usr/share/datasets/fashion-mnist")
  parser.add_argument("--epochs", type=int, default=5)
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--threads", type=int, default=0)
  args = parser.parse_args()
  if args.threads:
    torch.set_num_threads(args.threads)
  torch.manual_seed(args.seed)
  train, test = load(args.data_dir, "train"), load(args.data_dir, "test")
  net = LeNet()
  optimizer = torch.optim.Adam(net.parameters(), lr=0.001)
  train_ch5(net, train, test, 256, optimizer, args.epochs)


if __name__ == "__main__":
  main()
